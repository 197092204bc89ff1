/*
 * The libuv runtime of one node: sockets, timers, signals and (with the log) the fsync thread.
 * It owns the event loop and drives src/node/, which never touches a socket.
 *
 * One loop iteration, as DESIGN.md section 4 describes it:
 *
 *   poll: read every readable connection into its input buffer
 *   check: parse every complete request of every connection (pipelining), execute them all
 *          as one batch, encoding the replies into each connection's output buffer
 *          -> the batch's records go to the log, one fsync for all (group commit)
 *          -> only then do the batch's replies, reads included, become writable
 *
 * Limits (every one a flag of `shardmart start`, with a default in src/limits.h): clients,
 * request size (the parser's), requests in flight per connection, reply bytes waiting per
 * connection (backpressure: a client that does not read its replies is not read either), idle
 * time. Passing one is a clear error to that client, never a crash or an effect on others.
 */
#ifndef SHARDMART_SERVER_SERVER_H
#define SHARDMART_SERVER_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/engine.h"
#include "util/assert.h"
#include "wal/wal.h"

struct server_config {
    const char *bind_host; /* "127.0.0.1" unless told otherwise */
    int resp_port;         /* 0 = pick a free port (tests); the chosen one is printed */
    int http_port;         /* 0 = pick a free port; -1 = no HTTP listener */
    const char *data_dir;
    const char *password; /* NULL = no AUTH */
    uint32_t clients_max;
    uint32_t pipeline_max;
    uint64_t output_bytes_max;
    uint32_t idle_timeout_ms; /* 0 = never */
    uint32_t partitions;
    const char *ready_file; /* if set, "resp_port http_port\n" is written there once listening */
    enum wal_sync_mode sync_mode; /* --fsync always (default) | every:<ms> | never */
    uint32_t fsync_every_ms;      /* with WAL_SYNC_EVERY */
    bool repair;                  /* --repair: set corruption aside instead of refusing */
    uint32_t tick_ms;             /* how often time advances in the engines */
    uint64_t snapshot_every;      /* records between background snapshots; 0 = never */
    uint64_t segment_bytes;       /* log segment size; 0 = SM_WAL_SEGMENT_BYTES_DEFAULT */
    bool preallocate;             /* zero-filled segments made ahead on a worker thread */
    uint32_t batch_wait_us;       /* gathering window before a batch (server.c gather_wait) */
    struct engine_config engine;  /* capacities of every partition */
    /* Cluster mode (server/cluster_rt.h); cluster_spec NULL = a single node. */
    const char *cluster_spec; /* --cluster etcd://host:port[,host:port...] */
    const char *cluster_name; /* --cluster-name */
    const char *advertise;    /* --advertise host:port (peer address) */
    const char *zone;         /* --zone */
    uint32_t node_id;         /* --node-id */
    uint32_t replicas;        /* --replicas */
    int64_t lease_ms;         /* --lease-ms */
};

/* Fills cfg with the defaults of `shardmart start`. */
void server_config_defaults(struct server_config *cfg);

/* Runs a node until SIGINT or SIGTERM. 0 after a clean shutdown; a negative SM_E_* after a
 * start-up failure, with a one-line reason already printed to stderr (busy port, unusable data
 * directory). */
MUST_USE int server_run(const struct server_config *cfg);

#endif
