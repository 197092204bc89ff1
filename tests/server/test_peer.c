/*
 * The transport between nodes (src/server/peer.c): peer_nets on one libuv loop on free loopback
 * ports. Every wait is on a condition (messages arrived, a connection closed), bounded by a
 * deadline that fails the test rather than hanging it; no sleeps.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/peer.h"
#include "server/peer_frame.h"
#include "util/error.h"

#define CLUSTER   0x5eed5eedULL
#define NODES     4
#define RX_MAX    20000
#define WAIT_MS   20000 /* generous: the machine is shared; a pass usually takes milliseconds */
#define TEST_HOST "127.0.0.1"

/* What one node received, per sender: the next sequence number it expects, and the total. */
struct rx {
    uint32_t next_seq[NODES];
    uint64_t count;
    uint64_t bytes;
    int bad; /* out of order, wrong sender or wrong content: must stay 0 */
    int state_up[NODES], state_down[NODES];
};

struct node {
    struct peer_net *net;
    uint32_t id;
    uint16_t port;
    struct rx rx;
};

static uv_loop_t loop;
static uv_timer_t poke;

/* A message: seq (u32), sender (u32), then bytes that are a function of (seq, sender, offset). */
static uint8_t fill_byte(uint32_t seq, uint32_t from, size_t i)
{
    return (uint8_t)(seq * 31 + from * 7 + i * 13 + (i >> 8));
}

static size_t make_msg(uint8_t *buf, uint32_t seq, uint32_t from, size_t len)
{
    cr_assert(len >= 8);
    memcpy(buf, &seq, 4);
    memcpy(buf + 4, &from, 4);
    for (size_t i = 8; i < len; i++)
        buf[i] = fill_byte(seq, from, i);
    return len;
}

static void on_message(void *ctx, uint32_t from, const uint8_t *bytes, size_t len)
{
    struct node *me = ctx;
    uint32_t seq, sender;
    if (len < 8 || from >= NODES) {
        me->rx.bad++;
        return;
    }
    memcpy(&seq, bytes, 4);
    memcpy(&sender, bytes + 4, 4);
    if (sender != from || seq != me->rx.next_seq[from])
        me->rx.bad++;
    for (size_t i = 8; i < len; i++) {
        if (bytes[i] != fill_byte(seq, sender, i)) {
            me->rx.bad++;
            break;
        }
    }
    me->rx.next_seq[from] = seq + 1;
    me->rx.count++;
    me->rx.bytes += len;
}

static void on_state(void *ctx, uint32_t node, bool connected)
{
    struct node *me = ctx;
    cr_assert(node < NODES);
    if (connected)
        me->rx.state_up[node]++;
    else
        me->rx.state_down[node]++;
}

static void on_poke(uv_timer_t *t)
{
    (void)t;
}

static void loop_setup(void)
{
    cr_assert_eq(uv_loop_init(&loop), 0);
    /* Wakes uv_run(UV_RUN_ONCE) often so waits can check their condition and deadline. */
    uv_timer_init(&loop, &poke);
    uv_timer_start(&poke, on_poke, 5, 5);
}

/* Stops what is left, runs the loop dry and checks that nothing was left open. */
static void loop_teardown(struct node *nodes, int count)
{
    for (int i = 0; i < count; i++) {
        if (nodes[i].net)
            peer_net_stop(nodes[i].net);
        nodes[i].net = NULL;
    }
    uv_close((uv_handle_t *)&poke, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    cr_assert_eq(uv_loop_close(&loop), 0, "every handle was closed");
}

static void config_for(struct peer_net_config *cfg, struct node *me, uint16_t port)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->loop = &loop;
    cfg->bind_host = TEST_HOST;
    cfg->port = port;
    cfg->self_node = me->id;
    cfg->cluster_id = CLUSTER;
    cfg->reconnect_min_ms = 5;
    cfg->reconnect_max_ms = 100;
    cfg->on_message = on_message;
    cfg->on_state = on_state;
    cfg->ctx = me;
}

