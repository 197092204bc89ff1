/*
 * The durable state of one node: P engines (one per partition) behind one write-ahead log.
 *
 * Why one log for all partitions: a batch of requests touches many partitions, and group commit
 * wants one fdatasync per batch, not one per partition. Every record carries its partition, and
 * the log's index (the node's LSN) is the index each engine sees: strictly increasing per engine,
 * as the engine and its fencing tokens require.
 *
 *   log record (wal/, framed with CRC, index, epoch, time)
 *     type STORE_RECORD_ENGINE: payload = partition (u16 LE) | engine record (engine/record.c)
 *     type STORE_RECORD_TICK:   payload = empty; every partition applies an ENGINE_TICK at the
 *                               record's index and time
 *     type STORE_RECORD_ALL:    payload = engine record; every partition applies it (lock
 *                               sessions: a session must exist wherever it may hold a lock)
 *     type STORE_RECORD_TXN:    payload = partition (u16 LE) | 1 | client engine record (a
 *                               cross-partition transaction begins), or partition | 2 | a
 *                               message between partitions (node/txn.h) that it reacts to
 *
 * A mutation is applied to its engine before it is logged (the engine's reply is the reply the
 * client gets once the batch is durable), so appending must not fail after applying: callers
 * ask store_has_room() first, and a full batch ends the batch instead.
 *
 * Recovery (store_open): the newest valid snapshot (every partition's engine_save, framed as
 * below) then every record after it, applied in order. Snapshots are written by a forked child
 * (store_snapshot_fork), so the loop is paused only for the fork itself.
 *
 *   snapshot payload: magic "SMSNAP02" | partitions (u32) | per partition: length (u64) |
 *                     engine_save bytes | length (u64) | transaction rows (txn_save)
 *   ("SMSNAP01", written before cross-partition transactions, has no rows section.)
 */
#ifndef SHARDMART_NODE_STORE_H
#define SHARDMART_NODE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/assert.h"
#include "wal/wal.h"

enum store_record_type {
    STORE_RECORD_ENGINE = 1,
    STORE_RECORD_TICK = 2,
    STORE_RECORD_ALL = 3,
    STORE_RECORD_TXN = 4,
};

struct txn_event;
struct txn_msg;
struct txn_table;

/* Receives every cross-partition transaction decided while the node is live, so the clients
 * waiting on it get their reply (node/txn.h). */
typedef void (*store_txn_event_fn)(void *ctx, const struct txn_event *ev);

/* Receives every lock-waiter event (granted, timed out, cancelled) that applying a record
 * produced, in order, while the node is live (not during recovery: no connection waits then). */
typedef void (*store_event_fn)(void *ctx, const struct locks_event *ev);

/* Cluster mode (server/repl.h): each partition's engine lives in its replicated log on the
 * server side, not in the store. The node's handlers keep calling store_mutate and store_read;
 * a replicated store hands them on. mutate: 0 with *reply set (an error reply when this node
 * cannot lead the partition right now), SM_E_BADARG, SM_E_BUSY (as store_mutate). Lock
 * sessions, blocking waits and cross-partition transactions are refused before they get here
 * (cluster_rt.c routing), so the other store calls are never made on a replicated store. */
struct store_repl_ops {
    int (*mutate)(void *ctx, uint32_t p, const struct engine_cmd *cmd, struct engine_reply *reply);
    void (*read)(void *ctx, uint32_t p, const struct engine_cmd *cmd, struct engine_reply *out);
    void *ctx;
};

struct store_config {
    uint32_t partitions;          /* 1..SM_PARTITIONS_MAX */
    struct engine_config engine;  /* every partition gets these capacities */
    const char *dir;              /* the data directory (borrowed) */
    const struct sm_fs *fs;       /* NULL = the real file system */
    enum wal_sync_mode sync_mode; /* WAL_SYNC_ALWAYS unless told otherwise */
    bool repair;                  /* recovery: set aside corruption instead of refusing */
    uint64_t segment_bytes;       /* 0 = default */
    bool preallocate;             /* zero-filled segments: each fdatasync flushes data only */
    uint32_t
        load_threads; /* snapshot load: 0 = one per online CPU (<= SM_STORE_LOAD_THREADS_MAX) */
};

struct store {
    uint32_t partitions;
    const struct store_repl_ops *repl; /* cluster mode; NULL on a single node */
    struct engine *engines;
    void **guards; /* a PROT_NONE page after each partition's tables (store.c says why) */
    struct wal wal;
    bool wal_open;
    uint64_t epoch;
    int64_t now_ms; /* the batch's time, stamped on its records */
    uint64_t records_applied;
    uint8_t *scratch;             /* 2 + SM_ENGINE_RECORD_BYTES_MAX: the record being built */
    struct engine_output *output; /* the last mutation's reply and events */
    uint64_t replayed;            /* records replayed at open */
    store_event_fn event_fn;      /* NULL: events are dropped */
    void *event_ctx;
    /* Cross-partition transactions (node/txn.h): each partition's rows, and the outbox of
     * messages between partitions: `pending` were produced by the batch being built, `ready`
     * by batches already durable (each entry: length u32 | message bytes). */
    struct txn_table *txns;
    struct sm_wbuf outbox_pending;
    struct sm_wbuf outbox_ready;
    size_t outbox_ready_pos; /* bytes of ready already delivered */
    uint32_t outbox_count;   /* messages in both */
    bool replaying;          /* recovery: rows change, nothing is sent, no client waits */
    store_txn_event_fn txn_event_fn;
    void *txn_event_ctx;
    uint8_t *txn_scratch; /* an engine record being built by the transaction layer */
    uint8_t *txn_record;  /* a transaction record being logged */
};

