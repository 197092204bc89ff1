/*
 * The libuv runtime (see server.h for the loop it runs). Connections of both listeners share one
 * struct conn; RESP connections go through the batch path, HTTP ones answer probes and metrics.
 *
 * Output buffering. Replies are encoded into conn->out while a batch executes and become
 * writable only when the batch is released (after its log records are durable). A write in
 * progress owns conn->flight, a second buffer, because libuv keeps pointing into the buffer it
 * was given until the write completes: appending to that buffer could move it under libuv.
 *
 *   out:    [ released, not yet handed to libuv | encoded by the batch in progress ]
 *            0                                out_ready                         out.len
 *   flight: [ bytes being written by libuv ]
 */
#include "server/server.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>
#include <xxhash.h>

#include "limits.h"
#include "node/node.h"
#include "node/store.h"
#include "node/txn.h"
#include "proto/http.h"
#include "proto/resp.h"
#include "server/cluster_rt.h"
#include "server/repl.h"
#include "server/fault.h"
#include "server/http_api.h"
#include "server/metrics.h"
#include "util/buf.h"
#include "util/error.h"

/* The input buffer of a connection grows to hold one whole request and a little more; the
 * parser refuses requests past SM_REQUEST_BYTES_MAX, so this bound is never the one a client
 * meets first. */
#define CONN_IN_BYTES_MAX   ((size_t)SM_REQUEST_BYTES_MAX + 64 * 1024)
#define CONN_IN_BYTES_START ((size_t)16 * 1024)
/* Room past output_bytes_max for the reply of a request already admitted: larger than any reply
 * a command produces, so admitted requests always get their reply. */
#define CONN_OUT_SLACK_BYTES ((size_t)1024 * 1024)

struct server;

/* The wait of a connection that went away while parked: cancelled by a record in the next batch,
 * so the lock is not granted to nobody. */
struct wait_cancel {
    struct wait_cancel *next;
    uint64_t waiter_id;
    uint32_t partition;
    uint8_t session_len;
    uint8_t session[SM_KEY_BYTES_MAX];
};

struct conn {
    uv_tcp_t tcp;
    struct server *srv;
    struct conn *prev, *next; /* every open connection */
    struct conn *next_ready;  /* connections with input to parse, in arrival order */
    struct conn *next_held;   /* connections whose replies wait for the batch's fsync */
    bool on_ready_list;
    bool in_batch;    /* on the current batch's held list */
    bool more_parsed; /* stopped at pipeline_max with complete requests still waiting */
    bool is_http;
    bool reading;
    bool closing;
    bool writing;
    bool close_after_write;
    bool awaited; /* answered by a durable batch, its client's next request not here yet */
    uint32_t batch_replies; /* replies of the current batch in out (cluster mode: -TRYAGAIN
                               replaces them all when the batch is dropped) */
    uint8_t *in;
    size_t in_len, in_cap;
    struct resp_parser *resp; /* RESP connections */
    struct http_parser *http; /* HTTP connections */
    struct sm_wbuf out, flight;
    size_t out_ready;
    uv_write_t write_req;
    uint64_t last_active_ms;
    struct node_client client;
};