static void node_start_cfg(struct node *me, const struct peer_net_config *cfg)
{
    cr_assert_eq(peer_net_start(&me->net, cfg), 0);
    me->port = peer_net_port(me->net);
    cr_assert_neq(me->port, 0);
}

static void node_start(struct node *me, uint32_t id, uint16_t port)
{
    me->id = id;
    struct peer_net_config cfg;
    config_for(&cfg, me, port);
    node_start_cfg(me, &cfg);
}

static void introduce(struct node *nodes, int count)
{
    for (int i = 0; i < count; i++)
        for (int j = 0; j < count; j++)
            if (i != j)
                cr_assert_eq(
                    peer_net_set_address(nodes[i].net, nodes[j].id, TEST_HOST, nodes[j].port), 0);
}

typedef bool (*cond_fn)(void *arg);

static void wait_for(cond_fn cond, void *arg, const char *what)
{
    uint64_t deadline = uv_now(&loop) + WAIT_MS;
    while (!cond(arg)) {
        cr_assert_lt(uv_now(&loop), deadline, "timed out waiting for %s", what);
        uv_run(&loop, UV_RUN_ONCE);
    }
}

struct count_goal {
    struct node *node;
    uint64_t count;
};

static bool got_count(void *arg)
{
    struct count_goal *g = arg;
    return g->node->rx.count >= g->count;
}

static void wait_count(struct node *n, uint64_t count)
{
    struct count_goal g = {n, count};
    wait_for(got_count, &g, "messages");
    cr_assert_eq(n->rx.count, count, "no more than expected");
}

/* Sends seq numbers [from_seq, from_seq + count) from a to b, sizes cycling through a range. */
static void send_run(struct node *a, struct node *b, uint32_t from_seq, uint32_t count,
                     size_t size_max)
{
    uint8_t *buf = malloc(size_max);
    cr_assert(buf);
    for (uint32_t s = from_seq; s < from_seq + count; s++) {
        size_t len = 8 + (s * 37u) % (size_max - 7);
        make_msg(buf, s, a->id, len);
        cr_assert_eq(peer_net_send(a->net, b->id, buf, len), 0, "send %u", s);
    }
    free(buf);
}

Test(peer, two_nets_exchange_in_order)
{
    loop_setup();
    struct node n[2] = {0};
    node_start(&n[0], 1, 0);
    node_start(&n[1], 2, 0);
    introduce(n, 2);
    send_run(&n[0], &n[1], 0, 3000, 2000);
    send_run(&n[1], &n[0], 0, 3000, 2000);
    wait_count(&n[1], 3000);
    wait_count(&n[0], 3000);
    cr_assert_eq(n[0].rx.bad, 0);
    cr_assert_eq(n[1].rx.bad, 0);
    cr_assert_eq(n[1].rx.next_seq[1], 3000);
    cr_assert_eq(n[0].rx.next_seq[2], 3000);
    cr_assert_eq(n[0].rx.state_up[2], 1, "told once that node 2 is reachable");

    struct peer_net_stats st;
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.messages_in, 3000);
    cr_assert_eq(st.peers_connected, 1);
    cr_assert_eq(st.inbound_connections, 1);
    cr_assert_eq(st.messages_dropped, 0);
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), 0);
    cr_assert(ps.connected);
    cr_assert_eq(ps.messages_out, 3000, "every write completed");
    cr_assert_eq(ps.queued_bytes, 0);
    cr_assert_eq(peer_net_peer_stats(n[0].net, 3, &ps), SM_E_NOTFOUND);
    loop_teardown(n, 2);
}

Test(peer, three_nets_all_to_all)
{
    loop_setup();
    struct node n[3] = {0};
    for (int i = 0; i < 3; i++)
        node_start(&n[i], (uint32_t)i + 1, 0);
    introduce(n, 3);
    /* Interleaved: each sender's order to each receiver must hold. */
    for (uint32_t round = 0; round < 10; round++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 3; j++)
                if (i != j)
                    send_run(&n[i], &n[j], round * 100, 100, 3000);
    for (int i = 0; i < 3; i++) {
        wait_count(&n[i], 2000);
        cr_assert_eq(n[i].rx.bad, 0);
        for (int j = 0; j < 3; j++)
            if (i != j)
                cr_assert_eq(n[i].rx.next_seq[j + 1], 1000);
    }
    loop_teardown(n, 3);
}

