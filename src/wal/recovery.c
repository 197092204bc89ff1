/*
 * Recovery: wal_open reads a log directory back into a log ready for appending.
 *
 * RULES (the reasons are in wal.c's "why it is safe"):
 *  1. Snapshots: the newest one whose header and payload checksums hold is used; newer ones that
 *     fail are skipped and reported. Temp files of an interrupted snapshot are removed.
 *  2. Segments wholly covered by that snapshot are not read (they are only kept for an older
 *     snapshot to fall back on). From the segment holding snapshot index + 1 on, every record is
 *     checked: bounds, checksum, and index = previous + 1, across segment boundaries too.
 *  3. A segment's records end at the end of the file or where only zero bytes follow to the end
 *     (a preallocated segment; zeros decode as type 0, never as a record): a clean end, in any
 *     segment. A torn tail: the first bad record (short, or failing a check) of the LAST segment,
 *     followed by bytes that are not all zero but with no valid record anywhere after it in that
 *     file, is where the last unsynced write stopped. It is cut off (in a full-size, i.e.
 *     preallocated, file the bytes up to the last non-zero one are overwritten with zeros and
 *     synced, so the file keeps its size; else the file is truncated there; a last segment whose
 * header itself is torn and holds no record is removed) and reported with file, offset and bytes
 * dropped. A spare segment (WAL_SPARE_NAME, made ahead and never given records) is deleted.
 *  4. Anything else is damage to data that was durable: a bad record followed by a valid one, a
 *     bad record or trailing bytes in a segment that is not the last, a bad header, a gap between
 *     segments. wal_open refuses with SM_E_CORRUPT naming the file and offset, unless repair mode:
 *     then the damaged file is copied to "<name>.corrupt-<n>", truncated at the bad record (or set
 *     aside whole if the damage is at its start), every later segment is renamed aside the same
 *     way, and the log goes on from the last good record.
 *  5. Read-only mode (wal verify) reports what 3 and 4 would do and changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/wal.h"

static int io_err(int neg_errno)
{
    return neg_errno == -ENOMEM ? SM_E_NOMEM : SM_E_IO;
}

static void path_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, WAL_PATH_BYTES, "%s/%s", dir, name);
    ASSERT(n > 0 && n < WAL_PATH_BYTES);
}

static int resolve_config(struct wal_config *c)
{
    if (!c->dir || c->dir[0] == '\0' || strlen(c->dir) > SM_WAL_DIR_BYTES_MAX)
        return SM_E_BADARG;
    if (c->segment_bytes == 0)
        c->segment_bytes = SM_WAL_SEGMENT_BYTES_DEFAULT;
    if (c->batch_bytes == 0)
        c->batch_bytes = SM_WAL_BATCH_BYTES_DEFAULT;
    if (c->segment_bytes < SM_WAL_SEGMENT_BYTES_MIN || c->segment_bytes > SM_WAL_SEGMENT_BYTES_MAX)
        return SM_E_BADARG;
    if (c->batch_bytes < SM_WAL_BATCH_BYTES_MIN || c->batch_bytes > SM_WAL_BATCH_BYTES_MAX ||
        (uint64_t)c->batch_bytes * 2 > c->segment_bytes)
        return SM_E_BADARG;
    uint32_t payload_fit = c->batch_bytes - WAL_RECORD_HEADER_BYTES;
    if (c->payload_bytes_max == 0)
        c->payload_bytes_max = payload_fit < SM_WAL_RECORD_PAYLOAD_BYTES_MAX
                                   ? payload_fit
                                   : SM_WAL_RECORD_PAYLOAD_BYTES_MAX;
    if (c->payload_bytes_max > SM_WAL_RECORD_PAYLOAD_BYTES_MAX ||
        c->payload_bytes_max > payload_fit)
        return SM_E_BADARG;
    if (c->snapshots_keep == 0)
        c->snapshots_keep = SM_WAL_SNAPSHOTS_KEEP_DEFAULT;
    if (c->snapshots_keep > SM_WAL_SNAPSHOTS_KEEP_MAX)
        return SM_E_BADARG;
    if (c->snapshot_bytes_max == 0)
        c->snapshot_bytes_max = SM_WAL_SNAPSHOT_BYTES_MAX;
    if (c->snapshot_bytes_max > SM_WAL_SNAPSHOT_BYTES_MAX)
        return SM_E_BADARG;
    if (c->segments_max == 0)
        c->segments_max = SM_WAL_SEGMENTS_MAX;
    if (c->segments_max < 2 || c->segments_max > SM_WAL_SEGMENTS_MAX)
        return SM_E_BADARG;
    if (c->index_start == 0)
        c->index_start = 1;
    if (c->sync_mode != WAL_SYNC_ALWAYS && c->sync_mode != WAL_SYNC_EVERY &&
        c->sync_mode != WAL_SYNC_NEVER)
        return SM_E_BADARG;
    return 0;
}

/* ---- the directory listing ----------------------------------------------------------------- */

