/*
 * The placement table as a value: fair shares and caps (the arithmetic ring_place() balances
 * against), balance measurement, diffs between two tables, digests for golden vectors, and the
 * plain ring's table that ring_place() is compared with. The algorithm itself is in place.c.
 *
 * Shares are exact fractions. A node's fair share is its weight's part of partitions x replicas,
 * "water-filled": a node (or, when zones must be distinct, a zone) cannot hold more than one
 * replica per partition, so one whose proportional part exceeds `partitions` is fixed there and
 * the rest is shared among the others. Example: zones of 4, 3 and 3 equal nodes with R = 3 each
 * carry P replicas, so a node of the 4-node zone has P/4 and the others P/3.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "ring/ring_internal.h"
#include "util/assert.h"

#define PPM 1000000u

uint64_t ring_partition_hash(uint32_t partition)
{
    unsigned char le[4] = {(unsigned char)partition, (unsigned char)(partition >> 8),
                           (unsigned char)(partition >> 16), (unsigned char)(partition >> 24)};
    return XXH3_64bits(le, sizeof(le));
}

int ring_epsilon_ppm(double epsilon, uint32_t *ppm_out)
{
    /* Written so that NaN fails too. */
    if (!(epsilon > 0.0 && epsilon <= 1.0))
        return RING_E_EPSILON;
    long ppm = lround(epsilon * PPM);
    *ppm_out = ppm < 1 ? 1 : (uint32_t)ppm;
    return RING_OK;
}

/* The water level of a water-fill: items that are not saturated get total_left x w / weight_left.
 * saturated[] has one flag per item. */
struct water {
    uint64_t total_left;
    uint64_t weight_left;
};

static struct water water_fill(const uint64_t *weights, uint32_t count, uint64_t total,
                               uint64_t item_max, bool *saturated)
{
    struct water w = {total, 0};
    for (uint32_t i = 0; i < count; i++) {
        saturated[i] = false;
        w.weight_left += weights[i];
    }
    /* Saturating an item only raises the level of the others, so repeat until nothing changes. */
    for (bool changed = true; changed;) {
        changed = false;
        for (uint32_t i = 0; i < count; i++) {
            if (saturated[i] || w.total_left * weights[i] <= item_max * w.weight_left)
                continue;
            saturated[i] = true;
            w.total_left -= item_max;
            w.weight_left -= weights[i];
            changed = true;
        }
    }
    ASSERT(w.weight_left > 0 || w.total_left == 0);
    return w;
}

static void shares_of(const struct ring_placement *pl, uint32_t replicas, bool by_zone,
                      struct ring_share *out)
{
    uint32_t n = pl->node_count;
    uint32_t groups = by_zone ? pl->zone_count : n;
    uint64_t *weights = calloc(groups, sizeof(*weights));
    bool *saturated = calloc(groups, sizeof(*saturated));
    ASSERT(weights && saturated); /* a few KiB outside any hot path */
    for (uint32_t i = 0; i < n; i++)
        weights[by_zone ? pl->nodes[i].zone_index : i] += pl->nodes[i].weight;
    struct water w =
        water_fill(weights, groups, (uint64_t)pl->partitions * replicas, pl->partitions, saturated);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t g = by_zone ? pl->nodes[i].zone_index : i;
        uint64_t weight = pl->nodes[i].weight;
        if (saturated[g])
            out[i] = (struct ring_share){(uint64_t)pl->partitions * weight, weights[g]};
        else
            out[i] = (struct ring_share){w.total_left * weight, w.weight_left};
        ASSERT(out[i].den > 0 && out[i].num <= (uint64_t)pl->partitions * out[i].den);
    }
    free(weights);
    free(saturated);
}

void ring_shares(const struct ring_placement *pl, struct ring_share *shares_out)
{
    shares_of(pl, pl->replicas, pl->zone_count >= pl->replicas, shares_out);
}

void ring_primary_shares(const struct ring_placement *pl, struct ring_share *shares_out)
{
    shares_of(pl, 1, false, shares_out);
}

uint32_t ring_share_cap(struct ring_share share, uint32_t epsilon_ppm, uint32_t partitions)
{
    uint64_t ceil_share = (share.num + share.den - 1) / share.den;
    uint64_t loose = share.num * (PPM + epsilon_ppm) / (share.den * PPM);
    uint64_t cap = loose > ceil_share ? loose : ceil_share;
    return (uint32_t)(cap < partitions ? cap : partitions);
}

