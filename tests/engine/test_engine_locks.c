/* The engine's integration of the lock service: records, dispatch, idempotency, grant events
 * for parked waiters, tick-driven expiry, reads, and the snapshot section. */
#include "engine_harness.h"

static const struct engine_reply *session(struct harness *h, const char *id, int64_t ttl)
{
    struct engine_cmd c = {.type = ENGINE_LOCK_SESSION_OPEN, .key = K(id), .num = ttl};
    return run(h, &c);
}

static const struct engine_reply *acquire(struct harness *h, const char *s, const char *name,
                                          int64_t wait_ms, uint64_t waiter)
{
    struct engine_cmd c = {.type = ENGINE_LOCK_ACQUIRE,
                           .key = K(s),
                           .key2 = K(name),
                           .lock_type = LOCKS_EXCLUSIVE,
                           .owner = 1,
                           .num = wait_ms,
                           .waiter_id = waiter};
    return run(h, &c);
}

static const struct engine_reply *release(struct harness *h, const char *s, const char *name)
{
    struct engine_cmd c = {.type = ENGINE_LOCK_RELEASE, .key = K(s), .key2 = K(name), .owner = 1};
    return run(h, &c);
}

Test(engine_locks, grant_token_is_the_log_index_and_release_wakes_the_waiter)
{
    struct harness h;
    harness_init(&h);
    assert_int(session(&h, "s1", 10000), h.now_ms + 10000);
    assert_int(session(&h, "s2", 10000), h.now_ms + 10000);
    const struct engine_reply *r = acquire(&h, "s1", "L", 0, 0);
    cr_assert_str_eq(field_str(r, "status"), "GRANTED");
    cr_assert_eq(field(r, "token"), (int64_t)h.index);
    uint64_t first = (uint64_t)field(r, "token");
    r = acquire(&h, "s2", "L", 0, 0);
    cr_assert_str_eq(field_str(r, "status"), "NOT_GRANTED");
    r = acquire(&h, "s2", "L", 5000, 42);
    cr_assert_str_eq(field_str(r, "status"), "QUEUED");
    cr_assert_eq(h.out.events_count, 0);
    assert_int(release(&h, "s1", "L"), 0);
    cr_assert_eq(h.out.events_count, 1);
    cr_assert_eq(h.out.events[0].kind, LOCKS_EVENT_GRANTED);
    cr_assert_eq(h.out.events[0].waiter_id, 42);
    cr_assert_gt(h.out.events[0].token, first);
    /* LOCK.CHECK and LOCK.INFO */
    struct engine_reply rr;
    struct engine_cmd c = {.type = ENGINE_LOCK_CHECK, .key = K("L"), .token = first};
    engine_read(&h.e, &c, &rr);
    cr_assert_eq(rr.kind, ENGINE_REPLY_INT);
    cr_assert_eq(rr.value, 0);
    c.token = h.out.events[0].token;
    engine_read(&h.e, &c, &rr);
    cr_assert_eq(rr.value, 1);
    c.type = ENGINE_LOCK_INFO;
    engine_read(&h.e, &c, &rr);
    cr_assert_eq(field(&rr, "holders"), 1);
    cr_assert_str_eq(field_str(&rr, "kind"), "EXCLUSIVE");
    assert_err(read_cmd(&h, ENGINE_LOCK_INFO, "nope"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(engine_locks, acquire_replays_the_same_grant)
{
    struct harness h;
    harness_init(&h);
    assert_int(session(&h, "s1", 10000), h.now_ms + 10000);
    struct engine_cmd c = {.type = ENGINE_LOCK_ACQUIRE,
                           .request_id = K("acq-1"),
                           .key = K("s1"),
                           .key2 = K("L"),
                           .lock_type = LOCKS_EXCLUSIVE,
                           .owner = 1};
    int64_t token = field(run(&h, &c), "token");
    const struct engine_reply *r = run(&h, &c);
    cr_assert(r->replayed);
    cr_assert_eq(field(r, "token"), token);
    cr_assert_str_eq(field_str(r, "status"), "GRANTED");
    engine_free(&h.e);
}

Test(engine_locks, session_expiry_on_tick_hands_the_lock_on)
{
    struct harness h;
    harness_init(&h);
    assert_int(session(&h, "s1", 1000), h.now_ms + 1000);
    assert_int(session(&h, "s2", 100000), h.now_ms + 100000);
    cr_assert_str_eq(field_str(acquire(&h, "s1", "L", 0, 0), "status"), "GRANTED");
    cr_assert_str_eq(field_str(acquire(&h, "s2", "L", 50000, 7), "status"), "QUEUED");
    struct engine_cmd hb = {.type = ENGINE_LOCK_HEARTBEAT, .key = K("s1")};
    assert_int(run(&h, &hb), h.now_ms + 1000);
    const struct engine_reply *r = tick(&h, h.now_ms + 2000);
    cr_assert_eq(field(r, "lock_events"), 1);
    cr_assert_eq(h.out.events_count, 1);
    cr_assert_eq(h.out.events[0].waiter_id, 7);
    cr_assert_eq(h.out.events[0].kind, LOCKS_EVENT_GRANTED);
    assert_err(release(&h, "s1", "L"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(engine_locks, renew_cancel_close_and_errors)
{
    struct harness h;
    harness_init(&h);
    assert_int(session(&h, "s1", 10000), h.now_ms + 10000);
    assert_err(session(&h, "s1", 10000), SM_E_EXISTS);
    assert_int(session(&h, "s2", 10000), h.now_ms + 10000);
    cr_assert_str_eq(field_str(acquire(&h, "s1", "L", 0, 0), "status"), "GRANTED");
    struct engine_cmd rn = {
        .type = ENGINE_LOCK_RENEW, .key = K("s1"), .key2 = K("L"), .owner = 1, .num = 500};
    assert_int(run(&h, &rn), h.now_ms + 500);
    rn.key = K("s2");
    rn.request_id = (struct engine_key){0}; /* a new request, not a replay with other args */
    assert_err(run(&h, &rn), SM_E_NOTHELD);
    cr_assert_str_eq(field_str(acquire(&h, "s2", "L", 5000, 9), "status"), "QUEUED");
    struct engine_cmd cn = {.type = ENGINE_LOCK_CANCEL, .key = K("s2"), .waiter_id = 9};
    assert_ok(run(&h, &cn));
    cr_assert_eq(h.out.events_count, 1);
    cr_assert_eq(h.out.events[0].kind, LOCKS_EVENT_CANCELLED);
    struct engine_cmd sem = {.type = ENGINE_LOCK_ACQUIRE,
                             .key = K("s2"),
                             .key2 = K("L"),
                             .lock_type = LOCKS_PERMIT,
                             .permits = 2};
    assert_err_msg(run(&h, &sem), SM_E_STATE, "the name is a lock of another kind");
    struct engine_cmd cl = {.type = ENGINE_LOCK_SESSION_CLOSE, .key = K("s1")};
    assert_ok(run(&h, &cl));
    cl.request_id = (struct engine_key){0};
    assert_err(run(&h, &cl), SM_E_NOTFOUND);
    assert_err(acquire(&h, "nope", "L", 0, 0), SM_E_NOTFOUND);
    engine_free(&h.e);
}

/* engine_apply_batch hands each record's events to the callback while they are valid: a batch
 * of acquire, queued acquire and release sees the waiter's grant on the third record, with the
 * release's own log index as its token. */
struct batch_seen {
    uint32_t calls;
    uint64_t granted_waiter, granted_token;
    int kinds[3];
};

static void batch_seen_fn(void *ctx, uint32_t i, const struct engine_output *out)
{
    struct batch_seen *b = ctx;
    cr_assert_eq(i, b->calls);
    b->kinds[i] = out->reply.kind;
    cr_assert_eq(out->events_count, i == 2 ? 1u : 0u);
    if (i == 2) {
        b->granted_waiter = out->events[0].waiter_id;
        b->granted_token = out->events[0].token;
    }
    b->calls++;
}

Test(engine_locks, batch_hands_each_record_its_events)
{
    struct harness h;
    harness_init(&h);
    assert_int(session(&h, "s1", 10000), h.now_ms + 10000);
    assert_int(session(&h, "s2", 10000), h.now_ms + 10000);
    struct engine_cmd cmds[3] = {
        {.type = ENGINE_LOCK_ACQUIRE,
         .request_id = K("b1"),
         .key = K("s1"),
         .key2 = K("L"),
         .lock_type = LOCKS_EXCLUSIVE,
         .owner = 1},
        {.type = ENGINE_LOCK_ACQUIRE,
         .request_id = K("b2"),
         .key = K("s2"),
         .key2 = K("L"),
         .lock_type = LOCKS_EXCLUSIVE,
         .owner = 1,
         .num = 5000,
         .waiter_id = 42},
        {.type = ENGINE_LOCK_RELEASE,
         .request_id = K("b3"),
         .key = K("s1"),
         .key2 = K("L"),
         .owner = 1},
    };
    static uint8_t bytes[3][SM_ENGINE_RECORD_BYTES_MAX];
    struct engine_record recs[3];
    for (int i = 0; i < 3; i++) {
        size_t len;
        cr_assert_eq(engine_encode(&cmds[i], bytes[i], sizeof bytes[i], &len), 0);
        recs[i] = (struct engine_record){bytes[i], len};
    }
    struct batch_seen b = {0};
    uint64_t first = h.index + 1;
    engine_apply_batch(&h.e, first, h.now_ms, recs, 3, batch_seen_fn, &b);
    cr_assert_eq(b.calls, 3);
    cr_assert_eq(b.kinds[0], ENGINE_REPLY_FIELDS);
    cr_assert_eq(b.kinds[1], ENGINE_REPLY_FIELDS);
    cr_assert_eq(b.kinds[2], ENGINE_REPLY_INT);
    cr_assert_eq(b.granted_waiter, 42);
    cr_assert_eq(b.granted_token, first + 2);
    cr_assert_eq(engine_last_index(&h.e), first + 2);
    char why[256];
    cr_assert(engine_check(&h.e, why, sizeof why), "%s", why);
    /* An empty batch changes nothing. */
    engine_apply_batch(&h.e, first + 3, h.now_ms, recs, 0, batch_seen_fn, &b);
    cr_assert_eq(b.calls, 3);
    cr_assert_eq(engine_last_index(&h.e), first + 2);
    engine_free(&h.e);
}

/* A batch far longer than engine_apply_batch's groups (it prepares and fetches records a group
 * ahead, in a ring of two groups) replies exactly as the same records applied one by one, and
 * ends in the same state: grants, queueing and hand-overs, replays of ids earlier in the same
 * batch (same and other arguments), errors, a malformed record and ticks, at every position.
 * Run with idempotency rings of several sizes: one the batch never fills, and ones it fills
 * early, so most records evict the oldest id (whose index cells the batch fetches ahead from a
 * guess of the ring's head that records not remembered make wrong), at a size that is a
 * multiple of the group and at one that is not. */
struct batch_replies {
    struct engine_output got[200];
    uint64_t waiters[200]; /* the first event's waiter id, 0 when none */
    uint32_t calls;
};

static void batch_record_fn(void *ctx, uint32_t i, const struct engine_output *out)
{
    struct batch_replies *b = ctx;
    cr_assert_eq(i, b->calls);
    b->got[i] = *out;
    b->waiters[i] = out->events_count > 0 ? out->events[0].waiter_id : 0;
    b->calls++;
}

static void long_batch_case(uint32_t request_ids_max)
{
    enum { N = 200 };
    static uint8_t bytes[N][256];
    static char ids[N][16];
    struct engine_record recs[N];
    const char *sessions[] = {"s0", "s1", "s2"};
    const char *names[] = {"L0", "L1", "L2"};
    uint64_t x = 12345;
    for (uint32_t i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        struct engine_cmd c = {.key = K(sessions[x % 3]),
                               .key2 = K(names[(x >> 8) % 3]),
                               .owner = 1,
                               .lock_type = LOCKS_EXCLUSIVE};
        snprintf(ids[i], sizeof ids[i], "r%u", i);
        c.request_id = K(ids[i]);
        uint32_t what = i > 3 ? (uint32_t)(x >> 16) % 10 : 0;
        uint32_t earlier = i > 3 ? 3 + (uint32_t)(x >> 24) % (i - 3) : 0; /* in 3..i-1 */
        if (i < 3) {
            c = (struct engine_cmd){.type = ENGINE_LOCK_SESSION_OPEN,
                                    .key = K(sessions[i]),
                                    .request_id = K(ids[i]),
                                    .num = 60000};
        } else if (what <= 2) {
            c.type = ENGINE_LOCK_ACQUIRE;
            c.num = what == 2 ? 5000 : 0; /* try, or queue */
            c.waiter_id = i;
        } else if (what <= 5) {
            c.type = ENGINE_LOCK_RELEASE;
        } else if (what == 6) {
            /* A replay of an earlier record of this batch: its bytes again. */
            uint32_t j = earlier;
            memcpy(bytes[i], recs[j].data, recs[j].len);
            recs[i] = (struct engine_record){bytes[i], recs[j].len};
            continue;
        } else if (what == 7) {
            c.type = ENGINE_LOCK_RENEW; /* on odd records: an earlier id, other arguments */
            c.num = 100;
            if (i % 2)
                c.request_id = K(ids[earlier]);
        } else if (what == 8) {
            c.type = ENGINE_TICK;
        } else {
            bytes[i][0] = 0xff; /* malformed */
            recs[i] = (struct engine_record){bytes[i], 1};
            continue;
        }
        size_t len;
        cr_assert_eq(engine_encode(&c, bytes[i], sizeof bytes[i], &len), 0, "record %u", i);
        recs[i] = (struct engine_record){bytes[i], len};
    }
    struct harness one, batch;
    struct engine_config cfg = harness_config();
    cfg.request_ids_max = request_ids_max;
    harness_init_with(&one, &cfg);
    harness_init_with(&batch, &cfg);
    static struct batch_replies b;
    memset(&b, 0, sizeof b);
    engine_apply_batch(&batch.e, 1, one.now_ms, recs, N, batch_record_fn, &b);
    cr_assert_eq(b.calls, N);
    uint32_t granted = 0, replayed = 0, handed = 0;
    for (uint32_t i = 0; i < N; i++) {
        const struct engine_reply *w = apply_raw(&one, recs[i].data, recs[i].len);
        const struct engine_reply *g = &b.got[i].reply;
        cr_assert_eq(g->kind, w->kind, "record %u", i);
        cr_assert_eq(g->err, w->err, "record %u", i);
        cr_assert_eq(g->value, w->value, "record %u", i);
        cr_assert_eq(g->replayed, w->replayed, "record %u", i);
        cr_assert_eq(g->fields_count, w->fields_count, "record %u", i);
        for (uint32_t f = 0; f < w->fields_count; f++)
            cr_assert_eq(g->fields[f].value, w->fields[f].value, "record %u", i);
        cr_assert_eq(b.got[i].events_count, one.out.events_count, "record %u", i);
        cr_assert_eq(b.waiters[i], one.out.events_count ? one.out.events[0].waiter_id : 0);
        granted += w->kind == ENGINE_REPLY_FIELDS && w->fields[1].value != 0;
        replayed += w->replayed;
        handed += one.out.events_count > 0;
    }
    /* The stream did exercise what it is meant to. */
    cr_assert_gt(granted, 5);
    cr_assert_gt(replayed, 5);
    cr_assert_gt(handed, 0);
    if (request_ids_max < N / 2) /* the ring filled and evicted ids for most of the batch */
        cr_assert_eq(batch.e.requests_count, request_ids_max);
    harness_checked(&batch);
    struct sm_wbuf s1, s2;
    harness_save(&one.e, &s1);
    harness_save(&batch.e, &s2);
    cr_assert_eq(s1.len, s2.len);
    cr_assert(memcmp(s1.data, s2.data, s1.len) == 0, "snapshots differ");
    sm_wbuf_free(&s1);
    sm_wbuf_free(&s2);
    engine_free(&one.e);
    engine_free(&batch.e);
}

Test(engine_locks, long_batch_replies_as_one_by_one)
{
    long_batch_case(1000); /* never full */
    long_batch_case(64);   /* full after about a third of the batch: 4 groups */
    long_batch_case(67);   /* full, and the evictions not aligned with the groups */
    long_batch_case(40);   /* full, too small for the eviction fetch (under 4 groups) */
}
