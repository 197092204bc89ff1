/*
 * Model-based random testing of the engine: seeded streams of mixed commands (stock, orders,
 * holds, money, reads, ticks that expire things, replays of old request ids with the same or
 * other arguments, bad arguments, garbage records, tables filling up) applied to the engine and
 * to the reference model of model.c. Replies are compared one by one and engine_check runs after
 * every step. 1,000,000 steps in all (4 seeds) in a normal build; fewer under sanitizers, or as
 * many as SHARDMART_MODEL_STEPS says.
 *
 * Determinism: the records of one stream are applied again to a second engine, and to a third
 * engine that starts from the first one's snapshot taken halfway, and to a fourth through
 * engine_apply_batch in runs of 1..16 records (its replies compared with the first engine's, one
 * by one); all four end with the same snapshot bytes.
 */
#include <stdlib.h>

#include "model.c" /* the build globs tests/engine/test_*.c only; the model is part of this test */
#include "engine_harness.h"

#if defined(__SANITIZE_ADDRESS__)
#define STEPS_DEFAULT 100000
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STEPS_DEFAULT 100000
#endif
#endif
#ifndef STEPS_DEFAULT
#define STEPS_DEFAULT 1000000
#endif

static uint64_t rng_state;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

static struct engine_config model_config(void)
{
    struct engine_config c = harness_config();
    c.skus_max = 10;
    c.orders_max = 24;
    c.holds_max = 8;
    c.accounts_max = 6;
    c.limit_rows_max = 6;
    c.item_chunks_max = 6;
    c.request_ids_max = 48;
    c.order_retention_ms = 500;
    c.hold_retention_ms = 700;
    return c;
}

/* Names drawn from small pools so that commands collide: existing, missing and full. */
static char names[5][40][16];
#define SKUS     0
#define ORDERS   1
#define HOLDS    2
#define ACCOUNTS 3
#define USERS    4
static const uint32_t pool_size[5] = {12, 40, 14, 8, 5};

static struct engine_key pick(int pool)
{
    return K(names[pool][below(pool_size[pool])]);
}

static int64_t amount(void)
{
    switch (below(20)) {
    case 0:
        return INT64_MAX - (int64_t)below(3);
    case 1:
        return (int64_t)below(3) - 1; /* 0 or negative: BADARG for most */
    default:
        return 1 + (int64_t)below(500);
    }
}

static void items(struct engine_cmd *c)
{
    uint32_t n = below(8) == 0 ? 2 + below(9) : 1;
    uint32_t first = below(pool_size[SKUS]);
    c->items_count = n;
    for (uint32_t i = 0; i < n; i++) {
        c->items[i].sku = K(names[SKUS][(first + i) % pool_size[SKUS]]);
        c->items[i].quantity = 1 + below(below(10) == 0 ? 30 : 3);
    }
}

static void gen(struct engine_cmd *c)
{
    memset(c, 0, offsetof(struct engine_cmd, items));
    uint32_t r = below(100);
    if (r < 6) {
        c->type = ENGINE_SKU_CREATE;
        c->key = pick(SKUS);
        c->num = below(40);
        c->num2 = below(3) == 0 ? 1 + below(4) : 0;
        c->num3 = below(10) == 0 ? INT64_MAX / 4 : below(300);
    } else if (r < 10) {
        c->type = below(2) ? ENGINE_SKU_RESTOCK : ENGINE_SKU_ADJUST;
        c->key = pick(SKUS);
        c->num = below(30) == 0 ? INT64_MAX : 1 + below(10);
    } else if (r < 34) {
        c->type = ENGINE_ORDER_PLACE;
        c->key = pick(ORDERS);
        c->key2 = pick(USERS);
        c->num = 1 + below(2000);
        items(c);
    } else if (r < 44) {
        c->type = below(4) ? ENGINE_ORDER_PAY : ENGINE_ORDER_PAY_EXTERNAL;
        c->key = pick(ORDERS);
        c->key2 = pick(ACCOUNTS);
        c->key3 = pick(ACCOUNTS);
        if (c->type == ENGINE_ORDER_PAY && c->key2.ptr == c->key3.ptr)
            c->key3 = K(names[ACCOUNTS][0]);
    } else if (r < 56) {
        static const enum engine_cmd_type t[] = {ENGINE_ORDER_CANCEL, ENGINE_ORDER_SHIP,
                                                 ENGINE_ORDER_COMPLETE, ENGINE_ORDER_REFUND};
        c->type = t[below(4)];
        c->key = pick(ORDERS);
        c->num = below(2);
    } else if (r < 66) {
        static const enum engine_cmd_type t[] = {ENGINE_HOLD_PREPARE, ENGINE_HOLD_PREPARE,
                                                 ENGINE_HOLD_COMMIT, ENGINE_HOLD_ABORT};
        c->type = t[below(4)];
        c->key = pick(HOLDS);
        c->num = 1 + below(1500);
        items(c);
    } else if (r < 82) {
        static const enum engine_cmd_type t[] = {ENGINE_ACCOUNT_OPEN, ENGINE_ACCOUNT_DEPOSIT,
                                                 ENGINE_ACCOUNT_DEPOSIT, ENGINE_ACCOUNT_WITHDRAW,
                                                 ENGINE_ACCOUNT_TRANSFER};
        c->type = t[below(5)];
        c->key = pick(ACCOUNTS);
        c->key2 = pick(ACCOUNTS);
        c->num = c->type == ENGINE_ACCOUNT_OPEN ? below(3) * 100 : amount();
    } else {
        c->type = ENGINE_TICK;
    }
}

