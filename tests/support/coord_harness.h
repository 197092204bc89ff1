/*
 * The behavioural tests of the control plane, written once against coord.h and run against both
 * backends: tests/coord/test_embedded.c and test_etcd.c each fill a struct harness (how to get a
 * client, how time passes, how long to wait) and call the suite_* functions of coord_suite.c.
 */
#ifndef SHARDMART_TESTS_COORD_HARNESS_H
#define SHARDMART_TESTS_COORD_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "coord/coord.h"

#define HARNESS_CLIENTS_MAX 4
#define HARNESS_STASH_MAX   256

/* Results polled while waiting for another one, kept for later waits. */
struct harness_stash {
    struct sm_coord_result results[HARNESS_STASH_MAX];
    int count;
};

struct harness {
    /* A new client of the same store or cluster. */
    struct sm_coord *(*open)(struct harness *h);
    /* Lets ms of time pass: the embedded store ticks, the etcd harness sleeps. */
    void (*advance)(struct harness *h, int64_t ms);
    /* The harness clock in ms (simulated or monotonic). */
    int64_t (*now)(struct harness *h);
    /* Waits up to ms for results (etcd: on sm_coord_fd; embedded: nothing to wait for). */
    void (*wait)(struct harness *h, struct sm_coord *c, int64_t ms);
    /* A TTL short enough to keep tests quick, long enough for the backend (etcd: whole s). */
    int64_t ttl_ms;
    struct sm_coord *clients[HARNESS_CLIENTS_MAX];
    struct harness_stash stash[HARNESS_CLIENTS_MAX];
    int clients_count;
    void *backend; /* the harness's own state */
};

/* Opens a client through h->open and remembers it (closed by harness_close_clients). */
struct sm_coord *harness_client(struct harness *h);
void harness_close_clients(struct harness *h);
/* Waits (up to 10 s) for the DONE result of request id of client c; fails the test if none. */
void harness_await(struct harness *h, struct sm_coord *c, uint64_t id, struct sm_coord_result *out);
/* Waits up to ms for the next WATCH_EVENTS result of watch id; false when none came. */
bool harness_events(struct harness *h, struct sm_coord *c, uint64_t watch_id, int64_t ms,
                    struct sm_coord_result *out);

/* The suite: each runs on a fresh store (embedded) or a fresh etcd. */
void suite_crud(struct harness *h);
void suite_txn_compares(struct harness *h);
void suite_cas_race(struct harness *h);
void suite_lease_expiry(struct harness *h);
void suite_lease_unknown(struct harness *h);
void suite_watch_from_revision(struct harness *h);
void suite_watch_cancel(struct harness *h);
void suite_bad_requests(struct harness *h);
void suite_linearizable_order(struct harness *h);
void suite_directory(struct harness *h);
void suite_election(struct harness *h);
void suite_session(struct harness *h);

#endif
