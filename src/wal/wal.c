/*
 * The write-ahead log: on-disk format, appends, group commit and truncation. Recovery (wal_open)
 * is in recovery.c, the iterator in iter.c, snapshots in snapshot.c.
 *
 * ON-DISK FORMAT (all integers little-endian; CRC32C as in crc32c.h)
 *
 * A log directory holds segment files "wal-<first index, 20 digits>.log", snapshot files
 * "snap-<index, 20 digits>.snap" (layout in snapshot.c), and possibly leftovers that recovery
 * deals with: "*.tmp" (an interrupted snapshot, removed) and "*.corrupt-<n>" (copies kept by
 * repair mode, ignored).
 *
 * Segment file = segment header, then records back to back, nothing else. A segment never
 * exceeds the configured segment size; a record never spans two segments.
 *
 *   segment header (32 bytes)
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  0  magic "SMWALSEG" (8 bytes)                                        |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  8  version = 1 (u32)             | 12  reserved = 0 (u32)            |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 16  first index (u64), equal to the index in the file name           |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 24  reserved = 0 (u32)            | 28  CRC32C of bytes 0..27 (u32)   |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *
 *   record (40-byte header + payload)
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  0  payload length N (u32)        |  4  CRC32C of bytes 8 .. 40+N-1   |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  8  index (u64): the first record of a segment has its first index,  |
 *   |     each next record the previous index + 1, across segments too     |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 16  epoch (u64): the leader's term when the record was made          |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 24  timestamp (u64): the leader's clock, microseconds                |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 32  type | 33..39 reserved = 0 (7 bytes)                             |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 40  payload (N bytes, opaque to the log; N <= payload maximum)        |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *
 * The CRC covers everything after itself, so a flipped bit anywhere in the header tail or the
 * payload is caught; a damaged length makes the CRC range wrong and is caught the same way
 * (besides the bound check). Type 0 is invalid, so zeroed space never decodes as a record.
 *
 * WHY IT IS SAFE: a batch is written with one pwritev and made durable by one fdatasync before
 * any of its records is acknowledged. A new segment is created, its header written and
 * fdatasync'ed, and the directory fsync'ed before any record goes into it, so a file that holds
 * acknowledged records always has a durable name. What a crash can leave is therefore: a torn
 * end of the last segment (records never acknowledged), or a last segment with a torn header and
 * no records. Anything else is damage. The recovery rules that follow from this are in
 * recovery.c.
 *
 * PREALLOCATED SEGMENTS (config.preallocate): appending to a file makes every fdatasync also
 * commit the new file size through the file system's journal; overwriting bytes that are already
 * allocated, written and synced flushes data only (3-4x faster on ext4, see docs/storage.md).
 * So a segment file is first written full of zeros up to segment_bytes (real writes: fallocate
 * leaves "unwritten" extents whose conversion on first write is again a journal commit), synced,
 * its name synced, and only then gets its header and records. The file is then always
 * segment_bytes long and the log in it ends where the records stop and zeros begin: a zero
 * header has type 0 and never decodes. The next segment is made ahead under WAL_SPARE_NAME (see
 * wal_spare_* in wal.h); at the boundary its header is written and synced and it is renamed to
 * its segment name, directory synced, before any record goes in. A crash before that rename is
 * durable leaves the spare, which recovery deletes. Truncation of a diverging suffix does not
 * zero in place (a torn zeroing write would leave zeros followed by old valid records, which
 * recovery must refuse as damage): it truncates and syncs as without preallocation, then writes
 * the zeros back up to the full size and syncs again; every crash point leaves a valid log.
 */
#include "wal/wal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/crc32c.h"

static const uint8_t segment_magic[8] = {'S', 'M', 'W', 'A', 'L', 'S', 'E', 'G'};
#define SEGMENT_VERSION 1

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- names --------------------------------------------------------------------------------- */

void wal_segment_name(char *out, size_t cap, const char *dir, uint64_t index_first)
{
    int n = snprintf(out, cap, "%s/wal-%020" PRIu64 ".log", dir, index_first);
    ASSERT(n > 0 && (size_t)n < cap);
}