/* Recent commands, for replays: the request id and the encoded record. */
struct past {
    uint8_t rec[SM_ENGINE_RECORD_BYTES_MAX];
    size_t len;
};
static struct past past[64];

struct run {
    struct harness h;
    struct model m;
    struct sm_wbuf log; /* u64 index, i64 now, u32 len, bytes: to replay into other engines */
    struct sm_wbuf half;
    struct sm_wbuf replies; /* per step: u8 kind, u32 err, i64 value, u8 replayed, u32 fields */
    uint64_t steps, half_at;
    uint64_t seen[5];              /* replies by kind, and replays */
    uint64_t errors[SM_ERR_COUNT]; /* error replies by row */
    uint64_t expired, retired;     /* ticks that expired or dropped something */
};

static void compare(const struct engine_reply *want, const struct engine_reply *got, uint64_t step)
{
    cr_assert_eq(got->kind, want->kind, "step %llu: kind %d (%s %s), model %d (%s %s)",
                 (unsigned long long)step, got->kind, sm_errcode(got->err), got->msg, want->kind,
                 sm_errcode(want->err), want->msg);
    cr_assert_eq(got->err, want->err, "step %llu: err %s, model %s", (unsigned long long)step,
                 sm_errcode(got->err), sm_errcode(want->err));
    cr_assert_eq(got->value, want->value, "step %llu", (unsigned long long)step);
    cr_assert_eq(got->replayed, want->replayed, "step %llu: replayed %d, model %d (kind %d %s)",
                 (unsigned long long)step, got->replayed, want->replayed, got->kind,
                 sm_errcode(got->err));
    if (got->kind == ENGINE_REPLY_ERR)
        cr_assert_str_eq(got->msg, want->msg, "step %llu", (unsigned long long)step);
    cr_assert_eq(got->fields_count, want->fields_count, "step %llu", (unsigned long long)step);
    for (uint32_t i = 0; i < got->fields_count; i++) {
        cr_assert_str_eq(got->fields[i].name, want->fields[i].name);
        cr_assert_eq(got->fields[i].value, want->fields[i].value, "step %llu field %s",
                     (unsigned long long)step, got->fields[i].name);
        cr_assert_eq(!got->fields[i].str, !want->fields[i].str);
        if (got->fields[i].str)
            cr_assert_str_eq(got->fields[i].str, want->fields[i].str);
    }
}

/* Builds this step's record: new, replayed, patched to a bad number, or garbage. */
static size_t make_record(struct run *x, uint8_t *rec, struct engine_cmd *c, uint64_t step)
{
    uint32_t r = below(100);
    size_t len = 0;
    if (r < 6 && step > 64) {
        const struct past *p = &past[below(64)];
        memcpy(rec, p->rec, p->len);
        len = p->len;
        if (below(3) == 0 && len > 3)
            rec[len - 1] ^= 1; /* same request id, other arguments */
        return len;
    }
    if (r < 8) {
        len = 1 + below(24);
        for (size_t i = 0; i < len; i++)
            rec[i] = (uint8_t)rnd();
        return len;
    }
    for (;;) {
        gen(c);
        char *req = x->h.req;
        snprintf(req, sizeof x->h.req, "q%llu", (unsigned long long)step);
        c->request_id = K(req);
        if (engine_encode(c, rec, SM_ENGINE_RECORD_BYTES_MAX, &len) == 0)
            break;
    }
    if (r < 10 && len > 9 && c->type != ENGINE_TICK) {
        /* Break the record's last number (for types ending in one): the engine must refuse. */
        for (int i = 0; i < 8; i++)
            rec[len - 8 + i] = 0xff;
    }
    if (c->type != ENGINE_TICK) {
        struct past *p = &past[step % 64];
        memcpy(p->rec, rec, len);
        p->len = len;
    }
    return len;
}

