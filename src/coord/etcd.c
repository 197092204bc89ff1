/*
 * The etcd backend of coord.h: etcd 3.4's v3 JSON gateway over libcurl, on one worker thread per
 * client that drives a curl multi handle, so that a slow request, a long watch stream and a
 * keepalive never wait on one another and the caller's thread never blocks.
 *
 *   caller thread                         worker thread (curl multi)
 *   submit -> inbox (locked) --wakeup-->  take inbox; start HTTP calls and watch streams
 *   poll   <- results (locked) <-eventfd- finished calls, watch lines -> results
 *
 * Unary requests (txn, lease grant/keepalive/revoke) are one POST each. Endpoints are tried in
 * turn from the last one that answered: a request that was not sent (connection refused) or that
 * cannot change anything (reads, keepalives) moves on to the next endpoint; a write that was sent
 * and got no answer is not repeated (it may have applied: SM_E_TIMEOUT) since repeating a CAS
 * could report a conflict with itself.
 *
 * A watch is one streaming POST to /v3/watch (a line of JSON per message). When its stream breaks
 * (etcd restarted, an endpoint died) the worker reconnects to the next endpoint after a short
 * backoff, from the revision after the last event it delivered, so the caller sees every change
 * once, in order, across the break.
 */
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord_internal.h"
#include "coord/etcd_json.h"
#include "util/error.h"

#define REQUEST_TIMEOUT_MS_DEFAULT 5000
#define CONNECT_TIMEOUT_MS_DEFAULT 1000
/* Reconnect backoff of a broken watch: 50 ms doubling to 1 s, so an etcd restart is picked up
 * within about a second while a dead cluster is not hammered. */
#define WATCH_BACKOFF_MS_MIN 50
#define WATCH_BACKOFF_MS_MAX 1000
/* The worker wakes at least this often even with nothing to do (retries are timed by it). */
#define WORKER_POLL_MS 100

enum transfer_kind { TRANSFER_CALL, TRANSFER_WATCH };

/* A growing byte buffer bounded by SM_COORD_RESPONSE_BYTES_MAX. */
struct bytes {
    char *data;
    size_t len;
    size_t cap;
};

/* One unary request in flight. */
struct etcd_call {
    enum transfer_kind kind; /* TRANSFER_CALL: first, for CURLOPT_PRIVATE */
    struct etcd_client *client;
    struct coord_req *req;
    CURL *easy;
    char *body;
    struct bytes response;
    bool too_large;
    size_t endpoint; /* being tried */
    size_t tried;    /* endpoints tried so far */
    char errbuf[CURL_ERROR_SIZE];
    struct etcd_call *next;
};

/* One watch: its stream, or the time to reconnect it. */
struct etcd_watch {
    enum transfer_kind kind; /* TRANSFER_WATCH */
    struct etcd_client *client;
    struct coord_req *req; /* key, prefix, id */
    CURL *easy;            /* NULL while waiting to reconnect */
    char *body;
    struct bytes line;     /* the partial line received so far */
    int64_t next_revision; /* where a new stream starts: after the last event delivered */
    bool created;          /* its DONE went out */
    bool ended;            /* a final result went out: remove it when its stream closes */
    size_t endpoint;
    int failures; /* consecutive streams that broke without being created */
    int64_t retry_at_ms;
    struct coord_result_node *end; /* the final result, allocated when the watch opens */
    char errbuf[CURL_ERROR_SIZE];
};

struct etcd_client {
    struct sm_coord base;
    char endpoints[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX];
    size_t endpoints_count;
    int64_t request_timeout_ms;
    int64_t connect_timeout_ms;
    pthread_t thread;
    CURLM *multi;
    int efd;
    /* Shared with the worker, under lock. */
    pthread_mutex_t lock;
    struct coord_req *inbox_head;
    struct coord_req *inbox_tail;
    size_t inflight; /* submitted requests whose DONE is not yet queued */
    struct coord_results results;
    bool stop;
    /* The worker's own. */
    size_t preferred; /* the endpoint that answered last */
    struct etcd_call *calls;
    struct etcd_watch *watches[SM_COORD_WATCHES_MAX];
    size_t watches_count;
};

static const struct coord_backend etcd_backend;

static struct etcd_client *client_of(struct sm_coord *c)
{
    ASSERT(c && c->backend == &etcd_backend);
    return (struct etcd_client *)c;
}

