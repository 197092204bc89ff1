/*
 * The simulator's checker.
 *
 * While the run goes, every node reports each entry it commits (CLUSTER_ACT_COMMITTED); the
 * oracle keeps the first report per (partition, index) and compares every later one with it:
 * two different entries committed at one index is the failure replication exists to prevent.
 *
 * At the end, once the cluster is quiet:
 *   1. the oracle log of each partition has no gap, and replaying it through a fresh engine
 *      gives every request id's reply;
 *   2. every acknowledged write's reply equals the replay's reply for its request id (no lost
 *      write, no reply from a state that was not committed, exactly once: a retry answers the
 *      first reply), which also proves every acknowledged lock grant's fencing token;
 *   3. every acknowledged read equals the state at some committed index between the last write
 *      acknowledged before it was sent and the commit frontier when it was answered (no stale
 *      read, no dirty read);
 *   4. every replica's engine equals the replay's byte for byte (engine_save);
 *   5. the domain: engine_check's invariants, stock identities against the orders the clients
 *      placed (no oversell, every reserved unit belongs to exactly one live order), per-user
 *      limits, money conserved, and never two holders of a lock after any entry.
 */
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/buf.h"
#include "util/error.h"

static bool entries_equal(const struct cluster_entry *a, const struct cluster_entry *b)
{
    return a->epoch == b->epoch && a->time_ms == b->time_ms && a->kind == b->kind &&
           a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

void sim_oracle_commit(struct sim_world *w, uint32_t node, uint32_t part,
                       const struct cluster_entry *e)
{
    struct sim_oracle *o = &w->oracle[part];
    if (e->index > o->cap) {
        uint64_t cap = o->cap ? o->cap : 1024;
        while (cap < e->index)
            cap *= 2;
        o->entries = realloc(o->entries, cap * sizeof *o->entries);
        ASSERT(o->entries);
        memset(o->entries + o->cap, 0, (cap - o->cap) * sizeof *o->entries);
        o->cap = cap;
    }
    struct sim_oracle_entry *x = &o->entries[e->index - 1];
    if (x->known) {
        if (!entries_equal(&x->e, e))
            sim_fail(w,
                     "p%u index %llu committed as different entries on n%u (epoch %llu) and n%u "
                     "(epoch %llu)",
                     part, (unsigned long long)e->index, x->node, (unsigned long long)x->e.epoch,
                     node, (unsigned long long)e->epoch);
        return;
    }
    x->known = true;
    x->node = node;
    x->e = *e;
    x->e.data = NULL;
    if (e->len) {
        uint8_t *d = malloc(e->len);
        ASSERT(d);
        memcpy(d, e->data, e->len);
        x->e.data = d;
    }
    if (e->index > o->max)
        o->max = e->index;
}

void sim_oracle_free(struct sim_world *w)
{
    for (uint32_t p = 0; p < SIM_PARTITIONS_MAX; p++) {
        struct sim_oracle *o = &w->oracle[p];
        for (uint64_t i = 0; i < o->max; i++)
            free((void *)o->entries[i].e.data);
        free(o->entries);
        memset(o, 0, sizeof *o);
    }
}

bool sim_replies_equal(const struct engine_reply *a, const struct engine_reply *b)
{
    if (a->kind != b->kind || a->err != b->err || a->value != b->value ||
        a->msg_len != b->msg_len || memcmp(a->msg, b->msg, a->msg_len) != 0 ||
        a->fields_count != b->fields_count)
        return false;
    for (uint32_t i = 0; i < a->fields_count; i++) {
        const struct engine_field *x = &a->fields[i], *y = &b->fields[i];
        if (strcmp(x->name, y->name) != 0 || x->value != y->value ||
            (x->str == NULL) != (y->str == NULL) || (x->str && strcmp(x->str, y->str) != 0))
            return false;
    }
    return true;
}

/* ---- the replay ---------------------------------------------------------------------------- */

/* A SKU's counts after the entry at index changed them. */
struct sku_version {
    uint64_t index;
    uint32_t sku; /* 0..2 cart, 3 hot */
    struct engine_reply reply;
};

struct replay {
    struct engine engine;
    struct sku_version *versions;
    uint32_t versions_count, versions_cap;
    /* the first reply per request id: parallel arrays, found by a linear probe table */
    uint64_t *rid_hash;
    uint64_t *rid_index;
    struct engine_reply *rid_reply;
    uint32_t rid_cap;
};

static uint64_t str_hash(const uint8_t *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ULL;
    return h ? h : 1;
}

static uint32_t rid_slot(const struct replay *r, uint64_t h)
{
    uint32_t i = (uint32_t)h & (r->rid_cap - 1);
    while (r->rid_hash[i] != 0 && r->rid_hash[i] != h)
        i = (i + 1) & (r->rid_cap - 1);
    return i;
}

static void sku_read(const struct engine *e, uint32_t part, uint32_t sku, struct engine_reply *out)
{
    char name[16];
    if (sku == 3)
        snprintf(name, sizeof name, "h%u", part);
    else
        snprintf(name, sizeof name, "c%u%u", part, sku);
    struct engine_cmd c = {.type = ENGINE_SKU_GET, .key = {(const uint8_t *)name, strlen(name)}};
    engine_read(e, &c, out);
}

static void record_versions(struct replay *r, uint32_t part, uint64_t index)
{
    for (uint32_t s = 0; s < 4; s++) {
        struct sku_version v = {.index = index, .sku = s};
        sku_read(&r->engine, part, s, &v.reply);
        const struct sku_version *last = NULL;
        for (uint32_t i = r->versions_count; i > 0; i--)
            if (r->versions[i - 1].sku == s) {
                last = &r->versions[i - 1];
                break;
            }
        if (last && sim_replies_equal(&last->reply, &v.reply))
            continue;
        if (r->versions_count == r->versions_cap) {
            r->versions_cap = r->versions_cap ? r->versions_cap * 2 : 256;
            r->versions = realloc(r->versions, r->versions_cap * sizeof *r->versions);
            ASSERT(r->versions);
        }
        r->versions[r->versions_count++] = v;
    }
}

static bool lock_holders_ok(const struct engine *e, uint32_t part)
{
    char name[16];
    snprintf(name, sizeof name, "L%u", part);
    struct engine_cmd c = {.type = ENGINE_LOCK_INFO, .key = {(const uint8_t *)name, strlen(name)}};
    struct engine_reply r;
    engine_read(e, &c, &r);
    for (uint32_t i = 0; i < r.fields_count; i++)
        if (strcmp(r.fields[i].name, "holders") == 0)
            return r.fields[i].value <= 1;
    return true;
}

static int replay_part(struct sim_world *w, uint32_t part, struct replay *r)
{
    const struct sim_oracle *o = &w->oracle[part];
    if (engine_init(&r->engine, &w->part_cfg.engine) != 0)
        return SM_E_NOMEM;
    r->rid_cap = 1;
    while (r->rid_cap < 2 * o->max + 16)
        r->rid_cap *= 2;
    r->rid_hash = calloc(r->rid_cap, sizeof *r->rid_hash);
    r->rid_index = calloc(r->rid_cap, sizeof *r->rid_index);
    r->rid_reply = calloc(r->rid_cap, sizeof *r->rid_reply);
    if (!r->rid_hash || !r->rid_index || !r->rid_reply)
        return SM_E_NOMEM;
    record_versions(r, part, 0);
    struct engine_output out;
    for (uint64_t i = 1; i <= o->max && !w->violated; i++) {
        const struct sim_oracle_entry *x = &o->entries[i - 1];
        if (!x->known) {
            sim_fail(w, "p%u: no node reported index %llu as committed (max %llu)", part,
                     (unsigned long long)i, (unsigned long long)o->max);
            break;
        }
        if (x->e.kind == CLUSTER_ENTRY_EPOCH)
            continue;
        struct engine_cmd cmd;
        uint8_t tick[8];
        size_t len = x->e.len;
        const uint8_t *rec = x->e.data;
        if (x->e.kind == CLUSTER_ENTRY_TICK) {
            struct engine_cmd t = {.type = ENGINE_TICK};
            int rc = engine_encode(&t, tick, sizeof tick, &len);
            ASSERT(rc == 0);
            rec = tick;
        }
        engine_apply(&r->engine, i, x->e.time_ms, rec, len, &out);
        if (x->e.kind == CLUSTER_ENTRY_ENGINE && engine_decode(rec, len, &cmd) == 0 &&
            cmd.request_id.len > 0) {
            uint64_t h = str_hash(cmd.request_id.ptr, cmd.request_id.len);
            uint32_t s = rid_slot(r, h);
            /* the engine does not remember BUSY, BADARG and TRYAGAIN answers (a retry runs
             * again), so the reply of a request id is its first remembered one */
            const struct engine_reply *was = &r->rid_reply[s];
            bool forgotten =
                was->kind == ENGINE_REPLY_ERR &&
                (was->err == SM_E_BUSY || was->err == SM_E_BADARG || was->err == SM_E_TRYAGAIN);
            if (r->rid_hash[s] == 0 || forgotten) {
                r->rid_hash[s] = h;
                r->rid_index[s] = i;
                r->rid_reply[s] = out.reply;
            }
            if (cmd.type >= ENGINE_LOCK_SESSION_OPEN && !lock_holders_ok(&r->engine, part))
                sim_fail(w, "p%u: two holders of L%u after index %llu", part, part,
                         (unsigned long long)i);
        }
        record_versions(r, part, i);
    }
    return 0;
}

static void replay_free(struct replay *r)
{
    engine_free(&r->engine);
    free(r->versions);
    free(r->rid_hash);
    free(r->rid_index);
    free(r->rid_reply);
}

/* ---- the checks ---------------------------------------------------------------------------- */

/* A short text of a reply for failure messages. */
static const char *reply_str(const struct engine_reply *r, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "kind %d err %d value %lld", r->kind, r->err, (long long)r->value);
    for (uint32_t i = 0; i < r->fields_count && n > 0 && (size_t)n < cap; i++)
        n += snprintf(buf + n, cap - (size_t)n, " %s=%lld", r->fields[i].name,
                      (long long)r->fields[i].value);
    return buf;
}