void wal_snapshot_name(char *out, size_t cap, const char *dir, uint64_t index)
{
    int n = snprintf(out, cap, "%s/snap-%020" PRIu64 ".snap", dir, index);
    ASSERT(n > 0 && (size_t)n < cap);
}

/* Parses "<prefix><20 digits><suffix>" exactly. */
static bool parse_numbered(const char *name, const char *prefix, const char *suffix, uint64_t *out)
{
    size_t p = strlen(prefix), s = strlen(suffix);
    if (strlen(name) != p + 20 + s || strncmp(name, prefix, p) != 0 ||
        strcmp(name + p + 20, suffix) != 0)
        return false;
    uint64_t v = 0;
    for (size_t i = p; i < p + 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, (uint64_t)(name[i] - '0'), &v))
            return false;
    }
    *out = v;
    return true;
}

bool wal_parse_segment_name(const char *name, uint64_t *index_first)
{
    return parse_numbered(name, "wal-", ".log", index_first) && *index_first > 0;
}

bool wal_parse_snapshot_name(const char *name, uint64_t *index)
{
    return parse_numbered(name, "snap-", ".snap", index);
}

/* ---- codec --------------------------------------------------------------------------------- */

void wal_record_encode(uint8_t hdr[WAL_RECORD_HEADER_BYTES], const struct wal_record *r)
{
    ASSERT(r->type != 0);
    ASSERT(r->payload != NULL || r->len == 0);
    ASSERT(r->head != NULL || r->head_len == 0);
    ASSERT(r->len + (uint64_t)r->head_len <= UINT32_MAX);
    put_u32(hdr, r->len + r->head_len);
    put_u64(hdr + 8, r->index);
    put_u64(hdr + 16, r->epoch);
    put_u64(hdr + 24, r->timestamp_us);
    memset(hdr + 32, 0, 8);
    hdr[32] = r->type;
    uint32_t crc = sm_crc32c(0, hdr + 8, WAL_RECORD_HEADER_BYTES - 8);
    if (r->head_len)
        crc = sm_crc32c(crc, r->head, r->head_len);
    crc = sm_crc32c(crc, r->payload, r->len);
    put_u32(hdr + 4, crc);
}

int wal_record_decode(const uint8_t *p, size_t avail, uint32_t payload_bytes_max,
                      struct wal_record *out, const char **why)
{
    if (avail < WAL_RECORD_HEADER_BYTES)
        return 0;
    uint32_t len = get_u32(p);
    if (len > payload_bytes_max) {
        *why = "record length above the maximum";
        return -1;
    }
    if (p[32] == 0) {
        *why = "record type 0";
        return -1;
    }
    for (int i = 33; i < 40; i++) {
        if (p[i] != 0) {
            *why = "record reserved bytes not zero";
            return -1;
        }
    }
    if (avail - WAL_RECORD_HEADER_BYTES < len)
        return 0;
    uint32_t crc = sm_crc32c(0, p + 8, (size_t)WAL_RECORD_HEADER_BYTES - 8 + len);
    if (crc != get_u32(p + 4)) {
        *why = "record checksum mismatch";
        return -1;
    }
    out->len = len;
    out->index = get_u64(p + 8);
    out->epoch = get_u64(p + 16);
    out->timestamp_us = get_u64(p + 24);
    out->type = p[32];
    out->payload = p + WAL_RECORD_HEADER_BYTES;
    return 1;
}

void wal_segment_header_encode(uint8_t hdr[WAL_SEGMENT_HEADER_BYTES], uint64_t index_first)
{
    ASSERT(index_first > 0);
    memset(hdr, 0, WAL_SEGMENT_HEADER_BYTES);
    memcpy(hdr, segment_magic, 8);
    put_u32(hdr + 8, SEGMENT_VERSION);
    put_u64(hdr + 16, index_first);
    put_u32(hdr + 28, sm_crc32c(0, hdr, 28));
}

