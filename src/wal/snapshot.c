/*
 * Snapshots: the engine's state as of one log index, as opaque bytes, so that recovery does not
 * replay the log from the beginning and old segments can be deleted.
 *
 * FILE "snap-<index, 20 digits>.snap" = 48-byte header + payload:
 *
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  0  magic "SMSNAPSH" (8 bytes)                                        |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   |  8  version = 1 (u32)             | 12  reserved = 0 (u32)            |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 16  index (u64): the last log record the state includes (= name)     |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 24  epoch (u64) of that record                                       |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 32  payload length (u64)                                             |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 40  CRC32C of the payload (u32)   | 44  CRC32C of bytes 0..43 (u32)   |
 *   +--------+--------+--------+--------+--------+--------+--------+--------+
 *   | 48  payload                                                           |
 *
 * Atomicity: the writer fills "<name>.tmp" (payload first, header last, since the length and
 * CRC are known only at the end), fsyncs it, renames it to its name and fsyncs the directory.
 * A crash before the rename leaves a temp file that recovery deletes; after it, a complete
 * snapshot. A half-written snapshot is therefore never under its final name, and even if media
 * damage makes one fail its checks, recovery falls back to the previous one (which is why the
 * newest N are kept, and segments are deleted only when the OLDEST kept snapshot covers them).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/crc32c.h"
#include "wal/wal.h"

static const uint8_t snapshot_magic[8] = {'S', 'M', 'S', 'N', 'A', 'P', 'S', 'H'};
#define SNAPSHOT_VERSION     1
#define SNAPSHOT_CHUNK_BYTES (256 * 1024)

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

int wal_snapshot_begin(struct wal *w, struct wal_snapshot_writer *sw, uint64_t index,
                       uint64_t epoch)
{
    ASSERT(w != NULL && sw != NULL && w->buf[0] != NULL);
    memset(sw, 0, sizeof *sw);
    sw->fd = -1;
    /* Only acknowledged state: a snapshot that included records a crash could still take back
     * would outlive them and hand a replica state the log never had. */
    if (w->config.read_only || index > wal_index_acked(w) || index < w->index_floor)
        return SM_E_STATE;
    sw->fs = w->fs;
    memcpy(sw->dir, w->dir, sizeof sw->dir);
    wal_snapshot_name(sw->path, sizeof sw->path, w->dir, index);
    int n = snprintf(sw->path_tmp, sizeof sw->path_tmp, "%s.tmp", sw->path);
    ASSERT(n > 0 && (size_t)n < sizeof sw->path_tmp);
    sw->index = index;
    sw->epoch = epoch;
    sw->bytes_max = w->config.snapshot_bytes_max;
    int rc =
        sw->fs.open(sw->fs.ctx, sw->path_tmp, SM_FS_WRITE | SM_FS_CREATE | SM_FS_TRUNC, &sw->fd);
    if (rc < 0) {
        sw->fd = -1;
        return SM_E_IO;
    }
    return 0;
}

int wal_snapshot_write(struct wal_snapshot_writer *sw, const void *chunk, size_t len)
{
    ASSERT(sw->fd >= 0 || sw->failed);
    ASSERT(chunk != NULL || len == 0);
    if (sw->failed)
        return sw->failed;
    if (len > sw->bytes_max - sw->len)
        return sw->failed = SM_E_TOOLARGE;
    if (sm_fs_pwrite(&sw->fs, sw->fd, chunk, len, WAL_SNAPSHOT_HEADER_BYTES + sw->len) < 0)
        return sw->failed = SM_E_IO;
    sw->crc = sm_crc32c(sw->crc, chunk, len);
    sw->len += len;
    return 0;
}

static void snapshot_header_encode(uint8_t h[WAL_SNAPSHOT_HEADER_BYTES], uint64_t index,
                                   uint64_t epoch, uint64_t len, uint32_t crc)
{
    memset(h, 0, WAL_SNAPSHOT_HEADER_BYTES);
    memcpy(h, snapshot_magic, 8);
    put_le(h + 8, SNAPSHOT_VERSION, 4);
    put_le(h + 16, index, 8);
    put_le(h + 24, epoch, 8);
    put_le(h + 32, len, 8);
    put_le(h + 40, crc, 4);
    put_le(h + 44, sm_crc32c(0, h, 44), 4);
}