/* What the directory holds, as sorted lists of indexes. Heap: this is start-up, not the hot path.
 */
struct dir_listing {
    uint64_t *segments;
    uint32_t segments_count, segments_cap;
    uint64_t *snapshots;
    uint32_t snapshots_count, snapshots_cap;
    char (*temps)[64];
    uint32_t temps_count, temps_cap;
    uint32_t segments_max;
    bool spare; /* WAL_SPARE_NAME is there */
};

static int push_u64(uint64_t **arr, uint32_t *count, uint32_t *cap, uint64_t v)
{
    if (*count == *cap) {
        uint32_t c = *cap ? *cap * 2 : 16;
        uint64_t *p = realloc(*arr, (size_t)c * sizeof *p);
        if (!p)
            return -ENOMEM;
        *arr = p;
        *cap = c;
    }
    (*arr)[(*count)++] = v;
    return 0;
}

static int on_entry(void *ctx, const char *name)
{
    struct dir_listing *l = ctx;
    uint64_t idx;
    size_t n = strlen(name);
    if (wal_parse_segment_name(name, &idx)) {
        if (l->segments_count >= l->segments_max)
            return -EMFILE;
        return push_u64(&l->segments, &l->segments_count, &l->segments_cap, idx);
    }
    if (strcmp(name, WAL_SPARE_NAME) == 0) {
        l->spare = true;
        return 0;
    }
    if (wal_parse_snapshot_name(name, &idx))
        return push_u64(&l->snapshots, &l->snapshots_count, &l->snapshots_cap, idx);
    if (strncmp(name, "snap-", 5) == 0 && n > 4 && n < 64 && strcmp(name + n - 4, ".tmp") == 0) {
        if (l->temps_count == l->temps_cap) {
            uint32_t c = l->temps_cap ? l->temps_cap * 2 : 4;
            char(*p)[64] = realloc(l->temps, (size_t)c * sizeof *p);
            if (!p)
                return -ENOMEM;
            l->temps = p;
            l->temps_cap = c;
        }
        memcpy(l->temps[l->temps_count++], name, n + 1);
    }
    return 0; /* anything else (.corrupt-N copies, foreign files) is left alone */
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void listing_free(struct dir_listing *l)
{
    free(l->segments);
    free(l->snapshots);
    free(l->temps);
}

static int list_dir(struct wal *w, struct dir_listing *l, struct wal_recovery *rep)
{
    memset(l, 0, sizeof *l);
    l->segments_max = w->config.segments_max;
    int rc = w->fs.list(w->fs.ctx, w->dir, on_entry, l);
    if (rc == -EMFILE)
        return SM_E_BUSY;
    if (rc < 0)
        return io_err(rc);
    if (l->segments_count)
        qsort(l->segments, l->segments_count, sizeof l->segments[0], cmp_u64);
    if (l->snapshots_count)
        qsort(l->snapshots, l->snapshots_count, sizeof l->snapshots[0], cmp_u64);
    for (uint32_t i = 0; i < l->temps_count && !w->config.read_only; i++) {
        char path[WAL_PATH_BYTES];
        path_join(path, w->dir, l->temps[i]);
        if ((rc = w->fs.unlink(w->fs.ctx, path)) < 0 && rc != -ENOENT)
            return io_err(rc);
        rep->temp_files_removed++;
    }
    if (l->spare && !w->config.read_only) {
        char path[WAL_PATH_BYTES];
        path_join(path, w->dir, WAL_SPARE_NAME);
        if ((rc = w->fs.unlink(w->fs.ctx, path)) < 0 && rc != -ENOENT)
            return io_err(rc);
        rep->spare_removed = 1;
    }
    if ((rep->temp_files_removed || rep->spare_removed) &&
        (rc = w->fs.fsync_dir(w->fs.ctx, w->dir)) < 0)
        return io_err(rc);
    return 0;
}

/* Rule 1: the newest snapshot that checks out. */
static int pick_snapshot(struct wal *w, const struct dir_listing *l, struct wal_recovery *rep)
{
    for (uint32_t i = l->snapshots_count; i-- > 0;) {
        char path[WAL_PATH_BYTES];
        wal_snapshot_name(path, sizeof path, w->dir, l->snapshots[i]);
        uint64_t index, epoch, len;
        const char *why = NULL;
        int rc = wal_snapshot_check(&w->fs, path, w->config.snapshot_bytes_max, &index, &epoch,
                                    &len, &why);
        if (rc == 0 && index == l->snapshots[i]) {
            rep->snapshot_found = true;
            rep->snapshot_index = index;
            rep->snapshot_epoch = epoch;
            rep->snapshot_bytes = len;
            memcpy(rep->snapshot_path, path, sizeof path);
            return 0;
        }
        if (rc != 0 && rc != SM_E_CORRUPT)
            return rc;
        if (rep->snapshots_corrupt++ == 0)
            memcpy(rep->snapshot_corrupt_path, path, sizeof path);
    }
    return 0;
}

/* ---- checking one segment ------------------------------------------------------------------ */

/* What scanning a segment found. */
struct seg_scan {
    uint64_t size;
    uint64_t index_last; /* of the last good record; index_first - 1 when none */
    uint64_t valid_end;  /* offset after the last good record; 0 when the header is bad */
    uint64_t data_end;   /* offset after the last non-zero byte at or after valid_end */
    bool bad;            /* valid_end < size */
    const char *why;
    bool valid_after; /* a record that checks out lies after valid_end (asked for the last one) */
};

/* Looks for any record that checks out at any byte offset in (from, size): if there is one, the
 * damage at `from` is not the end of what was written. */
static int find_valid_after(struct wal *w, int fd, uint64_t from, uint64_t size, bool *found)
{
    *found = false;
    if (size <= from + 1)
        return 0;
    size_t n = (size_t)(size - from);
    uint8_t *buf = malloc(n);
    if (!buf)
        return SM_E_NOMEM;
    int rc = sm_fs_pread_full(&w->fs, fd, buf, n, from);
    for (size_t p = 1; rc == 0 && p + WAL_RECORD_HEADER_BYTES <= n && !*found; p++) {
        struct wal_record r;
        const char *why;
        *found = wal_record_decode(buf + p, n - p, w->config.payload_bytes_max, &r, &why) == 1;
    }
    free(buf);
    return rc < 0 ? io_err(rc) : 0;
}

/* Finds the end of the last non-zero byte in [from, size), reading backwards in large chunks, so
 * the zero tail of an almost empty 64 MiB segment costs one pass of memcmp. */
static int find_data_end(struct wal *w, int fd, uint64_t from, uint64_t size, uint8_t *buf,
                         uint32_t cap, uint64_t *end)
{
    uint64_t hi = size;
    while (hi > from) {
        uint64_t n = hi - from < cap ? hi - from : cap;
        int rc = sm_fs_pread_full(&w->fs, fd, buf, (size_t)n, hi - n);
        if (rc < 0)
            return io_err(rc);
        if (!wal_all_zero(buf, (size_t)n)) {
            size_t k = (size_t)n;
            while (buf[k - 1] == 0)
                k--;
            hi = hi - n + k;
            break;
        }
        hi -= n;
    }
    *end = hi;
    return 0;
}

/* Reads records from the segment header on; stops at the first that fails a check. */
static int scan_records(struct wal *w, int fd, uint64_t index_first, uint8_t *buf, uint32_t cap,
                        struct seg_scan *out)
{
    uint64_t base = WAL_SEGMENT_HEADER_BYTES, expected = index_first;
    uint32_t len = 0, pos = 0;
    for (;;) {
        struct wal_record r;
        int d = wal_record_decode(buf + pos, len - pos, w->config.payload_bytes_max, &r, &out->why);
        if (d == 0 && base + len < out->size) {
            memmove(buf, buf + pos, len - pos);
            base += pos;
            len -= pos;
            pos = 0;
            uint64_t want = out->size - (base + len);
            size_t got;
            int rc = w->fs.pread(w->fs.ctx, fd, buf + len, want < cap - len ? want : cap - len,
                                 base + len, &got);
            if (rc < 0)
                return io_err(rc);
            if (got == 0)
                return SM_E_IO; /* the file shrank under us */
            len += (uint32_t)got;
            continue;
        }
        if (d == 0 && pos < len)
            out->why = "short record";
        if (d == 1 && r.index != expected) {
            out->why = "record index out of sequence";
            d = -1;
        }
        if (d != 1)
            break;
        expected++;
        pos += WAL_RECORD_HEADER_BYTES + r.len;
    }
    out->valid_end = base + pos;
    out->index_last = expected - 1;
    out->bad = out->valid_end < out->size;
    ASSERT(out->valid_end <= out->size);
    return 0;
}

static int scan_segment(struct wal *w, uint64_t index_first, bool last, uint8_t *buf, uint32_t cap,
                        struct seg_scan *out)
{
    memset(out, 0, sizeof *out);
    out->index_last = index_first - 1;
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, w->dir, index_first);
    int fd, rc;
    if ((rc = w->fs.open(w->fs.ctx, path, SM_FS_READ, &fd)) < 0)
        return io_err(rc);
    if ((rc = w->fs.size(w->fs.ctx, fd, &out->size)) < 0) {
        rc = io_err(rc);
        goto done;
    }
    uint8_t hdr[WAL_SEGMENT_HEADER_BYTES];
    if (out->size > SM_WAL_SEGMENT_BYTES_MAX) {
        out->why = "segment larger than the maximum";
        out->bad = true;
    } else if (out->size < WAL_SEGMENT_HEADER_BYTES) {
        out->why = "short segment header";
        out->bad = out->size > 0 || !last;
    } else if ((rc = sm_fs_pread_full(&w->fs, fd, hdr, sizeof hdr, 0)) < 0) {
        rc = io_err(rc);
        goto done;
    } else if (!wal_segment_header_check(hdr, index_first, &out->why)) {
        out->bad = true;
    } else if ((rc = scan_records(w, fd, index_first, buf, cap, out)) < 0) {
        goto done;
    }
    out->data_end = out->size;
    if (out->bad && out->valid_end >= WAL_SEGMENT_HEADER_BYTES &&
        out->size <= SM_WAL_SEGMENT_BYTES_MAX) {
        if ((rc = find_data_end(w, fd, out->valid_end, out->size, buf, cap, &out->data_end)) < 0)
            goto done;
        out->bad = out->data_end > out->valid_end; /* only zeros after the records: clean */
    }
    if (out->size == 0 && last) {
        out->bad = true; /* an empty last file: created, never written; torn at offset 0 */
        out->why = "empty segment";
    }
    if (out->bad && last && out->size <= SM_WAL_SEGMENT_BYTES_MAX)
        rc = find_valid_after(w, fd, out->valid_end, out->data_end, &out->valid_after);
done:
    (void)w->fs.close(w->fs.ctx, fd);
    return rc;
}

