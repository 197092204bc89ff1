/*
 * Request bodies and response parsing for etcd's v3 JSON gateway (see etcd_json.h). Every field
 * read from a response is checked for type and range before use: etcd is trusted to be etcd, but
 * a proxy, a different server on the port or a truncated body must give SM_E_CORRUPT, never a
 * crash or a silently wrong result.
 */
#include "coord/etcd_json.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* ---- base64 -------------------------------------------------------------------------------- */

int etcd_b64_encode(const void *data, size_t len, char **out)
{
    *out = NULL;
    if (len > (size_t)INT32_MAX / 2)
        return SM_E_TOOLARGE;
    char *p = malloc(4 * ((len + 2) / 3) + 1);
    if (!p)
        return SM_E_NOMEM;
    int n = EVP_EncodeBlock((unsigned char *)p, (const unsigned char *)data, (int)len);
    ASSERT(n >= 0);
    p[n] = '\0';
    *out = p;
    return 0;
}

/* The 6-bit value of a base64 character, or -1. */
static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

int etcd_b64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (len % 4 != 0 || len > (size_t)INT32_MAX / 2)
        return SM_E_CORRUPT;
    size_t pad = 0;
    if (len > 0 && text[len - 1] == '=')
        pad = len > 1 && text[len - 2] == '=' ? 2 : 1;
    for (size_t i = 0; i < len - pad; i++)
        if (b64_value(text[i]) < 0)
            return SM_E_CORRUPT;
    /* Canonical only: the bits a padded quantum does not use are zero (RFC 4648 3.5). */
    if (pad > 0 && (b64_value(text[len - pad - 1]) & (pad == 2 ? 0x0f : 0x03)) != 0)
        return SM_E_CORRUPT;
    uint8_t *p = malloc(len / 4 * 3 + 1);
    if (!p)
        return SM_E_NOMEM;
    int n = len ? EVP_DecodeBlock(p, (const unsigned char *)text, (int)len) : 0;
    if (n < 0 || (size_t)n < pad) {
        free(p);
        return SM_E_CORRUPT;
    }
    *out_len = (size_t)n - pad;
    p[*out_len] = 0;
    *out = p;
    return 0;
}

/* ---- building requests --------------------------------------------------------------------- */

size_t etcd_prefix_end(const char *prefix, size_t len, char *end)
{
    ASSERT(len <= SM_COORD_KEY_BYTES_MAX);
    memcpy(end, prefix, len);
    while (len > 0) {
        unsigned char c = (unsigned char)end[len - 1];
        if (c != 0xff) {
            end[len - 1] = (char)(c + 1);
            end[len] = '\0';
            return len;
        }
        len--;
    }
    end[0] = '\0';
    return 1; /* "\0": every key from the start key on */
}

static json_t *b64_json(const void *data, size_t len)
{
    char *s;
    if (etcd_b64_encode(data, len, &s) != 0)
        return NULL;
    json_t *j = json_string(s);
    free(s);
    return j;
}

static json_t *int_json(int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return json_string(buf);
}

/* Sets key (and range_end for a prefix) on o. An empty prefix reads everything: key "\0". */
static int set_range(json_t *o, const char *key, bool prefix)
{
    size_t len = strlen(key);
    int rc = 0;
    if (prefix && len == 0)
        rc |= json_object_set_new(o, "key", b64_json("", 1));
    else
        rc |= json_object_set_new(o, "key", b64_json(key, len));
    if (prefix) {
        char end[SM_COORD_KEY_BYTES_MAX + 1];
        size_t n = etcd_prefix_end(key, len, end);
        rc |= json_object_set_new(o, "range_end", b64_json(end, n));
    }
    return rc;
}

