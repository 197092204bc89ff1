/*
 * ring_place() against its contract, over generated clusters of 3, 10, 100 and 1000 nodes:
 * balance (max/share <= 1.05 once the fair share is >= 20 replicas, the cap always), distinct
 * nodes and zones, movement (adding or removing any one node moves <= 1.10 x the ideal, and never
 * between two staying nodes), purity (same inputs, same table, whatever the order of adds; pinned
 * by a golden digest), the diff, and every input error.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardmart/ring.h"

#define MAX_NODES 1001

static char ids[MAX_NODES][16];
static char zone_names[MAX_NODES][16];

static struct ring_node_spec spec_of(uint32_t i, uint32_t zones, int64_t weight)
{
    snprintf(ids[i], sizeof(ids[i]), "node-%u", i);
    snprintf(zone_names[i], sizeof(zone_names[i]), "z%u", i % zones);
    return (struct ring_node_spec){ids[i], strlen(ids[i]), zone_names[i], strlen(zone_names[i]),
                                   weight};
}

/* Nodes 0..n-1, round-robin over `zones` zones; weights 1 unless `weights` is given. */
static void make_ring(struct ring *ring, uint32_t n, uint32_t zones, const int64_t *weights)
{
    cr_assert_eq(ring_init(ring, 0), RING_OK);
    struct ring_node_spec *specs = calloc(n, sizeof(*specs));
    for (uint32_t i = 0; i < n; i++)
        specs[i] = spec_of(i, zones, weights ? weights[i] : 1);
    cr_assert_eq(ring_add_nodes(ring, specs, n), RING_OK);
    free(specs);
}

static uint32_t node_index(const struct ring_placement *pl, const char *id)
{
    for (uint32_t i = 0; i < pl->node_count; i++)
        if (pl->nodes[i].id_len == strlen(id) && memcmp(pl->nodes[i].id, id, strlen(id)) == 0)
            return i;
    cr_assert_fail("node %s not in placement", id);
    return UINT32_MAX;
}

static uint32_t load_of(const struct ring_placement *pl, uint32_t node)
{
    uint32_t load = 0;
    for (size_t c = 0; c < (size_t)pl->partitions * pl->replicas; c++)
        load += pl->table[c] == node;
    return load;
}

/* Distinct nodes everywhere, zones as promised, nobody above the cap, and (share >= 20) max over
 * share within 1 + epsilon. */
static void check_valid(const struct ring_placement *pl, double epsilon)
{
    struct ring_balance b;
    cr_assert_eq(ring_placement_balance(pl, epsilon, &b), RING_OK);
    cr_assert_eq(b.duplicate_nodes, 0);
    cr_assert_eq(b.zone_violations, 0);
    cr_assert_eq(b.over_cap, 0);
    double min_share = INFINITY;
    for (uint32_t i = 0; i < pl->node_count; i++)
        min_share = fmin(min_share, ring_placement_share(pl, i));
    for (uint32_t i = 0; i < pl->node_count; i++) {
        double share = ring_placement_share(pl, i);
        cr_assert_leq(load_of(pl, i), (uint32_t)ceil((1 + epsilon) * share - 1e-9), "node %u", i);
    }
    if (min_share >= 20)
        cr_assert_leq(b.max_over_share, 1 + epsilon + 1e-9, "max/share %f", b.max_over_share);
}

static void place(const struct ring *ring, const struct ring_placement *prev, uint32_t partitions,
                  uint32_t replicas, struct ring_placement *out)
{
    struct ring_place_config cfg = {partitions, replicas, RING_EPSILON_DEFAULT};
    cr_assert_eq(ring_place(ring, prev, &cfg, out), RING_OK);
}

