/*
 * The partition log: appends, truncations and snapshots of many partitions in one log, checked
 * against a simple in-memory model. Random operation streams with crashes on the page-cache
 * model (fs_faulty: unsynced writes lost or torn) must recover, for every partition, exactly the
 * model's durable state plus a prefix of what followed; the log cut at every byte offset of its
 * last records; flipped bits in segments and snapshot files are refused; compaction never loses
 * a record a partition still needs; the API refuses records that do not follow.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/fs_faulty.h"
#include "wal/plog.h"
#include "wal/plog_internal.h"

#define DIR   "/data"
#define PARTS 8
#define SPAN  512 /* entries a model partition holds after its snapshot */

static struct sm_faulty_fs disk;
static struct sm_fs fs;

static void disk_init(uint64_t seed)
{
    struct sm_faulty_config c = {.seed = seed, .sector_bytes = 1};
    sm_faulty_fs_init(&disk, &c);
    fs = sm_faulty_fs_iface(&disk);
}

static struct plog_config small_config(uint32_t partitions, bool prealloc)
{
    return (struct plog_config){
        .dir = DIR,
        .fs = &fs,
        .partitions = partitions,
        .segment_bytes = 8192,
        .batch_bytes = 4096,
        .entry_bytes_max = 256,
        .preallocate = prealloc,
    };
}

/* ---- deterministic contents ---------------------------------------------------------------- */

static uint32_t entry_payload(uint32_t p, uint64_t index, uint64_t epoch, uint8_t *out)
{
    uint32_t len = (uint32_t)((p * 7 + index * 13 + epoch) % 41);
    for (uint32_t j = 0; j < len; j++)
        out[j] = (uint8_t)(p + index * 31 + epoch * 7 + j);
    return len;
}

static int64_t entry_time(uint64_t index, uint64_t epoch)
{
    return (int64_t)(index * 10 + epoch) - 5; /* negative for the first: times are signed */
}

static uint8_t entry_kind(uint64_t index)
{
    return (uint8_t)(1 + index % 3);
}

static uint32_t snap_bytes(uint32_t p, uint64_t index, uint64_t epoch, uint8_t *out)
{
    uint32_t len = 1 + (uint32_t)((p * 5 + index) % 300);
    for (uint32_t j = 0; j < len; j++)
        out[j] = (uint8_t)(p * 3 + index * 11 + epoch + j * 5);
    return len;
}

/* ---- the model ----------------------------------------------------------------------------- */

/* One partition: a snapshot (0: none) and the epochs of entries snap_index+1 .. last. */
struct mpart {
    uint64_t snap_index, snap_epoch;
    uint64_t last;
    uint64_t epoch; /* the epoch new entries take (not part of the durable state) */
    uint64_t epochs[SPAN];
};

struct model {
    struct mpart p[PARTS];
};

enum op_type { OP_APPEND, OP_TRUNCATE, OP_SNAPSHOT };

struct op {
    enum op_type type;
    uint32_t partition;
    uint64_t index, epoch;
};

static void model_apply(struct model *m, const struct op *o)
{
    struct mpart *mp = &m->p[o->partition];
    switch (o->type) {
    case OP_APPEND:
        cr_assert(o->index == mp->last + 1 && o->index - mp->snap_index <= SPAN);
        mp->epochs[o->index - mp->snap_index - 1] = o->epoch;
        mp->last = o->index;
        break;
    case OP_TRUNCATE:
        if (o->index < mp->last)
            mp->last = o->index;
        break;
    case OP_SNAPSHOT: {
        uint64_t drop = o->index - mp->snap_index;
        if (o->index >= mp->last)
            mp->last = o->index;
        else
            memmove(mp->epochs, mp->epochs + drop, (mp->last - o->index) * sizeof mp->epochs[0]);
        mp->snap_index = o->index;
        mp->snap_epoch = o->epoch;
        break;
    }
    }
}