static json_t *op_json(const struct sm_coord_op *op)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = set_range(o, op->key, op->prefix && op->kind != SM_COORD_OP_PUT);
    const char *name = "request_range";
    if (op->kind == SM_COORD_OP_RANGE) {
        rc |= json_object_set_new(o, "limit", int_json(SM_COORD_RANGE_KVS_MAX + 1));
    } else if (op->kind == SM_COORD_OP_PUT) {
        name = "request_put";
        rc |= json_object_set_new(o, "value", b64_json(op->value, op->value_len));
        if (op->lease != 0)
            rc |= json_object_set_new(o, "lease", int_json(op->lease));
    } else {
        name = "request_delete_range";
    }
    json_t *wrap = json_object();
    if (rc != 0 || !wrap || json_object_set_new(wrap, name, o) != 0) {
        json_decref(wrap);
        json_decref(o);
        return NULL;
    }
    return wrap;
}

static json_t *cmp_json(const struct sm_coord_cmp *c)
{
    static const char *const targets[] = {[SM_COORD_CMP_VERSION] = "VERSION",
                                          [SM_COORD_CMP_CREATE_REVISION] = "CREATE",
                                          [SM_COORD_CMP_MOD_REVISION] = "MOD",
                                          [SM_COORD_CMP_VALUE] = "VALUE",
                                          [SM_COORD_CMP_LEASE] = "LEASE"};
    static const char *const fields[] = {[SM_COORD_CMP_VERSION] = "version",
                                         [SM_COORD_CMP_CREATE_REVISION] = "create_revision",
                                         [SM_COORD_CMP_MOD_REVISION] = "mod_revision",
                                         [SM_COORD_CMP_VALUE] = "value",
                                         [SM_COORD_CMP_LEASE] = "lease"};
    static const char *const results[] = {[SM_COORD_EQUAL] = "EQUAL",
                                          [SM_COORD_NOT_EQUAL] = "NOT_EQUAL",
                                          [SM_COORD_GREATER] = "GREATER",
                                          [SM_COORD_LESS] = "LESS"};
    json_t *o = json_object();
    if (!o)
        return NULL;
    int rc = json_object_set_new(o, "key", b64_json(c->key, strlen(c->key)));
    rc |= json_object_set_new(o, "target", json_string(targets[c->target]));
    rc |= json_object_set_new(o, "result", json_string(results[c->result]));
    if (c->target == SM_COORD_CMP_VALUE)
        rc |= json_object_set_new(o, fields[c->target], b64_json(c->value, c->value_len));
    else
        rc |= json_object_set_new(o, fields[c->target], int_json(c->number));
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *txn_json(const struct coord_req *r)
{
    json_t *o = json_object(), *cmps = json_array(), *then = json_array(), *els = json_array();
    int rc = (!o || !cmps || !then || !els) ? -1 : 0;
    for (size_t i = 0; rc == 0 && i < r->ncmps; i++)
        rc = json_array_append_new(cmps, cmp_json(&r->cmps[i]));
    for (size_t i = 0; rc == 0 && i < r->nthen + r->nelse; i++)
        rc = json_array_append_new(i < r->nthen ? then : els, op_json(&r->ops[i]));
    if (rc == 0) {
        rc = json_object_set(o, "compare", cmps) | json_object_set(o, "success", then) |
             json_object_set(o, "failure", els);
    }
    json_decref(cmps);
    json_decref(then);
    json_decref(els);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *watch_json(const struct coord_req *r, int64_t start_revision)
{
    json_t *create = json_object(), *o = json_object();
    int rc = (!create || !o) ? -1 : set_range(create, r->key, r->prefix);
    if (rc == 0 && start_revision > 0)
        rc = json_object_set_new(create, "start_revision", int_json(start_revision));
    if (rc == 0)
        rc = json_object_set(o, "create_request", create);
    json_decref(create);
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

const char *etcd_json_path(enum sm_coord_req_kind kind)
{
    switch (kind) {
    case SM_COORD_REQ_TXN:
        return "/v3/kv/txn";
    case SM_COORD_REQ_LEASE_GRANT:
        return "/v3/lease/grant";
    case SM_COORD_REQ_LEASE_KEEPALIVE:
        return "/v3/lease/keepalive";
    case SM_COORD_REQ_LEASE_REVOKE:
        return "/v3/lease/revoke";
    case SM_COORD_REQ_WATCH:
    case SM_COORD_REQ_WATCH_CANCEL:
        return "/v3/watch";
    }
    UNREACHABLE();
}

int etcd_json_request(const struct coord_req *r, int64_t start_revision, char **body)
{
    *body = NULL;
    json_t *o = NULL;
    switch (r->kind) {
    case SM_COORD_REQ_TXN:
        o = txn_json(r);
        break;
    case SM_COORD_REQ_LEASE_GRANT:
        /* etcd counts whole seconds: round up so a lease never lives shorter than asked. */
        o = json_pack("{s:o}", "TTL", int_json((r->ttl_ms + 999) / 1000));
        break;
    case SM_COORD_REQ_LEASE_KEEPALIVE:
    case SM_COORD_REQ_LEASE_REVOKE:
        o = json_pack("{s:o}", "ID", int_json(r->lease));
        break;
    case SM_COORD_REQ_WATCH:
        o = watch_json(r, start_revision);
        break;
    case SM_COORD_REQ_WATCH_CANCEL:
        UNREACHABLE(); /* a cancel closes the watch's stream; nothing is sent */
    }
    if (!o)
        return SM_E_NOMEM;
    *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return *body ? 0 : SM_E_NOMEM;
}

/* ---- parsing responses --------------------------------------------------------------------- */

/* An int64 field: a decimal string (how the gateway sends 64-bit numbers) or a JSON integer.
 * Missing means 0 (a zero value is left out). False for anything else. */
static bool get_i64(const json_t *o, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(o, name);
    *out = 0;
    if (!v)
        return true;
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_string(v))
        return false;
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    if (n == 0 || n > 20 || (s[0] != '-' && (s[0] < '0' || s[0] > '9')))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(s, &end, 10);
    if (errno != 0 || end != s + n)
        return false;
    *out = x;
    return true;
}

/* A base64 field decoded; missing means empty. Checks the decoded length against max. */
static int get_bytes(const json_t *o, const char *name, size_t max, uint8_t **out, size_t *len)
{
    const json_t *v = json_object_get(o, name);
    *out = NULL;
    *len = 0;
    if (v && !json_is_string(v))
        return SM_E_CORRUPT;
    int rc =
        etcd_b64_decode(v ? json_string_value(v) : "", v ? json_string_length(v) : 0, out, len);
    if (rc == 0 && *len > max) {
        free(*out);
        *out = NULL;
        *len = 0;
        return SM_E_TOOLARGE;
    }
    return rc;
}

static int parse_kv(const json_t *o, struct sm_coord_kv *kv)
{
    memset(kv, 0, sizeof *kv);
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "key")))
        return SM_E_CORRUPT;
    uint8_t *key;
    size_t key_len;
    int rc = get_bytes(o, "key", SM_COORD_KEY_BYTES_MAX, &key, &key_len);
    if (rc != 0)
        return rc;
    kv->key = (char *)key;
    kv->key_len = key_len;
    if (key_len == 0 || memchr(key, '\0', key_len)) {
        coord_kv_free(kv);
        return SM_E_CORRUPT;
    }
    rc = get_bytes(o, "value", SM_COORD_VALUE_BYTES_MAX, &kv->value, &kv->value_len);
    bool ok = rc == 0 && get_i64(o, "create_revision", &kv->create_revision) &&
              get_i64(o, "mod_revision", &kv->mod_revision) &&
              get_i64(o, "version", &kv->version) && get_i64(o, "lease", &kv->lease) &&
              kv->create_revision >= 0 && kv->mod_revision >= 0 && kv->version >= 0;
    if (!ok) {
        coord_kv_free(kv);
        return rc != 0 ? rc : SM_E_CORRUPT;
    }
    return 0;
}

