/*
 * Snapshots: round trip, chunked writing, atomicity under crashes at every step, fallback from a
 * corrupt newest snapshot, retention of the newest N, segments deleted only once the oldest kept
 * snapshot covers them, temp-file cleanup, and the snapshot size limit.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/wal.h"

#define DIR "/data"

static struct sm_faulty_fs disk;
static struct sm_fs fs;

static void disk_init(uint64_t seed)
{
    struct sm_faulty_config c = {.seed = seed, .sector_bytes = 512};
    sm_faulty_fs_init(&disk, &c);
    fs = sm_faulty_fs_iface(&disk);
}

static void setup(void)
{
    disk_init(5);
}

static void teardown(void)
{
    sm_faulty_fs_free(&disk);
}

static struct wal_config small_config(void)
{
    return (struct wal_config){
        .dir = DIR,
        .fs = &fs,
        .segment_bytes = 4096,
        .batch_bytes = 2048,
        .payload_bytes_max = 200,
        .snapshot_bytes_max = 1 << 20,
    };
}

static void append_synced(struct wal *w, uint64_t n)
{
    uint8_t p[64];
    uint64_t acked;
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = wal_index_next(w);
        memset(p, (int)(i & 0xff), sizeof p);
        struct wal_record r = {.type = 1, .epoch = 1, .index = i, .payload = p, .len = 60};
        int rc = wal_append(w, &r);
        if (rc == SM_E_BUSY) {
            cr_assert_eq(wal_sync(w, &acked), 0);
            rc = wal_append(w, &r);
        }
        cr_assert_eq(rc, 0);
    }
    cr_assert_eq(wal_sync(w, &acked), 0);
}

/* The state "as of index i": a payload the test can recognise, written in several chunks. */
static size_t state_of(uint64_t i, uint8_t *out)
{
    size_t len = 1000 + (size_t)(i % 500);
    for (size_t j = 0; j < len; j++)
        out[j] = (uint8_t)(i + j * 3);
    return len;
}

static int take_snapshot(struct wal *w, uint64_t index)
{
    uint8_t state[2000];
    size_t len = state_of(index, state);
    struct wal_snapshot_writer sw;
    int rc = wal_snapshot_begin(w, &sw, index, 3);
    if (rc < 0)
        return rc;
    for (size_t off = 0; off < len && rc == 0; off += 333)
        rc = wal_snapshot_write(&sw, state + off, len - off < 333 ? len - off : 333);
    if (rc == 0)
        rc = wal_snapshot_finish(&sw);
    if (rc < 0)
        wal_snapshot_abort(&sw);
    return rc;
}

static void expect_snapshot(struct wal *w, const struct wal_recovery *rep, uint64_t index)
{
    cr_assert(rep->snapshot_found);
    cr_assert_eq(rep->snapshot_index, index);
    cr_assert_eq(rep->snapshot_epoch, 3);
    uint8_t *data;
    uint64_t len;
    cr_assert_eq(wal_snapshot_load(w, rep, &data, &len), 0);
    uint8_t want[2000];
    size_t want_len = state_of(index, want);
    cr_assert_eq(len, want_len);
    cr_assert(memcmp(data, want, want_len) == 0);
    free(data);
    /* The faulty disk cannot map: the view is a heap copy with the same bytes. */
    struct wal_snapshot_view view;
    cr_assert_eq(wal_snapshot_view(w, rep, &view), 0);
    cr_assert(view.map == NULL && view.heap != NULL);
    cr_assert(view.len == want_len && memcmp(view.data, want, want_len) == 0);
    wal_snapshot_unview(w, &view);
    cr_assert(view.data == NULL && view.heap == NULL);
    /* Replay goes on from index + 1. */
    struct wal_iter it;
    cr_assert_eq(wal_iter_init(&it, w, index + 1), 0);
    struct wal_record r;
    uint64_t next = index + 1;
    while (wal_iter_next(&it, &r) == 1)
        cr_assert_eq(r.index, next++);
    cr_assert_eq(next, rep->index_last + 1);
    wal_iter_free(&it);
}