static int64_t monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- results (worker side) ----------------------------------------------------------------- */

/* Queues a result for the caller and makes the eventfd readable. done: it completes a request. */
static void deliver(struct etcd_client *cl, struct coord_result_node *n, bool done)
{
    pthread_mutex_lock(&cl->lock);
    coord_results_push(&cl->results, n);
    if (done) {
        ASSERT(cl->inflight > 0);
        cl->inflight--;
    }
    uint64_t one = 1;
    ssize_t w = write(cl->efd, &one, sizeof one);
    (void)w; /* an eventfd write only fails when the counter would overflow: it is readable */
    pthread_mutex_unlock(&cl->lock);
}

/* Completes request r with err (0 or negative) and a message, through the result node allocated
 * at submit, so that every request is answered even when memory runs out later. */
__attribute__((format(printf, 4, 5))) static void
complete(struct etcd_client *cl, struct coord_req *r, int err, const char *fmt, ...)
{
    struct coord_result_node *n = r->done;
    r->done = NULL;
    ASSERT(n);
    n->result.err = err;
    va_list ap;
    va_start(ap, fmt);
    /* clang-tidy 14 reports the va_list as uninitialized although va_start set it. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(n->result.message, sizeof n->result.message, fmt, ap);
    va_end(ap);
    deliver(cl, n, true);
}

/* ---- HTTP plumbing ------------------------------------------------------------------------- */

static bool bytes_append(struct bytes *b, const char *data, size_t n)
{
    if (b->len + n > SM_COORD_RESPONSE_BYTES_MAX)
        return false;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p)
            return false;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return true;
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static size_t call_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct etcd_call *call = arg;
    size_t n = size * nmemb;
    if (!bytes_append(&call->response, data, n)) {
        call->too_large = true;
        return 0; /* aborts the transfer: CURLE_WRITE_ERROR */
    }
    return n;
}

/* A POST of body to endpoint + path; NULL when curl cannot make a handle. */
static CURL *make_easy(struct etcd_client *cl, size_t endpoint, const char *path, const char *body,
                       bool stream, char *errbuf, void *owner)
{
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    char url[SM_COORD_ENDPOINT_BYTES_MAX + 64];
    snprintf(url, sizeof url, "%s%s", cl->endpoints[endpoint], path);
    static struct curl_slist json_header = {.data = "Content-Type: application/json"};
    int rc = curl_easy_setopt(e, CURLOPT_URL, url);
    rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, &json_header);
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)cl->connect_timeout_ms);
    /* A watch stream lasts as long as it can; TCP keepalive notices a peer that vanished. */
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, stream ? 0L : (long)cl->request_timeout_ms);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 2L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, owner);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, owner);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (rc != CURLE_OK || curl_multi_add_handle(cl->multi, e) != CURLM_OK) {
        curl_easy_cleanup(e);
        return NULL;
    }
    errbuf[0] = '\0';
    return e;
}

static void drop_easy(struct etcd_client *cl, CURL **e)
{
    if (*e) {
        curl_multi_remove_handle(cl->multi, *e);
        curl_easy_cleanup(*e);
        *e = NULL;
    }
}

/* True when repeating r cannot change the store twice: reads, keepalives, grants (an extra
 * grant is an unused lease that expires), revokes. */
static bool idempotent(const struct coord_req *r)
{
    if (r->kind != SM_COORD_REQ_TXN)
        return true;
    for (size_t i = 0; i < r->nthen + r->nelse; i++)
        if (r->ops[i].kind != SM_COORD_OP_RANGE)
            return false;
    return true;
}

/* ---- unary calls --------------------------------------------------------------------------- */

static void call_free(struct etcd_client *cl, struct etcd_call *call)
{
    struct etcd_call **p = &cl->calls;
    while (*p && *p != call)
        p = &(*p)->next;
    if (*p)
        *p = call->next;
    drop_easy(cl, &call->easy);
    coord_req_free(call->req);
    free(call->body);
    bytes_free(&call->response);
    free(call);
}

static bool call_launch(struct etcd_client *cl, struct etcd_call *call)
{
    bytes_free(&call->response);
    call->too_large = false;
    call->easy = make_easy(cl, call->endpoint, etcd_json_path(call->req->kind), call->body, false,
                           call->errbuf, call);
    if (call->easy)
        curl_easy_setopt(call->easy, CURLOPT_WRITEFUNCTION, call_write);
    return call->easy != NULL;
}

