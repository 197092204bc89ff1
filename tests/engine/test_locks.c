/*
 * Unit tests of the lock service (src/engine/locks.h): every call, every error, and the ordering
 * properties (FIFO wake order, writers not starved, reentrancy bound, expiry handing over, tokens
 * strictly increasing per lock, LOCK.CHECK). locks_check runs after every test's steps.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/locks.h"
#include "util/error.h"

static struct locks L;
static struct locks_event event_items[64];
static struct locks_events EV;
static uint64_t IX; /* the next log index */

static const struct locks_config CONFIG = {
    .sessions_max = 8,
    .locks_max = 8,
    .holds_max = 16,
    .waiters_max = 16,
    .permits_max = 10,
    .reentry_max = 3,
};

static void setup_with(const struct locks_config *c)
{
    cr_assert_eq(locks_init(&L, c), 0);
    EV.items = event_items;
    EV.cap = 64;
    EV.count = 0;
    IX = 1;
}

static void setup(void)
{
    setup_with(&CONFIG);
}

static void teardown(void)
{
    char why[200];
    int rc = locks_check(&L, why, sizeof why);
    cr_expect_eq(rc, 0, "invariant broken: %s", why);
    locks_free(&L);
}

/* cppcheck-suppress unknownMacro */
TestSuite(locks, .init = setup, .fini = teardown);

static void assert_ok(void)
{
    char why[200];
    int rc = locks_check(&L, why, sizeof why);
    cr_assert_eq(rc, 0, "invariant broken: %s", why);
}

/* ---- shorthands: each takes the next index, as a new record would ---- */

static int open_s(const char *s, int64_t now, int64_t ttl)
{
    int64_t exp;
    return locks_session_open(&L, IX++, now, s, strlen(s), ttl, &exp);
}

static int acq(const char *s, const char *name, int64_t now, enum locks_type type, uint64_t owner,
               int64_t wait_ms, uint64_t waiter, struct locks_grant *g)
{
    struct locks_acquire a = {
        .type = type, .owner = owner, .wait_ms = wait_ms, .waiter_id = waiter};
    if (type == LOCKS_PERMIT)
        a.permits = 2;
    return locks_acquire(&L, IX++, now, s, strlen(s), name, strlen(name), &a, g);
}

static int acq_args(const char *s, const char *name, int64_t now, const struct locks_acquire *a,
                    struct locks_grant *g)
{
    return locks_acquire(&L, IX++, now, s, strlen(s), name, strlen(name), a, g);
}

static struct locks_ref ref(const char *s, const char *name, uint64_t owner, uint64_t permit)
{
    struct locks_ref r = {s, strlen(s), name, strlen(name), owner, permit, 0, 0};
    return r;
}

static int rel(const char *s, const char *name, int64_t now, uint64_t owner, uint64_t permit)
{
    struct locks_ref r = ref(s, name, owner, permit);
    uint32_t remaining;
    return locks_release(&L, IX++, now, &r, &remaining, &EV);
}

static bool current(const char *name, uint64_t token)
{
    bool c;
    cr_assert_eq(locks_token_check(&L, name, strlen(name), token, &c), 0);
    return c;
}

