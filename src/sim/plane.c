/*
 * The simulator's control plane: the embedded backend of src/coord/ (one shared store) and the
 * typed directory over it, used by every simulated node the way a real node uses etcd. Each node
 * incarnation has its own client in manual mode, so the scheduler decides when each request
 * reaches the store, which requests and answers are lost, and when results come back:
 *
 *   node --submit--> client (pending) --SIM_EV_COORD_APPLY, 1-3 ms, in order--> store
 *        <--SIM_EV_COORD_RESULT, 1-6 ms, in order (inbox)-- client results <--'
 *        <--SIM_EV_COORD_TIMEOUT, COORD_TIMEOUT_MS-- a lost request or answer (SM_E_TIMEOUT)
 *
 * - A node's session (sm_coord_session) keeps its lease, renewed at TTL/3 of its own clock; its
 *   member key lives under that lease. Leases expire in the store by sm_coord_embedded_tick on
 *   simulated time: a node down, or cut from the plane, for longer than the TTL is no member.
 * - A node reads the whole directory once per incarnation (sm_coord_dir_load), takes no peer
 *   message before that, then follows it with a watch from the load's revision + 1.
 * - Partition configs change only by sm_coord_dir_partition_cas on the mod_revision the node
 *   last saw; the controller is elected with sm_coord_dir_campaign under the node's lease.
 * - A node cut from the plane: its requests are lost (TIMEOUT), answers on their way are lost,
 *   and its watch stream stalls; when the cut heals the stream resumes after the last event it
 *   delivered, as the etcd backend resumes a broken watch (docs/coord.md), so the node sees
 *   every change once, in order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/error.h"

#define CLUSTER_NAME     "sim"
#define APPLY_DELAY_MAX  3
#define RESULT_DELAY_MAX 6
#define COORD_TIMEOUT_MS 50 /* the client's request timeout, scaled to the 150 ms lease */
#define NODE_ADDR_PORT   7379

/* ---- configs <-> directory records --------------------------------------------------------- */

static void config_to_record(const struct sim_world *w, const struct cluster_config *c,
                             uint32_t part, struct sm_coord_partition *out)
{
    memset(out, 0, sizeof *out);
    out->partition = part;
    out->epoch = c->epoch;
    ASSERT(c->primary < w->nodes_count && c->isr_count <= SM_REPLICAS_MAX);
    snprintf(out->primary, sizeof out->primary, "n%u", c->primary);
    out->isr_count = c->isr_count;
    for (uint32_t i = 0; i < c->isr_count; i++)
        snprintf(out->isr[i], sizeof out->isr[i], "n%u", c->isr[i]);
}

/* The node number of a member id "n<k>"; -1 for a name that is none of ours. */
static int32_t node_of(const struct sim_world *w, const char *name)
{
    if (name[0] != 'n' || name[1] < '0' || name[1] > '9' || name[2] != '\0')
        return -1;
    uint32_t k = (uint32_t)(name[1] - '0');
    return k < w->nodes_count ? (int32_t)k : -1;
}

/* A directory record as the cluster layer's config; false (and a failure) for one the simulator
 * never wrote. The replicas are the placement (fixed: no membership changes are simulated). */
static bool record_to_config(struct sim_world *w, const struct sm_coord_partition *r,
                             struct cluster_config *out)
{
    if (r->partition >= w->parts_count) {
        sim_fail(w, "the store holds a config of partition %u, which does not exist", r->partition);
        return false;
    }
    *out = w->placement[r->partition];
    out->epoch = r->epoch;
    out->revision = (uint64_t)r->mod_revision;
    int32_t primary = node_of(w, r->primary);
    out->isr_count = r->isr_count;
    bool ok = primary >= 0;
    for (uint32_t i = 0; ok && i < r->isr_count; i++) {
        int32_t k = node_of(w, r->isr[i]);
        ok = k >= 0;
        out->isr[i] = (uint32_t)k;
    }
    if (!ok) {
        sim_fail(w, "p%u: the store's config names a node that does not exist", r->partition);
        return false;
    }
    out->primary = (uint32_t)primary;
    return true;
}

/* ---- the store and its observer ------------------------------------------------------------ */

/* Takes the observer's result (automatic mode: it is there at once). */
static struct sm_coord_result observer_done(struct sim_world *w, uint64_t id)
{
    struct sm_coord_result r;
    int got = sm_coord_poll(w->observer, &r);
    ASSERT(got == 1 && r.kind == SM_COORD_DONE && r.id == id);
    return r;
}

