/*
 * Replication and failover with real processes: a 3-member etcd on loopback and three
 * `shardmart start --cluster` nodes with --replicas 3 and 1-second leases. Faults: kill -9 of a
 * primary, of the controller, SIGSTOP of a primary for longer than its lease then SIGCONT, a
 * restart of a killed node on its data, the loss of one etcd member. After each: no
 * acknowledged write is lost or applied twice (stock, sold and order counts are exact), a retry
 * with the same request id is answered from the first outcome, and every replica of the
 * partition holds the same state (CLUSTER.STATE: same applied index, same digest of the engine's
 * saved state).
 *
 * The client here retries like a careful application: it follows -MOVED, waits on -TRYAGAIN,
 * -CLUSTERDOWN and connection errors, and always retries with the same request id. Every wait
 * polls a condition with a deadline; nothing sleeps for a fixed time to be "enough".
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../support/etcd_proc.h"
#include "../support/node_proc.h"
#include "shardmart/ring.h"

#define NODES       3
#define PARTITIONS  8
#define RETRY_MS    15000 /* a command is retried this long through a failover */
#define CONVERGE_MS 15000 /* replicas agree within this long once writes stop */

static struct etcd_cluster ec;
static struct node_proc nodes[NODES];
static struct node_proc first[NODES]; /* a restarted node's first directory (holds its data) */
static bool up[NODES];
static int peer_port[NODES];
static char spec[256];
static char name[32];
static redisContext *conns[NODES];

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void setup(void)
{
    etcd_cluster_start(&ec, 3);
    etcd_cluster_spec(&ec, spec, sizeof spec);
    snprintf(name, sizeof name, "f%d", (int)getpid());
    memset(nodes, 0, sizeof nodes);
    memset(first, 0, sizeof first);
    memset(conns, 0, sizeof conns);
    memset(up, 0, sizeof up);
    etcd_proc_free_ports(peer_port, NODES);
}

static void drop_conn(int i)
{
    if (conns[i])
        redisFree(conns[i]);
    conns[i] = NULL;
}

static void teardown(void)
{
    for (int i = 0; i < NODES; i++) {
        drop_conn(i);
        if (nodes[i].pid > 0) {
            kill(nodes[i].pid, SIGCONT);
            node_proc_kill(&nodes[i]);
        }
        if (nodes[i].dir[0])
            (void)node_proc_stop(&nodes[i], false); /* removes the directory */
        if (first[i].dir[0])
            (void)node_proc_stop(&first[i], false);
    }
    etcd_cluster_stop(&ec);
}

/* Starts node i, on a fresh directory or again on its own data (restart). */
static void start_node(int i, bool restart)
{
    char id[8], adv[32], parts[8];
    snprintf(id, sizeof id, "%d", i);
    snprintf(adv, sizeof adv, "127.0.0.1:%d", peer_port[i]);
    snprintf(parts, sizeof parts, "%d", PARTITIONS);
    const char *const flags[] = {"--cluster",
                                 spec,
                                 "--node-id",
                                 id,
                                 "--advertise",
                                 adv,
                                 "--partitions",
                                 parts,
                                 "--replicas",
                                 "3",
                                 "--lease-ms",
                                 "1000",
                                 "--cluster-name",
                                 name,
                                 "--tick-ms", /* time in the engines: rare, so replicas settle */
                                 "5000",
                                 "--skus-max",
                                 "256",
                                 "--orders-max",
                                 "20000",
                                 "--holds-max",
                                 "256",
                                 "--accounts-max",
                                 "256",
                                 "--request-ids-max",
                                 "20000",
                                 NULL};
    char data[300] = "";
    if (restart) {
        snprintf(data, sizeof data, "%s", nodes[i].data_dir);
        if (!first[i].dir[0]) {
            first[i] = nodes[i]; /* its directory holds the data: removed at teardown */
            first[i].pid = 0;
        } else {
            (void)node_proc_stop(&nodes[i], false); /* a later incarnation's own directory */
        }
    }
    cr_assert_eq(node_proc_start(&nodes[i], restart ? data : NULL, flags), 0,
                 "node %d did not start", i);
    up[i] = true;
}