static uint64_t granted(const char *s, const char *name, int64_t now, enum locks_type type,
                        uint64_t owner)
{
    struct locks_grant g;
    cr_assert_eq(acq(s, name, now, type, owner, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_GRANTED);
    return g.token;
}

/* ---- init and sessions ---- */

Test(locks_init, rejects_bad_configs)
{
    struct locks l;
    struct locks_config c = CONFIG;
    c.sessions_max = 0;
    cr_assert_eq(locks_init(&l, &c), SM_E_BADARG);
    c = CONFIG;
    c.permits_max = SM_LOCK_PERMITS_MAX + 1;
    cr_assert_eq(locks_init(&l, &c), SM_E_BADARG);
    c = CONFIG;
    c.reentry_max = SM_LOCK_REENTRY_MAX + 1;
    cr_assert_eq(locks_init(&l, &c), SM_E_BADARG);
    c = CONFIG;
    c.waiters_max = 0;
    cr_assert_eq(locks_init(&l, &c), SM_E_BADARG);
    cr_assert_eq(locks_init(&l, &CONFIG), 0);
    char why[100];
    cr_assert_eq(locks_check(&l, why, sizeof why), 0);
    locks_free(&l);
}

Test(locks, session_open_heartbeat_close)
{
    int64_t exp;
    cr_assert_eq(locks_session_open(&L, IX++, 1000, "a", 1, 500, &exp), 0);
    cr_assert_eq(exp, 1500);
    cr_assert_eq(open_s("a", 1000, 500), SM_E_EXISTS);
    cr_assert_eq(locks_session_heartbeat(&L, IX++, 1400, "a", 1, &exp), 0);
    cr_assert_eq(exp, 1900);
    cr_assert_eq(locks_session_heartbeat(&L, IX++, 1400, "b", 1, &exp), SM_E_NOTFOUND);
    cr_assert_eq(locks_session_close(&L, IX++, 1400, "a", 1, &EV), 0);
    cr_assert_eq(locks_session_close(&L, IX++, 1400, "a", 1, &EV), SM_E_NOTFOUND);
    cr_assert_eq(L.session_count, 0);
    cr_assert_eq(open_s("a", 1500, 500), 0);
}

Test(locks, session_bad_arguments)
{
    char long_id[SM_KEY_BYTES_MAX + 1];
    memset(long_id, 'x', sizeof long_id);
    int64_t exp;
    cr_assert_eq(locks_session_open(&L, IX, 0, "", 0, 100, &exp), SM_E_BADARG);
    cr_assert_eq(locks_session_open(&L, IX, 0, long_id, sizeof long_id, 100, &exp), SM_E_BADARG);
    cr_assert_eq(locks_session_open(&L, IX, 0, long_id, SM_KEY_BYTES_MAX, 100, &exp), 0);
    IX++;
    cr_assert_eq(open_s("a", 0, 0), SM_E_BADARG);
    cr_assert_eq(open_s("a", 0, -5), SM_E_BADARG);
    cr_assert_eq(open_s("a", 0, SM_LOCK_TTL_MS_MAX + 1), SM_E_BADARG);
    cr_assert_eq(open_s("a", 0, SM_LOCK_TTL_MS_MAX), 0);
    cr_assert_eq(locks_session_heartbeat(&L, IX, 0, "", 0, &exp), SM_E_BADARG);
    cr_assert_eq(locks_session_close(&L, IX, 0, long_id, sizeof long_id, &EV), SM_E_BADARG);
}

Test(locks, session_table_full_is_busy)
{
    char id[8];
    for (uint32_t i = 0; i < CONFIG.sessions_max; i++) {
        snprintf(id, sizeof id, "s%u", i);
        cr_assert_eq(open_s(id, 0, 100), 0);
    }
    cr_assert_eq(open_s("one-more", 0, 100), SM_E_BUSY);
    cr_assert_eq(L.session_count, CONFIG.sessions_max);
}

Test(locks, lapsed_session_is_gone_before_the_tick)
{
    int64_t exp;
    cr_assert_eq(open_s("a", 0, 100), 0);
    cr_assert_eq(locks_session_heartbeat(&L, IX, 100, "a", 1, &exp), SM_E_NOTFOUND);
    struct locks_grant g;
    cr_assert_eq(acq("a", "L", 100, LOCKS_EXCLUSIVE, 1, 0, 0, &g), SM_E_NOTFOUND);
    cr_assert_eq(open_s("a", 100, 100), SM_E_TRYAGAIN);
    cr_assert_eq(locks_tick(&L, IX++, 100, &EV), 0);
    cr_assert_eq(L.session_count, 0);
    cr_assert_eq(open_s("a", 100, 100), 0);
}

Test(locks, saturating_time_never_overflows)
{
    int64_t exp;
    cr_assert_eq(locks_session_open(&L, IX++, INT64_MAX - 10, "a", 1, 1000, &exp), 0);
    cr_assert_eq(exp, INT64_MAX - 1);
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .lease_ms = 1000};
    struct locks_grant g;
    cr_assert_eq(acq_args("a", "L", INT64_MAX - 10, &a, &g), 0);
    cr_assert_eq(g.status, LOCKS_GRANTED);
}

/* ---- exclusive locks ---- */

Test(locks, exclusive_try_grants_with_the_record_index)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    cr_assert_eq(open_s("b", 0, 1000), 0);
    uint64_t ix = IX;
    struct locks_grant g;
    cr_assert_eq(acq("a", "L", 0, LOCKS_EXCLUSIVE, 7, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_GRANTED);
    cr_assert_eq(g.token, ix);
    cr_assert_eq(g.count, 1);
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 7, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED);
    cr_assert_eq(acq("a", "L", 0, LOCKS_EXCLUSIVE, 8, 0, 0, &g), 0, "other owner, same session");
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED);
    cr_assert_eq(acq("a", "L", 0, LOCKS_EXCLUSIVE, 7, 0, 0, &g), SM_E_EXISTS);
    cr_assert(current("L", ix));
    cr_assert(!current("L", ix + 1));
    struct locks_info info;
    cr_assert_eq(locks_info(&L, "L", 1, &info), 0);
    cr_assert_eq(info.kind, LOCKS_KIND_EXCLUSIVE);
    cr_assert_eq(info.holders, 1);
    cr_assert_eq(info.token_max, ix);
    cr_assert_eq(rel("a", "L", 0, 7, 0), 0);
    cr_assert(!current("L", ix));
    cr_assert_eq(locks_info(&L, "L", 1, &info), SM_E_NOTFOUND, "an idle lock frees its row");
    cr_assert_eq(L.lock_count, 0);
}

Test(locks, not_granted_try_changes_nothing_and_keeps_the_index)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    cr_assert_eq(open_s("b", 0, 1000), 0);
    granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .owner = 1};
    /* The same index twice: allowed because the first call changed nothing. */
    cr_assert_eq(locks_acquire(&L, IX, 0, "b", 1, "L", 1, &a, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED);
    cr_assert_eq(locks_acquire(&L, IX, 0, "b", 1, "L", 1, &a, &g), 0);
    cr_assert_eq(L.index_min, IX);
}

Test(locks, reentrant_counts_up_to_the_bound)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .owner = 1, .reentrant = true};
    struct locks_grant g;
    cr_assert_eq(acq_args("a", "L", 0, &a, &g), 0);
    uint64_t token = g.token;
    for (uint32_t depth = 2; depth <= CONFIG.reentry_max; depth++) {
        cr_assert_eq(acq_args("a", "L", 0, &a, &g), 0);
        cr_assert_eq(g.status, LOCKS_GRANTED);
        cr_assert_eq(g.count, depth);
        cr_assert_eq(g.token, token, "reentry is not a new grant");
    }
    cr_assert_eq(acq_args("a", "L", 0, &a, &g), SM_E_LIMIT);
    struct locks_ref r = ref("a", "L", 1, 0);
    uint32_t remaining;
    for (uint32_t depth = CONFIG.reentry_max; depth > 0; depth--) {
        cr_assert_eq(locks_release(&L, IX++, 0, &r, &remaining, &EV), 0);
        cr_assert_eq(remaining, depth - 1);
        cr_assert_eq(current("L", token), depth > 1);
    }
    cr_assert_eq(locks_release(&L, IX++, 0, &r, &remaining, &EV), SM_E_NOTHELD);
}

