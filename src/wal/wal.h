/*
 * The write-ahead log of one partition: segmented files of framed, checksummed records, group
 * commit, truncation of a diverging suffix, an iterator for replay and shipping, snapshots that
 * let old segments go, and crash recovery. The byte layout and the recovery rules are at the top
 * of wal.c; docs/storage.md explains them for operators.
 *
 * Group commit, Sans-I/O: appends only copy into a buffer allocated at open. Writing is split so
 * the server can run it on its fsync thread while the loop keeps appending:
 *
 *   wal_append(r1) wal_append(r2) ...        copies, no syscall
 *   wal_flush_begin(&f)                      the batch: fd + one iovec + offset + "sync?"
 *       (any thread) pwritev(f.fd, f.iov, f.offset); fdatasync(f.fd) if f.sync
 *   wal_flush_done(result)                   index_durable advances; replies may go out
 *
 * wal_sync() does all three for tests and tools. Only one flush is in flight at a time; appends
 * during a flush go to the other buffer. After any failed write or sync the log is poisoned
 * (every call returns SM_E_IO): after a failed fsync the page cache can no longer be trusted, so
 * the only safe way on is a restart and recovery from what is really on disk.
 *
 * Not thread-safe except as above: one owner thread calls everything; the flush descriptor may be
 * carried out by another thread between begin and done.
 */
#ifndef SHARDMART_WAL_WAL_H
#define SHARDMART_WAL_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "limits.h"
#include "util/assert.h"
#include "wal/fs.h"

#define WAL_RECORD_HEADER_BYTES   40
#define WAL_SEGMENT_HEADER_BYTES  32
#define WAL_SNAPSHOT_HEADER_BYTES 48
/* Room for the directory, a '/', and the longest file name we make (with a .corrupt-N suffix). */
#define WAL_PATH_BYTES (SM_WAL_DIR_BYTES_MAX + 64)
/* The next preallocated segment while it is made and until it takes records: zeros, synced, and
 * renamed to its segment name once its header is written. Recovery deletes it. */
#define WAL_SPARE_NAME "wal-spare.tmp"

/* When the log makes a flushed batch durable. */
enum wal_sync_mode {
    WAL_SYNC_ALWAYS, /* one fdatasync per batch before any reply: nothing acknowledged is lost */
    WAL_SYNC_EVERY,  /* the caller syncs every N ms: a crash loses at most the last N ms */
    WAL_SYNC_NEVER,  /* never: the OS decides; for benchmarks only */
};

struct wal_config {
    const char *dir;             /* the data directory; created if missing; copied at open */
    const struct sm_fs *fs;      /* NULL = the real file system; borrowed, must outlive the wal */
    uint64_t segment_bytes;      /* 0 = SM_WAL_SEGMENT_BYTES_DEFAULT */
    uint32_t batch_bytes;        /* 0 = SM_WAL_BATCH_BYTES_DEFAULT; <= segment_bytes / 2 */
    uint32_t payload_bytes_max;  /* 0 = SM_WAL_RECORD_PAYLOAD_BYTES_MAX */
    uint32_t snapshots_keep;     /* 0 = SM_WAL_SNAPSHOTS_KEEP_DEFAULT */
    uint64_t snapshot_bytes_max; /* 0 = SM_WAL_SNAPSHOT_BYTES_MAX */
    uint32_t segments_max;       /* 0 = SM_WAL_SEGMENTS_MAX */
    enum wal_sync_mode sync_mode;
    /* Segment files are created at their full size, filled with zeros by real writes and synced
     * before they take records, so a batch's fdatasync only flushes data, never the file size
     * (see "Preallocated segments" in wal.c). The next one is made ahead by wal_spare_*. */
    bool preallocate;
    bool repair;    /* corruption before the tail: keep a copy, truncate, go on */
    bool read_only; /* verify: report what recovery would do, change nothing, no appends */
    /* 0 or 1: the log starts at index 1 (or after its snapshot). Larger: an outer layer (the
     * partition log, plog.c) deleted a prefix of segments by rules of its own; the first segment
     * may then begin anywhere at or below index_start (a segment past it means one is missing). */
    uint64_t index_start;
};

