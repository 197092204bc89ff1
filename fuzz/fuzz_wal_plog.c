/*
 * libFuzzer target: the input is a segment file of the partition log. It is placed, as the only
 * file, in a log directory on the in-memory disk and recovered with plog_open. Recovery must
 * never crash or read out of bounds, must either succeed or refuse with SM_E_CORRUPT (the wal's
 * checks, a record that breaks a partition's sequence, or a snapshot marker without its file),
 * and its result must be a fixed point: recovering again is clean and gives the same state for
 * every partition. Then one entry is appended to a partition, synced, and must come back. Each
 * input runs with and without repair mode.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "util/assert.h"
#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/plog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DIR   "/fz"
#define PARTS 4

static struct plog_config fuzz_config(const struct sm_fs *fs, bool repair)
{
    return (struct plog_config){
        .dir = DIR,
        .fs = fs,
        .partitions = PARTS,
        .segment_bytes = 16 * 1024,
        .batch_bytes = 8 * 1024,
        .entry_bytes_max = 1024,
        .segments_max = 16,
        .repair = repair,
    };
}

/* A digest of what recovery gave every partition. */
struct digest {
    uint64_t last[PARTS], snap[PARTS];
    uint32_t count[PARTS];
};

static void take_digest(const struct plog *l, struct digest *d)
{
    for (uint32_t p = 0; p < PARTS; p++) {
        const struct plog_part *r = plog_recovered(l, p);
        ASSERT(r != NULL);
        d->last[p] = r->last_index;
        d->snap[p] = r->snap_index;
        d->count[p] = r->entries_count;
        for (uint32_t k = 0; k < r->entries_count; k++) /* entries follow each other */
            ASSERT(k == 0 || r->entries[k].index == r->entries[k - 1].index + 1);
        ASSERT(r->entries_count == 0 || r->entries[r->entries_count - 1].index == r->last_index);
    }
}

static void recover_and_check(struct sm_fs *fs, bool repair, size_t size)
{
    struct plog l;
    struct plog_recovery rep;
    struct plog_config c = fuzz_config(fs, repair);
    int rc = plog_open(&l, &c, &rep);
    ASSERT(rc == 0 || (rc == SM_E_CORRUPT && (rep.wal.corrupt || rep.corrupt)));
    if (rc != 0)
        return;
    struct digest a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    take_digest(&l, &a);
    plog_close(&l);
    c.repair = false;
    ASSERT(plog_open(&l, &c, &rep) == 0);
    ASSERT(!rep.wal.torn && !rep.wal.corrupt && !rep.corrupt);
    take_digest(&l, &b);
    ASSERT(memcmp(&a, &b, sizeof a) == 0);
    uint32_t p = (uint32_t)(size % PARTS);
    if (a.last[p] >= SM_PLOG_INDEX_MAX) {
        plog_close(&l);
        return;
    }
    struct plog_entry e = {
        .index = a.last[p] + 1, .epoch = 1, .kind = 1, .payload = (const uint8_t *)"x", .len = 1};
    ASSERT(plog_append(&l, p, &e) == 0);
    ASSERT(plog_sync(&l) == 0);
    plog_close(&l);
    ASSERT(plog_open(&l, &c, &rep) == 0);
    ASSERT(!rep.wal.torn && !rep.wal.corrupt && !rep.corrupt);
    const struct plog_part *r = plog_recovered(&l, p);
    ASSERT(r->last_index == a.last[p] + 1 && r->entries_count >= 1);
    ASSERT(r->entries[r->entries_count - 1].len == 1 &&
           r->entries[r->entries_count - 1].payload[0] == 'x');
    plog_close(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int repair = 0; repair < 2; repair++) {
        struct sm_faulty_fs disk;
        struct sm_faulty_config fc = {.seed = 1, .sector_bytes = 512};
        sm_faulty_fs_init(&disk, &fc);
        struct sm_fs fs = sm_faulty_fs_iface(&disk);
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, DIR, 1);
        ASSERT(sm_faulty_fs_put_file(&disk, path, data, size) == 0);
        recover_and_check(&fs, repair != 0, size);
        sm_faulty_fs_free(&disk);
    }
    return 0;
}
