/*
 * The trading commands: STOCK.*, ORDER.*, HOLD.*, ACCOUNT.*. Each handler checks its arguments
 * (keys 1..128 bytes, integers in canonical decimal, items in pairs), finds the partition that
 * owns the key, and hands an engine command to the store (node/store.h), which applies it and
 * logs it; the engine's reply becomes the RESP reply. Reads are answered from the partition's
 * engine without a record.
 *
 * Routing: a SKU, hold or account lives in the partition of its key. An order lives in the
 * partition of its first SKU, and its id says so: "<partition, 4 hex digits>-<16 hex digits>",
 * the digits being XXH3-64 of (user, request id). Deriving the id from the request id makes a
 * retried ORDER.PLACE name the same order, so the engine's idempotency answers it.
 *
 * An order whose SKUs, or a payment or transfer whose accounts, live in different partitions
 * goes through a cross-partition transaction (node/txn.h, started by txn_cmd.c), coordinated by
 * the order's partition (the payer's for a transfer).
 */
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "limits.h"
#include "node/command.h"
#include "node/store.h"
#include "node/txn.h"
#include "util/error.h"

/* The largest engine record a trading command can produce: what the store must have room for
 * before a handler runs. */
#define TRADE_RECORD_BYTES_MAX SM_ENGINE_RECORD_BYTES_MAX

/* "pppp-hhhhhhhhhhhhhhhh" */
#define ORDER_ID_BYTES 21

int node_reply_err(struct resp_encoder *out, int err, const char *msg)
{
    return resp_put_sm_error(out, err, msg);
}

/* ---- arguments ----------------------------------------------------------------------------- */

int node_check_key(struct proto_slice s, const char *what, struct resp_encoder *out,
                   struct engine_key *key)
{
    char msg[96];
    if (s.len == 0 || s.len > SM_KEY_BYTES_MAX) {
        snprintf(msg, sizeof msg, "%s must be 1..%d bytes, got %zu", what, SM_KEY_BYTES_MAX, s.len);
        int rc = node_reply_err(out, s.len == 0 ? SM_E_BADARG : SM_E_TOOLARGE, msg);
        return rc ? rc : 1;
    }
    key->ptr = s.ptr;
    key->len = s.len;
    return 0;
}

/* A canonical decimal int64 in [lo, hi]. */
static bool parse_int(struct proto_slice s, int64_t lo, int64_t hi, int64_t *v)
{
    if (s.len == 0 || s.len > 20)
        return false;
    size_t i = 0;
    bool neg = s.ptr[0] == '-';
    i += neg;
    if (i == s.len)
        return false;
    uint64_t mag = 0;
    for (; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        if (__builtin_mul_overflow(mag, 10, &mag) ||
            __builtin_add_overflow(mag, (uint64_t)(s.ptr[i] - '0'), &mag))
            return false;
    }
    if (mag > (uint64_t)INT64_MAX + neg)
        return false;
    int64_t x = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    if (x < lo || x > hi)
        return false;
    *v = x;
    return true;
}

int node_check_int(struct proto_slice s, const char *what, int64_t lo, int64_t hi,
                   struct resp_encoder *out, int64_t *v)
{
    if (parse_int(s, lo, hi, v))
        return 0;
    char msg[128];
    snprintf(msg, sizeof msg, "%s must be an integer in %lld..%lld", what, (long long)lo,
             (long long)hi);
    int rc = node_reply_err(out, SM_E_BADARG, msg);
    return rc ? rc : 1;
}

