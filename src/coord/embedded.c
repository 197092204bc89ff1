/*
 * The embedded control plane: one in-memory store, linearizable because every request applies
 * whole, one at a time, in the order the callers hand them over. It follows etcd's v3 semantics
 * (revisions, versions, leases, transactions, watches from a revision) so that the cluster layer
 * cannot tell it from etcd, and it is deterministic: no clock (time comes from
 * sm_coord_embedded_tick), no threads, no randomness (lease ids count up).
 *
 *   store: keys[] sorted by key    leases[] by id    history[] of events, oldest first
 *   client -> client -> ...        each: results FIFO, pending requests (manual mode), watches
 *
 * Keys live in a sorted array: a control plane holds at most a few hundred thousand keys and is
 * read far more than written, so binary search plus memmove beats a tree in code and in speed.
 * A transaction first checks everything that could make it fail and allocates what it needs,
 * then mutates, so that it applies whole or not at all.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/coord_internal.h"
#include "util/error.h"

/* The first lease id; any non-zero start would do, a recognisable one helps when reading logs. */
#define FIRST_LEASE_ID 0x1000

struct ekey {
    char *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    int64_t create_revision;
    int64_t mod_revision;
    int64_t version;
    int64_t lease;
};

struct elease {
    int64_t id;
    int64_t ttl_ms;
    int64_t deadline_ms;
};

/* One change kept for watches that start in the past. kv is an owned copy. */
struct ehist {
    enum sm_coord_event_type type;
    struct sm_coord_kv kv;
};

/* A watch of one client. `end` is allocated when the watch opens, so that a watch can always be
 * ended with an error result even when memory runs out later. */
struct ewatch {
    uint64_t id;
    char *key;
    size_t key_len;
    bool prefix;
    int64_t next_revision; /* events before it are not delivered */
    struct coord_result_node *end;
};

struct embedded_client {
    struct sm_coord base;
    struct sm_coord_store *store;
    struct coord_results results;
    bool manual;
    struct coord_req *pending_head;
    struct coord_req *pending_tail;
    size_t pending_count;
    struct ewatch watches[SM_COORD_WATCHES_MAX];
    size_t watches_count;
    struct embedded_client *next;
};

struct sm_coord_store {
    struct ekey *keys;
    size_t keys_count;
    size_t keys_cap;
    struct elease *leases;
    size_t leases_count;
    size_t leases_cap;
    int64_t next_lease;
    int64_t revision;
    int64_t now_ms;
    struct ehist *history;
    size_t history_count;
    size_t history_cap;
    int64_t compacted; /* events at or before this revision are no longer kept */
    struct embedded_client *clients;
};

static const struct coord_backend embedded_backend;

static struct embedded_client *client_of(struct sm_coord *c)
{
    ASSERT(c && c->backend == &embedded_backend);
    return (struct embedded_client *)c;
}

/* ---- the store ----------------------------------------------------------------------------- */

struct sm_coord_store *sm_coord_store_new(void)
{
    struct sm_coord_store *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->revision = 1;
    s->next_lease = FIRST_LEASE_ID;
    return s;
}

static void history_drop(struct sm_coord_store *s, size_t n)
{
    ASSERT(n <= s->history_count);
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        if (s->history[i].kv.mod_revision > s->compacted)
            s->compacted = s->history[i].kv.mod_revision;
        coord_kv_free(&s->history[i].kv);
    }
    memmove(s->history, s->history + n, (s->history_count - n) * sizeof *s->history);
    s->history_count -= n;
}

void sm_coord_store_free(struct sm_coord_store *s)
{
    if (!s)
        return;
    ASSERT(!s->clients); /* every client is closed first */
    for (size_t i = 0; i < s->keys_count; i++) {
        free(s->keys[i].key);
        free(s->keys[i].value);
    }
    history_drop(s, s->history_count);
    free(s->keys);
    free(s->leases);
    free(s->history);
    free(s);
}

int64_t sm_coord_store_revision(const struct sm_coord_store *s)
{
    ASSERT(s);
    return s->revision;
}

