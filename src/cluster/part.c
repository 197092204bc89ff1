/*
 * One partition's replicated log on one node (the contract and the hazards are in part.h; the
 * protocol in docs/cluster.md). This file keeps the in-memory log and the engine in step; the
 * replication roles are in the second half.
 *
 *   slots[0..count)  entries snap_index+1 .. snap_index+count (= last), payloads in bytes[]
 *   snap_data        engine_save at snap_index: the base a deposed primary rebuilds from
 *
 *   snap_index <= applied (replica: == commit) <= commit <= last     (primary: applied == last)
 *   snap_index <= commit, durable <= last; truncation never goes below commit
 */
#include "cluster/part.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/error.h"

#define NODE_NONE UINT32_MAX

/* ---- the log ------------------------------------------------------------------------------- */

static uint64_t last_index(const struct cluster_part *p)
{
    return p->snap_index + p->count;
}

uint64_t cluster_part_last_index(const struct cluster_part *p)
{
    return last_index(p);
}

/* The epoch of the entry at index: 0 for index 0, the snapshot's for snap_index, UINT64_MAX when
 * the log does not hold it (compacted away or beyond the end). */
static uint64_t epoch_at(const struct cluster_part *p, uint64_t index)
{
    if (index == p->snap_index)
        return p->snap_epoch;
    if (index < p->snap_index || index > last_index(p))
        return UINT64_MAX;
    return p->slots[index - p->snap_index - 1].epoch;
}

uint64_t cluster_part_last_epoch(const struct cluster_part *p)
{
    return epoch_at(p, last_index(p));
}

bool cluster_part_entry(const struct cluster_part *p, uint64_t index, struct cluster_entry *out)
{
    if (index <= p->snap_index || index > last_index(p))
        return false;
    const struct cluster_slot *s = &p->slots[index - p->snap_index - 1];
    *out = (struct cluster_entry){.index = index,
                                  .epoch = s->epoch,
                                  .time_ms = s->time_ms,
                                  .kind = s->kind,
                                  .len = s->len,
                                  .data = s->len ? p->bytes + s->off : NULL};
    return true;
}

bool cluster_config_has_isr(const struct cluster_config *c, uint32_t node)
{
    for (uint32_t i = 0; i < c->isr_count; i++)
        if (c->isr[i] == node)
            return true;
    return false;
}

bool cluster_config_has_replica(const struct cluster_config *c, uint32_t node)
{
    for (uint32_t i = 0; i < c->replicas_count; i++)
        if (c->replicas[i] == node)
            return true;
    return false;
}

static void emit(struct cluster_part *p, struct cluster_action *a)
{
    a->partition = p->cfg.partition;
    p->cfg.emit(p->cfg.emit_ctx, a);
}

static bool log_has_room(const struct cluster_part *p, size_t len)
{
    return p->count < p->cfg.log_entries_max && p->bytes_len + len <= p->cfg.log_bytes_max;
}

/* Appends an entry to the in-memory log and asks for it to be persisted. The caller checked
 * log_has_room. */
static uint64_t log_append(struct cluster_part *p, uint64_t epoch, int64_t time_ms, uint8_t kind,
                           const uint8_t *data, uint32_t len)
{
    ASSERT(log_has_room(p, len));
    ASSERT(epoch >= cluster_part_last_epoch(p));
    struct cluster_slot *s = &p->slots[p->count];
    *s = (struct cluster_slot){
        .epoch = epoch, .time_ms = time_ms, .off = p->bytes_len, .len = len, .kind = kind};
    if (len)
        memcpy(p->bytes + p->bytes_len, data, len);
    p->bytes_len += len;
    p->count++;
    if (time_ms > p->clock_ms)
        p->clock_ms = time_ms;
    struct cluster_action a = {.type = CLUSTER_ACT_PERSIST_APPEND};
    (void)cluster_part_entry(p, last_index(p), &a.entry);
    emit(p, &a);
    return last_index(p);
}

/* Drops every entry after index. Only an uncommitted suffix may go. */
static void log_truncate_after(struct cluster_part *p, uint64_t index)
{
    ASSERT(index >= p->commit_index && index >= p->snap_index);
    ASSERT(p->applied_index <= index); /* a deposed primary rebuilt before it got here */
    if (index >= last_index(p))
        return;
    uint32_t keep = (uint32_t)(index - p->snap_index);
    p->bytes_len = keep < p->count ? p->slots[keep].off : p->bytes_len;
    p->stats_truncated += p->count - keep;
    p->count = keep;
    if (p->durable_index > index)
        p->durable_index = index;
    if (p->synced_request > index)
        p->synced_request = index;
    if (p->match_verified > index)
        p->match_verified = index;
    struct cluster_action a = {.type = CLUSTER_ACT_PERSIST_TRUNCATE, .index = index};
    emit(p, &a);
}

/* Moves the commit index up to c, reporting each newly committed entry. */
static void set_commit(struct cluster_part *p, uint64_t c)
{
    ASSERT(c <= last_index(p));
    while (p->commit_index < c) {
        p->commit_index++;
        struct cluster_action a = {.type = CLUSTER_ACT_COMMITTED, .index = p->commit_index};
        if (cluster_part_entry(p, p->commit_index, &a.entry))
            emit(p, &a);
    }
}