/* The initial configs: partition p led by node p mod N, replicated on R = min(3, N) nodes,
 * written by CAS on an absent key, as a cluster's first node would. */
int sim_plane_init(struct sim_world *w)
{
    w->store = sm_coord_store_new();
    if (!w->store || sm_coord_embedded_open(w->store, &w->observer) != 0)
        return SM_E_NOMEM;
    int rc = sm_coord_dir_init(&w->observer_dir, w->observer, CLUSTER_NAME);
    ASSERT(rc == 0);
    uint32_t replicas = w->nodes_count < 3 ? w->nodes_count : 3;
    struct sm_coord_meta meta = {.partitions = w->parts_count, .replicas = replicas};
    uint64_t id;
    if (sm_coord_dir_create_meta(&w->observer_dir, &meta, &id) != 0)
        return SM_E_NOMEM;
    struct sm_coord_result r = observer_done(w, id);
    ASSERT(r.err == 0 && r.succeeded);
    sm_coord_result_free(&r);
    for (uint32_t p = 0; p < w->parts_count; p++) {
        struct cluster_config *c = &w->placement[p];
        memset(c, 0, sizeof *c);
        c->epoch = 1;
        c->primary = p % w->nodes_count;
        c->replicas_count = c->isr_count = replicas;
        for (uint32_t i = 0; i < replicas; i++)
            c->replicas[i] = c->isr[i] = (p + i) % w->nodes_count;
        struct sm_coord_partition rec;
        config_to_record(w, c, p, &rec);
        if (sm_coord_dir_partition_cas(&w->observer_dir, &rec, 0, &id) != 0)
            return SM_E_NOMEM;
        r = observer_done(w, id);
        ASSERT(r.err == 0 && r.succeeded);
        w->configs[p] = *c;
        w->configs[p].revision = (uint64_t)r.revision;
        sm_coord_result_free(&r);
    }
    if (sm_coord_dir_watch(&w->observer_dir, 0, &w->observer_watch) != 0)
        return SM_E_NOMEM;
    r = observer_done(w, w->observer_watch);
    ASSERT(r.err == 0);
    sm_coord_result_free(&r);
    return 0;
}

void sim_plane_free(struct sim_world *w)
{
    if (w->observer)
        sm_coord_close(w->observer);
    w->observer = NULL;
    sm_coord_store_free(w->store);
    w->store = NULL;
}

/* The observer follows every change: configs[] for routing and the checker, and the trace. */
static void observer_event(struct sim_world *w, const struct sm_coord_event *e)
{
    struct sm_coord_entry en;
    bool deleted = e->type == SM_COORD_EVENT_DELETE;
    if (sm_coord_dir_decode(&w->observer_dir, &e->kv, deleted, &en) != 0) {
        sim_fail(w, "the store holds a value the simulator cannot read: %s", e->kv.key);
        return;
    }
    if (en.kind == SM_COORD_ENTRY_PARTITION && !deleted) {
        struct cluster_config c;
        if (!record_to_config(w, &en.partition, &c))
            return;
        w->configs[en.partition.partition] = c;
        sim_trace(w, "plane: p%u epoch %llu primary n%u isr %u rev %llu", en.partition.partition,
                  (unsigned long long)c.epoch, c.primary, c.isr_count,
                  (unsigned long long)c.revision);
    } else if (en.kind == SM_COORD_ENTRY_MEMBER) {
        sim_trace(w, "plane: member %s %s", en.member.id, deleted ? "gone" : "joined");
    } else if (en.kind == SM_COORD_ENTRY_CONTROLLER) {
        sim_trace(w, "plane: controller %s", deleted ? "gone" : en.controller.id);
    }
}

static void observer_pump(struct sim_world *w)
{
    struct sm_coord_result r;
    while (sm_coord_poll(w->observer, &r) == 1) {
        if (r.kind != SM_COORD_WATCH_EVENTS || r.id != w->observer_watch || r.err != 0)
            sim_fail(w, "the observer's watch ended: %s", r.message);
        for (size_t i = 0; i < r.events_count && !w->violated; i++)
            observer_event(w, &r.events[i]);
        sm_coord_result_free(&r);
    }
}

void sim_plane_time(struct sim_world *w)
{
    sm_coord_embedded_tick(w->store, w->now);
}

/* A submit the store refused: BUSY (too much waiting) is retried at a later tick; anything else
 * is a request the simulator built wrong. */