/* One log record. `payload` is borrowed: by wal_append for the call only; from an iterator
 * until its next call. Type 0 is never valid, so zeroed disk space never parses as a record.
 * `head` (optional, head_len bytes) is written just before the payload, as if the two were one
 * payload of head_len + len bytes, so a layer above can prefix its own fields without copying
 * the payload first (the partition log does). Decoding never splits them: head_len is 0 and
 * payload holds both. */
struct wal_record {
    uint8_t type;
    uint64_t epoch;
    uint64_t index;
    uint64_t timestamp_us;
    const void *payload;
    uint32_t len;
    const void *head;
    uint32_t head_len;
};

/* What wal_open found and did. Paths are full paths; empty strings when not applicable. */
struct wal_recovery {
    bool snapshot_found;
    uint64_t snapshot_index;
    uint64_t snapshot_epoch;
    uint64_t snapshot_bytes;
    char snapshot_path[WAL_PATH_BYTES];
    uint32_t snapshots_corrupt; /* newer snapshots skipped because they failed their checks */
    char snapshot_corrupt_path[WAL_PATH_BYTES]; /* the newest of those */
    uint64_t index_first; /* first record after the snapshot (index_last + 1 when none) */
    uint64_t index_last;  /* last record in the log (or the snapshot index) */
    uint32_t segments;
    uint32_t temp_files_removed; /* snapshot temp files of an interrupted snapshot */
    uint32_t spare_removed;      /* a spare segment (WAL_SPARE_NAME) left by a crash or a close */
    /* A torn tail: the unsynced end of the last segment, cut off. */
    bool torn;
    char torn_path[WAL_PATH_BYTES];
    uint64_t torn_offset;
    uint64_t torn_bytes;
    /* Corruption before the tail: wal_open returned SM_E_CORRUPT, or repaired it. */
    bool corrupt;
    char corrupt_path[WAL_PATH_BYTES];
    uint64_t corrupt_offset;
    char corrupt_reason[96];
    bool repaired;
    char repair_copy_path[WAL_PATH_BYTES]; /* the damaged file's copy */
    uint32_t repair_files_set_aside;       /* later segments renamed to .corrupt-N */
};

/* One segment file, in the table kept in memory. */
struct wal_segment {
    uint64_t index_first; /* from its name; index_last == index_first - 1 while empty */
    uint64_t index_last;
    uint64_t size_bytes;
};

/* A batch handed to whoever writes it: pwritev(fd, iov, iovcnt, offset), then fdatasync(fd) if
 * sync. bytes == 0 and !sync means there was nothing to do. */
struct wal_flush {
    int fd;
    struct iovec iov[1];
    int iovcnt;
    uint64_t offset;
    uint64_t bytes;
    bool sync;
    uint64_t index_last; /* the last record of this batch */
};

/* The log. Caller-owned memory; wal_open fills it, wal_close frees what open allocated. */
struct wal {
    struct wal_config config; /* config.dir points at dir below */
    char dir[SM_WAL_DIR_BYTES_MAX + 1];
    struct sm_fs fs;
    /* The segment table grows (rarely: once per segment) up to config.segments_max, so an idle
     * log costs a few hundred bytes, not the whole bound. */
    struct wal_segment *segments;
    uint32_t segments_count;
    uint32_t segments_cap;
    int fd;                  /* the last segment, open for appending; -1 when none is open */
    uint64_t offset_written; /* bytes of the last segment written */
    uint64_t offset_synced;  /* ... and made durable */
    uint8_t *buf[2];         /* the filling batch and the one in flight */
    uint32_t buf_active;
    uint32_t buf_len;
    bool buf_new_segment; /* the filling batch starts a new segment */
    bool split;           /* the filling batch spans a segment boundary at split_at */
    uint32_t split_at;
    uint64_t split_index_last; /* the last record before the boundary */
    uint64_t tail_offset;      /* where the next appended record lands in its segment */
    uint64_t index_next;       /* the index the next append must carry */
    uint64_t index_written;    /* last index handed to the OS */
    uint64_t index_durable;    /* last index known fsync'ed */
    uint64_t index_floor;      /* the newest snapshot's index: nothing at or below is truncated */
    bool flushing;
    struct wal_flush inflight;
    bool tail_preallocated; /* the open segment is a full-size zero-filled file */
    int spare_fd;           /* a ready spare segment (WAL_SPARE_NAME), or -1 */
    bool spare_preparing;   /* a wal_spare_job is out */
    int failed;             /* sticky SM_E_IO after a failed write or sync */
    int errno_last;         /* the last errno seen, for messages */
};

