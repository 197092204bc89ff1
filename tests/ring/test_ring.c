/*
 * The ring library below placement: key hashing and jump hash against published vectors, the
 * ring of virtual nodes (lookup with the prefix index against a plain binary search, add/remove
 * anywhere, order independence, weights), preference lists, and every input error.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring_internal.h"
#include "shardmart/ring.h"

static struct ring_node_spec spec(const char *id, const char *zone, int64_t weight)
{
    return (struct ring_node_spec){id, strlen(id), zone, zone ? strlen(zone) : 0, weight};
}

/* A ring of n nodes "node-<i>" in zones "z<i % zones>", weight 1 each. */
static void make_ring(struct ring *ring, uint32_t n, uint32_t zones, char (*ids)[16],
                      char (*zone_names)[16])
{
    cr_assert_eq(ring_init(ring, 0), RING_OK);
    struct ring_node_spec *specs = calloc(n, sizeof(*specs));
    for (uint32_t i = 0; i < n; i++) {
        snprintf(ids[i], 16, "node-%u", i);
        snprintf(zone_names[i], 16, "z%u", i % zones);
        specs[i] = spec(ids[i], zone_names[i], 1);
    }
    cr_assert_eq(ring_add_nodes(ring, specs, n), RING_OK);
    free(specs);
}

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64: a fixed, portable sequence of test hashes. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* XXH3-64 of the empty input with seed 0: the value of xxHash's own sanity checks. */
Test(ring_hash, xxh3_published_vector)
{
    cr_assert_eq(ring_hash_key("", 0), 0x2D06800538D394C2ULL);
}

/* Jump hash vectors published with Guava's Hashing.consistentHash tests (and reused by the Go and
 * Rust ports): the LCG and the double step must match bit for bit. */
Test(ring_hash, jump_hash_published_vectors)
{
    static const uint32_t golden100[20] = {0,  55, 62, 8,  45, 59, 86, 97, 82, 59,
                                           73, 37, 17, 56, 86, 21, 90, 37, 38, 83};
    for (uint32_t i = 0; i < 20; i++)
        cr_assert_eq(ring_jump_hash(i, 100), golden100[i], "key %u", i);
    cr_assert_eq(ring_jump_hash(10863919174838991ULL, 11), 6);
    cr_assert_eq(ring_jump_hash(2016238256797177309ULL, 11), 3);
    cr_assert_eq(ring_jump_hash(1673758223894951030ULL, 11), 5);
    cr_assert_eq(ring_jump_hash(2, 100001), 80343);
    cr_assert_eq(ring_jump_hash(2201, 100001), 22152);
    cr_assert_eq(ring_jump_hash(2202, 100001), 15018);
    /* Buckets 1..19 for one key (from the Rust jumphash crate's tests). */
    static const uint32_t deadbeef[19] = {0, 1, 2, 3, 3, 5, 5,  5,  5, 5,
                                          5, 5, 5, 5, 5, 5, 16, 16, 16};
    for (uint32_t b = 1; b <= 19; b++)
        cr_assert_eq(ring_jump_hash(0xdeadbeefULL, b), deadbeef[b - 1], "buckets %u", b);
}

/* Our own golden vectors: key -> (XXH3-64, partition at P = 256 and P = 65536). A change here
 * moves every key of every cluster, so it must never happen silently. */
Test(ring_hash, key_partition_golden)
{
    static const struct {
        const char *key;
        uint64_t hash;
        uint32_t p256;
        uint32_t p65536;
    } golden[] = {
        {"sku:42", 0x8d561d16b0e6f7ebULL, 7, 57076},
        {"order:1001", 0x967bf420e1a321efULL, 27, 18768},
        {"user:alice", 0xf8e9c9563231cbd4ULL, 127, 10381},
        {"lock:checkout", 0x384b8a4ab6ee0f66ULL, 241, 14361},
        {"a", 0xe6c632b61e964e1fULL, 14, 52287},
    };
    for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
        const char *k = golden[i].key;
        uint32_t p = 99;
        cr_assert_eq(ring_hash_key(k, strlen(k)), golden[i].hash, "%s", k);
        cr_assert_eq(ring_key_partition(k, strlen(k), 256, &p), RING_OK);
        cr_assert_eq(p, golden[i].p256, "%s", k);
        cr_assert_eq(ring_key_partition(k, strlen(k), 65536, &p), RING_OK);
        cr_assert_eq(p, golden[i].p65536, "%s", k);
        cr_assert_eq(ring_key_partition(k, strlen(k), 1, &p), RING_OK);
        cr_assert_eq(p, 0);
    }
}