static void call_start(struct etcd_client *cl, struct coord_req *r)
{
    struct etcd_call *call = calloc(1, sizeof *call);
    if (!call || etcd_json_request(r, 0, &call->body) != 0) {
        free(call);
        complete(cl, r, SM_E_NOMEM, "out of memory");
        coord_req_free(r);
        return;
    }
    call->kind = TRANSFER_CALL;
    call->client = cl;
    call->req = r;
    call->endpoint = cl->preferred;
    call->next = cl->calls;
    cl->calls = call;
    if (!call_launch(cl, call)) {
        complete(cl, r, SM_E_NOMEM, "could not start an HTTP request");
        call_free(cl, call);
    }
}

/* The answer to a call that reached etcd with a 200 or an error status. */
static void call_answered(struct etcd_client *cl, struct etcd_call *call, long status)
{
    struct coord_result_node *n = call->req->done;
    call->req->done = NULL;
    ASSERT(n);
    const char *body = call->response.data ? call->response.data : "";
    if (status == 200)
        etcd_json_response(call->req, body, call->response.len, &n->result);
    else
        etcd_json_error(status, body, call->response.len, &n->result);
    cl->preferred = call->endpoint;
    deliver(cl, n, true);
}

/* The transfer of a call ended: answer it, or move on to the next endpoint. */
static void call_done(struct etcd_client *cl, struct etcd_call *call, CURLcode code)
{
    long status = 0, sent = 0;
    curl_easy_getinfo(call->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(call->easy, CURLINFO_REQUEST_SIZE, &sent);
    drop_easy(cl, &call->easy);
    call->tried++;
    if (code == CURLE_OK && status == 200) {
        call_answered(cl, call, status);
    } else if (code == CURLE_OK) {
        /* etcd refused it. TRYAGAIN (no leader on this member) did not apply: another endpoint
         * may have one. TIMEOUT may still apply: only a request that cannot apply twice goes on. */
        struct sm_coord_result probe = {0};
        int err = etcd_json_error(status, call->response.data ? call->response.data : "",
                                  call->response.len, &probe);
        bool retry = (err == SM_E_TRYAGAIN || (err == SM_E_TIMEOUT && idempotent(call->req))) &&
                     call->tried < cl->endpoints_count;
        if (!retry) {
            call_answered(cl, call, status);
        } else {
            call->endpoint = (call->endpoint + 1) % cl->endpoints_count;
            if (call_launch(cl, call))
                return;
            complete(cl, call->req, SM_E_NOMEM, "could not start an HTTP request");
        }
    } else if (call->too_large) {
        complete(cl, call->req, SM_E_TOOLARGE, "etcd's response passes %d bytes",
                 SM_COORD_RESPONSE_BYTES_MAX);
    } else if (sent > 0 && !idempotent(call->req)) {
        complete(cl, call->req, SM_E_TIMEOUT, "etcd %s: %s after sending; it may have applied",
                 cl->endpoints[call->endpoint],
                 call->errbuf[0] ? call->errbuf : curl_easy_strerror(code));
    } else if (call->tried < cl->endpoints_count) {
        call->endpoint = (call->endpoint + 1) % cl->endpoints_count;
        if (call_launch(cl, call))
            return;
        complete(cl, call->req, SM_E_NOMEM, "could not start an HTTP request");
    } else {
        complete(cl, call->req, SM_E_TRYAGAIN, "no etcd endpoint answered (last %s: %s)",
                 cl->endpoints[call->endpoint],
                 call->errbuf[0] ? call->errbuf : curl_easy_strerror(code));
    }
    call_free(cl, call);
}

/* ---- watches ------------------------------------------------------------------------------- */

static void watch_free(struct etcd_client *cl, struct etcd_watch *w)
{
    for (size_t i = 0; i < cl->watches_count; i++) {
        if (cl->watches[i] == w) {
            cl->watches[i] = cl->watches[--cl->watches_count];
            break;
        }
    }
    drop_easy(cl, &w->easy);
    coord_req_free(w->req);
    free(w->body);
    bytes_free(&w->line);
    if (w->end) {
        sm_coord_result_free(&w->end->result);
        free(w->end);
    }
    free(w);
}

/* Ends the watch with err: DONE if it was never created, else a final WATCH_EVENTS. */
static void watch_end(struct etcd_client *cl, struct etcd_watch *w, int err, const char *why)
{
    if (w->ended)
        return;
    w->ended = true;
    if (!w->created) {
        complete(cl, w->req, err, "watch: %s", why);
        return;
    }
    struct coord_result_node *n = w->end;
    w->end = NULL;
    ASSERT(n);
    coord_result_fail(&n->result, err, "watch: %s", why);
    deliver(cl, n, false);
}

static void watch_events(struct etcd_client *cl, struct etcd_watch *w, struct etcd_watch_msg *m)
{
    /* After a reconnect etcd starts at next_revision, so nothing repeats; skip defensively. */
    size_t keep = 0;
    for (size_t i = 0; i < m->events_count; i++) {
        if (m->events[i].kv.mod_revision < w->next_revision) {
            coord_kv_free(&m->events[i].kv);
            continue;
        }
        m->events[keep++] = m->events[i];
    }
    m->events_count = keep;
    if (keep == 0)
        return;
    struct coord_result_node *n =
        coord_result_new(SM_COORD_WATCH_EVENTS, SM_COORD_REQ_WATCH, w->req->id);
    if (!n) {
        watch_end(cl, w, SM_E_NOMEM, "out of memory");
        return;
    }
    n->result.events = m->events;
    n->result.events_count = keep;
    n->result.revision = m->events[keep - 1].kv.mod_revision;
    w->next_revision = n->result.revision + 1;
    m->events = NULL;
    m->events_count = 0;
    deliver(cl, n, false);
}

/* One line of the stream. False to abort the stream (the watch has ended). */
static bool watch_line(struct etcd_client *cl, struct etcd_watch *w, const char *line, size_t len)
{
    if (len == 0)
        return true;
    struct etcd_watch_msg m;
    int rc = etcd_json_watch_line(line, len, &m);
    if (rc != 0) {
        watch_end(cl, w, rc, "a stream message not as documented");
        return false;
    }
    if (m.error) {
        /* The stream failed (etcd stopping, say): reconnect when it closes. */
        etcd_watch_msg_free(&m);
        return false;
    }
    if (m.canceled) {
        watch_end(cl, w, m.compact_revision > 0 ? SM_E_STATE : SM_E_IO,
                  m.compact_revision > 0 ? "its start revision was compacted"
                                         : (m.reason[0] ? m.reason : "cancelled by etcd"));
        etcd_watch_msg_free(&m);
        return false;
    }
    if (m.created) {
        if (w->next_revision == 0)
            w->next_revision = m.header_revision + 1;
        w->failures = 0;
        cl->preferred = w->endpoint;
        if (!w->created) {
            struct coord_result_node *n = w->req->done;
            w->req->done = NULL;
            ASSERT(n);
            n->result.revision = m.header_revision;
            w->created = true;
            deliver(cl, n, true);
        }
    }
    watch_events(cl, w, &m);
    etcd_watch_msg_free(&m);
    return !w->ended;
}

static size_t watch_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct etcd_watch *w = arg;
    size_t n = size * nmemb;
    if (w->ended)
        return 0;
    if (!bytes_append(&w->line, data, n)) {
        watch_end(w->client, w, SM_E_TOOLARGE, "a stream message passes the response bound");
        return 0;
    }
    size_t start = 0;
    for (size_t i = 0; i < w->line.len; i++) {
        if (w->line.data[i] != '\n')
            continue;
        if (!watch_line(w->client, w, w->line.data + start, i - start))
            return 0;
        start = i + 1;
    }
    memmove(w->line.data, w->line.data + start, w->line.len - start);
    w->line.len -= start;
    return n;
}