/* Items from argv[first..argc): sku qty pairs, 1..64 of them. */
static int check_items(const struct resp_request *req, uint32_t first, struct resp_encoder *out,
                       struct engine_cmd *cmd)
{
    uint32_t words = req->argc - first;
    if (words == 0 || words % 2 != 0) {
        int rc = node_reply_err(out, SM_E_BADARG, "items are <sku> <quantity> pairs");
        return rc ? rc : 1;
    }
    if (words / 2 > SM_ORDER_ITEMS_MAX) {
        int rc = node_reply_err(out, SM_E_TOOLARGE, "at most 64 items per order");
        return rc ? rc : 1;
    }
    cmd->items_count = words / 2;
    for (uint32_t i = 0; i < cmd->items_count; i++) {
        int rc = node_check_key(req->argv[first + 2 * i], "sku", out, &cmd->items[i].sku);
        rc = rc ? rc
                : node_check_int(req->argv[first + 2 * i + 1], "quantity", 1,
                                 SM_ORDER_ITEM_QUANTITY_MAX, out, &cmd->items[i].quantity);
        if (rc)
            return rc;
    }
    return 0;
}

/* The partition of the first item, and whether every item lives there. */
static bool items_partition(const struct store *s, const struct engine_cmd *cmd, uint32_t *p)
{
    *p = store_partition(s, cmd->items[0].sku.ptr, cmd->items[0].sku.len);
    for (uint32_t i = 1; i < cmd->items_count; i++)
        if (store_partition(s, cmd->items[i].sku.ptr, cmd->items[i].sku.len) != *p)
            return false;
    return true;
}

/* The items of a hold must live in one partition (HOLD.* is the single-partition building
 * block; cross-partition orders make their holds themselves). */
static int hold_items_partition(const struct store *s, const struct engine_cmd *cmd,
                                struct resp_encoder *out, uint32_t *p)
{
    if (items_partition(s, cmd, p))
        return 0;
    int rc = node_reply_err(out, SM_E_BADARG, "the items of a hold must live in one partition");
    return rc ? rc : 1;
}