Test(ring_hash, partitions_out_of_range)
{
    uint32_t p = 7;
    cr_assert_eq(ring_key_partition("k", 1, 0, &p), RING_E_PARTITIONS);
    cr_assert_eq(ring_key_partition("k", 1, RING_PARTITIONS_MAX + 1, &p), RING_E_PARTITIONS);
    cr_assert_eq(p, 7, "no output on error");
    cr_assert_eq(ring_key_partition("k", 1, RING_PARTITIONS_MAX, &p), RING_OK);
    cr_assert_lt(p, RING_PARTITIONS_MAX);
}

/* Jump hash is consistent: growing from b to b + 1 buckets moves a key only into the new bucket. */
Test(ring_hash, jump_hash_moves_only_to_new_bucket)
{
    uint64_t state = 1;
    for (int i = 0; i < 2000; i++) {
        uint64_t key = next_random(&state);
        for (uint32_t b = 1; b < 300; b += 7) {
            uint32_t before = ring_jump_hash(key, b);
            uint32_t after = ring_jump_hash(key, b + 1);
            cr_assert(after == before || after == b);
        }
    }
}

Test(ring, errors_have_messages)
{
    for (int e = -1; e >= -(int)RING_ERR_COUNT; e--) {
        cr_assert_neq(strcmp(ring_strerror(e), "unknown error"), 0, "code %d", e);
        cr_assert_gt(strlen(ring_strerror(e)), 5);
    }
    cr_assert_str_eq(ring_strerror(0), "ok");
    cr_assert_str_eq(ring_strerror(-1000), "unknown error");
    cr_assert_str_eq(ring_strerror(5), "unknown error");
}

Test(ring, bad_nodes_are_refused)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, RING_POINTS_PER_WEIGHT_MAX + 1), RING_E_POINTS_PER_WEIGHT);
    cr_assert_eq(ring_init(&ring, 4), RING_OK);
    char long_id[RING_NODE_ID_BYTES_MAX + 2];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = 0;
    char long_zone[RING_ZONE_BYTES_MAX + 2];
    memset(long_zone, 'z', sizeof(long_zone) - 1);
    long_zone[sizeof(long_zone) - 1] = 0;
    struct ring_node_spec s = spec("", "z", 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_ID_LENGTH, "empty id");
    s = spec(long_id, "z", 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_ID_LENGTH, "65-byte id");
    s.id_len = RING_NODE_ID_BYTES_MAX;
    cr_assert_eq(ring_add_node(&ring, &s), RING_OK, "64-byte id is fine");
    s = spec("a", long_zone, 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_ZONE_LENGTH);
    s = spec("a", "z", 0);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_WEIGHT, "zero weight");
    s = spec("a", "z", -3);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_WEIGHT, "negative weight");
    s = spec("a", "z", RING_WEIGHT_MAX + 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_WEIGHT, "weight too large");
    s = spec("a", "z", 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_OK);
    cr_assert_eq(ring_add_node(&ring, &s), RING_E_DUPLICATE, "duplicate id");
    struct ring_node_spec pair[2] = {spec("b", "z", 1), spec("b", "y", 2)};
    cr_assert_eq(ring_add_nodes(&ring, pair, 2), RING_E_DUPLICATE, "duplicate within a batch");
    cr_assert_eq(ring.node_count, 2, "a failed batch adds nothing");
    cr_assert_eq(ring_remove_node(&ring, "nope", 4), RING_E_NOT_FOUND);
    cr_assert_eq(ring_remove_node(&ring, "", 0), RING_E_ID_LENGTH);
    ring_destroy(&ring);
}

