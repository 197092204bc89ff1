/*
 * Cross-partition transactions: the messages, the coordinator's and the legs' state machines,
 * and their rows' snapshot form (txn.h has the protocol; docs/node.md the failure cases).
 *
 * Every function that changes a row runs while one log record of that row's partition is
 * applied (live or in replay), and reads nothing but that partition's engine and rows, the
 * record and its (index, time): so replay rebuilds the rows exactly, and a partition could
 * live on another machine. What is sent is not logged: messages are derived from the rows and
 * sent again after a restart.
 *
 *   message bytes (little-endian):
 *     type u8 | from u32 | to u32 | txid (21 bytes) | leg u8 | then by type:
 *       PREPARE  query_after_ms i64 | cmd length u32 | engine record of the leg
 *       VOTE     yes u8 | err i32 | cents i64 | message length u8 | message bytes
 *       DECIDE   commit u8
 *       ACK, QUERY, REFUND_ACK  nothing
 *       REFUND   restock u8
 *     nothing may follow.
 */
#include "node/txn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "node/store.h"
#include "util/error.h"

/* Seeds that keep the id spaces of transfers and payments apart from order ids. */
#define TXN_SEED_TRANSFER 0x7472616e73666572ULL
#define TXN_SEED_PAY      0x7061796d656e7421ULL
#define TXN_SEED_REFUND   0x726566756e642121ULL

/* Room for a derived request id: "<txid>:<leg>:<op>". */
#define TXN_RID_BYTES 40

#define LEG_BIT(i) (1ULL << (i))

static uint64_t legs_all(uint8_t n)
{
    ASSERT(n <= 64);
    return n == 64 ? ~0ULL : LEG_BIT(n) - 1;
}

/*
 * Attempts. A transaction aborted by the prepare timeout may be started again by the client's
 * retry with the same request id (node_txn_run). Its legs then carry new numbers: attempt k
 * numbers its legs k * legs_count .. k * legs_count + legs_count - 1 on the wire, so every leg
 * row, hold and derived request id of the new attempt is new, while the old attempt's legs stay
 * aborted (and a late message of the old attempt is told abort). The attempt lives in the
 * coordinator row's peer field, which a coordinator does not otherwise use.
 */
static uint8_t wire_leg(const struct txn_row *r, uint8_t i)
{
    ASSERT(i < r->legs_count && (r->peer + 1) * r->legs_count <= SM_TXN_LEGS_MAX);
    return (uint8_t)(r->peer * r->legs_count + i);
}

/* The leg index of a message's wire leg in the row's current attempt; false for another. */
static bool leg_of_wire(const struct txn_row *r, uint8_t wire, uint8_t *i)
{
    if (r->legs_count == 0 || wire / r->legs_count != r->peer)
        return false;
    *i = wire % r->legs_count;
    return true;
}

/* ---- messages ------------------------------------------------------------------------------ */

int txn_msg_encode(const struct txn_msg *m, struct sm_wbuf *w)
{
    if (m->type < TXN_MSG_PREPARE || m->type > TXN_MSG_REFUND_ACK || m->leg >= SM_TXN_LEGS_MAX ||
        m->msg_len > SM_ENGINE_MESSAGE_BYTES_MAX || m->cmd_len > SM_ENGINE_RECORD_BYTES_MAX)
        return SM_E_BADARG;
    sm_wbuf_u8(w, m->type);
    sm_wbuf_u32(w, m->from);
    sm_wbuf_u32(w, m->to);
    sm_wbuf_put(w, m->txid, TXN_ID_BYTES);
    sm_wbuf_u8(w, m->leg);
    switch (m->type) {
    case TXN_MSG_PREPARE:
        sm_wbuf_i64(w, m->query_after_ms);
        sm_wbuf_str32(w, m->cmd, m->cmd_len);
        break;
    case TXN_MSG_VOTE:
        sm_wbuf_u8(w, m->yes ? 1 : 0);
        sm_wbuf_u32(w, (uint32_t)m->err);
        sm_wbuf_i64(w, m->cents);
        sm_wbuf_str8(w, m->msg, m->msg_len);
        break;
    case TXN_MSG_DECIDE:
    case TXN_MSG_REFUND:
        sm_wbuf_u8(w, m->yes ? 1 : 0);
        break;
    default:
        break;
    }
    return w->failed ? SM_E_NOMEM : 0;
}

static bool read_bool(struct sm_rbuf *r)
{
    uint8_t v = sm_rbuf_u8(r);
    if (v > 1)
        sm_rbuf_fail(r);
    return v == 1;
}

int txn_msg_decode(const uint8_t *b, size_t len, struct txn_msg *m)
{
    memset(m, 0, sizeof *m);
    struct sm_rbuf r;
    sm_rbuf_init(&r, b, len);
    m->type = sm_rbuf_u8(&r);
    m->from = sm_rbuf_u32(&r);
    m->to = sm_rbuf_u32(&r);
    const uint8_t *id = sm_rbuf_take(&r, TXN_ID_BYTES);
    if (id)
        memcpy(m->txid, id, TXN_ID_BYTES);
    m->leg = sm_rbuf_u8(&r);
    if (!sm_rbuf_ok(&r) || m->type < TXN_MSG_PREPARE || m->type > TXN_MSG_REFUND_ACK ||
        m->leg >= SM_TXN_LEGS_MAX || m->from >= SM_PARTITIONS_MAX || m->to >= SM_PARTITIONS_MAX)
        return SM_E_BADARG;
    if (m->type == TXN_MSG_PREPARE) {
        m->query_after_ms = sm_rbuf_i64(&r);
        m->cmd = sm_rbuf_str32(&r, &m->cmd_len);
        if (m->cmd_len > SM_ENGINE_RECORD_BYTES_MAX || m->query_after_ms < 0 ||
            m->query_after_ms > SM_ENGINE_TTL_MS_MAX)
            sm_rbuf_fail(&r);
    } else if (m->type == TXN_MSG_VOTE) {
        m->yes = read_bool(&r);
        m->err = (int32_t)sm_rbuf_u32(&r);
        m->cents = sm_rbuf_i64(&r);
        size_t n = 0;
        const uint8_t *msg = sm_rbuf_str8(&r, &n);
        if (n > SM_ENGINE_MESSAGE_BYTES_MAX || m->cents < 0)
            sm_rbuf_fail(&r);
        else if (msg)
            memcpy(m->msg, msg, n);
        m->msg_len = (uint8_t)n;
    } else if (m->type == TXN_MSG_DECIDE || m->type == TXN_MSG_REFUND) {
        m->yes = read_bool(&r);
    }
    return sm_rbuf_ok(&r) && sm_rbuf_left(&r) == 0 ? 0 : SM_E_BADARG;
}

/* ---- ids and rows -------------------------------------------------------------------------- */

static void id_from(uint32_t p, const struct engine_key *a, const struct engine_key *b,
                    uint64_t seed, uint8_t *txid)
{
    uint8_t buf[2 * SM_KEY_BYTES_MAX + 1];
    ASSERT(a->len <= SM_KEY_BYTES_MAX && b->len <= SM_KEY_BYTES_MAX);
    memcpy(buf, a->ptr, a->len);
    buf[a->len] = 0;
    memcpy(buf + a->len + 1, b->ptr, b->len);
    uint64_t h = XXH3_64bits_withSeed(buf, a->len + 1 + b->len, seed);
    char text[TXN_ID_BYTES + 1];
    snprintf(text, sizeof text, "%04x-%016llx", p, (unsigned long long)h);
    memcpy(txid, text, TXN_ID_BYTES);
}

