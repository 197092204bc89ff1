/*
 * The control plane interface (DESIGN.md section 7): a small etcd-like store that two backends
 * implement the same way.
 *
 *   embedded  in-process and linearizable, deterministic, no clock and no threads: time comes
 *             from its caller (sm_coord_embedded_tick), so the simulator drives it with
 *             simulated time; several clients (one per simulated node) share one store.
 *   etcd      etcd 3.4's v3 JSON gateway over libcurl on a worker thread (src/coord/etcd.c),
 *             a list of endpoints tried in turn.
 *
 * Both are asynchronous in the same way: the caller submits requests (each gets an id) and later
 * polls results. A result is the completion of one request, or events from a watch. Nothing
 * blocks and nothing calls back, so the libuv server (which waits on sm_coord_fd) and the
 * simulator (which decides when an embedded client's requests apply and its results arrive)
 * drive the same code.
 *
 *   caller --submit(req)--> [pending] --backend applies--> [results] --poll--> caller
 *
 * The store: keys (text, no NUL, 1..SM_COORD_KEY_BYTES_MAX bytes) map to byte values; every
 * change bumps one store-wide revision; a key carries the revision that created it, the one that
 * last changed it (mod_revision, the token of compare-and-swap) and its version (changes since
 * creation). A key put under a lease is deleted when the lease expires or is revoked.
 * A transaction checks compares (all must hold) and then runs its then-ops, else its else-ops,
 * atomically at one revision. A watch on a key or prefix delivers every change from a start
 * revision on, in revision order, each change once.
 *
 * Errors are negative sm_err codes (util/error.h) with a message in the result:
 *   SM_E_BADARG    a request that breaks the interface's rules (empty key, zero TTL ...)
 *   SM_E_TOOLARGE  a key, value, transaction or read past its bound (src/limits.h)
 *   SM_E_NOTFOUND  unknown or expired lease, unknown watch
 *   SM_E_BUSY      too many requests pending or watches open
 *   SM_E_TRYAGAIN  no endpoint reachable (etcd); the request did not apply
 *   SM_E_TIMEOUT   no answer in time after the request was sent: it may or may not have applied
 *   SM_E_CORRUPT   a response that is not what the etcd API documents
 *   SM_E_STATE     a watch's start revision was compacted: read again, then watch again
 *   SM_E_IO        any other failure of the etcd server or the transport
 */
#ifndef SHARDMART_COORD_COORD_H
#define SHARDMART_COORD_COORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"

/* A client of one backend. Opaque; made by sm_coord_embedded_open or sm_coord_etcd_open, freed by
 * sm_coord_close. */
struct sm_coord;

/* ---- requests ------------------------------------------------------------------------------ */

/* What a compare looks at, and how. */
enum sm_coord_cmp_target {
    SM_COORD_CMP_VERSION,         /* 0 when the key does not exist */
    SM_COORD_CMP_CREATE_REVISION, /* 0 when the key does not exist */
    SM_COORD_CMP_MOD_REVISION,    /* 0 when the key does not exist */
    SM_COORD_CMP_VALUE,           /* false for a missing key, whatever the operator */
    SM_COORD_CMP_LEASE,           /* the key's lease, 0 for none or a missing key */
};
enum sm_coord_cmp_result {
    SM_COORD_EQUAL,
    SM_COORD_NOT_EQUAL,
    SM_COORD_GREATER, /* key's field > operand */
    SM_COORD_LESS,
};

/* One compare of a transaction: <key's target> <result> <number or value>. Borrowed for the
 * duration of the submit call only. */
struct sm_coord_cmp {
    const char *key;
    enum sm_coord_cmp_target target;
    enum sm_coord_cmp_result result;
    int64_t number;    /* VERSION, CREATE_REVISION, MOD_REVISION, LEASE */
    const void *value; /* VALUE */
    size_t value_len;
};

enum sm_coord_op_kind {
    SM_COORD_OP_RANGE,  /* read key, or every key starting with it when prefix */
    SM_COORD_OP_PUT,    /* write key = value, under lease unless 0 */
    SM_COORD_OP_DELETE, /* delete key, or every key starting with it when prefix */
};

/* One operation of a transaction. Borrowed for the duration of the submit call only. */
struct sm_coord_op {
    enum sm_coord_op_kind kind;
    const char *key;
    bool prefix;       /* RANGE, DELETE; a prefix may be "" only for RANGE (whole store) */
    const void *value; /* PUT */
    size_t value_len;  /* PUT: 0..SM_COORD_VALUE_BYTES_MAX */
    int64_t lease;     /* PUT: 0 = no lease; else a live lease of this store */
};