static void apply_entry(struct cluster_part *p, uint64_t index, struct engine_output *out)
{
    ASSERT(index == p->applied_index + 1 && index <= last_index(p));
    const struct cluster_slot *s = &p->slots[index - p->snap_index - 1];
    if (s->kind == CLUSTER_ENTRY_ENGINE) {
        engine_apply(&p->engine, index, s->time_ms, p->bytes + s->off, s->len, out);
    } else if (s->kind == CLUSTER_ENTRY_TICK) {
        uint8_t tick[8];
        size_t tick_len;
        struct engine_cmd cmd = {.type = ENGINE_TICK};
        int rc = engine_encode(&cmd, tick, sizeof tick, &tick_len);
        ASSERT(rc == 0);
        engine_apply(&p->engine, index, s->time_ms, tick, tick_len, out);
    }
    p->applied_index = index;
}

static void apply_up_to(struct cluster_part *p, uint64_t index)
{
    struct engine_output out; /* a reply nobody waits for */
    while (p->applied_index < index)
        apply_entry(p, p->applied_index + 1, &out);
}

/* Rebuilds the engine from the snapshot and the committed log: what was applied beyond the
 * commit index (a deposed primary's speculation) is gone. */
static void rebuild(struct cluster_part *p)
{
    if (p->applied_index <= p->commit_index)
        return;
    int rc =
        p->snap_len ? engine_load(&p->engine, p->snap_data, p->snap_len) : engine_reset(&p->engine);
    /* The snapshot loaded once already with this config; only memory can fail now, and an
     * engine we cannot rebuild must not serve. */
    ASSERT(rc == 0);
    p->applied_index = p->snap_index;
    apply_up_to(p, p->commit_index);
    p->stats_rebuilds++;
}

/* A snapshot at the commit index, once the engine is exactly there; the log before it goes. */
static void maybe_compact(struct cluster_part *p)
{
    uint64_t every = p->compact_soon ? 1 : p->cfg.snapshot_every;
    if (p->commit_index - p->snap_index < every || p->applied_index != p->commit_index)
        return;
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    if (engine_save(&p->engine, &w) != 0 || w.failed) {
        sm_wbuf_free(&w); /* no memory: keep the log and try again later */
        return;
    }
    uint64_t index = p->commit_index;
    uint64_t epoch = epoch_at(p, index);
    int64_t time_ms = p->slots[index - p->snap_index - 1].time_ms;
    uint32_t drop = (uint32_t)(index - p->snap_index);
    size_t off = drop < p->count ? p->slots[drop].off : p->bytes_len;
    memmove(p->slots, p->slots + drop, (size_t)(p->count - drop) * sizeof *p->slots);
    memmove(p->bytes, p->bytes + off, p->bytes_len - off);
    p->count -= drop;
    p->bytes_len -= off;
    for (uint32_t i = 0; i < p->count; i++)
        p->slots[i].off -= off;
    free(p->snap_data);
    p->snap_data = w.data;
    p->snap_len = w.len;
    p->snap_index = index;
    p->snap_epoch = epoch;
    p->snap_time_ms = time_ms;
    p->compact_soon = false;
    struct cluster_action a = {.type = CLUSTER_ACT_PERSIST_SNAPSHOT,
                               .index = index,
                               .epoch = epoch,
                               .time_ms = time_ms,
                               .bytes = p->snap_data,
                               .len = p->snap_len};
    emit(p, &a);
}

/* ---- set-up -------------------------------------------------------------------------------- */

static int check_config(const struct cluster_part_config *cfg)
{
    if (!cfg->emit || cfg->partition >= SM_PARTITIONS_MAX || cfg->node >= SM_CLUSTER_NODES_MAX ||
        cfg->log_entries_max < SM_CLUSTER_LOG_ENTRIES_MIN ||
        cfg->log_entries_max > SM_CLUSTER_LOG_ENTRIES_MAX ||
        cfg->log_bytes_max < SM_ENGINE_RECORD_BYTES_MAX || cfg->pending_max < 1 ||
        cfg->pending_max > SM_CLUSTER_PENDING_MAX || cfg->heartbeat_ms < 1 ||
        cfg->retransmit_ms < 1 || cfg->lag_timeout_ms < 1 || cfg->tick_ms < 0 ||
        cfg->snapshot_every < 1 || cfg->snapshot_every >= cfg->log_entries_max)
        return SM_E_BADARG;
    return 0;
}

