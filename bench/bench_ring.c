/*
 * Placement benchmarks (issue 2 targets), each printed as the median of several runs beside the
 * peer it is compared with in the same run:
 *   1. key -> primary node (XXH3 + jump hash + table): the paper's jump loop against the fixed-step
 *      path one key per call (independent keys: throughput; dependent keys: latency) and against
 *      the batch path, and key -> node on the plain ring;
 *   2. plain ring lookup at 1000 nodes x 160 points: lookup table against the 2^16 prefix index
 *      it replaced and against a plain binary search;
 *   3. placement of 65536 partitions x 3 replicas on 1000 nodes (ms), against the plain ring's
 *      table;
 *   4. balance and movement at N = 3, 10, 100, 1000: balanced placement against the plain ring.
 * The machine may be shared and noisy: times are this thread's CPU time, and medians, and ratios
 * from one run, are what to read.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ring/ring_internal.h"
#include "shardmart/ring.h"
#include "bench_util.h"

#define RUNS    7
#define KEYS    (1u << 20)
#define LOOKUPS (1u << 21)

/* CPU time of this thread: on a shared machine, wall time also counts the time other processes
 * held the core, which is noise here, not cost. */
static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static uint64_t splitmix(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static char node_ids[1001][16];
static char zone_labels[1001][16];

static void build(struct ring *ring, uint32_t n, uint32_t zones)
{
    if (ring_init(ring, 0) != RING_OK)
        abort();
    struct ring_node_spec *specs = calloc(n, sizeof(*specs));
    for (uint32_t i = 0; i < n; i++) {
        snprintf(node_ids[i], sizeof(node_ids[i]), "node-%u", i);
        snprintf(zone_labels[i], sizeof(zone_labels[i]), "zone-%u", i % zones);
        specs[i] = (struct ring_node_spec){node_ids[i], strlen(node_ids[i]), zone_labels[i],
                                           strlen(zone_labels[i]), 1};
    }
    if (ring_add_nodes(ring, specs, n) != RING_OK)
        abort();
    free(specs);
}

static uint32_t replicas_now = 3;

static void place_or_die(const struct ring *ring, const struct ring_placement *prev,
                         uint32_t partitions, struct ring_placement *out)
{
    struct ring_place_config cfg = {partitions, replicas_now, RING_EPSILON_DEFAULT};
    int err = ring_place(ring, prev, &cfg, out);
    if (err) {
        fprintf(stderr, "ring_place: %s\n", ring_strerror(err));
        exit(1);
    }
}

/* Keys like "sku:123456": the short ids the engine routes. */
static char (*make_keys(void))[16]
{
    char(*keys)[16] = malloc((size_t)KEYS * 16);
    uint64_t state = 42;
    for (uint32_t i = 0; i < KEYS; i++)
        snprintf(keys[i], 16, "sku:%u", (unsigned)(splitmix(&state) % 100000000));
    return keys;
}

struct key_set {
    char (*text)[16];
    const void **ptrs;
    size_t *lens;
};

/* XXH3 + jump (the reference loop, or the fixed-step path) + table, one call per key. `chained`
 * makes each key depend on the previous answer, so the time is latency, not throughput. */
static double time_single(const struct key_set *ks, const struct ring_placement *pl,
                          uint32_t partitions, bool reference, bool chained, uint64_t *sink)
{
    double t0 = now_ns();
    uint32_t node = 0;
    for (uint32_t i = 0; i < KEYS; i++) {
        uint32_t k = chained ? (i + (node & 1)) & (KEYS - 1) : i;
        uint64_t h = ring_hash_key(ks->text[k], ks->lens[k]);
        uint32_t p =
            reference ? ring_jump_hash_reference(h, partitions) : ring_jump_hash(h, partitions);
        node = ring_placement_primary(pl, p);
        *sink += node;
    }
    return (now_ns() - t0) / KEYS;
}

/* ring_key_partition_batch() over batches of 64 keys, then the table. */
static double time_batch(const struct key_set *ks, const struct ring_placement *pl,
                         uint32_t partitions, uint64_t *sink)
{
    enum { BATCH = 64 };
    uint32_t parts[BATCH];
    double t0 = now_ns();
    for (uint32_t i = 0; i < KEYS; i += BATCH) {
        if (ring_key_partition_batch(ks->ptrs + i, ks->lens + i, BATCH, partitions, parts))
            abort();
        for (int k = 0; k < BATCH; k++)
            *sink += ring_placement_primary(pl, parts[k]);
    }
    return (now_ns() - t0) / KEYS;
}

static void bench_key_to_node(const struct ring *ring)
{
    struct key_set ks = {make_keys(), malloc(KEYS * sizeof(void *)), malloc(KEYS * sizeof(size_t))};
    for (uint32_t i = 0; i < KEYS; i++) {
        ks.ptrs[i] = ks.text[i];
        ks.lens[i] = strlen(ks.text[i]);
    }
    printf("1. key -> primary node (XXH3 + jump hash + placement table), %u keys \"sku:<n>\",\n"
           "   1000 nodes, ns per key, median of %d runs. Paths on this CPU: one key per call %s,\n"
           "   batch %s. Independent keys measure throughput; dependent keys (each chosen by the\n"
           "   previous answer) measure the latency of one call.\n",
           KEYS, RUNS, ring_jump_path_name(ring_jump_path_single()),
           ring_jump_path_name(ring_jump_path_batch()));
    printf("   %-5s | %-29s | %-29s | %-15s | %s\n", "P", "independent: paper / fixed",
           "dependent: paper / fixed", "batch of 64", "plain ring");
    uint32_t sizes[2] = {256, 65536};
    for (int s = 0; s < 2; s++) {
        struct ring_placement pl;
        place_or_die(ring, NULL, sizes[s], &pl);
        double t[6][RUNS];
        uint64_t sink = 0;
        for (int run = 0; run < RUNS; run++) {
            t[0][run] = time_single(&ks, &pl, sizes[s], true, false, &sink);
            t[1][run] = time_single(&ks, &pl, sizes[s], false, false, &sink);
            t[2][run] = time_single(&ks, &pl, sizes[s], true, true, &sink);
            t[3][run] = time_single(&ks, &pl, sizes[s], false, true, &sink);
            t[4][run] = time_batch(&ks, &pl, sizes[s], &sink);
            double t0 = now_ns();
            for (uint32_t i = 0; i < KEYS; i++)
                sink += (uint64_t)ring_lookup(ring, ring_hash_key(ks.text[i], ks.lens[i]));
            t[5][run] = (now_ns() - t0) / KEYS;
        }
        double m[6];
        for (int k = 0; k < 6; k++)
            m[k] = bench_median(t[k], RUNS);
        printf("   %-5u | %5.1f / %5.1f  (%4.2fx less) | %5.1f / %5.1f  (%4.2fx less) | %5.1f  "
               "(%4.2fx)"
               " | %5.1f   (sink %llu)\n",
               sizes[s], m[0], m[1], m[0] / m[1], m[2], m[3], m[2] / m[3], m[4], m[0] / m[4], m[5],
               (unsigned long long)(sink & 0xff));
        ring_placement_destroy(&pl);
    }
    printf("   (ratios: the paper's loop over the new path in the same run; \"batch\" against the\n"
           "    paper's loop on independent keys)\n");
    free(ks.text);
    free(ks.ptrs);
    free(ks.lens);
}

/* The lookup ring_lookup() did before the lookup table: the 2^16 prefix index and its scan. */
static int lookup_prefix_index(const struct ring *ring, uint64_t hash)
{
    return (int)ring->points[ring_point_index(ring, hash)].owner;
}

static void bench_lookup(const struct ring *ring)
{
    uint64_t *hashes = malloc((size_t)LOOKUPS * sizeof(*hashes));
    uint64_t state = 7;
    for (uint32_t i = 0; i < LOOKUPS; i++)
        hashes[i] = splitmix(&state);
    double table[RUNS], prefix[RUNS], plain[RUNS];
    uint64_t sink = 0;
    for (int run = 0; run < RUNS; run++) {
        double t0 = now_ns();
        for (uint32_t i = 0; i < LOOKUPS; i++)
            sink += (uint64_t)ring_lookup(ring, hashes[i]);
        double t1 = now_ns();
        for (uint32_t i = 0; i < LOOKUPS; i++)
            sink += (uint64_t)lookup_prefix_index(ring, hashes[i]);
        double t2 = now_ns();
        for (uint32_t i = 0; i < LOOKUPS; i++)
            sink += (uint64_t)ring_lookup_bsearch(ring, hashes[i]);
        double t3 = now_ns();
        table[run] = (t1 - t0) / LOOKUPS;
        prefix[run] = (t2 - t1) / LOOKUPS;
        plain[run] = (t3 - t2) / LOOKUPS;
    }
    double a = bench_median(table, RUNS), b = bench_median(prefix, RUNS),
           c = bench_median(plain, RUNS);
    printf("\n2. ring lookup, 1000 nodes x 160 points (%u points), %u random hashes, median of %d\n"
           "   lookup table (2^%u slots, %u KiB): %5.1f ns/op   2^16 prefix index: %5.1f ns/op"
           " (%.1fx)\n   binary search: %5.1f ns/op (%.1fx)   (sink %llu)\n",
           ring->point_count, LOOKUPS, RUNS, ring->lookup_bits,
           (unsigned)((sizeof(uint32_t) << ring->lookup_bits) / 1024), a, b, b / a, c, c / a,
           (unsigned long long)(sink & 0xff));
    free(hashes);
}

static void bench_place(const struct ring *ring)
{
    double placed[5], plain[5];
    struct ring_place_config cfg = {65536, 3, RING_EPSILON_DEFAULT};
    for (int run = 0; run < 5; run++) {
        struct ring_placement pl;
        double t0 = now_ns();
        place_or_die(ring, NULL, 65536, &pl);
        double t1 = now_ns();
        ring_placement_destroy(&pl);
        if (ring_place_plain(ring, &cfg, &pl) != RING_OK)
            abort();
        double t2 = now_ns();
        ring_placement_destroy(&pl);
        placed[run] = (t1 - t0) / 1e6;
        plain[run] = (t2 - t1) / 1e6;
    }
    double a = bench_median(placed, 5), b = bench_median(plain, 5);
    printf("\n3. placement of 65536 partitions x 3 replicas on 1000 nodes, median of 5\n"
           "   balanced placement: %6.1f ms   plain ring table: %6.1f ms   ratio %.2f\n",
           a, b, a / b);
}

/* Moves a -> b, counting them. */
static int moves(const struct ring_placement *a, const struct ring_placement *b)
{
    return ring_placement_diff(a, b, NULL, 0);
}

static void bench_balance_row(uint32_t n, uint32_t partitions)
{
    struct ring ring;
    build(&ring, n, 1);
    replicas_now = n > 3 ? 3 : n - 1; /* removing one of 3 nodes must leave R */
    uint32_t r = replicas_now;
    struct ring_place_config cfg = {partitions, r, RING_EPSILON_DEFAULT};
    struct ring_placement base, plain, added, plain_added, removed, plain_removed;
    place_or_die(&ring, NULL, partitions, &base);
    if (ring_place_plain(&ring, &cfg, &plain) != RING_OK)
        abort();
    struct ring_balance bb, bp;
    if (ring_placement_balance(&base, 0.05, &bb) || ring_placement_balance(&plain, 0.05, &bp))
        abort();
    /* Add one node, then (from the base) remove one from the middle. */
    struct ring_node_spec s = {"node-new", 8, "zone-0", 6, 1};
    if (ring_add_node(&ring, &s) != RING_OK)
        abort();
    place_or_die(&ring, &base, partitions, &added);
    if (ring_place_plain(&ring, &cfg, &plain_added) != RING_OK)
        abort();
    double ideal_add = (double)partitions * r / (n + 1);
    if (ring_remove_node(&ring, "node-new", 8) != RING_OK ||
        ring_remove_node(&ring, node_ids[n / 2], strlen(node_ids[n / 2])) != RING_OK)
        abort();
    place_or_die(&ring, &base, partitions, &removed);
    if (ring_place_plain(&ring, &cfg, &plain_removed) != RING_OK)
        abort();
    int ideal_remove = 0; /* the replicas the removed node held */
    for (uint32_t i = 0; i < base.node_count; i++)
        if (base.nodes[i].id_len == strlen(node_ids[n / 2]) &&
            memcmp(base.nodes[i].id, node_ids[n / 2], base.nodes[i].id_len) == 0)
            for (size_t c = 0; c < (size_t)partitions * r; c++)
                ideal_remove += base.table[c] == i;
    printf("   %5u %u %6u %7.1f | %6.3f %6.3f | %5d/%-7.1f %5.2f  %5d | %5d/%-5d %5.2f  %5d\n", n,
           r, partitions, (double)partitions * r / n, bp.max_over_share, bb.max_over_share,
           moves(&base, &added), ideal_add, moves(&base, &added) / ideal_add,
           moves(&plain, &plain_added), moves(&base, &removed), ideal_remove,
           (double)moves(&base, &removed) / ideal_remove, moves(&plain, &plain_removed));
    struct ring_placement *all[] = {&base, &plain, &added, &plain_added, &removed, &plain_removed};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        ring_placement_destroy(all[i]);
    ring_destroy(&ring);
}

int main(void)
{
    struct ring ring;
    build(&ring, 1000, 1);
    bench_key_to_node(&ring);
    bench_lookup(&ring);
    bench_place(&ring);
    ring_destroy(&ring);
    printf("\n4. balance (max replicas / fair share) and movement (moved/ideal), epsilon 0.05\n"
           "   %5s %s %6s %7s | %6s %6s | %-13s %5s  %5s | %-11s %5s  %5s\n",
           "nodes", "R", "P", "share", "ring", "placed", "add moved", "ratio", "ring", "remove",
           "ratio", "ring");
    bench_balance_row(3, 256);
    bench_balance_row(10, 256);
    bench_balance_row(100, 4096);
    bench_balance_row(1000, 65536);
    printf("   (ring: the plain ring with 160 points per node; ring columns of movement: what it\n"
           "    moves for the same change; \"remove\" takes a node from the middle of the list)\n");
    return 0;
}
