/*
 * The benchmark's load loop: one thread, one poll() over every connection. Each client has
 * `pipeline` slots for its operations in flight. Closed loop: every free slot is filled at once,
 * so the intended send time is the actual one. Open loop (--rate): operation k is due at
 * start + k / rate; it goes to the next client with a free slot, and its latency counts from
 * when it was due, so a stalled node shows up as latency rather than as fewer, better-looking
 * samples.
 *
 * A client has one connection to the node, or with --cluster one per node (opened when first
 * needed). A connection keeps the slots it carries in send order, since RESP answers in order:
 *
 *   workload -> slot --route (bench_cluster.c)--> connection of (client, node) -> FIFO of slots
 *                ^                                                                   |
 *                +-- WAIT: -MOVED (at once), -TRYAGAIN, -CLUSTERDOWN, lost or refused connection
 *                          (after a back-off), the same request id every time     <---+
 *
 * A slot ends when an answer comes (ok or a domain error such as SOLDOUT), and its history line is
 * written then: with the first intended time, so a failover shows up as latency. An operation that
 * was sent on a connection that then broke, or refused with -TRYAGAIN (a deposed primary drops
 * replies it held: the write may still commit) or -CLUSTERDOWN, "may have been applied": if it is
 * never answered, the history says "unknown", never a definite outcome.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "util/error.h"

enum slot_state { SLOT_FREE, SLOT_SENT, SLOT_WAIT };

/* One operation in flight, from its first send to its answer. */
struct slot {
    struct bench_op op;
    uint8_t state;      /* enum slot_state */
    bool sent_once;     /* first_ns is set */
    bool maybe_applied; /* an attempt may have been applied (see the top of the file) */
    uint8_t hops;       /* -MOVED followed since the last back-off */
    uint16_t node;      /* SENT: the node whose connection carries it */
    uint32_t partition; /* --cluster: its key's partition */
    uint32_t backoff_ms;
    uint64_t first_ns; /* since the load began */
    uint64_t sent_ns;  /* the current attempt */
    uint64_t retry_ns; /* WAIT: when to send it again */
    char last[24];     /* the last refusal: MOVED, TRYAGAIN, CLUSTERDOWN, CONNECTION */
};

/* A client's connection to one node: the slots it carries, oldest first (a ring of pipeline). */
struct conn {
    struct rc_conn rc; /* rc.fd < 0 when closed */
    uint32_t *fifo;
    uint32_t head;
    uint32_t count;
};

struct bench_client {
    struct slot *slots;   /* cfg->pipeline */
    uint32_t *free_slots; /* a stack of free slot indexes */
    uint32_t free_n;
    struct conn **conns; /* one per node (cluster) or one; NULL until first needed */
};

struct loop {
    const struct bench_config *cfg;
    struct bench_workload_state *w;
    FILE *history;
    struct bench_result *r;
    struct bench_cluster *m; /* NULL: one node */
    uint32_t nodes_max;      /* connections per client */
    struct bench_client *clients;
    struct pollfd *pfds;
    uint32_t *pfd_client; /* parallel to pfds */
    uint16_t *pfd_node;
    uint64_t start_ns;
    int64_t unix_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC at the start */
    uint64_t issued;
    uint64_t inflight;    /* slots not free */
    uint64_t waiting;     /* slots in WAIT */
    uint64_t next_due_ns; /* open loop: the next operation's intended time, since start */
    uint32_t cursor;      /* open loop: where the search for a free slot starts */
    bool slots_full;      /* open loop: an operation is due but every slot is busy */
    uint64_t last_reply_ns;
    uint64_t progress_ns;
    uint64_t timeouts_ns;   /* when reply timeouts were last looked for */
    uint64_t next_retry_ns; /* the earliest back-off of a waiting slot ends (UINT64_MAX: none) */
    int failed;             /* a request was given up: the run ends with this code */
    bool tty;
};

/* Set by SIGINT or SIGTERM: stop sending, let what is in flight finish, print the summary (how
 * bench/failover/run ends a run it cannot size in advance). */
static volatile sig_atomic_t stop_asked;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_asked = 1;
}

static bool issuing(const struct loop *l, uint64_t now_ns)
{
    if (l->failed || stop_asked)
        return false;
    if (l->cfg->requests && l->issued >= l->cfg->requests)
        return false;
    return !(l->cfg->duration_ms && now_ns >= l->cfg->duration_ms * 1000000u);
}

