/*
 * Every way of computing jump hash (src/ring/jump.c: fixed branch-free steps, AVX2 and AVX-512
 * lanes, and the batch and key -> partition entry points over them) gives exactly the bucket of
 * the paper's loop, ring_jump_hash_reference(), on millions of random keys at every edge of the
 * partition count, on the keys that need the fallback loop, and at every batch length.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ring/ring_internal.h"
#include "shardmart/ring.h"

#define KEYS_PER_EDGE (1u << 20)

static const uint32_t edges[] = {1, 2, 255, 256, 257, 65535, 65536};

static uint64_t next_random(uint64_t *state)
{
    /* splitmix64: a fixed, portable sequence of test keys. */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Steps of the paper's loop for one key, counted independently of the library. */
static uint32_t loop_steps(uint64_t key, uint32_t buckets)
{
    int64_t b = -1, j = 0;
    uint32_t steps = 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) * (2147483648.0 / (double)((key >> 33) + 1)));
        steps++;
    }
    return steps;
}

/* Compares every supported path with the reference on keys[0..count) at `buckets`; returns the
 * number of paths run (the reference itself included). */
static int check_paths(const uint64_t *keys, size_t count, uint32_t buckets)
{
    uint32_t *want = malloc(count * sizeof(*want));
    uint32_t *got = malloc(count * sizeof(*got));
    cr_assert(want && got);
    for (size_t i = 0; i < count; i++)
        want[i] = ring_jump_hash_reference(keys[i], buckets);
    int paths = 0;
    for (int path = 0; path < RING_JUMP_PATHS; path++) {
        if (!ring_jump_path_supported((enum ring_jump_path)path))
            continue;
        paths++;
        memset(got, 0xff, count * sizeof(*got));
        ring_jump_hash_path((enum ring_jump_path)path, keys, count, buckets, got);
        for (size_t i = 0; i < count; i++)
            cr_assert_eq(got[i], want[i], "%s: key %#llx buckets %u: %u, reference %u",
                         ring_jump_path_name((enum ring_jump_path)path),
                         (unsigned long long)keys[i], buckets, got[i], want[i]);
    }
    for (size_t i = 0; i < count; i++)
        cr_assert_eq(ring_jump_hash(keys[i], buckets), want[i]);
    ring_jump_hash_batch(keys, count, buckets, got);
    cr_assert_eq(memcmp(got, want, count * sizeof(*got)), 0);
    free(want);
    free(got);
    return paths;
}

/* 2^20 random keys at each edge of P (1, 2, 255, 256, 257, 65535, 65536), through every path. */
Test(ring_jump, every_path_matches_reference_at_edges)
{
    uint64_t *keys = malloc(KEYS_PER_EDGE * sizeof(*keys));
    cr_assert(keys);
    uint64_t state = 2026;
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
        for (uint32_t i = 0; i < KEYS_PER_EDGE; i++)
            keys[i] = next_random(&state);
        int paths = check_paths(keys, KEYS_PER_EDGE, edges[e]);
        cr_assert_geq(paths, 1);
        cr_log_info("P = %u: %d paths on this CPU", edges[e], paths);
    }
    free(keys);
}

/* Random P in 1..65536, 256 keys each, and keys at the ends of the 64-bit range. */
Test(ring_jump, every_path_matches_reference_at_random_sizes)
{
    enum { SIZES = 4096, KEYS = 256 };
    uint64_t keys[KEYS];
    uint64_t state = 77;
    for (int s = 0; s < SIZES; s++) {
        uint32_t buckets = (uint32_t)(next_random(&state) % RING_PARTITIONS_MAX) + 1;
        for (int i = 0; i < KEYS; i++)
            keys[i] = next_random(&state);
        keys[0] = 0;
        keys[1] = UINT64_MAX;
        keys[2] = (uint64_t)s;
        check_paths(keys, KEYS, buckets);
    }
}

/* The keys that need more than K(P) steps take the fallback loop: there are some among 2^20 at
 * each edge of P above 256 (2-5 % by design), and they too match. */
Test(ring_jump, fallback_keys_match_reference)
{
    enum { MAX_SLOW = 4096 };
    uint64_t *slow = malloc(MAX_SLOW * sizeof(*slow));
    cr_assert(slow);
    uint64_t state = 5;
    for (size_t e = 0; e < sizeof(edges) / sizeof(edges[0]); e++) {
        uint32_t buckets = edges[e], steps = ring_jump_fixed_steps(buckets), count = 0;
        for (uint32_t i = 0; i < KEYS_PER_EDGE && count < MAX_SLOW; i++) {
            uint64_t key = next_random(&state);
            if (loop_steps(key, buckets) > steps)
                slow[count++] = key;
        }
        if (buckets >= 256)
            cr_assert_gt(count, 1000, "P = %u: only %u keys past K = %u", buckets, count, steps);
        if (count > 0)
            check_paths(slow, count, buckets);
    }
    free(slow);
}

