/*
 * Replication on a real node: see repl.h for what each action of src/cluster/ becomes here and
 * for the batch and group-commit rules; docs/cluster.md "Replication on the real server" for the
 * whole picture.
 *
 * Why the shared log's write and fdatasync run on the loop thread (as the single node's group
 * commit does, server.c flush_start): every part of this node waits on that sync before it may
 * answer, ack or go on, so a worker thread would buy no overlap. What must overlap is the
 * network: pump() hands every queued peer message to the kernel first (peer_net_flush), so the
 * replicas receive, write and sync their copy while this node syncs its own.
 */
#include "server/repl.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <xxhash.h>

#include "cluster/controller.h"
#include "limits.h"
#include "server/peer.h"
#include "util/buf.h"
#include "util/error.h"
#include "wal/plog.h"

/* The in-memory log of each part, as multiples of the snapshot interval: the log keeps what
 * follows the last snapshot, so room for four intervals lets a snapshot wait for a quiet moment
 * (the engine standing at the commit index) without the log filling. */
#define REPL_LOG_INTERVALS 4
/* Payload bytes of each part's in-memory log. */
#define REPL_LOG_BYTES (16u * 1024 * 1024)
/* Client requests of one part awaiting commit (one batch's worth at most, in practice). */
#define REPL_PENDING_MAX 8192
/* How often the shared log is compacted: partitions that still need a position older than the
 * last round's end are asked for a snapshot, then every segment all partitions cover goes. */
#define REPL_COMPACT_EVERY_MS 5000

/* Passes of pump(): a sync's persisted() never appends, so the second pass finds nothing; the
 * bound only guards against a bug looping forever. */
#define REPL_PUMP_PASSES 4

struct repl {
    struct repl_config cfg;
    char dir[SM_WAL_DIR_BYTES_MAX + 1];
    struct plog plog;
    bool plog_open;
    struct peer_net *net;
    struct cluster_part *parts; /* [partitions] */
    uint32_t parts_ready;       /* initialised ones (for repl_close after a failed open) */
    struct cluster_controller ctl;
    bool ctl_ready;
    struct cluster_msg *msg; /* decode buffer */

    /* parts that took input since the last pump (flushed there) */
    bool *dirty;
    uint32_t *dirty_list;
    uint32_t dirty_count;
    /* parts whose SYNC waits for the next shared fdatasync */
    bool *sync_wanted;
    uint64_t *sync_index, *sync_epoch;
    uint32_t *sync_list;
    uint32_t sync_count;

    /* the server's batch */
    uint64_t batch_token;
    uint32_t outstanding;
    bool batch_failed;
    bool batch_waiting;

    bool fatal, fatal_told;
    bool in_pump;
    /* Messages to this node itself (the controller querying its own part): delivered from the
     * loop, never inside the emit that sent them. Each: length (u32 LE) | bytes. */
    struct sm_wbuf loopback;
    int64_t compact_last_ms;
    uint64_t compact_mark; /* the log's next position at the last compaction round */
    int handles_open;      /* the timer, check and idle handles: r is freed once they closed */
    uv_timer_t timer;
    uv_check_t check;
    uv_idle_t idle;
    struct repl_stats stats;
};

static int64_t wall_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void repl_config_defaults(struct repl_config *c, int64_t lease_ms)
{
    if (lease_ms < 100)
        lease_ms = 100;
    c->heartbeat_ms = lease_ms / 10;
    c->retransmit_ms = lease_ms / 5;
    c->lag_timeout_ms = lease_ms / 2;
    c->query_timeout_ms = lease_ms / 4;
    c->tick_ms = 100;
    c->snapshot_every = 4096;
}

static void on_idle(uv_idle_t *h);