static long long unix_ms(const struct loop *l, uint64_t t_ns)
{
    return (long long)(((int64_t)(l->start_ns + t_ns) + l->unix_offset_ns) / 1000000);
}

/* ---- availability ------------------------------------------------------------------------- */

static void partition_failed(struct loop *l, uint32_t p, uint64_t now_ns, const char *why)
{
    if (!l->m || l->m->failing_ns[p])
        return;
    l->m->failing_ns[p] = now_ns ? now_ns : 1;
    fprintf(stderr, "shardmart bench: partition %u: writes failing since unix_ms %lld (%s)\n", p,
            unix_ms(l, now_ns), why);
}

static void add_outage(struct loop *l, uint32_t p, uint64_t end_ns, bool open)
{
    struct bench_result *r = l->r;
    struct bench_outage o = {.partition = p,
                             .start_ns = l->m->failing_ns[p],
                             .end_ns = end_ns,
                             .answered_ns = l->m->answered_ns[p],
                             .open = open};
    if (r->outages_n < BENCH_OUTAGES_MAX)
        r->outages[r->outages_n++] = o;
    else
        r->outages_dropped++;
    fprintf(stderr,
            "shardmart bench: partition %u: %s %.1f ms after its first failure (unix_ms %lld to "
            "%lld)\n",
            p, open ? "still unavailable at the end" : "answered again",
            (double)(end_ns - o.start_ns) / 1e6, unix_ms(l, o.start_ns), unix_ms(l, end_ns));
}

/* A write was answered (ok or a domain error): the cluster served it. */
static void answered(struct loop *l, uint32_t p, uint64_t now_ns)
{
    struct bench_result *r = l->r;
    if (now_ns - r->last_answer_ns > r->gap_max_ns) {
        r->gap_max_ns = now_ns - r->last_answer_ns;
        r->gap_start_ns = r->last_answer_ns;
    }
    r->last_answer_ns = now_ns;
    if (!l->m)
        return;
    if (l->m->failing_ns[p]) {
        add_outage(l, p, now_ns, false);
        l->m->failing_ns[p] = 0;
    }
    l->m->answered_ns[p] = now_ns;
}

/* ---- connections ---------------------------------------------------------------------------- */

static void node_down(struct loop *l, uint16_t n, uint64_t now_ns)
{
    if (!l->m)
        return;
    uint32_t *b = &l->m->down_backoff_ms[n];
    l->m->down_until_ns[n] = now_ns + (uint64_t)*b * 1000000u;
    *b = *b * 2 > SM_CLIENT_RETRY_MAX_MS ? SM_CLIENT_RETRY_MAX_MS : *b * 2;
}

/* Client ci's connection to node n, opened when needed; NULL when it cannot be. */
static struct conn *conn_get(struct loop *l, uint32_t ci, uint16_t n, uint64_t now_ns)
{
    struct bench_client *c = &l->clients[ci];
    struct conn *k = c->conns[n];
    if (!k) {
        k = calloc(1, sizeof *k);
        uint32_t *fifo = calloc(l->cfg->pipeline, sizeof *fifo);
        if (!k || !fifo) {
            free(k);
            free(fifo);
            return NULL;
        }
        k->fifo = fifo;
        k->rc.fd = -1;
        c->conns[n] = k;
    }
    if (k->rc.fd >= 0)
        return k;
    const char *host = l->m ? l->m->host[n] : l->cfg->host;
    int port = l->m ? l->m->port[n] : l->cfg->port;
    if (rc_open(&k->rc, host, port) != 0) {
        k->rc.fd = -1;
        node_down(l, n, now_ns);
        return NULL;
    }
    rc_unfollow(&k->rc); /* this loop routes by itself */
    return k;
}

/* ---- slots -------------------------------------------------------------------------------- */