static void step_once(struct run *x, uint64_t step)
{
    static uint8_t rec[SM_ENGINE_RECORD_BYTES_MAX];
    static struct engine_cmd c, d;
    static struct engine_reply want;
    if (below(3) == 0)
        x->h.now_ms += below(below(20) == 0 ? 3000 : 200);
    if (below(50) == 0)
        x->h.now_ms -= below(100); /* a clock behind: the engine keeps its time */
    if (below(10) == 0) {
        /* A read, compared too. */
        static const enum engine_cmd_type t[] = {ENGINE_SKU_GET, ENGINE_ORDER_GET, ENGINE_HOLD_GET,
                                                 ENGINE_ACCOUNT_GET};
        static const int pools[] = {SKUS, ORDERS, HOLDS, ACCOUNTS};
        int k = (int)below(4);
        struct engine_cmd rd = {.type = t[k], .key = pick(pools[k])};
        struct engine_reply got;
        engine_read(&x->h.e, &rd, &got);
        model_read(&x->m, &rd, &want);
        compare(&want, &got, step);
    }
    size_t len = make_record(x, rec, &c, step);
    bool decoded = engine_decode(rec, len, &d) == 0;
    engine_apply(&x->h.e, ++x->h.index, x->h.now_ms, rec, len, &x->h.out);
    model_apply(&x->m, x->h.now_ms, &d, decoded ? rec : NULL, len, &want);
    compare(&want, &x->h.out.reply, step);
    x->seen[want.kind]++;
    x->seen[4] += want.replayed;
    if (want.kind == ENGINE_REPLY_ERR)
        x->errors[-want.err - 1]++;
    if (want.kind == ENGINE_REPLY_FIELDS && want.fields_count == 4) {
        x->expired += want.fields[0].value + want.fields[1].value > 0;
        x->retired += want.fields[2].value > 0;
    }
    harness_checked(&x->h);
    sm_wbuf_u64(&x->log, x->h.index);
    sm_wbuf_i64(&x->log, x->h.now_ms);
    sm_wbuf_str32(&x->log, rec, len);
    sm_wbuf_u8(&x->replies, (uint8_t)x->h.out.reply.kind);
    sm_wbuf_u32(&x->replies, (uint32_t)x->h.out.reply.err);
    sm_wbuf_i64(&x->replies, x->h.out.reply.value);
    sm_wbuf_u8(&x->replies, x->h.out.reply.replayed);
    sm_wbuf_u32(&x->replies, x->h.out.reply.fields_count);
    if (step == x->half_at)
        harness_save(&x->h.e, &x->half);
}

static void replay_log(struct engine *e, const struct sm_wbuf *log, size_t from_index)
{
    struct sm_rbuf r;
    sm_rbuf_init(&r, log->data, log->len);
    static struct engine_output out;
    while (sm_rbuf_left(&r) > 0) {
        uint64_t index = sm_rbuf_u64(&r);
        int64_t now = sm_rbuf_i64(&r);
        size_t len;
        const uint8_t *rec = sm_rbuf_str32(&r, &len);
        cr_assert(rec != NULL);
        if (index > from_index)
            engine_apply(e, index, now, rec, len, &out);
    }
}

/* engine_apply_batch must reply exactly as engine_apply did, record by record. */
struct batch_check {
    struct sm_rbuf replies;
    uint64_t applied;
};

static void batch_applied(void *ctx, uint32_t i, const struct engine_output *out)
{
    struct batch_check *b = ctx;
    (void)i;
    const struct engine_reply *got = &out->reply;
    cr_assert_eq(got->kind, sm_rbuf_u8(&b->replies), "record %llu", (unsigned long long)b->applied);
    cr_assert_eq(got->err, (int)sm_rbuf_u32(&b->replies));
    cr_assert_eq(got->value, sm_rbuf_i64(&b->replies));
    cr_assert_eq(got->replayed, sm_rbuf_u8(&b->replies) == 1);
    cr_assert_eq(got->fields_count, sm_rbuf_u32(&b->replies));
    cr_assert(sm_rbuf_ok(&b->replies));
    b->applied++;
}