static void submitted(struct sim_world *w, const struct sim_node *n, int rc, const char *what)
{
    if (rc == 0)
        return;
    if (rc == SM_E_BUSY)
        sim_trace(w, "n%u: %s: %s", n->id, what, sm_strerror(rc));
    else
        sim_fail(w, "n%u: %s refused: %s", n->id, what, sm_strerror(rc));
}

/* ---- a node's client ----------------------------------------------------------------------- */

static void inbox_clear(struct sim_node *n)
{
    for (uint32_t i = 0; i < n->inbox_count; i++)
        sm_coord_result_free(&n->inbox[(n->inbox_head + i) % n->inbox_cap].r);
    n->inbox_head = n->inbox_count = 0;
}

int sim_plane_node_open(struct sim_world *w, struct sim_node *n)
{
    sim_plane_node_close(w, n);
    int rc = sm_coord_embedded_open(w->store, &n->coord);
    if (rc != 0)
        return rc;
    sm_coord_embedded_set_manual(n->coord, true);
    rc = sm_coord_dir_init(&n->dir, n->coord, CLUSTER_NAME);
    ASSERT(rc == 0);
    sm_coord_session_init(&n->session, n->coord, w->lease_ttl_ms);
    n->joined_lease = n->join_lease = 0;
    n->join_id = n->load_id = n->watch_id = n->campaign_id = 0;
    n->need_load = false;
    n->stalled = false;
    n->revision = 0;
    n->next_campaign_ms = w->now;
    n->applies_scheduled = 0;
    n->apply_at = n->result_at = w->now;
    n->cas_count = 0;
    n->controller = -1;
    n->controller_lease = 0;
    n->is_controller = false;
    memset(n->live, 0, sizeof n->live);
    return 0;
}

void sim_plane_node_close(struct sim_world *w, struct sim_node *n)
{
    (void)w;
    if (n->coord)
        sm_coord_close(n->coord); /* its lease stays in the store until it expires */
    n->coord = NULL;
    inbox_clear(n);
}

static void set_controller_role(struct sim_node *n)
{
    bool was = n->is_controller;
    n->is_controller = n->controller == (int32_t)n->id && n->session.lease != 0 &&
                       n->controller_lease == n->session.lease &&
                       n->session.state == SM_COORD_SESSION_LIVE;
    if (was && !n->is_controller)
        cluster_controller_reset(&n->ctl);
}

/* A partition's config, from a load, the watch or a CAS's answer, into the node's view (an older
 * revision than the one it holds comes late: the watch after a CAS answer). */
static void node_partition(struct sim_world *w, struct sim_node *n, uint32_t p,
                           const struct cluster_config *c)
{
    if (c->revision < n->configs[p].revision)
        return;
    n->configs[p] = *c;
    if (n->loaded)
        sim_node_config(w, n, p, c);
}

/* One directory entry from a load, the watch or a CAS's answer, into the node's view. */
static void node_entry(struct sim_world *w, struct sim_node *n, const struct sm_coord_kv *kv,
                       bool deleted)
{
    struct sm_coord_entry en;
    if (sm_coord_dir_decode(&n->dir, kv, deleted, &en) != 0) {
        sim_fail(w, "n%u cannot read %s from the store", n->id, kv->key);
        return;
    }
    switch (en.kind) {
    case SM_COORD_ENTRY_MEMBER: {
        int32_t k = node_of(w, en.member.id);
        if (k >= 0)
            n->live[k] = !deleted;
        return;
    }
    case SM_COORD_ENTRY_PARTITION: {
        struct cluster_config c;
        if (!deleted && record_to_config(w, &en.partition, &c))
            node_partition(w, n, en.partition.partition, &c);
        return;
    }
    case SM_COORD_ENTRY_CONTROLLER:
        n->controller = deleted ? -1 : node_of(w, en.controller.id);
        n->controller_lease = deleted ? 0 : en.controller.lease;
        return;
    case SM_COORD_ENTRY_META:
    case SM_COORD_ENTRY_OTHER:
        return;
    }
}

