/*
 * Preallocated segments (config.preallocate): full-size zero-filled files whose log ends where the
 * zeros begin. The last records torn at every byte (the bytes after the tear are zeros, as a lost
 * overwrite leaves them) on real files; a zero tail is clean and appends go on at the end of the
 * records; garbage after the records is a torn tail or damage by the rules; the spare segment made
 * ahead (wal_spare_*), recognized and deleted after a crash during its creation, late, or failing;
 * truncation keeps the file full size; one write and one fdatasync per batch still.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../support/tmpfiles.h"
#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/wal.h"

#define DIR   "/data"
#define SEG   4096
#define SPARE DIR "/" WAL_SPARE_NAME

static struct sm_faulty_fs disk;
static struct sm_fs fs;

static void disk_init(uint64_t seed)
{
    struct sm_faulty_config c = {.seed = seed, .sector_bytes = 512};
    sm_faulty_fs_init(&disk, &c);
    fs = sm_faulty_fs_iface(&disk);
}

static struct wal_config pre_config(const struct sm_fs *f, const char *dir)
{
    return (struct wal_config){
        .dir = dir,
        .fs = f,
        .segment_bytes = SEG,
        .batch_bytes = 2048,
        .payload_bytes_max = 200,
        .preallocate = true,
    };
}

static uint32_t payload_of(uint64_t i, uint8_t *out)
{
    uint32_t len = (uint32_t)(i * 7 % 64) + 1;
    for (uint32_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i * 31 + j);
    return len;
}

static void append_synced(struct wal *w, uint64_t n)
{
    uint8_t p[256];
    uint64_t acked;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = wal_index_next(w);
        struct wal_record r = {.type = 1, .epoch = 1, .index = i, .timestamp_us = i, .payload = p};
        r.len = payload_of(i, p);
        int rc = wal_append(w, &r);
        if (rc == SM_E_BUSY) {
            cr_assert_eq(wal_sync(w, &acked), 0);
            rc = wal_append(w, &r);
        }
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(wal_sync(w, &acked), 0);
    cr_assert_eq(acked, wal_index_next(w) - 1);
}

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
    cr_assert_eq(i, to + 1, "iterated to %lu, want %lu", (unsigned long)i - 1, (unsigned long)to);
    wal_iter_free(&it);
}

/* The end of the records of a segment image: walks the record lengths from the header. */
static size_t records_end(const uint8_t *data, size_t len, size_t *bounds, uint32_t *nb)
{
    size_t off = WAL_SEGMENT_HEADER_BYTES;
    *nb = 0;
    while (off + WAL_RECORD_HEADER_BYTES <= len && data[off + 32] != 0) {
        bounds[(*nb)++] = off;
        off += WAL_RECORD_HEADER_BYTES + (data[off] | (uint32_t)data[off + 1] << 8);
    }
    bounds[*nb] = off;
    return off;
}

/* ---- real files ---------------------------------------------------------------------------- */

static char tmpdir[256];

static void make_tmpdir(void)
{
    test_tmpdir_make(tmpdir, sizeof tmpdir, "smwal-pre");
}

static void remove_tmpdir(void)
{
    test_tmpdir_remove(tmpdir);
}

Test(prealloc, tear_every_byte_of_the_last_records)
{
    make_tmpdir();
    struct wal_config c = pre_config(NULL, tmpdir);
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
    cr_assert_eq(len, SEG, "full size on disk");
    size_t bounds[256];
    uint32_t nb;
    size_t end = records_end(orig, len, bounds, &nb);
    cr_assert_gt(nb, 4);
    uint8_t *img = malloc(len);
    /* Keep [0, cut), zeros after: the overwrite of the records from `cut` on was lost. */
    for (size_t cut = bounds[nb - 4]; cut <= end; cut++) {
        memcpy(img, orig, cut);
        memset(img + cut, 0, len - cut);
        test_file_write(path, img, len);
        cr_assert_eq(wal_open(&w, &c, &rep), 0, "cut %zu", cut);
        uint32_t whole = 0;
        while (whole < nb && bounds[whole + 1] <= cut)
            whole++;
        cr_assert_eq(rep.index_last, prev_last + whole, "cut %zu", cut);
        bool boundary = bounds[whole] == cut;
        cr_assert_eq(rep.torn, !boundary, "cut %zu torn %d", cut, rep.torn);
        if (rep.torn) {
            size_t nz = cut; /* the torn bytes end at the last non-zero byte */
            while (orig[nz - 1] == 0)
                nz--;
            cr_assert_str_eq(rep.torn_path, path);
            cr_assert_eq(rep.torn_offset, bounds[whole], "cut %zu", cut);
            cr_assert_eq(rep.torn_bytes, nz - bounds[whole], "cut %zu", cut);
        }
        check_range(&w, 1, prev_last + whole);
        wal_close(&w);
        size_t after;
        uint8_t *now = test_file_read(path, &after);
        cr_assert_eq(after, SEG, "zeroed, not truncated");
        for (size_t k = bounds[whole]; k < after; k++)
            cr_assert_eq(now[k], 0, "cut %zu: byte %zu", cut, k);
        free(now);
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert(!rep.torn && !rep.corrupt, "cut %zu: second recovery not clean", cut);
        cr_assert_eq(rep.index_last, prev_last + whole);
        wal_close(&w);
    }
    free(img);
    free(orig);
    remove_tmpdir();
}

