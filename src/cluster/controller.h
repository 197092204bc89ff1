/*
 * The failover controller, Sans-I/O (DESIGN.md section 7). One node at a time runs it: the one
 * the control plane elected (the caller does the election; this file only decides).
 *
 * For every partition whose primary is no longer a live member (its lease lapsed), it asks the
 * live in-sync replicas for their log ends (LOG_END_QUERY), waits for all of them or for a
 * timeout, picks the one with the longest log (ties: the later last epoch, then the lower node
 * id) and asks the control plane to CAS {epoch + 1, that node, the replicas that answered} on the
 * config's revision. Why any in-sync replica is safe: the primary committed an index only once
 * every ISR member had it durable, so each of them holds every committed entry; the longest
 * one also keeps the most uncommitted entries, which costs clients the fewest retries.
 *
 * Why the answers need no promise (no Paxos-style fencing at query time): the old primary can
 * only commit with an ack from every ISR member, the new primary among them; the new primary
 * refuses the old epoch from the moment it learns the new config, and appends nothing before
 * that, so whatever the old primary commits in between is in the new primary's log when it
 * starts its epoch (it takes its log as it is then, not as it was when it answered).
 */
#ifndef SHARDMART_CLUSTER_CONTROLLER_H
#define SHARDMART_CLUSTER_CONTROLLER_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/part.h"

/* One partition's failover in progress. */
struct cluster_failover {
    bool active;
    bool cas_sent;
    uint64_t epoch, revision; /* the config being replaced */
    uint64_t query_id;
    int64_t started_ms;
    uint32_t asked_count;
    uint32_t asked[SM_REPLICAS_MAX];
    bool answered[SM_REPLICAS_MAX];
    uint64_t last_index[SM_REPLICAS_MAX], last_epoch[SM_REPLICAS_MAX];
};

struct cluster_controller_config {
    uint32_t node;            /* this node's id (the sender of queries) */
    uint32_t partitions;      /* 1..SM_PARTITIONS_MAX */
    int64_t query_timeout_ms; /* decide with the answers so far after this long (>= 1) */
    cluster_emit_fn emit;     /* SEND (queries) and CAS (new configs) */
    void *emit_ctx;
};

struct cluster_controller {
    struct cluster_controller_config cfg;
    struct cluster_failover *failovers; /* one per partition */
    uint64_t next_query_id;
    uint64_t failovers_started, failovers_done;
    uint8_t *scratch;
};

/* 0, SM_E_BADARG or SM_E_NOMEM. Free with cluster_controller_free. */
MUST_USE int cluster_controller_init(struct cluster_controller *c,
                                     const struct cluster_controller_config *cfg);
void cluster_controller_free(struct cluster_controller *c);

/* Looks at partition p's current config and the membership (live[node] for node < nodes_count:
 * the node holds a lease) and moves its failover along. Call it whenever either changes and on
 * a timer. */
void cluster_controller_check(struct cluster_controller *c, int64_t now_ms, uint32_t p,
                              const struct cluster_config *config, const bool *live,
                              uint32_t nodes_count);

/* A LOG_END answer (others are ignored). */
void cluster_controller_receive(struct cluster_controller *c, int64_t now_ms,
                                const struct cluster_msg *m);

/* Forgets every failover in progress (this node lost the controller role). */
void cluster_controller_reset(struct cluster_controller *c);

#endif