static bool watch_connect(struct etcd_client *cl, struct etcd_watch *w)
{
    free(w->body);
    w->body = NULL;
    w->line.len = 0;
    if (etcd_json_request(w->req, w->next_revision, &w->body) != 0)
        return false;
    w->easy = make_easy(cl, w->endpoint, "/v3/watch", w->body, true, w->errbuf, w);
    if (w->easy)
        curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, watch_write);
    return w->easy != NULL;
}

static void watch_start(struct etcd_client *cl, struct coord_req *r)
{
    if (cl->watches_count >= SM_COORD_WATCHES_MAX) {
        complete(cl, r, SM_E_BUSY, "a client watches at most %d ranges", SM_COORD_WATCHES_MAX);
        coord_req_free(r);
        return;
    }
    struct etcd_watch *w = calloc(1, sizeof *w);
    struct coord_result_node *end =
        coord_result_new(SM_COORD_WATCH_EVENTS, SM_COORD_REQ_WATCH, r->id);
    if (!w || !end) {
        free(w);
        free(end);
        complete(cl, r, SM_E_NOMEM, "out of memory");
        coord_req_free(r);
        return;
    }
    w->end = end;
    w->kind = TRANSFER_WATCH;
    w->client = cl;
    w->req = r;
    w->next_revision = r->start_revision;
    w->endpoint = cl->preferred;
    cl->watches[cl->watches_count++] = w;
    if (!watch_connect(cl, w)) {
        watch_end(cl, w, SM_E_NOMEM, "could not start an HTTP request");
        watch_free(cl, w);
    }
}

