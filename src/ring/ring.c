/*
 * The ring of weighted virtual nodes, and key -> partition hashing (include/shardmart/ring.h).
 *
 * A node of weight w owns w * points_per_weight points; point i of node `id` sits at
 * XXH3-64(id, seed i). Points are (hash, owner) pairs sorted by (hash, owner id bytes). The
 * tie-break on owner id bytes makes the order, and so every lookup, independent of the order of
 * adds.
 *
 * Lookup is "first point >= hash, else wrap to point 0". A plain binary search over 160 000 points
 * takes ~17 dependent cache misses. Two indexes cut that down:
 *
 * - the lookup table (ring_lookup): 2^bits slots by the top bits of the hash, with 2 to 4 slots
 *   per point (bits 10..22), so most slots hold no point and their entry is the answer itself:
 *
 *     bit 31 | bit 30 | bits 0..29
 *       1    |   0    | owner slot of the first point after the slot: every hash in it maps there
 *       0    |   0    | index of the first of the slot's 1 or 2 points: compare both, no branch
 *       0    |   1    | index of the first of the slot's > 2 points: the prefix index's scan
 *
 *   At 160 000 points (2^19 slots, 2 MiB) 74 % of lookups read one entry and nothing else; the
 *   rest read one line of points. A sentinel point of hash UINT64_MAX after the last one lets the
 *   two compares run past the end without a bound check.
 * - the prefix table (ring_point_index, for walks that need the point's position): 2^16 + 1
 *   entries, the first point whose top 16 bits are >= i, leaving 2.4 points to scan on average at
 *   160 000 points.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "limits.h"
#include "ring/ring_internal.h"
#include "util/assert.h"

_Static_assert(RING_PARTITIONS_MAX == SM_PARTITIONS_MAX, "ring.h and limits.h agree on P");
_Static_assert(RING_REPLICAS_MAX == SM_REPLICAS_MAX, "ring.h and limits.h agree on R");
_Static_assert(RING_NODES_MAX <= UINT16_MAX, "node indexes fit the 16-bit placement table");
_Static_assert(RING_NODE_ID_BYTES_MAX == SM_NODE_ID_BYTES_MAX, "ring.h and limits.h agree");
_Static_assert(RING_NODES_MAX == SM_RING_NODES_MAX, "ring.h and limits.h agree");
_Static_assert(RING_POINTS_MAX == SM_RING_POINTS_MAX, "ring.h and limits.h agree");
_Static_assert(RING_WEIGHT_MAX == SM_RING_WEIGHT_MAX, "ring.h and limits.h agree");

#define PREFIX_BITS    16
#define PREFIX_ENTRIES ((1u << PREFIX_BITS) + 1)

/* The lookup table: 2 to 4 slots per point, from 1 KiB up to 16 MiB at RING_POINTS_MAX. */
#define LOOKUP_BITS_MIN 10
#define LOOKUP_BITS_MAX 22
#define LOOKUP_OWNER    (1u << 31) /* no point in the slot: the low bits are the answer */
#define LOOKUP_MANY     (1u << 30) /* more than LOOKUP_SCAN points in the slot */
#define LOOKUP_VALUE    ((1u << 30) - 1)
#define LOOKUP_SCAN     2
_Static_assert(RING_POINTS_MAX <= LOOKUP_VALUE && RING_NODES_MAX <= LOOKUP_VALUE,
               "point indexes and node slots fit a lookup entry");

static const char *const ring_messages[RING_ERR_COUNT] = {
#define RING_ERR_MSG(name, msg) [RING_ROW_##name] = msg,
    RING_ERRORS(RING_ERR_MSG)
#undef RING_ERR_MSG
};

const char *ring_strerror(int err)
{
    if (err == RING_OK)
        return "ok";
    if (err >= 0 || err < -RING_ERR_COUNT)
        return "unknown error";
    return ring_messages[-err - 1];
}

uint64_t ring_hash_key(const void *key, size_t len)
{
    return XXH3_64bits(key, len);
}

uint64_t ring_point_hash(const char *id, size_t id_len, uint32_t point)
{
    return XXH3_64bits_withSeed(id, id_len, point);
}