Test(locks, release_is_checked_against_the_holder)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    cr_assert_eq(open_s("b", 0, 1000), 0);
    granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    cr_assert_eq(rel("a", "nope", 0, 1, 0), SM_E_NOTHELD);
    cr_assert_eq(rel("a", "L", 0, 2, 0), SM_E_NOTHELD);
    cr_assert_eq(rel("b", "L", 0, 1, 0), SM_E_NOTHELD);
    cr_assert_eq(rel("c", "L", 0, 1, 0), SM_E_NOTFOUND);
    cr_assert_eq(rel("", "L", 0, 1, 0), SM_E_BADARG);
    cr_assert_eq(rel("a", "", 0, 1, 0), SM_E_BADARG);
    cr_assert_eq(L.hold_count, 1);
    cr_assert_eq(rel("a", "L", 0, 1, 0), 0);
}

Test(locks, acquire_bad_arguments)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    struct locks_grant g;
    struct locks_acquire bad[] = {
        {.type = 0},
        {.type = 5},
        {.type = LOCKS_EXCLUSIVE, .wait_ms = -1},
        {.type = LOCKS_EXCLUSIVE, .wait_ms = SM_LOCK_TTL_MS_MAX + 1, .waiter_id = 1},
        {.type = LOCKS_EXCLUSIVE, .lease_ms = -1},
        {.type = LOCKS_EXCLUSIVE, .lease_ms = SM_LOCK_TTL_MS_MAX + 1},
        {.type = LOCKS_EXCLUSIVE, .wait_ms = 10, .waiter_id = 0},
        {.type = LOCKS_EXCLUSIVE, .permits = 1},
        {.type = LOCKS_PERMIT, .permits = 0},
        {.type = LOCKS_PERMIT, .permits = CONFIG.permits_max + 1},
        {.type = LOCKS_READ, .reentrant = true},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(acq_args("a", "L", 0, &bad[i], &g), SM_E_BADARG, "case %zu", i);
    struct locks_acquire ok = {.type = LOCKS_EXCLUSIVE};
    cr_assert_eq(locks_acquire(&L, IX, 0, "a", 1, "", 0, &ok, &g), SM_E_BADARG);
    cr_assert_eq(locks_acquire(&L, IX, 0, "", 0, "L", 1, &ok, &g), SM_E_BADARG);
    cr_assert_eq(acq_args("zz", "L", 0, &ok, &g), SM_E_NOTFOUND);
    cr_assert_eq(L.lock_count, 0);
}

Test(locks, kinds_do_not_mix)
{
    cr_assert_eq(open_s("a", 0, 1000), 0);
    granted("a", "M", 0, LOCKS_EXCLUSIVE, 1);
    granted("a", "RW", 0, LOCKS_READ, 1);
    granted("a", "S", 0, LOCKS_PERMIT, 1);
    struct locks_grant g;
    cr_assert_eq(acq("a", "M", 0, LOCKS_READ, 2, 0, 0, &g), SM_E_STATE);
    cr_assert_eq(acq("a", "RW", 0, LOCKS_EXCLUSIVE, 2, 0, 0, &g), SM_E_STATE);
    cr_assert_eq(acq("a", "S", 0, LOCKS_WRITE, 2, 0, 0, &g), SM_E_STATE);
    struct locks_acquire other_n = {.type = LOCKS_PERMIT, .permits = 3};
    cr_assert_eq(acq_args("a", "S", 0, &other_n, &g), SM_E_STATE);
}

Test(locks, fifo_wake_order_and_tokens_from_the_release)
{
    const char *s[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(open_s(s[i], 0, 10000), 0);
    uint64_t t0 = granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    for (int i = 1; i < 4; i++) {
        cr_assert_eq(acq(s[i], "L", 0, LOCKS_EXCLUSIVE, 1, 5000, 100 + (uint64_t)i, &g), 0);
        cr_assert_eq(g.status, LOCKS_QUEUED);
    }
    uint64_t prev = t0;
    for (int i = 0; i < 3; i++) {
        uint64_t ix = IX;
        EV.count = 0;
        cr_assert_eq(rel(s[i], "L", 10, 1, 0), 0);
        cr_assert_eq(EV.count, 1);
        cr_assert_eq(EV.items[0].kind, LOCKS_EVENT_GRANTED);
        cr_assert_eq(EV.items[0].waiter_id, 101 + (uint64_t)i, "woken in queue order");
        cr_assert_eq(EV.items[0].token, ix);
        cr_assert_eq(EV.items[0].name_len, 1);
        cr_assert_eq(EV.items[0].name[0], 'L');
        cr_assert_gt(EV.items[0].token, prev, "tokens strictly increase");
        cr_assert(current("L", ix));
        cr_assert(!current("L", prev));
        prev = ix;
        assert_ok();
    }
}

Test(locks, waiter_ids_and_duplicate_waits)
{
    cr_assert_eq(open_s("a", 0, 10000), 0);
    cr_assert_eq(open_s("b", 0, 10000), 0);
    granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 1, 100, 9, &g), 0);
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 2, 100, 9, &g), SM_E_EXISTS, "waiter id reused");
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 1, 100, 10, &g), SM_E_EXISTS,
                 "same owner waits twice");
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 2, 100, 10, &g), 0);
    cr_assert_eq(L.waiter_count, 2);
}

