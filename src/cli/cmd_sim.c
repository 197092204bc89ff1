/*
 * `shardmart sim`: runs the deterministic cluster simulator (src/sim/, docs/sim.md) over a range
 * of seeds and reports how many passed the checker, with the seed and the first violation of
 * every failure, so that `shardmart sim --seeds N --verbose` replays that one run event by event.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "sim/sim.h"

const char cli_sim_usage[] =
    "usage: shardmart sim --seeds A[-B] [--nodes N] [--partitions P] [--clients C]\n"
    "                     [--run-ms MS] [--verbose] [--unsafe-commit-alone]\n"
    "\n"
    "Runs the cluster simulator once per seed in A..B (one seed when B is left out): N nodes\n"
    "replicating P partitions with real engines, a lossy, duplicating, reordering network with\n"
    "cuts of any shape, disks that lose unsynced writes at a crash, crashes and restarts, clock\n"
    "skew, the embedded control plane of src/coord/ (leases, CAS, watches; requests and\n"
    "answers lost or cut off), and C clients running a flash-sale, cart, payment and lock\n"
    "workload. Each run ends healed and quiet, then the checker proves the history: every\n"
    "acknowledged write committed exactly once with the reply the client got, no stale or dirty\n"
    "read, no oversell, per-user limits, money conserved, one lock holder at a time, and every\n"
    "replica's state byte for byte equal to the committed log's.\n"
    "\n"
    "  --seeds A[-B]          the seeds, 0 <= A <= B < 2^63 (required)\n"
    "  --nodes N              3..5 (default: chosen by each seed)\n"
    "  --partitions P         1..8 (default: chosen by each seed, 2..4)\n"
    "  --clients C            1..16 (default: chosen by each seed, 3..8)\n"
    "  --run-ms MS            simulated time with faults and load, 100..600000 (default 2500)\n"
    "  --verbose              print every event (use with one seed)\n"
    "  --unsafe-commit-alone  let primaries commit without their in-sync replicas: a broken\n"
    "                         cluster, to see the checker catch it\n"
    "\n"
    "Prints one line per failing seed and \"N/M seeds passed\". Exit status: 0 when every seed\n"
    "passed, 1 when one failed, 2 for a bad flag.\n";

static bool parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

static bool parse_seeds(const char *s, uint64_t *a, uint64_t *b)
{
    char buf[64];
    if (strlen(s) >= sizeof buf)
        return false;
    strcpy(buf, s);
    char *dash = strchr(buf, '-');
    if (dash)
        *dash = 0;
    if (!parse_u64(buf, 0, INT64_MAX, a))
        return false;
    if (!dash) {
        *b = *a;
        return true;
    }
    return parse_u64(dash + 1, *a, INT64_MAX, b);
}

/* Reads the flags into o and the seed range; false (after a one-line reason) on a bad one. */
static bool parse_flags(int argc, char **argv, struct sim_options *o, uint64_t *a, uint64_t *b)
{
    bool seeds = false;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t x = 0;
        if (strcmp(f, "--verbose") == 0) {
            o->trace = stdout;
            continue;
        }
        if (strcmp(f, "--unsafe-commit-alone") == 0) {
            o->unsafe_commit_alone = true;
            continue;
        }
        if (!v) {
            fprintf(stderr, "shardmart sim: %s needs a value (see --help)\n", f);
            return false;
        }
        i++;
        if (strcmp(f, "--seeds") == 0 && parse_seeds(v, a, b)) {
            seeds = true;
        } else if (strcmp(f, "--nodes") == 0 && parse_u64(v, SIM_NODES_MIN, SIM_NODES_MAX, &x)) {
            o->nodes = (uint32_t)x;
        } else if (strcmp(f, "--partitions") == 0 && parse_u64(v, 1, SIM_PARTITIONS_MAX, &x)) {
            o->partitions = (uint32_t)x;
        } else if (strcmp(f, "--clients") == 0 && parse_u64(v, 1, SIM_CLIENTS_MAX, &x)) {
            o->clients = (uint32_t)x;
        } else if (strcmp(f, "--run-ms") == 0 && parse_u64(v, 100, 600000, &x)) {
            o->run_ms = (int64_t)x;
        } else {
            fprintf(stderr, "shardmart sim: bad flag or value: %s %s (see --help)\n", f, v);
            return false;
        }
    }
    if (!seeds)
        fprintf(stderr, "shardmart sim: --seeds is required (see --help)\n");
    return seeds;
}

int cli_sim(int argc, char **argv)
{
    struct sim_options o = {0};
    uint64_t a = 0, b = 0;
    if (!parse_flags(argc, argv, &o, &a, &b))
        return 2;
    uint64_t passed = 0, total = 0;
    for (uint64_t seed = a;; seed++) {
        o.seed = seed;
        struct sim_result r;
        if (sim_run(&o, &r) != 0) {
            fprintf(stderr, "shardmart sim: seed %llu could not run (out of memory?)\n",
                    (unsigned long long)seed);
            return 1;
        }
        total++;
        if (r.ok)
            passed++;
        else
            printf("seed %llu FAILED: %s\n", (unsigned long long)seed, r.why);
        if (o.trace || a == b)
            printf("seed %llu: %s, %llu events, %llu requests acknowledged, %llu failovers, "
                   "%llu crashes, %llu cuts, %llu plane requests or answers lost, %llu leases "
                   "lost, trace %016llx\n",
                   (unsigned long long)seed, r.ok ? "passed" : "failed",
                   (unsigned long long)r.events, (unsigned long long)r.requests_acked,
                   (unsigned long long)r.failovers, (unsigned long long)r.crashes,
                   (unsigned long long)r.partitions_cut, (unsigned long long)r.coord_lost,
                   (unsigned long long)r.leases_lost, (unsigned long long)r.trace_hash);
        if (seed == b)
            break;
    }
    printf("%llu/%llu seeds passed\n", (unsigned long long)passed, (unsigned long long)total);
    return passed == total ? 0 : 1;
}
