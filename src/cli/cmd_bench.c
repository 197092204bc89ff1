/*
 * `shardmart bench <flash-sale|spread|cart|locks|mixed>`: a load generator that speaks RESP to a
 * node, counts the outcome of every operation, measures latency with a log-linear histogram and can
 * record a history for `shardmart check` (docs/tools.md). This file holds the flags, the set-up
 * (the session, SKUs and accounts), the final read of the stock and the summary; bench_loop.c
 * drives the load and bench_workload.c decides what each operation is.
 */
#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/bench.h"
#include "cli/commands.h"
#include "util/error.h"

const char cli_bench_usage[] =
    "usage: shardmart bench <flash-sale|spread|cart|locks|mixed> [options]\n"
    "Drives load at a node over RESP and reports throughput, outcomes and latency.\n"
    "  flash-sale  one SKU of --stock units, LIMIT 1 per user; single-unit orders of random users\n"
    "  spread      --skus SKUs; single-unit orders of a random SKU\n"
    "  cart        --skus SKUs in one partition; orders of 2-5 SKUs, then some paid or cancelled\n"
    "              (--cross: SKUs and --accounts accounts spread over the partitions, orders\n"
    "              paid with ORDER.PAY, some refunded, and transfers: cross-partition work)\n"
    "  locks       try-acquires of --locks locks by fresh owners; every grant then released\n"
    "  mixed       40% orders over --skus SKUs, 20% lock cycles, 40% deposits, withdrawals\n"
    "              and transfers between --accounts accounts of one partition\n"
    "options:\n"
    "  --host H          node address (default 127.0.0.1)\n"
    "  --port P          RESP port (default 7379)\n"
    "  --clients N       connections (default 50, 1..4096)\n"
    "  --pipeline D      requests in flight per connection (default 1, 1..1024)\n"
    "  --requests N      operations to send (default 100000 unless --duration-ms)\n"
    "  --duration-ms T   stop sending after T ms\n"
    "  --rate R          open loop: R operations per second at fixed intended times; latency\n"
    "                    counts from the intended time (default: closed loop)\n"
    "  --skus N          SKUs for spread, cart, mixed (default 1000 spread, 16 cart, 100 mixed)\n"
    "  --locks N         lock names for locks and mixed (default 64, 1..100000)\n"
    "  --accounts N      accounts for mixed and cart --cross (default 16, 1..1024)\n"
    "  --stock Q         units per SKU (default 1000)\n"
    "  --users N         distinct buyers (default 100000)\n"
    "  --partitions P    the node's partition count, for cart's SKUs and mixed's accounts\n"
    "                    (default: asked with CONFIG GET partitions)\n"
    "  --ttl-ms T        reservation time of each order, lease of each lock and the session's\n"
    "                    time to live (default 600000)\n"
    "  --history FILE    write one line per operation (TSV, see docs/tools.md)\n"
    "  --seed S          random seed (default 1)\n"
    "  --json            print the summary as one JSON object\n"
    "  --cluster         --host/--port is one node of a cluster: learn the partition map\n"
    "                    (CLUSTER.NODES, CLUSTER.PARTITIONS), send every request to its\n"
    "                    partition's primary, follow -MOVED, retry -TRYAGAIN, -CLUSTERDOWN and\n"
    "                    lost connections with the same request id (flash-sale, spread, cart);\n"
    "                    also prints the longest window without an answered write and every\n"
    "                    partition's outage\n"
    "  --cold-map        --cluster, but without reading CLUSTER.PARTITIONS: every primary is\n"
    "                    learnt from its first -MOVED (tests and measures the redirect path)\n"
    "exit: 0 done, 1 the node failed or went away (or, --cluster, a request got no answer\n"
    "      for 10 s), 2 usage\n";

/* Parses an integer flag value in [min, max]; false (after a message) when it is not one. */
static bool parse_int(const char *flag, const char *s, int64_t min, int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = s ? strtoll(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < min || v > max) {
        fprintf(stderr, "shardmart bench: %s wants an integer in %lld..%lld\n", flag,
                (long long)min, (long long)max);
        return false;
    }
    *out = v;
    return true;
}

