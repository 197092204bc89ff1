/*
 * The engine's front: start-up (every table allocated once), engine_apply (decode, idempotency,
 * dispatch, reply), engine_read, and rendering of stored results into replies.
 *
 * Idempotency: every mutation but TICK carries a request id. The engine remembers the last
 * cfg.request_ids_max request ids in a FIFO ring, each with the XXH3-64 of its arguments and its
 * compact result (struct engine_result, 24 bytes). A replay with the same arguments gets the
 * first reply again, rendered from that result, and changes nothing; with other arguments it
 * gets -IDEMPOTENCY. An id is forgotten when request_ids_max newer mutations have been applied,
 * so memory is bounded by the ring and a client must not retry later than that. Two replies are
 * not remembered: BADARG (a pure function of the arguments, so a retry gets it again anyway) and
 * BUSY (a full table is transient; the retry should get a chance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#define XXH_INLINE_ALL /* the short keys of the hot path hash faster inlined */
#include <xxhash.h>

#include "engine/engine_internal.h"

/* A record decoded and hashed ahead of its turn. Everything here is a function of the record's
 * bytes alone, never of the state, so preparing record i+1 before applying record i is safe:
 * the state-dependent lookups all happen when the record is applied, in log order. */
struct engine_prepared {
    int rc; /* engine_decode's result, or SM_E_BADARG for arguments out of range */
    struct engine_digest request;
    uint64_t args_hash; /* XXH3-64 of the record past the request id, seeded with the type */
    struct engine_hashes keys;
    uint64_t session_hash, name_hash; /* lock records: locks_key_hash of key and key2 */
    struct engine_cmd cmd;
};

/* engine_apply_batch works in groups of APPLY_GROUP records. A group is decoded and hashed, then
 * the index cells its records will probe are fetched in one burst, a whole group ahead of the
 * group being applied. Fetched back to back, the misses (and on this VM the page walks in front
 * of them) overlap with each other; interleaved with the work of each record, one at a time,
 * they followed each other (measured in docs/engine.md). Each prepared record takes ~1.7 KB, so
 * the two groups in flight live in a buffer allocated by engine_init, not on the stack. */
#ifndef APPLY_GROUP
#define APPLY_GROUP 16
#endif

static bool config_valid(const struct engine_config *c)
{
    const uint32_t caps[] = {c->skus_max,       c->orders_max,     c->holds_max,
                             c->accounts_max,   c->limit_rows_max, c->item_chunks_max,
                             c->request_ids_max};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (caps[i] == 0 || caps[i] > SM_ENGINE_ROWS_MAX)
            return false;
    if ((uint64_t)c->orders_max + c->holds_max > SM_ENGINE_ROWS_MAX)
        return false;
    return c->order_retention_ms >= 0 && c->order_retention_ms <= SM_ENGINE_TTL_MS_MAX &&
           c->hold_retention_ms >= 0 && c->hold_retention_ms <= SM_ENGINE_TTL_MS_MAX;
}

size_t engine_memory_bytes(const struct engine_config *c)
{
    const uint32_t ix[] = {c->skus_max,  c->accounts_max,   c->orders_max,
                           c->holds_max, c->limit_rows_max, c->request_ids_max};
    size_t total = 0;
    for (size_t i = 0; i < sizeof ix / sizeof ix[0]; i++)
        total += sm_index_bytes(ix[i]);
    total += (size_t)c->skus_max * sizeof(struct engine_sku);
    total += (size_t)c->accounts_max * sizeof(struct engine_account);
    total += (size_t)c->orders_max * (sizeof(struct engine_order) + sizeof(uint32_t));
    total += (size_t)c->holds_max * (sizeof(struct engine_hold) + sizeof(uint32_t));
    total += (size_t)c->limit_rows_max * (sizeof(struct engine_limit) + sizeof(uint32_t));
    total += (size_t)c->item_chunks_max * (sizeof(struct engine_chunk) + sizeof(uint32_t));
    total += ((size_t)c->orders_max + c->holds_max) * sizeof(struct engine_timer);
    total += (size_t)c->request_ids_max * sizeof(struct engine_request);
    total += (size_t)c->locks.waiters_max * sizeof(struct locks_event);
    total += 2 * APPLY_GROUP * sizeof(struct engine_prepared);
    return total; /* plus the lock service's own tables, sized by c->locks */
}