static void set_fatal(struct repl *r, const char *what, int rc)
{
    if (r->fatal)
        return;
    r->fatal = true;
    fprintf(stderr,
            "shardmart: the partition log failed (%s: %s); this node acknowledges nothing more "
            "and stops\n",
            what, rc < 0 && rc > -4096 ? strerror(-rc) : sm_strerror(rc));
    if (r->handles_open > 0)
        uv_idle_start(&r->idle, on_idle); /* pump() tells the server */
}

static void mark_dirty(struct repl *r, uint32_t p)
{
    if (r->dirty[p])
        return;
    r->dirty[p] = true;
    r->dirty_list[r->dirty_count++] = p;
}

/* ---- the parts' actions -------------------------------------------------------------------- */

/* Runs a buffered plog call; a full batch buffer is written out (blocking) and the call made
 * again: what was buffered becomes durable a little early, which is harmless. */
static int plog_retry(struct repl *r, int rc, const char *what)
{
    if (rc != SM_E_BUSY)
        return rc;
    int s = plog_sync(&r->plog);
    if (s != 0) {
        set_fatal(r, what, s);
        return s;
    }
    return SM_E_BUSY; /* the caller calls again */
}

static void persist_append(struct repl *r, uint32_t p, const struct cluster_entry *e)
{
    struct plog_entry pe = {.index = e->index,
                            .epoch = e->epoch,
                            .time_ms = e->time_ms,
                            .kind = e->kind,
                            .payload = e->data,
                            .len = e->len};
    int rc = SM_E_BUSY;
    for (int tries = 0; tries < 2 && rc == SM_E_BUSY; tries++)
        rc = plog_retry(r, plog_append(&r->plog, p, &pe), "append");
    if (rc != 0)
        set_fatal(r, "append", rc);
}

static void persist_truncate(struct repl *r, uint32_t p, uint64_t after)
{
    int rc = SM_E_BUSY;
    for (int tries = 0; tries < 2 && rc == SM_E_BUSY; tries++)
        rc = plog_retry(r, plog_truncate(&r->plog, p, after), "truncate");
    if (rc != 0)
        set_fatal(r, "truncate", rc);
}

static void persist_snapshot(struct repl *r, const struct cluster_action *a)
{
    int rc = SM_E_BUSY;
    for (int tries = 0; tries < 2 && rc == SM_E_BUSY; tries++)
        rc = plog_retry(
            r,
            plog_snapshot(&r->plog, a->partition, a->bytes, a->len, a->index, a->epoch, a->time_ms),
            "snapshot");
    if (rc != 0)
        set_fatal(r, "snapshot", rc);
}

static void send_to(struct repl *r, uint32_t node, const uint8_t *bytes, size_t len)
{
    if (node == r->cfg.node_id) {
        sm_wbuf_u32(&r->loopback, (uint32_t)len);
        sm_wbuf_put(&r->loopback, bytes, len);
        if (r->loopback.failed)
            r->stats.sends_failed++;
        if (r->handles_open > 0)
            uv_idle_start(&r->idle, on_idle);
        return;
    }
    if (peer_net_send(r->net, node, bytes, len) != 0)
        r->stats.sends_failed++; /* the protocol retransmits; a node with no address yet waits */
}

static void answer(struct repl *r, uint64_t token, bool dropped)
{
    if (dropped)
        r->stats.dropped++;
    else
        r->stats.replies++;
    if (token != r->batch_token || r->outstanding == 0)
        return; /* a batch already answered (cannot happen while batches run one at a time) */
    r->outstanding--;
    if (dropped)
        r->batch_failed = true;
}

