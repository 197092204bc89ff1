/*
 * One partition's replicated log on one node, Sans-I/O (DESIGN.md section 7, docs/cluster.md).
 *
 * A struct cluster_part holds the partition's engine, the tail of its log since the last
 * snapshot, and the replication state of whatever role the control plane gave this node: primary
 * (executes commands, appends, ships, commits) or replica (appends what the primary ships, applies
 * what is committed). The caller feeds it events and receives actions through one callback:
 *
 *   inputs                               actions (struct cluster_action, via emit)
 *   cluster_part_propose (client write)  SEND bytes to a node
 *   cluster_part_read    (client read)   PERSIST_TRUNCATE / PERSIST_APPEND / PERSIST_SNAPSHOT
 *   cluster_part_receive (peer message)  SYNC (make every persisted byte durable, then call
 *   cluster_part_set_config (control          cluster_part_persisted with the SYNC's index+epoch)
 *     plane watch)                       REPLY / REPLY_DROPPED (release a client's answer)
 *   cluster_part_tick    (timer)         CAS (ask the control plane to change the config)
 *   cluster_part_persisted (fsync done)
 *   cluster_part_cas_failed
 *   cluster_part_flush   (end of a batch: ship what was appended, ask for a sync)
 *
 * Rules (each one is a hazard of issue 5, tested in tests/cluster/):
 * - Commit: an index is committed once every member of the in-sync set (ISR), the primary
 *   included, has it durable and equal to the primary's log. Replies, reads included, wait for
 *   it. Replicas apply only committed entries; the primary applies at append (it needs the reply).
 * - Epochs fence: every message carries one, an older one is refused; log matching on (prev
 *   index, prev epoch) and truncation of a diverging suffix, which is never committed.
 * - A lagging ISR member is removed by CAS on the config's revision before the primary commits
 *   without it; a replica that caught up is counted for commit from the moment the CAS adding it
 *   back is asked for, so once the config lists it, it holds every committed entry.
 * - Reads (ReadIndex): the reply is computed at once on the primary's state at its last index and
 *   released when that index is committed and a confirmation round sent after the read has been
 *   answered by every ISR member at the current epoch. A deposed primary whose commit index no
 *   longer moves never gets that confirmation: its reads are dropped, never answered stale.
 * - A primary that loses its role rebuilds its engine from its snapshot plus the committed log,
 *   throwing away what it applied beyond the commit index.
 * - Fencing tokens are log indexes of this partition's log, which continues across failovers.
 * - Cluster time: each entry carries the primary's time, never below the last entry's.
 * - A node that restarts never acts as primary in an epoch it may have used before the crash:
 *   it asks the control plane for epoch + 1 first (its log holds every committed entry, since it
 *   was in the ISR of that epoch).
 */
#ifndef SHARDMART_CLUSTER_PART_H
#define SHARDMART_CLUSTER_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/msg.h"
#include "engine/engine.h"
#include "limits.h"
#include "util/assert.h"

/* A partition's configuration as the control plane holds it. revision is the control plane's
 * version of the key (the CAS compares it); replicas are every node placed on the partition,
 * isr the subset that is in sync (the primary always among them). */
struct cluster_config {
    uint64_t epoch;
    uint64_t revision;
    uint32_t primary;
    uint32_t replicas_count;
    uint32_t replicas[SM_REPLICAS_MAX];
    uint32_t isr_count;
    uint32_t isr[SM_REPLICAS_MAX];
};

bool cluster_config_has_isr(const struct cluster_config *c, uint32_t node);
bool cluster_config_has_replica(const struct cluster_config *c, uint32_t node);

enum cluster_action_type {
    CLUSTER_ACT_SEND = 1,             /* to, bytes[0..len) */
    CLUSTER_ACT_PERSIST_TRUNCATE = 2, /* drop every entry after index (durably, before more) */
    CLUSTER_ACT_PERSIST_APPEND = 3,   /* entry (appended after the last one persisted) */
    CLUSTER_ACT_PERSIST_SNAPSHOT = 4, /* bytes = engine snapshot at index (entry epoch, time):
                                         write it durably, then drop the log up to index */
    CLUSTER_ACT_SYNC = 5,             /* fsync what was persisted; then cluster_part_persisted
                                         (index, epoch) */
    CLUSTER_ACT_REPLY = 6,            /* token, reply: the client's answer, committed */
    CLUSTER_ACT_REPLY_DROPPED = 7,    /* token: no answer will come (role lost); the client
                                         retries with the same request id (-TRYAGAIN) */
    CLUSTER_ACT_CAS = 8,              /* config: write it if the current revision is
                                         config.revision; then cluster_part_set_config (new) or
                                         cluster_part_cas_failed */
    CLUSTER_ACT_COMMITTED = 9,        /* entry is committed here (once per index, in order;
                                         none for indexes a snapshot covered): for metrics,
                                         change feeds and the simulator's checker */
};

