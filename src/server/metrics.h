/*
 * What the runtime counts, and the HTTP side of a node: /healthz, /readyz and /metrics
 * (Prometheus text exposition format 0.0.4). Counters are plain integers: one thread updates
 * them (the loop), and /metrics is served by that same thread.
 */
#ifndef SHARDMART_SERVER_METRICS_H
#define SHARDMART_SERVER_METRICS_H

#include <stdint.h>

#include "node/node.h"
#include "proto/http.h"
#include "util/buf.h"

/* Batch sizes are counted in power-of-two buckets: 1, 2, 4 ... 2^15 and more. */
#define SERVER_BATCH_BUCKETS 17
/* fsync latency buckets: 16 us, 32 us ... about 1 s, and more. */
#define SERVER_FSYNC_BUCKETS 18

struct server_metrics {
    uint64_t connections_accepted;
    uint64_t connections_closed;
    uint64_t connections_rejected;  /* over --maxclients */
    uint64_t connections_timed_out; /* over --idle-timeout-ms */
    uint64_t requests;
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t batches;
    uint64_t batch_buckets[SERVER_BATCH_BUCKETS];
    uint64_t batch_requests_sum;
    /* fsync latency (write + fdatasync of one batch) in power-of-two microsecond buckets. */
    uint64_t fsync_buckets[SERVER_FSYNC_BUCKETS];
    uint64_t fsync_count;
    uint64_t fsync_sum_us;
    uint64_t snapshots_ok;
    uint64_t snapshots_failed;
    uint64_t snapshot_fork_us_max; /* the longest pause a snapshot caused */
    uint64_t snapshot_last_ms;     /* how long the last snapshot took to write */
};

/* Counts one batch of n requests. */
void server_metrics_batch(struct server_metrics *m, uint32_t n);
/* A snapshot child was forked (the loop paused elapsed_ns) / finished. */
void server_metrics_snapshot_fork(struct server_metrics *m, uint64_t elapsed_ns);
void server_metrics_snapshot_done(struct server_metrics *m, bool ok, uint64_t elapsed_ns);
/* Counts one flush (write + fdatasync) that took elapsed_ns. */
void server_metrics_fsync(struct server_metrics *m, uint64_t elapsed_ns);

/* Answers one HTTP request into out: 200 for /healthz, /readyz and /metrics, 404 for other
 * paths, 405 for methods other than GET and HEAD. 0, or SM_E_NOMEM when the answer could not be
 * built (the caller closes the connection). */
MUST_USE int server_http_handle(const struct node *n, const struct server_metrics *m,
                                const struct http_request *req, struct sm_wbuf *out);

#endif
