/*
 * The client side of cross-partition transactions (node/txn.h): starting one from a command
 * handler, answering a retry, and parking the connection until the decision.
 *
 * A client's reply waits until the decision is durable: the handler logs the transaction's
 * first record and parks the connection on the row's waiter id (the index of that record). The
 * record that decides it reports a struct txn_event; the server finds the parked connections
 * and node_txn_wake() encodes the reply, which leaves with that record's batch, after its
 * fsync. A retry of a command in flight (same request id, same arguments) parks on the same
 * row instead of starting a second transaction; a retry of a decided one gets the outcome the
 * row remembers (and, for an order whose row was reused, the order itself).
 */
#include <string.h>

#include "node/command.h"
#include "node/store.h"
#include "node/txn.h"
#include "util/error.h"

/* The reply of a decided transaction: the order id, +OK, or the error. */
static int put_outcome(struct resp_encoder *out, uint8_t kind, const uint8_t *txid, int32_t err,
                       const char *msg, size_t msg_len)
{
    if (err == 0)
        return kind == ENGINE_ORDER_PLACE ? resp_put_bulk(out, txid, TXN_ID_BYTES)
                                          : resp_put_simple(out, "OK", 2);
    struct engine_reply r = {.kind = ENGINE_REPLY_ERR, .err = err};
    r.msg_len = msg_len < sizeof r.msg ? msg_len : sizeof r.msg;
    memcpy(r.msg, msg, r.msg_len);
    return node_put_reply(out, &r);
}

int node_txn_wake(struct node_client *c, const struct txn_event *ev, struct resp_encoder *out)
{
    ASSERT(c->waiting_for == ev->waiter_id && c->wait_session_len == 0);
    c->waiting_for = 0;
    out->version = c->resp_version;
    return put_outcome(out, ev->kind, ev->txid, ev->err, ev->msg, ev->msg_len);
}

/* True when the row was started by exactly this command (a retry), false for a request id
 * reused with other arguments. */
static bool same_command(struct store *s, const struct txn_row *r, const struct engine_cmd *cmd)
{
    size_t len = 0;
    if (engine_encode(cmd, s->scratch, SM_ENGINE_RECORD_BYTES_MAX, &len) != 0)
        return false;
    return len == r->cmd_len && memcmp(s->scratch, r->cmd, len) == 0;
}

static bool order_exists(const struct store *s, uint32_t p, const struct engine_key *id)
{
    struct engine_cmd get = {.type = ENGINE_ORDER_GET, .key = *id};
    struct engine_reply r;
    store_read(s, p, &get, &r);
    return r.kind != ENGINE_REPLY_ERR;
}

int node_txn_run(struct node *n, struct node_client *c, uint32_t p, const struct engine_cmd *cmd,
                 struct resp_encoder *out)
{
    struct store *s = n->store;
    uint8_t txid[TXN_ID_BYTES];
    txn_id_of(cmd, p, txid);
    const struct txn_row *r = txn_find_coord(s, p, txid);
    if (r && !same_command(s, r, cmd))
        return node_reply_err(out, SM_E_IDEMPOTENCY, NULL);
    /* A retry of a transaction aborted by the prepare timeout begins it again (txn.c). */
    if (!r || txn_restartable(r)) {
        /* A retry of an order whose row was reused: the order answers. */
        if (!r && cmd->type == ENGINE_ORDER_PLACE && order_exists(s, p, &cmd->key))
            return resp_put_bulk(out, cmd->key.ptr, cmd->key.len);
        if (!r && txn_inflight(s, p) >= SM_TXN_ROWS_MAX)
            return node_reply_err(out, SM_E_BUSY,
                                  "too many cross-partition transactions in "
                                  "flight in this partition");
        int rc = store_txn_begin(s, p, cmd);
        if (rc == SM_E_BUSY)
            return rc;
        if (rc != 0)
            return node_reply_err(out, rc == SM_E_BADARG ? SM_E_BADARG : SM_E_IO,
                                  rc == SM_E_BADARG ? "arguments out of range"
                                                    : "the log failed: no more writes");
        r = txn_find_coord(s, p, txid);
        if (!r)
            return node_reply_err(out, SM_E_BUSY,
                                  "too many cross-partition transactions in "
                                  "flight in this partition");
    }
    if (r->state == TXN_PREPARING) {
        /* No reply now: the record that decides answers (node_txn_wake). */
        c->waiting_for = r->waiter_id;
        c->wait_partition = p;
        c->wait_session_len = 0;
        return 0;
    }
    return put_outcome(out, r->kind, r->txid, r->err, r->msg, r->msg_len);
}