static int load_recovered(struct cluster_part *p, const uint8_t *snap, size_t snap_len,
                          uint64_t snap_index, uint64_t snap_epoch, int64_t snap_time_ms,
                          const struct cluster_entry *entries, uint32_t n)
{
    if (snap_len) {
        if (engine_load(&p->engine, snap, snap_len) != 0)
            return SM_E_CORRUPT;
        p->snap_data = malloc(snap_len);
        if (!p->snap_data)
            return SM_E_NOMEM;
        memcpy(p->snap_data, snap, snap_len);
        p->snap_len = snap_len;
    }
    p->snap_index = p->commit_index = p->applied_index = snap_index;
    p->snap_epoch = p->epoch = snap_epoch;
    p->snap_time_ms = p->clock_ms = snap_time_ms;
    for (uint32_t i = 0; i < n; i++) {
        const struct cluster_entry *e = &entries[i];
        if (e->index != last_index(p) + 1 || e->epoch < cluster_part_last_epoch(p) ||
            !log_has_room(p, e->len))
            return SM_E_BADARG;
        struct cluster_slot *s = &p->slots[p->count++];
        *s = (struct cluster_slot){.epoch = e->epoch,
                                   .time_ms = e->time_ms,
                                   .off = p->bytes_len,
                                   .len = e->len,
                                   .kind = e->kind};
        if (e->len)
            memcpy(p->bytes + p->bytes_len, e->data, e->len);
        p->bytes_len += e->len;
        if (e->time_ms > p->clock_ms)
            p->clock_ms = e->time_ms;
        p->epoch = e->epoch;
    }
    p->durable_index = p->synced_request = last_index(p);
    return 0;
}

int cluster_part_init(struct cluster_part *p, const struct cluster_part_config *cfg,
                      const uint8_t *snap, size_t snap_len, uint64_t snap_index,
                      uint64_t snap_epoch, int64_t snap_time_ms,
                      const struct cluster_entry *entries, uint32_t entries_count, bool restarted)
{
    ASSERT(p && cfg);
    memset(p, 0, sizeof *p);
    int rc = check_config(cfg);
    if (rc != 0)
        return rc;
    p->cfg = *cfg;
    p->leader = NODE_NONE;
    p->isr_adding = NODE_NONE;
    p->restarted = restarted;
    rc = engine_init(&p->engine, &cfg->engine);
    if (rc != 0)
        return rc;
    p->engine_ready = true;
    p->slots = calloc(cfg->log_entries_max, sizeof *p->slots);
    p->bytes = malloc(cfg->log_bytes_max);
    p->pending = calloc(cfg->pending_max, sizeof *p->pending);
    p->scratch = malloc(SM_CLUSTER_MSG_BYTES_MAX);
    p->msg = malloc(sizeof *p->msg);
    rc = SM_E_NOMEM;
    if (p->slots && p->bytes && p->pending && p->scratch && p->msg)
        rc = load_recovered(p, snap, snap_len, snap_index, snap_epoch, snap_time_ms, entries,
                            entries_count);
    if (rc != 0)
        cluster_part_free(p);
    return rc;
}

void cluster_part_free(struct cluster_part *p)
{
    if (p->engine_ready)
        engine_free(&p->engine);
    free(p->slots);
    free(p->bytes);
    free(p->pending);
    free(p->scratch);
    free(p->msg);
    free(p->snap_data);
    memset(p, 0, sizeof *p);
}

/* ---- sending ------------------------------------------------------------------------------- */

static void send_msg(struct cluster_part *p, uint32_t to)
{
    struct cluster_msg *m = p->msg;
    m->partition = p->cfg.partition;
    m->from = p->cfg.node;
    m->to = to;
    size_t len;
    int rc = cluster_msg_encode(m, p->scratch, SM_CLUSTER_MSG_BYTES_MAX, &len);
    ASSERT(rc == 0); /* we built it within every bound */
    struct cluster_action a = {.type = CLUSTER_ACT_SEND, .to = to, .bytes = p->scratch, .len = len};
    emit(p, &a);
}

static void send_ack(struct cluster_part *p, uint32_t to, bool ok, uint64_t round)
{
    struct cluster_msg *m = p->msg;
    m->type = CLUSTER_MSG_APPEND_ACK;
    m->epoch = p->epoch;
    m->ok = ok;
    m->last_index = last_index(p);
    uint64_t match = p->durable_index < p->match_verified ? p->durable_index : p->match_verified;
    m->match_index = ok ? match : 0;
    m->round = round;
    send_msg(p, to);
}

static void send_snapshot(struct cluster_part *p, struct cluster_peer *peer, int64_t now_ms)
{
    struct cluster_msg m = {.type = CLUSTER_MSG_SNAPSHOT,
                            .partition = p->cfg.partition,
                            .from = p->cfg.node,
                            .to = peer->node,
                            .epoch = p->epoch,
                            .snap_index = p->snap_index,
                            .snap_epoch = p->snap_epoch,
                            .snap_time_ms = p->snap_time_ms,
                            .commit_index = p->commit_index,
                            .snap_len = (uint32_t)p->snap_len,
                            .snap_data = p->snap_data};
    size_t cap = cluster_msg_encoded_len(&m);
    uint8_t *buf = malloc(cap);
    size_t len;
    if (!buf || cluster_msg_encode(&m, buf, cap, &len) != 0) {
        free(buf); /* no memory or too large: the peer stays behind and out of the ISR */
        return;
    }
    struct cluster_action a = {
        .type = CLUSTER_ACT_SEND, .to = peer->node, .bytes = buf, .len = len};
    emit(p, &a);
    free(buf);
    peer->snapshot_sent = true;
    peer->snapshot_ms = now_ms;
    peer->next_index = p->snap_index + 1;
    peer->last_send_ms = now_ms;
    p->stats_snapshots_sent++;
}