static bool header_revision(const json_t *o, int64_t *rev)
{
    const json_t *h = json_object_get(o, "header");
    return json_is_object(h) && get_i64(h, "revision", rev) && *rev >= 0;
}

/* The number of kvs in one response_range, checked. */
static int range_count(const json_t *resp, size_t *n)
{
    const json_t *kvs = json_object_get(resp, "kvs");
    const json_t *more = json_object_get(resp, "more");
    if (more && !json_is_boolean(more))
        return SM_E_CORRUPT;
    if (json_is_true(more))
        return SM_E_TOOLARGE;
    if (kvs && !json_is_array(kvs))
        return SM_E_CORRUPT;
    *n = kvs ? json_array_size(kvs) : 0;
    return 0;
}

static const char *response_name(enum sm_coord_op_kind kind)
{
    return kind == SM_COORD_OP_RANGE ? "response_range"
           : kind == SM_COORD_OP_PUT ? "response_put"
                                     : "response_delete_range";
}

/* Checks that responses match the branch's ops one to one; counts the kvs they carry. */
static int txn_shape(const json_t *responses, const struct sm_coord_op *ops, size_t n,
                     size_t *kvs_total)
{
    *kvs_total = 0;
    if (responses ? !json_is_array(responses) || json_array_size(responses) != n : n != 0)
        return SM_E_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        const json_t *wrap = json_array_get(responses, i);
        const json_t *resp = json_object_get(wrap, response_name(ops[i].kind));
        if (!json_is_object(wrap) || json_object_size(wrap) != 1 || !json_is_object(resp))
            return SM_E_CORRUPT;
        if (ops[i].kind == SM_COORD_OP_RANGE) {
            size_t k;
            int rc = range_count(resp, &k);
            if (rc != 0)
                return rc;
            *kvs_total += k;
            if (*kvs_total > SM_COORD_RANGE_KVS_MAX)
                return SM_E_TOOLARGE;
        }
    }
    return 0;
}

