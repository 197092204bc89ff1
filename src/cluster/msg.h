/*
 * The messages replicas of a partition exchange, and their wire codec (docs/cluster.md has the
 * byte layout and the protocol). Sans-I/O: the codec turns a struct into bytes and back; whoever
 * owns the sockets (the libuv server later, src/sim/ today) frames and carries the bytes.
 *
 *   primary --APPEND(epoch, prev index+epoch, entries, commit, round)--> replica
 *   primary <--APPEND_ACK(epoch, ok, durable match, last index, round)-- replica
 *   primary --SNAPSHOT(epoch, index, engine bytes, commit)--> replica (its log tail is gone)
 *   controller --LOG_END_QUERY(epoch of the config it replaces)--> in-sync replica
 *   controller <--LOG_END(last index, last epoch)-- in-sync replica
 *
 * Every message carries the sender's epoch; a receiver refuses one older than its own. The
 * decoder checks every length and count against the input and against src/limits.h, so bytes
 * from the network can never make it read out of bounds; a decoded message borrows the input
 * (entry payloads and snapshot bytes point into it).
 */
#ifndef SHARDMART_CLUSTER_MSG_H
#define SHARDMART_CLUSTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"

/* The wire version: the first byte of every message. */
#define CLUSTER_MSG_VERSION 1

/* Message types: the second byte on the wire; a logged contract, never renumber. */
enum cluster_msg_type {
    CLUSTER_MSG_APPEND = 1,
    CLUSTER_MSG_APPEND_ACK = 2,
    CLUSTER_MSG_SNAPSHOT = 3,
    CLUSTER_MSG_LOG_END_QUERY = 4,
    CLUSTER_MSG_LOG_END = 5,
};

/* What a log entry carries: an engine record, a tick (expire what is due at the entry's time),
 * or the marker a new primary appends first in its epoch (no effect on the engine). */
enum cluster_entry_kind {
    CLUSTER_ENTRY_ENGINE = 1,
    CLUSTER_ENTRY_TICK = 2,
    CLUSTER_ENTRY_EPOCH = 3,
};

/* One log entry as it travels: payload borrowed (from the log or from the message bytes). */
struct cluster_entry {
    uint64_t index;
    uint64_t epoch;  /* the epoch of the primary that created it */
    int64_t time_ms; /* the primary's stamped cluster time */
    uint8_t kind;    /* enum cluster_entry_kind */
    uint32_t len;    /* payload bytes (0 for TICK and EPOCH) */
    const uint8_t *data;
};

/* A decoded or to-be-encoded message. Which fields a type uses is in the comments; the others
 * are ignored by the encoder and zeroed by the decoder. entries[] is large (about 10 KiB), so
 * keep the struct off small stacks. */
struct cluster_msg {
    uint8_t type; /* enum cluster_msg_type */
    uint32_t partition;
    uint32_t from, to; /* node ids, < SM_CLUSTER_NODES_MAX */
    uint64_t epoch;    /* the sender's epoch (LOG_END_QUERY: the epoch being replaced) */
    /* APPEND */
    uint64_t prev_index, prev_epoch; /* the entry just before entries[0] */
    uint64_t commit_index;           /* the primary's commit index */
    uint64_t round;                  /* read-confirmation round (ReadIndex), echoed by the ack */
    uint32_t entries_count;
    struct cluster_entry entries[SM_CLUSTER_MSG_ENTRIES_MAX];
    /* APPEND_ACK: ok = the entries matched; match_index = the highest index known durable and
     * equal to the primary's log; last_index = the replica's last index (a hint after a miss) */
    bool ok;
    uint64_t match_index, last_index;
    /* SNAPSHOT: the engine's bytes at snap_index (an entry of snap_epoch, stamped snap_time_ms) */
    uint64_t snap_index, snap_epoch;
    int64_t snap_time_ms;
    uint32_t snap_len;
    const uint8_t *snap_data;
    /* LOG_END_QUERY / LOG_END: query_id pairs a reply with its query; LOG_END also carries
     * last_index (above) and last_epoch */
    uint64_t query_id;
    uint64_t last_epoch;
};

/* Encodes m into buf[0..cap): 0 with *len_out set, SM_E_TOOLARGE when it does not fit in cap or
 * past SM_CLUSTER_MSG_BYTES_MAX (snapshots: SM_CLUSTER_SNAPSHOT_BYTES_MAX), SM_E_BADARG when m
 * breaks a rule the decoder checks (so every encoded message decodes). Borrows m. */
MUST_USE int cluster_msg_encode(const struct cluster_msg *m, uint8_t *buf, size_t cap,
                                size_t *len_out);

/* The bytes cluster_msg_encode needs for m (an upper bound is exact here). */
size_t cluster_msg_encoded_len(const struct cluster_msg *m);

/* Decodes data[0..len) into *m, whose payload pointers then borrow data. 0 or SM_E_BADARG
 * (unknown version or type, a count or length past its limit or past the input, an entry epoch
 * above the message's, trailing bytes). Never reads outside data[0..len). */
MUST_USE int cluster_msg_decode(const uint8_t *data, size_t len, struct cluster_msg *m);

/* "APPEND", "APPEND_ACK", ... or "?" */
const char *cluster_msg_type_name(int type);

#endif