/* The index of key, or where it would go (*found false). */
static size_t key_find(const struct sm_coord_store *s, const char *key, bool *found)
{
    size_t lo = 0, hi = s->keys_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(s->keys[mid].key, key);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

static struct ekey *key_get(struct sm_coord_store *s, const char *key)
{
    bool found;
    size_t i = key_find(s, key, &found);
    return found ? &s->keys[i] : NULL;
}

/* [*first, *last) are the keys matched by (key, prefix). */
static void key_span(const struct sm_coord_store *s, const char *key, bool prefix, size_t *first,
                     size_t *last)
{
    bool found;
    size_t i = key_find(s, key, &found);
    *first = i;
    if (!prefix) {
        *last = found ? i + 1 : i;
        return;
    }
    size_t len = strlen(key);
    size_t j = i;
    while (j < s->keys_count && coord_key_has_prefix(s->keys[j].key, s->keys[j].key_len, key, len))
        j++;
    *last = j;
}

static struct elease *lease_get(struct sm_coord_store *s, int64_t id)
{
    for (size_t i = 0; i < s->leases_count; i++)
        if (s->leases[i].id == id)
            return &s->leases[i];
    return NULL;
}

static bool reserve(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return true;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    void *p = realloc(*arr, n * elem);
    if (!p)
        return false;
    *arr = p;
    *cap = n;
    return true;
}

/* ---- watches ------------------------------------------------------------------------------- */

static bool watch_matches(const struct ewatch *w, const struct sm_coord_kv *kv)
{
    if (w->prefix)
        return coord_key_has_prefix(kv->key, kv->key_len, w->key, w->key_len);
    return kv->key_len == w->key_len && memcmp(kv->key, w->key, w->key_len) == 0;
}

static void watch_remove(struct embedded_client *cl, size_t i)
{
    ASSERT(i < cl->watches_count);
    free(cl->watches[i].key);
    if (cl->watches[i].end)
        free(cl->watches[i].end);
    cl->watches[i] = cl->watches[cl->watches_count - 1];
    cl->watches_count--;
}

/* Ends watch i of cl with err: its prepared end result goes out, the watch is gone. */
static void watch_end(struct embedded_client *cl, size_t i, int err, const char *why)
{
    struct coord_result_node *n = cl->watches[i].end;
    cl->watches[i].end = NULL;
    coord_result_fail(&n->result, err, "%s", why);
    coord_results_push(&cl->results, n);
    watch_remove(cl, i);
}

/* Sends watch w the events hist[0, n) that it matches, as one result. False when out of
 * memory (the caller ends the watch). */
static bool watch_send(struct embedded_client *cl, struct ewatch *w, const struct ehist *hist,
                       size_t n)
{
    size_t matched = 0;
    for (size_t i = 0; i < n; i++)
        if (hist[i].kv.mod_revision >= w->next_revision && watch_matches(w, &hist[i].kv))
            matched++;
    if (matched == 0)
        return true;
    struct coord_result_node *node =
        coord_result_new(SM_COORD_WATCH_EVENTS, SM_COORD_REQ_WATCH, w->id);
    struct sm_coord_event *events = calloc(matched, sizeof *events);
    if (!node || !events)
        goto fail;
    node->result.events = events;
    for (size_t i = 0; i < n; i++) {
        const struct sm_coord_kv *kv = &hist[i].kv;
        if (kv->mod_revision < w->next_revision || !watch_matches(w, kv))
            continue;
        struct sm_coord_event *e = &events[node->result.events_count];
        e->type = hist[i].type;
        e->kv = *kv;
        e->kv.key = NULL;
        e->kv.value = NULL;
        if (!coord_kv_set(&e->kv, kv->key, kv->key_len, kv->value, kv->value_len))
            goto fail;
        node->result.events_count++;
        node->result.revision = kv->mod_revision;
    }
    w->next_revision = node->result.revision + 1;
    coord_results_push(&cl->results, node);
    return true;
fail:
    if (node)
        sm_coord_result_free(&node->result);
    else
        free(events);
    free(node);
    return false;
}

/* Delivers history[from, history_count) (one revision's changes) to every matching watch. */
static void deliver(struct sm_coord_store *s, size_t from)
{
    for (struct embedded_client *cl = s->clients; cl; cl = cl->next)
        for (size_t i = 0; i < cl->watches_count;)
            if (watch_send(cl, &cl->watches[i], s->history + from, s->history_count - from))
                i++;
            else
                watch_end(cl, i, SM_E_NOMEM, "out of memory: watch ended");
}

/* Appends one change to the history (room was reserved by the caller). */
static void history_add(struct sm_coord_store *s, enum sm_coord_event_type type,
                        struct sm_coord_kv kv)
{
    ASSERT(s->history_count < s->history_cap);
    s->history[s->history_count].type = type;
    s->history[s->history_count].kv = kv;
    s->history_count++;
}

/* Makes room in the history for n more events, dropping the oldest past the bound. */
static bool history_reserve(struct sm_coord_store *s, size_t n)
{
    if (s->history_count + n > SM_COORD_EMBEDDED_HISTORY_MAX) {
        size_t drop = s->history_count + n - SM_COORD_EMBEDDED_HISTORY_MAX;
        /* Drop whole revisions only, and at least half, so trimming stays rare. */
        if (drop < s->history_count / 2)
            drop = s->history_count / 2;
        if (drop > s->history_count)
            drop = s->history_count;
        while (drop < s->history_count &&
               s->history[drop].kv.mod_revision == s->history[drop - 1].kv.mod_revision)
            drop++;
        history_drop(s, drop);
    }
    return reserve((void **)&s->history, &s->history_cap, s->history_count + n, sizeof *s->history);
}

/* ---- applying a transaction ---------------------------------------------------------------- */

static int compare_bytes(const uint8_t *a, size_t la, const void *b, size_t lb)
{
    size_t n = la < lb ? la : lb;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return la < lb ? -1 : la > lb;
}

static bool cmp_holds(struct sm_coord_store *s, const struct sm_coord_cmp *cmp)
{
    const struct ekey *k = key_get(s, cmp->key);
    int c;
    if (cmp->target == SM_COORD_CMP_VALUE) {
        if (!k)
            return false;
        c = compare_bytes(k->value, k->value_len, cmp->value, cmp->value_len);
    } else {
        int64_t v = 0;
        if (k && cmp->target == SM_COORD_CMP_VERSION)
            v = k->version;
        else if (k && cmp->target == SM_COORD_CMP_CREATE_REVISION)
            v = k->create_revision;
        else if (k && cmp->target == SM_COORD_CMP_MOD_REVISION)
            v = k->mod_revision;
        else if (k && cmp->target == SM_COORD_CMP_LEASE)
            v = k->lease;
        c = v < cmp->number ? -1 : v > cmp->number;
    }
    switch (cmp->result) {
    case SM_COORD_EQUAL:
        return c == 0;
    case SM_COORD_NOT_EQUAL:
        return c != 0;
    case SM_COORD_GREATER:
        return c > 0;
    case SM_COORD_LESS:
        return c < 0;
    }
    UNREACHABLE();
}

/* What a branch will need: keys read, keys written or deleted, PUTs. 0 or an error. */
static int txn_plan(struct sm_coord_store *s, const struct sm_coord_op *ops, size_t n,
                    struct sm_coord_result *r, size_t *reads, size_t *changes, size_t *puts)
{
    *reads = *changes = *puts = 0;
    for (size_t i = 0; i < n; i++) {
        size_t first, last;
        if (ops[i].kind == SM_COORD_OP_PUT) {
            if (ops[i].lease != 0 && !lease_get(s, ops[i].lease)) {
                coord_result_fail(r, SM_E_NOTFOUND, "lease %lld not found",
                                  (long long)ops[i].lease);
                return SM_E_NOTFOUND;
            }
            (*changes)++;
            (*puts)++;
            continue;
        }
        key_span(s, ops[i].key, ops[i].prefix, &first, &last);
        if (ops[i].kind == SM_COORD_OP_RANGE)
            *reads += last - first + *puts; /* a range may also see this branch's puts */
        else
            *changes += last - first;
    }
    if (*reads > SM_COORD_RANGE_KVS_MAX) {
        coord_result_fail(r, SM_E_TOOLARGE, "a read of %zu keys passes the bound of %d", *reads,
                          SM_COORD_RANGE_KVS_MAX);
        return SM_E_TOOLARGE;
    }
    return 0;
}

static void op_range(struct sm_coord_store *s, const struct sm_coord_op *op,
                     struct sm_coord_result *r)
{
    size_t first, last;
    key_span(s, op->key, op->prefix, &first, &last);
    for (size_t i = first; i < last; i++) {
        const struct ekey *k = &s->keys[i];
        struct sm_coord_kv *kv = &r->kvs[r->kvs_count];
        *kv = (struct sm_coord_kv){.create_revision = k->create_revision,
                                   .mod_revision = k->mod_revision,
                                   .version = k->version,
                                   .lease = k->lease};
        if (!coord_kv_set(kv, k->key, k->key_len, k->value, k->value_len)) {
            /* The writes of the transaction stand; only its read result is lost. */
            if (r->err == 0)
                coord_result_fail(r, SM_E_NOMEM, "out of memory copying the read result");
            continue;
        }
        r->kvs_count++;
    }
}

/* Records a change to k (a copy for the history; the key's own copy stays in the store). */
static bool history_copy(struct sm_coord_store *s, enum sm_coord_event_type type,
                         const struct ekey *k, int64_t revision)
{
    struct sm_coord_kv kv = {.create_revision = k->create_revision,
                             .mod_revision = revision,
                             .version = type == SM_COORD_EVENT_PUT ? k->version : 0,
                             .lease = type == SM_COORD_EVENT_PUT ? k->lease : 0};
    if (!coord_kv_set(&kv, k->key, k->key_len, type == SM_COORD_EVENT_PUT ? k->value : NULL,
                      type == SM_COORD_EVENT_PUT ? k->value_len : 0))
        return false;
    history_add(s, type, kv);
    return true;
}

static void op_put(struct sm_coord_store *s, const struct sm_coord_op *op, int64_t revision,
                   uint8_t **value, char **key)
{
    bool found;
    size_t i = key_find(s, op->key, &found);
    if (!found) {
        ASSERT(s->keys_count < s->keys_cap && *key);
        memmove(s->keys + i + 1, s->keys + i, (s->keys_count - i) * sizeof *s->keys);
        s->keys_count++;
        s->keys[i] =
            (struct ekey){.key = *key, .key_len = strlen(op->key), .create_revision = revision};
        *key = NULL;
    }
    struct ekey *k = &s->keys[i];
    free(k->value);
    k->value = *value;
    *value = NULL;
    k->value_len = op->value_len;
    k->mod_revision = revision;
    k->version++;
    k->lease = op->lease;
}

static void key_remove(struct sm_coord_store *s, size_t i)
{
    free(s->keys[i].key);
    free(s->keys[i].value);
    memmove(s->keys + i, s->keys + i + 1, (s->keys_count - i - 1) * sizeof *s->keys);
    s->keys_count--;
}

/* The copies a branch's PUTs need, made before anything changes: values[i] and keys[i] for
 * op i (NULL for other ops); whatever the branch does not take is freed by copies_free. */
struct put_copies {
    uint8_t *values[SM_COORD_TXN_OPS_MAX];
    char *keys[SM_COORD_TXN_OPS_MAX];
};

static bool copies_make(const struct sm_coord_op *ops, size_t n, struct put_copies *pc)
{
    memset(pc, 0, sizeof *pc);
    ASSERT(n <= SM_COORD_TXN_OPS_MAX);
    for (size_t i = 0; i < n; i++) {
        if (ops[i].kind != SM_COORD_OP_PUT)
            continue;
        pc->values[i] = malloc(ops[i].value_len + 1);
        pc->keys[i] = strdup(ops[i].key);
        if (!pc->values[i] || !pc->keys[i])
            return false;
        if (ops[i].value_len > 0)
            memcpy(pc->values[i], ops[i].value, ops[i].value_len);
        pc->values[i][ops[i].value_len] = 0;
    }
    return true;
}

static void copies_free(struct put_copies *pc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(pc->values[i]);
        free(pc->keys[i]);
    }
}

