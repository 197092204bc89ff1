/*
 * The cluster directory over coord.h (see directory.h for the key layout): JSON values through
 * jansson, transactions for create-once, compare-and-swap and election, and the lease session.
 * Nothing here knows which backend runs underneath.
 */
#include "coord/directory.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define KEY_META       "meta"
#define KEY_MEMBERS    "members/"
#define KEY_PARTITIONS "partitions/"
#define KEY_CONTROLLER "controller"

/* Partition numbers in keys: 5 digits cover SM_PARTITIONS_MAX - 1 = 65535. */
#define PARTITION_DIGITS 5
_Static_assert(SM_PARTITIONS_MAX - 1 <= 99999, "partition numbers fit in 5 digits");

static bool name_ok(const char *s, size_t max, bool empty_ok)
{
    size_t n = strnlen(s, max + 1);
    if (n > max || (n == 0 && !empty_ok))
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                  (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-' || ch == ':';
        if (!ok)
            return false;
    }
    return true;
}

int sm_coord_dir_init(struct sm_coord_dir *d, struct sm_coord *c, const char *cluster)
{
    ASSERT(d && c && cluster);
    memset(d, 0, sizeof *d);
    if (strnlen(cluster, SM_COORD_CLUSTER_NAME_BYTES_MAX + 1) > SM_COORD_CLUSTER_NAME_BYTES_MAX)
        return SM_E_TOOLARGE;
    if (!name_ok(cluster, SM_COORD_CLUSTER_NAME_BYTES_MAX, false) || strchr(cluster, ':'))
        return SM_E_BADARG;
    d->coord = c;
    int n = snprintf(d->prefix, sizeof d->prefix, "/shardmart/%s/", cluster);
    ASSERT(n > 0 && (size_t)n < sizeof d->prefix);
    d->prefix_len = (size_t)n;
    return 0;
}

/* prefix + suffix (+ id) into key; false when it does not fit (the caller checked the parts). */
static void make_key(const struct sm_coord_dir *d, char *key, size_t cap, const char *suffix,
                     const char *id)
{
    int n = snprintf(key, cap, "%s%s%s", d->prefix, suffix, id ? id : "");
    ASSERT(n > 0 && (size_t)n < cap);
}

static void partition_key(const struct sm_coord_dir *d, char *key, size_t cap, uint32_t partition)
{
    int n = snprintf(key, cap, "%s" KEY_PARTITIONS "%0*" PRIu32, d->prefix, PARTITION_DIGITS,
                     partition);
    ASSERT(n > 0 && (size_t)n < cap);
}

/* ---- JSON values --------------------------------------------------------------------------- */

/* Dumps j (which it frees) into buf; 0 or SM_E_TOOLARGE / SM_E_NOMEM. */
static int dump(json_t *j, char *buf, size_t cap, size_t *len)
{
    if (!j)
        return SM_E_NOMEM;
    size_t need = json_dumpb(j, NULL, 0, JSON_COMPACT);
    int rc = 0;
    if (need == 0)
        rc = SM_E_NOMEM;
    else if (need + 1 > cap || need > SM_COORD_VALUE_BYTES_MAX)
        rc = SM_E_TOOLARGE;
    else {
        *len = json_dumpb(j, buf, cap, JSON_COMPACT);
        buf[*len] = '\0';
    }
    json_decref(j);
    return rc;
}

/* Parses an object; NULL when value is not a JSON object. */
static json_t *load_object(const void *value, size_t len)
{
    if (!value || len == 0 || len > SM_COORD_VALUE_BYTES_MAX)
        return NULL;
    json_error_t e;
    json_t *j = json_loadb(value, len, JSON_REJECT_DUPLICATES, &e);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* An integer field in [lo, hi]. */
static bool get_int(const json_t *o, const char *name, json_int_t lo, json_int_t hi,
                    json_int_t *out)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return *out >= lo && *out <= hi;
}

/* A string field copied into buf[cap] (cap - 1 bytes at most, no NUL inside). */
static bool get_str(const json_t *o, const char *name, char *buf, size_t cap)
{
    const json_t *v = json_object_get(o, name);
    if (!json_is_string(v))
        return false;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap || memchr(s, '\0', n))
        return false;
    memcpy(buf, s, n + 1);
    return true;
}

