/*
 * The seam between the engine and its lock service (locks.h): lock records are dispatched here,
 * their results packed into the idempotency table's compact form, and the lock service's events
 * (waiters granted, timed out or cancelled) collected in the engine's event buffer, which
 * engine_apply hands to the node. The lock service gets the record's log index (its fencing
 * tokens) and the engine's cluster time.
 */
#include "engine/engine_internal.h"

static struct engine_result lock_err(int rc)
{
    if (rc == SM_E_STATE)
        return engine_err(rc, STATE_MSG_LOCK_KIND);
    return engine_err(rc, ENGINE_NONE);
}

static struct engine_result lock_acquire(struct engine *e, const struct engine_cmd *cmd,
                                         const struct locks_ref *keys)
{
    struct locks_acquire a = {.type = (enum locks_type)cmd->lock_type,
                              .owner = cmd->owner,
                              .wait_ms = cmd->num,
                              .lease_ms = cmd->num2,
                              .waiter_id = cmd->waiter_id,
                              .permits = cmd->permits,
                              .reentrant = cmd->reentrant};
    struct locks_grant g;
    int rc = locks_acquire_keyed(&e->locks, e->last_index, e->now_ms, keys, &a, &g);
    if (rc != 0)
        return lock_err(rc);
    ASSERT(g.status >= LOCKS_GRANTED && g.status <= LOCKS_QUEUED);
    return (struct engine_result){.kind = ENGINE_RESULT_GRANT,
                                  .value = (int64_t)g.token,
                                  .value2 = g.permit_id,
                                  .aux = (uint32_t)g.status | g.count << 2};
}

struct engine_result engine_lock_cmd(struct engine *e, const struct engine_cmd *cmd,
                                     uint64_t session_hash, uint64_t name_hash)
{
    struct locks *l = &e->locks;
    uint64_t index = e->last_index;
    int64_t now = e->now_ms, expires_ms = 0;
    uint32_t remaining = 0;
    struct locks_ref ref = {.session = cmd->key.ptr,
                            .session_len = cmd->key.len,
                            .name = cmd->key2.ptr,
                            .name_len = cmd->key2.len,
                            .owner = cmd->owner,
                            .permit_id = cmd->permit_id,
                            .session_hash = session_hash,
                            .name_hash = name_hash};
    int rc;
    switch (cmd->type) {
    case ENGINE_LOCK_SESSION_OPEN:
        rc = locks_session_open(l, index, now, cmd->key.ptr, cmd->key.len, cmd->num, &expires_ms);
        return rc ? lock_err(rc) : engine_int(expires_ms);
    case ENGINE_LOCK_HEARTBEAT:
        rc = locks_session_heartbeat(l, index, now, cmd->key.ptr, cmd->key.len, &expires_ms);
        return rc ? lock_err(rc) : engine_int(expires_ms);
    case ENGINE_LOCK_SESSION_CLOSE:
        rc = locks_session_close(l, index, now, cmd->key.ptr, cmd->key.len, &e->lock_events);
        return rc ? lock_err(rc) : engine_ok();
    case ENGINE_LOCK_ACQUIRE:
        return lock_acquire(e, cmd, &ref);
    case ENGINE_LOCK_RELEASE:
        rc = locks_release(l, index, now, &ref, &remaining, &e->lock_events);
        return rc ? lock_err(rc) : engine_int(remaining);
    case ENGINE_LOCK_RENEW:
        rc = locks_renew(l, index, now, &ref, cmd->num, &expires_ms);
        return rc ? lock_err(rc) : engine_int(expires_ms);
    case ENGINE_LOCK_CANCEL:
        rc = locks_cancel(l, index, now, cmd->key.ptr, cmd->key.len, cmd->waiter_id,
                          &e->lock_events);
        return rc ? lock_err(rc) : engine_ok();
    default:
        UNREACHABLE();
    }
}

static const char *const grant_status_names[] = {"", "GRANTED", "NOT_GRANTED", "QUEUED"};

void engine_render_grant(const struct engine_result *result, struct engine_reply *out)
{
    const struct engine_result r = *result;
    uint32_t status = r.aux & 3;
    ASSERT(status >= LOCKS_GRANTED && status <= LOCKS_QUEUED);
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = 4;
    out->fields[0] = (struct engine_field){.name = "status", .str = grant_status_names[status]};
    out->fields[1] = (struct engine_field){.name = "token", .value = r.value};
    out->fields[2] = (struct engine_field){.name = "permit_id", .value = (int64_t)r.value2};
    out->fields[3] = (struct engine_field){.name = "count", .value = r.aux >> 2};
}

static const char *const lock_kind_names[] = {"", "EXCLUSIVE", "RW", "SEMAPHORE"};

void engine_read_lock(const struct engine *e, const struct engine_cmd *cmd,
                      struct engine_reply *out)
{
    if (cmd->type == ENGINE_LOCK_CHECK) {
        bool current = false;
        int rc = locks_token_check(&e->locks, cmd->key.ptr, cmd->key.len, cmd->token, &current);
        if (rc != 0) {
            engine_reply_err(out, rc, sm_strerror(rc));
            return;
        }
        out->kind = ENGINE_REPLY_INT;
        out->value = current;
        return;
    }
    struct locks_info info;
    int rc = locks_info(&e->locks, cmd->key.ptr, cmd->key.len, &info);
    if (rc != 0) {
        engine_reply_err(out, rc, sm_strerror(rc));
        return;
    }
    ASSERT(info.kind >= LOCKS_KIND_EXCLUSIVE && info.kind <= LOCKS_KIND_SEMAPHORE);
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = 5;
    out->fields[0] = (struct engine_field){.name = "kind", .str = lock_kind_names[info.kind]};
    out->fields[1] = (struct engine_field){.name = "permits", .value = info.permits};
    out->fields[2] = (struct engine_field){.name = "holders", .value = info.holders};
    out->fields[3] = (struct engine_field){.name = "waiters", .value = info.waiters};
    out->fields[4] = (struct engine_field){.name = "token_max", .value = (int64_t)info.token_max};
}