/* Writes the operation's history line, counts it and frees its slot. */
static void finish(struct loop *l, uint32_t ci, uint32_t si, uint64_t now_ns, const char *outcome,
                   const char *result)
{
    struct bench_client *c = &l->clients[ci];
    struct slot *s = &c->slots[si];
    ASSERT(s->state != SLOT_FREE);
    uint64_t lat_ns = now_ns > s->op.intended_ns ? now_ns - s->op.intended_ns : 0;
    latency_hist_record(&l->r->hist, lat_ns);
    bench_count_outcome(l->r, outcome);
    bench_history_line(l->history, ci + 1, &s->op, now_ns, outcome, result);
    if (strcmp(outcome, "ok") == 0)
        bench_workload_acked(l->w, &s->op, result);
    if (strcmp(outcome, "unknown") == 0)
        l->r->lost++;
    if (s->state == SLOT_WAIT)
        l->waiting--;
    s->state = SLOT_FREE;
    c->free_slots[c->free_n++] = si;
    ASSERT(c->free_n <= l->cfg->pipeline);
    l->inflight--;
    l->r->ops++;
}

/* The outcome of an operation that got no answer: "unknown" unless no attempt can have been
 * applied, in which case the last refusal. */
static const char *unanswered(const struct slot *s)
{
    return s->state == SLOT_SENT || s->maybe_applied || !s->last[0] ? "unknown" : s->last;
}

static void send_slot(struct loop *l, uint32_t ci, uint32_t si, uint64_t now_ns);

/* Puts slot si back to wait before it is sent again, or gives it up (ending the run). */
static void backoff(struct loop *l, uint32_t ci, uint32_t si, uint64_t now_ns, const char *why)
{
    struct slot *s = &l->clients[ci].slots[si];
    ASSERT(s->sent_once && s->state != SLOT_FREE);
    (void)snprintf(s->last, sizeof s->last, "%s", why);
    if (now_ns - s->first_ns >= (uint64_t)SM_CLIENT_RETRY_TOTAL_MS * 1000000u) {
        fprintf(stderr,
                "shardmart bench: gave up on %s %s (partition %u) after %d ms without an answer "
                "(last: %s)\n",
                history_op_name(s->op.kind), s->op.rid, s->partition, SM_CLIENT_RETRY_TOTAL_MS,
                why);
        if (!l->failed)
            l->failed = SM_E_TIMEOUT;
        if (s->state == SLOT_SENT) { /* answered with a refusal: no longer on a connection */
            s->state = SLOT_WAIT;
            l->waiting++;
        }
        finish(l, ci, si, now_ns, unanswered(s), "-");
        return;
    }
    if (s->state != SLOT_WAIT)
        l->waiting++;
    s->state = SLOT_WAIT;
    s->retry_ns = now_ns + (uint64_t)s->backoff_ms * 1000000u;
    if (s->retry_ns < l->next_retry_ns)
        l->next_retry_ns = s->retry_ns;
    s->backoff_ms =
        s->backoff_ms * 2 > SM_CLIENT_RETRY_MAX_MS ? SM_CLIENT_RETRY_MAX_MS : s->backoff_ms * 2;
    s->hops = 0;
    l->r->retries++;
}

/* Where slot s goes: its partition's primary if that node is up, else any node that is up (it
 * answers -MOVED with its own view); -1 when every node is down. */
static int route(struct loop *l, const struct slot *s, uint64_t now_ns)
{
    struct bench_cluster *m = l->m;
    if (!m)
        return 0;
    uint16_t n = m->primary[s->partition];
    if (n != BENCH_NODE_NONE && m->down_until_ns[n] <= now_ns)
        return n;
    for (uint32_t tried = 0; tried < m->nodes_n; tried++) {
        uint32_t k = m->any++ % m->nodes_n;
        if (k != n && m->down_until_ns[k] <= now_ns)
            return (int)k;
    }
    return -1;
}

static void send_slot(struct loop *l, uint32_t ci, uint32_t si, uint64_t now_ns)
{
    struct slot *s = &l->clients[ci].slots[si];
    if (!s->sent_once) {
        s->sent_once = true;
        s->first_ns = now_ns;
    }
    int n = route(l, s, now_ns);
    struct conn *k = n >= 0 ? conn_get(l, ci, (uint16_t)n, now_ns) : NULL;
    if (!k) {
        partition_failed(l, s->partition, now_ns, "no node reachable");
        backoff(l, ci, si, now_ns, "CONNECTION");
        return;
    }
    if (s->state == SLOT_WAIT)
        l->waiting--;
    s->state = SLOT_SENT;
    s->node = (uint16_t)n;
    s->sent_ns = now_ns;
    bench_send_op(&k->rc, &s->op);
    ASSERT(k->count < l->cfg->pipeline);
    k->fifo[(k->head + k->count++) % l->cfg->pipeline] = si;
}

