/*
 * The cluster runtime: the node's side of the control plane on the server's loop (see
 * cluster_rt.h for the sequence and the bootstrap rule, docs/cluster.md for the whole design).
 *
 * Everything here runs on the loop thread. The etcd client does its HTTP on its own worker
 * thread and signals results on an eventfd, which a uv_poll watches; a 10 ms timer drives the
 * session, campaigns and the bootstrap. Nothing here blocks.
 */
#include "server/cluster_rt.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "coord/directory.h"
#include "limits.h"
#include "server/cluster_placement.h"
#include "server/repl.h"
#include "shardmart/ring.h"
#include "util/error.h"

/* The key (under the directory's prefix) that holds the bootstrap node set. */
#define PLACEMENT_KEY "placement"
/* Bootstrap CAS requests in flight at once (the etcd client queues SM_COORD_PENDING_MAX). */
#define BOOTSTRAP_INFLIGHT_MAX 64
/* Config CAS requests of the replicated partitions in flight at once (one per partition and
 * asker at most, so two per partition). */
#define CAS_INFLIGHT_MAX (2 * SM_PARTITIONS_MAX)

/* A config CAS in flight for repl.h. */
struct rt_cas {
    uint64_t id; /* 0 = free slot */
    uint32_t partition;
    bool from_controller;
};

/* What this node knows of one member, by node id. */
struct rt_member {
    bool present; /* its key exists (it holds a live lease) */
    struct sm_coord_member m;
    char peer[SM_COORD_ADDR_BYTES_MAX + 1];   /* host:port for other nodes */
    char client[SM_COORD_ADDR_BYTES_MAX + 1]; /* host:port for clients (-MOVED) */
};

/* One partition as the control plane holds it, with the replicas of the placement. */
struct rt_partition {
    bool known;
    struct sm_coord_partition coord; /* as decoded (node ids as text) */
    struct cluster_config config;    /* the same with node ids as numbers */
    uint64_t bootstrap_id;           /* the controller's create request in flight, 0 = none */
};

struct cluster_rt {
    struct cluster_rt_config cfg;
    char name[SM_COORD_CLUSTER_NAME_BYTES_MAX + 1];
    char zone[SM_COORD_ZONE_BYTES_MAX + 1];
    char self_id[16];
    char addr[SM_COORD_ADDR_BYTES_MAX + 1];
    char endpoints[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX];

    uv_poll_t poll;
    uv_timer_t timer;
    int handles_open;
    bool poll_open;
    bool stopping;

    struct sm_coord *coord;
    struct sm_coord_dir dir;
    struct sm_coord_session session;

    /* requests in flight (0 = none) */
    uint64_t meta_id, join_id, load_id, watch_id, campaign_id, placement_id;
    bool meta_done, loaded, watching;
    int64_t joined_lease; /* the lease the member key was written under (0 = not joined) */
    int64_t revision;     /* the last store revision seen (load or watch) */
    int64_t next_campaign_ms;

    bool meta_known;
    struct sm_coord_meta meta;
    struct rt_member *members; /* SM_CLUSTER_NODES_MAX, by node id */
    uint32_t members_count;    /* present ones */
    int64_t controller;        /* node id of the controller, -1 = none */
    bool is_controller;

    bool placement_known;
    uint32_t placement_count;
    uint32_t placement_nodes[SM_CLUSTER_NODES_MAX];
    uint32_t *replicas; /* [partition * meta.replicas + r], node ids; NULL until known */

    struct rt_partition *parts; /* meta.partitions, NULL until meta is known */
    uint32_t parts_known;
    uint32_t bootstrap_inflight;
    bool fatal;
    uint64_t stats_moved, stats_crosspartition;
    bool *live;          /* SM_CLUSTER_NODES_MAX: members holding a lease (the controller's) */
    bool was_controller; /* the controller's failovers were running */
    bool ttl_warned;     /* etcd granted a longer lease than asked: said once */
    struct rt_cas *cas;  /* CAS_INFLIGHT_MAX */
    uint32_t cas_count;
    uint64_t stats_cas, stats_cas_failed;
};

/* Hands partition p's config to the replicated partitions once its replicas are known. */
static void notify_config(struct cluster_rt *rt, uint32_t p)
{
    if (rt->cfg.repl && rt->replicas && rt->parts[p].known)
        repl_set_config(rt->cfg.repl, p, &rt->parts[p].config);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wall-clock milliseconds, for log lines that operators line up across nodes. */
static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void fatal(struct cluster_rt *rt, const char *why)
{
    if (rt->fatal)
        return;
    rt->fatal = true;
    fprintf(stderr, "shardmart: cluster: %s\n", why);
    if (rt->cfg.on_fatal)
        rt->cfg.on_fatal(rt->cfg.ctx);
}

/* Parses a decimal node id (the member key and every id in configs); false for anything else. */
static bool parse_node_id(const char *s, uint32_t *out)
{
    if (!*s || strlen(s) > 5)
        return false;
    uint32_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (uint32_t)(*p - '0');
    }
    if (v >= SM_CLUSTER_NODES_MAX)
        return false;
    *out = v;
    return true;
}

/* ---- the directory's contents ------------------------------------------------------------- */

/* Computes every partition's replicas from the placement node set (a pure function, so every
 * node gets the same table). */
static void compute_replicas(struct cluster_rt *rt)
{
    if (!rt->placement_known || !rt->meta_known || rt->replicas)
        return;
    uint32_t r = rt->meta.replicas, parts = rt->meta.partitions;
    if (rt->placement_count < r) {
        fatal(rt, "the placement key lists fewer nodes than meta's replicas");
        return;
    }
    int rc = cluster_placement_replicas(rt->placement_nodes, rt->placement_count, parts, r,
                                        &rt->replicas);
    if (rc != 0) {
        fprintf(stderr, "shardmart: cluster: placement failed: %s\n", ring_strerror(rc));
        fatal(rt, "cannot compute the placement");
        return;
    }
    ASSERT(rt->replicas != NULL);
    /* A load reads keys in order: "partitions/..." comes before "placement", so configs
     * already known get their replicas now. */
    for (uint32_t p = 0; rt->parts && p < parts; p++) {
        struct cluster_config *c = &rt->parts[p].config;
        c->replicas_count = r;
        memcpy(c->replicas, &rt->replicas[(size_t)p * r], r * sizeof c->replicas[0]);
        notify_config(rt, p);
    }
}