/* The partition an order id names, or an error reply for an id no order can have. */
static int order_partition(const struct store *s, struct proto_slice id, struct resp_encoder *out,
                           uint32_t *p)
{
    uint32_t v = 0;
    bool ok = id.len == ORDER_ID_BYTES && id.ptr[4] == '-';
    for (size_t i = 0; ok && i < 4; i++) {
        uint8_t ch = id.ptr[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        ok = d >= 0;
        v = v * 16 + (uint32_t)(d < 0 ? 0 : d);
    }
    if (!ok || v >= s->partitions) {
        int rc = node_reply_err(out, SM_E_NOTFOUND, "no such order");
        return rc ? rc : 1;
    }
    *p = v;
    return 0;
}

/* ---- replies ------------------------------------------------------------------------------- */

int node_put_reply(struct resp_encoder *out, const struct engine_reply *r)
{
    switch (r->kind) {
    case ENGINE_REPLY_OK:
        return resp_put_simple(out, "OK", 2);
    case ENGINE_REPLY_INT:
        return resp_put_int(out, r->value);
    case ENGINE_REPLY_FIELDS: {
        int rc = resp_put_map(out, r->fields_count);
        for (uint32_t i = 0; rc == 0 && i < r->fields_count; i++) {
            const struct engine_field *f = &r->fields[i];
            rc = resp_put_bulk(out, f->name, strlen(f->name));
            if (rc == 0)
                rc = f->str ? resp_put_bulk(out, f->str, strlen(f->str))
                            : resp_put_int(out, f->value);
        }
        return rc;
    }
    case ENGINE_REPLY_ERR: {
        /* The message may hold a binary SKU name: show it printable, and never a CR or LF. */
        char msg[SM_ENGINE_MESSAGE_BYTES_MAX + 1];
        size_t n =
            r->msg_len < SM_ENGINE_MESSAGE_BYTES_MAX ? r->msg_len : SM_ENGINE_MESSAGE_BYTES_MAX;
        for (size_t i = 0; i < n; i++)
            msg[i] = (r->msg[i] < 0x20 || r->msg[i] == 0x7f) ? '?' : r->msg[i];
        msg[n] = '\0';
        return resp_put_sm_error(out, r->err, n ? msg : NULL);
    }
    }
    UNREACHABLE();
}

/* Runs a mutation on partition p and encodes its reply. */
static int mutate(struct node *n, uint32_t p, const struct engine_cmd *cmd,
                  struct resp_encoder *out)
{
    const struct engine_output *o;
    int rc = store_mutate(n->store, p, cmd, &o);
    if (rc == SM_E_BUSY)
        return rc;
    if (rc == SM_E_BADARG)
        return node_reply_err(out, SM_E_BADARG, "arguments out of range");
    if (rc != 0)
        return node_reply_err(out, SM_E_IO, "the log failed: this node accepts no more writes");
    return node_put_reply(out, &o->reply);
}

static int read_reply(struct node *n, uint32_t p, const struct engine_cmd *cmd,
                      struct resp_encoder *out)
{
    struct engine_reply r;
    store_read(n->store, p, cmd, &r);
    return node_put_reply(out, &r);
}

/* Common start of every handler: a store, and room for a record in this batch. */
int node_preflight(struct node *n, bool writes, struct resp_encoder *out)
{
    if (!n->store) {
        int rc = node_reply_err(out, SM_E_TRYAGAIN, "this node has no partitions");
        return rc ? rc : 1;
    }
    if (writes && !store_has_room(n->store, TRADE_RECORD_BYTES_MAX))
        return SM_E_BUSY;
    return 0;
}

/* A request id in argv[1] and one key in argv[2]: the shape of most mutations. */
static int id_and_key(const struct resp_request *req, const char *what, struct resp_encoder *out,
                      struct engine_cmd *cmd)
{
    int rc = node_check_key(req->argv[1], "request id", out, &cmd->request_id);
    return rc ? rc : node_check_key(req->argv[2], what, out, &cmd->key);
}

#define HANDLER(name)                                                                              \
    static int name(struct node *n, struct node_client *c, const struct resp_request *req,         \
                    struct resp_encoder *out)

/* ---- stock --------------------------------------------------------------------------------- */

/* STOCK.CREATE <rid> <sku> <quantity> [LIMIT <per-user>] [PRICE <cents>] */
HANDLER(stock_create)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_SKU_CREATE};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "sku", out, &cmd);
    rc = rc ? rc : node_check_int(req->argv[3], "quantity", 0, INT64_MAX / 4, out, &cmd.num);
    for (uint32_t i = 4; rc == 0 && i < req->argc; i += 2) {
        bool limit = proto_slice_eq_nocase(req->argv[i], "LIMIT");
        bool price = proto_slice_eq_nocase(req->argv[i], "PRICE");
        if ((!limit && !price) || i + 1 >= req->argc) {
            rc = node_reply_err(out, SM_E_BADARG, "options are LIMIT <per-user> and PRICE <cents>");
            return rc;
        }
        rc = node_check_int(req->argv[i + 1], limit ? "limit" : "price", 0, INT64_MAX / 4, out,
                            limit ? &cmd.num2 : &cmd.num3);
    }
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, out);
}

/* STOCK.RESTOCK|STOCK.ADJUST <rid> <sku> <quantity> */
static int stock_change(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                        int type)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "sku", out, &cmd);
    rc = rc ? rc : node_check_int(req->argv[3], "quantity", 1, INT64_MAX / 4, out, &cmd.num);
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, out);
}

/* A read of one key: STOCK.GET <sku>, HOLD.GET <txid>, ACCOUNT.GET <account>. */
static int read_key(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                    enum engine_cmd_type type, const char *what)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    int rc = node_preflight(n, false, out);
    rc = rc ? rc : node_check_key(req->argv[1], what, out, &cmd.key);
    if (rc)
        return rc < 0 ? rc : 0;
    return read_reply(n, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, out);
}

HANDLER(stock_get)
{
    (void)c;
    return read_key(n, req, out, ENGINE_SKU_GET, "sku");
}

/* ---- orders -------------------------------------------------------------------------------- */

