/*
 * Shared between plog.c and plog_recovery.c only: record types, the snapshot header, the
 * per-partition state machine both the writer and recovery run, and small codecs.
 */
#ifndef SHARDMART_WAL_PLOG_INTERNAL_H
#define SHARDMART_WAL_PLOG_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "wal/plog.h"

/* wal record types of the partition log: a logged contract, never renumber. */
enum plog_record_type {
    PLOG_REC_ENTRY = 1,
    PLOG_REC_TRUNCATE = 2,
    PLOG_REC_SNAPSHOT = 3,
};

#define PLOG_SNAPSHOT_VERSION  1
#define PLOG_MARKER_BODY_BYTES 16
#define PLOG_START_NAME        "plog-start"
#define PLOG_START_BYTES       16

/* A snapshot file's header fields. */
struct plog_snap_header {
    uint32_t partition;
    uint64_t index, epoch;
    int64_t time_ms;
    uint64_t position;
    uint64_t len;
    uint32_t crc;
};

void plog_put_u32(uint8_t *p, uint32_t v);
void plog_put_u64(uint8_t *p, uint64_t v);
uint32_t plog_get_u32(const uint8_t *p);
uint64_t plog_get_u64(const uint8_t *p);
int plog_io_err(int neg_errno);

void plog_head_encode(uint8_t head[PLOG_HEAD_BYTES], uint32_t partition, uint8_t kind,
                      uint64_t index);
void plog_snap_header_encode(uint8_t hdr[PLOG_SNAPSHOT_HEADER_BYTES],
                             const struct plog_snap_header *h);
bool plog_snap_header_decode(const uint8_t hdr[PLOG_SNAPSHOT_HEADER_BYTES],
                             struct plog_snap_header *h, const char **why);

/* Makes room for one more live entry position. SM_E_NOMEM. */
MUST_USE int plog_pos_reserve(struct plog_pstate *ps);
/* The state machine of one partition, applied to each record at its position, in order. The
 * caller has checked that the record follows (see plog.c's rules). */
void plog_state_note(struct plog_pstate *ps, uint64_t position);
void plog_state_entry(struct plog_pstate *ps, uint64_t index, uint64_t position);
void plog_state_truncate(struct plog_pstate *ps, uint64_t after, uint64_t position);
void plog_state_snapshot(struct plog_pstate *ps, uint64_t index, uint64_t position);

/* Writes "plog-start" durably (temp, fsync, rename, directory fsync). 0 or a negative errno. */
MUST_USE int plog_write_start(const struct sm_fs *fs, const char *dir, uint64_t start);

#endif
