/*
 * The cluster runtime of one node (`shardmart start --cluster ...`, DESIGN.md section 7,
 * docs/cluster.md "The real server"): the node's side of the control plane, run on the server's
 * libuv loop.
 *
 * What it does, in order:
 *   1. opens the etcd client (sm_coord_etcd_open) and the directory of the cluster name;
 *   2. keeps one lease alive (sm_coord_session, TTL --lease-ms, renewed at TTL/3) and writes its
 *      member key under it: {"id":"<node id>","addr":"<peer host:port>,<client host:port>",...}
 *      (addr carries both addresses, comma-separated: peers use the first, -MOVED answers give
 *      the second);
 *   3. creates meta {partitions, replicas} if absent (the first node's flags win; a node whose
 *      --partitions or --replicas differ from meta refuses to run);
 *   4. loads the whole directory at one revision, then watches it from the next revision; the
 *      etcd client's eventfd (sm_coord_fd) is polled by a uv_poll, so results are handled on the
 *      loop thread as they come;
 *   5. campaigns for the controller key (sm_coord_dir_campaign) whenever there is none. The
 *      controller bootstraps the cluster once: when it sees at least `replicas` live members and
 *      no placement key, it writes the placement key {"nodes":[ids]} (created only if absent, so
 *      two controllers one after the other cannot write two) and then creates every partition's
 *      config from src/ring placement over those nodes: epoch 1, primary = replica 0, ISR = all
 *      replicas.
 * Every node computes the same replica sets from the placement key (ring_place is a pure
 * function of its inputs), so a partition's config needs to carry only epoch, primary and ISR.
 *
 * The node is ready (/readyz 200) once meta, the placement and every partition's config are
 * loaded and its member key is written.
 */
#ifndef SHARDMART_SERVER_CLUSTER_RT_H
#define SHARDMART_SERVER_CLUSTER_RT_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "cluster/part.h"
#include "proto/http.h"
#include "proto/resp.h"
#include "util/assert.h"
#include "util/buf.h"

/* The default name of the cluster's directory, and of its lease TTL. */
#define CLUSTER_RT_NAME_DEFAULT     "shardmart"
#define CLUSTER_RT_LEASE_MS_DEFAULT 1000
/* How often the runtime's timer runs (session upkeep, campaigns, the controller's checks). */
#define CLUSTER_RT_TICK_MS 10

struct cluster_rt_config {
    uv_loop_t *loop;             /* borrowed: the server's loop */
    const char *coord_spec;      /* "etcd://host:port[,host:port...]" */
    const char *cluster_name;    /* 1..SM_COORD_CLUSTER_NAME_BYTES_MAX of [A-Za-z0-9_.-] */
    uint32_t node_id;            /* 0..SM_CLUSTER_NODES_MAX-1 */
    const char *zone;            /* 0..SM_COORD_ZONE_BYTES_MAX bytes */
    const char *advertise;       /* host:port other nodes reach this one on */
    const char *client_host;     /* the host of the client address in -MOVED answers */
    int resp_port;               /* the RESP port clients use */
    uint32_t partitions;         /* 1..SM_PARTITIONS_MAX, must equal meta's */
    uint32_t replicas;           /* 1..SM_REPLICAS_MAX, must equal meta's */
    int64_t lease_ms;            /* the member lease's TTL */
    void (*on_fatal)(void *ctx); /* the node cannot take part (meta mismatch): the server stops */
    void *ctx;
    /* The node's replicated partitions (server/repl.h), borrowed: the runtime hands it every
     * partition config, every member's peer address and, on the controller, the failover
     * checks; the partitions' CAS requests come back through cluster_rt_cas. NULL: none. */
    struct repl *repl;
};

struct cluster_rt;

/* Starts the runtime on cfg->loop (strings are copied). 0, SM_E_BADARG with a one-line reason
 * on stderr (a bad flag or endpoint list), SM_E_NOMEM, SM_E_IO. Stop with cluster_rt_stop. */
MUST_USE int cluster_rt_start(struct cluster_rt **out, const struct cluster_rt_config *cfg);
/* Closes its handles (the loop then runs dry of them) and leaves the member key to its lease.
 * Frees the runtime once its handles are closed: the caller forgets rt at this call. */
void cluster_rt_stop(struct cluster_rt *rt);

/* Writes config for partition p if its key's revision is still config->revision (a CAS that
 * repl.h asked for; from_controller: the failover controller's). The new config reaches the
 * replicas through the watch (and this node's at once, from the answer); a CAS that finds the
 * key moved on calls repl_cas_failed. 0, or an SM_E_* when it could not be sent. */
MUST_USE int cluster_rt_cas(struct cluster_rt *rt, uint32_t p, const struct cluster_config *config,
                            bool from_controller);

/* True once the configs are loaded and the member key is written. */
bool cluster_rt_ready(const struct cluster_rt *rt);

/* The RESP hook, before the node executes a request: answers CLUSTER.INFO, CLUSTER.NODES and
 * CLUSTER.PARTITIONS, and routes trading commands (docs/node.md) by the partition of their key:
 * `-MOVED <partition> <host:port>` when another node leads it, `-CROSSPARTITION ...` for keys in
 * several partitions, lock sessions and blocking lock waits (not in cluster mode yet),
 * `-CLUSTERDOWN` before the configs are loaded. Returns 1 when it answered (the reply is in out),
 * 0 when the node executes the request, SM_E_NOMEM when out is full.
 * A primary executes its partitions' commands through their replicated logs (server/repl.h). */
MUST_USE int cluster_rt_command(struct cluster_rt *rt, const struct resp_request *req,
                                struct resp_encoder *out);

/* GET /cluster (JSON) and /readyz (200 once ready, else 503), and 501 for /api/ (not routed):
 * 1 when the path is one of them (the answer is in out), 0 when it is not, SM_E_NOMEM when the
 * answer could not be built. */
MUST_USE int cluster_rt_http(struct cluster_rt *rt, const struct http_request *req,
                             struct sm_wbuf *out);

#endif