/* The stream of w closed: end it, or reconnect after a backoff to the next endpoint. */
static void watch_done(struct etcd_client *cl, struct etcd_watch *w, CURLcode code)
{
    drop_easy(cl, &w->easy);
    if (!w->ended && w->line.len > 0) /* a last message without its newline */
        watch_line(cl, w, w->line.data, w->line.len);
    w->line.len = 0;
    if (w->ended) {
        watch_free(cl, w);
        return;
    }
    w->failures++;
    if (!w->created && (size_t)w->failures >= cl->endpoints_count) {
        char why[SM_COORD_MESSAGE_BYTES_MAX];
        snprintf(why, sizeof why, "no etcd endpoint answered (last %.60s: %.60s)",
                 cl->endpoints[w->endpoint], w->errbuf[0] ? w->errbuf : curl_easy_strerror(code));
        watch_end(cl, w, SM_E_TRYAGAIN, why);
        watch_free(cl, w);
        return;
    }
    int shift = w->failures > 5 ? 5 : w->failures - 1;
    int64_t backoff = (int64_t)WATCH_BACKOFF_MS_MIN << (shift < 0 ? 0 : shift);
    if (backoff > WATCH_BACKOFF_MS_MAX)
        backoff = WATCH_BACKOFF_MS_MAX;
    w->endpoint = (w->endpoint + 1) % cl->endpoints_count;
    w->retry_at_ms = monotonic_ms() + (w->created ? backoff : 0);
}

static void watch_cancel(struct etcd_client *cl, struct coord_req *r)
{
    for (size_t i = 0; i < cl->watches_count; i++) {
        struct etcd_watch *w = cl->watches[i];
        if (w->req->id == r->watch_id && !w->ended) {
            if (!w->created)
                complete(cl, w->req, 0, "cancelled before it opened");
            watch_free(cl, w);
            complete(cl, r, 0, "%s", "");
            coord_req_free(r);
            return;
        }
    }
    complete(cl, r, SM_E_NOTFOUND, "no watch %" PRIu64, r->watch_id);
    coord_req_free(r);
}

/* Reconnects the watches whose backoff passed; returns ms until the next one is due. */
static int64_t watch_retry(struct etcd_client *cl)
{
    int64_t now = monotonic_ms(), next = WORKER_POLL_MS;
    for (size_t i = 0; i < cl->watches_count; i++) {
        struct etcd_watch *w = cl->watches[i];
        if (w->easy || w->ended)
            continue;
        if (w->retry_at_ms <= now) {
            if (!watch_connect(cl, w))
                w->retry_at_ms = now + WATCH_BACKOFF_MS_MAX;
        } else if (w->retry_at_ms - now < next) {
            next = w->retry_at_ms - now;
        }
    }
    return next;
}

/* ---- the worker ---------------------------------------------------------------------------- */

static void start(struct etcd_client *cl, struct coord_req *r)
{
    r->next = NULL;
    switch (r->kind) {
    case SM_COORD_REQ_WATCH:
        watch_start(cl, r);
        break;
    case SM_COORD_REQ_WATCH_CANCEL:
        watch_cancel(cl, r);
        break;
    case SM_COORD_REQ_TXN:
    case SM_COORD_REQ_LEASE_GRANT:
    case SM_COORD_REQ_LEASE_KEEPALIVE:
    case SM_COORD_REQ_LEASE_REVOKE:
        call_start(cl, r);
        break;
    }
}

