/*
 * Replication on a real node (cluster mode, docs/cluster.md "Replication on the real server"):
 * the I/O side of src/cluster/. One struct cluster_part per partition of the cluster, recovered
 * from the node's partition log (src/wal/plog.h), driven on the server's libuv loop, and the
 * failover controller (src/cluster/controller.h) for when the control plane elects this node.
 *
 *   the part's action           what this file does
 *   SEND                        peer_net_send to the node (src/server/peer.h)
 *   PERSIST_APPEND / _TRUNCATE  plog_append / plog_truncate (buffered)
 *   PERSIST_SNAPSHOT            plog_snapshot (its file is written and synced at once)
 *   SYNC                        noted; once per loop iteration every noted partition shares
 *                               one plog write + fdatasync, then cluster_part_persisted
 *   REPLY / REPLY_DROPPED       counts down the server's batch (below)
 *   CAS                         the cas hook (cluster_rt.c writes the config to etcd)
 *   COMMITTED                   counters
 *
 * The server's batch: the node's handlers run a batch of requests as in single-node mode, but
 * the store hands each trading command to repl_mutate / repl_read (store_init_replicated), which
 * propose it to the partition's part with the batch's token. The batch's replies are held, as
 * they are held for the fsync on a single node, until every proposal and read of the batch has
 * been answered by REPLY (committed on every in-sync replica; a read confirmed at the current
 * epoch) or REPLY_DROPPED (this node lost the primary role: the outcome is unknown, the server
 * answers -TRYAGAIN so the client retries with the same request id). Batches run one at a time.
 *
 * The group commit: the parts' SYNCs of one loop iteration (a batch's proposals, the APPENDs
 * that arrived from other primaries) share one fdatasync of the shared log. Messages to the
 * other nodes are handed to the kernel before that fdatasync, so the replicas write and sync
 * while this node does.
 *
 * Everything runs on the loop thread.
 */
#ifndef SHARDMART_SERVER_REPL_H
#define SHARDMART_SERVER_REPL_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/part.h"
#include "engine/engine.h"
#include "util/assert.h"
#include "wal/wal.h"

/* The replication tunables of a real node, derived from the lease (repl_config_defaults). */
#define REPL_TICK_MS 10 /* the timer that drives heartbeats, retransmission and lag checks */

struct repl;

/* Asks the control plane to write config for partition p if the key's revision is still
 * config->revision. from_controller says who asks: the failover controller, or the partition's
 * primary (an ISR change, or a restarted primary's new epoch). The answer comes back through
 * repl_set_config (the new config) or repl_cas_failed. 0, or an error (the asker retries). */
typedef int (*repl_cas_fn)(void *ctx, uint32_t p, const struct cluster_config *config,
                           bool from_controller);

struct repl_config {
    uv_loop_t *loop;              /* borrowed */
    const char *dir;              /* the partition log's directory (created if missing) */
    uint32_t partitions;          /* 1..SM_PARTITIONS_MAX */
    uint32_t node_id;             /* < SM_CLUSTER_NODES_MAX */
    struct engine_config engine;  /* every partition's capacities */
    enum wal_sync_mode sync_mode; /* WAL_SYNC_ALWAYS unless told otherwise */
    const char *advertise;        /* "host:port" the peer listener binds (a numeric IPv4 host) */
    uint64_t cluster_id;          /* peers refuse a handshake from another cluster */
    /* Timing (ms). lag_timeout: an in-sync replica this long without progress is removed from
     * the ISR; heartbeat: the primary sends at least this often; tick: a TICK entry this often
     * (time in the engines: lock leases, hold and order deadlines). */
    int64_t heartbeat_ms, retransmit_ms, lag_timeout_ms, tick_ms, query_timeout_ms;
    uint32_t snapshot_every; /* entries between a partition's snapshots */
    uint64_t segment_bytes;  /* the shared log's segment size (0 = the default) */
    repl_cas_fn cas;
    void *cas_ctx;
    /* The log failed (a write or fsync error): nothing may be acknowledged any more; the
     * server stops the node (its replicas take over). */
    void (*on_fatal)(void *ctx);
    /* The batch that repl_batch_end left waiting is answered: failed = some of it was dropped. */
    void (*on_batch_done)(void *ctx, bool failed);
    void *ctx;
};

