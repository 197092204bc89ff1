/*
 * A small RESP client for the load and proof tools (`shardmart bench`, `shardmart check`).
 *
 * Requests are encoded with src/proto's encoder and replies parsed with resp_reply_parse, so the
 * tools speak exactly the dialect the node's own parser and encoder define, and the binary needs
 * no client library. The socket is non-blocking: the benchmark drives many connections from one
 * poll() loop with these calls, and the blocking helpers (connect, call) are that loop for one
 * connection. Loopback and plain TCP only.
 *
 *   rc_command() -> out buffer -> rc_flush() -> socket -> rc_fill() -> in buffer -> rc_next()
 *
 * Cluster routing (docs/cluster.md): a connection opened by rc_open follows redirects the way a
 * Redis Cluster client does. It keeps a copy of every command it sent and not yet saw answered;
 * when rc_next parses a -MOVED reply it sends that command again, byte for byte (so with the same
 * request id), to the node the reply names, on a side connection, and waits for the answer, which
 * it hands out in place of the -MOVED. -TRYAGAIN and -CLUSTERDOWN are retried the same way after a
 * back-off (SM_CLIENT_RETRY_*, src/limits.h). A single node never sends these replies, so the
 * one-node tools see no difference; a redirect only makes rc_next block for its round trip.
 * `shardmart check` and the benchmark's set-up and final read use this; the benchmark's load loop
 * routes by itself (bench_loop.c) and turns it off with rc_unfollow().
 */
#ifndef SHARDMART_CLI_RESP_CLIENT_H
#define SHARDMART_CLI_RESP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/resp.h"
#include "util/assert.h"
#include "util/buf.h"

/* Nodes one reply may have: STOCK.GET's map of 6 pairs is the largest the tools read. */
#define RC_REPLY_NODES_MAX 64

/* One connection. The caller owns the struct; rc_open() allocates its buffers, rc_close() frees
 * them. After rc_next() returns a reply, vals[0, vals_n) describe it, pointing into `in`; they
 * stay valid until the next rc_fill() or rc_next(). */
struct rc_conn {
    int fd;
    struct sm_wbuf out; /* encoded requests not yet written, from out_off */
    size_t out_off;
    uint8_t *in; /* received bytes not yet parsed: [in_off, in_len) */
    size_t in_off;
    size_t in_len;
    size_t in_cap;
    struct resp_value vals[RC_REPLY_NODES_MAX];
    size_t vals_n;
    char host[16]; /* the IPv4 address connected to, and its port */
    int port;
    struct rc_follow *follow; /* redirect state; NULL when not following */
};

/* Connects to host:port (a numeric IPv4 address or "localhost"). 0, or SM_E_IO / SM_E_BADARG
 * with errno telling why; on error nothing needs closing. */
MUST_USE int rc_open(struct rc_conn *c, const char *host, int port);
void rc_close(struct rc_conn *c);

/* Turns following of -MOVED / -TRYAGAIN / -CLUSTERDOWN off (rc_open turns it on). Only between
 * replies: no command may be outstanding. */
void rc_unfollow(struct rc_conn *c);

/* Appends one command of argc strings to the output buffer (nothing is sent yet). */
void rc_command(struct rc_conn *c, int argc, const char *const *argv);

/* Writes what the socket takes now. 0 (maybe with bytes left), or SM_E_IO. */
MUST_USE int rc_flush(struct rc_conn *c);
/* Bytes still to write. */
size_t rc_pending(const struct rc_conn *c);

/* Reads what the socket has now. 0, or SM_E_IO when the peer closed or the read failed. */
MUST_USE int rc_fill(struct rc_conn *c);

/* Takes the next complete reply from the input: 1 (vals filled), 0 (need more), SM_E_PROTO.
 * When following, a redirected reply is replaced by the final answer (see above): that may block
 * and may also return SM_E_IO or SM_E_TIMEOUT (the node it was sent to failed). */
MUST_USE int rc_next(struct rc_conn *c);

/* Sends what is buffered and waits for one reply: 0, SM_E_IO, SM_E_PROTO or SM_E_TIMEOUT. */
MUST_USE int rc_wait(struct rc_conn *c, int timeout_ms);

/* Helpers over the current reply. */
/* True when the reply is an error; copies its first word (the code) into code[0, cap). */
bool rc_is_error(const struct rc_conn *c, char *code, size_t cap);
/* Copies a simple/bulk string or integer reply as text into s[0, cap); false otherwise. */
bool rc_text(const struct rc_conn *c, char *s, size_t cap);
/* Looks up an integer field of a map (RESP3) or flat key/value array (RESP2); false if absent. */
bool rc_field_int(const struct rc_conn *c, const char *name, int64_t *v);
/* Same for a string field, copied into s[0, cap). */
bool rc_field_str(const struct rc_conn *c, const char *name, char *s, size_t cap);

#endif
