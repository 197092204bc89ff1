/*
 * shardmart placement: key -> partition -> replica nodes. This header is the whole public surface
 * of the placement library, usable without the rest of shardmart (it has its own error codes).
 *
 *   key --XXH3-64--> hash --jump hash--> partition --placement table--> R nodes
 *                                                    ^
 *   membership (ids, weights, zones) --ring of virtual nodes + bounded loads, sticky--+
 *
 * - ring_key_partition(): XXH3-64 (seed 0) of the key, then jump consistent hash (Lamping & Veach
 *   2014) into P partitions. P is fixed when a cluster is created.
 * - struct ring: weighted virtual nodes on a 64-bit circle; lookup is "first point at or after
 *   the hash, with wrap-around", answered by a table of 2-4 slots per point that holds the owner
 *   outright for the slots no point falls in; preference lists walk clockwise for R distinct
 *   nodes in distinct zones when there are at least R zones.
 * - ring_place(): the placement table (P x R node indexes), a pure function of (previous table or
 *   none, membership, P, R, epsilon). Every node carries at most its capped share of replicas,
 *   and a membership change keeps every replica whose node stays (docs/placement.md).
 *
 * Memory: the caller owns every struct; *_init()/ring_place() allocate what lies behind them and
 * the matching *_destroy() frees it. Errors are negative RING_E_* codes; ring_strerror() says why.
 */
#ifndef SHARDMART_RING_H
#define SHARDMART_RING_H

#include <stddef.h>
#include <stdint.h>

/* ---- limits (each one passed is an error, never an abort) ---------------------------------- */

/* A node id: 1..64 bytes (a host:port or a UUID with a prefix fits). */
#define RING_NODE_ID_BYTES_MAX 64
/* A zone label: 0..64 bytes (an empty label is a zone like any other). */
#define RING_ZONE_BYTES_MAX 64
/* Nodes in one ring: the placement table stores node indexes in 16 bits, and clusters larger than
 * a few thousand machines are split into several clusters long before this. */
#define RING_NODES_MAX 4096
/* A node's weight: 1..65535 units; points on the ring are proportional to it. */
#define RING_WEIGHT_MAX 65535
/* Points per unit of weight: 1..1024, default 160 (the classic ketama figure). */
#define RING_POINTS_PER_WEIGHT_DEFAULT 160
#define RING_POINTS_PER_WEIGHT_MAX     1024
/* All points of a ring together: 4 Mi points is 64 MiB of points and 16 MiB of lookup table;
 * far beyond the 160 000 points of 1000 nodes at 160 points each. */
#define RING_POINTS_MAX (1u << 22)
/* Partitions: 1..65536 (a partition number fits in 16 bits of an order id). */
#define RING_PARTITIONS_MAX 65536
/* Replicas per partition: 1..7. */
#define RING_REPLICAS_MAX 7
/* Epsilon, the allowed overload over a node's fair share: (0, 1], default 5 %. */
#define RING_EPSILON_DEFAULT 0.05

/* ---- errors -------------------------------------------------------------------------------- */

/* X(name, message) */
#define RING_ERRORS(X)                                                                             \
    X(NO_NODES, "no nodes in the ring")                                                            \
    X(DUPLICATE, "duplicate node id")                                                              \
    X(WEIGHT, "weight must be 1..65535")                                                           \
    X(ID_LENGTH, "node id must be 1..64 bytes")                                                    \
    X(ZONE_LENGTH, "zone label must be at most 64 bytes")                                          \
    X(NOT_FOUND, "no such node")                                                                   \
    X(TOO_MANY_NODES, "more than 4096 nodes")                                                      \
    X(TOO_MANY_POINTS, "more than 4194304 points on the ring")                                     \
    X(POINTS_PER_WEIGHT, "points per unit of weight must be 1..1024")                              \
    X(PARTITIONS, "partitions must be 1..65536")                                                   \
    X(REPLICAS, "replicas must be 1..7")                                                           \
    X(REPLICAS_NODES, "more replicas than nodes")                                                  \
    X(EPSILON, "epsilon must be in (0, 1]")                                                        \
    X(MISMATCH, "previous placement has a different partition or replica count")                   \
    X(NOMEM, "out of memory")