/* Does the recovered part equal the model's partition? */
static bool part_equal(const struct plog *l, uint32_t p, const struct mpart *mp)
{
    const struct plog_part *r = plog_recovered(l, p);
    if (!r || r->snap_index != mp->snap_index || r->last_index != mp->last)
        return false;
    if (mp->snap_index) {
        uint8_t b[512];
        uint32_t len = snap_bytes(p, mp->snap_index, mp->snap_epoch, b);
        if (r->snap_epoch != mp->snap_epoch || r->snap_len != len || memcmp(r->snap, b, len) != 0 ||
            r->snap_time_ms != entry_time(mp->snap_index, mp->snap_epoch))
            return false;
    } else if (r->snap != NULL) {
        return false;
    }
    if (r->entries_count != mp->last - mp->snap_index)
        return false;
    for (uint32_t k = 0; k < r->entries_count; k++) {
        const struct plog_entry *e = &r->entries[k];
        uint64_t index = mp->snap_index + 1 + k, epoch = mp->epochs[k];
        uint8_t b[64];
        uint32_t len = entry_payload(p, index, epoch, b);
        if (e->index != index || e->epoch != epoch || e->time_ms != entry_time(index, epoch) ||
            e->kind != entry_kind(index) || e->len != len ||
            (len && memcmp(e->payload, b, len) != 0))
            return false;
    }
    return true;
}

static bool all_equal(const struct plog *l, const struct model *m)
{
    for (uint32_t p = 0; p < PARTS; p++)
        if (!part_equal(l, p, &m->p[p]))
            return false;
    return true;
}

/* Recovered = durable + some prefix of the pending ops; *durable becomes that state. */
static void match_prefix(const struct plog *l, struct model *durable, const struct op *ops,
                         uint32_t n)
{
    struct model *m = malloc(sizeof *m);
    cr_assert(m != NULL);
    *m = *durable;
    for (uint32_t k = 0;; k++) {
        if (all_equal(l, m))
            break;
        cr_assert(k < n, "recovered state is not the durable state plus a prefix of %u ops", n);
        model_apply(m, &ops[k]);
    }
    for (uint32_t p = 0; p < PARTS; p++)
        m->p[p].epoch = durable->p[p].epoch > m->p[p].epoch ? durable->p[p].epoch : m->p[p].epoch;
    *durable = *m;
    free(m);
}

/* ---- driving the log the way the model does ------------------------------------------------ */

static int do_op(struct plog *l, const struct op *o)
{
    switch (o->type) {
    case OP_APPEND: {
        uint8_t b[64];
        struct plog_entry e = {.index = o->index,
                               .epoch = o->epoch,
                               .time_ms = entry_time(o->index, o->epoch),
                               .kind = entry_kind(o->index),
                               .payload = b};
        e.len = entry_payload(o->partition, o->index, o->epoch, b);
        return plog_append(l, o->partition, &e);
    }
    case OP_TRUNCATE:
        return plog_truncate(l, o->partition, o->index);
    case OP_SNAPSHOT: {
        uint8_t b[512];
        uint32_t len = snap_bytes(o->partition, o->index, o->epoch, b);
        return plog_snapshot(l, o->partition, b, len, o->index, o->epoch,
                             entry_time(o->index, o->epoch));
    }
    }
    return SM_E_BADARG;
}