static void kill_node(int i)
{
    drop_conn(i);
    node_proc_kill(&nodes[i]);
    nodes[i].pid = 0;
    up[i] = false;
}

static redisContext *conn(int i)
{
    if (!conns[i]) {
        struct timeval tv = {.tv_sec = 2, .tv_usec = 0};
        conns[i] = redisConnectWithTimeout("127.0.0.1", nodes[i].resp_port, tv);
        cr_assert_not_null(conns[i]);
        if (conns[i]->err) {
            drop_conn(i);
            return NULL;
        }
        redisSetTimeout(conns[i], tv);
    }
    return conns[i];
}

/* One command on node i; NULL when the connection failed (it is dropped). */
static redisReply *on_node(int i, const char *fmt, va_list ap)
{
    redisContext *c = conn(i);
    if (!c)
        return NULL;
    va_list cp;
    va_copy(cp, ap);
    redisReply *r = redisvCommand(c, fmt, cp);
    va_end(cp);
    if (!r)
        drop_conn(i);
    return r;
}

static int node_of_port(int port)
{
    for (int i = 0; i < NODES; i++)
        if (up[i] && nodes[i].resp_port == port)
            return i;
    return -1;
}

static bool retryable(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR &&
           (strncmp(r->str, "TRYAGAIN", 8) == 0 || strncmp(r->str, "CLUSTERDOWN", 11) == 0);
}

/* Runs a command like an application that must get an answer: starts on a live node, follows
 * -MOVED, and retries -TRYAGAIN, -CLUSTERDOWN and dropped connections with the same arguments
 * (so the same request id) until RETRY_MS have passed. *hops counts redirects and retries. */
static redisReply *run(int *hops, const char *fmt, ...)
{
    int64_t until = mono_ms() + RETRY_MS;
    int at = -1;
    for (int i = 0; i < NODES && at < 0; i++)
        if (up[i])
            at = i;
    cr_assert(at >= 0);
    int tries = 0;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = on_node(at, fmt, ap);
        va_end(ap);
        int port;
        unsigned p;
        if (getenv("FAILOVER_DEBUG"))
            fprintf(stderr, "run at %d (port %d): %s -> type %d %s\n", at, nodes[at].resp_port, fmt,
                    r ? r->type : -1, r && r->str ? r->str : "");
        bool moved = r && r->type == REDIS_REPLY_ERROR &&
                     sscanf(r->str, "MOVED %u 127.0.0.1:%d", &p, &port) == 2;
        if (moved && node_of_port(port) >= 0) {
            at = node_of_port(port);
        } else if (r && !moved && !retryable(r)) {
            if (hops)
                *hops = tries;
            return r;
        } else {
            /* a dead or paused node, or one not ready: wait, then ask the next live node */
            pause_ms(20);
            for (int k = 1; k <= NODES; k++)
                if (up[(at + k) % NODES]) {
                    at = (at + k) % NODES;
                    break;
                }
        }
        if (r)
            freeReplyObject(r);
        tries++;
        cr_assert(mono_ms() < until, "no answer to '%s' within %d ms", fmt, RETRY_MS);
    }
}

static unsigned partition_of(const char *key)
{
    uint32_t p = 0;
    cr_assert_eq(ring_key_partition(key, strlen(key), PARTITIONS, &p), 0);
    return p;
}