int ring_init(struct ring *ring, uint32_t points_per_weight)
{
    if (points_per_weight == 0)
        points_per_weight = RING_POINTS_PER_WEIGHT_DEFAULT;
    if (points_per_weight > RING_POINTS_PER_WEIGHT_MAX)
        return RING_E_POINTS_PER_WEIGHT;
    memset(ring, 0, sizeof(*ring));
    ring->points_per_weight = points_per_weight;
    ring->nodes = calloc(RING_NODES_MAX, sizeof(*ring->nodes));
    ring->prefix = calloc(PREFIX_ENTRIES, sizeof(*ring->prefix));
    if (!ring->nodes || !ring->prefix) {
        free(ring->nodes);
        free(ring->prefix);
        return RING_E_NOMEM;
    }
    return RING_OK;
}

void ring_destroy(struct ring *ring)
{
    free(ring->nodes);
    free(ring->points);
    free(ring->prefix);
    free(ring->lookup);
    memset(ring, 0, sizeof(*ring));
}

int ring_id_compare(const char *a, size_t a_len, const char *b, size_t b_len)
{
    size_t n = a_len < b_len ? a_len : b_len;
    int c = memcmp(a, b, n);
    if (c != 0)
        return c;
    return (a_len > b_len) - (a_len < b_len);
}

int ring_find_node(const struct ring *ring, const char *id, size_t id_len)
{
    if (id_len == 0 || id_len > RING_NODE_ID_BYTES_MAX)
        return RING_E_ID_LENGTH;
    for (uint32_t s = 0; s < ring->slot_count; s++) {
        const struct ring_node *n = &ring->nodes[s];
        if (n->id_len == id_len && memcmp(n->id, id, id_len) == 0)
            return (int)s;
    }
    return RING_E_NOT_FOUND;
}

/* The order of points: by hash, then by owner id bytes (the tie-break of DESIGN.md section 3). */
bool ring_point_less(const struct ring_node *nodes, uint64_t ha, uint32_t oa, uint64_t hb,
                     uint32_t ob)
{
    if (ha != hb)
        return ha < hb;
    const struct ring_node *a = &nodes[oa];
    const struct ring_node *b = &nodes[ob];
    return ring_id_compare(a->id, a->id_len, b->id, b->id_len) < 0;
}

static int point_cmp(const void *pa, const void *pb, void *ctx)
{
    const struct ring_point *a = pa;
    const struct ring_point *b = pb;
    const struct ring_node *nodes = ctx;
    if (ring_point_less(nodes, a->hash, a->owner, b->hash, b->owner))
        return -1;
    return ring_point_less(nodes, b->hash, b->owner, a->hash, a->owner);
}

/* The lookup table's size for a ring of `points` points: the smallest power of two >= 2 slots per
 * point, within LOOKUP_BITS_MIN..LOOKUP_BITS_MAX. */
static uint32_t lookup_bits_for(uint32_t points)
{
    uint32_t bits = LOOKUP_BITS_MIN;
    while (bits < LOOKUP_BITS_MAX && (1ull << bits) < 2ull * points)
        bits++;
    return bits;
}

/* A table for a ring of `points` points: the current one when its size is right, else a new one
 * (NULL when there are no points). Nothing changes in the ring, so a failure (RING_E_NOMEM)
 * leaves it as it was. */
static int lookup_prepare(const struct ring *ring, uint32_t points, uint32_t **table_out,
                          uint32_t *bits_out)
{
    *bits_out = points ? lookup_bits_for(points) : 0;
    *table_out = NULL;
    if (points == 0)
        return RING_OK;
    if (ring->lookup && ring->lookup_bits == *bits_out) {
        *table_out = ring->lookup;
        return RING_OK;
    }
    *table_out = malloc(sizeof(uint32_t) << *bits_out);
    return *table_out ? RING_OK : RING_E_NOMEM;
}

/* Discards a prepared table that was not installed. */
static void lookup_discard(const struct ring *ring, uint32_t *table)
{
    if (table != ring->lookup)
        free(table);
}

/* Fills the lookup table from the sorted points (see the top of this file). */
static void fill_lookup(struct ring *ring)
{
    const struct ring_point *points = ring->points;
    uint32_t n = ring->point_count, bits = ring->lookup_bits, i = 0;
    ASSERT(n > 0 && bits >= LOOKUP_BITS_MIN && bits <= LOOKUP_BITS_MAX);
    for (uint64_t slot = 0; slot < (1ull << bits); slot++) {
        uint32_t first = i;
        while (i < n && (points[i].hash >> (64 - bits)) == slot)
            i++;
        if (i == first)
            ring->lookup[slot] = LOOKUP_OWNER | points[first == n ? 0 : first].owner;
        else
            ring->lookup[slot] = first | (i - first > LOOKUP_SCAN ? LOOKUP_MANY : 0);
    }
    ASSERT(i == n);
}