static void part_emit(void *ctx, const struct cluster_action *a)
{
    struct repl *r = ctx;
    switch (a->type) {
    case CLUSTER_ACT_SEND:
        send_to(r, a->to, a->bytes, a->len);
        return;
    case CLUSTER_ACT_PERSIST_TRUNCATE:
        persist_truncate(r, a->partition, a->index);
        return;
    case CLUSTER_ACT_PERSIST_APPEND:
        persist_append(r, a->partition, &a->entry);
        return;
    case CLUSTER_ACT_PERSIST_SNAPSHOT:
        persist_snapshot(r, a);
        return;
    case CLUSTER_ACT_SYNC: {
        uint32_t p = a->partition;
        if (!r->sync_wanted[p]) {
            r->sync_wanted[p] = true;
            r->sync_list[r->sync_count++] = p;
        }
        r->sync_index[p] = a->index;
        r->sync_epoch[p] = a->epoch;
        return;
    }
    case CLUSTER_ACT_REPLY:
        answer(r, a->token, false);
        return;
    case CLUSTER_ACT_REPLY_DROPPED:
        answer(r, a->token, true);
        return;
    case CLUSTER_ACT_CAS:
        r->stats.cas_asked++;
        if (!r->cfg.cas || r->cfg.cas(r->cfg.cas_ctx, a->partition, a->config, false) != 0)
            r->stats.cas_failed++; /* the part asks again after its timeout */
        return;
    case CLUSTER_ACT_COMMITTED:
        r->stats.committed++;
        return;
    }
}

static void ctl_emit(void *ctx, const struct cluster_action *a)
{
    struct repl *r = ctx;
    if (a->type == CLUSTER_ACT_SEND)
        send_to(r, a->to, a->bytes, a->len);
    else if (a->type == CLUSTER_ACT_CAS && r->cfg.cas) {
        fprintf(stderr,
                "shardmart: controller: partition %" PRIu32 ": failover to node %" PRIu32
                " at epoch %" PRIu64 " (unix_ms %" PRId64 ")\n",
                a->partition, a->config->primary, a->config->epoch, wall_now_ms());
        (void)r->cfg.cas(r->cfg.cas_ctx, a->partition, a->config, true); /* retried by check */
    }
}

/* ---- the pump: flush the parts, one shared sync, persisted ---------------------------------- */

static void pump(struct repl *r)
{
    if (r->in_pump)
        return;
    r->in_pump = true;
    int64_t now = wall_now_ms();
    for (int pass = 0; pass < REPL_PUMP_PASSES && !r->fatal; pass++) {
        for (uint32_t i = 0; i < r->dirty_count; i++) {
            uint32_t p = r->dirty_list[i];
            r->dirty[p] = false;
            cluster_part_flush(&r->parts[p], now);
        }
        r->dirty_count = 0;
        if (r->sync_count == 0 || r->fatal)
            break;
        /* The replicas get their copy before this node syncs its own. */
        if (r->net)
            peer_net_flush(r->net);
        uint64_t t0 = mono_ns();
        int rc = plog_sync(&r->plog);
        r->stats.syncs++;
        r->stats.sync_ns_total += mono_ns() - t0;
        if (rc != 0) {
            set_fatal(r, "sync", rc);
            break;
        }
        uint32_t n = r->sync_count;
        r->sync_count = 0;
        for (uint32_t i = 0; i < n; i++) {
            uint32_t p = r->sync_list[i];
            r->sync_wanted[p] = false;
            cluster_part_persisted(&r->parts[p], now, r->sync_index[p], r->sync_epoch[p]);
            mark_dirty(r, p); /* commit index and acks go out with the next flush */
        }
    }
    if (r->net)
        peer_net_flush(r->net);
    r->in_pump = false;
    if (r->fatal && !r->fatal_told) {
        r->fatal_told = true;
        uv_idle_stop(&r->idle);
        if (r->cfg.on_fatal)
            r->cfg.on_fatal(r->cfg.ctx);
        return;
    }
    if (r->batch_waiting && r->outstanding == 0) {
        bool failed = r->batch_failed;
        r->batch_waiting = false;
        r->batch_failed = false;
        r->batch_token++;
        if (r->cfg.on_batch_done)
            r->cfg.on_batch_done(r->cfg.ctx, failed);
    }
}

static void on_message(void *ctx, uint32_t from, const uint8_t *bytes, size_t len);