static int txn_fill(const json_t *responses, const struct sm_coord_op *ops, size_t n,
                    struct sm_coord_result *out)
{
    for (size_t i = 0; i < n; i++) {
        const json_t *resp =
            json_object_get(json_array_get(responses, i), response_name(ops[i].kind));
        if (ops[i].kind == SM_COORD_OP_DELETE) {
            int64_t deleted;
            if (!get_i64(resp, "deleted", &deleted) || deleted < 0)
                return SM_E_CORRUPT;
            out->deleted += deleted;
        } else if (ops[i].kind == SM_COORD_OP_RANGE) {
            const json_t *kvs = json_object_get(resp, "kvs");
            for (size_t k = 0; kvs && k < json_array_size(kvs); k++) {
                int rc = parse_kv(json_array_get(kvs, k), &out->kvs[out->kvs_count]);
                if (rc != 0)
                    return rc;
                out->kvs_count++;
            }
        }
    }
    return 0;
}

static int parse_txn(const struct coord_req *r, const json_t *o, struct sm_coord_result *out)
{
    const json_t *succeeded = json_object_get(o, "succeeded");
    if (succeeded && !json_is_boolean(succeeded))
        return SM_E_CORRUPT;
    out->succeeded = json_is_true(succeeded);
    const struct sm_coord_op *ops = out->succeeded ? r->ops : r->ops + r->nthen;
    size_t n = out->succeeded ? r->nthen : r->nelse;
    const json_t *responses = json_object_get(o, "responses");
    size_t total;
    int rc = txn_shape(responses, ops, n, &total);
    if (rc != 0)
        return rc;
    if (total > 0 && !(out->kvs = calloc(total, sizeof *out->kvs)))
        return SM_E_NOMEM;
    return txn_fill(responses, ops, n, out);
}

