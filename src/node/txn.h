/*
 * Cross-partition transactions: two-phase commit between the partitions of one node, built on
 * the engine's holds (docs/node.md "Cross-partition transactions" is the full protocol).
 *
 * Four client commands need it: ORDER.PLACE whose SKUs live in several partitions,
 * ACCOUNT.TRANSFER between accounts of two partitions, ORDER.PAY whose accounts do not both
 * live with the order, and ORDER.REFUND of an order that such a payment paid (its money goes
 * back from the merchant's account to the buyer's: ORDER_REFUND_XPAY). The partition that owns the
 * command (the order's, the payer's) is the coordinator; every other part of the work is a leg,
 * prepared in its own partition:
 *
 *   leg kind   prepare (vote yes when it succeeds)     commit              abort
 *   hold       HOLD_PREPARE of the items there          HOLD_COMMIT         HOLD_ABORT
 *   debit      ACCOUNT_WITHDRAW of the amount (escrow)   -                   deposit it back
 *   credit     the account exists                        ACCOUNT_DEPOSIT     -
 *
 *   coordinator p                                  participant q
 *   BEGIN record (client command)  --PREPARE-->    MSG record: prepare the leg
 *                                  <--VOTE-----    (yes, price of the items / no, the error)
 *   MSG record: all yes -> decide (an order's own
 *   items are reserved now, ORDER_PLACE_PART);
 *   the decision is in this record                 (orders: the holds stay until the order
 *   ...order paid / cancelled / expired...          is paid, cancelled or expired)
 *                                  --DECIDE--->    MSG record: commit or abort the leg
 *   MSG record: count it           <--ACK------
 *
 * Partitions share nothing but messages. A message is a struct txn_msg encoded to bytes; every
 * step of a partition is one log record (STORE_RECORD_TXN) holding the message it reacted to,
 * so replay reproduces every row. Messages produced by a batch go to the store's outbox and
 * are delivered, each as a record of its target partition, only in a batch after that batch is
 * durable: a message is never acted on before the step that sent it can no longer be undone.
 * Nothing here assumes the partitions share memory, so issue 5 can carry the same bytes over
 * the network.
 *
 * Recovery: replay restores every row. Then the coordinator sends again what was not answered
 * (PREPARE without a vote, DECIDE without an ACK), and a participant whose decision is late asks
 * the coordinator (QUERY). A coordinator with no row for a transaction answers abort (presumed
 * abort: its row is dropped only once every participant has acknowledged, and a prepare is only
 * ever sent after the row is durable). A transaction whose votes are not all in after
 * SM_TXN_PREPARE_TIMEOUT_MS of log time is aborted on a tick.
 *
 * Transaction ids: "pppp-hhhhhhhhhhhhhhhh" like an order id, pppp the coordinator's partition.
 * An order's transaction id is its order id.
 */
#ifndef SHARDMART_NODE_TXN_H
#define SHARDMART_NODE_TXN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "limits.h"
#include "util/assert.h"
#include "util/buf.h"
#include "util/index.h"

#define TXN_ID_BYTES 21

enum txn_msg_type {
    TXN_MSG_PREPARE = 1,    /* coordinator -> leg: prepare cmd (an engine record) */
    TXN_MSG_VOTE = 2,       /* leg -> coordinator: yes (cents) or no (err, msg) */
    TXN_MSG_DECIDE = 3,     /* coordinator -> leg: yes = commit, no = abort */
    TXN_MSG_ACK = 4,        /* leg -> coordinator: the decision is applied */
    TXN_MSG_QUERY = 5,      /* leg -> coordinator: what was decided? (the decision is late) */
    TXN_MSG_REFUND = 6,     /* coordinator -> hold leg: the order was refunded; yes = restock */
    TXN_MSG_REFUND_ACK = 7, /* hold leg -> coordinator: its items left sold */
};