/* Replays the log through engine_apply_batch: runs of 1..16 records that share a time. */
static void replay_log_batched(struct engine *e, const struct run *x)
{
    static struct engine_record recs[16];
    struct batch_check b = {.applied = 0};
    sm_rbuf_init(&b.replies, x->replies.data, x->replies.len);
    struct sm_rbuf r;
    sm_rbuf_init(&r, x->log.data, x->log.len);
    uint64_t first = 0;
    int64_t batch_now = 0;
    uint32_t n = 0, want = 1;
    while (sm_rbuf_left(&r) > 0) {
        uint64_t index = sm_rbuf_u64(&r);
        int64_t now = sm_rbuf_i64(&r);
        size_t len;
        const uint8_t *rec = sm_rbuf_str32(&r, &len);
        cr_assert(rec != NULL);
        if (n > 0 && (now != batch_now || n == want)) {
            engine_apply_batch(e, first, batch_now, recs, n, batch_applied, &b);
            n = 0;
            want = 1 + below(16);
        }
        if (n == 0) {
            first = index;
            batch_now = now;
        }
        recs[n++] = (struct engine_record){rec, len};
    }
    engine_apply_batch(e, first, batch_now, recs, n, batch_applied, &b);
    cr_assert_eq(b.applied, x->steps);
    cr_assert_eq(sm_rbuf_left(&b.replies), 0);
}

static void assert_same_snapshot(const struct engine *a, const struct engine *b)
{
    struct sm_wbuf x, y;
    harness_save(a, &x);
    harness_save(b, &y);
    cr_assert_eq(x.len, y.len);
    cr_assert(memcmp(x.data, y.data, x.len) == 0, "snapshots differ");
    sm_wbuf_free(&x);
    sm_wbuf_free(&y);
}

static void run_seed(uint64_t seed, uint64_t steps, bool determinism)
{
    static struct run x;
    memset(&x, 0, sizeof x);
    rng_state = seed * 0x9e3779b97f4a7c15ULL + 1;
    struct engine_config cfg = model_config();
    harness_init_with(&x.h, &cfg);
    model_init(&x.m, &cfg);
    sm_wbuf_init(&x.log);
    sm_wbuf_init(&x.half);
    sm_wbuf_init(&x.replies);
    x.half_at = steps / 2;
    for (uint64_t s = 0; s < steps; s++)
        step_once(&x, s);
    x.steps = steps;
    /* Every kind of reply happened, and replays too: the stream exercised what it claims. */
    for (int k = 0; k < 5; k++)
        cr_assert_gt(x.seen[k], steps / 1000, "seed %llu: kind %d seen %llu times",
                     (unsigned long long)seed, k, (unsigned long long)x.seen[k]);
    const int codes[] = {SM_E_BADARG, SM_E_NOTFOUND, SM_E_EXISTS, SM_E_SOLDOUT,
                         SM_E_LIMIT,  SM_E_NOFUNDS,  SM_E_STATE,  SM_E_IDEMPOTENCY,
                         SM_E_BUSY,   SM_E_OVERFLOW};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
        cr_assert_gt(x.errors[-codes[i] - 1], 0, "seed %llu: no %s reply", (unsigned long long)seed,
                     sm_errcode(codes[i]));
    cr_assert_gt(x.expired, 0);
    cr_assert_gt(x.retired, 0);
    if (determinism) {
        struct engine same, restored;
        cr_assert_eq(engine_init(&same, &cfg), 0);
        replay_log(&same, &x.log, 0);
        assert_same_snapshot(&x.h.e, &same);
        cr_assert_eq(engine_init(&restored, &cfg), 0);
        cr_assert_eq(engine_load(&restored, x.half.data, x.half.len), 0);
        replay_log(&restored, &x.log, engine_last_index(&restored));
        assert_same_snapshot(&x.h.e, &restored);
        struct engine batched;
        cr_assert_eq(engine_init(&batched, &cfg), 0);
        replay_log_batched(&batched, &x);
        assert_same_snapshot(&x.h.e, &batched);
        engine_free(&batched);
        engine_free(&same);
        engine_free(&restored);
    }
    sm_wbuf_free(&x.log);
    sm_wbuf_free(&x.half);
    sm_wbuf_free(&x.replies);
    engine_free(&x.h.e);
}

static uint64_t steps_total(void)
{
    const char *env = getenv("SHARDMART_MODEL_STEPS");
    return env ? strtoull(env, NULL, 10) : STEPS_DEFAULT;
}

static void init_names(void)
{
    static const char *const prefix[5] = {"sku", "ord", "tx", "acc", "usr"};
    for (int p = 0; p < 5; p++)
        for (uint32_t i = 0; i < pool_size[p]; i++)
            snprintf(names[p][i], sizeof names[p][i], "%s%u", prefix[p], i);
}

Test(model, engine_matches_the_model_seed_1_with_determinism)
{
    init_names();
    run_seed(1, steps_total() / 4, true);
}

Test(model, engine_matches_the_model_seed_2)
{
    init_names();
    run_seed(2, steps_total() / 4, false);
}

Test(model, engine_matches_the_model_seed_3)
{
    init_names();
    run_seed(3, steps_total() / 4, false);
}

Test(model, engine_matches_the_model_seed_4_with_determinism)
{
    init_names();
    run_seed(4, steps_total() / 4, true);
}