/* Runs the chosen branch; everything it needs was reserved. */
static void txn_run(struct sm_coord_store *s, const struct sm_coord_op *ops, size_t n,
                    struct put_copies *pc, int64_t revision, struct sm_coord_result *r)
{
    for (size_t i = 0; i < n; i++) {
        const struct sm_coord_op *op = &ops[i];
        if (op->kind == SM_COORD_OP_RANGE) {
            op_range(s, op, r);
        } else if (op->kind == SM_COORD_OP_PUT) {
            op_put(s, op, revision, &pc->values[i], &pc->keys[i]);
            if (!history_copy(s, SM_COORD_EVENT_PUT, key_get(s, op->key), revision))
                s->compacted = revision; /* a watch from here on would miss it: say so */
        } else {
            size_t first, last;
            key_span(s, op->key, op->prefix, &first, &last);
            for (size_t j = last; j > first; j--) {
                if (!history_copy(s, SM_COORD_EVENT_DELETE, &s->keys[j - 1], revision))
                    s->compacted = revision;
                key_remove(s, j - 1);
                r->deleted++;
            }
        }
    }
}

static void apply_txn(struct sm_coord_store *s, const struct coord_req *q,
                      struct sm_coord_result *r)
{
    bool ok = true;
    for (size_t i = 0; i < q->ncmps && ok; i++)
        ok = cmp_holds(s, &q->cmps[i]);
    const struct sm_coord_op *ops = ok ? q->ops : q->ops + q->nthen;
    size_t n = ok ? q->nthen : q->nelse;
    r->succeeded = ok;
    r->revision = s->revision;
    size_t reads, changes, puts;
    if (txn_plan(s, ops, n, r, &reads, &changes, &puts) != 0)
        return;
    if (s->keys_count + puts > SM_COORD_EMBEDDED_KEYS_MAX) {
        coord_result_fail(r, SM_E_BUSY, "the store holds its maximum of %d keys",
                          SM_COORD_EMBEDDED_KEYS_MAX);
        return;
    }
    struct put_copies pc;
    bool room = copies_make(ops, n, &pc) &&
                reserve((void **)&s->keys, &s->keys_cap, s->keys_count + puts, sizeof *s->keys) &&
                history_reserve(s, changes) &&
                (reads == 0 || (r->kvs = calloc(reads, sizeof *r->kvs)) != NULL);
    if (!room) {
        copies_free(&pc, n);
        coord_result_fail(r, SM_E_NOMEM, "out of memory");
        return;
    }
    int64_t revision = changes > 0 ? s->revision + 1 : s->revision;
    size_t from = s->history_count;
    txn_run(s, ops, n, &pc, revision, r);
    copies_free(&pc, n);
    s->revision = revision;
    r->revision = revision;
    if (s->history_count > from)
        deliver(s, from);
}