static void node_loaded(struct sim_world *w, struct sim_node *n, const struct sm_coord_result *r)
{
    memset(n->live, 0, sizeof n->live);
    n->controller = -1;
    n->controller_lease = 0;
    bool was = n->loaded;
    n->loaded = false; /* configs are applied below, all at once */
    for (size_t i = 0; i < r->kvs_count && !w->violated; i++)
        node_entry(w, n, &r->kvs[i], false);
    n->loaded = true;
    n->need_load = false;
    n->revision = r->revision;
    sim_trace(w, "n%u loaded the directory at revision %lld%s", n->id, (long long)r->revision,
              was ? " again" : "");
    for (uint32_t p = 0; p < w->parts_count; p++)
        if (n->configs[p].epoch != 0)
            sim_node_config(w, n, p, &n->configs[p]);
    set_controller_role(n);
    n->watch_id = 0; /* the tick watches from this revision on */
}

static void node_watch_events(struct sim_world *w, struct sim_node *n,
                              const struct sm_coord_result *r)
{
    if (r->err != 0) {
        /* The watch ended. STATE: its start was compacted, read everything again; anything else:
         * watch again after the last revision seen. */
        sim_trace(w, "n%u: watch ended: %s", n->id, r->message);
        n->watch_id = 0;
        n->need_load = r->err == SM_E_STATE;
        return;
    }
    for (size_t i = 0; i < r->events_count && !w->violated; i++) {
        node_entry(w, n, &r->events[i].kv, r->events[i].type == SM_COORD_EVENT_DELETE);
        n->revision = r->events[i].kv.mod_revision;
    }
    set_controller_role(n);
}

static void node_cas_result(struct sim_world *w, struct sim_node *n, uint32_t i,
                            const struct sm_coord_result *r)
{
    struct sim_cas c = n->cas[i];
    n->cas[i] = n->cas[--n->cas_count];
    if (r->err != 0) {
        /* Lost on the way or unanswered: it may have applied. The watch tells; the part's own
         * timer asks again if nothing changes. */
        sim_trace(w, "n%u: CAS of p%u: %s", n->id, c.part, r->message);
        return;
    }
    if (r->succeeded) {
        /* The answer says what the store holds now: what the CAS wrote, at its revision. */
        struct cluster_config now = c.config;
        now.revision = (uint64_t)r->revision;
        node_partition(w, n, c.part, &now);
        return;
    }
    sim_trace(w, "n%u: CAS of p%u refused (the config moved on)", n->id, c.part);
    /* The refusal carries the current config (the CAS's else-branch reads it): the node learns
     * it now, before the watch brings it. */
    for (size_t k = 0; k < r->kvs_count && !w->violated; k++)
        node_entry(w, n, &r->kvs[k], false);
    if (c.from_part)
        cluster_part_cas_failed(&n->parts[c.part], sim_node_now(n));
}

/* A result reaches the node. */
static void node_result(struct sim_world *w, struct sim_node *n, const struct sm_coord_result *r)
{
    if (sm_coord_session_on_result(&n->session, r, sim_node_now(n))) {
        set_controller_role(n);
        return;
    }
    if (r->id == 0)
        return;
    if (r->kind == SM_COORD_WATCH_EVENTS) {
        if (r->id == n->watch_id)
            node_watch_events(w, n, r);
        return; /* a watch it no longer follows */
    }
    if (r->id == n->load_id) {
        n->load_id = 0;
        if (r->err == 0)
            node_loaded(w, n, r);
    } else if (r->id == n->watch_id) {
        if (r->err != 0) {
            /* Not open, or unknown: a watch whose answer was lost may be open all the same.
             * Cancel it (its events are ignored meanwhile); the tick asks for a new one. */
            uint64_t cancel;
            if (r->err == SM_E_TIMEOUT)
                submitted(w, n, sm_coord_watch_cancel(n->coord, r->id, &cancel), "watch cancel");
            n->watch_id = 0;
        }
    } else if (r->id == n->join_id) {
        n->join_id = 0;
        if (r->err == 0 && n->join_lease == n->session.lease)
            n->joined_lease = n->join_lease;
    } else if (r->id == n->campaign_id) {
        n->campaign_id = 0; /* won or not, the watch says who holds the key */
    } else {
        for (uint32_t i = 0; i < n->cas_count; i++)
            if (n->cas[i].id == r->id) {
                node_cas_result(w, n, i, r);
                return;
            }
    }
}

