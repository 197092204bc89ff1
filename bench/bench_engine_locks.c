/*
 * Lock service speed, in process, on one core: exclusive acquire + release pairs per second
 * through locks_acquire/locks_release (session lookup, lock lookup, row create and free, fencing
 * token), the target being >= 3,000,000 pairs/s (issue 3). Workloads:
 *   hot      one lock name, one session: acquire, release, again (the row is created and freed
 *            each time, since an idle lock keeps no row)
 *   spread   10,000 lock names in turn, 64 sessions
 *   handoff  two sessions on one lock: each release hands the lock to the other's queued wait
 *            (acquire with wait, release, grant event), counted per release
 * The peer measured in the same run is an uncontended pthread mutex lock + unlock pair: the cost
 * of a process-local lock with no names, sessions, leases or tokens, i.e. a floor, not a rival.
 * (Redis SET NX PX + Lua release over loopback is measured by bench/peers/run.)
 *
 * Prints the median of RUNS runs of each and the ratio to the peer. The machine is shared and
 * noisy: compare ratios and rerun before believing a change of a few percent.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/locks.h"
#include "util/assert.h"
#include "bench_util.h"

#define RUNS   7
#define PAIRS  2000000 /* per run: ~0.3-1 s */
#define NAMES  10000
#define OWNERS 64

static const struct locks_config CONFIG = {
    .sessions_max = 1024,
    .locks_max = NAMES * 2,
    .holds_max = NAMES * 2,
    .waiters_max = 1024,
    .permits_max = 16,
    .reentry_max = 16,
};

static struct locks_event event_items[1024];

static char names[NAMES][16];
static size_t name_lens[NAMES];
static char sessions[OWNERS][16];
static size_t session_lens[OWNERS];

static void setup(struct locks *l, uint64_t *index)
{
    ASSERT(locks_init(l, &CONFIG) == 0);
    for (int i = 0; i < NAMES; i++)
        name_lens[i] = (size_t)snprintf(names[i], sizeof names[i], "lock:%d", i);
    for (int i = 0; i < OWNERS; i++) {
        session_lens[i] = (size_t)snprintf(sessions[i], sizeof sessions[i], "sess:%d", i);
        int64_t exp;
        ASSERT(locks_session_open(l, (*index)++, 0, sessions[i], session_lens[i],
                                  SM_LOCK_TTL_MS_MAX, &exp) == 0);
    }
}

/* Pairs per second over PAIRS acquire+release pairs; spread_names picks the name and session by
 * the pair number (1 = the hot lock). */
static double run_pairs(int spread_names)
{
    struct locks l;
    uint64_t index = 1;
    setup(&l, &index);
    struct locks_events ev = {event_items, 0, 1024};
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .owner = 1};
    double t0 = bench_now_s();
    for (uint32_t i = 0; i < PAIRS; i++) {
        uint32_t n = i % (uint32_t)spread_names, s = i % OWNERS * (spread_names > 1);
        struct locks_grant g;
        int rc = locks_acquire(&l, index++, 0, sessions[s], session_lens[s], names[n], name_lens[n],
                               &a, &g);
        ASSERT(rc == 0 && g.status == LOCKS_GRANTED);
        struct locks_ref ref = {sessions[s], session_lens[s], names[n], name_lens[n], 1, 0, 0, 0};
        uint32_t remaining;
        rc = locks_release(&l, index++, 0, &ref, &remaining, &ev);
        ASSERT(rc == 0 && remaining == 0);
    }
    double dt = bench_now_s() - t0;
    ASSERT(l.hold_count == 0 && l.lock_count == 0);
    locks_free(&l);
    return PAIRS / dt;
}

/* Two sessions take turns on one lock: every release grants the other's queued wait. */
static double run_handoff(void)
{
    struct locks l;
    uint64_t index = 1;
    setup(&l, &index);
    struct locks_events ev = {event_items, 0, 1024};
    struct locks_grant g;
    struct locks_acquire a = {.type = LOCKS_EXCLUSIVE, .owner = 1};
    ASSERT(locks_acquire(&l, index++, 0, sessions[0], session_lens[0], names[0], name_lens[0], &a,
                         &g) == 0);
    a.wait_ms = 1000;
    double t0 = bench_now_s();
    for (uint32_t i = 0; i < PAIRS; i++) {
        uint32_t holder = i & 1, other = holder ^ 1;
        a.waiter_id = i + 1;
        ASSERT(locks_acquire(&l, index++, 0, sessions[other], session_lens[other], names[0],
                             name_lens[0], &a, &g) == 0 &&
               g.status == LOCKS_QUEUED);
        struct locks_ref ref = {
            sessions[holder], session_lens[holder], names[0], name_lens[0], 1, 0, 0, 0};
        uint32_t remaining;
        ev.count = 0;
        ASSERT(locks_release(&l, index++, 0, &ref, &remaining, &ev) == 0 && ev.count == 1);
    }
    double dt = bench_now_s() - t0;
    locks_free(&l);
    return PAIRS / dt;
}

static double run_mutex(void)
{
    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    static volatile uint64_t counter;
    double t0 = bench_now_s();
    for (uint32_t i = 0; i < PAIRS; i++) {
        pthread_mutex_lock(&m);
        counter++;
        pthread_mutex_unlock(&m);
    }
    return PAIRS / (bench_now_s() - t0);
}

int main(void)
{
    double hot[RUNS], spread[RUNS], handoff[RUNS], mutex[RUNS];
    for (int r = 0; r < RUNS; r++) {
        hot[r] = run_pairs(1);
        spread[r] = run_pairs(NAMES);
        handoff[r] = run_handoff();
        mutex[r] = run_mutex();
    }
    double m = bench_median(mutex, RUNS);
    printf("bench_engine_locks: exclusive acquire+release pairs/s, one core, median of %d runs "
           "of %d pairs\n",
           RUNS, PAIRS);
    printf("  %-34s %12.0f  (%.3fx mutex)\n", "hot lock (1 name, 1 session)",
           bench_median(hot, RUNS), bench_median(hot, RUNS) / m);
    printf("  %-34s %12.0f  (%.3fx mutex)\n", "spread (10,000 names, 64 sessions)",
           bench_median(spread, RUNS), bench_median(spread, RUNS) / m);
    printf("  %-34s %12.0f  (%.3fx mutex)\n", "handoff to a queued waiter",
           bench_median(handoff, RUNS), bench_median(handoff, RUNS) / m);
    printf("  %-34s %12.0f  (peer: uncontended pthread mutex pair)\n", "pthread mutex", m);
    return 0;
}