/* ---- leases -------------------------------------------------------------------------------- */

/* Deletes the lease's keys at one new revision (as etcd does) and forgets the lease. */
static void lease_drop(struct sm_coord_store *s, int64_t id)
{
    size_t changes = 0;
    for (size_t i = 0; i < s->keys_count; i++)
        changes += s->keys[i].lease == id;
    size_t from = s->history_count;
    if (changes > 0) {
        bool room = history_reserve(s, changes);
        s->revision++;
        for (size_t i = s->keys_count; i > 0; i--) {
            if (s->keys[i - 1].lease != id)
                continue;
            if (!room || !history_copy(s, SM_COORD_EVENT_DELETE, &s->keys[i - 1], s->revision))
                s->compacted = s->revision;
            key_remove(s, i - 1);
        }
    }
    struct elease *l = lease_get(s, id);
    ASSERT(l);
    *l = s->leases[s->leases_count - 1];
    s->leases_count--;
    if (s->history_count > from)
        deliver(s, from);
}

static void apply_lease(struct sm_coord_store *s, const struct coord_req *q,
                        struct sm_coord_result *r)
{
    r->revision = s->revision;
    if (q->kind == SM_COORD_REQ_LEASE_GRANT) {
        if (s->leases_count >= SM_COORD_EMBEDDED_LEASES_MAX ||
            !reserve((void **)&s->leases, &s->leases_cap, s->leases_count + 1, sizeof *s->leases)) {
            coord_result_fail(r, SM_E_BUSY, "no room for another lease");
            return;
        }
        struct elease *l = &s->leases[s->leases_count++];
        *l = (struct elease){.id = s->next_lease++, .ttl_ms = q->ttl_ms};
        l->deadline_ms = s->now_ms + q->ttl_ms;
        r->lease = l->id;
        r->ttl_ms = l->ttl_ms;
        return;
    }
    struct elease *l = lease_get(s, q->lease);
    r->lease = q->lease;
    if (!l) {
        coord_result_fail(r, SM_E_NOTFOUND, "lease %lld not found or expired", (long long)q->lease);
        return;
    }
    if (q->kind == SM_COORD_REQ_LEASE_KEEPALIVE) {
        l->deadline_ms = s->now_ms + l->ttl_ms;
        r->ttl_ms = l->ttl_ms;
        return;
    }
    ASSERT(q->kind == SM_COORD_REQ_LEASE_REVOKE);
    lease_drop(s, q->lease);
    r->revision = s->revision;
}

