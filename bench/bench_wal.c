/*
 * Write-ahead log throughput on this machine's disk: group commit against the naive way.
 *
 *   fdatasync latency   one 104-byte pwrite + fdatasync, timed alone (the unit everything pays)
 *   naive               write + fdatasync per record, what a log without batching does
 *   wal batch B         B wal_append calls (64-byte payloads, 104 bytes framed) then one
 *                       wal_sync: one pwritev and ONE fdatasync per batch, for B = 1, 16, 256
 *   appends only        wal_append alone (no I/O): the cost of framing and CRC32C per record
 *   sync after a write  one 104-byte pwrite + fdatasync into: a growing file (append: the size
 *                       changes, so the journal commits), a fallocate'd file (unwritten extents:
 *                       the first write converts them, again a journal commit), and a file
 *                       written full of zeros and synced (an overwrite: data only)
 *   preallocated B      the wal batch rows with config.preallocate, ratio to the same batch
 *                       without preallocation (both with SEGMENT_BYTES segments)
 *   spare segment       wal_spare_run: making one 64 MiB zero-filled segment (the worker's job)
 *   sync during spare   wal_sync latency of 16-record batches (preallocated) while another
 *                       thread makes a 64 MiB spare, against the same batches with no spare
 *   recovery            wal_open of a preallocated 64 MiB segment holding one record (the zero
 *                       tail read and checked) against the same log in a growing file
 *
 * Every figure is the median of RUNS runs; group-commit rows print their ratio to the naive
 * records/s measured in the same run. Files go to a fresh directory under $TMPDIR (or /tmp),
 * which must be on a real disk for fdatasync to mean anything; it is removed at the end.
 * The machine is shared and noisy: compare ratios, and rerun before believing small changes.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/assert.h"
#include "wal/crc32c.h"
#include "wal/wal.h"
#include "bench_util.h"

#define RUNS          5
#define SYNC_SAMPLES  200 /* fdatasyncs per run for the latency and naive rows */
#define BATCHES       200 /* group commits per run and batch size */
#define APPENDS       200000
#define PAYLOAD_BYTES 64
/* Segments of the group-commit rows: room for BATCHES x 256 records (5.3 MB) without a boundary,
 * and a quarter of the default so preallocating one per row costs the shared disk less. */
#define SEGMENT_BYTES (16u * 1024 * 1024)

static char base[256];

static void fresh_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", base, name);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", out, out);
    ASSERT(system(cmd) == 0);
}

/* Median fdatasync latency (seconds) and naive records/s, from one file. */
static void measure_naive(double *lat_s, double *naive_per_s)
{
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "naive");
    snprintf(path, sizeof path, "%s/naive.log", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    uint8_t rec[WAL_RECORD_HEADER_BYTES + PAYLOAD_BYTES];
    memset(rec, 0x5a, sizeof rec);
    double samples[SYNC_SAMPLES];
    uint64_t off = 0;
    for (int i = 0; i < SYNC_SAMPLES; i++) {
        double t0 = bench_now_s();
        ASSERT(pwrite(fd, rec, sizeof rec, (off_t)off) == (ssize_t)sizeof rec);
        ASSERT(fdatasync(fd) == 0);
        samples[i] = bench_now_s() - t0;
        off += sizeof rec;
    }
    *lat_s = bench_median(samples, SYNC_SAMPLES);
    /* Naive: frame each record (CRC like the log) and write + fdatasync it on its own. */
    double t0 = bench_now_s();
    for (int i = 0; i < SYNC_SAMPLES; i++) {
        uint32_t crc = sm_crc32c(0, rec + 8, sizeof rec - 8);
        memcpy(rec + 4, &crc, 4);
        ASSERT(pwrite(fd, rec, sizeof rec, (off_t)off) == (ssize_t)sizeof rec);
        ASSERT(fdatasync(fd) == 0);
        off += sizeof rec;
    }
    *naive_per_s = SYNC_SAMPLES / (bench_now_s() - t0);
    close(fd);
}