static void set_meta(struct cluster_rt *rt, const struct sm_coord_meta *m)
{
    if (rt->meta_known)
        return; /* meta is created once and never changes */
    if (m->partitions != rt->cfg.partitions || m->replicas != rt->cfg.replicas) {
        char why[160];
        snprintf(why, sizeof why,
                 "the cluster has %" PRIu32 " partitions and %" PRIu32
                 " replicas; this node was started with --partitions %" PRIu32
                 " --replicas %" PRIu32,
                 m->partitions, m->replicas, rt->cfg.partitions, rt->cfg.replicas);
        fatal(rt, why);
        return;
    }
    rt->meta = *m;
    rt->meta_known = true;
    rt->meta_done = true;
    rt->parts = calloc(m->partitions, sizeof *rt->parts);
    if (!rt->parts) {
        fatal(rt, "out of memory for the partition table");
        return;
    }
    compute_replicas(rt);
}

/* The placement key's value: {"nodes":[ids...]} with ids sorted and distinct. */
static void set_placement(struct cluster_rt *rt, const uint8_t *value, size_t len)
{
    if (rt->placement_known)
        return;
    uint32_t count = 0;
    bool ok = cluster_placement_decode(value, len, rt->placement_nodes, &count);
    if (!ok) {
        fatal(rt, "the placement key holds no valid node list");
        return;
    }
    rt->placement_count = count;
    rt->placement_known = true;
    compute_replicas(rt);
}

static void set_partition(struct cluster_rt *rt, const struct sm_coord_partition *p)
{
    if (!rt->parts || p->partition >= rt->meta.partitions)
        return;
    struct rt_partition *x = &rt->parts[p->partition];
    if (x->known && x->coord.mod_revision >= p->mod_revision)
        return;
    struct cluster_config c = {.epoch = p->epoch, .revision = (uint64_t)p->mod_revision};
    bool ok = parse_node_id(p->primary, &c.primary);
    c.isr_count = p->isr_count;
    for (uint32_t i = 0; ok && i < p->isr_count; i++)
        ok = parse_node_id(p->isr[i], &c.isr[i]);
    if (!ok) {
        fprintf(stderr, "shardmart: cluster: partition %" PRIu32 ": a node id that is not ours\n",
                p->partition);
        return;
    }
    if (rt->replicas) {
        c.replicas_count = rt->meta.replicas;
        memcpy(c.replicas, &rt->replicas[(size_t)p->partition * rt->meta.replicas],
               rt->meta.replicas * sizeof c.replicas[0]);
    }
    if (x->known && x->config.primary != c.primary)
        fprintf(stderr,
                "shardmart: cluster: node %" PRIu32 ": partition %" PRIu32 ": primary %" PRIu32
                " at epoch %" PRIu64 " (was %" PRIu32 ") (unix_ms %" PRId64 ")\n",
                rt->cfg.node_id, p->partition, c.primary, c.epoch, x->config.primary, wall_ms());
    if (!x->known)
        rt->parts_known++;
    x->known = true;
    x->coord = *p;
    x->config = c;
    notify_config(rt, p->partition);
}

static void set_member(struct cluster_rt *rt, const struct sm_coord_member *m, bool deleted)
{
    uint32_t id;
    if (!parse_node_id(m->id, &id))
        return; /* not a node of ours: ignore */
    struct rt_member *x = &rt->members[id];
    if (deleted) {
        if (x->present) {
            rt->members_count--;
            fprintf(stderr,
                    "shardmart: cluster: node %" PRIu32 ": member %" PRIu32
                    " left (its lease lapsed or it stopped) (unix_ms %" PRId64 ")\n",
                    rt->cfg.node_id, id, wall_ms());
        }
        x->present = false;
        return;
    }
    if (!x->present)
        rt->members_count++;
    x->present = true;
    x->m = *m;
    /* addr = "<peer host:port>,<client host:port>" (cluster_rt.h) */
    const char *comma = strchr(m->addr, ',');
    size_t n = comma ? (size_t)(comma - m->addr) : strlen(m->addr);
    memcpy(x->peer, m->addr, n);
    x->peer[n] = '\0';
    snprintf(x->client, sizeof x->client, "%s", comma ? comma + 1 : "");
    if (rt->cfg.repl && !repl_set_peer(rt->cfg.repl, id, x->peer))
        fprintf(stderr, "shardmart: cluster: node %" PRIu32 ": bad peer address '%s'\n", id,
                x->peer);
}

static void set_controller(struct cluster_rt *rt, const struct sm_coord_controller *c, bool deleted)
{
    uint32_t id;
    int64_t was = rt->controller;
    rt->controller = (!deleted && parse_node_id(c->id, &id)) ? (int64_t)id : -1;
    /* A key of ours under an older lease (a previous incarnation) is not ours to act on: it
     * goes when that lease expires, and the campaign after that elects again. */
    rt->is_controller = rt->controller == (int64_t)rt->cfg.node_id &&
                        rt->session.state == SM_COORD_SESSION_LIVE && c->lease == rt->session.lease;
    if (was != rt->controller)
        fprintf(stderr, "shardmart: cluster: node %" PRIu32 ": controller is %s\n", rt->cfg.node_id,
                rt->controller < 0 ? "none" : c->id);
}

/* One key of a load, a watch event or a result. */
static void apply_kv(struct cluster_rt *rt, const struct sm_coord_kv *kv, bool deleted)
{
    size_t pl = rt->dir.prefix_len;
    if (kv->key_len == pl + strlen(PLACEMENT_KEY) && memcmp(kv->key, rt->dir.prefix, pl) == 0 &&
        strcmp(kv->key + pl, PLACEMENT_KEY) == 0) {
        if (!deleted)
            set_placement(rt, kv->value, kv->value_len);
        return;
    }
    struct sm_coord_entry e;
    if (sm_coord_dir_decode(&rt->dir, kv, deleted, &e) != 0) {
        fprintf(stderr, "shardmart: cluster: ignoring a key that does not decode: %s\n", kv->key);
        return;
    }
    switch (e.kind) {
    case SM_COORD_ENTRY_META:
        if (!deleted)
            set_meta(rt, &e.meta);
        return;
    case SM_COORD_ENTRY_MEMBER:
        set_member(rt, &e.member, deleted);
        return;
    case SM_COORD_ENTRY_PARTITION:
        if (!deleted)
            set_partition(rt, &e.partition);
        return;
    case SM_COORD_ENTRY_CONTROLLER:
        set_controller(rt, &e.controller, deleted);
        return;
    case SM_COORD_ENTRY_OTHER:
        return;
    }
}

/* ---- requests ------------------------------------------------------------------------------ */

static void submit_failed(const char *what, int rc)
{
    fprintf(stderr, "shardmart: cluster: %s not sent: %s (retried)\n", what, sm_strerror(rc));
}