/* ---- refusals from a raw socket ------------------------------------------------------------ */

static int raw_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, TEST_HOST, &sa.sin_addr);
    /* The kernel completes the connection from the listen backlog; the loop need not run. */
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0, "%s", strerror(errno));
    return fd;
}

static void raw_write(int fd, const void *b, size_t n)
{
    cr_assert_eq(write(fd, b, n), (ssize_t)n);
}

static size_t hello_bytes(uint8_t *out, uint64_t cluster, uint32_t from, uint32_t to)
{
    struct peer_hello h = {.cluster_id = cluster, .from_node = from, .to_node = to};
    peer_hello_encode(out, &h);
    return PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES;
}

static size_t message_bytes(uint8_t *out, uint32_t seq, uint32_t from, size_t len)
{
    make_msg(out + PEER_FRAME_HEADER_BYTES, seq, from, len);
    peer_frame_header(out, PEER_FRAME_MESSAGE, out + PEER_FRAME_HEADER_BYTES, len);
    return PEER_FRAME_HEADER_BYTES + len;
}

struct closed_goal {
    struct node *node;
    int fd;
};

/* The net closed the raw connection: it has no inbound connection left and the socket reads
 * EOF (after whatever the net answered). */
static bool raw_closed(void *arg)
{
    struct closed_goal *g = arg;
    struct peer_net_stats st;
    peer_net_stats(g->node->net, &st);
    if (st.inbound_connections != 0)
        return false;
    uint8_t b[256];
    for (;;) {
        ssize_t r = recv(g->fd, b, sizeof b, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

/* Sends bytes from a raw socket to b and waits until b closes it. */
static void raw_refused(struct node *b, const uint8_t *bytes, size_t len)
{
    int fd = raw_connect(b->port);
    raw_write(fd, bytes, len);
    struct closed_goal g = {b, fd};
    wait_for(raw_closed, &g, "the net to close a bad connection");
    close(fd);
}

Test(peer, bad_frames_close_the_connection_and_deliver_nothing)
{
    loop_setup();
    struct node n[2] = {0};
    node_start(&n[0], 1, 0);
    node_start(&n[1], 2, 0);
    introduce(n, 2);
    uint8_t *b = calloc(1, 1 << 20);
    cr_assert(b);
    struct peer_net_stats st;

    /* A handshake from node 3, one good message, then one whose payload was flipped: the good
     * one is delivered, nothing of the bad one is. */
    size_t len = hello_bytes(b, CLUSTER, 3, 2);
    len += message_bytes(b + len, 0, 3, 100);
    size_t bad_at = len;
    len += message_bytes(b + len, 1, 3, 100);
    b[bad_at + PEER_FRAME_HEADER_BYTES + 50] ^= 0x01;
    len += message_bytes(b + len, 2, 3, 100); /* after the bad one: never read */
    raw_refused(&n[1], b, len);
    cr_assert_eq(n[1].rx.count, 1);
    cr_assert_eq(n[1].rx.next_seq[3], 1);
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.frames_refused, 1);

    /* A length over the bound, refused from its header (the payload never comes). */
    len = hello_bytes(b, CLUSTER, 3, 2);
    uint8_t one = 0;
    peer_frame_header(b + len, PEER_FRAME_MESSAGE, &one, 1);
    uint32_t huge = SM_CLUSTER_MSG_BYTES_MAX + 1;
    memcpy(b + len + 8, &huge, 4);
    raw_refused(&n[1], b, len + PEER_FRAME_HEADER_BYTES);
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.frames_refused, 2);

    /* A large message before the handshake: only a HELLO fits before one. */
    len = message_bytes(b, 0, 3, 1000);
    raw_refused(&n[1], b, len);
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.frames_refused, 3);

    /* Garbage: an HTTP request. */
    const char *http = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n";
    raw_refused(&n[1], (const uint8_t *)http, strlen(http));
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.frames_refused, 4);

    /* Handshakes: wrong cluster, addressed to another node, from the node itself, then a
     * message with no handshake at all. */
    len = hello_bytes(b, CLUSTER + 1, 3, 2);
    len += message_bytes(b + len, 0, 3, 10);
    raw_refused(&n[1], b, len);
    raw_refused(&n[1], b, hello_bytes(b, CLUSTER, 3, 7));
    raw_refused(&n[1], b, hello_bytes(b, CLUSTER, 2, 2));
    raw_refused(&n[1], b, hello_bytes(b, CLUSTER, SM_CLUSTER_NODES_MAX, 2));
    len = message_bytes(b, 0, 3, 8);
    raw_refused(&n[1], b, len);
    peer_net_stats(n[1].net, &st);
    cr_assert_eq(st.handshakes_refused, 5);
    cr_assert_eq(n[1].rx.count, 1, "nothing more was delivered");
    cr_assert_eq(n[1].rx.bad, 0);

    /* The net keeps working. */
    send_run(&n[0], &n[1], 0, 50, 500);
    wait_count(&n[1], 51);
    cr_assert_eq(n[1].rx.next_seq[1], 50);
    free(b);
    loop_teardown(n, 2);
}