static void check_writes(struct sim_world *w, uint32_t part, const struct replay *r)
{
    for (uint32_t i = 0; i < w->hist_count && !w->violated; i++) {
        const struct sim_hist *h = &w->hist[i];
        if (h->part != part || !h->acked || h->kind == SIM_OP_READ)
            continue;
        uint32_t s = rid_slot(r, str_hash((const uint8_t *)h->rid, strlen(h->rid)));
        if (r->rid_hash[s] == 0) {
            sim_fail(w, "p%u: request %s was acknowledged but is not in the committed log", part,
                     h->rid);
            return;
        }
        if (!sim_replies_equal(&h->reply, &r->rid_reply[s])) {
            char a[96], b[96];
            sim_fail(w, "p%u: request %s (type %u) was answered %s, its committed reply is %s",
                     part, h->rid, h->cmd_type, reply_str(&h->reply, a, sizeof a),
                     reply_str(&r->rid_reply[s], b, sizeof b));
        }
    }
}

/* The index of the committed entry of request rid (0 when absent). */
static uint64_t rid_index(const struct replay *r, const char *rid)
{
    uint32_t s = rid_slot(r, str_hash((const uint8_t *)rid, strlen(rid)));
    return r->rid_hash[s] ? r->rid_index[s] : 0;
}