struct server {
    const struct server_config *cfg;
    uv_loop_t loop;
    uv_tcp_t resp_listener, http_listener;
    bool http_enabled;
    uv_check_t batch_check;
    uv_idle_t batch_idle; /* keeps the loop spinning while parsed input waits */
    uv_timer_t idle_timer;
    uv_signal_t sigint, sigterm;
    struct conn *conns;
    uint32_t conns_count;
    struct conn *ready_head, *ready_tail;
    struct node node;
    struct store store;
    bool store_open;
    /* Group commit: at most one flush (write + fdatasync) in flight, run on the loop thread
     * (see flush_start for why). Replies of the connections in `held` wait for it. */
    bool flushing;
    uv_work_t flush_work;
    struct wal_flush flush;
    int flush_result;
    uint64_t batch_index_last; /* the last record of the batch being made durable */
    uint64_t flush_started_ns;
    struct conn *held;
    struct conn *woken;          /* parked clients answered during this batch (next_held links) */
    struct wait_cancel *cancels; /* waits of closed connections, to cancel in the next batch */
    /* Background snapshots: a forked child writes the state as of snapshot_index while the
     * loop goes on; the parent drops what it covers once the child succeeds. */
    /* The next preallocated segment, zero-filled on a worker thread while this one fills. */
    struct wal_spare_job spare_job;
    uv_work_t spare_work;
    bool spare_busy;
    int spare_rc;
    pid_t snapshot_pid;
    uint64_t snapshot_index;
    uint64_t snapshot_last_index;
    uint64_t snapshot_started_ns;
    uv_timer_t tick_timer;
    bool tick_due;
    uint64_t last_sync_ms; /* --fsync every:<ms> */
    /* The gathering window (--batch-wait-us, see gather_wait): connections the last durable
     * batch answered and that have not sent again yet, and until when the next batch waits
     * for them. */
    uint32_t returning;   /* connections awaited */
    uint32_t ready_count; /* connections on the ready list */
    bool gather_armed;    /* a durable batch was released and its window not yet used */
    uint32_t returning_at_release;
    uint64_t gather_deadline_ns;
    uint32_t gather_skip;    /* batches to run without a window after one that gathered little */
    uint32_t gather_backoff; /* the last such skip: doubles while windows keep gathering little */
    struct server_metrics metrics;
    struct resp_request *request; /* one, reused: requests are executed as they are parsed */
    struct http_request *http_request;
    int lock_fd;
    bool stopping;
    struct cluster_rt *cluster; /* cluster mode only */
    struct repl *repl;          /* cluster mode: the partitions' replicated logs */
    struct store_repl_ops repl_ops;
    int exit_rc; /* a failure after start-up that stopped the node */
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void server_config_defaults(struct server_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->bind_host = "127.0.0.1";
    cfg->resp_port = 7379;
    cfg->http_port = 7380;
    cfg->data_dir = "./data";
    cfg->clients_max = SM_CLIENTS_DEFAULT;
    cfg->pipeline_max = SM_PIPELINE_DEFAULT;
    cfg->output_bytes_max = SM_OUTPUT_BYTES_DEFAULT;
    cfg->idle_timeout_ms = SM_IDLE_TIMEOUT_MS_DEFAULT;
    cfg->partitions = SM_PARTITIONS_DEFAULT;
    cfg->sync_mode = WAL_SYNC_ALWAYS;
    cfg->tick_ms = 100;
    cfg->snapshot_every = 1000000;
    cfg->preallocate = true;
    cfg->cluster_name = CLUSTER_RT_NAME_DEFAULT;
    cfg->replicas = SM_REPLICAS_DEFAULT;
    cfg->lease_ms = CLUSTER_RT_LEASE_MS_DEFAULT;
    cfg->batch_wait_us = SM_BATCH_WAIT_US_DEFAULT;
    store_engine_defaults(&cfg->engine);
}

static void on_batch_idle(uv_idle_t *h)
{
    (void)h; /* only keeps the poll phase from blocking while parsed input waits */
}

/* ---- the ready list ------------------------------------------------------------------------ */

static void ready_push(struct server *s, struct conn *c)
{
    if (c->on_ready_list || c->closing)
        return;
    c->on_ready_list = true;
    s->ready_count++;
    c->next_ready = NULL;
    if (s->ready_tail)
        s->ready_tail->next_ready = c;
    else
        s->ready_head = c;
    s->ready_tail = c;
    if (!s->flushing)
        uv_idle_start(&s->batch_idle, on_batch_idle);
}

/* ---- closing ------------------------------------------------------------------------------- */

static void conn_free(uv_handle_t *h)
{
    struct conn *c = h->data;
    free(c->in);
    free(c->resp);
    free(c->http);
    sm_wbuf_free(&c->out);
    sm_wbuf_free(&c->flight);
    free(c);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    struct server *s = c->srv;
    c->closing = true;
    if (c->client.waiting_for != 0) {
        struct wait_cancel *w = calloc(1, sizeof *w);
        if (w) {
            w->waiter_id = c->client.waiting_for;
            w->partition = c->client.wait_partition;
            w->session_len = c->client.wait_session_len;
            memcpy(w->session, c->client.wait_session, w->session_len);
            w->next = s->cancels;
            s->cancels = w;
        }
        /* Without memory the wait stays queued until its deadline or its session ends. */
    }
    if (c->awaited) {
        c->awaited = false;
        s->returning--;
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->conns_count--;
    s->metrics.connections_closed++;
    uv_close((uv_handle_t *)&c->tcp, conn_free);
}

/* ---- writing ------------------------------------------------------------------------------- */

static void conn_write(struct conn *c);
static void conn_resume_reading(struct conn *c);

static size_t conn_pending_out(const struct conn *c)
{
    return c->out.len + c->flight.len;
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    c->srv->metrics.bytes_written += c->flight.len;
    c->flight.len = 0;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->out_ready > 0) {
        conn_write(c);
        return;
    }
    if (c->close_after_write && c->out.len == 0) {
        conn_close(c);
        return;
    }
    if (c->in_len > 0)
        ready_push(c->srv, c); /* input held back while the client drained its replies */
    conn_resume_reading(c);
}

/* Hands the released part of out to libuv, moving it to flight first. */
static void conn_write(struct conn *c)
{
    if (c->writing || c->closing || c->out_ready == 0)
        return;
    ASSERT(c->flight.len == 0);
    ASSERT(c->out_ready <= c->out.len);
    if (c->out_ready == c->out.len) {
        struct sm_wbuf t = c->flight;
        c->flight = c->out;
        c->out = t;
    } else {
        sm_wbuf_put(&c->flight, c->out.data, c->out_ready);
        if (c->flight.failed) {
            conn_close(c);
            return;
        }
        memmove(c->out.data, c->out.data + c->out_ready, c->out.len - c->out_ready);
        c->out.len -= c->out_ready;
    }
    c->out_ready = 0;
    uv_buf_t buf = uv_buf_init((char *)c->flight.data, (unsigned)c->flight.len);
    c->write_req.data = c;
    c->writing = true;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        c->writing = false;
        conn_close(c);
    }
}

/* Releases everything encoded so far (the batch is durable) and starts writing it. */
static void conn_release(struct conn *c)
{
    c->out_ready = c->out.len;
    conn_write(c);
}