/* Median latency (seconds) of pwrite + fdatasync into a file prepared as `how`:
 * 0 growing, 1 fallocate'd, 2 written with zeros and synced. */
static double measure_sync_after(int how)
{
    char dir[512], path[600];
    fresh_dir(dir, sizeof dir, "prep");
    snprintf(path, sizeof path, "%s/f", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    ASSERT(fd >= 0);
    uint8_t rec[WAL_RECORD_HEADER_BYTES + PAYLOAD_BYTES];
    memset(rec, 0x5a, sizeof rec);
    uint64_t bytes = (uint64_t)SYNC_SAMPLES * sizeof rec;
    if (how == 1)
        ASSERT(posix_fallocate(fd, 0, (off_t)bytes) == 0);
    if (how == 2)
        ASSERT(wal_write_zeros(sm_fs_posix(), fd, 0, bytes) == 0);
    ASSERT(fsync(fd) == 0);
    double samples[SYNC_SAMPLES];
    for (int i = 0; i < SYNC_SAMPLES; i++) {
        double t0 = bench_now_s();
        ASSERT(pwrite(fd, rec, sizeof rec, (off_t)(i * sizeof rec)) == (ssize_t)sizeof rec);
        ASSERT(fdatasync(fd) == 0);
        samples[i] = bench_now_s() - t0;
    }
    close(fd);
    return bench_median(samples, SYNC_SAMPLES);
}

static void open_wal_pre(struct wal *w, const char *name, enum wal_sync_mode mode, bool pre)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, name);
    struct wal_config c = {
        .dir = dir, .sync_mode = mode, .segment_bytes = SEGMENT_BYTES, .preallocate = pre};
    struct wal_recovery rep;
    ASSERT(wal_open(w, &c, &rep) == 0);
}

static void open_wal(struct wal *w, const char *name, enum wal_sync_mode mode)
{
    open_wal_pre(w, name, mode, false);
}

static void append_one(struct wal *w, const uint8_t *payload)
{
    struct wal_record r = {.type = 1,
                           .epoch = 1,
                           .index = wal_index_next(w),
                           .timestamp_us = wal_index_next(w),
                           .payload = payload,
                           .len = PAYLOAD_BYTES};
    ASSERT(wal_append(w, &r) == 0);
}

/* Records/s with group commit at `batch` records per fdatasync. */
static double measure_group(int batch, bool pre)
{
    struct wal w;
    open_wal_pre(&w, "group", WAL_SYNC_ALWAYS, pre);
    uint8_t payload[PAYLOAD_BYTES];
    memset(payload, 0xa5, sizeof payload);
    uint64_t acked;
    append_one(&w, payload); /* segment creation is not part of the steady state */
    ASSERT(wal_sync(&w, &acked) == 0);
    double t0 = bench_now_s();
    for (int b = 0; b < BATCHES; b++) {
        for (int i = 0; i < batch; i++)
            append_one(&w, payload);
        ASSERT(wal_sync(&w, &acked) == 0);
        ASSERT(acked == wal_index_next(&w) - 1);
    }
    double per_s = (double)BATCHES * batch / (bench_now_s() - t0);
    wal_close(&w);
    return per_s;
}

/* Seconds to make one default-size spare segment (the worker's job). */
static double measure_spare(void)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, "spare");
    struct wal_spare_job job = {.fs = *sm_fs_posix(), .bytes = SM_WAL_SEGMENT_BYTES_DEFAULT};
    snprintf(job.dir, sizeof job.dir, "%s", dir);
    snprintf(job.path, sizeof job.path, "%s/%s", dir, WAL_SPARE_NAME);
    double t0 = bench_now_s();
    ASSERT(wal_spare_run(&job) == 0);
    double s = bench_now_s() - t0;
    close(job.fd);
    return s;
}

struct spare_thread {
    struct wal_spare_job job;
    int rc;
    atomic_bool done;
};

