/*
 * The shape of a command table row, shared by the files that define commands (command.c for the
 * connection commands, trade.c for the trading commands). A table is data: name, arity, flags,
 * handler, as in Redis's command table.
 */
#ifndef SHARDMART_NODE_COMMAND_H
#define SHARDMART_NODE_COMMAND_H

#include <stdint.h>

#include "node/node.h"

enum command_flags {
    CMD_NOAUTH = 1 << 0,   /* allowed before AUTH */
    CMD_READONLY = 1 << 1, /* never changes state */
    CMD_WRITE = 1 << 2,    /* produces a log record */
    CMD_ADMIN = 1 << 3,
};

/* Encodes the reply of one request into out: 0, SM_E_NOMEM (no room in out), or SM_E_BUSY (the
 * batch's log buffer is full: nothing was done or encoded; run it again in the next batch). */
typedef int (*command_fn)(struct node *n, struct node_client *c, const struct resp_request *req,
                          struct resp_encoder *out);

/* A handler shared by several commands that differ only in the engine command they run. */
typedef int (*command_typed_fn)(struct node *n, const struct resp_request *req,
                                struct resp_encoder *out, int type);

struct command {
    const char *name; /* upper case, as COMMAND lists it */
    int arity;        /* N > 0: exactly N words with the name; -N: at least N */
    uint32_t flags;
    command_fn fn;             /* the handler, or NULL when typed_fn is used */
    command_typed_fn typed_fn; /* called with `type` (an enum engine_cmd_type) */
    int type;
};

/* Argument checks and replies shared by the command files (trade.c). Each check returns 0 when
 * the argument is good; otherwise it has encoded an error reply and returns 1, or a negative
 * code when even that did not fit in out. */
struct engine_key;
struct engine_reply;
int node_reply_err(struct resp_encoder *out, int err, const char *msg);
int node_check_key(struct proto_slice s, const char *what, struct resp_encoder *out,
                   struct engine_key *key);
int node_check_int(struct proto_slice s, const char *what, int64_t lo, int64_t hi,
                   struct resp_encoder *out, int64_t *v);
/* An engine reply as RESP: +OK, an integer, a map, or -CODE message. */
int node_put_reply(struct resp_encoder *out, const struct engine_reply *r);
/* A store to work on, and (for writes) room for one more record in this batch: 0, 1 (an error
 * reply was encoded), or SM_E_BUSY (run the request again in the next batch). */
int node_preflight(struct node *n, bool writes, struct resp_encoder *out);

/* Starts (or answers a retry of) a cross-partition command coordinated by partition p, parking
 * c until it is decided (txn_cmd.c). Returns as a handler does. */
struct engine_cmd;
int node_txn_run(struct node *n, struct node_client *c, uint32_t p, const struct engine_cmd *cmd,
                 struct resp_encoder *out);

/* The lock commands (locks_cmd.c). */
extern const struct command lock_commands[];
extern const uint32_t lock_commands_count;

/* The trading commands (trade.c) and their number. */
extern const struct command trade_commands[];
extern const uint32_t trade_commands_count;

#endif