/* A random next op for the current model state. */
static struct op random_op(struct model *cur)
{
    uint32_t p = (uint32_t)(sm_faulty_fs_random(&disk) % PARTS);
    struct mpart *mp = &cur->p[p];
    uint64_t dice = sm_faulty_fs_random(&disk) % 100;
    struct op o = {.partition = p};
    if (mp->last - mp->snap_index >= SPAN - 1 || (dice < 6 && mp->last > 0)) {
        o.type = OP_SNAPSHOT;
        uint64_t lo = mp->snap_index ? mp->snap_index : 1;
        o.index = lo + sm_faulty_fs_random(&disk) % (mp->last + 6 - lo); /* beyond last: install */
        o.epoch = mp->epoch;
    } else if (dice < 14 && mp->last > mp->snap_index) {
        o.type = OP_TRUNCATE;
        o.index = mp->snap_index + sm_faulty_fs_random(&disk) % (mp->last - mp->snap_index);
        mp->epoch++; /* a new primary's entries follow a truncation */
    } else {
        o.type = OP_APPEND;
        o.index = mp->last + 1;
        o.epoch = mp->epoch;
    }
    return o;
}

static void open_ok(struct plog *l, const struct plog_config *c, struct plog_recovery *rep)
{
    int rc = plog_open(l, c, rep);
    cr_assert_eq(rc, 0, "plog_open: %d (%s at %s offset %lu / position %lu: %s)", rc,
                 rep->wal.corrupt_reason, rep->wal.corrupt_path,
                 (unsigned long)rep->wal.corrupt_offset, (unsigned long)rep->corrupt_position,
                 rep->corrupt_reason);
}

#define OPS_MAX 4096

/* Random streams with crashes: after each crash, recovered == durable + prefix of pending. */
static uint32_t random_run(uint64_t seed, bool prealloc)
{
    disk_init(seed);
    struct plog_config c = small_config(PARTS, prealloc);
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    plog_recovered_free(&l);
    struct model *cur = calloc(1, sizeof *cur), *durable = calloc(1, sizeof *durable);
    struct op *pending = malloc(OPS_MAX * sizeof *pending);
    cr_assert(cur && durable && pending);
    for (uint32_t p = 0; p < PARTS; p++)
        cur->p[p].epoch = durable->p[p].epoch = 1;
    uint32_t npending = 0, compacted = 0, crashes = 0;
    for (int round = 0; round < 60; round++) {
        uint32_t ops = 1 + (uint32_t)(sm_faulty_fs_random(&disk) % 80);
        for (uint32_t k = 0; k < ops && npending < OPS_MAX; k++) {
            struct op o = random_op(cur);
            int rc = do_op(&l, &o);
            if (rc == SM_E_BUSY) {
                cr_assert_eq(plog_sync(&l), 0);
                *durable = *cur;
                npending = 0;
                rc = do_op(&l, &o);
            }
            cr_assert_eq(rc, 0, "op %d on partition %u index %lu: %d", o.type, o.partition,
                         (unsigned long)o.index, rc);
            model_apply(cur, &o);
            pending[npending++] = o;
        }
        uint64_t dice = sm_faulty_fs_random(&disk) % 10;
        if (dice < 5) {
            cr_assert_eq(plog_sync(&l), 0);
            *durable = *cur;
            npending = 0;
            if (sm_faulty_fs_random(&disk) % 2) {
                uint32_t deleted;
                cr_assert_eq(plog_compact(&l, &deleted), 0);
                compacted += deleted;
            }
            continue;
        }
        if (dice < 7)
            continue; /* more ops before the next sync */
        if (dice < 8) {
            /* A batch handed to the fsync thread and written; the crash comes before its sync. */
            struct wal_flush f;
            cr_assert_eq(plog_flush_begin(&l, true, &f), 0);
            if (f.bytes)
                cr_assert_eq(fs.pwritev(fs.ctx, f.fd, f.iov, f.iovcnt, f.offset), 0);
        }
        plog_close(&l);
        sm_faulty_fs_crash(&disk);
        crashes++;
        open_ok(&l, &c, &rep);
        match_prefix(&l, durable, pending, npending);
        plog_recovered_free(&l);
        *cur = *durable;
        npending = 0;
    }
    /* A clean close loses nothing synced. */
    cr_assert_eq(plog_sync(&l), 0);
    plog_close(&l);
    open_ok(&l, &c, &rep);
    cr_assert(!rep.wal.torn);
    cr_assert(all_equal(&l, cur), "state after a clean reopen");
    plog_close(&l);
    cr_assert(crashes > 0);
    free(cur);
    free(durable);
    free(pending);
    sm_faulty_fs_free(&disk);
    return compacted;
}