/* One action. Everything it points to is borrowed for the duration of the emit call only. */
struct cluster_action {
    enum cluster_action_type type;
    uint32_t partition;
    uint32_t to;
    const uint8_t *bytes;
    size_t len;
    uint64_t index, epoch;
    int64_t time_ms;
    struct cluster_entry entry;
    uint64_t token;
    const struct engine_reply *reply;
    const struct cluster_config *config;
};

typedef void (*cluster_emit_fn)(void *ctx, const struct cluster_action *a);

/* Tunables of one partition's replication. Times are in the caller's milliseconds. */
struct cluster_part_config {
    uint32_t partition;
    uint32_t node;               /* this node's id */
    struct engine_config engine; /* the partition's engine capacities */
    uint32_t log_entries_max;    /* SM_CLUSTER_LOG_ENTRIES_MIN..MAX entries kept in memory */
    size_t log_bytes_max;        /* payload bytes kept in memory */
    uint32_t pending_max;        /* 1..SM_CLUSTER_PENDING_MAX client requests awaiting commit */
    int64_t heartbeat_ms;        /* the primary sends at least this often to each replica */
    int64_t retransmit_ms;       /* resend from the last ack when a replica is this quiet */
    int64_t lag_timeout_ms;      /* an ISR member this long behind is removed by CAS */
    int64_t tick_ms;             /* the primary appends a TICK entry this often (0 = never) */
    uint32_t snapshot_every;     /* take a snapshot once this many entries follow the last */
    cluster_emit_fn emit;
    void *emit_ctx;
    /* Test only: commit on the primary's own durability, ignoring the ISR. Breaks safety on
     * purpose so that the simulator's checker can be shown to catch it. */
    bool unsafe_commit_alone;
};

enum cluster_role {
    CLUSTER_ROLE_NONE = 0, /* no config yet, or restarted and waiting for a new epoch */
    CLUSTER_ROLE_PRIMARY = 1,
    CLUSTER_ROLE_REPLICA = 2,
};

/* What the primary knows of one other replica. */
struct cluster_peer {
    uint32_t node;
    uint64_t next_index;  /* the next entry to ship */
    uint64_t match_index; /* durable and equal to ours, acked at our epoch */
    uint64_t round_acked; /* the last confirmation round it answered at our epoch */
    int64_t last_ack_ms;  /* when it last answered */
    int64_t last_send_ms; /* when we last sent it anything */
    int64_t progress_ms;  /* when match_index last moved or equalled our last index */
    bool snapshot_sent;   /* a snapshot is on its way: wait for its ack */
    int64_t snapshot_ms;  /* when it was sent (sent again when it got lost) */
};

/* A client's request waiting for commit (and, for a read, for a confirmation round). */
struct cluster_pending {
    uint64_t token;
    uint64_t index;
    uint64_t round; /* 0 for a write */
    struct engine_reply reply;
};

/* Per-entry bookkeeping of the in-memory log; payloads live in the part's byte arena. */
struct cluster_slot {
    uint64_t epoch;
    int64_t time_ms;
    size_t off;
    uint32_t len;
    uint8_t kind;
};

struct cluster_part {
    struct cluster_part_config cfg;
    struct engine engine;
    bool engine_ready;

    /* the log: entries first_index..last_index in slots[0..count), payload in bytes[] */
    struct cluster_slot *slots;
    uint32_t count;
    uint8_t *bytes;
    size_t bytes_len;
    uint64_t snap_index, snap_epoch; /* the snapshot the log follows (0: none, empty engine) */
    int64_t snap_time_ms;
    uint8_t *snap_data; /* engine_save at snap_index, owned (NULL when snap_index == 0) */
    size_t snap_len;

    uint64_t commit_index;
    uint64_t applied_index;  /* entries applied to the engine (primary: up to last) */
    uint64_t durable_index;  /* persisted and synced, as the last SYNC reported */
    uint64_t synced_request; /* the last index a SYNC was asked for */
    int64_t clock_ms;        /* cluster time: the largest stamped or seen */
    int64_t last_tick_ms;

    struct cluster_config config; /* the latest config adopted */
    bool config_known;
    enum cluster_role role;
    uint64_t epoch;         /* the highest epoch seen (config or message) */
    uint32_t leader;        /* the primary of epoch, when known (UINT32_MAX: unknown) */
    bool restarted;         /* this incarnation may not lead an epoch it did not start */
    uint64_t restart_floor; /* restarted: the config epoch at restart; lead only above it */
    bool epoch_started;     /* primary: this incarnation appended the epoch's first entry */
    bool cas_inflight;
    int64_t cas_sent_ms; /* a CAS unanswered for 4 lag timeouts is taken as lost */
    uint32_t isr_adding; /* a replica being added to the ISR (counted for commit), or UINT32_MAX */
    bool compact_soon;   /* cluster_part_compact_soon: snapshot at the next chance */
    bool cas_uncertain;  /* an add's CAS got no answer: it may have applied; until a newer
                            config arrives, isr_adding stays counted even if a retry fails */
    int64_t now_ms;