/* ---- reading ------------------------------------------------------------------------------- */

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    (void)suggested;
    if (c->in_cap - c->in_len < 4096 && c->in_cap < CONN_IN_BYTES_MAX) {
        size_t cap = c->in_cap * 2 < CONN_IN_BYTES_MAX ? c->in_cap * 2 : CONN_IN_BYTES_MAX;
        uint8_t *p = realloc(c->in, cap);
        if (p) {
            c->in = p;
            c->in_cap = cap;
        }
    }
    /* A zero-length buffer makes libuv report UV_ENOBUFS, which on_read treats as full. */
    *buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void conn_pause_reading(struct conn *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static bool conn_backpressured(const struct conn *c)
{
    return conn_pending_out(c) >= c->srv->cfg->output_bytes_max;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

/* Starts reading again unless the client owes us a drain. Input already buffered (held back
 * by backpressure) is queued for the next batch. */
static void conn_resume_reading(struct conn *c)
{
    if (c->closing || c->close_after_write || conn_backpressured(c))
        return;
    if (!c->reading && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = true;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = stream->data;
    (void)buf;
    if (nread == UV_ENOBUFS) {
        conn_pause_reading(c);
        ready_push(c->srv, c);
        return;
    }
    if (nread < 0) {
        /* EOF or reset: replies still owed are dropped with the connection; their commands
         * were executed and logged, which a retry with the same request id will find. */
        conn_close(c);
        return;
    }
    if (nread == 0)
        return;
    c->in_len += (size_t)nread;
    c->srv->metrics.bytes_read += (uint64_t)nread;
    if (c->awaited) {
        c->awaited = false;
        c->srv->returning--;
    }
    c->last_active_ms = uv_now(&c->srv->loop);
    ready_push(c->srv, c);
}

/* ---- executing ----------------------------------------------------------------------------- */

static void conn_consume(struct conn *c, size_t used)
{
    ASSERT(used <= c->in_len);
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
}

/* Replies to a protocol error and closes once the reply is out, as Redis does. */
static void conn_protocol_error(struct conn *c, int err, const char *message)
{
    struct resp_encoder enc;
    resp_encoder_init(&enc, &c->out, SIZE_MAX, c->client.resp_version);
    node_count_protocol_error(&c->srv->node);
    if (resp_put_error(&enc, err == SM_E_TOOLARGE ? "TOOLARGE" : "ERR", message) != 0) {
        conn_close(c);
        return;
    }
    c->close_after_write = true;
    conn_pause_reading(c);
}

/* Parses and executes up to pipeline_max requests of one RESP connection. Returns true when
 * complete requests are still waiting (the connection stays on the ready list). */
static bool conn_run_resp(struct conn *c)
{
    struct server *s = c->srv;
    struct resp_encoder enc;
    resp_encoder_init(&enc, &c->out, s->cfg->output_bytes_max + CONN_OUT_SLACK_BYTES,
                      c->client.resp_version);
    size_t used = 0;
    uint32_t executed = 0;
    bool more = false;
    while (!c->close_after_write && c->client.waiting_for == 0) {
        if (executed >= s->cfg->pipeline_max || conn_backpressured(c)) {
            more = !conn_backpressured(c);
            break;
        }
        int rc = resp_request_parse(c->resp, c->in + used, c->in_len - used, s->request);
        if (rc == 0)
            break;
        if (rc < 0) {
            conn_protocol_error(c, rc, resp_parser_message(c->resp));
            break;
        }
        int done = s->cluster ? cluster_rt_command(s->cluster, s->request, &enc) : 0;
        done = done == 1   ? 0
               : done == 0 ? node_execute(&s->node, &c->client, s->request, &enc)
                           : done;
        if (done == SM_E_BUSY) {
            /* The batch's log buffer is full: leave this request unconsumed (the parser starts
             * it again from its first byte) and run it in the next batch. */
            resp_parser_init(c->resp);
            more = true;
            break;
        }
        used += (size_t)rc;
        executed++;
        if (s->request->argc > 0)
            c->batch_replies++;
        if (done != 0) {
            fprintf(stderr,
                    "shardmart: client %llu: reply larger than the output bound; "
                    "closing it\n",
                    (unsigned long long)c->client.id);
            conn_close(c);
            return false;
        }
        if (c->client.close_after_reply) {
            c->close_after_write = true;
            conn_pause_reading(c);
        }
    }
    s->metrics.requests += executed;
    conn_consume(c, used);
    return more;
}

static bool conn_run_http(struct conn *c)
{
    struct server *s = c->srv;
    size_t used = 0;
    while (!c->close_after_write && !conn_backpressured(c)) {
        int rc = http_request_parse(c->http, c->in + used, c->in_len - used, s->http_request);
        if (rc == 0)
            break;
        if (rc < 0) {
            const char *msg = http_parser_message(c->http);
            if (http_response(&c->out, http_parser_status(c->http), "text/plain", msg, strlen(msg),
                              false) != 0) {
                conn_close(c);
                return false;
            }
            c->close_after_write = true;
            conn_pause_reading(c);
            break;
        }
        int done = s->cluster ? cluster_rt_http(s->cluster, s->http_request, &c->out) : 0;
        if (done == 1)
            done = 0;
        else if (done == 0)
            done = server_http_api_path(s->http_request)
                       ? server_http_api(&s->node, &c->client, s->http_request, &c->out)
                       : server_http_handle(&s->node, &s->metrics, s->http_request, &c->out);
        if (done == SM_E_BUSY) {
            /* The batch's log buffer is full: parse this request again next batch. */
            http_parser_init(c->http);
            conn_consume(c, used);
            return true;
        }
        used += (size_t)rc;
        s->metrics.requests++;
        if (done != 0) {
            conn_close(c);
            return false;
        }
        if (!s->http_request->keep_alive) {
            c->close_after_write = true;
            conn_pause_reading(c);
        }
    }
    conn_consume(c, used);
    return false;
}

/* Releases the replies of a finished batch and puts each connection back to work. After a
 * durable batch, the connections left waiting for their client's next request are the ones the
 * gathering window waits for (gather_wait). */
static void release_batch(struct server *s, struct conn *touched, bool durable)
{
    for (struct conn *c = touched, *next; c; c = next) {
        next = c->next_held;
        c->next_held = NULL;
        c->in_batch = false;
        c->batch_replies = 0;
        if (c->closing)
            continue;
        conn_release(c);
        if (c->closing)
            continue;
        /* Only a connection cut off by pipeline_max or a full batch goes straight back on the
         * list: one whose input ends in a partial request waits for more bytes instead. */
        if (c->more_parsed && !c->close_after_write)
            ready_push(s, c);
        else
            conn_resume_reading(c);
        if (c->close_after_write && !c->writing && c->out.len == 0)
            conn_close(c);
        else if (durable && !c->awaited && !c->closing && !c->on_ready_list &&
                 !c->close_after_write && c->reading && c->client.waiting_for == 0) {
            c->awaited = true;
            s->returning++;
        }
    }
    if (durable && s->returning > 0) {
        s->gather_armed = true;
        s->returning_at_release = s->returning;
        s->gather_deadline_ns = uv_hrtime() + (uint64_t)s->cfg->batch_wait_us * 1000u;
    }
}

/* The gathering window. With many clients at pipeline 1, group commit settles into two halves
 * that take turns: the clients answered by one batch send their next request while the next
 * batch (the other half, which arrived during the fsync) is already being made durable, so
 * every batch holds about half of the clients and every request waits for two fsyncs (measured
 * with 50 clients: batches of 25-28). Waiting a little before starting the next batch, until the
 * clients just answered have sent again, lets one batch carry all of them for one fsync.
 *
 * True while the next batch should wait: clients answered by durable batches have not sent
 * again (awaited), they are more than an eighth of those ready (a few idle connections among
 * busy ones hold nothing up), the window (--batch-wait-us after the last release) is open, and
 * the last windows were worth it. Who is still missing when a window closes is not waited for
 * again until it is answered again.
 * Meanwhile the loop sleeps in ppoll() on its own epoll descriptor with a sub-millisecond
 * timeout (libuv's timers count whole milliseconds): it wakes as soon as any socket has input,
 * so a window costs CPU only when input arrives. A window that gathered less than half of
 * what it waited for (an open-loop client that sends on its own schedule, or clients that went
 * quiet) turns the window off for the next 8 batches, then 16, ... up to 256 while windows keep
 * gathering little, so light or paced load is rarely delayed; a window that fills resets it. */
#define GATHER_SKIP_FIRST 8   /* batches without a window after one that gathered little */
#define GATHER_SKIP_MAX   256 /* ... doubling while they keep gathering little */

static bool gather_wait(struct server *s)
{
    if (!s->gather_armed || s->cfg->batch_wait_us == 0 || s->tick_due || !s->ready_head)
        return false;
    uint64_t now = uv_hrtime();
    /* Done waiting: everyone is back, or the few still missing would add little to the batch
     * (an idle connection among busy ones must not hold every batch), or time is up. */
    if (s->returning * 8 <= s->ready_count || now >= s->gather_deadline_ns) {
        if (now < s->gather_deadline_ns) {
            s->gather_backoff = 0; /* a window that filled: keep using them */
        } else {
            if (s->returning * 2 > s->returning_at_release) {
                /* Gathered too little: run the next batches at once, longer each time. */
                s->gather_backoff = s->gather_backoff == 0                 ? GATHER_SKIP_FIRST
                                    : s->gather_backoff >= GATHER_SKIP_MAX ? GATHER_SKIP_MAX
                                                                           : s->gather_backoff * 2;
                s->gather_skip = s->gather_backoff;
            }
            /* Who did not come back in time is not waited for again until answered again. */
            for (struct conn *c = s->conns; c; c = c->next)
                c->awaited = false;
            s->returning = 0;
        }
        s->gather_armed = false;
        return false;
    }
    if (s->gather_skip > 0) {
        s->gather_skip--;
        s->gather_armed = false;
        return false;
    }
    uint64_t left_ns = s->gather_deadline_ns - now;
    ASSERT(left_ns <= (uint64_t)SM_BATCH_WAIT_US_MAX * 1000u);
    struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)left_ns};
    struct pollfd pfd = {.fd = uv_backend_fd(&s->loop), .events = POLLIN};
    (void)ppoll(&pfd, 1, &ts, NULL);
    return true;
}

static void flush_start(struct server *s);

/* Cluster mode: a batch some of whose proposals were dropped (this node lost a partition's
 * primary role before they committed). Its replies must not leave: they may describe state that
 * never commits. Each one becomes -TRYAGAIN; the outcome is unknown, and the client's retry with
 * the same request id is answered exactly once, by whichever primary holds the partition then. */
static void fail_batch(struct server *s, struct conn *touched)
{
    for (struct conn *c = touched; c; c = c->next_held) {
        if (c->closing || c->is_http)
            continue;
        c->out.len = c->out_ready; /* everything after out_ready is this batch's */
        struct resp_encoder enc;
        resp_encoder_init(&enc, &c->out, s->cfg->output_bytes_max + CONN_OUT_SLACK_BYTES,
                          c->client.resp_version);
        for (uint32_t i = 0; i < c->batch_replies; i++) {
            if (resp_put_error(&enc, "TRYAGAIN",
                               "the partition's primary changed before this committed; the "
                               "outcome is unknown: retry with the same request id") != 0) {
                conn_close(c);
                break;
            }
        }
    }
}

/* Cluster mode: the batch that waited for replication is answered (repl.h). */
static void on_repl_batch_done(void *ctx, bool failed)
{
    struct server *s = ctx;
    s->flushing = false;
    struct conn *held = s->held;
    s->held = NULL;
    server_metrics_fsync(&s->metrics, uv_hrtime() - s->flush_started_ns);
    if (failed)
        fail_batch(s, held);
    release_batch(s, held, true);
    if (!s->stopping && s->ready_head)
        uv_idle_start(&s->batch_idle, on_batch_idle);
}

static void spare_work(uv_work_t *w)
{
    struct server *s = w->data;
    s->spare_rc = wal_spare_run(&s->spare_job);
}

static void spare_after(uv_work_t *w, int status)
{
    struct server *s = w->data;
    wal_spare_done(&s->store.wal, &s->spare_job, status < 0 ? status : s->spare_rc);
    s->spare_busy = false;
}

/* Starts making the next segment when the log wants one (the open one is half full). */
static void maybe_spare(struct server *s)
{
    if (s->stopping || s->spare_busy || !wal_spare_wanted(&s->store.wal))
        return;
    wal_spare_begin(&s->store.wal, &s->spare_job);
    s->spare_busy = true;
    s->spare_work.data = s;
    if (uv_queue_work(&s->loop, &s->spare_work, spare_work, spare_after) != 0) {
        wal_spare_done(&s->store.wal, &s->spare_job, -EAGAIN);
        s->spare_busy = false;
    }
}

/* Forks a child that writes a snapshot when enough records have been logged since the last one.
 * Called between batches, with nothing buffered: the state is exactly the log up to its last
 * index, all of it durable. The loop pauses only for fork() itself. */
static void maybe_snapshot(struct server *s)
{
    uint64_t last = wal_index_next(&s->store.wal) - 1;
    if (s->stopping || s->cfg->snapshot_every == 0 || s->snapshot_pid != 0 || s->flushing ||
        store_dirty(&s->store) || last - s->snapshot_last_index < s->cfg->snapshot_every)
        return;
    uint64_t t0 = uv_hrtime();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "shardmart: snapshot: fork failed: %s\n", strerror(errno));
        return;
    }
    if (pid == 0) {
        /* The child holds the data directory's lock too (an inherited descriptor): it must not
         * outlive a parent killed with -9, or the restarted node would wait on it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() == 1)
            _exit(1);
        int rc = store_snapshot_write(&s->store, last);
        _exit(rc == 0 ? 0 : 1);
    }
    s->snapshot_pid = pid;
    s->snapshot_index = last;
    s->snapshot_started_ns = t0;
    server_metrics_snapshot_fork(&s->metrics, uv_hrtime() - t0);
}

/* Reaps the snapshot child; on success, drops the segments and snapshots it makes useless. */
static void reap_snapshot(struct server *s)
{
    if (s->snapshot_pid == 0)
        return;
    int status;
    pid_t r = waitpid(s->snapshot_pid, &status, WNOHANG);
    if (r == 0)
        return;
    s->snapshot_pid = 0;
    bool ok = r > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
    server_metrics_snapshot_done(&s->metrics, ok, uv_hrtime() - s->snapshot_started_ns);
    if (!ok) {
        fprintf(stderr, "shardmart: snapshot at index %llu failed; the log keeps everything\n",
                (unsigned long long)s->snapshot_index);
        return;
    }
    s->snapshot_last_index = s->snapshot_index;
    if (wal_compact(&s->store.wal) != 0)
        fprintf(stderr, "shardmart: compaction after snapshot %llu failed\n",
                (unsigned long long)s->snapshot_index);
}

/* One pwritev and one fdatasync for the whole batch (see flush_start for why on the loop). */
static void flush_work(uv_work_t *w)
{
    struct server *s = w->data;
    const struct sm_fs *fs = &s->store.wal.fs;
    int rc = 0;
    if (s->flush.bytes > 0)
        rc = fs->pwritev(fs->ctx, s->flush.fd, s->flush.iov, s->flush.iovcnt, s->flush.offset);
    if (rc >= 0 && s->flush.sync)
        rc = fs->fdatasync(fs->ctx, s->flush.fd);
    s->flush_result = rc < 0 ? rc : 0;
}

/* After a failed write or fsync nothing more may be acknowledged: the replies held for this
 * batch are dropped with their connections, and the log refuses every later write (it is
 * poisoned) until the node restarts and recovers from what is really on disk. */
static void drop_held(struct server *s, int err)
{
    fprintf(stderr, "shardmart: the log failed (%s); refusing writes until restart\n",
            err < 0 && err > -4096 ? strerror(-err) : sm_strerror(err));
    for (struct conn *c = s->held, *next; c; c = next) {
        next = c->next_held;
        conn_close(c);
    }
    s->held = NULL;
}

static void flush_after(uv_work_t *w, int status)
{
    struct server *s = w->data;
    s->flushing = false;
    int result = status < 0 ? status : s->flush_result;
    int rc = wal_flush_done(&s->store.wal, result);
    server_metrics_fsync(&s->metrics, uv_hrtime() - s->flush_started_ns);
    if (rc != 0) {
        drop_held(s, result < 0 ? result : rc);
        return;
    }
    /* --fsync every:<ms> releases a batch once it is written, the others once it is durable. */
    uint64_t done_index = s->cfg->sync_mode == WAL_SYNC_EVERY ? s->store.wal.index_written
                                                              : wal_index_acked(&s->store.wal);
    if (done_index < s->batch_index_last) {
        flush_start(s); /* the batch crossed a segment boundary: write the rest */
        return;
    }
    struct conn *held = s->held;
    s->held = NULL;
    store_txn_durable(&s->store);
    release_batch(s, held, true);
    if (s->stopping)
        return;
    maybe_spare(s);
    maybe_snapshot(s);
    if (s->ready_head || s->tick_due || store_txn_ready(&s->store))
        uv_idle_start(&s->batch_idle, on_batch_idle);
}

static void flush_start(struct server *s)
{
    /* --fsync every:<ms> writes each batch but syncs only when the last sync is that old. */
    bool sync = true;
    if (s->cfg->sync_mode == WAL_SYNC_EVERY) {
        uint64_t now = uv_now(&s->loop);
        sync = now - s->last_sync_ms >= s->cfg->fsync_every_ms;
        if (sync)
            s->last_sync_ms = now;
    }
    int rc = wal_flush_begin(&s->store.wal, sync, &s->flush);
    if (rc != 0) {
        drop_held(s, rc); /* the log is already poisoned: no flush to finish */
        return;
    }
    s->flushing = true;
    s->flush_started_ns = uv_hrtime();
    s->flush_work.data = s;
    /* The write and fdatasync run on the loop thread. The next batch waits for this one anyway
     * (replies leave in log order), so a worker thread would buy no overlap, only two thread
     * hand-offs per batch: measured here, inline is 22% faster at pipeline 1 (38k vs 31k
     * orders/s) with a shorter fsync (0.39 vs 0.59 ms). Overlapping the next batch's execution
     * with this fsync (pipelined group commit) is what would make the thread pay. */
    flush_work(&s->flush_work);
    flush_after(&s->flush_work, 0);
}

/* Logs the cancellation of every wait whose connection went away. */
static void run_cancels(struct server *s)
{
    struct wait_cancel **at = &s->cancels;
    while (*at) {
        struct wait_cancel *w = *at;
        if (node_cancel_wait(&s->node, w->waiter_id, w->partition, w->session, w->session_len) ==
            SM_E_BUSY) {
            at = &w->next; /* the batch is full: next time */
            continue;
        }
        *at = w->next;
        free(w);
    }
}

/* The store's event sink: a parked client's wait ended (granted, timed out, cancelled). Its
 * reply is encoded now and leaves with the current batch. */
static void on_lock_event(void *ctx, const struct locks_event *ev)
{
    struct server *s = ctx;
    for (struct conn *c = s->conns; c; c = c->next) {
        if (c->closing || c->client.waiting_for != ev->waiter_id)
            continue;
        struct resp_encoder enc;
        resp_encoder_init(&enc, &c->out, s->cfg->output_bytes_max + CONN_OUT_SLACK_BYTES,
                          c->client.resp_version);
        if (node_wake(&c->client, ev, &enc) != 0) {
            conn_close(c);
            return;
        }
        c->more_parsed = c->in_len > 0; /* pipelined requests waited behind the acquire */
        if (!c->in_batch) {
            c->in_batch = true;
            c->next_held = s->woken;
            s->woken = c;
        }
        return;
    }
}

/* The store's sink for cross-partition transactions: every client parked on the decided one
 * (a retry may wait beside the first) gets its reply, which leaves with the current batch. */
static void on_txn_event(void *ctx, const struct txn_event *ev)
{
    struct server *s = ctx;
    for (struct conn *c = s->conns; c; c = c->next) {
        if (c->closing || c->client.waiting_for != ev->waiter_id || c->client.wait_session_len)
            continue;
        struct resp_encoder enc;
        resp_encoder_init(&enc, &c->out, s->cfg->output_bytes_max + CONN_OUT_SLACK_BYTES,
                          c->client.resp_version);
        if (node_txn_wake(&c->client, ev, &enc) != 0) {
            conn_close(c);
            continue;
        }
        c->more_parsed = c->in_len > 0;
        if (!c->in_batch) {
            c->in_batch = true;
            c->next_held = s->woken;
            s->woken = c;
        }
    }
}

/* One batch: every connection with input executes what it has; the batch's records go to the
 * log with one fsync, and only then are its replies, reads included, released. */
static void run_batch(struct server *s)
{
    struct conn *list = s->ready_head;
    s->ready_head = s->ready_tail = NULL;
    s->ready_count = 0;
    uint64_t now = wall_ms();
    node_set_time(&s->node, now);
    struct conn *touched = NULL;
    s->woken = NULL;
    if (s->store_open) {
        store_set_time(&s->store, (int64_t)now);
        run_cancels(s);
        if (s->tick_due && store_tick(&s->store) == 0)
            s->tick_due = false;
        /* Messages between partitions from durable batches (node/txn.h); a full batch leaves
         * the rest for the next, a failed log refuses everything anyway. */
        int delivered = store_txn_deliver(&s->store);
        (void)delivered;
    }
    uint32_t batch = 0;
    for (struct conn *c = list, *next; c; c = next) {
        next = c->next_ready;
        c->on_ready_list = false;
        if (c->closing)
            continue;
        size_t before = s->metrics.requests;
        c->more_parsed = c->is_http ? conn_run_http(c) : conn_run_resp(c);
        batch += (uint32_t)(s->metrics.requests - before);
        if (c->closing || c->in_batch)
            continue;
        c->in_batch = true;
        c->next_held = touched;
        touched = c;
    }
    /* Parked clients answered by this batch's records leave with it. */
    while (s->woken) {
        struct conn *c = s->woken;
        s->woken = c->next_held;
        c->next_held = touched;
        touched = c;
    }
    if (batch > 0)
        server_metrics_batch(&s->metrics, batch);
    if (s->repl) {
        bool failed = false;
        if (repl_batch_end(s->repl, &failed)) {
            s->held = touched;
            s->flushing = true; /* the next batch waits, as for a single node's fsync */
            s->flush_started_ns = uv_hrtime();
            return;
        }
        if (failed)
            fail_batch(s, touched);
        release_batch(s, touched, true);
        return;
    }
    if (s->store_open && store_dirty(&s->store)) {
        s->held = touched;
        s->batch_index_last = wal_index_next(&s->store.wal) - 1;
        flush_start(s);
        return;
    }
    release_batch(s, touched, false);
}

static void on_batch_check(uv_check_t *h)
{
    struct server *s = h->data;
    /* While a batch is being made durable the next one waits (its requests stay buffered), so
     * replies always leave in the order the records were logged. */
    bool messages = s->store_open && store_txn_ready(&s->store);
    if (!s->flushing && (s->ready_head || s->tick_due || messages) && !gather_wait(s))
        run_batch(s);
    messages = s->store_open && store_txn_ready(&s->store);
    if (s->flushing || (!s->ready_head && !s->tick_due && !messages))
        uv_idle_stop(&s->batch_idle);
}

/* Time enters the engines only through tick records (DESIGN.md section 4): every tick interval
 * the next batch starts with one. */
static void on_tick_timer(uv_timer_t *t)
{
    struct server *s = t->data;
    reap_snapshot(s);
    if (!s->store_open)
        return; /* cluster mode: the primaries log their own ticks (repl.h) */
    s->tick_due = true;
    if (!s->flushing)
        uv_idle_start(&s->batch_idle, on_batch_idle);
}

/* ---- accepting ----------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct server *s = listener->data;
    if (status < 0 || s->stopping)
        return;
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return;
    c->srv = s;
    c->is_http = listener == (uv_stream_t *)&s->http_listener;
    uv_tcp_init(&s->loop, &c->tcp);
    c->tcp.data = c;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, conn_free);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    c->in_cap = CONN_IN_BYTES_START;
    c->in = malloc(c->in_cap);
    if (c->is_http)
        c->http = malloc(sizeof *c->http);
    else
        c->resp = malloc(sizeof *c->resp);
    sm_wbuf_init(&c->out);
    sm_wbuf_init(&c->flight);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->conns_count++;
    s->metrics.connections_accepted++;
    if (!c->in || (!c->http && !c->resp)) {
        conn_close(c);
        return;
    }
    if (c->is_http)
        http_parser_init(c->http);
    else
        resp_parser_init(c->resp);
    node_client_init(&s->node, &c->client);
    c->last_active_ms = uv_now(&s->loop);
    if (!c->is_http && s->conns_count > s->cfg->clients_max) {
        static const char full[] = "-ERR max number of clients reached\r\n";
        sm_wbuf_put(&c->out, full, sizeof full - 1);
        s->metrics.connections_rejected++;
        c->close_after_write = true;
        conn_release(c);
        return;
    }
    conn_resume_reading(c);
}

/* ---- timers and signals -------------------------------------------------------------------- */

static void on_idle_timer(uv_timer_t *t)
{
    struct server *s = t->data;
    uint64_t now = uv_now(&s->loop);
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (!c->is_http && s->cfg->idle_timeout_ms > 0 && c->client.waiting_for == 0 &&
            now - c->last_active_ms > s->cfg->idle_timeout_ms) {
            s->metrics.connections_timed_out++;
            conn_close(c);
        }
    }
}