void txn_id_of(const struct engine_cmd *cmd, uint32_t p, uint8_t *txid)
{
    switch (cmd->type) {
    case ENGINE_ORDER_PLACE:
        ASSERT(cmd->key.len == TXN_ID_BYTES);
        memcpy(txid, cmd->key.ptr, TXN_ID_BYTES);
        return;
    case ENGINE_ACCOUNT_TRANSFER:
        id_from(p, &cmd->key, &cmd->request_id, TXN_SEED_TRANSFER, txid);
        return;
    case ENGINE_ORDER_PAY:
        id_from(p, &cmd->key, &cmd->request_id, TXN_SEED_PAY, txid);
        return;
    case ENGINE_ORDER_REFUND_XPAY:
        id_from(p, &cmd->key, &cmd->request_id, TXN_SEED_REFUND, txid);
        return;
    default:
        UNREACHABLE();
    }
}

static struct txn_table *table(const struct store *s, uint32_t p)
{
    ASSERT(p < s->partitions);
    return &s->txns[p];
}

/* The index's key of a row: (txid, role, leg); a coordinator row has leg 0. */
struct row_key {
    const struct txn_table *t;
    const uint8_t *txid;
    uint8_t role, leg;
};

static uint64_t row_hash(const uint8_t *txid, uint8_t role, uint8_t leg)
{
    return XXH3_64bits_withSeed(txid, TXN_ID_BYTES, (uint64_t)role << 8 | leg);
}

static bool row_eq(const void *ctx, uint32_t slot)
{
    const struct row_key *k = ctx;
    const struct txn_row *r = &k->t->rows[slot];
    return r->role == k->role && r->leg == k->leg && memcmp(r->txid, k->txid, TXN_ID_BYTES) == 0;
}

static struct txn_row *find(const struct store *s, uint32_t p, const uint8_t *txid, uint8_t role,
                            uint8_t leg)
{
    struct txn_table *t = table(s, p);
    if (!t->index_ready)
        return NULL;
    struct row_key k = {t, txid, role, role == TXN_ROLE_COORD ? 0 : leg};
    uint32_t slot = sm_index_find(&t->index, row_hash(txid, k.role, k.leg), row_eq, &k);
    return slot == SM_INDEX_NONE ? NULL : &t->rows[slot];
}

/* Makes a row whose txid, role and leg are set findable. */
static void row_index(struct store *s, uint32_t p, struct txn_row *r)
{
    struct txn_table *t = table(s, p);
    ASSERT(r->role != TXN_ROLE_FREE && (r->role == TXN_ROLE_PART || r->leg == 0));
    ASSERT(find(s, p, r->txid, r->role, r->leg) == NULL);
    int rc =
        sm_index_insert(&t->index, row_hash(r->txid, r->role, r->leg), (uint32_t)(r - t->rows));
    ASSERT(rc == 0); /* the index holds SM_TXN_ROWS_MAX entries, the table at most that */
    t->used++;
}

const struct txn_row *txn_find_coord(const struct store *s, uint32_t p, const uint8_t *txid)
{
    return find(s, p, txid, TXN_ROLE_COORD, 0);
}

static bool row_final(const struct txn_row *r)
{
    return r->state == TXN_DONE || r->state == TXN_REFUSED || r->state == TXN_COMMITTED ||
           r->state == TXN_ABORTED || r->state == TXN_REFUNDED || r->state == TXN_LEG_REFUNDED;
}

uint32_t txn_inflight(const struct store *s, uint32_t p)
{
    const struct txn_table *t = table(s, p);
    uint32_t n = 0;
    for (uint32_t i = 0; i < t->count; i++)
        n += t->rows[i].role != TXN_ROLE_FREE && !row_final(&t->rows[i]);
    return n;
}

static void row_clear(struct txn_row *r)
{
    free(r->cmd);
    memset(r, 0, sizeof *r);
}

/* Frees a row that row_index made findable. */
static void row_drop(struct txn_table *t, struct txn_row *r)
{
    ASSERT(t->used > 0);
    sm_index_remove(&t->index, row_hash(r->txid, r->role, r->leg), (uint32_t)(r - t->rows));
    t->used--;
    row_clear(r);
}

/* A free row of partition p: an unused one, a new one (the table grows up to its bound), or
 * the final row that became final first. NULL when every row is in flight. */
static struct txn_row *row_new(struct store *s, uint32_t p)
{
    struct txn_table *t = table(s, p);
    if (!t->index_ready) {
        if (sm_index_init(&t->index, SM_TXN_ROWS_MAX) != 0)
            return NULL;
        t->index_ready = true;
    }
    for (uint32_t i = 0; t->used < t->count && i < t->count; i++)
        if (t->rows[i].role == TXN_ROLE_FREE)
            return &t->rows[i];
    if (t->count < SM_TXN_ROWS_MAX) {
        if (t->count == t->cap) {
            uint32_t cap = t->cap ? t->cap * 2 : 8;
            cap = cap > SM_TXN_ROWS_MAX ? SM_TXN_ROWS_MAX : cap;
            struct txn_row *rows = realloc(t->rows, cap * sizeof *rows);
            if (!rows)
                return NULL;
            t->rows = rows;
            t->cap = cap;
        }
        struct txn_row *r = &t->rows[t->count++];
        memset(r, 0, sizeof *r);
        return r;
    }
    struct txn_row *oldest = NULL;
    for (uint32_t i = 0; i < t->count; i++)
        if (row_final(&t->rows[i]) && (!oldest || t->rows[i].done_index < oldest->done_index))
            oldest = &t->rows[i];
    if (oldest)
        row_drop(t, oldest);
    return oldest;
}

static bool row_set_cmd(struct txn_row *r, const uint8_t *cmd, size_t len)
{
    ASSERT(r->cmd == NULL && len <= SM_ENGINE_RECORD_BYTES_MAX);
    r->cmd = malloc(len ? len : 1);
    if (!r->cmd)
        return false;
    memcpy(r->cmd, cmd, len);
    r->cmd_len = (uint32_t)len;
    return true;
}

static void set_outcome(struct txn_row *r, int32_t err, const char *msg, size_t msg_len)
{
    r->err = err;
    r->msg_len =
        (uint8_t)(msg_len < SM_ENGINE_MESSAGE_BYTES_MAX ? msg_len : SM_ENGINE_MESSAGE_BYTES_MAX);
    if (r->msg_len)
        memcpy(r->msg, msg, r->msg_len);
}

/* ---- legs ---------------------------------------------------------------------------------- */

/* A hold leg's prepare: HOLD_PREPARE_USER, or HOLD_PREPARE as logged before holds carried the
 * buyer (still replayed). */
static bool is_hold_prepare(uint8_t type)
{
    return type == ENGINE_HOLD_PREPARE || type == ENGINE_HOLD_PREPARE_USER;
}

/* One leg of a coordinator's transaction: where it runs and what it prepares. The command's
 * keys borrow the row's record and rid. */
