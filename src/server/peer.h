/*
 * The transport between shardmart nodes: TCP over libuv, used by the cluster runtime to carry
 * src/cluster/ messages (the SEND action of docs/cluster.md). Bytes in, bytes out: the transport
 * never looks inside a message.
 *
 *   node A                                               node B
 *   peer_net_send(B, msg) -> queue of B -> outbound A->B ====> inbound (from A)
 *                                                              -> on_message(A, msg)
 *   on_message(B, msg) <- inbound (from B) <==== outbound B->A <- peer_net_send(A, msg)
 *
 * Each node keeps one outbound connection per peer it sends to, and messages to a peer go on it
 * in order; each inbound connection delivers with the sender's node id, learnt in the handshake.
 * Delivery is at most once and in order per connection: frames that were in a failed write are
 * dropped (the cluster protocol retransmits), frames still queued go out after the reconnect.
 * Frames and handshake are in peer_frame.h and docs/cluster.md ("Transport between nodes").
 *
 * Everything runs on the caller's loop thread; none of these functions may be called from
 * another thread. Callbacks may call any peer_net function, peer_net_stop included.
 */
#ifndef SHARDMART_SERVER_PEER_H
#define SHARDMART_SERVER_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "limits.h"
#include "util/assert.h"

struct peer_net;

/* One whole message from node from_node; bytes are borrowed for the call only. */
typedef void (*peer_message_fn)(void *ctx, uint32_t from_node, const uint8_t *bytes, size_t len);
/* The outbound connection to node finished its handshake (true) or closed after one (false). */
typedef void (*peer_state_fn)(void *ctx, uint32_t node, bool connected); /* optional */

struct peer_net_config {
    uv_loop_t *loop;          /* borrowed; must outlive the net */
    const char *bind_host;    /* numeric IPv4 address to listen on; copied */
    uint16_t port;            /* 0 = a free port (peer_net_port tells which) */
    uint32_t self_node;       /* < SM_CLUSTER_NODES_MAX */
    uint64_t cluster_id;      /* the handshake checks both this and the node ids */
    size_t queue_bytes_max;   /* per peer, frames included; 0 = SM_PEER_QUEUE_BYTES_DEFAULT */
    size_t message_bytes_max; /* 0 = SM_CLUSTER_MSG_BYTES_MAX; at most SM_PEER_MESSAGE_BYTES_MAX */
    int64_t reconnect_min_ms, reconnect_max_ms; /* backoff; 0 = the defaults in limits.h */
    /* Additions to the original contract (0 = the default in limits.h): inbound connections at
     * once (at most SM_PEER_INBOUND_MAX), and how long a connection may take to finish its
     * handshake (TCP connect included; 10 ms .. SM_PEER_RECONNECT_MS_MAX). */
    uint32_t inbound_max;
    int64_t handshake_timeout_ms;
    peer_message_fn on_message; /* required */
    peer_state_fn on_state;     /* NULL = not told */
    void *ctx;                  /* passed to both callbacks */
};

/* Counters for /metrics. Since peer_net_start; bytes count frames (headers included). */
struct peer_net_stats {
    uint64_t bytes_in, bytes_out;
    uint64_t messages_in, messages_out; /* out = handed to the kernel in a completed write */
    uint64_t messages_dropped;    /* refused with BUSY, or lost in a failed write, or forgotten */
    uint64_t reconnects;          /* outbound connection attempts after a failure or a close */
    uint64_t handshakes_refused;  /* wrong cluster id, node id or version, either direction */
    uint64_t frames_refused;      /* bad magic, CRC or length: the connection was closed */
    uint64_t connections_refused; /* inbound ones over inbound_max */
    uint64_t handshakes_timed_out;
    uint32_t peers_connected; /* outbound connections past their handshake now */
    uint32_t inbound_connections;
};

/* One peer's view. */
struct peer_stats {
    bool connected;      /* its outbound connection is past the handshake */
    size_t queued_bytes; /* waiting to be written, or in the write in progress */
    uint64_t bytes_out, messages_out, messages_dropped, reconnects;
};

/* Fills every 0 field of cfg with its default (queue, message size, backoff, inbound
 * connections, handshake timeout). */
void peer_net_config_defaults(struct peer_net_config *cfg);

/* Starts listening. *out is owned by the caller until peer_net_stop. Errors (nothing is left
 * behind, nothing is called back): SM_E_BADARG for a config out of bounds (node id, sizes,
 * backoff, inbound_max, handshake timeout, a queue smaller than one largest frame, no on_message,
 * a bad bind address),
 * SM_E_IO when the port cannot be bound (a one-line reason is printed to stderr), SM_E_NOMEM. */
MUST_USE int peer_net_start(struct peer_net **out, const struct peer_net_config *cfg);

/* The port the net listens on (the chosen one when the config said 0). */
uint16_t peer_net_port(const struct peer_net *n);

/* Sets or changes where node listens; host is a numeric IPv4 or IPv6 address (copied). A change
 * of address closes the current connection (queued messages stay and go to the new address).
 * SM_E_BADARG for node == self, node >= SM_CLUSTER_NODES_MAX, port 0 or a host that is not a
 * numeric address; SM_E_NOMEM. Connecting waits for the first send. */
MUST_USE int peer_net_set_address(struct peer_net *n, uint32_t node, const char *host,
                                  uint16_t port);

/* Drops everything about node: its address, queue (counted as dropped), outbound and inbound
 * connections. A later send to it is SM_E_NOTFOUND until its address is set again. */
void peer_net_forget(struct peer_net *n, uint32_t node);

/* Queues one message; never blocks; bytes are copied. Connects on demand and keeps the
 * connection up (reconnecting with backoff) from then on. The write happens once per loop
 * iteration for all messages queued during it (one uv_write per peer).
 * SM_E_BUSY when the peer's queue is full (the message is dropped and counted: the cluster
 * protocol retransmits); SM_E_BADARG for len > message_bytes_max, node == self or out of range;
 * SM_E_NOTFOUND when node has no address; SM_E_STATE after peer_net_stop. */
MUST_USE int peer_net_send(struct peer_net *n, uint32_t node, const uint8_t *bytes, size_t len);

/* Hands every message queued so far to the kernel now (one write per peer whose connection is
 * not busy writing) instead of at the end of the loop iteration: the caller is about to block
 * (an fdatasync) and wants the peers to work meanwhile. */
void peer_net_flush(struct peer_net *n);

/* Closes everything, without calling back. n must not be used afterwards; its memory is freed
 * once the loop has run the close callbacks (the loop then runs dry). */
void peer_net_stop(struct peer_net *n);

void peer_net_stats(const struct peer_net *n, struct peer_net_stats *out);
/* SM_E_NOTFOUND for a node the net knows nothing about. */
MUST_USE int peer_net_peer_stats(const struct peer_net *n, uint32_t node, struct peer_stats *out);

#endif
