/*
 * libFuzzer target: the input is a segment file. It is placed, as the only file, in a log
 * directory on the in-memory disk and recovered. Recovery must never crash or read out of
 * bounds, must either succeed or refuse with SM_E_CORRUPT, and its result must be a fixed
 * point: recovering the recovered log is clean (no torn tail, no corruption) and gives the same
 * records. Repair mode must always succeed, and its result must be clean too. Each input runs
 * with and without preallocated segments (a 16 KiB input is a full-size, preallocated file).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/assert.h"
#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/wal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR "/fz"

static struct wal_config fuzz_config(const struct sm_fs *fs, bool repair, bool prealloc)
{
    return (struct wal_config){
        .dir = DIR,
        .fs = fs,
        .segment_bytes = 16 * 1024,
        .batch_bytes = 8 * 1024,
        .payload_bytes_max = 1024,
        .segments_max = 16,
        .repair = repair,
        .preallocate = prealloc,
    };
}

/* Reads every record back; they must be consecutive and end at index_last. */
static void replay_all(const struct wal *w, const struct wal_recovery *rep)
{
    struct wal_iter it;
    ASSERT(wal_iter_init(&it, w, rep->index_first) == 0);
    struct wal_record r;
    uint64_t next = rep->index_first;
    int rc;
    while ((rc = wal_iter_next(&it, &r)) == 1)
        ASSERT(r.index == next++);
    ASSERT(rc == 0);
    ASSERT(next == rep->index_last + 1);
    wal_iter_free(&it);
}

/* Opens, checks the result is a fixed point, appends one record, and checks it stays. */
static void recover_and_check(struct sm_fs *fs, bool repair, bool prealloc)
{
    struct wal w;
    struct wal_recovery rep;
    struct wal_config c = fuzz_config(fs, repair, prealloc);
    int rc = wal_open(&w, &c, &rep);
    ASSERT(rc == 0 || (rc == SM_E_CORRUPT && !repair && rep.corrupt));
    if (rc != 0)
        return;
    replay_all(&w, &rep);
    uint64_t last = rep.index_last;
    wal_close(&w);
    c.repair = false;
    ASSERT(wal_open(&w, &c, &rep) == 0);
    ASSERT(!rep.torn && !rep.corrupt);
    ASSERT(rep.index_last == last);
    struct wal_record r = {
        .type = 1, .epoch = 1, .index = wal_index_next(&w), .payload = "x", .len = 1};
    uint64_t acked;
    ASSERT(wal_append(&w, &r) == 0);
    ASSERT(wal_sync(&w, &acked) == 0 && acked == last + 1);
    wal_close(&w);
    ASSERT(wal_open(&w, &c, &rep) == 0);
    ASSERT(!rep.torn && !rep.corrupt && rep.index_last == last + 1);
    replay_all(&w, &rep);
    wal_close(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int mode = 0; mode < 4; mode++) {
        bool repair = mode & 1, prealloc = mode & 2;
        struct sm_faulty_fs disk;
        struct sm_faulty_config fc = {.seed = 1, .sector_bytes = 512};
        sm_faulty_fs_init(&disk, &fc);
        struct sm_fs fs = sm_faulty_fs_iface(&disk);
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, DIR, 1);
        ASSERT(sm_faulty_fs_put_file(&disk, path, data, size) == 0);
        recover_and_check(&fs, repair, prealloc);
        sm_faulty_fs_free(&disk);
    }
    return 0;
}