static int parse_lease(const struct coord_req *r, const json_t *o, struct sm_coord_result *out)
{
    int64_t id, ttl_s;
    if (r->kind == SM_COORD_REQ_LEASE_KEEPALIVE) {
        o = json_object_get(o, "result");
        if (!json_is_object(o) || !header_revision(o, &out->revision))
            return SM_E_CORRUPT;
    }
    if (!get_i64(o, "ID", &id) || !get_i64(o, "TTL", &ttl_s) || ttl_s < 0 ||
        ttl_s > SM_COORD_LEASE_TTL_MS_MAX / 1000)
        return SM_E_CORRUPT;
    out->lease = r->kind == SM_COORD_REQ_LEASE_GRANT ? id : r->lease;
    if (r->kind == SM_COORD_REQ_LEASE_REVOKE)
        return 0;
    if (r->kind == SM_COORD_REQ_LEASE_KEEPALIVE && ttl_s == 0)
        return SM_E_NOTFOUND; /* the gateway's way of saying the lease is gone */
    if (id <= 0 || ttl_s == 0)
        return SM_E_CORRUPT;
    out->ttl_ms = ttl_s * 1000;
    return 0;
}

int etcd_json_response(const struct coord_req *r, const char *body, size_t len,
                       struct sm_coord_result *out)
{
    json_error_t e;
    json_t *o = json_loadb(body, len, 0, &e);
    int rc = SM_E_CORRUPT;
    if (!json_is_object(o))
        goto done;
    if (json_object_get(o, "error")) {
        rc = etcd_json_error(200, body, len, out);
        json_decref(o);
        return rc;
    }
    if (r->kind != SM_COORD_REQ_LEASE_KEEPALIVE && !header_revision(o, &out->revision))
        goto done;
    rc = r->kind == SM_COORD_REQ_TXN ? parse_txn(r, o, out) : parse_lease(r, o, out);
done:
    json_decref(o);
    if (rc == SM_E_NOTFOUND)
        coord_result_fail(out, rc, "lease %" PRId64 " not found or expired", r->lease);
    else if (rc == SM_E_TOOLARGE)
        coord_result_fail(out, rc, "a read passes the bound of %d keys or a value its %d bytes",
                          SM_COORD_RANGE_KVS_MAX, SM_COORD_VALUE_BYTES_MAX);
    else if (rc != 0)
        coord_result_fail(out, rc, "etcd %s: response not as documented (%.*s)",
                          sm_coord_req_kind_str(r->kind), len ? (int)(len < 60 ? len : 60) : 5,
                          len ? body : "empty");
    return rc;
}

int etcd_json_error(long http_status, const char *body, size_t len, struct sm_coord_result *out)
{
    json_error_t e;
    json_t *root = json_loadb(body, len, 0, &e);
    const json_t *o = root;
    /* Unary errors: {"error": "msg", "message": "msg", "code": N}; stream errors:
     * {"error": {"grpc_code": N, "message": "msg", ...}}. */
    const json_t *err = json_object_get(root, "error");
    if (json_is_object(err))
        o = err;
    int64_t code = -1;
    if (json_is_object(o) && json_object_get(o, "code") && !get_i64(o, "code", &code))
        code = -1;
    if (json_is_object(o) && json_object_get(o, "grpc_code") && !get_i64(o, "grpc_code", &code))
        code = -1;
    const char *msg = json_string_value(json_object_get(o, "message"));
    int rc;
    switch (code) {
    case 3: /* InvalidArgument */
        rc = SM_E_BADARG;
        break;
    case 4: /* DeadlineExceeded */
        rc = SM_E_TIMEOUT;
        break;
    case 5: /* NotFound */
        rc = SM_E_NOTFOUND;
        break;
    case 8: /* ResourceExhausted */
        rc = SM_E_TOOLARGE;
        break;
    case 11: /* OutOfRange: compacted */
        rc = SM_E_STATE;
        break;
    case 14: /* Unavailable: "no leader" did not apply; "request timed out" and "leader
              * changed" were proposed and may still apply */
        rc = msg && (strstr(msg, "timed out") || strstr(msg, "leader changed")) ? SM_E_TIMEOUT
                                                                                : SM_E_TRYAGAIN;
        break;
    default:
        rc = http_status >= 500 ? SM_E_TRYAGAIN : SM_E_IO;
        break;
    }
    coord_result_fail(out, rc, "etcd (HTTP %ld, code %" PRId64 "): %.100s", http_status, code,
                      msg ? msg : "no message");
    json_decref(root);
    return rc;
}