struct txn_leg {
    uint32_t partition;
    int64_t query_after_ms;
    char hold_key[TXN_ID_BYTES + 8]; /* a hold's txid after a restart: "<txid>/<attempt>" */
    struct engine_cmd cmd;
    char rid[TXN_RID_BYTES];
};

static void leg_rid(const uint8_t *txid, uint8_t leg, char op, char *rid, struct engine_key *k)
{
    int n = snprintf(rid, TXN_RID_BYTES, "%.*s:%u:%c", TXN_ID_BYTES, (const char *)txid, leg, op);
    ASSERT(n > 0 && n < TXN_RID_BYTES);
    k->ptr = (const uint8_t *)rid;
    k->len = (size_t)n;
}

/* The remote partitions of an order, in the order their first item appears (legs_count of
 * them, at most SM_TXN_LEGS_MAX), into parts[]. */
static uint8_t order_parts(const struct store *s, uint32_t p, const struct engine_cmd *c,
                           uint32_t *parts)
{
    uint8_t n = 0;
    for (uint32_t i = 0; i < c->items_count; i++) {
        uint32_t q = store_partition(s, c->items[i].sku.ptr, c->items[i].sku.len);
        bool seen = q == p;
        for (uint8_t k = 0; k < n && !seen; k++)
            seen = parts[k] == q;
        if (!seen) {
            ASSERT(n < SM_TXN_LEGS_MAX);
            parts[n++] = q;
        }
    }
    return n;
}

/* Describes leg `leg` of coordinator row r (of partition p) into *l. */
static void leg_of(const struct store *s, uint32_t p, const struct txn_row *r, uint8_t leg,
                   struct txn_leg *l)
{
    struct engine_cmd c;
    int rc = engine_decode(r->cmd, r->cmd_len, &c);
    ASSERT(rc == 0); /* the row's record decoded when the row was made */
    memset(l, 0, offsetof(struct txn_leg, cmd) + offsetof(struct engine_cmd, items));
    leg_rid(r->txid, wire_leg(r, leg), 'p', l->rid, &l->cmd.request_id);
    if (c.type == ENGINE_ORDER_PLACE) {
        uint32_t parts[SM_TXN_LEGS_MAX];
        uint8_t n = order_parts(s, p, &c, parts);
        ASSERT(leg < n);
        l->partition = parts[leg];
        l->query_after_ms = c.num + SM_TXN_PREPARE_TIMEOUT_MS;
        /* The hold carries the buyer, so the SKUs' own partition checks and counts the per-user
         * limits of the items it holds (and gives them back if the hold is aborted). */
        l->cmd.type = ENGINE_HOLD_PREPARE_USER;
        l->cmd.key = (struct engine_key){r->txid, TXN_ID_BYTES};
        if (r->peer > 0) {
            /* The first attempt's holds stay aborted under the txid: a new one needs a new id.
             * (A refund that finds no leg row, long after, looks for the first attempt's.) */
            int key_len = snprintf(l->hold_key, sizeof l->hold_key, "%.*s/%u", TXN_ID_BYTES,
                                   (const char *)r->txid, r->peer);
            ASSERT(key_len > 0 && (size_t)key_len < sizeof l->hold_key);
            l->cmd.key = (struct engine_key){(const uint8_t *)l->hold_key, (size_t)key_len};
        }
        l->cmd.key2 = c.key2;
        l->cmd.num = SM_ENGINE_TTL_MS_MAX;
        l->cmd.items_count = 0;
        for (uint32_t i = 0; i < c.items_count; i++)
            if (store_partition(s, c.items[i].sku.ptr, c.items[i].sku.len) == l->partition)
                l->cmd.items[l->cmd.items_count++] = c.items[i];
        return;
    }
    /* Payments: leg 0 debits the payer, leg 1 credits the payee. A refund pays back: the
     * merchant (key3) is the payer, the buyer (key2) the payee. */
    const struct engine_key *account =
        c.type == ENGINE_ACCOUNT_TRANSFER    ? (leg == 0 ? &c.key : &c.key2)
        : c.type == ENGINE_ORDER_REFUND_XPAY ? (leg == 0 ? &c.key3 : &c.key2)
                                             : (leg == 0 ? &c.key2 : &c.key3);
    l->partition = store_partition(s, account->ptr, account->len);
    l->query_after_ms = SM_TXN_PREPARE_TIMEOUT_MS;
    l->cmd.type = leg == 0 ? ENGINE_ACCOUNT_WITHDRAW : ENGINE_ACCOUNT_DEPOSIT;
    l->cmd.key = *account;
    l->cmd.num = r->amount;
}

static void send_prepare(struct store *s, uint32_t p, struct txn_row *r, uint8_t leg)
{
    struct txn_leg l;
    leg_of(s, p, r, leg, &l);
    size_t len = 0;
    int rc = engine_encode(&l.cmd, s->txn_scratch, SM_ENGINE_RECORD_BYTES_MAX, &len);
    ASSERT(rc == 0);
    struct txn_msg m = {.type = TXN_MSG_PREPARE,
                        .from = p,
                        .to = l.partition,
                        .leg = wire_leg(r, leg),
                        .query_after_ms = l.query_after_ms,
                        .cmd = s->txn_scratch,
                        .cmd_len = len};
    memcpy(m.txid, r->txid, TXN_ID_BYTES);
    store_txn_send(s, &m);
}

static uint32_t leg_partition(const struct store *s, uint32_t p, const struct txn_row *r,
                              uint8_t leg)
{
    struct txn_leg l;
    leg_of(s, p, r, leg, &l);
    return l.partition;
}

static void send_simple(struct store *s, uint8_t type, uint32_t from, uint32_t to,
                        const uint8_t *txid, uint8_t leg, bool yes)
{
    struct txn_msg m = {.type = type, .from = from, .to = to, .leg = leg, .yes = yes};
    memcpy(m.txid, txid, TXN_ID_BYTES);
    store_txn_send(s, &m);
}

static void send_decisions(struct store *s, uint32_t p, struct txn_row *r)
{
    for (uint8_t i = 0; i < r->legs_count; i++)
        if (!(r->acked & LEG_BIT(i)))
            send_simple(s, TXN_MSG_DECIDE, p, leg_partition(s, p, r, i), r->txid, wire_leg(r, i),
                        r->confirm);
}

/* ---- coordinator --------------------------------------------------------------------------- */

static void tell_client(struct store *s, const struct txn_row *r)
{
    struct txn_event ev = {.waiter_id = r->waiter_id,
                           .kind = r->kind,
                           .txid = r->txid,
                           .err = r->err,
                           .msg = r->msg,
                           .msg_len = r->msg_len};
    store_txn_event(s, &ev);
}

static void finish_if_acked(struct txn_row *r, uint64_t index)
{
    if ((r->state == TXN_CONFIRMING || r->state == TXN_RELEASING) &&
        r->acked == legs_all(r->legs_count)) {
        r->state = TXN_DONE;
        r->done_index = index;
    }
}

/* Enters CONFIRMING or RELEASING and tells every leg not yet acknowledged. */
static void decide(struct store *s, uint32_t p, struct txn_row *r, bool confirm, uint64_t index,
                   int64_t now_ms)
{
    if (r->state == TXN_PLACED)
        table(s, p)->placed--;
    r->confirm = confirm;
    r->state = confirm ? TXN_CONFIRMING : TXN_RELEASING;
    r->sent_ms = now_ms;
    send_decisions(s, p, r);
    finish_if_acked(r, index);
}