/* ORDER.PLACE <rid> <user> <ttl_ms> <sku> <quantity> [<sku> <quantity> ...] -> order id */
HANDLER(order_place)
{
    struct engine_cmd cmd = {.type = ENGINE_ORDER_PLACE};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : node_check_key(req->argv[1], "request id", out, &cmd.request_id);
    rc = rc ? rc : node_check_key(req->argv[2], "user", out, &cmd.key2);
    rc = rc ? rc : node_check_int(req->argv[3], "ttl_ms", 1, SM_ENGINE_TTL_MS_MAX, out, &cmd.num);
    rc = rc ? rc : check_items(req, 4, out, &cmd);
    if (rc)
        return rc < 0 ? rc : 0;
    uint32_t p = 0;
    bool local = items_partition(n->store, &cmd, &p);
    if (!local && cmd.num > SM_TXN_ORDER_TTL_MS_MAX) {
        char msg[128];
        snprintf(msg, sizeof msg, "ttl_ms of an order across partitions must be 1..%lld",
                 (long long)SM_TXN_ORDER_TTL_MS_MAX);
        return node_reply_err(out, SM_E_BADARG, msg);
    }
    uint8_t seed[2 * SM_KEY_BYTES_MAX + 1];
    memcpy(seed, cmd.key2.ptr, cmd.key2.len);
    seed[cmd.key2.len] = 0;
    memcpy(seed + cmd.key2.len + 1, cmd.request_id.ptr, cmd.request_id.len);
    uint64_t h = XXH3_64bits(seed, cmd.key2.len + 1 + cmd.request_id.len);
    char id[ORDER_ID_BYTES + 1];
    snprintf(id, sizeof id, "%04x-%016llx", p, (unsigned long long)h);
    cmd.key.ptr = (const uint8_t *)id;
    cmd.key.len = ORDER_ID_BYTES;
    if (!local)
        return node_txn_run(n, c, p, &cmd, out);
    const struct engine_output *o;
    rc = store_mutate(n->store, p, &cmd, &o);
    if (rc == SM_E_BUSY)
        return rc;
    if (rc != 0)
        return node_reply_err(out, rc == SM_E_BADARG ? SM_E_BADARG : SM_E_IO,
                              rc == SM_E_BADARG ? "arguments out of range" : "the log failed");
    if (o->reply.kind == ENGINE_REPLY_ERR)
        return node_put_reply(out, &o->reply);
    return resp_put_bulk(out, id, ORDER_ID_BYTES);
}

/* ORDER.<verb> <rid> <order> [...]: the order's partition from its id. */
static int order_verb(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out, struct engine_cmd *cmd)
{
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "order id", out, cmd);
    uint32_t p = 0;
    rc = rc ? rc : order_partition(n->store, req->argv[2], out, &p);
    if (rc)
        return rc < 0 ? rc : 0;
    /* A payment whose accounts do not both live with the order moves its money through a
     * cross-partition transaction. */
    if (c && cmd->type == ENGINE_ORDER_PAY &&
        (store_partition(n->store, cmd->key2.ptr, cmd->key2.len) != p ||
         store_partition(n->store, cmd->key3.ptr, cmd->key3.len) != p))
        return node_txn_run(n, c, p, cmd, out);
    /* The refund of an order that such a payment paid moves the money back the same way. */
    if (c && cmd->type == ENGINE_ORDER_REFUND &&
        txn_paid_across(n->store, p, &cmd->key, &cmd->key2, &cmd->key3)) {
        cmd->type = ENGINE_ORDER_REFUND_XPAY;
        return node_txn_run(n, c, p, cmd, out);
    }
    return mutate(n, p, cmd, out);
}

HANDLER(order_pay)
{
    struct engine_cmd cmd = {.type = ENGINE_ORDER_PAY};
    int rc = node_check_key(req->argv[3], "buyer account", out, &cmd.key2);
    rc = rc ? rc : node_check_key(req->argv[4], "merchant account", out, &cmd.key3);
    if (rc)
        return rc < 0 ? rc : 0;
    return order_verb(n, c, req, out, &cmd);
}