/* At shutdown every connection is already closing (on_signal); what is left are the
 * server's own handles, which need no close callback. */
static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void server_shutdown(struct server *s)
{
    s->stopping = true;
    cluster_rt_stop(s->cluster); /* frees it once its handles are closed */
    s->cluster = NULL;
    repl_close(s->repl); /* likewise; its log is synced and closed now */
    s->repl = NULL;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        conn_close(c);
    }
    uv_stop(&s->loop);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *s = sig->data;
    fprintf(stderr, "shardmart: %s received, shutting down\n",
            signum == SIGINT ? "SIGINT" : "SIGTERM");
    server_shutdown(s);
}

/* The cluster runtime found that this node cannot take part (it said why). */
static void on_cluster_fatal(void *ctx)
{
    struct server *s = ctx;
    s->exit_rc = SM_E_STATE;
    server_shutdown(s);
}

static int start_cluster(struct server *s, int resp_port)
{
    const struct server_config *cfg = s->cfg;
    struct cluster_rt_config rc = {.loop = &s->loop,
                                   .repl = s->repl,
                                   .coord_spec = cfg->cluster_spec,
                                   .cluster_name = cfg->cluster_name,
                                   .node_id = cfg->node_id,
                                   .zone = cfg->zone,
                                   .advertise = cfg->advertise,
                                   .client_host = cfg->bind_host,
                                   .resp_port = resp_port,
                                   .partitions = cfg->partitions,
                                   .replicas = cfg->replicas,
                                   .lease_ms = cfg->lease_ms,
                                   .on_fatal = on_cluster_fatal,
                                   .ctx = s};
    return cluster_rt_start(&s->cluster, &rc);
}