Test(ring, node_and_point_limits)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 1), RING_OK);
    static char ids[RING_NODES_MAX + 1][16];
    struct ring_node_spec *specs = calloc(RING_NODES_MAX + 1, sizeof(*specs));
    for (uint32_t i = 0; i <= RING_NODES_MAX; i++) {
        snprintf(ids[i], sizeof(ids[i]), "n%u", i);
        specs[i] = spec(ids[i], NULL, 1);
    }
    cr_assert_eq(ring_add_nodes(&ring, specs, RING_NODES_MAX + 1), RING_E_TOO_MANY_NODES);
    cr_assert_eq(ring_add_nodes(&ring, specs, RING_NODES_MAX), RING_OK);
    cr_assert_eq(ring_add_node(&ring, &specs[RING_NODES_MAX]), RING_E_TOO_MANY_NODES);
    ring_destroy(&ring);
    free(specs);
    /* Points: one node of the largest weight at 1024 points per unit is 67 Mi points; a batch
     * whose sum passes 2^22 by 64 points is refused as a whole, before anything is built. */
    cr_assert_eq(ring_init(&ring, RING_POINTS_PER_WEIGHT_MAX), RING_OK);
    struct ring_node_spec heavy = spec("heavy", NULL, RING_WEIGHT_MAX);
    cr_assert_eq(ring_add_node(&ring, &heavy), RING_E_TOO_MANY_POINTS);
    ring_destroy(&ring);
    cr_assert_eq(ring_init(&ring, 64), RING_OK);
    struct ring_node_spec pair[2] = {spec("a", NULL, RING_WEIGHT_MAX), spec("b", NULL, 2)};
    cr_assert_eq(65535u * 64 + 2 * 64, RING_POINTS_MAX + 64);
    cr_assert_eq(ring_add_nodes(&ring, pair, 2), RING_E_TOO_MANY_POINTS);
    cr_assert_eq(ring.node_count, 0);
    cr_assert_eq(ring.point_count, 0);
    ring_destroy(&ring);
}

Test(ring, empty_ring)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 0), RING_OK);
    uint32_t slots[3];
    cr_assert_eq(ring_lookup(&ring, 5), RING_E_NO_NODES);
    cr_assert_eq(ring_lookup_bsearch(&ring, 5), RING_E_NO_NODES);
    cr_assert_eq(ring_preference_list(&ring, 5, 1, slots), RING_E_NO_NODES);
    ring_destroy(&ring);
}

/* The prefix index answers exactly like a plain binary search, including at the wrap-around
 * (hashes above the last point, below the first, equal to a point). */
Test(ring, index_matches_binary_search)
{
    static char ids[300][16], zones[300][16];
    struct ring ring;
    make_ring(&ring, 300, 1, ids, zones);
    uint64_t state = 3;
    for (int i = 0; i < 200000; i++) {
        uint64_t h = next_random(&state);
        cr_assert_eq(ring_lookup(&ring, h), ring_lookup_bsearch(&ring, h));
    }
    uint32_t last = ring.point_count - 1;
    uint64_t edges[] = {0,
                        UINT64_MAX,
                        ring.points[0].hash,
                        ring.points[0].hash - 1,
                        ring.points[last].hash,
                        ring.points[last].hash + 1};
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        cr_assert_eq(ring_lookup(&ring, edges[i]), ring_lookup_bsearch(&ring, edges[i]));
    cr_assert_eq(ring_lookup(&ring, ring.points[last].hash + 1), (int)ring.points[0].owner,
                 "past the last point wraps to the first");
    for (uint32_t i = 1; i < ring.point_count; i++)
        cr_assert_leq(ring.points[i - 1].hash, ring.points[i].hash);
    ring_destroy(&ring);
}

/* Every answer of ring_lookup() equals the binary search's, at every point's hash and its
 * neighbours and on random hashes. */