Test(plog, random_crashes_match_the_model)
{
    uint32_t compacted = 0;
    for (uint64_t seed = 1; seed <= 12; seed++)
        compacted += random_run(seed, false);
    cr_assert(compacted > 0, "compaction deleted segments along the way");
}

Test(plog, random_crashes_match_the_model_preallocated)
{
    uint32_t compacted = 0;
    for (uint64_t seed = 101; seed <= 106; seed++)
        compacted += random_run(seed, true);
    cr_assert(compacted > 0, "compaction deleted segments along the way");
}

/* ---- basics -------------------------------------------------------------------------------- */

static void append_ok(struct plog *l, uint32_t p, uint64_t index, uint64_t epoch)
{
    struct op o = {.type = OP_APPEND, .partition = p, .index = index, .epoch = epoch};
    int rc = do_op(l, &o);
    cr_assert_eq(rc, 0, "append p%u i%lu: %d", p, (unsigned long)index, rc);
}

Test(plog, many_partitions_reopen_with_their_entries)
{
    disk_init(7);
    struct plog_config c = small_config(256, false);
    c.segment_bytes = 1 << 20;
    c.batch_bytes = 256 * 1024;
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    cr_assert_eq(rep.partitions_with_state, 0);
    plog_recovered_free(&l);
    for (uint64_t i = 1; i <= 3; i++)
        for (uint32_t p = 0; p < 256; p++)
            append_ok(&l, p, i, 1);
    uint64_t syncs = disk.syncs;
    cr_assert_eq(plog_sync(&l), 0);
    /* The first batch also creates the segment (header sync, directory sync). */
    for (uint32_t p = 0; p < 256; p++)
        append_ok(&l, p, 4, 2);
    syncs = disk.syncs;
    cr_assert_eq(plog_sync(&l), 0);
    cr_assert_eq(disk.syncs - syncs, 1, "one fdatasync for a batch of 256 partitions");
    plog_close(&l);
    open_ok(&l, &c, &rep);
    cr_assert_eq(rep.partitions_with_state, 256);
    cr_assert_eq(rep.entries, 4 * 256);
    cr_assert_eq(rep.records, 4 * 256);
    for (uint32_t p = 0; p < 256; p++) {
        const struct plog_part *r = plog_recovered(&l, p);
        cr_assert_eq(r->entries_count, 4);
        cr_assert_eq(r->last_index, 4);
        cr_assert_eq(r->entries[3].epoch, 2);
        uint8_t b[64];
        uint32_t len = entry_payload(p, 4, 2, b);
        cr_assert(r->entries[3].len == len &&
                  (len == 0 || memcmp(r->entries[3].payload, b, len) == 0));
    }
    plog_recovered_free(&l);
    cr_assert_null(plog_recovered(&l, 0));
    append_ok(&l, 9, 5, 2); /* the next index after recovery */
    plog_close(&l);
    sm_faulty_fs_free(&disk);
}