void sim_plane_node_tick(struct sim_world *w, struct sim_node *n)
{
    int64_t now = sim_node_now(n);
    struct sm_coord_session *s = &n->session;
    submitted(w, n, sm_coord_session_tick(s, now), "lease"); /* retried at the next tick */
    if (s->state == SM_COORD_SESSION_LOST) {
        sim_trace(w, "n%u: lease %lld lost, rejoining", n->id, (long long)s->lease);
        w->res->leases_lost++;
        sm_coord_session_restart(s);
        n->joined_lease = 0;
        set_controller_role(n);
        submitted(w, n, sm_coord_session_tick(s, now), "lease");
    }
    if (s->state == SM_COORD_SESSION_LIVE && n->joined_lease != s->lease && n->join_id == 0) {
        struct sm_coord_member m = {.weight = 1};
        snprintf(m.id, sizeof m.id, "%s", n->name);
        snprintf(m.addr, sizeof m.addr, "%s:%d", n->name, NODE_ADDR_PORT);
        int rc = sm_coord_dir_join(&n->dir, &m, s->lease, &n->join_id);
        submitted(w, n, rc, "join");
        if (rc == 0)
            n->join_lease = s->lease;
    }
    if ((!n->loaded || n->need_load) && n->load_id == 0)
        submitted(w, n, sm_coord_dir_load(&n->dir, &n->load_id), "load");
    if (n->loaded && !n->need_load && n->load_id == 0 && n->watch_id == 0)
        submitted(w, n, sm_coord_dir_watch(&n->dir, n->revision + 1, &n->watch_id), "watch");
    if (n->loaded && n->controller < 0 && n->joined_lease != 0 && n->joined_lease == s->lease &&
        s->state == SM_COORD_SESSION_LIVE && n->campaign_id == 0 && w->now >= n->next_campaign_ms) {
        n->next_campaign_ms = w->now + w->lease_ttl_ms / 3;
        submitted(w, n, sm_coord_dir_campaign(&n->dir, n->name, s->lease, &n->campaign_id),
                  "campaign");
    }
    set_controller_role(n);
}

void sim_plane_cas(struct sim_world *w, struct sim_node *n, const struct cluster_config *c,
                   uint32_t part, bool from_part)
{
    struct sm_coord_partition rec;
    config_to_record(w, c, part, &rec);
    uint64_t id;
    int rc = sm_coord_dir_partition_cas(&n->dir, &rec, (int64_t)c->revision, &id);
    if (rc != 0) {
        sim_fail(w, "n%u: the CAS of p%u does not encode: %s", n->id, part, sm_strerror(rc));
        return;
    }
    if (n->cas_count == SIM_CAS_INFLIGHT_MAX)
        return; /* not tracked: its answer is ignored, the watch still shows its effect */
    n->cas[n->cas_count++] =
        (struct sim_cas){.id = id, .part = part, .from_part = from_part, .config = *c};
}

/* ---- transport ----------------------------------------------------------------------------- */

static void schedule_timeout(struct sim_world *w, struct sim_node *n, struct sm_coord_result *r,
                             const char *why)
{
    w->res->coord_lost++;
    enum sm_coord_req_kind req = r->req;
    uint64_t id = r->id;
    sm_coord_result_free(r); /* and zeroes it */
    r->kind = SM_COORD_DONE;
    r->req = req;
    r->id = id;
    r->err = SM_E_TIMEOUT;
    snprintf(r->message, sizeof r->message, "%s", why);
    struct sm_coord_result *copy = malloc(sizeof *copy);
    ASSERT(copy);
    *copy = *r;
    struct sim_ev ev = {.at = w->now + COORD_TIMEOUT_MS,
                        .type = SIM_EV_COORD_TIMEOUT,
                        .node = n->id,
                        .incarnation = n->incarnation,
                        .a = r->id,
                        .bytes = (uint8_t *)copy,
                        .len = sizeof *copy};
    sim_schedule(w, &ev);
}

static void inbox_push(struct sim_world *w, struct sim_node *n, struct sm_coord_result *r)
{
    if (n->inbox_count == n->inbox_cap) {
        uint32_t cap = n->inbox_cap ? n->inbox_cap * 2 : 16;
        struct sim_inbox_item *in = malloc(cap * sizeof *in);
        ASSERT(in);
        for (uint32_t i = 0; i < n->inbox_count; i++)
            in[i] = n->inbox[(n->inbox_head + i) % n->inbox_cap];
        free(n->inbox);
        n->inbox = in;
        n->inbox_cap = cap;
        n->inbox_head = 0;
    }
    int64_t due = w->now + sim_rng_range(&w->rng, 1, RESULT_DELAY_MAX);
    if (due < n->result_at)
        due = n->result_at;
    n->result_at = due;
    struct sim_inbox_item *it = &n->inbox[(n->inbox_head + n->inbox_count) % n->inbox_cap];
    it->r = *r;
    it->due_at = due;
    n->inbox_count++;
    struct sim_ev ev = {
        .at = due, .type = SIM_EV_COORD_RESULT, .node = n->id, .incarnation = n->incarnation};
    sim_schedule(w, &ev);
}

