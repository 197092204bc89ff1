/*
 * The cluster client of `shardmart bench --cluster` and `shardmart check` against real processes:
 * a 3-member etcd and three `shardmart start --cluster` nodes on loopback (tests/support/). The
 * benchmark learns the map from one node and sends every request to its partition's primary:
 * with the map read up front no request is ever redirected (the client computes each key's
 * partition, and each order id's, exactly as the nodes do); with --cold-map every primary is
 * learnt from -MOVED replies and the run still completes with every operation answered. The
 * histories then pass `shardmart check` through a node that leads only some of the partitions
 * (check follows -MOVED). Every wait polls a condition with a deadline.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../support/etcd_proc.h"
#include "../support/node_proc.h"
#include "../support/redis_helpers.h"
#include "shardmart/ring.h"

#define NODES      3
#define PARTITIONS 16

static struct etcd_cluster ec;
static struct node_proc nodes[NODES];
static char spec[256];
static char name[32];
static char dir[] = "/tmp/shardmart-clbench-XXXXXX";

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A port nothing listens on now (the kernel's pick for port 0), for a node's --advertise. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* The bulk text of a CLUSTER.* command on node i (caller frees). */
static char *cluster_text(int i, const char *cmd)
{
    redisContext *c = node_proc_client(&nodes[i]);
    redisReply *r = node_proc_command(c, cmd);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s on node %d: %s", cmd, i,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not a string");
    char *text = strdup(r->str);
    freeReplyObject(r);
    redisFree(c);
    return text;
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    etcd_cluster_start(&ec, 3);
    int n =
        snprintf(spec, sizeof spec, "etcd://127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d",
                 ec.members[0].client_port, ec.members[1].client_port, ec.members[2].client_port);
    cr_assert(n > 0 && (size_t)n < sizeof spec);
    snprintf(name, sizeof name, "b%d", (int)getpid());
    memset(nodes, 0, sizeof nodes);
    for (int i = 0; i < NODES; i++) {
        char id[8], adv[32], parts[8];
        snprintf(id, sizeof id, "%d", i);
        snprintf(adv, sizeof adv, "127.0.0.1:%d", free_port());
        snprintf(parts, sizeof parts, "%d", PARTITIONS);
        const char *const flags[] = {
            "--cluster",  spec,   "--node-id",      id,    "--advertise", adv,
            "--zone",     "z",    "--partitions",   parts, "--replicas",  "3",
            "--lease-ms", "1000", "--cluster-name", name,  NULL};
        cr_assert_eq(node_proc_start(&nodes[i], NULL, flags), 0, "node %d did not start", i);
    }
    for (int i = 0; i < NODES; i++) {
        int64_t until = mono_ms() + 30000;
        for (;;) {
            char *info = cluster_text(i, "CLUSTER.INFO");
            bool ok = strstr(info, "cluster_state:ok") != NULL;
            free(info);
            if (ok)
                break;
            cr_assert(mono_ms() < until, "node %d not ready after 30 s", i);
            usleep(20 * 1000);
        }
    }
}

static void teardown(void)
{
    for (int i = 0; i < NODES; i++)
        if (nodes[i].pid > 0)
            (void)node_proc_stop(&nodes[i], false);
    etcd_cluster_stop(&ec);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    (void)system(rm);
}

/* The primary of every partition, from node 0's CLUSTER.PARTITIONS. */
static void primaries(int out[PARTITIONS])
{
    char *text = cluster_text(0, "CLUSTER.PARTITIONS");
    for (int p = 0; p < PARTITIONS; p++)
        out[p] = -1;
    for (char *line = text; *line; line = strchr(line, '\n') + 1) {
        unsigned p, prim;
        cr_assert_eq(sscanf(line, "%u epoch=%*u primary=%u", &p, &prim), 2, "%s", line);
        cr_assert(p < PARTITIONS && prim < NODES);
        out[p] = (int)prim;
    }
    free(text);
}

/* Runs `shardmart bench <workload> --json ...` through node 0 with a history; returns the
 * summary (the output's JSON line), after checking the exit code and that every operation of
 * the load was answered. */
static json_t *bench(const char *workload, const char *map_flag, const char *history)
{
    char port[8];
    snprintf(port, sizeof port, "%d", nodes[0].resp_port);
    const char *const argv[] = {
        "bench",     workload,  map_flag,     "--host",    "127.0.0.1",  "--port", port,
        "--clients", "4",       "--pipeline", "4",         "--requests", "1200",   "--skus",
        "40",        "--stock", "100000",     "--history", history,      "--json", NULL};
    static char out[1 << 16];
    int status = node_proc_run(argv, out, sizeof out);
    cr_assert_eq(status, 0, "bench %s %s failed:\n%s", workload, map_flag, out);
    const char *line = strstr(out, "\n{");
    line = line ? line + 1 : (out[0] == '{' ? out : NULL);
    cr_assert_not_null(line, "no JSON summary:\n%s", out);
    json_error_t err;
    json_t *o = json_loadb(line, strcspn(line, "\n"), 0, &err);
    cr_assert_not_null(o, "%s: %s", err.text, line);
    json_t *outcomes = json_object_get(o, "outcomes");
    json_int_t ops = json_integer_value(json_object_get(o, "ops"));
    cr_assert_eq(ops, 1200, "%s", line);
    /* Plenty of stock: every operation is answered ok (spread) or ok / STATE (cart: a payment
     * or cancel of an order the other follow-up already closed is refused, as on one node). */
    json_int_t ok = json_integer_value(json_object_get(outcomes, "ok"));
    json_int_t state = json_integer_value(json_object_get(outcomes, "STATE"));
    cr_assert_eq(ok + state, ops, "not every operation answered: %s", line);
    json_t *cl = json_object_get(o, "cluster");
    cr_assert_not_null(cl, "%s", line);
    cr_assert_eq(json_integer_value(json_object_get(cl, "nodes")), NODES, "%s", line);
    cr_assert_eq(json_integer_value(json_object_get(cl, "partitions")), PARTITIONS, "%s", line);
    cr_assert_eq(json_array_size(json_object_get(cl, "outages")), 0, "%s", line);
    return o;
}

