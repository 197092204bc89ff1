/*
 * The transport between nodes (see peer.h for the contract, peer_frame.h for the bytes).
 *
 * Life of an outbound connection:
 *
 *   send -> (no connection) CONNECTING --connect ok--> HELLO (ours written, theirs awaited)
 *        --their HELLO checked--> READY (queued frames flow) --error or EOF--> CLOSING
 *        --> reconnect timer (backoff doubles up to the max, resets after a handshake)
 *
 * An inbound connection starts in HELLO (theirs awaited), answers with ours once it checks out,
 * and then delivers MESSAGE frames with the sender's node id. A connection that breaks a rule
 * (bad frame, wrong handshake) is closed with a one-line reason on stderr; nothing of a bad frame
 * is delivered, and the frames before it were whole and checked.
 *
 * Sends only append to the peer's pending buffer; a check handle (after the loop's I/O callbacks)
 * and an idle handle (for sends made from timers or outside the loop) hand each dirty peer's
 * pending bytes to one uv_write, so a batch of messages costs one write call. While that write is
 * in flight new sends gather in pending again; its completion starts the next one.
 *
 * Memory: a peer costs two buffers that grow to what it queues (bounded by queue_bytes_max
 * together) and a connection an input buffer that grows to the largest frame it receives (bounded
 * by message_bytes_max). They are allocated on demand, not at start, because the largest frames
 * are rare (snapshots) and most of the 4096 possible peers are never used; a buffer grown past
 * BUF_KEEP_BYTES is released once empty.
 */
#include "server/peer.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/peer_frame.h"
#include "util/error.h"

/* An input buffer's first size, and what a grown buffer shrinks back to. */
#define BUF_START_BYTES (64 * 1024)
#define BUF_KEEP_BYTES  (4 * 1024 * 1024)
/* TCP keepalive: a peer whose machine vanished is noticed even when nothing is being sent. */
#define KEEPALIVE_S 10

/* A growable byte buffer (not sm_wbuf: its failure is sticky, and a refused send must leave the
 * queue usable). */
struct bytes {
    uint8_t *data;
    size_t len, cap;
};

enum conn_state { CONN_CONNECTING, CONN_HELLO, CONN_READY, CONN_CLOSING };

/* One TCP connection, either direction. Freed in its close callback, never before, so a callback
 * that stops the net or forgets a peer in the middle of a read leaves it valid to the end. */
struct peer_conn {
    uv_tcp_t tcp;
    uv_connect_t connect_req;
    uv_write_t hello_req, write_req;
    struct peer_net *net;
    struct peer *peer; /* outbound: the peer it serves (NULL once detached); inbound: NULL */
    bool outbound;
    bool writing; /* write_req is in flight with `flight` */
    enum conn_state state;
    uint32_t node;       /* outbound: the peer; inbound: the sender, once its HELLO is in */
    uint64_t started_ms; /* for the handshake deadline */
    uint8_t hello[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES];
    struct bytes flight;           /* frames of the write in progress */
    uint64_t flight_messages;      /* how many */
    struct bytes in;               /* bytes read and not yet consumed */
    size_t in_need;                /* the size the frame being read will have */
    struct peer_conn *prev, *next; /* the net's list of open connections */
};

/* A node we send to. Freed in its timer's close callback (forget or stop). */
struct peer {
    struct peer_net *net;
    uint32_t node;
    char host[SM_PEER_HOST_BYTES_MAX + 1];
    uint16_t port;
    struct sockaddr_storage addr;
    struct peer_conn *out;     /* the outbound connection, in any state but CLOSING */
    struct bytes pending;      /* frames waiting for the next write */
    uint64_t pending_messages; /* how many */
    bool wanted;               /* a send happened: keep a connection up from now on */
    bool connected;            /* out is READY */
    bool dirty;                /* on the net's dirty list */
    struct peer *dirty_next;
    uv_timer_t reconnect_timer;
    bool timer_armed;
    bool retrying; /* the next connect is a reconnect */
    int64_t backoff_ms;
    uint64_t bytes_out, messages_out, messages_dropped, reconnects;
};