/* The replicated partitions' config changes go to the control plane through the runtime. */
static int on_repl_cas(void *ctx, uint32_t p, const struct cluster_config *c, bool from_controller)
{
    struct server *s = ctx;
    return s->cluster ? cluster_rt_cas(s->cluster, p, c, from_controller) : SM_E_STATE;
}

/* The partition log failed: nothing more may be acknowledged; the replicas take over. */
static void on_repl_fatal(void *ctx)
{
    struct server *s = ctx;
    s->exit_rc = SM_E_IO;
    server_shutdown(s);
}

/* Cluster mode: the partitions' replicated logs (repl.h) in <data dir>/plog, the peer listener
 * on --advertise, and a store that hands the node's trading commands to them. */
static int open_repl(struct server *s)
{
    const struct server_config *cfg = s->cfg;
    char dir[SM_WAL_DIR_BYTES_MAX + 8];
    snprintf(dir, sizeof dir, "%s/plog", cfg->data_dir);
    const char *name = cfg->cluster_name ? cfg->cluster_name : CLUSTER_RT_NAME_DEFAULT;
    struct repl_config rc = {.loop = &s->loop,
                             .dir = dir,
                             .partitions = cfg->partitions,
                             .node_id = cfg->node_id,
                             .engine = cfg->engine,
                             .sync_mode = cfg->sync_mode,
                             .advertise = cfg->advertise,
                             .cluster_id = XXH3_64bits(name, strlen(name)),
                             .cas = on_repl_cas,
                             .cas_ctx = s,
                             .on_fatal = on_repl_fatal,
                             .on_batch_done = on_repl_batch_done,
                             .ctx = s};
    repl_config_defaults(&rc, cfg->lease_ms);
    rc.tick_ms = cfg->tick_ms;
    rc.segment_bytes = cfg->segment_bytes;
    int rv = repl_open(&s->repl, &rc);
    if (rv != 0)
        return rv;
    s->repl_ops = (struct store_repl_ops){.mutate = repl_mutate, .read = repl_read, .ctx = s->repl};
    return store_init_replicated(&s->store, cfg->partitions, &s->repl_ops);
}

