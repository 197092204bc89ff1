/*
 * The cluster with real processes: a 3-member etcd on loopback and three `shardmart start
 * --cluster` nodes (tests/support/etcd_proc.c, node_proc.c). What this round checks: the nodes
 * join under leases, the first node's meta holds, the elected controller creates every
 * partition's config from the ring placement, every node sees the same configs (CLUSTER.* over
 * RESP and GET /cluster over HTTP), /readyz turns 200 only then, a node whose flags disagree
 * with the cluster's meta refuses to run, and a killed node's member key goes with its lease.
 * Every wait polls a condition with a deadline; nothing sleeps for a fixed time to be "enough".
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/etcd_proc.h"
#include "../support/node_proc.h"
#include "../support/redis_helpers.h"
#include "shardmart/ring.h"

#define NODES      3
#define PARTITIONS "16"

static struct etcd_cluster ec;
static struct node_proc nodes[NODES];
static struct node_proc old_node; /* a restarted node's first directory (holds its data) */
static char spec[256];
static char name[32];
static int peer_port[NODES]; /* each node's peer listener (--advertise) */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void setup(void)
{
    etcd_cluster_start(&ec, 3);
    etcd_cluster_spec(&ec, spec, sizeof spec);
    snprintf(name, sizeof name, "t%d", (int)getpid());
    memset(nodes, 0, sizeof nodes);
    etcd_proc_free_ports(peer_port, NODES);
}

static void teardown(void)
{
    for (int i = 0; i < NODES; i++)
        if (nodes[i].pid > 0)
            node_proc_kill(&nodes[i]);
    for (int i = 0; i < NODES; i++)
        if (nodes[i].dir[0])
            (void)node_proc_stop(&nodes[i], false); /* removes the directory */
    if (old_node.dir[0])
        (void)node_proc_stop(&old_node, false);
    memset(&old_node, 0, sizeof old_node);
    etcd_cluster_stop(&ec);
}

static void start_node_on(int i, const char *partitions, const char *data_dir)
{
    char id[8], adv[32];
    snprintf(id, sizeof id, "%d", i);
    snprintf(adv, sizeof adv, "127.0.0.1:%d", peer_port[i]);
    const char *const flags[] = {
        "--cluster",  spec,   "--node-id",      id,         "--advertise", adv,
        "--zone",     "z",    "--partitions",   partitions, "--replicas",  "3",
        "--lease-ms", "1000", "--cluster-name", name,       NULL};
    cr_assert_eq(node_proc_start(&nodes[i], data_dir, flags), 0, "node %d did not start", i);
}

static void start_node(int i, const char *partitions)
{
    start_node_on(i, partitions, NULL);
}

static char *cluster_text(int i, const char *cmd);

/* Polls node i's CLUSTER.INFO until it holds `want`. */
static void wait_info(int i, const char *want, int timeout_ms)
{
    int64_t until = mono_ms() + timeout_ms;
    for (;;) {
        char *info = cluster_text(i, "CLUSTER.INFO");
        bool found = strstr(info, want) != NULL;
        if (!found && mono_ms() >= until)
            cr_assert_fail("node %d: no '%s' after %d ms:\n%s", i, want, timeout_ms, info);
        free(info);
        if (found)
            return;
        usleep(50 * 1000);
    }
}

/* The bulk text of a CLUSTER.* command on node i. */
static char *cluster_text(int i, const char *cmd)
{
    redisContext *c = node_proc_client(&nodes[i]);
    redisReply *r = node_proc_command(c, cmd);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s on node %d: type %d %s", cmd, i, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    char *text = strdup(r->str);
    freeReplyObject(r);
    redisFree(c);
    return text;
}

/* One GET over a fresh connection; the status code, and the body into body[0, cap). */
static int http_get(int i, const char *path, char *body, size_t cap)
{
    int fd = node_proc_connect(nodes[i].http_port, 5000);
    cr_assert(fd >= 0);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    cr_assert(node_proc_send(fd, req, (size_t)n));
    static char resp[65536];
    size_t got = node_proc_recv(fd, resp, sizeof resp - 1);
    close(fd);
    resp[got] = '\0';
    int status = 0;
    cr_assert_eq(sscanf(resp, "HTTP/1.1 %d", &status), 1, "no status line: %s", resp);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(body, cap, "%s", b ? b + 4 : "");
    return status;
}

