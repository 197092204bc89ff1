/*
 * `shardmart admin status`: the operator's view of a cluster, read from the control plane itself
 * (src/coord: the etcd backend and the typed directory), not from any one node, so it works when
 * nodes are down. One load of the directory at one revision gives meta, the members (live = the
 * member key is present: it lives under the node's lease), the placement key, every partition's
 * config and the controller; each partition's replicas are recomputed from the placement key with
 * ring_place, exactly as every node does (src/server/cluster_placement.c). Then each live member is
 * asked CLUSTER.INFO on its client address with a short timeout: a node that does not answer shows
 * as unreachable, never a hang. Lag: each reachable node is asked CLUSTER.STATE <p> for every
 * partition it replicates (its last log index there); a partition's lag is the largest gap between
 * its primary's last index and another replica's, "n/a" when the primary or no replica answered.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "cli/resp_client.h"
#include "coord/directory.h"
#include "limits.h"
#include "server/cluster_placement.h"
#include "util/error.h"

const char cli_admin_usage[] =
    "usage: shardmart admin status --cluster etcd://H:P[,H:P...] [--cluster-name NAME] [--json]\n"
    "                              [--timeout-ms N]\n"
    "\n"
    "Reads the cluster's directory from etcd and prints the cluster (partitions, replicas,\n"
    "revision), the controller, every node (id, zone, peer and client address, live = its member\n"
    "key is present, and its own view over RESP: CLUSTER.INFO on the client address, or\n"
    "'unreachable'), every partition (epoch, primary, ISR, replicas, lag) and a summary: the\n"
    "partitions without a live primary and those with a shrunken ISR (fewer than R members).\n"
    "Lag: entries the primary holds that the furthest-behind reachable replica lacks (from\n"
    "each node's CLUSTER.STATE); n/a when the primary or every other replica is unreachable.\n"
    "\n"
    "  --cluster-name NAME  the cluster's directory in etcd (default shardmart)\n"
    "  --json               the same as one JSON object\n"
    "  --timeout-ms N       per etcd request and per node (default 2000, 100..60000)\n"
    "\n"
    "Exit 0: printed (even when partitions are flagged). Exit 1: etcd unreachable, no such\n"
    "cluster, or a directory that cannot be read. Exit 2: bad usage.\n";

#define ADMIN_TIMEOUT_MS_DEFAULT 2000
#define ADMIN_TIMEOUT_MS_MIN     100
#define ADMIN_TIMEOUT_MS_MAX     60000
#define ADMIN_ADDR_BYTES         (SM_COORD_ADDR_BYTES_MAX + 1)

struct admin_node {
    struct sm_coord_member m;
    char peer[ADMIN_ADDR_BYTES];
    char client[ADMIN_ADDR_BYTES];
    bool reachable;
    char state[32];       /* cluster_state from CLUSTER.INFO */
    char replication[32]; /* replication from CLUSTER.INFO */
    int64_t revision;     /* the revision the node has seen */
    char error[96];       /* why unreachable */
};