/* ---- start-up ------------------------------------------------------------------------------ */

static int listen_on(struct server *s, uv_tcp_t *tcp, const char *what, int *port)
{
    struct sockaddr_in addr;
    if (uv_ip4_addr(s->cfg->bind_host, *port, &addr) != 0) {
        fprintf(stderr, "shardmart: bad bind address '%s' (an IPv4 address is needed)\n",
                s->cfg->bind_host);
        return SM_E_BADARG;
    }
    uv_tcp_init(&s->loop, tcp);
    tcp->data = s;
    int rc = uv_tcp_bind(tcp, (const struct sockaddr *)&addr, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)tcp, 511, on_connection);
    if (rc != 0) {
        fprintf(stderr, "shardmart: cannot listen for %s on %s:%d: %s\n", what, s->cfg->bind_host,
                *port, uv_strerror(rc));
        return SM_E_IO;
    }
    struct sockaddr_storage bound;
    int len = sizeof bound;
    uv_tcp_getsockname(tcp, (struct sockaddr *)&bound, &len);
    *port = ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return 0;
}

/* Creates the data directory and takes its lock, so two nodes never share one directory. */
static int open_data_dir(struct server *s)
{
    const char *dir = s->cfg->data_dir;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "shardmart: cannot create data directory '%s': %s\n", dir, strerror(errno));
        return SM_E_IO;
    }
    char path[SM_WAL_DIR_BYTES_MAX + 16];
    if (strlen(dir) > SM_WAL_DIR_BYTES_MAX) {
        fprintf(stderr, "shardmart: data directory path longer than %d bytes\n",
                SM_WAL_DIR_BYTES_MAX);
        return SM_E_TOOLARGE;
    }
    snprintf(path, sizeof path, "%s/LOCK", dir);
    s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd < 0) {
        fprintf(stderr, "shardmart: data directory '%s' is not usable: %s\n", dir, strerror(errno));
        return SM_E_IO;
    }
    /* A node that just died may leave a snapshot child for a few milliseconds until the kernel
     * delivers its parent-death signal: wait briefly for the lock before calling it taken. */
    int locked = -1;
    for (int tries = 0; tries < 30 && locked != 0; tries++) {
        locked = flock(s->lock_fd, LOCK_EX | LOCK_NB);
        if (locked != 0)
            usleep(100 * 1000);
    }
    if (locked != 0) {
        fprintf(stderr, "shardmart: data directory '%s' is in use by another node\n", dir);
        close(s->lock_fd);
        s->lock_fd = -1;
        return SM_E_IO;
    }
    return 0;
}