static void issue(struct loop *l, uint32_t ci, uint64_t intended_ns, uint64_t now_ns)
{
    struct bench_client *c = &l->clients[ci];
    ASSERT(c->free_n > 0);
    uint32_t si = c->free_slots[--c->free_n];
    struct slot *s = &c->slots[si];
    memset(s, 0, sizeof *s);
    bench_workload_next(l->w, &s->op);
    s->op.intended_ns = intended_ns;
    s->backoff_ms = SM_CLIENT_RETRY_MIN_MS;
    s->partition = l->m ? bench_cluster_partition(l->m, &s->op) : 0;
    s->state = SLOT_WAIT; /* send_slot moves it to SENT */
    l->waiting++;
    l->issued++;
    l->inflight++;
    send_slot(l, ci, si, now_ns);
}

static void issue_due(struct loop *l, uint64_t now_ns)
{
    if (l->cfg->rate <= 0) {
        for (uint32_t i = 0; i < l->cfg->clients; i++)
            while (l->clients[i].free_n > 0 && issuing(l, now_ns))
                issue(l, i, now_ns, now_ns);
        return;
    }
    double interval_ns = 1e9 / l->cfg->rate;
    l->slots_full = false;
    while (l->next_due_ns <= now_ns && issuing(l, l->next_due_ns)) {
        uint32_t tried = 0;
        while (tried < l->cfg->clients && l->clients[l->cursor].free_n == 0) {
            l->cursor = (l->cursor + 1) % l->cfg->clients;
            tried++;
        }
        if (tried == l->cfg->clients) {
            l->slots_full = true; /* the due operation waits for a reply, its clock running */
            return;
        }
        issue(l, l->cursor, l->next_due_ns, now_ns);
        l->cursor = (l->cursor + 1) % l->cfg->clients;
        l->next_due_ns = (uint64_t)((double)l->issued * interval_ns);
    }
}

/* Sends again every waiting slot whose back-off has passed; next_retry_ns becomes the earliest
 * back-off still running. */
static void retry_due(struct loop *l, uint64_t now_ns)
{
    if (l->waiting == 0 || l->next_retry_ns > now_ns)
        return;
    l->next_retry_ns = UINT64_MAX;
    uint64_t next_ns = UINT64_MAX;
    for (uint32_t ci = 0; l->waiting > 0 && ci < l->cfg->clients; ci++)
        for (uint32_t si = 0; si < l->cfg->pipeline; si++) {
            struct slot *s = &l->clients[ci].slots[si];
            if (s->state == SLOT_WAIT && s->retry_ns <= now_ns)
                send_slot(l, ci, si, now_ns);
            if (s->state == SLOT_WAIT && s->retry_ns < next_ns)
                next_ns = s->retry_ns;
        }
    if (next_ns < l->next_retry_ns)
        l->next_retry_ns = next_ns;
}

/* ---- replies ------------------------------------------------------------------------------ */

/* Client ci's connection to node n broke (or a reply took too long): every operation on it may
 * have been applied, and waits to be sent again. */
static void conn_failed(struct loop *l, uint32_t ci, uint16_t n, uint64_t now_ns)
{
    struct conn *k = l->clients[ci].conns[n];
    rc_close(&k->rc);
    k->rc.fd = -1;
    node_down(l, n, now_ns);
    for (; k->count > 0; k->count--, k->head = (k->head + 1) % l->cfg->pipeline) {
        uint32_t si = k->fifo[k->head];
        struct slot *s = &l->clients[ci].slots[si];
        s->maybe_applied = true;
        partition_failed(l, s->partition, now_ns, "connection lost");
        backoff(l, ci, si, now_ns, "CONNECTION");
    }
}