struct peer_net {
    struct peer_net_config cfg;
    char bind_host[SM_PEER_HOST_BYTES_MAX + 1];
    uint16_t port;
    uv_tcp_t listener;
    uv_check_t flush_check;
    uv_idle_t flush_idle;
    uv_timer_t sweep_timer;
    uint32_t handles_open; /* freed when stopping and this reaches 0 */
    bool stopping;
    struct peer_conn *conns;
    struct peer *dirty;
    struct peer_net_stats stats;
    struct peer *peers[SM_CLUSTER_NODES_MAX];
};

static void conn_close(struct peer_conn *c, const char *why);
static void peer_flush(struct peer *p);

/* ---- small helpers ------------------------------------------------------------------------- */

static bool bytes_reserve(struct bytes *b, size_t n)
{
    ASSERT(b->len <= b->cap);
    if (n <= b->cap - b->len)
        return true;
    size_t cap = b->cap ? b->cap : BUF_START_BYTES;
    while (cap - b->len < n)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return false;
    b->data = d;
    b->cap = cap;
    return true;
}

/* Empties b, and gives its memory back when it grew past what is worth keeping. */
static void bytes_clear(struct bytes *b)
{
    b->len = 0;
    if (b->cap > BUF_KEEP_BYTES) {
        free(b->data);
        b->data = NULL;
        b->cap = 0;
    }
}

static void bytes_free(struct bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int parse_addr(const char *host, uint16_t port, struct sockaddr_storage *out)
{
    if (!host || strlen(host) > SM_PEER_HOST_BYTES_MAX)
        return SM_E_BADARG;
    memset(out, 0, sizeof *out);
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)out) == 0)
        return 0;
    if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)out) == 0)
        return 0;
    return SM_E_BADARG;
}

static void handle_closed(struct peer_net *n)
{
    ASSERT(n->handles_open > 0);
    n->handles_open--;
    if (n->stopping && n->handles_open == 0)
        free(n);
}

static void on_net_handle_closed(uv_handle_t *h)
{
    handle_closed(h->data);
}

/* "node 3 (127.0.0.1:7000)" or "127.0.0.1:53412" for an inbound connection not yet known. */
static void conn_describe(const struct peer_conn *c, char *out, size_t cap)
{
    struct sockaddr_storage sa;
    int len = sizeof sa;
    char ip[64] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&sa, &len) == 0) {
        if (sa.ss_family == AF_INET) {
            uv_ip4_name((struct sockaddr_in *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in *)&sa)->sin_port);
        } else if (sa.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&sa, ip, sizeof ip);
            port = ntohs(((struct sockaddr_in6 *)&sa)->sin6_port);
        }
    } else if (c->peer) {
        size_t n = strlen(c->peer->host);
        ASSERT(n < sizeof ip);
        memcpy(ip, c->peer->host, n + 1);
        port = c->peer->port;
    }
    if (c->outbound || c->state == CONN_READY)
        snprintf(out, cap, "%s node %u (%s:%d)", c->outbound ? "to" : "from", c->node, ip, port);
    else
        snprintf(out, cap, "from %s:%d", ip, port);
}

/* ---- connections --------------------------------------------------------------------------- */

static struct peer_conn *conn_new(struct peer_net *n, bool outbound)
{
    struct peer_conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->net = n;
    c->outbound = outbound;
    c->started_ms = uv_now(n->cfg.loop);
    int rc = uv_tcp_init(n->cfg.loop, &c->tcp);
    ASSERT(rc == 0); /* uv_tcp_init only fails for a bad flags argument */
    n->handles_open++;
    c->tcp.data = c;
    c->connect_req.data = c;
    c->hello_req.data = c;
    c->write_req.data = c;
    c->next = n->conns;
    if (n->conns)
        n->conns->prev = c;
    n->conns = c;
    if (!outbound)
        n->stats.inbound_connections++;
    return c;
}

static void on_conn_closed(uv_handle_t *h)
{
    struct peer_conn *c = h->data;
    struct peer_net *n = c->net;
    ASSERT(c->state == CONN_CLOSING && !c->writing);
    bytes_free(&c->in);
    bytes_free(&c->flight);
    free(c);
    handle_closed(n);
}

static void peer_schedule_reconnect(struct peer *p);

