/*
 * The benchmark's load loop: one thread, one poll() over every connection. Each connection has
 * a ring of `pipeline` slots holding its operations in flight, in send order (RESP replies come
 * back in that order). Closed loop: every free slot is filled at once, so the intended send time
 * is the actual one. Open loop (--rate): operation k is due at start + k / rate; it goes to the
 * next connection with a free slot, and its latency counts from when it was due, so a stalled
 * node shows up as latency rather than as fewer, better-looking samples.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "util/error.h"

struct bench_client {
    struct rc_conn conn;
    struct bench_op *slots; /* ring of cfg->pipeline */
    uint32_t head;
    uint32_t count;
};

struct loop {
    const struct bench_config *cfg;
    struct bench_workload_state *w;
    FILE *history;
    struct bench_result *r;
    struct bench_client *clients;
    struct pollfd *pfds;
    uint64_t start_ns;
    uint64_t issued;
    uint64_t inflight;
    uint64_t next_due_ns; /* open loop: the next operation's intended time, since start */
    uint32_t cursor;      /* open loop: where the search for a free slot starts */
    bool slots_full;      /* open loop: an operation is due but every slot is busy */
    uint64_t last_reply_ns;
    uint64_t progress_ns;
    bool tty;
};

static bool issuing(const struct loop *l, uint64_t now_ns)
{
    if (l->cfg->requests && l->issued >= l->cfg->requests)
        return false;
    return !(l->cfg->duration_ms && now_ns >= l->cfg->duration_ms * 1000000u);
}

static void issue(struct loop *l, uint32_t ci, uint64_t intended_ns)
{
    struct bench_client *c = &l->clients[ci];
    ASSERT(c->count < l->cfg->pipeline);
    struct bench_op *op = &c->slots[(c->head + c->count) % l->cfg->pipeline];
    bench_workload_next(l->w, op);
    op->intended_ns = intended_ns;
    bench_send_op(&c->conn, op);
    c->count++;
    l->issued++;
    l->inflight++;
}

static void issue_due(struct loop *l, uint64_t now_ns)
{
    if (l->cfg->rate <= 0) {
        for (uint32_t i = 0; i < l->cfg->clients; i++)
            while (l->clients[i].count < l->cfg->pipeline && issuing(l, now_ns))
                issue(l, i, now_ns);
        return;
    }
    double interval_ns = 1e9 / l->cfg->rate;
    l->slots_full = false;
    while (l->next_due_ns <= now_ns && issuing(l, l->next_due_ns)) {
        uint32_t tried = 0;
        while (tried < l->cfg->clients && l->clients[l->cursor].count == l->cfg->pipeline) {
            l->cursor = (l->cursor + 1) % l->cfg->clients;
            tried++;
        }
        if (tried == l->cfg->clients) {
            l->slots_full = true; /* the due operation waits for a reply, its clock running */
            return;
        }
        issue(l, l->cursor, l->next_due_ns);
        l->cursor = (l->cursor + 1) % l->cfg->clients;
        l->next_due_ns = (uint64_t)((double)l->issued * interval_ns);
    }
}

/* The reply at the head of client ci's ring has arrived. */
static void on_reply(struct loop *l, uint32_t ci, uint64_t now_ns)
{
    struct bench_client *c = &l->clients[ci];
    ASSERT(c->count > 0);
    struct bench_op *op = &c->slots[c->head];
    char code[24];
    char result[64] = "-";
    const char *outcome = "ok";
    if (rc_is_error(&c->conn, code, sizeof code))
        outcome = code;
    else
        bench_reply_result(&c->conn, op, result, sizeof result);
    uint64_t lat_ns = now_ns > op->intended_ns ? now_ns - op->intended_ns : 0;
    latency_hist_record(&l->r->hist, lat_ns);
    bench_count_outcome(l->r, outcome);
    bench_history_line(l->history, ci + 1, op, now_ns, outcome, result);
    if (strcmp(outcome, "ok") == 0)
        bench_workload_acked(l->w, op, result);
    c->head = (c->head + 1) % l->cfg->pipeline;
    c->count--;
    l->inflight--;
    l->r->ops++;
    l->last_reply_ns = now_ns;
}