static void check_lookup_everywhere(const struct ring *ring, uint64_t seed, int randoms)
{
    for (uint32_t i = 0; i < ring->point_count; i++) {
        uint64_t h = ring->points[i].hash;
        uint64_t around[3] = {h - 1, h, h + 1};
        for (int k = 0; k < 3; k++)
            cr_assert_eq(ring_lookup(ring, around[k]), ring_lookup_bsearch(ring, around[k]),
                         "hash %#llx", (unsigned long long)around[k]);
    }
    for (int i = 0; i < randoms; i++) {
        uint64_t h = next_random(&seed);
        cr_assert_eq(ring_lookup(ring, h), ring_lookup_bsearch(ring, h));
    }
    cr_assert_eq(ring_lookup(ring, 0), ring_lookup_bsearch(ring, 0));
    cr_assert_eq(ring_lookup(ring, UINT64_MAX), ring_lookup_bsearch(ring, UINT64_MAX));
    /* The table has 2 to 4 slots per point (fewer only at its 2^22 cap), and a sentinel. */
    uint64_t slots = 1ull << ring->lookup_bits;
    cr_assert(slots >= 2ull * ring->point_count || ring->lookup_bits == 22);
    cr_assert(slots < 4ull * ring->point_count || ring->lookup_bits == 10);
    cr_assert_eq(ring->points[ring->point_count].hash, UINT64_MAX);
}

/* Counts the lookup slots of each kind: [0] owner outright, [1] 1-2 points, [2] more. */
static void count_slot_kinds(const struct ring *ring, uint32_t kinds[3])
{
    kinds[0] = kinds[1] = kinds[2] = 0;
    for (uint64_t s = 0; s < (1ull << ring->lookup_bits); s++) {
        uint32_t e = ring->lookup[s];
        kinds[(e >> 31) ? 0 : (e >> 30) ? 2 : 1]++;
    }
}

/* The lookup table at 1, 3, 300 and 1000 nodes, through adds and removes that grow and shrink
 * it, agrees with the binary search everywhere; the 1000-node ring has slots of all three kinds,
 * so every branch of ring_lookup() runs. */
Test(ring, lookup_table_matches_binary_search_at_every_size)
{
    static char ids[1000][16], zones[1000][16];
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 1), RING_OK);
    struct ring_node_spec one = spec("solo", NULL, 1);
    cr_assert_eq(ring_add_node(&ring, &one), RING_OK);
    cr_assert_eq(ring.point_count, 1);
    check_lookup_everywhere(&ring, 1, 1000);
    cr_assert_eq(ring_lookup(&ring, 12345), 0);
    cr_assert_eq(ring_remove_node(&ring, "solo", 4), RING_OK);
    cr_assert_eq(ring_lookup(&ring, 12345), RING_E_NO_NODES);
    cr_assert_null(ring.lookup, "an empty ring holds no table");
    ring_destroy(&ring);

    uint32_t sizes[] = {3, 300, 1000};
    for (size_t n = 0; n < sizeof(sizes) / sizeof(sizes[0]); n++) {
        make_ring(&ring, sizes[n], 3, ids, zones);
        check_lookup_everywhere(&ring, sizes[n], 100000);
        uint32_t kinds[3];
        count_slot_kinds(&ring, kinds);
        cr_assert_gt(kinds[0], kinds[1], "most slots hold no point");
        if (sizes[n] == 1000) {
            cr_assert_eq(ring.lookup_bits, 19);
            cr_assert_gt(kinds[2], 0, "some slots hold more than two points");
        }
        /* Remove nodes until the table shrinks, then add them back until it grows. */
        uint32_t bits = ring.lookup_bits, removed = 0;
        while (ring.lookup_bits == bits && removed + 1 < sizes[n]) {
            cr_assert_eq(ring_remove_node(&ring, ids[removed], strlen(ids[removed])), RING_OK);
            removed++;
        }
        cr_assert(ring.lookup_bits < bits || bits == 10, "%u nodes", sizes[n]);
        check_lookup_everywhere(&ring, 7, 20000);
        for (uint32_t i = 0; i < removed; i++) {
            struct ring_node_spec s = spec(ids[i], zones[i], 1);
            cr_assert_eq(ring_add_node(&ring, &s), RING_OK);
        }
        cr_assert_eq(ring.lookup_bits, bits);
        check_lookup_everywhere(&ring, 8, 20000);
        ring_destroy(&ring);
    }
}