/* Validates config, recovers the directory (see wal.c) and readies the log for appending.
 * `report` (caller-owned, required) says what was found and done. Errors: SM_E_BADARG (config),
 * SM_E_CORRUPT (corruption before the tail and not repair mode: report names the file and
 * offset), SM_E_IO, SM_E_NOMEM, SM_E_BUSY (more than SM_WAL_SEGMENTS_MAX segments). On error
 * nothing needs closing. */
MUST_USE int wal_open(struct wal *w, const struct wal_config *config, struct wal_recovery *report);
/* Closes the segment and frees what open allocated. Buffered records not flushed are dropped
 * (they were never acknowledged). Never fails; the struct may be reused by wal_open. */
void wal_close(struct wal *w);

/* Buffers one record (copies header and payload; no syscall). r->index must be
 * wal_index_next(w). SM_E_TOOLARGE: payload above the configured maximum; SM_E_BUSY: the batch
 * buffer is full (flush first); SM_E_BADARG: wrong index or type 0; SM_E_IO: poisoned; SM_E_STATE:
 * read-only. */
MUST_USE int wal_append(struct wal *w, const struct wal_record *r);

/* Takes the buffered batch (up to a segment boundary) for writing; see the file comment.
 * `sync` asks for an fdatasync (ignored in WAL_SYNC_NEVER; WAL_SYNC_ALWAYS callers pass true).
 * Creating a new segment at a boundary happens here, synchronously (file, header, fdatasync,
 * directory fsync: once per segment; with preallocate, a ready spare is taken instead, see
 * wal_spare_*). Errors: SM_E_IO (poisoned). Must be followed by
 * wal_flush_done unless it returned an error. */
MUST_USE int wal_flush_begin(struct wal *w, bool sync, struct wal_flush *out);
/* Reports the outcome of the flush: 0 or a negative errno from the write or sync. Returns 0 or
 * SM_E_IO (then the log is poisoned). */
MUST_USE int wal_flush_done(struct wal *w, int result);

/* Blocking: flushes every buffered record and, unless WAL_SYNC_NEVER, fdatasyncs (one per
 * segment touched: normally one). *index_acked gets the last index that may now be acknowledged
 * (durable, or merely written in WAL_SYNC_NEVER). */
MUST_USE int wal_sync(struct wal *w, uint64_t *index_acked);
/* Blocking write of the buffered records without fdatasync (WAL_SYNC_EVERY between ticks). */
MUST_USE int wal_write(struct wal *w);

/* Drops every record after `index` (a diverging, uncommitted suffix), buffered or on disk,
 * durably: later segments are unlinked (newest first) before the segment holding index + 1 is
 * truncated, so a crash in between leaves a valid, merely longer log. A preallocated segment gets
 * its zeros back after the cut is durable (it stays full size). SM_E_STATE: index is below
 * the newest snapshot's, or a flush is in flight; SM_E_IO. Invalidates iterators. */
MUST_USE int wal_truncate_after(struct wal *w, uint64_t index);

/* ---- the next preallocated segment, made ahead, Sans-I/O --------------------------------------
 *
 * Writing a segment's worth of zeros takes long (64 MiB: 0.1 s to seconds), so with preallocate
 * the server makes the next segment on a worker thread while the current one fills:
 *
 *   owner thread:  if (wal_spare_wanted(w)) { wal_spare_begin(w, &job); hand job to worker }
 *   worker thread: rc = wal_spare_run(&job);   (create, zeros, fdatasync, directory fsync)
 *   owner thread:  wal_spare_done(w, &job, rc);
 *
 * At the next segment boundary wal_flush_begin writes the spare's header, syncs it (data only)
 * and renames it into place. If no spare is ready at the boundary: with no job out, the segment
 * is preallocated right there (synchronously; tools, tests, first segment); with a job out (the
 * worker is late), a plain growing segment is made as without preallocation, so group commit
 * never waits for a segment's worth of zeros. */