/* Batches of every length 0..40 at odd offsets: the lanes' padded tail never writes past the
 * end of the output, and every entry is right. */
Test(ring_jump, batch_lengths_and_offsets)
{
    enum { N = 48 };
    uint64_t keys[N + 3];
    uint32_t out[N + 3];
    uint64_t state = 9;
    for (int i = 0; i < N + 3; i++)
        keys[i] = next_random(&state);
    for (size_t count = 0; count <= 40; count++) {
        for (size_t offset = 0; offset < 3; offset++) {
            for (int path = 0; path < RING_JUMP_PATHS; path++) {
                if (!ring_jump_path_supported((enum ring_jump_path)path))
                    continue;
                for (int i = 0; i < N + 3; i++)
                    out[i] = 0xdeadbeef;
                ring_jump_hash_path((enum ring_jump_path)path, keys + offset, count, 1000,
                                    out + offset);
                for (size_t i = 0; i < N + 3; i++) {
                    if (i >= offset && i < offset + count)
                        cr_assert_eq(out[i], ring_jump_hash_reference(keys[i], 1000));
                    else
                        cr_assert_eq(out[i], 0xdeadbeef, "%s wrote out[%zu] (count %zu)",
                                     ring_jump_path_name((enum ring_jump_path)path), i, count);
                }
            }
        }
    }
}

/* ring_key_partition_batch() agrees with ring_key_partition() key by key, across chunks of its
 * hash buffer, and refuses a bad P without writing. */
Test(ring_jump, key_partition_batch_matches_single)
{
    enum { N = 1000 };
    static char text[N][24];
    const void *keys[N];
    size_t lens[N];
    uint32_t out[N];
    for (int i = 0; i < N; i++) {
        lens[i] = (size_t)snprintf(text[i], sizeof(text[i]), "sku:%d%s", i * 7919,
                                   i % 3 ? "" : ":with-a-longer-tail");
        keys[i] = text[i];
    }
    keys[0] = "";
    lens[0] = 0;
    uint32_t sizes[] = {1, 256, 257, 65536};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        cr_assert_eq(ring_key_partition_batch(keys, lens, N, sizes[s], out), RING_OK);
        for (int i = 0; i < N; i++) {
            uint32_t p = 0;
            cr_assert_eq(ring_key_partition(keys[i], lens[i], sizes[s], &p), RING_OK);
            cr_assert_eq(out[i], p, "key %d P %u", i, sizes[s]);
        }
    }
    /* The golden key of test_ring.c through the batch. */
    const void *golden[1] = {"sku:42"};
    size_t golden_len[1] = {6};
    cr_assert_eq(ring_key_partition_batch(golden, golden_len, 1, 256, out), RING_OK);
    cr_assert_eq(out[0], 7);
    cr_assert_eq(ring_key_partition_batch(golden, golden_len, 1, 65536, out), RING_OK);
    cr_assert_eq(out[0], 57076);
    out[0] = 12345;
    cr_assert_eq(ring_key_partition_batch(keys, lens, N, 0, out), RING_E_PARTITIONS);
    cr_assert_eq(ring_key_partition_batch(keys, lens, N, RING_PARTITIONS_MAX + 1, out),
                 RING_E_PARTITIONS);
    cr_assert_eq(out[0], 12345, "no output on error");
    cr_assert_eq(ring_key_partition_batch(keys, lens, 0, 256, out), RING_OK);
}

/* The dispatch picks only paths this CPU runs, and K(P) grows with P as its table says. */
Test(ring_jump, dispatch_and_steps)
{
    cr_assert(ring_jump_path_supported(RING_JUMP_REFERENCE));
    cr_assert(ring_jump_path_supported(ring_jump_path_single()));
    cr_assert(ring_jump_path_supported(ring_jump_path_batch()));
    cr_assert(ring_jump_path_batch() >= ring_jump_path_single());
    cr_log_info("single key: %s; batch: %s", ring_jump_path_name(ring_jump_path_single()),
                ring_jump_path_name(ring_jump_path_batch()));
    cr_assert_eq(ring_jump_fixed_steps(1), 1);
    cr_assert_eq(ring_jump_fixed_steps(256), 10);
    cr_assert_eq(ring_jump_fixed_steps(257), 11);
    cr_assert_eq(ring_jump_fixed_steps(65536), 17);
    cr_assert_eq(ring_jump_fixed_steps(UINT32_MAX), 31);
    for (uint32_t b = 2; b <= RING_PARTITIONS_MAX; b++)
        cr_assert_geq(ring_jump_fixed_steps(b), ring_jump_fixed_steps(b - 1));
}