struct int_flag {
    const char *name;
    int64_t min;
    int64_t max;
    size_t offset; /* into struct bench_flags */
};

/* Raw integer flags before they become the config (-1: not given). */
struct bench_flags {
    int64_t port, clients, pipeline, requests, duration_ms, rate, skus, locks, accounts, stock,
        users, partitions, ttl_ms, seed;
};

#define INT_FLAG(n, f, lo, hi)                                                                     \
    {                                                                                              \
        n, lo, hi, offsetof(struct bench_flags, f)                                                 \
    }
static const struct int_flag int_flags[] = {
    INT_FLAG("--port", port, 1, 65535),
    INT_FLAG("--clients", clients, 1, BENCH_CLIENTS_MAX),
    INT_FLAG("--pipeline", pipeline, 1, BENCH_PIPELINE_MAX),
    INT_FLAG("--requests", requests, 1, INT64_C(1) << 40),
    INT_FLAG("--duration-ms", duration_ms, 1, INT64_C(86400000)),
    INT_FLAG("--rate", rate, 1, INT64_C(100000000)),
    INT_FLAG("--skus", skus, 1, BENCH_SKUS_MAX),
    INT_FLAG("--locks", locks, 1, BENCH_LOCKS_MAX),
    INT_FLAG("--accounts", accounts, 1, BENCH_ACCOUNTS_MAX),
    INT_FLAG("--stock", stock, 0, INT64_C(1) << 40),
    INT_FLAG("--users", users, 1, INT64_C(4000000000)),
    INT_FLAG("--partitions", partitions, 1, SM_PARTITIONS_MAX),
    INT_FLAG("--ttl-ms", ttl_ms, 1, INT64_C(86400000)),
    INT_FLAG("--seed", seed, 0, INT64_MAX),
};

static int64_t or_default(int64_t v, int64_t d)
{
    return v >= 0 ? v : d;
}

/* Fills cfg from argv; false (after a message) on a usage error. */
static bool parse_flags(int argc, char **argv, struct bench_config *cfg)
{
    struct bench_flags f;
    memset(&f, 0xff, sizeof f); /* every field -1 */
    for (int i = 1; i < argc; i++) {
        const struct int_flag *k = NULL;
        for (size_t j = 0; j < sizeof int_flags / sizeof int_flags[0]; j++)
            if (strcmp(argv[i], int_flags[j].name) == 0)
                k = &int_flags[j];
        if (k) {
            if (!parse_int(k->name, i + 1 < argc ? argv[++i] : NULL, k->min, k->max,
                           (int64_t *)((char *)&f + k->offset)))
                return false;
        } else if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            cfg->host = argv[++i];
        } else if (strcmp(argv[i], "--history") == 0 && i + 1 < argc) {
            cfg->history = argv[++i];
        } else if (strcmp(argv[i], "--json") == 0) {
            cfg->json = true;
        } else if (strcmp(argv[i], "--cluster") == 0) {
            cfg->cluster = true;
        } else if (strcmp(argv[i], "--cold-map") == 0) {
            cfg->cluster = cfg->cold_map = true;
        } else if (strcmp(argv[i], "--cross") == 0) {
            cfg->cross = true;
        } else {
            fprintf(stderr, "shardmart bench: unknown or incomplete option '%s'\n", argv[i]);
            return false;
        }
    }
    cfg->port = (int)or_default(f.port, 7379);
    cfg->clients = (uint32_t)or_default(f.clients, 50);
    cfg->pipeline = (uint32_t)or_default(f.pipeline, 1);
    cfg->duration_ms = (uint64_t)or_default(f.duration_ms, 0);
    cfg->requests = (uint64_t)or_default(f.requests, cfg->duration_ms ? 0 : 100000);
    cfg->rate = (double)or_default(f.rate, 0);
    int64_t skus = cfg->workload == BENCH_CART ? 16 : cfg->workload == BENCH_MIXED ? 100 : 1000;
    cfg->skus = (uint32_t)or_default(f.skus, skus);
    cfg->locks = (uint32_t)or_default(f.locks, 64);
    cfg->accounts = (uint32_t)or_default(f.accounts, 16);
    cfg->stock = or_default(f.stock, 1000);
    cfg->users = (uint32_t)or_default(f.users, 100000);
    cfg->partitions = (uint32_t)or_default(f.partitions, 0); /* 0: ask the node */
    cfg->ttl_ms = or_default(f.ttl_ms, 600000);
    cfg->seed = (uint64_t)or_default(f.seed, 1);
    if (cfg->cross && (cfg->workload != BENCH_CART || cfg->accounts < 2)) {
        fprintf(stderr, "shardmart bench: --cross is for cart, with --accounts 2 or more\n");
        return false;
    }
    return true;
}

