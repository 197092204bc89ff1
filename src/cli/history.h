/*
 * The history file that `shardmart bench --history` writes and `shardmart check` reads: one line
 * per operation, tab-separated (docs/tools.md):
 *
 *   client  op  rid  intended_us  reply_us  outcome  result  args...
 *   3       ORDER.PLACE  b1a2b3c4-17  1520  1790  ok  0075-308b916334e33b39  u42 600000 sku 1
 *
 * Lines starting with '#' are comments. outcome is "ok", an error code (SOLDOUT, LIMIT ...), or
 * "unknown" when no reply came (the operation may or may not have happened).
 */
#ifndef SHARDMART_CLI_HISTORY_H
#define SHARDMART_CLI_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/assert.h"

enum history_op { HISTORY_CREATE, HISTORY_PLACE, HISTORY_PAYEXT, HISTORY_CANCEL };

/* One operation; the strings point into the history's text. */
struct history_line {
    uint32_t line; /* 1-based line number in the file */
    uint8_t op;    /* enum history_op */
    bool acked;    /* a reply came (outcome is not "unknown") */
    bool ok;       /* the reply was not an error */
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