/* Closes c (once; later calls do nothing). why, when not NULL, is logged as the reason. An
 * outbound connection's peer loses it: frames of the write in progress are counted as dropped
 * (they may or may not have arrived), the pending ones stay, and a reconnect is scheduled. */
static void conn_close(struct peer_conn *c, const char *why)
{
    if (c->state == CONN_CLOSING)
        return;
    struct peer_net *n = c->net;
    bool was_ready = c->state == CONN_READY;
    if (why) {
        char who[128];
        conn_describe(c, who, sizeof who);
        fprintf(stderr, "shardmart: peer connection %s closed: %s\n", who, why);
    }
    c->state = CONN_CLOSING;
    if (c->prev)
        c->prev->next = c->next;
    else
        n->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (!c->outbound) {
        ASSERT(n->stats.inbound_connections > 0);
        n->stats.inbound_connections--;
    }
    if (c->writing) {
        n->stats.messages_dropped += c->flight_messages;
        if (c->peer)
            c->peer->messages_dropped += c->flight_messages;
        c->flight_messages = 0;
    }
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);

    struct peer *p = c->peer;
    if (!p)
        return;
    ASSERT(c->outbound && p->out == c);
    p->out = NULL;
    c->peer = NULL;
    if (was_ready) {
        ASSERT(p->connected && n->stats.peers_connected > 0);
        p->connected = false;
        n->stats.peers_connected--;
    }
    if (n->stopping)
        return;
    if (p->wanted)
        peer_schedule_reconnect(p);
    /* Last: the callback may forget p or stop the net. */
    if (was_ready && n->cfg.on_state)
        n->cfg.on_state(n->cfg.ctx, p->node, false);
}

static void on_write(uv_write_t *req, int status)
{
    struct peer_conn *c = req->data;
    struct peer_net *n = c->net;
    ASSERT(c->writing);
    if (status < 0 && c->state != CONN_CLOSING)
        conn_close(c, uv_strerror(status)); /* counts the flight as dropped */
    c->writing = false;
    if (c->state == CONN_CLOSING) {
        c->flight.len = 0;
        return;
    }
    n->stats.bytes_out += c->flight.len;
    n->stats.messages_out += c->flight_messages;
    if (c->peer) {
        c->peer->bytes_out += c->flight.len;
        c->peer->messages_out += c->flight_messages;
    }
    c->flight_messages = 0;
    bytes_clear(&c->flight);
    /* What gathered while this write was in flight goes out now, in one write. */
    if (c->peer)
        peer_flush(c->peer);
}

static void on_hello_written(uv_write_t *req, int status)
{
    struct peer_conn *c = req->data;
    if (status < 0 && c->state != CONN_CLOSING)
        conn_close(c, uv_strerror(status));
}

static void conn_send_hello(struct peer_conn *c, uint32_t to_node)
{
    struct peer_hello h = {.cluster_id = c->net->cfg.cluster_id,
                           .from_node = c->net->cfg.self_node,
                           .to_node = to_node};
    peer_hello_encode(c->hello, &h);
    uv_buf_t buf = uv_buf_init((char *)c->hello, sizeof c->hello);
    int rc = uv_write(&c->hello_req, (uv_stream_t *)&c->tcp, &buf, 1, on_hello_written);
    if (rc != 0) {
        conn_close(c, uv_strerror(rc));
        return;
    }
    c->net->stats.bytes_out += sizeof c->hello;
}

/* Checks a HELLO against this net: NULL when it is acceptable, else why not. */
static const char *hello_check(const struct peer_net *n, const struct peer_hello *h,
                               const struct peer_conn *c, char *why, size_t cap)
{
    if (h->cluster_id != n->cfg.cluster_id) {
        snprintf(why, cap, "wrong cluster id %llu (this cluster is %llu)",
                 (unsigned long long)h->cluster_id, (unsigned long long)n->cfg.cluster_id);
        return why;
    }
    if (h->to_node != n->cfg.self_node) {
        snprintf(why, cap, "it meant to reach node %u, this is node %u", h->to_node,
                 n->cfg.self_node);
        return why;
    }
    if (c->outbound ? h->from_node != c->node
                    : h->from_node == n->cfg.self_node || h->from_node >= SM_CLUSTER_NODES_MAX) {
        if (c->outbound)
            snprintf(why, cap, "answered as node %u, not node %u", h->from_node, c->node);
        else
            snprintf(why, cap, "wrong node id %u", h->from_node);
        return why;
    }
    return NULL;
}

