/*
 * ring_place(): balanced, sticky placement of P partitions x R replicas (DESIGN.md section 3).
 *
 * Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing
 * with Bounded Loads", SODA 2018), made sticky:
 *
 *   previous table --keep every replica whose node stays--> table with holes
 *     1. shed:   a staying node above its cap hands replicas to nodes that joined
 *     2. fill:   each hole takes the first node met walking the ring clockwise from its
 *                partition's point that is new to the partition, in a new zone (when there are
 *                >= R zones) and under its cap
 *     3. top up: a joined node still below its fair share takes replicas from the most loaded
 *                nodes above theirs, first in the partitions where the plain ring would put it
 *     4. roles:  a node with too many primaries swaps roles with a backup of the same partition
 *
 * Without a previous table every cell is a hole, and step 2 alone is bounded-loads consistent
 * hashing. Replicas only ever move onto joined nodes or into holes, so a membership change never
 * moves a replica between two nodes that both stay (the one exception: a staying node over its cap
 * after a weight or epsilon change, with no joined node able to take the excess).
 *
 * Every choice is a deterministic function of the inputs: nodes are ranked by id bytes, cells
 * are visited in (partition, replica) order, and ties go to the lower rank or slot.
 */
#include <stdlib.h>
#include <string.h>

#include "ring/ring_internal.h"
#include "util/assert.h"

#define HOLE UINT16_MAX
_Static_assert(RING_NODES_MAX < HOLE, "a node index is never the hole marker");

/* Working state of one ring_place() call; every array is indexed by node rank unless noted. */
struct place {
    const struct ring *ring;
    struct ring_placement *pl;
    uint32_t partitions;
    uint32_t replicas;
    bool zones_strict; /* >= R zones: replicas of a partition must be in distinct zones */
    uint32_t rank_of_slot[RING_NODES_MAX];
    struct ring_share *shares;
    struct ring_share *primary_shares;
    uint32_t *cap; /* the hard bound: max(ceil(share), floor((1 + e) x share)) */
    uint32_t *primary_cap;
    uint32_t *target; /* ceil(share): what step 2 aims for */
    uint32_t *primary_target;
    uint32_t *load;
    uint32_t *primary_load;
    bool *joined;
    uint32_t *start; /* per partition: index of its first point on the ring */
};

static uint16_t *row_of(const struct place *st, uint32_t p)
{
    return &st->pl->table[(size_t)p * st->replicas];
}

/* May node x take replica slot r of partition p: not already there and, if zones_strict, in a
 * zone no other replica of p uses. */
static bool fits(const struct place *st, uint32_t p, uint32_t r, uint32_t x, bool zones)
{
    const uint16_t *row = row_of(st, p);
    uint16_t zone = st->pl->nodes[x].zone_index;
    for (uint32_t i = 0; i < st->replicas; i++) {
        if (i == r || row[i] == HOLE)
            continue;
        if (row[i] == x || (zones && st->pl->nodes[row[i]].zone_index == zone))
            return false;
    }
    return true;
}

static void assign(struct place *st, uint32_t p, uint32_t r, uint32_t x)
{
    uint16_t *row = row_of(st, p);
    if (row[r] != HOLE) {
        ASSERT(st->load[row[r]] > 0);
        st->load[row[r]]--;
        st->primary_load[row[r]] -= r == 0;
    }
    row[r] = (uint16_t)x;
    st->load[x]++;
    st->primary_load[x] += r == 0;
}

static uint32_t walk_node(const struct place *st, uint32_t p, uint32_t step)
{
    uint32_t i = st->start[p] + step;
    uint32_t n = st->ring->point_count;
    return st->rank_of_slot[st->ring->points[i >= n ? i - n : i].owner];
}

/* Step 2 walks past full nodes a lot: near the end of a fill from scratch most of 1000 nodes are
 * at their target and a plain walk visits thousands of points per hole. A skip list per tier makes
 * the walk jump straight to the next point whose node still has room: next[i] is a point at or
 * after i that may still be live (union-find with path halving; a point whose node fills up
 * points to i + 1). Loads only grow during step 2, so points are only ever deleted. */
struct skip {
    uint32_t *next; /* point_count + 1 entries; next[point_count] is the end sentinel */
};