/* Delivers what this node sent itself (taken whole first: handling it may send more). */
static void drain_loopback(struct repl *r)
{
    if (r->loopback.len == 0 && !r->loopback.failed)
        return;
    struct sm_wbuf w = r->loopback;
    sm_wbuf_init(&r->loopback);
    for (size_t at = 0; !w.failed && at + 4 <= w.len;) {
        uint32_t len = (uint32_t)w.data[at] | (uint32_t)w.data[at + 1] << 8 |
                       (uint32_t)w.data[at + 2] << 16 | (uint32_t)w.data[at + 3] << 24;
        if (at + 4 + len > w.len)
            break;
        on_message(r, r->cfg.node_id, w.data + at + 4, len);
        at += 4 + (size_t)len;
    }
    sm_wbuf_free(&w);
}

static void on_check(uv_check_t *h)
{
    struct repl *r = h->data;
    drain_loopback(r);
    if (r->dirty_count || r->sync_count || r->fatal)
        pump(r);
}

static void on_idle(uv_idle_t *h)
{
    struct repl *r = h->data;
    uv_idle_stop(h);
    drain_loopback(r);
    pump(r);
}

/* The shared log's compaction round (REPL_COMPACT_EVERY_MS). Called right after a pump, so
 * nothing is buffered and no flush is in flight. */
static void compact(struct repl *r, int64_t now)
{
    r->compact_last_ms = now;
    for (uint32_t p = 0; p < r->cfg.partitions; p++) {
        uint64_t need = plog_needed_from(&r->plog, p);
        if (need != UINT64_MAX && need < r->compact_mark)
            cluster_part_compact_soon(&r->parts[p]);
    }
    r->compact_mark = plog_position_next(&r->plog);
    pump(r);
    /* The snapshots' markers ask for no SYNC of their own: make them durable, since compaction
     * deletes nothing while a partition's newest marker is not. */
    int rc = plog_sync(&r->plog);
    if (rc != 0) {
        set_fatal(r, "sync", rc);
        return;
    }
    uint32_t deleted = 0;
    rc = plog_compact(&r->plog, &deleted);
    if (rc != 0 && rc != SM_E_STATE)
        fprintf(stderr, "shardmart: partition log compaction failed: %s\n", sm_strerror(rc));
    r->stats.segments_deleted += deleted;
}

static void on_timer(uv_timer_t *t)
{
    struct repl *r = t->data;
    if (r->fatal)
        return;
    int64_t now = wall_now_ms();
    for (uint32_t p = 0; p < r->cfg.partitions; p++) {
        cluster_part_tick(&r->parts[p], now);
        mark_dirty(r, p);
    }
    pump(r);
    if (now - r->compact_last_ms >= REPL_COMPACT_EVERY_MS && !r->fatal && r->sync_count == 0)
        compact(r, now);
}

static void on_message(void *ctx, uint32_t from, const uint8_t *bytes, size_t len)
{
    struct repl *r = ctx;
    if (r->fatal)
        return;
    if (cluster_msg_decode(bytes, len, r->msg) != 0 || r->msg->from != from) {
        r->stats.messages_bad++;
        return;
    }
    r->stats.messages_in++;
    int64_t now = wall_now_ms();
    if (r->msg->type == CLUSTER_MSG_LOG_END) {
        cluster_controller_receive(&r->ctl, now, r->msg);
        return;
    }
    uint32_t p = r->msg->partition;
    if (p >= r->cfg.partitions) {
        r->stats.messages_bad++;
        return;
    }
    cluster_part_receive(&r->parts[p], now, r->msg);
    mark_dirty(r, p); /* on_check flushes and syncs once for every message of this iteration */
}

/* ---- open, close --------------------------------------------------------------------------- */