/* Adds one node, checks the moves all go to it and number <= 1.10 x its fair share. */
static void check_add(struct ring *ring, const struct ring_placement *before, uint32_t new_index,
                      uint32_t zones, struct ring_placement *after)
{
    struct ring_node_spec s = spec_of(new_index, zones, 1);
    cr_assert_eq(ring_add_node(ring, &s), RING_OK);
    place(ring, before, before->partitions, before->replicas, after);
    check_valid(after, RING_EPSILON_DEFAULT);
    uint32_t joined = node_index(after, ids[new_index]);
    double ideal = ring_placement_share(after, joined);
    int moved = ring_placement_diff(before, after, NULL, 0);
    cr_assert_geq(moved, 0);
    cr_assert_leq(moved, 1.10 * ideal, "add: moved %d, ideal %.1f", moved, ideal);
    struct ring_move *moves = calloc((size_t)moved + 1, sizeof(*moves));
    cr_assert_eq(ring_placement_diff(before, after, moves, (size_t)moved), moved);
    for (int i = 0; i < moved; i++)
        cr_assert_eq(moves[i].to, joined, "a move between two staying nodes");
    free(moves);
}

/* Removes node `victim`, checks that exactly its replicas move and nothing else. */
static void check_remove(struct ring *ring, const struct ring_placement *before, uint32_t victim,
                         struct ring_placement *after)
{
    uint32_t gone = node_index(before, ids[victim]);
    uint32_t ideal = load_of(before, gone);
    cr_assert_eq(ring_remove_node(ring, ids[victim], strlen(ids[victim])), RING_OK);
    place(ring, before, before->partitions, before->replicas, after);
    check_valid(after, RING_EPSILON_DEFAULT);
    int moved = ring_placement_diff(before, after, NULL, 0);
    cr_assert_leq(moved, 1.10 * ideal, "remove: moved %d, ideal %u", moved, ideal);
    cr_assert_geq(moved, (int)ideal, "every replica of the removed node must move");
    struct ring_move *moves = calloc((size_t)moved + 1, sizeof(*moves));
    cr_assert_eq(ring_placement_diff(before, after, moves, (size_t)moved), moved);
    for (int i = 0; i < moved; i++)
        cr_assert_eq(moves[i].from, gone, "a move between two staying nodes");
    free(moves);
}

/* One cluster size: place, add a node, then remove the first, a middle and the last node. */
static void check_cluster(uint32_t n, uint32_t zones, uint32_t partitions, uint32_t replicas)
{
    struct ring ring;
    make_ring(&ring, n, zones, NULL);
    struct ring_placement pl[5];
    place(&ring, NULL, partitions, replicas, &pl[0]);
    check_valid(&pl[0], RING_EPSILON_DEFAULT);
    check_add(&ring, &pl[0], n, zones, &pl[1]);
    /* The first, a middle and the last node, as long as R nodes remain. */
    uint32_t victims[3] = {0, n / 2, n - 1};
    int done = 1;
    for (int i = 0; i < 3 && ring.node_count > replicas; i++, done++)
        check_remove(&ring, &pl[1 + i], victims[i], &pl[2 + i]);
    for (int i = 0; i <= done; i++)
        ring_placement_destroy(&pl[i]);
    ring_destroy(&ring);
}

Test(placement, three_nodes)
{
    check_cluster(3, 1, 256, 1);
    check_cluster(3, 3, 256, 2);
    check_cluster(3, 3, 256, 3);
    check_cluster(3, 1, 256, 3);
}

Test(placement, ten_nodes)
{
    check_cluster(10, 1, 256, 3);
    check_cluster(10, 3, 256, 3);
    check_cluster(10, 5, 1024, 2);
}

Test(placement, hundred_nodes)
{
    check_cluster(100, 1, 1024, 3);
    check_cluster(100, 4, 2048, 3);
    check_cluster(100, 1, 256, 3); /* share 7.7 < 20: only the cap is promised */
}

Test(placement, thousand_nodes)
{
    check_cluster(1000, 1, 8192, 3);
    check_cluster(1000, 5, 8192, 3);
}