/* --cluster: the reply to slot si is a redirect or a refusal; true when it was handled so. */
static bool rerouted(struct loop *l, uint32_t ci, uint32_t si, const struct rc_conn *rc,
                     const char *code, uint64_t now_ns)
{
    struct slot *s = &l->clients[ci].slots[si];
    if (strcmp(code, "MOVED") == 0) {
        uint32_t p = 0;
        char addr[SM_CLIENT_ADDR_BYTES_MAX];
        int n = -1;
        if (bench_cluster_parse_moved((const char *)rc->vals[0].str.ptr, rc->vals[0].str.len, &p,
                                      addr, sizeof addr) &&
            p == s->partition)
            n = bench_cluster_node(l->m, addr);
        if (n < 0)
            return false; /* a redirect this client cannot follow: an outcome like any other */
        l->m->primary[p] = (uint16_t)n;
        l->r->redirects++;
        if (++s->hops <= SM_CLIENT_REDIRECTS_MAX && l->m->down_until_ns[n] <= now_ns) {
            s->state = SLOT_WAIT;
            l->waiting++;
            send_slot(l, ci, si, now_ns);
        } else {
            backoff(l, ci, si, now_ns, "MOVED");
        }
        return true;
    }
    if (strcmp(code, "TRYAGAIN") != 0 && strcmp(code, "CLUSTERDOWN") != 0)
        return false;
    s->maybe_applied = true; /* a dropped reply of a deposed primary: the write may commit */
    /* A node that is not ready yet (restarted, still loading its configs) is asked nothing for a
     * back-off: the retry goes to another node, which redirects to the primary, instead of a
     * stale map entry (a late -MOVED to the restarted node) waiting for this one. */
    if (strcmp(code, "CLUSTERDOWN") == 0)
        node_down(l, s->node, now_ns);
    partition_failed(l, s->partition, now_ns, code);
    backoff(l, ci, si, now_ns, code);
    return true;
}

/* The reply at the head of client ci's connection to node n has arrived. */
static void on_reply(struct loop *l, uint32_t ci, uint16_t n, uint64_t now_ns)
{
    struct conn *k = l->clients[ci].conns[n];
    ASSERT(k->count > 0);
    uint32_t si = k->fifo[k->head];
    k->head = (k->head + 1) % l->cfg->pipeline;
    k->count--;
    struct slot *s = &l->clients[ci].slots[si];
    ASSERT(s->state == SLOT_SENT && s->node == n);
    l->last_reply_ns = now_ns;
    if (l->m)
        l->m->down_backoff_ms[n] = SM_CLIENT_RETRY_MIN_MS; /* it answers */
    char code[24];
    char result[64] = "-";
    const char *outcome = "ok";
    if (rc_is_error(&k->rc, code, sizeof code)) {
        if (l->m && rerouted(l, ci, si, &k->rc, code, now_ns))
            return;
        outcome = code;
    } else {
        bench_reply_result(&k->rc, &s->op, result, sizeof result);
    }
    answered(l, s->partition, now_ns);
    finish(l, ci, si, now_ns, outcome, result);
}

/* Every operation not answered is recorded: "unknown" when it may have happened. */
static void give_up(struct loop *l, uint64_t now_ns)
{
    for (uint32_t ci = 0; ci < l->cfg->clients; ci++)
        for (uint32_t si = 0; si < l->cfg->pipeline; si++)
            if (l->clients[ci].slots[si].state != SLOT_FREE)
                finish(l, ci, si, now_ns, unanswered(&l->clients[ci].slots[si]), "-");
    bool open = false;
    for (uint32_t p = 0; l->m && p < l->m->partitions; p++) {
        if (l->m->failing_ns[p]) {
            add_outage(l, p, now_ns, true);
            open = true;
        }
    }
    if (open && now_ns - l->r->last_answer_ns > l->r->gap_max_ns) {
        /* the run ended inside a window without answers (a request was given up) */
        l->r->gap_max_ns = now_ns - l->r->last_answer_ns;
        l->r->gap_start_ns = l->r->last_answer_ns;
    }
    ASSERT(l->inflight == 0);
}

/* --cluster: a connection whose oldest request waited SM_CLIENT_REPLY_TIMEOUT_MS is dropped (a
 * paused node); looked for ten times a second. */
static void reply_timeouts(struct loop *l, uint64_t now_ns)
{
    if (!l->m || now_ns < l->timeouts_ns + 100000000u)
        return;
    l->timeouts_ns = now_ns;
    for (uint32_t ci = 0; ci < l->cfg->clients; ci++)
        for (uint32_t n = 0; n < l->nodes_max; n++) {
            struct conn *k = l->clients[ci].conns[n];
            if (k && k->count > 0 &&
                now_ns - l->clients[ci].slots[k->fifo[k->head]].sent_ns >
                    (uint64_t)SM_CLIENT_REPLY_TIMEOUT_MS * 1000000u)
                conn_failed(l, ci, (uint16_t)n, now_ns);
        }
}

