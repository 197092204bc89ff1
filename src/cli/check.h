/*
 * The proofs of `shardmart check` that cover money and locks (check_money.c, check_locks.c);
 * cmd_check.c runs them after its order and stock proofs. Each reads the history (history.h) and,
 * over the connection, the node's final state, and returns:
 *
 *    0  the property holds
 *    1  a violation, explained on stdout ("check: VIOLATION: ...")
 *    2  a history line it cannot read (explained on stdout)
 *   -1  the node could not answer (no proof either way)
 */
#ifndef SHARDMART_CLI_CHECK_H
#define SHARDMART_CLI_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "cli/history.h"
#include "cli/resp_client.h"

#define CHECK_CHUNK      256   /* pipelined reads per round trip */
#define CHECK_TIMEOUT_MS 10000 /* a node silent this long cannot be read */
#define CHECK_NAME_BYTES 160   /* the longest SKU, account or lock name read from a history */

/* What the money and lock proofs saw, for the summary line. */
struct check_summary {
    size_t accounts_n;
    int64_t balances_cents; /* the sum of every history account's balance */
    size_t locks_n;
    size_t grants_n;
};

/* Money conserved: the history's accounts hold deposits minus withdrawals in total (within what
 * unanswered operations allow), each account exactly what its own acknowledged operations say,
 * and none is below zero beyond its overdraft. Borrows h and c. */
int check_money(const struct history *h, struct rc_conn *c, struct check_summary *s);

/* Lock safety: per lock, fencing tokens are distinct and ordered as the grants were in real
 * time, no grant came while an earlier grant's hold could not yet have ended, and the node shows
 * at most one holder and a token_max no lower than any token granted. Borrows h and c. */
int check_locks(const struct history *h, struct rc_conn *c, struct check_summary *s);

/* The next space-separated word of *p: its start in *word and its length (0 at the end); *p
 * moves past it. */
size_t check_next_word(const char **p, const char **word);

/* An integer word in [0, max] into *v; false when it is not one. */
bool check_word_int(const char *word, size_t len, int64_t max, int64_t *v);

/* Prints "check: VIOLATION: " and the formatted text (unless check_quiet), and returns 1. */
int check_violation(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set while cmd_check.c reads the node's state again because cross-partition work may still be
 * settling: a violation seen then is not printed (the last read's is). */
extern bool check_quiet;

/* True (after a message on stderr) when the current reply on c is an error other than NOTFOUND:
 * the node could not answer (still recovering, busy, ...), which proves nothing either way. */
bool check_node_failed(const struct rc_conn *c, const char *what);

#endif