/* Rebuilds both indexes after the points changed, installing `table` (from lookup_prepare() for
 * the current point_count, or the current table when a smaller one could not be had: a table of
 * any size gives the same answers). */
static void rebuild_indexes(struct ring *ring, uint32_t *table, uint32_t bits)
{
    uint32_t i = 0;
    for (uint32_t b = 0; b < PREFIX_ENTRIES; b++) {
        while (i < ring->point_count && (ring->points[i].hash >> (64 - PREFIX_BITS)) < b)
            i++;
        ring->prefix[b] = i;
    }
    ASSERT(ring->prefix[PREFIX_ENTRIES - 1] == ring->point_count);
    if (table != ring->lookup)
        free(ring->lookup);
    ring->lookup = table;
    ring->lookup_bits = bits;
    if (ring->point_count == 0) {
        ASSERT(table == NULL);
        return;
    }
    ASSERT(table != NULL);
    ring->points[ring->point_count] = (struct ring_point){UINT64_MAX, 0};
    fill_lookup(ring);
}

/* Recounts the distinct zones among present nodes (zone indexes may be sparse after removals). */
static void recount_zones(struct ring *ring)
{
    static const uint32_t words = RING_NODES_MAX / 64;
    uint64_t seen[RING_NODES_MAX / 64] = {0};
    uint32_t count = 0;
    for (uint32_t s = 0; s < ring->slot_count; s++) {
        const struct ring_node *n = &ring->nodes[s];
        if (n->id_len == 0)
            continue;
        ASSERT(n->zone_index / 64 < words);
        uint64_t bit = 1ULL << (n->zone_index % 64);
        if (!(seen[n->zone_index / 64] & bit)) {
            seen[n->zone_index / 64] |= bit;
            count++;
        }
    }
    ring->zone_count = count;
}

/* The zone index for a label: that of a present node with the same label, else the smallest index
 * no present node uses. */
static uint16_t zone_index_for(const struct ring *ring, const char *zone, size_t zone_len)
{
    uint64_t used[RING_NODES_MAX / 64] = {0};
    for (uint32_t s = 0; s < ring->slot_count; s++) {
        const struct ring_node *n = &ring->nodes[s];
        if (n->id_len == 0)
            continue;
        if (n->zone_len == zone_len && (zone_len == 0 || memcmp(n->zone, zone, zone_len) == 0))
            return n->zone_index;
        used[n->zone_index / 64] |= 1ULL << (n->zone_index % 64);
    }
    for (uint32_t z = 0; z < RING_NODES_MAX; z++)
        if (!(used[z / 64] & (1ULL << (z % 64))))
            return (uint16_t)z;
    UNREACHABLE();
}

static int validate_spec(const struct ring_node_spec *spec)
{
    if (!spec->id || spec->id_len == 0 || spec->id_len > RING_NODE_ID_BYTES_MAX)
        return RING_E_ID_LENGTH;
    if (spec->zone_len > RING_ZONE_BYTES_MAX || (spec->zone_len > 0 && !spec->zone))
        return RING_E_ZONE_LENGTH;
    if (spec->weight < 1 || spec->weight > RING_WEIGHT_MAX)
        return RING_E_WEIGHT;
    return RING_OK;
}

/* Checks a batch of specs against each other and the ring, and counts their points. */
static int validate_batch(const struct ring *ring, const struct ring_node_spec *specs, size_t count,
                          uint64_t *points_out)
{
    uint64_t points = 0;
    for (size_t i = 0; i < count; i++) {
        int err = validate_spec(&specs[i]);
        if (err)
            return err;
        if (ring_find_node(ring, specs[i].id, specs[i].id_len) >= 0)
            return RING_E_DUPLICATE;
        for (size_t j = 0; j < i; j++)
            if (ring_id_compare(specs[i].id, specs[i].id_len, specs[j].id, specs[j].id_len) == 0)
                return RING_E_DUPLICATE;
        points += (uint64_t)specs[i].weight * ring->points_per_weight;
    }
    if (ring->node_count + count > RING_NODES_MAX)
        return RING_E_TOO_MANY_NODES;
    if (ring->point_count + points > RING_POINTS_MAX)
        return RING_E_TOO_MANY_POINTS;
    *points_out = points;
    return RING_OK;
}

