/*
 * A log-linear latency histogram in the manner of HdrHistogram: values below 2^LH_SUB_BITS are
 * counted exactly, and every power of two above is split into 2^(LH_SUB_BITS-1) equal buckets,
 * so any recorded value is known to within 1/32 (about 3%) over the whole 64-bit range, in a
 * fixed 15 KiB array with no allocation. The benchmark records nanoseconds. Written here rather
 * than taken from a library: Debian packages HdrHistogram only for Java and Go, and the part
 * needed (record, merge-free percentiles) is forty lines.
 */
#ifndef SHARDMART_CLI_LATENCY_HIST_H
#define SHARDMART_CLI_LATENCY_HIST_H

#include <stdint.h>

#define LH_SUB_BITS 6
#define LH_BUCKETS  ((64 - LH_SUB_BITS + 1) * (1u << (LH_SUB_BITS - 1)) + (1u << (LH_SUB_BITS - 1)))

struct latency_hist {
    uint64_t counts[LH_BUCKETS];
    uint64_t total;
    uint64_t max;
    uint64_t min;
    long double sum; /* for the mean; long double keeps nanosecond sums exact enough */
};

void latency_hist_init(struct latency_hist *h);
void latency_hist_record(struct latency_hist *h, uint64_t value);
/* The value at quantile q in [0, 1]: the upper edge of the bucket holding it, capped at max, so
 * a reported percentile never understates. 0 when empty. */
uint64_t latency_hist_quantile(const struct latency_hist *h, double q);
double latency_hist_mean(const struct latency_hist *h);

/* Bucket index of a value and the largest value of a bucket (exposed for tests). */
uint32_t latency_hist_index(uint64_t value);
uint64_t latency_hist_bucket_high(uint32_t index);

#endif