static void check_reads(struct sim_world *w, uint32_t part, const struct replay *r)
{
    for (uint32_t i = 0; i < w->hist_count && !w->violated; i++) {
        const struct sim_hist *h = &w->hist[i];
        if (h->part != part || !h->acked || h->kind != SIM_OP_READ)
            continue;
        /* lo: the last write of this partition acknowledged before the read was sent */
        uint64_t lo = 0;
        for (uint32_t j = 0; j < w->hist_count; j++) {
            const struct sim_hist *x = &w->hist[j];
            if (x->part == part && x->acked && x->kind != SIM_OP_READ && x->ack_ms < h->invoke_ms) {
                uint64_t idx = rid_index(r, x->rid);
                if (idx > lo)
                    lo = idx;
            }
        }
        uint32_t sku = h->key[0] == 'h' ? 3 : (uint32_t)(h->key[strlen(h->key) - 1] - '0');
        /* the versions valid at some index in [lo, frontier] */
        bool found = false;
        const struct sku_version *at_lo = NULL;
        for (uint32_t v = 0; v < r->versions_count && !found; v++) {
            const struct sku_version *x = &r->versions[v];
            if (x->sku != sku)
                continue;
            if (x->index <= lo)
                at_lo = x;
            else if (x->index <= h->frontier)
                found = sim_replies_equal(&x->reply, &h->reply);
        }
        if (!found && at_lo)
            found = sim_replies_equal(&at_lo->reply, &h->reply);
        if (!found)
            sim_fail(w,
                     "p%u: read of %s (op %u) saw a state not committed between index %llu "
                     "and %llu",
                     part, h->key, i, (unsigned long long)lo, (unsigned long long)h->frontier);
    }
}

static void check_replicas(struct sim_world *w, uint32_t part, const struct replay *r)
{
    struct sm_wbuf want, got;
    sm_wbuf_init(&want);
    sm_wbuf_init(&got);
    if (engine_save(&r->engine, &want) != 0 || want.failed) {
        sim_fail(w, "p%u: out of memory saving the replay", part);
        goto out;
    }
    const struct cluster_config *c = &w->configs[part];
    for (uint32_t k = 0; k < c->replicas_count && !w->violated; k++) {
        uint32_t n = c->replicas[k];
        const struct cluster_part *x = &w->nodes[n].parts[part];
        if (x->commit_index != w->oracle[part].max) {
            sim_fail(w, "p%u: n%u committed %llu, the log has %llu", part, n,
                     (unsigned long long)x->commit_index, (unsigned long long)w->oracle[part].max);
            break;
        }
        got.len = 0;
        if (engine_save(&x->engine, &got) != 0 || got.failed || got.len != want.len ||
            memcmp(got.data, want.data, got.len) != 0)
            sim_fail(w, "p%u: n%u's state differs from the committed log's", part, n);
    }
out:
    sm_wbuf_free(&want);
    sm_wbuf_free(&got);
}