/* Claims a free slot (reusing one freed by a remove, so slot_count stays bounded). */
static uint32_t claim_slot(struct ring *ring)
{
    for (uint32_t s = 0; s < ring->slot_count; s++)
        if (ring->nodes[s].id_len == 0)
            return s;
    ASSERT(ring->slot_count < RING_NODES_MAX);
    return ring->slot_count++;
}

static void install_node(struct ring *ring, uint32_t slot, const struct ring_node_spec *spec)
{
    struct ring_node *n = &ring->nodes[slot];
    memset(n, 0, sizeof(*n));
    memcpy(n->id, spec->id, spec->id_len);
    if (spec->zone_len)
        memcpy(n->zone, spec->zone, spec->zone_len);
    n->zone_len = (uint8_t)spec->zone_len;
    n->zone_index = zone_index_for(ring, spec->zone, spec->zone_len);
    n->id_len = (uint8_t)spec->id_len;
    n->weight = (uint32_t)spec->weight;
    ring->node_count++;
}

/* Merges the sorted new points into the sorted ring arrays, in place from the back after growing
 * them geometrically, so adding nodes one by one costs one pass over the ring each, not a fresh
 * allocation each. Borrows `add`. */
static int merge_points(struct ring *ring, const struct ring_point *add, uint32_t add_count)
{
    uint32_t total = ring->point_count + add_count;
    /* One more than the points, for the sentinel. */
    if (total + 1 > ring->point_capacity) {
        uint32_t capacity = ring->point_capacity ? ring->point_capacity : 1024;
        while (capacity < total + 1)
            capacity = capacity > RING_POINTS_MAX / 2 ? RING_POINTS_MAX + 1 : capacity * 2;
        struct ring_point *points = realloc(ring->points, (size_t)capacity * sizeof(*points));
        if (!points)
            return RING_E_NOMEM;
        ring->points = points;
        ring->point_capacity = capacity;
    }
    struct ring_point *points = ring->points;
    int64_t i = (int64_t)ring->point_count - 1, j = (int64_t)add_count - 1;
    for (int64_t k = (int64_t)total - 1; j >= 0; k--) {
        ASSERT(k >= 0);
        if (i >= 0 && ring_point_less(ring->nodes, add[j].hash, add[j].owner, points[i].hash,
                                      points[i].owner))
            points[k] = points[i--];
        else
            points[k] = add[j--];
    }
    ring->point_count = total;
    return RING_OK;
}

int ring_add_nodes(struct ring *ring, const struct ring_node_spec *specs, size_t count)
{
    uint64_t points = 0;
    int err = validate_batch(ring, specs, count, &points);
    if (err)
        return err;
    uint32_t *table = NULL, bits = 0;
    err = lookup_prepare(ring, ring->point_count + (uint32_t)points, &table, &bits);
    if (err)
        return err;
    struct ring_point *add = malloc((size_t)(points ? points : 1) * sizeof(*add));
    if (!add) {
        lookup_discard(ring, table);
        return RING_E_NOMEM;
    }
    /* Slots are claimed only once nothing can fail but the merge, which is undone below. */
    uint32_t slots[RING_NODES_MAX];
    ASSERT(count <= RING_NODES_MAX);
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        slots[i] = claim_slot(ring);
        install_node(ring, slots[i], &specs[i]);
        uint32_t n_points = (uint32_t)specs[i].weight * ring->points_per_weight;
        for (uint32_t p = 0; p < n_points; p++)
            add[k++] =
                (struct ring_point){ring_point_hash(specs[i].id, specs[i].id_len, p), slots[i]};
    }
    ASSERT(k == points);
    qsort_r(add, k, sizeof(*add), point_cmp, ring->nodes);
    err = merge_points(ring, add, (uint32_t)k);
    free(add);
    if (err) {
        for (size_t i = 0; i < count; i++)
            ring->nodes[slots[i]].id_len = 0;
        ring->node_count -= (uint32_t)count;
        lookup_discard(ring, table);
        return err;
    }
    recount_zones(ring);
    rebuild_indexes(ring, table, bits);
    return RING_OK;
}

int ring_add_node(struct ring *ring, const struct ring_node_spec *spec)
{
    return ring_add_nodes(ring, spec, 1);
}

