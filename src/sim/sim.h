/*
 * The deterministic cluster simulator (docs/sim.md): the real replication code of src/cluster/
 * with real engines, driven by one seeded scheduler over a simulated network, simulated disks,
 * simulated clocks, the embedded control plane of src/coord/, crashes and restarts, and clients
 * running a flash-sale / cart / payment / lock workload. A run ends by healing every fault,
 * letting the cluster quiesce, and checking the contract (DESIGN.md section 1) on the history.
 *
 * A seed reproduces a run exactly: every choice comes from the seed's PRNG, events are ordered by
 * (time, sequence number), and nothing reads the real clock. trace_hash digests every event
 * processed, so two runs of one seed can be compared.
 */
#ifndef SHARDMART_SIM_SIM_H
#define SHARDMART_SIM_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "util/assert.h"

/* Nodes and partitions a run may have. */
#define SIM_NODES_MIN      3
#define SIM_NODES_MAX      5
#define SIM_PARTITIONS_MAX 8
#define SIM_CLIENTS_MAX    16

struct sim_options {
    uint64_t seed;
    uint32_t nodes;      /* 0 = chosen by the seed (3..5) */
    uint32_t partitions; /* 0 = chosen by the seed (2..4) */
    uint32_t clients;    /* 0 = chosen by the seed (3..8) */
    int64_t run_ms;      /* simulated time with faults and load; 0 = 2500 */
    bool no_faults;      /* a calm run (tests of the checker itself) */
    /* Breaks safety on purpose: primaries commit without waiting for their ISR. The checker
     * must catch it (tests/sim/). */
    bool unsafe_commit_alone;
    FILE *trace; /* NULL, or where to print every event (--verbose) */
};

struct sim_result {
    bool ok;
    char why[512]; /* the first violation found */
    uint64_t trace_hash;
    uint64_t events;
    uint64_t requests_acked;
    uint64_t failovers;
    uint64_t crashes;
    uint64_t partitions_cut;
    uint64_t snapshots_sent;
    uint64_t rebuilds;
    uint64_t coord_lost;   /* control plane requests and answers lost (SM_E_TIMEOUT) */
    uint64_t leases_lost;  /* a node's session lost its lease and the node rejoined */
    uint64_t watch_stalls; /* watch results held back by a cut, then resumed */
    int64_t sim_ms;
};

/* Runs one seed. 0 with *res filled (res->ok says whether the checker passed), or SM_E_NOMEM /
 * SM_E_BADARG (options out of range: nothing ran). */
MUST_USE int sim_run(const struct sim_options *opt, struct sim_result *res);

#endif