/* Weighted nodes: shares follow weights and the balance bound still holds. */
Test(placement, weighted_nodes)
{
    int64_t weights[40];
    for (uint32_t i = 0; i < 40; i++)
        weights[i] = 1 + i % 4;
    struct ring ring;
    make_ring(&ring, 40, 1, weights);
    struct ring_placement pl;
    place(&ring, NULL, 4096, 3, &pl);
    check_valid(&pl, RING_EPSILON_DEFAULT);
    uint32_t light = node_index(&pl, "node-0"), heavy = node_index(&pl, "node-3");
    cr_assert_float_eq(ring_placement_share(&pl, heavy) / ring_placement_share(&pl, light), 4.0,
                       1e-9);
    double ratio = (double)load_of(&pl, heavy) / load_of(&pl, light);
    cr_assert(ratio > 3.5 && ratio < 4.5, "heavy/light %f", ratio);
    ring_placement_destroy(&pl);
    ring_destroy(&ring);
}

/* A node heavier than everything else together cannot hold more than one replica per
 * partition: its share is capped at P and the rest is shared out (water-filling). */
Test(placement, share_capped_at_one_per_partition)
{
    int64_t weights[4] = {100, 1, 1, 1};
    struct ring ring;
    make_ring(&ring, 4, 1, weights);
    struct ring_placement pl;
    place(&ring, NULL, 512, 2, &pl);
    cr_assert_float_eq(ring_placement_share(&pl, node_index(&pl, "node-0")), 512.0, 1e-9);
    cr_assert_float_eq(ring_placement_share(&pl, node_index(&pl, "node-1")), 512.0 / 3, 1e-9);
    check_valid(&pl, RING_EPSILON_DEFAULT);
    ring_placement_destroy(&pl);
    ring_destroy(&ring);
}

/* Skewed weights: the heaviest node's share is a replica in every partition and the next one's
 * close to it, which the greedy walk alone cannot honour at the end of a fill. */
Test(placement, skewed_weights_keep_caps)
{
    int64_t weights[5] = {1, 2, 3, 4, 5};
    struct ring ring;
    make_ring(&ring, 5, 1, weights);
    struct ring_placement pl, next;
    place(&ring, NULL, 1024, 3, &pl);
    cr_assert_float_eq(ring_placement_share(&pl, node_index(&pl, "node-4")), 1024.0, 1e-9);
    check_valid(&pl, RING_EPSILON_DEFAULT);
    cr_assert_eq(load_of(&pl, node_index(&pl, "node-4")), 1024);
    check_add(&ring, &pl, 5, 1, &next);
    ring_placement_destroy(&pl);
    ring_placement_destroy(&next);
    ring_destroy(&ring);
}

/* A weight change (the same node leaving and coming back heavier, between two placements) is
 * the documented exception to "no moves between staying nodes": the others' caps drop, so they
 * shed, to the node that grew, which is then topped up to its new share like a joined node. */
Test(placement, weight_change_keeps_caps)
{
    struct ring ring;
    make_ring(&ring, 20, 1, NULL);
    struct ring_placement before, after;
    place(&ring, NULL, 2048, 3, &before);
    uint32_t old_load = load_of(&before, node_index(&before, "node-7"));
    cr_assert_eq(ring_remove_node(&ring, ids[7], strlen(ids[7])), RING_OK);
    struct ring_node_spec heavier = spec_of(7, 1, 3);
    cr_assert_eq(ring_add_node(&ring, &heavier), RING_OK);
    place(&ring, &before, 2048, 3, &after);
    check_valid(&after, RING_EPSILON_DEFAULT);
    uint32_t heavy = node_index(&after, "node-7");
    cr_assert_gt(load_of(&after, heavy), 2 * old_load);
    cr_assert_geq(load_of(&after, heavy), (uint32_t)ring_placement_share(&after, heavy),
                  "topped up to its new share");
    /* Everything that moved went to the node that grew. */
    int moved = ring_placement_diff(&before, &after, NULL, 0);
    cr_assert_eq((uint32_t)moved, load_of(&after, heavy) - old_load);
    ring_placement_destroy(&before);
    ring_placement_destroy(&after);
    ring_destroy(&ring);
}