/* The kind of a request, echoed in its result. */
enum sm_coord_req_kind {
    SM_COORD_REQ_TXN,             /* get, put, delete and txn are all transactions */
    SM_COORD_REQ_LEASE_GRANT,     /* result: lease, ttl_ms */
    SM_COORD_REQ_LEASE_KEEPALIVE, /* result: lease, ttl_ms (the TTL restarted); NOTFOUND = lost */
    SM_COORD_REQ_LEASE_REVOKE,    /* deletes the lease's keys now */
    SM_COORD_REQ_WATCH,           /* result: the watch is open (or err); events follow */
    SM_COORD_REQ_WATCH_CANCEL,    /* no more events from that watch after this result */
};

/*
 * Submitting. Every call validates and copies its arguments (the caller may free them on return),
 * writes the new request's id (never 0, increasing per client) to *id, and returns 0; or returns
 * a negative sm_err and submits nothing (no result will come). A request that was submitted
 * always yields exactly one SM_COORD_DONE result with its id, whatever happens.
 */

/* A transaction: if every compare holds, run then_ops, else else_ops. ncmps + nthen + nelse is
 * at most SM_COORD_TXN_OPS_MAX; no two PUT/DELETE ops of one branch may touch the same key. */
MUST_USE int sm_coord_txn(struct sm_coord *c, const struct sm_coord_cmp *cmps, size_t ncmps,
                          const struct sm_coord_op *then_ops, size_t nthen,
                          const struct sm_coord_op *else_ops, size_t nelse, uint64_t *id);
/* Shorthands for one-op transactions without compares. */
MUST_USE int sm_coord_get(struct sm_coord *c, const char *key, bool prefix, uint64_t *id);
MUST_USE int sm_coord_put(struct sm_coord *c, const char *key, const void *value, size_t value_len,
                          int64_t lease, uint64_t *id);
MUST_USE int sm_coord_delete(struct sm_coord *c, const char *key, bool prefix, uint64_t *id);

/* Leases. ttl_ms is 1..SM_COORD_LEASE_TTL_MS_MAX; etcd counts whole seconds and may raise a short
 * TTL to its minimum, so the granted ttl_ms in the result is what counts. A keepalive restarts
 * the full TTL; the caller renews at ttl_ms / 3 (see sm_coord_session in directory.h). */
MUST_USE int sm_coord_lease_grant(struct sm_coord *c, int64_t ttl_ms, uint64_t *id);
MUST_USE int sm_coord_lease_keepalive(struct sm_coord *c, int64_t lease, uint64_t *id);
MUST_USE int sm_coord_lease_revoke(struct sm_coord *c, int64_t lease, uint64_t *id);

/* Watches key (or every key under the prefix) from start_revision on (0 = from the next change).
 * Its events come as SM_COORD_WATCH_EVENTS results carrying this request's id, in revision
 * order, until cancelled or failed (a final WATCH_EVENTS result with err set). The etcd backend
 * reconnects a broken watch by itself, resuming after the last revision delivered, so nothing
 * is lost or repeated across an etcd restart or an endpoint switch. */
MUST_USE int sm_coord_watch(struct sm_coord *c, const char *key, bool prefix,
                            int64_t start_revision, uint64_t *id);
MUST_USE int sm_coord_watch_cancel(struct sm_coord *c, uint64_t watch_id, uint64_t *id);

/* ---- results ------------------------------------------------------------------------------- */

/* A key and its value as the store holds it. key and value are NUL-terminated copies owned by the
 * result they came in (value may hold NULs; value_len counts the bytes without the terminator). */