uint32_t ring_share_floor(struct ring_share share)
{
    return (uint32_t)(share.num / share.den);
}

bool ring_share_below(struct ring_share share, uint32_t load)
{
    return (uint64_t)load * share.den > share.num;
}

double ring_placement_share(const struct ring_placement *pl, uint32_t node)
{
    ASSERT(node < pl->node_count);
    struct ring_share *shares = calloc(pl->node_count, sizeof(*shares));
    ASSERT(shares);
    ring_shares(pl, shares);
    double s = (double)shares[node].num / (double)shares[node].den;
    free(shares);
    return s;
}

void ring_placement_destroy(struct ring_placement *pl)
{
    free(pl->nodes);
    free(pl->table);
    memset(pl, 0, sizeof(*pl));
}

int ring_placement_from_ring(const struct ring *ring, uint32_t partitions, uint32_t replicas,
                             struct ring_placement *pl, uint32_t *rank_of_slot_out)
{
    memset(pl, 0, sizeof(*pl));
    pl->partitions = partitions;
    pl->replicas = replicas;
    pl->node_count = ring->node_count;
    pl->nodes = calloc(ring->node_count, sizeof(*pl->nodes));
    pl->table = calloc((size_t)partitions * replicas, sizeof(*pl->table));
    if (!pl->nodes || !pl->table) {
        ring_placement_destroy(pl);
        return RING_E_NOMEM;
    }
    uint32_t k = 0;
    for (uint32_t s = 0; s < ring->slot_count; s++)
        if (ring->nodes[s].id_len)
            rank_of_slot_out[k++] = s; /* slots for now, ranks below */
    ASSERT(k == ring->node_count);
    /* Insertion sort by id keeps this dependency-free; it runs once per placement. */
    for (uint32_t i = 1; i < k; i++) {
        uint32_t s = rank_of_slot_out[i];
        const struct ring_node *n = &ring->nodes[s];
        uint32_t j = i;
        for (; j > 0; j--) {
            const struct ring_node *m = &ring->nodes[rank_of_slot_out[j - 1]];
            if (ring_id_compare(m->id, m->id_len, n->id, n->id_len) < 0)
                break;
            rank_of_slot_out[j] = rank_of_slot_out[j - 1];
        }
        rank_of_slot_out[j] = s;
    }
    uint16_t dense[RING_NODES_MAX];
    memset(dense, 0xff, sizeof(dense));
    for (uint32_t r = 0; r < k; r++) {
        const struct ring_node *n = &ring->nodes[rank_of_slot_out[r]];
        struct ring_placement_node *d = &pl->nodes[r];
        memcpy(d->id, n->id, n->id_len);
        memcpy(d->zone, n->zone, n->zone_len);
        d->id_len = n->id_len;
        d->zone_len = n->zone_len;
        d->weight = n->weight;
        if (dense[n->zone_index] == 0xffff)
            dense[n->zone_index] = (uint16_t)pl->zone_count++;
        d->zone_index = dense[n->zone_index];
    }
    ASSERT(pl->zone_count == ring->zone_count);
    /* Turn the rank -> slot list into slot -> rank. */
    uint32_t slot_of_rank[RING_NODES_MAX];
    memcpy(slot_of_rank, rank_of_slot_out, k * sizeof(*slot_of_rank));
    for (uint32_t s = 0; s < RING_NODES_MAX; s++)
        rank_of_slot_out[s] = UINT32_MAX;
    for (uint32_t r = 0; r < k; r++)
        rank_of_slot_out[slot_of_rank[r]] = r;
    return RING_OK;
}

int ring_place_validate(const struct ring *ring, const struct ring_place_config *cfg,
                        uint32_t *epsilon_ppm_out)
{
    if (cfg->partitions < 1 || cfg->partitions > RING_PARTITIONS_MAX)
        return RING_E_PARTITIONS;
    if (cfg->replicas < 1 || cfg->replicas > RING_REPLICAS_MAX)
        return RING_E_REPLICAS;
    int err = ring_epsilon_ppm(cfg->epsilon, epsilon_ppm_out);
    if (err)
        return err;
    if (ring->node_count == 0)
        return RING_E_NO_NODES;
    if (cfg->replicas > ring->node_count)
        return RING_E_REPLICAS_NODES;
    return RING_OK;
}

