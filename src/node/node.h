/*
 * One node's command path, without sockets (DESIGN.md section 4). The server (src/server/) reads
 * bytes, parses requests with src/proto/ and hands each one to node_execute() together with the
 * connection's struct node_client and an encoder for the connection's output. The node looks the
 * command up in its table (command.c: name, arity, flags, handler), checks authentication and
 * arity, runs the handler and encodes the reply.
 *
 * Replies are not released by the node: the server holds every reply of a batch back until the
 * batch's log records are durable, so no client ever sees state that a crash could take back.
 *
 * Counters per command (calls, errors) live here so that /metrics and INFO agree; the server adds
 * what only it can see (latency, connections, bytes).
 */
#ifndef SHARDMART_NODE_NODE_H
#define SHARDMART_NODE_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "proto/resp.h"
#include "util/assert.h"

/* The per-connection state the commands see. The server embeds one in each connection and
 * initializes it with node_client_init. */
struct node_client {
    uint64_t id;            /* unique per node, from 1 (CLIENT ID) */
    uint8_t resp_version;   /* 2 or 3 (HELLO) */
    bool authenticated;     /* true when the node has no password, or after AUTH */
    bool close_after_reply; /* set by QUIT: the server closes once the reply is written */
    uint8_t name_len;
    char name[SM_CLIENT_NAME_BYTES_MAX]; /* CLIENT SETNAME, not NUL-terminated */
    /* A blocking acquire in progress: the connection runs nothing else until the event of this
     * waiter (granted, timed out, cancelled) answers it. 0 = not waiting. */
    uint64_t waiting_for;
    uint32_t wait_partition;
    uint8_t wait_session_len;
    uint8_t wait_session[SM_KEY_BYTES_MAX];
};

struct locks_event;
struct node;
struct txn_event;

/* Encodes the deferred reply of a waiting client for its event and ends the wait. */
MUST_USE int node_wake(struct node_client *c, const struct locks_event *ev,
                       struct resp_encoder *out);

/* Encodes the deferred reply of a client waiting on a cross-partition transaction (its
 * wait_session_len is 0) and ends the wait. */
MUST_USE int node_txn_wake(struct node_client *c, const struct txn_event *ev,
                           struct resp_encoder *out);

/* Logs the cancellation of a waiting client's wait (its connection went away). 0, or SM_E_BUSY
 * when this batch has no room (try again in the next). A wait on a transaction (session_len 0)
 * needs nothing: the transaction goes on and its reply is dropped. */
MUST_USE int node_cancel_wait(struct node *n, uint64_t waiter_id, uint32_t partition,
                              const uint8_t *session, size_t session_len);

/* Static facts the node reports (INFO, HELLO, CONFIG GET), filled by the server at start. */
struct node_config {
    const char *password; /* NULL or "" = no AUTH required; borrowed for the node's life */
    uint32_t clients_max;
    uint32_t pipeline_max;
    uint64_t output_bytes_max;
    uint32_t idle_timeout_ms;
    uint32_t partitions;
    const char *bind_host; /* borrowed */
    int resp_port;
    int http_port;
};

/* Counters of one command. */
struct node_command_stats {
    uint64_t calls;
    uint64_t errors;
};

/* The number of rows in the command table; node_command_name(i) for 0 <= i < count. */
uint32_t node_command_count(void);
const char *node_command_name(uint32_t i);

struct store;

struct node {
    struct node_config cfg;
    struct store *store; /* the partitions and their log; borrowed; NULL: no trading commands */
    uint64_t clients_created;
    uint64_t started_ms; /* wall time at start, for INFO uptime */
    uint64_t now_ms;     /* the server's clock at the start of the current batch */
    uint64_t unknown_commands;
    uint64_t protocol_errors;
    struct node_command_stats *stats; /* one per table row */
};

/* Sets up a node; cfg is copied (its strings are borrowed). 0 or SM_E_NOMEM. Free with
 * node_free. */
MUST_USE int node_init(struct node *n, const struct node_config *cfg, uint64_t now_ms);
void node_free(struct node *n);

/* Gives a new connection its id and default state. */
void node_client_init(struct node *n, struct node_client *c);

/* The server's clock, once per batch (INFO uptime, and later the time stamped on records). */
static inline void node_set_time(struct node *n, uint64_t now_ms)
{
    n->now_ms = now_ms;
}

/*
 * Executes one parsed request and encodes its reply into out. An unknown command, a wrong number
 * of arguments or a missing AUTH is an error reply, never a failure of the call. Returns 0;
 * SM_E_NOMEM when out has no room for the reply (the server's output bound): the caller then
 * closes the connection, since the reply of an executed command cannot be dropped silently;
 * SM_E_BUSY when this batch's log buffer is full: nothing was done, the caller keeps the request
 * and runs it in the next batch.
 * An empty request (argc 0) produces no reply, as in Redis.
 */
MUST_USE int node_execute(struct node *n, struct node_client *c, const struct resp_request *req,
                          struct resp_encoder *out);

/* Counts a protocol error (the server closes that connection). */
void node_count_protocol_error(struct node *n);

#endif