/* ---- torn tails and repair ----------------------------------------------------------------- */

/* Rule 3: cuts the last segment at the end of its last good record (or removes it). */
static int cut_torn_tail(struct wal *w, uint64_t index_first, const struct seg_scan *s,
                         struct wal_recovery *rep)
{
    wal_segment_name(rep->torn_path, sizeof rep->torn_path, w->dir, index_first);
    rep->torn = true;
    rep->torn_offset = s->valid_end;
    /* A full-size file is a preallocated segment: zeroed, so it keeps its size and appends
     * stay overwrites (decided by the file, so `wal verify` reports what the node does). */
    bool zero = s->size == w->config.segment_bytes && s->valid_end >= WAL_SEGMENT_HEADER_BYTES;
    rep->torn_bytes = (zero ? s->data_end : s->size) - s->valid_end;
    if (w->config.read_only)
        return 0;
    int rc, fd;
    if (s->valid_end < WAL_SEGMENT_HEADER_BYTES) {
        if ((rc = w->fs.unlink(w->fs.ctx, rep->torn_path)) < 0 ||
            (rc = w->fs.fsync_dir(w->fs.ctx, w->dir)) < 0)
            return io_err(rc);
        return 0;
    }
    if ((rc = w->fs.open(w->fs.ctx, rep->torn_path, SM_FS_WRITE, &fd)) < 0)
        return io_err(rc);
    if (zero)
        rc = wal_write_zeros(&w->fs, fd, s->valid_end, s->data_end);
    else
        rc = w->fs.truncate(w->fs.ctx, fd, s->valid_end);
    if (rc == 0)
        rc = w->fs.fdatasync(w->fs.ctx, fd);
    (void)w->fs.close(w->fs.ctx, fd);
    return rc < 0 ? io_err(rc) : 0;
}

