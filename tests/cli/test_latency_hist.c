/*
 * The benchmark's log-linear latency histogram (src/cli/latency_hist.c, compiled in here because
 * the cli layer is the binary, not the library): bucket edges are contiguous and cover all of
 * uint64, every value lands in a bucket whose range holds it, the relative bucket width stays
 * within 1/32, and quantiles agree with an exact sort within that precision, never below it.
 */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "../../src/cli/latency_hist.c" /* NOLINT(bugprone-suspicious-include) */

Test(latency_hist, buckets_are_contiguous_and_cover_uint64)
{
    uint64_t low = 0;
    for (uint32_t i = 0; i < LH_BUCKETS; i++) {
        uint64_t high = latency_hist_bucket_high(i);
        cr_assert(high >= low, "bucket %u: [%llu, %llu]", i, (unsigned long long)low,
                  (unsigned long long)high);
        cr_assert_eq(latency_hist_index(low), i);
        cr_assert_eq(latency_hist_index(high), i);
        /* Width within 1/32 of the bucket's lower edge past the exact range. */
        if (low >= 64)
            cr_assert(high - low + 1 <= low / 32 + 1, "bucket %u too wide", i);
        if (i + 1 < LH_BUCKETS)
            low = high + 1;
        else
            cr_assert_eq(high, UINT64_MAX);
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

Test(latency_hist, quantiles_match_an_exact_sort_within_precision)
{
    enum { N = 100000 };
    static uint64_t v[N];
    static struct latency_hist h;
    latency_hist_init(&h);
    uint64_t x = 88172645463325252ULL;
    for (int i = 0; i < N; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v[i] = 1000 + (x % 1000000) * (x % 7 == 0 ? 50 : 1); /* a long tail */
        latency_hist_record(&h, v[i]);
    }
    qsort(v, N, sizeof v[0], cmp_u64);
    const double qs[] = {0.0, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        size_t rank = (size_t)(qs[i] * N + 0.999999);
        uint64_t exact = v[rank ? rank - 1 : 0];
        uint64_t got = latency_hist_quantile(&h, qs[i]);
        cr_assert(got >= exact && got <= exact + exact / 32 + 1, "q %.3f: exact %llu got %llu",
                  qs[i], (unsigned long long)exact, (unsigned long long)got);
    }
    cr_assert_eq(latency_hist_quantile(&h, 1.0), v[N - 1]);
    cr_assert_eq(h.min, v[0]);
    cr_assert_eq(h.total, N);
}

Test(latency_hist, empty_and_single_values)
{
    struct latency_hist h;
    latency_hist_init(&h);
    cr_assert_eq(latency_hist_quantile(&h, 0.99), 0);
    cr_assert(latency_hist_mean(&h) == 0.0);
    latency_hist_record(&h, 0);
    latency_hist_record(&h, UINT64_MAX);
    cr_assert_eq(latency_hist_quantile(&h, 0.5), 0);
    cr_assert_eq(latency_hist_quantile(&h, 1.0), UINT64_MAX);
}
