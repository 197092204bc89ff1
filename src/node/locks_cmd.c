/*
 * The lock commands: SESSION.*, LOCK.*, RWLOCK.*, SEM.* over the engine's lock service
 * (docs/locks.md).
 *
 * Routing: a lock lives in the partition of its name. A session may hold locks in any partition,
 * so session records (open, heartbeat, close) are applied by every partition (one log record,
 * STORE_RECORD_ALL): each partition's lock service knows the session and expires it at the same
 * tick.
 *
 * Blocking acquires: an acquire with WAIT that is queued parks its connection. The waiter id is
 * the index of the record that queued it (unique, and in the record so a replica knows it too).
 * The lock service reports the waiter's fate as an event while some later record is applied (a
 * release, a session's expiry, the wait's deadline on a tick); node_wake() then encodes the
 * deferred reply, which leaves with that record's batch, after its fsync.
 */
#include <stdio.h>
#include <string.h>

#include "limits.h"
#include "node/command.h"
#include "node/store.h"
#include "util/error.h"

#define HANDLER(name)                                                                              \
    static int name(struct node *n, struct node_client *c, const struct resp_request *req,         \
                    struct resp_encoder *out)

/* A wait or lease: 0 (none) .. SM_LOCK_TTL_MS_MAX. */
#define LOCK_MS_MAX SM_LOCK_TTL_MS_MAX

static int done(int rc)
{
    return rc < 0 ? rc : 0;
}

/* Encodes an error reply: 1, or a negative code when it did not fit. */
static int fail(struct resp_encoder *out, int err, const char *msg)
{
    int rc = node_reply_err(out, err, msg);
    return rc ? rc : 1;
}

/* A grant as a map: status, token, permit_id, count (what the engine's reply holds). */
static int put_grant(struct resp_encoder *out, uint64_t token, uint64_t permit_id)
{
    int rc = resp_put_map(out, 3);
    rc = rc ? rc : resp_put_bulk(out, "status", 6);
    rc = rc ? rc : resp_put_bulk(out, "GRANTED", 7);
    rc = rc ? rc : resp_put_bulk(out, "token", 5);
    rc = rc ? rc : resp_put_int(out, (int64_t)token);
    rc = rc ? rc : resp_put_bulk(out, "permit_id", 9);
    rc = rc ? rc : resp_put_int(out, (int64_t)permit_id);
    return rc;
}

int node_wake(struct node_client *c, const struct locks_event *ev, struct resp_encoder *out)
{
    ASSERT(c->waiting_for == ev->waiter_id);
    c->waiting_for = 0;
    out->version = c->resp_version;
    switch (ev->kind) {
    case LOCKS_EVENT_GRANTED:
        return put_grant(out, ev->token, ev->permit_id);
    case LOCKS_EVENT_TIMEOUT:
        return resp_put_error(out, "TIMEOUT", "lock wait timed out");
    case LOCKS_EVENT_CANCELLED:
        return resp_put_error(out, "STATE", "lock wait cancelled (session closed or expired)");
    }
    UNREACHABLE();
}

int node_cancel_wait(struct node *n, uint64_t waiter_id, uint32_t partition, const uint8_t *session,
                     size_t session_len)
{
    if (session_len == 0)
        return 0; /* a wait on a cross-partition transaction: nothing to cancel */
    char rid[48];
    int len = snprintf(rid, sizeof rid, "cancel-wait-%llu", (unsigned long long)waiter_id);
    struct engine_cmd cmd = {.type = ENGINE_LOCK_CANCEL, .waiter_id = waiter_id};
    cmd.request_id = (struct engine_key){(const uint8_t *)rid, (size_t)len};
    cmd.key = (struct engine_key){session, session_len};
    const struct engine_output *o;
    int rc = store_mutate(n->store, partition, &cmd, &o);
    return rc == SM_E_BUSY ? rc : 0; /* any other outcome: the wait is gone either way */
}