/* ---- refunds of a placed order: its hold legs' items leave sold too ---- */

static bool refunding(const struct txn_row *r)
{
    return r->role == TXN_ROLE_COORD &&
           (r->state == TXN_REFUNDING_RESTOCK || r->state == TXN_REFUNDING_WRITEOFF);
}

/* Tells every leg what it has not acknowledged: the commit (a refund can overtake the commit
 * of the payment's holds: a leg refunds only a committed hold), then the refund. */
static void send_refunds(struct store *s, uint32_t p, struct txn_row *r)
{
    ASSERT(refunding(r) && r->confirm);
    for (uint8_t i = 0; i < r->legs_count; i++) {
        uint32_t q = leg_partition(s, p, r, i);
        if (!(r->acked & LEG_BIT(i)))
            send_simple(s, TXN_MSG_DECIDE, p, q, r->txid, wire_leg(r, i), true);
        if (!(r->voted & LEG_BIT(i)))
            send_simple(s, TXN_MSG_REFUND, p, q, r->txid, wire_leg(r, i),
                        r->state == TXN_REFUNDING_RESTOCK);
    }
}

static void finish_refund_if_acked(struct txn_row *r, uint64_t index)
{
    uint64_t all = legs_all(r->legs_count);
    if (refunding(r) && r->acked == all && r->voted == all) {
        r->state = TXN_REFUNDED;
        r->done_index = index;
    }
}

/* The order of row r was refunded in p (ORDER_REFUND, restock or written off): each hold leg
 * does the same with its items. The coordinator's own items were done by the refund itself. */
static void start_refund(struct store *s, uint32_t p, struct txn_row *r, bool restock,
                         uint64_t index, int64_t now_ms)
{
    ASSERT(r->state == TXN_CONFIRMING || r->state == TXN_DONE);
    r->state = restock ? TXN_REFUNDING_RESTOCK : TXN_REFUNDING_WRITEOFF;
    r->voted = 0; /* from now on: the legs that acknowledged the refund */
    r->sent_ms = now_ms;
    send_refunds(s, p, r);
    finish_refund_if_acked(r, index);
}

/* The client's outcome is final: an error aborts every leg. */
static void abort_with(struct store *s, uint32_t p, struct txn_row *r, int32_t err, const char *msg,
                       size_t msg_len, uint64_t index, int64_t now_ms)
{
    set_outcome(r, err, msg, msg_len);
    tell_client(s, r);
    decide(s, p, r, false, index, now_ms);
}

/* Reads the order's state at p into buf: "RESERVED", "PAID", ...; "" when it is gone. */
static const char *order_state(const struct store *s, uint32_t p, const uint8_t *id, int64_t *total)
{
    struct engine_cmd c = {.type = ENGINE_ORDER_GET, .key = {id, TXN_ID_BYTES}};
    struct engine_reply rep;
    store_read(s, p, &c, &rep);
    const char *state = "";
    for (uint32_t i = 0; rep.kind == ENGINE_REPLY_FIELDS && i < rep.fields_count; i++) {
        if (strcmp(rep.fields[i].name, "state") == 0)
            state = rep.fields[i].str;
        else if (total && strcmp(rep.fields[i].name, "total_cents") == 0)
            *total = rep.fields[i].value;
    }
    return state;
}

/* The order `order` of p was refunded (restock or write off) by an ORDER_REFUND record or a
 * cross-partition refund: if it is a cross-partition order, its hold legs' items go too. */
static void refund_holds(struct store *s, uint32_t p, uint64_t index,
                         const struct engine_key *order, bool restock)
{
    if (order->len != TXN_ID_BYTES)
        return;
    struct txn_row *r = find(s, p, order->ptr, TXN_ROLE_COORD, 0);
    if (!r || r->kind != ENGINE_ORDER_PLACE || !r->confirm ||
        !(r->state == TXN_CONFIRMING || r->state == TXN_DONE))
        return; /* not a cross-partition order, not sold, or its refund already started */
    if (strcmp(order_state(s, p, r->txid, NULL), "REFUNDED") == 0)
        start_refund(s, p, r, restock, index, engine_now_ms(&s->engines[p]));
}

bool txn_paid_across(const struct store *s, uint32_t p, const struct engine_key *order,
                     struct engine_key *buyer, struct engine_key *merchant)
{
    const struct txn_table *t = table(s, p);
    if (t->used == 0 || order->len != TXN_ID_BYTES)
        return false;
    /* Only an order paid externally can have been paid by a transaction (the engine's reply
     * says which, so the rows are read only for those). */
    struct engine_cmd get = {.type = ENGINE_ORDER_GET, .key = *order};
    struct engine_reply rep;
    store_read(s, p, &get, &rep);
    bool external = false;
    for (uint32_t i = 0; rep.kind == ENGINE_REPLY_FIELDS && i < rep.fields_count; i++)
        if (strcmp(rep.fields[i].name, "paid_external") == 0)
            external = rep.fields[i].value == 1;
    if (!external)
        return false;
    /* A scan: refunds are rare next to the commands that make rows, and one index entry per
     * row is all the index holds. */
    for (uint32_t i = 0; i < t->count; i++) {
        const struct txn_row *r = &t->rows[i];
        if (r->role != TXN_ROLE_COORD || r->kind != ENGINE_ORDER_PAY || !r->confirm ||
            !(r->state == TXN_CONFIRMING || r->state == TXN_DONE))
            continue;
        struct engine_cmd c;
        if (engine_decode(r->cmd, r->cmd_len, &c) != 0 || c.key.len != order->len ||
            memcmp(c.key.ptr, order->ptr, order->len) != 0)
            continue;
        *buyer = c.key2;
        *merchant = c.key3;
        return true;
    }
    return false;
}

/* A placed order was paid (its holds are sold) or ended (its holds go back). */
static void watch_order(struct store *s, uint32_t p, struct txn_row *r, uint64_t index,
                        int64_t now_ms)
{
    ASSERT(r->state == TXN_PLACED);
    const char *st = order_state(s, p, r->txid, NULL);
    if (strcmp(st, "RESERVED") == 0)
        return;
    bool sold = strcmp(st, "PAID") == 0 || strcmp(st, "SHIPPED") == 0 ||
                strcmp(st, "COMPLETED") == 0 || strcmp(st, "REFUNDED") == 0;
    decide(s, p, r, sold, index, now_ms);
}

