/*
 * Recovery under damage: random crashes on the page-cache model (every acknowledged record
 * survives, nothing after a gap, torn tails cut), the log cut at every byte offset of its last
 * records on real files, flipped bits before the tail (refused with file and offset), repair mode
 * (keeps a copy), gaps between segments, and read-only verification.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../support/tmpfiles.h"
#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/wal.h"

#define DIR "/data"

static struct sm_faulty_fs disk;
static struct sm_fs fs;
static bool prealloc; /* the tests that run twice: without and with preallocated segments */

static void disk_init(uint64_t seed, uint32_t sector_bytes)
{
    struct sm_faulty_config c = {.seed = seed, .sector_bytes = sector_bytes};
    sm_faulty_fs_init(&disk, &c);
    fs = sm_faulty_fs_iface(&disk);
}

static struct wal_config small_config(const struct sm_fs *f, const char *dir)
{
    return (struct wal_config){
        .dir = dir,
        .fs = f,
        .segment_bytes = 4096,
        .batch_bytes = 2048,
        .payload_bytes_max = 200,
        .preallocate = prealloc,
    };
}

static uint32_t payload_of(uint64_t i, uint8_t *out)
{
    uint32_t len = (uint32_t)(i * 7 % 64) + 1;
    for (uint32_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i * 31 + j);
    return len;
}

static int append_one(struct wal *w)
{
    uint8_t p[256];
    uint64_t i = wal_index_next(w);
    struct wal_record r = {
        .type = (uint8_t)(1 + i % 3), .epoch = 1, .index = i, .timestamp_us = i, .payload = p};
    r.len = payload_of(i, p);
    return wal_append(w, &r);
}

static void append_synced(struct wal *w, uint64_t n)
{
    uint64_t acked;
    for (uint64_t k = 0; k < n; k++) {
        int rc = append_one(w);
        if (rc == SM_E_BUSY) {
            cr_assert_eq(wal_sync(w, &acked), 0);
            rc = append_one(w);
        }
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(wal_sync(w, &acked), 0);
}

/* Every record in [from, to], in order, with the right payload; nothing after it. */
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
        uint32_t len = payload_of(i, p);
        cr_assert(r.len == len && memcmp(r.payload, p, len) == 0, "record %lu", (unsigned long)i);
        i++;
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(i, to + 1);
    wal_iter_free(&it);
}

/* One round of random work; returns the highest index acknowledged. */
static uint64_t random_work(struct wal *w, uint64_t acked_max)
{
    int ops = 1 + (int)(sm_faulty_fs_random(&disk) % 12);
    for (int k = 0; k < ops; k++) {
        uint64_t dice = sm_faulty_fs_random(&disk) % 10;
        if (wal_spare_wanted(w) && sm_faulty_fs_random(&disk) % 2) {
            /* The next segment made ahead, as the server's worker does; sometimes the crash
             * comes after the spare was made but before the log took it. */
            struct wal_spare_job job;
            wal_spare_begin(w, &job);
            int rc = wal_spare_run(&job);
            cr_assert_eq(rc, 0);
            if (sm_faulty_fs_random(&disk) % 8 == 0)
                return acked_max;
            wal_spare_done(w, &job, rc);
        }
        uint64_t n = 1 + sm_faulty_fs_random(&disk) % 30;
        for (uint64_t j = 0; j < n; j++) {
            int rc = append_one(w);
            if (rc == SM_E_BUSY)
                break;
            cr_assert_eq(rc, 0);
        }
        if (dice < 6) {
            uint64_t acked;
            cr_assert_eq(wal_sync(w, &acked), 0);
            cr_assert_eq(acked, wal_index_next(w) - 1);
            acked_max = acked;
        } else if (dice < 8) {
            cr_assert_eq(wal_write(w), 0); /* written, not synced: may be lost */
        } else if (dice < 9) {
            /* A batch handed to the fsync thread, written, and the crash comes before its sync. */
            struct wal_flush f;
            cr_assert_eq(wal_flush_begin(w, true, &f), 0);
            if (f.bytes)
                cr_assert_eq(fs.pwritev(fs.ctx, f.fd, f.iov, f.iovcnt, f.offset), 0);
            return acked_max; /* crash now, mid-flush */
        } else if (wal_index_next(w) > 2) {
            uint64_t cut =
                w->index_floor + sm_faulty_fs_random(&disk) % (wal_index_next(w) - w->index_floor);
            cr_assert_eq(wal_truncate_after(w, cut), 0);
            if (acked_max > cut)
                acked_max = cut;
        }
    }
    return acked_max;
}

