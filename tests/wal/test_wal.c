/*
 * The log's core on the in-memory disk: round trips across segment rollover, group commit (one
 * write and one fdatasync per batch), the split flush API, truncation, the iterator, sync modes,
 * I/O errors, and every limit and configuration bound.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/wal.h"

#define DIR "/data"

static struct sm_faulty_fs disk;
static struct sm_fs fs;
static bool prealloc; /* the tests that run twice: without and with preallocated segments */

static void setup(void)
{
    struct sm_faulty_config c = {.seed = 42, .sector_bytes = 512};
    sm_faulty_fs_init(&disk, &c);
    fs = sm_faulty_fs_iface(&disk);
}

static void teardown(void)
{
    sm_faulty_fs_free(&disk);
}

/* Small segments so tests roll over every few dozen records. */
static struct wal_config small_config(void)
{
    return (struct wal_config){
        .dir = DIR,
        .fs = &fs,
        .segment_bytes = 4096,
        .batch_bytes = 2048,
        .payload_bytes_max = 200,
        .preallocate = prealloc,
    };
}

/* The payload of record i is a function of i, so any record can be checked on its own. */
static uint32_t payload_of(uint64_t i, uint8_t *out)
{
    uint32_t len = (uint32_t)(i * 7 % 64) + 1;
    for (uint32_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i * 31 + j);
    return len;
}

static void append_n(struct wal *w, uint64_t n)
{
    uint8_t p[256];
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = wal_index_next(w);
        struct wal_record r = {.type = (uint8_t)(1 + i % 3),
                               .epoch = 1 + i / 100,
                               .index = i,
                               .timestamp_us = i * 1000,
                               .payload = p};
        r.len = payload_of(i, p);
        int rc = wal_append(w, &r);
        if (rc == SM_E_BUSY) {
            uint64_t acked;
            cr_assert_eq(wal_sync(w, &acked), 0);
            rc = wal_append(w, &r);
        }
        cr_assert_eq(rc, 0, "append %lu: %d", (unsigned long)i, rc);
    }
}

/* Iterates [from, to] and checks every field of every record. */
static void check_range(const struct wal *w, uint64_t from, uint64_t to)
{
    struct wal_iter it;
    cr_assert_eq(wal_iter_init(&it, w, from), 0);
    uint8_t p[256];
    struct wal_record r;
    uint64_t i = from;
    int rc;
    while ((rc = wal_iter_next(&it, &r)) == 1) {
        cr_assert_eq(r.index, i);
        cr_assert_eq(r.type, 1 + i % 3);
        cr_assert_eq(r.epoch, 1 + i / 100);
        cr_assert_eq(r.timestamp_us, i * 1000);
        uint32_t len = payload_of(i, p);
        cr_assert_eq(r.len, len);
        cr_assert(memcmp(r.payload, p, len) == 0, "payload of %lu", (unsigned long)i);
        i++;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(i, to + 1, "iterated up to %lu, want %lu", (unsigned long)i - 1,
                 (unsigned long)to);
    wal_iter_free(&it);
}

static void round_trip(void)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(rep.index_last, 0);
    cr_assert_eq(wal_index_next(&w), 1);
    uint64_t acked = 0;
    for (int round = 0; round < 20; round++) {
        append_n(&w, 37);
        cr_assert_eq(wal_sync(&w, &acked), 0);
        cr_assert_eq(acked, wal_index_next(&w) - 1);
    }
    cr_assert_gt(w.segments_count, 5, "rolled over: %u segments", w.segments_count);
    for (uint32_t s = 0; s < w.segments_count; s++)
        cr_assert_leq(w.segments[s].size_bytes, 4096);
    check_range(&w, 1, 740);
    check_range(&w, 333, 740);
    check_range(&w, 741, 740);
    wal_close(&w);

    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt);
    cr_assert_eq(rep.index_last, 740);
    check_range(&w, 1, 740);
    append_n(&w, 10);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(acked, 750);
    check_range(&w, 1, 750);
    wal_close(&w);
    teardown();
}

Test(wal, round_trip_across_segment_rollover)
{
    round_trip();
}

Test(wal, round_trip_across_segment_rollover_preallocated)
{
    prealloc = true;
    round_trip();
}

Test(wal, group_commit_is_one_write_and_one_fdatasync_per_batch)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    c.segment_bytes = 1 << 20;
    c.batch_bytes = 64 * 1024;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 1); /* creates the first segment */
    uint64_t acked;
    cr_assert_eq(wal_sync(&w, &acked), 0);
    for (int batch = 1; batch <= 256; batch *= 4) {
        uint64_t syncs = disk.syncs, writes = disk.writes;
        append_n(&w, (uint64_t)batch);
        cr_assert_eq(disk.writes, writes, "appends do no I/O");
        cr_assert_eq(wal_sync(&w, &acked), 0);
        cr_assert_eq(disk.syncs - syncs, 1, "one fdatasync for %d records", batch);
        cr_assert_eq(disk.writes - writes, 1, "one write for %d records", batch);
        cr_assert_eq(acked, wal_index_next(&w) - 1);
    }
    /* Nothing buffered, nothing unsynced: a sync costs nothing. */
    uint64_t syncs = disk.syncs;
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(disk.syncs, syncs);
    wal_close(&w);
    teardown();
}