/* The same members added in another order, one by one, give the same lookups. */
Test(ring, lookups_do_not_depend_on_add_order)
{
    static char ids[50][16], zones[50][16];
    struct ring a, b;
    make_ring(&a, 50, 3, ids, zones);
    cr_assert_eq(ring_init(&b, 0), RING_OK);
    for (int i = 49; i >= 0; i--) {
        struct ring_node_spec s = spec(ids[i], zones[i], 1);
        cr_assert_eq(ring_add_node(&b, &s), RING_OK);
    }
    uint64_t state = 9;
    for (int i = 0; i < 20000; i++) {
        uint64_t h = next_random(&state);
        const struct ring_node *na = &a.nodes[ring_lookup(&a, h)];
        const struct ring_node *nb = &b.nodes[ring_lookup(&b, h)];
        cr_assert_eq(na->id_len, nb->id_len);
        cr_assert_eq(memcmp(na->id, nb->id, na->id_len), 0);
    }
    ring_destroy(&a);
    ring_destroy(&b);
}

/* Removing a node in the middle only remaps the keys it owned; re-adding it restores them. */
Test(ring, remove_any_node_moves_only_its_keys)
{
    static char ids[20][16], zones[20][16];
    struct ring ring;
    make_ring(&ring, 20, 1, ids, zones);
    enum { KEYS = 20000 };
    static int before[KEYS];
    uint64_t state = 11;
    for (int i = 0; i < KEYS; i++)
        before[i] = ring_lookup(&ring, next_random(&state));
    int victim = ring_find_node(&ring, ids[7], strlen(ids[7]));
    cr_assert_geq(victim, 0);
    cr_assert_eq(ring_remove_node(&ring, ids[7], strlen(ids[7])), RING_OK);
    cr_assert_eq(ring.node_count, 19);
    cr_assert_eq(ring_find_node(&ring, ids[7], strlen(ids[7])), RING_E_NOT_FOUND);
    state = 11;
    for (int i = 0; i < KEYS; i++) {
        int now = ring_lookup(&ring, next_random(&state));
        cr_assert_neq(now, victim);
        if (before[i] != victim)
            cr_assert_eq(now, before[i]);
    }
    struct ring_node_spec s = spec(ids[7], zones[7], 1);
    cr_assert_eq(ring_add_node(&ring, &s), RING_OK);
    state = 11;
    for (int i = 0; i < KEYS; i++) {
        int now = ring_lookup(&ring, next_random(&state));
        cr_assert_str_eq(ring.nodes[now].id, ring.nodes[before[i]].id);
    }
    ring_destroy(&ring);
}

/* Points are proportional to weight, so a node of weight 3 owns about 3x the keys. */
Test(ring, weights_scale_ownership)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 0), RING_OK);
    struct ring_node_spec specs[3] = {spec("light", "a", 1), spec("mid", "a", 2),
                                      spec("heavy", "a", 3)};
    cr_assert_eq(ring_add_nodes(&ring, specs, 3), RING_OK);
    cr_assert_eq(ring.point_count, 6 * RING_POINTS_PER_WEIGHT_DEFAULT);
    uint32_t owned[3] = {0};
    uint64_t state = 5;
    for (int i = 0; i < 60000; i++)
        owned[ring_lookup(&ring, next_random(&state))]++;
    double light = owned[ring_find_node(&ring, "light", 5)];
    double heavy = owned[ring_find_node(&ring, "heavy", 5)];
    cr_assert(heavy / light > 2.2 && heavy / light < 3.8, "heavy/light = %f", heavy / light);
    ring_destroy(&ring);
}

/* Colliding points (equal hashes, found by no search: 64-bit XXH3 collisions between ids are not
 * constructible) sort by owner id bytes, whatever the slots; the ring is sorted by that order. */