/* Requests per round trip of the set-up and the final read: enough to hide the round trip, well
 * under the node's default --pipeline-max. */
#define BENCH_SETUP_CHUNK 256

/* Opens the session, creates every SKU, opens every account of the workload (pipelined),
 * recording each in the history. */
static int setup(struct rc_conn *c, struct bench_workload_state *w, FILE *history)
{
    static struct bench_op ops[BENCH_SETUP_CHUNK];
    for (uint32_t base = 0; base < w->setup_n; base += BENCH_SETUP_CHUNK) {
        uint32_t n = w->setup_n - base < BENCH_SETUP_CHUNK ? w->setup_n - base : BENCH_SETUP_CHUNK;
        for (uint32_t i = 0; i < n; i++) {
            bench_workload_setup_op(w, base + i, &ops[i]);
            ops[i].intended_ns = 0;
            bench_send_op(c, &ops[i]);
        }
        for (uint32_t i = 0; i < n; i++) {
            char code[24];
            int rc = rc_wait(c, BENCH_STALL_MS);
            if (rc < 0) {
                fprintf(stderr, "shardmart bench: set-up failed: %s\n", sm_strerror(rc));
                return rc;
            }
            char result[64] = "-";
            bool err = rc_is_error(c, code, sizeof code);
            if (!err)
                bench_reply_result(c, &ops[i], result, sizeof result);
            bench_history_line(history, 0, &ops[i], 0, err ? code : "ok", result);
            if (err) {
                fprintf(stderr, "shardmart bench: %s %s: %.*s\n", history_op_name(ops[i].kind),
                        ops[i].args, (int)c->vals[0].str.len, (const char *)c->vals[0].str.ptr);
                return SM_E_STATE;
            }
        }
    }
    return 0;
}

/* The run's SKUs as the node sees them at the end, summed. */
struct stock_totals {
    int64_t available, reserved, sold, stocked;
    bool read; /* false when a node did not answer: the sums are not the node's */
};

static int read_stock(struct rc_conn *c, const struct bench_workload_state *w,
                      struct stock_totals *t)
{
    memset(t, 0, sizeof *t);
    for (uint32_t base = 0; base < w->skus_n; base += BENCH_SETUP_CHUNK) {
        uint32_t n = w->skus_n - base < BENCH_SETUP_CHUNK ? w->skus_n - base : BENCH_SETUP_CHUNK;
        for (uint32_t i = 0; i < n; i++) {
            const char *argv[] = {"STOCK.GET", w->skus[base + i]};
            rc_command(c, 2, argv);
        }
        for (uint32_t i = 0; i < n; i++) {
            int64_t a = 0, r = 0, s = 0, k = 0;
            int rc = rc_wait(c, BENCH_STALL_MS);
            if (rc < 0)
                return rc;
            if (!rc_field_int(c, "available", &a) || !rc_field_int(c, "reserved", &r) ||
                !rc_field_int(c, "sold", &s) || !rc_field_int(c, "stocked", &k))
                return SM_E_PROTO;
            t->available += a;
            t->reserved += r;
            t->sold += s;
            t->stocked += k;
        }
    }
    t->read = true;
    return 0;
}