static void *spare_thread_main(void *arg)
{
    struct spare_thread *t = arg;
    t->rc = wal_spare_run(&t->job);
    atomic_store(&t->done, true);
    return NULL;
}

/* Median and highest wal_sync latency (seconds) of 16-record batches: with `spare`, only those
 * taken while another thread makes a 64 MiB spare; else SYNC_SAMPLES of them. */
static void measure_sync_during_spare(bool spare, double *median_s, double *max_s)
{
    struct wal w;
    open_wal_pre(&w, "during", WAL_SYNC_ALWAYS, true);
    uint8_t payload[PAYLOAD_BYTES];
    memset(payload, 0x77, sizeof payload);
    uint64_t acked;
    append_one(&w, payload);
    ASSERT(wal_sync(&w, &acked) == 0);
    static struct spare_thread t;
    memset(&t, 0, sizeof t);
    pthread_t th;
    if (spare) {
        char dir[512];
        fresh_dir(dir, sizeof dir, "during-spare");
        t.job = (struct wal_spare_job){.fs = *sm_fs_posix(), .bytes = SM_WAL_SEGMENT_BYTES_DEFAULT};
        snprintf(t.job.dir, sizeof t.job.dir, "%s", dir);
        snprintf(t.job.path, sizeof t.job.path, "%s/%s", dir, WAL_SPARE_NAME);
        ASSERT(pthread_create(&th, NULL, spare_thread_main, &t) == 0);
    }
    static double lat[100000];
    int n = 0;
    while (n < (int)(sizeof lat / sizeof lat[0]) &&
           (spare ? !atomic_load(&t.done) : n < SYNC_SAMPLES)) {
        for (int i = 0; i < 16; i++)
            append_one(&w, payload);
        double t0 = bench_now_s();
        ASSERT(wal_sync(&w, &acked) == 0);
        lat[n++] = bench_now_s() - t0;
    }
    if (spare) {
        ASSERT(pthread_join(th, NULL) == 0 && t.rc == 0);
        close(t.job.fd);
    }
    wal_close(&w);
    ASSERT(n > 0);
    *median_s = bench_median(lat, n);
    *max_s = lat[n - 1]; /* sorted by bench_median() */
}

/* Seconds wal_open takes on a log of one record in a default-size segment. */
static double measure_recovery(bool pre)
{
    char dir[512];
    fresh_dir(dir, sizeof dir, pre ? "recover-pre" : "recover");
    struct wal_config c = {.dir = dir, .preallocate = pre};
    struct wal w;
    struct wal_recovery rep;
    ASSERT(wal_open(&w, &c, &rep) == 0);
    uint8_t payload[PAYLOAD_BYTES] = {0};
    append_one(&w, payload);
    uint64_t acked;
    ASSERT(wal_sync(&w, &acked) == 0);
    wal_close(&w);
    double t0 = bench_now_s();
    ASSERT(wal_open(&w, &c, &rep) == 0);
    double s = bench_now_s() - t0;
    ASSERT(!rep.torn && rep.index_last == 1);
    wal_close(&w);
    return s;
}