struct admin_status {
    const char *name;
    int64_t revision;
    bool meta_known;
    struct sm_coord_meta meta;
    bool controller_known;
    struct sm_coord_controller controller;
    struct admin_node *nodes;
    size_t nodes_count;
    uint32_t placement[SM_CLUSTER_NODES_MAX];
    uint32_t placement_count;
    bool placement_known;
    uint32_t *replicas;               /* partitions x replicas node ids, or NULL */
    struct sm_coord_partition *parts; /* meta.partitions entries */
    bool *part_known;
    int64_t
        *last; /* partitions x replicas: that replica's last index (CLUSTER.STATE), -1 unknown */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for the result of request id (blocking on the client's fd up to timeout_ms). */
static int wait_result(struct sm_coord *c, uint64_t id, int64_t timeout_ms,
                       struct sm_coord_result *out)
{
    int64_t until = now_ms() + timeout_ms;
    for (;;) {
        while (sm_coord_poll(c, out) == 1) {
            if (out->kind == SM_COORD_DONE && out->id == id)
                return 0;
            sm_coord_result_free(out);
        }
        int64_t left = until - now_ms();
        if (left <= 0)
            return SM_E_TIMEOUT;
        struct pollfd pfd = {.fd = sm_coord_fd(c), .events = POLLIN};
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            return SM_E_IO;
    }
}

/* Every partition's replicas from the placement key, as the nodes compute them. */
static int compute_replicas(struct admin_status *st)
{
    return cluster_placement_replicas(st->placement, st->placement_count, st->meta.partitions,
                                      st->meta.replicas, &st->replicas);
}

static int add_member(struct admin_status *st, const struct sm_coord_member *m)
{
    struct admin_node *n = realloc(st->nodes, (st->nodes_count + 1) * sizeof *n);
    if (!n)
        return SM_E_NOMEM;
    st->nodes = n;
    struct admin_node *x = &n[st->nodes_count++];
    memset(x, 0, sizeof *x);
    x->m = *m;
    /* addr = "<peer host:port>,<client host:port>" (cluster_rt.c) */
    const char *comma = strchr(m->addr, ',');
    size_t len = comma ? (size_t)(comma - m->addr) : strlen(m->addr);
    memcpy(x->peer, m->addr, len);
    x->peer[len] = '\0';
    snprintf(x->client, sizeof x->client, "%s", comma ? comma + 1 : "");
    return 0;
}

/* Reads the directory into st. Prints the one-line error itself; returns 0 or 1 (exit code). */
static int load_directory(struct sm_coord *c, struct admin_status *st, const char *spec,
                          int64_t timeout_ms)
{
    struct sm_coord_dir d;
    int rc = sm_coord_dir_init(&d, c, st->name);
    if (rc != 0) {
        fprintf(stderr, "shardmart admin: bad cluster name '%s': %s\n", st->name, sm_strerror(rc));
        return 2;
    }
    uint64_t id;
    rc = sm_coord_dir_load(&d, &id);
    struct sm_coord_result r = {0};
    if (rc == 0)
        rc = wait_result(c, id, timeout_ms * (SM_COORD_ENDPOINTS_MAX + 1), &r);
    if (rc == 0 && r.err != 0) {
        fprintf(stderr, "shardmart admin: cannot read etcd at %s: %s (%s)\n", spec,
                sm_strerror(r.err), r.message);
        sm_coord_result_free(&r);
        return 1;
    }
    if (rc != 0) {
        fprintf(stderr, "shardmart admin: cannot read etcd at %s: %s\n", spec, sm_strerror(rc));
        return 1;
    }
    st->revision = r.revision;
    int exit_code = 0;
    /* Meta sorts after members and partitions: find it first, it sizes the partition table. */
    for (size_t i = 0; i < r.kvs_count; i++) {
        struct sm_coord_entry e;
        if (sm_coord_dir_decode(&d, &r.kvs[i], false, &e) == 0 && e.kind == SM_COORD_ENTRY_META) {
            st->meta = e.meta;
            st->meta_known = true;
        }
    }
    if (!st->meta_known) {
        fprintf(stderr, "shardmart admin: no cluster '%s' at %s (no meta key under %s)\n", st->name,
                spec, d.prefix);
        sm_coord_result_free(&r);
        return 1;
    }
    st->parts = calloc(st->meta.partitions, sizeof *st->parts);
    st->part_known = calloc(st->meta.partitions, sizeof *st->part_known);
    if (!st->parts || !st->part_known) {
        fprintf(stderr, "shardmart admin: out of memory\n");
        sm_coord_result_free(&r);
        return 1;
    }
    for (size_t i = 0; i < r.kvs_count && exit_code == 0; i++) {
        const struct sm_coord_kv *kv = &r.kvs[i];
        if (kv->key_len == d.prefix_len + strlen("placement") &&
            strcmp(kv->key + d.prefix_len, "placement") == 0) {
            st->placement_known = cluster_placement_decode(kv->value, kv->value_len, st->placement,
                                                           &st->placement_count);
            continue;
        }
        struct sm_coord_entry e;
        rc = sm_coord_dir_decode(&d, kv, false, &e);
        if (rc != 0) {
            fprintf(stderr, "shardmart admin: key %s holds a value that is not ours: %s\n", kv->key,
                    sm_strerror(rc));
            exit_code = 1;
        } else if (e.kind == SM_COORD_ENTRY_MEMBER) {
            if (add_member(st, &e.member) != 0) {
                fprintf(stderr, "shardmart admin: out of memory\n");
                exit_code = 1;
            }
        } else if (e.kind == SM_COORD_ENTRY_PARTITION &&
                   e.partition.partition < st->meta.partitions) {
            st->parts[e.partition.partition] = e.partition;
            st->part_known[e.partition.partition] = true;
        } else if (e.kind == SM_COORD_ENTRY_CONTROLLER) {
            st->controller = e.controller;
            st->controller_known = true;
        }
    }
    sm_coord_result_free(&r);
    if (exit_code == 0 && st->placement_known && compute_replicas(st) != 0)
        fprintf(stderr, "shardmart admin: cannot compute the replicas from the placement key\n");
    return exit_code;
}

/* The value of "field:" in CLUSTER.INFO text, copied into out[0, cap); false when absent. */
static bool info_field(const char *text, const char *field, char *out, size_t cap)
{
    size_t flen = strlen(field);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, field, flen) == 0 && p[flen] == ':') {
            const char *v = p + flen + 1;
            size_t n = strcspn(v, "\r\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return true;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return false;
}

/* Splits a node's client address "host:port" into host[ADMIN_ADDR_BYTES] and *port. */
static bool split_client(const struct admin_node *x, char *host, int *port)
{
    snprintf(host, ADMIN_ADDR_BYTES, "%s", x->client);
    char *colon = strrchr(host, ':');
    char *end = NULL;
    long v = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || end == colon + 1 || *end != '\0' || v <= 0 || v > 65535)
        return false;
    *colon = '\0';
    *port = (int)v;
    return true;
}

/* Asks one node CLUSTER.INFO on its client address. */
static void probe_node(struct admin_node *x, int timeout_ms)
{
    char host[ADMIN_ADDR_BYTES];
    int port;
    if (!split_client(x, host, &port)) {
        snprintf(x->error, sizeof x->error, "no client address in '%.60s'", x->m.addr);
        return;
    }
    struct rc_conn c;
    int rc = rc_open(&c, host, port);
    if (rc != 0) {
        snprintf(x->error, sizeof x->error, "connect: %s", strerror(errno));
        return;
    }
    const char *argv[] = {"CLUSTER.INFO"};
    rc_command(&c, 1, argv);
    rc = rc_wait(&c, timeout_ms);
    char text[2048];
    if (rc != 0) {
        snprintf(x->error, sizeof x->error, "CLUSTER.INFO: %s", sm_strerror(rc));
    } else if (!rc_text(&c, text, sizeof text)) {
        snprintf(x->error, sizeof x->error, "CLUSTER.INFO: not a text reply");
    } else {
        char rev[32] = "";
        x->reachable = true;
        if (!info_field(text, "cluster_state", x->state, sizeof x->state))
            snprintf(x->state, sizeof x->state, "?");
        if (!info_field(text, "replication", x->replication, sizeof x->replication))
            snprintf(x->replication, sizeof x->replication, "?");
        x->revision = info_field(text, "revision", rev, sizeof rev) ? strtoll(rev, NULL, 10) : -1;
    }
    rc_close(&c);
}

/* Asks a reachable node CLUSTER.STATE for every partition it replicates: its last index. */
static void probe_states(struct admin_status *st, const struct admin_node *x, int timeout_ms)
{
    char host[ADMIN_ADDR_BYTES];
    int port;
    if (!st->replicas || !st->last || !x->reachable || !split_client(x, host, &port))
        return;
    long id = strtol(x->m.id, NULL, 10);
    struct rc_conn c;
    if (rc_open(&c, host, port) != 0)
        return;
    uint32_t r = st->meta.replicas;
    for (uint32_t p = 0; p < st->meta.partitions; p++) {
        for (uint32_t k = 0; k < r; k++) {
            if (st->replicas[(size_t)p * r + k] != (uint32_t)id)
                continue;
            char num[16];
            snprintf(num, sizeof num, "%" PRIu32, p);
            const char *argv[] = {"CLUSTER.STATE", num};
            rc_command(&c, 2, argv);
            char text[256];
            unsigned long long last = 0;
            const char *at = NULL;
            if (rc_wait(&c, timeout_ms) == 0 && rc_text(&c, text, sizeof text) &&
                (at = strstr(text, " last=")) != NULL && sscanf(at, " last=%llu", &last) == 1)
                st->last[(size_t)p * r + k] = (int64_t)last;
        }
    }
    rc_close(&c);
}

/* Partition p's lag (see the file comment), or -1 for n/a. */
static int64_t part_lag(const struct admin_status *st, uint32_t p)
{
    if (!st->part_known[p] || !st->replicas || !st->last)
        return -1;
    uint32_t r = st->meta.replicas;
    long primary = strtol(st->parts[p].primary, NULL, 10);
    int64_t plast = -1, lag = -1;
    for (uint32_t k = 0; k < r; k++)
        if (st->replicas[(size_t)p * r + k] == (uint32_t)primary)
            plast = st->last[(size_t)p * r + k];
    if (plast < 0)
        return -1;
    for (uint32_t k = 0; k < r; k++) {
        int64_t l = st->last[(size_t)p * r + k];
        if (st->replicas[(size_t)p * r + k] != (uint32_t)primary && l >= 0 &&
            plast - (l < plast ? l : plast) > lag)
            lag = plast - (l < plast ? l : plast);
    }
    return lag;
}

static const struct admin_node *find_node(const struct admin_status *st, const char *id)
{
    for (size_t i = 0; i < st->nodes_count; i++)
        if (strcmp(st->nodes[i].m.id, id) == 0)
            return &st->nodes[i];
    return NULL;
}

struct admin_summary {
    uint32_t unconfigured;
    uint32_t no_live_primary;
    uint32_t shrunken_isr;
};

static bool part_no_live_primary(const struct admin_status *st, uint32_t p)
{
    return !st->part_known[p] || !find_node(st, st->parts[p].primary);
}

static bool part_shrunken(const struct admin_status *st, uint32_t p)
{
    return st->part_known[p] && st->parts[p].isr_count < st->meta.replicas;
}

static struct admin_summary summarize(const struct admin_status *st)
{
    struct admin_summary s = {0};
    for (uint32_t p = 0; p < st->meta.partitions; p++) {
        s.unconfigured += !st->part_known[p];
        s.no_live_primary += part_no_live_primary(st, p);
        s.shrunken_isr += part_shrunken(st, p);
    }
    return s;
}

static void print_text(const struct admin_status *st)
{
    printf("cluster %s: %" PRIu32 " partitions, %" PRIu32 " replicas, revision %" PRId64 "\n",
           st->name, st->meta.partitions, st->meta.replicas, st->revision);
    if (st->controller_known)
        printf("controller: %s\n", st->controller.id);
    else
        printf("controller: none\n");
    printf("\nnodes (%zu live):\n", st->nodes_count);
    printf("  %-6s %-8s %-21s %-21s %-5s %s\n", "id", "zone", "peer", "client", "live", "view");
    for (size_t i = 0; i < st->nodes_count; i++) {
        const struct admin_node *x = &st->nodes[i];
        char view[160];
        if (x->reachable)
            snprintf(view, sizeof view, "state=%s revision=%" PRId64 " replication=%s", x->state,
                     x->revision, x->replication);
        else
            snprintf(view, sizeof view, "unreachable (%s)", x->error);
        printf("  %-6s %-8s %-21s %-21s %-5s %s\n", x->m.id, x->m.zone[0] ? x->m.zone : "-",
               x->peer, x->client, "yes", view);
    }
    /* Nodes of the placement whose member key is gone. */
    for (size_t i = 0; i < st->placement_count; i++) {
        char id[16];
        snprintf(id, sizeof id, "%" PRIu32, st->placement[i]);
        if (!find_node(st, id))
            printf("  %-6s %-8s %-21s %-21s %-5s %s\n", id, "?", "?", "?", "no",
                   "member key gone (lease lapsed or left)");
    }
    printf("\npartitions:\n");
    printf("  %-9s %-6s %-8s %-16s %-16s %s\n", "partition", "epoch", "primary", "isr", "replicas",
           "lag");
    for (uint32_t p = 0; p < st->meta.partitions; p++) {
        if (!st->part_known[p]) {
            printf("  %-9" PRIu32 " (no config yet)  FLAG: no primary\n", p);
            continue;
        }
        const struct sm_coord_partition *x = &st->parts[p];
        char isr[128] = "", reps[128] = "";
        size_t o = 0;
        for (uint32_t k = 0; k < x->isr_count && o < sizeof isr; k++)
            o += (size_t)snprintf(isr + o, sizeof isr - o, "%s%s", k ? "," : "", x->isr[k]);
        o = 0;
        for (uint32_t k = 0; st->replicas && k < st->meta.replicas && o < sizeof reps; k++)
            o += (size_t)snprintf(reps + o, sizeof reps - o, "%s%" PRIu32, k ? "," : "",
                                  st->replicas[(size_t)p * st->meta.replicas + k]);
        char lag[24] = "n/a";
        if (part_lag(st, p) >= 0)
            snprintf(lag, sizeof lag, "%" PRId64, part_lag(st, p));
        printf("  %-9" PRIu32 " %-6" PRIu64 " %-8s %-16s %-16s %s%s%s\n", p, x->epoch, x->primary,
               isr, reps[0] ? reps : "?", lag,
               part_no_live_primary(st, p) ? "  FLAG: primary not live" : "",
               part_shrunken(st, p) ? "  FLAG: ISR shrunk" : "");
    }
    struct admin_summary s = summarize(st);
    printf("\nsummary: %zu live nodes, %" PRIu32 " partitions, %" PRIu32
           " without a live primary, %" PRIu32 " with a shrunken ISR, %" PRIu32
           " without a config\n",
           st->nodes_count, st->meta.partitions, s.no_live_primary, s.shrunken_isr, s.unconfigured);
}

static int print_json(const struct admin_status *st)
{
    json_t *o = json_object();
    json_t *nodes = json_array(), *parts = json_array(), *gone = json_array();
    struct admin_summary s = summarize(st);
    json_object_set_new(o, "cluster", json_string(st->name));
    json_object_set_new(o, "partitions", json_integer(st->meta.partitions));
    json_object_set_new(o, "replicas", json_integer(st->meta.replicas));
    json_object_set_new(o, "revision", json_integer(st->revision));
    json_object_set_new(o, "controller",
                        st->controller_known ? json_string(st->controller.id) : json_null());
    for (size_t i = 0; i < st->nodes_count; i++) {
        const struct admin_node *x = &st->nodes[i];
        json_t *n =
            json_pack("{s:s, s:s, s:s, s:s, s:b, s:b}", "id", x->m.id, "zone", x->m.zone, "peer",
                      x->peer, "client", x->client, "live", 1, "reachable", x->reachable);
        if (x->reachable) {
            json_object_set_new(n, "state", json_string(x->state));
            json_object_set_new(n, "node_revision", json_integer(x->revision));
            json_object_set_new(n, "replication", json_string(x->replication));
        } else {
            json_object_set_new(n, "error", json_string(x->error));
        }
        json_array_append_new(nodes, n);
    }
    for (size_t i = 0; i < st->placement_count; i++) {
        char id[16];
        snprintf(id, sizeof id, "%" PRIu32, st->placement[i]);
        if (!find_node(st, id))
            json_array_append_new(gone, json_pack("{s:s, s:b}", "id", id, "live", 0));
    }
    json_array_extend(nodes, gone);
    json_decref(gone);
    for (uint32_t p = 0; p < st->meta.partitions; p++) {
        json_t *x = json_object();
        json_object_set_new(x, "partition", json_integer(p));
        if (st->part_known[p]) {
            const struct sm_coord_partition *c = &st->parts[p];
            json_t *isr = json_array();
            for (uint32_t k = 0; k < c->isr_count; k++)
                json_array_append_new(isr, json_string(c->isr[k]));
            json_object_set_new(x, "epoch", json_integer((json_int_t)c->epoch));
            json_object_set_new(x, "primary", json_string(c->primary));
            json_object_set_new(x, "isr", isr);
        }
        json_t *reps = json_array();
        for (uint32_t k = 0; st->replicas && k < st->meta.replicas; k++) {
            char id[16];
            snprintf(id, sizeof id, "%" PRIu32, st->replicas[(size_t)p * st->meta.replicas + k]);
            json_array_append_new(reps, json_string(id));
        }
        json_object_set_new(x, "replicas", reps);
        json_object_set_new(x, "primary_live", json_boolean(!part_no_live_primary(st, p)));
        json_object_set_new(x, "isr_shrunk", json_boolean(part_shrunken(st, p)));
        int64_t lag = part_lag(st, p);
        json_object_set_new(x, "lag", lag >= 0 ? json_integer(lag) : json_null());
        json_array_append_new(parts, x);
    }
    json_object_set_new(o, "nodes", nodes);
    json_object_set_new(o, "partition_configs", parts);
    json_object_set_new(o, "summary",
                        json_pack("{s:i, s:i, s:i, s:i}", "live_nodes", (int)st->nodes_count,
                                  "no_live_primary", (int)s.no_live_primary, "shrunken_isr",
                                  (int)s.shrunken_isr, "unconfigured", (int)s.unconfigured));
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text) {
        fprintf(stderr, "shardmart admin: out of memory\n");
        return 1;
    }
    puts(text);
    free(text);
    return 0;
}

