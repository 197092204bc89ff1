/*
 * The cluster's directory in the control plane: typed records over the store of coord.h, the
 * same for both backends. Keys, under one prefix per cluster:
 *
 *   /shardmart/<cluster>/meta              {"partitions":P,"replicas":R}   created once
 *   /shardmart/<cluster>/members/<id>      {"id":..,"addr":..,"zone":..,"weight":W}  under the
 *                                          member's lease: gone when the node stops renewing
 *   /shardmart/<cluster>/partitions/<n>    {"epoch":E,"primary":..,"isr":[..]}  n zero-padded to
 *                                          5 digits so keys sort by partition; changed only by
 *                                          compare-and-swap on the previous mod_revision
 *   /shardmart/<cluster>/controller        {"id":..}  under the controller's lease
 *
 * Values are JSON (jansson), compact, with no other fields; decoding checks every field, so a
 * value that is not ours is SM_E_CORRUPT, never a crash. Requests here only build transactions
 * and submit them through coord.h: their results are ordinary sm_coord_result values, which the
 * sm_coord_dir_decode* functions read.
 *
 * A session keeps one lease alive by keepalives at TTL/3 driven by the caller's time, and says
 * when the lease must be taken as lost: when etcd says so, or when a full TTL has passed since
 * the send of the last keepalive that succeeded (the lease may already be gone at etcd then).
 */
#ifndef SHARDMART_COORD_DIRECTORY_H
#define SHARDMART_COORD_DIRECTORY_H

#include "coord/coord.h"

struct sm_coord_meta {
    uint32_t partitions; /* 1..SM_PARTITIONS_MAX */
    uint32_t replicas;   /* 1..SM_REPLICAS_MAX */
};

struct sm_coord_member {
    char id[SM_NODE_ID_BYTES_MAX + 1];      /* 1..64 bytes, no '/' */
    char addr[SM_COORD_ADDR_BYTES_MAX + 1]; /* host:port others reach it on, 1..256 bytes */
    char zone[SM_COORD_ZONE_BYTES_MAX + 1]; /* 0..64 bytes */
    uint32_t weight;                        /* 1..SM_RING_WEIGHT_MAX */
};

/* A partition's configuration. mod_revision is not part of the value: it is the store's
 * revision of the key when read, the token the next CAS compares against (0 = absent). */
struct sm_coord_partition {
    uint32_t partition; /* from the key */
    uint64_t epoch;     /* >= 1, bumped by every change of primary */
    char primary[SM_NODE_ID_BYTES_MAX + 1];
    uint32_t isr_count; /* 1..SM_REPLICAS_MAX, the primary included */
    char isr[SM_REPLICAS_MAX][SM_NODE_ID_BYTES_MAX + 1];
    int64_t mod_revision;
};

struct sm_coord_controller {
    char id[SM_NODE_ID_BYTES_MAX + 1];
    int64_t lease;
    int64_t create_revision;
};

/* A directory handle: which client, which cluster. Plain data, the caller's memory. */
struct sm_coord_dir {
    struct sm_coord *coord; /* borrowed */
    char prefix[32 + SM_COORD_CLUSTER_NAME_BYTES_MAX];
    size_t prefix_len;
};

/* cluster is 1..SM_COORD_CLUSTER_NAME_BYTES_MAX of [A-Za-z0-9_.-]. 0, SM_E_BADARG, TOOLARGE. */
MUST_USE int sm_coord_dir_init(struct sm_coord_dir *d, struct sm_coord *c, const char *cluster);

/* ---- requests (results come through sm_coord_poll) ----------------------------------------- */

/* Creates meta if absent. Result: succeeded = created; otherwise kvs holds the existing meta. */
MUST_USE int sm_coord_dir_create_meta(struct sm_coord_dir *d, const struct sm_coord_meta *meta,
                                      uint64_t *id);
/* Writes the member's key under lease (a live lease of the same client's store). */
MUST_USE int sm_coord_dir_join(struct sm_coord_dir *d, const struct sm_coord_member *m,
                               int64_t lease, uint64_t *id);
/* Deletes the member's key. */
MUST_USE int sm_coord_dir_leave(struct sm_coord_dir *d, const char *member_id, uint64_t *id);
/* Reads the whole directory at one revision (result.revision): kvs hold meta, members,
 * partitions and controller in key order. Watch from result.revision + 1 to follow it. */
MUST_USE int sm_coord_dir_load(struct sm_coord_dir *d, uint64_t *id);
/* Watches every key of the directory from start_revision (0 = from now). */
MUST_USE int sm_coord_dir_watch(struct sm_coord_dir *d, int64_t start_revision, uint64_t *id);
/* Writes p if the partition's key has mod_revision prev_mod_revision now (0 = creates it only if
 * absent). p->mod_revision is ignored. Result: succeeded = written (its revision is
 * result.revision); otherwise kvs holds the current value (none if absent). */