static void random_crashes(bool pre)
{
    prealloc = pre;
    uint32_t torn_seen = 0, lost_seen = 0, full_segments_seen = 0;
    for (uint64_t seed = 1; seed <= 150; seed++) {
        disk_init(seed, seed % 2 ? 512 : 0);
        struct wal_config c = small_config(&fs, DIR);
        uint64_t acked_max = 0, appended_last = 0;
        for (int round = 0; round < 6; round++) {
            struct wal w;
            struct wal_recovery rep;
            int rc = wal_open(&w, &c, &rep);
            cr_assert_eq(rc, 0, "seed %lu round %d: open %d (%s at %s:%lu)", (unsigned long)seed,
                         round, rc, rep.corrupt_reason, rep.corrupt_path,
                         (unsigned long)rep.corrupt_offset);
            cr_assert_geq(rep.index_last, acked_max, "seed %lu round %d: lost acknowledged",
                          (unsigned long)seed, round);
            check_range(&w, 1, rep.index_last);
            torn_seen += rep.torn;
            full_segments_seen += w.tail_preallocated;
            lost_seen += round > 0 && rep.index_last < appended_last;
            acked_max = random_work(&w, rep.index_last > acked_max ? acked_max : rep.index_last);
            appended_last = wal_index_next(&w) - 1;
            sm_faulty_fs_crash(&disk);
            wal_close(&w); /* its descriptors died with the crash; nothing is written */
        }
        sm_faulty_fs_free(&disk);
    }
    /* The model really did tear and drop unsynced writes. */
    cr_assert_gt(torn_seen, 10, "torn tails seen: %u", torn_seen);
    cr_assert_gt(lost_seen, 10, "unacknowledged records lost: %u", lost_seen);
    if (pre)
        cr_assert_gt(full_segments_seen, 100, "preallocated tails: %u", full_segments_seen);
    else
        cr_assert_eq(full_segments_seen, 0);
}

Test(recovery, random_crashes_keep_every_acknowledged_record)
{
    random_crashes(false);
}

Test(recovery, random_crashes_keep_every_acknowledged_record_preallocated)
{
    random_crashes(true);
}

Test(recovery, reordered_writeback_never_crashes_recovery)
{
    /* A disk that writes back out of order can leave a hole followed by valid records; recovery
     * must then refuse (or recover), never crash, and never return a record out of sequence. */
    for (uint64_t seed = 1; seed <= 120; seed++) {
        prealloc = seed > 60;
        struct sm_faulty_config fc = {.seed = seed, .sector_bytes = 512, .reorder = true};
        sm_faulty_fs_init(&disk, &fc);
        fs = sm_faulty_fs_iface(&disk);
        struct wal_config c = small_config(&fs, DIR);
        c.sync_mode = WAL_SYNC_EVERY;
        struct wal w;
        struct wal_recovery rep;
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        for (int k = 0; k < 20; k++) {
            cr_assert_eq(append_one(&w), 0);
            cr_assert_eq(wal_write(&w), 0);
        }
        sm_faulty_fs_crash(&disk);
        wal_close(&w);
        int rc = wal_open(&w, &c, &rep);
        cr_assert(rc == 0 || rc == SM_E_CORRUPT);
        if (rc == 0) {
            check_range(&w, 1, rep.index_last);
            wal_close(&w);
        } else {
            cr_assert(rep.corrupt && rep.corrupt_path[0]);
        }
        sm_faulty_fs_free(&disk);
    }
}