static void conn_handshake(struct peer_conn *c, const struct peer_frame *f)
{
    struct peer_net *n = c->net;
    struct peer_hello h;
    char why[160];
    if (peer_hello_decode(f, &h) != 0) {
        n->stats.handshakes_refused++;
        conn_close(c, "refused: the first frame is not a handshake");
        return;
    }
    const char *bad = hello_check(n, &h, c, why, sizeof why);
    if (bad) {
        n->stats.handshakes_refused++;
        char line[200];
        snprintf(line, sizeof line, "refused: %s", bad);
        conn_close(c, line);
        return;
    }
    c->state = CONN_READY;
    if (!c->outbound) {
        c->node = h.from_node;
        conn_send_hello(c, h.from_node);
        return;
    }
    struct peer *p = c->peer;
    ASSERT(p && p->out == c && !p->connected);
    p->connected = true;
    p->retrying = false;
    p->backoff_ms = n->cfg.reconnect_min_ms;
    n->stats.peers_connected++;
    /* Told first, so that messages the callback sends go out in the same write as the queue. The
     * callback may forget p or stop the net: p stays valid until the loop closes it, and the
     * connection is then no longer p's. */
    if (n->cfg.on_state)
        n->cfg.on_state(n->cfg.ctx, p->node, true);
    if (p->out == c)
        peer_flush(p);
}

/* One whole, checked frame. May close c or stop the net (through a callback). */
static void conn_frame(struct peer_conn *c, const struct peer_frame *f)
{
    struct peer_net *n = c->net;
    if (c->state == CONN_HELLO) {
        conn_handshake(c, f);
        return;
    }
    ASSERT(c->state == CONN_READY);
    if (c->outbound || f->type != PEER_FRAME_MESSAGE) {
        n->stats.frames_refused++;
        conn_close(c, c->outbound ? "refused: a frame on an outbound connection"
                                  : "refused: a second handshake");
        return;
    }
    n->stats.messages_in++;
    n->cfg.on_message(n->cfg.ctx, c->node, f->payload, f->len);
}

/* Delivers every whole frame in c's input, in order, and keeps the incomplete rest. */
static void conn_consume(struct peer_conn *c)
{
    struct peer_net *n = c->net;
    size_t off = 0;
    size_t need = PEER_FRAME_HEADER_BYTES;
    if (c->in.len == 0)
        return;
    while (c->state != CONN_CLOSING && !n->stopping) {
        /* Until the handshake is done only a HELLO fits, so a stranger cannot make us buffer a
         * large frame. */
        size_t max =
            c->state == CONN_READY && !c->outbound ? n->cfg.message_bytes_max : PEER_HELLO_BYTES;
        struct peer_frame f;
        int64_t used = peer_frame_decode(c->in.data + off, c->in.len - off, max, &f, &need);
        if (used == 0)
            break;
        if (used < 0) {
            n->stats.frames_refused++;
            char line[96];
            snprintf(line, sizeof line, "refused: %s",
                     used == SM_E_TOOLARGE  ? "frame longer than the limit"
                     : used == SM_E_CORRUPT ? "frame with a bad CRC"
                                            : "not a shardmart peer frame");
            conn_close(c, line);
            return;
        }
        off += (size_t)used;
        conn_frame(c, &f);
    }
    if (c->state == CONN_CLOSING || n->stopping)
        return;
    ASSERT(off <= c->in.len);
    memmove(c->in.data, c->in.data + off, c->in.len - off);
    c->in.len -= off;
    c->in_need = need;
    if (c->in.len == 0)
        bytes_clear(&c->in);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct peer_conn *c = h->data;
    /* Room for the frame being read, and for a good batch of small ones behind it. */
    size_t want = BUF_START_BYTES / 2;
    if (c->in_need > c->in.len && c->in_need - c->in.len > want)
        want = c->in_need - c->in.len;
    if (!bytes_reserve(&c->in, want)) {
        *buf = uv_buf_init(NULL, 0); /* on_read gets UV_ENOBUFS */
        return;
    }
    size_t room = c->in.cap - c->in.len;
    *buf = uv_buf_init((char *)c->in.data + c->in.len,
                       (unsigned)(room > UINT32_MAX ? UINT32_MAX : room));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct peer_conn *c = stream->data;
    if (c->state == CONN_CLOSING)
        return;
    if (nread < 0) {
        conn_close(c, nread == UV_EOF ? NULL : uv_strerror((int)nread));
        return;
    }
    c->in.len += (size_t)nread;
    ASSERT(c->in.len <= c->in.cap);
    c->net->stats.bytes_in += (uint64_t)nread;
    conn_consume(c);
}