static const char *const workload_names[] = {"flash-sale", "spread", "cart", "locks", "mixed"};
#define WORKLOADS_N (sizeof workload_names / sizeof workload_names[0])

static const struct bench_outcome *outcome_at(const struct bench_result *r, uint32_t i)
{
    if (i < r->outcomes_n)
        return &r->outcomes[i];
    if (i == r->outcomes_n && r->outcomes[BENCH_OUTCOMES_MAX].count > 0)
        return &r->outcomes[BENCH_OUTCOMES_MAX];
    return NULL;
}

static const double quantiles[] = {0.5, 0.9, 0.99, 0.999};
static const char *const quantile_names[] = {"p50", "p90", "p99", "p99.9"};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The median and the maximum duration of r's outages, in ns (0 when none). */
static void outage_stats(const struct bench_result *r, uint64_t *median_ns, uint64_t *max_ns)
{
    static uint64_t d[BENCH_OUTAGES_MAX];
    for (uint32_t i = 0; i < r->outages_n; i++)
        d[i] = r->outages[i].end_ns - r->outages[i].start_ns;
    qsort(d, r->outages_n, sizeof d[0], cmp_u64);
    *median_ns = r->outages_n ? d[r->outages_n / 2] : 0;
    *max_ns = r->outages_n ? d[r->outages_n - 1] : 0;
}

/* Outage lines printed one by one; the rest are summed up in the median and maximum. */
#define BENCH_OUTAGE_LINES_MAX 32

static void print_availability(const struct bench_cluster *m, const struct bench_result *r)
{
    uint64_t median_ns = 0, max_ns = 0;
    outage_stats(r, &median_ns, &max_ns);
    printf("  cluster: %u nodes, %u partitions; %llu redirects followed, %llu requests sent "
           "again\n",
           m->nodes_n, m->partitions, (unsigned long long)r->redirects,
           (unsigned long long)r->retries);
    printf("  longest window with no answered write: %.1f ms (from +%.3f s)\n",
           (double)r->gap_max_ns / 1e6, (double)r->gap_start_ns / 1e9);
    printf("  partition outages: %u (median %.1f ms, max %.1f ms)%s\n",
           r->outages_n + (uint32_t)r->outages_dropped, (double)median_ns / 1e6,
           (double)max_ns / 1e6,
           r->outages_dropped ? " (the median and max of the first ones)" : "");
    for (uint32_t i = 0; i < r->outages_n && i < BENCH_OUTAGE_LINES_MAX; i++) {
        const struct bench_outage *o = &r->outages[i];
        printf("    partition %u: %.1f ms without an answer from +%.3f s%s\n", o->partition,
               (double)(o->end_ns - o->start_ns) / 1e6, (double)o->start_ns / 1e9,
               o->open ? ", still unavailable at the end" : "");
    }
    if (r->outages_n > BENCH_OUTAGE_LINES_MAX)
        printf("    ... and %u more\n", r->outages_n - BENCH_OUTAGE_LINES_MAX);
}