Test(locks, tokens_strictly_increase_across_row_frees)
{
    cr_assert_eq(open_s("a", 0, 100000), 0);
    uint64_t prev = 0;
    for (int i = 0; i < 50; i++) {
        uint64_t t = granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
        cr_assert_gt(t, prev);
        prev = t;
        cr_assert_eq(rel("a", "L", 0, 1, 0), 0);
        cr_assert_eq(L.lock_count, 0);
    }
}

/* ---- read-write locks ---- */

Test(locks, readers_share_and_a_queued_writer_blocks_later_readers)
{
    const char *s[] = {"r1", "r2", "w", "r3", "r4", "w2"};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(open_s(s[i], 0, 10000), 0);
    uint64_t t1 = granted("r1", "RW", 0, LOCKS_READ, 1);
    uint64_t t2 = granted("r2", "RW", 0, LOCKS_READ, 1);
    cr_assert_gt(t2, t1);
    struct locks_grant g;
    cr_assert_eq(acq("w", "RW", 0, LOCKS_WRITE, 1, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED);
    cr_assert_eq(acq("w", "RW", 0, LOCKS_WRITE, 1, 1000, 30, &g), 0);
    cr_assert_eq(g.status, LOCKS_QUEUED);
    cr_assert_eq(acq("r3", "RW", 0, LOCKS_READ, 1, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED, "a queued writer is not starved by new readers");
    cr_assert_eq(acq("r3", "RW", 0, LOCKS_READ, 1, 1000, 40, &g), 0);
    cr_assert_eq(acq("r4", "RW", 0, LOCKS_READ, 1, 1000, 41, &g), 0);
    cr_assert_eq(acq("w2", "RW", 0, LOCKS_WRITE, 1, 1000, 50, &g), 0);
    EV.count = 0;
    cr_assert_eq(rel("r1", "RW", 0, 1, 0), 0);
    cr_assert_eq(EV.count, 0, "a reader still holds");
    uint64_t ix = IX;
    cr_assert_eq(rel("r2", "RW", 0, 1, 0), 0);
    cr_assert_eq(EV.count, 1);
    cr_assert_eq(EV.items[0].waiter_id, 30);
    cr_assert_eq(EV.items[0].token, ix);
    EV.count = 0;
    ix = IX;
    cr_assert_eq(rel("w", "RW", 0, 1, 0), 0);
    cr_assert_eq(EV.count, 2, "both readers woken together, not the writer behind them");
    cr_assert_eq(EV.items[0].waiter_id, 40);
    cr_assert_eq(EV.items[1].waiter_id, 41);
    cr_assert_eq(EV.items[0].token, ix);
    cr_assert_eq(EV.items[1].token, ix, "readers woken by one record share its token");
    struct locks_info info;
    cr_assert_eq(locks_info(&L, "RW", 2, &info), 0);
    cr_assert_eq(info.holders, 2);
    cr_assert_eq(info.waiters, 1);
    cr_assert_eq(info.kind, LOCKS_KIND_RW);
}

Test(locks, writer_excludes_and_no_upgrade)
{
    cr_assert_eq(open_s("a", 0, 10000), 0);
    cr_assert_eq(open_s("b", 0, 10000), 0);
    granted("a", "RW", 0, LOCKS_WRITE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("b", "RW", 0, LOCKS_READ, 1, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED);
    cr_assert_eq(acq("a", "RW", 0, LOCKS_READ, 1, 0, 0, &g), SM_E_EXISTS);
    cr_assert_eq(rel("a", "RW", 0, 1, 0), 0);
    granted("a", "RW", 0, LOCKS_READ, 1);
    cr_assert_eq(acq("a", "RW", 0, LOCKS_WRITE, 1, 0, 0, &g), SM_E_EXISTS, "no upgrade");
}

/* ---- semaphores ---- */

Test(locks, semaphore_permits_have_ids_and_queue)
{
    const char *s[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(open_s(s[i], 0, 10000), 0);
    struct locks_grant g1, g2, g;
    cr_assert_eq(acq("a", "S", 0, LOCKS_PERMIT, 1, 0, 0, &g1), 0);
    cr_assert_eq(acq("a", "S", 0, LOCKS_PERMIT, 1, 0, 0, &g2), 0, "one owner, two permits");
    cr_assert_eq(g1.status, LOCKS_GRANTED);
    cr_assert_eq(g2.status, LOCKS_GRANTED);
    cr_assert_eq(g1.permit_id, g1.token << 16);
    cr_assert_neq(g1.permit_id, g2.permit_id);
    cr_assert_eq(acq("b", "S", 0, LOCKS_PERMIT, 1, 0, 0, &g), 0);
    cr_assert_eq(g.status, LOCKS_NOT_GRANTED, "N = 2 permits taken");
    cr_assert_eq(acq("b", "S", 0, LOCKS_PERMIT, 1, 1000, 21, &g), 0);
    cr_assert_eq(acq("c", "S", 0, LOCKS_PERMIT, 1, 1000, 22, &g), 0);
    cr_assert_eq(acq("d", "S", 0, LOCKS_PERMIT, 1, 1000, 23, &g), 0);
    cr_assert_eq(rel("a", "S", 0, 1, g1.permit_id + 1), SM_E_NOTHELD, "no such permit");
    cr_assert_eq(rel("b", "S", 0, 1, g1.permit_id), SM_E_NOTHELD, "another session's permit");
    EV.count = 0;
    uint64_t ix = IX;
    cr_assert_eq(rel("a", "S", 0, 99, g1.permit_id), 0, "permits are released by id, not owner");
    cr_assert_eq(EV.count, 1);
    cr_assert_eq(EV.items[0].waiter_id, 21);
    cr_assert_eq(EV.items[0].permit_id, ix << 16);
    /* Closing a holds the last of its permits: c takes it. Then d's wait is next. */
    EV.count = 0;
    ix = IX;
    cr_assert_eq(locks_session_close(&L, IX++, 0, "a", 1, &EV), 0);
    cr_assert_eq(EV.count, 1);
    cr_assert_eq(EV.items[0].waiter_id, 22);
    cr_assert_eq(EV.items[0].token, ix);
    cr_assert(current("S", ix));
}

Test(locks, several_permits_freed_by_one_record_share_the_token_with_ranks)
{
    const char *s[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(open_s(s[i], 0, 10000), 0);
    granted("a", "S", 0, LOCKS_PERMIT, 1);
    granted("a", "S", 0, LOCKS_PERMIT, 2);
    struct locks_grant g;
    cr_assert_eq(acq("b", "S", 0, LOCKS_PERMIT, 1, 1000, 31, &g), 0);
    cr_assert_eq(acq("c", "S", 0, LOCKS_PERMIT, 1, 1000, 32, &g), 0);
    EV.count = 0;
    uint64_t ix = IX;
    cr_assert_eq(locks_session_close(&L, IX++, 0, "a", 1, &EV), 0);
    cr_assert_eq(EV.count, 2);
    cr_assert_eq(EV.items[0].waiter_id, 31);
    cr_assert_eq(EV.items[1].waiter_id, 32);
    cr_assert_eq(EV.items[0].token, ix);
    cr_assert_eq(EV.items[1].token, ix);
    cr_assert_eq(EV.items[0].permit_id, ix << 16 | 0);
    cr_assert_eq(EV.items[1].permit_id, ix << 16 | 1);
    cr_assert_eq(rel("c", "S", 0, 0, ix << 16 | 1), 0);
}

/* ---- time: leases, deadlines, session expiry ---- */

Test(locks, expired_session_hands_its_lock_to_the_next_live_waiter)
{
    cr_assert_eq(open_s("a", 0, 100), 0);
    cr_assert_eq(open_s("b", 0, 100), 0);
    cr_assert_eq(open_s("c", 0, 10000), 0);
    granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("b", "L", 0, LOCKS_EXCLUSIVE, 1, 5000, 2, &g), 0);
    cr_assert_eq(acq("c", "L", 0, LOCKS_EXCLUSIVE, 1, 5000, 3, &g), 0);
    EV.count = 0;
    cr_assert_eq(locks_tick(&L, IX++, 99, &EV), 0);
    cr_assert_eq(EV.count, 0, "nothing due yet");
    uint64_t ix = IX;
    cr_assert_eq(locks_tick(&L, IX++, 100, &EV), 0);
    /* a and b lapse together: b's wait is cancelled, never granted, and c gets the lock once. */
    cr_assert_eq(EV.count, 2);
    cr_assert_eq(EV.items[0].kind, LOCKS_EVENT_CANCELLED);
    cr_assert_eq(EV.items[0].waiter_id, 2);
    cr_assert_eq(EV.items[1].kind, LOCKS_EVENT_GRANTED);
    cr_assert_eq(EV.items[1].waiter_id, 3);
    cr_assert_eq(EV.items[1].token, ix);
    cr_assert_eq(L.session_count, 1);
    cr_assert(current("L", ix));
}

Test(locks, wait_deadline_times_out_on_tick)
{
    cr_assert_eq(open_s("a", 0, 10000), 0);
    cr_assert_eq(open_s("b", 0, 10000), 0);
    granted("a", "L", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("b", "L", 10, LOCKS_EXCLUSIVE, 1, 50, 7, &g), 0);
    EV.count = 0;
    cr_assert_eq(locks_tick(&L, IX++, 59, &EV), 0);
    cr_assert_eq(EV.count, 0);
    cr_assert_eq(locks_tick(&L, IX++, 60, &EV), 0);
    cr_assert_eq(EV.count, 1);
    cr_assert_eq(EV.items[0].kind, LOCKS_EVENT_TIMEOUT);
    cr_assert_eq(EV.items[0].waiter_id, 7);
    cr_assert_eq(L.waiter_count, 0);
    EV.count = 0;
    cr_assert_eq(rel("a", "L", 60, 1, 0), 0);
    cr_assert_eq(EV.count, 0, "a timed-out waiter is not granted later");
}

Test(locks, grant_lease_expires_and_renew_extends_it)
{
    cr_assert_eq(open_s("a", 0, 100000), 0);
    cr_assert_eq(open_s("b", 0, 100000), 0);
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .owner = 1, .lease_ms = 100};
    struct locks_grant g;
    cr_assert_eq(acq_args("a", "L", 0, &a, &g), 0);
    struct locks_ref r = ref("a", "L", 1, 0);
    int64_t exp;
    cr_assert_eq(locks_renew(&L, IX++, 50, &r, 100, &exp), 0);
    cr_assert_eq(exp, 150);
    cr_assert_eq(locks_renew(&L, IX, 50, &r, -1, &exp), SM_E_BADARG);
    cr_assert_eq(locks_renew(&L, IX, 50, &r, SM_LOCK_TTL_MS_MAX + 1, &exp), SM_E_BADARG);
    struct locks_ref wrong = ref("b", "L", 1, 0);
    cr_assert_eq(locks_renew(&L, IX, 50, &wrong, 100, &exp), SM_E_NOTHELD);
    cr_assert_eq(acq("b", "L", 50, LOCKS_EXCLUSIVE, 1, 1000, 5, &g), 0);
    EV.count = 0;
    cr_assert_eq(locks_tick(&L, IX++, 149, &EV), 0);
    cr_assert_eq(EV.count, 0);
    /* Lapsed but not yet ticked: not held for its holder, still blocking others. */
    cr_assert_eq(locks_renew(&L, IX, 150, &r, 100, &exp), SM_E_NOTHELD);
    uint32_t rem;
    cr_assert_eq(locks_release(&L, IX, 150, &r, &rem, &EV), SM_E_NOTHELD);
    uint64_t ix = IX;
    cr_assert_eq(locks_tick(&L, IX++, 150, &EV), 0);
    cr_assert_eq(EV.count, 1);
    cr_assert_eq(EV.items[0].waiter_id, 5);
    cr_assert_eq(EV.items[0].token, ix);
    /* Renew with 0 makes the grant last as long as the session. */
    struct locks_ref rb = ref("b", "L", 1, 0);
    cr_assert_eq(locks_renew(&L, IX++, 200, &rb, 0, &exp), 0);
    cr_assert_eq(exp, INT64_MAX);
}

Test(locks, renew_permit_by_id)
{
    cr_assert_eq(open_s("a", 0, 100000), 0);
    struct locks_acquire a = {.type = LOCKS_PERMIT, .permits = 2, .lease_ms = 100};
    struct locks_grant g;
    cr_assert_eq(acq_args("a", "S", 0, &a, &g), 0);
    struct locks_ref r = ref("a", "S", 0, g.permit_id);
    int64_t exp;
    cr_assert_eq(locks_renew(&L, IX++, 90, &r, 100, &exp), 0);
    cr_assert_eq(exp, 190);
    r.permit_id++;
    cr_assert_eq(locks_renew(&L, IX, 90, &r, 100, &exp), SM_E_NOTHELD);
    EV.count = 0;
    cr_assert_eq(locks_tick(&L, IX++, 190, &EV), 0);
    cr_assert_eq(L.hold_count, 0);
    cr_assert_eq(L.lock_count, 0);
}

Test(locks, close_releases_everything_and_cancels_waits)
{
    cr_assert_eq(open_s("a", 0, 100000), 0);
    cr_assert_eq(open_s("b", 0, 100000), 0);
    granted("a", "L1", 0, LOCKS_EXCLUSIVE, 1);
    granted("a", "L2", 0, LOCKS_READ, 1);
    granted("b", "L3", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("a", "L3", 0, LOCKS_EXCLUSIVE, 1, 1000, 11, &g), 0);
    cr_assert_eq(acq("b", "L1", 0, LOCKS_EXCLUSIVE, 1, 1000, 12, &g), 0);
    EV.count = 0;
    cr_assert_eq(locks_session_close(&L, IX++, 0, "a", 1, &EV), 0);
    cr_assert_eq(EV.count, 2);
    cr_assert_eq(EV.items[0].kind, LOCKS_EVENT_CANCELLED);
    cr_assert_eq(EV.items[0].waiter_id, 11);
    cr_assert_eq(EV.items[1].kind, LOCKS_EVENT_GRANTED);
    cr_assert_eq(EV.items[1].waiter_id, 12);
    cr_assert_eq(L.lock_count, 2, "L2 freed");
    cr_assert_eq(L.hold_count, 2);
}

Test(locks, cancel_a_wait_and_wake_those_it_blocked)
{
    const char *s[] = {"r1", "w", "r2"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(open_s(s[i], 0, 10000), 0);
    granted("r1", "RW", 0, LOCKS_READ, 1);
    struct locks_grant g;
    cr_assert_eq(acq("w", "RW", 0, LOCKS_WRITE, 1, 1000, 1, &g), 0);
    cr_assert_eq(acq("r2", "RW", 0, LOCKS_READ, 1, 1000, 2, &g), 0);
    cr_assert_eq(locks_cancel(&L, IX, 0, "r2", 2, 1, &EV), SM_E_NOTFOUND, "not r2's wait");
    cr_assert_eq(locks_cancel(&L, IX, 0, "w", 1, 99, &EV), SM_E_NOTFOUND);
    cr_assert_eq(locks_cancel(&L, IX, 0, "x", 1, 1, &EV), SM_E_NOTFOUND);
    cr_assert_eq(locks_cancel(&L, IX, 0, "", 0, 1, &EV), SM_E_BADARG);
    EV.count = 0;
    uint64_t ix = IX;
    cr_assert_eq(locks_cancel(&L, IX++, 0, "w", 1, 1, &EV), 0);
    cr_assert_eq(EV.count, 2);
    cr_assert_eq(EV.items[0].kind, LOCKS_EVENT_CANCELLED);
    cr_assert_eq(EV.items[0].waiter_id, 1);
    cr_assert_eq(EV.items[1].kind, LOCKS_EVENT_GRANTED);
    cr_assert_eq(EV.items[1].waiter_id, 2);
    cr_assert_eq(EV.items[1].token, ix);
}

/* ---- limits: a full table is BUSY and changes nothing ---- */

static void save_to(struct sm_wbuf *w)
{
    sm_wbuf_init(w);
    cr_assert_eq(locks_save(&L, w), 0);
}

static void assert_unchanged(struct sm_wbuf *before)
{
    struct sm_wbuf after;
    save_to(&after);
    cr_assert_eq(after.len, before->len);
    cr_assert_eq(memcmp(after.data, before->data, after.len), 0);
    sm_wbuf_free(&after);
    sm_wbuf_free(before);
}

Test(locks, full_lock_table_is_busy_without_effect)
{
    cr_assert_eq(open_s("a", 0, 10000), 0);
    char name[8];
    for (uint32_t i = 0; i < CONFIG.locks_max; i++) {
        snprintf(name, sizeof name, "L%u", i);
        granted("a", name, 0, LOCKS_EXCLUSIVE, 1);
    }
    struct sm_wbuf before;
    save_to(&before);
    struct locks_grant g;
    cr_assert_eq(acq("a", "new", 0, LOCKS_EXCLUSIVE, 1, 0, 0, &g), SM_E_BUSY);
    assert_unchanged(&before);
}

Test(locks, full_hold_and_wait_tables_are_busy_without_effect)
{
    cr_assert_eq(open_s("a", 0, 10000), 0);
    cr_assert_eq(open_s("b", 0, 10000), 0);
    struct locks_acquire a = {.type = LOCKS_PERMIT, .permits = CONFIG.permits_max};
    struct locks_grant g;
    for (uint32_t i = 0; i < CONFIG.holds_max; i++)
        cr_assert_eq(acq_args("a", i < CONFIG.permits_max ? "S" : "T", 0, &a, &g), 0);
    struct sm_wbuf before;
    save_to(&before);
    cr_assert_eq(acq_args("b", "T", 0, &a, &g), SM_E_BUSY, "T has a free permit, no hold row");
    assert_unchanged(&before);
    a.wait_ms = 1000;
    for (uint32_t i = 0; i < CONFIG.waiters_max; i++) {
        a.waiter_id = 1 + i;
        cr_assert_eq(acq_args("b", "S", 0, &a, &g), 0);
        cr_assert_eq(g.status, LOCKS_QUEUED);
    }
    save_to(&before);
    a.waiter_id = 1000;
    cr_assert_eq(acq_args("b", "S", 0, &a, &g), SM_E_BUSY);
    assert_unchanged(&before);
}

Test(locks, promotions_never_need_a_row)
{
    /* holds_max 1: a writer holds, two readers wait; the release grants both readers (2 holds,
     * above holds_max, in rows their waits already had), then a new wait still finds no row. */
    struct locks_config c = CONFIG;
    c.holds_max = 1;
    c.waiters_max = 2;
    locks_free(&L);
    setup_with(&c);
    cr_assert_eq(open_s("w", 0, 10000), 0);
    cr_assert_eq(open_s("r", 0, 10000), 0);
    granted("w", "RW", 0, LOCKS_WRITE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("r", "RW", 0, LOCKS_READ, 1, 1000, 1, &g), 0);
    cr_assert_eq(acq("r", "RW", 0, LOCKS_READ, 2, 1000, 2, &g), 0);
    EV.count = 0;
    cr_assert_eq(rel("w", "RW", 0, 1, 0), 0);
    cr_assert_eq(EV.count, 2);
    cr_assert_eq(L.hold_count, 2);
    cr_assert_eq(acq("w", "RW", 0, LOCKS_WRITE, 1, 1000, 3, &g), 0);
    cr_assert_eq(acq("w", "RW", 0, LOCKS_WRITE, 2, 1000, 4, &g), SM_E_BUSY, "all rows used");
    cr_assert_eq(acq("w", "X", 0, LOCKS_WRITE, 1, 0, 0, &g), SM_E_BUSY, "holds_max reached");
}

/* ---- snapshots ---- */

/* Builds one state two ways (different row layouts) and checks the snapshots are identical. */
static void build_state(bool scrambled)
{
    if (scrambled) {
        /* Fill and empty rows first so later rows land elsewhere. */
        cr_assert_eq(open_s("zz", 0, 10000), 0);
        granted("zz", "tmp1", 0, LOCKS_EXCLUSIVE, 1);
        granted("zz", "tmp2", 0, LOCKS_READ, 1);
    }
    cr_assert_eq(open_s("b", 0, 10000), 0);
    cr_assert_eq(open_s("a", 0, 10000), 0);
    if (scrambled)
        cr_assert_eq(locks_session_close(&L, IX++, 0, "zz", 2, &EV), 0);
    else
        IX += 3 + 1;
}

Test(locks, snapshot_bytes_do_not_depend_on_row_layout)
{
    struct sm_wbuf w1, w2;
    build_state(false);
    uint64_t ix = IX;
    granted("a", "M", 0, LOCKS_EXCLUSIVE, 1);
    struct locks_grant g;
    cr_assert_eq(acq("b", "M", 0, LOCKS_EXCLUSIVE, 1, 100, 5, &g), 0);
    save_to(&w1);
    locks_free(&L);
    setup();
    build_state(true);
    cr_assert_eq(IX, ix);
    granted("a", "M", 0, LOCKS_EXCLUSIVE, 1);
    cr_assert_eq(acq("b", "M", 0, LOCKS_EXCLUSIVE, 1, 100, 5, &g), 0);
    save_to(&w2);
    cr_assert_eq(w1.len, w2.len);
    cr_assert_eq(memcmp(w1.data, w2.data, w1.len), 0);
    sm_wbuf_free(&w1);
    sm_wbuf_free(&w2);
}

static void build_rich_state(void)
{
    const char *s[] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(open_s(s[i], 0, 1000 + i), 0);
    struct locks_acquire re = {
        .type = LOCKS_EXCLUSIVE, .owner = 1, .reentrant = true, .lease_ms = 500};
    struct locks_grant g;
    cr_assert_eq(acq_args("a", "M", 0, &re, &g), 0);
    cr_assert_eq(acq_args("a", "M", 0, &re, &g), 0);
    cr_assert_eq(acq("b", "M", 0, LOCKS_EXCLUSIVE, 2, 300, 1, &g), 0);
    granted("a", "RW", 0, LOCKS_READ, 1);
    granted("b", "RW", 0, LOCKS_READ, 1);
    cr_assert_eq(acq("c", "RW", 0, LOCKS_WRITE, 1, 300, 2, &g), 0);
    cr_assert_eq(acq("a", "RW", 0, LOCKS_READ, 5, 300, 3, &g), 0);
    granted("c", "S", 0, LOCKS_PERMIT, 1);
    granted("c", "S", 0, LOCKS_PERMIT, 1);
    cr_assert_eq(acq("a", "S", 0, LOCKS_PERMIT, 1, 300, 4, &g), 0);
}

Test(locks, save_load_save_round_trips_and_behaves_the_same)
{
    build_rich_state();
    struct sm_wbuf w1, w2;
    save_to(&w1);
    struct locks copy;
    cr_assert_eq(locks_init(&copy, &CONFIG), 0);
    struct sm_rbuf r;
    sm_rbuf_init(&r, w1.data, w1.len);
    cr_assert_eq(locks_load(&copy, &r), 0);
    cr_assert_eq(sm_rbuf_left(&r), 0);
    sm_wbuf_init(&w2);
    cr_assert_eq(locks_save(&copy, &w2), 0);
    cr_assert_eq(w1.len, w2.len);
    cr_assert_eq(memcmp(w1.data, w2.data, w1.len), 0);
    /* The same tick on both gives the same state. */
    struct locks_event items2[64];
    struct locks_events ev2 = {items2, 0, 64};
    EV.count = 0;
    cr_assert_eq(locks_tick(&L, IX, 1001, &EV), 0);
    cr_assert_eq(locks_tick(&copy, IX, 1001, &ev2), 0);
    cr_assert_eq(EV.count, ev2.count);
    cr_assert_gt(EV.count, 0);
    sm_wbuf_free(&w1);
    sm_wbuf_free(&w2);
    save_to(&w1);
    sm_wbuf_init(&w2);
    cr_assert_eq(locks_save(&copy, &w2), 0);
    cr_assert_eq(w1.len, w2.len);
    cr_assert_eq(memcmp(w1.data, w2.data, w1.len), 0);
    sm_wbuf_free(&w1);
    sm_wbuf_free(&w2);
    locks_free(&copy);
}

Test(locks, load_rejects_every_truncation_and_survives_every_byte_flip)
{
    build_rich_state();
    struct sm_wbuf w;
    save_to(&w);
    struct locks copy;
    cr_assert_eq(locks_init(&copy, &CONFIG), 0);
    for (size_t n = 0; n < w.len; n++) {
        struct sm_rbuf r;
        sm_rbuf_init(&r, w.data, n);
        cr_assert_eq(locks_load(&copy, &r), SM_E_CORRUPT, "prefix of %zu bytes", n);
        cr_assert_eq(copy.session_count, 0, "a failed load leaves the state empty");
    }
    cr_assert_gt(w.len, 0);
    uint8_t *bytes = malloc(w.len + 1); /* + 1: the analyzer cannot see that w.len > 0 */
    for (size_t i = 0; i < w.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(bytes, w.data, w.len);
            bytes[i] ^= (uint8_t)(1u << bit);
            struct sm_rbuf r;
            sm_rbuf_init(&r, bytes, w.len);
            int rc = locks_load(&copy, &r);
            char why[200];
            cr_assert_eq(locks_check(&copy, why, sizeof why), 0, "%s", why);
            if (rc != 0)
                continue;
            /* Accepted: it must be canonical, so it saves back to exactly the bytes read. */
            struct sm_wbuf again;
            sm_wbuf_init(&again);
            cr_assert_eq(locks_save(&copy, &again), 0);
            size_t used = w.len - sm_rbuf_left(&r);
            cr_assert_eq(again.len, used);
            cr_assert_eq(memcmp(again.data, bytes, used), 0, "byte %zu bit %d", i, bit);
            sm_wbuf_free(&again);
        }
    }
    free(bytes);
    sm_wbuf_free(&w);
    locks_free(&copy);
}

Test(locks, load_into_a_smaller_config_is_busy)
{
    build_rich_state();
    struct sm_wbuf w;
    save_to(&w);
    struct locks_config small[4] = {CONFIG, CONFIG, CONFIG, CONFIG};
    small[0].sessions_max = 2;
    small[1].locks_max = 2;
    small[2].waiters_max = 3;
    small[3].permits_max = 1;
    for (int i = 0; i < 4; i++) {
        struct locks copy;
        cr_assert_eq(locks_init(&copy, &small[i]), 0);
        struct sm_rbuf r;
        sm_rbuf_init(&r, w.data, w.len);
        cr_assert_eq(locks_load(&copy, &r), SM_E_BUSY, "config %d", i);
        locks_free(&copy);
    }
    sm_wbuf_free(&w);
}

Test(locks, check_names_a_broken_invariant)
{
    build_rich_state();
    char why[200];
    assert_ok();
    L.hold_count++;
    cr_assert_eq(locks_check(&L, why, sizeof why), SM_E_CORRUPT);
    cr_assert(strstr(why, "hold_count") != NULL, "%s", why);
    L.hold_count--;
    L.index_min = 2; /* tokens must stay below the next index */
    cr_assert_eq(locks_check(&L, why, sizeof why), SM_E_CORRUPT);
    cr_assert(strstr(why, "token") != NULL, "%s", why);
    L.index_min = IX;
    assert_ok();
}

Test(locks, token_check_bad_name)
{
    bool c = true;
    cr_assert_eq(locks_token_check(&L, "", 0, 1, &c), SM_E_BADARG);
    cr_assert_eq(locks_token_check(&L, "x", 1, 1, &c), 0);
    cr_assert(!c);
    struct locks_info info;
    cr_assert_eq(locks_info(&L, "", 0, &info), SM_E_BADARG);
}