int sm_coord_meta_encode(const struct sm_coord_meta *m, char *buf, size_t cap, size_t *len)
{
    ASSERT(m && buf && len);
    if (m->partitions < 1 || m->partitions > SM_PARTITIONS_MAX || m->replicas < 1 ||
        m->replicas > SM_REPLICAS_MAX)
        return SM_E_BADARG;
    return dump(json_pack("{s:I,s:I}", "partitions", (json_int_t)m->partitions, "replicas",
                          (json_int_t)m->replicas),
                buf, cap, len);
}

int sm_coord_meta_decode(const void *value, size_t len, struct sm_coord_meta *out)
{
    ASSERT(out);
    memset(out, 0, sizeof *out);
    json_t *o = load_object(value, len);
    json_int_t p, r;
    bool ok = o && json_object_size(o) == 2 && get_int(o, "partitions", 1, SM_PARTITIONS_MAX, &p) &&
              get_int(o, "replicas", 1, SM_REPLICAS_MAX, &r);
    json_decref(o);
    if (!ok)
        return SM_E_CORRUPT;
    out->partitions = (uint32_t)p;
    out->replicas = (uint32_t)r;
    return 0;
}

static bool member_ok(const struct sm_coord_member *m)
{
    size_t addr = strnlen(m->addr, sizeof m->addr);
    return name_ok(m->id, SM_NODE_ID_BYTES_MAX, false) && addr > 0 && addr < sizeof m->addr &&
           name_ok(m->zone, SM_COORD_ZONE_BYTES_MAX, true) && m->weight >= 1 &&
           m->weight <= SM_RING_WEIGHT_MAX;
}

int sm_coord_member_encode(const struct sm_coord_member *m, char *buf, size_t cap, size_t *len)
{
    ASSERT(m && buf && len);
    if (!member_ok(m))
        return SM_E_BADARG;
    return dump(json_pack("{s:s,s:s,s:s,s:I}", "id", m->id, "addr", m->addr, "zone", m->zone,
                          "weight", (json_int_t)m->weight),
                buf, cap, len);
}

int sm_coord_member_decode(const void *value, size_t len, struct sm_coord_member *out)
{
    ASSERT(out);
    memset(out, 0, sizeof *out);
    json_t *o = load_object(value, len);
    json_int_t w;
    bool ok = o && json_object_size(o) == 4 && get_str(o, "id", out->id, sizeof out->id) &&
              get_str(o, "addr", out->addr, sizeof out->addr) &&
              get_str(o, "zone", out->zone, sizeof out->zone) &&
              get_int(o, "weight", 1, SM_RING_WEIGHT_MAX, &w);
    json_decref(o);
    if (ok) {
        out->weight = (uint32_t)w;
        ok = member_ok(out);
    }
    if (!ok) {
        memset(out, 0, sizeof *out);
        return SM_E_CORRUPT;
    }
    return 0;
}

static bool partition_ok(const struct sm_coord_partition *p)
{
    if (p->epoch < 1 || p->epoch > (uint64_t)INT64_MAX || p->isr_count < 1 ||
        p->isr_count > SM_REPLICAS_MAX || !name_ok(p->primary, SM_NODE_ID_BYTES_MAX, false))
        return false;
    bool primary_in = false;
    for (uint32_t i = 0; i < p->isr_count; i++) {
        if (!name_ok(p->isr[i], SM_NODE_ID_BYTES_MAX, false))
            return false;
        primary_in |= strcmp(p->isr[i], p->primary) == 0;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(p->isr[i], p->isr[j]) == 0)
                return false;
    }
    return primary_in;
}

int sm_coord_partition_encode(const struct sm_coord_partition *p, char *buf, size_t cap,
                              size_t *len)
{
    ASSERT(p && buf && len);
    if (!partition_ok(p))
        return SM_E_BADARG;
    json_t *isr = json_array();
    for (uint32_t i = 0; isr && i < p->isr_count; i++)
        if (json_array_append_new(isr, json_string(p->isr[i])) != 0) {
            json_decref(isr);
            return SM_E_NOMEM;
        }
    return dump(json_pack("{s:I,s:s,s:o}", "epoch", (json_int_t)p->epoch, "primary", p->primary,
                          "isr", isr),
                buf, cap, len);
}

