/*
 * The simulator's scheduler and world: events in a heap ordered by (time, sequence), nodes that
 * run src/cluster/ per partition over simulated disks, a network that loses, duplicates, delays
 * and reorders, cuts of any shape, crashes and restarts, and clock skew. The control plane is the
 * embedded backend of src/coord/, each node a client of it (plane.c).
 * docs/sim.md lists the faults and how to reproduce a seed.
 */
#include "sim/sim_internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define TICK_MS          5
#define CLIENT_DELAY_MAX 4
#define FSYNC_MS_MIN     1
#define FSYNC_MS_MAX     4
#define QUIET_CAP_MS     12000

/* ---- PRNG ---------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t sim_rng_below(struct sim_rng *r, uint64_t n)
{
    ASSERT(n >= 1);
    return sim_rng_next(r) % n; /* the bias (< n / 2^64) does not matter for fault schedules */
}

int64_t sim_rng_range(struct sim_rng *r, int64_t lo, int64_t hi)
{
    ASSERT(hi >= lo);
    return lo + (int64_t)sim_rng_below(r, (uint64_t)(hi - lo) + 1);
}

bool sim_rng_chance(struct sim_rng *r, uint32_t per_mille)
{
    return sim_rng_below(r, 1000) < per_mille;
}

/* ---- events -------------------------------------------------------------------------------- */