/* Ships entries from peer->next_index (as many as fit in one message), with the commit index and
 * the current confirmation round. */
static void send_append(struct cluster_part *p, struct cluster_peer *peer, int64_t now_ms)
{
    if (peer->next_index <= p->snap_index) {
        send_snapshot(p, peer, now_ms);
        return;
    }
    struct cluster_msg *m = p->msg;
    m->type = CLUSTER_MSG_APPEND;
    m->epoch = p->epoch;
    m->prev_index = peer->next_index - 1;
    m->prev_epoch = epoch_at(p, m->prev_index);
    ASSERT(m->prev_epoch != UINT64_MAX);
    m->commit_index = p->commit_index;
    m->round = p->round;
    m->entries_count = 0;
    size_t bytes = 64;
    for (uint64_t i = peer->next_index; i <= last_index(p); i++) {
        struct cluster_entry e;
        bool held = cluster_part_entry(p, i, &e);
        ASSERT(held); /* snap_index < i <= last */
        if (m->entries_count == SM_CLUSTER_MSG_ENTRIES_MAX ||
            bytes + 32 + e.len > SM_CLUSTER_MSG_BYTES_MAX)
            break;
        m->entries[m->entries_count++] = e;
        bytes += 32 + e.len;
    }
    send_msg(p, peer->node);
    peer->next_index += m->entries_count;
    peer->last_send_ms = now_ms;
}

/* ---- the primary --------------------------------------------------------------------------- */

static struct cluster_peer *find_peer(struct cluster_part *p, uint32_t node)
{
    for (uint32_t i = 0; i < p->peers_count; i++)
        if (p->peers[i].node == node)
            return &p->peers[i];
    return NULL;
}

/* The lowest match index and confirmed round over the members a commit needs: the ISR (this
 * node's durable index for itself), plus a replica being added to it. A member with no peer
 * state counts as having nothing. */
static void commit_floor(struct cluster_part *p, uint64_t *match, uint64_t *round)
{
    *match = p->durable_index;
    *round = p->round;
    if (p->cfg.unsafe_commit_alone)
        return;
    for (uint32_t i = 0; i <= p->config.isr_count; i++) {
        uint32_t node = i < p->config.isr_count ? p->config.isr[i] : p->isr_adding;
        if (node == p->cfg.node || node == NODE_NONE)
            continue;
        const struct cluster_peer *peer = find_peer(p, node);
        uint64_t m = peer ? peer->match_index : 0;
        uint64_t r = peer ? peer->round_acked : 0;
        if (m < *match)
            *match = m;
        if (r < *round)
            *round = r;
    }
}

static void release_pending(struct cluster_part *p)
{
    uint64_t match, confirmed;
    commit_floor(p, &match, &confirmed);
    while (p->pending_count > 0) {
        struct cluster_pending *q = &p->pending[p->pending_head];
        if (q->index > p->commit_index || q->round > confirmed)
            break;
        struct cluster_action a = {
            .type = CLUSTER_ACT_REPLY, .token = q->token, .reply = &q->reply};
        emit(p, &a);
        p->pending_head = (p->pending_head + 1) % p->cfg.pending_max;
        p->pending_count--;
    }
}

static void drop_pending(struct cluster_part *p)
{
    while (p->pending_count > 0) {
        struct cluster_pending *q = &p->pending[p->pending_head];
        struct cluster_action a = {.type = CLUSTER_ACT_REPLY_DROPPED, .token = q->token};
        emit(p, &a);
        p->pending_head = (p->pending_head + 1) % p->cfg.pending_max;
        p->pending_count--;
        p->stats_dropped++;
    }
}

static void advance_commit(struct cluster_part *p)
{
    if (p->role != CLUSTER_ROLE_PRIMARY || !p->epoch_started)
        return;
    uint64_t c, round;
    commit_floor(p, &c, &round);
    if (c > p->commit_index)
        set_commit(p, c);
    release_pending(p);
}

static void request_cas(struct cluster_part *p, const struct cluster_config *next)
{
    p->cas_inflight = true;
    p->cas_sent_ms = p->now_ms;
    struct cluster_action a = {.type = CLUSTER_ACT_CAS, .config = next};
    emit(p, &a);
}

static void set_peers(struct cluster_part *p, int64_t now_ms)
{
    struct cluster_peer old[SM_REPLICAS_MAX];
    uint32_t old_count = p->peers_count;
    memcpy(old, p->peers, sizeof old);
    p->peers_count = 0;
    for (uint32_t i = 0; i < p->config.replicas_count; i++) {
        uint32_t node = p->config.replicas[i];
        if (node == p->cfg.node)
            continue;
        struct cluster_peer *peer = &p->peers[p->peers_count++];
        *peer = (struct cluster_peer){.node = node,
                                      .next_index = last_index(p),
                                      .last_ack_ms = now_ms,
                                      .progress_ms = now_ms};
        for (uint32_t j = 0; j < old_count; j++)
            if (old[j].node == node)
                *peer = old[j];
    }
}

/* This node leads the config's epoch: apply the whole log (the old primary's uncommitted suffix
 * is ours now), then open the epoch with its marker entry. */