/* "<path>.corrupt-<n>" with the first n not in use. */
static int free_corrupt_name(struct wal *w, const char *path, char *out)
{
    for (uint32_t n = 1; n < 1000000; n++) {
        int len = snprintf(out, WAL_PATH_BYTES, "%s.corrupt-%u", path, n);
        ASSERT(len > 0 && len < WAL_PATH_BYTES);
        int fd, rc = w->fs.open(w->fs.ctx, out, SM_FS_READ, &fd);
        if (rc == -ENOENT)
            return 0;
        if (rc < 0)
            return io_err(rc);
        (void)w->fs.close(w->fs.ctx, fd);
    }
    return SM_E_BUSY;
}

int wal_copy_file(const struct sm_fs *fs, const char *src, const char *dst)
{
    int in, out, rc;
    if ((rc = fs->open(fs->ctx, src, SM_FS_READ, &in)) < 0)
        return io_err(rc);
    if ((rc = fs->open(fs->ctx, dst, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &out)) < 0) {
        (void)fs->close(fs->ctx, in);
        return io_err(rc);
    }
    uint8_t chunk[16384];
    uint64_t off = 0;
    size_t got;
    while ((rc = fs->pread(fs->ctx, in, chunk, sizeof chunk, off, &got)) == 0 && got > 0) {
        if ((rc = sm_fs_pwrite(fs, out, chunk, got, off)) < 0)
            break;
        off += got;
    }
    if (rc == 0)
        rc = fs->fsync(fs->ctx, out);
    (void)fs->close(fs->ctx, in);
    (void)fs->close(fs->ctx, out);
    return rc < 0 ? io_err(rc) : 0;
}