int sm_coord_partition_decode(const void *value, size_t len, struct sm_coord_partition *out)
{
    ASSERT(out);
    memset(out, 0, sizeof *out);
    json_t *o = load_object(value, len);
    json_int_t epoch;
    bool ok = o && json_object_size(o) == 3 && get_int(o, "epoch", 1, INT64_MAX, &epoch) &&
              get_str(o, "primary", out->primary, sizeof out->primary);
    const json_t *isr = o ? json_object_get(o, "isr") : NULL;
    ok = ok && json_is_array(isr) && json_array_size(isr) >= 1 &&
         json_array_size(isr) <= SM_REPLICAS_MAX;
    for (size_t i = 0; ok && i < json_array_size(isr); i++) {
        const json_t *v = json_array_get(isr, i);
        size_t n = json_string_length(v);
        ok = json_is_string(v) && n < sizeof out->isr[i];
        if (ok)
            memcpy(out->isr[i], json_string_value(v), n + 1);
        out->isr_count = (uint32_t)(i + 1);
    }
    json_decref(o);
    if (ok) {
        out->epoch = (uint64_t)epoch;
        ok = partition_ok(out);
    }
    if (!ok) {
        memset(out, 0, sizeof *out);
        return SM_E_CORRUPT;
    }
    return 0;
}

/* ---- requests ------------------------------------------------------------------------------ */

int sm_coord_dir_create_meta(struct sm_coord_dir *d, const struct sm_coord_meta *meta, uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1], value[256];
    size_t len;
    int rc = sm_coord_meta_encode(meta, value, sizeof value, &len);
    if (rc != 0)
        return rc;
    make_key(d, key, sizeof key, KEY_META, NULL);
    struct sm_coord_cmp cmp = {.key = key, .target = SM_COORD_CMP_VERSION, .number = 0};
    struct sm_coord_op put = {
        .kind = SM_COORD_OP_PUT, .key = key, .value = value, .value_len = len};
    struct sm_coord_op get = {.kind = SM_COORD_OP_RANGE, .key = key};
    return sm_coord_txn(d->coord, &cmp, 1, &put, 1, &get, 1, id);
}

int sm_coord_dir_join(struct sm_coord_dir *d, const struct sm_coord_member *m, int64_t lease,
                      uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1], value[1024];
    size_t len;
    if (lease <= 0)
        return SM_E_BADARG;
    int rc = sm_coord_member_encode(m, value, sizeof value, &len);
    if (rc != 0)
        return rc;
    make_key(d, key, sizeof key, KEY_MEMBERS, m->id);
    return sm_coord_put(d->coord, key, value, len, lease, id);
}

int sm_coord_dir_leave(struct sm_coord_dir *d, const char *member_id, uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1];
    if (!name_ok(member_id, SM_NODE_ID_BYTES_MAX, false))
        return SM_E_BADARG;
    make_key(d, key, sizeof key, KEY_MEMBERS, member_id);
    return sm_coord_delete(d->coord, key, false, id);
}

int sm_coord_dir_load(struct sm_coord_dir *d, uint64_t *id)
{
    return sm_coord_get(d->coord, d->prefix, true, id);
}

int sm_coord_dir_watch(struct sm_coord_dir *d, int64_t start_revision, uint64_t *id)
{
    return sm_coord_watch(d->coord, d->prefix, true, start_revision, id);
}

int sm_coord_dir_partition_cas(struct sm_coord_dir *d, const struct sm_coord_partition *p,
                               int64_t prev_mod_revision, uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1], value[1024];
    size_t len;
    if (p->partition >= SM_PARTITIONS_MAX || prev_mod_revision < 0)
        return SM_E_BADARG;
    int rc = sm_coord_partition_encode(p, value, sizeof value, &len);
    if (rc != 0)
        return rc;
    partition_key(d, key, sizeof key, p->partition);
    struct sm_coord_cmp cmp = {
        .key = key, .target = SM_COORD_CMP_MOD_REVISION, .number = prev_mod_revision};
    struct sm_coord_op put = {
        .kind = SM_COORD_OP_PUT, .key = key, .value = value, .value_len = len};
    struct sm_coord_op get = {.kind = SM_COORD_OP_RANGE, .key = key};
    return sm_coord_txn(d->coord, &cmp, 1, &put, 1, &get, 1, id);
}