struct wal_spare_job {
    struct sm_fs fs;
    char dir[SM_WAL_DIR_BYTES_MAX + 1];
    char path[WAL_PATH_BYTES];
    uint64_t bytes;
    int fd; /* the ready file after a successful run, else -1 */
};
/* True when a spare should be made now: preallocate is on, none is ready or being made, and the
 * open segment is more than half full (or none is open yet). */
bool wal_spare_wanted(const struct wal *w);
/* Fills the job (copies; touches no file). Requires wal_spare_wanted(w). */
void wal_spare_begin(struct wal *w, struct wal_spare_job *job);
/* Any thread, blocking: makes the spare file durably. 0 or a negative errno (the file is then
 * removed). Touches nothing but the job and its file. */
MUST_USE int wal_spare_run(struct wal_spare_job *job);
/* Owner thread, after run: keeps the spare when result is 0. A failure does not poison the log
 * (nothing acknowledged depends on it); the segment is made at the boundary. A job that is out
 * must be run and done before wal_close (a spare left behind is deleted by the next open). */
void wal_spare_done(struct wal *w, struct wal_spare_job *job, int result);

static inline uint64_t wal_index_next(const struct wal *w)
{
    return w->index_next;
}
/* The last index that may be acknowledged (durable; written in WAL_SYNC_NEVER). */
uint64_t wal_index_acked(const struct wal *w);

/* Reads records in order from the segments (records already written; buffered ones are not
 * visible). Borrows the wal: no truncate, compaction or close while it lives. */
struct wal_iter {
    const struct wal *w;
    uint32_t segment; /* index in w->segments */
    int fd;           /* -1 when no segment is open */
    uint64_t offset;  /* file offset of buf[0] */
    uint64_t end;     /* bytes of the open segment to read */
    uint8_t *buf;
    uint32_t buf_cap, buf_len, buf_pos;
    uint64_t index_next;
};
/* Positions at `index_from` (>= the first index in the log). SM_E_NOTFOUND: not in the log
 * (already compacted away, or past the end + 1); SM_E_NOMEM. */
MUST_USE int wal_iter_init(struct wal_iter *it, const struct wal *w, uint64_t index_from);
/* 1 and *out when there is a record, 0 at the end, SM_E_CORRUPT when a record fails its checks
 * (the disk changed under us), SM_E_IO. */
MUST_USE int wal_iter_next(struct wal_iter *it, struct wal_record *out);
void wal_iter_free(struct wal_iter *it);

/* ---- snapshots (snapshot.c) ---------------------------------------------------------------- */

/* Writes one snapshot in chunks, from any thread: it touches only its own files. The payload is
 * opaque bytes from the engine. Caller-owned. */
struct wal_snapshot_writer {
    struct sm_fs fs;
    char dir[SM_WAL_DIR_BYTES_MAX + 1];
    char path[WAL_PATH_BYTES];
    char path_tmp[WAL_PATH_BYTES];
    int fd;
    uint64_t index, epoch;
    uint64_t len, bytes_max;
    uint32_t crc;
    int failed;
};

/* Starts snapshot `index` in the wal's directory: creates <snap>.tmp. Errors: SM_E_IO, SM_E_STATE
 * (index beyond the last acknowledged index, or below the newest snapshot, or read-only). */
MUST_USE int wal_snapshot_begin(struct wal *w, struct wal_snapshot_writer *sw, uint64_t index,
                                uint64_t epoch);
/* Appends a chunk of payload. SM_E_TOOLARGE past the configured maximum (then abort); SM_E_IO. */
MUST_USE int wal_snapshot_write(struct wal_snapshot_writer *sw, const void *chunk, size_t len);
/* Writes the header, fsyncs, renames into place and fsyncs the directory: after it returns 0,
 * the snapshot survives any crash; before, a crash leaves only a temp file that open removes. */
MUST_USE int wal_snapshot_finish(struct wal_snapshot_writer *sw);
/* Gives up: closes and removes the temp file. Never fails. */
void wal_snapshot_abort(struct wal_snapshot_writer *sw);