static void do_join(struct cluster_rt *rt)
{
    struct sm_coord_member m = {.weight = 1};
    snprintf(m.id, sizeof m.id, "%s", rt->self_id);
    snprintf(m.addr, sizeof m.addr, "%s", rt->addr);
    snprintf(m.zone, sizeof m.zone, "%s", rt->zone);
    int rc = sm_coord_dir_join(&rt->dir, &m, rt->session.lease, &rt->join_id);
    if (rc != 0) {
        rt->join_id = 0;
        submit_failed("join", rc);
    }
}

/* The controller writes the placement key once at least `replicas` members are live. */
static void bootstrap_placement(struct cluster_rt *rt)
{
    if (rt->placement_known || rt->placement_id || rt->members_count < rt->meta.replicas)
        return;
    json_t *nodes = json_array();
    for (uint32_t i = 0; nodes && i < SM_CLUSTER_NODES_MAX; i++)
        if (rt->members[i].present)
            json_array_append_new(nodes, json_integer(i));
    json_t *o = nodes ? json_pack("{s:o}", "nodes", nodes) : NULL;
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (!text) {
        fprintf(stderr, "shardmart: cluster: out of memory for the placement\n");
        return;
    }
    char key[SM_COORD_KEY_BYTES_MAX];
    snprintf(key, sizeof key, "%s%s", rt->dir.prefix, PLACEMENT_KEY);
    struct sm_coord_cmp cmp = {
        .key = key, .target = SM_COORD_CMP_VERSION, .result = SM_COORD_EQUAL, .number = 0};
    struct sm_coord_op put = {
        .kind = SM_COORD_OP_PUT, .key = key, .value = text, .value_len = strlen(text)};
    struct sm_coord_op get = {.kind = SM_COORD_OP_RANGE, .key = key};
    int rc = sm_coord_txn(rt->coord, &cmp, 1, &put, 1, &get, 1, &rt->placement_id);
    if (rc != 0) {
        rt->placement_id = 0;
        submit_failed("placement", rc);
    } else {
        fprintf(stderr, "shardmart: cluster: bootstrap placement %s\n", text);
    }
    free(text);
}

/* The controller creates the config of every partition that has none (epoch 1, primary =
 * replica 0, ISR = every replica), a bounded number at a time. */
static void bootstrap_configs(struct cluster_rt *rt)
{
    if (!rt->replicas || rt->parts_known == rt->meta.partitions)
        return;
    for (uint32_t p = 0; p < rt->meta.partitions && rt->bootstrap_inflight < BOOTSTRAP_INFLIGHT_MAX;
         p++) {
        struct rt_partition *x = &rt->parts[p];
        if (x->known || x->bootstrap_id)
            continue;
        struct sm_coord_partition c = {.partition = p, .epoch = 1, .isr_count = rt->meta.replicas};
        const uint32_t *reps = &rt->replicas[(size_t)p * rt->meta.replicas];
        snprintf(c.primary, sizeof c.primary, "%" PRIu32, reps[0]);
        for (uint32_t i = 0; i < rt->meta.replicas; i++)
            snprintf(c.isr[i], sizeof c.isr[i], "%" PRIu32, reps[i]);
        int rc = sm_coord_dir_partition_cas(&rt->dir, &c, 0, &x->bootstrap_id);
        if (rc != 0) {
            x->bootstrap_id = 0;
            submit_failed("partition create", rc);
            return;
        }
        rt->bootstrap_inflight++;
    }
}

/* The controller's failover checks, every tick, for every partition whose config is known:
 * a partition whose primary lost its lease gets a new one (controller.h). */
static void run_failovers(struct cluster_rt *rt)
{
    if (!rt->cfg.repl)
        return;
    bool acting = rt->is_controller && cluster_rt_ready(rt);
    if (!acting) {
        if (rt->was_controller)
            repl_controller_reset(rt->cfg.repl);
        rt->was_controller = false;
        return;
    }
    rt->was_controller = true;
    for (uint32_t i = 0; i < SM_CLUSTER_NODES_MAX; i++)
        rt->live[i] = rt->members[i].present;
    for (uint32_t p = 0; p < rt->meta.partitions; p++)
        if (rt->parts[p].known)
            repl_controller_check(rt->cfg.repl, p, &rt->parts[p].config, rt->live,
                                  SM_CLUSTER_NODES_MAX);
}

static void on_tick(uv_timer_t *t)
{
    struct cluster_rt *rt = t->data;
    if (rt->fatal || rt->stopping)
        return;
    int64_t now = now_ms();
    int rc = sm_coord_session_tick(&rt->session, now);
    if (rc != 0 && rc != SM_E_BUSY)
        submit_failed("lease upkeep", rc);
    if (rt->session.state == SM_COORD_SESSION_LOST) {
        /* The member key and the controller key went with the lease: start over. */
        fprintf(stderr, "shardmart: cluster: node %" PRIu32 ": lease lost (%s); joining again\n",
                rt->cfg.node_id, sm_strerror(rt->session.last_err));
        sm_coord_session_restart(&rt->session);
        rt->joined_lease = 0;
        rt->is_controller = false;
        return;
    }
    if (!rt->meta_done && !rt->meta_id) {
        struct sm_coord_meta m = {.partitions = rt->cfg.partitions, .replicas = rt->cfg.replicas};
        rc = sm_coord_dir_create_meta(&rt->dir, &m, &rt->meta_id);
        if (rc != 0) {
            rt->meta_id = 0;
            submit_failed("meta", rc);
        }
    }
    bool live = rt->session.state == SM_COORD_SESSION_LIVE;
    /* etcd counts TTLs in whole seconds and refuses any below 1.5 x its election timeout (its
     * default of 1000 ms turns a 1 s lease into a 2 s one): failovers then take that long. */
    int64_t asked_s = (rt->cfg.lease_ms + 999) / 1000;
    if (live && !rt->ttl_warned && rt->session.granted_ttl_ms > asked_s * 1000) {
        rt->ttl_warned = true;
        fprintf(stderr,
                "shardmart: cluster: WARNING: etcd granted a %" PRId64 " ms lease for --lease-ms "
                "%" PRId64 " (its minimum is 1.5 x its --election-timeout): a dead node is noticed "
                "that late\n",
                rt->session.granted_ttl_ms, rt->cfg.lease_ms);
    }
    if (live && rt->meta_done && rt->joined_lease != rt->session.lease && !rt->join_id)
        do_join(rt);
    if (rt->meta_done && !rt->loaded && !rt->load_id) {
        rc = sm_coord_dir_load(&rt->dir, &rt->load_id);
        if (rc != 0) {
            rt->load_id = 0;
            submit_failed("load", rc);
        }
    }
    if (live && rt->loaded && rt->joined_lease == rt->session.lease && rt->controller < 0 &&
        !rt->campaign_id && now >= rt->next_campaign_ms) {
        rt->next_campaign_ms = now + rt->cfg.lease_ms / 3;
        rc = sm_coord_dir_campaign(&rt->dir, rt->self_id, rt->session.lease, &rt->campaign_id);
        if (rc != 0) {
            rt->campaign_id = 0;
            submit_failed("campaign", rc);
        }
    }
    if (rt->is_controller && rt->loaded && rt->meta_known) {
        bootstrap_placement(rt);
        bootstrap_configs(rt);
    }
    run_failovers(rt);
}

