/*
 * The backend-neutral half of coord.h: every request is checked here, once, against the rules of
 * the interface and the bounds of src/limits.h, then copied and handed to the backend. Both
 * backends therefore refuse the same bad requests with the same errors, and a backend only ever
 * sees well-formed requests it owns.
 */
#include "coord/coord_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

static const char *const req_kind_names[] = {
    [SM_COORD_REQ_TXN] = "txn",
    [SM_COORD_REQ_LEASE_GRANT] = "lease_grant",
    [SM_COORD_REQ_LEASE_KEEPALIVE] = "lease_keepalive",
    [SM_COORD_REQ_LEASE_REVOKE] = "lease_revoke",
    [SM_COORD_REQ_WATCH] = "watch",
    [SM_COORD_REQ_WATCH_CANCEL] = "watch_cancel",
};

const char *sm_coord_req_kind_str(enum sm_coord_req_kind kind)
{
    if ((unsigned)kind >= sizeof req_kind_names / sizeof req_kind_names[0])
        return "unknown";
    return req_kind_names[kind];
}

/* ---- checks -------------------------------------------------------------------------------- */

/* 0, or why key cannot be a key (a prefix may be empty when empty_ok). */
static int check_key(const char *key, bool empty_ok)
{
    if (!key)
        return SM_E_BADARG;
    size_t len = strnlen(key, SM_COORD_KEY_BYTES_MAX + 1);
    if (len > SM_COORD_KEY_BYTES_MAX)
        return SM_E_TOOLARGE;
    if (len == 0 && !empty_ok)
        return SM_E_BADARG;
    return 0;
}

static int check_value(const void *value, size_t len)
{
    if (len > SM_COORD_VALUE_BYTES_MAX)
        return SM_E_TOOLARGE;
    if (len > 0 && !value)
        return SM_E_BADARG;
    return 0;
}

static int check_cmp(const struct sm_coord_cmp *cmp)
{
    int rc = check_key(cmp->key, false);
    if (rc != 0)
        return rc;
    if ((unsigned)cmp->result > SM_COORD_LESS)
        return SM_E_BADARG;
    switch (cmp->target) {
    case SM_COORD_CMP_VALUE:
        return check_value(cmp->value, cmp->value_len);
    case SM_COORD_CMP_VERSION:
    case SM_COORD_CMP_CREATE_REVISION:
    case SM_COORD_CMP_MOD_REVISION:
    case SM_COORD_CMP_LEASE:
        return cmp->number < 0 ? SM_E_BADARG : 0;
    }
    return SM_E_BADARG;
}

static int check_op(const struct sm_coord_op *op)
{
    switch (op->kind) {
    case SM_COORD_OP_RANGE:
        return check_key(op->key, op->prefix);
    case SM_COORD_OP_PUT: {
        int rc = check_key(op->key, false);
        if (rc == 0)
            rc = check_value(op->value, op->value_len);
        if (rc == 0 && (op->prefix || op->lease < 0))
            rc = SM_E_BADARG;
        return rc;
    }
    case SM_COORD_OP_DELETE:
        return check_key(op->key, false);
    }
    return SM_E_BADARG;
}

/* True when writes a and b (PUT or DELETE) touch a common key: etcd refuses such a transaction
 * ("duplicate key given in txn request"), so we refuse it for both backends. */
static bool writes_overlap(const struct sm_coord_op *a, const struct sm_coord_op *b)
{
    size_t la = strlen(a->key), lb = strlen(b->key);
    if (a->prefix && coord_key_has_prefix(b->key, lb, a->key, la))
        return true;
    if (b->prefix && coord_key_has_prefix(a->key, la, b->key, lb))
        return true;
    return la == lb && memcmp(a->key, b->key, la) == 0;
}

static int check_branch(const struct sm_coord_op *ops, size_t n)
{
    if (n > 0 && !ops)
        return SM_E_BADARG;
    for (size_t i = 0; i < n; i++) {
        int rc = check_op(&ops[i]);
        if (rc != 0)
            return rc;
        if (ops[i].kind == SM_COORD_OP_RANGE)
            continue;
        for (size_t j = 0; j < i; j++)
            if (ops[j].kind != SM_COORD_OP_RANGE && writes_overlap(&ops[i], &ops[j]))
                return SM_E_BADARG;
    }
    return 0;
}

/* ---- copies -------------------------------------------------------------------------------- */

static char *dup_bytes(const void *src, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        return NULL;
    if (len > 0)
        memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

void coord_req_free(struct coord_req *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ncmps; i++) {
        free((void *)r->cmps[i].key);
        free((void *)r->cmps[i].value);
    }
    for (size_t i = 0; i < r->nthen + r->nelse; i++) {
        free((void *)r->ops[i].key);
        free((void *)r->ops[i].value);
    }
    free(r->cmps);
    free(r->ops);
    free(r->key);
    if (r->done) {
        sm_coord_result_free(&r->done->result);
        free(r->done);
    }
    free(r);
}