/* ---- real files ---------------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    test_tmpdir_make(tmpdir, sizeof tmpdir, "smwal-test");
}

static void remove_tmpdir(void)
{
    test_tmpdir_remove(tmpdir);
}

Test(recovery, log_cut_at_every_byte_of_its_last_records)
{
    make_tmpdir();
    struct wal_config c = small_config(NULL, tmpdir);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 150);
    cr_assert_gt(w.segments_count, 2);
    struct wal_segment last = w.segments[w.segments_count - 1];
    uint64_t prev_last = last.index_first - 1;
    wal_close(&w);
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, tmpdir, last.index_first);
    size_t len;
    uint8_t *orig = test_file_read(path, &len);
    /* Record boundaries of the last segment. */
    uint64_t bounds[256];
    uint32_t nb = 0;
    for (size_t off = WAL_SEGMENT_HEADER_BYTES; off <= len; nb++) {
        bounds[nb] = off;
        if (off == len)
            break;
        off += WAL_RECORD_HEADER_BYTES + (orig[off] | (uint32_t)orig[off + 1] << 8);
    }
    cr_assert_gt(nb, 4);
    cr_assert_eq(bounds[nb], len);
    size_t from = bounds[nb - 4];
    for (size_t cut = 0; cut <= len; cut = cut == 64 && cut < from ? from : cut + 1) {
        test_file_write(path, orig, cut);
        cr_assert_eq(wal_open(&w, &c, &rep), 0, "cut %zu", cut);
        /* The longest valid prefix: whole records below the cut. */
        uint32_t whole = 0;
        while (whole < nb && bounds[whole + 1] <= cut)
            whole++;
        uint64_t want_last = cut < WAL_SEGMENT_HEADER_BYTES ? prev_last : prev_last + whole;
        cr_assert_eq(rep.index_last, want_last, "cut %zu", cut);
        bool boundary = cut >= WAL_SEGMENT_HEADER_BYTES && bounds[whole] == cut;
        cr_assert_eq(rep.torn, !boundary, "cut %zu torn %d", cut, rep.torn);
        if (rep.torn) {
            cr_assert_str_eq(rep.torn_path, path);
            uint64_t at = cut < WAL_SEGMENT_HEADER_BYTES ? 0 : bounds[whole];
            cr_assert_eq(rep.torn_offset, at, "cut %zu", cut);
            cr_assert_eq(rep.torn_bytes, cut - at);
        }
        check_range(&w, 1, want_last);
        wal_close(&w);
        /* Recovering the recovered log is clean. */
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert(!rep.torn && !rep.corrupt, "cut %zu: second recovery not clean", cut);
        cr_assert_eq(rep.index_last, want_last);
        wal_close(&w);
    }
    free(orig);
    remove_tmpdir();
}

Test(recovery, read_only_reports_a_torn_tail_and_changes_nothing)
{
    make_tmpdir();
    struct wal_config c = small_config(NULL, tmpdir);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 10);
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, tmpdir, 1);
    wal_close(&w);
    size_t len;
    uint8_t *orig = test_file_read(path, &len);
    cr_assert_eq(truncate(path, (off_t)len - 3), 0);
    c.read_only = true;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.torn);
    cr_assert_eq(rep.torn_bytes, len - 3 - rep.torn_offset);
    cr_assert_eq(rep.index_last, 9);
    wal_close(&w);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((size_t)st.st_size, len - 3, "verify must not truncate");
    free(orig);
    remove_tmpdir();
}

/* ---- flipped bits -------------------------------------------------------------------------- */

/* Builds a log of n records on the in-memory disk and returns its segment table copy. */
static uint32_t build_log(uint64_t n, struct wal_segment *segs)
{
    struct wal_config c = small_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, n);
    uint32_t count = w.segments_count;
    memcpy(segs, w.segments, count * sizeof *segs);
    wal_close(&w);
    return count;
}