static bool fd_eof(void *arg)
{
    int fd = *(int *)arg;
    uint8_t b[64];
    for (;;) {
        ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r == 0 || (r < 0 && errno == ECONNRESET))
            return true;
        if (r < 0)
            return false;
    }
}

struct accept_goal {
    int listen_fd;
    int fd;
};

static bool accepted(void *arg)
{
    struct accept_goal *g = arg;
    g->fd = accept4(g->listen_fd, NULL, NULL, SOCK_NONBLOCK);
    return g->fd >= 0;
}

struct read_goal {
    int fd;
    uint8_t *buf;
    size_t len, want;
};

static bool read_enough(void *arg)
{
    struct read_goal *g = arg;
    ssize_t r = recv(g->fd, g->buf + g->len, g->want - g->len, MSG_DONTWAIT);
    if (r > 0)
        g->len += (size_t)r;
    return g->len >= g->want || r == 0;
}

/* Node 1 connects to a raw listener posing as node 2, reads node 1's handshake, and answers. */
static int fake_node2_answers(int listen_fd, uint32_t as_node)
{
    struct accept_goal a = {listen_fd, -1};
    wait_for(accepted, &a, "node 1 to connect");
    uint8_t in[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES];
    struct read_goal r = {a.fd, in, 0, sizeof in};
    wait_for(read_enough, &r, "node 1's handshake");
    cr_assert_eq(r.len, sizeof in);
    uint8_t expect[sizeof in];
    cr_assert_arr_eq(in, expect, hello_bytes(expect, CLUSTER, 1, 2));
    uint8_t out[sizeof in];
    raw_write(a.fd, out, hello_bytes(out, CLUSTER, as_node, 1));
    return a.fd;
}

Test(peer, inbound_limit_and_handshake_timeout)
{
    loop_setup();
    struct node n[1] = {0};
    n[0].id = 2;
    struct peer_net_config cfg;
    config_for(&cfg, &n[0], 0);
    cfg.inbound_max = 2;
    cfg.handshake_timeout_ms = 200;
    node_start_cfg(&n[0], &cfg);
    /* Three silent connections: the third is over the limit and closed at once. */
    int fds[3];
    for (int i = 0; i < 3; i++)
        fds[i] = raw_connect(n[0].port);
    wait_for(fd_eof, &fds[2], "the third connection to be refused");
    struct peer_net_stats st;
    peer_net_stats(n[0].net, &st);
    cr_assert_eq(st.connections_refused, 1);
    cr_assert_eq(st.handshakes_timed_out, 0);
    /* The other two never say hello: closed after the handshake timeout. */
    wait_for(fd_eof, &fds[0], "the handshake timeout");
    wait_for(fd_eof, &fds[1], "the handshake timeout");
    peer_net_stats(n[0].net, &st);
    cr_assert_eq(st.handshakes_timed_out, 2);
    cr_assert_eq(st.inbound_connections, 0);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    /* Slots are free again: a proper handshake is answered. */
    int fd = raw_connect(n[0].port);
    uint8_t b[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES], expect[sizeof b];
    raw_write(fd, b, hello_bytes(b, CLUSTER, 1, 2));
    struct read_goal r = {fd, b, 0, sizeof b};
    wait_for(read_enough, &r, "the answer");
    cr_assert_arr_eq(b, expect, hello_bytes(expect, CLUSTER, 2, 1));
    close(fd);
    loop_teardown(n, 1);
}