/* A mutation applied by the lock's partition, or by all partitions for session records. */
static int run(struct node *n, const struct engine_cmd *cmd, bool all, uint32_t p,
               struct resp_encoder *out, const struct engine_output **o)
{
    int rc = all ? store_mutate_all(n->store, cmd, o) : store_mutate(n->store, p, cmd, o);
    if (rc == SM_E_BUSY)
        return rc;
    if (rc == SM_E_BADARG)
        return fail(out, SM_E_BADARG, "arguments out of range");
    if (rc != 0)
        return fail(out, SM_E_IO, "the log failed: no more writes");
    return 0;
}

/* ---- sessions ------------------------------------------------------------------------------ */

/* SESSION.OPEN <rid> <session> <ttl_ms> -> lease expiry (ms of cluster time);
 * SESSION.HEARTBEAT <rid> <session> -> new expiry;
 * SESSION.CLOSE <rid> <session>: releases everything it holds, cancels its waits */
static int session_cmd(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                       int type)
{
    struct engine_cmd cmd = {.type = (enum engine_cmd_type)type};
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : node_check_key(req->argv[1], "request id", out, &cmd.request_id);
    rc = rc ? rc : node_check_key(req->argv[2], "session", out, &cmd.key);
    if (rc == 0 && type == ENGINE_LOCK_SESSION_OPEN)
        rc = node_check_int(req->argv[3], "ttl_ms", 1, LOCK_MS_MAX, out, &cmd.num);
    const struct engine_output *o;
    rc = rc ? rc : run(n, &cmd, true, 0, out, &o);
    if (rc)
        return done(rc);
    return node_put_reply(out, &o->reply);
}

/* ---- acquire ------------------------------------------------------------------------------- */

/* Options after the fixed arguments: WAIT <ms>, LEASE <ms>, REENTRANT (exclusive only). */
static int acquire_options(const struct resp_request *req, uint32_t first, bool reentrant_ok,
                           struct resp_encoder *out, struct engine_cmd *cmd)
{
    for (uint32_t i = first; i < req->argc; i++) {
        struct proto_slice o = req->argv[i];
        bool has_value = i + 1 < req->argc;
        int rc;
        if (proto_slice_eq_nocase(o, "WAIT") && has_value)
            rc = node_check_int(req->argv[++i], "wait_ms", 0, LOCK_MS_MAX, out, &cmd->num);
        else if (proto_slice_eq_nocase(o, "LEASE") && has_value)
            rc = node_check_int(req->argv[++i], "lease_ms", 0, LOCK_MS_MAX, out, &cmd->num2);
        else if (proto_slice_eq_nocase(o, "REENTRANT") && reentrant_ok) {
            cmd->reentrant = true;
            rc = 0;
        } else
            rc = fail(out, SM_E_BADARG,
                      reentrant_ok ? "options are WAIT <ms>, LEASE <ms>, REENTRANT"
                                   : "options are WAIT <ms> and LEASE <ms>");
        if (rc)
            return rc;
    }
    return 0;
}

static int check_owner(struct proto_slice s, struct resp_encoder *out, uint64_t *owner)
{
    int64_t v;
    int rc = node_check_int(s, "owner", 0, INT64_MAX, out, &v);
    *owner = (uint64_t)v;
    return rc;
}

/* Runs an acquire and answers it, or parks the connection when it was queued. */
static int acquire(struct node *n, struct node_client *c, struct engine_cmd *cmd,
                   struct resp_encoder *out)
{
    uint32_t p = store_partition(n->store, cmd->key2.ptr, cmd->key2.len);
    cmd->waiter_id = store_index_next(n->store);
    const struct engine_output *o;
    int rc = run(n, cmd, false, p, out, &o);
    if (rc)
        return done(rc);
    const struct engine_reply *r = &o->reply;
    bool queued = r->kind == ENGINE_REPLY_FIELDS && r->fields_count > 0 && r->fields[0].str &&
                  strcmp(r->fields[0].str, "QUEUED") == 0;
    if (!queued)
        return node_put_reply(out, r);
    if (r->replayed) /* the first attempt is the one parked, or already answered */
        return node_reply_err(out, SM_E_TRYAGAIN, "that request id already waits or waited");
    c->waiting_for = cmd->waiter_id;
    c->wait_partition = p;
    c->wait_session_len = (uint8_t)cmd->key.len;
    memcpy(c->wait_session, cmd->key.ptr, cmd->key.len);
    return 0; /* no reply now: node_wake gives it */
}