Test(plog, refuses_what_does_not_follow)
{
    disk_init(8);
    struct plog_config c = small_config(4, false);
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    uint8_t b[300] = {0};
    struct plog_entry e = {.index = 2, .epoch = 1, .kind = 1, .payload = b, .len = 1};
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_BADARG, "a gap");
    e.index = 1;
    e.kind = 0;
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_BADARG, "kind 0");
    e.kind = 1;
    cr_assert_eq(plog_append(&l, 4, &e), SM_E_BADARG, "partition out of range");
    e.len = 257;
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_TOOLARGE, "payload above entry_bytes_max");
    e.len = 256;
    cr_assert_eq(plog_append(&l, 0, &e), 0, "payload at entry_bytes_max");
    for (uint64_t i = 2; i <= 10; i++)
        append_ok(&l, 0, i, 1);
    e.index = 10;
    e.len = 1;
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_BADARG, "a repeat");
    cr_assert_eq(plog_snapshot(&l, 0, b, 10, 6, 1, 0), 0);
    cr_assert_eq(plog_truncate(&l, 0, 5), SM_E_STATE, "below the snapshot");
    cr_assert_eq(plog_snapshot(&l, 0, b, 10, 5, 1, 0), SM_E_STATE, "an older snapshot");
    cr_assert_eq(plog_snapshot(&l, 0, b, 10, 0, 1, 0), SM_E_BADARG, "index 0");
    cr_assert_eq(plog_snapshot(&l, 0, b, 10, SM_PLOG_INDEX_MAX + 1, 1, 0), SM_E_BADARG,
                 "index above SM_PLOG_INDEX_MAX");
    cr_assert_eq(plog_truncate(&l, 0, 6), 0, "at the snapshot");
    e.index = 8;
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_BADARG, "past a truncation");
    e.index = 7;
    cr_assert_eq(plog_append(&l, 0, &e), 0);
    cr_assert_eq(plog_truncate(&l, 0, 9), 0, "past the end: nothing to do");
    cr_assert_eq(plog_snapshot(&l, 0, b, 10, 20, 2, 0), 0, "an installed snapshot past the end");
    e.index = 8;
    cr_assert_eq(plog_append(&l, 0, &e), SM_E_BADARG, "below the installed snapshot");
    e.index = 21;
    cr_assert_eq(plog_append(&l, 0, &e), 0);
    cr_assert_eq(plog_sync(&l), 0);
    plog_close(&l);
    open_ok(&l, &c, &rep);
    const struct plog_part *r = plog_recovered(&l, 0);
    cr_assert_eq(r->snap_index, 20);
    cr_assert_eq(r->snap_epoch, 2);
    cr_assert_eq(r->entries_count, 1);
    cr_assert_eq(r->entries[0].index, 21);
    cr_assert_eq(rep.snapshots_loaded, 1);
    cr_assert_eq(rep.snapshots_superseded, 1, "the snapshot at 6 is replaced");
    plog_close(&l);
    sm_faulty_fs_free(&disk);
}

Test(plog, bad_config)
{
    disk_init(9);
    struct plog l;
    struct plog_recovery rep;
    struct plog_config c = small_config(0, false);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_BADARG);
    c.partitions = SM_PLOG_PARTITIONS_MAX + 1;
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_BADARG);
    c.partitions = SM_PLOG_PARTITIONS_MAX;
    c.entry_bytes_max = SM_PLOG_ENTRY_BYTES_MAX + 1;
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_BADARG);
    c.entry_bytes_max = 0;
    c.snapshot_bytes_max = SM_PLOG_SNAPSHOT_BYTES_MAX + 1;
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_BADARG);
    c.snapshot_bytes_max = 0;
    c.dir = "";
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_BADARG);
    c.dir = DIR;
    cr_assert_eq(plog_open(&l, &c, &rep), 0, "the maximum partitions");
    uint8_t b[4] = {1, 2, 3, 4};
    cr_assert_eq(plog_snapshot(&l, SM_PLOG_PARTITIONS_MAX - 1, b, 4, 1, 1, 0), 0);
    cr_assert_eq(plog_sync(&l), 0);
    plog_close(&l);
    c.snapshot_bytes_max = 3;
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT, "a snapshot above the bound");
    cr_assert(rep.corrupt);
    c.snapshot_bytes_max = 4;
    cr_assert_eq(plog_open(&l, &c, &rep), 0);
    cr_assert_eq(plog_snapshot(&l, 0, b, 4, 1, 1, 0), 0);
    cr_assert_eq(plog_snapshot(&l, 0, b, 5, 1, 1, 0), SM_E_TOOLARGE);
    plog_close(&l);
    sm_faulty_fs_free(&disk);
}