Test(peer, connector_checks_the_answer)
{
    loop_setup();
    struct node n[1] = {0};
    node_start(&n[0], 1, 0);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, TEST_HOST, &sa.sin_addr);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(lfd, 8), 0);
    socklen_t slen = sizeof sa;
    getsockname(lfd, (struct sockaddr *)&sa, &slen);
    cr_assert_eq(peer_net_set_address(n[0].net, 2, TEST_HOST, ntohs(sa.sin_port)), 0);
    uint8_t m[64];
    make_msg(m, 0, 1, sizeof m);
    cr_assert_eq(peer_net_send(n[0].net, 2, m, sizeof m), 0);

    /* The answer comes from node 3: node 1 refuses it and closes. */
    int fd = fake_node2_answers(lfd, 3);
    struct closed_goal g = {&n[0], fd};
    wait_for(raw_closed, &g, "node 1 to hang up");
    close(fd);
    struct peer_net_stats st;
    peer_net_stats(n[0].net, &st);
    cr_assert_eq(st.handshakes_refused, 1);
    cr_assert_eq(st.peers_connected, 0);
    cr_assert_eq(n[0].rx.state_up[2], 0);

    /* The retry gets the right answer: connected, and the queued message arrives whole. */
    fd = fake_node2_answers(lfd, 2);
    uint8_t in[PEER_FRAME_HEADER_BYTES + sizeof m];
    struct read_goal r = {fd, in, 0, sizeof in};
    wait_for(read_enough, &r, "the queued message");
    uint8_t expect[sizeof in];
    cr_assert_arr_eq(in, expect, message_bytes(expect, 0, 1, sizeof m));
    cr_assert_eq(n[0].rx.state_up[2], 1);
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), 0);
    cr_assert(ps.connected);
    cr_assert_geq(ps.reconnects, 1);
    close(fd);
    close(lfd);
    loop_teardown(n, 1);
}

Test(peer, large_messages_near_the_max)
{
    loop_setup();
    struct node n[2] = {0};
    const size_t max = 2 * 1024 * 1024;
    for (int i = 0; i < 2; i++) {
        n[i].id = (uint32_t)i + 1;
        struct peer_net_config cfg;
        config_for(&cfg, &n[i], 0);
        cfg.message_bytes_max = max;
        cfg.queue_bytes_max = 4 * (max + PEER_FRAME_HEADER_BYTES);
        node_start_cfg(&n[i], &cfg);
    }
    introduce(n, 2);
    uint8_t *buf = malloc(max + 1);
    cr_assert(buf);
    size_t sizes[] = {max, max - 1, 8, max - 4096};
    for (uint32_t s = 0; s < 4; s++) {
        make_msg(buf, s, 1, sizes[s]);
        cr_assert_eq(peer_net_send(n[0].net, 2, buf, sizes[s]), 0);
    }
    cr_assert_eq(peer_net_send(n[0].net, 2, buf, max + 1), SM_E_BADARG, "over the max");
    wait_count(&n[1], 4);
    cr_assert_eq(n[1].rx.bad, 0);
    cr_assert_eq(n[1].rx.bytes, max + (max - 1) + 8 + (max - 4096));
    /* The queue holds four frames of the max, not five: the fifth is BUSY while they wait. */
    for (uint32_t s = 4; s < 8; s++) {
        make_msg(buf, s, 1, max);
        cr_assert_eq(peer_net_send(n[0].net, 2, buf, max), 0);
    }
    make_msg(buf, 8, 1, max);
    cr_assert_eq(peer_net_send(n[0].net, 2, buf, max), SM_E_BUSY);
    wait_count(&n[1], 8);
    cr_assert_eq(n[1].rx.bad, 0);
    free(buf);
    loop_teardown(n, 2);
}