static int init_part(struct repl *r, uint32_t p, bool restarted)
{
    const struct plog_part *rp = plog_recovered(&r->plog, p);
    ASSERT(rp != NULL);
    struct cluster_entry *es = NULL;
    if (rp->entries_count > 0) {
        es = calloc(rp->entries_count, sizeof *es);
        if (!es)
            return SM_E_NOMEM;
        for (uint32_t i = 0; i < rp->entries_count; i++) {
            const struct plog_entry *e = &rp->entries[i];
            es[i] = (struct cluster_entry){.index = e->index,
                                           .epoch = e->epoch,
                                           .time_ms = e->time_ms,
                                           .kind = e->kind,
                                           .len = e->len,
                                           .data = e->payload};
        }
    }
    uint32_t log_max = r->cfg.snapshot_every * REPL_LOG_INTERVALS;
    if (log_max < rp->entries_count + r->cfg.snapshot_every)
        log_max = rp->entries_count + r->cfg.snapshot_every;
    if (log_max < SM_CLUSTER_LOG_ENTRIES_MIN)
        log_max = SM_CLUSTER_LOG_ENTRIES_MIN;
    struct cluster_part_config pc = {.partition = p,
                                     .node = r->cfg.node_id,
                                     .engine = r->cfg.engine,
                                     .log_entries_max = log_max,
                                     .log_bytes_max = REPL_LOG_BYTES,
                                     .pending_max = REPL_PENDING_MAX,
                                     .heartbeat_ms = r->cfg.heartbeat_ms,
                                     .retransmit_ms = r->cfg.retransmit_ms,
                                     .lag_timeout_ms = r->cfg.lag_timeout_ms,
                                     .tick_ms = r->cfg.tick_ms,
                                     .snapshot_every = r->cfg.snapshot_every,
                                     .emit = part_emit,
                                     .emit_ctx = r};
    int rc = cluster_part_init(&r->parts[p], &pc, rp->snap, rp->snap_len, rp->snap_index,
                               rp->snap_epoch, rp->snap_time_ms, es, rp->entries_count, restarted);
    free(es);
    if (rc != 0)
        fprintf(stderr, "shardmart: partition %" PRIu32 ": its log does not load: %s\n", p,
                sm_strerror(rc));
    return rc;
}

static int open_log(struct repl *r, bool *restarted)
{
    struct stat st;
    *restarted = stat(r->dir, &st) == 0;
    if (mkdir(r->dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "shardmart: cannot create '%s': %s\n", r->dir, strerror(errno));
        return SM_E_IO;
    }
    struct plog_config pc = {.dir = r->dir,
                             .sync_mode = r->cfg.sync_mode,
                             .partitions = r->cfg.partitions,
                             .segment_bytes = r->cfg.segment_bytes};
    /* A batch is at most half a segment, as for the single node's log (store.c). */
    uint64_t segment = pc.segment_bytes ? pc.segment_bytes : SM_WAL_SEGMENT_BYTES_DEFAULT;
    pc.batch_bytes = SM_WAL_BATCH_BYTES_DEFAULT;
    if (pc.batch_bytes > segment / 2)
        pc.batch_bytes = (uint32_t)(segment / 2);
    struct plog_recovery *rep = calloc(1, sizeof *rep);
    if (!rep)
        return SM_E_NOMEM;
    int rc = plog_open(&r->plog, &pc, rep);
    if (rc != 0) {
        if (rep->corrupt)
            fprintf(stderr,
                    "shardmart: the partition log is damaged: %s (position %" PRIu64
                    ", partition %" PRIu32 "): %s\n",
                    rep->corrupt_path, rep->corrupt_position, rep->corrupt_partition,
                    rep->corrupt_reason);
        else
            fprintf(stderr, "shardmart: cannot open the partition log in '%s': %s\n", r->dir,
                    sm_strerror(rc));
    } else {
        r->plog_open = true;
        printf("shardmart: partition log: %" PRIu64 " entries of %" PRIu32
               " partitions recovered, %" PRIu32 " snapshots%s\n",
               rep->entries, rep->partitions_with_state, rep->snapshots_loaded,
               *restarted ? " (restarted: new epochs before leading)" : "");
    }
    free(rep);
    return rc;
}