static uint32_t skip_find(const struct skip *sk, uint32_t i)
{
    while (sk->next[i] != i) {
        sk->next[i] = sk->next[sk->next[i]];
        i = sk->next[i];
    }
    return i;
}

/* The three tiers that have skip lists, and each node's points (CSR by rank) to delete them. */
struct fill {
    struct skip target;         /* load < target */
    struct skip primary_target; /* load < target and primaries < primary target */
    struct skip cap;            /* load < cap */
    uint32_t *point_first;      /* node_count + 1 offsets into point_list */
    uint32_t *point_list;
    bool *fresh; /* per cell: filled by this call (so an exchange may move it) */
};

static void skip_delete_node(const struct skip *sk, const struct fill *f, uint32_t x)
{
    for (uint32_t k = f->point_first[x]; k < f->point_first[x + 1]; k++)
        sk->next[f->point_list[k]] = f->point_list[k] + 1;
}

/* The first node from partition p's point on, among the skip list's live points, that fits;
 * UINT32_MAX if none does. */
static uint32_t skip_walk(const struct place *st, const struct skip *sk, uint32_t p, uint32_t r)
{
    uint32_t n = st->ring->point_count;
    uint32_t begin = st->start[p];
    bool wrapped = false;
    for (uint32_t j = skip_find(sk, begin);; j = skip_find(sk, j + 1)) {
        if (j == n) {
            if (wrapped)
                return UINT32_MAX;
            wrapped = true;
            j = skip_find(sk, 0);
            if (j == n)
                return UINT32_MAX;
        }
        if (wrapped && j >= begin)
            return UINT32_MAX;
        uint32_t x = st->rank_of_slot[st->ring->points[j].owner];
        if (fits(st, p, r, x, st->zones_strict))
            return x;
    }
}

/* Deletes x from the skip lists it no longer belongs to after gaining a replica at slot r. */
static void skip_update(const struct place *st, const struct fill *f, uint32_t r, uint32_t x)
{
    if (st->load[x] == st->target[x]) {
        skip_delete_node(&f->target, f, x);
        skip_delete_node(&f->primary_target, f, x);
    }
    if (r == 0 && st->primary_load[x] == st->primary_target[x])
        skip_delete_node(&f->primary_target, f, x);
    if (st->load[x] == st->cap[x])
        skip_delete_node(&f->cap, f, x);
}

static void fill_assign(struct place *st, const struct fill *f, uint32_t p, uint32_t r, uint32_t x)
{
    assign(st, p, r, x);
    f->fresh[(size_t)p * st->replicas + r] = true;
    skip_update(st, f, r, x);
}

/* When no node under its cap fits partition p (they are all in p already: the end of a fill
 * with a node whose share is close to one replica per partition), an exchange still can: a node
 * z placed during this fill in another partition q moves to p's hole, and a node y under its cap
 * takes z's place in q. Only cells filled by this call are touched, so no replica of the
 * previous table moves. Returns false if no exchange exists. */
static bool fill_by_exchange(struct place *st, const struct fill *f, uint32_t p, uint32_t r)
{
    uint32_t roomy[RING_NODES_MAX];
    uint32_t roomy_count = 0;
    for (uint32_t y = 0; y < st->pl->node_count; y++)
        if (st->load[y] < st->cap[y])
            roomy[roomy_count++] = y;
    for (uint32_t k = 1; k < st->partitions && roomy_count; k++) {
        uint32_t q = p + k < st->partitions ? p + k : p + k - st->partitions;
        for (uint32_t r2 = 0; r2 < st->replicas; r2++) {
            size_t c = (size_t)q * st->replicas + r2;
            uint16_t z = st->pl->table[c];
            if (!f->fresh[c] || z == HOLE || !fits(st, p, r, z, st->zones_strict))
                continue;
            for (uint32_t i = 0; i < roomy_count; i++) {
                uint32_t y = roomy[i];
                if (y == z || !fits(st, q, r2, y, st->zones_strict))
                    continue;
                assign(st, q, r2, y);
                skip_update(st, f, r2, y);
                fill_assign(st, f, p, r, z);
                return true;
            }
        }
    }
    return false;
}