static void become_primary(struct cluster_part *p, int64_t now_ms)
{
    ASSERT(p->config.primary == p->cfg.node);
    if (!log_has_room(p, 0))
        return; /* cannot open the epoch; the controller will move the role when we stall */
    p->role = CLUSTER_ROLE_PRIMARY;
    p->epoch = p->config.epoch;
    p->leader = p->cfg.node;
    apply_up_to(p, last_index(p));
    if (now_ms > p->clock_ms)
        p->clock_ms = now_ms;
    (void)log_append(p, p->epoch, p->clock_ms, CLUSTER_ENTRY_EPOCH, NULL, 0);
    apply_up_to(p, last_index(p));
    p->epoch_started = true;
    p->last_tick_ms = now_ms;
    p->peers_count = 0;
    set_peers(p, now_ms);
    for (uint32_t i = 0; i < p->peers_count; i++)
        p->peers[i].next_index = last_index(p);
    p->isr_adding = NODE_NONE;
    p->cas_uncertain = false;
}

/* Leaves whatever role this node had for epoch (a newer one exists). */
static void step_down(struct cluster_part *p, uint64_t epoch, uint32_t leader)
{
    ASSERT(epoch >= p->epoch);
    drop_pending(p);
    rebuild(p);
    p->role = leader == NODE_NONE ? CLUSTER_ROLE_NONE : CLUSTER_ROLE_REPLICA;
    p->epoch = epoch;
    p->leader = leader;
    p->epoch_started = false;
    p->isr_adding = NODE_NONE;
    p->cas_uncertain = false;
    p->match_verified = p->commit_index;
    p->peers_count = 0;
}

/* The ISR after removing or adding one node, to propose by CAS. */
static void cas_isr(struct cluster_part *p, uint32_t node, bool add)
{
    struct cluster_config next = p->config;
    if (add) {
        ASSERT(next.isr_count < SM_REPLICAS_MAX);
        next.isr[next.isr_count++] = node;
        p->isr_adding = node;
    } else {
        next.isr_count = 0;
        for (uint32_t i = 0; i < p->config.isr_count; i++)
            if (p->config.isr[i] != node)
                next.isr[next.isr_count++] = p->config.isr[i];
    }
    request_cas(p, &next);
}

/* ISR maintenance: remove a member that lags too long, add back one that caught up. */
static void check_isr(struct cluster_part *p, int64_t now_ms)
{
    if (p->cas_inflight || p->isr_adding != NODE_NONE)
        return;
    for (uint32_t i = 0; i < p->peers_count; i++) {
        struct cluster_peer *peer = &p->peers[i];
        bool in = cluster_config_has_isr(&p->config, peer->node);
        if (peer->match_index >= last_index(p))
            peer->progress_ms = now_ms;
        if (in && now_ms - peer->progress_ms >= p->cfg.lag_timeout_ms) {
            cas_isr(p, peer->node, false);
            return;
        }
        if (!in && peer->match_index == last_index(p) && peer->match_index >= p->commit_index) {
            cas_isr(p, peer->node, true);
            return;
        }
    }
}

static int64_t stamp(struct cluster_part *p, int64_t now_ms)
{
    if (now_ms > p->clock_ms)
        p->clock_ms = now_ms;
    return p->clock_ms;
}

static int primary_ready(const struct cluster_part *p)
{
    if (p->role == CLUSTER_ROLE_PRIMARY && p->epoch_started)
        return 0;
    if (p->role == CLUSTER_ROLE_REPLICA)
        return SM_E_MOVED;
    return SM_E_TRYAGAIN;
}

static struct cluster_pending *pending_push(struct cluster_part *p)
{
    ASSERT(p->pending_count < p->cfg.pending_max);
    uint32_t i = (p->pending_head + p->pending_count) % p->cfg.pending_max;
    p->pending_count++;
    return &p->pending[i];
}

int cluster_part_propose(struct cluster_part *p, int64_t now_ms, uint64_t token,
                         const struct engine_cmd *cmd, struct engine_reply *reply)
{
    p->now_ms = now_ms;
    int rc = primary_ready(p);
    if (rc != 0)
        return rc;
    uint8_t *rec = p->scratch;
    size_t len;
    if (engine_encode(cmd, rec, SM_ENGINE_RECORD_BYTES_MAX, &len) != 0) {
        memset(reply, 0, sizeof *reply);
        reply->kind = ENGINE_REPLY_ERR;
        reply->err = SM_E_BADARG;
        return SM_E_BADARG;
    }
    if (p->pending_count == p->cfg.pending_max)
        return SM_E_BUSY;
    if (!log_has_room(p, len)) {
        maybe_compact(p);
        if (!log_has_room(p, len))
            return SM_E_BUSY;
    }
    uint64_t index =
        log_append(p, p->epoch, stamp(p, now_ms), CLUSTER_ENTRY_ENGINE, rec, (uint32_t)len);
    struct engine_output out;
    apply_entry(p, index, &out);
    struct cluster_pending *q = pending_push(p);
    *q = (struct cluster_pending){.token = token, .index = index, .round = 0, .reply = out.reply};
    if (reply)
        *reply = out.reply;
    return 0;
}