/* The four words every acquire and release starts with: rid session name. */
static int head(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                struct engine_cmd *cmd)
{
    int rc = node_preflight(n, true, out);
    rc = rc ? rc : node_check_key(req->argv[1], "request id", out, &cmd->request_id);
    rc = rc ? rc : node_check_key(req->argv[2], "session", out, &cmd->key);
    rc = rc ? rc : node_check_key(req->argv[3], "lock name", out, &cmd->key2);
    return rc;
}

/* LOCK.ACQUIRE <rid> <session> <name> <owner> [WAIT <ms>] [LEASE <ms>] [REENTRANT] */
HANDLER(lock_acquire)
{
    struct engine_cmd cmd = {.type = ENGINE_LOCK_ACQUIRE, .lock_type = LOCKS_EXCLUSIVE};
    int rc = head(n, req, out, &cmd);
    rc = rc ? rc : check_owner(req->argv[4], out, &cmd.owner);
    rc = rc ? rc : acquire_options(req, 5, true, out, &cmd);
    return rc ? done(rc) : acquire(n, c, &cmd, out);
}

/* RWLOCK.ACQUIRE <rid> <session> <name> <owner> READ|WRITE [WAIT <ms>] [LEASE <ms>] */
HANDLER(rwlock_acquire)
{
    struct engine_cmd cmd = {.type = ENGINE_LOCK_ACQUIRE};
    int rc = head(n, req, out, &cmd);
    rc = rc ? rc : check_owner(req->argv[4], out, &cmd.owner);
    if (rc == 0) {
        if (proto_slice_eq_nocase(req->argv[5], "READ"))
            cmd.lock_type = LOCKS_READ;
        else if (proto_slice_eq_nocase(req->argv[5], "WRITE"))
            cmd.lock_type = LOCKS_WRITE;
        else
            rc = fail(out, SM_E_BADARG, "say READ or WRITE");
    }
    rc = rc ? rc : acquire_options(req, 6, false, out, &cmd);
    return rc ? done(rc) : acquire(n, c, &cmd, out);
}

/* SEM.ACQUIRE <rid> <session> <name> <permits> [WAIT <ms>] [LEASE <ms>] -> a permit id */
HANDLER(sem_acquire)
{
    struct engine_cmd cmd = {.type = ENGINE_LOCK_ACQUIRE, .lock_type = LOCKS_PERMIT};
    int64_t permits = 0;
    int rc = head(n, req, out, &cmd);
    rc = rc ? rc : node_check_int(req->argv[4], "permits", 1, SM_LOCK_PERMITS_MAX, out, &permits);
    cmd.permits = (uint32_t)permits;
    rc = rc ? rc : acquire_options(req, 5, false, out, &cmd);
    return rc ? done(rc) : acquire(n, c, &cmd, out);
}

/* ---- release, renew, check ----------------------------------------------------------------- */

/* LOCK.RELEASE|RWLOCK.RELEASE <rid> <session> <name> <owner>; SEM.RELEASE ... <permit-id> */
static int release(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                   bool permit)
{
    struct engine_cmd cmd = {.type = ENGINE_LOCK_RELEASE};
    int rc = head(n, req, out, &cmd);
    rc = rc ? rc : check_owner(req->argv[4], out, permit ? &cmd.permit_id : &cmd.owner);
    uint32_t p = rc ? 0 : store_partition(n->store, cmd.key2.ptr, cmd.key2.len);
    const struct engine_output *o;
    rc = rc ? rc : run(n, &cmd, false, p, out, &o);
    return rc ? done(rc) : node_put_reply(out, &o->reply);
}

HANDLER(lock_release)
{
    (void)c;
    return release(n, req, out, false);
}