Test(ring, collision_tie_break_is_by_id)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 16), RING_OK);
    struct ring_node_spec s[3] = {spec("beta", NULL, 1), spec("alpha", NULL, 1),
                                  spec("alphabet", NULL, 1)};
    cr_assert_eq(ring_add_nodes(&ring, s, 3), RING_OK);
    uint32_t beta = (uint32_t)ring_find_node(&ring, "beta", 4);
    uint32_t alpha = (uint32_t)ring_find_node(&ring, "alpha", 5);
    uint32_t alphabet = (uint32_t)ring_find_node(&ring, "alphabet", 8);
    uint64_t h = 0x1234;
    cr_assert(ring_point_less(ring.nodes, h, alpha, h, beta));
    cr_assert(!ring_point_less(ring.nodes, h, beta, h, alpha));
    cr_assert(ring_point_less(ring.nodes, h, alpha, h, alphabet), "a prefix sorts first");
    cr_assert(!ring_point_less(ring.nodes, h, alpha, h, alpha));
    cr_assert(ring_point_less(ring.nodes, h, beta, h + 1, alpha), "the hash decides first");
    for (uint32_t i = 1; i < ring.point_count; i++)
        cr_assert(!ring_point_less(ring.nodes, ring.points[i].hash, ring.points[i].owner,
                                   ring.points[i - 1].hash, ring.points[i - 1].owner));
    ring_destroy(&ring);
}

static void check_preference(const struct ring *ring, uint32_t count, bool zones_distinct)
{
    uint64_t state = 17;
    for (int k = 0; k < 3000; k++) {
        uint64_t h = next_random(&state);
        uint32_t slots[RING_REPLICAS_MAX];
        cr_assert_eq(ring_preference_list(ring, h, count, slots), RING_OK);
        cr_assert_eq((int)slots[0], ring_lookup(ring, h), "the first is the ring's owner");
        for (uint32_t i = 0; i < count; i++) {
            for (uint32_t j = 0; j < i; j++) {
                cr_assert_neq(slots[i], slots[j]);
                if (zones_distinct)
                    cr_assert_neq(ring->nodes[slots[i]].zone_index,
                                  ring->nodes[slots[j]].zone_index);
            }
        }
    }
}

Test(ring, preference_lists_are_distinct_and_zone_spread)
{
    static char ids[30][16], zones[30][16];
    struct ring ring;
    make_ring(&ring, 30, 4, ids, zones);
    cr_assert_eq(ring.zone_count, 4);
    check_preference(&ring, 3, true);
    check_preference(&ring, 4, true);
    check_preference(&ring, 6, false); /* fewer zones than replicas: distinct nodes still */
    uint32_t slots[RING_REPLICAS_MAX + 1];
    cr_assert_eq(ring_preference_list(&ring, 1, 0, slots), RING_E_REPLICAS);
    cr_assert_eq(ring_preference_list(&ring, 1, RING_REPLICAS_MAX + 1, slots), RING_E_REPLICAS);
    ring_destroy(&ring);
    make_ring(&ring, 2, 2, ids, zones);
    cr_assert_eq(ring_preference_list(&ring, 1, 3, slots), RING_E_REPLICAS_NODES);
    check_preference(&ring, 2, true);
    ring_destroy(&ring);
}

/* Zone counts follow removals: the last node of a zone takes its zone with it. */
Test(ring, zone_count_tracks_membership)
{
    struct ring ring;
    cr_assert_eq(ring_init(&ring, 8), RING_OK);
    struct ring_node_spec s[3] = {spec("a", "east", 1), spec("b", "west", 1), spec("c", "east", 1)};
    cr_assert_eq(ring_add_nodes(&ring, s, 3), RING_OK);
    cr_assert_eq(ring.zone_count, 2);
    cr_assert_eq(ring_remove_node(&ring, "b", 1), RING_OK);
    cr_assert_eq(ring.zone_count, 1);
    struct ring_node_spec d = spec("d", "north", 1);
    cr_assert_eq(ring_add_node(&ring, &d), RING_OK);
    cr_assert_eq(ring.zone_count, 2);
    cr_assert_neq(ring.nodes[ring_find_node(&ring, "d", 1)].zone_index,
                  ring.nodes[ring_find_node(&ring, "a", 1)].zone_index);
    ring_destroy(&ring);
}