/* Row numbers of the table, for lookups; not error codes themselves. */
enum ring_err_row {
#define RING_ERR_ROW(name, msg) RING_ROW_##name,
    RING_ERRORS(RING_ERR_ROW)
#undef RING_ERR_ROW
        RING_ERR_COUNT
};

/* 0 is success; row r is the error -(r + 1). */
enum ring_err {
    RING_OK = 0,
#define RING_ERR_ENUM(name, msg) RING_E_##name = -(RING_ROW_##name + 1),
    RING_ERRORS(RING_ERR_ENUM)
#undef RING_ERR_ENUM
};

/* The message of a RING_E_* code ("ok" for 0, "unknown error" otherwise); never NULL. */
const char *ring_strerror(int err);

#define RING_MUST_USE __attribute__((warn_unused_result))

/* ---- key -> partition ---------------------------------------------------------------------- */

/* XXH3-64 with seed 0 of the key bytes. */
uint64_t ring_hash_key(const void *key, size_t len);

/* Jump consistent hash (Lamping & Veach 2014): a bucket in [0, buckets) for a 64-bit key;
 * buckets >= 1 (asserted). Bit-identical to the paper's loop
 * (ring_jump_hash_reference) for every key and bucket count; on x86-64 with FMA it runs a fixed
 * number of branch-free steps instead (src/ring/jump.c, docs/placement.md). */
uint32_t ring_jump_hash(uint64_t key, uint32_t buckets);

/* The paper's loop as printed: the definition the other paths are tested and benchmarked
 * against. Any buckets >= 1 (asserted). */
uint32_t ring_jump_hash_reference(uint64_t key, uint32_t buckets);

/* ring_jump_hash() of count keys into buckets_out[0..count) (count may be 0). Faster per key
 * than one call each: with AVX-512 or AVX2 (chosen at run time) keys step side by side in vector
 * lanes. 1 <= buckets <= RING_PARTITIONS_MAX (asserted). Borrows both arrays. */
void ring_jump_hash_batch(const uint64_t *keys, size_t count, uint32_t buckets,
                          uint32_t *buckets_out);

/* The partition of a key: jump(XXH3-64(key), partitions). RING_E_PARTITIONS unless
 * 1 <= partitions <= RING_PARTITIONS_MAX. */
RING_MUST_USE int ring_key_partition(const void *key, size_t len, uint32_t partitions,
                                     uint32_t *partition_out);

/* ring_key_partition() of count keys (keys[i] of lens[i] bytes) into partitions_out[0..count),
 * through ring_jump_hash_batch(). RING_E_PARTITIONS (nothing written) unless
 * 1 <= partitions <= RING_PARTITIONS_MAX. Borrows every array. */
RING_MUST_USE int ring_key_partition_batch(const void *const *keys, const size_t *lens,
                                           size_t count, uint32_t partitions,
                                           uint32_t *partitions_out);

/* ---- the ring of virtual nodes ------------------------------------------------------------- */

/* One member as the caller describes it; the ring copies the bytes. */
struct ring_node_spec {
    const char *id;
    size_t id_len;
    const char *zone;
    size_t zone_len;
    int64_t weight; /* signed so that a negative weight is reported, not wrapped */
};

/* A member inside the ring. Slots are stable while the node is present; a removed node's slot is
 * free (id_len == 0) and may be reused by a later add. */
struct ring_node {
    char id[RING_NODE_ID_BYTES_MAX];
    char zone[RING_ZONE_BYTES_MAX];
    uint8_t id_len; /* 0: free slot */
    uint8_t zone_len;
    uint16_t zone_index; /* dense index of the zone label among present nodes' zones */
    uint32_t weight;
};

/* A virtual node. Hash and owner side by side: a lookup then touches one cache line of points
 * (after the lookup table's), where parallel arrays cost one more miss. */
struct ring_point {
    uint64_t hash;
    uint32_t owner; /* node slot */
};

/* The ring. Fields are read-only for callers; use the functions. Points are sorted by
 * (hash, owner id bytes), which is the deterministic tie-break when two nodes' points collide, so
 * every process that holds the same members agrees on every lookup whatever the order of adds. */