int ring_remove_node(struct ring *ring, const char *id, size_t id_len)
{
    int slot = ring_find_node(ring, id, id_len);
    if (slot < 0)
        return slot;
    uint32_t k = 0;
    for (uint32_t i = 0; i < ring->point_count; i++) {
        if (ring->points[i].owner == (uint32_t)slot)
            continue;
        ring->points[k].hash = ring->points[i].hash;
        ring->points[k++].owner = ring->points[i].owner;
    }
    ASSERT(ring->point_count - k == ring->nodes[slot].weight * ring->points_per_weight);
    ring->point_count = k;
    ring->nodes[slot].id_len = 0;
    ring->node_count--;
    recount_zones(ring);
    uint32_t *table = NULL, bits = 0;
    if (lookup_prepare(ring, k, &table, &bits) != RING_OK) {
        /* No memory for the smaller table: the current one, larger, serves as well. */
        table = ring->lookup;
        bits = ring->lookup_bits;
    }
    rebuild_indexes(ring, table, bits);
    return RING_OK;
}

uint32_t ring_point_index(const struct ring *ring, uint64_t hash)
{
    ASSERT(ring->point_count > 0);
    uint32_t b = (uint32_t)(hash >> (64 - PREFIX_BITS));
    uint32_t i = ring->prefix[b];
    uint32_t end = ring->prefix[b + 1];
    /* Buckets hold a few points; a long one (a skewed ring) falls back to bisection. */
    while (end - i > 8) {
        uint32_t mid = i + (end - i) / 2;
        if (ring->points[mid].hash < hash)
            i = mid + 1;
        else
            end = mid;
    }
    while (i < end && ring->points[i].hash < hash)
        i++;
    return i == ring->point_count ? 0 : i;
}

int ring_lookup(const struct ring *ring, uint64_t hash)
{
    if (ring->point_count == 0)
        return RING_E_NO_NODES;
    uint32_t entry = ring->lookup[hash >> (64 - ring->lookup_bits)];
    if (entry & LOOKUP_OWNER)
        return (int)(entry & LOOKUP_VALUE);
    uint32_t i = entry & LOOKUP_VALUE;
    if (__builtin_expect(entry & LOOKUP_MANY, 0)) {
        i = ring_point_index(ring, hash);
    } else {
        /* Points after the slot's (or the sentinel) are >= hash, so counting those below it
         * among the next two finds the first point >= hash. */
        const struct ring_point *p = &ring->points[i];
        i += (uint32_t)(p[0].hash < hash) + (uint32_t)(p[1].hash < hash);
        i = i == ring->point_count ? 0 : i;
    }
    return (int)ring->points[i].owner;
}

int ring_lookup_bsearch(const struct ring *ring, uint64_t hash)
{
    if (ring->point_count == 0)
        return RING_E_NO_NODES;
    uint32_t lo = 0, hi = ring->point_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (ring->points[mid].hash < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (int)ring->points[lo == ring->point_count ? 0 : lo].owner;
}

static bool contains(const uint32_t *slots, uint32_t count, uint32_t slot)
{
    for (uint32_t i = 0; i < count; i++)
        if (slots[i] == slot)
            return true;
    return false;
}

static bool zone_used(const struct ring *ring, const uint32_t *slots, uint32_t count, uint32_t slot)
{
    for (uint32_t i = 0; i < count; i++)
        if (ring->nodes[slots[i]].zone_index == ring->nodes[slot].zone_index)
            return true;
    return false;
}

int ring_preference_list(const struct ring *ring, uint64_t hash, uint32_t count,
                         uint32_t *slots_out)
{
    if (ring->node_count == 0)
        return RING_E_NO_NODES;
    if (count == 0 || count > RING_REPLICAS_MAX)
        return RING_E_REPLICAS;
    if (count > ring->node_count)
        return RING_E_REPLICAS_NODES;
    uint32_t start = ring_point_index(ring, hash);
    uint32_t got = 0, zones = 0;
    /* Pass 0 takes only nodes of unused zones while unused zones remain; pass 1 takes any node
     * not yet taken, so a ring with fewer zones than `count` still yields `count` nodes. */
    for (int pass = 0; pass < 2 && got < count; pass++) {
        for (uint32_t step = 0; step < ring->point_count && got < count; step++) {
            uint32_t i = start + step;
            uint32_t slot = ring->points[i >= ring->point_count ? i - ring->point_count : i].owner;
            if (contains(slots_out, got, slot))
                continue;
            bool fresh_zone = !zone_used(ring, slots_out, got, slot);
            if (pass == 0 && zones < ring->zone_count && !fresh_zone)
                continue;
            zones += fresh_zone;
            slots_out[got++] = slot;
        }
    }
    ASSERT(got == count);
    return RING_OK;
}