/* Every leg voted yes: the coordinator's own step decides (it is the last to prepare). */
static void all_voted(struct store *s, uint32_t p, struct txn_row *r, uint64_t index,
                      int64_t now_ms)
{
    struct engine_cmd c;
    int rc = engine_decode(r->cmd, r->cmd_len, &c);
    ASSERT(rc == 0);
    if (c.type == ENGINE_ACCOUNT_TRANSFER) {
        set_outcome(r, 0, NULL, 0);
        tell_client(s, r);
        decide(s, p, r, true, index, now_ms);
        return;
    }
    struct engine_cmd d = {.request_id = c.request_id, .key = c.key};
    if (c.type == ENGINE_ORDER_REFUND_XPAY) {
        /* The merchant's money is in escrow: the order is refunded here (its items, and the
         * buyer's per-user counts; no money moves in this engine), and the commit credits the
         * buyer. */
        d = c;
    } else if (c.type == ENGINE_ORDER_PLACE) {
        /* This partition's items are reserved now, with the client's request id, so a retry
         * that reaches the engine gets the same reply; the order's total includes the price
         * of the items held elsewhere. */
        d.type = ENGINE_ORDER_PLACE_PART;
        d.key2 = c.key2;
        d.num = c.num;
        d.num2 = r->cents;
        for (uint32_t i = 0; i < c.items_count; i++)
            if (store_partition(s, c.items[i].sku.ptr, c.items[i].sku.len) == p)
                d.items[d.items_count++] = c.items[i];
    } else {
        /* The buyer's money is in escrow: the order is paid with the transaction as its
         * reference, and the commit credits the merchant. */
        d.type = ENGINE_ORDER_PAY_EXTERNAL;
        d.key2 = (struct engine_key){r->txid, TXN_ID_BYTES};
    }
    struct engine_output *o = s->output;
    store_txn_engine(s, p, index, &d, o);
    if (o->reply.kind == ENGINE_REPLY_ERR) {
        abort_with(s, p, r, o->reply.err, o->reply.msg, o->reply.msg_len, index, now_ms);
        return;
    }
    set_outcome(r, 0, NULL, 0);
    tell_client(s, r);
    if (c.type == ENGINE_ORDER_PLACE) {
        r->state = TXN_PLACED;
        table(s, p)->placed++;
        return;
    }
    decide(s, p, r, true, index, now_ms);
    if (c.type == ENGINE_ORDER_REFUND_XPAY) {
        /* The refunded order may itself hold items in other partitions: they go back too. */
        refund_holds(s, p, index, &c.key, c.num == 1);
        return;
    }
    /* The paid order may itself hold items in other partitions: they are sold now. */
    struct txn_row *order = find(s, p, c.key.ptr, TXN_ROLE_COORD, 0);
    if (order && order->state == TXN_PLACED)
        watch_order(s, p, order, index, now_ms);
}

/* The legs a new payment needs, or an error outcome before any leg runs. */
static bool begin_pay(struct store *s, uint32_t p, struct txn_row *r, const struct engine_cmd *c)
{
    if (c->type == ENGINE_ACCOUNT_TRANSFER) {
        r->amount = c->num;
        return true;
    }
    int64_t total = 0;
    const char *st = c->key.len == TXN_ID_BYTES ? order_state(s, p, c->key.ptr, &total) : "";
    if (st[0] == '\0') {
        const char *m = sm_strerror(SM_E_NOTFOUND);
        set_outcome(r, SM_E_NOTFOUND, m, strlen(m));
        return false;
    }
    /* A payment needs the order reserved; its refund, paid (the engine's own refund checks). */
    if (strcmp(st, c->type == ENGINE_ORDER_REFUND_XPAY ? "PAID" : "RESERVED") != 0) {
        set_outcome(r, SM_E_STATE, st, strlen(st));
        return false;
    }
    if (total <= 0) {
        /* Nothing to move: pay it at once (no money leg can prepare an amount of 0). */
        r->amount = 0;
        return true;
    }
    r->amount = total;
    return true;
}

bool txn_restartable(const struct txn_row *r)
{
    return r->role == TXN_ROLE_COORD && r->state == TXN_DONE && r->err == SM_E_TRYAGAIN &&
           r->legs_count > 0 && ((uint32_t)r->peer + 2) * r->legs_count <= SM_TXN_LEGS_MAX;
}

/* A timed-out transaction whose abort every leg acknowledged begins its next attempt. */
static void restart(struct txn_row *r)
{
    ASSERT(txn_restartable(r));
    r->peer++;
    r->voted = 0;
    r->acked = 0;
    r->confirm = false;
    r->cents = 0;
    r->amount = 0;
    r->done_index = 0;
    set_outcome(r, 0, NULL, 0);
}

static int apply_begin(struct store *s, uint32_t p, uint64_t index, int64_t now_ms,
                       const uint8_t *rec, size_t len)
{
    struct engine_cmd c;
    if (engine_decode(rec, len, &c) != 0 ||
        !(c.type == ENGINE_ORDER_PLACE || c.type == ENGINE_ACCOUNT_TRANSFER ||
          c.type == ENGINE_ORDER_PAY || c.type == ENGINE_ORDER_REFUND_XPAY))
        return SM_E_CORRUPT;
    if (c.type == ENGINE_ORDER_PLACE && c.key.len != TXN_ID_BYTES)
        return SM_E_CORRUPT;
    uint8_t txid[TXN_ID_BYTES];
    txn_id_of(&c, p, txid);
    struct txn_row *r = find(s, p, txid, TXN_ROLE_COORD, 0);
    if (r == NULL) {
        r = row_new(s, p);
        if (!r || !row_set_cmd(r, rec, len))
            return 0; /* no row: the node answers -BUSY */
        memcpy(r->txid, txid, TXN_ID_BYTES);
        r->role = TXN_ROLE_COORD;
        row_index(s, p, r);
    } else if (txn_restartable(r) && r->cmd_len == len && memcmp(r->cmd, rec, len) == 0) {
        restart(r);
    } else {
        return 0; /* a retry logged in the same batch: it waits on the first */
    }
    r->state = TXN_PREPARING;
    r->kind = (uint8_t)c.type;
    r->waiter_id = index;
    r->started_ms = now_ms;
    r->sent_ms = now_ms;
    if (c.type == ENGINE_ORDER_PLACE) {
        uint32_t parts[SM_TXN_LEGS_MAX];
        r->legs_count = order_parts(s, p, &c, parts);
    } else {
        r->legs_count = 2;
        if (!begin_pay(s, p, r, &c)) {
            r->legs_count = 0; /* nothing was prepared anywhere */
            r->state = TXN_DONE;
            r->done_index = index;
            tell_client(s, r);
            return 0;
        }
        if (r->amount == 0)
            r->legs_count = 0;
    }
    if (r->legs_count == 0) {
        all_voted(s, p, r, index, now_ms);
        return 0;
    }
    for (uint8_t i = 0; i < r->legs_count; i++)
        send_prepare(s, p, r, i);
    return 0;
}

static void on_vote(struct store *s, uint32_t p, const struct txn_msg *m, uint64_t index,
                    int64_t now_ms)
{
    struct txn_row *r = find(s, p, m->txid, TXN_ROLE_COORD, 0);
    uint8_t i = 0;
    if (!r || r->state != TXN_PREPARING || !leg_of_wire(r, m->leg, &i) || (r->voted & LEG_BIT(i)))
        return; /* late, repeated or of an earlier attempt: the row has moved on */
    r->voted |= LEG_BIT(i);
    if (!m->yes) {
        abort_with(s, p, r, m->err, m->msg, m->msg_len, index, now_ms);
        return;
    }
    if (__builtin_add_overflow(r->cents, m->cents, &r->cents)) {
        const char *msg = sm_strerror(SM_E_OVERFLOW);
        abort_with(s, p, r, SM_E_OVERFLOW, msg, strlen(msg), index, now_ms);
        return;
    }
    if (r->voted == legs_all(r->legs_count))
        all_voted(s, p, r, index, now_ms);
}