int sm_coord_dir_campaign(struct sm_coord_dir *d, const char *node_id, int64_t lease, uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1], value[256];
    if (!name_ok(node_id, SM_NODE_ID_BYTES_MAX, false) || lease <= 0)
        return SM_E_BADARG;
    size_t len;
    int rc = dump(json_pack("{s:s}", "id", node_id), value, sizeof value, &len);
    if (rc != 0)
        return rc;
    make_key(d, key, sizeof key, KEY_CONTROLLER, NULL);
    struct sm_coord_cmp cmp = {.key = key, .target = SM_COORD_CMP_CREATE_REVISION, .number = 0};
    struct sm_coord_op put = {
        .kind = SM_COORD_OP_PUT, .key = key, .value = value, .value_len = len, .lease = lease};
    struct sm_coord_op get = {.kind = SM_COORD_OP_RANGE, .key = key};
    return sm_coord_txn(d->coord, &cmp, 1, &put, 1, &get, 1, id);
}

int sm_coord_dir_resign(struct sm_coord_dir *d, int64_t lease, uint64_t *id)
{
    char key[SM_COORD_KEY_BYTES_MAX + 1];
    if (lease <= 0)
        return SM_E_BADARG;
    make_key(d, key, sizeof key, KEY_CONTROLLER, NULL);
    struct sm_coord_cmp cmp = {
        .key = key, .target = SM_COORD_CMP_LEASE, .result = SM_COORD_EQUAL, .number = lease};
    struct sm_coord_op del = {.kind = SM_COORD_OP_DELETE, .key = key};
    return sm_coord_txn(d->coord, &cmp, 1, &del, 1, NULL, 0, id);
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* The partition number of a key's tail: exactly 5 digits, below SM_PARTITIONS_MAX. */
static bool parse_partition(const char *s, size_t len, uint32_t *out)
{
    if (len != PARTITION_DIGITS)
        return false;
    uint32_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint32_t)(s[i] - '0');
    }
    *out = v;
    return v < SM_PARTITIONS_MAX;
}

static int decode_controller(const struct sm_coord_kv *kv, struct sm_coord_controller *out)
{
    json_t *o = load_object(kv->value, kv->value_len);
    bool ok = o && json_object_size(o) == 1 && get_str(o, "id", out->id, sizeof out->id) &&
              name_ok(out->id, SM_NODE_ID_BYTES_MAX, false);
    json_decref(o);
    out->lease = kv->lease;
    out->create_revision = kv->create_revision;
    return ok ? 0 : SM_E_CORRUPT;
}

/* Classifies the key; *tail is what follows the directory part. */
static enum sm_coord_entry_kind classify(const char *rest, size_t len, const char **tail,
                                         size_t *tail_len)
{
    static const struct {
        const char *name;
        bool has_tail;
        enum sm_coord_entry_kind kind;
    } table[] = {
        {KEY_META, false, SM_COORD_ENTRY_META},
        {KEY_MEMBERS, true, SM_COORD_ENTRY_MEMBER},
        {KEY_PARTITIONS, true, SM_COORD_ENTRY_PARTITION},
        {KEY_CONTROLLER, false, SM_COORD_ENTRY_CONTROLLER},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        size_t n = strlen(table[i].name);
        bool match = table[i].has_tail ? len > n && memcmp(rest, table[i].name, n) == 0
                                       : len == n && memcmp(rest, table[i].name, n) == 0;
        if (match) {
            *tail = rest + n;
            *tail_len = len - n;
            return table[i].kind;
        }
    }
    return SM_COORD_ENTRY_OTHER;
}