int wal_snapshot_finish(struct wal_snapshot_writer *sw)
{
    ASSERT(sw->fd >= 0 || sw->failed);
    if (sw->failed)
        return sw->failed;
    uint8_t h[WAL_SNAPSHOT_HEADER_BYTES];
    snapshot_header_encode(h, sw->index, sw->epoch, sw->len, sw->crc);
    int rc = sm_fs_pwrite(&sw->fs, sw->fd, h, sizeof h, 0);
    if (rc == 0)
        rc = sw->fs.fsync(sw->fs.ctx, sw->fd);
    (void)sw->fs.close(sw->fs.ctx, sw->fd);
    sw->fd = -1;
    if (rc == 0)
        rc = sw->fs.rename(sw->fs.ctx, sw->path_tmp, sw->path);
    if (rc == 0)
        rc = sw->fs.fsync_dir(sw->fs.ctx, sw->dir);
    if (rc < 0)
        return sw->failed = SM_E_IO;
    return 0;
}

void wal_snapshot_abort(struct wal_snapshot_writer *sw)
{
    if (sw->fd >= 0)
        (void)sw->fs.close(sw->fs.ctx, sw->fd);
    sw->fd = -1;
    if (sw->path_tmp[0])
        (void)sw->fs.unlink(sw->fs.ctx, sw->path_tmp);
    sw->failed = SM_E_STATE;
}

/* Reads and checks a snapshot header against the file size. */
static int header_read(const struct sm_fs *fs, int fd, uint64_t bytes_max, uint64_t *index,
                       uint64_t *epoch, uint64_t *len, uint32_t *crc, const char **why)
{
    uint64_t size;
    uint8_t h[WAL_SNAPSHOT_HEADER_BYTES];
    int rc = fs->size(fs->ctx, fd, &size);
    if (rc < 0)
        return SM_E_IO;
    if (size < WAL_SNAPSHOT_HEADER_BYTES) {
        *why = "short snapshot header";
        return SM_E_CORRUPT;
    }
    if (sm_fs_pread_full(fs, fd, h, sizeof h, 0) < 0)
        return SM_E_IO;
    if (get_le(h + 44, 4) != sm_crc32c(0, h, 44)) {
        *why = "snapshot header checksum mismatch";
        return SM_E_CORRUPT;
    }
    if (memcmp(h, snapshot_magic, 8) != 0 || get_le(h + 8, 4) != SNAPSHOT_VERSION) {
        *why = "not a snapshot of this version";
        return SM_E_CORRUPT;
    }
    *index = get_le(h + 16, 8);
    *epoch = get_le(h + 24, 8);
    *len = get_le(h + 32, 8);
    *crc = (uint32_t)get_le(h + 40, 4);
    if (*len > bytes_max) {
        *why = "snapshot larger than the maximum";
        return SM_E_CORRUPT;
    }
    if (size - WAL_SNAPSHOT_HEADER_BYTES != *len) {
        *why = "snapshot size differs from its header";
        return SM_E_CORRUPT;
    }
    return 0;
}

/* Reads the payload into dst (or only checksums it when dst is NULL) and checks its CRC. */
static int payload_read(const struct sm_fs *fs, int fd, uint64_t len, uint32_t crc, uint8_t *dst,
                        const char **why)
{
    uint8_t *chunk = dst ? NULL : malloc(SNAPSHOT_CHUNK_BYTES);
    if (!dst && !chunk)
        return SM_E_NOMEM;
    uint32_t c = 0;
    int rc = 0;
    for (uint64_t off = 0; off < len && rc == 0;) {
        size_t n = len - off < SNAPSHOT_CHUNK_BYTES ? (size_t)(len - off) : SNAPSHOT_CHUNK_BYTES;
        uint8_t *p = dst ? dst + off : chunk;
        if (sm_fs_pread_full(fs, fd, p, n, WAL_SNAPSHOT_HEADER_BYTES + off) < 0)
            rc = SM_E_IO;
        c = sm_crc32c(c, p, n);
        off += n;
    }
    free(chunk);
    if (rc == 0 && c != crc) {
        *why = "snapshot payload checksum mismatch";
        rc = SM_E_CORRUPT;
    }
    return rc;
}