/* ---- failures ------------------------------------------------------------------------------ */

struct peer_goal {
    struct node *node;
    uint32_t peer;
    bool connected;
};

static bool peer_is(void *arg)
{
    struct peer_goal *g = arg;
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(g->node->net, g->peer, &ps), 0);
    return ps.connected == g->connected;
}

Test(peer, restarted_peer_is_reconnected_and_delivery_resumes)
{
    loop_setup();
    struct node n[2] = {0};
    node_start(&n[0], 1, 0);
    node_start(&n[1], 2, 0);
    introduce(n, 2);
    send_run(&n[0], &n[1], 0, 100, 1000);
    wait_count(&n[1], 100);

    /* Node 2 stops; node 1 notices (EOF), says so, and retries with backoff. */
    uint16_t port = n[1].port;
    peer_net_stop(n[1].net);
    n[1].net = NULL;
    struct peer_goal down = {&n[0], 2, false};
    wait_for(peer_is, &down, "node 1 to see node 2 gone");
    cr_assert_eq(n[0].rx.state_down[2], 1);

    /* Messages sent while it is down wait in the queue. */
    send_run(&n[0], &n[1], 100, 100, 1000);
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), 0);
    cr_assert_gt(ps.queued_bytes, 0);

    /* Node 2 comes back on the same port with nothing: its counters start again. */
    memset(&n[1].rx, 0, sizeof n[1].rx);
    n[1].rx.next_seq[1] = 100;
    node_start(&n[1], 2, port);
    cr_assert_eq(peer_net_set_address(n[1].net, 1, TEST_HOST, n[0].port), 0);
    wait_count(&n[1], 100);
    cr_assert_eq(n[1].rx.bad, 0, "in order, from where the queue was");
    cr_assert_eq(n[1].rx.next_seq[1], 200);
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), 0);
    cr_assert(ps.connected);
    cr_assert_geq(ps.reconnects, 1);
    cr_assert_eq(n[0].rx.state_up[2], 2);

    /* And the other direction works with the new node 2. */
    send_run(&n[1], &n[0], 0, 10, 100);
    wait_count(&n[0], 10);
    cr_assert_eq(n[0].rx.bad, 0);
    loop_teardown(n, 2);
}

static uint16_t unused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    inet_pton(AF_INET, TEST_HOST, &sa.sin_addr);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    getsockname(fd, (struct sockaddr *)&sa, &len);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(peer, full_queue_is_busy_and_counted)
{
    loop_setup();
    struct node n[2] = {0};
    n[0].id = 1;
    struct peer_net_config cfg;
    config_for(&cfg, &n[0], 0);
    cfg.message_bytes_max = 1000;
    cfg.queue_bytes_max = 10 * 1016; /* ten frames of 1000 bytes */
    node_start_cfg(&n[0], &cfg);
    /* Nobody listens at node 2's address yet. */
    uint16_t port = unused_port();
    cr_assert_eq(peer_net_set_address(n[0].net, 2, TEST_HOST, port), 0);
    uint8_t m[1000];
    int busy = 0;
    for (uint32_t s = 0; s < 25; s++) {
        make_msg(m, s < 10 ? s : 10, 1, sizeof m);
        int rc = peer_net_send(n[0].net, 2, m, sizeof m);
        if (s < 10) {
            cr_assert_eq(rc, 0);
        } else {
            cr_assert_eq(rc, SM_E_BUSY);
            busy++;
        }
        uv_run(&loop, UV_RUN_NOWAIT); /* failed connects in between change nothing */
    }
    struct peer_net_stats st;
    peer_net_stats(n[0].net, &st);
    cr_assert_eq(st.messages_dropped, (uint64_t)busy);
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), 0);
    cr_assert_eq(ps.messages_dropped, 15);
    cr_assert_eq(ps.queued_bytes, 10 * 1016);

    /* Node 2 appears: the ten queued messages arrive, in order; the dropped ones never do. */
    node_start(&n[1], 2, port);
    wait_count(&n[1], 10);
    cr_assert_eq(n[1].rx.bad, 0);
    cr_assert_eq(n[1].rx.next_seq[1], 10);
    loop_teardown(n, 2);
}