/* Rule 4, repair mode: segment `at` is damaged at `offset` (0: at its start, or a gap before it).
 * Keeps a copy, cuts there, and sets every later segment aside. Returns the new segment count. */
static int repair(struct wal *w, const struct dir_listing *l, uint32_t at, uint64_t offset,
                  struct wal_recovery *rep, uint32_t *count)
{
    char path[WAL_PATH_BYTES], aside[WAL_PATH_BYTES];
    int rc, fd;
    wal_segment_name(path, sizeof path, w->dir, l->segments[at]);
    uint32_t first_aside = at;
    if (offset >= WAL_SEGMENT_HEADER_BYTES) {
        first_aside = at + 1;
        if ((rc = free_corrupt_name(w, path, rep->repair_copy_path)) < 0 ||
            (rc = wal_copy_file(&w->fs, path, rep->repair_copy_path)) < 0)
            return rc;
        if ((rc = w->fs.open(w->fs.ctx, path, SM_FS_WRITE, &fd)) < 0)
            return io_err(rc);
        if ((rc = w->fs.truncate(w->fs.ctx, fd, offset)) == 0)
            rc = w->fs.fdatasync(w->fs.ctx, fd);
        (void)w->fs.close(w->fs.ctx, fd);
        if (rc < 0)
            return io_err(rc);
    }
    for (uint32_t i = l->segments_count; i-- > first_aside;) {
        wal_segment_name(path, sizeof path, w->dir, l->segments[i]);
        if ((rc = free_corrupt_name(w, path, aside)) < 0)
            return rc;
        if ((rc = w->fs.rename(w->fs.ctx, path, aside)) < 0)
            return io_err(rc);
        if (i == at)
            memcpy(rep->repair_copy_path, aside, sizeof aside);
        rep->repair_files_set_aside++;
    }
    if ((rc = w->fs.fsync_dir(w->fs.ctx, w->dir)) < 0)
        return io_err(rc);
    rep->repaired = true;
    *count = first_aside;
    return 0;
}

