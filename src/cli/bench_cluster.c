/*
 * The benchmark's cluster client (--cluster): which node to send each request to. It learns the
 * map once from the seed node (CLUSTER.INFO, CLUSTER.NODES, CLUSTER.PARTITIONS, docs/cluster.md)
 * and then keeps it right from the -MOVED replies, as a Redis Cluster client does. A request's
 * partition is computed exactly as the nodes compute it: ring_key_partition (XXH3-64, then jump
 * hash over the partition count) of its key, or the partition an order id carries in its first
 * four hex digits. bench_loop.c does the sending.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/bench.h"
#include "shardmart/ring.h"
#include "util/error.h"

int bench_cluster_node(struct bench_cluster *m, const char *addr)
{
    for (uint32_t i = 0; i < m->nodes_n; i++)
        if (strcmp(m->addr[i], addr) == 0)
            return (int)i;
    const char *colon = strrchr(addr, ':');
    if (m->nodes_n == SM_CLIENT_NODES_MAX || !colon || strlen(addr) >= sizeof m->addr[0] ||
        (size_t)(colon - addr) >= sizeof m->host[0])
        return -1;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 1 || port > 65535)
        return -1;
    uint32_t i = m->nodes_n++;
    (void)snprintf(m->addr[i], sizeof m->addr[i], "%s", addr);
    memcpy(m->host[i], addr, (size_t)(colon - addr));
    m->host[i][colon - addr] = '\0';
    m->port[i] = (int)port;
    m->down_until_ns[i] = 0;
    m->down_backoff_ms[i] = SM_CLIENT_RETRY_MIN_MS;
    return (int)i;
}

bool bench_cluster_parse_moved(const char *text, size_t len, uint32_t *partition, char *addr,
                               size_t cap)
{
    char t[16 + SM_CLIENT_ADDR_BYTES_MAX];
    if (len >= sizeof t)
        return false;
    memcpy(t, text, len);
    t[len] = '\0';
    unsigned p = 0;
    char a[SM_CLIENT_ADDR_BYTES_MAX];
    int used = 0;
    if (sscanf(t, "MOVED %u %63s%n", &p, a, &used) != 2 || (size_t)used != len ||
        strlen(a) >= cap || !strchr(a, ':'))
        return false;
    *partition = p;
    (void)snprintf(addr, cap, "%s", a);
    return true;
}

/* The text of the current reply (a bulk string), NUL-terminated in a new buffer; NULL if not. */
static char *reply_text(const struct rc_conn *c)
{
    if (c->vals_n == 0 || c->vals[0].type != RESP_BULK || c->vals[0].is_null)
        return NULL;
    char *t = malloc(c->vals[0].str.len + 1);
    if (t) {
        memcpy(t, c->vals[0].str.ptr, c->vals[0].str.len);
        t[c->vals[0].str.len] = '\0';
    }
    return t;
}

/* Sends one argument-less command and returns its bulk text (caller frees); NULL after a
 * message when the node failed or answered something else. */
static char *ask(struct rc_conn *c, const char *cmd)
{
    const char *argv[] = {cmd};
    rc_command(c, 1, argv);
    int rc = rc_wait(c, SM_CLIENT_RETRY_TOTAL_MS);
    char *t = rc == 0 ? reply_text(c) : NULL;
    if (!t) {
        char code[24] = "";
        if (rc == 0 && rc_is_error(c, code, sizeof code))
            fprintf(stderr, "shardmart bench: %s:%d answered %s with '%.*s': not a cluster node?\n",
                    c->host, c->port, cmd, (int)c->vals[0].str.len,
                    (const char *)c->vals[0].str.ptr);
        else
            fprintf(stderr, "shardmart bench: %s on %s:%d failed: %s\n", cmd, c->host, c->port,
                    rc ? sm_strerror(rc) : "not a bulk string");
    }
    return t;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* CLUSTER.INFO until it says the node is ready: the partition count. */
static int load_info(struct bench_cluster *m, struct rc_conn *c)
{
    for (int waited_ms = 0, backoff_ms = SM_CLIENT_RETRY_MIN_MS;;) {
        char *info = ask(c, "CLUSTER.INFO");
        if (!info)
            return SM_E_PROTO;
        const char *p = strstr(info, "partitions:");
        bool ok = strstr(info, "cluster_state:ok") != NULL;
        long n = p ? strtol(p + 11, NULL, 10) : 0;
        free(info);
        if (ok && (n < 1 || n > SM_PARTITIONS_MAX)) {
            fprintf(stderr, "shardmart bench: CLUSTER.INFO gives no partition count\n");
            return SM_E_PROTO;
        }
        if (ok) {
            m->partitions = (uint32_t)n;
            return 0;
        }
        if (waited_ms >= SM_CLIENT_RETRY_TOTAL_MS) {
            fprintf(stderr, "shardmart bench: the cluster is not ready after %d ms\n", waited_ms);
            return SM_E_TIMEOUT;
        }
        sleep_ms(backoff_ms);
        waited_ms += backoff_ms;
        backoff_ms =
            backoff_ms * 2 > SM_CLIENT_RETRY_MAX_MS ? SM_CLIENT_RETRY_MAX_MS : backoff_ms * 2;
    }
}

/* CLUSTER.NODES: "<id> <peer addr> <client addr> zone=Z [controller] [myself]" per live node;
 * fills ids[node id] with the index of its client address. */
static int load_nodes(struct bench_cluster *m, struct rc_conn *c, int16_t *ids)
{
    char *text = ask(c, "CLUSTER.NODES");
    if (!text)
        return SM_E_PROTO;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        unsigned id = 0;
        char client[SM_CLIENT_ADDR_BYTES_MAX];
        if (sscanf(line, "%u %*s %63s", &id, client) != 2 || id >= SM_CLUSTER_NODES_MAX) {
            fprintf(stderr, "shardmart bench: bad CLUSTER.NODES line '%s'\n", line);
            rc = SM_E_PROTO;
            break;
        }
        int at = bench_cluster_node(m, client);
        if (at < 0) {
            fprintf(stderr,
                    "shardmart bench: node %u's address '%s' is not a.b.c.d:port, or more "
                    "than %d nodes\n",
                    id, client, SM_CLIENT_NODES_MAX);
            rc = SM_E_BADARG;
        }
        ids[id] = (int16_t)at;
    }
    free(text);
    return rc;
}