/* The partition count is fixed when a data directory is created: every key's partition and
 * every logged record depend on it. It is kept in <dir>/META and a start with another count is
 * refused instead of replaying records into the wrong partitions. */
static int check_meta(struct server *s)
{
    char path[SM_WAL_DIR_BYTES_MAX + 16], tmp[SM_WAL_DIR_BYTES_MAX + 16];
    snprintf(path, sizeof path, "%s/META", s->cfg->data_dir);
    FILE *f = fopen(path, "r");
    if (f) {
        unsigned stored = 0;
        int n = fscanf(f, "partitions %u", &stored);
        fclose(f);
        if (n != 1) {
            fprintf(stderr, "shardmart: %s is damaged (expected 'partitions N')\n", path);
            return SM_E_CORRUPT;
        }
        if (stored != s->cfg->partitions) {
            fprintf(stderr,
                    "shardmart: data directory '%s' was created with --partitions %u; "
                    "it cannot be opened with %u\n",
                    s->cfg->data_dir, stored, s->cfg->partitions);
            return SM_E_BADARG;
        }
        return 0;
    }
    snprintf(tmp, sizeof tmp, "%s/META.tmp", s->cfg->data_dir);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    char line[64];
    int len = snprintf(line, sizeof line, "partitions %u\n", s->cfg->partitions);
    bool ok = fd >= 0 && write(fd, line, (size_t)len) == len && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    int dfd = open(s->cfg->data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ok = ok && dfd >= 0 && fsync(dfd) == 0;
    if (dfd >= 0)
        close(dfd);
    if (!ok) {
        fprintf(stderr, "shardmart: cannot write %s: %s\n", path, strerror(errno));
        return SM_E_IO;
    }
    return 0;
}

static void write_ready_file(const struct server *s, int resp_port, int http_port)
{
    if (!s->cfg->ready_file)
        return;
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->cfg->ready_file);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return;
    fprintf(f, "%d %d\n", resp_port, http_port);
    fclose(f);
    rename(tmp, s->cfg->ready_file); /* atomic: a reader never sees half a line */
}