/* One message between partitions. Pointers borrow the decoded bytes (or the caller's). */
struct txn_msg {
    uint8_t type;
    uint32_t from, to; /* partitions */
    uint8_t txid[TXN_ID_BYTES];
    uint8_t leg;            /* 0..SM_TXN_LEGS_MAX-1 */
    bool yes;               /* VOTE: prepared; DECIDE: commit; REFUND: restock */
    int32_t err;            /* VOTE no: SM_E_* */
    int64_t cents;          /* VOTE yes: price of the items held (hold legs) */
    int64_t query_after_ms; /* PREPARE: ask the coordinator if no decision comes by then */
    uint8_t msg_len;
    char msg[SM_ENGINE_MESSAGE_BYTES_MAX]; /* VOTE no: the engine's message (a SKU name) */
    const uint8_t *cmd;                    /* PREPARE: the engine record of the leg */
    size_t cmd_len;
};

/* The largest encoded message: its header and one engine record. */
#define TXN_MSG_BYTES_MAX (64 + SM_ENGINE_MESSAGE_BYTES_MAX + SM_ENGINE_RECORD_BYTES_MAX)

/* Appends the message's bytes to w (docs/records.md has the layout). 0, or SM_E_BADARG (a field
 * out of range) / SM_E_NOMEM (w is full). */
MUST_USE int txn_msg_encode(const struct txn_msg *m, struct sm_wbuf *w);
/* Decodes b[0..len) into *m, which then borrows b. 0 or SM_E_BADARG; never reads past len. */
MUST_USE int txn_msg_decode(const uint8_t *b, size_t len, struct txn_msg *m);

enum txn_role {
    TXN_ROLE_FREE = 0,
    TXN_ROLE_COORD = 1,
    TXN_ROLE_PART = 2,
};

enum txn_state {
    /* coordinator */
    TXN_PREPARING = 1,  /* waiting for votes */
    TXN_PLACED = 2,     /* an order committed: its holds wait for the order's payment or end */
    TXN_CONFIRMING = 3, /* DECIDE commit sent; waiting for ACKs */
    TXN_RELEASING = 4,  /* DECIDE abort sent; waiting for ACKs */
    TXN_DONE = 5,       /* every leg acknowledged: only the outcome is kept */
    /* coordinator of a placed order that was refunded (REFUND sent, waiting for REFUND_ACKs;
     * voted is reused as the refund acknowledgements) */
    TXN_REFUNDING_RESTOCK = 10,
    TXN_REFUNDING_WRITEOFF = 11,
    TXN_REFUNDED = 12, /* every hold leg's items left sold */
    /* participant */
    TXN_PREPARED = 6, /* voted yes; the leg holds stock or money */
    TXN_REFUSED = 7,  /* voted no; holds nothing */
    TXN_COMMITTED = 8,
    TXN_ABORTED = 9,
    TXN_LEG_REFUNDED = 13, /* committed, then refunded (HOLD_REFUND applied) */
};

/* One transaction as one partition knows it: as its coordinator, or as one of its legs. */
struct txn_row {
    uint8_t txid[TXN_ID_BYTES];
    uint8_t role;        /* enum txn_role */
    uint8_t state;       /* enum txn_state */
    uint8_t kind;        /* coordinator: the client's engine command; leg: the prepared one */
    uint8_t leg;         /* leg: its number */
    uint8_t legs_count;  /* coordinator */
    bool confirm;        /* coordinator: the decision its DECIDE messages carry */
    uint32_t peer;       /* leg: the coordinator's partition; coordinator: the attempt (0, then
                            one more per restart after a prepare timeout) */
    uint64_t voted;      /* coordinator: legs that voted (bit per leg) */
    uint64_t acked;      /* coordinator: legs that acknowledged the decision */
    uint64_t waiter_id;  /* coordinator: the BEGIN record's index; clients wait on it */
    uint64_t done_index; /* when it became final: the oldest final row is reused first */
    int64_t started_ms;  /* coordinator: begin; leg: prepared */
    int64_t query_at_ms; /* leg: ask the coordinator from then on */
    int64_t cents;       /* coordinator: sum of the votes' cents (orders) */
    int64_t amount;      /* coordinator: the money moved (payments) */
    int32_t err;         /* coordinator: the client's outcome (0 = success) */
    uint8_t msg_len;
    char msg[SM_ENGINE_MESSAGE_BYTES_MAX];
    uint8_t *cmd; /* heap: coordinator: the client's engine record; leg: the prepared one */
    uint32_t cmd_len;
    int64_t sent_ms; /* not logged: when its messages were last (re)sent */
};

