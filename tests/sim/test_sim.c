/* The simulator (src/sim/): many seeds pass the checker; a seed reproduces its run exactly; a
 * cluster that breaks safety on purpose is caught, so the checker is known to bite. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "sim/sim.h"

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *s = getenv(name);
    return s && *s ? strtoull(s, NULL, 10) : dflt;
}

/* 200 seeds, 50 under ASan (about 4 times slower) so that make test stays quick; the sanitizers
 * look for memory errors, which 50 seeds of every fault already exercise. */
#if defined(__SANITIZE_ADDRESS__)
#define SEEDS_DEFAULT 50
#else
#define SEEDS_DEFAULT 200
#endif

/* SHARDMART_SIM_FIRST / SHARDMART_SIM_SEEDS widen the range (make soak-style runs). */
Test(sim, two_hundred_seeds_pass_the_checker)
{
    uint64_t first = env_u64("SHARDMART_SIM_FIRST", 1);
    uint64_t count = env_u64("SHARDMART_SIM_SEEDS", SEEDS_DEFAULT);
    uint64_t passed = 0, acked = 0, failovers = 0, crashes = 0;
    uint64_t coord_lost = 0, leases_lost = 0, watch_stalls = 0;
    for (uint64_t seed = first; seed < first + count; seed++) {
        struct sim_options o = {.seed = seed};
        struct sim_result r;
        cr_assert_eq(sim_run(&o, &r), 0);
        acked += r.requests_acked;
        failovers += r.failovers;
        crashes += r.crashes;
        coord_lost += r.coord_lost;
        leases_lost += r.leases_lost;
        watch_stalls += r.watch_stalls;
        if (r.ok)
            passed++;
        else
            cr_log_error("seed %llu: %s", (unsigned long long)seed, r.why);
    }
    cr_log_info("%llu/%llu seeds passed; %llu requests acknowledged, %llu failovers, %llu crashes, "
                "%llu plane requests or answers lost, %llu leases lost, %llu watch stalls",
                (unsigned long long)passed, (unsigned long long)count, (unsigned long long)acked,
                (unsigned long long)failovers, (unsigned long long)crashes,
                (unsigned long long)coord_lost, (unsigned long long)leases_lost,
                (unsigned long long)watch_stalls);
    cr_assert_eq(passed, count, "%llu/%llu seeds passed", (unsigned long long)passed,
                 (unsigned long long)count);
    cr_assert_gt(acked, count * 100, "the workload really ran");
    cr_assert_gt(failovers, 0, "failovers really happened");
    cr_assert_gt(crashes, count / 2, "crashes really happened");
    /* The control plane's own faults (src/coord/'s embedded backend, driven by the scheduler). */
    cr_assert_gt(coord_lost, count, "requests and answers to the control plane were lost");
    cr_assert_gt(leases_lost, 0, "nodes lost their leases and rejoined");
    cr_assert_gt(watch_stalls, 0, "watch streams stalled in cuts and resumed");
}

Test(sim, a_seed_reproduces_its_run_exactly)
{
    for (uint64_t seed = 7; seed < 10; seed++) {
        struct sim_options o = {.seed = seed};
        struct sim_result a, b;
        cr_assert_eq(sim_run(&o, &a), 0);
        cr_assert_eq(sim_run(&o, &b), 0);
        cr_assert_eq(a.trace_hash, b.trace_hash, "seed %llu", (unsigned long long)seed);
        cr_assert_eq(a.events, b.events);
        cr_assert_eq(a.requests_acked, b.requests_acked);
        o.seed = seed + 100;
        cr_assert_eq(sim_run(&o, &b), 0);
        cr_assert_neq(a.trace_hash, b.trace_hash, "another seed, another run");
    }
}

Test(sim, the_checker_catches_a_primary_that_commits_without_its_isr)
{
    uint32_t caught = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        struct sim_options o = {.seed = seed, .unsafe_commit_alone = true};
        struct sim_result r;
        cr_assert_eq(sim_run(&o, &r), 0);
        if (!r.ok) {
            caught++;
            cr_log_info("seed %llu caught: %s", (unsigned long long)seed, r.why);
        }
    }
    cr_assert_geq(caught, 10, "only %u of 40 broken runs caught", caught);
}

Test(sim, a_calm_run_passes_and_bad_options_are_refused)
{
    struct sim_options o = {.seed = 1, .no_faults = true, .nodes = 3, .partitions = 1};
    struct sim_result r;
    cr_assert_eq(sim_run(&o, &r), 0);
    cr_assert(r.ok, "%s", r.why);
    cr_assert_eq(r.crashes, 0);
    o.nodes = 6;
    cr_assert_neq(sim_run(&o, &r), 0);
    o.nodes = 3;
    o.partitions = SIM_PARTITIONS_MAX + 1;
    cr_assert_neq(sim_run(&o, &r), 0);
}
