/*
 * Test helpers for the engine: a harness that encodes commands into records, applies them at
 * increasing log indexes and a settable time, and runs engine_check after every step, so every
 * test checks the invariants of DESIGN.md section 1 as a side effect.
 */
#ifndef SHARDMART_TESTS_ENGINE_HARNESS_H
#define SHARDMART_TESTS_ENGINE_HARNESS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "engine/engine.h"
#include "util/buf.h"
#include "util/error.h"

struct harness {
    struct engine e;
    uint64_t index;
    int64_t now_ms;
    uint64_t request_seq;
    struct engine_output out;
    uint8_t rec[SM_ENGINE_RECORD_BYTES_MAX];
    size_t rec_len;
    char req[32];
    struct sm_wbuf *log; /* when set, every record as [u8 time step / 10][u16 len][bytes] */
    int64_t log_now_ms;
};

static inline struct engine_config harness_config(void)
{
    return (struct engine_config){.skus_max = 16,
                                  .orders_max = 32,
                                  .holds_max = 16,
                                  .accounts_max = 16,
                                  .limit_rows_max = 16,
                                  .item_chunks_max = 32,
                                  .request_ids_max = 64,
                                  .order_retention_ms = 1000,
                                  .hold_retention_ms = 1000,
                                  .locks = {.sessions_max = 8,
                                            .locks_max = 8,
                                            .holds_max = 16,
                                            .waiters_max = 16,
                                            .permits_max = 8,
                                            .reentry_max = 4}};
}

static inline void harness_init_with(struct harness *h, const struct engine_config *cfg)
{
    memset(h, 0, sizeof *h);
    cr_assert_eq(engine_init(&h->e, cfg), 0);
    h->now_ms = 1000;
    h->log_now_ms = 1000;
}

static inline void harness_init(struct harness *h)
{
    struct engine_config cfg = harness_config();
    harness_init_with(h, &cfg);
}

static inline struct engine_key K(const char *s) {
    return (struct engine_key){.ptr = (const uint8_t *)s, .len = strlen(s)};
}

static inline void
harness_checked(struct harness *h)
{
    char why[256];
    cr_assert(engine_check(&h->e, why, sizeof why), "engine_check: %s", why);
}

/* Applies raw record bytes at the next index. */
static inline const struct engine_reply *apply_raw(struct harness *h, const uint8_t *rec,
                                                   size_t len)
{
    engine_apply(&h->e, ++h->index, h->now_ms, rec, len, &h->out);
    harness_checked(h);
    if (h->log) {
        int64_t step = (h->now_ms - h->log_now_ms) / 10;
        step = step < 0 ? 0 : step > 255 ? 255 : step;
        h->log_now_ms += step * 10;
        sm_wbuf_u8(h->log, (uint8_t)step);
        sm_wbuf_u16(h->log, (uint16_t)len);
        sm_wbuf_put(h->log, rec, len);
    }
    return &h->out.reply;
}

/* Encodes cmd (giving it a fresh request id unless it has one) and applies it. */
static inline const struct engine_reply *run(struct harness *h, struct engine_cmd *cmd)
{
    if (cmd->request_id.ptr == NULL && cmd->type != ENGINE_TICK) {
        snprintf(h->req, sizeof h->req, "req-%llu", (unsigned long long)++h->request_seq);
        cmd->request_id = K(h->req);
    }
    int rc = engine_encode(cmd, h->rec, sizeof h->rec, &h->rec_len);
    cr_assert_eq(rc, 0, "encode type %d: %d", cmd->type, rc);
    return apply_raw(h, h->rec, h->rec_len);
}

static inline const struct engine_reply *read_cmd(struct harness *h, enum engine_cmd_type type,
                                                  const char *key)
{
    static struct engine_reply reply;
    struct engine_cmd cmd = {.type = type};
    if (key)
        cmd.key = K(key);
    engine_read(&h->e, &cmd, &reply);
    return &reply;
}

/* The integer field `name` of a fields reply (asserts it exists). */
static inline int64_t field(const struct engine_reply *r, const char *name)
{
    cr_assert_eq(r->kind, ENGINE_REPLY_FIELDS);
    for (uint32_t i = 0; i < r->fields_count; i++)
        if (strcmp(r->fields[i].name, name) == 0)
            return r->fields[i].value;
    cr_assert_fail("no field %s", name);
    return 0;
}

static inline const char *field_str(const struct engine_reply *r, const char *name)
{
    cr_assert_eq(r->kind, ENGINE_REPLY_FIELDS);
    for (uint32_t i = 0; i < r->fields_count; i++)
        if (strcmp(r->fields[i].name, name) == 0 && r->fields[i].str)
            return r->fields[i].str;
    cr_assert_fail("no string field %s", name);
    return "";
}

/* Each evaluates its reply argument once: it is usually the command itself. */
#define assert_ok(r)                                                                               \
    do {                                                                                           \
        const struct engine_reply *r_ = (r);                                                       \
        cr_assert_eq(r_->kind, ENGINE_REPLY_OK, "kind %d err %s", r_->kind, sm_errcode(r_->err));  \
    } while (0)