/* ---- results ------------------------------------------------------------------------------- */

static void on_load(struct cluster_rt *rt, const struct sm_coord_result *r)
{
    if (r->err != 0) {
        fprintf(stderr, "shardmart: cluster: load failed: %s (retried)\n", r->message);
        return;
    }
    for (size_t i = 0; i < r->kvs_count; i++)
        apply_kv(rt, &r->kvs[i], false);
    rt->loaded = true;
    rt->revision = r->revision;
    int rc = sm_coord_dir_watch(&rt->dir, r->revision + 1, &rt->watch_id);
    if (rc != 0) {
        rt->watch_id = 0;
        rt->loaded = false; /* load again, then watch */
        submit_failed("watch", rc);
    }
}

static void on_events(struct cluster_rt *rt, const struct sm_coord_result *r)
{
    if (r->err != 0) {
        /* The watch ended (its start was compacted, or it failed): load again and watch from
         * there. Keys deleted meanwhile are forgotten by the reload. */
        fprintf(stderr, "shardmart: cluster: watch ended: %s; loading again\n", r->message);
        rt->watch_id = 0;
        rt->watching = false;
        rt->loaded = false;
        for (uint32_t i = 0; i < SM_CLUSTER_NODES_MAX; i++)
            rt->members[i].present = false;
        rt->members_count = 0;
        rt->controller = -1;
        return;
    }
    for (size_t i = 0; i < r->events_count; i++) {
        const struct sm_coord_event *ev = &r->events[i];
        apply_kv(rt, &ev->kv, ev->type == SM_COORD_EVENT_DELETE);
        if (ev->kv.mod_revision > rt->revision)
            rt->revision = ev->kv.mod_revision;
    }
}

static bool on_bootstrap_result(struct cluster_rt *rt, const struct sm_coord_result *r)
{
    if (!rt->parts)
        return false;
    for (uint32_t p = 0; p < rt->meta.partitions; p++) {
        struct rt_partition *x = &rt->parts[p];
        if (x->bootstrap_id != r->id)
            continue;
        x->bootstrap_id = 0;
        rt->bootstrap_inflight--;
        /* Success or not, the watch brings the config that holds; an error is retried. */
        if (r->err != 0)
            fprintf(stderr, "shardmart: cluster: partition %" PRIu32 " create: %s\n", p,
                    r->message);
        return true;
    }
    return false;
}

/* The answer to a config CAS of repl.h: the new config at once (the watch brings it too, and
 * then it is not newer), or the config that won and a failed CAS. An error leaves the outcome
 * unknown: the part's own timeout asks again, the controller's next check decides again. */
static bool on_cas_result(struct cluster_rt *rt, const struct sm_coord_result *r)
{
    struct rt_cas *x = NULL;
    for (uint32_t i = 0; i < CAS_INFLIGHT_MAX && !x; i++)
        if (rt->cas[i].id == r->id)
            x = &rt->cas[i];
    if (!x || r->id == 0)
        return false;
    struct rt_cas done = *x;
    x->id = 0;
    rt->cas_count--;
    if (r->err != 0) {
        fprintf(stderr, "shardmart: cluster: partition %" PRIu32 " config change: %s\n",
                done.partition, r->message);
        return true;
    }
    for (size_t i = 0; i < r->kvs_count; i++)
        apply_kv(rt, &r->kvs[i], false);
    if (!r->succeeded) {
        rt->stats_cas_failed++;
        repl_cas_failed(rt->cfg.repl, done.partition, done.from_controller);
    }
    return true;
}

static void on_result(struct cluster_rt *rt, const struct sm_coord_result *r)
{
    int64_t now = now_ms();
    if (r->kind == SM_COORD_WATCH_EVENTS) {
        if (r->id == rt->watch_id)
            on_events(rt, r);
        return;
    }
    if (sm_coord_session_on_result(&rt->session, r, now))
        return;
    if (r->id == rt->meta_id) {
        rt->meta_id = 0;
        if (r->err != 0) {
            fprintf(stderr, "shardmart: cluster: meta: %s (retried)\n", r->message);
            return;
        }
        rt->meta_done = true;
        struct sm_coord_meta m = {.partitions = rt->cfg.partitions, .replicas = rt->cfg.replicas};
        struct sm_coord_entry e;
        if (!r->succeeded && r->kvs_count == 1 &&
            sm_coord_dir_decode(&rt->dir, &r->kvs[0], false, &e) == 0 &&
            e.kind == SM_COORD_ENTRY_META)
            m = e.meta;
        set_meta(rt, &m);
    } else if (r->id == rt->join_id) {
        rt->join_id = 0;
        if (r->err != 0)
            fprintf(stderr, "shardmart: cluster: join: %s (retried)\n", r->message);
        else
            rt->joined_lease = rt->session.lease;
    } else if (r->id == rt->load_id) {
        rt->load_id = 0;
        on_load(rt, r);
    } else if (r->id == rt->watch_id) {
        if (r->err != 0) {
            fprintf(stderr, "shardmart: cluster: watch: %s; loading again\n", r->message);
            rt->watch_id = 0;
            rt->loaded = false;
        } else {
            rt->watching = true;
        }
    } else if (r->id == rt->campaign_id) {
        rt->campaign_id = 0;
        if (r->err == 0 && r->succeeded) {
            rt->controller = rt->cfg.node_id;
            rt->is_controller = true;
            fprintf(stderr, "shardmart: cluster: node %" PRIu32 ": elected controller\n",
                    rt->cfg.node_id);
        } else if (r->err == 0) {
            for (size_t i = 0; i < r->kvs_count; i++)
                apply_kv(rt, &r->kvs[i], false);
        }
    } else if (r->id == rt->placement_id) {
        rt->placement_id = 0;
        for (size_t i = 0; r->err == 0 && i < r->kvs_count; i++)
            apply_kv(rt, &r->kvs[i], false);
    } else if (!on_cas_result(rt, r)) {
        (void)on_bootstrap_result(rt, r);
    }
}