/* Tiers, strictest first: 0. under the target (the ceiling of the share) and, for a primary,
 * under the primary target; 1. under the target; 2. under the cap. Aiming at the target rather
 * than the cap keeps the table tight, which leaves room for the next change: after a node joins
 * the others' shares drop, and a node sitting at its old cap could be over the new one with no
 * joined node left to take the excess. Tiers 3 (zones kept) and 4 (distinct nodes only) run only
 * when the caps cannot be met, a zone too small for its share say, so that every partition still
 * gets R distinct nodes. */
static void fill_hole(struct place *st, const struct fill *f, uint32_t p, uint32_t r)
{
    const struct skip *tiers[3] = {r == 0 ? &f->primary_target : &f->target, &f->target, &f->cap};
    for (int tier = 0; tier < 3; tier++) {
        uint32_t x = skip_walk(st, tiers[tier], p, r);
        if (x != UINT32_MAX) {
            fill_assign(st, f, p, r, x);
            return;
        }
    }
    if (fill_by_exchange(st, f, p, r))
        return;
    for (int tier = 3; tier < 5; tier++) {
        uint32_t last = UINT32_MAX;
        for (uint32_t step = 0; step < st->ring->point_count; step++) {
            uint32_t x = walk_node(st, p, step);
            if (x == last) /* consecutive points of one node: one check is enough */
                continue;
            last = x;
            if (fits(st, p, r, x, tier == 3 && st->zones_strict)) {
                fill_assign(st, f, p, r, x);
                return;
            }
        }
    }
    UNREACHABLE(); /* replicas <= nodes, so tier 4 always finds a node */
}

static int fill_init(const struct place *st, struct fill *f)
{
    uint32_t n = st->ring->point_count;
    uint32_t nodes = st->pl->node_count;
    f->target.next = malloc(((size_t)n + 1) * sizeof(uint32_t));
    f->primary_target.next = malloc(((size_t)n + 1) * sizeof(uint32_t));
    f->cap.next = malloc(((size_t)n + 1) * sizeof(uint32_t));
    f->point_first = calloc((size_t)nodes + 1, sizeof(uint32_t));
    f->point_list = malloc((size_t)n * sizeof(uint32_t));
    f->fresh = calloc((size_t)st->partitions * st->replicas, sizeof(bool));
    if (!f->target.next || !f->primary_target.next || !f->cap.next || !f->point_first ||
        !f->point_list || !f->fresh)
        return RING_E_NOMEM;
    for (uint32_t i = 0; i < n; i++)
        f->point_first[st->rank_of_slot[st->ring->points[i].owner] + 1]++;
    for (uint32_t x = 0; x < nodes; x++)
        f->point_first[x + 1] += f->point_first[x];
    uint32_t *fill_at = f->target.next; /* scratch before the skip lists are set */
    memcpy(fill_at, f->point_first, (size_t)nodes * sizeof(uint32_t));
    for (uint32_t i = 0; i < n; i++)
        f->point_list[fill_at[st->rank_of_slot[st->ring->points[i].owner]]++] = i;
    for (uint32_t i = 0; i <= n; i++)
        f->target.next[i] = f->primary_target.next[i] = f->cap.next[i] = i;
    for (uint32_t x = 0; x < nodes; x++) {
        if (st->load[x] >= st->target[x]) {
            skip_delete_node(&f->target, f, x);
            skip_delete_node(&f->primary_target, f, x);
        }
        if (st->primary_load[x] >= st->primary_target[x])
            skip_delete_node(&f->primary_target, f, x);
        if (st->load[x] >= st->cap[x])
            skip_delete_node(&f->cap, f, x);
    }
    return RING_OK;
}

static void fill_free(struct fill *f)
{
    free(f->target.next);
    free(f->primary_target.next);
    free(f->cap.next);
    free(f->point_first);
    free(f->point_list);
    free(f->fresh);
}

/* A node whose share is a replica in every partition (a node heavier than all others together,
 * or alone in its zone with R zones) has no slack at all: the greedy walk, which may pass it by in
 * early partitions, would leave it short and the last partitions with nowhere to go. So it takes
 * its place first: the last hole of every partition that lacks it (the primary slot, if that is
 * the only hole, so a primary can still be balanced by the walk when there is a choice). */