static void wait_ready(int i, int timeout_ms)
{
    char body[256];
    int64_t until = mono_ms() + timeout_ms;
    while (http_get(i, "/readyz", body, sizeof body) != 200) {
        cr_assert(mono_ms() < until, "node %d not ready after %d ms: %s", i, timeout_ms, body);
        usleep(20 * 1000);
    }
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* cppcheck-suppress unknownMacro */
TestSuite(cluster_procs, .init = setup, .fini = teardown, .timeout = 90);

Test(cluster_procs, three_nodes_join_and_agree_on_configs)
{
    start_node(0, PARTITIONS);
    /* One node of three: meta is written, but no configs until `replicas` members joined. */
    char body[65536];
    int64_t until = mono_ms() + 10000;
    for (;;) {
        char *info = cluster_text(0, "CLUSTER.INFO");
        bool loaded = strstr(info, "members:1\r\n") && strstr(info, "controller:0\r\n");
        bool none = strstr(info, "partitions_configured:0\r\n") != NULL;
        free(info);
        cr_assert(none, "configs were created before 3 members joined");
        if (loaded)
            break;
        cr_assert(mono_ms() < until, "node 0 did not join and win the controller");
        usleep(20 * 1000);
    }
    cr_assert_eq(http_get(0, "/readyz", body, sizeof body), 503, "ready without configs");

    start_node(1, PARTITIONS);
    start_node(2, PARTITIONS);
    for (int i = 0; i < NODES; i++)
        wait_ready(i, 20000);

    /* Every node shows the same configs with full ISRs. (A replica that starts slowly on a
     * loaded machine may leave an ISR for a moment and come back: poll until they settle.) */
    char *parts[NODES];
    for (int64_t settle_by = mono_ms() + 15000;;) {
        for (int i = 0; i < NODES; i++) {
            parts[i] = cluster_text(i, "CLUSTER.PARTITIONS");
            cr_assert_eq(count_lines(parts[i]), 16, "node %d: %s", i, parts[i]);
        }
        int full = 0;
        for (const char *at = parts[0]; (at = strstr(at, " isr=")) != NULL; at++) {
            unsigned a, b, c;
            full += sscanf(at, " isr=%u,%u,%u", &a, &b, &c) == 3;
        }
        bool settled =
            full == 16 && strcmp(parts[1], parts[0]) == 0 && strcmp(parts[2], parts[0]) == 0;
        if (settled)
            break;
        if (mono_ms() >= settle_by) {
            cr_assert_str_eq(parts[1], parts[0]);
            cr_assert_str_eq(parts[2], parts[0]);
            cr_assert_eq(full, 16, "ISRs not full: %s", parts[0]);
        }
        for (int i = 0; i < NODES; i++)
            free(parts[i]);
        usleep(50 * 1000);
    }
    /* Every config: epoch 1, three distinct replicas, ISR = replicas (as a set: a replica that
     * left and came back is listed last), primary = replica 0. */
    int primaries[NODES] = {0};
    for (char *line = parts[0]; *line;) {
        unsigned p, prim, a, b, c, ra, rb, rc;
        unsigned long long ep;
        int n = sscanf(line, "%u epoch=%llu primary=%u isr=%u,%u,%u replicas=%u,%u,%u", &p, &ep,
                       &prim, &a, &b, &c, &ra, &rb, &rc);
        cr_assert_eq(n, 9, "bad line: %s", line);
        cr_assert_eq(ep, 1);
        cr_assert(a != b && b != c && a != c && a < NODES && b < NODES && c < NODES);
        unsigned isr_set = 1u << a | 1u << b | 1u << c, rep_set = 1u << ra | 1u << rb | 1u << rc;
        cr_assert_eq(isr_set, rep_set, "ISR differs from replicas: %s", line);
        cr_assert_eq(prim, ra);
        primaries[prim]++;
        line = strchr(line, '\n') + 1;
    }
    /* The ring spreads primaries: no node leads them all. */
    for (int i = 0; i < NODES; i++)
        cr_assert(primaries[i] < 16, "node %d leads every partition", i);
    for (int i = 0; i < NODES; i++)
        free(parts[i]);

    char *nodes_text = cluster_text(1, "CLUSTER.NODES");
    cr_assert_eq(count_lines(nodes_text), 3, "%s", nodes_text);
    cr_assert_not_null(strstr(nodes_text, " controller"), "%s", nodes_text);
    char node1[48];
    snprintf(node1, sizeof node1, "1 127.0.0.1:%d 127.0.0.1:", peer_port[1]);
    cr_assert_not_null(strstr(nodes_text, node1), "%s", nodes_text);
    free(nodes_text);

    cr_assert_eq(http_get(2, "/cluster", body, sizeof body), 200);
    cr_assert_not_null(strstr(body, "\"ready\":true"), "%s", body);
    cr_assert_not_null(strstr(body, "\"partitions\":16"), "%s", body);
    cr_assert_not_null(strstr(body, "\"partition\":15"), "%s", body);

    /* A node started with other flags than the cluster's meta refuses to take part. */
    char out[4096];
    char dir[] = "/tmp/shardmart-clrt-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char bad_adv[32];
    snprintf(bad_adv, sizeof bad_adv, "127.0.0.1:%d", etcd_proc_free_port());
    const char *const bad[] = {"start", "--port",       "0",    "--http-port",
                               "-1",    "--data",       dir,    "--cluster",
                               spec,    "--node-id",    "3",    "--advertise",
                               bad_adv, "--partitions", "8",    "--cluster-name",
                               name,    "--orders-max", "1024", NULL};
    int status = node_proc_run(bad, out, sizeof out);
    cr_assert_neq(status, 0, "a node with 8 partitions joined a 16-partition cluster: %s", out);
    cr_assert_not_null(strstr(out, "16 partitions"), "%s", out);
    /* An --advertise that is no host:port is refused before anything starts. */
    const char *const noport[] = {
        "start", "--port",    "0", "--http-port", "-1",     "--data",       dir, "--cluster",
        spec,    "--node-id", "3", "--advertise", "nohost", "--partitions", "8", NULL};
    status = node_proc_run(noport, out, sizeof out);
    cr_assert_neq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "--advertise must be host:port"), "%s", out);
    /* CLUSTER.STATE: a partition this cluster does not have, a missing argument. */
    redisContext *sc = node_proc_client(&nodes[0]);
    redisReply *sr = node_proc_command(sc, "CLUSTER.STATE 16");
    cr_assert(sr->type == REDIS_REPLY_ERROR && strstr(sr->str, "no such partition"), "%s",
              sr->type == REDIS_REPLY_ERROR ? sr->str : "?");
    freeReplyObject(sr);
    sr = node_proc_command(sc, "CLUSTER.STATE x1");
    cr_assert(sr->type == REDIS_REPLY_ERROR && strstr(sr->str, "no such partition"));
    freeReplyObject(sr);
    sr = node_proc_command(sc, "CLUSTER.STATE");
    cr_assert(sr->type == REDIS_REPLY_ERROR && strstr(sr->str, "wrong number of arguments"));
    freeReplyObject(sr);
    sr = node_proc_command(sc, "CLUSTER.STATE 15");
    cr_assert(sr->type == REDIS_REPLY_STRING && strstr(sr->str, "partition=15 role="), "%s",
              sr->type == REDIS_REPLY_STRING ? sr->str : "?");
    freeReplyObject(sr);
    redisFree(sc);
    char rm[300];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);

    /* kill -9 of a node: its member key goes with its lease (1 s), the others see it. */
    node_proc_kill(&nodes[2]);
    wait_info(0, "members:2\r\n", 15000);

    /* Restarted on its data, it joins again under a new lease and loads the same configs
     * (no second bootstrap: the placement key exists). */
    old_node = nodes[2];
    start_node_on(2, PARTITIONS, old_node.data_dir);
    wait_ready(2, 20000);
    wait_info(0, "members:3\r\n", 15000);
    /* (configs change meanwhile: the ISRs drop node 2 and take it back; poll until equal) */
    for (int64_t same_by = mono_ms() + 15000;;) {
        char *p0 = cluster_text(0, "CLUSTER.PARTITIONS");
        char *p2 = cluster_text(2, "CLUSTER.PARTITIONS");
        bool same = strcmp(p0, p2) == 0;
        if (!same && mono_ms() >= same_by)
            cr_assert_str_eq(p2, p0);
        free(p0);
        free(p2);
        if (same)
            break;
        usleep(50 * 1000);
    }

    /* kill -9 of the controller (node 0, the first to campaign): another node is elected once
     * its lease lapses. */
    char *info = cluster_text(1, "CLUSTER.INFO");
    cr_assert_not_null(strstr(info, "controller:0\r\n"), "%s", info);
    free(info);
    node_proc_kill(&nodes[0]);
    int64_t t0 = mono_ms();
    until = t0 + 15000;
    for (;;) {
        info = cluster_text(1, "CLUSTER.INFO");
        bool moved = strstr(info, "controller:1\r\n") || strstr(info, "controller:2\r\n");
        free(info);
        if (moved)
            break;
        cr_assert(mono_ms() < until, "no new controller 15 s after the controller's kill -9");
        usleep(50 * 1000);
    }
    printf("cluster_procs: a new controller %lld ms after the controller's kill -9 (lease 1 s)\n",
           (long long)(mono_ms() - t0));
}