/* CLUSTER.PARTITIONS: "<p> epoch=E primary=N isr=... replicas=... revision=R" per partition. */
static int load_partitions(struct bench_cluster *m, struct rc_conn *c, const int16_t *ids)
{
    char *text = ask(c, "CLUSTER.PARTITIONS");
    if (!text)
        return SM_E_PROTO;
    int rc = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line && rc == 0;
         line = strtok_r(NULL, "\n", &save)) {
        unsigned p = 0, primary = 0;
        if (sscanf(line, "%u epoch=%*u primary=%u", &p, &primary) != 2 || p >= m->partitions ||
            primary >= SM_CLUSTER_NODES_MAX) {
            fprintf(stderr, "shardmart bench: bad CLUSTER.PARTITIONS line '%s'\n", line);
            rc = SM_E_PROTO;
        } else if (ids[primary] >= 0) {
            m->primary[p] = (uint16_t)ids[primary];
        }
    }
    free(text);
    return rc;
}

int bench_cluster_load(struct bench_cluster *m, struct rc_conn *c, bool cold_map)
{
    ASSERT(m->nodes_n == 0 && m->primary == NULL);
    char seed[SM_CLIENT_ADDR_BYTES_MAX];
    (void)snprintf(seed, sizeof seed, "%s:%d", c->host, c->port);
    int seed_at = bench_cluster_node(m, seed);
    ASSERT(seed_at == 0);
    int rc = load_info(m, c);
    if (rc != 0)
        return rc;
    m->primary = malloc(m->partitions * sizeof *m->primary);
    m->failing_ns = calloc(m->partitions, sizeof *m->failing_ns);
    m->answered_ns = calloc(m->partitions, sizeof *m->answered_ns);
    int16_t *ids = malloc(SM_CLUSTER_NODES_MAX * sizeof *ids);
    if (!m->primary || !m->failing_ns || !m->answered_ns || !ids) {
        free(ids);
        return SM_E_NOMEM;
    }
    for (uint32_t p = 0; p < m->partitions; p++)
        m->primary[p] = BENCH_NODE_NONE;
    for (uint32_t i = 0; i < SM_CLUSTER_NODES_MAX; i++)
        ids[i] = -1;
    rc = load_nodes(m, c, ids);
    if (!cold_map)
        rc = rc ? rc : load_partitions(m, c, ids);
    free(ids);
    return rc;
}

void bench_cluster_free(struct bench_cluster *m)
{
    free(m->primary);
    free(m->failing_ns);
    free(m->answered_ns);
    m->primary = NULL;
    m->failing_ns = NULL;
    m->answered_ns = NULL;
}

/* The partition an order id names ("pppp-..."), as the nodes read it; false for anything else. */
static bool order_partition(const char *id, size_t len, uint32_t partitions, uint32_t *p)
{
    if (len < 5 || id[4] != '-')
        return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        char ch = id[k];
        uint32_t d = (ch >= '0' && ch <= '9')   ? (uint32_t)(ch - '0')
                     : (ch >= 'a' && ch <= 'f') ? (uint32_t)(ch - 'a' + 10)
                                                : 16;
        if (d == 16)
            return false;
        v = v * 16 + d;
    }
    *p = v;
    return v < partitions;
}

uint32_t bench_cluster_partition(const struct bench_cluster *m, const struct bench_op *op)
{
    ASSERT(m->partitions > 0);
    /* Which argument after the request id is the key (history.h's operations). */
    int word = op->kind == HISTORY_PLACE                                    ? 2
               : op->kind == HISTORY_ACQUIRE || op->kind == HISTORY_RELEASE ? 1
                                                                            : 0;
    const char *p = op->args;
    for (int i = 0; i < word && p; i++) {
        p = strchr(p, ' ');
        p = p ? p + 1 : NULL;
    }
    ASSERT(p != NULL);
    size_t len = strcspn(p, " ");
    uint32_t part = 0;
    bool by_order = op->kind == HISTORY_PAYEXT || op->kind == HISTORY_CANCEL ||
                    op->kind == HISTORY_PAY || op->kind == HISTORY_REFUND;
    if (by_order && order_partition(p, len, m->partitions, &part))
        return part;
    /* A key over the node's bound is refused by the node whatever partition it goes to. */
    if (ring_key_partition(p, len, m->partitions, &part) != 0)
        return 0;
    return part;
}