static void conn_start_reading(struct peer_conn *c)
{
    uv_tcp_nodelay(&c->tcp, 1);
    uv_tcp_keepalive(&c->tcp, 1, KEEPALIVE_S);
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0)
        conn_close(c, uv_strerror(rc));
}

/* ---- outbound: connecting, writing, reconnecting ------------------------------------------- */

static void on_connect(uv_connect_t *req, int status)
{
    struct peer_conn *c = req->data;
    if (c->state == CONN_CLOSING)
        return;
    if (status < 0) {
        conn_close(c, NULL); /* a peer that is down is normal; the backoff paces the retries */
        return;
    }
    c->state = CONN_HELLO;
    conn_send_hello(c, c->node);
    if (c->state != CONN_CLOSING)
        conn_start_reading(c);
}

static void peer_connect(struct peer *p)
{
    struct peer_net *n = p->net;
    ASSERT(!p->out && !p->timer_armed && !n->stopping);
    if (p->retrying) {
        p->reconnects++;
        n->stats.reconnects++;
    }
    struct peer_conn *c = conn_new(n, true);
    if (!c) {
        peer_schedule_reconnect(p);
        return;
    }
    c->peer = p;
    c->node = p->node;
    c->state = CONN_CONNECTING;
    p->out = c;
    int rc =
        uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&p->addr, on_connect);
    if (rc != 0)
        conn_close(c, uv_strerror(rc));
}

static void on_reconnect_timer(uv_timer_t *t)
{
    struct peer *p = t->data;
    p->timer_armed = false;
    if (!p->out && !p->net->stopping)
        peer_connect(p);
}

static void peer_schedule_reconnect(struct peer *p)
{
    ASSERT(!p->out);
    p->retrying = true;
    if (p->timer_armed)
        return;
    int64_t delay = p->backoff_ms;
    p->backoff_ms =
        delay > p->net->cfg.reconnect_max_ms / 2 ? p->net->cfg.reconnect_max_ms : delay * 2;
    uv_timer_start(&p->reconnect_timer, on_reconnect_timer, (uint64_t)delay, 0);
    p->timer_armed = true;
}

/* Hands everything pending to one uv_write, if the connection can take it now. */
static void peer_flush(struct peer *p)
{
    struct peer_conn *c = p->out;
    if (!c || c->state != CONN_READY || c->writing || p->pending.len == 0)
        return;
    ASSERT(c->flight.len == 0 && c->flight_messages == 0);
    struct bytes t = c->flight;
    c->flight = p->pending;
    p->pending = t;
    c->flight_messages = p->pending_messages;
    p->pending_messages = 0;
    uv_buf_t buf = uv_buf_init((char *)c->flight.data, (unsigned)c->flight.len);
    c->writing = true;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc != 0) {
        conn_close(c, uv_strerror(rc));
        c->writing = false;
        c->flight.len = 0;
    }
}

static void flush_dirty(struct peer_net *n)
{
    while (n->dirty) {
        struct peer *p = n->dirty;
        n->dirty = p->dirty_next;
        p->dirty = false;
        p->dirty_next = NULL;
        peer_flush(p);
    }
    uv_idle_stop(&n->flush_idle);
}

void peer_net_flush(struct peer_net *n)
{
    ASSERT(n != NULL);
    if (!n->stopping)
        flush_dirty(n);
}

static void on_flush_check(uv_check_t *h)
{
    flush_dirty(h->data);
}

static void on_flush_idle(uv_idle_t *h)
{
    flush_dirty(h->data);
}