bool wal_segment_header_check(const uint8_t hdr[WAL_SEGMENT_HEADER_BYTES], uint64_t index_first,
                              const char **why)
{
    if (sm_crc32c(0, hdr, 28) != get_u32(hdr + 28)) {
        *why = "segment header checksum mismatch";
        return false;
    }
    if (memcmp(hdr, segment_magic, 8) != 0 || get_u32(hdr + 8) != SEGMENT_VERSION) {
        *why = "not a segment of this version";
        return false;
    }
    if (get_u64(hdr + 16) != index_first) {
        *why = "segment first index differs from its name";
        return false;
    }
    return true;
}

/* ---- zeros --------------------------------------------------------------------------------- */

/* Never written: a source of zeros for pwritev, shared by every thread. */
static uint8_t zero_chunk[SM_WAL_ZERO_CHUNK_BYTES];

int wal_write_zeros(const struct sm_fs *fs, int fd, uint64_t from, uint64_t to)
{
    ASSERT(from <= to);
    while (from < to) {
        uint64_t n = to - from < sizeof zero_chunk ? to - from : sizeof zero_chunk;
        struct iovec iov = {.iov_base = zero_chunk, .iov_len = (size_t)n};
        int rc = fs->pwritev(fs->ctx, fd, &iov, 1, from);
        if (rc < 0)
            return rc;
        from += n;
    }
    return 0;
}