struct ring {
    uint32_t points_per_weight;
    uint32_t node_count;  /* present nodes */
    uint32_t slot_count;  /* slots in use or free, <= RING_NODES_MAX */
    uint32_t zone_count;  /* distinct zone labels among present nodes */
    uint32_t point_count; /* entries of points */
    uint32_t point_capacity;
    struct ring_node *nodes;
    struct ring_point *points; /* sorted by (hash, owner id bytes); points[point_count] is a
                                * sentinel of hash UINT64_MAX */
    uint32_t *prefix;          /* 2^16 + 1 entries: first point whose hash >> 48 >= i */
    uint32_t *lookup;          /* 2^lookup_bits slots by the hash's top bits (ring.c); NULL when
                                * the ring has no points */
    uint32_t lookup_bits;      /* 10..22: 2 to 4 slots per point */
};

/* An empty ring. points_per_weight 0 means RING_POINTS_PER_WEIGHT_DEFAULT. Errors:
 * RING_E_POINTS_PER_WEIGHT, RING_E_NOMEM. On error there is nothing to destroy. */
RING_MUST_USE int ring_init(struct ring *ring, uint32_t points_per_weight);

/* Frees what ring_init() and the adds allocated; the struct itself stays the caller's. */
void ring_destroy(struct ring *ring);

/* Adds all members at once (one sort instead of one merge per node). All-or-nothing: on error the
 * ring is unchanged. Errors as ring_add_node(), and RING_E_DUPLICATE within the list. */
RING_MUST_USE int ring_add_nodes(struct ring *ring, const struct ring_node_spec *specs,
                                 size_t count);

/* Adds one member. Errors: RING_E_ID_LENGTH, RING_E_ZONE_LENGTH, RING_E_WEIGHT,
 * RING_E_DUPLICATE, RING_E_TOO_MANY_NODES, RING_E_TOO_MANY_POINTS, RING_E_NOMEM. */
RING_MUST_USE int ring_add_node(struct ring *ring, const struct ring_node_spec *spec);

/* Removes any member (first, last or in the middle). Errors: RING_E_ID_LENGTH, RING_E_NOT_FOUND. */
RING_MUST_USE int ring_remove_node(struct ring *ring, const char *id, size_t id_len);

/* The slot of a present node, or RING_E_NOT_FOUND. */
RING_MUST_USE int ring_find_node(const struct ring *ring, const char *id, size_t id_len);

/* The slot of the node owning the first point at or after hash, wrapping past the top. Uses the
 * lookup table. RING_E_NO_NODES on an empty ring, else the slot (>= 0). */
RING_MUST_USE int ring_lookup(const struct ring *ring, uint64_t hash);

/* The same answer by a plain binary search over all points (the reference the index is tested and
 * benchmarked against). */
RING_MUST_USE int ring_lookup_bsearch(const struct ring *ring, uint64_t hash);

/* Preference list: the first `count` distinct nodes met walking clockwise from hash, skipping
 * nodes whose zone is already used as long as unused zones remain (so they are zone-distinct
 * whenever the ring has >= count zones). Writes node slots to slots_out[0..count).
 * Errors: RING_E_NO_NODES, RING_E_REPLICAS (count 0 or > RING_REPLICAS_MAX),
 * RING_E_REPLICAS_NODES (count > node_count). */
RING_MUST_USE int ring_preference_list(const struct ring *ring, uint64_t hash, uint32_t count,
                                       uint32_t *slots_out);

/* ---- placement ----------------------------------------------------------------------------- */

/* A member as the placement records it: a copy, so a placement outlives changes to its ring. */
struct ring_placement_node {
    char id[RING_NODE_ID_BYTES_MAX];
    char zone[RING_ZONE_BYTES_MAX];
    uint8_t id_len;
    uint8_t zone_len;
    uint16_t zone_index;
    uint32_t weight;
};

/* The placement table: nodes sorted by id bytes (so the table does not depend on the order in
 * which members joined), and table[p * replicas + r] = index into nodes of replica r of partition
 * p; replica 0 is the primary. Read-only for callers. */
struct ring_placement {
    uint32_t partitions;
    uint32_t replicas;
    uint32_t node_count;
    uint32_t zone_count;
    struct ring_placement_node *nodes;
    uint16_t *table;
};

struct ring_place_config {
    uint32_t partitions; /* 1..RING_PARTITIONS_MAX */
    uint32_t replicas;   /* 1..RING_REPLICAS_MAX, <= nodes */
    double epsilon;      /* (0, 1]; RING_EPSILON_DEFAULT is 0.05 */
};

