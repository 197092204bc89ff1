/*
 * What the two backends of coord.h share: the owned copy of a submitted request, the table of
 * backend functions behind struct sm_coord, and a FIFO of results. Not part of the interface.
 */
#ifndef SHARDMART_COORD_COORD_INTERNAL_H
#define SHARDMART_COORD_COORD_INTERNAL_H

#include <stdarg.h>

#include "coord/coord.h"

/* A request after validation, with every string and value copied (owned, freed by
 * coord_req_free). ops[0, nthen) are the then-branch, ops[nthen, nthen + nelse) the else-branch. */
struct coord_req {
    enum sm_coord_req_kind kind;
    uint64_t id;
    struct sm_coord_cmp *cmps;
    size_t ncmps;
    struct sm_coord_op *ops;
    size_t nthen;
    size_t nelse;
    int64_t ttl_ms;         /* LEASE_GRANT */
    int64_t lease;          /* LEASE_KEEPALIVE, LEASE_REVOKE */
    char *key;              /* WATCH */
    bool prefix;            /* WATCH */
    int64_t start_revision; /* WATCH */
    uint64_t watch_id;      /* WATCH_CANCEL */
    struct coord_req *next; /* a backend's queue link */
    /* The result node, allocated at submit by a backend that must never fail to answer
     * (freed by coord_req_free while still set). */
    struct coord_result_node *done;
};

void coord_req_free(struct coord_req *r);

/* The functions a backend provides. submit takes the request on success (returns 0) and leaves
 * it to the caller on failure (a negative sm_err, nothing submitted). */
struct coord_backend {
    int (*submit)(struct sm_coord *c, struct coord_req *r);
    int (*poll)(struct sm_coord *c, struct sm_coord_result *out);
    int (*fd)(const struct sm_coord *c);
    void (*close)(struct sm_coord *c);
};

/* The head of every backend's client struct. */
struct sm_coord {
    const struct coord_backend *backend;
    uint64_t next_id; /* the last id handed out */
};

/* A FIFO of heap-allocated results (not thread-safe: the etcd backend locks around it). */
struct coord_result_node {
    struct sm_coord_result result;
    struct coord_result_node *next;
};
struct coord_results {
    struct coord_result_node *head;
    struct coord_result_node *tail;
    size_t count;
};

/* A zeroed result node for request r (kind DONE, id and req copied); NULL when out of memory. */
struct coord_result_node *coord_result_new(enum sm_coord_result_kind kind,
                                           enum sm_coord_req_kind req, uint64_t id);
void coord_results_push(struct coord_results *q, struct coord_result_node *n);
/* Moves the oldest result into *out and frees its node; 1, or 0 (out zeroed) when empty. */
int coord_results_pop(struct coord_results *q, struct sm_coord_result *out);
void coord_results_clear(struct coord_results *q);

/* Sets r->err and a printf-formatted r->message. */
__attribute__((format(printf, 3, 4))) void coord_result_fail(struct sm_coord_result *r, int err,
                                                             const char *fmt, ...);

/* Copies key[0, key_len) and value[0, value_len) into kv (NUL-terminated); false when out of
 * memory (kv then owns nothing). */
bool coord_kv_set(struct sm_coord_kv *kv, const char *key, size_t key_len, const void *value,
                  size_t value_len);
void coord_kv_free(struct sm_coord_kv *kv);

/* True when key starts with prefix (as bytes). */
bool coord_key_has_prefix(const char *key, size_t key_len, const char *prefix, size_t prefix_len);

#endif