bool wal_all_zero(const uint8_t *p, size_t n)
{
    /* p[0] == 0 and every byte equal to its successor: one memcmp, vectorised by libc. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* ---- appending and group commit ------------------------------------------------------------ */

/* Every I/O failure poisons the log (see wal.h): returns SM_E_IO. */
static int poison(struct wal *w, int neg_errno)
{
    ASSERT(neg_errno < 0);
    w->errno_last = -neg_errno;
    w->failed = SM_E_IO;
    return SM_E_IO;
}

int wal_segments_reserve(struct wal *w, uint32_t n)
{
    ASSERT(n <= w->config.segments_max);
    if (n <= w->segments_cap)
        return 0;
    uint32_t cap = w->segments_cap ? w->segments_cap : 16;
    while (cap < n)
        cap *= 2;
    if (cap > w->config.segments_max)
        cap = w->config.segments_max;
    struct wal_segment *p = realloc(w->segments, (size_t)cap * sizeof *p);
    if (!p)
        return SM_E_NOMEM;
    w->segments = p;
    w->segments_cap = cap;
    return 0;
}

uint64_t wal_index_acked(const struct wal *w)
{
    return w->config.sync_mode == WAL_SYNC_NEVER ? w->index_written : w->index_durable;
}

int wal_append(struct wal *w, const struct wal_record *r)
{
    ASSERT(w->buf[0] != NULL && r != NULL);
    ASSERT(w->buf_len <= w->config.batch_bytes);
    if (w->failed)
        return w->failed;
    if (w->config.read_only)
        return SM_E_STATE;
    if (r->type == 0 || r->index != w->index_next || (r->payload == NULL && r->len > 0) ||
        (r->head == NULL && r->head_len > 0))
        return SM_E_BADARG;
    if (r->len > w->config.payload_bytes_max || r->head_len > w->config.payload_bytes_max - r->len)
        return SM_E_TOOLARGE;
    uint32_t need = WAL_RECORD_HEADER_BYTES + r->head_len + r->len;
    if (need > w->config.batch_bytes - w->buf_len)
        return SM_E_BUSY;
    if (w->tail_offset + need > w->config.segment_bytes) {
        /* Proof that one boundary is enough: after a split every byte past it is in this batch,
         * so tail_offset <= header + batch_bytes <= header + segment_bytes / 2. */
        ASSERT(!w->split);
        uint32_t need_segments = w->segments_count + (w->buf_new_segment ? 1u : 0u) + 1;
        if (need_segments > w->config.segments_max)
            return SM_E_BUSY;
        int rc = wal_segments_reserve(w, need_segments);
        if (rc < 0)
            return rc;
        if (w->buf_len > 0) {
            w->split = true;
            w->split_at = w->buf_len;
            w->split_index_last = w->index_next - 1;
        } else {
            w->buf_new_segment = true;
        }
        w->tail_offset = WAL_SEGMENT_HEADER_BYTES;
    }
    uint8_t *dst = w->buf[w->buf_active] + w->buf_len;
    wal_record_encode(dst, r);
    if (r->head_len)
        memcpy(dst + WAL_RECORD_HEADER_BYTES, r->head, r->head_len);
    if (r->len)
        memcpy(dst + WAL_RECORD_HEADER_BYTES + r->head_len, r->payload, r->len);
    w->buf_len += need;
    w->tail_offset += need;
    w->index_next++;
    ASSERT(w->tail_offset <= w->config.segment_bytes);
    return 0;
}

/* ---- spare segments ------------------------------------------------------------------------ */

bool wal_spare_wanted(const struct wal *w)
{
    if (!w->config.preallocate || w->config.read_only || w->failed || w->spare_fd >= 0 ||
        w->spare_preparing)
        return false;
    return w->fd < 0 || w->buf_new_segment || w->split ||
           w->tail_offset > w->config.segment_bytes / 2;
}

void wal_spare_begin(struct wal *w, struct wal_spare_job *job)
{
    ASSERT(wal_spare_wanted(w));
    memset(job, 0, sizeof *job);
    job->fs = w->fs;
    memcpy(job->dir, w->dir, sizeof job->dir);
    int n = snprintf(job->path, sizeof job->path, "%s/%s", w->dir, WAL_SPARE_NAME);
    ASSERT(n > 0 && (size_t)n < sizeof job->path);
    job->bytes = w->config.segment_bytes;
    job->fd = -1;
    w->spare_preparing = true;
}

int wal_spare_run(struct wal_spare_job *job)
{
    const struct sm_fs *fs = &job->fs;
    int fd, rc;
    if ((rc = fs->open(fs->ctx, job->path, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &fd)) < 0)
        return rc;
    rc = 0;
    /* Synced a chunk at a time: 64 MiB of dirty pages flushed by one fdatasync would hold the
     * disk (and a group commit waiting behind it) for tens of ms (bench_wal, "batch-16 sync,
     * spare being made"). */
    for (uint64_t off = 0; off < job->bytes && rc == 0; off += SM_WAL_ZERO_CHUNK_BYTES) {
        uint64_t n = job->bytes - off;
        if (n > SM_WAL_ZERO_CHUNK_BYTES)
            n = SM_WAL_ZERO_CHUNK_BYTES;
        if ((rc = wal_write_zeros(fs, fd, off, off + n)) == 0)
            rc = fs->fdatasync(fs->ctx, fd);
    }
    if (rc < 0 || (rc = fs->fsync_dir(fs->ctx, job->dir)) < 0) {
        (void)fs->close(fs->ctx, fd);
        (void)fs->unlink(fs->ctx, job->path);
        return rc;
    }
    job->fd = fd;
    return 0;
}

void wal_spare_done(struct wal *w, struct wal_spare_job *job, int result)
{
    ASSERT(w->spare_preparing && w->spare_fd < 0);
    w->spare_preparing = false;
    if (result == 0) {
        ASSERT(job->fd >= 0);
        w->spare_fd = job->fd;
    }
    job->fd = -1;
}

/* Makes segment `path` out of the ready spare: header, data sync (an overwrite), rename, directory
 * sync. Takes the spare's descriptor. */
static int spare_activate(struct wal *w, const char *path, uint64_t index_first, int *fd_out)
{
    int fd = w->spare_fd, rc;
    w->spare_fd = -1;
    *fd_out = fd;
    char spare[WAL_PATH_BYTES];
    int n = snprintf(spare, sizeof spare, "%s/%s", w->dir, WAL_SPARE_NAME);
    ASSERT(n > 0 && (size_t)n < sizeof spare);
    uint8_t hdr[WAL_SEGMENT_HEADER_BYTES];
    wal_segment_header_encode(hdr, index_first);
    if ((rc = sm_fs_pwrite(&w->fs, fd, hdr, sizeof hdr, 0)) < 0 ||
        (rc = w->fs.fdatasync(w->fs.ctx, fd)) < 0 ||
        (rc = w->fs.rename(w->fs.ctx, spare, path)) < 0)
        return rc;
    return w->fs.fsync_dir(w->fs.ctx, w->dir);
}

/* Makes a spare right now, on the calling thread (no spare ready and none being made). */
static int spare_make_inline(struct wal *w)
{
    struct wal_spare_job job;
    wal_spare_begin(w, &job);
    int rc = wal_spare_run(&job);
    wal_spare_done(w, &job, rc);
    return rc;
}

/* Starts the next segment: syncs and closes the current one, then creates the new file with its
 * header, durably, name included. */
static int segment_roll(struct wal *w, uint64_t index_first)
{
    ASSERT(w->segments_count < w->segments_cap); /* reserved by wal_append */
    /* Contiguous, except after a snapshot that is newer than the whole log (see recovery.c). */
    ASSERT(w->segments_count == 0 ||
           w->segments[w->segments_count - 1].index_last + 1 == index_first ||
           (w->segments[w->segments_count - 1].index_last < w->index_floor &&
            index_first == w->index_floor + 1));
    int rc;
    if (w->fd >= 0) {
        if (w->offset_synced < w->offset_written && w->config.sync_mode != WAL_SYNC_NEVER) {
            if ((rc = w->fs.fdatasync(w->fs.ctx, w->fd)) < 0)
                return poison(w, rc);
            w->offset_synced = w->offset_written;
            w->index_durable = w->index_written;
        }
        (void)w->fs.close(w->fs.ctx, w->fd);
        w->fd = -1;
    }
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, w->dir, index_first);
    if (w->config.preallocate && w->spare_fd < 0 && !w->spare_preparing &&
        (rc = spare_make_inline(w)) < 0)
        return poison(w, rc);
    w->tail_preallocated = w->spare_fd >= 0;
    if (w->tail_preallocated) {
        if ((rc = spare_activate(w, path, index_first, &w->fd)) < 0)
            return poison(w, rc);
    } else {
        /* No preallocation, or the spare is late: a growing file, as group commit must not wait
         * for a segment's worth of zeros. */
        int fd;
        if ((rc = w->fs.open(w->fs.ctx, path, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &fd)) < 0)
            return poison(w, rc);
        w->fd = fd;
        uint8_t hdr[WAL_SEGMENT_HEADER_BYTES];
        wal_segment_header_encode(hdr, index_first);
        if ((rc = sm_fs_pwrite(&w->fs, fd, hdr, sizeof hdr, 0)) < 0 ||
            (rc = w->fs.fdatasync(w->fs.ctx, fd)) < 0 ||
            (rc = w->fs.fsync_dir(w->fs.ctx, w->dir)) < 0)
            return poison(w, rc);
    }
    w->segments[w->segments_count++] = (struct wal_segment){
        .index_first = index_first,
        .index_last = index_first - 1,
        .size_bytes = WAL_SEGMENT_HEADER_BYTES,
    };
    w->offset_written = w->offset_synced = WAL_SEGMENT_HEADER_BYTES;
    return 0;
}