static void place_saturated(struct place *st, const struct fill *f)
{
    for (uint32_t x = 0; x < st->pl->node_count; x++) {
        if (st->target[x] < st->partitions)
            continue;
        for (uint32_t p = 0; p < st->partitions; p++) {
            const uint16_t *row = row_of(st, p);
            int hole = -1;
            for (uint32_t r = 0; r < st->replicas; r++)
                if (row[r] == HOLE)
                    hole = (int)r;
            if (hole >= 0 && st->load[x] < st->target[x] &&
                fits(st, p, (uint32_t)hole, x, st->zones_strict))
                fill_assign(st, f, p, (uint32_t)hole, x);
        }
    }
}

static int fill_holes(struct place *st)
{
    size_t cells = (size_t)st->partitions * st->replicas;
    size_t c = 0;
    while (c < cells && st->pl->table[c] != HOLE)
        c++;
    if (c == cells)
        return RING_OK;
    struct fill f = {0};
    int err = fill_init(st, &f);
    if (err == RING_OK) {
        place_saturated(st, &f);
        for (; c < cells; c++)
            if (st->pl->table[c] == HOLE)
                fill_hole(st, &f, (uint32_t)(c / st->replicas), (uint32_t)(c % st->replicas));
    }
    fill_free(&f);
    return err;
}

/* Step 1: staying nodes above their cap hand replicas to joined nodes under theirs, found by a
 * ring walk from the partition's point. Returns whether some node is still over its cap. */
static bool shed_to_joined(struct place *st)
{
    bool over = false;
    uint32_t room = 0; /* joined nodes under their cap: none left means no walk can succeed */
    for (uint32_t j = 0; j < st->pl->node_count; j++)
        room += st->joined[j] && st->load[j] < st->cap[j];
    for (uint32_t p = 0; p < st->partitions; p++) {
        for (uint32_t r = 0; r < st->replicas; r++) {
            uint16_t x = row_of(st, p)[r];
            if (x == HOLE || st->load[x] <= st->cap[x])
                continue;
            if (room == 0)
                continue;
            uint32_t last = UINT32_MAX;
            for (uint32_t step = 0; step < st->ring->point_count; step++) {
                uint32_t y = walk_node(st, p, step);
                if (y == last)
                    continue;
                last = y;
                if (st->joined[y] && st->load[y] < st->cap[y] &&
                    fits(st, p, r, y, st->zones_strict)) {
                    assign(st, p, r, y);
                    room -= st->load[y] == st->cap[y];
                    break;
                }
            }
        }
    }
    for (uint32_t x = 0; x < st->pl->node_count; x++)
        over |= st->load[x] > st->cap[x];
    return over;
}

/* The last resort of step 1 (weights or epsilon changed, no joined node has room): hand the
 * excess to any node below its fair share. */
static void shed_to_any(struct place *st)
{
    for (uint32_t p = 0; p < st->partitions; p++) {
        for (uint32_t r = 0; r < st->replicas; r++) {
            uint16_t x = row_of(st, p)[r];
            if (x == HOLE || st->load[x] <= st->cap[x])
                continue;
            uint32_t last = UINT32_MAX;
            for (uint32_t step = 0; step < st->ring->point_count; step++) {
                uint32_t y = walk_node(st, p, step);
                if (y == last)
                    continue;
                last = y;
                if (!ring_share_below(st->shares[y], st->load[y] + 1) &&
                    fits(st, p, r, y, st->zones_strict)) {
                    assign(st, p, r, y);
                    break;
                }
            }
        }
    }
}

/* The slot of partition p whose node gains most from handing it to joined node j: the node the
 * most above its share (ties: lower slot), among nodes that stayed and are above their share.
 * Prefers the primary slot while j has fewer primaries than its primary share and the backup
 * slots once it has them, so primaries stay balanced too. -1 if none. */
static int victim_slot(const struct place *st, uint32_t p, uint32_t j)
{
    const uint16_t *row = row_of(st, p);
    int best = -1;
    double best_ratio = 0;
    bool want_primary = !ring_share_below(st->primary_shares[j], st->primary_load[j] + 1);
    for (uint32_t r = 0; r < st->replicas; r++) {
        uint16_t x = row[r];
        if (x == j)
            return -1;
        if (st->joined[x] || !ring_share_below(st->shares[x], st->load[x]) ||
            !fits(st, p, r, j, st->zones_strict))
            continue;
        double ratio = (double)st->load[x] * (double)st->shares[x].den / (double)st->shares[x].num;
        if (r == 0 && want_primary && ring_share_below(st->primary_shares[x], st->primary_load[x]))
            ratio += 1.0; /* moving a primary helps both balances */
        else if (r == 0 && !want_primary)
            ratio -= 1.0; /* j has its primaries: take a backup slot if there is one */
        if (best < 0 || ratio > best_ratio) {
            best = (int)r;
            best_ratio = ratio;
        }
    }
    return best;
}