/* Zones of unequal size with R = #zones: each zone carries P replicas, so a node of a small zone
 * has a larger share; zones stay distinct in every partition. */
Test(placement, unequal_zones)
{
    struct ring ring;
    make_ring(&ring, 10, 3, NULL); /* zones of 4, 3 and 3 nodes */
    struct ring_placement pl;
    place(&ring, NULL, 600, 3, &pl);
    cr_assert_float_eq(ring_placement_share(&pl, node_index(&pl, "node-0")), 150.0, 1e-9);
    cr_assert_float_eq(ring_placement_share(&pl, node_index(&pl, "node-1")), 200.0, 1e-9);
    check_valid(&pl, RING_EPSILON_DEFAULT);
    ring_placement_destroy(&pl);
    ring_destroy(&ring);
}

/* Same inputs, same table: twice in a row, and with the members added in reverse order. */
Test(placement, pure_function_of_inputs)
{
    struct ring a, b;
    make_ring(&a, 60, 3, NULL);
    cr_assert_eq(ring_init(&b, 0), RING_OK);
    for (int i = 59; i >= 0; i--) {
        struct ring_node_spec s = spec_of((uint32_t)i, 3, 1);
        cr_assert_eq(ring_add_node(&b, &s), RING_OK);
    }
    struct ring_placement p1, p2, p3;
    place(&a, NULL, 2048, 3, &p1);
    place(&a, NULL, 2048, 3, &p2);
    place(&b, NULL, 2048, 3, &p3);
    cr_assert_eq(ring_placement_digest(&p1), ring_placement_digest(&p2));
    cr_assert_eq(ring_placement_digest(&p1), ring_placement_digest(&p3));
    cr_assert_eq(memcmp(p1.table, p3.table, 2048 * 3 * sizeof(uint16_t)), 0);
    cr_assert_eq(ring_placement_diff(&p1, &p3, NULL, 0), 0);
    /* Re-placing on an unchanged membership moves nothing. */
    struct ring_placement p4;
    place(&a, &p1, 2048, 3, &p4);
    cr_assert_eq(ring_placement_diff(&p1, &p4, NULL, 0), 0);
    cr_assert_eq(ring_placement_digest(&p1), ring_placement_digest(&p4));
    ring_placement_destroy(&p1);
    ring_placement_destroy(&p2);
    ring_placement_destroy(&p3);
    ring_placement_destroy(&p4);
    ring_destroy(&a);
    ring_destroy(&b);
}

/* Golden digests: a change of the algorithm that moves any replica anywhere shows up here. */
Test(placement, golden_digests)
{
    struct ring ring;
    make_ring(&ring, 10, 3, NULL);
    struct ring_placement pl, next;
    place(&ring, NULL, 256, 3, &pl);
    cr_assert_eq(ring_placement_digest(&pl), 0x878f5bd3b11b4c96ULL, "10 nodes: %016llx",
                 (unsigned long long)ring_placement_digest(&pl));
    struct ring_node_spec s = spec_of(10, 3, 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_OK);
    place(&ring, &pl, 256, 3, &next);
    cr_assert_eq(ring_placement_digest(&next), 0xb9ce3b4853ccc20eULL, "11 nodes: %016llx",
                 (unsigned long long)ring_placement_digest(&next));
    ring_placement_destroy(&pl);
    ring_placement_destroy(&next);
    ring_destroy(&ring);
    make_ring(&ring, 1000, 5, NULL);
    place(&ring, NULL, 65536, 3, &pl);
    cr_assert_eq(ring_placement_digest(&pl), 0x1519dbbec112f602ULL, "1000 nodes: %016llx",
                 (unsigned long long)ring_placement_digest(&pl));
    ring_placement_destroy(&pl);
    ring_destroy(&ring);
}