int cluster_rt_cas(struct cluster_rt *rt, uint32_t p, const struct cluster_config *config,
                   bool from_controller)
{
    ASSERT(rt && config);
    if (rt->stopping || rt->fatal || !rt->parts || p >= rt->meta.partitions)
        return SM_E_STATE;
    if (rt->cas_count == CAS_INFLIGHT_MAX || config->isr_count < 1 ||
        config->isr_count > SM_REPLICAS_MAX)
        return SM_E_BUSY;
    struct sm_coord_partition c = {.partition = p, .epoch = config->epoch};
    snprintf(c.primary, sizeof c.primary, "%" PRIu32, config->primary);
    c.isr_count = config->isr_count;
    for (uint32_t i = 0; i < config->isr_count; i++)
        snprintf(c.isr[i], sizeof c.isr[i], "%" PRIu32, config->isr[i]);
    uint64_t id = 0;
    int rc = sm_coord_dir_partition_cas(&rt->dir, &c, (int64_t)config->revision, &id);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < CAS_INFLIGHT_MAX; i++) {
        if (rt->cas[i].id == 0) {
            rt->cas[i] =
                (struct rt_cas){.id = id, .partition = p, .from_controller = from_controller};
            rt->cas_count++;
            break;
        }
    }
    rt->stats_cas++;
    return 0;
}

static void drain(struct cluster_rt *rt)
{
    struct sm_coord_result r;
    while (!rt->stopping && sm_coord_poll(rt->coord, &r) == 1) {
        on_result(rt, &r);
        sm_coord_result_free(&r);
    }
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    drain(h->data);
}

static void on_tick_timer(uv_timer_t *t)
{
    struct cluster_rt *rt = t->data;
    drain(rt); /* results may wait without the eventfd having woken us yet */
    on_tick(t);
    drain(rt);
}

/* ---- start, stop --------------------------------------------------------------------------- */

int cluster_rt_start(struct cluster_rt **out, const struct cluster_rt_config *cfg)
{
    ASSERT(out && cfg && cfg->loop);
    *out = NULL;
    if (cfg->node_id >= SM_CLUSTER_NODES_MAX || cfg->partitions < 1 ||
        cfg->partitions > SM_PARTITIONS_MAX || cfg->replicas < 1 ||
        cfg->replicas > SM_REPLICAS_MAX || cfg->lease_ms < 1 ||
        cfg->lease_ms > SM_COORD_LEASE_TTL_MS_MAX || !cfg->advertise || !cfg->coord_spec) {
        fprintf(stderr, "shardmart: cluster: bad configuration\n");
        return SM_E_BADARG;
    }
    struct cluster_rt *rt = calloc(1, sizeof *rt);
    if (!rt)
        return SM_E_NOMEM;
    rt->members = calloc(SM_CLUSTER_NODES_MAX, sizeof *rt->members);
    rt->live = calloc(SM_CLUSTER_NODES_MAX, sizeof *rt->live);
    rt->cas = calloc(CAS_INFLIGHT_MAX, sizeof *rt->cas);
    if (!rt->members || !rt->live || !rt->cas) {
        free(rt->members);
        free(rt->live);
        free(rt->cas);
        free(rt);
        return SM_E_NOMEM;
    }
    rt->cfg = *cfg;
    rt->controller = -1;
    snprintf(rt->name, sizeof rt->name, "%s",
             cfg->cluster_name ? cfg->cluster_name : CLUSTER_RT_NAME_DEFAULT);
    snprintf(rt->zone, sizeof rt->zone, "%s", cfg->zone ? cfg->zone : "");
    snprintf(rt->self_id, sizeof rt->self_id, "%" PRIu32, cfg->node_id);
    int n = snprintf(rt->addr, sizeof rt->addr, "%s,%s:%d", cfg->advertise,
                     cfg->client_host ? cfg->client_host : "127.0.0.1", cfg->resp_port);
    rt->cfg.cluster_name = rt->name;
    rt->cfg.zone = rt->zone;
    int rc = (n > 0 && (size_t)n < sizeof rt->addr) ? 0 : SM_E_TOOLARGE;
    struct sm_coord_etcd_config ecfg = {0};
    if (rc == 0)
        rc = sm_coord_etcd_parse_endpoints(cfg->coord_spec, &ecfg, rt->endpoints);
    if (rc != 0) {
        fprintf(stderr, "shardmart: cluster: bad --cluster '%s': %s\n", cfg->coord_spec,
                sm_strerror(rc));
        goto fail;
    }
    rc = sm_coord_etcd_open(&ecfg, &rt->coord);
    if (rc == 0)
        rc = sm_coord_dir_init(&rt->dir, rt->coord, rt->name);
    if (rc != 0) {
        fprintf(stderr, "shardmart: cluster: cannot use the control plane: %s\n", sm_strerror(rc));
        goto fail;
    }
    sm_coord_session_init(&rt->session, rt->coord, cfg->lease_ms);
    uv_timer_init(cfg->loop, &rt->timer);
    rt->timer.data = rt;
    rt->handles_open++;
    uv_timer_start(&rt->timer, on_tick_timer, 0, CLUSTER_RT_TICK_MS);
    int fd = sm_coord_fd(rt->coord);
    if (fd >= 0 && uv_poll_init(cfg->loop, &rt->poll, fd) == 0) {
        rt->poll.data = rt;
        rt->handles_open++;
        rt->poll_open = true;
        uv_poll_start(&rt->poll, UV_READABLE, on_poll);
    }
    *out = rt;
    return 0;
fail:
    if (rt->coord)
        sm_coord_close(rt->coord);
    free(rt->members);
    free(rt->live);
    free(rt->cas);
    free(rt);
    return rc;
}

static void on_closed(uv_handle_t *h)
{
    struct cluster_rt *rt = h->data;
    if (--rt->handles_open > 0)
        return;
    sm_coord_close(rt->coord);
    free(rt->replicas);
    free(rt->parts);
    free(rt->members);
    free(rt->live);
    free(rt->cas);
    free(rt);
}

void cluster_rt_stop(struct cluster_rt *rt)
{
    if (!rt || rt->stopping)
        return;
    rt->stopping = true;
    uv_close((uv_handle_t *)&rt->timer, on_closed);
    if (rt->poll_open)
        uv_close((uv_handle_t *)&rt->poll, on_closed);
}

bool cluster_rt_ready(const struct cluster_rt *rt)
{
    return rt->loaded && rt->meta_known && rt->replicas && rt->parts &&
           rt->parts_known == rt->meta.partitions && rt->joined_lease != 0 &&
           rt->joined_lease == rt->session.lease;
}

/* ---- introspection ------------------------------------------------------------------------- */