static int parse_host_port(const char *addr, char *host, size_t cap, uint16_t *port)
{
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= cap)
        return SM_E_BADARG;
    char *end = NULL;
    unsigned long v = strtoul(colon + 1, &end, 10);
    if (!end || *end != '\0' || v == 0 || v > 65535)
        return SM_E_BADARG;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    *port = (uint16_t)v;
    return 0;
}

int repl_open(struct repl **out, const struct repl_config *cfg)
{
    ASSERT(out && cfg && cfg->loop && cfg->dir);
    *out = NULL;
    if (cfg->partitions < 1 || cfg->partitions > SM_PARTITIONS_MAX ||
        cfg->node_id >= SM_CLUSTER_NODES_MAX || strlen(cfg->dir) > SM_WAL_DIR_BYTES_MAX ||
        cfg->snapshot_every < 1 || cfg->heartbeat_ms < 1 || cfg->lag_timeout_ms < 1 ||
        cfg->retransmit_ms < 1 || cfg->query_timeout_ms < 1) {
        fprintf(stderr, "shardmart: replication: bad configuration\n");
        return SM_E_BADARG;
    }
    char peer_host[SM_PEER_HOST_BYTES_MAX];
    uint16_t peer_port = 0;
    if (!cfg->advertise ||
        parse_host_port(cfg->advertise, peer_host, sizeof peer_host, &peer_port) != 0) {
        fprintf(stderr, "shardmart: --advertise must be host:port (the peer address)\n");
        return SM_E_BADARG;
    }
    struct repl *r = calloc(1, sizeof *r);
    if (!r)
        return SM_E_NOMEM;
    r->cfg = *cfg;
    snprintf(r->dir, sizeof r->dir, "%s", cfg->dir);
    r->cfg.dir = r->dir;
    r->batch_token = 1;
    sm_wbuf_init(&r->loopback);
    uint32_t n = cfg->partitions;
    r->parts = calloc(n, sizeof *r->parts);
    r->dirty = calloc(n, sizeof *r->dirty);
    r->dirty_list = calloc(n, sizeof *r->dirty_list);
    r->sync_wanted = calloc(n, sizeof *r->sync_wanted);
    r->sync_index = calloc(n, sizeof *r->sync_index);
    r->sync_epoch = calloc(n, sizeof *r->sync_epoch);
    r->sync_list = calloc(n, sizeof *r->sync_list);
    r->msg = malloc(sizeof *r->msg);
    int rc = (!r->parts || !r->dirty || !r->dirty_list || !r->sync_wanted || !r->sync_index ||
              !r->sync_epoch || !r->sync_list || !r->msg)
                 ? SM_E_NOMEM
                 : 0;
    bool restarted = false;
    if (rc == 0)
        rc = open_log(r, &restarted);
    for (uint32_t p = 0; rc == 0 && p < n; p++) {
        rc = init_part(r, p, restarted);
        if (rc == 0)
            r->parts_ready++;
    }
    if (r->plog_open)
        plog_recovered_free(&r->plog);
    if (rc == 0) {
        struct cluster_controller_config cc = {.node = cfg->node_id,
                                               .partitions = n,
                                               .query_timeout_ms = cfg->query_timeout_ms,
                                               .emit = ctl_emit,
                                               .emit_ctx = r};
        rc = cluster_controller_init(&r->ctl, &cc);
        r->ctl_ready = rc == 0;
    }
    if (rc == 0) {
        struct peer_net_config pn = {.loop = cfg->loop,
                                     .bind_host = peer_host,
                                     .port = peer_port,
                                     .self_node = cfg->node_id,
                                     .cluster_id = cfg->cluster_id,
                                     /* a snapshot travels whole in one message */
                                     .message_bytes_max = SM_PEER_MESSAGE_BYTES_MAX,
                                     .queue_bytes_max = 2 * (size_t)SM_PEER_MESSAGE_BYTES_MAX,
                                     .on_message = on_message,
                                     .ctx = r};
        peer_net_config_defaults(&pn);
        rc = peer_net_start(&r->net, &pn);
    }
    if (rc != 0) {
        repl_close(r);
        return rc;
    }
    uv_timer_init(cfg->loop, &r->timer);
    r->timer.data = r;
    uv_timer_start(&r->timer, on_timer, REPL_TICK_MS, REPL_TICK_MS);
    uv_check_init(cfg->loop, &r->check);
    r->check.data = r;
    uv_check_start(&r->check, on_check);
    uv_idle_init(cfg->loop, &r->idle);
    r->idle.data = r;
    r->handles_open = 3;
    *out = r;
    return 0;
}