static void on_ack(struct store *s, uint32_t p, const struct txn_msg *m, uint64_t index)
{
    struct txn_row *r = find(s, p, m->txid, TXN_ROLE_COORD, 0);
    uint8_t i = 0;
    if (!r || !leg_of_wire(r, m->leg, &i) ||
        !(r->state == TXN_CONFIRMING || r->state == TXN_RELEASING || refunding(r)))
        return;
    r->acked |= LEG_BIT(i);
    finish_if_acked(r, index);
    finish_refund_if_acked(r, index);
}

static void on_refund_ack(struct store *s, uint32_t p, const struct txn_msg *m, uint64_t index)
{
    struct txn_row *r = find(s, p, m->txid, TXN_ROLE_COORD, 0);
    uint8_t i = 0;
    if (!r || !leg_of_wire(r, m->leg, &i) || !refunding(r))
        return;
    r->voted |= LEG_BIT(i);
    finish_refund_if_acked(r, index);
}

static void on_query(struct store *s, uint32_t p, const struct txn_msg *m)
{
    const struct txn_row *r = find(s, p, m->txid, TXN_ROLE_COORD, 0);
    uint8_t i = 0;
    if (!r || !leg_of_wire(r, m->leg, &i)) {
        /* Presumed abort: a row is dropped only after every leg acknowledged, and a leg is
         * prepared only after the row was durable, so no row means nothing was committed. An
         * earlier attempt was aborted before the next one began. */
        send_simple(s, TXN_MSG_DECIDE, p, m->from, m->txid, m->leg, false);
        return;
    }
    if (r->state == TXN_PREPARING)
        send_prepare(s, p, (struct txn_row *)r, i); /* its vote was lost: vote again */
    else if (r->state != TXN_PREPARING && r->state != TXN_PLACED)
        send_simple(s, TXN_MSG_DECIDE, p, m->from, m->txid, m->leg, r->confirm);
}

/* ---- legs (participants) ------------------------------------------------------------------- */

static void send_vote(struct store *s, uint32_t q, const struct txn_row *r)
{
    struct txn_msg m = {.type = TXN_MSG_VOTE,
                        .from = q,
                        .to = r->peer,
                        .leg = r->leg,
                        .yes = (r->state == TXN_PREPARED || r->state == TXN_COMMITTED) &&
                               r->cents >= 0,
                        .err = r->err,
                        .cents = r->cents > 0 ? r->cents : 0,
                        .msg_len = r->msg_len};
    memcpy(m.txid, r->txid, TXN_ID_BYTES);
    memcpy(m.msg, r->msg, r->msg_len);
    store_txn_send(s, &m);
}

/* The price of the items a hold leg holds, from the SKUs of this partition. */
static int64_t hold_cents(const struct store *s, uint32_t q, const struct engine_cmd *c)
{
    int64_t sum = 0;
    for (uint32_t i = 0; i < c->items_count; i++) {
        struct engine_cmd get = {.type = ENGINE_SKU_GET, .key = c->items[i].sku};
        struct engine_reply rep;
        store_read(s, q, &get, &rep);
        int64_t price = 0, line;
        for (uint32_t f = 0; rep.kind == ENGINE_REPLY_FIELDS && f < rep.fields_count; f++)
            if (strcmp(rep.fields[f].name, "price_cents") == 0)
                price = rep.fields[f].value;
        if (__builtin_mul_overflow(price, c->items[i].quantity, &line) ||
            __builtin_add_overflow(sum, line, &sum))
            return -1;
    }
    return sum;
}

static void reply_err(struct engine_reply *out, int err, const char *msg)
{
    out->kind = ENGINE_REPLY_ERR;
    out->err = err;
    out->msg_len = strlen(msg);
    ASSERT(out->msg_len < sizeof out->msg);
    memcpy(out->msg, msg, out->msg_len);
}

/* Prepares a new leg row r from the PREPARE's engine record. */
static void prepare_leg(struct store *s, uint32_t q, struct txn_row *r, const struct engine_cmd *c,
                        uint64_t index)
{
    struct engine_output *o = s->output;
    if (c->type == ENGINE_ACCOUNT_DEPOSIT) {
        struct engine_cmd get = {.type = ENGINE_ACCOUNT_GET, .key = c->key};
        store_read(s, q, &get, &o->reply);
    } else if (is_hold_prepare(c->type) || c->type == ENGINE_ACCOUNT_WITHDRAW) {
        store_txn_engine(s, q, index, c, o);
        /* A replayed reply means this prepare ran before and its row was since reused: what it
         * did then is not known here, so vote no (the coordinator has long moved on). */
        if (o->reply.replayed)
            reply_err(&o->reply, SM_E_STATE, "ABORTED");
    } else {
        reply_err(&o->reply, SM_E_BADARG, "malformed record");
    }
    if (o->reply.kind == ENGINE_REPLY_ERR) {
        r->state = TXN_REFUSED;
        r->done_index = index;
        set_outcome(r, o->reply.err, o->reply.msg, o->reply.msg_len);
        return;
    }
    r->state = TXN_PREPARED;
    if (is_hold_prepare(c->type)) {
        r->cents = hold_cents(s, q, c);
        if (r->cents < 0) {
            /* Too expensive to add up: vote no; the hold is given back when the abort comes
             * (a step applies one engine record, and this one prepared). */
            const char *m = sm_strerror(SM_E_OVERFLOW);
            set_outcome(r, SM_E_OVERFLOW, m, strlen(m));
        }
    }
}

static void on_prepare(struct store *s, uint32_t q, const struct txn_msg *m, uint64_t index,
                       int64_t now_ms)
{
    struct txn_row *r = find(s, q, m->txid, TXN_ROLE_PART, m->leg);
    if (r) {
        send_vote(s, q, r); /* a repeat (resent after a restart or a lost vote) */
        return;
    }
    struct engine_cmd c;
    r = row_new(s, q);
    if (!r || engine_decode(m->cmd, m->cmd_len, &c) != 0 || !row_set_cmd(r, m->cmd, m->cmd_len)) {
        struct txn_row refused = {.peer = m->from, .leg = m->leg, .state = TXN_REFUSED};
        memcpy(refused.txid, m->txid, TXN_ID_BYTES);
        const char *msg = "too many cross-partition transactions in flight";
        set_outcome(&refused, SM_E_BUSY, msg, strlen(msg));
        send_vote(s, q, &refused);
        return;
    }
    memcpy(r->txid, m->txid, TXN_ID_BYTES);
    r->role = TXN_ROLE_PART;
    r->kind = (uint8_t)c.type;
    r->leg = m->leg;
    row_index(s, q, r);
    r->peer = m->from;
    r->started_ms = now_ms;
    r->sent_ms = now_ms;
    r->query_at_ms = now_ms + m->query_after_ms;
    prepare_leg(s, q, r, &c, index);
    send_vote(s, q, r);
}

/* Commits or aborts a prepared leg with the one engine record this step may apply. */
static void decide_leg(struct store *s, uint32_t q, struct txn_row *r, bool commit, uint64_t index)
{
    struct engine_cmd c;
    int rc = engine_decode(r->cmd, r->cmd_len, &c);
    ASSERT(rc == 0);
    struct engine_cmd d = {.key = c.key, .num = c.num};
    char rid[TXN_RID_BYTES];
    leg_rid(r->txid, r->leg, commit ? 'c' : 'a', rid, &d.request_id);
    if (is_hold_prepare(c.type))
        d.type = commit ? ENGINE_HOLD_COMMIT : ENGINE_HOLD_ABORT;
    else if (c.type == ENGINE_ACCOUNT_WITHDRAW && !commit)
        d.type = ENGINE_ACCOUNT_DEPOSIT; /* the escrow goes back */
    else if (c.type == ENGINE_ACCOUNT_DEPOSIT && commit)
        d.type = ENGINE_ACCOUNT_DEPOSIT; /* the payee is credited */
    if (d.type != 0)
        store_txn_engine(s, q, index, &d, s->output);
    r->state = commit ? TXN_COMMITTED : TXN_ABORTED;
    r->done_index = index;
}