int cluster_part_read(struct cluster_part *p, int64_t now_ms, uint64_t token,
                      const struct engine_cmd *cmd)
{
    p->now_ms = now_ms;
    int rc = primary_ready(p);
    if (rc != 0)
        return rc;
    if (cmd->type < ENGINE_SKU_GET)
        return SM_E_BADARG;
    if (p->pending_count == p->cfg.pending_max)
        return SM_E_BUSY;
    struct cluster_pending *q = pending_push(p);
    *q = (struct cluster_pending){.token = token, .index = last_index(p), .round = p->round + 1};
    engine_read(&p->engine, cmd, &q->reply);
    p->round_wanted = true;
    return 0;
}

static void primary_on_ack(struct cluster_part *p, int64_t now_ms, const struct cluster_msg *m)
{
    struct cluster_peer *peer = find_peer(p, m->from);
    if (!peer)
        return;
    peer->last_ack_ms = now_ms;
    if (m->round > peer->round_acked && m->round <= p->round)
        peer->round_acked = m->round;
    if (m->ok) {
        uint64_t match = m->match_index < last_index(p) ? m->match_index : last_index(p);
        if (match > peer->match_index) {
            peer->match_index = match;
            peer->progress_ms = now_ms;
        }
        if (peer->snapshot_sent && peer->match_index >= p->snap_index)
            peer->snapshot_sent = false;
        if (peer->next_index <= peer->match_index)
            peer->next_index = peer->match_index + 1;
    } else if (!peer->snapshot_sent || now_ms - peer->snapshot_ms >= p->cfg.retransmit_ms) {
        peer->snapshot_sent = false; /* one that got lost is sent again below */
        /* A miss: step back to just after what the replica says it has. */
        uint64_t next =
            m->last_index + 1 < peer->next_index ? m->last_index + 1 : peer->next_index - 1;
        if (next <= peer->match_index)
            next = peer->match_index + 1;
        if (next < 1)
            next = 1;
        peer->next_index = next;
        send_append(p, peer, now_ms);
    }
    advance_commit(p);
}

/* ---- the replica --------------------------------------------------------------------------- */

static void replica_commit(struct cluster_part *p, uint64_t leader_commit)
{
    uint64_t c = leader_commit < p->match_verified ? leader_commit : p->match_verified;
    if (c > last_index(p))
        c = last_index(p);
    if (c > p->commit_index)
        set_commit(p, c);
    apply_up_to(p, p->commit_index);
    maybe_compact(p);
}

/* Accepts a message of epoch from its sender; false when it is stale (and was answered). */
static bool accept_epoch(struct cluster_part *p, const struct cluster_msg *m)
{
    if (m->epoch < p->epoch) {
        send_ack(p, m->from, false, 0); /* tells the old primary about the newer epoch */
        return false;
    }
    if (m->epoch == p->epoch && p->role == CLUSTER_ROLE_PRIMARY)
        return false; /* two primaries in one epoch cannot happen: a peer's bug, ignore it */
    if (m->epoch > p->epoch || p->leader != m->from)
        step_down(p, m->epoch, m->from);
    return true;
}

/* Appends the entries of m that the log does not have yet; returns the index up to which the log
 * now equals the primary's. */
static uint64_t replica_append(struct cluster_part *p, const struct cluster_msg *m)
{
    uint64_t verified = m->prev_index;
    for (uint32_t i = 0; i < m->entries_count; i++) {
        const struct cluster_entry *e = &m->entries[i];
        if (e->index <= p->snap_index) {
            verified = e->index; /* committed here already: equal by the commit rule */
            continue;
        }
        if (e->index <= last_index(p)) {
            if (epoch_at(p, e->index) == e->epoch) {
                verified = e->index;
                continue;
            }
            if (e->index <= p->commit_index)
                break; /* a primary that disagrees with a commit: refuse the rest */
            log_truncate_after(p, e->index - 1);
        }
        if (!log_has_room(p, e->len)) {
            maybe_compact(p);
            if (!log_has_room(p, e->len))
                break;
        }
        (void)log_append(p, e->epoch, e->time_ms, e->kind, e->data, e->len);
        verified = e->index;
    }
    return verified;
}

static void replica_on_append(struct cluster_part *p, const struct cluster_msg *m)
{
    if (!accept_epoch(p, m))
        return;
    uint64_t prev_epoch = epoch_at(p, m->prev_index);
    bool prev_ok = m->prev_index < p->snap_index || prev_epoch == m->prev_epoch;
    if (!prev_ok) {
        uint64_t hint = m->prev_index - 1 < last_index(p) ? m->prev_index - 1 : last_index(p);
        if (hint < p->commit_index)
            hint = p->commit_index;
        struct cluster_msg *r = p->msg;
        r->type = CLUSTER_MSG_APPEND_ACK;
        r->epoch = p->epoch;
        r->ok = false;
        r->match_index = 0;
        r->last_index = hint;
        r->round = m->round;
        send_msg(p, m->from);
        return;
    }
    uint64_t verified = replica_append(p, m);
    if (verified > p->match_verified)
        p->match_verified = verified;
    replica_commit(p, m->commit_index);
    send_ack(p, m->from, true, m->round);
}