/* Computes the placement of cfg->partitions x cfg->replicas onto the members of ring, starting
 * from prev (NULL: from scratch). A pure function of (prev, members with weights and zones,
 * partitions, replicas, epsilon): the same inputs give the same table on any machine.
 *
 * Guarantees (docs/placement.md): every partition has `replicas` distinct nodes, in distinct zones
 * whenever there are >= replicas zones; every node carries at most
 * max(ceil(share), floor((1 + epsilon) * share)) replicas, where share is its fair share by weight
 * (capped at one replica per partition and, with zones, one per partition per zone); every replica
 * of prev whose node is still a member stays where it is unless that node is over its cap, and
 * replicas move only into cells of nodes that left or onto nodes that joined (or whose weight
 * grew, which are filled like joined ones), except when a remaining node is over its cap because
 * weights or epsilon changed and no such node can take the excess. Caps can be exceeded only
 * when they cannot all be met (a zone too small for its share); ring_placement_balance() counts
 * such nodes in over_cap.
 *
 * Borrows ring and prev; fills *out, which the caller frees with ring_placement_destroy().
 * Errors: RING_E_NO_NODES, RING_E_PARTITIONS, RING_E_REPLICAS, RING_E_REPLICAS_NODES,
 * RING_E_EPSILON, RING_E_MISMATCH (prev has other partitions or replicas), RING_E_NOMEM. On error
 * there is nothing to destroy. */
RING_MUST_USE int ring_place(const struct ring *ring, const struct ring_placement *prev,
                             const struct ring_place_config *cfg, struct ring_placement *out);

void ring_placement_destroy(struct ring_placement *pl);

/* The primary (replica 0) node index of a key: the fast path of routing. */
static inline uint32_t ring_placement_primary(const struct ring_placement *pl, uint32_t partition)
{
    return pl->table[(size_t)partition * pl->replicas];
}

/* One replica copied to a new node between two placements: partition p gains node `to` (an
 * index into b->nodes, at replica slot `replica` of b) and loses node `from` (an index into
 * a->nodes). A primary that merely changes roles with a backup is not a move: no data is copied.
 */
struct ring_move {
    uint32_t partition;
    uint32_t replica;
    uint32_t from;
    uint32_t to;
};

/* The moves from placement a to placement b (same partitions and replicas, else
 * RING_E_MISMATCH), in partition order. Nodes are matched by id. Writes at most moves_max moves
 * (moves may be NULL when moves_max is 0) and returns the total number of moves (>= 0), which may
 * be larger. Errors: RING_E_MISMATCH, RING_E_NOMEM. */
RING_MUST_USE int ring_placement_diff(const struct ring_placement *a,
                                      const struct ring_placement *b, struct ring_move *moves,
                                      size_t moves_max);

/* Balance and spread of a table. Shares are the fair shares ring_place() uses. */
struct ring_balance {
    double max_over_share;         /* max over nodes of replicas / fair share */
    double min_over_share;         /* min over nodes of replicas / fair share */
    double stddev_over_share;      /* stddev of replicas / fair share */
    double primary_max_over_share; /* the same for primaries (replica 0) alone */
    uint32_t over_cap;             /* nodes above their cap */
    uint32_t zone_violations;      /* partitions without distinct zones although >= R zones */
    uint32_t duplicate_nodes;      /* partitions holding one node twice (always 0 when valid) */
};

/* Measures pl with the epsilon used for caps. Errors: RING_E_EPSILON. */
RING_MUST_USE int ring_placement_balance(const struct ring_placement *pl, double epsilon,
                                         struct ring_balance *out);

/* The plain ring's table (preference lists, no balancing), for comparison: same shape as
 * ring_place()'s output and measured with ring_placement_balance(). Same errors. */
RING_MUST_USE int ring_place_plain(const struct ring *ring, const struct ring_place_config *cfg,
                                   struct ring_placement *out);

/* The fair share of replicas of node i of pl (see ring_place()). */
double ring_placement_share(const struct ring_placement *pl, uint32_t node);

/* A 64-bit digest of a table (XXH3 of its node ids and entries), for golden vectors. */
uint64_t ring_placement_digest(const struct ring_placement *pl);

#endif