int sm_coord_dir_decode(const struct sm_coord_dir *d, const struct sm_coord_kv *kv, bool deleted,
                        struct sm_coord_entry *out)
{
    ASSERT(d && kv && out);
    memset(out, 0, sizeof *out);
    out->deleted = deleted;
    if (!kv->key || kv->key_len < d->prefix_len || memcmp(kv->key, d->prefix, d->prefix_len) != 0)
        return SM_E_BADARG;
    const char *tail = NULL;
    size_t tail_len = 0;
    out->kind = classify(kv->key + d->prefix_len, kv->key_len - d->prefix_len, &tail, &tail_len);
    int rc = 0;
    switch (out->kind) {
    case SM_COORD_ENTRY_OTHER:
        return 0;
    case SM_COORD_ENTRY_META:
        rc = deleted ? 0 : sm_coord_meta_decode(kv->value, kv->value_len, &out->meta);
        break;
    case SM_COORD_ENTRY_MEMBER:
        if (tail_len > SM_NODE_ID_BYTES_MAX)
            return SM_E_CORRUPT;
        rc = deleted ? 0 : sm_coord_member_decode(kv->value, kv->value_len, &out->member);
        if (rc == 0 && !deleted &&
            (strlen(out->member.id) != tail_len || memcmp(out->member.id, tail, tail_len) != 0))
            rc = SM_E_CORRUPT; /* the key and the value name different members */
        if (rc == 0) {
            memcpy(out->member.id, tail, tail_len);
            out->member.id[tail_len] = '\0';
        }
        break;
    case SM_COORD_ENTRY_PARTITION:
        if (!parse_partition(tail, tail_len, &out->partition.partition))
            return SM_E_CORRUPT;
        if (!deleted) {
            uint32_t partition = out->partition.partition;
            rc = sm_coord_partition_decode(kv->value, kv->value_len, &out->partition);
            out->partition.partition = partition;
            out->partition.mod_revision = kv->mod_revision;
        }
        break;
    case SM_COORD_ENTRY_CONTROLLER:
        rc = deleted ? 0 : decode_controller(kv, &out->controller);
        break;
    }
    return rc;
}

/* ---- the session --------------------------------------------------------------------------- */

void sm_coord_session_init(struct sm_coord_session *s, struct sm_coord *c, int64_t ttl_ms)
{
    ASSERT(s && c && ttl_ms > 0 && ttl_ms <= SM_COORD_LEASE_TTL_MS_MAX);
    memset(s, 0, sizeof *s);
    s->coord = c;
    s->ttl_ms = ttl_ms;
}

void sm_coord_session_restart(struct sm_coord_session *s)
{
    ASSERT(s);
    s->state = SM_COORD_SESSION_IDLE;
    s->lease = 0;
    s->inflight = 0;
    s->valid_until_ms = 0;
}

int sm_coord_session_tick(struct sm_coord_session *s, int64_t now_ms)
{
    ASSERT(s);
    if (s->state == SM_COORD_SESSION_LIVE && now_ms >= s->valid_until_ms) {
        s->state = SM_COORD_SESSION_LOST;
        s->last_err = SM_E_TIMEOUT;
    }
    if (s->state == SM_COORD_SESSION_LOST || s->state == SM_COORD_SESSION_GRANTING)
        return 0;
    if (s->state == SM_COORD_SESSION_IDLE) {
        int rc = sm_coord_lease_grant(s->coord, s->ttl_ms, &s->inflight);
        if (rc != 0)
            return rc;
        s->state = SM_COORD_SESSION_GRANTING;
        s->sent_ms = now_ms;
        return 0;
    }
    if (s->inflight != 0 || now_ms < s->next_renew_ms)
        return 0;
    int rc = sm_coord_lease_keepalive(s->coord, s->lease, &s->inflight);
    if (rc != 0)
        return rc;
    s->sent_ms = now_ms;
    return 0;
}

bool sm_coord_session_on_result(struct sm_coord_session *s, const struct sm_coord_result *r,
                                int64_t now_ms)
{
    ASSERT(s && r);
    if (r->kind != SM_COORD_DONE || r->id == 0 || r->id != s->inflight)
        return false;
    s->inflight = 0;
    if (r->err != 0) {
        s->last_err = r->err;
        if (s->state == SM_COORD_SESSION_GRANTING)
            s->state = SM_COORD_SESSION_IDLE; /* ask again at the next tick */
        else if (r->err == SM_E_NOTFOUND)
            s->state = SM_COORD_SESSION_LOST;
        else
            s->next_renew_ms = now_ms; /* retry at once; valid_until_ms still bounds it */
        return true;
    }
    ASSERT(r->ttl_ms > 0);
    s->granted_ttl_ms = r->ttl_ms;
    s->lease = r->lease;
    s->state = SM_COORD_SESSION_LIVE;
    /* The store restarted the TTL no earlier than we sent the request. */
    s->valid_until_ms = s->sent_ms + r->ttl_ms;
    s->next_renew_ms = s->sent_ms + r->ttl_ms / 3;
    return true;
}