static void on_decide(struct store *s, uint32_t q, const struct txn_msg *m, uint64_t index)
{
    struct txn_row *r = find(s, q, m->txid, TXN_ROLE_PART, m->leg);
    if (r && r->state == TXN_PREPARED) {
        decide_leg(s, q, r, m->yes, index);
    } else if (r && r->state == TXN_REFUSED && !m->yes) {
        r->state = TXN_ABORTED;
        r->done_index = index;
    } else if (!r && !m->yes) {
        /* An abort before the prepare (a message overtaken, or a coordinator that gave up):
         * remember it, so that a late prepare votes no instead of holding. */
        r = row_new(s, q);
        if (r) {
            memcpy(r->txid, m->txid, TXN_ID_BYTES);
            r->role = TXN_ROLE_PART;
            r->leg = m->leg;
            row_index(s, q, r);
            r->peer = m->from;
            r->state = TXN_ABORTED;
            r->done_index = index;
            const char *msg = "ABORTED";
            set_outcome(r, SM_E_STATE, msg, strlen(msg));
        }
    }
    send_simple(s, TXN_MSG_ACK, q, m->from, m->txid, m->leg, true);
}

/* A refund of the order this hold leg belongs to: the committed hold's items leave sold
 * (HOLD_REFUND, idempotent in the engine), then the coordinator is told. A leg still prepared
 * waits for the commit that the coordinator sends with the refund. */
static void on_refund(struct store *s, uint32_t q, const struct txn_msg *m, uint64_t index)
{
    struct txn_row *r = find(s, q, m->txid, TXN_ROLE_PART, m->leg);
    if (r && (r->state == TXN_PREPARED || !is_hold_prepare(r->kind)))
        return;
    if (!r || r->state == TXN_COMMITTED) {
        /* No row (reused long after it was final): the hold itself says whether it was
         * refunded already; the engine answers NOTFOUND once it is forgotten too. */
        struct engine_cmd d = {
            .type = ENGINE_HOLD_REFUND, .key = {m->txid, TXN_ID_BYTES}, .num = m->yes ? 1 : 0};
        char rid[TXN_RID_BYTES];
        leg_rid(m->txid, m->leg, 'r', rid, &d.request_id);
        store_txn_engine(s, q, index, &d, s->output);
        if (r) {
            r->state = TXN_LEG_REFUNDED;
            r->done_index = index;
        }
    }
    send_simple(s, TXN_MSG_REFUND_ACK, q, m->from, m->txid, m->leg, true);
}

/* ---- records, ticks, recovery -------------------------------------------------------------- */

int txn_apply(struct store *s, uint32_t p, uint64_t index, int64_t now_ms, const uint8_t *rec,
              size_t len)
{
    if (len < 1)
        return SM_E_CORRUPT;
    if (rec[0] == 1)
        return apply_begin(s, p, index, now_ms, rec + 1, len - 1);
    struct txn_msg m;
    if (rec[0] != 2 || txn_msg_decode(rec + 1, len - 1, &m) != 0 || m.to != p ||
        m.from >= s->partitions)
        return SM_E_CORRUPT;
    switch (m.type) {
    case TXN_MSG_PREPARE:
        on_prepare(s, p, &m, index, now_ms);
        break;
    case TXN_MSG_VOTE:
        on_vote(s, p, &m, index, now_ms);
        break;
    case TXN_MSG_DECIDE:
        on_decide(s, p, &m, index);
        break;
    case TXN_MSG_ACK:
        on_ack(s, p, &m, index);
        break;
    case TXN_MSG_QUERY:
        on_query(s, p, &m);
        break;
    case TXN_MSG_REFUND:
        on_refund(s, p, &m, index);
        break;
    case TXN_MSG_REFUND_ACK:
        on_refund_ack(s, p, &m, index);
        break;
    default:
        return SM_E_CORRUPT;
    }
    return 0;
}

/* After an ORDER_REFUND record: a refunded order with holds in other partitions refunds them. */
static void after_refund(struct store *s, uint32_t p, uint64_t index, const uint8_t *rec,
                         size_t len)
{
    struct engine_cmd c;
    if (table(s, p)->used == 0 || engine_decode(rec, len, &c) != 0)
        return;
    refund_holds(s, p, index, &c.key, c.num == 1);
}

void txn_after_engine(struct store *s, uint32_t p, uint64_t index, const uint8_t *rec, size_t len)
{
    if (len < 1)
        return;
    if (rec[0] == ENGINE_ORDER_REFUND) {
        after_refund(s, p, index, rec, len);
        return;
    }
    if (table(s, p)->placed == 0)
        return;
    uint8_t type = rec[0];
    if (type != ENGINE_ORDER_PAY && type != ENGINE_ORDER_PAY_EXTERNAL &&
        type != ENGINE_ORDER_CANCEL)
        return;
    struct engine_cmd c;
    if (engine_decode(rec, len, &c) != 0 || c.key.len != TXN_ID_BYTES)
        return;
    struct txn_row *r = find(s, p, c.key.ptr, TXN_ROLE_COORD, 0);
    if (r && r->state == TXN_PLACED)
        watch_order(s, p, r, index, engine_now_ms(&s->engines[p]));
}

/* Sends again what a row still waits for, at most every SM_TXN_RESEND_MS (always when force). */
static void resend(struct store *s, uint32_t p, struct txn_row *r, int64_t now_ms, bool force)
{
    if (!force && now_ms - r->sent_ms < SM_TXN_RESEND_MS)
        return;
    if (r->role == TXN_ROLE_COORD && r->state == TXN_PREPARING) {
        for (uint8_t i = 0; i < r->legs_count; i++)
            if (!(r->voted & LEG_BIT(i)))
                send_prepare(s, p, r, i);
    } else if (r->role == TXN_ROLE_COORD &&
               (r->state == TXN_CONFIRMING || r->state == TXN_RELEASING)) {
        send_decisions(s, p, r);
    } else if (refunding(r)) {
        send_refunds(s, p, r);
    } else if (r->role == TXN_ROLE_PART && r->state == TXN_PREPARED &&
               (force || now_ms >= r->query_at_ms)) {
        /* After a restart a leg asks at once: the decision may have been sent to the process
         * that died. Otherwise only once the decision is late. */
        send_simple(s, TXN_MSG_QUERY, p, r->peer, r->txid, r->leg, true);
    } else {
        return;
    }
    r->sent_ms = now_ms;
}