/* Every operation still out is recorded as "unknown": it may or may not have happened. */
static void give_up(struct loop *l, uint64_t now_ns)
{
    for (uint32_t i = 0; i < l->cfg->clients; i++) {
        struct bench_client *c = &l->clients[i];
        for (; c->count > 0; c->count--, c->head = (c->head + 1) % l->cfg->pipeline) {
            bench_history_line(l->history, i + 1, &c->slots[c->head], now_ns, "unknown", "-");
            bench_count_outcome(l->r, "unknown");
            l->r->lost++;
            l->r->ops++;
        }
    }
    l->inflight = 0;
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

/* Sends what is buffered, waits for the sockets (or the next due time), reads every reply.
 * 0, or SM_E_IO / SM_E_PROTO for a connection that failed. */
static int step(struct loop *l, uint64_t now_ns)
{
    uint64_t wait_ns = 100000000u;
    if (l->cfg->rate > 0 && issuing(l, now_ns) && !l->slots_full)
        wait_ns = l->next_due_ns > now_ns ? l->next_due_ns - now_ns : 0;
    if (wait_ns > 100000000u)
        wait_ns = 100000000u;
    for (uint32_t i = 0; i < l->cfg->clients; i++) {
        struct rc_conn *c = &l->clients[i].conn;
        if (rc_pending(c) && rc_flush(c) < 0)
            return SM_E_IO;
        l->pfds[i] =
            (struct pollfd){.fd = c->fd, .events = (short)(POLLIN | (rc_pending(c) ? POLLOUT : 0))};
    }
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait_ns};
    int n = ppoll(l->pfds, l->cfg->clients, &ts, NULL);
    if (n < 0 && errno != EINTR)
        return SM_E_IO;
    uint64_t got_ns = bench_now_ns() - l->start_ns;
    for (uint32_t i = 0; n > 0 && i < l->cfg->clients; i++) {
        if (!(l->pfds[i].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        struct rc_conn *c = &l->clients[i].conn;
        int rc = rc_fill(c);
        while (rc == 0 && (rc = rc_next(c)) == 1) {
            if (l->clients[i].count == 0)
                return SM_E_PROTO; /* a reply nobody asked for */
            on_reply(l, i, got_ns);
            rc = 0;
        }
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
        if (!more && l->inflight == 0)
            break;
        int rc = step(l, now_ns);
        if (rc < 0) {
            fprintf(stderr, "\nshardmart bench: lost a connection to the node (%s)\n",
                    sm_strerror(rc));
            return rc;
        }
        now_ns = bench_now_ns() - l->start_ns;
        if (l->inflight > 0 && now_ns > l->last_reply_ns + BENCH_STALL_MS * 1000000ull) {
            fprintf(stderr, "\nshardmart bench: no reply for %d ms\n", BENCH_STALL_MS);
            return SM_E_TIMEOUT;
        }
        if (l->inflight == 0)
            l->last_reply_ns = now_ns;
        progress(l, now_ns, false);
    }
    return 0;
}

int bench_loop_run(const struct bench_config *cfg, struct bench_workload_state *w, FILE *history,
                   uint64_t start_ns, struct bench_result *r)
{
    struct loop l = {.cfg = cfg, .w = w, .history = history, .r = r, .tty = isatty(2) == 1};
    l.clients = calloc(cfg->clients, sizeof *l.clients);
    l.pfds = calloc(cfg->clients, sizeof *l.pfds);
    int rc = l.clients && l.pfds ? 0 : SM_E_NOMEM;
    uint32_t opened = 0;
    for (; rc == 0 && opened < cfg->clients; opened++) {
        l.clients[opened].slots = calloc(cfg->pipeline, sizeof(struct bench_op));
        if (!l.clients[opened].slots)
            rc = SM_E_NOMEM;
        else if ((rc = rc_open(&l.clients[opened].conn, cfg->host, cfg->port)) != 0)
            fprintf(stderr, "shardmart bench: cannot connect to %s:%d\n", cfg->host, cfg->port);
        if (rc != 0) {
            free(l.clients[opened].slots);
            break; /* nothing of this client needs closing */
        }
    }
    if (rc == 0) {
        l.start_ns = start_ns;
        l.last_reply_ns = bench_now_ns() - start_ns;
        rc = loop_main(&l);
        uint64_t end_ns = bench_now_ns() - start_ns;
        give_up(&l, end_ns);
        progress(&l, end_ns, true);
        r->elapsed_ns = end_ns;
    }
    for (uint32_t i = 0; i < opened && l.clients; i++) {
        rc_close(&l.clients[i].conn);
        free(l.clients[i].slots);
    }
    free(l.clients);
    free(l.pfds);
    return rc;
}