static bool copy_ops(struct sm_coord_op *dst, const struct sm_coord_op *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        dst[i] = src[i];
        dst[i].key = dup_bytes(src[i].key, strlen(src[i].key));
        dst[i].value =
            dst[i].kind == SM_COORD_OP_PUT ? dup_bytes(src[i].value, src[i].value_len) : NULL;
        if (!dst[i].key || (dst[i].kind == SM_COORD_OP_PUT && !dst[i].value))
            return false;
    }
    return true;
}

static struct coord_req *copy_txn(const struct sm_coord_cmp *cmps, size_t ncmps,
                                  const struct sm_coord_op *then_ops, size_t nthen,
                                  const struct sm_coord_op *else_ops, size_t nelse)
{
    struct coord_req *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->kind = SM_COORD_REQ_TXN;
    r->cmps = calloc(ncmps + 1, sizeof *r->cmps);
    r->ops = calloc(nthen + nelse + 1, sizeof *r->ops);
    if (!r->cmps || !r->ops)
        goto fail;
    for (size_t i = 0; i < ncmps; i++) {
        r->cmps[i] = cmps[i];
        r->ncmps = i + 1; /* so that a failed copy frees what was copied */
        r->cmps[i].key = dup_bytes(cmps[i].key, strlen(cmps[i].key));
        r->cmps[i].value = cmps[i].target == SM_COORD_CMP_VALUE
                               ? dup_bytes(cmps[i].value, cmps[i].value_len)
                               : NULL;
        if (!r->cmps[i].key || (cmps[i].target == SM_COORD_CMP_VALUE && !r->cmps[i].value))
            goto fail;
    }
    r->nthen = nthen;
    r->nelse = nelse;
    if (!copy_ops(r->ops, then_ops, nthen) || !copy_ops(r->ops + nthen, else_ops, nelse))
        goto fail;
    return r;
fail:
    coord_req_free(r);
    return NULL;
}

/* ---- submitting ---------------------------------------------------------------------------- */

static int submit(struct sm_coord *c, struct coord_req *r, uint64_t *id)
{
    ASSERT(c && c->backend);
    if (!r)
        return SM_E_NOMEM;
    uint64_t next = c->next_id + 1;
    r->id = next;
    int rc = c->backend->submit(c, r); /* takes r on success: it may be gone on return */
    if (rc != 0) {
        coord_req_free(r);
        return rc;
    }
    c->next_id = next;
    *id = next;
    return 0;
}

int sm_coord_txn(struct sm_coord *c, const struct sm_coord_cmp *cmps, size_t ncmps,
                 const struct sm_coord_op *then_ops, size_t nthen,
                 const struct sm_coord_op *else_ops, size_t nelse, uint64_t *id)
{
    ASSERT(c && id);
    *id = 0;
    if (ncmps > SM_COORD_TXN_OPS_MAX || nthen > SM_COORD_TXN_OPS_MAX ||
        nelse > SM_COORD_TXN_OPS_MAX || ncmps + nthen + nelse > SM_COORD_TXN_OPS_MAX)
        return SM_E_TOOLARGE;
    if (ncmps > 0 && !cmps)
        return SM_E_BADARG;
    for (size_t i = 0; i < ncmps; i++) {
        int rc = check_cmp(&cmps[i]);
        if (rc != 0)
            return rc;
    }
    int rc = check_branch(then_ops, nthen);
    if (rc == 0)
        rc = check_branch(else_ops, nelse);
    if (rc != 0)
        return rc;
    return submit(c, copy_txn(cmps, ncmps, then_ops, nthen, else_ops, nelse), id);
}

int sm_coord_get(struct sm_coord *c, const char *key, bool prefix, uint64_t *id)
{
    struct sm_coord_op op = {.kind = SM_COORD_OP_RANGE, .key = key, .prefix = prefix};
    return sm_coord_txn(c, NULL, 0, &op, 1, NULL, 0, id);
}

int sm_coord_put(struct sm_coord *c, const char *key, const void *value, size_t value_len,
                 int64_t lease, uint64_t *id)
{
    struct sm_coord_op op = {.kind = SM_COORD_OP_PUT,
                             .key = key,
                             .value = value,
                             .value_len = value_len,
                             .lease = lease};
    return sm_coord_txn(c, NULL, 0, &op, 1, NULL, 0, id);
}

int sm_coord_delete(struct sm_coord *c, const char *key, bool prefix, uint64_t *id)
{
    struct sm_coord_op op = {.kind = SM_COORD_OP_DELETE, .key = key, .prefix = prefix};
    return sm_coord_txn(c, NULL, 0, &op, 1, NULL, 0, id);
}

static struct coord_req *new_req(enum sm_coord_req_kind kind)
{
    struct coord_req *r = calloc(1, sizeof *r);
    if (r)
        r->kind = kind;
    return r;
}

int sm_coord_lease_grant(struct sm_coord *c, int64_t ttl_ms, uint64_t *id)
{
    ASSERT(c && id);
    *id = 0;
    if (ttl_ms <= 0)
        return SM_E_BADARG;
    if (ttl_ms > SM_COORD_LEASE_TTL_MS_MAX)
        return SM_E_TOOLARGE;
    struct coord_req *r = new_req(SM_COORD_REQ_LEASE_GRANT);
    if (r)
        r->ttl_ms = ttl_ms;
    return submit(c, r, id);
}