void sm_coord_embedded_tick(struct sm_coord_store *s, int64_t now_ms)
{
    ASSERT(s);
    if (now_ms <= s->now_ms)
        return;
    s->now_ms = now_ms;
    /* Expire in id order, so that the same leases at the same time expire the same way. */
    for (;;) {
        int64_t expired = 0;
        for (size_t i = 0; i < s->leases_count; i++)
            if (s->leases[i].deadline_ms <= now_ms && (expired == 0 || s->leases[i].id < expired))
                expired = s->leases[i].id;
        if (expired == 0)
            break;
        lease_drop(s, expired);
    }
}

/* ---- watches (requests) -------------------------------------------------------------------- */

static void apply_watch(struct embedded_client *cl, const struct coord_req *q,
                        struct sm_coord_result *r)
{
    struct sm_coord_store *s = cl->store;
    r->revision = s->revision;
    if (cl->watches_count >= SM_COORD_WATCHES_MAX) {
        coord_result_fail(r, SM_E_BUSY, "a client watches at most %d ranges", SM_COORD_WATCHES_MAX);
        return;
    }
    struct ewatch w = {.id = q->id, .prefix = q->prefix, .key_len = strlen(q->key)};
    w.key = strdup(q->key);
    w.end = coord_result_new(SM_COORD_WATCH_EVENTS, SM_COORD_REQ_WATCH, q->id);
    if (!w.key || !w.end) {
        free(w.key);
        free(w.end);
        coord_result_fail(r, SM_E_NOMEM, "out of memory");
        return;
    }
    w.next_revision = q->start_revision > 0 ? q->start_revision : s->revision + 1;
    cl->watches[cl->watches_count++] = w;
}