Test(snapshot, round_trip_and_replay_after_it)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.snapshot_found);
    uint8_t *data;
    uint64_t len;
    cr_assert_eq(wal_snapshot_load(&w, &rep, &data, &len), SM_E_NOTFOUND);
    append_synced(&w, 100);
    cr_assert_eq(take_snapshot(&w, 60), 0);
    cr_assert_eq(take_snapshot(&w, 101), SM_E_STATE, "beyond the log");
    struct wal_record r = {.type = 1, .index = 101, .payload = "u", .len = 1};
    cr_assert_eq(wal_append(&w, &r), 0);
    cr_assert_eq(wal_write(&w), 0);
    cr_assert_eq(take_snapshot(&w, 101), SM_E_STATE, "written but not yet acknowledged");
    append_synced(&w, 9);
    cr_assert_eq(take_snapshot(&w, 59), 0);
    cr_assert_eq(wal_compact(&w), 0);
    cr_assert_eq(take_snapshot(&w, 58), SM_E_STATE, "below the newest snapshot");
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(rep.index_first, 61);
    cr_assert_eq(rep.index_last, 110);
    expect_snapshot(&w, &rep, 60);

    wal_close(&w);
    teardown();
}

Test(snapshot, crash_at_every_step_leaves_the_previous_or_the_new_snapshot)
{
    setup();
    /* Steps of a snapshot's life, each a place to crash: begin, writes, finish (header write,
     * fsync, rename, directory fsync: failing each makes finish stop there). */
    for (int step = 0; step < 8; step++) {
        for (uint64_t seed = 1; seed <= 8; seed++) {
            sm_faulty_fs_free(&disk);
            disk_init(seed * 100 + (uint64_t)step);
            struct wal w;
            struct wal_recovery rep;
            struct wal_config c = small_config();
            cr_assert_eq(wal_open(&w, &c, &rep), 0);
            append_synced(&w, 50);
            cr_assert_eq(take_snapshot(&w, 20), 0);
            append_synced(&w, 20);
            uint8_t state[2000];
            size_t len = state_of(40, state);
            struct wal_snapshot_writer sw;
            bool finished = false;
            cr_assert_eq(wal_snapshot_begin(&w, &sw, 40, 3), 0);
            if (step >= 1)
                cr_assert_eq(wal_snapshot_write(&sw, state, len / 2), 0);
            if (step >= 2)
                cr_assert_eq(wal_snapshot_write(&sw, state + len / 2, len - len / 2), 0);
            if (step >= 3) {
                /* 3: header write fails; 4: fsync; 5: rename; 6: dir fsync; 7: none. */
                enum sm_faulty_op op[] = {SM_FAULTY_WRITE, SM_FAULTY_SYNC, SM_FAULTY_RENAME,
                                          SM_FAULTY_SYNC_DIR};
                if (step < 7)
                    sm_faulty_fs_fail(&disk, op[step - 3], -EIO, 0, 1);
                int rc = wal_snapshot_finish(&sw);
                finished = rc == 0;
                cr_assert_eq(finished, step == 7);
            }
            sm_faulty_fs_crash(&disk);
            wal_close(&w);
            cr_assert_eq(wal_open(&w, &c, &rep), 0, "step %d seed %lu", step, (unsigned long)seed);
            cr_assert_eq(rep.snapshots_corrupt, 0, "a half-written snapshot is never visible");
            cr_assert(rep.snapshot_index == 20 || rep.snapshot_index == 40);
            if (finished)
                cr_assert_eq(rep.snapshot_index, 40, "a finished snapshot is durable");
            expect_snapshot(&w, &rep, rep.snapshot_index);
            cr_assert_eq(rep.index_last, 70);
            wal_close(&w);
            /* The temp file is gone after recovery. */
            char tmp[WAL_PATH_BYTES + 8];
            wal_snapshot_name(tmp, sizeof tmp, DIR, 40);
            strcat(tmp, ".tmp");
            const uint8_t *d;
            size_t n;
            cr_assert_eq(sm_faulty_fs_get_file(&disk, tmp, &d, &n), -ENOENT);
        }
    }
    teardown();
}