/* Counters for CLUSTER.INFO and /metrics. */
struct repl_stats {
    uint64_t syncs, sync_ns_total;      /* shared-log fdatasyncs and their time */
    uint64_t committed;                 /* entries committed here (every partition) */
    uint64_t replies, dropped;          /* batch answers: committed, dropped */
    uint64_t messages_in, messages_bad; /* peer messages decoded, refused */
    uint64_t sends_failed;              /* peer_net_send refusals (queue full, no address) */
    uint64_t cas_asked, cas_failed;     /* config changes asked by this node's parts */
    uint64_t primaries, replicas;       /* partitions in each role now */
    uint64_t failovers_started, failovers_done; /* as controller */
    uint64_t segments_deleted;                  /* of the shared log, by compaction */
};

/* Fills the timing fields from the member lease (the failure detector's time scale). */
void repl_config_defaults(struct repl_config *c, int64_t lease_ms);

/* Opens the partition log in cfg->dir, recovers every partition's part from it and starts the
 * peer listener and the timer. A directory that already held a log marks every part restarted
 * (it never leads an epoch it did not start, docs/cluster.md rule 5). 0, or an SM_E_* with a
 * one-line reason printed. Stop with repl_close. */
MUST_USE int repl_open(struct repl **out, const struct repl_config *cfg);
/* Stops the listener and the timer, syncs and closes the log. The loop must then run once to
 * close the handles. */
void repl_close(struct repl *r);

/* The control plane's current config of partition p (from the load, the watch or a CAS). */
void repl_set_config(struct repl *r, uint32_t p, const struct cluster_config *c);
/* The CAS asked through the cas hook did not apply (the key moved on first). */
void repl_cas_failed(struct repl *r, uint32_t p, bool from_controller);
/* Where node listens for peers ("host:port"); false when addr does not parse. */
bool repl_set_peer(struct repl *r, uint32_t node, const char *addr);

/* The failover controller (only on the node the control plane elected): moves partition p's
 * failover along given its config and the live members (live[node] for node < nodes_count). */
void repl_controller_check(struct repl *r, uint32_t p, const struct cluster_config *c,
                           const bool *live, uint32_t nodes_count);
/* This node is no longer the controller. */
void repl_controller_reset(struct repl *r);

/* The store's hooks (node/store.h store_repl_ops): a trading command of the current batch.
 * mutate: 0 with *reply set (an error reply when this node cannot lead p right now),
 * SM_E_BADARG (does not encode), SM_E_BUSY (the part's log or queue is full: run it in the next
 * batch). read: *out set, an error reply as above. */
MUST_USE int repl_mutate(void *r, uint32_t p, const struct engine_cmd *cmd,
                         struct engine_reply *reply);
void repl_read(void *r, uint32_t p, const struct engine_cmd *cmd, struct engine_reply *out);

/* Ends the current batch: ships and syncs what it appended. true when answers are still
 * awaited (on_batch_done will be called once they all came); false when none are (nothing was
 * proposed, or everything committed at once: a single replica). Either way the next batch then
 * takes a new token. *failed (false when none awaited) says whether some answer was dropped. */
bool repl_batch_end(struct repl *r, bool *failed);

void repl_stats(const struct repl *r, struct repl_stats *out);
/* Partition p as this node sees it: role (enum cluster_role), epoch, last, commit index. */
struct repl_partition_state {
    int role; /* enum cluster_role */
    uint64_t epoch, last_index, commit_index, applied_index;
    uint64_t digest; /* XXH3-64 of the engine's saved state at applied_index (0: no memory) */
};
/* Partition p as this node holds it (CLUSTER.STATE): once writes stop and every replica has
 * applied the commit index, equal digests at equal applied indexes mean equal state. */
void repl_partition_state(const struct repl *r, uint32_t p, struct repl_partition_state *out);

#endif