int wal_snapshot_check(const struct sm_fs *fs, const char *path, uint64_t bytes_max,
                       uint64_t *index, uint64_t *epoch, uint64_t *len, const char **why)
{
    int fd;
    uint32_t crc;
    if (fs->open(fs->ctx, path, SM_FS_READ, &fd) < 0)
        return SM_E_IO;
    int rc = header_read(fs, fd, bytes_max, index, epoch, len, &crc, why);
    if (rc == 0)
        rc = payload_read(fs, fd, *len, crc, NULL, why);
    (void)fs->close(fs->ctx, fd);
    return rc;
}

int wal_snapshot_load(const struct wal *w, const struct wal_recovery *rep, uint8_t **data,
                      uint64_t *len)
{
    ASSERT(data != NULL && len != NULL);
    *data = NULL;
    *len = 0;
    if (!rep->snapshot_found)
        return SM_E_NOTFOUND;
    int fd;
    if (w->fs.open(w->fs.ctx, rep->snapshot_path, SM_FS_READ, &fd) < 0)
        return SM_E_IO;
    uint64_t index, epoch, n;
    uint32_t crc;
    const char *why;
    int rc = header_read(&w->fs, fd, w->config.snapshot_bytes_max, &index, &epoch, &n, &crc, &why);
    if (rc == 0 && index != rep->snapshot_index)
        rc = SM_E_CORRUPT;
    uint8_t *buf = NULL;
    if (rc == 0 && (n > SIZE_MAX - 1 || !(buf = malloc((size_t)n + 1))))
        rc = SM_E_NOMEM;
    if (rc == 0)
        rc = payload_read(&w->fs, fd, n, crc, buf, &why);
    (void)w->fs.close(w->fs.ctx, fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *data = buf;
    *len = n;
    return 0;
}

/* The payload's CRC over memory already read (a mapping). */
static int payload_check(const uint8_t *p, uint64_t len, uint32_t crc)
{
    uint32_t c = 0;
    for (uint64_t off = 0; off < len;) {
        size_t n = len - off < SNAPSHOT_CHUNK_BYTES ? (size_t)(len - off) : SNAPSHOT_CHUNK_BYTES;
        c = sm_crc32c(c, p + off, n);
        off += n;
    }
    return c == crc ? 0 : SM_E_CORRUPT;
}

int wal_snapshot_view(const struct wal *w, const struct wal_recovery *rep,
                      struct wal_snapshot_view *view)
{
    ASSERT(view != NULL);
    memset(view, 0, sizeof *view);
    if (w->fs.map == NULL || w->fs.unmap == NULL) {
        uint8_t *data;
        uint64_t len;
        int rc = wal_snapshot_load(w, rep, &data, &len);
        if (rc == 0)
            *view = (struct wal_snapshot_view){.data = data, .len = len, .heap = data};
        return rc;
    }
    if (!rep->snapshot_found)
        return SM_E_NOTFOUND;
    int fd;
    if (w->fs.open(w->fs.ctx, rep->snapshot_path, SM_FS_READ, &fd) < 0)
        return SM_E_IO;
    uint64_t index, epoch, n;
    uint32_t crc;
    const char *why;
    const void *map = NULL;
    int rc = header_read(&w->fs, fd, w->config.snapshot_bytes_max, &index, &epoch, &n, &crc, &why);
    if (rc == 0 && index != rep->snapshot_index)
        rc = SM_E_CORRUPT;
    /* The header is mapped too (offsets stay page-aligned); the payload starts after it. */
    if (rc == 0 && w->fs.map(w->fs.ctx, fd, WAL_SNAPSHOT_HEADER_BYTES + n, &map) < 0)
        rc = SM_E_IO;
    (void)w->fs.close(w->fs.ctx, fd);
    if (rc == 0)
        rc = payload_check((const uint8_t *)map + WAL_SNAPSHOT_HEADER_BYTES, n, crc);
    if (rc != 0) {
        if (map)
            (void)w->fs.unmap(w->fs.ctx, map, WAL_SNAPSHOT_HEADER_BYTES + n);
        return rc;
    }
    *view = (struct wal_snapshot_view){
        .data = (const uint8_t *)map + WAL_SNAPSHOT_HEADER_BYTES, .len = n, .map = map};
    return 0;
}

void wal_snapshot_unview(const struct wal *w, struct wal_snapshot_view *view)
{
    ASSERT(view != NULL && (view->map == NULL || view->heap == NULL));
    if (view->map) {
        int rc = w->fs.unmap(w->fs.ctx, view->map, WAL_SNAPSHOT_HEADER_BYTES + view->len);
        ASSERT(rc == 0); /* the range is exactly one mapping we made */
    }
    free(view->heap);
    memset(view, 0, sizeof *view);
}

/* ---- compaction ---------------------------------------------------------------------------- */

struct snap_list {
    uint64_t idx[SM_WAL_SNAPSHOTS_KEEP_MAX + 64];
    uint32_t count;
    bool overflow;
};

static int collect_snapshot(void *ctx, const char *name)
{
    struct snap_list *l = ctx;
    uint64_t idx;
    if (!wal_parse_snapshot_name(name, &idx))
        return 0;
    if (l->count == sizeof l->idx / sizeof l->idx[0]) {
        l->overflow = true; /* the rest are deleted by the next compaction */
        return 0;
    }
    l->idx[l->count++] = idx;
    return 0;
}

static int cmp_desc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x > y ? -1 : x < y;
}