/* A random walk of membership changes (several nodes at once, weights changing) keeps every
 * partition valid and never moves a replica whose node stays and is within its cap. */
Test(placement, random_membership_changes)
{
    struct ring ring;
    make_ring(&ring, 12, 3, NULL);
    bool member[40] = {false};
    for (int i = 0; i < 12; i++)
        member[i] = true;
    struct ring_placement cur;
    place(&ring, NULL, 1024, 3, &cur);
    uint64_t state = 99;
    for (int step = 0; step < 30; step++) {
        uint32_t touched = UINT32_MAX; /* a node removed and re-added at once would stay */
        for (int k = 0; k < 2; k++) {
            state = state * 6364136223846793005ULL + 1442695040888963407ULL;
            uint32_t i = (uint32_t)(state >> 33) % 40;
            if (i == touched)
                continue;
            touched = i;
            if (member[i] && ring.node_count > 4) {
                cr_assert_eq(ring_remove_node(&ring, ids[i], strlen(ids[i])), RING_OK);
                member[i] = false;
            } else if (!member[i]) {
                struct ring_node_spec s = spec_of(i, 3, 1 + (int64_t)(i % 3));
                cr_assert_eq(ring_add_node(&ring, &s), RING_OK);
                member[i] = true;
            }
        }
        struct ring_placement next;
        place(&ring, &cur, 1024, 3, &next);
        check_valid(&next, RING_EPSILON_DEFAULT);
        int moved = ring_placement_diff(&cur, &next, NULL, 0);
        struct ring_move *moves = calloc((size_t)moved + 1, sizeof(*moves));
        cr_assert_eq(ring_placement_diff(&cur, &next, moves, (size_t)moved), moved);
        for (int m = 0; m < moved; m++) {
            const struct ring_placement_node *from = &cur.nodes[moves[m].from];
            const struct ring_placement_node *to = &next.nodes[moves[m].to];
            bool from_left = true, to_joined = true;
            for (uint32_t j = 0; j < next.node_count; j++)
                if (next.nodes[j].id_len == from->id_len &&
                    memcmp(next.nodes[j].id, from->id, from->id_len) == 0)
                    from_left = false;
            for (uint32_t j = 0; j < cur.node_count; j++)
                if (cur.nodes[j].id_len == to->id_len &&
                    memcmp(cur.nodes[j].id, to->id, to->id_len) == 0)
                    to_joined = false;
            cr_assert(from_left || to_joined,
                      "step %d: move between staying nodes %.*s -> %.*s (%u -> %u nodes)", step,
                      from->id_len, from->id, to->id_len, to->id, cur.node_count, next.node_count);
        }
        free(moves);
        ring_placement_destroy(&cur);
        cur = next;
    }
    ring_placement_destroy(&cur);
    ring_destroy(&ring);
}

Test(placement, diff_reports_moves_and_truncates)
{
    struct ring ring;
    make_ring(&ring, 8, 1, NULL);
    struct ring_placement a, b, other;
    place(&ring, NULL, 128, 2, &a);
    cr_assert_eq(ring_remove_node(&ring, ids[3], strlen(ids[3])), RING_OK);
    place(&ring, &a, 128, 2, &b);
    int total = ring_placement_diff(&a, &b, NULL, 0);
    cr_assert_eq((uint32_t)total, load_of(&a, node_index(&a, ids[3])));
    struct ring_move few[3];
    cr_assert_eq(ring_placement_diff(&a, &b, few, 3), total, "the total, not what fits");
    for (int i = 0; i < 3; i++) {
        cr_assert_lt(few[i].partition, 128);
        cr_assert_lt(few[i].replica, 2);
        cr_assert_eq(b.table[few[i].partition * 2 + few[i].replica], few[i].to);
        cr_assert_eq(a.table[few[i].partition * 2 + few[i].replica], few[i].from);
        if (i > 0)
            cr_assert_leq(few[i - 1].partition, few[i].partition);
    }
    place(&ring, NULL, 64, 2, &other);
    cr_assert_eq(ring_placement_diff(&a, &other, NULL, 0), RING_E_MISMATCH);
    ring_placement_destroy(&a);
    ring_placement_destroy(&b);
    ring_placement_destroy(&other);
    ring_destroy(&ring);
}