Test(prealloc, zero_tail_is_clean_and_appends_go_on_at_the_end_of_the_records)
{
    make_tmpdir();
    struct wal_config c = pre_config(NULL, tmpdir);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 5);
    wal_close(&w);
    for (int round = 0; round < 3; round++) {
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert(!rep.torn && !rep.corrupt);
        cr_assert_eq(rep.index_last, 5 + 5 * (uint64_t)round);
        cr_assert(w.tail_preallocated);
        append_synced(&w, 5);
        check_range(&w, 1, 10 + 5 * (uint64_t)round);
        wal_close(&w);
    }
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, tmpdir, 1);
    size_t len;
    uint8_t *data = test_file_read(path, &len);
    size_t bounds[256];
    uint32_t nb;
    size_t end = records_end(data, len, bounds, &nb);
    cr_assert_eq(len, SEG);
    cr_assert_eq(nb, 20, "the records back to back, no hole");
    cr_assert(wal_all_zero(data + end, len - end));
    free(data);
    /* verify (read-only) says the same. */
    c.read_only = true;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt && rep.index_last == 20);
    check_range(&w, 1, 20);
    wal_close(&w);
    remove_tmpdir();
}

/* ---- the in-memory disk -------------------------------------------------------------------- */

/* A log of n records in preallocated segments; returns the last segment's first index. */
static uint64_t build(uint64_t n)
{
    struct wal_config c = pre_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, n);
    uint64_t first = w.segments[w.segments_count - 1].index_first;
    wal_close(&w);
    return first;
}

/* Replaces [at, at + n) of a file with bytes, durably. */
static void poke(const char *path, size_t at, const uint8_t *bytes, size_t n)
{
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert_leq(at + n, len);
    uint8_t *copy = malloc(len);
    memcpy(copy, data, len);
    memcpy(copy + at, bytes, n);
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, copy, len), 0);
    free(copy);
}

static size_t end_of(const char *path, size_t *bounds, uint32_t *nb)
{
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert_eq(len, SEG);
    return records_end(data, len, bounds, nb);
}

Test(prealloc, garbage_after_the_records_is_a_torn_tail_or_damage)
{
    disk_init(3);
    uint64_t first = build(100);
    uint64_t first_seg = 1;
    char path[WAL_PATH_BYTES], path0[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, first);
    wal_segment_name(path0, sizeof path0, DIR, first_seg);
    size_t bounds[256];
    uint32_t nb;
    size_t end = end_of(path, bounds, &nb);
    struct wal_config c = pre_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;

    /* Garbage with no valid record in it, after the last record of the last segment: torn. */
    const uint8_t junk[5] = {0x11, 0x22, 0, 0x33, 0x44};
    poke(path, end + 100, junk, sizeof junk);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.torn);
    cr_assert_eq(rep.torn_offset, end);
    cr_assert_eq(rep.torn_bytes, 100 + sizeof junk);
    cr_assert_eq(rep.index_last, first + nb - 1);
    wal_close(&w);
    cr_assert_eq(end_of(path, bounds, &nb), end, "the garbage was zeroed");
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert(wal_all_zero(data + end, len - end));

    /* A valid record after a hole: damage, refused with the offset of the hole. */
    uint8_t rec[WAL_RECORD_HEADER_BYTES + 64];
    memcpy(rec, data + bounds[nb - 1], bounds[nb] - bounds[nb - 1]);
    size_t rec_len = bounds[nb] - bounds[nb - 1];
    poke(path, end + 200, rec, rec_len);
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_str_eq(rep.corrupt_path, path);
    cr_assert_eq(rep.corrupt_offset, end);
    uint8_t zeros[WAL_RECORD_HEADER_BYTES + 64] = {0};
    poke(path, end + 200, zeros, rec_len);

    /* Garbage after the records of a segment that is not the last: damage. */
    size_t end0 = end_of(path0, bounds, &nb);
    poke(path0, SEG - 1, junk, 1);
    cr_assert_eq(wal_open(&w, &c, &rep), SM_E_CORRUPT);
    cr_assert_str_eq(rep.corrupt_path, path0);
    cr_assert_eq(rep.corrupt_offset, end0);
    poke(path0, SEG - 1, zeros, 1);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt);
    check_range(&w, 1, 100);
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}