Test(peer, forget_drops_the_peer)
{
    loop_setup();
    struct node n[2] = {0};
    node_start(&n[0], 1, 0);
    node_start(&n[1], 2, 0);
    introduce(n, 2);
    send_run(&n[0], &n[1], 0, 10, 100);
    send_run(&n[1], &n[0], 0, 10, 100);
    wait_count(&n[1], 10);
    wait_count(&n[0], 10);
    peer_net_forget(n[0].net, 2);
    uint8_t m[16];
    make_msg(m, 10, 1, sizeof m);
    cr_assert_eq(peer_net_send(n[0].net, 2, m, sizeof m), SM_E_NOTFOUND);
    struct peer_stats ps;
    cr_assert_eq(peer_net_peer_stats(n[0].net, 2, &ps), SM_E_NOTFOUND);
    struct peer_net_stats st;
    peer_net_stats(n[0].net, &st);
    cr_assert_eq(st.peers_connected, 0);
    cr_assert_eq(st.inbound_connections, 0, "node 2's connection to node 1 is closed too");
    /* Learnt again, it works again. */
    cr_assert_eq(peer_net_set_address(n[0].net, 2, TEST_HOST, n[1].port), 0);
    send_run(&n[0], &n[1], 10, 10, 100);
    wait_count(&n[1], 20);
    cr_assert_eq(n[1].rx.bad, 0);
    loop_teardown(n, 2);
}

Test(peer, bad_arguments)
{
    loop_setup();
    struct node n[1] = {0};
    n[0].id = 1;
    struct peer_net_config cfg;
    struct peer_net *net = NULL;
    config_for(&cfg, &n[0], 0);
    cfg.self_node = SM_CLUSTER_NODES_MAX;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.message_bytes_max = SM_PEER_MESSAGE_BYTES_MAX + 1;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.message_bytes_max = 4096;
    cfg.queue_bytes_max = 4096; /* smaller than one frame of the max */
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.queue_bytes_max = SM_PEER_QUEUE_BYTES_MAX + 1;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.reconnect_min_ms = 100;
    cfg.reconnect_max_ms = 10;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.reconnect_max_ms = SM_PEER_RECONNECT_MS_MAX + 1;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.inbound_max = SM_PEER_INBOUND_MAX + 1;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.handshake_timeout_ms = 9;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);
    config_for(&cfg, &n[0], 0);
    cfg.bind_host = "localhost";
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG, "a numeric address is needed");
    config_for(&cfg, &n[0], 0);
    cfg.on_message = NULL;
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_BADARG);

    node_start(&n[0], 1, 0);
    /* The port is taken: a clear error. */
    struct node other = {.id = 5};
    config_for(&cfg, &other, n[0].port);
    cr_assert_eq(peer_net_start(&net, &cfg), SM_E_IO);

    cr_assert_eq(peer_net_set_address(n[0].net, 1, TEST_HOST, 7000), SM_E_BADARG, "self");
    cr_assert_eq(peer_net_set_address(n[0].net, SM_CLUSTER_NODES_MAX, TEST_HOST, 7000),
                 SM_E_BADARG);
    cr_assert_eq(peer_net_set_address(n[0].net, 2, "node-2.example", 7000), SM_E_BADARG);
    cr_assert_eq(peer_net_set_address(n[0].net, 2, TEST_HOST, 0), SM_E_BADARG);
    uint8_t m[8] = {0};
    cr_assert_eq(peer_net_send(n[0].net, 2, m, sizeof m), SM_E_NOTFOUND, "no address yet");
    cr_assert_eq(peer_net_send(n[0].net, 1, m, sizeof m), SM_E_BADARG, "self");
    cr_assert_eq(peer_net_set_address(n[0].net, 2, "::1", 7000), 0, "IPv6 is fine");
    cr_assert_eq(peer_net_send(n[0].net, 2, m, SM_CLUSTER_MSG_BYTES_MAX + 1), SM_E_BADARG);
    loop_teardown(n, 1);
}