/* Appends/s with no I/O in the timed part (flushes, unsynced, between timed stretches). */
static double measure_appends(void)
{
    struct wal w;
    open_wal(&w, "appends", WAL_SYNC_NEVER);
    uint8_t payload[PAYLOAD_BYTES];
    memset(payload, 0x3c, sizeof payload);
    double busy_s = 0;
    int done = 0;
    while (done < APPENDS) {
        double t0 = bench_now_s();
        for (int i = 0; i < 10000; i++)
            append_one(&w, payload);
        busy_s += bench_now_s() - t0;
        done += 10000;
        ASSERT(wal_write(&w) == 0);
    }
    wal_close(&w);
    return done / busy_s;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/bench-wal-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    ASSERT(mkdtemp(base) != NULL);
    static const int sizes[] = {1, 16, 256};
    static const char *const prep_names[] = {"growing file (append)", "fallocate'd file",
                                             "zero-written, synced file"};
    double lat[RUNS], naive[RUNS], group[3][RUNS], ratio[3][RUNS], appends[RUNS];
    double pre[3][RUNS], pre_ratio[3][RUNS], prep[3][RUNS], prep_ratio[3][RUNS];
    double spare[RUNS], recover[2][RUNS], recover_ratio[RUNS];
    double during[2][RUNS], during_max[2][RUNS];
    for (int r = 0; r < RUNS; r++) {
        measure_naive(&lat[r], &naive[r]);
        for (int s = 0; s < 3; s++) {
            group[s][r] = measure_group(sizes[s], false);
            ratio[s][r] = group[s][r] / naive[r];
            pre[s][r] = measure_group(sizes[s], true);
            pre_ratio[s][r] = pre[s][r] / group[s][r];
        }
        for (int h = 0; h < 3; h++)
            prep[h][r] = measure_sync_after(h);
        for (int h = 0; h < 3; h++)
            prep_ratio[h][r] = prep[0][r] / prep[h][r];
        appends[r] = measure_appends();
        spare[r] = measure_spare();
        recover[0][r] = measure_recovery(false);
        recover[1][r] = measure_recovery(true);
        recover_ratio[r] = recover[1][r] / recover[0][r];
        measure_sync_during_spare(false, &during[0][r], &during_max[0][r]);
        measure_sync_during_spare(true, &during[1][r], &during_max[1][r]);
    }
    printf("wal on %s (CRC32C %s), %d-byte payloads, median of %d runs\n", base,
           sm_crc32c_hardware() ? "SSE4.2" : "table", PAYLOAD_BYTES, RUNS);
    printf("  %-34s %12.3f ms\n", "fdatasync latency (median)", bench_median(lat, RUNS) * 1e3);
    printf("  %-34s %12.0f records/s\n", "naive write+fdatasync per record",
           bench_median(naive, RUNS));
    for (int s = 0; s < 3; s++) {
        char label[64];
        snprintf(label, sizeof label, "wal group commit, batch %d", sizes[s]);
        printf("  %-34s %12.0f records/s  %7.1fx naive\n", label, bench_median(group[s], RUNS),
               bench_median(ratio[s], RUNS));
    }
    printf("  %-34s %12.0f records/s\n", "wal_append only (no I/O)", bench_median(appends, RUNS));
    printf("  pwrite + fdatasync (median latency), speed-up against the growing file:\n");
    for (int h = 0; h < 3; h++)
        printf("    %-32s %12.3f ms  %7.2fx\n", prep_names[h], bench_median(prep[h], RUNS) * 1e3,
               bench_median(prep_ratio[h], RUNS));
    for (int s = 0; s < 3; s++) {
        char label[64];
        snprintf(label, sizeof label, "preallocated, batch %d", sizes[s]);
        printf("  %-34s %12.0f records/s  %7.2fx growing\n", label, bench_median(pre[s], RUNS),
               bench_median(pre_ratio[s], RUNS));
    }
    printf("  %-34s %12.1f ms\n", "spare segment, 64 MiB of zeros",
           bench_median(spare, RUNS) * 1e3);
    printf("  %-34s %12.2f ms (growing: %.2f ms, %.1fx)\n", "recovery, 64 MiB prealloc, 1 rec",
           bench_median(recover[1], RUNS) * 1e3, bench_median(recover[0], RUNS) * 1e3,
           bench_median(recover_ratio, RUNS));
    printf("  %-34s %12.3f ms median, %.3f ms max (of run medians)\n", "batch-16 sync, no spare",
           bench_median(during[0], RUNS) * 1e3, bench_median(during_max[0], RUNS) * 1e3);
    printf("  %-34s %12.3f ms median, %.3f ms max (of run medians)\n",
           "batch-16 sync, spare being made", bench_median(during[1], RUNS) * 1e3,
           bench_median(during_max[1], RUNS) * 1e3);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    ASSERT(system(cmd) == 0);
    return 0;
}
