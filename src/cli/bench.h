/*
 * `shardmart bench` internals shared by cmd_bench.c (flags, set-up, summary), bench_workload.c
 * (what the next operation is) and bench_loop.c (sending, receiving, timing, history).
 *
 *   workload -> bench_op -> client slot (<= pipeline per connection) -> reply -> outcome,
 *                                                                       histogram, history line
 */
#ifndef SHARDMART_CLI_BENCH_H
#define SHARDMART_CLI_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cli/history.h"
#include "cli/latency_hist.h"
#include "cli/resp_client.h"
#include "limits.h"

enum bench_workload { BENCH_FLASH_SALE, BENCH_SPREAD, BENCH_CART, BENCH_LOCKS, BENCH_MIXED };

/* Bounds of the tool, each with its reason. */
#define BENCH_CLIENTS_MAX    4096 /* one poll() set; far past what a 2-core loopback run needs */
#define BENCH_PIPELINE_MAX   1024 /* the node's --pipeline-max default: deeper only queues there */
#define BENCH_SKUS_MAX       100000 /* names live in one array; STOCK.GET of each at the end */
#define BENCH_NAME_BYTES     48     /* "<tag>-<letter><index>" with room to spare */
#define BENCH_ARGS_BYTES     (16 + 5 * (BENCH_NAME_BYTES + 4)) /* user, ttl, up to 5 items */
#define BENCH_FOLLOWUPS_MAX  4096   /* acked orders to pay or cancel, granted locks to release */
#define BENCH_FOLLOWUP_BYTES 64     /* "<session> <lock> <owner>" or an order id */
#define BENCH_LOCKS_MAX      100000 /* names live in one array; LOCK.INFO of each in check */
#define BENCH_ACCOUNTS_MAX   1024   /* all in one partition: found by trying names */
#define BENCH_AMOUNT_MAX     1000   /* cents moved by one deposit, withdrawal or transfer */
#define BENCH_OUTCOMES_MAX   16     /* distinct error codes counted; the rest are "other" */
#define BENCH_STALL_MS       10000 /* no reply for this long with requests out: the node is stuck */
#define BENCH_OUTAGES_MAX    1024  /* partition outages listed; later ones are only counted */
#define BENCH_NODE_NONE      UINT16_MAX /* a partition whose primary is not known yet */

struct bench_config {
    enum bench_workload workload;
    const char *host;
    int port;
    uint32_t clients;
    uint32_t pipeline;
    uint64_t requests;    /* 0 when bounded by duration_ms only */
    uint64_t duration_ms; /* 0 when bounded by requests only */
    double rate;          /* > 0: open loop at this many operations per second */
    uint32_t skus;
    uint32_t locks;    /* locks, mixed: distinct lock names */
    uint32_t accounts; /* mixed: accounts, all in one partition; cart --cross: spread */
    int64_t stock;
    uint32_t users;
    uint32_t partitions;
    int64_t ttl_ms;
    const char *history;
    uint64_t seed;
    bool json;
    bool cluster;  /* route every request to its partition's primary (bench_cluster.c) */
    bool cold_map; /* --cluster without CLUSTER.PARTITIONS: learn every primary from -MOVED */
    bool cross;    /* cart: SKUs and accounts spread over partitions (see bench_workload.c) */
};

/*
 * The cluster client's view (--cluster): the nodes' client addresses, and for every partition
 * the node believed to be its primary, learnt from CLUSTER.NODES and CLUSTER.PARTITIONS and
 * corrected by every -MOVED. A node that refused a connection or dropped one is "down" for a
 * back-off that doubles from SM_CLIENT_RETRY_MIN_MS to SM_CLIENT_RETRY_MAX_MS; requests meant
 * for it ask another node meanwhile. Also the availability of every partition, as the load sees
 * it: when writes to it began to fail and when it last answered.
 */
struct bench_cluster {
    uint32_t partitions;
    uint32_t nodes_n;
    char addr[SM_CLIENT_NODES_MAX][SM_CLIENT_ADDR_BYTES_MAX]; /* "a.b.c.d:port" */
    char host[SM_CLIENT_NODES_MAX][16];
    int port[SM_CLIENT_NODES_MAX];
    uint64_t down_until_ns[SM_CLIENT_NODES_MAX]; /* since the load began; 0: up */
    uint32_t down_backoff_ms[SM_CLIENT_NODES_MAX];
    uint32_t any;          /* round robin over nodes for requests without a live primary */
    uint16_t *primary;     /* [partitions]: an index into addr, or BENCH_NODE_NONE */
    uint64_t *failing_ns;  /* [partitions]: since when writes fail (0: they do not) */
    uint64_t *answered_ns; /* [partitions]: the last answer (0: none yet) */
};

/* One stretch of time in which writes to a partition got no answer (only refusals, lost or
 * refused connections), from the first failure seen to the next answer. */
struct bench_outage {
    uint32_t partition;
    uint64_t start_ns;    /* the first failure, since the load began */
    uint64_t end_ns;      /* the next answer; the run's end when open */
    uint64_t answered_ns; /* the last answer before the failure (0: none) */
    bool open;            /* no answer came before the run ended */
};

/* One operation: what the history records about it besides its reply. */
struct bench_op {
    uint64_t intended_ns; /* since the run's start: when it was meant to be sent */
    uint8_t kind;         /* enum history_op */
    char rid[32];
    char args[BENCH_ARGS_BYTES]; /* the arguments after the request id, space-separated */
};

struct bench_outcome {
    char code[24]; /* "ok" or the error's first word */
    uint64_t count;
};