/* ---- inbound ------------------------------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct peer_net *n = listener->data;
    if (status < 0 || n->stopping)
        return;
    struct peer_conn *c = conn_new(n, false);
    if (!c) {
        fprintf(stderr, "shardmart: peer: out of memory accepting a connection\n");
        return;
    }
    c->state = CONN_HELLO;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, NULL);
        return;
    }
    if (n->stats.inbound_connections > n->cfg.inbound_max) {
        n->stats.connections_refused++;
        conn_close(c, "refused: too many inbound connections (inbound_max)");
        return;
    }
    conn_start_reading(c);
}

static void on_sweep(uv_timer_t *t)
{
    struct peer_net *n = t->data;
    uint64_t now = uv_now(n->cfg.loop);
    struct peer_conn *next;
    for (struct peer_conn *c = n->conns; c; c = next) {
        next = c->next;
        /* Only connections without a handshake are closed here, and closing one calls nothing
         * back, so `next` stays on the list. */
        if (c->state != CONN_READY &&
            now - c->started_ms >= (uint64_t)n->cfg.handshake_timeout_ms) {
            n->stats.handshakes_timed_out++;
            conn_close(c,
                       c->state == CONN_CONNECTING && c->outbound ? NULL : "handshake timed out");
        }
    }
}

/* ---- the API ------------------------------------------------------------------------------- */

void peer_net_config_defaults(struct peer_net_config *cfg)
{
    ASSERT(cfg != NULL);
    if (cfg->queue_bytes_max == 0)
        cfg->queue_bytes_max = SM_PEER_QUEUE_BYTES_DEFAULT;
    if (cfg->message_bytes_max == 0)
        cfg->message_bytes_max = SM_CLUSTER_MSG_BYTES_MAX;
    if (cfg->reconnect_min_ms == 0)
        cfg->reconnect_min_ms = SM_PEER_RECONNECT_MIN_MS_DEFAULT;
    if (cfg->reconnect_max_ms == 0)
        cfg->reconnect_max_ms = SM_PEER_RECONNECT_MAX_MS_DEFAULT;
    if (cfg->inbound_max == 0)
        cfg->inbound_max = SM_PEER_INBOUND_MAX;
    if (cfg->handshake_timeout_ms == 0)
        cfg->handshake_timeout_ms = SM_PEER_HANDSHAKE_TIMEOUT_MS;
}

static int config_check(const struct peer_net_config *c)
{
    if (!c->loop || !c->on_message || c->self_node >= SM_CLUSTER_NODES_MAX)
        return SM_E_BADARG;
    if (c->message_bytes_max < 1 || c->message_bytes_max > SM_PEER_MESSAGE_BYTES_MAX)
        return SM_E_BADARG;
    if (c->queue_bytes_max < c->message_bytes_max + PEER_FRAME_HEADER_BYTES ||
        c->queue_bytes_max > SM_PEER_QUEUE_BYTES_MAX)
        return SM_E_BADARG;
    if (c->reconnect_min_ms < 1 || c->reconnect_max_ms < c->reconnect_min_ms ||
        c->reconnect_max_ms > SM_PEER_RECONNECT_MS_MAX)
        return SM_E_BADARG;
    if (c->inbound_max > SM_PEER_INBOUND_MAX || c->handshake_timeout_ms < 10 ||
        c->handshake_timeout_ms > SM_PEER_RECONNECT_MS_MAX)
        return SM_E_BADARG;
    struct sockaddr_storage sa;
    return parse_addr(c->bind_host, 0, &sa);
}

static void net_handle_init(struct peer_net *n, uv_handle_t *h)
{
    h->data = n;
    n->handles_open++;
}

