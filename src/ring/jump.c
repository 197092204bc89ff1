/*
 * key -> partition: jump consistent hash (Lamping & Veach, "A Fast, Minimal Memory, Consistent
 * Hash Algorithm", 2014), computed three ways that give the same bucket for every key and every
 * bucket count. The paper's loop (ring_jump_hash_reference) is the definition; golden vectors pin
 * it and tests/ring/test_jump.c compares every other path against it.
 *
 * Why the loop is slow: it takes ~ln(P) + 0.58 steps (6.1 at P = 256), each a chain
 *   j = (int64)((b + 1) * (2^31 / ((key >> 33) + 1)))
 * whose divisions do not depend on j but whose multiply and truncation do, and its exit branch
 * is taken at a random step, so a mispredicted branch ends nearly every call and the processor
 * cannot overlap one key's work with the next key's.
 *
 * What we do instead (docs/placement.md has the figures):
 * - single key, x86-64 with FMA and SSE4.1: a fixed number K(P) of steps with no exit branch
 *   (the last candidate below P kept by a compare-and-blend), then the paper's loop from where
 *   the steps stopped in the rare case (2-5 % of keys) the K-th candidate is still below P. The
 *   step runs in double precision: trunc(fma(j, q, q)) is bit-for-bit (int64)((b + 1) * q),
 *   because (b + 1) * q = b * q + q exactly, fma rounds that exact value once as the paper's
 *   multiply does, and truncation of a value below 2^63 equals the integer conversion.
 * - a batch of keys, with AVX-512 (F + DQ) or AVX2 + FMA: 16 or 8 keys in lanes, stepping until
 *   every lane has passed P; the divisions and the LCG run in vectors too.
 * - otherwise (another ISA, an older x86): the paper's loop.
 * The choice is made per call from the CPU's features (__builtin_cpu_supports, which also checks
 * that the OS saves the vector registers). After it passes P a lane's candidate keeps growing
 * (at most x 2^31 per step, to +inf at worst, never NaN: q is in [1, 2^31]); it is no longer
 * compared then, so that is harmless.
 */
#include <math.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define RING_JUMP_X86 1
#else
#define RING_JUMP_X86 0
#endif

#include "ring/ring_internal.h"
#include "util/assert.h"

/* The paper's 64-bit LCG multiplier and the 2^31 numerator of its step. */
#define JUMP_LCG_MUL 2862933555777941757ULL
#define JUMP_TWO_31  2147483648.0

/* Keys hashed per chunk by ring_key_partition_batch(): 512 bytes of stack. */
#define KEY_CHUNK 64

uint32_t ring_jump_hash_reference(uint64_t key, uint32_t buckets)
{
    ASSERT(buckets >= 1);
    int64_t b = -1;
    int64_t j = 0;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * JUMP_LCG_MUL + 1;
        j = (int64_t)((double)(b + 1) * (JUMP_TWO_31 / (double)((key >> 33) + 1)));
    }
    ASSERT(b >= 0 && b < (int64_t)buckets);
    return (uint32_t)b;
}

/* The paper's loop resumed at candidate j (< buckets) with LCG state key. */
static uint32_t jump_resume(uint64_t key, int64_t j, uint32_t buckets)
{
    ASSERT(j >= 0 && j < (int64_t)buckets);
    int64_t b = j;
    while (j < (int64_t)buckets) {
        b = j;
        key = key * JUMP_LCG_MUL + 1;
        j = (int64_t)((double)(b + 1) * (JUMP_TWO_31 / (double)((key >> 33) + 1)));
    }
    return (uint32_t)b;
}

/* K(P): the steps the branch-free path runs, by the bit width w of P - 1. A key takes 1 + a sum
 * of independent Bernoulli(1 / (k + 1)) jumps below P (k = 1..P-1): mean ~ ln P + 0.58, variance
 * ~ ln P. K = floor(L + 2 sqrt(L)) with L = ln(2^w) leaves 2-5 % of keys to the loop; measured
 * at P = 16, 256, 4096 and 65536 (docs/placement.md), a smaller K pays more mispredicted
 * fallbacks and a larger one more steps. */
