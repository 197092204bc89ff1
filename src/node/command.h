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

struct command {
    const char *name; /* upper case, as COMMAND lists it */
    int arity;        /* N > 0: exactly N words with the name; -N: at least N */
    uint32_t flags;
    command_fn fn;
};

/* The trading commands (trade.c) and their number. */
extern const struct command trade_commands[];
extern const uint32_t trade_commands_count;

#endif