int peer_net_start(struct peer_net **out, const struct peer_net_config *cfg)
{
    ASSERT(out != NULL && cfg != NULL);
    struct peer_net_config c = *cfg;
    peer_net_config_defaults(&c);
    int rc = config_check(&c);
    if (rc != 0)
        return rc;
    struct peer_net *n = calloc(1, sizeof *n);
    if (!n)
        return SM_E_NOMEM;
    n->cfg = c;
    snprintf(n->bind_host, sizeof n->bind_host, "%s", c.bind_host);
    n->cfg.bind_host = n->bind_host;

    struct sockaddr_storage sa;
    rc = parse_addr(n->bind_host, c.port, &sa);
    ASSERT(rc == 0); /* config_check parsed it */
    uv_tcp_init(c.loop, &n->listener);
    net_handle_init(n, (uv_handle_t *)&n->listener);
    rc = uv_tcp_bind(&n->listener, (const struct sockaddr *)&sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&n->listener, 128, on_connection);
    if (rc != 0) {
        fprintf(stderr, "shardmart: peer: cannot listen on %s:%u: %s\n", n->bind_host,
                (unsigned)c.port, uv_strerror(rc));
        /* The net is freed by the listener's close callback when the loop next runs. */
        n->stopping = true;
        uv_close((uv_handle_t *)&n->listener, on_net_handle_closed);
        return SM_E_IO;
    }
    int len = sizeof sa;
    uv_tcp_getsockname(&n->listener, (struct sockaddr *)&sa, &len);
    n->port = ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
                                             : ((struct sockaddr_in *)&sa)->sin_port);

    uv_check_init(c.loop, &n->flush_check);
    net_handle_init(n, (uv_handle_t *)&n->flush_check);
    uv_check_start(&n->flush_check, on_flush_check);
    uv_unref((uv_handle_t *)&n->flush_check); /* it must not keep the loop alive by itself */
    uv_idle_init(c.loop, &n->flush_idle);
    net_handle_init(n, (uv_handle_t *)&n->flush_idle);
    uv_timer_init(c.loop, &n->sweep_timer);
    net_handle_init(n, (uv_handle_t *)&n->sweep_timer);
    /* Deadlines are checked five times per timeout: a connection lives at most 1.2 times it. */
    uint64_t sweep_ms = (uint64_t)c.handshake_timeout_ms / 5;
    uv_timer_start(&n->sweep_timer, on_sweep, sweep_ms, sweep_ms);
    uv_unref((uv_handle_t *)&n->sweep_timer);
    *out = n;
    return 0;
}

uint16_t peer_net_port(const struct peer_net *n)
{
    ASSERT(n != NULL && !n->stopping);
    return n->port;
}

static void on_peer_closed(uv_handle_t *h)
{
    struct peer *p = h->data;
    struct peer_net *n = p->net;
    ASSERT(!p->out && !p->dirty);
    bytes_free(&p->pending);
    free(p);
    handle_closed(n);
}

int peer_net_set_address(struct peer_net *n, uint32_t node, const char *host, uint16_t port)
{
    ASSERT(n != NULL);
    if (n->stopping)
        return SM_E_STATE;
    if (node >= SM_CLUSTER_NODES_MAX || node == n->cfg.self_node || port == 0)
        return SM_E_BADARG;
    struct sockaddr_storage sa;
    int rc = parse_addr(host, port, &sa);
    if (rc != 0)
        return rc;
    struct peer *p = n->peers[node];
    if (!p) {
        p = calloc(1, sizeof *p);
        if (!p)
            return SM_E_NOMEM;
        p->net = n;
        p->node = node;
        p->backoff_ms = n->cfg.reconnect_min_ms;
        uv_timer_init(n->cfg.loop, &p->reconnect_timer);
        p->reconnect_timer.data = p;
        n->handles_open++;
        n->peers[node] = p;
    } else if (p->port == port && strcmp(p->host, host) == 0) {
        return 0;
    }
    snprintf(p->host, sizeof p->host, "%s", host);
    p->port = port;
    p->addr = sa;
    if (p->out)
        conn_close(p->out, NULL); /* reconnects to the new address */
    return 0;
}

