/*
 * The cluster's placement key and the replica table derived from it (docs/cluster.md,
 * "Controller and bootstrap"). Nodes and `shardmart admin status` must derive the same table, so
 * both call these.
 */
#ifndef SHARDMART_SERVER_CLUSTER_PLACEMENT_H
#define SHARDMART_SERVER_CLUSTER_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"

/* The placement key's value {"nodes":[ids...]}: 1..SM_CLUSTER_NODES_MAX ids, each below
 * SM_CLUSTER_NODES_MAX, strictly ascending. False (and *count = what was read) otherwise. */
MUST_USE bool cluster_placement_decode(const uint8_t *value, size_t len,
                                       uint32_t nodes[SM_CLUSTER_NODES_MAX], uint32_t *count);

/* Every partition's replicas from the placement's nodes: ring_place over them, weight 1,
 * epsilon 0.05; a pure function. *table (malloc'd, partitions x replicas, partition p's
 * replicas at p * replicas) on success. 0 or a RING_E_* code (RING_E_REPLICAS_NODES when
 * count < replicas). */
MUST_USE int cluster_placement_replicas(const uint32_t *nodes, uint32_t count, uint32_t partitions,
                                        uint32_t replicas, uint32_t **table);

#endif