static const uint8_t fixed_steps_by_width[33] = {1,  2,  3,  4,  6,  7,  8,  9,  10, 11, 12,
                                                 13, 14, 15, 15, 16, 17, 18, 19, 20, 21, 22,
                                                 23, 23, 24, 25, 26, 27, 28, 29, 29, 30, 31};

uint32_t ring_jump_fixed_steps(uint32_t buckets)
{
    ASSERT(buckets >= 1);
    uint32_t width = buckets == 1 ? 0 : 32 - (uint32_t)__builtin_clz(buckets - 1);
    ASSERT(width < sizeof(fixed_steps_by_width));
    return fixed_steps_by_width[width];
}

#if RING_JUMP_X86

__attribute__((target("fma,sse4.1"))) static uint32_t jump_fixed(uint64_t key, uint32_t buckets)
{
    uint32_t steps = ring_jump_fixed_steps(buckets);
    double limit = (double)buckets, j = 0, b = 0;
    for (uint32_t k = 0; k < steps; k++) {
        key = key * JUMP_LCG_MUL + 1;
        double q = JUMP_TWO_31 / (double)((key >> 33) + 1);
        j = trunc(fma(j, q, q));
        b = j < limit ? j : b;
    }
    if (__builtin_expect(j < limit, 0))
        return jump_resume(key, (int64_t)j, buckets);
    ASSERT(b < limit);
    return (uint32_t)b;
}