/* The bulk text of a command on node i (NULL when the node does not answer). */
static char *text_of(int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = on_node(i, fmt, ap);
    va_end(ap);
    if (!r)
        return NULL;
    char *t = r->type == REDIS_REPLY_STRING ? strdup(r->str) : NULL;
    if (!t && getenv("FAILOVER_DEBUG"))
        fprintf(stderr, "node %d: %s -> type %d %s\n", i, fmt, r->type,
                r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    return t;
}

/* Partition p's primary and ISR size as a live node sees them; false when no node answers. */
static bool config_of(unsigned p, int *primary, int *epoch, int *isr)
{
    for (int i = 0; i < NODES; i++) {
        if (!up[i])
            continue;
        char *parts = text_of(i, "CLUSTER.PARTITIONS");
        if (!parts)
            continue;
        bool found = false;
        for (char *line = parts; line && *line; line = strchr(line, '\n')) {
            if (*line == '\n')
                line++;
            unsigned q, prim, ep;
            char isrs[64];
            if (sscanf(line, "%u epoch=%u primary=%u isr=%63s", &q, &ep, &prim, isrs) == 4 &&
                q == p) {
                *primary = (int)prim;
                *epoch = (int)ep;
                *isr = 1;
                for (char *c = isrs; *c; c++)
                    *isr += *c == ',';
                found = true;
                break;
            }
        }
        free(parts);
        if (found)
            return true;
    }
    return false;
}

struct pstate {
    char role[16];
    unsigned long long epoch, last, commit, applied, digest;
};

static bool state_of(int i, unsigned p, struct pstate *s)
{
    char *t = text_of(i, "CLUSTER.STATE %u", p);
    if (!t)
        return false;
    unsigned q;
    int n = sscanf(
        t, "partition=%u role=%15s epoch=%llu last=%llu commit=%llu applied=%llu digest=%llx", &q,
        s->role, &s->epoch, &s->last, &s->commit, &s->applied, &s->digest);
    free(t);
    return n == 7 && q == p;
}

/* Waits until every live node holds partition p with the full ISR, and every one has applied
 * the same index, equal to the primary's commit and last index, with the same digest. */
static void wait_agree(unsigned p)
{
    int64_t until = mono_ms() + CONVERGE_MS;
    char last_seen[512] = "";
    for (;;) {
        int primary = -1, epoch = 0, isr = 0;
        bool ok = config_of(p, &primary, &epoch, &isr) && isr == NODES;
        struct pstate ref = {0};
        int seen = 0;
        last_seen[0] = '\0';
        for (int i = 0; ok && i < NODES; i++) {
            struct pstate s;
            if (!up[i] || !state_of(i, p, &s)) {
                ok = false;
                break;
            }
            size_t used = strlen(last_seen);
            snprintf(last_seen + used, sizeof last_seen - used,
                     "\n  node %d: %s epoch %llu last %llu commit %llu applied %llu digest %llx", i,
                     s.role, s.epoch, s.last, s.commit, s.applied, s.digest);
            if (seen++ == 0)
                ref = s;
            ok = ok && s.applied == ref.applied && s.digest == ref.digest && s.last == ref.last &&
                 s.applied == s.last && s.digest != 0;
        }
        if (ok && seen == NODES)
            return;
        cr_assert(mono_ms() < until, "partition %u: the replicas do not agree within %d ms:%s", p,
                  CONVERGE_MS, last_seen);
        pause_ms(50);
    }
}

static void wait_all_ready(void)
{
    for (int i = 0; i < NODES; i++) {
        int64_t until = mono_ms() + 20000;
        for (;;) {
            char *info = up[i] ? text_of(i, "CLUSTER.INFO") : NULL;
            bool ok = info && strstr(info, "cluster_state:ok") && strstr(info, "replication:on");
            free(info);
            if (ok || !up[i])
                break;
            cr_assert(mono_ms() < until, "node %d not ready", i);
            pause_ms(50);
        }
    }
}

/* A key of partition p (made up until one falls there). */
static void key_in(unsigned p, const char *prefix, char *out, size_t cap)
{
    for (int k = 0;; k++) {
        snprintf(out, cap, "%s-%d", prefix, k);
        if (partition_of(out) == p)
            return;
    }
}

/* STOCK.GET's field `field`. */
static long long stock_field(const char *sku, const char *field)
{
    redisReply *r = run(NULL, "STOCK.GET %s", sku);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    long long v = -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, field) == 0)
            v = r->element[i + 1]->integer;
    freeReplyObject(r);
    return v;
}

/* Places one order of one unit; true when sold, false when sold out. *order_id gets its id. */
static bool place(const char *req, const char *user, const char *sku, char *order_id, size_t cap)
{
    redisReply *r = run(NULL, "ORDER.PLACE %s %s 60000 %s 1", req, user, sku);
    bool sold = r->type == REDIS_REPLY_STRING;
    if (sold && order_id)
        snprintf(order_id, cap, "%s", r->str);
    if (!sold)
        cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "SOLDOUT", 7) == 0,
                  "ORDER.PLACE %s: %s", req, r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    return sold;
}

