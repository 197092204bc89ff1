/*
 * The log-linear histogram of latency_hist.h. Index of v >= 2^LH_SUB_BITS: with m the position
 * of v's top bit and shift = m - (LH_SUB_BITS - 1), the bucket is shift * HALF + (v >> shift),
 * where v >> shift lies in [HALF, 2 * HALF): the top LH_SUB_BITS bits of v pick the bucket.
 */
#include "cli/latency_hist.h"

#include <string.h>

#include "util/assert.h"

#define HALF (1u << (LH_SUB_BITS - 1))

void latency_hist_init(struct latency_hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint32_t latency_hist_index(uint64_t value)
{
    if (value < 2 * HALF)
        return (uint32_t)value;
    uint32_t top = 63u - (uint32_t)__builtin_clzll(value);
    uint32_t shift = top - (LH_SUB_BITS - 1);
    uint32_t index = shift * HALF + (uint32_t)(value >> shift);
    ASSERT(index < LH_BUCKETS);
    return index;
}

uint64_t latency_hist_bucket_high(uint32_t index)
{
    ASSERT(index < LH_BUCKETS);
    if (index < 2 * HALF)
        return index;
    uint32_t shift = index / HALF - 1;
    uint64_t sub = index % HALF + HALF;
    /* The last bucket's edge is 2^64 - 1: the shift wraps to 0 and the subtraction restores it. */
    return ((sub + 1) << shift) - 1;
}

void latency_hist_record(struct latency_hist *h, uint64_t value)
{
    h->counts[latency_hist_index(value)]++;
    h->total++;
    h->sum += (long double)value;
    if (value > h->max)
        h->max = value;
    if (value < h->min)
        h->min = value;
}

uint64_t latency_hist_quantile(const struct latency_hist *h, double q)
{
    if (h->total == 0)
        return 0;
    ASSERT(q >= 0.0 && q <= 1.0);
    /* The rank of the quantile, at least 1: the smallest value v with count(<= v) >= rank. */
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > h->total)
        rank = h->total;
    uint64_t seen = 0;
    for (uint32_t i = 0; i < LH_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t high = latency_hist_bucket_high(i);
            return high < h->max ? high : h->max;
        }
    }
    UNREACHABLE();
}

double latency_hist_mean(const struct latency_hist *h)
{
    return h->total ? (double)(h->sum / (long double)h->total) : 0.0;
}
