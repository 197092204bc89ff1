/*
 * The partition log (plog.h): every local partition's replicated log in one wal. This file holds
 * the record layout, appends, truncations, snapshots and compaction; recovery is in
 * plog_recovery.c.
 *
 * ON-DISK FORMAT (little-endian). The directory holds the wal's segments ("wal-<20>.log", framing
 * and CRC32C as in wal.c; the wal's index of a record is its POSITION in the shared log), the
 * partitions' snapshot files "plog-snap-<partition, 5 digits>-<position, 20 digits>.snap", and
 * "plog-start" once compaction has deleted a prefix of segments.
 *
 *   wal record payload = partition head (16 bytes) + body
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  0  partition (u32)               |  4  kind | 5..7 reserved = 0      |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  8  index (u64): the partition's own index (see the types)           |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   wal record type 1 ENTRY:    index = the entry's; kind = its kind (> 0); wal epoch = its
 *                               epoch; wal timestamp = its time_ms; body = its payload
 *   wal record type 2 TRUNCATE: index = "drop every entry after this one"; kind 0; no body
 *   wal record type 3 SNAPSHOT: index = the snapshot's; kind 0; wal epoch and timestamp = the
 *                               snapshot's epoch and time_ms; body = 16 bytes:
 *                               snapshot length (u64), CRC32C of it (u32), reserved 0 (u32)
 *
 *   snapshot file = 64-byte header + the snapshot bytes
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  0  magic "SMPLSNAP"                                                  |
 *   |  8  version = 1 (u32)             | 12  partition (u32)               |
 *   | 16  index (u64)                   | 24  epoch (u64)                   |
 *   | 32  time_ms (i64)                 | 40  position of its marker (u64)  |
 *   | 48  length (u64)                  | 56  CRC32C of the bytes (u32)     |
 *   | 60  CRC32C of header bytes 0..59 (u32)                                |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *
 *   plog-start = first position still in the log (u64), CRC32C of those 8 bytes (u32), 0 (u32)
 *
 * RULES
 *  - Per partition, records follow each other: an entry is last + 1; a truncation is at or
 *    above the snapshot and below the last index; a snapshot is at or above the previous one.
 *    The API refuses anything else, so the log never holds it; recovery refuses it as damage.
 *  - A snapshot is written to its file (temp, fsync, rename, directory fsync) BEFORE its marker
 *    is appended at position P, and the file is named with P. A file whose marker is not in the
 *    recovered log (a crash before the marker was durable) is removed at open; the newest marker
 *    of a partition must have its file, checked against the marker (length and CRC) and its own
 *    CRC, or open refuses with SM_E_CORRUPT.
 *  - Compaction deletes whole segments from the oldest, never the last one, and only past
 *    records no partition needs. A partition needs, with its newest snapshot durable: its live
 *    entries above the snapshot index that precede the marker (the first of them, F, is noted
 *    when the marker is appended) and every record after the marker; without a snapshot, all its
 *    records. The cut is the smallest such position over the partitions. So a marker is deleted
 *    only when everything before it that the snapshot does not cover was dead, and then the
 *    snapshot file alone gives the partition's state at the log start. Before unlinking, the new
 *    start goes to "plog-start" durably, so a segment missing at the start is still caught;
 *    before that, the snapshot files a newer durable one superseded are removed, so recovery
 *    never starts a partition from a file whose later records may be gone.
 *  - Recovery replays from the log start. A partition whose newest snapshot file's marker is
 *    before the start begins from that snapshot, and its records must follow strictly. One whose
 *    history before the start is gone otherwise (its marker is after the start, or it has none
 *    and the start is not 1) begins from an unknown base: its first entry or truncation sets
 *    the base (a marker does not: live entries above its index may have preceded it and been
 *    cut away under a newer snapshot), and from there on everything must follow. This is exact:
 *    compaction kept every record whose loss could change the partition's state (see above).
 */
#include "wal/plog.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/crc32c.h"
#include "wal/plog_internal.h"

static const uint8_t snap_magic[8] = {'S', 'M', 'P', 'L', 'S', 'N', 'A', 'P'};

void plog_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void plog_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t plog_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

uint64_t plog_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int plog_io_err(int neg_errno)
{
    return neg_errno == -ENOMEM ? SM_E_NOMEM : SM_E_IO;
}

/* ---- names and encodings ------------------------------------------------------------------- */