/* ---- torn tails, damage, snapshots without a durable marker, compaction -------------------- */

/* Fills partitions 0..PARTS-1 with `rounds` entries each (epoch 1), synced; the model follows. */
static void fill(struct plog *l, struct model *m, uint64_t rounds)
{
    for (uint64_t i = 0; i < rounds; i++)
        for (uint32_t p = 0; p < PARTS; p++) {
            struct op o = {
                .type = OP_APPEND, .partition = p, .index = m->p[p].last + 1, .epoch = 1};
            cr_assert_eq(do_op(l, &o), 0);
            model_apply(m, &o);
        }
    cr_assert_eq(plog_sync(l), 0);
}

static void segment_path(char *out, uint64_t first)
{
    wal_segment_name(out, WAL_PATH_BYTES, DIR, first);
}

Test(plog, every_byte_offset_cut_of_the_last_records)
{
    disk_init(11);
    struct plog_config c = small_config(PARTS, false);
    c.segment_bytes = 64 * 1024;
    c.batch_bytes = 16 * 1024;
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    struct model *base = calloc(1, sizeof *base);
    cr_assert(base);
    fill(&l, base, 4);
    /* The last records: an append, a truncation, a snapshot marker, an append after it. */
    struct op tail[4] = {
        {.type = OP_APPEND, .partition = 1, .index = 5, .epoch = 1},
        {.type = OP_TRUNCATE, .partition = 2, .index = 2},
        {.type = OP_SNAPSHOT, .partition = 3, .index = 3, .epoch = 1},
        {.type = OP_APPEND, .partition = 2, .index = 3, .epoch = 2},
    };
    char path[WAL_PATH_BYTES];
    segment_path(path, 1);
    const uint8_t *d;
    size_t n_before, n_after;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n_before), 0);
    char snap[WAL_PATH_BYTES];
    for (int k = 0; k < 4; k++) {
        if (tail[k].type == OP_SNAPSHOT)
            plog_snapshot_name(snap, sizeof snap, DIR, 3, plog_position_next(&l));
        cr_assert_eq(do_op(&l, &tail[k]), 0);
    }
    cr_assert_eq(plog_sync(&l), 0);
    plog_close(&l);
    size_t snap_len;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, snap, &d, &snap_len), 0);
    uint8_t *snap_bytes_saved = malloc(snap_len);
    cr_assert(snap_bytes_saved);
    memcpy(snap_bytes_saved, d, snap_len);
    cr_assert_eq(sm_faulty_fs_get_file(&disk, path, &d, &n_after), 0);
    uint8_t *full = malloc(n_after);
    cr_assert(full);
    memcpy(full, d, n_after);
    uint32_t torn = 0;
    for (size_t cut = n_before; cut <= n_after; cut++) {
        cr_assert_eq(sm_faulty_fs_put_file(&disk, path, full, cut), 0);
        /* A cut before the marker makes recovery remove the file: put it back each time. */
        cr_assert_eq(sm_faulty_fs_put_file(&disk, snap, snap_bytes_saved, snap_len), 0);
        open_ok(&l, &c, &rep);
        torn += rep.wal.torn;
        struct model *m = malloc(sizeof *m);
        cr_assert(m);
        *m = *base;
        match_prefix(&l, m, tail, 4);
        if (cut == n_after)
            cr_assert(all_equal(&l, m) && !rep.wal.torn, "the whole log");
        free(m);
        plog_close(&l);
    }
    cr_assert(torn > 0);
    free(snap_bytes_saved);
    free(full);
    free(base);
    sm_faulty_fs_free(&disk);
}