static void put_ids(struct sm_wbuf *b, const uint32_t *ids, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        char t[16];
        int k = snprintf(t, sizeof t, i ? ",%" PRIu32 : "%" PRIu32, ids[i]);
        sm_wbuf_put(b, t, (size_t)k);
    }
}

static void put_fmt(struct sm_wbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put_fmt(struct sm_wbuf *b, const char *fmt, ...)
{
    char t[512];
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above
    int k = vsnprintf(t, sizeof t, fmt, ap);
    va_end(ap);
    if (k > 0)
        sm_wbuf_put(b, t, (size_t)k < sizeof t ? (size_t)k : sizeof t - 1);
}

static void render_info(const struct cluster_rt *rt, struct sm_wbuf *b)
{
    put_fmt(b, "cluster_state:%s\r\n", cluster_rt_ready(rt) ? "ok" : "loading");
    put_fmt(b, "cluster_name:%s\r\n", rt->name);
    put_fmt(b, "node_id:%" PRIu32 "\r\n", rt->cfg.node_id);
    put_fmt(b, "partitions:%" PRIu32 "\r\n", rt->meta_known ? rt->meta.partitions : 0);
    put_fmt(b, "replicas:%" PRIu32 "\r\n", rt->meta_known ? rt->meta.replicas : 0);
    put_fmt(b, "partitions_configured:%" PRIu32 "\r\n", rt->parts_known);
    put_fmt(b, "members:%" PRIu32 "\r\n", rt->members_count);
    put_fmt(b, "controller:%" PRId64 "\r\n", rt->controller);
    put_fmt(b, "is_controller:%d\r\n", rt->is_controller ? 1 : 0);
    put_fmt(b, "lease:%s\r\n", rt->session.state == SM_COORD_SESSION_LIVE ? "live" : "pending");
    put_fmt(b, "revision:%" PRId64 "\r\n", rt->revision);
    if (rt->cfg.repl) {
        struct repl_stats st;
        repl_stats(rt->cfg.repl, &st);
        put_fmt(b, "replication:on\r\n");
        put_fmt(b, "primary_partitions:%" PRIu64 "\r\n", st.primaries);
        put_fmt(b, "replica_partitions:%" PRIu64 "\r\n", st.replicas);
        put_fmt(b, "entries_committed:%" PRIu64 "\r\n", st.committed);
        put_fmt(b, "log_syncs:%" PRIu64 "\r\n", st.syncs);
        put_fmt(b, "log_segments_deleted:%" PRIu64 "\r\n", st.segments_deleted);
        put_fmt(b, "replies_committed:%" PRIu64 "\r\n", st.replies);
        put_fmt(b, "replies_dropped:%" PRIu64 "\r\n", st.dropped);
        put_fmt(b, "peer_messages_in:%" PRIu64 "\r\n", st.messages_in);
        put_fmt(b, "peer_messages_refused:%" PRIu64 "\r\n", st.messages_bad);
        put_fmt(b, "peer_sends_failed:%" PRIu64 "\r\n", st.sends_failed);
        put_fmt(b, "config_changes_asked:%" PRIu64 "\r\n", rt->stats_cas);
        put_fmt(b, "config_changes_lost_race:%" PRIu64 "\r\n", rt->stats_cas_failed);
        put_fmt(b, "failovers_started:%" PRIu64 "\r\n", st.failovers_started);
        put_fmt(b, "failovers_done:%" PRIu64 "\r\n", st.failovers_done);
    } else {
        put_fmt(b, "replication:none\r\n");
    }
    put_fmt(b, "moved_replies:%" PRIu64 "\r\n", rt->stats_moved);
    put_fmt(b, "crosspartition_replies:%" PRIu64 "\r\n", rt->stats_crosspartition);
}

static void render_nodes(const struct cluster_rt *rt, struct sm_wbuf *b)
{
    for (uint32_t i = 0; i < SM_CLUSTER_NODES_MAX; i++) {
        const struct rt_member *x = &rt->members[i];
        if (!x->present)
            continue;
        put_fmt(b, "%" PRIu32 " %s %s zone=%s%s%s\n", i, x->peer, x->client,
                x->m.zone[0] ? x->m.zone : "-", (int64_t)i == rt->controller ? " controller" : "",
                i == rt->cfg.node_id ? " myself" : "");
    }
}

static void render_partitions(const struct cluster_rt *rt, struct sm_wbuf *b)
{
    for (uint32_t p = 0; rt->parts && p < rt->meta.partitions; p++) {
        const struct rt_partition *x = &rt->parts[p];
        if (!x->known)
            continue;
        const struct cluster_config *c = &x->config;
        put_fmt(b, "%" PRIu32 " epoch=%" PRIu64 " primary=%" PRIu32 " isr=", p, c->epoch,
                c->primary);
        put_ids(b, c->isr, c->isr_count);
        put_fmt(b, " replicas=");
        put_ids(b, c->replicas, c->replicas_count);
        put_fmt(b, " revision=%" PRIu64 "\n", c->revision);
    }
}

/* ---- routing ------------------------------------------------------------------------------- */

/* Where a command's partition comes from. */
enum route_kind {
    ROUTE_KEY,     /* the key at arg */
    ROUTE_KEYS,    /* the keys at arg and arg2: both in one partition */
    ROUTE_ORDER,   /* the order id at arg ("pppp-...": its partition in hex) */
    ROUTE_PAY,     /* the order id at arg, the accounts at arg2 and arg3: one partition */
    ROUTE_SKUS,    /* the SKUs at arg, arg + 2 ...: one partition */
    ROUTE_LOCK,    /* the lock name at arg; a WAIT option after it blocks: refused */
    ROUTE_SESSION, /* sessions span every partition: refused in cluster mode */
};

/* The trading commands (docs/node.md) and where their partition comes from; commands not listed
 * (PING, INFO, HELLO ...) run on whichever node the client is connected to. */
struct route {
    const char *name;
    enum route_kind kind;
    uint8_t arg, arg2, arg3;
};

static const struct route routes[] = {
    {"STOCK.CREATE", ROUTE_KEY, 2, 0, 0},
    {"STOCK.RESTOCK", ROUTE_KEY, 2, 0, 0},
    {"STOCK.ADJUST", ROUTE_KEY, 2, 0, 0},
    {"STOCK.GET", ROUTE_KEY, 1, 0, 0},
    {"ORDER.PLACE", ROUTE_SKUS, 4, 0, 0},
    {"ORDER.PAY", ROUTE_PAY, 2, 3, 4},
    {"ORDER.PAYEXT", ROUTE_ORDER, 2, 0, 0},
    {"ORDER.CANCEL", ROUTE_ORDER, 2, 0, 0},
    {"ORDER.SHIP", ROUTE_ORDER, 2, 0, 0},
    {"ORDER.COMPLETE", ROUTE_ORDER, 2, 0, 0},
    {"ORDER.REFUND", ROUTE_ORDER, 2, 0, 0},
    {"ORDER.GET", ROUTE_ORDER, 1, 0, 0},
    {"HOLD.PREPARE", ROUTE_SKUS, 4, 0, 0},
    {"HOLD.COMMIT", ROUTE_KEY, 3, 0, 0},
    {"HOLD.ABORT", ROUTE_KEY, 3, 0, 0},
    {"HOLD.GET", ROUTE_KEY, 2, 0, 0},
    {"ACCOUNT.OPEN", ROUTE_KEY, 2, 0, 0},
    {"ACCOUNT.DEPOSIT", ROUTE_KEY, 2, 0, 0},
    {"ACCOUNT.WITHDRAW", ROUTE_KEY, 2, 0, 0},
    {"ACCOUNT.TRANSFER", ROUTE_KEYS, 2, 3, 0},
    {"ACCOUNT.GET", ROUTE_KEY, 1, 0, 0},
    {"SESSION.OPEN", ROUTE_SESSION, 0, 0, 0},
    {"SESSION.HEARTBEAT", ROUTE_SESSION, 0, 0, 0},
    {"SESSION.CLOSE", ROUTE_SESSION, 0, 0, 0},
    {"LOCK.ACQUIRE", ROUTE_LOCK, 3, 0, 0},
    {"LOCK.RELEASE", ROUTE_KEY, 3, 0, 0},
    {"LOCK.RENEW", ROUTE_KEY, 3, 0, 0},
    {"LOCK.CHECK", ROUTE_KEY, 1, 0, 0},
    {"LOCK.INFO", ROUTE_KEY, 1, 0, 0},
    {"RWLOCK.ACQUIRE", ROUTE_LOCK, 3, 0, 0},
    {"RWLOCK.RELEASE", ROUTE_KEY, 3, 0, 0},
    {"SEM.ACQUIRE", ROUTE_LOCK, 3, 0, 0},
    {"SEM.RELEASE", ROUTE_KEY, 3, 0, 0},
    {"SEM.RENEW", ROUTE_KEY, 3, 0, 0},
};

/* The partition of the key at argv[i]; false when the request has no such argument. */
static bool key_partition(const struct cluster_rt *rt, const struct resp_request *req, uint32_t i,
                          uint32_t *p)
{
    if (i >= req->argc)
        return false;
    return ring_key_partition(req->argv[i].ptr, req->argv[i].len, rt->meta.partitions, p) == 0;
}

/* The partition an order id names: its first four characters are the partition in hex
 * (node/trade.c makes ids that way); false for anything else. */
static bool order_partition(const struct cluster_rt *rt, const struct resp_request *req, uint32_t i,
                            uint32_t *p)
{
    if (i >= req->argc || req->argv[i].len < 5 || req->argv[i].ptr[4] != '-')
        return false;
    uint32_t v = 0;
    for (int k = 0; k < 4; k++) {
        uint8_t c = req->argv[i].ptr[k];
        uint32_t d = (c >= '0' && c <= '9')   ? (uint32_t)(c - '0')
                     : (c >= 'a' && c <= 'f') ? (uint32_t)(c - 'a' + 10)
                                              : 16;
        if (d == 16)
            return false;
        v = v * 16 + d;
    }
    if (v >= rt->meta.partitions)
        return false;
    *p = v;
    return true;
}

/* 1 when the request's keys all fall in one partition (*p), 0 when they span several, -1 when
 * it is malformed (the node's own checks answer it). */
static int route_partition(const struct cluster_rt *rt, const struct route *r,
                           const struct resp_request *req, uint32_t *p)
{
    uint32_t q;
    switch (r->kind) {
    case ROUTE_KEY:
    case ROUTE_LOCK:
        return key_partition(rt, req, r->arg, p) ? 1 : -1;
    case ROUTE_ORDER:
        return order_partition(rt, req, r->arg, p) ? 1 : -1;
    case ROUTE_KEYS:
        if (!key_partition(rt, req, r->arg, p) || !key_partition(rt, req, r->arg2, &q))
            return -1;
        return q == *p ? 1 : 0;
    case ROUTE_PAY:
        if (!order_partition(rt, req, r->arg, p))
            return -1;
        for (uint32_t i = r->arg2; i <= r->arg3; i++)
            if (!key_partition(rt, req, i, &q) || q != *p)
                return key_partition(rt, req, i, &q) ? 0 : -1;
        return 1;
    case ROUTE_SKUS:
        if (!key_partition(rt, req, r->arg, p))
            return -1;
        for (uint32_t i = r->arg + 2u; i < req->argc; i += 2)
            if (!key_partition(rt, req, i, &q) || q != *p)
                return 0;
        return 1;
    case ROUTE_SESSION:
        return 0;
    }
    UNREACHABLE();
}

static bool has_wait_option(const struct resp_request *req, uint32_t from)
{
    for (uint32_t i = from; i < req->argc; i++)
        if (proto_slice_eq_nocase(req->argv[i], "WAIT"))
            return true;
    return false;
}

/* An error reply was encoded (1), or did not fit (SM_E_NOMEM). */
static int answered(int rc)
{
    return rc == 0 ? 1 : rc;
}

/* Answers a trading command that this node does not execute (1); 0 when it executes it. */
static int route(struct cluster_rt *rt, const struct resp_request *req, struct resp_encoder *out)
{
    const struct route *r = NULL;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0] && !r; i++)
        if (proto_slice_eq_nocase(req->argv[0], routes[i].name))
            r = &routes[i];
    if (!r)
        return 0;
    if (!cluster_rt_ready(rt))
        return answered(
            resp_put_error(out, "CLUSTERDOWN", "the cluster's configs are not loaded yet"));
    uint32_t p = 0;
    int one = route_partition(rt, r, req, &p);
    if (one < 0)
        return 0; /* malformed: the node's checks say what is wrong */
    if (one == 0 || (r->kind == ROUTE_LOCK && has_wait_option(req, r->arg + 1u))) {
        rt->stats_crosspartition++;
        return answered(resp_put_error(
            out, "CROSSPARTITION",
            r->kind == ROUTE_SESSION ? "lock sessions span every partition: not in cluster mode yet"
            : r->kind == ROUTE_LOCK  ? "blocking lock waits are not in cluster mode yet"
                                     : "keys in several partitions: not in cluster mode yet"));
    }
    const struct cluster_config *c = &rt->parts[p].config;
    if (c->primary == rt->cfg.node_id)
        return 0;
    const struct rt_member *m = &rt->members[c->primary];
    if (!m->present || !m->client[0])
        return answered(
            resp_put_error(out, "TRYAGAIN", "the partition's primary is not a live member"));
    char msg[SM_COORD_ADDR_BYTES_MAX + 16];
    snprintf(msg, sizeof msg, "%" PRIu32 " %s", p, m->client);
    rt->stats_moved++;
    return answered(resp_put_error(out, "MOVED", msg));
}