Test(wal, flush_api_lets_appends_continue_while_a_batch_is_in_flight)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 5);
    struct wal_flush f;
    cr_assert_eq(wal_flush_begin(&w, true, &f), 0);
    cr_assert(f.sync);
    cr_assert_eq(f.iovcnt, 1);
    cr_assert_eq(f.index_last, 5);
    cr_assert_eq(f.offset, WAL_SEGMENT_HEADER_BYTES);
    append_n(&w, 3); /* the loop keeps appending into the other buffer */
    cr_assert_eq(wal_index_acked(&w), 0, "nothing durable before done");
    /* The "fsync thread" does the I/O. */
    cr_assert_eq(fs.pwritev(fs.ctx, f.fd, f.iov, f.iovcnt, f.offset), 0);
    cr_assert_eq(fs.fdatasync(fs.ctx, f.fd), 0);
    cr_assert_eq(wal_flush_done(&w, 0), 0);
    cr_assert_eq(wal_index_acked(&w), 5);
    uint64_t acked;
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(acked, 8);
    check_range(&w, 1, 8);
    /* A failed flush poisons the log: a failed fsync cannot be retried safely. */
    append_n(&w, 1);
    cr_assert_eq(wal_flush_begin(&w, true, &f), 0);
    cr_assert_eq(wal_flush_done(&w, -EIO), SM_E_IO);
    cr_assert_eq(w.errno_last, EIO);
    struct wal_record r = {.type = 1, .index = wal_index_next(&w)};
    cr_assert_eq(wal_append(&w, &r), SM_E_IO);
    cr_assert_eq(wal_sync(&w, &acked), SM_E_IO);
    cr_assert_eq(wal_truncate_after(&w, 3), SM_E_IO);
    wal_close(&w);
    teardown();
}

Test(wal, io_errors_on_write_and_sync_are_reported_not_acknowledged)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    uint64_t acked;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 3);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    append_n(&w, 3);
    sm_faulty_fs_fail(&disk, SM_FAULTY_SYNC, -EIO, 0, 1);
    cr_assert_eq(wal_sync(&w, &acked), SM_E_IO);
    cr_assert_eq(wal_index_acked(&w), 3, "the failed batch is not acknowledged");
    wal_close(&w);

    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 2);
    sm_faulty_fs_fail(&disk, SM_FAULTY_WRITE, -ENOSPC, 0, 1);
    cr_assert_eq(wal_sync(&w, &acked), SM_E_IO);
    cr_assert_eq(w.errno_last, ENOSPC);
    wal_close(&w);

    /* Segment creation failing (open, then directory fsync). */
    struct sm_faulty_config fc = {.seed = 1};
    sm_faulty_fs_free(&disk);
    sm_faulty_fs_init(&disk, &fc);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 1);
    sm_faulty_fs_fail(&disk, SM_FAULTY_OPEN, -EACCES, 0, 1);
    cr_assert_eq(wal_sync(&w, &acked), SM_E_IO);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 1);
    sm_faulty_fs_fail(&disk, SM_FAULTY_SYNC_DIR, -EIO, 0, 1);
    cr_assert_eq(wal_sync(&w, &acked), SM_E_IO);
    wal_close(&w);
    /* A listing that fails makes open fail. */
    sm_faulty_fs_fail(&disk, SM_FAULTY_LIST, -EIO, 0, 1);
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_IO);
    teardown();
}

static void truncate_durably(void)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    uint64_t acked;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 300);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    uint32_t segs = w.segments_count;
    cr_assert_gt(segs, 3);
    append_n(&w, 5); /* buffered records beyond the cut go too */
    cr_assert_eq(wal_truncate_after(&w, 120), 0);
    cr_assert_eq(wal_index_next(&w), 121);
    cr_assert_lt(w.segments_count, segs);
    check_range(&w, 1, 120);
    /* Appending continues with the next index. */
    append_n(&w, 30);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(acked, 150);
    wal_close(&w);
    /* Durable: survives a crash (everything was synced). */
    sm_faulty_fs_crash(&disk);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt);
    cr_assert_eq(rep.index_last, 150);
    check_range(&w, 1, 150);
    /* Edge cases: a cut at the end is a no-op; a cut at a segment's first record empties it. */
    cr_assert_eq(wal_truncate_after(&w, 150), 0);
    uint64_t first = w.segments[w.segments_count - 1].index_first;
    cr_assert_eq(wal_truncate_after(&w, first - 1), 0);
    cr_assert_eq(wal_index_next(&w), first);
    cr_assert_eq(wal_truncate_after(&w, 0), 0);
    cr_assert_eq(wal_index_next(&w), 1);
    append_n(&w, 3);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(rep.index_last, 3);
    check_range(&w, 1, 3);
    wal_close(&w);
    teardown();
}