Test(plog, flipped_bits_are_refused_with_file_and_offset)
{
    disk_init(12);
    struct plog_config c = small_config(PARTS, false);
    c.segment_bytes = 64 * 1024;
    c.batch_bytes = 16 * 1024;
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    struct model *m = calloc(1, sizeof *m);
    cr_assert(m);
    fill(&l, m, 3);
    struct op s = {.type = OP_SNAPSHOT, .partition = 0, .index = 2, .epoch = 1};
    char snap[WAL_PATH_BYTES];
    plog_snapshot_name(snap, sizeof snap, DIR, 0, plog_position_next(&l));
    cr_assert_eq(do_op(&l, &s), 0);
    fill(&l, m, 3);
    plog_close(&l);
    char path[WAL_PATH_BYTES];
    segment_path(path, 1);
    /* A bit in a record well before the tail: damage, refused with the file and offset. */
    uint64_t bit = (WAL_SEGMENT_HEADER_BYTES + 100) * 8 + 3;
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, bit), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT);
    cr_assert(rep.wal.corrupt);
    cr_assert_str_eq(rep.wal.corrupt_path, path);
    cr_assert(rep.wal.corrupt_offset <= WAL_SEGMENT_HEADER_BYTES + 100);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, path, bit), 0);
    open_ok(&l, &c, &rep);
    plog_close(&l);
    /* A bit in the snapshot file: its checksum fails; refused, naming the file. */
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, snap, (PLOG_SNAPSHOT_HEADER_BYTES + 1) * 8), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT);
    cr_assert(rep.corrupt && !rep.wal.corrupt);
    cr_assert_str_eq(rep.corrupt_path, snap);
    cr_assert_eq(rep.corrupt_partition, 0);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, snap, (PLOG_SNAPSHOT_HEADER_BYTES + 1) * 8), 0);
    /* In its header too. */
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, snap, 20 * 8), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT);
    cr_assert(rep.corrupt);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, snap, 20 * 8), 0);
    /* Missing: the marker is durable, so the file must be there. */
    cr_assert_eq(fs.unlink(fs.ctx, snap), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT);
    cr_assert(rep.corrupt);
    cr_assert_str_eq(rep.corrupt_path, snap);
    free(m);
    sm_faulty_fs_free(&disk);
}

Test(plog, a_snapshot_without_a_durable_marker_is_removed)
{
    disk_init(13);
    struct plog_config c = small_config(PARTS, false);
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    struct model *m = calloc(1, sizeof *m);
    cr_assert(m);
    fill(&l, m, 3);
    struct op s = {.type = OP_SNAPSHOT, .partition = 1, .index = 2, .epoch = 1};
    char snap[WAL_PATH_BYTES];
    plog_snapshot_name(snap, sizeof snap, DIR, 1, plog_position_next(&l));
    cr_assert_eq(do_op(&l, &s), 0); /* the file is durable, its marker only buffered */
    const uint8_t *d;
    size_t n;
    cr_assert_eq(sm_faulty_fs_get_file(&disk, snap, &d, &n), 0);
    plog_close(&l);
    sm_faulty_fs_crash(&disk);
    open_ok(&l, &c, &rep);
    cr_assert_eq(rep.snapshots_not_durable, 1);
    cr_assert_eq(rep.snapshots_loaded, 0);
    cr_assert(all_equal(&l, m), "the state before the snapshot");
    cr_assert_eq(sm_faulty_fs_get_file(&disk, snap, &d, &n), -ENOENT);
    /* The position is taken by the next record; a snapshot there is a new file. */
    cr_assert_eq(do_op(&l, &s), 0);
    model_apply(m, &s);
    cr_assert_eq(plog_sync(&l), 0);
    plog_close(&l);
    sm_faulty_fs_crash(&disk);
    open_ok(&l, &c, &rep);
    cr_assert_eq(rep.snapshots_loaded, 1);
    cr_assert(all_equal(&l, m));
    plog_close(&l);
    free(m);
    sm_faulty_fs_free(&disk);
}