    struct cluster_peer peers[SM_REPLICAS_MAX];
    uint32_t peers_count;
    uint64_t round;          /* the last confirmation round sent */
    bool round_wanted;       /* a read waits for a round not yet sent */
    uint64_t match_verified; /* replica: our log equals the leader's up to here at epoch */

    struct cluster_pending *pending; /* FIFO ring */
    uint32_t pending_head, pending_count;

    uint8_t *scratch;        /* SM_CLUSTER_MSG_BYTES_MAX: messages being encoded */
    struct cluster_msg *msg; /* the message being built */
    uint64_t stats_rebuilds, stats_truncated, stats_snapshots_sent, stats_dropped;
};

/* Sets up a partition with an empty log (a new node), or from a recovered disk: snapshot
 * (snap bytes at snap_index, may be NULL/0) then entries[0..entries_count) following it, all
 * durable. restarted says whether this node ran before (then it never leads an epoch it did not
 * start). Borrows everything; copies what it keeps. 0, SM_E_BADARG (a bad config or entries that
 * do not follow each other), SM_E_CORRUPT (a snapshot that does not load), SM_E_NOMEM. */
MUST_USE int cluster_part_init(struct cluster_part *p, const struct cluster_part_config *cfg,
                               const uint8_t *snap, size_t snap_len, uint64_t snap_index,
                               uint64_t snap_epoch, int64_t snap_time_ms,
                               const struct cluster_entry *entries, uint32_t entries_count,
                               bool restarted);
void cluster_part_free(struct cluster_part *p);

/* A client's mutation. On the primary: encoded, applied, appended; its reply leaves (REPLY with
 * token) once committed. 0; SM_E_MOVED (not the primary: the caller redirects), SM_E_TRYAGAIN
 * (the primary is not ready: retry later), SM_E_BADARG (the command does not encode; *reply says
 * why and nothing was done), SM_E_BUSY (the log or the pending queue is full). */
MUST_USE int cluster_part_propose(struct cluster_part *p, int64_t now_ms, uint64_t token,
                                  const struct engine_cmd *cmd, struct engine_reply *reply);

/* A client's read (type >= ENGINE_SKU_GET): answered on the primary from its state now, released
 * after a confirmation round (see the file comment). Errors as cluster_part_propose. */
MUST_USE int cluster_part_read(struct cluster_part *p, int64_t now_ms, uint64_t token,
                               const struct engine_cmd *cmd);

/* A decoded peer message addressed to this partition and node. Stale or malformed ones are
 * ignored (a peer's bug is never a crash here). */
void cluster_part_receive(struct cluster_part *p, int64_t now_ms, const struct cluster_msg *m);

/* The control plane's current config of this partition (from a watch, a read, or a CAS). Older
 * epochs and revisions are ignored. */
void cluster_part_set_config(struct cluster_part *p, int64_t now_ms,
                             const struct cluster_config *c);

/* The CAS this part asked for did not apply (someone else changed the config first). */
void cluster_part_cas_failed(struct cluster_part *p, int64_t now_ms);

/* The SYNC for (index, epoch) completed: everything persisted before it is durable. */
void cluster_part_persisted(struct cluster_part *p, int64_t now_ms, uint64_t index, uint64_t epoch);

/* Takes a snapshot at the next chance (the engine standing at the commit index, with entries
 * after the last snapshot) instead of waiting for snapshot_every entries: the node's shared
 * log cannot drop a segment while a quiet partition still needs an old entry in it. */
void cluster_part_compact_soon(struct cluster_part *p);

/* Changes how often the primary appends TICK entries (0 = never; the simulator's quiet end). */
void cluster_part_set_tick_ms(struct cluster_part *p, int64_t tick_ms);

/* Timers: heartbeats, retransmission, ISR lag, tick entries, snapshots. */
void cluster_part_tick(struct cluster_part *p, int64_t now_ms);

/* Ends a batch of inputs: asks for a sync of what was appended and ships it. */
void cluster_part_flush(struct cluster_part *p, int64_t now_ms);

/* Answers a LOG_END_QUERY: this part's last index and its entry's epoch. */
uint64_t cluster_part_last_index(const struct cluster_part *p);
uint64_t cluster_part_last_epoch(const struct cluster_part *p);

/* The log entry at index, if it is still in memory (snap_index < index <= last). */
bool cluster_part_entry(const struct cluster_part *p, uint64_t index, struct cluster_entry *out);

#endif