/* CLUSTER.STATE <partition>: the partition as this node holds it (repl.h), for checking that
 * every replica agrees. */
static int partition_state(struct cluster_rt *rt, const struct resp_request *req,
                           struct resp_encoder *out)
{
    if (req->argc != 2)
        return answered(
            resp_put_error(out, "ERR", "wrong number of arguments: CLUSTER.STATE <partition>"));
    char num[16];
    size_t n = req->argv[1].len;
    uint32_t p = 0;
    bool ok = n > 0 && n < sizeof num && rt->cfg.repl && rt->meta_known;
    if (ok) {
        memcpy(num, req->argv[1].ptr, n);
        num[n] = '\0';
        char *end = NULL;
        unsigned long v = strtoul(num, &end, 10);
        ok = *end == '\0' && num[0] >= '0' && num[0] <= '9' && v < rt->meta.partitions;
        p = (uint32_t)v;
    }
    if (!ok)
        return answered(resp_put_error(out, "ERR", "no such partition here"));
    struct repl_partition_state st;
    repl_partition_state(rt->cfg.repl, p, &st);
    static const char *const roles[] = {"none", "primary", "replica"};
    char text[256];
    int k = snprintf(text, sizeof text,
                     "partition=%" PRIu32 " role=%s epoch=%" PRIu64 " last=%" PRIu64
                     " commit=%" PRIu64 " applied=%" PRIu64 " digest=%016" PRIx64,
                     p, st.role >= 0 && st.role <= 2 ? roles[st.role] : "?", st.epoch,
                     st.last_index, st.commit_index, st.applied_index, st.digest);
    return answered(resp_put_bulk(out, text, (size_t)k));
}