void plog_snapshot_name(char *out, size_t cap, const char *dir, uint32_t partition,
                        uint64_t position)
{
    ASSERT(partition < SM_PLOG_PARTITIONS_MAX);
    int n = snprintf(out, cap, "%s/plog-snap-%05" PRIu32 "-%020" PRIu64 ".snap", dir, partition,
                     position);
    ASSERT(n > 0 && (size_t)n < cap);
}

static bool parse_digits(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(s[i] - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

bool plog_parse_snapshot_name(const char *name, uint32_t *partition, uint64_t *position)
{
    /* "plog-snap-" 10 + 5 digits + "-" + 20 digits + ".snap" 5 = 41 */
    uint64_t p;
    if (strlen(name) != 41 || strncmp(name, "plog-snap-", 10) != 0 || name[15] != '-' ||
        strcmp(name + 36, ".snap") != 0 || !parse_digits(name + 10, 5, &p) ||
        !parse_digits(name + 16, 20, position) || p >= SM_PLOG_PARTITIONS_MAX)
        return false;
    *partition = (uint32_t)p;
    return true;
}

void plog_head_encode(uint8_t head[PLOG_HEAD_BYTES], uint32_t partition, uint8_t kind,
                      uint64_t index)
{
    memset(head, 0, PLOG_HEAD_BYTES);
    plog_put_u32(head, partition);
    head[4] = kind;
    plog_put_u64(head + 8, index);
}

void plog_snap_header_encode(uint8_t hdr[PLOG_SNAPSHOT_HEADER_BYTES],
                             const struct plog_snap_header *h)
{
    memset(hdr, 0, PLOG_SNAPSHOT_HEADER_BYTES);
    memcpy(hdr, snap_magic, 8);
    plog_put_u32(hdr + 8, PLOG_SNAPSHOT_VERSION);
    plog_put_u32(hdr + 12, h->partition);
    plog_put_u64(hdr + 16, h->index);
    plog_put_u64(hdr + 24, h->epoch);
    plog_put_u64(hdr + 32, (uint64_t)h->time_ms);
    plog_put_u64(hdr + 40, h->position);
    plog_put_u64(hdr + 48, h->len);
    plog_put_u32(hdr + 56, h->crc);
    plog_put_u32(hdr + 60, sm_crc32c(0, hdr, 60));
}

bool plog_snap_header_decode(const uint8_t hdr[PLOG_SNAPSHOT_HEADER_BYTES],
                             struct plog_snap_header *h, const char **why)
{
    if (sm_crc32c(0, hdr, 60) != plog_get_u32(hdr + 60)) {
        *why = "snapshot header checksum mismatch";
        return false;
    }
    if (memcmp(hdr, snap_magic, 8) != 0 || plog_get_u32(hdr + 8) != PLOG_SNAPSHOT_VERSION) {
        *why = "not a partition snapshot of this version";
        return false;
    }
    h->partition = plog_get_u32(hdr + 12);
    h->index = plog_get_u64(hdr + 16);
    h->epoch = plog_get_u64(hdr + 24);
    h->time_ms = (int64_t)plog_get_u64(hdr + 32);
    h->position = plog_get_u64(hdr + 40);
    h->len = plog_get_u64(hdr + 48);
    h->crc = plog_get_u32(hdr + 56);
    return true;
}

/* ---- per-partition state (shared with recovery) -------------------------------------------- */

int plog_pos_reserve(struct plog_pstate *ps)
{
    if (ps->pos_count < ps->pos_cap)
        return 0;
    /* Grows by doubling: amortised O(1), and a partition's live tail is bounded by its
     * snapshots (the part snapshots every snapshot_every entries). */
    uint32_t cap = ps->pos_cap ? ps->pos_cap * 2 : 64;
    uint64_t *p = realloc(ps->pos, (size_t)cap * sizeof *p);
    if (!p)
        return SM_E_NOMEM;
    ps->pos = p;
    ps->pos_cap = cap;
    return 0;
}

void plog_state_note(struct plog_pstate *ps, uint64_t position)
{
    if (ps->first_pos == 0)
        ps->first_pos = position;
    if (ps->snap_pos != 0 && ps->first_after_marker == 0)
        ps->first_after_marker = position;
}

void plog_state_entry(struct plog_pstate *ps, uint64_t index, uint64_t position)
{
    ASSERT(ps->pos_count < ps->pos_cap);
    ASSERT(index == ps->last + 1);
    plog_state_note(ps, position);
    if (ps->pos_count == 0)
        ps->pos_index = index;
    ASSERT(ps->pos_index + ps->pos_count == index);
    ps->pos[ps->pos_count++] = position;
    ps->last = index;
}

void plog_state_truncate(struct plog_pstate *ps, uint64_t after, uint64_t position)
{
    ASSERT(after >= ps->snap_index && after < ps->last);
    plog_state_note(ps, position);
    if (ps->pos_count > 0) {
        if (after < ps->pos_index)
            ps->pos_count = 0;
        else if (after - ps->pos_index + 1 < ps->pos_count)
            ps->pos_count = (uint32_t)(after - ps->pos_index + 1);
    }
    ps->last = after;
}

void plog_state_snapshot(struct plog_pstate *ps, uint64_t index, uint64_t position)
{
    ASSERT(index >= ps->snap_index && position > ps->snap_pos);
    plog_state_note(ps, position);
    if (ps->pos_count > 0 && index >= ps->pos_index) {
        uint64_t drop = index - ps->pos_index + 1;
        if (drop >= ps->pos_count) {
            ps->pos_count = 0;
        } else {
            memmove(ps->pos, ps->pos + drop, (size_t)(ps->pos_count - drop) * sizeof *ps->pos);
            ps->pos_count -= (uint32_t)drop;
            ps->pos_index = index + 1;
        }
    }
    ps->need_at_marker = ps->pos_count ? ps->pos[0] : UINT64_MAX;
    ps->snap_index = index;
    ps->snap_pos = position;
    ps->first_after_marker = 0;
    if (index > ps->last)
        ps->last = index;
}

/* ---- appending ----------------------------------------------------------------------------- */

static int check_writable(const struct plog *l, uint32_t partition)
{
    ASSERT(l->parts != NULL);
    if (partition >= l->config.partitions)
        return SM_E_BADARG;
    if (l->config.read_only)
        return SM_E_STATE;
    if (l->wal.failed)
        return l->wal.failed;
    return 0;
}

int plog_append(struct plog *l, uint32_t partition, const struct plog_entry *e)
{
    ASSERT(e != NULL);
    int rc = check_writable(l, partition);
    if (rc < 0)
        return rc;
    struct plog_pstate *ps = &l->parts[partition];
    if (e->kind == 0 || e->index != ps->last + 1 || e->index > SM_PLOG_INDEX_MAX ||
        (e->payload == NULL && e->len > 0))
        return SM_E_BADARG;
    if (e->len > l->config.entry_bytes_max)
        return SM_E_TOOLARGE;
    if ((rc = plog_pos_reserve(ps)) < 0)
        return rc;
    uint8_t head[PLOG_HEAD_BYTES];
    plog_head_encode(head, partition, e->kind, e->index);
    uint64_t position = wal_index_next(&l->wal);
    struct wal_record r = {.type = PLOG_REC_ENTRY,
                           .epoch = e->epoch,
                           .index = position,
                           .timestamp_us = (uint64_t)e->time_ms,
                           .payload = e->payload,
                           .len = e->len,
                           .head = head,
                           .head_len = PLOG_HEAD_BYTES};
    if ((rc = wal_append(&l->wal, &r)) < 0)
        return rc;
    plog_state_entry(ps, e->index, position);
    return 0;
}

int plog_truncate(struct plog *l, uint32_t partition, uint64_t after_index)
{
    int rc = check_writable(l, partition);
    if (rc < 0)
        return rc;
    struct plog_pstate *ps = &l->parts[partition];
    if (after_index < ps->snap_index)
        return SM_E_STATE;
    if (after_index >= ps->last)
        return 0;
    uint8_t head[PLOG_HEAD_BYTES];
    plog_head_encode(head, partition, 0, after_index);
    uint64_t position = wal_index_next(&l->wal);
    struct wal_record r = {.type = PLOG_REC_TRUNCATE,
                           .index = position,
                           .payload = NULL,
                           .len = 0,
                           .head = head,
                           .head_len = PLOG_HEAD_BYTES};
    if ((rc = wal_append(&l->wal, &r)) < 0)
        return rc;
    plog_state_truncate(ps, after_index, position);
    ASSERT(ps->last == after_index);
    return 0;
}

/* Writes a snapshot file durably: temp, fsync, rename, directory fsync. */
static int snapshot_write_file(struct plog *l, const char *path, const struct plog_snap_header *h,
                               const uint8_t *bytes)
{
    char tmp[WAL_PATH_BYTES];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ASSERT(n > 0 && (size_t)n < sizeof tmp);
    uint8_t hdr[PLOG_SNAPSHOT_HEADER_BYTES];
    plog_snap_header_encode(hdr, h);
    int fd, rc;
    if ((rc = l->fs.open(l->fs.ctx, tmp, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &fd)) < 0)
        return plog_io_err(rc);
    struct iovec iov[2] = {{.iov_base = hdr, .iov_len = sizeof hdr},
                           {.iov_base = (void *)bytes, .iov_len = (size_t)h->len}};
    rc = l->fs.pwritev(l->fs.ctx, fd, iov, h->len ? 2 : 1, 0);
    if (rc == 0)
        rc = l->fs.fsync(l->fs.ctx, fd);
    (void)l->fs.close(l->fs.ctx, fd);
    if (rc == 0)
        rc = l->fs.rename(l->fs.ctx, tmp, path);
    if (rc == 0)
        rc = l->fs.fsync_dir(l->fs.ctx, l->dir);
    if (rc < 0) {
        (void)l->fs.unlink(l->fs.ctx, tmp);
        return plog_io_err(rc);
    }
    return 0;
}

int plog_snapshot(struct plog *l, uint32_t partition, const uint8_t *bytes, size_t len,
                  uint64_t index, uint64_t epoch, int64_t time_ms)
{
    int rc = check_writable(l, partition);
    if (rc < 0)
        return rc;
    struct plog_pstate *ps = &l->parts[partition];
    if (index == 0 || index > SM_PLOG_INDEX_MAX || (bytes == NULL && len > 0))
        return SM_E_BADARG;
    if (index < ps->snap_index)
        return SM_E_STATE;
    if (len > l->config.snapshot_bytes_max)
        return SM_E_TOOLARGE;
    uint64_t position = wal_index_next(&l->wal);
    struct plog_snap_header h = {.partition = partition,
                                 .index = index,
                                 .epoch = epoch,
                                 .time_ms = time_ms,
                                 .position = position,
                                 .len = len,
                                 .crc = sm_crc32c(0, bytes, len)};
    char path[WAL_PATH_BYTES];
    plog_snapshot_name(path, sizeof path, l->dir, partition, position);
    if ((rc = snapshot_write_file(l, path, &h, bytes)) < 0)
        return rc;
    uint8_t head[PLOG_HEAD_BYTES], body[PLOG_MARKER_BODY_BYTES] = {0};
    plog_head_encode(head, partition, 0, index);
    plog_put_u64(body, len);
    plog_put_u32(body + 8, h.crc);
    struct wal_record r = {.type = PLOG_REC_SNAPSHOT,
                           .epoch = epoch,
                           .index = position,
                           .timestamp_us = (uint64_t)time_ms,
                           .payload = body,
                           .len = sizeof body,
                           .head = head,
                           .head_len = PLOG_HEAD_BYTES};
    if ((rc = wal_append(&l->wal, &r)) < 0) {
        /* No marker: the file does not count; it goes now (or at the next open). */
        (void)l->fs.unlink(l->fs.ctx, path);
        return rc;
    }
    plog_state_snapshot(ps, index, position);
    return 0;
}

/* ---- group commit -------------------------------------------------------------------------- */

int plog_flush_begin(struct plog *l, bool sync, struct wal_flush *out)
{
    return wal_flush_begin(&l->wal, sync, out);
}

int plog_flush_done(struct plog *l, int result)
{
    return wal_flush_done(&l->wal, result);
}

int plog_sync(struct plog *l)
{
    uint64_t acked;
    return wal_sync(&l->wal, &acked);
}

uint64_t plog_position_acked(const struct plog *l)
{
    return wal_index_acked(&l->wal);
}

uint64_t plog_position_next(const struct plog *l)
{
    return wal_index_next(&l->wal);
}

/* ---- compaction ---------------------------------------------------------------------------- */

/* The first position partition ps still needs (see the rules), UINT64_MAX when none. */
static uint64_t needed_from(const struct plog_pstate *ps)
{
    if (ps->first_pos == 0)
        return UINT64_MAX;
    if (ps->snap_pos == 0)
        return ps->first_pos;
    uint64_t need = ps->need_at_marker;
    if (ps->first_after_marker != 0 && ps->first_after_marker < need)
        need = ps->first_after_marker;
    return need;
}

uint64_t plog_needed_from(const struct plog *l, uint32_t partition)
{
    ASSERT(partition < l->config.partitions);
    return needed_from(&l->parts[partition]);
}

int plog_write_start(const struct sm_fs *fs, const char *dir, uint64_t start)
{
    char path[WAL_PATH_BYTES], tmp[WAL_PATH_BYTES];
    int n = snprintf(path, sizeof path, "%s/%s", dir, PLOG_START_NAME);
    ASSERT(n > 0 && (size_t)n < sizeof path);
    n = snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, PLOG_START_NAME);
    ASSERT(n > 0 && (size_t)n < sizeof tmp);
    uint8_t buf[PLOG_START_BYTES] = {0};
    plog_put_u64(buf, start);
    plog_put_u32(buf + 8, sm_crc32c(0, buf, 8));
    int fd, rc;
    if ((rc = fs->open(fs->ctx, tmp, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &fd)) < 0)
        return rc;
    rc = sm_fs_pwrite(fs, fd, buf, sizeof buf, 0);
    if (rc == 0)
        rc = fs->fsync(fs->ctx, fd);
    (void)fs->close(fs->ctx, fd);
    if (rc == 0)
        rc = fs->rename(fs->ctx, tmp, path);
    if (rc == 0)
        rc = fs->fsync_dir(fs->ctx, dir);
    return rc;
}

/* Snapshot files a newer durable one of the same partition replaced: collected first, then
 * removed (a directory is not changed while it is being listed). */
struct superseded_ctx {
    const struct plog *l;
    char (*names)[64];
    uint32_t count, cap;
};

static int collect_superseded(void *ctx, const char *name)
{
    struct superseded_ctx *c = ctx;
    uint32_t p;
    uint64_t pos;
    if (!plog_parse_snapshot_name(name, &p, &pos) || p >= c->l->config.partitions ||
        pos >= c->l->parts[p].snap_pos)
        return 0;
    if (c->count == c->cap) {
        uint32_t cap = c->cap ? c->cap * 2 : 16;
        char(*n)[64] = realloc(c->names, (size_t)cap * sizeof *n);
        if (!n)
            return -ENOMEM;
        c->names = n;
        c->cap = cap;
    }
    ASSERT(strlen(name) < 64);
    memcpy(c->names[c->count++], name, strlen(name) + 1);
    return 0;
}

static int remove_superseded(struct plog *l)
{
    struct superseded_ctx sc = {.l = l};
    int rc = l->fs.list(l->fs.ctx, l->dir, collect_superseded, &sc);
    for (uint32_t i = 0; i < sc.count && rc == 0; i++) {
        char path[WAL_PATH_BYTES];
        int n = snprintf(path, sizeof path, "%s/%s", l->dir, sc.names[i]);
        ASSERT(n > 0 && (size_t)n < sizeof path);
        if ((rc = l->fs.unlink(l->fs.ctx, path)) == -ENOENT)
            rc = 0;
    }
    if (rc == 0 && sc.count)
        rc = l->fs.fsync_dir(l->fs.ctx, l->dir);
    free(sc.names);
    return rc < 0 ? plog_io_err(rc) : 0;
}

int plog_compact(struct plog *l, uint32_t *deleted)
{
    ASSERT(l->parts != NULL);
    if (deleted)
        *deleted = 0;
    if (l->config.read_only || l->wal.flushing)
        return SM_E_STATE;
    if (l->wal.failed)
        return l->wal.failed;
    uint64_t acked = wal_index_acked(&l->wal), cut = UINT64_MAX;
    for (uint32_t p = 0; p < l->config.partitions; p++) {
        if (l->parts[p].snap_pos > acked)
            return 0; /* a marker not durable yet: the old snapshot still counts */
        uint64_t need = needed_from(&l->parts[p]);
        if (need < cut)
            cut = need;
    }
    /* Older snapshot files first: recovery must never start a partition from a file that a
     * newer snapshot superseded once the segments after it may be gone. */
    int rc = remove_superseded(l);
    if (rc < 0)
        return rc;
    struct wal *w = &l->wal;
    uint32_t k = 0;
    while (k + 1 < w->segments_count && w->segments[k].index_last < cut)
        k++;
    if (k > 0) {
        ASSERT(w->segments[k].index_first > l->start);
        if ((rc = plog_write_start(&l->fs, l->dir, w->segments[k].index_first)) < 0)
            return plog_io_err(rc);
        l->start = w->segments[k].index_first;
        uint32_t done = 0;
        for (; done < k; done++) { /* oldest first: what is left stays contiguous */
            char path[WAL_PATH_BYTES];
            wal_segment_name(path, sizeof path, l->dir, w->segments[done].index_first);
            if ((rc = l->fs.unlink(l->fs.ctx, path)) < 0 && rc != -ENOENT)
                break;
        }
        memmove(w->segments, w->segments + done, (w->segments_count - done) * sizeof *w->segments);
        w->segments_count -= done;
        if (deleted)
            *deleted = done;
        if (done < k)
            return plog_io_err(rc);
        if ((rc = l->fs.fsync_dir(l->fs.ctx, l->dir)) < 0)
            return plog_io_err(rc);
    }
    return 0;
}