/* After a snapshot: deletes snapshots beyond the newest `snapshots_keep`, then the segments
 * every kept snapshot covers (all records <= the oldest kept snapshot's index), never the last
 * segment. Owner thread only. SM_E_IO. */
MUST_USE int wal_compact(struct wal *w);

/* Loads the snapshot recovery chose (report->snapshot_path): *data (malloc'ed; the caller frees)
 * and *len. Checks it again. SM_E_NOTFOUND when there is none; SM_E_CORRUPT; SM_E_IO; SM_E_NOMEM.
 */
MUST_USE int wal_snapshot_load(const struct wal *w, const struct wal_recovery *report,
                               uint8_t **data, uint64_t *len);

/* A loaded snapshot's bytes, read-only: a mapping of the file when the file system can map
 * (sm_fs.map), else a heap copy. Filled by wal_snapshot_view, released by wal_snapshot_unview. */
struct wal_snapshot_view {
    const uint8_t *data;
    uint64_t len;
    const void *map; /* the mapping (NULL when data is a heap copy) */
    uint8_t *heap;   /* the copy (NULL when mapped) */
};

/* As wal_snapshot_load, checked again the same way, but without a copy when the file can be
 * mapped: loading 2.3 GB through pread cost a page fault per 4 KiB of a fresh buffer plus the
 * copy. Errors as wal_snapshot_load, plus SM_E_IO when the mapping fails. The view stays valid
 * until wal_snapshot_unview (also after wal_close); on an error there is nothing to release. */
MUST_USE int wal_snapshot_view(const struct wal *w, const struct wal_recovery *report,
                               struct wal_snapshot_view *view);
void wal_snapshot_unview(const struct wal *w, struct wal_snapshot_view *view);

/* ---- used between the files of src/wal/ and by tools ---------------------------------------- */

/* The segment file name for a first index: "wal-<20 digits>.log". */
void wal_segment_name(char *out, size_t cap, const char *dir, uint64_t index_first);
void wal_snapshot_name(char *out, size_t cap, const char *dir, uint64_t index);
/* Parses a segment or snapshot file name; false when it is not one. */
bool wal_parse_segment_name(const char *name, uint64_t *index_first);
bool wal_parse_snapshot_name(const char *name, uint64_t *index);

/* Encodes a record's header (computing its CRC over the header tail and payload). */
void wal_record_encode(uint8_t hdr[WAL_RECORD_HEADER_BYTES], const struct wal_record *r);
/* Decodes a record at p with `avail` bytes: 1 = ok (*out, payload pointing into p), 0 = short
 * (needs more bytes than avail), -1 = invalid (*why says how). */
int wal_record_decode(const uint8_t *p, size_t avail, uint32_t payload_bytes_max,
                      struct wal_record *out, const char **why);
void wal_segment_header_encode(uint8_t hdr[WAL_SEGMENT_HEADER_BYTES], uint64_t index_first);
/* true when valid for that first index; *why otherwise. */
bool wal_segment_header_check(const uint8_t hdr[WAL_SEGMENT_HEADER_BYTES], uint64_t index_first,
                              const char **why);

/* Checks one snapshot file fully (header and payload CRC). 0 and the header fields, or
 * SM_E_CORRUPT (*why), SM_E_IO. */
MUST_USE int wal_snapshot_check(const struct sm_fs *fs, const char *path, uint64_t bytes_max,
                                uint64_t *index, uint64_t *epoch, uint64_t *len, const char **why);

/* Makes room for n entries in the segment table. SM_E_NOMEM. */
MUST_USE int wal_segments_reserve(struct wal *w, uint32_t n);

/* Writes zeros over [from, to) of a file with real writes (chunks of SM_WAL_ZERO_CHUNK_BYTES),
 * no sync. 0 or a negative errno. */
MUST_USE int wal_write_zeros(const struct sm_fs *fs, int fd, uint64_t from, uint64_t to);
/* True when n bytes at p are all zero. */
bool wal_all_zero(const uint8_t *p, size_t n);

/* Copies src to dst durably (fsync of dst; the caller fsyncs the directory). Repair only. */
MUST_USE int wal_copy_file(const struct sm_fs *fs, const char *src, const char *dst);

#endif
