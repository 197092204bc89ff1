/*
 * Reading the log in order, for replay at start-up and for shipping records to replicas. The
 * iterator reads segment files through a buffer of at least one full record (plus slack, so
 * small records come many per read) and checks every record again as it hands it out: a read is
 * paired with the same checks as recovery, because the disk may have changed since.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/wal.h"

#define ITER_BUF_BYTES_MIN (64 * 1024)

int wal_iter_init(struct wal_iter *it, const struct wal *w, uint64_t index_from)
{
    ASSERT(it != NULL && w != NULL && w->buf[0] != NULL);
    memset(it, 0, sizeof *it);
    it->w = w;
    it->fd = -1;
    if (index_from > w->index_written + 1)
        return SM_E_NOTFOUND;
    uint32_t s = w->segments_count;
    while (s > 0 && w->segments[s - 1].index_first > index_from)
        s--;
    if (index_from <= w->index_written && s == 0)
        return SM_E_NOTFOUND; /* compacted away */
    it->segment = index_from > w->index_written ? w->segments_count : s - 1;
    it->buf_cap = w->config.payload_bytes_max + WAL_RECORD_HEADER_BYTES;
    if (it->buf_cap < ITER_BUF_BYTES_MIN)
        it->buf_cap = ITER_BUF_BYTES_MIN;
    it->buf = malloc(it->buf_cap);
    if (!it->buf)
        return SM_E_NOMEM;
    /* Skip to index_from: records before it in its segment are read and dropped. */
    while (it->segment < w->segments_count) {
        const struct wal_segment *seg = &w->segments[it->segment];
        if (it->fd < 0 && index_from == seg->index_first)
            break;
        if (it->fd >= 0 && it->index_next == index_from)
            break;
        struct wal_record r;
        int rc = wal_iter_next(it, &r);
        if (rc <= 0) {
            wal_iter_free(it);
            return rc < 0 ? rc : SM_E_NOTFOUND;
        }
    }
    return 0;
}

static int iter_open_segment(struct wal_iter *it, uint64_t *end)
{
    const struct wal *w = it->w;
    const struct wal_segment *seg = &w->segments[it->segment];
    char path[WAL_PATH_BYTES];
    wal_segment_name(path, sizeof path, w->dir, seg->index_first);
    int rc = w->fs.open(w->fs.ctx, path, SM_FS_READ, &it->fd);
    if (rc < 0)
        return SM_E_IO;
    it->offset = WAL_SEGMENT_HEADER_BYTES;
    it->buf_len = it->buf_pos = 0;
    it->index_next = seg->index_first;
    *end = seg->size_bytes;
    /* Segments only covered by a snapshot were not read at open: their size is the file's. */
    if (*end == 0 && w->fs.size(w->fs.ctx, it->fd, end) < 0)
        return SM_E_IO;
    return 0;
}

/* Makes room and reads more of the segment; 0 when nothing more is there. */
static int iter_refill(struct wal_iter *it, uint64_t end, size_t *got)
{
    const struct wal *w = it->w;
    memmove(it->buf, it->buf + it->buf_pos, it->buf_len - it->buf_pos);
    it->offset += it->buf_pos;
    it->buf_len -= it->buf_pos;
    it->buf_pos = 0;
    *got = 0;
    uint64_t at = it->offset + it->buf_len;
    if (at >= end)
        return 0;
    ASSERT(it->buf_len < it->buf_cap);
    uint64_t want = end - at < it->buf_cap - it->buf_len ? end - at : it->buf_cap - it->buf_len;
    int rc = w->fs.pread(w->fs.ctx, it->fd, it->buf + it->buf_len, (size_t)want, at, got);
    if (rc < 0)
        return SM_E_IO;
    it->buf_len += (uint32_t)*got;
    return 0;
}

int wal_iter_next(struct wal_iter *it, struct wal_record *out)
{
    const struct wal *w = it->w;
    ASSERT(it->buf != NULL);
    for (;;) {
        if (it->segment >= w->segments_count)
            return 0;
        if (it->fd < 0) {
            int rc = iter_open_segment(it, &it->end);
            if (rc < 0)
                return rc;
        }
        /* A segment ends after its last record: in a preallocated file zeros follow. */
        if (it->index_next > w->segments[it->segment].index_last) {
            (void)w->fs.close(w->fs.ctx, it->fd);
            it->fd = -1;
            it->segment++;
            continue;
        }
        const uint64_t seg_end = it->end;
        const char *why;
        int d = wal_record_decode(it->buf + it->buf_pos, it->buf_len - it->buf_pos,
                                  w->config.payload_bytes_max, out, &why);
        if (d == 1) {
            if (out->index != it->index_next)
                return SM_E_CORRUPT;
            it->buf_pos += WAL_RECORD_HEADER_BYTES + out->len;
            it->index_next++;
            ASSERT(it->offset + it->buf_pos <= seg_end);
            return 1;
        }
        if (d < 0)
            return SM_E_CORRUPT;
        size_t got;
        int rc = iter_refill(it, seg_end, &got);
        if (rc < 0)
            return rc;
        if (got > 0)
            continue;
        if (it->buf_len > 0)
            return SM_E_CORRUPT; /* a partial record inside what was written */
        (void)w->fs.close(w->fs.ctx, it->fd);
        it->fd = -1;
        it->segment++;
    }
}

void wal_iter_free(struct wal_iter *it)
{
    if (it->fd >= 0 && it->w)
        (void)it->w->fs.close(it->w->fs.ctx, it->fd);
    free(it->buf);
    memset(it, 0, sizeof *it);
    it->fd = -1;
}