static void progress(struct loop *l, uint64_t now_ns, bool last)
{
    if (!l->tty || (!last && now_ns < l->progress_ns + 250000000u))
        return;
    l->progress_ns = now_ns;
    double s = (double)now_ns / 1e9;
    if (l->cfg->requests)
        fprintf(stderr, "\r%6.1f s  %llu/%llu ops  %.0f ops/s   ", s, (unsigned long long)l->r->ops,
                (unsigned long long)l->cfg->requests, s > 0 ? (double)l->r->ops / s : 0.0);
    else
        fprintf(stderr, "\r%6.1f s  %llu ops  %.0f ops/s   ", s, (unsigned long long)l->r->ops,
                s > 0 ? (double)l->r->ops / s : 0.0);
    if (last)
        fputs("\n", stderr);
}

/* How long poll may wait: until the next due operation or retry, at most 100 ms. */
static uint64_t wait_for(const struct loop *l, uint64_t now_ns)
{
    uint64_t wait_ns = 100000000u;
    if (l->cfg->rate > 0 && issuing(l, now_ns) && !l->slots_full)
        wait_ns = l->next_due_ns > now_ns ? l->next_due_ns - now_ns : 0;
    if (l->waiting > 0 && l->next_retry_ns < now_ns + wait_ns)
        wait_ns = l->next_retry_ns > now_ns ? l->next_retry_ns - now_ns : 0;
    return wait_ns > 100000000u ? 100000000u : wait_ns;
}

/* Reads what connection (ci, n) has and handles every whole reply. 0, or (one node) SM_E_IO /
 * SM_E_PROTO for a connection that failed; with --cluster a failed connection is retried. */
static int read_conn(struct loop *l, uint32_t ci, uint16_t n, uint64_t now_ns)
{
    struct conn *k = l->clients[ci].conns[n];
    int rc = rc_fill(&k->rc);
    while (rc == 0 && k->rc.fd >= 0 && (rc = rc_next(&k->rc)) == 1) {
        if (k->count == 0) {
            rc = SM_E_PROTO; /* a reply nobody asked for */
            break;
        }
        on_reply(l, ci, n, now_ns);
        rc = 0;
    }
    if (rc >= 0)
        return 0;
    if (!l->m)
        return rc;
    conn_failed(l, ci, n, now_ns);
    return 0;
}

