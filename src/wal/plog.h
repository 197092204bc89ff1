/*
 * The partition log: ONE shared segmented log per node that carries the replicated logs of every
 * partition the node hosts (cluster mode), so that group commit stays one fdatasync per batch
 * however many partitions took entries in it. One log per partition would cost one fdatasync per
 * partition per batch (256 by default).
 *
 * It is built on the write-ahead log of wal.h: the same segments, CRC32C framing, preallocation,
 * group commit, torn-tail and corruption rules and report, and sm_fs (so tests run it on
 * fs_faulty). Every wal record carries one partition's record: an entry, a logical truncation
 * ("partition p: drop every entry after i"), or a snapshot marker. The wal's own index is the
 * record's position in the shared log. The byte layout and the rules are at the top of plog.c
 * and in docs/storage.md ("The partition log (cluster mode)").
 *
 *   plog_append(p3, e) plog_truncate(p7, i) plog_append(p7, e) ...   copies, no syscall
 *   plog_flush_begin(&f)     the batch of every partition: one pwritev + one fdatasync
 *       (any thread) as wal_flush_begin / wal_flush_done describe
 *   plog_flush_done(result)  everything appended before begin is durable, truncations included
 *
 * Because the log is one sequence, a truncation is durable before any entry appended after it:
 * the fsync that makes the entry durable makes every earlier record durable too.
 *
 * Snapshots are files of their own, one per partition ("plog-snap-<partition>-<position>.snap"),
 * written atomically (temp, fsync, rename, directory fsync) and then announced by a marker record
 * at that position. Only a snapshot whose marker is durable counts (or whose marker lies in a
 * segment already compacted away, which only happens once it was durable).
 *
 * Not thread-safe except as wal.h says for the flush descriptor: one owner thread calls the rest.
 * The wal layer does not include cluster/ headers: struct plog_entry mirrors struct
 * cluster_entry field for field, and the server copies between them.
 */
#ifndef SHARDMART_WAL_PLOG_H
#define SHARDMART_WAL_PLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"
#include "wal/fs.h"
#include "wal/wal.h"

/* The bytes a partition record puts before its payload inside a wal record (see plog.c). */
#define PLOG_HEAD_BYTES 16
/* The snapshot file header (see plog.c). */
#define PLOG_SNAPSHOT_HEADER_BYTES 64

_Static_assert(SM_PLOG_ENTRY_BYTES_MAX + PLOG_HEAD_BYTES == SM_WAL_RECORD_PAYLOAD_BYTES_MAX,
               "an entry and its head fill a wal record");

/* One entry of one partition's log. `payload` is borrowed by plog_append for the call only; in a
 * recovered plog_part it is owned by the plog until plog_recovered_free. kind is the caller's
 * (enum cluster_entry_kind); 0 is refused. */
struct plog_entry {
    uint64_t index, epoch;
    int64_t time_ms;
    uint8_t kind;
    const uint8_t *payload;
    uint32_t len;
};

struct plog_config {
    const char *dir;        /* created if missing; copied at open */
    const struct sm_fs *fs; /* NULL = the real file system; borrowed, must outlive the plog */
    enum wal_sync_mode sync_mode;
    uint32_t partitions;    /* partitions 0..partitions-1; 1..SM_PLOG_PARTITIONS_MAX */
    bool preallocate;       /* as wal_config.preallocate */
    bool repair;            /* as wal_config.repair (damage in the segments; never in snapshots) */
    bool read_only;         /* report what recovery finds, change nothing, no appends */
    uint64_t segment_bytes; /* 0 = the wal's default */
    uint32_t batch_bytes;   /* 0 = the wal's default */
    uint32_t entry_bytes_max;    /* payload of one entry; 0 = SM_PLOG_ENTRY_BYTES_MAX (or what
                                    fits in a batch); at most SM_PLOG_ENTRY_BYTES_MAX */
    uint64_t snapshot_bytes_max; /* 0 = SM_PLOG_SNAPSHOT_BYTES_MAX; at most that */
    uint32_t segments_max;       /* 0 = the wal's default */
};

/* What recovery found for one partition: the snapshot (snap == NULL and snap_index == 0 when
 * there is none) and the entries after it, in index order (entries[0].index ==
 * snap_index + 1 unless the partition's earlier history was compacted away, see plog.c).
 * Everything is owned by the plog until plog_recovered_free. */
struct plog_part {
    uint8_t *snap;
    size_t snap_len;
    uint64_t snap_index, snap_epoch;
    int64_t snap_time_ms;
    struct plog_entry *entries;
    uint32_t entries_count, entries_cap;
    uint64_t last_index; /* the index the next append follows: the last entry's, or snap_index */
};

/* What plog_open found and did. */
struct plog_recovery {
    struct wal_recovery wal;         /* segments: torn tail, corruption, repair (as wal_open) */
    uint64_t records;                /* records read back */
    uint64_t position_first;         /* the first record still in the log (0 when empty) */
    uint64_t position_last;          /* the last one */
    uint32_t partitions_with_state;  /* partitions with a snapshot or entries */
    uint64_t entries;                /* entries recovered, every partition */
    uint32_t snapshots_loaded;       /* snapshot files in use */
    uint32_t snapshots_not_durable;  /* files whose marker never became durable: removed */
    uint32_t snapshots_superseded;   /* older files of a partition: removed */
    uint32_t snapshot_temps_removed; /* temp files of an interrupted snapshot */
    /* SM_E_CORRUPT from plog_open besides the wal's own (then wal.corrupt is false): a snapshot
     * file that fails its checks, is missing, or disagrees with its marker; or a record that
     * breaks a partition's sequence. The file, the record's position and why. */
    bool corrupt;
    char corrupt_path[WAL_PATH_BYTES];
    uint64_t corrupt_position;
    uint32_t corrupt_partition;
    char corrupt_reason[96];
};