/* `shardmart check history` through node i; asserts it passes. */
static void check(const char *history, int i)
{
    char port[8];
    snprintf(port, sizeof port, "%d", nodes[i].resp_port);
    const char *const argv[] = {"check", history, "--host", "127.0.0.1", "--port", port, NULL};
    static char out[1 << 14];
    int status = node_proc_run(argv, out, sizeof out);
    cr_assert_eq(status, 0, "check of %s through node %d:\n%s", history, i, out);
    cr_assert_not_null(strstr(out, "check: OK"), "%s", out);
}

/* How many distinct primaries the history's ORDER.PLACE operations went to, by their SKU. */
static int primaries_used(const char *history, const int prim[PARTITIONS])
{
    FILE *f = fopen(history, "r");
    cr_assert_not_null(f);
    bool used[NODES] = {false};
    char line[1024];
    int places = 0;
    while (fgets(line, sizeof line, f)) {
        char sku[160];
        if (strstr(line, "\tORDER.PLACE\t") == NULL)
            continue;
        /* args: "u<N> <ttl> <sku> 1" after the seventh tab */
        const char *args = line;
        for (int t = 0; t < 7 && args; t++)
            args = strchr(args, '\t') ? strchr(args, '\t') + 1 : NULL;
        cr_assert_not_null(args);
        cr_assert_eq(sscanf(args, "%*s %*s %159s", sku), 1, "%s", line);
        uint32_t p = 0;
        cr_assert_eq(ring_key_partition(sku, strlen(sku), PARTITIONS, &p), 0);
        used[prim[p]] = true;
        places++;
    }
    fclose(f);
    cr_assert_gt(places, 0);
    return used[0] + used[1] + used[2];
}

/* cppcheck-suppress unknownMacro */
TestSuite(cluster_bench, .init = setup, .fini = teardown, .timeout = 180);

Test(cluster_bench, routes_over_three_nodes_and_its_histories_pass_check)
{
    int prim[PARTITIONS];
    primaries(prim);
    char h1[300], h2[300], h3[300];
    snprintf(h1, sizeof h1, "%s/spread.tsv", dir);
    snprintf(h2, sizeof h2, "%s/cold.tsv", dir);
    snprintf(h3, sizeof h3, "%s/cart.tsv", dir);

    /* The map read up front: no request is redirected, over SKUs led by several nodes. */
    json_t *o = bench("spread", "--cluster", h1);
    json_t *cl = json_object_get(o, "cluster");
    cr_assert_eq(json_integer_value(json_object_get(cl, "redirects")), 0,
                 "the client's partitions differ from the nodes'");
    cr_assert_eq(json_integer_value(json_object_get(cl, "retries")), 0);
    json_decref(o);
    cr_assert_geq(primaries_used(h1, prim), 2, "40 SKUs all led by one node: routing not tested");

    /* No map: every primary is learnt from -MOVED, and every operation is still answered. */
    o = bench("spread", "--cold-map", h2);
    cl = json_object_get(o, "cluster");
    cr_assert_gt(json_integer_value(json_object_get(cl, "redirects")), 0, "no -MOVED followed");
    json_decref(o);

    /* Cart: payments and cancels are routed by the partition their order id carries. */
    o = bench("cart", "--cluster", h3);
    cl = json_object_get(o, "cluster");
    cr_assert_eq(json_integer_value(json_object_get(cl, "redirects")), 0,
                 "an order id was routed to another partition than the nodes' own");
    json_decref(o);

    /* check reads every SKU and order from its primary, whichever node it starts from. */
    check(h1, 1);
    check(h2, 2);
    check(h3, 0);

    /* The follow-ups of the cart run went through: some orders paid, some cancelled. */
    char grep[700];
    snprintf(grep, sizeof grep, "grep -q 'ORDER.PAYEXT.*\tok\t' %s && grep -q 'ORDER.CANCEL' %s",
             h3, h3);
    cr_assert_eq(system(grep), 0, "the cart run paid or cancelled nothing");
}

Test(cluster_bench, refuses_lock_workloads_and_a_node_not_in_a_cluster)
{
    char port[8];
    snprintf(port, sizeof port, "%d", nodes[0].resp_port);
    static char out[1 << 14];
    const char *const locks[] = {"bench", "locks", "--cluster", "--port", port, NULL};
    cr_assert_eq(node_proc_run(locks, out, sizeof out), 2, "%s", out);
    cr_assert_not_null(strstr(out, "not in cluster mode yet"), "%s", out);
    /* A single node (not started with --cluster) answers CLUSTER.INFO with an error. */
    struct node_proc single;
    cr_assert_eq(node_proc_start(&single, NULL, NULL), 0);
    snprintf(port, sizeof port, "%d", single.resp_port);
    const char *const flash[] = {"bench", "flash-sale", "--cluster", "--port", port, NULL};
    int status = node_proc_run(flash, out, sizeof out);
    (void)node_proc_stop(&single, false);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "CLUSTER.INFO"), "%s", out);
}