HANDLER(sem_release)
{
    (void)c;
    return release(n, req, out, true);
}

/* LOCK.RENEW <rid> <session> <name> <owner> <lease_ms>; SEM.RENEW ... <permit-id> <lease_ms> */
static int renew(struct node *n, const struct resp_request *req, struct resp_encoder *out,
                 bool permit)
{
    struct engine_cmd cmd = {.type = ENGINE_LOCK_RENEW};
    int rc = head(n, req, out, &cmd);
    rc = rc ? rc : check_owner(req->argv[4], out, permit ? &cmd.permit_id : &cmd.owner);
    rc = rc ? rc : node_check_int(req->argv[5], "lease_ms", 0, LOCK_MS_MAX, out, &cmd.num);
    uint32_t p = rc ? 0 : store_partition(n->store, cmd.key2.ptr, cmd.key2.len);
    const struct engine_output *o;
    rc = rc ? rc : run(n, &cmd, false, p, out, &o);
    return rc ? done(rc) : node_put_reply(out, &o->reply);
}

HANDLER(lock_renew)
{
    (void)c;
    return renew(n, req, out, false);
}

HANDLER(sem_renew)
{
    (void)c;
    return renew(n, req, out, true);
}

/* LOCK.CHECK <name> <token> -> 1 when the token is current (its grant still holds), else 0 */
HANDLER(lock_check)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_LOCK_CHECK};
    int64_t token = 0;
    int rc = node_preflight(n, false, out);
    rc = rc ? rc : node_check_key(req->argv[1], "lock name", out, &cmd.key);
    rc = rc ? rc : node_check_int(req->argv[2], "token", 0, INT64_MAX, out, &token);
    if (rc)
        return done(rc);
    cmd.token = (uint64_t)token;
    struct engine_reply r;
    store_read(n->store, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, &r);
    return node_put_reply(out, &r);
}

/* LOCK.INFO <name> -> kind, permits, holders, waiters, token_max */
HANDLER(lock_info)
{
    (void)c;
    struct engine_cmd cmd = {.type = ENGINE_LOCK_INFO};
    int rc = node_preflight(n, false, out);
    rc = rc ? rc : node_check_key(req->argv[1], "lock name", out, &cmd.key);
    if (rc)
        return done(rc);
    struct engine_reply r;
    store_read(n->store, store_partition(n->store, cmd.key.ptr, cmd.key.len), &cmd, &r);
    return node_put_reply(out, &r);
}

const struct command lock_commands[] = {
    {"SESSION.OPEN", 4, CMD_WRITE, NULL, session_cmd, ENGINE_LOCK_SESSION_OPEN},
    {"SESSION.HEARTBEAT", 3, CMD_WRITE, NULL, session_cmd, ENGINE_LOCK_HEARTBEAT},
    {"SESSION.CLOSE", 3, CMD_WRITE, NULL, session_cmd, ENGINE_LOCK_SESSION_CLOSE},
    {"LOCK.ACQUIRE", -5, CMD_WRITE, lock_acquire, NULL, 0},
    {"LOCK.RELEASE", 5, CMD_WRITE, lock_release, NULL, 0},
    {"LOCK.RENEW", 6, CMD_WRITE, lock_renew, NULL, 0},
    {"LOCK.CHECK", 3, CMD_READONLY, lock_check, NULL, 0},
    {"LOCK.INFO", 2, CMD_READONLY, lock_info, NULL, 0},
    {"RWLOCK.ACQUIRE", -6, CMD_WRITE, rwlock_acquire, NULL, 0},
    {"RWLOCK.RELEASE", 5, CMD_WRITE, lock_release, NULL, 0},
    {"SEM.ACQUIRE", -5, CMD_WRITE, sem_acquire, NULL, 0},
    {"SEM.RELEASE", 5, CMD_WRITE, sem_release, NULL, 0},
    {"SEM.RENEW", 6, CMD_WRITE, sem_renew, NULL, 0},
};

const uint32_t lock_commands_count = sizeof lock_commands / sizeof lock_commands[0];