static json_t *availability_json(const struct bench_cluster *m, const struct bench_result *r)
{
    uint64_t median_ns = 0, max_ns = 0;
    outage_stats(r, &median_ns, &max_ns);
    json_t *o = json_object(), *list = json_array();
    json_object_set_new(o, "nodes", json_integer(m->nodes_n));
    json_object_set_new(o, "partitions", json_integer(m->partitions));
    json_object_set_new(o, "redirects", json_integer((json_int_t)r->redirects));
    json_object_set_new(o, "retries", json_integer((json_int_t)r->retries));
    json_object_set_new(o, "gap_max_ms", json_real((double)r->gap_max_ns / 1e6));
    json_object_set_new(o, "gap_start_s", json_real((double)r->gap_start_ns / 1e9));
    json_object_set_new(o, "outage_median_ms", json_real((double)median_ns / 1e6));
    json_object_set_new(o, "outage_max_ms", json_real((double)max_ns / 1e6));
    json_object_set_new(o, "outages_dropped", json_integer((json_int_t)r->outages_dropped));
    for (uint32_t i = 0; i < r->outages_n; i++) {
        const struct bench_outage *x = &r->outages[i];
        json_t *e = json_object();
        json_object_set_new(e, "partition", json_integer(x->partition));
        json_object_set_new(e, "start_s", json_real((double)x->start_ns / 1e9));
        json_object_set_new(e, "ms", json_real((double)(x->end_ns - x->start_ns) / 1e6));
        json_object_set_new(e, "open", json_boolean(x->open));
        json_array_append_new(list, e);
    }
    json_object_set_new(o, "outages", list);
    return o;
}

static void print_text(const struct bench_config *cfg, const struct bench_result *r,
                       const struct stock_totals *t, uint32_t skus_n, const struct bench_cluster *m)
{
    double s = (double)r->elapsed_ns / 1e9;
    printf("%s: %llu ops in %.3f s = %.0f ops/s (%u clients x pipeline %u, %s)\n",
           workload_names[cfg->workload], (unsigned long long)r->ops, s,
           s > 0 ? (double)r->ops / s : 0.0, cfg->clients, cfg->pipeline,
           cfg->rate > 0 ? "open loop" : "closed loop");
    if (cfg->rate > 0)
        printf("  target rate %.0f ops/s\n", cfg->rate);
    printf("  outcomes:");
    for (uint32_t i = 0; outcome_at(r, i); i++)
        printf(" %s %llu", outcome_at(r, i)->code, (unsigned long long)outcome_at(r, i)->count);
    printf("\n  latency ms:");
    for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++)
        printf(" %s %.3f", quantile_names[i],
               (double)latency_hist_quantile(&r->hist, quantiles[i]) / 1e6);
    printf(" max %.3f mean %.3f\n", (double)r->hist.max / 1e6, latency_hist_mean(&r->hist) / 1e6);
    if (t->read)
        printf("  stock (%u SKUs): stocked %lld available %lld reserved %lld sold %lld\n", skus_n,
               (long long)t->stocked, (long long)t->available, (long long)t->reserved,
               (long long)t->sold);
    else
        printf("  stock (%u SKUs): not read back (a node did not answer)\n", skus_n);
    if (m)
        print_availability(m, r);
}

static void print_json(const struct bench_config *cfg, const struct bench_result *r,
                       const struct stock_totals *t, uint32_t skus_n, const struct bench_cluster *m)
{
    double s = (double)r->elapsed_ns / 1e9;
    json_t *o = json_object(), *outcomes = json_object(), *lat = json_object();
    for (uint32_t i = 0; outcome_at(r, i); i++)
        json_object_set_new(outcomes, outcome_at(r, i)->code,
                            json_integer((json_int_t)outcome_at(r, i)->count));
    for (size_t i = 0; i < sizeof quantiles / sizeof quantiles[0]; i++)
        json_object_set_new(lat, quantile_names[i],
                            json_real((double)latency_hist_quantile(&r->hist, quantiles[i]) / 1e6));
    json_object_set_new(lat, "max", json_real((double)r->hist.max / 1e6));
    json_object_set_new(lat, "mean", json_real(latency_hist_mean(&r->hist) / 1e6));
    json_object_set_new(o, "workload", json_string(workload_names[cfg->workload]));
    json_object_set_new(o, "clients", json_integer(cfg->clients));
    json_object_set_new(o, "pipeline", json_integer(cfg->pipeline));
    json_object_set_new(o, "rate", json_real(cfg->rate));
    json_object_set_new(o, "ops", json_integer((json_int_t)r->ops));
    json_object_set_new(o, "lost", json_integer((json_int_t)r->lost));
    json_object_set_new(o, "seconds", json_real(s));
    json_object_set_new(o, "ops_per_s", json_real(s > 0 ? (double)r->ops / s : 0.0));
    json_object_set_new(o, "outcomes", outcomes);
    json_object_set_new(o, "latency_ms", lat);
    json_object_set_new(o, "skus", json_integer(skus_n));
    json_object_set_new(o, "stock_read", json_boolean(t->read));
    json_object_set_new(o, "stocked", json_integer(t->stocked));
    json_object_set_new(o, "available", json_integer(t->available));
    json_object_set_new(o, "reserved", json_integer(t->reserved));
    json_object_set_new(o, "sold", json_integer(t->sold));
    if (m)
        json_object_set_new(o, "cluster", availability_json(m, r));
    char *text = json_dumps(o, JSON_COMPACT);
    if (text)
        puts(text);
    free(text);
    json_decref(o);
}