/* Sends what is buffered, waits for the sockets (or the next due time), reads every reply. */
static int step(struct loop *l, uint64_t now_ns)
{
    nfds_t nfds = 0;
    for (uint32_t ci = 0; ci < l->cfg->clients; ci++)
        for (uint32_t n = 0; n < l->nodes_max; n++) {
            struct conn *k = l->clients[ci].conns[n];
            if (!k || k->rc.fd < 0)
                continue;
            if (rc_pending(&k->rc) && rc_flush(&k->rc) < 0) {
                if (!l->m)
                    return SM_E_IO;
                conn_failed(l, ci, (uint16_t)n, now_ns);
                continue;
            }
            l->pfds[nfds] = (struct pollfd){
                .fd = k->rc.fd, .events = (short)(POLLIN | (rc_pending(&k->rc) ? POLLOUT : 0))};
            l->pfd_client[nfds] = ci;
            l->pfd_node[nfds++] = (uint16_t)n;
        }
    uint64_t wait_ns = wait_for(l, now_ns);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
    int got = ppoll(l->pfds, nfds, &ts, NULL);
    if (got < 0 && errno != EINTR)
        return SM_E_IO;
    uint64_t got_ns = bench_now_ns() - l->start_ns;
    for (nfds_t i = 0; got > 0 && i < nfds; i++) {
        struct conn *k = l->clients[l->pfd_client[i]].conns[l->pfd_node[i]];
        if (!(l->pfds[i].revents & (POLLIN | POLLHUP | POLLERR)) || k->rc.fd != l->pfds[i].fd)
            continue;
        int rc = read_conn(l, l->pfd_client[i], l->pfd_node[i], got_ns);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int loop_main(struct loop *l)
{
    for (;;) {
        uint64_t now_ns = bench_now_ns() - l->start_ns;
        bool more = issuing(l, now_ns);
        if (more)
            issue_due(l, now_ns);
        if (l->waiting > 0)
            retry_due(l, now_ns);
        if (l->failed)
            return l->failed;
        if (!more && l->inflight == 0)
            break;
        int rc = step(l, now_ns);
        if (rc < 0) {
            fprintf(stderr, "\nshardmart bench: lost a connection to the node (%s)\n",
                    sm_strerror(rc));
            return rc;
        }
        now_ns = bench_now_ns() - l->start_ns;
        reply_timeouts(l, now_ns);
        if (!l->m && l->inflight > 0 && now_ns > l->last_reply_ns + BENCH_STALL_MS * 1000000ull) {
            fprintf(stderr, "\nshardmart bench: no reply for %d ms\n", BENCH_STALL_MS);
            return SM_E_TIMEOUT;
        }
        if (l->inflight == 0)
            l->last_reply_ns = now_ns;
        progress(l, now_ns, false);
    }
    return 0;
}

/* Allocates the clients' slots and connection tables; one node: opens every connection now, so
 * a node that is not there is reported before the load starts. */
static int open_clients(struct loop *l)
{
    uint32_t clients = l->cfg->clients;
    l->clients = calloc(clients, sizeof *l->clients);
    size_t conns = (size_t)clients * l->nodes_max;
    l->pfds = calloc(conns, sizeof *l->pfds);
    l->pfd_client = calloc(conns, sizeof *l->pfd_client);
    l->pfd_node = calloc(conns, sizeof *l->pfd_node);
    if (!l->clients || !l->pfds || !l->pfd_client || !l->pfd_node)
        return SM_E_NOMEM;
    for (uint32_t ci = 0; ci < clients; ci++) {
        struct bench_client *c = &l->clients[ci];
        c->slots = calloc(l->cfg->pipeline, sizeof *c->slots);
        c->free_slots = calloc(l->cfg->pipeline, sizeof *c->free_slots);
        c->conns = calloc(l->nodes_max, sizeof(struct conn *));
        if (!c->slots || !c->free_slots || !c->conns)
            return SM_E_NOMEM;
        for (uint32_t si = 0; si < l->cfg->pipeline; si++)
            c->free_slots[c->free_n++] = l->cfg->pipeline - 1 - si;
        if (!l->m && !conn_get(l, ci, 0, 0)) {
            fprintf(stderr, "shardmart bench: cannot connect to %s:%d\n", l->cfg->host,
                    l->cfg->port);
            return SM_E_IO;
        }
    }
    return 0;
}

static void close_clients(struct loop *l)
{
    for (uint32_t ci = 0; l->clients && ci < l->cfg->clients; ci++) {
        struct bench_client *c = &l->clients[ci];
        for (uint32_t n = 0; c->conns && n < l->nodes_max; n++) {
            if (!c->conns[n])
                continue;
            if (c->conns[n]->rc.fd >= 0)
                rc_close(&c->conns[n]->rc);
            free(c->conns[n]->fifo);
            free(c->conns[n]);
        }
        free(c->conns);
        free(c->slots);
        free(c->free_slots);
    }
    free(l->clients);
    free(l->pfds);
    free(l->pfd_client);
    free(l->pfd_node);
}

int bench_loop_run(const struct bench_config *cfg, struct bench_workload_state *w, FILE *history,
                   uint64_t start_ns, struct bench_cluster *m, struct bench_result *r)
{
    struct loop l = {.cfg = cfg,
                     .w = w,
                     .history = history,
                     .r = r,
                     .m = m,
                     .nodes_max = m ? SM_CLIENT_NODES_MAX : 1,
                     .next_retry_ns = UINT64_MAX,
                     .tty = isatty(2) == 1};
    struct timespec real;
    clock_gettime(CLOCK_REALTIME, &real);
    l.unix_offset_ns = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - (int64_t)bench_now_ns();
    struct sigaction sa = {.sa_handler = on_stop_signal}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int rc = open_clients(&l);
    if (rc == 0) {
        l.start_ns = start_ns;
        l.last_reply_ns = bench_now_ns() - start_ns;
        rc = loop_main(&l);
        uint64_t end_ns = bench_now_ns() - start_ns;
        give_up(&l, end_ns);
        progress(&l, end_ns, true);
        r->elapsed_ns = end_ns;
    }
    close_clients(&l);
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}