/* One partition's rows. Grown on demand up to SM_TXN_ROWS_MAX (cross-partition commands are
 * not the hot path, and most partitions never hold a row), found through a hash index on
 * (txid, role, leg) made with the first row. */
struct txn_table {
    struct txn_row *rows;
    uint32_t count; /* rows in use or free, <= cap */
    uint32_t cap;
    uint32_t used;   /* rows not free */
    uint32_t placed; /* rows in TXN_PLACED: the tick reads their orders */
    struct sm_index index;
    bool index_ready;
};

/* A client's transaction was decided: its reply (err 0 = success) can be sent once the record
 * that decided it is durable. */
struct txn_event {
    uint64_t waiter_id;
    uint8_t kind; /* the client's engine command */
    const uint8_t *txid;
    int32_t err;
    const char *msg;
    size_t msg_len;
};

struct store;

/* The transaction id of a client command run by coordinator partition p: the order id for
 * ORDER_PLACE, a digest of (from account, request id) for ACCOUNT_TRANSFER and of (order,
 * request id) for ORDER_PAY and ORDER_REFUND_XPAY (each with its own seed). txid gets
 * TXN_ID_BYTES bytes. */
void txn_id_of(const struct engine_cmd *cmd, uint32_t p, uint8_t *txid);

/* The coordinator row of txid in partition p, or NULL. */
const struct txn_row *txn_find_coord(const struct store *s, uint32_t p, const uint8_t *txid);

/* A coordinator row aborted by the prepare timeout, every leg's abort acknowledged, with
 * attempts left: the same command (its retry) begins it again instead of answering -TRYAGAIN. */
bool txn_restartable(const struct txn_row *r);

/* An order of partition p paid by a cross-partition payment that is committed: its buyer and
 * merchant accounts (borrowing the payment's row, valid until the next record) and true; false
 * for an order paid otherwise, not paid, or whose payment's row was since reused. Its refund
 * is then a transaction too (ORDER_REFUND_XPAY: the merchant's partition pays back). */
bool txn_paid_across(const struct store *s, uint32_t p, const struct engine_key *order,
                     struct engine_key *buyer, struct engine_key *merchant);

/* Rows not yet final in partition p (the in-flight count). */
uint32_t txn_inflight(const struct store *s, uint32_t p);

/* ---- used by store.c ------------------------------------------------------------------------ */

/* Applies one STORE_RECORD_TXN record (after its partition prefix) to partition p. 0, or
 * SM_E_CORRUPT for bytes no version wrote. */
MUST_USE int txn_apply(struct store *s, uint32_t p, uint64_t index, int64_t now_ms,
                       const uint8_t *rec, size_t len);
/* After an engine record was applied to p: an order a transaction waits on may have been paid
 * or cancelled. */
void txn_after_engine(struct store *s, uint32_t p, uint64_t index, const uint8_t *rec, size_t len);
/* After a tick: timeouts, expired orders, and (live) messages to send again. */
void txn_tick(struct store *s, uint64_t index, int64_t now_ms);
/* After recovery: sends again everything not yet answered. */
void txn_recover(struct store *s);
/* Snapshot section of every partition's rows; load replaces them. 0 or SM_E_*. */
MUST_USE int txn_save(const struct store *s, struct sm_wbuf *w);
MUST_USE int txn_load(struct store *s, const uint8_t *data, size_t len);
void txn_free(struct store *s);

#endif