static void replica_on_snapshot(struct cluster_part *p, const struct cluster_msg *m)
{
    if (!accept_epoch(p, m))
        return;
    if (m->snap_index > p->commit_index) {
        if (engine_load(&p->engine, m->snap_data, m->snap_len) != 0) {
            /* A snapshot of another config, or damaged: keep what we have. engine_load leaves
             * the engine empty on corruption, so rebuild it from our own base. */
            p->applied_index = p->commit_index + 1;
            rebuild(p);
            return;
        }
        uint8_t *copy = malloc(m->snap_len ? m->snap_len : 1);
        ASSERT(copy); /* the engine just loaded as much; a failure here is not recoverable */
        memcpy(copy, m->snap_data, m->snap_len);
        free(p->snap_data);
        p->snap_data = copy;
        p->snap_len = m->snap_len;
        p->count = 0;
        p->bytes_len = 0;
        p->snap_index = p->commit_index = p->applied_index = m->snap_index;
        p->durable_index = p->synced_request = p->match_verified = m->snap_index;
        p->snap_epoch = m->snap_epoch;
        p->snap_time_ms = m->snap_time_ms;
        if (m->snap_time_ms > p->clock_ms)
            p->clock_ms = m->snap_time_ms;
        struct cluster_action a = {.type = CLUSTER_ACT_PERSIST_SNAPSHOT,
                                   .index = p->snap_index,
                                   .epoch = p->snap_epoch,
                                   .time_ms = p->snap_time_ms,
                                   .bytes = p->snap_data,
                                   .len = p->snap_len};
        emit(p, &a);
        struct cluster_action t = {.type = CLUSTER_ACT_PERSIST_TRUNCATE, .index = p->snap_index};
        emit(p, &t);
    }
    send_ack(p, m->from, true, 0);
}

static void on_log_end_query(struct cluster_part *p, const struct cluster_msg *m)
{
    struct cluster_msg *r = p->msg;
    r->type = CLUSTER_MSG_LOG_END;
    r->epoch = p->epoch;
    r->query_id = m->query_id;
    r->last_index = last_index(p);
    r->last_epoch = cluster_part_last_epoch(p);
    send_msg(p, m->from);
}

void cluster_part_receive(struct cluster_part *p, int64_t now_ms, const struct cluster_msg *m)
{
    p->now_ms = now_ms;
    /* A message from this node itself is refused, except the controller's LOG_END_QUERY: the
     * controller may run on one of the in-sync replicas it asks. */
    if (m->partition != p->cfg.partition || m->to != p->cfg.node ||
        (m->from == p->cfg.node && m->type != CLUSTER_MSG_LOG_END_QUERY))
        return;
    switch (m->type) {
    case CLUSTER_MSG_APPEND:
        replica_on_append(p, m);
        return;
    case CLUSTER_MSG_SNAPSHOT:
        replica_on_snapshot(p, m);
        return;
    case CLUSTER_MSG_APPEND_ACK:
        if (m->epoch > p->epoch) {
            step_down(p, m->epoch, NODE_NONE);
            return;
        }
        if (m->epoch == p->epoch && p->role == CLUSTER_ROLE_PRIMARY)
            primary_on_ack(p, now_ms, m);
        return;
    case CLUSTER_MSG_LOG_END_QUERY:
        on_log_end_query(p, m);
        return;
    default:
        return; /* LOG_END goes to the controller, not here */
    }
}

/* ---- the control plane --------------------------------------------------------------------- */

void cluster_part_set_config(struct cluster_part *p, int64_t now_ms, const struct cluster_config *c)
{
    p->now_ms = now_ms;
    if (p->config_known && (c->epoch < p->config.epoch ||
                            (c->epoch == p->config.epoch && c->revision <= p->config.revision)))
        return;
    bool first = !p->config_known;
    p->config = *c;
    p->config_known = true;
    /* A CAS of ours in flight was based on an older revision: either this config is its result
     * (a replica being added is now in the ISR) or it will fail. Either way nothing is pending. */
    p->cas_inflight = false;
    p->cas_uncertain = false;
    p->isr_adding = NODE_NONE;
    if (c->epoch < p->epoch)
        return; /* a message told us of a newer epoch already; its config will follow */
    if (first && p->restarted)
        p->restart_floor = c->epoch;
    if (c->primary != p->cfg.node) {
        if (c->epoch > p->epoch || p->role == CLUSTER_ROLE_PRIMARY || p->leader != c->primary)
            step_down(p, c->epoch, c->primary);
        return;
    }
    if (p->role == CLUSTER_ROLE_PRIMARY && c->epoch == p->epoch) {
        /* our own epoch: the ISR or the replica set changed */
        set_peers(p, now_ms);
        advance_commit(p);
        return;
    }
    if (c->epoch <= p->restart_floor || c->epoch <= cluster_part_last_epoch(p)) {
        /* We may have led this epoch before a crash, with entries we no longer have: ask for a
         * fresh one rather than reuse it. Our log holds every committed entry (we were in the
         * ISR), so leading the next epoch is safe. */
        if (p->role == CLUSTER_ROLE_PRIMARY || p->applied_index > p->commit_index)
            step_down(p, c->epoch, NODE_NONE);
        p->epoch = c->epoch;
        struct cluster_config next = *c;
        next.epoch = c->epoch + 1;
        request_cas(p, &next);
        return;
    }
    if (p->role == CLUSTER_ROLE_PRIMARY || p->applied_index > p->commit_index)
        step_down(p, c->epoch, NODE_NONE);
    become_primary(p, now_ms);
}