/* Sends a new watch what it missed: its history from its start revision, or its end when that
 * start was compacted away. Runs after the watch's DONE result is queued. */
static void watch_catch_up(struct embedded_client *cl, uint64_t id)
{
    struct sm_coord_store *s = cl->store;
    size_t i = 0;
    while (i < cl->watches_count && cl->watches[i].id != id)
        i++;
    if (i == cl->watches_count)
        return;
    if (cl->watches[i].next_revision <= s->compacted) {
        watch_end(cl, i, SM_E_STATE, "the watch's start revision was compacted");
        return;
    }
    size_t from = 0;
    while (from < s->history_count) {
        size_t to = from + 1;
        while (to < s->history_count &&
               s->history[to].kv.mod_revision == s->history[from].kv.mod_revision)
            to++;
        if (!watch_send(cl, &cl->watches[i], s->history + from, to - from)) {
            watch_end(cl, i, SM_E_NOMEM, "out of memory: watch ended");
            return;
        }
        from = to;
    }
}

static void apply_watch_cancel(struct embedded_client *cl, const struct coord_req *q,
                               struct sm_coord_result *r)
{
    r->revision = cl->store->revision;
    for (size_t i = 0; i < cl->watches_count; i++) {
        if (cl->watches[i].id == q->watch_id) {
            watch_remove(cl, i);
            return;
        }
    }
    coord_result_fail(r, SM_E_NOTFOUND, "no watch %llu", (unsigned long long)q->watch_id);
}

/* ---- the client ---------------------------------------------------------------------------- */

/* Applies q now and queues its result (allocated at submit, so every request is answered);
 * frees q. */
static void apply(struct embedded_client *cl, struct coord_req *q)
{
    struct coord_result_node *n = q->done;
    q->done = NULL;
    ASSERT(n);
    switch (q->kind) {
    case SM_COORD_REQ_TXN:
        apply_txn(cl->store, q, &n->result);
        break;
    case SM_COORD_REQ_LEASE_GRANT:
    case SM_COORD_REQ_LEASE_KEEPALIVE:
    case SM_COORD_REQ_LEASE_REVOKE:
        apply_lease(cl->store, q, &n->result);
        break;
    case SM_COORD_REQ_WATCH:
        apply_watch(cl, q, &n->result);
        break;
    case SM_COORD_REQ_WATCH_CANCEL:
        apply_watch_cancel(cl, q, &n->result);
        break;
    }
    bool opened = q->kind == SM_COORD_REQ_WATCH && n->result.err == 0;
    coord_results_push(&cl->results, n);
    if (opened)
        watch_catch_up(cl, q->id);
    coord_req_free(q);
}