Test(wal, truncate_after_drops_the_suffix_across_segments_durably)
{
    truncate_durably();
}

Test(wal, truncate_after_drops_the_suffix_across_segments_durably_preallocated)
{
    prealloc = true;
    truncate_durably();
}

Test(wal, truncate_refuses_below_the_snapshot_and_during_a_flush)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    uint64_t acked;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 20);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    struct wal_snapshot_writer sw;
    cr_assert_eq(wal_snapshot_begin(&w, &sw, 10, 1), 0);
    cr_assert_eq(wal_snapshot_write(&sw, "state", 5), 0);
    cr_assert_eq(wal_snapshot_finish(&sw), 0);
    cr_assert_eq(wal_compact(&w), 0);
    cr_assert_eq(wal_truncate_after(&w, 9), SM_E_STATE);
    append_n(&w, 1);
    struct wal_flush f;
    cr_assert_eq(wal_flush_begin(&w, true, &f), 0);
    cr_assert_eq(wal_truncate_after(&w, 12), SM_E_STATE);
    cr_assert_eq(wal_flush_done(&w, fs.pwritev(fs.ctx, f.fd, f.iov, f.iovcnt, f.offset)), 0);
    cr_assert_eq(wal_truncate_after(&w, 12), 0);
    wal_close(&w);
    teardown();
}

Test(wal, iterator_bounds)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    uint64_t acked;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    struct wal_iter it;
    cr_assert_eq(wal_iter_init(&it, &w, 2), SM_E_NOTFOUND, "past the end + 1");
    cr_assert_eq(wal_iter_init(&it, &w, 1), 0, "the end + 1 is an empty iteration");
    struct wal_record r;
    cr_assert_eq(wal_iter_next(&it, &r), 0);
    wal_iter_free(&it);
    append_n(&w, 100);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    append_n(&w, 5);
    check_range(&w, 1, 100); /* buffered records are not visible */
    cr_assert_eq(wal_iter_init(&it, &w, 0), SM_E_NOTFOUND);
    cr_assert_eq(wal_iter_init(&it, &w, 102), SM_E_NOTFOUND);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    for (uint64_t from = 1; from <= 106; from += 7)
        check_range(&w, from, 105);
    wal_close(&w);
    teardown();
}

Test(wal, sync_modes)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    uint64_t acked;
    c.sync_mode = WAL_SYNC_NEVER;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 1);
    cr_assert_eq(wal_sync(&w, &acked), 0); /* segment creation syncs its header, once */
    uint64_t syncs = disk.syncs;
    append_n(&w, 10);
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(disk.syncs, syncs, "never: no fdatasync");
    cr_assert_eq(acked, 11, "never: written counts as acknowledged");
    wal_close(&w);

    c.sync_mode = WAL_SYNC_EVERY;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_n(&w, 10);
    cr_assert_eq(wal_write(&w), 0);
    cr_assert_eq(wal_index_acked(&w), 11, "every: written, not yet durable");
    cr_assert_eq(w.index_written, 21);
    syncs = disk.syncs;
    cr_assert_eq(wal_sync(&w, &acked), 0); /* the tick: nothing buffered, but unsynced bytes */
    cr_assert_eq(disk.syncs - syncs, 1);
    cr_assert_eq(acked, 21);
    wal_close(&w);

    c.sync_mode = (enum wal_sync_mode)7;
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_BADARG);
    teardown();
}