static FILE *open_history(const char *path, const struct bench_config *cfg,
                          const struct bench_workload_state *w)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "shardmart bench: cannot write %s: %s\n", path, strerror(errno));
        return NULL;
    }
    fprintf(f, "# shardmart history v1 workload=%s tag=%s seed=%llu started_unix=%lld\n",
            workload_names[cfg->workload], w->tag, (unsigned long long)cfg->seed,
            (long long)time(NULL));
    fprintf(f, "# client\top\trid\tintended_us\treply_us\toutcome\tresult\targs\n");
    return f;
}

/* --cluster: a connection to the first node of m that accepts one. 0, or SM_E_IO with c->fd -1. */
static int open_any(struct rc_conn *c, const struct bench_cluster *m)
{
    for (uint32_t i = 0; i < m->nodes_n; i++)
        if (rc_open(c, m->host[i], m->port[i]) == 0)
            return 0;
    return SM_E_IO;
}

/* Set-up, load, final read, summary; the exit code. */
static int run(const struct bench_config *cfg, struct bench_workload_state *w, FILE *history,
               struct bench_cluster *m)
{
    struct rc_conn c;
    if (rc_open(&c, cfg->host, cfg->port) != 0) {
        fprintf(stderr, "shardmart bench: cannot connect to %s:%d: %s\n", cfg->host, cfg->port,
                strerror(errno));
        return 1;
    }
    static struct bench_result r;
    memset(&r, 0, sizeof r);
    latency_hist_init(&r.hist);
    struct stock_totals t = {0};
    int rc = setup(&c, w, history);
    if (rc == 0 && m && w->skus_n > 0) {
        struct bench_op first = {.kind = HISTORY_CREATE};
        (void)snprintf(first.args, sizeof first.args, "%s", w->skus[0]);
        uint32_t p = bench_cluster_partition(m, &first);
        fprintf(stderr,
                "shardmart bench: --cluster: %u nodes, %u partitions; the first SKU (%s) "
                "is in partition %u\n",
                m->nodes_n, m->partitions, w->skus[0], p);
    }
    rc = rc ? rc : bench_loop_run(cfg, w, history, bench_now_ns(), m, &r);
    if (m) { /* the set-up's node may have died and come back during the load: a fresh one */
        rc_close(&c);
        (void)open_any(&c, m); /* on failure c.fd is -1 and nothing needs closing */
    }
    int rc_read = c.fd >= 0 ? read_stock(&c, w, &t) : SM_E_IO;
    if (c.fd >= 0)
        rc_close(&c);
    if (r.ops > 0 || rc == 0) {
        if (cfg->json)
            print_json(cfg, &r, &t, w->skus_n, m);
        else
            print_text(cfg, &r, &t, w->skus_n, m);
    }
    if (rc == 0 && rc_read != 0)
        fprintf(stderr, "shardmart bench: reading the stock back failed: %s\n",
                sm_strerror(rc_read));
    return rc == 0 && rc_read == 0 ? 0 : 1;
}

/* Cart and mixed need the node's partition count to pick names that share one: CONFIG GET
 * partitions. */