/* 2 x 8 lanes per round, so one vector's dependent multiply-truncate overlaps the other's. */
__attribute__((target("avx512f,avx512dq"))) static void
jump_lanes_avx512(const uint64_t *keys, uint32_t buckets, uint32_t *out)
{
    const __m512d limit = _mm512_set1_pd((double)buckets);
    const __m512d two_31 = _mm512_set1_pd(JUMP_TWO_31);
    const __m512i mul = _mm512_set1_epi64((long long)JUMP_LCG_MUL);
    const __m512i one = _mm512_set1_epi64(1);
    __m512i key_a = _mm512_loadu_si512(keys), key_b = _mm512_loadu_si512(keys + 8);
    __m512d j_a = _mm512_setzero_pd(), j_b = j_a, b_a = j_a, b_b = j_a;
    __mmask8 below_a, below_b;
    do {
        key_a = _mm512_add_epi64(_mm512_mullo_epi64(key_a, mul), one);
        key_b = _mm512_add_epi64(_mm512_mullo_epi64(key_b, mul), one);
        __m512i r_a = _mm512_add_epi64(_mm512_srli_epi64(key_a, 33), one);
        __m512i r_b = _mm512_add_epi64(_mm512_srli_epi64(key_b, 33), one);
        __m512d q_a = _mm512_div_pd(two_31, _mm512_cvtepu64_pd(r_a));
        __m512d q_b = _mm512_div_pd(two_31, _mm512_cvtepu64_pd(r_b));
        j_a = _mm512_roundscale_pd(_mm512_fmadd_pd(j_a, q_a, q_a),
                                   _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        j_b = _mm512_roundscale_pd(_mm512_fmadd_pd(j_b, q_b, q_b),
                                   _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        below_a = _mm512_cmp_pd_mask(j_a, limit, _CMP_LT_OQ);
        below_b = _mm512_cmp_pd_mask(j_b, limit, _CMP_LT_OQ);
        b_a = _mm512_mask_mov_pd(b_a, below_a, j_a);
        b_b = _mm512_mask_mov_pd(b_b, below_b, j_b);
    } while (below_a | below_b);
    _mm256_storeu_si256((__m256i *)out, _mm512_cvttpd_epu32(b_a));
    _mm256_storeu_si256((__m256i *)(out + 8), _mm512_cvttpd_epu32(b_b));
}

/* AVX2 has no 64-bit multiply: the low 64 bits of a * b from three 32 x 32 -> 64 products. */
__attribute__((target("avx2"))) static __m256i mul_lo64_avx2(__m256i a, __m256i b)
{
    __m256i lo = _mm256_mul_epu32(a, b);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(a, 32), b),
                                     _mm256_mul_epu32(a, _mm256_srli_epi64(b, 32)));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

/* An integer below 2^52 as a double, exactly: its bits under the exponent of 2^52, minus 2^52
 * (AVX2 has no 64-bit integer conversion; (key >> 33) + 1 <= 2^31). */
__attribute__((target("avx2"))) static __m256d small_u64_to_pd_avx2(__m256i x)
{
    const __m256i exponent = _mm256_set1_epi64x(0x4330000000000000LL);
    return _mm256_sub_pd(_mm256_castsi256_pd(_mm256_or_si256(x, exponent)),
                         _mm256_set1_pd(4503599627370496.0));
}

__attribute__((target("avx2,fma"))) static void jump_lanes_avx2(const uint64_t *keys,
                                                                uint32_t buckets, uint32_t *out)
{
    const __m256d limit = _mm256_set1_pd((double)buckets);
    const __m256d two_31 = _mm256_set1_pd(JUMP_TWO_31);
    const __m256i mul = _mm256_set1_epi64x((long long)JUMP_LCG_MUL);
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i key_a = _mm256_loadu_si256((const __m256i *)keys);
    __m256i key_b = _mm256_loadu_si256((const __m256i *)(keys + 4));
    __m256d j_a = _mm256_setzero_pd(), j_b = j_a, b_a = j_a, b_b = j_a;
    int below;
    do {
        key_a = _mm256_add_epi64(mul_lo64_avx2(key_a, mul), one);
        key_b = _mm256_add_epi64(mul_lo64_avx2(key_b, mul), one);
        __m256d r_a = small_u64_to_pd_avx2(_mm256_add_epi64(_mm256_srli_epi64(key_a, 33), one));
        __m256d r_b = small_u64_to_pd_avx2(_mm256_add_epi64(_mm256_srli_epi64(key_b, 33), one));
        __m256d q_a = _mm256_div_pd(two_31, r_a), q_b = _mm256_div_pd(two_31, r_b);
        j_a =
            _mm256_round_pd(_mm256_fmadd_pd(j_a, q_a, q_a), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        j_b =
            _mm256_round_pd(_mm256_fmadd_pd(j_b, q_b, q_b), _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        __m256d below_a = _mm256_cmp_pd(j_a, limit, _CMP_LT_OQ);
        __m256d below_b = _mm256_cmp_pd(j_b, limit, _CMP_LT_OQ);
        b_a = _mm256_blendv_pd(b_a, j_a, below_a);
        b_b = _mm256_blendv_pd(b_b, j_b, below_b);
        below = _mm256_movemask_pd(_mm256_or_pd(below_a, below_b));
    } while (below);
    _mm_storeu_si128((__m128i *)out, _mm256_cvttpd_epi32(b_a));
    _mm_storeu_si128((__m128i *)(out + 4), _mm256_cvttpd_epi32(b_b));
}

#endif /* RING_JUMP_X86 */

typedef void (*jump_lanes_fn)(const uint64_t *keys, uint32_t buckets, uint32_t *out);

/* Runs a lanes kernel of width `lanes` over count keys; a short tail goes through a zero-padded
 * copy, so the kernel never reads or writes past the caller's arrays. */
static void jump_batch_lanes(jump_lanes_fn fn, size_t lanes, const uint64_t *keys, size_t count,
                             uint32_t buckets, uint32_t *out)
{
    ASSERT(lanes <= 16);
    size_t i = 0;
    for (; i + lanes <= count; i += lanes)
        fn(keys + i, buckets, out + i);
    if (i < count) {
        uint64_t tail_keys[16] = {0};
        uint32_t tail_out[16];
        memcpy(tail_keys, keys + i, (count - i) * sizeof(*keys));
        fn(tail_keys, buckets, tail_out);
        memcpy(out + i, tail_out, (count - i) * sizeof(*out));
    }
}

const char *ring_jump_path_name(enum ring_jump_path path)
{
    static const char *const names[RING_JUMP_PATHS] = {
        [RING_JUMP_REFERENCE] = "reference loop",
        [RING_JUMP_FIXED] = "fixed steps (FMA)",
        [RING_JUMP_AVX2] = "AVX2 x8",
        [RING_JUMP_AVX512] = "AVX-512 x16",
    };
    ASSERT(path < RING_JUMP_PATHS);
    return names[path];
}

bool ring_jump_path_supported(enum ring_jump_path path)
{
    ASSERT(path < RING_JUMP_PATHS);
#if RING_JUMP_X86
    switch (path) {
    case RING_JUMP_REFERENCE:
        return true;
    case RING_JUMP_FIXED:
        return __builtin_cpu_supports("fma") && __builtin_cpu_supports("sse4.1");
    case RING_JUMP_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case RING_JUMP_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    default:
        UNREACHABLE();
    }
#else
    return path == RING_JUMP_REFERENCE;
#endif
}

enum ring_jump_path ring_jump_path_single(void)
{
    return ring_jump_path_supported(RING_JUMP_FIXED) ? RING_JUMP_FIXED : RING_JUMP_REFERENCE;
}

enum ring_jump_path ring_jump_path_batch(void)
{
    if (ring_jump_path_supported(RING_JUMP_AVX512))
        return RING_JUMP_AVX512;
    if (ring_jump_path_supported(RING_JUMP_AVX2))
        return RING_JUMP_AVX2;
    return ring_jump_path_single();
}

uint32_t ring_jump_hash(uint64_t key, uint32_t buckets)
{
    ASSERT(buckets >= 1);
#if RING_JUMP_X86
    if (__builtin_cpu_supports("fma") && __builtin_cpu_supports("sse4.1"))
        return jump_fixed(key, buckets);
#endif
    return ring_jump_hash_reference(key, buckets);
}

void ring_jump_hash_path(enum ring_jump_path path, const uint64_t *keys, size_t count,
                         uint32_t buckets, uint32_t *buckets_out)
{
    ASSERT(buckets >= 1 && buckets <= RING_PARTITIONS_MAX);
    ASSERT(ring_jump_path_supported(path));
    switch (path) {
    case RING_JUMP_REFERENCE:
        for (size_t i = 0; i < count; i++)
            buckets_out[i] = ring_jump_hash_reference(keys[i], buckets);
        return;
#if RING_JUMP_X86
    case RING_JUMP_FIXED:
        for (size_t i = 0; i < count; i++)
            buckets_out[i] = jump_fixed(keys[i], buckets);
        return;
    case RING_JUMP_AVX2:
        jump_batch_lanes(jump_lanes_avx2, 8, keys, count, buckets, buckets_out);
        return;
    case RING_JUMP_AVX512:
        jump_batch_lanes(jump_lanes_avx512, 16, keys, count, buckets, buckets_out);
        return;
#endif
    default:
        UNREACHABLE();
    }
}

void ring_jump_hash_batch(const uint64_t *keys, size_t count, uint32_t buckets,
                          uint32_t *buckets_out)
{
    ASSERT(buckets >= 1 && buckets <= RING_PARTITIONS_MAX);
    ring_jump_hash_path(ring_jump_path_batch(), keys, count, buckets, buckets_out);
}

int ring_key_partition(const void *key, size_t len, uint32_t partitions, uint32_t *partition_out)
{
    if (partitions < 1 || partitions > RING_PARTITIONS_MAX)
        return RING_E_PARTITIONS;
    *partition_out = ring_jump_hash(ring_hash_key(key, len), partitions);
    return RING_OK;
}

int ring_key_partition_batch(const void *const *keys, const size_t *lens, size_t count,
                             uint32_t partitions, uint32_t *partitions_out)
{
    if (partitions < 1 || partitions > RING_PARTITIONS_MAX)
        return RING_E_PARTITIONS;
    enum ring_jump_path path = ring_jump_path_batch();
    uint64_t hashes[KEY_CHUNK];
    for (size_t i = 0; i < count; i += KEY_CHUNK) {
        size_t n = count - i < KEY_CHUNK ? count - i : KEY_CHUNK;
        for (size_t k = 0; k < n; k++)
            hashes[k] = ring_hash_key(keys[i + k], lens[i + k]);
        ring_jump_hash_path(path, hashes, n, partitions, partitions_out + i);
    }
    return RING_OK;
}