int wal_flush_begin(struct wal *w, bool sync, struct wal_flush *out)
{
    ASSERT(!w->flushing);
    ASSERT(!w->split || w->split_at <= w->buf_len);
    memset(out, 0, sizeof *out);
    out->fd = -1;
    if (w->failed)
        return w->failed;
    if (w->config.read_only)
        return SM_E_STATE;
    if (w->config.sync_mode == WAL_SYNC_NEVER)
        sync = false;
    uint32_t n = w->split ? w->split_at : w->buf_len;
    if (n > 0 && w->buf_new_segment) {
        int rc = segment_roll(w, w->index_written + 1);
        if (rc < 0)
            return rc;
        w->buf_new_segment = false;
    }
    bool need_sync = sync && w->fd >= 0 && (n > 0 || w->offset_synced < w->offset_written);
    if (n == 0 && !need_sync)
        return 0;
    ASSERT(w->fd >= 0);
    uint8_t *batch = w->buf[w->buf_active];
    uint32_t rest = w->buf_len - n;
    w->buf_active ^= 1;
    if (rest)
        memcpy(w->buf[w->buf_active], batch + n, rest);
    out->fd = w->fd;
    out->iov[0] = (struct iovec){.iov_base = batch, .iov_len = n};
    out->iovcnt = 1;
    out->offset = w->offset_written;
    out->bytes = n;
    out->sync = need_sync;
    out->index_last = n == 0     ? w->index_written
                      : w->split ? w->split_index_last
                                 : w->index_next - 1;
    w->buf_len = rest;
    if (w->split) {
        w->split = false;
        w->buf_new_segment = true;
    }
    w->inflight = *out;
    w->flushing = true;
    return 0;
}