static void note_corrupt(struct wal *w, struct wal_recovery *rep, uint64_t index_first,
                         uint64_t offset, const char *why)
{
    rep->corrupt = true;
    wal_segment_name(rep->corrupt_path, sizeof rep->corrupt_path, w->dir, index_first);
    rep->corrupt_offset = offset;
    snprintf(rep->corrupt_reason, sizeof rep->corrupt_reason, "%s", why ? why : "damaged");
}

/* ---- rules 2 to 4 over the whole log ------------------------------------------------------- */

/* A problem at segment i (rule 4): refuse, or repair and say how many segments remain. */
static int problem(struct wal *w, struct dir_listing *l, uint32_t i, uint64_t offset,
                   const char *why, struct wal_recovery *rep, uint32_t *count)
{
    note_corrupt(w, rep, l->segments[i], offset, why);
    if (!w->config.repair || w->config.read_only)
        return SM_E_CORRUPT;
    return repair(w, l, i, offset, rep, count);
}

static int check_segments(struct wal *w, struct dir_listing *l, uint8_t *buf, uint32_t cap,
                          struct wal_recovery *rep)
{
    const uint64_t snap = rep->snapshot_index;
    uint32_t n = l->segments_count, start = 0;
    int rc = wal_segments_reserve(w, n);
    if (rc < 0)
        return rc;
    while (start + 1 < n && l->segments[start + 1] <= snap + 1)
        start++;
    for (uint32_t i = 0; i < start; i++) /* covered by the snapshot: not read (rule 2) */
        w->segments[i] = (struct wal_segment){l->segments[i], l->segments[i + 1] - 1, 0};
    for (uint32_t i = start; i < n; i++) {
        uint64_t first = l->segments[i];
        uint64_t floor = snap + 1 > w->config.index_start ? snap + 1 : w->config.index_start;
        uint64_t want = i == start ? floor : w->segments[i - 1].index_last + 1;
        if (i == start ? first > want : first != want) {
            if ((rc = problem(w, l, i, 0, "gap in record indexes before this segment", rep, &n)))
                return rc;
            break;
        }
        struct seg_scan s;
        if ((rc = scan_segment(w, first, i == n - 1, buf, cap, &s)) < 0)
            return rc;
        w->segments[i] = (struct wal_segment){first, s.index_last, s.valid_end};
        if (!s.bad)
            continue;
        if (i == n - 1 && !s.valid_after) { /* rule 3 */
            if ((rc = cut_torn_tail(w, first, &s, rep)) < 0)
                return rc;
            if (s.valid_end < WAL_SEGMENT_HEADER_BYTES)
                n = i;
            break;
        }
        if ((rc = problem(w, l, i, s.valid_end, s.why, rep, &n)) < 0)
            return rc;
        break;
    }
    w->segments_count = n;
    rep->segments = n;
    return 0;
}