/* ---- watch streams ------------------------------------------------------------------------- */

void etcd_watch_msg_free(struct etcd_watch_msg *msg)
{
    for (size_t i = 0; i < msg->events_count; i++)
        coord_kv_free(&msg->events[i].kv);
    free(msg->events);
    memset(msg, 0, sizeof *msg);
}

static int parse_events(const json_t *events, struct etcd_watch_msg *msg)
{
    if (!events)
        return 0;
    if (!json_is_array(events))
        return SM_E_CORRUPT;
    size_t n = json_array_size(events);
    if (n > SM_COORD_RANGE_KVS_MAX)
        return SM_E_TOOLARGE;
    if (n == 0)
        return 0;
    msg->events = calloc(n, sizeof *msg->events);
    if (!msg->events)
        return SM_E_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const json_t *ev = json_array_get(events, i);
        const json_t *type = json_object_get(ev, "type");
        struct sm_coord_event *out = &msg->events[i];
        if (!type || (json_is_string(type) && strcmp(json_string_value(type), "PUT") == 0))
            out->type = SM_COORD_EVENT_PUT;
        else if (json_is_string(type) && strcmp(json_string_value(type), "DELETE") == 0)
            out->type = SM_COORD_EVENT_DELETE;
        else
            return SM_E_CORRUPT;
        int rc = parse_kv(json_object_get(ev, "kv"), &out->kv);
        if (rc != 0)
            return rc;
        msg->events_count++;
        if (out->kv.mod_revision <= 0 ||
            (i > 0 && out->kv.mod_revision < msg->events[i - 1].kv.mod_revision))
            return SM_E_CORRUPT; /* events come in revision order */
    }
    return 0;
}

int etcd_json_watch_line(const char *line, size_t len, struct etcd_watch_msg *msg)
{
    memset(msg, 0, sizeof *msg);
    json_error_t e;
    json_t *o = json_loadb(line, len, 0, &e);
    int rc = SM_E_CORRUPT;
    const json_t *res = json_object_get(o, "result");
    if (json_is_object(o) && json_object_get(o, "error")) {
        struct sm_coord_result r = {0};
        etcd_json_error(200, line, len, &r);
        msg->error = true;
        snprintf(msg->reason, sizeof msg->reason, "%s", r.message);
        rc = 0;
        goto done;
    }
    if (!json_is_object(res))
        goto done;
    const json_t *created = json_object_get(res, "created");
    const json_t *canceled = json_object_get(res, "canceled");
    const json_t *reason = json_object_get(res, "cancel_reason");
    if ((created && !json_is_boolean(created)) || (canceled && !json_is_boolean(canceled)) ||
        (reason && !json_is_string(reason)) ||
        !get_i64(res, "compact_revision", &msg->compact_revision) || msg->compact_revision < 0)
        goto done;
    msg->created = json_is_true(created);
    msg->canceled = json_is_true(canceled);
    if (reason)
        snprintf(msg->reason, sizeof msg->reason, "%s", json_string_value(reason));
    /* A cancel for compaction carries no header revision; everything else does. */
    if (!header_revision(res, &msg->header_revision))
        goto done;
    rc = parse_events(json_object_get(res, "events"), msg);
done:
    json_decref(o);
    if (rc != 0)
        etcd_watch_msg_free(msg);
    return rc;
}