/* The file offset of record `index` in the segment starting at `first`. */
static uint64_t offset_of(uint64_t first, uint64_t index)
{
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, first);
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    for (uint64_t i = first; i < index; i++)
        off += WAL_RECORD_HEADER_BYTES + (data[off] | (uint32_t)data[off + 1] << 8);
    return off;
}

static void expect_refusal_for_every_bit(uint64_t first, uint64_t index)
{
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, first);
    uint64_t off = offset_of(first, index);
    uint8_t p[256];
    uint64_t bytes = WAL_RECORD_HEADER_BYTES + payload_of(index, p);
    struct wal_config c = small_config(&fs, DIR);
    for (uint64_t bit = off * 8; bit < (off + bytes) * 8; bit++) {
        cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, bit), 0);
        struct wal w;
        struct wal_recovery rep;
        cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT, "bit %lu", (unsigned long)bit);
        cr_assert(rep.corrupt);
        cr_assert_str_eq(rep.corrupt_path, path);
        cr_assert_eq(rep.corrupt_offset, off, "bit %lu: offset %lu", (unsigned long)bit,
                     (unsigned long)rep.corrupt_offset);
        cr_assert_gt(strlen(rep.corrupt_reason), 0);
        cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, bit), 0);
    }
}

Test(recovery, flipped_bits_before_the_tail_refuse_with_file_and_offset)
{
    disk_init(7, 512);
    struct wal_segment segs[64];
    uint32_t n = build_log(200, segs);
    cr_assert_geq(n, 3);
    /* A middle record of a segment that is not the last. */
    expect_refusal_for_every_bit(segs[1].index_first, segs[1].index_first + 5);
    /* The last record of a segment that is not the last: still before the tail. */
    expect_refusal_for_every_bit(segs[0].index_first, segs[0].index_last);
    /* A middle record of the last segment: valid records follow it. */
    struct wal_segment *l = &segs[n - 1];
    cr_assert_gt(l->index_last - l->index_first, 3);
    expect_refusal_for_every_bit(l->index_first, l->index_first + 1);
    /* A segment header. */
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, segs[1].index_first);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, 8 * 17), 0);
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config(&fs, DIR);
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_str_eq(rep.corrupt_path, path);
    cr_assert_eq(rep.corrupt_offset, 0);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, 8 * 17), 0);
    /* The very last record: indistinguishable from a torn write, so cut as one. */
    wal_segment_name(path, sizeof path, DIR, l->index_first);
    uint64_t off = offset_of(l->index_first, l->index_last);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, off * 8 + 8 * 45 + 3), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.torn && !rep.corrupt);
    cr_assert_eq(rep.torn_offset, off);
    cr_assert_eq(rep.index_last, l->index_last - 1);
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}