static bool ev_before(const struct sim_ev *a, const struct sim_ev *b)
{
    return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

void sim_schedule(struct sim_world *w, const struct sim_ev *ev)
{
    if (w->heap_count == w->heap_cap) {
        uint32_t cap = w->heap_cap ? w->heap_cap * 2 : 1024;
        struct sim_ev *h = realloc(w->heap, cap * sizeof *h);
        ASSERT(h); /* the simulator is a test tool: running out of memory ends it */
        w->heap = h;
        w->heap_cap = cap;
    }
    uint32_t i = w->heap_count++;
    w->heap[i] = *ev;
    w->heap[i].seq = ++w->seq;
    ASSERT(ev->at >= w->now);
    while (i > 0 && ev_before(&w->heap[i], &w->heap[(i - 1) / 2])) {
        struct sim_ev t = w->heap[i];
        w->heap[i] = w->heap[(i - 1) / 2];
        w->heap[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static struct sim_ev heap_pop(struct sim_world *w)
{
    ASSERT(w->heap_count > 0);
    struct sim_ev top = w->heap[0];
    w->heap[0] = w->heap[--w->heap_count];
    uint32_t i = 0;
    for (;;) {
        uint32_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < w->heap_count && ev_before(&w->heap[l], &w->heap[m]))
            m = l;
        if (r < w->heap_count && ev_before(&w->heap[r], &w->heap[m]))
            m = r;
        if (m == i)
            break;
        struct sim_ev t = w->heap[i];
        w->heap[i] = w->heap[m];
        w->heap[m] = t;
        i = m;
    }
    return top;
}

static uint8_t *dup_bytes(const void *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    ASSERT(d);
    if (n)
        memcpy(d, p, n);
    return d;
}

/* FNV-1a over bytes. Every byte hashed was written by an encoder or is a field of an event;
 * the analyzer cannot follow them through the heap. */
static uint64_t mix(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        // NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult)
        h = (h ^ p[i]) * 1099511628211ULL;
    }
    return h;
}

void sim_fail(struct sim_world *w, const char *fmt, ...)
{
    char text[400];
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (w->violated)
        return;
    w->violated = true;
    snprintf(w->res->why, sizeof w->res->why, "t=%lld ms: %s", (long long)w->now,
             len >= 0 ? text : fmt);
}

void sim_trace(struct sim_world *w, const char *fmt, ...)
{
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is just above
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (w->opt.trace)
        fprintf(w->opt.trace, "%8lld %s\n", (long long)w->now, len >= 0 ? text : fmt);
}

int64_t sim_node_now(const struct sim_node *n)
{
    int64_t t = n->w->now + n->skew_ms;
    return t > 0 ? t : 0;
}

/* ---- disks --------------------------------------------------------------------------------- */

static void disk_free_entries(struct sim_disk *d, uint32_t from)
{
    for (uint32_t i = from; i < d->count; i++)
        free((void *)d->entries[i].e.data);
    d->count = from;
}

static void disk_append(struct sim_disk *d, const struct cluster_entry *e)
{
    if (d->count == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 64;
        d->entries = realloc(d->entries, d->cap * sizeof *d->entries);
        ASSERT(d->entries);
    }
    struct sim_disk_entry *x = &d->entries[d->count++];
    x->e = *e;
    x->e.data = e->len ? dup_bytes(e->data, e->len) : NULL;
    x->wseq = ++d->wseq;
    x->synced = false;
    ASSERT(d->count == 1 || e->index == d->entries[d->count - 2].e.index + 1);
}

static void disk_truncate(struct sim_disk *d, uint64_t index)
{
    uint32_t keep = 0;
    while (keep < d->count && d->entries[keep].e.index <= index)
        keep++;
    disk_free_entries(d, keep);
}

static void disk_snapshot(struct sim_disk *d, const struct cluster_action *a)
{
    free(d->snap);
    d->snap = dup_bytes(a->bytes, a->len);
    d->snap_len = a->len;
    d->snap_index = a->index;
    d->snap_epoch = a->epoch;
    d->snap_time_ms = a->time_ms;
    uint32_t drop = 0;
    while (drop < d->count && d->entries[drop].e.index <= a->index)
        drop++;
    for (uint32_t i = 0; i < drop; i++)
        free((void *)d->entries[i].e.data);
    memmove(d->entries, d->entries + drop, (d->count - drop) * sizeof *d->entries);
    d->count -= drop;
}

/* A crash: synced entries stay; of the unsynced ones the OS may have written back a prefix, and
 * the next one may be torn (recovery's CRC check finds it and cuts the tail there). */
static void disk_crash(struct sim_world *w, struct sim_disk *d)
{
    uint32_t first = 0;
    while (first < d->count && d->entries[first].synced)
        first++;
    uint32_t kept = first + (uint32_t)sim_rng_below(&w->rng, d->count - first + 1);
    disk_free_entries(d, kept); /* a torn entry is cut by recovery: the same as losing it */
}

static void disk_free(struct sim_disk *d)
{
    disk_free_entries(d, 0);
    free(d->entries);
    free(d->snap);
    memset(d, 0, sizeof *d);
}

/* ---- nodes --------------------------------------------------------------------------------- */

static bool reachable(const struct sim_world *w, uint32_t from, uint32_t to)
{
    return !w->cut[from][to];
}

static void net_send(struct sim_world *w, uint32_t from, uint32_t to, const uint8_t *bytes,
                     size_t len)
{
    if (to >= w->nodes_count || !reachable(w, from, to) || sim_rng_chance(&w->rng, w->loss_pm))
        return;
    int copies = sim_rng_chance(&w->rng, w->dup_pm) ? 2 : 1;
    for (int i = 0; i < copies; i++) {
        int64_t delay = sim_rng_range(&w->rng, 1, w->delay_max_ms);
        if (sim_rng_chance(&w->rng, w->spike_pm))
            delay += sim_rng_range(&w->rng, 10, 60); /* a late packet: reordering */
        struct sim_ev ev = {.at = w->now + delay,
                            .type = SIM_EV_DELIVER,
                            .node = to,
                            .other = from,
                            .bytes = dup_bytes(bytes, len),
                            .len = len};
        sim_schedule(w, &ev);
    }
}

static void reply_to_client(struct sim_world *w, uint32_t h, int err,
                            const struct engine_reply *reply)
{
    struct engine_reply r;
    if (reply) {
        r = *reply;
    } else {
        memset(&r, 0, sizeof r);
        r.kind = ENGINE_REPLY_ERR;
        r.err = err;
    }
    struct sim_ev ev = {.at = w->now + sim_rng_range(&w->rng, 1, CLIENT_DELAY_MAX),
                        .type = SIM_EV_CLIENT_REPLY,
                        .a = h,
                        .bytes = dup_bytes(&r, sizeof r),
                        .len = sizeof r};
    sim_schedule(w, &ev);
}

static void node_emit(void *ctx, const struct cluster_action *a)
{
    struct sim_node *n = ctx;
    struct sim_world *w = n->w;
    struct sim_disk *d = &n->disks[a->partition];
    switch (a->type) {
    case CLUSTER_ACT_SEND:
        net_send(w, n->id, a->to, a->bytes, a->len);
        return;
    case CLUSTER_ACT_PERSIST_TRUNCATE:
        disk_truncate(d, a->index);
        return;
    case CLUSTER_ACT_PERSIST_APPEND:
        disk_append(d, &a->entry);
        return;
    case CLUSTER_ACT_PERSIST_SNAPSHOT:
        disk_snapshot(d, a);
        return;
    case CLUSTER_ACT_SYNC: {
        struct sim_ev ev = {.at = w->now + sim_rng_range(&w->rng, FSYNC_MS_MIN, FSYNC_MS_MAX),
                            .type = SIM_EV_SYNC_DONE,
                            .node = n->id,
                            .part = a->partition,
                            .incarnation = n->incarnation,
                            .a = a->index,
                            .b = a->epoch,
                            .other = (uint32_t)d->wseq};
        sim_schedule(w, &ev);
        return;
    }
    case CLUSTER_ACT_REPLY:
        reply_to_client(w, (uint32_t)a->token, 0, a->reply);
        return;
    case CLUSTER_ACT_REPLY_DROPPED:
        reply_to_client(w, (uint32_t)a->token, SM_E_TRYAGAIN, NULL);
        return;
    case CLUSTER_ACT_CAS:
        sim_plane_cas(w, n, a->config, a->partition, true);
        return;
    case CLUSTER_ACT_COMMITTED:
        sim_oracle_commit(w, n->id, a->partition, &a->entry);
        return;
    }
}

static void ctl_emit(void *ctx, const struct cluster_action *a)
{
    struct sim_node *n = ctx;
    if (a->type == CLUSTER_ACT_SEND)
        net_send(n->w, n->id, a->to, a->bytes, a->len);
    else if (a->type == CLUSTER_ACT_CAS)
        sim_plane_cas(n->w, n, a->config, a->partition, false);
}

/* Starts (or restarts) a node from its disks. */
static int node_start(struct sim_world *w, struct sim_node *n, bool restarted)
{
    n->up = true;
    n->loaded = false;
    n->incarnation++;
    memset(n->configs, 0, w->parts_count * sizeof *n->configs);
    int rc = sim_plane_node_open(w, n);
    if (rc != 0)
        return rc;
    for (uint32_t p = 0; p < w->parts_count; p++) {
        struct sim_disk *d = &n->disks[p];
        struct cluster_entry *es = calloc(d->count ? d->count : 1, sizeof *es);
        ASSERT(es);
        for (uint32_t i = 0; i < d->count; i++)
            es[i] = d->entries[i].e;
        struct cluster_part_config c = w->part_cfg;
        c.partition = p;
        c.node = n->id;
        c.emit = node_emit;
        c.emit_ctx = n;
        rc = cluster_part_init(&n->parts[p], &c, d->snap, d->snap_len, d->snap_index, d->snap_epoch,
                               d->snap_time_ms, es, d->count, restarted);
        free(es);
        if (rc != 0)
            return rc;
        for (uint32_t i = 0; i < d->count; i++)
            d->entries[i].synced = true; /* what survived is on the platter now */
    }
    struct cluster_controller_config cc = {.node = n->id,
                                           .partitions = w->parts_count,
                                           .query_timeout_ms = 30,
                                           .emit = ctl_emit,
                                           .emit_ctx = n};
    rc = cluster_controller_init(&n->ctl, &cc);
    if (rc != 0)
        return rc;
    struct sim_ev tick = {.at = w->now + sim_rng_range(&w->rng, 1, TICK_MS),
                          .type = SIM_EV_TICK,
                          .node = n->id,
                          .incarnation = n->incarnation};
    sim_schedule(w, &tick);
    return 0;
}

static void node_stop(struct sim_world *w, struct sim_node *n)
{
    if (!n->up)
        return;
    n->up = false;
    for (uint32_t p = 0; p < w->parts_count; p++) {
        w->res->rebuilds += n->parts[p].stats_rebuilds;
        w->res->snapshots_sent += n->parts[p].stats_snapshots_sent;
        cluster_part_free(&n->parts[p]);
    }
    w->res->failovers += n->ctl.failovers_done;
    cluster_controller_free(&n->ctl);
    sim_plane_node_close(w, n);
}

static void node_crash(struct sim_world *w, struct sim_node *n)
{
    if (!n->up)
        return;
    sim_trace(w, "crash n%u", n->id);
    w->res->crashes++;
    node_stop(w, n);
    for (uint32_t p = 0; p < w->parts_count; p++)
        disk_crash(w, &n->disks[p]);
}

static void node_flush(struct sim_world *w, struct sim_node *n, uint32_t p)
{
    cluster_part_flush(&n->parts[p], sim_node_now(n));
    (void)w;
}

static void node_deliver(struct sim_world *w, struct sim_node *n, const struct sim_ev *ev)
{
    if (!n->up || !n->loaded)
        return;
    int rc = cluster_msg_decode(ev->bytes, ev->len, w->msg);
    if (rc != 0) {
        sim_fail(w, "n%u could not decode a message from n%u", n->id, ev->other);
        return;
    }
    const struct cluster_msg *m = w->msg;
    sim_trace(w,
              "n%u <- n%u %s p%u ep %llu prev %llu/%llu n %u commit %llu ok %d match %llu last "
              "%llu",
              n->id, ev->other, cluster_msg_type_name(m->type), m->partition,
              (unsigned long long)m->epoch, (unsigned long long)m->prev_index,
              (unsigned long long)m->prev_epoch, m->entries_count,
              (unsigned long long)m->commit_index, m->ok, (unsigned long long)m->match_index,
              (unsigned long long)m->last_index);
    if (w->msg->type == CLUSTER_MSG_LOG_END) {
        if (n->is_controller)
            cluster_controller_receive(&n->ctl, sim_node_now(n), w->msg);
        return;
    }
    if (w->msg->partition >= w->parts_count)
        return;
    cluster_part_receive(&n->parts[w->msg->partition], sim_node_now(n), w->msg);
    node_flush(w, n, w->msg->partition);
}

void sim_node_client_request(struct sim_world *w, struct sim_node *n, uint32_t h)
{
    struct sim_hist *x = &w->hist[h];
    if (!n->up || !n->loaded || w->cut_clients[n->id]) {
        if (n->up && n->loaded)
            return; /* the request was lost on the way */
        reply_to_client(w, h, SM_E_TRYAGAIN, NULL);
        return;
    }
    struct engine_cmd cmd;
    sim_hist_cmd(x, &cmd);
    struct cluster_part *p = &n->parts[x->part];
    int rc;
    if (x->kind == SIM_OP_READ) {
        rc = cluster_part_read(p, sim_node_now(n), h, &cmd);
    } else {
        struct engine_reply r;
        rc = cluster_part_propose(p, sim_node_now(n), h, &cmd, &r);
    }
    if (rc != 0)
        reply_to_client(w, h, rc, NULL);
    node_flush(w, n, x->part);
}

/* Lease upkeep, the controller's campaign and its checks, every partition's timers. */
static void node_tick(struct sim_world *w, struct sim_node *n)
{
    int64_t now = sim_node_now(n);
    sim_plane_node_tick(w, n);
    if (n->is_controller)
        for (uint32_t p = 0; p < w->parts_count; p++)
            cluster_controller_check(&n->ctl, now, p, &n->configs[p], n->live, w->nodes_count);
    for (uint32_t p = 0; p < w->parts_count; p++)
        if (n->loaded)
            cluster_part_tick(&n->parts[p], now);
    struct sim_ev tick = {
        .at = w->now + TICK_MS, .type = SIM_EV_TICK, .node = n->id, .incarnation = n->incarnation};
    sim_schedule(w, &tick);
}

void sim_node_config(struct sim_world *w, struct sim_node *n, uint32_t p,
                     const struct cluster_config *c)
{
    n->configs[p] = *c;
    cluster_part_set_config(&n->parts[p], sim_node_now(n), c);
    node_flush(w, n, p);
}

/* ---- faults -------------------------------------------------------------------------------- */

static void heal(struct sim_world *w)
{
    memset(w->cut, 0, sizeof w->cut);
    memset(w->cut_plane, 0, sizeof w->cut_plane);
    memset(w->cut_clients, 0, sizeof w->cut_clients);
    sim_plane_heal(w); /* watch streams stalled by a cut resume */
    sim_trace(w, "heal");
}

/* A cut of any shape: one side (mask) against the rest, both ways or one way, with or without
 * the control plane and the clients on the far side of it. */
static void cut(struct sim_world *w, uint64_t mask)
{
    bool one_way = sim_rng_chance(&w->rng, 200);
    bool plane = sim_rng_chance(&w->rng, 600);
    for (uint32_t a = 0; a < w->nodes_count; a++) {
        for (uint32_t b = 0; b < w->nodes_count; b++) {
            bool side_a = (mask >> a) & 1, side_b = (mask >> b) & 1;
            if (side_a && !side_b)
                w->cut[a][b] = true;
            if (!side_a && side_b && !one_way)
                w->cut[a][b] = true;
        }
        if (((mask >> a) & 1) && plane) {
            w->cut_plane[a] = true;
            w->cut_clients[a] = sim_rng_chance(&w->rng, 500);
        }
    }
    w->res->partitions_cut++;
    sim_trace(w, "cut mask=%llx one_way=%d plane=%d", (unsigned long long)mask, one_way, plane);
}

static void schedule_faults(struct sim_world *w)
{
    int64_t t = 300;
    while (t < w->opt.run_ms - 200) {
        t += sim_rng_range(&w->rng, 100, 600);
        uint64_t pick = sim_rng_below(&w->rng, 10);
        uint32_t node = (uint32_t)sim_rng_below(&w->rng, w->nodes_count);
        if (pick < 4) {
            struct sim_ev crash = {.at = t, .type = SIM_EV_CRASH, .node = node};
            struct sim_ev restart = {
                .at = t + sim_rng_range(&w->rng, 50, 900), .type = SIM_EV_RESTART, .node = node};
            sim_schedule(w, &crash);
            sim_schedule(w, &restart);
        } else if (pick < 8) {
            uint64_t mask = pick < 6
                                ? (1ULL << node)
                                : (uint64_t)sim_rng_range(&w->rng, 1, (1 << w->nodes_count) - 2);
            struct sim_ev c = {.at = t, .type = SIM_EV_CUT, .a = mask};
            struct sim_ev h = {.at = t + sim_rng_range(&w->rng, 50, 800), .type = SIM_EV_HEAL};
            sim_schedule(w, &c);
            sim_schedule(w, &h);
        }
    }
}

/* ---- the run ------------------------------------------------------------------------------- */

static bool partition_quiet(struct sim_world *w, uint32_t p)
{
    const struct cluster_config *c = &w->configs[p];
    const struct sim_node *prim = &w->nodes[c->primary];
    if (!prim->up || prim->parts[p].role != CLUSTER_ROLE_PRIMARY || prim->parts[p].pending_count)
        return false;
    uint64_t last = cluster_part_last_index(&prim->parts[p]);
    if (prim->parts[p].commit_index != last || c->isr_count != c->replicas_count)
        return false;
    for (uint32_t r = 0; r < c->replicas_count; r++) {
        uint32_t i = c->replicas[r];
        const struct cluster_part *x = &w->nodes[i].parts[p];
        if (!w->nodes[i].up || x->commit_index != last || x->applied_index != last)
            return false;
    }
    return true;
}

/* Says why a partition is not quiet, for the failure message. */
static void describe_unquiet(struct sim_world *w, char *buf, size_t cap)
{
    buf[0] = 0;
    if (!sim_clients_idle(w)) {
        for (uint32_t i = 0; i < w->clients_count; i++)
            if (w->clients[i].busy) {
                const struct sim_hist *h = &w->hist[w->clients[i].hist];
                snprintf(buf, cap, "client %u busy with %s (p%u type %u, %u attempts)", i, h->rid,
                         h->part, h->cmd_type, h->attempts);
                return;
            }
    }
    for (uint32_t p = 0; p < w->parts_count; p++) {
        if (partition_quiet(w, p) ||
            (w->configs[p].isr_count == w->configs[p].replicas_count && p + 1 < w->parts_count))
            continue;
        const struct cluster_config *c = &w->configs[p];
        const struct cluster_part *pp = &w->nodes[c->primary].parts[p];
        int n =
            snprintf(buf, cap,
                     "p%u epoch %llu primary n%u isr %u/%u (its view %u rev %llu/%llu "
                     "adding %u cas %d):",
                     p, (unsigned long long)c->epoch, c->primary, c->isr_count, c->replicas_count,
                     pp->config.isr_count, (unsigned long long)pp->config.revision,
                     (unsigned long long)c->revision, pp->isr_adding, pp->cas_inflight);
        for (uint32_t r = 0; r < c->replicas_count && n < (int)cap; r++) {
            uint32_t i = c->replicas[r];
            const struct cluster_part *x = &w->nodes[i].parts[p];
            n += snprintf(buf + n, cap - (size_t)n,
                          " n%u[up %d role %d ep %llu commit %llu applied %llu last %llu pend %u]",
                          i, w->nodes[i].up, x->role, (unsigned long long)x->epoch,
                          (unsigned long long)x->commit_index, (unsigned long long)x->applied_index,
                          (unsigned long long)cluster_part_last_index(x), x->pending_count);
        }
        return;
    }
}

static bool cluster_quiet(struct sim_world *w)
{
    if (!sim_clients_idle(w))
        return false;
    for (uint32_t p = 0; p < w->parts_count; p++)
        if (!partition_quiet(w, p))
            return false;
    return true;
}

static void end_faults(struct sim_world *w)
{
    w->faults_over = true;
    w->load_over = true;
    heal(w);
    for (uint32_t i = 0; i < w->nodes_count; i++) {
        struct sim_node *n = &w->nodes[i];
        if (!n->up && node_start(w, n, true) != 0)
            sim_fail(w, "n%u could not restart from its disk", i);
        if (n->up)
            for (uint32_t p = 0; p < w->parts_count; p++)
                cluster_part_set_tick_ms(&n->parts[p], 200);
    }
    struct sim_ev q = {.at = w->now + 100, .type = SIM_EV_CHECK_QUIET};
    sim_schedule(w, &q);
}

static bool dispatch(struct sim_world *w, const struct sim_ev *ev)
{
    ASSERT(ev->node < w->nodes_count); /* 0 for events that concern no node */
    struct sim_node *n = &w->nodes[ev->node];
    switch (ev->type) {
    case SIM_EV_TICK:
        if (n->up && n->incarnation == ev->incarnation)
            node_tick(w, n);
        break;
    case SIM_EV_DELIVER:
        node_deliver(w, n, ev);
        break;
    case SIM_EV_SYNC_DONE: {
        if (!n->up || n->incarnation != ev->incarnation)
            break;
        struct sim_disk *d = &n->disks[ev->part];
        for (uint32_t i = 0; i < d->count; i++)
            if (d->entries[i].wseq <= ev->other)
                d->entries[i].synced = true;
        cluster_part_persisted(&n->parts[ev->part], sim_node_now(n), ev->a, ev->b);
        node_flush(w, n, ev->part);
        break;
    }
    case SIM_EV_CRASH:
        if (!w->faults_over)
            node_crash(w, n);
        break;
    case SIM_EV_RESTART:
        if (!w->faults_over && !n->up && node_start(w, n, true) != 0)
            sim_fail(w, "n%u could not restart from its disk", n->id);
        break;
    case SIM_EV_CUT:
        if (!w->faults_over)
            cut(w, ev->a);
        break;
    case SIM_EV_HEAL:
        if (!w->faults_over)
            heal(w);
        break;
    case SIM_EV_COORD_APPLY:
        sim_plane_apply(w, ev);
        break;
    case SIM_EV_COORD_RESULT:
        sim_plane_deliver(w, ev);
        break;
    case SIM_EV_COORD_TIMEOUT:
        sim_plane_timeout(w, ev);
        break;
    case SIM_EV_CLIENT_WAKE:
        sim_client_wake(w, ev);
        break;
    case SIM_EV_CLIENT_REQ:
        sim_node_client_request(w, n, (uint32_t)ev->a);
        break;
    case SIM_EV_CLIENT_REPLY:
        sim_client_reply(w, ev);
        break;
    case SIM_EV_END_FAULTS:
        end_faults(w);
        break;
    case SIM_EV_CHECK_QUIET: {
        if (cluster_quiet(w))
            return false;
        if (w->now - w->opt.run_ms > QUIET_CAP_MS) {
            char why[400];
            describe_unquiet(w, why, sizeof why);
            sim_fail(w, "not quiet %d ms after healing: %s", QUIET_CAP_MS, why);
            return false;
        }
        struct sim_ev q = {.at = w->now + 10, .type = SIM_EV_CHECK_QUIET};
        sim_schedule(w, &q);
        break;
    }
    default:
        UNREACHABLE();
    }
    return true;
}

static void draw_knobs(struct sim_world *w)
{
    struct sim_rng *r = &w->rng;
    const struct sim_options *o = &w->opt;
    w->nodes_count = o->nodes ? o->nodes : (uint32_t)sim_rng_range(r, 3, 5);
    w->parts_count = o->partitions ? o->partitions : (uint32_t)sim_rng_range(r, 2, 4);
    w->clients_count = o->clients ? o->clients : (uint32_t)sim_rng_range(r, 3, 8);
    bool calm = o->no_faults;
    w->loss_pm = calm ? 0 : (uint32_t)sim_rng_range(r, 0, 50);
    w->dup_pm = calm ? 0 : (uint32_t)sim_rng_range(r, 0, 30);
    w->spike_pm = calm ? 0 : (uint32_t)sim_rng_range(r, 0, 50);
    w->delay_max_ms = sim_rng_range(r, 1, 8);
    w->lease_ttl_ms = 150;
    w->coord_loss_pm = calm ? 0 : (uint32_t)sim_rng_range(r, 0, 30);
    for (uint32_t i = 0; i < w->nodes_count; i++)
        w->nodes[i].skew_ms = calm ? 0 : sim_rng_range(r, -100, 100);
    w->part_cfg = (struct cluster_part_config){
        .engine = {.skus_max = 32,
                   .orders_max = 4096,
                   .holds_max = 16,
                   .accounts_max = 64,
                   .limit_rows_max = 1024,
                   .item_chunks_max = 1024,
                   .request_ids_max = 8192,
                   .order_retention_ms = 24LL * 3600 * 1000,
                   .hold_retention_ms = 3600000,
                   .locks = {.sessions_max = 64,
                             .locks_max = 16,
                             .holds_max = 64,
                             .waiters_max = 16,
                             .permits_max = 16,
                             .reentry_max = 16}},
        .log_entries_max = 512,
        .log_bytes_max = 512 * 1024,
        .pending_max = 1024,
        .heartbeat_ms = 20,
        .retransmit_ms = 40,
        .lag_timeout_ms = 80,
        .tick_ms = 50,
        .snapshot_every = (uint32_t)sim_rng_range(r, 40, 300),
        .unsafe_commit_alone = o->unsafe_commit_alone,
    };
}

static int world_init(struct sim_world *w, const struct sim_options *opt, struct sim_result *res)
{
    memset(res, 0, sizeof *res);
    w->opt = *opt;
    if (w->opt.run_ms == 0)
        w->opt.run_ms = 2500;
    w->res = res;
    sim_rng_seed(&w->rng, opt->seed);
    if ((opt->nodes && (opt->nodes < SIM_NODES_MIN || opt->nodes > SIM_NODES_MAX)) ||
        opt->partitions > SIM_PARTITIONS_MAX || opt->clients > SIM_CLIENTS_MAX ||
        w->opt.run_ms < 100 || w->opt.run_ms > 600000)
        return SM_E_BADARG;
    draw_knobs(w);
    w->msg = malloc(sizeof *w->msg);
    if (!w->msg)
        return SM_E_NOMEM;
    int rc = sim_plane_init(w);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < w->nodes_count; i++) {
        struct sim_node *n = &w->nodes[i];
        n->w = w;
        n->id = i;
        snprintf(n->name, sizeof n->name, "n%u", i);
        n->parts = calloc(w->parts_count, sizeof *n->parts);
        n->disks = calloc(w->parts_count, sizeof *n->disks);
        n->configs = calloc(w->parts_count, sizeof *n->configs);
        if (!n->parts || !n->disks || !n->configs)
            return SM_E_NOMEM;
        rc = node_start(w, n, false);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void world_free(struct sim_world *w)
{
    for (uint32_t i = 0; i < w->nodes_count; i++) {
        struct sim_node *n = &w->nodes[i];
        if (n->parts)
            node_stop(w, n);
        for (uint32_t p = 0; n->disks && p < w->parts_count; p++)
            disk_free(&n->disks[p]);
        free(n->parts);
        free(n->disks);
        free(n->configs);
        free(n->inbox);
    }
    sim_plane_free(w);
    for (uint32_t i = 0; i < w->heap_count; i++) {
        if (w->heap[i].type == SIM_EV_COORD_TIMEOUT)
            sm_coord_result_free((struct sm_coord_result *)w->heap[i].bytes);
        free(w->heap[i].bytes);
    }
    free(w->heap);
    free(w->hist);
    free(w->msg);
    sim_oracle_free(w);
}

static uint64_t ev_hash(uint64_t h, const struct sim_ev *ev)
{
    uint64_t f[6] = {(uint64_t)ev->at, ev->type, ev->node, ev->other, ev->a, ev->b};
    h = mix(h, f, sizeof f);
    /* message bytes are all defined; structs carried by other events have padding */
    return ev->type == SIM_EV_DELIVER ? mix(h, ev->bytes, ev->len) : h;
}

int sim_run(const struct sim_options *opt, struct sim_result *res)
{
    static struct sim_world world;
    struct sim_world *w = &world;
    memset(w, 0, sizeof *w);
    int rc = world_init(w, opt, res);
    if (rc == 0) {
        if (!w->opt.no_faults)
            schedule_faults(w);
        sim_clients_start(w);
        struct sim_ev end = {.at = w->opt.run_ms, .type = SIM_EV_END_FAULTS};
        sim_schedule(w, &end);
        w->hash = 1469598103934665603ULL;
        bool more = true;
        while (more && w->heap_count > 0 && !w->violated) {
            struct sim_ev ev = heap_pop(w);
            w->now = ev.at;
            sim_plane_time(w); /* leases expire on simulated time */
            w->hash = ev_hash(w->hash, &ev);
            res->events++;
            more = dispatch(w, &ev);
            sim_plane_pump(w);
            if (ev.type == SIM_EV_COORD_TIMEOUT)
                sm_coord_result_free((struct sm_coord_result *)ev.bytes);
            free(ev.bytes);
        }
        if (!w->violated)
            sim_check_final(w);
        res->ok = !w->violated;
        res->trace_hash = w->hash;
        res->sim_ms = w->now;
    }
    world_free(w);
    return rc;
}