/* What to send next. The caller owns it; bench_workload_init fills the SKU names. */
struct bench_workload_state {
    const struct bench_config *cfg;
    uint64_t rng;
    char tag[20]; /* unique per run: request ids and SKU names start with it */
    uint64_t seq;
    char (*skus)[BENCH_NAME_BYTES];
    uint32_t skus_n;
    char (*accounts)[BENCH_NAME_BYTES]; /* mixed, cart --cross */
    uint32_t accounts_n;
    char session[BENCH_NAME_BYTES]; /* locks, mixed: the one session every acquire uses */
    uint32_t setup_n; /* set-up operations: session, SKUs, accounts (cart --cross: deposits) */
    /* A ring of follow-ups: order ids to pay or cancel (cart, mixed), "<session> <lock>
     * <owner>" of granted locks to release (locks, mixed). */
    char followups[BENCH_FOLLOWUPS_MAX][BENCH_FOLLOWUP_BYTES];
    uint8_t followup_kind[BENCH_FOLLOWUPS_MAX];
    uint32_t followups_head;
    uint32_t followups_n;
};

/* The totals of one run. */
struct bench_result {
    uint64_t ops;  /* replies received (and unanswered ops counted as lost) */
    uint64_t lost; /* sent but never answered (connection lost) */
    uint64_t elapsed_ns;
    /* --cluster: redirects followed, requests sent again after a refusal or a lost connection,
     * the longest window with no answered write (and when it began), and every outage. */
    uint64_t redirects;
    uint64_t retries;
    uint64_t gap_max_ns;
    uint64_t gap_start_ns;
    uint64_t last_answer_ns;
    struct bench_outage outages[BENCH_OUTAGES_MAX];
    uint32_t outages_n;
    uint64_t outages_dropped;
    struct latency_hist hist;
    struct bench_outcome outcomes[BENCH_OUTCOMES_MAX + 1]; /* the last is "other" */
    uint32_t outcomes_n;
};

uint64_t bench_now_ns(void);

/* Picks SKU names (cart: all in one partition) and the run tag. 0, SM_E_NOMEM or SM_E_BADARG
 * (no names found in the same partition). Free with bench_workload_free. */
MUST_USE int bench_workload_init(struct bench_workload_state *w, const struct bench_config *cfg);
void bench_workload_free(struct bench_workload_state *w);
/* The set-up operation i < w->setup_n (SESSION.OPEN, STOCK.CREATE, ACCOUNT.OPEN) into op. */
void bench_workload_setup_op(struct bench_workload_state *w, uint32_t i, struct bench_op *op);
/* The next load operation into op (a follow-up payment or cancel first, in cart). */
void bench_workload_next(struct bench_workload_state *w, struct bench_op *op);
/* Tells the workload op was acknowledged with result (history.h): a placed order (cart, mixed
 * queue a payment or a cancel for some), a granted lock (queues its release). */
void bench_workload_acked(struct bench_workload_state *w, const struct bench_op *op,
                          const char *result);
/* The result column of the current reply of c to op: a granted lock's token or NOT_GRANTED,
 * else the reply as text ("?" when it is not text). */
void bench_reply_result(const struct rc_conn *c, const struct bench_op *op, char *s, size_t cap);

/* Encodes op as a command on c. */
void bench_send_op(struct rc_conn *c, const struct bench_op *op);
/* Writes one history line. */
void bench_history_line(FILE *f, uint32_t client, const struct bench_op *op, uint64_t reply_ns,
                        const char *outcome, const char *result);
/* Counts an outcome in r. */
void bench_count_outcome(struct bench_result *r, const char *code);

/* Sets m up with the seed node host:port, then reads CLUSTER.INFO (waiting, within
 * SM_CLIENT_RETRY_TOTAL_MS, until it says cluster_state:ok), CLUSTER.NODES and, unless cold_map,
 * CLUSTER.PARTITIONS over c. 0, or a negative code after printing why. Free with
 * bench_cluster_free. */
MUST_USE int bench_cluster_load(struct bench_cluster *m, struct rc_conn *c, bool cold_map);
void bench_cluster_free(struct bench_cluster *m);
/* The index of the node at addr, added when new; -1 when SM_CLIENT_NODES_MAX are known or addr is
 * not "a.b.c.d:port". */
int bench_cluster_node(struct bench_cluster *m, const char *addr);
/* The partition op's key falls in (the order id's own for ORDER.PAYEXT, ORDER.CANCEL, ORDER.PAY
 * and ORDER.REFUND). */
uint32_t bench_cluster_partition(const struct bench_cluster *m, const struct bench_op *op);
/* Parses "MOVED <partition> <host:port>" (the reply's text after '-'): false when malformed. */
bool bench_cluster_parse_moved(const char *text, size_t len, uint32_t *partition, char *addr,
                               size_t cap);

/* Runs the load phase on cfg->clients fresh connections to cfg->host:cfg->port, or, with m
 * (--cluster), on a connection per client and node, routing every request through m: a request
 * refused with -MOVED goes where the reply says; -TRYAGAIN, -CLUSTERDOWN and lost or refused
 * connections are retried with the same request id after a back-off; a request unanswered
 * SM_CLIENT_RETRY_TOTAL_MS after it was first sent ends the run. r gets the availability figures.
 * 0, or a negative code after printing why (a connection lost or stuck, a request given up: the
 * history still has every operation, those that may have happened as "unknown"). */
MUST_USE int bench_loop_run(const struct bench_config *cfg, struct bench_workload_state *w,
                            FILE *history, uint64_t start_ns, struct bench_cluster *m,
                            struct bench_result *r);

#endif