void peer_net_forget(struct peer_net *n, uint32_t node)
{
    ASSERT(n != NULL);
    if (n->stopping || node >= SM_CLUSTER_NODES_MAX)
        return;
    struct peer *p = n->peers[node];
    if (p) {
        n->peers[node] = NULL;
        p->wanted = false;
        n->stats.messages_dropped += p->pending_messages;
        p->pending_messages = 0;
        if (p->out) {
            struct peer_conn *c = p->out;
            if (p->connected) {
                n->stats.peers_connected--;
                p->connected = false;
            }
            p->out = NULL;
            c->peer = NULL; /* nothing is called back, nothing reconnects */
            conn_close(c, NULL);
        }
        for (struct peer **pp = &n->dirty; *pp; pp = &(*pp)->dirty_next) {
            if (*pp == p) {
                *pp = p->dirty_next;
                break;
            }
        }
        p->dirty = false;
        uv_timer_stop(&p->reconnect_timer);
        p->timer_armed = false;
        uv_close((uv_handle_t *)&p->reconnect_timer, on_peer_closed);
    }
    struct peer_conn *next;
    for (struct peer_conn *c = n->conns; c; c = next) {
        next = c->next; /* closing an inbound connection calls nothing back */
        if (!c->outbound && c->state == CONN_READY && c->node == node)
            conn_close(c, NULL);
    }
}

int peer_net_send(struct peer_net *n, uint32_t node, const uint8_t *bytes, size_t len)
{
    ASSERT(n != NULL && (bytes != NULL || len == 0));
    if (n->stopping)
        return SM_E_STATE;
    if (node >= SM_CLUSTER_NODES_MAX || node == n->cfg.self_node || len > n->cfg.message_bytes_max)
        return SM_E_BADARG;
    struct peer *p = n->peers[node];
    if (!p)
        return SM_E_NOTFOUND;
    size_t frame = PEER_FRAME_HEADER_BYTES + len;
    size_t queued = p->pending.len + (p->out ? p->out->flight.len : 0);
    if (queued + frame > n->cfg.queue_bytes_max || !bytes_reserve(&p->pending, frame)) {
        p->messages_dropped++;
        n->stats.messages_dropped++;
        return queued + frame > n->cfg.queue_bytes_max ? SM_E_BUSY : SM_E_NOMEM;
    }
    peer_frame_header(p->pending.data + p->pending.len, PEER_FRAME_MESSAGE, bytes, len);
    if (len)
        memcpy(p->pending.data + p->pending.len + PEER_FRAME_HEADER_BYTES, bytes, len);
    p->pending.len += frame;
    p->pending_messages++;
    p->wanted = true;
    if (!p->out && !p->timer_armed)
        peer_connect(p);
    if (!p->dirty) {
        p->dirty = true;
        p->dirty_next = n->dirty;
        n->dirty = p;
        uv_idle_start(&n->flush_idle, on_flush_idle);
    }
    return 0;
}

void peer_net_stop(struct peer_net *n)
{
    ASSERT(n != NULL && !n->stopping);
    n->stopping = true;
    while (n->conns) {
        struct peer_conn *c = n->conns;
        if (c->peer) {
            c->peer->out = NULL;
            c->peer->connected = false;
            c->peer = NULL;
        }
        conn_close(c, NULL); /* unlinks c */
    }
    n->dirty = NULL;
    for (uint32_t i = 0; i < SM_CLUSTER_NODES_MAX; i++) {
        struct peer *p = n->peers[i];
        if (!p)
            continue;
        n->peers[i] = NULL;
        p->dirty = false;
        uv_close((uv_handle_t *)&p->reconnect_timer, on_peer_closed);
    }
    n->stats.peers_connected = 0;
    uv_close((uv_handle_t *)&n->listener, on_net_handle_closed);
    uv_close((uv_handle_t *)&n->flush_check, on_net_handle_closed);
    uv_close((uv_handle_t *)&n->flush_idle, on_net_handle_closed);
    uv_close((uv_handle_t *)&n->sweep_timer, on_net_handle_closed);
}

void peer_net_stats(const struct peer_net *n, struct peer_net_stats *out)
{
    ASSERT(n != NULL && out != NULL);
    *out = n->stats;
}

int peer_net_peer_stats(const struct peer_net *n, uint32_t node, struct peer_stats *out)
{
    ASSERT(n != NULL && out != NULL);
    if (node >= SM_CLUSTER_NODES_MAX || !n->peers[node])
        return SM_E_NOTFOUND;
    const struct peer *p = n->peers[node];
    *out = (struct peer_stats){
        .connected = p->connected,
        .queued_bytes = p->pending.len + (p->out ? p->out->flight.len : 0),
        .bytes_out = p->bytes_out,
        .messages_out = p->messages_out,
        .messages_dropped = p->messages_dropped,
        .reconnects = p->reconnects,
    };
    return 0;
}