static int usage_error(const char *why)
{
    fprintf(stderr, "shardmart admin: %s (see 'shardmart admin --help')\n", why);
    return 2;
}

static int admin_status(int argc, char **argv)
{
    const char *spec = NULL, *name = "shardmart";
    bool json = false;
    long timeout_ms = ADMIN_TIMEOUT_MS_DEFAULT;
    for (int i = 0; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--json") == 0) {
            json = true;
            continue;
        }
        bool known = strcmp(f, "--cluster") == 0 || strcmp(f, "--cluster-name") == 0 ||
                     strcmp(f, "--timeout-ms") == 0;
        if (!known) {
            char why[160];
            snprintf(why, sizeof why, "unknown flag '%.100s'", f);
            return usage_error(why);
        }
        if (i + 1 >= argc) {
            char why[160];
            snprintf(why, sizeof why, "%s needs a value", f);
            return usage_error(why);
        }
        const char *v = argv[++i];
        if (strcmp(f, "--cluster") == 0) {
            spec = v;
        } else if (strcmp(f, "--cluster-name") == 0) {
            name = v;
        } else {
            char *end = NULL;
            errno = 0;
            timeout_ms = strtol(v, &end, 10);
            if (errno || end == v || *end || timeout_ms < ADMIN_TIMEOUT_MS_MIN ||
                timeout_ms > ADMIN_TIMEOUT_MS_MAX)
                return usage_error("--timeout-ms must be 100..60000");
        }
    }
    if (!spec)
        return usage_error("--cluster etcd://host:port[,host:port...] is required");

    static char buf[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX];
    struct sm_coord_etcd_config cfg = {0};
    int rc = sm_coord_etcd_parse_endpoints(spec, &cfg, buf);
    if (rc != 0) {
        char why[200];
        snprintf(why, sizeof why, "bad --cluster '%.120s': %s", spec, sm_strerror(rc));
        return usage_error(why);
    }
    cfg.request_timeout_ms = timeout_ms;
    cfg.connect_timeout_ms = timeout_ms / 2;
    struct sm_coord *c = NULL;
    rc = sm_coord_etcd_open(&cfg, &c);
    if (rc != 0) {
        fprintf(stderr, "shardmart admin: cannot start the etcd client: %s\n", sm_strerror(rc));
        return 1;
    }
    struct admin_status st = {.name = name};
    int exit_code = load_directory(c, &st, spec, timeout_ms);
    sm_coord_close(c);
    if (exit_code == 0) {
        for (size_t i = 0; i < st.nodes_count; i++)
            probe_node(&st.nodes[i], (int)timeout_ms);
        if (st.replicas) {
            size_t cells = (size_t)st.meta.partitions * st.meta.replicas;
            st.last = malloc(cells * sizeof *st.last);
            for (size_t i = 0; st.last && i < cells; i++)
                st.last[i] = -1;
        }
        for (size_t i = 0; i < st.nodes_count; i++)
            probe_states(&st, &st.nodes[i], (int)timeout_ms);
        if (json)
            exit_code = print_json(&st);
        else
            print_text(&st);
    }
    free(st.nodes);
    free(st.replicas);
    free(st.parts);
    free(st.part_known);
    free(st.last);
    return exit_code;
}

int cli_admin(int argc, char **argv)
{
    if (argc < 1)
        return usage_error("a subcommand is needed: status");
    if (strcmp(argv[0], "status") == 0)
        return admin_status(argc - 1, argv + 1);
    char why[160];
    snprintf(why, sizeof why, "unknown subcommand '%.100s'", argv[0]);
    return usage_error(why);
}