static void reset_tables(struct engine *e);

/* Large tables are probed at random (hash indexes) or grow through memory (orders, request ids);
 * with 4 KiB pages nearly every access is a TLB miss, which under virtualization costs several
 * memory reads. Asking for transparent huge pages on them is a hint, taken once at start-up;
 * when the kernel declines, everything still works. */
#define HUGE_PAGE_BYTES (2u << 20)

static void hint_huge(void *p, size_t bytes)
{
    if (p == NULL)
        return;
    size_t skip = (HUGE_PAGE_BYTES - (uintptr_t)p % HUGE_PAGE_BYTES) % HUGE_PAGE_BYTES;
    if (bytes <= skip + HUGE_PAGE_BYTES)
        return;
    size_t len = (bytes - skip) / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES;
    (void)madvise((char *)p + skip, len, MADV_HUGEPAGE);
}

/* Zeroed; with cfg.prefault also hinted and touched now, so the page faults of a table happen
 * at start-up, not on the command that first reaches a page. */
static void *table_alloc(size_t n, size_t size, bool prefault)
{
    void *p = calloc(n, size);
    if (p != NULL && prefault) {
        hint_huge(p, n * size);
        memset(p, 0, n * size);
    }
    return p;
}

static void hint_index(struct sm_index *ix, bool prefault)
{
    if (!prefault)
        return;
    sm_index_presize(ix);
    size_t cells = (size_t)ix->mask + 1;
    hint_huge(ix->cells, cells * sizeof *ix->cells);
    memset(ix->cells, 0, cells * sizeof *ix->cells);
}

int engine_init(struct engine *e, const struct engine_config *cfg)
{
    memset(e, 0, sizeof *e);
    if (!config_valid(cfg))
        return SM_E_BADARG;
    e->cfg = *cfg;
    e->skus = table_alloc(cfg->skus_max, sizeof *e->skus, cfg->prefault);
    e->accounts = table_alloc(cfg->accounts_max, sizeof *e->accounts, cfg->prefault);
    e->orders = table_alloc(cfg->orders_max, sizeof *e->orders, cfg->prefault);
    e->holds = table_alloc(cfg->holds_max, sizeof *e->holds, cfg->prefault);
    e->limits = table_alloc(cfg->limit_rows_max, sizeof *e->limits, cfg->prefault);
    e->chunks = table_alloc(cfg->item_chunks_max, sizeof *e->chunks, cfg->prefault);
    e->timers =
        table_alloc((size_t)cfg->orders_max + cfg->holds_max, sizeof *e->timers, cfg->prefault);
    e->requests = table_alloc(cfg->request_ids_max, sizeof *e->requests, cfg->prefault);
    e->prepared = calloc(2 * APPLY_GROUP, sizeof *e->prepared);
    int rc = 0;
    if (!e->skus || !e->accounts || !e->orders || !e->holds || !e->limits || !e->chunks ||
        !e->timers || !e->requests || !e->prepared)
        rc = SM_E_NOMEM;
    if (rc == 0)
        rc = sm_index_init(&e->sku_index, cfg->skus_max);
    if (rc == 0)
        rc = sm_index_init(&e->account_index, cfg->accounts_max);
    if (rc == 0)
        rc = sm_index_init(&e->order_index, cfg->orders_max);
    if (rc == 0)
        rc = sm_index_init(&e->hold_index, cfg->holds_max);
    if (rc == 0)
        rc = sm_index_init(&e->limit_index, cfg->limit_rows_max);
    if (rc == 0)
        rc = sm_index_init(&e->request_index, cfg->request_ids_max);
    if (rc == 0)
        rc = engine_slots_init(&e->order_slots, cfg->orders_max);
    if (rc == 0)
        rc = engine_slots_init(&e->hold_slots, cfg->holds_max);
    if (rc == 0)
        rc = engine_slots_init(&e->limit_slots, cfg->limit_rows_max);
    if (rc == 0)
        rc = engine_slots_init(&e->chunk_slots, cfg->item_chunks_max);
    if (rc == 0)
        rc = locks_init(&e->locks, &cfg->locks);
    if (rc == 0) {
        e->locks_ready = true;
        e->lock_events.cap = cfg->locks.waiters_max;
        e->lock_events.items = calloc(cfg->locks.waiters_max, sizeof *e->lock_events.items);
        if (e->lock_events.items == NULL)
            rc = SM_E_NOMEM;
    }
    if (rc != 0) {
        engine_free(e);
        return rc;
    }
    hint_index(&e->sku_index, cfg->prefault);
    hint_index(&e->account_index, cfg->prefault);
    hint_index(&e->order_index, cfg->prefault);
    hint_index(&e->hold_index, cfg->prefault);
    hint_index(&e->limit_index, cfg->prefault);
    hint_index(&e->request_index, cfg->prefault);
    reset_tables(e);
    return 0;
}