/* Positions the log after its last record: appends go to the last segment when it can take
 * them, else to a new one. */
static int setup_tail(struct wal *w, struct wal_recovery *rep)
{
    const uint64_t snap = rep->snapshot_index;
    uint64_t last = snap;
    const struct wal_segment *seg = w->segments_count ? &w->segments[w->segments_count - 1] : NULL;
    if (seg && seg->index_last > last)
        last = seg->index_last;
    if (!seg && w->config.index_start - 1 > last)
        last = w->config.index_start - 1; /* a compacted log whose segments are all gone */
    w->index_floor = snap;
    w->index_next = last + 1;
    w->index_written = w->index_durable = last;
    rep->index_first = snap + 1;
    rep->index_last = last;
    if (!seg || seg->index_last < snap) {
        /* No segment, or a log that ends before the snapshot: start afresh at snap + 1. */
        w->buf_new_segment = true;
        w->tail_offset = WAL_SEGMENT_HEADER_BYTES;
        if (w->segments_count + 1 > w->config.segments_max)
            return SM_E_BUSY;
        return wal_segments_reserve(w, w->segments_count + 1);
    }
    ASSERT(seg->size_bytes >= WAL_SEGMENT_HEADER_BYTES);
    w->offset_written = w->offset_synced = w->tail_offset = seg->size_bytes;
    if (w->config.read_only)
        return 0;
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, w->dir, seg->index_first);
    int rc = w->fs.open(w->fs.ctx, path, SM_FS_WRITE, &w->fd);
    uint64_t file_bytes = 0;
    if (rc == 0)
        rc = w->fs.size(w->fs.ctx, w->fd, &file_bytes);
    w->tail_preallocated = file_bytes == w->config.segment_bytes;
    return rc < 0 ? io_err(rc) : 0;
}

int wal_open(struct wal *w, const struct wal_config *config, struct wal_recovery *rep)
{
    ASSERT(w != NULL && config != NULL && rep != NULL);
    memset(rep, 0, sizeof *rep);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->spare_fd = -1;
    w->config = *config;
    int rc = resolve_config(&w->config);
    if (rc < 0)
        return rc;
    memcpy(w->dir, config->dir, strlen(config->dir) + 1);
    w->config.dir = w->dir;
    w->fs = config->fs ? *config->fs : *sm_fs_posix();
    uint32_t cap = w->config.payload_bytes_max + WAL_RECORD_HEADER_BYTES;
    if (cap < 256 * 1024) /* also the chunk of the zero-tail check */
        cap = 256 * 1024;
    uint8_t *scan = malloc(cap);
    w->buf[0] = malloc(w->config.batch_bytes);
    w->buf[1] = malloc(w->config.batch_bytes);
    struct dir_listing l;
    memset(&l, 0, sizeof l);
    if (!scan || !w->buf[0] || !w->buf[1]) {
        rc = SM_E_NOMEM;
        goto fail;
    }
    if (!w->config.read_only && (rc = w->fs.mkdir(w->fs.ctx, w->dir)) < 0) {
        rc = io_err(rc);
        goto fail;
    }
    if ((rc = list_dir(w, &l, rep)) < 0 || (rc = pick_snapshot(w, &l, rep)) < 0 ||
        (rc = check_segments(w, &l, scan, cap, rep)) < 0 || (rc = setup_tail(w, rep)) < 0)
        goto fail;
    listing_free(&l);
    free(scan);
    return 0;
fail:
    listing_free(&l);
    free(scan);
    wal_close(w);
    return rc;
}