static void repl_free(struct repl *r)
{
    for (uint32_t p = 0; p < r->parts_ready; p++)
        cluster_part_free(&r->parts[p]);
    if (r->ctl_ready)
        cluster_controller_free(&r->ctl);
    free(r->parts);
    free(r->dirty);
    free(r->dirty_list);
    free(r->sync_wanted);
    free(r->sync_index);
    free(r->sync_epoch);
    free(r->sync_list);
    free(r->msg);
    sm_wbuf_free(&r->loopback);
    free(r);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct repl *r = h->data;
    if (--r->handles_open == 0)
        repl_free(r);
}

void repl_close(struct repl *r)
{
    if (!r)
        return;
    if (r->net)
        peer_net_stop(r->net);
    r->net = NULL;
    if (r->plog_open) {
        /* What is buffered was never acknowledged; syncing it is harmless. */
        if (!r->fatal && plog_sync(&r->plog) != 0)
            fprintf(stderr, "shardmart: final sync of the partition log failed\n");
        plog_close(&r->plog);
        r->plog_open = false;
    }
    if (r->handles_open == 0) {
        repl_free(r);
        return;
    }
    r->fatal = true; /* nothing runs any more while the handles close */
    r->fatal_told = true;
    uv_close((uv_handle_t *)&r->timer, on_handle_closed);
    uv_close((uv_handle_t *)&r->check, on_handle_closed);
    uv_close((uv_handle_t *)&r->idle, on_handle_closed);
}

/* ---- control plane ------------------------------------------------------------------------- */

void repl_set_config(struct repl *r, uint32_t p, const struct cluster_config *c)
{
    ASSERT(p < r->cfg.partitions);
    if (r->fatal)
        return;
    cluster_part_set_config(&r->parts[p], wall_now_ms(), c);
    mark_dirty(r, p);
    uv_idle_start(&r->idle, on_idle);
}

void repl_cas_failed(struct repl *r, uint32_t p, bool from_controller)
{
    ASSERT(p < r->cfg.partitions);
    if (from_controller || r->fatal)
        return; /* the controller's next check sees the config that won */
    cluster_part_cas_failed(&r->parts[p], wall_now_ms());
    mark_dirty(r, p);
    uv_idle_start(&r->idle, on_idle);
}

bool repl_set_peer(struct repl *r, uint32_t node, const char *addr)
{
    char host[SM_PEER_HOST_BYTES_MAX];
    uint16_t port;
    if (node == r->cfg.node_id)
        return true;
    if (parse_host_port(addr, host, sizeof host, &port) != 0)
        return false;
    return peer_net_set_address(r->net, node, host, port) == 0;
}

void repl_controller_check(struct repl *r, uint32_t p, const struct cluster_config *c,
                           const bool *live, uint32_t nodes_count)
{
    if (r->fatal)
        return;
    cluster_controller_check(&r->ctl, wall_now_ms(), p, c, live, nodes_count);
}