/* What the plog keeps per partition while it runs. */
struct plog_pstate {
    uint64_t last;               /* last index (entry or snapshot); the next append is last + 1 */
    uint64_t snap_index;         /* the newest snapshot's (0: none) */
    uint64_t snap_pos;           /* its marker's position (0: none) */
    uint64_t need_at_marker;     /* the first record still needed when the marker was written */
    uint64_t first_after_marker; /* the first record after the newest marker (0: none yet) */
    uint64_t first_pos;          /* the partition's first record in the log (0: none) */
    uint64_t *pos;               /* positions of the live entries pos_index .. last */
    uint64_t pos_index;
    uint32_t pos_count, pos_cap;
};

struct plog {
    struct wal wal;
    struct plog_config config;
    char dir[SM_WAL_DIR_BYTES_MAX + 1];
    struct sm_fs fs;
    struct plog_pstate *parts;   /* [config.partitions] */
    struct plog_part *recovered; /* [config.partitions] until plog_recovered_free, else NULL */
    uint64_t start;              /* the durable log start (the "plog-start" file) */
};

/* Validates config, recovers the directory (wal_open, then the partitions' records and
 * snapshots) and readies the log for appending. report (caller-owned, required) says what was
 * found and done. Errors: SM_E_BADARG (config), SM_E_CORRUPT (report names the file and offset
 * or position), SM_E_IO, SM_E_NOMEM, SM_E_BUSY. On error nothing needs closing. */
MUST_USE int plog_open(struct plog *l, const struct plog_config *c, struct plog_recovery *report);
/* What recovery found for a partition (< config.partitions); NULL after plog_recovered_free.
 * Borrowed from the plog. */
const struct plog_part *plog_recovered(const struct plog *l, uint32_t partition);
/* Frees what recovery kept (snapshots and entries), once the parts were initialised. */
void plog_recovered_free(struct plog *l);

/* Buffers one entry of a partition (no syscall). e->index must be the partition's last index + 1
 * (after any truncation or snapshot), at most SM_PLOG_INDEX_MAX. SM_E_BADARG: wrong partition,
 * index or kind 0;
 * SM_E_TOOLARGE: payload above entry_bytes_max; SM_E_BUSY: the batch buffer is full (flush
 * first); SM_E_NOMEM; SM_E_IO (poisoned); SM_E_STATE (read-only). */
MUST_USE int plog_append(struct plog *l, uint32_t partition, const struct plog_entry *e);
/* Logs "drop every entry of partition after after_index" (no syscall; durable with the next
 * flush, and before anything appended after it). A no-op at or past the last index.
 * SM_E_STATE: below the partition's snapshot (or read-only); SM_E_BADARG, SM_E_BUSY, SM_E_IO. */
MUST_USE int plog_truncate(struct plog *l, uint32_t partition, uint64_t after_index);
/* Installs a snapshot of a partition: writes bytes to its file durably (blocking: temp, fsync,
 * rename, directory fsync), then buffers its marker. Entries up to index are dropped; later
 * ones stay; the next append must be max(index, last) + 1. Borrows bytes. SM_E_STATE: index
 * below the partition's snapshot, or read-only; SM_E_BADARG (index 0, partition);
 * SM_E_TOOLARGE; SM_E_BUSY (batch full: flush first; the file is removed); SM_E_IO. Index at
 * most SM_PLOG_INDEX_MAX. */
MUST_USE int plog_snapshot(struct plog *l, uint32_t partition, const uint8_t *bytes, size_t len,
                           uint64_t index, uint64_t epoch, int64_t time_ms);

/* Group commit, exactly as wal_flush_begin / wal_flush_done (wal.h). */
MUST_USE int plog_flush_begin(struct plog *l, bool sync, struct wal_flush *out);
MUST_USE int plog_flush_done(struct plog *l, int result);
/* Blocking: begin + pwritev/fdatasync + done until nothing is buffered. */
MUST_USE int plog_sync(struct plog *l);
/* The last position (record of the shared log) that is durable (written in WAL_SYNC_NEVER). */
uint64_t plog_position_acked(const struct plog *l);
/* The position the next record will take. */
uint64_t plog_position_next(const struct plog *l);

/* The oldest position (record of the shared log) partition still needs: the first of its
 * entries after its newest snapshot, or its first entry when it has none; UINT64_MAX when it
 * needs nothing. A partition that needs an old position keeps every segment from there on:
 * the caller asks it for a snapshot (compaction can only drop what every partition covers). */
uint64_t plog_needed_from(const struct plog *l, uint32_t partition);

/* Deletes snapshot files a newer durable one replaced, then the oldest segments whose records
 * every partition's durable snapshot covers (never the last segment). Deletes nothing while a
 * partition's newest marker is not durable yet (call it after a sync). Blocking. SM_E_IO,
 * SM_E_STATE (flush in flight, read-only). *deleted (may be NULL) gets the segments removed. */
MUST_USE int plog_compact(struct plog *l, uint32_t *deleted);

/* Closes the log and frees everything (recovered state included). Never fails. */
void plog_close(struct plog *l);

/* Snapshot file names: "<dir>/plog-snap-<partition, 5 digits>-<position, 20 digits>.snap". */
void plog_snapshot_name(char *out, size_t cap, const char *dir, uint32_t partition,
                        uint64_t position);
bool plog_parse_snapshot_name(const char *name, uint32_t *partition, uint64_t *position);

#endif