HANDLER(order_payext)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_ORDER_PAY_EXTERNAL};
    int rc = node_check_key(req->argv[3], "payment reference", out, &cmd.key2);
    if (rc)
        return rc < 0 ? rc : 0;
    return order_verb(n, NULL, req, out, &cmd);
}

/* ORDER.CANCEL|ORDER.SHIP|ORDER.COMPLETE <rid> <order> */
static int order_transition(struct node *n, const struct resp_request *req,
                            struct resp_encoder *out, int type)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    return order_verb(n, NULL, req, out, &cmd);
}

/* ORDER.REFUND <rid> <order> RESTOCK|WRITEOFF */
HANDLER(order_refund)
{
    struct engine_cmd cmd = {.type = ENGINE_ORDER_REFUND};
    if (proto_slice_eq_nocase(req->argv[3], "RESTOCK"))
        cmd.num = 1;
    else if (!proto_slice_eq_nocase(req->argv[3], "WRITEOFF"))
        return node_reply_err(out, SM_E_BADARG, "say RESTOCK or WRITEOFF");
    return order_verb(n, c, req, out, &cmd);
}

HANDLER(order_get)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_ORDER_GET};
    int rc = node_preflight(n, false, out);
    uint32_t p = 0;
    rc = rc ? rc : node_check_key(req->argv[1], "order id", out, &cmd.key);
    rc = rc ? rc : order_partition(n->store, req->argv[1], out, &p);
    if (rc)
        return rc < 0 ? rc : 0;
    return read_reply(n, p, &cmd, out);
}

/* ---- holds (admin: the building block of cross-partition orders) ---------------------------- */

/* HOLD.PREPARE <rid> <txid> <ttl_ms> <sku> <quantity> [...]: in the SKUs' partition. */
HANDLER(hold_prepare)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_HOLD_PREPARE};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "txid", out, &cmd);
    rc = rc ? rc : node_check_int(req->argv[3], "ttl_ms", 1, SM_ENGINE_TTL_MS_MAX, out, &cmd.num);
    rc = rc ? rc : check_items(req, 4, out, &cmd);
    uint32_t p = 0;
    rc = rc ? rc : hold_items_partition(n->store, &cmd, out, &p);
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, p, &cmd, out);
}

/* HOLD.COMMIT|HOLD.ABORT <rid> <txid> <sku>: a SKU of the hold names its partition (an unknown
 * txid is remembered as aborted there, so a late prepare fails). */
static int hold_decide(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                       int type)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    struct engine_key sku;
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "txid", out, &cmd);
    rc = rc ? rc : node_check_key(req->argv[3], "sku", out, &sku);
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, store_partition(n->store, sku.ptr, sku.len), &cmd, out);
}

/* HOLD.GET <txid> <sku> */
HANDLER(hold_get)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_HOLD_GET};
    struct engine_key sku;
    int rc = node_preflight(n, false, out);
    rc = rc ? rc : node_check_key(req->argv[1], "txid", out, &cmd.key);
    rc = rc ? rc : node_check_key(req->argv[2], "sku", out, &sku);
    if (rc)
        return rc < 0 ? rc : 0;
    return read_reply(n, store_partition(n->store, sku.ptr, sku.len), &cmd, out);
}

/* ---- accounts ------------------------------------------------------------------------------ */

/* ACCOUNT.OPEN <rid> <account> [OVERDRAFT <cents>] */
HANDLER(account_open)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_ACCOUNT_OPEN};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "account", out, &cmd);
    if (rc == 0 && req->argc != 3) {
        if (req->argc != 5 || !proto_slice_eq_nocase(req->argv[3], "OVERDRAFT"))
            return node_reply_err(out, SM_E_BADARG, "the only option is OVERDRAFT <cents>");
        rc = node_check_int(req->argv[4], "overdraft", 0, INT64_MAX / 4, out, &cmd.num);
    }
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, out);
}