int cluster_rt_command(struct cluster_rt *rt, const struct resp_request *req,
                       struct resp_encoder *out)
{
    ASSERT(rt && req && out);
    if (req->argc == 0)
        return 0;
    void (*render)(const struct cluster_rt *, struct sm_wbuf *) = NULL;
    if (proto_slice_eq_nocase(req->argv[0], "CLUSTER.INFO"))
        render = render_info;
    else if (proto_slice_eq_nocase(req->argv[0], "CLUSTER.NODES"))
        render = render_nodes;
    else if (proto_slice_eq_nocase(req->argv[0], "CLUSTER.PARTITIONS"))
        render = render_partitions;
    if (proto_slice_eq_nocase(req->argv[0], "CLUSTER.STATE"))
        return partition_state(rt, req, out);
    if (!render) {
        return route(rt, req, out);
    }
    if (req->argc != 1) {
        int rc = resp_put_error(out, "ERR", "wrong number of arguments: CLUSTER.* takes none");
        return rc == 0 ? 1 : rc;
    }
    struct sm_wbuf b;
    sm_wbuf_init(&b);
    render(rt, &b);
    int rc = b.failed ? SM_E_NOMEM : resp_put_bulk(out, b.data, b.len);
    sm_wbuf_free(&b);
    return rc == 0 ? 1 : rc;
}

static json_t *ids_json(const uint32_t *ids, uint32_t n)
{
    json_t *a = json_array();
    for (uint32_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_integer(ids[i]));
    return a;
}

static char *render_json(const struct cluster_rt *rt)
{
    json_t *nodes = json_array(), *parts = json_array();
    for (uint32_t i = 0; nodes && i < SM_CLUSTER_NODES_MAX; i++) {
        const struct rt_member *x = &rt->members[i];
        if (x->present)
            json_array_append_new(nodes,
                                  json_pack("{s:I,s:s,s:s,s:s,s:b}", "id", (json_int_t)i, "peer",
                                            x->peer, "client", x->client, "zone", x->m.zone,
                                            "controller", (int64_t)i == rt->controller));
    }
    for (uint32_t p = 0; parts && rt->parts && p < rt->meta.partitions; p++) {
        const struct rt_partition *x = &rt->parts[p];
        if (!x->known)
            continue;
        const struct cluster_config *c = &x->config;
        json_array_append_new(parts, json_pack("{s:I,s:I,s:I,s:o,s:o,s:I}", "partition",
                                               (json_int_t)p, "epoch", (json_int_t)c->epoch,
                                               "primary", (json_int_t)c->primary, "isr",
                                               ids_json(c->isr, c->isr_count), "replicas",
                                               ids_json(c->replicas, c->replicas_count), "revision",
                                               (json_int_t)c->revision));
    }
    json_t *o = json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:o,s:o}", "cluster", rt->name, "ready",
                          cluster_rt_ready(rt), "node", (json_int_t)rt->cfg.node_id, "controller",
                          (json_int_t)rt->controller, "partitions",
                          (json_int_t)(rt->meta_known ? rt->meta.partitions : 0), "replicas",
                          (json_int_t)(rt->meta_known ? rt->meta.replicas : 0), "nodes", nodes,
                          "partition_configs", parts);
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

int cluster_rt_http(struct cluster_rt *rt, const struct http_request *req, struct sm_wbuf *out)
{
    ASSERT(rt && req && out);
    bool keep = req->keep_alive;
    if (strcmp(req->path, "/readyz") == 0) {
        bool ready = cluster_rt_ready(rt);
        const char *msg = ready ? "ready\n" : "not ready: cluster configs not loaded\n";
        int rc = http_response(out, ready ? 200 : 503, "text/plain", msg, strlen(msg), keep);
        return rc == 0 ? 1 : rc;
    }
    if (strncmp(req->path, "/api/", 5) == 0) {
        /* The JSON API runs commands without the RESP routing above: refuse it rather than
         * serve a partition this node does not lead. */
        static const char msg[] = "the JSON API is not routed in cluster mode yet: use RESP\n";
        int rc = http_response(out, 501, "text/plain", msg, sizeof msg - 1, keep);
        return rc == 0 ? 1 : rc;
    }
    if (strcmp(req->path, "/cluster") != 0)
        return 0;
    char *text = render_json(rt);
    if (!text)
        return SM_E_NOMEM;
    int rc = http_response(out, 200, "application/json", text, strlen(text), keep);
    free(text);
    return rc == 0 ? 1 : rc;
}