Test(prealloc, spare_segment_is_deleted_after_a_crash_during_its_creation)
{
    uint32_t seen = 0;
    for (uint64_t seed = 1; seed <= 40; seed++) {
        disk_init(seed);
        build(40); /* the segment more than half full */
        struct wal_config c = pre_config(&fs, DIR);
        struct wal w;
        struct wal_recovery rep;
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert(wal_spare_wanted(&w));
        struct wal_spare_job job;
        wal_spare_begin(&w, &job);
        cr_assert(!wal_spare_wanted(&w), "one job at a time");
        /* The worker crashed half way: name created, some zeros written, nothing synced. */
        int fd;
        cr_assert_eq(fs.open(fs.ctx, job.path, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &fd), 0);
        if (seed % 2)
            cr_assert_eq(fs.fsync_dir(fs.ctx, DIR), 0);
        cr_assert_eq(wal_write_zeros(&fs, fd, 0, SEG / 2), 0);
        sm_faulty_fs_crash(&disk);
        wal_close(&w);
        const uint8_t *data;
        size_t len;
        bool there = sm_faulty_fs_get_file(&disk, SPARE, &data, &len) == 0;
        seen += there;
        c.read_only = true; /* verify leaves it */
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert_eq(rep.spare_removed, 0);
        wal_close(&w);
        c.read_only = false;
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert_eq(rep.spare_removed, there ? 1u : 0u);
        cr_assert(!rep.torn && !rep.corrupt && rep.index_last == 40);
        cr_assert_eq(sm_faulty_fs_get_file(&disk, SPARE, &data, &len), -ENOENT);
        append_synced(&w, 100); /* rolls over: makes and uses spares again */
        check_range(&w, 1, 140);
        wal_close(&w);
        sm_faulty_fs_free(&disk);
    }
    cr_assert_gt(seen, 5, "the crash left the spare's name %u times", seen);
}

Test(prealloc, spare_made_ahead_is_taken_at_the_boundary)
{
    disk_init(5);
    struct wal_config c = pre_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 1); /* the first segment: no job out, so made inline */
    cr_assert(w.tail_preallocated);
    cr_assert(!wal_spare_wanted(&w), "the segment is not half full");
    while (!wal_spare_wanted(&w))
        append_synced(&w, 1);
    struct wal_spare_job job;
    wal_spare_begin(&w, &job);
    cr_assert_eq(wal_spare_run(&job), 0);
    const uint8_t *data;
    size_t len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, SPARE, &data, &len), 0);
    cr_assert(len == SEG && wal_all_zero(data, len));
    wal_spare_done(&w, &job, 0);
    cr_assert(!wal_spare_wanted(&w), "one is ready");
    uint32_t segs = w.segments_count;
    uint64_t syncs = disk.syncs;
    while (w.segments_count == segs) {
        syncs = disk.syncs;
        append_synced(&w, 1);
    }
    /* Taken, no zeros written: the header's sync and the batch's. */
    cr_assert_eq(disk.syncs - syncs, 2);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, SPARE, &data, &len), -ENOENT, "renamed");
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, w.segments[segs].index_first);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert_eq(len, SEG);
    cr_assert(w.tail_preallocated);

    /* Late: the job is out when the boundary comes: a plain growing segment, no waiting. */
    while (!wal_spare_wanted(&w))
        append_synced(&w, 1);
    wal_spare_begin(&w, &job);
    segs = w.segments_count;
    while (w.segments_count == segs)
        append_synced(&w, 1);
    cr_assert(!w.tail_preallocated);
    wal_segment_name(path, sizeof path, DIR, w.segments[segs].index_first);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
    cr_assert_lt(len, SEG);
    /* The worker finishes later; its spare serves the boundary after. */
    cr_assert_eq(wal_spare_run(&job), 0);
    wal_spare_done(&w, &job, 0);
    segs = w.segments_count;
    while (w.segments_count == segs)
        append_synced(&w, 1);
    cr_assert(w.tail_preallocated);

    /* A failing worker does not poison the log; the next boundary makes the segment inline. */
    while (!wal_spare_wanted(&w))
        append_synced(&w, 1);
    wal_spare_begin(&w, &job);
    sm_faulty_fs_fail(&disk, SM_FAULTY_WRITE, -ENOSPC, 0, 1);
    int rc = wal_spare_run(&job);
    cr_assert_eq(rc, -ENOSPC);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, SPARE, &data, &len), -ENOENT, "removed");
    wal_spare_done(&w, &job, rc);
    cr_assert(wal_spare_wanted(&w));
    uint64_t last = wal_index_next(&w) - 1;
    segs = w.segments_count;
    while (w.segments_count == segs)
        append_synced(&w, 1);
    cr_assert(w.tail_preallocated);
    uint64_t n = wal_index_next(&w) - 1;
    cr_assert_gt(n, last);
    check_range(&w, 1, n);
    /* A spare left at close is deleted by the next open. */
    while (!wal_spare_wanted(&w))
        append_synced(&w, 1);
    wal_spare_begin(&w, &job);
    cr_assert_eq(wal_spare_run(&job), 0);
    wal_spare_done(&w, &job, 0);
    n = wal_index_next(&w) - 1;
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(rep.spare_removed, 1);
    cr_assert(!rep.torn && !rep.corrupt && rep.index_last == n);
    wal_close(&w);
    /* Without preallocation nothing is wanted. */
    c.preallocate = false;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!wal_spare_wanted(&w));
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}