/* Waits until a write to partition p (a restock of sku by 0 is refused, so a no-op adjust is
 * not possible: a fresh SKU is created) succeeds; returns the milliseconds it took. */
static int64_t time_to_write(unsigned p, int64_t t0)
{
    static int seq;
    char prefix[32], sku[48];
    snprintf(prefix, sizeof prefix, "probe%d", seq++);
    key_in(p, prefix, sku, sizeof sku);
    redisReply *r = run(NULL, "STOCK.CREATE %s %s 1", prefix, sku);
    cr_assert(r->type == REDIS_REPLY_STATUS, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    freeReplyObject(r);
    return mono_ms() - t0;
}

/* cppcheck-suppress unknownMacro */
TestSuite(cluster_failover, .init = setup, .fini = teardown, .timeout = 150);

Test(cluster_failover, acknowledged_writes_survive_primary_and_controller_kills)
{
    for (int i = 0; i < NODES; i++)
        start_node(i, false);
    wait_all_ready();
    const unsigned p = 3;
    char sku[32];
    key_in(p, "sku", sku, sizeof sku);
    redisReply *r = run(NULL, "STOCK.CREATE c1 %s 30", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    char first_order[64] = "";
    for (int u = 0; u < 10; u++) {
        char req[16], user[16];
        snprintf(req, sizeof req, "o%d", u);
        snprintf(user, sizeof user, "u%d", u);
        cr_assert(place(req, user, sku, u == 0 ? first_order : NULL, sizeof first_order));
    }
    wait_agree(p);

    /* kill -9 of the primary: the next write succeeds on a new primary, nothing is lost */
    int primary, epoch, isr;
    cr_assert(config_of(p, &primary, &epoch, &isr));
    int64_t t0 = mono_ms();
    kill_node(primary);
    int64_t took = time_to_write(p, t0);
    int primary2, epoch2;
    cr_assert(config_of(p, &primary2, &epoch2, &isr));
    cr_assert_neq(primary2, primary);
    cr_assert_gt(epoch2, epoch);
    printf("cluster_failover: writes to partition %u resumed %lld ms after kill -9 of its primary "
           "(lease 1 s)\n",
           p, (long long)took);
    cr_assert_eq(stock_field(sku, "sold") + stock_field(sku, "reserved"), 10,
                 "acknowledged orders lost or doubled");
    /* the retry of an order acknowledged before the kill answers the same order */
    r = run(NULL, "ORDER.PLACE o0 u0 60000 %s 1", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    cr_assert_str_eq(r->str, first_order, "a retry with the same request id made a new order");
    freeReplyObject(r);

    /* the killed node comes back on its data, catches up and rejoins the ISR */
    start_node(primary, true);
    wait_all_ready();
    wait_agree(p);

    /* kill -9 of the controller (and of whatever it leads): a new controller fails over */
    int controller = -1;
    for (int i = 0; i < NODES && controller < 0; i++) {
        char *info = up[i] ? text_of(i, "CLUSTER.INFO") : NULL;
        char *at = info ? strstr(info, "controller:") : NULL;
        if (at)
            controller = atoi(at + strlen("controller:"));
        free(info);
    }
    cr_assert(controller >= 0 && controller < NODES);
    unsigned q = PARTITIONS; /* a partition the controller leads, if any */
    for (unsigned x = 0; x < PARTITIONS && q == PARTITIONS; x++) {
        int px, ex, ix;
        if (config_of(x, &px, &ex, &ix) && px == controller)
            q = x;
    }
    t0 = mono_ms();
    kill_node(controller);
    if (q < PARTITIONS) {
        took = time_to_write(q, t0);
        printf("cluster_failover: writes to partition %u resumed %lld ms after kill -9 of the "
               "controller, its primary\n",
               q, (long long)took);
    }
    /* sell out the rest through the failovers: exactly the stock left is sold */
    int sold = 0;
    for (int u = 10; u < 35; u++) {
        char req[16], user[16];
        snprintf(req, sizeof req, "o%d", u);
        snprintf(user, sizeof user, "u%d", u);
        sold += place(req, user, sku, NULL, 0);
    }
    cr_assert_eq(sold, 20, "sold %d of the 20 left", sold);
    cr_assert_eq(stock_field(sku, "available"), 0);
    start_node(controller, true);
    wait_all_ready();
    wait_agree(p);
    if (q < PARTITIONS)
        wait_agree(q);
}

Test(cluster_failover, a_paused_primary_never_commits_after_its_lease)
{
    for (int i = 0; i < NODES; i++)
        start_node(i, false);
    wait_all_ready();
    const unsigned p = 5;
    char sku[32];
    key_in(p, "item", sku, sizeof sku);
    redisReply *r = run(NULL, "STOCK.CREATE c1 %s 10", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);
    int primary, epoch, isr;
    cr_assert(config_of(p, &primary, &epoch, &isr));
    /* A client of the old primary connects before the pause and writes during it. */
    redisContext *old = redisConnect("127.0.0.1", nodes[primary].resp_port);
    cr_assert(old && !old->err);
    struct timeval tv = {.tv_sec = 10, .tv_usec = 0};
    redisSetTimeout(old, tv);
    cr_assert_eq(kill(nodes[primary].pid, SIGSTOP), 0);
    up[primary] = false;
    drop_conn(primary);
    cr_assert_eq(redisAppendCommand(old, "ORDER.PLACE stale u-stale 60000 %s 1", sku), REDIS_OK);
    int flushed = 0;
    (void)redisBufferWrite(old, &flushed);
    int64_t t0 = mono_ms();
    int64_t took = time_to_write(p, t0);
    printf(
        "cluster_failover: writes to partition %u resumed %lld ms after SIGSTOP of its primary\n",
        p, (long long)took);
    for (int u = 0; u < 4; u++) {
        char req[16], user[16];
        snprintf(req, sizeof req, "n%d", u);
        snprintf(user, sizeof user, "nu%d", u);
        cr_assert(place(req, user, sku, NULL, 0));
    }
    /* The old primary wakes up: it learns of the new epoch and its held write is never
     * acknowledged as done there. */
    cr_assert_eq(kill(nodes[primary].pid, SIGCONT), 0);
    up[primary] = true;
    redisReply *stale = NULL;
    cr_assert_eq(redisGetReply(old, (void **)&stale), REDIS_OK, "no answer on the old primary");
    cr_assert(stale->type == REDIS_REPLY_ERROR, "the deposed primary acknowledged a write: %s",
              stale->type == REDIS_REPLY_STRING ? stale->str : "?");
    cr_assert(strncmp(stale->str, "TRYAGAIN", 8) == 0 || strncmp(stale->str, "MOVED", 5) == 0 ||
                  strncmp(stale->str, "CLUSTERDOWN", 11) == 0,
              "%s", stale->str);
    freeReplyObject(stale);
    redisFree(old);
    /* Its retry (same request id) through the cluster is answered once. */
    r = run(NULL, "ORDER.PLACE stale u-stale 60000 %s 1", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    r = run(NULL, "ORDER.PLACE stale u-stale 60000 %s 1", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    cr_assert_eq(stock_field(sku, "available"), 10 - 5);
    wait_all_ready();
    wait_agree(p);
}

Test(cluster_failover, writes_go_on_without_one_etcd_member)
{
    for (int i = 0; i < NODES; i++)
        start_node(i, false);
    wait_all_ready();
    etcd_member_stop(&ec, 0, true);
    const unsigned p = 1;
    char sku[32];
    key_in(p, "gear", sku, sizeof sku);
    redisReply *r = run(NULL, "STOCK.CREATE c1 %s 4", sku);
    cr_assert_eq(r->type, REDIS_REPLY_STATUS, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "");
    freeReplyObject(r);
    cr_assert(place("a1", "ua", sku, NULL, 0));
    /* and a primary's kill still fails over with two etcd members of three */
    int primary, epoch, isr;
    cr_assert(config_of(p, &primary, &epoch, &isr));
    int64_t t0 = mono_ms();
    kill_node(primary);
    int64_t took = time_to_write(p, t0);
    printf("cluster_failover: writes resumed %lld ms after kill -9 of a primary, one etcd member "
           "down\n",
           (long long)took);
    cr_assert(place("a2", "ub", sku, NULL, 0));
    cr_assert_eq(stock_field(sku, "available"), 2);
    etcd_member_restart(&ec, 0);
    start_node(primary, true);
    wait_all_ready();
    wait_agree(p);
}

/* `shardmart bench WORKLOAD --cluster` with a history through a live node, its primary killed
 * with -9 while it runs: the bench must end with every request answered (exit 0) and
 * `shardmart check` must prove the history against the final state. */
static void bench_through_a_kill(const char *workload)
{
    char dir[] = "/tmp/shardmart-fo-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char hist[96], err[96], port[16];
    snprintf(hist, sizeof hist, "%s/history.tsv", dir);
    snprintf(err, sizeof err, "%s/bench.err", dir);
    snprintf(port, sizeof port, "%d", nodes[0].resp_port);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0)
            dup2(fd, 2);
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0)
            dup2(null, 1);
        execl(node_proc_binary(), node_proc_binary(), "bench", workload, "--cluster", "--port",
              port, "--clients", "8", "--duration-ms", "4000", "--stock", "100000000", "--history",
              hist, (char *)NULL);
        _exit(127);
    }
    /* The partition the load uses, from the bench's first line. */
    unsigned p = PARTITIONS;
    for (int64_t until = mono_ms() + 10000; p == PARTITIONS;) {
        FILE *f = fopen(err, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) {
            const char *at = strstr(line, ") is in partition ");
            if (at)
                (void)sscanf(at, ") is in partition %u", &p);
        }
        if (f)
            fclose(f);
        cr_assert(mono_ms() < until, "the %s bench did not start", workload);
        if (p == PARTITIONS)
            pause_ms(20);
    }
    pause_ms(1000);
    int primary, epoch, isr;
    cr_assert(config_of(p, &primary, &epoch, &isr));
    int64_t t0 = mono_ms();
    kill_node(primary);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "the %s bench failed through the kill (status %d); see %s", workload, status, err);
    printf("cluster_failover: %s bench through kill -9 of partition %u's primary: done %lld ms "
           "after the kill\n",
           workload, p, (long long)(mono_ms() - t0));
    char port2[16];
    int live = (primary + 1) % NODES;
    snprintf(port2, sizeof port2, "%d", nodes[live].resp_port);
    static char out[16384];
    const char *const check[] = {"check", hist, "--port", port2, NULL};
    int rc = node_proc_run(check, out, sizeof out);
    cr_assert_eq(rc, 0, "check of the %s history failed: %s", workload, out);
    cr_assert_not_null(strstr(out, "check: OK"), "%s", out);
    start_node(primary, true);
    wait_all_ready();
    wait_agree(p);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf %s", dir);
    cr_assert_eq(system(rm), 0);
}

Test(cluster_failover, bench_histories_pass_check_through_a_primary_kill)
{
    for (int i = 0; i < NODES; i++)
        start_node(i, false);
    wait_all_ready();
    bench_through_a_kill("flash-sale");
    bench_through_a_kill("cart");
    /* The shared log does not grow without bound: with 1 MiB segments (node_proc's default),
     * compaction (snapshots asked of the partitions that pin old segments) deletes segments
     * until every node keeps at most two (a restarted node counts again from 0). */
    int64_t until = mono_ms() + 30000;
    for (;;) {
        long deleted = 0;
        int most = 0;
        for (int i = 0; i < NODES; i++) {
            char *info = text_of(i, "CLUSTER.INFO");
            const char *at = info ? strstr(info, "log_segments_deleted:") : NULL;
            deleted += at ? atol(at + strlen("log_segments_deleted:")) : 0;
            free(info);
            char cmd[400];
            snprintf(cmd, sizeof cmd, "ls %s/plog | grep -c '^wal-.*\\.log$'", nodes[i].data_dir);
            FILE *f = popen(cmd, "r");
            int n = 0;
            if (f) {
                if (fscanf(f, "%d", &n) != 1)
                    n = 0;
                pclose(f);
            }
            most = n > most ? n : most;
        }
        if (deleted > 0 && most <= 2)
            break;
        cr_assert(mono_ms() < until, "log segments: %ld deleted, a node keeps %d", deleted, most);
        pause_ms(200);
    }
}