static uint32_t ask_partitions(const struct bench_config *cfg)
{
    struct rc_conn c;
    int64_t p = 0;
    if (rc_open(&c, cfg->host, cfg->port) != 0)
        return SM_PARTITIONS_DEFAULT; /* run() reports the connection failure */
    const char *argv[] = {"CONFIG", "GET", "partitions"};
    rc_command(&c, 3, argv);
    char text[32] = "";
    if (rc_wait(&c, BENCH_STALL_MS) == 0 && c.vals_n == 3 && c.vals[2].type == RESP_BULK)
        (void)snprintf(text, sizeof text, "%.*s", (int)c.vals[2].str.len,
                       (const char *)c.vals[2].str.ptr);
    rc_close(&c);
    p = strtoll(text, NULL, 10);
    if (p < 1 || p > SM_PARTITIONS_MAX) {
        fprintf(stderr, "shardmart bench: the node did not say its partition count; assuming %d\n",
                SM_PARTITIONS_DEFAULT);
        return SM_PARTITIONS_DEFAULT;
    }
    return (uint32_t)p;
}

/* --cluster: the partition map, from the node at --host/--port. 0, or non-zero after a message. */
static int load_cluster(const struct bench_config *cfg, struct bench_cluster *m)
{
    struct rc_conn c;
    if (rc_open(&c, cfg->host, cfg->port) != 0) {
        fprintf(stderr, "shardmart bench: cannot connect to %s:%d: %s\n", cfg->host, cfg->port,
                strerror(errno));
        return 1;
    }
    int rc = bench_cluster_load(m, &c, cfg->cold_map);
    rc_close(&c);
    return rc;
}

int cli_bench(int argc, char **argv)
{
    struct bench_config cfg = {.host = "127.0.0.1"};
    if (argc < 1) {
        fputs(cli_bench_usage, stderr);
        return 2;
    }
    size_t k = 0;
    while (k < WORKLOADS_N && strcmp(argv[0], workload_names[k]) != 0)
        k++;
    if (k == WORKLOADS_N) {
        fprintf(stderr,
                "shardmart bench: unknown workload '%s' (flash-sale, spread, cart, locks, mixed)\n",
                argv[0]);
        return 2;
    }
    cfg.workload = (enum bench_workload)k;
    if (!parse_flags(argc, argv, &cfg))
        return 2;
    static struct bench_cluster m;
    memset(&m, 0, sizeof m);
    if (cfg.cluster) {
        if (cfg.workload == BENCH_LOCKS || cfg.workload == BENCH_MIXED) {
            fprintf(stderr,
                    "shardmart bench: %s needs a lock session, and sessions span every "
                    "partition: not in cluster mode yet (docs/cluster.md)\n",
                    workload_names[cfg.workload]);
            return 2;
        }
        int rc = load_cluster(&cfg, &m);
        if (rc != 0) {
            bench_cluster_free(&m);
            return 1;
        }
        cfg.partitions = m.partitions;
    }
    if (cfg.partitions == 0)
        cfg.partitions = cfg.workload == BENCH_CART || cfg.workload == BENCH_MIXED
                             ? ask_partitions(&cfg)
                             : SM_PARTITIONS_DEFAULT;
    static struct bench_workload_state w;
    int rc = bench_workload_init(&w, &cfg);
    if (rc != 0) {
        fprintf(stderr, "shardmart bench: cannot pick SKU or account names: %s\n", sm_strerror(rc));
        bench_workload_free(&w);
        return 2;
    }
    FILE *history = cfg.history ? open_history(cfg.history, &cfg, &w) : NULL;
    int code = cfg.history && !history ? 2 : run(&cfg, &w, history, cfg.cluster ? &m : NULL);
    if (history && fclose(history) != 0) {
        fprintf(stderr, "shardmart bench: writing %s failed: %s\n", cfg.history, strerror(errno));
        code = 1;
    }
    bench_workload_free(&w);
    bench_cluster_free(&m);
    return code;
}