static int lease_req(struct sm_coord *c, enum sm_coord_req_kind kind, int64_t lease, uint64_t *id)
{
    ASSERT(c && id);
    *id = 0;
    if (lease <= 0)
        return SM_E_BADARG;
    struct coord_req *r = new_req(kind);
    if (r)
        r->lease = lease;
    return submit(c, r, id);
}

int sm_coord_lease_keepalive(struct sm_coord *c, int64_t lease, uint64_t *id)
{
    return lease_req(c, SM_COORD_REQ_LEASE_KEEPALIVE, lease, id);
}

int sm_coord_lease_revoke(struct sm_coord *c, int64_t lease, uint64_t *id)
{
    return lease_req(c, SM_COORD_REQ_LEASE_REVOKE, lease, id);
}

int sm_coord_watch(struct sm_coord *c, const char *key, bool prefix, int64_t start_revision,
                   uint64_t *id)
{
    ASSERT(c && id);
    *id = 0;
    int rc = check_key(key, prefix);
    if (rc != 0)
        return rc;
    if (start_revision < 0)
        return SM_E_BADARG;
    struct coord_req *r = new_req(SM_COORD_REQ_WATCH);
    if (r) {
        r->key = dup_bytes(key, strlen(key));
        r->prefix = prefix;
        r->start_revision = start_revision;
        if (!r->key) {
            coord_req_free(r);
            r = NULL;
        }
    }
    return submit(c, r, id);
}

int sm_coord_watch_cancel(struct sm_coord *c, uint64_t watch_id, uint64_t *id)
{
    ASSERT(c && id);
    *id = 0;
    if (watch_id == 0)
        return SM_E_BADARG;
    struct coord_req *r = new_req(SM_COORD_REQ_WATCH_CANCEL);
    if (r)
        r->watch_id = watch_id;
    return submit(c, r, id);
}

/* ---- results ------------------------------------------------------------------------------- */

int sm_coord_poll(struct sm_coord *c, struct sm_coord_result *out)
{
    ASSERT(c && out);
    return c->backend->poll(c, out);
}

int sm_coord_fd(const struct sm_coord *c)
{
    ASSERT(c);
    return c->backend->fd(c);
}

void sm_coord_close(struct sm_coord *c)
{
    if (c)
        c->backend->close(c);
}

bool coord_kv_set(struct sm_coord_kv *kv, const char *key, size_t key_len, const void *value,
                  size_t value_len)
{
    kv->key = dup_bytes(key, key_len);
    kv->value = (uint8_t *)dup_bytes(value, value_len);
    if (!kv->key || !kv->value) {
        coord_kv_free(kv);
        return false;
    }
    kv->key_len = key_len;
    kv->value_len = value_len;
    return true;
}

void coord_kv_free(struct sm_coord_kv *kv)
{
    free(kv->key);
    free(kv->value);
    kv->key = NULL;
    kv->value = NULL;
    kv->key_len = kv->value_len = 0;
}

void sm_coord_result_free(struct sm_coord_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->kvs_count; i++)
        coord_kv_free(&r->kvs[i]);
    for (size_t i = 0; i < r->events_count; i++)
        coord_kv_free(&r->events[i].kv);
    free(r->kvs);
    free(r->events);
    memset(r, 0, sizeof *r);
}

void coord_result_fail(struct sm_coord_result *r, int err, const char *fmt, ...)
{
    ASSERT(err < 0);
    r->err = err;
    va_list ap;
    va_start(ap, fmt);
    /* clang-tidy 14 reports the va_list as uninitialized although va_start set it. */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(r->message, sizeof r->message, fmt, ap);
    va_end(ap);
}

struct coord_result_node *coord_result_new(enum sm_coord_result_kind kind,
                                           enum sm_coord_req_kind req, uint64_t id)
{
    struct coord_result_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->result.kind = kind;
    n->result.req = req;
    n->result.id = id;
    return n;
}

void coord_results_push(struct coord_results *q, struct coord_result_node *n)
{
    ASSERT(n && !n->next);
    if (q->tail)
        q->tail->next = n;
    else
        q->head = n;
    q->tail = n;
    q->count++;
}

int coord_results_pop(struct coord_results *q, struct sm_coord_result *out)
{
    struct coord_result_node *n = q->head;
    if (!n) {
        memset(out, 0, sizeof *out);
        return 0;
    }
    q->head = n->next;
    if (!q->head)
        q->tail = NULL;
    ASSERT(q->count > 0);
    q->count--;
    *out = n->result;
    free(n);
    return 1;
}

void coord_results_clear(struct coord_results *q)
{
    struct sm_coord_result r;
    while (coord_results_pop(q, &r))
        sm_coord_result_free(&r);
}

bool coord_key_has_prefix(const char *key, size_t key_len, const char *prefix, size_t prefix_len)
{
    return key_len >= prefix_len && memcmp(key, prefix, prefix_len) == 0;
}