static bool wants_more(const struct place *st, uint32_t j)
{
    return st->joined[j] && st->load[j] < ring_share_floor(st->shares[j]) &&
           st->load[j] < st->cap[j];
}

/* Step 3, first pass: partitions where the plain ring lists a joined node that is below its
 * share, so the table stays close to what consistent hashing alone would give. */
static void top_up_ring(struct place *st)
{
    for (uint32_t p = 0; p < st->partitions; p++) {
        uint32_t seen[RING_REPLICAS_MAX];
        uint32_t got = 0;
        uint32_t last = UINT32_MAX;
        for (uint32_t step = 0; step < st->ring->point_count && got < st->replicas; step++) {
            uint32_t x = walk_node(st, p, step);
            if (x == last)
                continue;
            last = x;
            bool dup = false;
            for (uint32_t i = 0; i < got; i++)
                dup |= seen[i] == x;
            if (dup)
                continue;
            seen[got++] = x;
            if (!wants_more(st, x))
                continue;
            int r = victim_slot(st, p, x);
            if (r >= 0)
                assign(st, p, (uint32_t)r, x);
        }
    }
}

/* Step 3, second pass: any partition, starting at a point that depends on the node so that
 * several joined nodes do not all raid the same low partitions. */
static void top_up_any(struct place *st)
{
    for (uint32_t j = 0; j < st->pl->node_count; j++) {
        if (!wants_more(st, j))
            continue;
        uint32_t first =
            (uint32_t)(ring_point_hash(st->pl->nodes[j].id, st->pl->nodes[j].id_len, 0) %
                       st->partitions);
        for (uint32_t k = 0; k < st->partitions && wants_more(st, j); k++) {
            uint32_t p = first + k >= st->partitions ? first + k - st->partitions : first + k;
            int r = victim_slot(st, p, j);
            if (r >= 0)
                assign(st, p, (uint32_t)r, j);
        }
    }
}

/* Step 4: a primary over its primary cap swaps roles with a backup of the same partition that is
 * under its own (the one furthest below, ties to the lower slot). Only roles change, no replica
 * moves: a new primary is already a replica, so this costs a leader change, not a copy. */
static void balance_primaries(struct place *st)
{
    if (st->replicas < 2)
        return;
    for (uint32_t p = 0; p < st->partitions; p++) {
        uint16_t *row = row_of(st, p);
        uint16_t x = row[0];
        if (st->primary_load[x] <= st->primary_cap[x])
            continue;
        uint32_t best = 0;
        for (uint32_t r = 1; r < st->replicas; r++) {
            uint16_t y = row[r];
            if (st->primary_load[y] >= st->primary_cap[y])
                continue;
            if (best == 0 || (uint64_t)st->primary_load[y] * st->primary_shares[row[best]].num <
                                 (uint64_t)st->primary_load[row[best]] * st->primary_shares[y].num)
                best = r;
        }
        if (best == 0)
            continue;
        row[0] = row[best];
        row[best] = x;
        st->primary_load[x]--;
        st->primary_load[row[0]]++;
    }
}

/* Copies the replicas of prev whose node is still a member; the rest become holes. Marks the
 * members that prev did not have as joined. */
static int keep_previous(struct place *st, const struct ring_placement *prev)
{
    if (prev->partitions != st->partitions || prev->replicas != st->replicas)
        return RING_E_MISMATCH;
    uint32_t *map = calloc(prev->node_count ? prev->node_count : 1, sizeof(*map));
    if (!map)
        return RING_E_NOMEM;
    ring_placement_map_nodes(prev, st->pl, map);
    for (uint32_t j = 0; j < st->pl->node_count; j++)
        st->joined[j] = true;
    /* A node whose weight grew is filled like one that joined: it receives the others' excess
     * (their shares dropped) and is topped up to its new share. */
    for (uint32_t i = 0; i < prev->node_count; i++)
        if (map[i] != UINT32_MAX && prev->nodes[i].weight >= st->pl->nodes[map[i]].weight)
            st->joined[map[i]] = false;
    size_t cells = (size_t)st->partitions * st->replicas;
    for (size_t c = 0; c < cells; c++) {
        uint32_t x = map[prev->table[c]];
        if (x == UINT32_MAX) {
            st->pl->table[c] = HOLE;
            continue;
        }
        st->pl->table[c] = (uint16_t)x;
        st->load[x]++;
        st->primary_load[x] += c % st->replicas == 0;
    }
    free(map);
    return RING_OK;
}