void engine_free(struct engine *e)
{
    free(e->skus);
    free(e->accounts);
    free(e->orders);
    free(e->holds);
    free(e->limits);
    free(e->chunks);
    free(e->timers);
    free(e->requests);
    free(e->prepared);
    sm_index_free(&e->sku_index);
    sm_index_free(&e->account_index);
    sm_index_free(&e->order_index);
    sm_index_free(&e->hold_index);
    sm_index_free(&e->limit_index);
    sm_index_free(&e->request_index);
    engine_slots_free(&e->order_slots);
    engine_slots_free(&e->hold_slots);
    engine_slots_free(&e->limit_slots);
    engine_slots_free(&e->chunk_slots);
    if (e->locks_ready)
        locks_free(&e->locks);
    free(e->lock_events.items);
    memset(e, 0, sizeof *e);
}

static void reset_tables(struct engine *e)
{
    e->last_index = 0;
    e->now_ms = 0;
    e->deposits_total_cents = 0;
    e->withdrawals_total_cents = 0;
    e->skus_count = 0;
    e->accounts_count = 0;
    e->timers_count = 0;
    e->requests_head = 0;
    e->requests_count = 0;
    /* Rows past the high-water marks are never read, so only the used prefix is cleared. */
    memset(e->orders, 0, (size_t)e->order_slots.high_water * sizeof *e->orders);
    memset(e->holds, 0, (size_t)e->hold_slots.high_water * sizeof *e->holds);
    memset(e->limits, 0, (size_t)e->limit_slots.high_water * sizeof *e->limits);
    sm_index_clear(&e->sku_index);
    sm_index_clear(&e->account_index);
    sm_index_clear(&e->order_index);
    sm_index_clear(&e->hold_index);
    sm_index_clear(&e->limit_index);
    sm_index_clear(&e->request_index);
    engine_slots_reset(&e->order_slots);
    engine_slots_reset(&e->hold_slots);
    engine_slots_reset(&e->limit_slots);
    engine_slots_reset(&e->chunk_slots);
}

int engine_reset(struct engine *e)
{
    reset_tables(e);
    /* In place, not free + init: a snapshot load resets 256 engines at a node's start, and a
     * fresh init cost each of them new mappings and their page faults. */
    if (!e->locks_ready) {
        int rc = locks_init(&e->locks, &e->cfg.locks);
        if (rc != 0)
            return rc;
        e->locks_ready = true;
        return 0;
    }
    locks_reset(&e->locks);
    return 0;
}

uint64_t engine_last_index(const struct engine *e)
{
    return e->last_index;
}

int64_t engine_now_ms(const struct engine *e)
{
    return e->now_ms;
}

/* ---- arguments ------------------------------------------------------------------------------ */