/* The node listening on RESP port `port`, or -1. */
static int node_of_port(int port)
{
    for (int i = 0; i < NODES; i++)
        if (nodes[i].pid > 0 && nodes[i].resp_port == port)
            return i;
    return -1;
}

static unsigned partition_of(const char *key)
{
    uint32_t p = 0;
    cr_assert_eq(ring_key_partition(key, strlen(key), 16, &p), 0);
    return p;
}

/* The primary of partition p according to node 0's CLUSTER.PARTITIONS. */
static int primary_of(unsigned p)
{
    char *parts = cluster_text(0, "CLUSTER.PARTITIONS");
    int primary = -1;
    for (char *line = parts; *line; line = strchr(line, '\n') + 1) {
        unsigned q, prim;
        if (sscanf(line, "%u epoch=%*u primary=%u", &q, &prim) == 2 && q == p)
            primary = (int)prim;
    }
    free(parts);
    cr_assert(primary >= 0 && primary < NODES);
    return primary;
}

/* Sends a command to node `first`; on -MOVED, checks the redirect (the partition of `key`, the
 * primary's client address) and sends it there once. Returns the final reply. */
static redisReply *routed(redisContext *cs[NODES], int first, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(cs[first], fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED ", 6) != 0)
        return r;
    unsigned p;
    int port;
    cr_assert_eq(sscanf(r->str, "MOVED %u 127.0.0.1:%d", &p, &port), 2, "%s", r->str);
    cr_assert_eq(p, partition_of(key), "%s for key %s", r->str, key);
    int to = node_of_port(port);
    cr_assert_eq(to, primary_of(p), "%s does not name the primary", r->str);
    freeReplyObject(r);
    va_start(ap, fmt);
    r = redisvCommand(cs[to], fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert(r->type != REDIS_REPLY_ERROR || strncmp(r->str, "MOVED", 5) != 0, "moved twice: %s",
              r->str);
    return r;
}

Test(cluster_procs, commands_are_routed_to_the_primary)
{
    for (int i = 0; i < NODES; i++)
        start_node(i, PARTITIONS);
    for (int i = 0; i < NODES; i++)
        wait_ready(i, 20000);
    redisContext *cs[NODES];
    for (int i = 0; i < NODES; i++)
        cs[i] = node_proc_client(&nodes[i]);

    /* Every SKU answers on its primary only; the others redirect to it. */
    int led[NODES] = {0};
    for (int k = 0; k < 12; k++) {
        char sku[16];
        snprintf(sku, sizeof sku, "sku-%d", k);
        redisReply *r = routed(cs, k % NODES, sku, "STOCK.CREATE c%d %s 5", k, sku);
        cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->str);
        freeReplyObject(r);
        int prim = primary_of(partition_of(sku));
        led[prim]++;
        for (int i = 0; i < NODES; i++) {
            r = node_proc_command(cs[i], "STOCK.GET %s", sku);
            if (i == prim)
                cr_assert(r->type == REDIS_REPLY_ARRAY);
            else
                cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "MOVED ", 6) == 0);
            freeReplyObject(r);
        }
    }
    int leaders = 0;
    for (int i = 0; i < NODES; i++)
        leaders += led[i] > 0;
    cr_assert_geq(leaders, 2, "12 SKUs all on one primary: routing not exercised");

    /* A flash sale on one SKU through any node: exactly its stock is sold. */
    int sold = 0, soldout = 0;
    for (int u = 0; u < 8; u++) {
        redisReply *r =
            routed(cs, u % NODES, "sku-0", "ORDER.PLACE o%d user%d 60000 sku-0 1", u, u);
        if (r->type == REDIS_REPLY_STRING) {
            sold++;
            /* the order id routes to the same primary */
            redisReply *g = routed(cs, (u + 1) % NODES, "sku-0", "ORDER.GET %s", r->str);
            cr_assert(g->type == REDIS_REPLY_ARRAY);
            freeReplyObject(g);
        } else {
            cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "SOLDOUT", 7) == 0, "%s",
                      r->str);
            soldout++;
        }
        freeReplyObject(r);
    }
    cr_assert_eq(sold, 5);
    cr_assert_eq(soldout, 3);

    /* Keys in two partitions, lock sessions and blocking waits: a clear error. */
    char a[16] = "", b[16] = "";
    for (int k = 0; !b[0]; k++) {
        char key[16];
        snprintf(key, sizeof key, "acct-%d", k);
        if (!a[0])
            snprintf(a, sizeof a, "%s", key);
        else if (partition_of(key) != partition_of(a))
            snprintf(b, sizeof b, "%s", key);
    }
    redisReply *r = node_proc_command(cs[0], "ACCOUNT.TRANSFER t1 %s %s 5", a, b);
    cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CROSSPARTITION", 14) == 0, "%s",
              r->str);
    freeReplyObject(r);
    r = node_proc_command(cs[1], "SESSION.OPEN s1 sess 10000");
    cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CROSSPARTITION", 14) == 0, "%s",
              r->str);
    freeReplyObject(r);
    r = node_proc_command(cs[2], "LOCK.ACQUIRE l1 sess lk owner WAIT 100");
    cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "CROSSPARTITION", 14) == 0, "%s",
              r->str);
    freeReplyObject(r);
    for (int i = 0; i < NODES; i++)
        redisFree(cs[i]);
    /* A clean stop leaves with exit code 0. */
    for (int i = 0; i < NODES; i++) {
        int status = node_proc_stop(&nodes[i], true);
        if (status != 0) {
            char cat[300];
            snprintf(cat, sizeof cat, "tail -40 %s/out", nodes[i].dir);
            cr_assert_eq(system(cat), 0);
        }
        cr_assert_eq(status, 0, "node %d did not stop cleanly", i);
    }
}