int ring_place_plain(const struct ring *ring, const struct ring_place_config *cfg,
                     struct ring_placement *out)
{
    uint32_t ppm = 0;
    int err = ring_place_validate(ring, cfg, &ppm);
    if (err)
        return err;
    uint32_t rank_of_slot[RING_NODES_MAX];
    err = ring_placement_from_ring(ring, cfg->partitions, cfg->replicas, out, rank_of_slot);
    if (err)
        return err;
    for (uint32_t p = 0; p < cfg->partitions; p++) {
        uint32_t slots[RING_REPLICAS_MAX];
        err = ring_preference_list(ring, ring_partition_hash(p), cfg->replicas, slots);
        ASSERT(err == RING_OK); /* validated above */
        for (uint32_t r = 0; r < cfg->replicas; r++)
            out->table[(size_t)p * cfg->replicas + r] = (uint16_t)rank_of_slot[slots[r]];
    }
    return RING_OK;
}

/* For each node of a, its index in b (UINT32_MAX if absent): both lists are sorted by id. */
static void map_nodes(const struct ring_placement *a, const struct ring_placement *b, uint32_t *map)
{
    uint32_t j = 0;
    for (uint32_t i = 0; i < a->node_count; i++) {
        const struct ring_placement_node *x = &a->nodes[i];
        int c = 1;
        while (j < b->node_count &&
               (c = ring_id_compare(b->nodes[j].id, b->nodes[j].id_len, x->id, x->id_len)) < 0)
            j++;
        map[i] = (j < b->node_count && c == 0) ? j : UINT32_MAX;
    }
}

void ring_placement_map_nodes(const struct ring_placement *a, const struct ring_placement *b,
                              uint32_t *map)
{
    map_nodes(a, b, map);
}

/* The moves of one partition: each node of b's row missing from a's row is paired with a node of
 * a's row missing from b's row. Which loser is named for which gainer is a choice; the data
 * movement is the same. Pairs are formed so that a replica is said to go from a staying node only
 * to a joined node: staying losers first take joined gainers, leavers take the rest. */
static size_t diff_row(const struct ring_placement *a, const struct ring_placement *b, uint32_t p,
                       const uint32_t *map, const bool *b_joined, struct ring_move *moves,
                       size_t moves_max, size_t count)
{
    uint32_t r_count = a->replicas;
    const uint16_t *ra = &a->table[(size_t)p * r_count];
    const uint16_t *rb = &b->table[(size_t)p * r_count];
    uint32_t gone[RING_REPLICAS_MAX], gained[RING_REPLICAS_MAX]; /* a indexes, b slots */
    uint32_t gone_count = 0, gained_count = 0;
    /* Staying losers first, then leavers; joined gainers first, then staying gainers. */
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < r_count; i++) {
            bool kept = false;
            for (uint32_t j = 0; j < r_count; j++)
                kept |= map[ra[i]] == rb[j];
            if (!kept && (map[ra[i]] == UINT32_MAX) == (pass == 1))
                gone[gone_count++] = ra[i];
            bool had = false;
            for (uint32_t j = 0; j < r_count; j++)
                had |= map[ra[j]] == rb[i];
            if (!had && b_joined[rb[i]] == (pass == 0))
                gained[gained_count++] = i;
        }
    }
    for (uint32_t k = 0; k < gained_count; k++, count++) {
        if (count < moves_max)
            moves[count] = (struct ring_move){p, gained[k], k < gone_count ? gone[k] : UINT32_MAX,
                                              rb[gained[k]]};
    }
    return count;
}

int ring_placement_diff(const struct ring_placement *a, const struct ring_placement *b,
                        struct ring_move *moves, size_t moves_max)
{
    if (a->partitions != b->partitions || a->replicas != b->replicas)
        return RING_E_MISMATCH;
    uint32_t *map = calloc(a->node_count ? a->node_count : 1, sizeof(*map));
    if (!map)
        return RING_E_NOMEM;
    map_nodes(a, b, map);
    bool *b_joined = malloc(b->node_count ? b->node_count : 1);
    if (!b_joined) {
        free(map);
        return RING_E_NOMEM;
    }
    memset(b_joined, 1, b->node_count);
    for (uint32_t i = 0; i < a->node_count; i++)
        if (map[i] != UINT32_MAX)
            b_joined[map[i]] = false;
    size_t count = 0;
    for (uint32_t p = 0; p < a->partitions; p++)
        count = diff_row(a, b, p, map, b_joined, moves, moves_max, count);
    free(map);
    free(b_joined);
    ASSERT(count <= (size_t)a->partitions * a->replicas);
    return (int)count;
}