Test(wal, append_rejects_bad_records_and_enforces_limits)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    uint8_t big[2048];
    memset(big, 7, sizeof big);
    struct wal_record r = {.type = 1, .index = 1, .payload = big, .len = 200};
    cr_assert_eq(wal_append(&w, &r), 0, "exactly the payload maximum");
    r.index = 2;
    r.len = 201;
    cr_assert_eq(wal_append(&w, &r), SM_E_TOOLARGE);
    r.len = 10;
    r.index = 3;
    cr_assert_eq(wal_append(&w, &r), SM_E_BADARG, "index must be next");
    r.index = 2;
    r.type = 0;
    cr_assert_eq(wal_append(&w, &r), SM_E_BADARG, "type 0 is reserved");
    r.type = 1;
    r.payload = NULL;
    cr_assert_eq(wal_append(&w, &r), SM_E_BADARG);
    r.payload = big;
    /* Fill the 2048-byte batch: 240 + 9 * 200 = 2040 of it. */
    r.len = 160;
    int rc = 0, n = 0;
    while ((rc = wal_append(&w, &r)) == 0) {
        r.index++;
        n++;
    }
    cr_assert_eq(rc, SM_E_BUSY, "a full batch says flush first");
    cr_assert_eq(n, 9);
    uint64_t acked;
    cr_assert_eq(wal_sync(&w, &acked), 0);
    cr_assert_eq(wal_append(&w, &r), 0);
    wal_close(&w);

    /* Read-only logs take no appends. */
    c.read_only = true;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    r.index = wal_index_next(&w);
    cr_assert_eq(wal_append(&w, &r), SM_E_STATE);
    struct wal_flush f;
    cr_assert_eq(wal_flush_begin(&w, true, &f), SM_E_STATE);
    cr_assert_eq(wal_truncate_after(&w, 1), SM_E_STATE);
    struct wal_snapshot_writer sw;
    cr_assert_eq(wal_snapshot_begin(&w, &sw, 1, 1), SM_E_STATE);
    cr_assert_eq(wal_compact(&w), SM_E_STATE);
    wal_close(&w);
    teardown();
}

Test(wal, segments_max_is_enforced_at_append_and_open)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    c.segments_max = 3;
    uint64_t acked;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    uint8_t p[200];
    memset(p, 1, sizeof p);
    int rc = 0;
    while (rc == 0) {
        struct wal_record r = {.type = 1, .index = wal_index_next(&w), .payload = p, .len = 200};
        rc = wal_append(&w, &r);
        if (rc == 0)
            rc = wal_sync(&w, &acked);
    }
    cr_assert_eq(rc, SM_E_BUSY);
    cr_assert_eq(w.segments_count, 3);
    wal_close(&w);
    c.segments_max = 2;
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_BUSY, "more segments on disk than allowed");
    teardown();
}

Test(wal, configuration_bounds)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config ok = small_config();
    struct wal_config c;
    char long_dir[SM_WAL_DIR_BYTES_MAX + 2];
    memset(long_dir, 'a', sizeof long_dir - 1);
    long_dir[sizeof long_dir - 1] = '\0';
#define EXPECT_BAD(field, value)                                                                   \
    do {                                                                                           \
        c = ok;                                                                                    \
        c.field = value;                                                                           \
        cr_assert_eq(wal_open(&w, &c, &rep), SM_E_BADARG, #field " = " #value);                    \
    } while (0)
    EXPECT_BAD(dir, NULL);
    EXPECT_BAD(dir, "");
    EXPECT_BAD(dir, long_dir);
    EXPECT_BAD(segment_bytes, SM_WAL_SEGMENT_BYTES_MIN - 1);
    EXPECT_BAD(segment_bytes, (uint64_t)SM_WAL_SEGMENT_BYTES_MAX + 1);
    EXPECT_BAD(batch_bytes, SM_WAL_BATCH_BYTES_MIN - 1);
    EXPECT_BAD(batch_bytes, 2049); /* more than half a 4 KiB segment */
    EXPECT_BAD(payload_bytes_max, 2048 - WAL_RECORD_HEADER_BYTES + 1);
    EXPECT_BAD(snapshots_keep, SM_WAL_SNAPSHOTS_KEEP_MAX + 1);
    EXPECT_BAD(snapshot_bytes_max, SM_WAL_SNAPSHOT_BYTES_MAX + 1);
    EXPECT_BAD(segments_max, 1);
    EXPECT_BAD(segments_max, SM_WAL_SEGMENTS_MAX + 1);
#undef EXPECT_BAD
    c = ok;
    c.segment_bytes = (uint64_t)SM_WAL_SEGMENT_BYTES_MAX;
    c.batch_bytes = SM_WAL_BATCH_BYTES_MAX;
    c.payload_bytes_max = SM_WAL_RECORD_PAYLOAD_BYTES_MAX + 1;
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_BADARG, "payload above the global maximum");
    c.payload_bytes_max = 0;
    c.batch_bytes = SM_WAL_BATCH_BYTES_DEFAULT;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(w.config.payload_bytes_max, SM_WAL_RECORD_PAYLOAD_BYTES_MAX);
    cr_assert_eq(w.config.snapshots_keep, SM_WAL_SNAPSHOTS_KEEP_DEFAULT);
    wal_close(&w);
    /* Defaults: a zeroed config but for the directory. */
    c = (struct wal_config){.dir = DIR, .fs = &fs};
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(w.config.segment_bytes, SM_WAL_SEGMENT_BYTES_DEFAULT);
    cr_assert_eq(w.config.batch_bytes, SM_WAL_BATCH_BYTES_DEFAULT);
    wal_close(&w);
    teardown();
}