/* Runs `shardmart admin status` with extra flags; the exit status, and its output in out. */
static int admin_status(const char *extra, char *out, size_t cap)
{
    const char *const argv[] = {"admin",          "status", "--cluster", spec,
                                "--cluster-name", name,     extra,       NULL};
    return node_proc_run(argv, out, cap);
}

/* The partition lines of `admin status` text whose primary column is `primary`, and how many of
 * them carry the not-live flag. Returns the number of partition lines. */
static int admin_partitions(const char *out, const char *primary, int *led, int *flagged)
{
    const char *p = strstr(out, "\npartitions:\n");
    cr_assert_not_null(p, "%s", out);
    p = strchr(p + 13, '\n') + 1; /* the column header */
    int lines = 0;
    *led = *flagged = 0;
    while (*p == ' ') {
        unsigned part;
        char prim[80];
        unsigned long long epoch;
        cr_assert_eq(sscanf(p, " %u %llu %79s", &part, &epoch, prim), 3, "bad line: %s", p);
        const char *eol = strchr(p, '\n');
        bool flag = false;
        const char *f = strstr(p, "FLAG: primary not live");
        if (f && f < eol)
            flag = true;
        if (strcmp(prim, primary) == 0) {
            (*led)++;
            *flagged += flag;
        } else {
            cr_assert(!flag, "a partition of a live primary is flagged: %.*s", (int)(eol - p), p);
        }
        lines++;
        p = eol + 1;
    }
    return lines;
}

