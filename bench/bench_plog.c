/*
 * The partition log against its peers, in the same run, on this machine's disk:
 *
 *   plog             256 partitions append one entry each (64-byte payloads), then ONE
 *                    plog_sync: one pwritev and one fdatasync per batch of 256 entries
 *   plain wal        the same bytes through one wal (wal_append of the same 80-byte payloads:
 *                    the 16-byte partition head plus the entry), one wal_sync per batch: what
 *                    the partition head and per-partition bookkeeping cost
 *   wal per part     256 wals, one per partition, each appending its entry and syncing: one
 *                    fdatasync per partition per batch, the design plog replaces
 *
 * Every figure is the median of RUNS runs in entries/s, with its ratio to the other rows
 * measured in the same run. Files go to a fresh directory under $TMPDIR (or /tmp), which must
 * be on a real disk for fdatasync to mean anything; it is removed at the end. The machine may be
 * shared and noisy: compare ratios.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/assert.h"
#include "wal/plog.h"
#include "wal/wal.h"
#include "bench_util.h"

#define RUNS            5
#define PARTITIONS      256
#define PAYLOAD         64
#define BATCHES         100 /* plog and plain wal */
#define BATCHES_PER_WAL 2   /* wal per partition: 256 fdatasyncs a batch */
#define SEGMENT_BYTES   (16u * 1024 * 1024)

static char base[256];

static void fresh_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", base, name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    ASSERT(system(cmd) == 0);
}

static double measure_plog(const uint8_t *payload)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "plog");
    struct plog l;
    struct plog_recovery rep;
    struct plog_config c = {.dir = dir, .partitions = PARTITIONS, .segment_bytes = SEGMENT_BYTES};
    ASSERT(plog_open(&l, &c, &rep) == 0);
    plog_recovered_free(&l);
    double t0 = 0;
    for (uint64_t b = 0; b <= BATCHES; b++) {
        if (b == 1)
            t0 = bench_now_s(); /* the first batch creates the segment: not timed */
        for (uint32_t p = 0; p < PARTITIONS; p++) {
            struct plog_entry e = {.index = b + 1,
                                   .epoch = 1,
                                   .time_ms = (int64_t)b,
                                   .kind = 1,
                                   .payload = payload,
                                   .len = PAYLOAD};
            ASSERT(plog_append(&l, p, &e) == 0);
        }
        ASSERT(plog_sync(&l) == 0);
    }
    double s = bench_now_s() - t0;
    plog_close(&l);
    return BATCHES * PARTITIONS / s;
}

static void open_wal(struct wal *w, const char *dir, uint32_t batch_bytes)
{
    struct wal_config c = {.dir = dir, .segment_bytes = SEGMENT_BYTES, .batch_bytes = batch_bytes};
    struct wal_recovery rep;
    ASSERT(wal_open(w, &c, &rep) == 0);
}

static double measure_wal(const uint8_t *payload)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "wal");
    struct wal w;
    open_wal(&w, dir, 0);
    uint8_t rec[PAYLOAD + PLOG_HEAD_BYTES];
    memset(rec, 0, PLOG_HEAD_BYTES);
    memcpy(rec + PLOG_HEAD_BYTES, payload, PAYLOAD);
    double t0 = 0;
    uint64_t acked;
    for (uint64_t b = 0; b <= BATCHES; b++) {
        if (b == 1)
            t0 = bench_now_s();
        for (uint32_t p = 0; p < PARTITIONS; p++) {
            struct wal_record r = {.type = 1,
                                   .epoch = 1,
                                   .index = wal_index_next(&w),
                                   .timestamp_us = b,
                                   .payload = rec,
                                   .len = sizeof rec};
            ASSERT(wal_append(&w, &r) == 0);
        }
        ASSERT(wal_sync(&w, &acked) == 0);
    }
    double s = bench_now_s() - t0;
    wal_close(&w);
    return BATCHES * PARTITIONS / s;
}

static double measure_wal_per_partition(const uint8_t *payload)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "per-part");
    struct wal *w = calloc(PARTITIONS, sizeof *w);
    ASSERT(w != NULL);
    for (uint32_t p = 0; p < PARTITIONS; p++) {
        char sub[600];
        snprintf(sub, sizeof sub, "%s/p%03u", dir, p);
        open_wal(&w[p], sub, 16 * 1024); /* small buffers: 256 logs */
    }
    double t0 = 0;
    uint64_t acked;
    for (uint64_t b = 0; b <= BATCHES_PER_WAL; b++) {
        if (b == 1)
            t0 = bench_now_s();
        for (uint32_t p = 0; p < PARTITIONS; p++) {
            struct wal_record r = {.type = 1,
                                   .epoch = 1,
                                   .index = wal_index_next(&w[p]),
                                   .timestamp_us = b,
                                   .payload = payload,
                                   .len = PAYLOAD};
            ASSERT(wal_append(&w[p], &r) == 0);
        }
        for (uint32_t p = 0; p < PARTITIONS; p++)
            ASSERT(wal_sync(&w[p], &acked) == 0);
    }
    double s = bench_now_s() - t0;
    for (uint32_t p = 0; p < PARTITIONS; p++)
        wal_close(&w[p]);
    free(w);
    return BATCHES_PER_WAL * PARTITIONS / s;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/bench-plog-%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
    uint8_t payload[PAYLOAD];
    for (int i = 0; i < PAYLOAD; i++)
        payload[i] = (uint8_t)i;
    double pl[RUNS], wl[RUNS], pp[RUNS], r_wal[RUNS], r_pp[RUNS];
    for (int r = 0; r < RUNS; r++) {
        pl[r] = measure_plog(payload);
        wl[r] = measure_wal(payload);
        pp[r] = measure_wal_per_partition(payload);
        r_wal[r] = pl[r] / wl[r];
        r_pp[r] = pl[r] / pp[r];
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    ASSERT(system(cmd) == 0);
    printf("partition log on %s: %d partitions x 1 entry (%d-byte payload) per batch, median of "
           "%d runs\n",
           base, PARTITIONS, PAYLOAD, RUNS);
    printf("  %-40s %12.0f entries/s  %6.2fx plain wal  %7.1fx wal per partition\n",
           "plog (one fdatasync per batch)", bench_median(pl, RUNS), bench_median(r_wal, RUNS),
           bench_median(r_pp, RUNS));
    printf("  %-40s %12.0f entries/s\n", "plain wal, same bytes (one fdatasync)",
           bench_median(wl, RUNS));
    printf("  %-40s %12.0f entries/s\n", "wal per partition (256 fdatasyncs)",
           bench_median(pp, RUNS));
    return 0;
}
