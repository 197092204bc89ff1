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
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
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
static char adv[NODES][32];       /* each node's --advertise, kept across a restart */
static struct node_proc old_node; /* a killed node's first directory (holds its data) */

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

/* Starts node i (on data_dir when not NULL: a restart) with the cluster's flags. */
static void start_node(int i, const char *data_dir)
{
    char id[8], parts[8];
    snprintf(id, sizeof id, "%d", i);
    snprintf(parts, sizeof parts, "%d", PARTITIONS);
    const char *const flags[] = {
        "--cluster",  spec,   "--node-id",      id,    "--advertise", adv[i],
        "--zone",     "z",    "--partitions",   parts, "--replicas",  "3",
        "--lease-ms", "1000", "--cluster-name", name,  NULL};
    cr_assert_eq(node_proc_start(&nodes[i], data_dir, flags), 0, "node %d did not start", i);
}

static void setup(void)
{
    cr_assert_not_null(mkdtemp(dir));
    etcd_cluster_start(&ec, 3);
    etcd_cluster_spec(&ec, spec, sizeof spec);
    snprintf(name, sizeof name, "b%d", (int)getpid());
    memset(nodes, 0, sizeof nodes);
    memset(&old_node, 0, sizeof old_node);
    for (int i = 0; i < NODES; i++) {
        snprintf(adv[i], sizeof adv[i], "127.0.0.1:%d", free_port());
        start_node(i, NULL);
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
        if (nodes[i].pid > 0 || nodes[i].dir[0])
            (void)node_proc_stop(&nodes[i], false);
    if (old_node.dir[0])
        (void)node_proc_stop(&old_node, false);
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

/* No cluster needed: the refusals come before any routing. */
Test(cluster_bench_usage, refuses_lock_workloads_and_a_node_not_in_a_cluster, .timeout = 60)
{
    char port[8] = "1";
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

/* Lines of path holding `needle`. */
static int count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* The flash sale's SKU: the first STOCK.CREATE of the history ("<tag>-f0"). */
static void history_sku(const char *path, char *sku, size_t cap)
{
    int64_t until = mono_ms() + 20000;
    for (;;) {
        FILE *f = fopen(path, "r");
        char line[1024];
        while (f && fgets(line, sizeof line, f)) {
            const char *args = strstr(line, "\tSTOCK.CREATE\t");
            for (int t = 0; args && t < 6; t++)
                args = strchr(args + 1, '\t');
            if (args) {
                snprintf(sku, cap, "%.*s", (int)strcspn(args + 1, " "), args + 1);
                fclose(f);
                return;
            }
        }
        if (f)
            fclose(f);
        cr_assert(mono_ms() < until, "no STOCK.CREATE in %s after 20 s", path);
        usleep(20 * 1000);
    }
}

Test(cluster_bench, survives_a_kill_and_restart_of_the_primary_and_its_history_checks)
{
    char hist[300], out[300], port[8];
    snprintf(hist, sizeof hist, "%s/kill.tsv", dir);
    snprintf(out, sizeof out, "%s/kill.out", dir);
    snprintf(port, sizeof port, "%d", nodes[0].resp_port);
    const char *env = getenv("SHARDMART_BIN");
    const char *bin = env ? env : "./shardmart";
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(bin, bin, "bench", "flash-sale", "--cluster", "--host", "127.0.0.1", "--port", port,
              "--clients", "4", "--pipeline", "2", "--duration-ms", "9000", "--stock", "10000000",
              "--users", "1000000000", "--history", hist, "--json", (char *)NULL);
        _exit(127);
    }
    char sku[160];
    history_sku(hist, sku, sizeof sku);
    uint32_t p = 0;
    cr_assert_eq(ring_key_partition(sku, strlen(sku), PARTITIONS, &p), 0);
    int prim[PARTITIONS];
    primaries(prim);
    int victim = prim[p];
    /* Some load first, then kill -9 of the SKU's primary and a restart on its data. */
    int64_t until = mono_ms() + 20000;
    while (count_lines(hist, "\tORDER.PLACE\t") < 200) {
        cr_assert(mono_ms() < until, "the load did not start");
        usleep(20 * 1000);
    }
    node_proc_kill(&nodes[victim]);
    old_node = nodes[victim];
    start_node(victim, old_node.data_dir);

    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    char cat[400];
    snprintf(cat, sizeof cat, "cat %s", out);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        cr_assert_eq(system(cat), 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the bench did not ride out the kill");
    /* The summary names the partition's outage, and it ended (the run went on after it). */
    FILE *f = fopen(out, "r");
    cr_assert_not_null(f);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *line = strstr(text, "\n{");
    line = line ? line + 1 : (text[0] == '{' ? text : NULL);
    cr_assert_not_null(line, "%s", text);
    json_error_t err;
    json_t *o = json_loadb(line, strcspn(line, "\n"), 0, &err);
    cr_assert_not_null(o, "%s: %s", err.text, line);
    cr_assert(json_is_true(json_object_get(o, "stock_read")), "stock not read back: %s", line);
    json_t *outages = json_object_get(json_object_get(o, "cluster"), "outages");
    cr_assert_geq(json_array_size(outages), 1, "no outage seen after a kill -9: %s", line);
    for (size_t i = 0; i < json_array_size(outages); i++) {
        json_t *x = json_array_get(outages, i);
        cr_assert_eq(json_integer_value(json_object_get(x, "partition")), p, "%s", line);
        cr_assert(!json_is_true(json_object_get(x, "open")), "still unavailable: %s", line);
    }
    printf("cluster_bench: partition %u answered again %.0f ms after node %d's kill -9 and "
           "restart\n",
           p, json_real_value(json_object_get(json_array_get(outages, 0), "ms")), victim);
    json_decref(o);
    /* Every operation is in the history once: answered, or unknown if it may have happened. */
    cr_assert_gt(count_lines(hist, "\tok\t"), 200);
    check(hist, (victim + 1) % NODES);
}