static bool key_same(const struct engine_key *a, const struct engine_key *b)
{
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

bool engine_args_valid(const struct engine_cmd *c)
{
    switch (c->type) {
    case ENGINE_SKU_CREATE:
        return c->num >= 0 && c->num2 >= 0 && c->num3 >= 0;
    case ENGINE_SKU_RESTOCK:
    case ENGINE_SKU_ADJUST:
    case ENGINE_ACCOUNT_DEPOSIT:
    case ENGINE_ACCOUNT_WITHDRAW:
        return c->num > 0;
    case ENGINE_ORDER_PLACE:
    case ENGINE_HOLD_PREPARE:
    case ENGINE_HOLD_PREPARE_USER:
        return c->num >= 1 && c->num <= SM_ENGINE_TTL_MS_MAX;
    case ENGINE_ORDER_PLACE_PART:
        return c->num >= 1 && c->num <= SM_ENGINE_TTL_MS_MAX && c->num2 >= 0;
    case ENGINE_ORDER_PAY:
        return !key_same(&c->key2, &c->key3);
    case ENGINE_ORDER_REFUND_XPAY:
        return !key_same(&c->key2, &c->key3) && (c->num == 0 || c->num == 1);
    case ENGINE_ORDER_REFUND:
    case ENGINE_HOLD_REFUND:
        return c->num == 0 || c->num == 1;
    case ENGINE_ACCOUNT_OPEN:
        return c->num >= 0;
    case ENGINE_ACCOUNT_TRANSFER:
        return c->num > 0 && !key_same(&c->key, &c->key2);
    default:
        return true;
    }
}

/* ---- replies -------------------------------------------------------------------------------- */

static const char *const order_state_names[ORDER_STATE_COUNT] = {
    "FREE", "RESERVED", "PAID", "SHIPPED", "COMPLETED", "CANCELLED", "EXPIRED", "REFUNDED"};
static const char *const hold_state_names[HOLD_STATE_COUNT] = {"FREE", "PREPARED", "COMMITTED",
                                                               "ABORTED", "REFUNDED"};

const char *engine_order_state_name(int state)
{
    ASSERT(state >= 0 && state < ORDER_STATE_COUNT);
    return order_state_names[state];
}

static const char *state_message(uint32_t aux)
{
    if (aux == STATE_MSG_LOCK_KIND)
        return "the name is a lock of another kind";
    if (aux >= STATE_MSG_HOLD && aux < STATE_MSG_HOLD + HOLD_STATE_COUNT)
        return hold_state_names[aux - STATE_MSG_HOLD];
    ASSERT(aux < ORDER_STATE_COUNT);
    return order_state_names[aux];
}

void engine_reply_err(struct engine_reply *out, int err, const char *msg)
{
    out->kind = ENGINE_REPLY_ERR;
    out->err = err;
    size_t n = strlen(msg);
    ASSERT(n < sizeof out->msg);
    memcpy(out->msg, msg, n + 1);
    out->msg_len = n;
}

void engine_render(const struct engine *e, const struct engine_result *result,
                   struct engine_reply *out)
{
    const struct engine_result r = *result;
    out->kind = (enum engine_reply_kind)r.kind;
    out->value = r.value;
    out->err = 0;
    out->msg_len = 0;
    out->fields_count = 0;
    if (r.kind == ENGINE_RESULT_GRANT) {
        engine_render_grant(result, out);
        return;
    }
    if (r.kind != ENGINE_REPLY_ERR)
        return;
    if ((r.err == SM_E_SOLDOUT || r.err == SM_E_LIMIT) && r.aux != ENGINE_NONE) {
        ASSERT(r.aux < e->skus_count);
        const struct engine_sku *s = &e->skus[r.aux];
        out->kind = ENGINE_REPLY_ERR;
        out->err = r.err;
        memcpy(out->msg, s->name, s->name_len);
        out->msg[s->name_len] = '\0';
        out->msg_len = s->name_len;
    } else if (r.err == SM_E_STATE) {
        engine_reply_err(out, r.err, state_message(r.aux));
    } else {
        engine_reply_err(out, r.err, sm_strerror(r.err));
    }
}

/* ---- idempotency ---------------------------------------------------------------------------- */

struct request_ctx {
    const struct engine *e;
    struct engine_digest id;
};

static bool request_eq(const void *ctx, uint32_t slot)
{
    const struct request_ctx *c = ctx;
    return engine_digest_eq(c->e->requests[slot].id, c->id);
}

uint32_t engine_request_find(const struct engine *e, struct engine_digest id)
{
    struct request_ctx c = {.e = e, .id = id};
    return sm_index_find(&e->request_index, id.lo, request_eq, &c);
}

static void request_remember(struct engine *e, const struct engine_request *r)
{
    uint32_t cap = e->cfg.request_ids_max;
    ASSERT(e->requests_head < cap && e->requests_count <= cap);
    if (e->requests_count == cap) {
        uint32_t old = e->requests_head;
        sm_index_remove(&e->request_index, e->requests[old].id.lo, old);
        e->requests_head = old + 1 == cap ? 0 : old + 1;
        e->requests_count--;
    }
    /* head + count < 2 * cap, so one subtraction wraps it (a division cost more than the rest of
     * this function). */
    uint64_t at = (uint64_t)e->requests_head + e->requests_count;
    uint32_t slot = (uint32_t)(at >= cap ? at - cap : at);
    e->requests[slot] = *r;
    int rc = sm_index_insert(&e->request_index, r->id.lo, slot);
    ASSERT(rc == 0); /* the ring never holds more than the index's capacity */
    e->requests_count++;
}

static struct engine_result dispatch(struct engine *e, const struct engine_cmd *cmd)
{
    switch (cmd->type) {
    case ENGINE_SKU_CREATE:
    case ENGINE_SKU_RESTOCK:
    case ENGINE_SKU_ADJUST:
        return engine_sku_cmd(e, cmd);
    case ENGINE_ORDER_PLACE:
    case ENGINE_ORDER_PLACE_PART:
    case ENGINE_ORDER_PAY:
    case ENGINE_ORDER_PAY_EXTERNAL:
    case ENGINE_ORDER_CANCEL:
    case ENGINE_ORDER_SHIP:
    case ENGINE_ORDER_COMPLETE:
    case ENGINE_ORDER_REFUND:
    case ENGINE_ORDER_REFUND_XPAY:
        return engine_order_cmd(e, cmd);
    case ENGINE_HOLD_PREPARE:
    case ENGINE_HOLD_PREPARE_USER:
    case ENGINE_HOLD_REFUND:
    case ENGINE_HOLD_COMMIT:
    case ENGINE_HOLD_ABORT:
        return engine_hold_cmd(e, cmd);
    case ENGINE_ACCOUNT_OPEN:
    case ENGINE_ACCOUNT_DEPOSIT:
    case ENGINE_ACCOUNT_WITHDRAW:
    case ENGINE_ACCOUNT_TRANSFER:
        return engine_account_cmd(e, cmd);
    case ENGINE_LOCK_SESSION_OPEN:
    case ENGINE_LOCK_HEARTBEAT:
    case ENGINE_LOCK_SESSION_CLOSE:
    case ENGINE_LOCK_ACQUIRE:
    case ENGINE_LOCK_RELEASE:
    case ENGINE_LOCK_RENEW:
    case ENGINE_LOCK_CANCEL:
        return engine_lock_cmd(e, cmd, 0, 0);
    default:
        UNREACHABLE();
    }
}

/* Replies not worth remembering: see the top of this file. */
static bool result_remembered(struct engine_result r)
{
    return !(engine_failed(r) &&
             (r.err == SM_E_BUSY || r.err == SM_E_BADARG || r.err == SM_E_TRYAGAIN));
}

/* ---- apply ---------------------------------------------------------------------------------- */

/* Starts fetching the index cells the record will probe (request id, order id, and for a
 * single-item order the user's limit row), so that these independent cache misses overlap with
 * each other and, in a batch, with the work on the previous record. The SKU lookup reads the
 * state; if an earlier record of the batch changes it, the prefetch is merely wasted. */
static void prefetch_prepared(const struct engine *e, const struct engine_prepared *p)
{
    sm_index_prefetch(&e->request_index, p->request.lo);
    if (p->session_hash != 0) {
        locks_prefetch(&e->locks, p->session_hash, p->name_hash);
        return;
    }
    if (p->cmd.type != ENGINE_ORDER_PLACE)
        return;
    sm_index_prefetch(&e->order_index, p->keys.key.lo);
    if (p->cmd.items_count != 1)
        return;
    uint32_t sku = engine_sku_find(e, &p->cmd.items[0].sku);
    if (sku != SM_INDEX_NONE && e->skus[sku].limit_per_user > 0)
        sm_index_prefetch(&e->limit_index, engine_limit_hash(p->keys.key2, sku));
}

/* Lock records naming a session (key) and a lock (key2), whose hashes prepare computes. */
static bool lock_keyed(enum engine_cmd_type type)
{
    return type == ENGINE_LOCK_ACQUIRE || type == ENGINE_LOCK_RELEASE || type == ENGINE_LOCK_RENEW;
}

static void prepare(const uint8_t *rec, size_t len, struct engine_prepared *p)
{
    p->rc = engine_decode(rec, len, &p->cmd);
    if (p->rc == 0 && !engine_args_valid(&p->cmd))
        p->rc = SM_E_BADARG;
    if (p->rc != 0 || p->cmd.type == ENGINE_TICK)
        return;
    p->request = engine_digest_of(&p->cmd.request_id);
    p->session_hash = p->name_hash = 0;
    if (lock_keyed(p->cmd.type)) {
        p->session_hash = locks_key_hash(p->cmd.key.ptr, p->cmd.key.len);
        p->name_hash = locks_key_hash(p->cmd.key2.ptr, p->cmd.key2.len);
    }
    if (p->cmd.type == ENGINE_ORDER_PLACE) {
        p->keys.key = engine_digest_of(&p->cmd.key);
        p->keys.key2 = engine_digest_of(&p->cmd.key2);
    }
    size_t args_at = 2 + p->cmd.request_id.len;
    ASSERT(args_at <= len);
    p->args_hash = XXH3_64bits_withSeed(rec + args_at, len - args_at, rec[0]);
}

static void output_clear(struct engine *e, struct engine_output *out)
{
    e->lock_events.count = 0;
    out->events = e->lock_events.items;
    out->events_count = 0;
    out->reply.replayed = false;
    out->reply.fields_count = 0;
    out->reply.value = 0;
    out->reply.err = 0;
    out->reply.msg_len = 0;
}

static void apply_prepared(struct engine *e, uint64_t index, int64_t now_ms,
                           const struct engine_prepared *p, struct engine_output *out)
{
    ASSERT(index > e->last_index);
    ASSERT(now_ms >= 0 && now_ms <= SM_ENGINE_TIME_MS_MAX);
    e->last_index = index;
    if (now_ms > e->now_ms)
        e->now_ms = now_ms;
    output_clear(e, out);
    if (p->rc != 0) {
        engine_reply_err(&out->reply, SM_E_BADARG, "malformed record");
        return;
    }
    if (p->cmd.type == ENGINE_TICK) {
        engine_tick(e, &out->reply);
        out->events_count = e->lock_events.count;
        return;
    }
    uint32_t seen = engine_request_find(e, p->request);
    if (seen != SM_INDEX_NONE) {
        if (e->requests[seen].args_hash != p->args_hash) {
            engine_reply_err(&out->reply, SM_E_IDEMPOTENCY, sm_strerror(SM_E_IDEMPOTENCY));
            return;
        }
        engine_render(e, &e->requests[seen].result, &out->reply);
        out->reply.replayed = true;
        return;
    }
    struct engine_request req = {.id = p->request, .args_hash = p->args_hash};
    if (p->cmd.type == ENGINE_ORDER_PLACE)
        req.result = engine_order_place(e, &p->cmd, &p->keys);
    else if (p->session_hash != 0)
        req.result = engine_lock_cmd(e, &p->cmd, p->session_hash, p->name_hash);
    else
        req.result = dispatch(e, &p->cmd);
    if (result_remembered(req.result))
        request_remember(e, &req);
    engine_render(e, &req.result, &out->reply);
    out->events_count = e->lock_events.count;
}

void engine_apply(struct engine *e, uint64_t index, int64_t now_ms, const uint8_t *rec, size_t len,
                  struct engine_output *out)
{
    struct engine_prepared p;
    prepare(rec, len, &p);
    if (p.rc == 0 && p.cmd.type != ENGINE_TICK)
        prefetch_prepared(e, &p);
    apply_prepared(e, index, now_ms, &p, out);
}

/* Reads the cells that removing hash from ix will read first: its home cell and, since the
 * backward shift of sm_index_remove reads on to the next empty cell, the next cache line. A read,
 * not a prefetch: measured on this VM (docs/engine.md), prefetches of these cells, issued after
 * the dependent read of the ring entry, left the removal waiting for memory as if never issued
 * (ring-full lock pairs 0.94M/s), and plain reads ahead of the group took 1.37M/s. */
static void touch_evicted(const struct sm_index *ix, uint64_t hash)
{
    const volatile uint64_t *cells = ix->cells;
    uint32_t home = sm_index_tag(hash) & ix->mask;
    (void)cells[home];
    uint32_t in_line = (uint32_t)((uintptr_t)&cells[home] % 64 / sizeof *cells);
    (void)cells[(home - in_line + 64 / sizeof *cells) & ix->mask];
}

/* Once the idempotency ring is full, every remembered record evicts the oldest id, and removing
 * that id from the index is a second random access per record: into the cell of an id
 * remembered request_ids_max records ago, long gone from the cache. Which slots a group will
 * evict follows from the ring's head if every record before them is remembered (all but BUSY,
 * BADARG and TRYAGAIN replies, replays and ticks), so their cells are fetched with the group's
 * own. This reads the state ahead of its turn, but only to warm the cache: a wrong guess wastes
 * a fetch and changes nothing. `pending` records are prepared but not applied yet (the group
 * before). The ring entries holding the ids to evict are read here, so the entries of the group
 * after are fetched too, and are in the cache when their turn comes. */
static void prefetch_evictions(const struct engine *e, uint32_t pending, uint32_t count)
{
    uint64_t cap = e->cfg.request_ids_max;
    uint64_t ahead = (uint64_t)e->requests_count + pending; /* ids in the ring before the group */
    if (ahead + count <= cap || cap < 4 * APPLY_GROUP)
        return; /* nothing evicted, or a ring too small for the guess to be worth it */
    for (uint32_t j = 0; j < count; j++) {
        if (ahead + j < cap)
            continue;
        /* head < cap and ahead + j - cap < pending + count <= 2 * APPLY_GROUP < cap. */
        uint64_t slot = e->requests_head + (ahead + j - cap);
        slot = slot >= cap ? slot - cap : slot;
        touch_evicted(&e->request_index, e->requests[slot].id.lo);
        uint64_t later = slot + APPLY_GROUP;
        __builtin_prefetch(&e->requests[later >= cap ? later - cap : later]);
    }
}

/* Prepares recs[from..from+count) into their places in the ring of prepared records, then
 * starts fetching their cells in a tight loop. */
static void prepare_group(const struct engine *e, const struct engine_record *recs, uint32_t from,
                          uint32_t count, uint32_t pending)
{
    struct engine_prepared *ring = e->prepared;
    for (uint32_t k = from; k < from + count; k++)
        prepare(recs[k].data, recs[k].len, &ring[k % (2 * APPLY_GROUP)]);
    for (uint32_t k = from; k < from + count; k++) {
        const struct engine_prepared *p = &ring[k % (2 * APPLY_GROUP)];
        if (p->rc == 0 && p->cmd.type != ENGINE_TICK)
            prefetch_prepared(e, p);
    }
    prefetch_evictions(e, pending, count);
}

void engine_apply_batch(struct engine *e, uint64_t first_index, int64_t now_ms,
                        const struct engine_record *recs, uint32_t n, engine_applied_fn done,
                        void *ctx)
{
    ASSERT(n == 0 || first_index > e->last_index);
    ASSERT(done != NULL);
    struct engine_output out;
    prepare_group(e, recs, 0, n < APPLY_GROUP ? n : APPLY_GROUP, 0);
    for (uint32_t g = 0; g < n; g += APPLY_GROUP) {
        uint32_t next = g + APPLY_GROUP;
        if (next < n)
            prepare_group(e, recs, next, n - next < APPLY_GROUP ? n - next : APPLY_GROUP,
                          APPLY_GROUP);
        uint32_t end = next < n ? next : n;
        for (uint32_t i = g; i < end; i++) {
            apply_prepared(e, first_index + i, now_ms, &e->prepared[i % (2 * APPLY_GROUP)], &out);
            done(ctx, i, &out);
        }
    }
}

/* ---- reads ---------------------------------------------------------------------------------- */

static void read_stats(const struct engine *e, struct engine_reply *out)
{
    const struct engine_field f[] = {
        {.name = "skus", .value = e->skus_count},
        {.name = "accounts", .value = e->accounts_count},
        {.name = "orders", .value = engine_slots_live(&e->order_slots)},
        {.name = "holds", .value = engine_slots_live(&e->hold_slots)},
        {.name = "limit_rows", .value = engine_slots_live(&e->limit_slots)},
        {.name = "request_ids", .value = e->requests_count},
        {.name = "deposits_total_cents", .value = e->deposits_total_cents},
        {.name = "withdrawals_total_cents", .value = e->withdrawals_total_cents},
        {.name = "now_ms", .value = e->now_ms},
        {.name = "last_index", .value = (int64_t)e->last_index},
    };
    _Static_assert(sizeof f / sizeof f[0] <= SM_ENGINE_REPLY_FIELDS_MAX, "stats fit a reply");
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = sizeof f / sizeof f[0];
    memcpy(out->fields, f, sizeof f);
}

void engine_read(const struct engine *e, const struct engine_cmd *cmd, struct engine_reply *out)
{
    out->replayed = false;
    out->fields_count = 0;
    out->msg_len = 0;
    out->err = 0;
    out->value = 0;
    bool needs_key = cmd->type != ENGINE_STATS_GET;
    if (needs_key &&
        (cmd->key.ptr == NULL || cmd->key.len < 1 || cmd->key.len > SM_KEY_BYTES_MAX)) {
        engine_reply_err(out, SM_E_BADARG, sm_strerror(SM_E_BADARG));
        return;
    }
    switch (cmd->type) {
    case ENGINE_SKU_GET:
        engine_read_sku(e, cmd, out);
        return;
    case ENGINE_ORDER_GET:
        engine_read_order(e, cmd, out);
        return;
    case ENGINE_HOLD_GET:
        engine_read_hold(e, cmd, out);
        return;
    case ENGINE_ACCOUNT_GET:
        engine_read_account(e, cmd, out);
        return;
    case ENGINE_STATS_GET:
        read_stats(e, out);
        return;
    case ENGINE_LOCK_CHECK:
    case ENGINE_LOCK_INFO:
        engine_read_lock(e, cmd, out);
        return;
    default:
        engine_reply_err(out, SM_E_UNKNOWN, sm_strerror(SM_E_UNKNOWN));
        return;
    }
}

const char *engine_hold_state_name(int state)
{
    ASSERT(state >= 0 && state < HOLD_STATE_COUNT);
    return hold_state_names[state];
}