static void transfers_done(struct etcd_client *cl)
{
    int left;
    CURLMsg *m;
    while ((m = curl_multi_info_read(cl->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        void *owner = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&owner);
        ASSERT(owner);
        CURLcode code = m->data.result;
        if (*(enum transfer_kind *)owner == TRANSFER_CALL)
            call_done(cl, owner, code);
        else
            watch_done(cl, owner, code);
    }
}

static void *worker(void *arg)
{
    struct etcd_client *cl = arg;
    for (;;) {
        pthread_mutex_lock(&cl->lock);
        bool stop = cl->stop;
        struct coord_req *r = cl->inbox_head;
        cl->inbox_head = cl->inbox_tail = NULL;
        pthread_mutex_unlock(&cl->lock);
        if (stop) {
            while (r) {
                struct coord_req *next = r->next;
                coord_req_free(r);
                r = next;
            }
            break;
        }
        while (r) {
            struct coord_req *next = r->next;
            start(cl, r);
            r = next;
        }
        int running;
        curl_multi_perform(cl->multi, &running);
        transfers_done(cl);
        /* Ended watches whose stream is gone are freed here. */
        for (size_t i = cl->watches_count; i > 0; i--)
            if (cl->watches[i - 1]->ended && !cl->watches[i - 1]->easy)
                watch_free(cl, cl->watches[i - 1]);
        int64_t wait_ms = watch_retry(cl);
        curl_multi_poll(cl->multi, NULL, 0, (int)wait_ms, NULL);
    }
    while (cl->calls)
        call_free(cl, cl->calls);
    while (cl->watches_count > 0)
        watch_free(cl, cl->watches[cl->watches_count - 1]);
    return NULL;
}

/* ---- the caller's side --------------------------------------------------------------------- */

static int etcd_submit(struct sm_coord *c, struct coord_req *r)
{
    struct etcd_client *cl = client_of(c);
    pthread_mutex_lock(&cl->lock);
    if (cl->inflight + cl->results.count >= SM_COORD_PENDING_MAX) {
        pthread_mutex_unlock(&cl->lock);
        return SM_E_BUSY;
    }
    r->done = coord_result_new(SM_COORD_DONE, r->kind, r->id);
    if (!r->done) {
        pthread_mutex_unlock(&cl->lock);
        return SM_E_NOMEM;
    }
    r->next = NULL;
    if (cl->inbox_tail)
        cl->inbox_tail->next = r;
    else
        cl->inbox_head = r;
    cl->inbox_tail = r;
    cl->inflight++;
    pthread_mutex_unlock(&cl->lock);
    curl_multi_wakeup(cl->multi);
    return 0;
}

static int etcd_poll(struct sm_coord *c, struct sm_coord_result *out)
{
    struct etcd_client *cl = client_of(c);
    pthread_mutex_lock(&cl->lock);
    int got = coord_results_pop(&cl->results, out);
    if (cl->results.count == 0) {
        /* Drain the eventfd so that it is readable exactly while results wait. */
        uint64_t v;
        ssize_t n = read(cl->efd, &v, sizeof v);
        (void)n; /* EAGAIN when it was already drained */
    }
    pthread_mutex_unlock(&cl->lock);
    return got;
}

static int etcd_fd(const struct sm_coord *c)
{
    ASSERT(c && c->backend == &etcd_backend);
    return ((const struct etcd_client *)c)->efd;
}

static void etcd_close(struct sm_coord *c)
{
    struct etcd_client *cl = client_of(c);
    pthread_mutex_lock(&cl->lock);
    cl->stop = true;
    pthread_mutex_unlock(&cl->lock);
    curl_multi_wakeup(cl->multi);
    pthread_join(cl->thread, NULL);
    while (cl->inbox_head) {
        struct coord_req *next = cl->inbox_head->next;
        coord_req_free(cl->inbox_head);
        cl->inbox_head = next;
    }
    coord_results_clear(&cl->results);
    curl_multi_cleanup(cl->multi);
    close(cl->efd);
    pthread_mutex_destroy(&cl->lock);
    free(cl);
}

static const struct coord_backend etcd_backend = {
    .submit = etcd_submit,
    .poll = etcd_poll,
    .fd = etcd_fd,
    .close = etcd_close,
};

/* ---- opening ------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* An endpoint is http(s)://host:port with no spaces, quotes or control bytes. */
static bool endpoint_ok(const char *e)
{
    if (strncmp(e, "http://", 7) != 0 && strncmp(e, "https://", 8) != 0)
        return false;
    const char *host = strstr(e, "//") + 2;
    if (!*host)
        return false;
    for (const char *p = e; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' || (unsigned char)*p >= 0x7f)
            return false;
    return true;
}

int sm_coord_etcd_parse_endpoints(const char *spec, struct sm_coord_etcd_config *cfg,
                                  char buf[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX])
{
    ASSERT(cfg && buf);
    cfg->endpoints_count = 0;
    if (!spec || !*spec)
        return SM_E_BADARG;
    const char *scheme = "http://";
    if (strncmp(spec, "etcd://", 7) == 0)
        spec += 7;
    if (!*spec)
        return SM_E_BADARG;
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (n == 0)
            return SM_E_BADARG;
        if (cfg->endpoints_count >= SM_COORD_ENDPOINTS_MAX)
            return SM_E_TOOLARGE;
        bool has_scheme = strstr(p, "://") && strstr(p, "://") < p + n;
        size_t total = n + (has_scheme ? 0 : strlen(scheme));
        if (total >= SM_COORD_ENDPOINT_BYTES_MAX)
            return SM_E_TOOLARGE;
        char *e = buf[cfg->endpoints_count];
        snprintf(e, SM_COORD_ENDPOINT_BYTES_MAX, "%s%.*s", has_scheme ? "" : scheme, (int)n, p);
        if (!endpoint_ok(e))
            return SM_E_BADARG;
        cfg->endpoints[cfg->endpoints_count++] = e;
        p += n;
        if (*p == ',') {
            p++;
            if (!*p)
                return SM_E_BADARG;
        }
    }
    return 0;
}

int sm_coord_etcd_open(const struct sm_coord_etcd_config *cfg, struct sm_coord **out)
{
    ASSERT(cfg && out);
    *out = NULL;
    if (cfg->endpoints_count == 0 || cfg->endpoints_count > SM_COORD_ENDPOINTS_MAX ||
        cfg->request_timeout_ms < 0 || cfg->connect_timeout_ms < 0)
        return SM_E_BADARG;
    for (size_t i = 0; i < cfg->endpoints_count; i++) {
        if (!cfg->endpoints[i])
            return SM_E_BADARG;
        if (strlen(cfg->endpoints[i]) >= SM_COORD_ENDPOINT_BYTES_MAX)
            return SM_E_TOOLARGE;
        if (!endpoint_ok(cfg->endpoints[i]))
            return SM_E_BADARG;
    }
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return SM_E_IO;
    struct etcd_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return SM_E_NOMEM;
    cl->base.backend = &etcd_backend;
    for (size_t i = 0; i < cfg->endpoints_count; i++) {
        snprintf(cl->endpoints[i], sizeof cl->endpoints[i], "%s", cfg->endpoints[i]);
        size_t n = strlen(cl->endpoints[i]);
        if (n > 0 && cl->endpoints[i][n - 1] == '/')
            cl->endpoints[i][n - 1] = '\0'; /* paths start with '/' */
    }
    cl->endpoints_count = cfg->endpoints_count;
    cl->request_timeout_ms =
        cfg->request_timeout_ms ? cfg->request_timeout_ms : REQUEST_TIMEOUT_MS_DEFAULT;
    cl->connect_timeout_ms =
        cfg->connect_timeout_ms ? cfg->connect_timeout_ms : CONNECT_TIMEOUT_MS_DEFAULT;
    cl->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    cl->multi = curl_multi_init();
    int rc = SM_E_IO;
    if (cl->efd < 0 || !cl->multi || pthread_mutex_init(&cl->lock, NULL) != 0)
        goto fail;
    if (pthread_create(&cl->thread, NULL, worker, cl) != 0) {
        pthread_mutex_destroy(&cl->lock);
        goto fail;
    }
    *out = &cl->base;
    return 0;
fail:
    if (cl->multi)
        curl_multi_cleanup(cl->multi);
    if (cl->efd >= 0)
        close(cl->efd);
    free(cl);
    return rc;
}