MUST_USE int sm_coord_dir_partition_cas(struct sm_coord_dir *d, const struct sm_coord_partition *p,
                                        int64_t prev_mod_revision, uint64_t *id);
/* Becomes controller if there is none: creates the controller key under lease. Result:
 * succeeded = elected; otherwise kvs holds the current controller. Watch for its deletion. */
MUST_USE int sm_coord_dir_campaign(struct sm_coord_dir *d, const char *node_id, int64_t lease,
                                   uint64_t *id);
/* Deletes the controller key if it is still under lease (ours). succeeded = resigned. */
MUST_USE int sm_coord_dir_resign(struct sm_coord_dir *d, int64_t lease, uint64_t *id);

/* ---- reading results ----------------------------------------------------------------------- */

enum sm_coord_entry_kind {
    SM_COORD_ENTRY_OTHER, /* a key under the prefix that is none of ours: ignore it */
    SM_COORD_ENTRY_META,
    SM_COORD_ENTRY_MEMBER,
    SM_COORD_ENTRY_PARTITION,
    SM_COORD_ENTRY_CONTROLLER,
};

/* One decoded key. For a deleted key (deleted = true) only kind and the key's own part
 * (member.id, partition.partition) are set. */
struct sm_coord_entry {
    enum sm_coord_entry_kind kind;
    bool deleted;
    struct sm_coord_meta meta;
    struct sm_coord_member member;
    struct sm_coord_partition partition;
    struct sm_coord_controller controller;
};

/* Decodes kv (from a load, a CAS result or, with deleted, a watch event). Returns 0 with *out
 * filled; SM_E_CORRUPT (a key of ours with a value that is not) or SM_E_BADARG (a key outside
 * this directory). */
MUST_USE int sm_coord_dir_decode(const struct sm_coord_dir *d, const struct sm_coord_kv *kv,
                                 bool deleted, struct sm_coord_entry *out);

/* The value encodings, exposed for tests and tools. Encoders write a NUL-terminated JSON text
 * into buf[0, cap) and its length to *len: 0, SM_E_BADARG (a field out of range) or
 * SM_E_TOOLARGE (buf too small). Decoders return 0 or SM_E_CORRUPT. */
MUST_USE int sm_coord_meta_encode(const struct sm_coord_meta *m, char *buf, size_t cap,
                                  size_t *len);
MUST_USE int sm_coord_meta_decode(const void *value, size_t len, struct sm_coord_meta *out);
MUST_USE int sm_coord_member_encode(const struct sm_coord_member *m, char *buf, size_t cap,
                                    size_t *len);
MUST_USE int sm_coord_member_decode(const void *value, size_t len, struct sm_coord_member *out);
MUST_USE int sm_coord_partition_encode(const struct sm_coord_partition *p, char *buf, size_t cap,
                                       size_t *len);
/* Fills everything but partition and mod_revision, which come from the key. */
MUST_USE int sm_coord_partition_decode(const void *value, size_t len,
                                       struct sm_coord_partition *out);

/* ---- a session: one lease kept alive ------------------------------------------------------- */

enum sm_coord_session_state {
    SM_COORD_SESSION_IDLE,     /* no lease yet: the next tick asks for one */
    SM_COORD_SESSION_GRANTING, /* a grant is in flight */
    SM_COORD_SESSION_LIVE,     /* lease held */
    SM_COORD_SESSION_LOST,     /* lease expired or unknown to the store: sticky until restart */
};

struct sm_coord_session {
    struct sm_coord *coord; /* borrowed */
    enum sm_coord_session_state state;
    int64_t ttl_ms;         /* asked for */
    int64_t granted_ttl_ms; /* what the store granted */
    int64_t lease;
    int64_t valid_until_ms; /* the lease is surely alive before this (caller's clock) */
    int64_t next_renew_ms;
    int64_t sent_ms;   /* when the request in flight was submitted */
    uint64_t inflight; /* id of the grant or keepalive in flight, 0 for none */
    int last_err;      /* the last failure seen, for logs */
};

void sm_coord_session_init(struct sm_coord_session *s, struct sm_coord *c, int64_t ttl_ms);
/* Drives the session at the caller's time: asks for a lease when IDLE, renews at TTL/3, turns
 * LOST when the lease can no longer be trusted. Returns 0 or the error of a failed submit (the
 * next tick retries). */
MUST_USE int sm_coord_session_tick(struct sm_coord_session *s, int64_t now_ms);
/* Offers a polled result: true when it was the session's (the caller does not look further). */
bool sm_coord_session_on_result(struct sm_coord_session *s, const struct sm_coord_result *r,
                                int64_t now_ms);
/* From LOST (or any state), back to IDLE: the next tick asks for a new lease. The old lease is
 * forgotten, not revoked. */
void sm_coord_session_restart(struct sm_coord_session *s);

#endif
