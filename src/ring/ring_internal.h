/*
 * What the files of src/ring/ share behind the public header: the point hash, the ring walk's
 * starting index, the id order, and the fair-share arithmetic that ring_place() and
 * ring_placement_balance() must agree on exactly.
 */
#ifndef SHARDMART_RING_INTERNAL_H
#define SHARDMART_RING_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "shardmart/ring.h"

/* The ways of computing jump hash (src/ring/jump.c); all give the same buckets. */
enum ring_jump_path {
    RING_JUMP_REFERENCE, /* the paper's loop, one key at a time */
    RING_JUMP_FIXED,     /* x86-64 FMA + SSE4.1: K(P) branch-free steps, then the loop */
    RING_JUMP_AVX2,      /* x86-64 AVX2 + FMA: 8 keys in lanes */
    RING_JUMP_AVX512,    /* x86-64 AVX-512 F + DQ: 16 keys in lanes */
    RING_JUMP_PATHS
};

const char *ring_jump_path_name(enum ring_jump_path path);

/* Whether this CPU (and OS) can run a path. */
bool ring_jump_path_supported(enum ring_jump_path path);

/* The paths ring_jump_hash() and ring_jump_hash_batch() take on this CPU. */
enum ring_jump_path ring_jump_path_single(void);
enum ring_jump_path ring_jump_path_batch(void);

/* Runs one path (which must be supported, asserted) over count keys: for tests and benchmarks. */
void ring_jump_hash_path(enum ring_jump_path path, const uint64_t *keys, size_t count,
                         uint32_t buckets, uint32_t *buckets_out);

/* K(P), the branch-free steps RING_JUMP_FIXED runs before it falls back to the loop. */
uint32_t ring_jump_fixed_steps(uint32_t buckets);

/* Where point `point` of node `id` sits on the circle. */
uint64_t ring_point_hash(const char *id, size_t id_len, uint32_t point);

/* Where partition p sits on the circle: XXH3-64 of its 4 little-endian bytes. */
uint64_t ring_partition_hash(uint32_t partition);

/* Index of the first point at or after hash (wrapping to 0). The ring must not be empty. */
uint32_t ring_point_index(const struct ring *ring, uint64_t hash);

/* The ring's order of points: by hash, then by the owner's id bytes, so that colliding points of
 * two nodes sort the same whatever the order of adds. Owners are slots of nodes. */
bool ring_point_less(const struct ring_node *nodes, uint64_t ha, uint32_t oa, uint64_t hb,
                     uint32_t ob);

/* memcmp order on id bytes, a shorter prefix first. */
int ring_id_compare(const char *a, size_t a_len, const char *b, size_t b_len);

/* A fair share of replicas as an exact fraction num / den (den > 0), so that every machine
 * computes the same caps without floating point. */
struct ring_share {
    uint64_t num;
    uint64_t den;
};

/* Epsilon in millionths after validation; RING_E_EPSILON unless 0 < epsilon <= 1. */
RING_MUST_USE int ring_epsilon_ppm(double epsilon, uint32_t *ppm_out);

/* Fair shares of the nodes of pl (weights, zone indexes, zone_count, partitions, replicas set):
 * water-filling of partitions x replicas by weight, with at most one replica per partition per
 * node and, when zone_count >= replicas, at most one per partition per zone. shares_out has
 * pl->node_count entries. */
void ring_shares(const struct ring_placement *pl, struct ring_share *shares_out);

/* The shares of primaries alone: partitions by weight, at most one per partition per node. */
void ring_primary_shares(const struct ring_placement *pl, struct ring_share *shares_out);

/* A node's cap: max(ceil(share), floor((1 + epsilon) x share)), never above `partitions`. */
uint32_t ring_share_cap(struct ring_share share, uint32_t epsilon_ppm, uint32_t partitions);

/* floor(share) */
uint32_t ring_share_floor(struct ring_share share);

/* load > share, exactly. */
bool ring_share_below(struct ring_share share, uint32_t load);

/* Allocates pl's node list and table for node_count nodes and copies the present members of ring
 * sorted by id, with zone indexes renumbered densely in that order. rank_of_slot_out (
 * RING_NODES_MAX entries) maps ring slots to indexes of pl->nodes. Errors: RING_E_NOMEM (nothing
 * to free then). */
RING_MUST_USE int ring_placement_from_ring(const struct ring *ring, uint32_t partitions,
                                           uint32_t replicas, struct ring_placement *pl,
                                           uint32_t *rank_of_slot_out);

/* For each node of a, its index in b, or UINT32_MAX when b lacks it (map has a->node_count
 * entries). */
void ring_placement_map_nodes(const struct ring_placement *a, const struct ring_placement *b,
                              uint32_t *map);

/* Shared checks of ring_place() and ring_place_plain(). */
RING_MUST_USE int ring_place_validate(const struct ring *ring, const struct ring_place_config *cfg,
                                      uint32_t *epsilon_ppm_out);

#endif