void repl_controller_reset(struct repl *r)
{
    cluster_controller_reset(&r->ctl);
}

/* ---- the server's batch -------------------------------------------------------------------- */

static void err_reply(struct engine_reply *out, int rc)
{
    memset(out, 0, sizeof *out);
    out->kind = ENGINE_REPLY_ERR;
    out->err = SM_E_TRYAGAIN;
    const char *msg =
        rc == SM_E_MOVED
            ? "this node is not the partition's primary now: retry (CLUSTER.PARTITIONS)"
            : "the partition's primary is not ready: retry";
    size_t n = strlen(msg);
    if (n > SM_ENGINE_MESSAGE_BYTES_MAX)
        n = SM_ENGINE_MESSAGE_BYTES_MAX;
    memcpy(out->msg, msg, n);
    out->msg_len = n;
}

int repl_mutate(void *ctx, uint32_t p, const struct engine_cmd *cmd, struct engine_reply *reply)
{
    struct repl *r = ctx;
    ASSERT(p < r->cfg.partitions);
    if (r->fatal) {
        err_reply(reply, SM_E_TRYAGAIN);
        return 0;
    }
    int rc = cluster_part_propose(&r->parts[p], wall_now_ms(), r->batch_token, cmd, reply);
    if (rc == SM_E_MOVED || rc == SM_E_TRYAGAIN) {
        err_reply(reply, rc);
        return 0;
    }
    if (rc != 0)
        return rc; /* SM_E_BADARG (reply says why) or SM_E_BUSY */
    r->outstanding++;
    mark_dirty(r, p);
    return 0;
}

void repl_read(void *ctx, uint32_t p, const struct engine_cmd *cmd, struct engine_reply *out)
{
    struct repl *r = ctx;
    ASSERT(p < r->cfg.partitions);
    struct cluster_part *part = &r->parts[p];
    int rc = r->fatal ? SM_E_TRYAGAIN : cluster_part_read(part, wall_now_ms(), r->batch_token, cmd);
    if (rc != 0) {
        err_reply(out, rc == SM_E_BUSY ? SM_E_TRYAGAIN : rc);
        return;
    }
    /* The part holds the same answer for its confirmation round; the node encodes this one
     * now, and the server releases it with the batch. */
    engine_read(&part->engine, cmd, out);
    r->outstanding++;
    mark_dirty(r, p);
}

bool repl_batch_end(struct repl *r, bool *failed)
{
    pump(r);
    if (r->outstanding == 0) {
        *failed = r->batch_failed;
        r->batch_failed = false;
        r->batch_token++;
        return false;
    }
    *failed = false;
    r->batch_waiting = true;
    return true;
}

/* ---- introspection ------------------------------------------------------------------------- */

void repl_stats(const struct repl *r, struct repl_stats *out)
{
    *out = r->stats;
    out->primaries = out->replicas = 0;
    for (uint32_t p = 0; p < r->cfg.partitions; p++) {
        if (r->parts[p].role == CLUSTER_ROLE_PRIMARY)
            out->primaries++;
        else if (r->parts[p].role == CLUSTER_ROLE_REPLICA)
            out->replicas++;
    }
    out->failovers_started = r->ctl.failovers_started;
    out->failovers_done = r->ctl.failovers_done;
}

void repl_partition_state(const struct repl *r, uint32_t p, struct repl_partition_state *out)
{
    ASSERT(p < r->cfg.partitions);
    const struct cluster_part *x = &r->parts[p];
    *out = (struct repl_partition_state){.role = (int)x->role,
                                         .epoch = x->epoch,
                                         .last_index = cluster_part_last_index(x),
                                         .commit_index = x->commit_index,
                                         .applied_index = x->applied_index};
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    if (engine_save(&x->engine, &w) == 0 && !w.failed)
        out->digest = XXH3_64bits(w.data, w.len);
    sm_wbuf_free(&w);
}