int wal_flush_done(struct wal *w, int result)
{
    ASSERT(w->flushing);
    ASSERT(w->segments_count > 0);
    w->flushing = false;
    if (result < 0)
        return poison(w, result);
    const struct wal_flush *f = &w->inflight;
    struct wal_segment *seg = &w->segments[w->segments_count - 1];
    ASSERT(f->offset == w->offset_written);
    w->offset_written += f->bytes;
    seg->size_bytes = w->offset_written;
    if (f->bytes) {
        ASSERT(f->index_last >= seg->index_first && f->index_last > w->index_written);
        seg->index_last = f->index_last;
        w->index_written = f->index_last;
    }
    if (f->sync) {
        w->offset_synced = w->offset_written;
        w->index_durable = w->index_written;
    }
    ASSERT(f->bytes == 0 || seg->size_bytes <= w->config.segment_bytes);
    return 0;
}

/* Writes (and syncs) until nothing is buffered; at most two rounds (one segment boundary). */
static int flush_all(struct wal *w, bool sync)
{
    for (;;) {
        struct wal_flush f;
        int rc = wal_flush_begin(w, sync, &f);
        if (rc < 0)
            return rc;
        if (f.bytes == 0 && !f.sync)
            return 0;
        int res = 0;
        if (f.bytes)
            res = w->fs.pwritev(w->fs.ctx, f.fd, f.iov, f.iovcnt, f.offset);
        if (res == 0 && f.sync)
            res = w->fs.fdatasync(w->fs.ctx, f.fd);
        if ((rc = wal_flush_done(w, res)) < 0)
            return rc;
    }
}

int wal_sync(struct wal *w, uint64_t *index_acked)
{
    int rc = flush_all(w, true);
    if (rc < 0)
        return rc;
    ASSERT(w->buf_len == 0);
    *index_acked = wal_index_acked(w);
    return 0;
}

int wal_write(struct wal *w)
{
    return flush_all(w, false);
}

/* ---- truncation ---------------------------------------------------------------------------- */

/* The byte offset of record `index` inside segment s, walking the record headers. */
static int record_offset(struct wal *w, int fd, const struct wal_segment *s, uint64_t index,
                         uint64_t *offset)
{
    ASSERT(index >= s->index_first && index <= s->index_last + 1);
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    for (uint64_t i = s->index_first; i < index; i++) {
        uint8_t hdr[WAL_RECORD_HEADER_BYTES];
        int rc = sm_fs_pread_full(&w->fs, fd, hdr, sizeof hdr, off);
        if (rc < 0)
            return poison(w, rc);
        /* Written by us and checked at open: a different index means the disk changed. */
        if (get_u64(hdr + 8) != i || get_u32(hdr) > w->config.payload_bytes_max)
            return SM_E_CORRUPT;
        off += WAL_RECORD_HEADER_BYTES + (uint64_t)get_u32(hdr);
    }
    ASSERT(off <= s->size_bytes);
    *offset = off;
    return 0;
}