/* Drops segments [0, n) from the disk and the table. */
static int drop_oldest_segments(struct wal *w, uint32_t n)
{
    ASSERT(n < w->segments_count); /* never the last one */
    for (uint32_t i = 0; i < n; i++) {
        char path[WAL_PATH_BYTES];
        wal_segment_name(path, sizeof path, w->dir, w->segments[i].index_first);
        int rc = w->fs.unlink(w->fs.ctx, path);
        if (rc < 0 && rc != -ENOENT)
            return SM_E_IO;
    }
    memmove(w->segments, w->segments + n, (w->segments_count - n) * sizeof w->segments[0]);
    w->segments_count -= n;
    return 0;
}

int wal_compact(struct wal *w)
{
    ASSERT(w->buf[0] != NULL);
    if (w->config.read_only)
        return SM_E_STATE;
    struct snap_list l = {.count = 0};
    if (w->fs.list(w->fs.ctx, w->dir, collect_snapshot, &l) < 0)
        return SM_E_IO;
    if (l.count == 0)
        return 0;
    qsort(l.idx, l.count, sizeof l.idx[0], cmp_desc);
    uint32_t keep = l.count < w->config.snapshots_keep ? l.count : w->config.snapshots_keep;
    for (uint32_t i = keep; i < l.count; i++) {
        char path[WAL_PATH_BYTES];
        wal_snapshot_name(path, sizeof path, w->dir, l.idx[i]);
        int rc = w->fs.unlink(w->fs.ctx, path);
        if (rc < 0 && rc != -ENOENT)
            return SM_E_IO;
    }
    if (l.idx[0] > w->index_floor && l.idx[0] <= w->index_written)
        w->index_floor = l.idx[0];
    /* Every kept snapshot must still be able to replay: only what the oldest covers goes. */
    uint64_t covered = l.idx[keep - 1];
    uint32_t n = 0;
    while (n + 1 < w->segments_count && w->segments[n].index_last <= covered)
        n++;
    int rc = n ? drop_oldest_segments(w, n) : 0;
    if (rc == 0 && w->fs.fsync_dir(w->fs.ctx, w->dir) < 0)
        rc = SM_E_IO;
    return rc;
}