Test(placement, plain_ring_is_worse)
{
    struct ring ring;
    make_ring(&ring, 100, 1, NULL);
    struct ring_place_config cfg = {4096, 3, RING_EPSILON_DEFAULT};
    struct ring_placement plain, balanced;
    cr_assert_eq(ring_place_plain(&ring, &cfg, &plain), RING_OK);
    cr_assert_eq(ring_place(&ring, NULL, &cfg, &balanced), RING_OK);
    struct ring_balance bp, bb;
    cr_assert_eq(ring_placement_balance(&plain, 0.05, &bp), RING_OK);
    cr_assert_eq(ring_placement_balance(&balanced, 0.05, &bb), RING_OK);
    cr_assert_gt(bp.max_over_share, 1.1, "plain ring %f", bp.max_over_share);
    cr_assert_leq(bb.max_over_share, 1.05);
    cr_assert_lt(bb.stddev_over_share, bp.stddev_over_share);
    cr_assert_leq(bb.primary_max_over_share, 1.05 + 1e-9);
    ring_placement_destroy(&plain);
    ring_placement_destroy(&balanced);
    ring_destroy(&ring);
}

Test(placement, bad_inputs_are_refused)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 0), RING_OK);
    struct ring_placement pl;
    struct ring_place_config cfg = {256, 3, 0.05};
    cr_assert_eq(ring_place(&ring, NULL, &cfg, &pl), RING_E_NO_NODES);
    cr_assert_eq(ring_place_plain(&ring, &cfg, &pl), RING_E_NO_NODES);
    ring_destroy(&ring);
    make_ring(&ring, 2, 1, NULL);
    cr_assert_eq(ring_place(&ring, NULL, &cfg, &pl), RING_E_REPLICAS_NODES, "R > nodes");
    const struct {
        struct ring_place_config cfg;
        int err;
    } bad[] = {
        {{0, 1, 0.05}, RING_E_PARTITIONS}, {{RING_PARTITIONS_MAX + 1, 1, 0.05}, RING_E_PARTITIONS},
        {{256, 0, 0.05}, RING_E_REPLICAS}, {{256, RING_REPLICAS_MAX + 1, 0.05}, RING_E_REPLICAS},
        {{256, 1, 0.0}, RING_E_EPSILON},   {{256, 1, -0.5}, RING_E_EPSILON},
        {{256, 1, 1.5}, RING_E_EPSILON},   {{256, 1, NAN}, RING_E_EPSILON},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(ring_place(&ring, NULL, &bad[i].cfg, &pl), bad[i].err, "case %zu", i);
        cr_assert_eq(ring_place_plain(&ring, &bad[i].cfg, &pl), bad[i].err, "case %zu", i);
    }
    struct ring_balance b;
    cr_assert_eq(ring_placement_balance(&pl, 2.0, &b), RING_E_EPSILON);
    /* The bounds themselves are accepted. */
    struct ring_place_config edge = {RING_PARTITIONS_MAX, 2, 1.0};
    cr_assert_eq(ring_place(&ring, NULL, &edge, &pl), RING_OK);
    struct ring_placement other;
    struct ring_place_config smaller = {128, 2, 0.05};
    cr_assert_eq(ring_place(&ring, &pl, &smaller, &other), RING_E_MISMATCH, "prev has other P");
    struct ring_place_config fewer = {RING_PARTITIONS_MAX, 1, 0.05};
    cr_assert_eq(ring_place(&ring, &pl, &fewer, &other), RING_E_MISMATCH, "prev has other R");
    ring_placement_destroy(&pl);
    ring_destroy(&ring);
}