static int alloc_state(struct place *st, uint32_t n)
{
    st->shares = calloc(n, sizeof(*st->shares));
    st->primary_shares = calloc(n, sizeof(*st->primary_shares));
    st->cap = calloc(n, sizeof(*st->cap));
    st->primary_cap = calloc(n, sizeof(*st->primary_cap));
    st->target = calloc(n, sizeof(*st->target));
    st->primary_target = calloc(n, sizeof(*st->primary_target));
    st->load = calloc(n, sizeof(*st->load));
    st->primary_load = calloc(n, sizeof(*st->primary_load));
    st->joined = calloc(n, sizeof(*st->joined));
    st->start = calloc(st->partitions, sizeof(*st->start));
    if (!st->shares || !st->primary_shares || !st->cap || !st->primary_cap || !st->target ||
        !st->primary_target || !st->load || !st->primary_load || !st->joined || !st->start)
        return RING_E_NOMEM;
    return RING_OK;
}

static void free_state(struct place *st)
{
    free(st->shares);
    free(st->primary_shares);
    free(st->cap);
    free(st->primary_cap);
    free(st->target);
    free(st->primary_target);
    free(st->load);
    free(st->primary_load);
    free(st->joined);
    free(st->start);
}

static void prepare(struct place *st, uint32_t epsilon_ppm)
{
    struct ring_placement *pl = st->pl;
    ring_shares(pl, st->shares);
    ring_primary_shares(pl, st->primary_shares);
    for (uint32_t i = 0; i < pl->node_count; i++) {
        st->cap[i] = ring_share_cap(st->shares[i], epsilon_ppm, st->partitions);
        st->primary_cap[i] = ring_share_cap(st->primary_shares[i], epsilon_ppm, st->partitions);
        st->target[i] = ring_share_cap(st->shares[i], 0, st->partitions);
        st->primary_target[i] = ring_share_cap(st->primary_shares[i], 0, st->partitions);
    }
    for (uint32_t p = 0; p < st->partitions; p++)
        st->start[p] = ring_point_index(st->ring, ring_partition_hash(p));
    size_t cells = (size_t)st->partitions * st->replicas;
    for (size_t c = 0; c < cells; c++)
        pl->table[c] = HOLE;
}

int ring_place(const struct ring *ring, const struct ring_placement *prev,
               const struct ring_place_config *cfg, struct ring_placement *out)
{
    uint32_t ppm = 0;
    int err = ring_place_validate(ring, cfg, &ppm);
    if (err)
        return err;
    struct place *st = calloc(1, sizeof(*st));
    if (!st)
        return RING_E_NOMEM;
    st->ring = ring;
    st->pl = out;
    st->partitions = cfg->partitions;
    st->replicas = cfg->replicas;
    err = ring_placement_from_ring(ring, cfg->partitions, cfg->replicas, out, st->rank_of_slot);
    if (err)
        goto fail_state;
    st->zones_strict = out->zone_count >= cfg->replicas;
    if ((err = alloc_state(st, out->node_count)))
        goto fail;
    prepare(st, ppm);
    if (prev && (err = keep_previous(st, prev)))
        goto fail;
    if (prev && shed_to_joined(st))
        shed_to_any(st);
    if ((err = fill_holes(st)))
        goto fail;
    if (prev) {
        top_up_ring(st);
        top_up_any(st);
    }
    balance_primaries(st);
    for (size_t c = 0; c < (size_t)cfg->partitions * cfg->replicas; c++)
        ASSERT(out->table[c] < out->node_count);
    free_state(st);
    free(st);
    return RING_OK;
fail:
    ring_placement_destroy(out);
fail_state:
    free_state(st);
    free(st);
    return err;
}