Test(cluster_procs, admin_status_shows_nodes_partitions_and_a_dead_node)
{
    char out[65536];
    /* No etcd listening: a one-line error and a non-zero exit, no hang. */
    const char *const dead[] = {"admin",        "status", "--cluster", "etcd://127.0.0.1:1",
                                "--timeout-ms", "500",    NULL};
    int status = node_proc_run(dead, out, sizeof out);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "shardmart admin: cannot read etcd at etcd://127.0.0.1:1"), "%s",
                       out);
    cr_assert_eq(count_lines(out), 1, "%s", out);
    /* Bad flags: exit 2. */
    const char *const bad[] = {"admin", "status", "--cluster", spec, "--frobnicate", NULL};
    cr_assert_eq(node_proc_run(bad, out, sizeof out), 2, "%s", out);
    const char *const none[] = {"admin", "status", NULL};
    cr_assert_eq(node_proc_run(none, out, sizeof out), 2, "%s", out);

    /* No cluster of that name yet: a one-line error. */
    status = admin_status("--json", out, sizeof out);
    cr_assert_eq(status, 1, "%s", out);
    cr_assert_not_null(strstr(out, "no cluster"), "%s", out);

    for (int i = 0; i < NODES; i++)
        start_node(i, PARTITIONS);
    for (int i = 0; i < NODES; i++)
        wait_ready(i, 20000);

    /* Three live nodes, each reachable and ready, every partition with a live primary. */
    cr_assert_eq(admin_status("--timeout-ms", out, sizeof out), 2, "--timeout-ms without value");
    status = admin_status(NULL, out, sizeof out);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "16 partitions, 3 replicas"), "%s", out);
    cr_assert_not_null(strstr(out, "summary: 3 live nodes, 16 partitions, 0 without a live "
                                   "primary, 0 with a shrunken ISR, 0 without a config"),
                       "%s", out);
    char want[64];
    for (int i = 0; i < NODES; i++) {
        snprintf(want, sizeof want, "127.0.0.1:%d", nodes[i].resp_port);
        cr_assert_not_null(strstr(out, want), "node %d's client address missing: %s", i, out);
    }
    const char *s = out;
    int ready = 0;
    while ((s = strstr(s, "state=ok revision=")) != NULL) {
        ready++;
        s++;
    }
    cr_assert_eq(ready, 3, "%s", out);
    int led, flagged;
    cr_assert_eq(admin_partitions(out, "x", &led, &flagged), 16, "%s", out);
    /* Every node answers CLUSTER.STATE: every partition has a lag figure. */
    cr_assert_null(strstr(strstr(out, "\npartitions:\n"), " n/a"), "a lag is n/a: %s", out);

    /* --json: one object that jansson parses, with the same counts. */
    status = admin_status("--json", out, sizeof out);
    cr_assert_eq(status, 0, "%s", out);
    json_error_t jerr;
    json_t *o = json_loads(out, 0, &jerr);
    cr_assert_not_null(o, "%s: %s", jerr.text, out);
    cr_assert_eq(json_integer_value(json_object_get(o, "partitions")), 16);
    cr_assert_eq(json_array_size(json_object_get(o, "partition_configs")), 16);
    cr_assert_eq(json_array_size(json_object_get(o, "nodes")), 3);
    json_t *sum = json_object_get(o, "summary");
    cr_assert_eq(json_integer_value(json_object_get(sum, "live_nodes")), 3);
    cr_assert_eq(json_integer_value(json_object_get(sum, "no_live_primary")), 0);
    /* The node to kill: partition 0's primary, so at least one partition loses it. */
    json_t *p0 = json_array_get(json_object_get(o, "partition_configs"), 0);
    int victim = atoi(json_string_value(json_object_get(p0, "primary")));
    json_decref(o);
    cr_assert(victim >= 0 && victim < NODES);

    /* kill -9 and the lease lapses: the node is not live; its partitions fail over and every
     * ISR loses it (R = 3 on 3 nodes: it replicated all 16). */
    node_proc_kill(&nodes[victim]);
    int other = (victim + 1) % NODES;
    wait_info(other, "members:2\r\n", 15000);
    int64_t until = mono_ms() + 15000;
    for (;;) {
        status = admin_status(NULL, out, sizeof out);
        cr_assert_eq(status, 0, "%s", out);
        if (strstr(out, "summary: 2 live nodes, 16 partitions, 0 without a live primary, 16 with "
                        "a shrunken ISR"))
            break;
        cr_assert(mono_ms() < until, "no failover of node %d's partitions: %s", victim, out);
        usleep(100 * 1000);
    }
    snprintf(want, sizeof want, "\n  %-6d ", victim);
    const char *line = strstr(out, want);
    cr_assert_not_null(line, "no line for node %d: %s", victim, out);
    cr_assert_not_null(strstr(line, " no "), "node %d still live: %s", victim, out);
    cr_assert_not_null(strstr(out, "member key gone"), "%s", out);
    char prim[8];
    snprintf(prim, sizeof prim, "%d", victim);
    cr_assert_eq(admin_partitions(out, prim, &led, &flagged), 16, "%s", out);
    cr_assert_eq(led, 0, "the dead node still leads %d partitions: %s", led, out);
    printf("cluster_procs: admin status after node %d's kill -9:\n%s", victim, out);
}