/* New requests of a node get their trip to the store; its new results start their way back. */
static void node_pump(struct sim_world *w, struct sim_node *n)
{
    size_t pending = sm_coord_embedded_pending(n->coord);
    while (n->applies_scheduled < pending) {
        int64_t at = w->now + sim_rng_range(&w->rng, 1, APPLY_DELAY_MAX);
        if (at < n->apply_at)
            at = n->apply_at;
        n->apply_at = at;
        struct sim_ev ev = {
            .at = at, .type = SIM_EV_COORD_APPLY, .node = n->id, .incarnation = n->incarnation};
        sim_schedule(w, &ev);
        n->applies_scheduled++;
    }
    struct sm_coord_result r;
    while (sm_coord_poll(n->coord, &r) == 1) {
        if (r.kind == SM_COORD_DONE && r.err == SM_E_TIMEOUT)
            schedule_timeout(w, n, &r, "the request was lost");
        else if (r.kind == SM_COORD_DONE && sim_rng_chance(&w->rng, w->coord_loss_pm))
            schedule_timeout(w, n, &r, "the answer was lost");
        else
            inbox_push(w, n, &r);
    }
}

void sim_plane_pump(struct sim_world *w)
{
    observer_pump(w);
    for (uint32_t i = 0; i < w->nodes_count; i++)
        if (w->nodes[i].up)
            node_pump(w, &w->nodes[i]);
}

void sim_plane_apply(struct sim_world *w, const struct sim_ev *ev)
{
    struct sim_node *n = &w->nodes[ev->node];
    if (!n->up || n->incarnation != ev->incarnation)
        return; /* its client is closed; what it had pending went with it */
    ASSERT(n->applies_scheduled > 0 && sm_coord_embedded_pending(n->coord) > 0);
    n->applies_scheduled--;
    if (w->cut_plane[n->id] || sim_rng_chance(&w->rng, w->coord_loss_pm)) {
        sim_trace(w, "n%u: a request to the plane was lost", n->id);
        size_t failed = sm_coord_embedded_fail(n->coord, 1, SM_E_TIMEOUT);
        ASSERT(failed == 1);
        return;
    }
    size_t applied = sm_coord_embedded_apply(n->coord, 1);
    ASSERT(applied == 1);
}

void sim_plane_deliver(struct sim_world *w, const struct sim_ev *ev)
{
    struct sim_node *n = &w->nodes[ev->node];
    if (!n->up || n->incarnation != ev->incarnation)
        return;
    while (n->inbox_count > 0 && !w->violated) {
        struct sim_inbox_item *it = &n->inbox[n->inbox_head];
        if (it->due_at > w->now)
            return;
        bool cut = w->cut_plane[n->id];
        if (cut && it->r.kind == SM_COORD_WATCH_EVENTS) {
            if (!n->stalled)
                w->res->watch_stalls++;
            n->stalled = true;
            return; /* the stream stalls here; sim_plane_heal resumes it */
        }
        n->stalled = false;
        struct sm_coord_result r = it->r;
        n->inbox_head = (n->inbox_head + 1) % n->inbox_cap;
        n->inbox_count--;
        if (cut) {
            schedule_timeout(w, n, &r, "the answer was lost in a cut");
            continue;
        }
        node_result(w, n, &r);
        sm_coord_result_free(&r);
    }
}

void sim_plane_timeout(struct sim_world *w, const struct sim_ev *ev)
{
    struct sim_node *n = &w->nodes[ev->node];
    if (!n->up || n->incarnation != ev->incarnation)
        return;
    node_result(w, n, (const struct sm_coord_result *)ev->bytes);
}

void sim_plane_heal(struct sim_world *w)
{
    for (uint32_t i = 0; i < w->nodes_count; i++) {
        struct sim_node *n = &w->nodes[i];
        if (!n->up || n->inbox_count == 0)
            continue;
        struct sim_ev ev = {.at = w->now + sim_rng_range(&w->rng, 1, RESULT_DELAY_MAX),
                            .type = SIM_EV_COORD_RESULT,
                            .node = n->id,
                            .incarnation = n->incarnation};
        sim_schedule(w, &ev);
    }
}