/* Unlinks segments [first, segments_count), newest first, then fsyncs the directory. */
static int drop_segments_from(struct wal *w, uint32_t first)
{
    ASSERT(first > 0 && first <= w->segments_count);
    for (uint32_t i = w->segments_count; i-- > first;) {
        if (i == w->segments_count - 1 && w->fd >= 0) {
            (void)w->fs.close(w->fs.ctx, w->fd);
            w->fd = -1;
        }
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, w->dir, w->segments[i].index_first);
        int rc = w->fs.unlink(w->fs.ctx, path);
        if (rc < 0)
            return poison(w, rc);
        w->segments_count = i;
    }
    int rc = w->fs.fsync_dir(w->fs.ctx, w->dir);
    return rc < 0 ? poison(w, rc) : 0;
}

int wal_truncate_after(struct wal *w, uint64_t index)
{
    if (w->failed)
        return w->failed;
    if (w->config.read_only || w->flushing || index < w->index_floor)
        return SM_E_STATE;
    if (index + 1 >= w->index_next)
        return 0;
    int rc;
    if (w->buf_len > 0 && (rc = wal_write(w)) < 0)
        return rc;
    ASSERT(w->buf_len == 0 && !w->split && !w->buf_new_segment);
    uint32_t s = w->segments_count;
    while (s > 0 && w->segments[s - 1].index_first > index + 1)
        s--;
    ASSERT(s > 0); /* index >= floor, and the log holds every record after the floor */
    s--;
    if (s + 1 < w->segments_count && (rc = drop_segments_from(w, s + 1)) < 0)
        return rc;
    struct wal_segment *seg = &w->segments[s];
    if (w->fd < 0) {
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, w->dir, seg->index_first);
        if ((rc = w->fs.open(w->fs.ctx, path, SM_FS_WRITE, &w->fd)) < 0)
            return poison(w, rc);
    }
    uint64_t off;
    if ((rc = record_offset(w, w->fd, seg, index + 1, &off)) < 0)
        return rc;
    uint64_t file_bytes;
    if ((rc = w->fs.size(w->fs.ctx, w->fd, &file_bytes)) < 0)
        return poison(w, rc);
    w->tail_preallocated = w->config.preallocate && file_bytes == w->config.segment_bytes;
    /* Preallocated and cut at the end of its records: the zeros after them are durable. */
    bool in_place = w->tail_preallocated && off == seg->size_bytes;
    if (!in_place && ((rc = w->fs.truncate(w->fs.ctx, w->fd, off)) < 0 ||
                      (rc = w->fs.fdatasync(w->fs.ctx, w->fd)) < 0))
        return poison(w, rc);
    /* Preallocated: the zeros back, after the cut is durable (see the file comment). */
    if (!in_place && w->tail_preallocated &&
        ((rc = wal_write_zeros(&w->fs, w->fd, off, w->config.segment_bytes)) < 0 ||
         (rc = w->fs.fdatasync(w->fs.ctx, w->fd)) < 0))
        return poison(w, rc);
    seg->size_bytes = off;
    seg->index_last = index;
    w->offset_written = w->offset_synced = w->tail_offset = off;
    w->index_next = index + 1;
    w->index_written = index;
    if (w->index_durable > index)
        w->index_durable = index;
    return 0;
}

void wal_close(struct wal *w)
{
    /* A flush still in flight is abandoned (a crashed or failing process): its records were
     * never acknowledged. The caller must not call wal_flush_done for it. */
    if (w->fd >= 0)
        (void)w->fs.close(w->fs.ctx, w->fd);
    if (w->spare_fd >= 0)
        (void)w->fs.close(w->fs.ctx, w->spare_fd); /* the file stays; the next open removes it */
    free(w->buf[0]);
    free(w->buf[1]);
    free(w->segments);
    memset(w, 0, sizeof *w);
    w->fd = -1;
    w->spare_fd = -1;
}