static int embedded_submit(struct sm_coord *c, struct coord_req *q)
{
    struct embedded_client *cl = client_of(c);
    if (cl->results.count + cl->pending_count >= SM_COORD_PENDING_MAX)
        return SM_E_BUSY;
    q->done = coord_result_new(SM_COORD_DONE, q->kind, q->id);
    if (!q->done)
        return SM_E_NOMEM;
    if (!cl->manual) {
        apply(cl, q);
        return 0;
    }
    if (cl->pending_tail)
        cl->pending_tail->next = q;
    else
        cl->pending_head = q;
    cl->pending_tail = q;
    cl->pending_count++;
    return 0;
}

static struct coord_req *pending_pop(struct embedded_client *cl)
{
    struct coord_req *q = cl->pending_head;
    if (!q)
        return NULL;
    cl->pending_head = q->next;
    if (!cl->pending_head)
        cl->pending_tail = NULL;
    cl->pending_count--;
    q->next = NULL;
    return q;
}

static int embedded_poll(struct sm_coord *c, struct sm_coord_result *out)
{
    return coord_results_pop(&client_of(c)->results, out);
}

static int embedded_fd(const struct sm_coord *c)
{
    (void)c;
    return -1;
}

static void embedded_close(struct sm_coord *c)
{
    struct embedded_client *cl = client_of(c);
    struct coord_req *q;
    while ((q = pending_pop(cl)) != NULL)
        coord_req_free(q);
    while (cl->watches_count > 0)
        watch_remove(cl, cl->watches_count - 1);
    coord_results_clear(&cl->results);
    struct embedded_client **p = &cl->store->clients;
    while (*p != cl)
        p = &(*p)->next;
    *p = cl->next;
    free(cl);
}

static const struct coord_backend embedded_backend = {
    .submit = embedded_submit,
    .poll = embedded_poll,
    .fd = embedded_fd,
    .close = embedded_close,
};

int sm_coord_embedded_open(struct sm_coord_store *s, struct sm_coord **out)
{
    ASSERT(s && out);
    *out = NULL;
    struct embedded_client *cl = calloc(1, sizeof *cl);
    if (!cl)
        return SM_E_NOMEM;
    cl->base.backend = &embedded_backend;
    cl->store = s;
    /* Appended, so that watch events reach clients in the order they were opened. */
    struct embedded_client **p = &s->clients;
    while (*p)
        p = &(*p)->next;
    *p = cl;
    *out = &cl->base;
    return 0;
}

void sm_coord_embedded_set_manual(struct sm_coord *c, bool manual)
{
    struct embedded_client *cl = client_of(c);
    cl->manual = manual;
    if (!manual)
        sm_coord_embedded_apply(c, cl->pending_count);
}

size_t sm_coord_embedded_apply(struct sm_coord *c, size_t n)
{
    struct embedded_client *cl = client_of(c);
    size_t done = 0;
    struct coord_req *q;
    while (done < n && (q = pending_pop(cl)) != NULL) {
        apply(cl, q);
        done++;
    }
    return done;
}

size_t sm_coord_embedded_fail(struct sm_coord *c, size_t n, int err)
{
    ASSERT(err < 0);
    struct embedded_client *cl = client_of(c);
    size_t done = 0;
    struct coord_req *q;
    while (done < n && (q = pending_pop(cl)) != NULL) {
        struct coord_result_node *node = q->done;
        q->done = NULL;
        ASSERT(node);
        coord_result_fail(&node->result, err, "not applied: %s", sm_strerror(err));
        coord_results_push(&cl->results, node);
        coord_req_free(q);
        done++;
    }
    return done;
}

size_t sm_coord_embedded_fail_pending(struct sm_coord *c, int err)
{
    return sm_coord_embedded_fail(c, SIZE_MAX, err);
}

size_t sm_coord_embedded_pending(const struct sm_coord *c)
{
    ASSERT(c && c->backend == &embedded_backend);
    return ((const struct embedded_client *)c)->pending_count;
}
