/*
 * The history file that `shardmart bench --history` writes and `shardmart check` reads: one line
 * per operation, tab-separated (docs/tools.md):
 *
 *   client  op  rid  intended_us  reply_us  outcome  result  args...
 *   3       ORDER.PLACE  b1a2b3c4-17  1520  1790  ok  0075-308b916334e33b39  u42 600000 sku 1
 *
 * Lines starting with '#' are comments. outcome is "ok", an error code (SOLDOUT, LIMIT ...), or
 * "unknown" when no reply came (the operation may or may not have happened). result is the
 * reply of an "ok": an order id, a lock's fencing token or NOT_GRANTED, a balance, OK.
 */
#ifndef SHARDMART_CLI_HISTORY_H
#define SHARDMART_CLI_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/assert.h"

/* The operations a history may hold: one list keeps the enum and the names in step. */
#define HISTORY_OPS(X)                                                                             \
    X(HISTORY_CREATE, "STOCK.CREATE")                                                              \
    X(HISTORY_PLACE, "ORDER.PLACE")                                                                \
    X(HISTORY_PAYEXT, "ORDER.PAYEXT")                                                              \
    X(HISTORY_CANCEL, "ORDER.CANCEL")                                                              \
    X(HISTORY_SESSION, "SESSION.OPEN")                                                             \
    X(HISTORY_ACQUIRE, "LOCK.ACQUIRE")                                                             \
    X(HISTORY_RELEASE, "LOCK.RELEASE")                                                             \
    X(HISTORY_OPEN, "ACCOUNT.OPEN")                                                                \
    X(HISTORY_DEPOSIT, "ACCOUNT.DEPOSIT")                                                          \
    X(HISTORY_WITHDRAW, "ACCOUNT.WITHDRAW")                                                        \
    X(HISTORY_TRANSFER, "ACCOUNT.TRANSFER")                                                        \
    X(HISTORY_PAY, "ORDER.PAY")                                                                    \
    X(HISTORY_REFUND, "ORDER.REFUND")

#define HISTORY_OP_ENUM(e, name) e,
enum history_op { HISTORY_OPS(HISTORY_OP_ENUM) HISTORY_OPS_N };
#undef HISTORY_OP_ENUM

/* The command name of op (< HISTORY_OPS_N). */
const char *history_op_name(int op);

/* One operation; the strings point into the history's text. */
struct history_line {
    uint32_t line;        /* 1-based line number in the file */
    uint32_t client;      /* the connection, 0 for the set-up */
    uint64_t intended_us; /* when it was due (the send time in a closed loop) */
    uint64_t reply_us;    /* when its reply was read */
    uint8_t op;           /* enum history_op */
    bool acked;           /* a reply came (outcome is not "unknown") */
    bool ok;              /* the reply was not an error */
    const char *rid;
    const char *outcome;
    const char *result;
    const char *args; /* space-separated */
};

/* A whole history held in memory. Free with history_free. */
struct history {
    char *text;
    struct history_line *lines;
    size_t lines_n;
};

/* Reads and parses path. 0; SM_E_IO when unreadable (errno says why); SM_E_CORRUPT when a line
 * is malformed: *bad_line is its number and why[0, why_cap) the reason. */
MUST_USE int history_load(struct history *h, const char *path, uint32_t *bad_line, char *why,
                          size_t why_cap);
void history_free(struct history *h);

#endif