Test(snapshot, corrupt_newest_falls_back_to_the_previous_and_says_so)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 200);
    cr_assert_eq(take_snapshot(&w, 50), 0);
    cr_assert_eq(wal_compact(&w), 0);
    cr_assert_eq(take_snapshot(&w, 150), 0);
    cr_assert_eq(wal_compact(&w), 0);
    wal_close(&w);
    char path[WAL_PATH_BYTES];
    wal_snapshot_name(path, sizeof path, DIR, 150);
    /* Damage the payload, then the header: both are caught. */
    for (uint64_t bit = 8 * 100; bit <= 8 * 100 + 1; bit++) {
        uint64_t b = bit == 8 * 100 ? bit : 8 * 20; /* payload byte 52, then header byte 20 */
        cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, b), 0);
        cr_assert_eq(wal_open(&w, &c, &rep), 0);
        cr_assert_eq(rep.snapshots_corrupt, 1);
        cr_assert_str_eq(rep.snapshot_corrupt_path, path);
        expect_snapshot(&w, &rep, 50);
        cr_assert_eq(rep.index_last, 200);
        wal_close(&w);
        cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, b), 0);
    }
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    expect_snapshot(&w, &rep, 150);
    wal_close(&w);
    teardown();
}

Test(snapshot, retention_and_segment_deletion_only_once_covered)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    c.snapshots_keep = 2;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 300);
    uint32_t segs = w.segments_count;
    cr_assert_gt(segs, 6);
    /* Nothing is deleted without a snapshot. */
    cr_assert_eq(wal_compact(&w), 0);
    cr_assert_eq(w.segments_count, segs);
    cr_assert_eq(take_snapshot(&w, 100), 0);
    cr_assert_eq(wal_compact(&w), 0);
    /* Every segment still needed after index 100 remains; those wholly <= 100 are gone. */
    cr_assert_leq(w.segments[0].index_first, 101);
    cr_assert_gt(w.segments[0].index_last, 100);
    uint32_t after_one = w.segments_count;
    cr_assert_lt(after_one, segs);
    cr_assert_eq(take_snapshot(&w, 250), 0);
    cr_assert_eq(wal_compact(&w), 0);
    /* Two kept (100 and 250): the fallback to 100 must still replay, so nothing more goes. */
    cr_assert_eq(w.segments_count, after_one);
    cr_assert_eq(take_snapshot(&w, 280), 0);
    cr_assert_eq(wal_compact(&w), 0);
    /* Now 250 is the oldest kept: snapshot 100 deleted, segments up to 250 deleted. */
    cr_assert_lt(w.segments_count, after_one);
    cr_assert_leq(w.segments[0].index_first, 251);
    cr_assert_gt(w.segments[0].index_last, 250);
    char path[WAL_PATH_BYTES];
    const uint8_t *d;
    size_t n;
    wal_snapshot_name(path, sizeof path, DIR, 100);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n), -ENOENT);
    wal_snapshot_name(path, sizeof path, DIR, 250);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n), 0);
    for (uint64_t first = 1; first < w.segments[0].index_first; first++) {
        wal_segment_name(path, sizeof path, DIR, first);
        cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n), -ENOENT);
    }
    /* Truncation below the newest snapshot is refused. */
    cr_assert_eq(wal_truncate_after(&w, 279), SM_E_STATE);
    wal_close(&w);
    /* Segments the newest snapshot covers are not read at open, but still iterate (wal dump). */
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(w.segments[0].size_bytes, 0, "not read at open");
    struct wal_iter it;
    uint64_t next = w.segments[0].index_first;
    cr_assert_eq(wal_iter_init(&it, &w, next), 0);
    struct wal_record r;
    while (wal_iter_next(&it, &r) == 1)
        cr_assert_eq(r.index, next++);
    cr_assert_eq(next, 301);
    wal_iter_free(&it);
    wal_close(&w);
    /* Recovery with the oldest kept snapshot corrupt still works off the newest, and with the
     * newest corrupt falls back to 250, whose records are all still there. */
    wal_snapshot_name(path, sizeof path, DIR, 280);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, 8 * 60), 0);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    expect_snapshot(&w, &rep, 250);
    wal_close(&w);
    teardown();
}