uint64_t ring_placement_digest(const struct ring_placement *pl)
{
    XXH3_state_t *st = XXH3_createState();
    ASSERT(st);
    XXH3_64bits_reset(st);
    uint32_t head[4] = {pl->partitions, pl->replicas, pl->node_count, pl->zone_count};
    for (int i = 0; i < 4; i++) {
        unsigned char le[4] = {(unsigned char)head[i], (unsigned char)(head[i] >> 8),
                               (unsigned char)(head[i] >> 16), (unsigned char)(head[i] >> 24)};
        XXH3_64bits_update(st, le, sizeof(le));
    }
    for (uint32_t i = 0; i < pl->node_count; i++) {
        XXH3_64bits_update(st, &pl->nodes[i].id_len, 1);
        XXH3_64bits_update(st, pl->nodes[i].id, pl->nodes[i].id_len);
    }
    size_t cells = (size_t)pl->partitions * pl->replicas;
    for (size_t c = 0; c < cells; c++) {
        unsigned char le[2] = {(unsigned char)pl->table[c], (unsigned char)(pl->table[c] >> 8)};
        XXH3_64bits_update(st, le, sizeof(le));
    }
    uint64_t digest = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return digest;
}

/* Counts per partition: a node twice, or a zone twice although there are >= R zones. */
static void check_partitions(const struct ring_placement *pl, struct ring_balance *out)
{
    bool strict = pl->zone_count >= pl->replicas;
    for (uint32_t p = 0; p < pl->partitions; p++) {
        const uint16_t *row = &pl->table[(size_t)p * pl->replicas];
        bool dup = false, zone_dup = false;
        for (uint32_t i = 0; i < pl->replicas; i++) {
            for (uint32_t j = 0; j < i; j++) {
                dup |= row[i] == row[j];
                zone_dup |= pl->nodes[row[i]].zone_index == pl->nodes[row[j]].zone_index;
            }
        }
        out->duplicate_nodes += dup;
        out->zone_violations += strict && zone_dup;
    }
}

static double share_ratio(uint32_t load, struct ring_share share)
{
    return (double)load * (double)share.den / (double)share.num;
}

int ring_placement_balance(const struct ring_placement *pl, double epsilon,
                           struct ring_balance *out)
{
    uint32_t ppm = 0;
    int err = ring_epsilon_ppm(epsilon, &ppm);
    if (err)
        return err;
    memset(out, 0, sizeof(*out));
    uint32_t n = pl->node_count;
    struct ring_share *shares = calloc(n, sizeof(*shares));
    struct ring_share *primary_shares = calloc(n, sizeof(*primary_shares));
    uint32_t *loads = calloc(n, sizeof(*loads));
    uint32_t *primary_loads = calloc(n, sizeof(*primary_loads));
    if (!shares || !primary_shares || !loads || !primary_loads) {
        err = RING_E_NOMEM;
        goto fail;
    }
    ring_shares(pl, shares);
    ring_primary_shares(pl, primary_shares);
    for (size_t c = 0; c < (size_t)pl->partitions * pl->replicas; c++) {
        loads[pl->table[c]]++;
        primary_loads[pl->table[c]] += c % pl->replicas == 0;
    }
    check_partitions(pl, out);
    double sum = 0, sum_sq = 0;
    out->min_over_share = INFINITY;
    for (uint32_t i = 0; i < n; i++) {
        double r = share_ratio(loads[i], shares[i]);
        double pr = share_ratio(primary_loads[i], primary_shares[i]);
        out->max_over_share = fmax(out->max_over_share, r);
        out->min_over_share = fmin(out->min_over_share, r);
        out->primary_max_over_share = fmax(out->primary_max_over_share, pr);
        out->over_cap += loads[i] > ring_share_cap(shares[i], ppm, pl->partitions);
        sum += r;
        sum_sq += r * r;
    }
    double mean = n ? sum / n : 0;
    out->stddev_over_share = n ? sqrt(fmax(0.0, sum_sq / n - mean * mean)) : 0;
fail:
    free(shares);
    free(primary_shares);
    free(loads);
    free(primary_loads);
    return err;
}