/* ACCOUNT.DEPOSIT|ACCOUNT.WITHDRAW <rid> <account> <cents> */
static int account_change(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                          int type)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "account", out, &cmd);
    rc = rc ? rc : node_check_int(req->argv[3], "amount", 1, INT64_MAX, out, &cmd.num);
    if (rc)
        return rc < 0 ? rc : 0;
    return mutate(n, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, out);
}

/* ACCOUNT.TRANSFER <rid> <from> <to> <cents> */
HANDLER(account_transfer)
{
    struct engine_cmd cmd = {.type = ENGINE_ACCOUNT_TRANSFER};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : id_and_key(req, "from account", out, &cmd);
    rc = rc ? rc : node_check_key(req->argv[3], "to account", out, &cmd.key2);
    rc = rc ? rc : node_check_int(req->argv[4], "amount", 1, INT64_MAX, out, &cmd.num);
    if (rc)
        return rc < 0 ? rc : 0;
    uint32_t p = store_partition(n->store, cmd.key.ptr, cmd.key.len);
    uint32_t q = store_partition(n->store, cmd.key2.ptr, cmd.key2.len);
    if (p != q)
        return node_txn_run(n, c, p, &cmd, out);
    return mutate(n, p, &cmd, out);
}

HANDLER(account_get)
{
    (void)c;
    return read_key(n, req, out, ENGINE_ACCOUNT_GET, "account");
}

const struct command trade_commands[] = {
    {"STOCK.CREATE", -4, CMD_WRITE, stock_create, NULL, 0},
    {"STOCK.RESTOCK", 4, CMD_WRITE, NULL, stock_change, ENGINE_SKU_RESTOCK},
    {"STOCK.ADJUST", 4, CMD_WRITE, NULL, stock_change, ENGINE_SKU_ADJUST},
    {"STOCK.GET", 2, CMD_READONLY, stock_get, NULL, 0},
    {"ORDER.PLACE", -6, CMD_WRITE, order_place, NULL, 0},
    {"ORDER.PAY", 5, CMD_WRITE, order_pay, NULL, 0},
    {"ORDER.PAYEXT", 4, CMD_WRITE, order_payext, NULL, 0},
    {"ORDER.CANCEL", 3, CMD_WRITE, NULL, order_transition, ENGINE_ORDER_CANCEL},
    {"ORDER.SHIP", 3, CMD_WRITE, NULL, order_transition, ENGINE_ORDER_SHIP},
    {"ORDER.COMPLETE", 3, CMD_WRITE, NULL, order_transition, ENGINE_ORDER_COMPLETE},
    {"ORDER.REFUND", 4, CMD_WRITE, order_refund, NULL, 0},
    {"ORDER.GET", 2, CMD_READONLY, order_get, NULL, 0},
    {"HOLD.PREPARE", -6, CMD_WRITE | CMD_ADMIN, hold_prepare, NULL, 0},
    {"HOLD.COMMIT", 4, CMD_WRITE | CMD_ADMIN, NULL, hold_decide, ENGINE_HOLD_COMMIT},
    {"HOLD.ABORT", 4, CMD_WRITE | CMD_ADMIN, NULL, hold_decide, ENGINE_HOLD_ABORT},
    {"HOLD.GET", 3, CMD_READONLY | CMD_ADMIN, hold_get, NULL, 0},
    {"ACCOUNT.OPEN", -3, CMD_WRITE, account_open, NULL, 0},
    {"ACCOUNT.DEPOSIT", 4, CMD_WRITE, NULL, account_change, ENGINE_ACCOUNT_DEPOSIT},
    {"ACCOUNT.WITHDRAW", 4, CMD_WRITE, NULL, account_change, ENGINE_ACCOUNT_WITHDRAW},
    {"ACCOUNT.TRANSFER", 5, CMD_WRITE, account_transfer, NULL, 0},
    {"ACCOUNT.GET", 2, CMD_READONLY, account_get, NULL, 0},
};

const uint32_t trade_commands_count = sizeof trade_commands / sizeof trade_commands[0];