Test(recovery, repair_keeps_a_copy_and_truncates_at_the_first_bad_record)
{
    disk_init(9, 512);
    struct wal_segment segs[64];
    uint32_t n = build_log(200, segs);
    cr_assert_geq(n, 4);
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, segs[1].index_first);
    uint64_t bad = segs[1].index_first + 3;
    uint64_t off = offset_of(segs[1].index_first, bad);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, off * 8 + 8 * 50), 0);
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    uint8_t *damaged = malloc(len);
    memcpy(damaged, data, len);
    size_t damaged_len = len;

    struct wal_config c = small_config(&fs, DIR);
    c.repair = true;
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.corrupt && rep.repaired);
    cr_assert_str_eq(rep.corrupt_path, path);
    cr_assert_eq(rep.corrupt_offset, off);
    cr_assert_eq(rep.index_last, bad - 1);
    cr_assert_eq(rep.repair_files_set_aside, n - 2);
    char copy[WAL_PATH_BYTES + 16];
    snprintf(copy, sizeof copy, "%s.corrupt-1", path);
    cr_assert_str_eq(rep.repair_copy_path, copy);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, copy, &data, &len), 0);
    cr_assert(len == damaged_len && memcmp(data, damaged, len) == 0,
              "the copy is the damaged file");
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert_eq(len, off, "truncated at the bad record");
    check_range(&w, 1, bad - 1);
    append_synced(&w, 20);
    wal_close(&w);
    /* Durable, and clean from now on even without repair mode. */
    sm_faulty_fs_crash(&disk);
    c.repair = false;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.corrupt && !rep.torn);
    check_range(&w, 1, bad + 19);
    wal_close(&w);
    /* A second repair picks the next free copy name. */
    wal_segment_name(path, sizeof path, DIR, segs[1].index_first);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, 8 * WAL_SEGMENT_HEADER_BYTES + 9), 0);
    c.repair = true;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.repaired);
    snprintf(copy, sizeof copy, "%s.corrupt-2", path);
    cr_assert_str_eq(rep.repair_copy_path, copy);
    wal_close(&w);
    free(damaged);
    sm_faulty_fs_free(&disk);
}

Test(recovery, a_missing_segment_is_a_gap)
{
    disk_init(11, 512);
    struct wal_segment segs[64];
    uint32_t n = build_log(200, segs);
    cr_assert_geq(n, 4);
    char path[WAL_PATH_BYTES], next[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, segs[1].index_first);
    wal_segment_name(next, sizeof next, DIR, segs[2].index_first);
    cr_assert_eq(fs.unlink(fs.ctx, path), 0);
    struct wal_config c = small_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_str_eq(rep.corrupt_path, next);
    cr_assert_eq(rep.corrupt_offset, 0);
    c.repair = true;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.repaired);
    cr_assert_eq(rep.index_last, segs[0].index_last);
    cr_assert_eq(rep.repair_files_set_aside, n - 2);
    check_range(&w, 1, segs[0].index_last);
    wal_close(&w);
    sm_faulty_fs_free(&disk);
    /* A log that does not start at 1 with no snapshot is missing its beginning. */
    disk_init(12, 512);
    n = build_log(200, segs);
    wal_segment_name(path, sizeof path, DIR, 1);
    wal_segment_name(next, sizeof next, DIR, segs[1].index_first);
    cr_assert_eq(fs.unlink(fs.ctx, path), 0);
    c.repair = false;
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_str_eq(rep.corrupt_path, next);
    sm_faulty_fs_free(&disk);
}

Test(recovery, torn_segment_header_and_empty_last_segment)
{
    disk_init(13, 512);
    struct wal_segment segs[64];
    uint32_t n = build_log(100, segs);
    uint64_t next = segs[n - 1].index_last + 1;
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, next);
    struct wal_config c = small_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    /* A new last segment with half a header: created, never written to. */
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, "SMWALS", 6), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.torn);
    cr_assert_eq(rep.torn_offset, 0);
    cr_assert_eq(rep.torn_bytes, 6);
    cr_assert_eq(rep.index_last, next - 1);
    wal_close(&w);
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), -ENOENT, "removed");
    /* An empty last file. */
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, "", 0), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.torn);
    cr_assert_eq(rep.index_last, next - 1);
    append_synced(&w, 5);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn);
    check_range(&w, 1, next + 4);
    wal_close(&w);
    /* Zero bytes after the last record of a segment that is not the last: a preallocated
     * segment's clean end. Any non-zero byte there: damage. */
    wal_segment_name(path, sizeof path, DIR, segs[0].index_first);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    uint8_t *grown = malloc(len + 3);
    memcpy(grown, data, len);
    memset(grown + len, 0, 3);
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, grown, len + 3), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt);
    check_range(&w, 1, next + 4);
    wal_close(&w);
    grown[len + 2] = 0xab;
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, grown, len + 3), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_eq(rep.corrupt_offset, len);
    free(grown);
    sm_faulty_fs_free(&disk);
}