/* Opens the log in cfg->dir, loads the newest snapshot and replays the log after it. 0, or an
 * SM_E_* with a one-line reason in why (SM_E_CORRUPT names the file and offset). report says
 * what recovery found (torn tail cut, repairs). On error nothing needs closing. */
MUST_USE int store_open(struct store *s, const struct store_config *cfg,
                        struct wal_recovery *report, char *why, size_t why_cap);
/* Sets up a replicated store (cluster mode): partitions and the hooks, no log, no engines.
 * ops is borrowed for the store's life. 0, SM_E_BADARG (partitions), SM_E_NOMEM. Close with
 * store_close. */
MUST_USE int store_init_replicated(struct store *s, uint32_t partitions,
                                   const struct store_repl_ops *ops);
/* The engine capacities of a node started with `shardmart start`'s defaults (the flags can
 * change each one). */
void store_engine_defaults(struct engine_config *e);

void store_close(struct store *s);

/* The partition of a key (XXH3-64 + jump hash). */
uint32_t store_partition(const struct store *s, const void *key, size_t len);

/* Sets the time stamped on the records that follow (the batch's start). Time never goes back:
 * an earlier value is ignored, so cluster time is monotonic across clock steps. */
void store_set_time(struct store *s, int64_t now_ms);

/* True when a record of up to record_bytes fits in the current batch. */
bool store_has_room(const struct store *s, size_t record_bytes);

/* Encodes cmd, applies it to partition p at the next log index, and appends it to the log.
 * *out (owned by s, valid until the next call) gets the reply and events. 0, or SM_E_BADARG
 * (cmd does not encode: nothing applied, nothing logged; the reply says why), or SM_E_BUSY (no
 * room: nothing applied). */
MUST_USE int store_mutate(struct store *s, uint32_t p, const struct engine_cmd *cmd,
                          const struct engine_output **out);

/* Like store_mutate, applied to every partition (one log record). *out is partition 0's
 * output; every partition sees the same sequence of such records, so they all reply alike. */
MUST_USE int store_mutate_all(struct store *s, const struct engine_cmd *cmd,
                              const struct engine_output **out);

/* The index the next record will get (waiter ids are derived from it). */
static inline uint64_t store_index_next(const struct store *s)
{
    return wal_index_next(&s->wal);
}

/* Answers a read from partition p. */
void store_read(const struct store *s, uint32_t p, const struct engine_cmd *cmd,
                struct engine_reply *out);

/* Logs and applies one tick (every partition expires what is due at the batch time). SM_E_BUSY
 * when the batch is full. */
MUST_USE int store_tick(struct store *s);

/* True when records were appended since the last flush. */
bool store_dirty(const struct store *s);

/* Blocking flush + fdatasync of the batch (tools, tests and shutdown); the server uses the wal's
 * flush_begin/done on its fsync thread instead. */
MUST_USE int store_sync(struct store *s);

/* Writes a snapshot of every partition at the current index, synchronously, then drops what
 * it covers. 0 or SM_E_*. */
MUST_USE int store_snapshot(struct store *s);

/* Writes the snapshot file of the state as it is, at `index` (every record up to it applied and
 * durable, none after it). Touches only the new file, so a forked child can run it while the
 * parent goes on serving; the parent then calls wal_compact. 0 or SM_E_*. */
MUST_USE int store_snapshot_write(const struct store *s, uint64_t index);

/* ---- cross-partition transactions (node/txn.h) ---------------------------------------------- */

/* Logs and applies the start of a client's cross-partition command cmd (ORDER_PLACE,
 * ACCOUNT_TRANSFER, ORDER_PAY) at coordinator partition p. Its row (txn_find_coord) then says
 * whether it is decided; no row means the partition's table is full. 0, SM_E_BADARG (cmd does
 * not encode), SM_E_BUSY (no room in this batch: nothing done) or the log's error. */
MUST_USE int store_txn_begin(struct store *s, uint32_t p, const struct engine_cmd *cmd);

/* Delivers every message of durable batches, each as a record of its target partition. 0, or
 * SM_E_BUSY when the batch filled (the rest waits for the next), or the log's error. */
MUST_USE int store_txn_deliver(struct store *s);

/* The batch just made durable: its messages may now be delivered. */
void store_txn_durable(struct store *s);

/* True when messages wait for delivery (the server then runs a batch). */
bool store_txn_ready(const struct store *s);

/* For node/txn.c: queues a message (dropped while replaying; recovery sends again). */
void store_txn_send(struct store *s, const struct txn_msg *m);
/* For node/txn.c: applies cmd to partition p's engine at the current record's index. */
void store_txn_engine(struct store *s, uint32_t p, uint64_t index, const struct engine_cmd *cmd,
                      struct engine_output *out);
/* For node/txn.c: a client's transaction was decided. */
void store_txn_event(struct store *s, const struct txn_event *ev);

/* Checks every partition's invariants; false with the partition and reason in why. */
bool store_check(const struct store *s, char *why, size_t why_cap);

#endif