Test(prealloc, truncation_keeps_the_segment_full_size_and_zeroed)
{
    disk_init(9);
    struct wal_config c = pre_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 120);
    uint32_t segs = w.segments_count;
    cr_assert_gt(segs, 2);
    for (uint64_t cut = 119; cut >= 60; cut -= 7) {
        cr_assert_eq(wal_truncate_after(&w, cut), 0);
        const struct wal_segment *s = &w.segments[w.segments_count - 1];
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, DIR, s->index_first);
        const uint8_t *data;
        size_t len;
        cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &data, &len), 0);
        cr_assert_eq(len, SEG, "cut %lu", (unsigned long)cut);
        cr_assert(wal_all_zero(data + s->size_bytes, len - s->size_bytes));
        cr_assert(w.tail_preallocated);
        append_synced(&w, 3);
        check_range(&w, 1, cut + 3);
        cr_assert_eq(wal_truncate_after(&w, cut), 0);
    }
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.torn && !rep.corrupt);
    check_range(&w, 1, rep.index_last);
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}

Test(prealloc, group_commit_is_still_one_write_and_one_fdatasync_per_batch)
{
    disk_init(11);
    struct wal_config c = pre_config(&fs, DIR);
    c.segment_bytes = 1 << 20;
    c.batch_bytes = 64 * 1024;
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 1); /* makes the segment */
    for (uint32_t batch = 1; batch <= 256; batch *= 4) {
        uint64_t syncs = disk.syncs, writes = disk.writes;
        append_synced(&w, batch);
        cr_assert_eq(disk.syncs - syncs, 1, "batch %u", batch);
        cr_assert_eq(disk.writes - writes, 1, "batch %u", batch);
    }
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}

Test(prealloc, iterator_reads_segments_a_snapshot_covers_up_to_their_zero_tail)
{
    /* Segments wholly covered by the snapshot are not scanned at open: the iterator learns
     * where their records end from the next segment's first index, not from the file size. */
    disk_init(13);
    build(200);
    struct wal_config c = pre_config(&fs, DIR);
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_gt(w.segments_count, 3);
    struct wal_snapshot_writer sw;
    cr_assert_eq(wal_snapshot_begin(&w, &sw, 150, 1), 0);
    cr_assert_eq(wal_snapshot_write(&sw, "state", 5), 0);
    cr_assert_eq(wal_snapshot_finish(&sw), 0);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.snapshot_found && rep.snapshot_index == 150);
    cr_assert_eq(w.segments[0].size_bytes, 0, "not scanned");
    check_range(&w, 1, 200);
    check_range(&w, 40, 200);
    wal_close(&w);
    sm_faulty_fs_free(&disk);
}