static int64_t read_field(const struct engine *e, int type, const char *key, const char *field)
{
    struct engine_cmd c = {.type = type};
    if (key)
        c.key = (struct engine_key){(const uint8_t *)key, strlen(key)};
    struct engine_reply r;
    engine_read(e, &c, &r);
    for (uint32_t i = 0; i < r.fields_count; i++)
        if (strcmp(r.fields[i].name, field) == 0)
            return r.fields[i].value;
    return INT64_MIN;
}

static const char *read_state(const struct engine *e, const char *order)
{
    struct engine_cmd c = {.type = ENGINE_ORDER_GET,
                           .key = {(const uint8_t *)order, strlen(order)}};
    static struct engine_reply r;
    engine_read(e, &c, &r);
    for (uint32_t i = 0; i < r.fields_count; i++)
        if (strcmp(r.fields[i].name, "state") == 0)
            return r.fields[i].str;
    return NULL;
}

/* Stock against the orders the clients placed, per-user limits, money. */
static void check_domain(struct sim_world *w, uint32_t part, const struct replay *r)
{
    char why[256];
    if (!engine_check(&r->engine, why, sizeof why)) {
        sim_fail(w, "p%u: engine invariant: %s", part, why);
        return;
    }
    int64_t held[4] = {0}; /* units held by live orders, per SKU */
    int64_t per_user[SIM_CLIENTS_MAX] = {0};
    for (uint32_t i = 0; i < w->hist_count; i++) {
        const struct sim_hist *h = &w->hist[i];
        if (h->part != part || h->kind != SIM_OP_ORDER)
            continue;
        const char *state = read_state(&r->engine, h->key);
        if (!state || strcmp(state, "CANCELLED") == 0 || strcmp(state, "EXPIRED") == 0 ||
            strcmp(state, "REFUNDED") == 0)
            continue;
        for (uint32_t k = 0; k < h->items_count; k++) {
            uint32_t s = h->item_sku[k] == 255 ? 3 : h->item_sku[k];
            held[s] += h->item_qty[k];
            if (s == 3)
                per_user[h->client] += h->item_qty[k];
        }
    }
    for (uint32_t s = 0; s < 4; s++) {
        char name[16];
        if (s == 3)
            snprintf(name, sizeof name, "h%u", part);
        else
            snprintf(name, sizeof name, "c%u%u", part, s);
        int64_t reserved = read_field(&r->engine, ENGINE_SKU_GET, name, "reserved");
        int64_t sold = read_field(&r->engine, ENGINE_SKU_GET, name, "sold");
        if (reserved == INT64_MIN)
            continue; /* never created (its creation was still retrying) */
        int64_t taken = reserved + sold;
        if (taken != held[s])
            sim_fail(w, "p%u: %s has %lld reserved + sold, live orders hold %lld", part, name,
                     (long long)taken, (long long)held[s]);
    }
    for (uint32_t c = 0; c < w->clients_count; c++)
        if (per_user[c] > 3)
            sim_fail(w, "p%u: user u%u holds %lld of h%u, limit 3", part, c, (long long)per_user[c],
                     part);
    int64_t balances = 0;
    char acct[24];
    for (uint32_t c = 0; c <= w->clients_count; c++) {
        if (c < w->clients_count)
            snprintf(acct, sizeof acct, "u%up%u", c, part);
        else
            snprintf(acct, sizeof acct, "m%u", part);
        int64_t b = read_field(&r->engine, ENGINE_ACCOUNT_GET, acct, "balance_cents");
        if (b == INT64_MIN)
            continue;
        if (b < 0)
            sim_fail(w, "p%u: %s is below zero", part, acct);
        balances += b;
    }
    int64_t in = read_field(&r->engine, ENGINE_STATS_GET, NULL, "deposits_total_cents") -
                 read_field(&r->engine, ENGINE_STATS_GET, NULL, "withdrawals_total_cents");
    if (balances != in)
        sim_fail(w, "p%u: balances sum to %lld, deposits minus withdrawals are %lld", part,
                 (long long)balances, (long long)in);
}

void sim_check_final(struct sim_world *w)
{
    for (uint32_t p = 0; p < w->parts_count && !w->violated; p++) {
        static struct replay r;
        memset(&r, 0, sizeof r);
        if (replay_part(w, p, &r) != 0)
            sim_fail(w, "p%u: out of memory for the replay", p);
        if (!w->violated)
            check_writes(w, p, &r);
        if (!w->violated)
            check_reads(w, p, &r);
        if (!w->violated)
            check_replicas(w, p, &r);
        if (!w->violated)
            check_domain(w, p, &r);
        replay_free(&r);
    }
}