void cluster_part_cas_failed(struct cluster_part *p, int64_t now_ms)
{
    p->now_ms = now_ms;
    p->cas_inflight = false;
    /* After a lost answer, a failed retry may mean that the first attempt applied: keep
     * counting the replica being added until a newer config tells (see cluster_part_tick). */
    if (!p->cas_uncertain)
        p->isr_adding = NODE_NONE;
}

void cluster_part_persisted(struct cluster_part *p, int64_t now_ms, uint64_t index, uint64_t epoch)
{
    p->now_ms = now_ms;
    if (index <= p->durable_index || epoch_at(p, index) != epoch)
        return; /* the entry it covered was truncated since: that sync proves nothing now */
    p->durable_index = index;
    if (p->role == CLUSTER_ROLE_PRIMARY)
        advance_commit(p);
    else if (p->role == CLUSTER_ROLE_REPLICA && p->leader != NODE_NONE)
        send_ack(p, p->leader, true, 0);
}

void cluster_part_flush(struct cluster_part *p, int64_t now_ms)
{
    p->now_ms = now_ms;
    if (last_index(p) > p->synced_request) {
        p->synced_request = last_index(p);
        struct cluster_action a = {
            .type = CLUSTER_ACT_SYNC, .index = last_index(p), .epoch = cluster_part_last_epoch(p)};
        emit(p, &a);
    }
    if (p->role != CLUSTER_ROLE_PRIMARY || !p->epoch_started)
        return;
    bool round = p->round_wanted;
    if (round) {
        p->round++;
        p->round_wanted = false;
    }
    for (uint32_t i = 0; i < p->peers_count; i++) {
        struct cluster_peer *peer = &p->peers[i];
        bool behind = peer->next_index <= last_index(p) && !peer->snapshot_sent;
        bool quiet = now_ms - peer->last_send_ms >= p->cfg.heartbeat_ms;
        if (behind || quiet || round)
            send_append(p, peer, now_ms);
    }
    release_pending(p); /* with no other ISR member, a round confirms at once */
}

void cluster_part_compact_soon(struct cluster_part *p)
{
    p->compact_soon = true;
    maybe_compact(p);
}

void cluster_part_set_tick_ms(struct cluster_part *p, int64_t tick_ms)
{
    ASSERT(tick_ms >= 0);
    p->cfg.tick_ms = tick_ms;
}

void cluster_part_tick(struct cluster_part *p, int64_t now_ms)
{
    p->now_ms = now_ms;
    if (p->cas_inflight && now_ms - p->cas_sent_ms >= 4 * p->cfg.lag_timeout_ms) {
        /* The request or its answer was lost: only a config newer than the CAS's base says
         * what happened. An ISR add may have applied in the control plane, and the controller
         * may then pick that replica, so it stays counted for commit until such a config
         * arrives (forgetting it let a cut-off primary commit alone: simulator seed 2104).
         * The same CAS is asked again; a shrink or an epoch bump is asked again by the usual
         * paths once nothing is in flight. */
        p->cas_inflight = false;
        if (p->isr_adding != NODE_NONE && p->role == CLUSTER_ROLE_PRIMARY) {
            p->cas_uncertain = true;
            cas_isr(p, p->isr_adding, true);
        } else {
            p->isr_adding = NODE_NONE;
        }
    }
    if (p->role == CLUSTER_ROLE_PRIMARY && p->epoch_started) {
        if (p->cfg.tick_ms > 0 && now_ms - p->last_tick_ms >= p->cfg.tick_ms &&
            log_has_room(p, 0)) {
            p->last_tick_ms = now_ms;
            uint64_t index = log_append(p, p->epoch, stamp(p, now_ms), CLUSTER_ENTRY_TICK, NULL, 0);
            apply_up_to(p, index);
        }
        for (uint32_t i = 0; i < p->peers_count; i++) {
            struct cluster_peer *peer = &p->peers[i];
            if (now_ms - peer->last_ack_ms >= p->cfg.retransmit_ms &&
                peer->match_index < last_index(p)) {
                peer->next_index = peer->match_index + 1;
                peer->snapshot_sent = false;
                peer->last_ack_ms = now_ms; /* one resend per quiet period */
            }
        }
        check_isr(p, now_ms);
        maybe_compact(p);
    } else if (p->config_known && p->config.primary == p->cfg.node && !p->cas_inflight &&
               p->role != CLUSTER_ROLE_PRIMARY) {
        /* A bump we asked for failed or got lost: look again at the config and retry. */
        struct cluster_config c = p->config;
        p->config.revision = 0;
        p->config.epoch = 0;
        p->config_known = false;
        cluster_part_set_config(p, now_ms, &c);
    }
    cluster_part_flush(p, now_ms);
}