struct sm_coord_kv {
    char *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

enum sm_coord_event_type {
    SM_COORD_EVENT_PUT,
    SM_COORD_EVENT_DELETE, /* kv holds the key and mod_revision = the deletion's revision */
};

struct sm_coord_event {
    enum sm_coord_event_type type;
    struct sm_coord_kv kv;
};

enum sm_coord_result_kind {
    SM_COORD_DONE,         /* the completion of request `id` */
    SM_COORD_WATCH_EVENTS, /* events (or the end, err != 0) of watch `id` */
};

/* One polled result. Owns its arrays; release with sm_coord_result_free. */
struct sm_coord_result {
    enum sm_coord_result_kind kind;
    enum sm_coord_req_kind req; /* the kind of request `id` */
    uint64_t id;
    int err;                                  /* 0 or a negative sm_err */
    char message[SM_COORD_MESSAGE_BYTES_MAX]; /* what went wrong, when err != 0 */
    int64_t revision;                         /* the store's revision for this result */
    bool succeeded;                           /* TXN: the compares held (then-ops ran) */
    struct sm_coord_kv *kvs;                  /* TXN: the keys every RANGE op read, in op order */
    size_t kvs_count;
    int64_t deleted;               /* TXN: keys removed by DELETE ops */
    int64_t lease;                 /* LEASE_*: the lease */
    int64_t ttl_ms;                /* LEASE_GRANT, LEASE_KEEPALIVE: its TTL from now */
    struct sm_coord_event *events; /* WATCH_EVENTS: in revision order */
    size_t events_count;
};

/* Takes the oldest waiting result into *out (which the caller then owns and frees): returns 1,
 * or 0 when none waits (*out is zeroed). Results of one client come in the order the backend
 * produced them; a request's DONE always comes before events of the watch it opened. */
MUST_USE int sm_coord_poll(struct sm_coord *c, struct sm_coord_result *out);

/* Frees what a result owns and zeroes it; safe on a zeroed result. */
void sm_coord_result_free(struct sm_coord_result *r);

/* A file descriptor that is readable while results wait (the etcd backend's eventfd), for an
 * event loop to watch; -1 for the embedded backend, whose results appear only during the
 * caller's own calls (submit, sm_coord_embedded_tick, sm_coord_embedded_apply). */
int sm_coord_fd(const struct sm_coord *c);

/* Closes the client: cancels its watches, drops results not polled. Requests in flight to etcd
 * may still apply there. Leases are left to expire (revoke first for a clean leave). */
void sm_coord_close(struct sm_coord *c);

/* The name of a request kind ("txn", "lease_grant", ...), for logs. */
const char *sm_coord_req_kind_str(enum sm_coord_req_kind kind);

/* ---- the embedded backend (src/coord/embedded.c) ------------------------------------------- */

/* One linearizable in-memory store shared by any number of clients. Deterministic: the same
 * calls in the same order give the same results, revisions and lease ids. */
struct sm_coord_store;

/* A store at revision 1 (etcd's first revision), time 0. NULL when out of memory. */
struct sm_coord_store *sm_coord_store_new(void);
/* Frees the store; every client of it must be closed first. */
void sm_coord_store_free(struct sm_coord_store *s);

/* Sets the store's time (ms, never decreasing: an older time is ignored) and expires every lease
 * whose deadline is <= now_ms, deleting its keys (watch events go to every client). */
void sm_coord_embedded_tick(struct sm_coord_store *s, int64_t now_ms);
/* The store's current revision. */
int64_t sm_coord_store_revision(const struct sm_coord_store *s);

/* A client of the store. In the default (automatic) mode a request applies during its submit
 * call and its result waits for sm_coord_poll. Returns 0 or SM_E_NOMEM. */
MUST_USE int sm_coord_embedded_open(struct sm_coord_store *s, struct sm_coord **out);

/* Manual mode, for the simulator: submitted requests wait in the client until
 * sm_coord_embedded_apply applies them (the moment they take effect, as if the network had
 * carried them to etcd), or sm_coord_embedded_fail_pending fails them. Watch events still queue
 * for the client as changes happen; the simulator delays them by not polling. */
void sm_coord_embedded_set_manual(struct sm_coord *c, bool manual);
/* Applies up to n waiting requests of a manual client in submit order; returns how many. */
size_t sm_coord_embedded_apply(struct sm_coord *c, size_t n);
/* Completes the oldest n waiting requests of a manual client with err, without applying them
 * (the simulator loses one request on its way to the store: SM_E_TIMEOUT, as the etcd backend
 * reports a request that got no answer). Returns how many. */
size_t sm_coord_embedded_fail(struct sm_coord *c, size_t n, int err);
/* Completes every waiting request of a manual client with err (SM_E_TRYAGAIN: did not apply,
 * as when the node could not reach the control plane). Returns how many. */
size_t sm_coord_embedded_fail_pending(struct sm_coord *c, int err);
/* Requests waiting in a manual client. */
size_t sm_coord_embedded_pending(const struct sm_coord *c);

/* ---- the etcd backend (src/coord/etcd.c) --------------------------------------------------- */

struct sm_coord_etcd_config {
    /* "http://127.0.0.1:2379" ...; tried in turn from the last one that answered. */
    const char *endpoints[SM_COORD_ENDPOINTS_MAX];
    size_t endpoints_count;
    int64_t request_timeout_ms; /* one HTTP request to one endpoint; 0 = 5000 */
    int64_t connect_timeout_ms; /* 0 = 1000 */
};

/* Parses "etcd://host:port[,host:port...]" or "http://..,http://.." into endpoints stored in
 * buf (caller memory, which must outlive cfg). Returns 0, SM_E_BADARG or SM_E_TOOLARGE. */
MUST_USE int
sm_coord_etcd_parse_endpoints(const char *spec, struct sm_coord_etcd_config *cfg,
                              char buf[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX]);

/* Starts the client's worker thread. Does not contact etcd: an endpoint that is down shows in
 * the first results. Returns 0, SM_E_BADARG (no or bad endpoints), SM_E_NOMEM or SM_E_IO. */
MUST_USE int sm_coord_etcd_open(const struct sm_coord_etcd_config *cfg, struct sm_coord **out);

#endif