#define assert_int(r, v)                                                                           \
    do {                                                                                           \
        const struct engine_reply *r_ = (r);                                                       \
        cr_assert_eq(r_->kind, ENGINE_REPLY_INT, "kind %d err %s", r_->kind, sm_errcode(r_->err)); \
        cr_assert_eq(r_->value, (v));                                                              \
    } while (0)
#define assert_err_msg(r, code, m)                                                                 \
    do {                                                                                           \
        const struct engine_reply *r_ = (r);                                                       \
        cr_assert(r_->kind == ENGINE_REPLY_ERR && r_->err == (code), "want %s, got kind %d %s",    \
                  sm_errcode(code), r_->kind, sm_errcode(r_->err));                                \
        const char *m_ = (m);                                                                      \
        if (m_ != NULL)                                                                            \
            cr_assert_str_eq(r_->msg, m_);                                                         \
    } while (0)
#define assert_err(r, code) assert_err_msg(r, code, NULL)

/* ---- command builders ---- */

static inline const struct engine_reply *sku_create(struct harness *h, const char *sku, int64_t qty,
                                                    int64_t limit, int64_t price)
{
    struct engine_cmd c = {
        .type = ENGINE_SKU_CREATE, .key = K(sku), .num = qty, .num2 = limit, .num3 = price};
    return run(h, &c);
}

static inline const struct engine_reply *sku_op(struct harness *h, enum engine_cmd_type t,
                                                const char *sku, int64_t qty)
{
    struct engine_cmd c = {.type = t, .key = K(sku), .num = qty};
    return run(h, &c);
}

/* items: "sku:qty,sku:qty" is overkill; n parallel arrays keep it plain. */
static inline const struct engine_reply *place_n(struct harness *h, const char *id,
                                                 const char *user, int64_t ttl_ms, uint32_t n,
                                                 const char *const *skus, const int64_t *qty)
{
    static struct engine_cmd c;
    memset(&c, 0, sizeof c);
    c.type = ENGINE_ORDER_PLACE;
    c.key = K(id);
    c.key2 = K(user);
    c.num = ttl_ms;
    c.items_count = n;
    for (uint32_t i = 0; i < n; i++)
        c.items[i] = (struct engine_item){.sku = K(skus[i]), .quantity = qty[i]};
    return run(h, &c);
}

static inline const struct engine_reply *place(struct harness *h, const char *id, const char *user,
                                               const char *sku, int64_t qty)
{
    return place_n(h, id, user, 5000, 1, &sku, &qty);
}

static inline const struct engine_reply *order_op(struct harness *h, enum engine_cmd_type t,
                                                  const char *id)
{
    struct engine_cmd c = {.type = t, .key = K(id), .num = 1};
    return run(h, &c);
}

static inline const struct engine_reply *pay(struct harness *h, const char *id, const char *buyer,
                                             const char *merchant)
{
    struct engine_cmd c = {
        .type = ENGINE_ORDER_PAY, .key = K(id), .key2 = K(buyer), .key3 = K(merchant)};
    return run(h, &c);
}

static inline const struct engine_reply *refund(struct harness *h, const char *id, bool restock)
{
    struct engine_cmd c = {.type = ENGINE_ORDER_REFUND, .key = K(id), .num = restock ? 1 : 0};
    return run(h, &c);
}

static inline const struct engine_reply *hold_prepare(struct harness *h, const char *txid,
                                                      const char *sku, int64_t qty, int64_t ttl)
{
    struct engine_cmd c = {
        .type = ENGINE_HOLD_PREPARE, .key = K(txid), .num = ttl, .items_count = 1};
    c.items[0] = (struct engine_item){.sku = K(sku), .quantity = qty};
    return run(h, &c);
}

static inline const struct engine_reply *acct(struct harness *h, enum engine_cmd_type t,
                                              const char *id, int64_t amount)
{
    struct engine_cmd c = {.type = t, .key = K(id), .num = amount};
    return run(h, &c);
}

static inline const struct engine_reply *transfer(struct harness *h, const char *from,
                                                  const char *to, int64_t amount)
{
    struct engine_cmd c = {
        .type = ENGINE_ACCOUNT_TRANSFER, .key = K(from), .key2 = K(to), .num = amount};
    return run(h, &c);
}

static inline const struct engine_reply *tick(struct harness *h, int64_t now_ms)
{
    h->now_ms = now_ms;
    struct engine_cmd c = {.type = ENGINE_TICK};
    return run(h, &c);
}

static inline int64_t sku_field(struct harness *h, const char *sku, const char *name)
{
    return field(read_cmd(h, ENGINE_SKU_GET, sku), name);
}

static inline int64_t balance(struct harness *h, const char *account)
{
    return field(read_cmd(h, ENGINE_ACCOUNT_GET, account), "balance_cents");
}

static inline const char *order_state(struct harness *h, const char *id)
{
    const struct engine_reply *r = read_cmd(h, ENGINE_ORDER_GET, id);
    if (r->kind == ENGINE_REPLY_ERR)
        return "NONE";
    return field_str(r, "state");
}

/* Saves the engine into a fresh growable buffer (caller frees with sm_wbuf_free). */
static inline void harness_save(const struct engine *e, struct sm_wbuf *w)
{
    sm_wbuf_init(w);
    cr_assert_eq(engine_save(e, w), 0);
}

#endif