static bool segment_exists(uint64_t first)
{
    char path[WAL_PATH_BYTES];
    segment_path(path, first);
    const uint8_t *d;
    size_t n;
    return sm_faulty_fs_get_file(&disk, path, &d, &n) == 0;
}

Test(plog, compaction_keeps_what_a_partition_still_needs)
{
    disk_init(14);
    struct plog_config c = small_config(PARTS, false);
    c.segment_bytes = 4096;
    c.batch_bytes = 2048;
    struct plog l;
    struct plog_recovery rep;
    open_ok(&l, &c, &rep);
    struct model *m = calloc(1, sizeof *m);
    cr_assert(m);
    for (uint32_t p = 0; p < PARTS; p++)
        m->p[p].epoch = 1;
    /* Partition 3 writes once, early, and never again: no snapshot covers it. */
    struct op o = {.type = OP_APPEND, .partition = 3, .index = 1, .epoch = 1};
    cr_assert_eq(do_op(&l, &o), 0);
    model_apply(m, &o);
    for (int round = 0; round < 40; round++)
        for (uint32_t p = 0; p < 3; p++) {
            o = (struct op){
                .type = OP_APPEND, .partition = p, .index = m->p[p].last + 1, .epoch = 1};
            if (do_op(&l, &o) == SM_E_BUSY)
                cr_assert_eq(plog_sync(&l), 0);
            else
                model_apply(m, &o);
        }
    for (uint32_t p = 0; p < 3; p++) {
        o = (struct op){.type = OP_SNAPSHOT, .partition = p, .index = m->p[p].last, .epoch = 1};
        cr_assert_eq(do_op(&l, &o), 0);
        model_apply(m, &o);
    }
    cr_assert(segment_exists(1));
    uint32_t deleted;
    cr_assert_eq(plog_compact(&l, &deleted), 0);
    cr_assert_eq(deleted, 0, "markers not durable yet: nothing goes");
    cr_assert_eq(plog_sync(&l), 0);
    cr_assert_eq(plog_compact(&l, &deleted), 0);
    cr_assert_eq(deleted, 0, "partition 3's entry pins the first segment");
    cr_assert(segment_exists(1));
    /* Now partition 3's snapshot covers it: everything but the last segment may go. */
    o = (struct op){.type = OP_SNAPSHOT, .partition = 3, .index = 1, .epoch = 1};
    cr_assert_eq(do_op(&l, &o), 0);
    model_apply(m, &o);
    cr_assert_eq(plog_sync(&l), 0);
    cr_assert_eq(plog_compact(&l, &deleted), 0);
    cr_assert(deleted > 0);
    cr_assert(!segment_exists(1));
    plog_close(&l);
    open_ok(&l, &c, &rep);
    cr_assert(rep.position_first > 1 || rep.records == 0);
    cr_assert(all_equal(&l, m), "every partition from its snapshot file");
    uint64_t first = l.wal.segments_count ? l.wal.segments[0].index_first : 0;
    cr_assert(first > 1);
    plog_close(&l);
    /* The recorded start says the log began earlier: a segment is missing there. */
    cr_assert_eq(plog_write_start(&fs, DIR, 1), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT);
    cr_assert(rep.wal.corrupt);
    cr_assert_eq(plog_write_start(&fs, DIR, first), 0);
    open_ok(&l, &c, &rep);
    plog_close(&l);
    char start[WAL_PATH_BYTES];
    snprintf(start, sizeof start, "%s/%s", DIR, PLOG_START_NAME);
    cr_assert_eq(sm_faulty_fs_flip_bit(&disk, start, 5), 0);
    cr_assert_eq(plog_open(&l, &c, &rep), SM_E_CORRUPT, "a damaged start file");
    cr_assert(rep.corrupt);
    cr_assert_str_eq(rep.corrupt_path, start);
    free(m);
    sm_faulty_fs_free(&disk);
}