void txn_tick(struct store *s, uint64_t index, int64_t now_ms)
{
    for (uint32_t p = 0; p < s->partitions; p++) {
        struct txn_table *t = table(s, p);
        for (uint32_t i = 0; i < t->count; i++) {
            struct txn_row *r = &t->rows[i];
            if (r->role == TXN_ROLE_COORD && r->state == TXN_PREPARING &&
                now_ms - r->started_ms > SM_TXN_PREPARE_TIMEOUT_MS) {
                const char *msg = "cross-partition transaction timed out";
                abort_with(s, p, r, SM_E_TRYAGAIN, msg, strlen(msg), index, now_ms);
            } else if (r->role == TXN_ROLE_COORD && r->state == TXN_PLACED) {
                watch_order(s, p, r, index, now_ms);
            } else if (r->role != TXN_ROLE_FREE && !s->replaying) {
                resend(s, p, r, now_ms, false);
            }
        }
    }
}

void txn_recover(struct store *s)
{
    for (uint32_t p = 0; p < s->partitions; p++) {
        struct txn_table *t = table(s, p);
        for (uint32_t i = 0; i < t->count; i++)
            if (t->rows[i].role != TXN_ROLE_FREE)
                resend(s, p, &t->rows[i], s->now_ms, true);
    }
}

/* ---- snapshots ----------------------------------------------------------------------------- */

/*
 * Rows section: per partition: count u32, then per row: txid (21) | role | state | kind | leg |
 * legs_count | confirm (u8 each) | peer u32 | voted u64 | acked u64 | waiter_id u64 |
 * done_index u64 | started_ms i64 | query_at_ms i64 | cents i64 | amount i64 | err u32 |
 * message str8 | record str32.
 */
int txn_save(const struct store *s, struct sm_wbuf *w)
{
    for (uint32_t p = 0; p < s->partitions; p++) {
        const struct txn_table *t = table(s, p);
        uint32_t n = 0;
        for (uint32_t i = 0; i < t->count; i++)
            n += t->rows[i].role != TXN_ROLE_FREE;
        sm_wbuf_u32(w, n);
        for (uint32_t i = 0; i < t->count; i++) {
            const struct txn_row *r = &t->rows[i];
            if (r->role == TXN_ROLE_FREE)
                continue;
            sm_wbuf_put(w, r->txid, TXN_ID_BYTES);
            const uint8_t small[6] = {r->role, r->state,      r->kind,
                                      r->leg,  r->legs_count, r->confirm};
            sm_wbuf_put(w, small, sizeof small);
            sm_wbuf_u32(w, r->peer);
            sm_wbuf_u64(w, r->voted);
            sm_wbuf_u64(w, r->acked);
            sm_wbuf_u64(w, r->waiter_id);
            sm_wbuf_u64(w, r->done_index);
            sm_wbuf_i64(w, r->started_ms);
            sm_wbuf_i64(w, r->query_at_ms);
            sm_wbuf_i64(w, r->cents);
            sm_wbuf_i64(w, r->amount);
            sm_wbuf_u32(w, (uint32_t)r->err);
            sm_wbuf_str8(w, r->msg, r->msg_len);
            sm_wbuf_str32(w, r->cmd, r->cmd_len);
        }
    }
    return w->failed ? SM_E_NOMEM : 0;
}

static bool row_valid(const struct txn_row *r)
{
    bool coord = r->role == TXN_ROLE_COORD &&
                 ((r->state >= TXN_PREPARING && r->state <= TXN_DONE) ||
                  (r->state >= TXN_REFUNDING_RESTOCK && r->state <= TXN_REFUNDED));
    bool part =
        r->role == TXN_ROLE_PART &&
        ((r->state >= TXN_PREPARED && r->state <= TXN_ABORTED) || r->state == TXN_LEG_REFUNDED);
    return (coord || part) && r->legs_count <= SM_TXN_LEGS_MAX && r->leg < SM_TXN_LEGS_MAX &&
           r->peer < SM_PARTITIONS_MAX &&
           (r->cmd_len > 0 || r->state == TXN_ABORTED || r->state == TXN_REFUSED);
}

static int load_row(struct sm_rbuf *rb, struct txn_row *r)
{
    const uint8_t *id = sm_rbuf_take(rb, TXN_ID_BYTES);
    const uint8_t *small = sm_rbuf_take(rb, 6);
    if (!id || !small)
        return SM_E_CORRUPT;
    memcpy(r->txid, id, TXN_ID_BYTES);
    r->role = small[0];
    r->state = small[1];
    r->kind = small[2];
    r->leg = small[3];
    r->legs_count = small[4];
    r->confirm = small[5] == 1;
    r->peer = sm_rbuf_u32(rb);
    r->voted = sm_rbuf_u64(rb);
    r->acked = sm_rbuf_u64(rb);
    r->waiter_id = sm_rbuf_u64(rb);
    r->done_index = sm_rbuf_u64(rb);
    r->started_ms = sm_rbuf_i64(rb);
    r->query_at_ms = sm_rbuf_i64(rb);
    r->cents = sm_rbuf_i64(rb);
    r->amount = sm_rbuf_i64(rb);
    r->err = (int32_t)sm_rbuf_u32(rb);
    size_t n = 0;
    const uint8_t *msg = sm_rbuf_str8(rb, &n);
    if (n > SM_ENGINE_MESSAGE_BYTES_MAX)
        return SM_E_CORRUPT;
    if (msg)
        memcpy(r->msg, msg, n);
    r->msg_len = (uint8_t)n;
    size_t cmd_len = 0;
    const uint8_t *cmd = sm_rbuf_str32(rb, &cmd_len);
    struct engine_cmd c;
    if (!sm_rbuf_ok(rb) || small[5] > 1 || cmd_len > SM_ENGINE_RECORD_BYTES_MAX ||
        (cmd_len > 0 && engine_decode(cmd, cmd_len, &c) != 0))
        return SM_E_CORRUPT;
    if (cmd_len > 0 && !row_set_cmd(r, cmd, cmd_len))
        return SM_E_NOMEM;
    return row_valid(r) ? 0 : SM_E_CORRUPT;
}

int txn_load(struct store *s, const uint8_t *data, size_t len)
{
    txn_free(s);
    struct sm_rbuf rb;
    sm_rbuf_init(&rb, data, len);
    for (uint32_t p = 0; p < s->partitions; p++) {
        uint32_t n = sm_rbuf_u32(&rb);
        if (!sm_rbuf_ok(&rb) || n > SM_TXN_ROWS_MAX)
            return SM_E_CORRUPT;
        for (uint32_t i = 0; i < n; i++) {
            struct txn_row *r = row_new(s, p);
            if (!r)
                return SM_E_NOMEM;
            int rc = load_row(&rb, r);
            if (rc == 0 && find(s, p, r->txid, r->role, r->leg) != NULL)
                rc = SM_E_CORRUPT; /* a row twice */
            if (rc != 0) {
                row_clear(r);
                return rc;
            }
            row_index(s, p, r);
            table(s, p)->placed += r->role == TXN_ROLE_COORD && r->state == TXN_PLACED;
        }
    }
    return sm_rbuf_ok(&rb) && sm_rbuf_left(&rb) == 0 ? 0 : SM_E_CORRUPT;
}

void txn_free(struct store *s)
{
    if (!s->txns)
        return;
    for (uint32_t p = 0; p < s->partitions; p++) {
        struct txn_table *t = &s->txns[p];
        for (uint32_t i = 0; i < t->count; i++)
            free(t->rows[i].cmd);
        free(t->rows);
        if (t->index_ready)
            sm_index_free(&t->index);
        memset(t, 0, sizeof *t);
    }
}