Test(snapshot, size_limit_and_log_behind_the_snapshot)
{
    setup();
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = small_config();
    c.snapshot_bytes_max = 1500;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 30);
    uint8_t buf[1600];
    memset(buf, 1, sizeof buf);
    struct wal_snapshot_writer sw;
    cr_assert_eq(wal_snapshot_begin(&w, &sw, 30, 3), 0);
    cr_assert_eq(wal_snapshot_write(&sw, buf, 1500), 0, "exactly the maximum");
    cr_assert_eq(wal_snapshot_write(&sw, buf, 1), SM_E_TOOLARGE);
    cr_assert_eq(wal_snapshot_finish(&sw), SM_E_TOOLARGE, "a failed writer cannot finish");
    wal_snapshot_abort(&sw);
    cr_assert_eq(take_snapshot(&w, 10), 0); /* 1010 bytes: fits */
    wal_close(&w);
    /* A snapshot whose header claims more than the maximum fails its checks. */
    c.snapshot_bytes_max = 1000;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(!rep.snapshot_found);
    cr_assert_eq(rep.snapshots_corrupt, 1);
    wal_close(&w);
    /* A snapshot newer than the whole log (the log's tail was lost): appends restart after it. */
    c.snapshot_bytes_max = 0;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(wal_truncate_after(&w, 5), SM_E_STATE);
    wal_close(&w);
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, DIR, 1);
    const uint8_t *d;
    size_t n;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n), 0);
    uint8_t *copy = malloc(n);
    memcpy(copy, d, n);
    /* Keep only the header and the first 3 records: the log now ends at 3, the snapshot at 10. */
    uint64_t off = WAL_SEGMENT_HEADER_BYTES + 3 * (WAL_RECORD_HEADER_BYTES + 60);
    cr_assert_eq(sm_faulty_fs_put_file(&disk, path, copy, off), 0);
    free(copy);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert_eq(rep.snapshot_index, 10);
    cr_assert_eq(rep.index_last, 10);
    cr_assert_eq(wal_index_next(&w), 11);
    append_synced(&w, 5);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    expect_snapshot(&w, &rep, 10);
    cr_assert_eq(rep.index_last, 15);
    wal_close(&w);
    teardown();
}

/* On the real file system the view maps the file (no copy) and still checks the payload's CRC
 * again: a byte changed after recovery picked the snapshot is refused, not loaded. */
Test(snapshot, view_maps_the_file_and_checks_it_again)
{
    char dir[] = "/tmp/shardmart-test-snapview.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct wal_config c = small_config();
    c.dir = dir;
    c.fs = sm_fs_posix();
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    append_synced(&w, 40);
    cr_assert_eq(take_snapshot(&w, 33), 0);
    wal_close(&w);
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    cr_assert(rep.snapshot_found && rep.snapshot_index == 33);
    uint8_t want[2000];
    size_t want_len = state_of(33, want);
    struct wal_snapshot_view view;
    cr_assert_eq(wal_snapshot_view(&w, &rep, &view), 0);
    cr_assert(view.map != NULL && view.heap == NULL, "the posix file system maps");
    cr_assert(view.len == want_len && memcmp(view.data, want, want_len) == 0);
    wal_snapshot_unview(&w, &view);
    /* Flip one payload byte on disk after the pick: the view refuses it and leaves nothing. */
    FILE *f = fopen(rep.snapshot_path, "r+b");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, WAL_SNAPSHOT_HEADER_BYTES + 100, SEEK_SET), 0);
    cr_assert_eq(fputc(want[100] ^ 0x40, f), want[100] ^ 0x40);
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(wal_snapshot_view(&w, &rep, &view), SM_E_CORRUPT);
    cr_assert(view.data == NULL && view.map == NULL && view.heap == NULL);
    /* A report without a snapshot has nothing to view. */
    struct wal_recovery none = rep;
    none.snapshot_found = false;
    cr_assert_eq(wal_snapshot_view(&w, &none, &view), SM_E_NOTFOUND);
    wal_close(&w);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