/* Recovers the partitions from the data directory and says what recovery found. */
static int open_store(struct server *s)
{
    struct store_config sc = {
        .partitions = s->cfg->partitions,
        .engine = s->cfg->engine,
        .dir = s->cfg->data_dir,
        .sync_mode = s->cfg->sync_mode,
        .repair = s->cfg->repair,
        .segment_bytes = s->cfg->segment_bytes,
        .preallocate = s->cfg->preallocate,
    };
    char why[WAL_PATH_BYTES + 256];
    const char *fault = getenv("SHARDMART_FAULT"); /* crash tests only (fault.h) */
    if (fault && server_fault_arm(fault, &sc.fs, why, sizeof why) != 0) {
        fprintf(stderr, "shardmart: cannot start: %s\n", why);
        return SM_E_BADARG;
    }
    if (fault)
        fprintf(stderr, "shardmart: FAULT INJECTION armed: SHARDMART_FAULT=%s (tests only)\n",
                fault);
    struct wal_recovery *report = calloc(1, sizeof *report);
    if (!report)
        return SM_E_NOMEM;
    uint64_t t0 = uv_hrtime();
    int rc = store_open(&s->store, &sc, report, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "shardmart: cannot start: %s\n", why);
        free(report);
        return rc;
    }
    s->store_open = true;
    s->snapshot_last_index = report->snapshot_found ? report->snapshot_index : 0;
    s->store.event_fn = on_lock_event;
    s->store.event_ctx = s;
    s->store.txn_event_fn = on_txn_event;
    s->store.txn_event_ctx = s;
    if (report->torn)
        fprintf(stderr, "shardmart: recovery cut a torn tail of %llu bytes at %s offset %llu\n",
                (unsigned long long)report->torn_bytes, report->torn_path,
                (unsigned long long)report->torn_offset);
    if (report->repaired)
        fprintf(stderr, "shardmart: repair set damage aside: %s (copy in %s)\n",
                report->corrupt_path, report->repair_copy_path);
    printf("shardmart: recovered %llu records after snapshot %llu in %.1f ms\n",
           (unsigned long long)s->store.replayed,
           (unsigned long long)(report->snapshot_found ? report->snapshot_index : 0),
           (double)(uv_hrtime() - t0) / 1e6);
    if (s->cfg->sync_mode == WAL_SYNC_NEVER)
        fprintf(stderr, "shardmart: WARNING: --fsync never: acknowledged writes are lost on a "
                        "machine crash. For benchmarks only.\n");
    free(report);
    return 0;
}

static int server_start(struct server *s, int *resp_port, int *http_port)
{
    /* The data directory's lock and the ports first: a node that cannot serve says so at once,
     * before a recovery that may take seconds. Connections that arrive during recovery wait in
     * the listen backlog; /readyz answers only once the loop runs. */
    int rc = open_data_dir(s);
    if (rc == 0)
        rc = check_meta(s);
    if (rc == 0)
        rc = listen_on(s, &s->resp_listener, "RESP", resp_port);
    if (rc == 0 && s->http_enabled)
        rc = listen_on(s, &s->http_listener, "HTTP", http_port);
    if (rc == 0)
        rc = s->cfg->cluster_spec ? open_repl(s) : open_store(s);
    if (rc != 0)
        return rc;
    struct node_config ncfg = {
        .password = s->cfg->password,
        .clients_max = s->cfg->clients_max,
        .pipeline_max = s->cfg->pipeline_max,
        .output_bytes_max = s->cfg->output_bytes_max,
        .idle_timeout_ms = s->cfg->idle_timeout_ms,
        .partitions = s->cfg->partitions,
        .bind_host = s->cfg->bind_host,
    };
    if (node_init(&s->node, &ncfg, wall_ms()) != 0)
        return SM_E_NOMEM;
    s->node.store = &s->store;
    if (s->store_open)
        maybe_spare(s); /* the first segment, before the first batch needs it */
    s->node.cfg.resp_port = *resp_port;
    s->node.cfg.http_port = *http_port;
    uv_check_init(&s->loop, &s->batch_check);
    s->batch_check.data = s;
    uv_check_start(&s->batch_check, on_batch_check);
    uv_idle_init(&s->loop, &s->batch_idle);
    s->batch_idle.data = s;
    uv_timer_init(&s->loop, &s->idle_timer);
    s->idle_timer.data = s;
    uv_timer_start(&s->idle_timer, on_idle_timer, 1000, 1000);
    uv_timer_init(&s->loop, &s->tick_timer);
    s->tick_timer.data = s;
    uv_timer_start(&s->tick_timer, on_tick_timer, s->cfg->tick_ms, s->cfg->tick_ms);
    uv_signal_init(&s->loop, &s->sigint);
    uv_signal_init(&s->loop, &s->sigterm);
    s->sigint.data = s->sigterm.data = s;
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    if (s->cfg->cluster_spec)
        return start_cluster(s, *resp_port);
    return 0;
}

int server_run(const struct server_config *cfg)
{
    struct server *s = calloc(1, sizeof *s);
    if (!s)
        return SM_E_NOMEM;
    s->cfg = cfg;
    s->lock_fd = -1;
    s->http_enabled = cfg->http_port >= 0;
    s->request = malloc(sizeof *s->request);
    s->http_request = malloc(sizeof *s->http_request);
    signal(SIGPIPE, SIG_IGN);
    /* Every partition allocates its tables at start as zeroed address space. A fixed mmap
     * threshold keeps each large calloc a fresh mapping that the kernel zeroes on first touch;
     * glibc's adaptive threshold would serve them from the heap and memset them all at start. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    int rc = (!s->request || !s->http_request) ? SM_E_NOMEM : uv_loop_init(&s->loop);
    bool loop_ok = rc == 0;
    int resp_port = cfg->resp_port, http_port = cfg->http_port;
    if (rc == 0)
        rc = server_start(s, &resp_port, &http_port);
    if (rc == 0) {
        if (s->http_enabled)
            printf("shardmart: serving RESP on %s:%d, HTTP on %s:%d, data in %s\n", cfg->bind_host,
                   resp_port, cfg->bind_host, http_port, cfg->data_dir);
        else
            printf("shardmart: serving RESP on %s:%d (no HTTP), data in %s\n", cfg->bind_host,
                   resp_port, cfg->data_dir);
        fflush(stdout);
        write_ready_file(s, resp_port, http_port);
        uv_run(&s->loop, UV_RUN_DEFAULT);
    }
    if (rc == 0)
        rc = s->exit_rc;
    if (loop_ok) {
        cluster_rt_stop(s->cluster);
        s->cluster = NULL;
        repl_close(s->repl);
        s->repl = NULL;
        uv_walk(&s->loop, close_walk, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        (void)uv_loop_close(&s->loop);
    }
    if (s->snapshot_pid > 0) {
        /* Let a snapshot in progress finish: it is either complete or a temp file recovery
         * removes, but waiting keeps a restart from replaying what it already covers. */
        int status;
        waitpid(s->snapshot_pid, &status, 0);
    }
    while (s->cancels) {
        struct wait_cancel *w = s->cancels;
        s->cancels = w->next;
        free(w);
    }
    node_free(&s->node);
    if (s->store_open) {
        /* Records of a batch cut short by the shutdown were never acknowledged; syncing them
         * is harmless and makes a restart replay exactly what the engines hold now. */
        if (store_sync(&s->store) != 0)
            fprintf(stderr, "shardmart: final log sync failed\n");
        store_close(&s->store);
    } else if (s->store.repl) {
        store_close(&s->store);
    }
    if (s->lock_fd >= 0)
        close(s->lock_fd);
    free(s->request);
    free(s->http_request);
    free(s);
    return rc;
}
