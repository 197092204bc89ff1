/* The control plane's behavioural suite, run against both backends (see coord_harness.h). */
#include "coord_harness.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "coord/directory.h"
#include "util/error.h"

#define AWAIT_MS 10000

struct sm_coord *harness_client(struct harness *h)
{
    cr_assert(h->clients_count < HARNESS_CLIENTS_MAX);
    struct sm_coord *c = h->open(h);
    cr_assert(c != NULL, "client opened");
    h->clients[h->clients_count++] = c;
    return c;
}

void harness_close_clients(struct harness *h)
{
    for (int i = 0; i < h->clients_count; i++) {
        for (int j = 0; j < h->stash[i].count; j++)
            sm_coord_result_free(&h->stash[i].results[j]);
        h->stash[i].count = 0;
        sm_coord_close(h->clients[i]);
        h->clients[i] = NULL;
    }
    h->clients_count = 0;
}

static struct harness_stash *stash_of(struct harness *h, struct sm_coord *c)
{
    for (int i = 0; i < h->clients_count; i++)
        if (h->clients[i] == c)
            return &h->stash[i];
    cr_assert_fail("client not opened through the harness");
    return NULL;
}

/* Takes from the stash, in order, the first result that matches (kind, id). */
static bool stash_take(struct harness_stash *st, enum sm_coord_result_kind kind, uint64_t id,
                       struct sm_coord_result *out)
{
    for (int i = 0; i < st->count; i++) {
        if (st->results[i].kind == kind && st->results[i].id == id) {
            *out = st->results[i];
            memmove(&st->results[i], &st->results[i + 1],
                    (size_t)(st->count - i - 1) * sizeof st->results[0]);
            st->count--;
            return true;
        }
    }
    return false;
}

static bool await_kind(struct harness *h, struct sm_coord *c, enum sm_coord_result_kind kind,
                       uint64_t id, int64_t ms, struct sm_coord_result *out)
{
    struct harness_stash *st = stash_of(h, c);
    int64_t deadline = h->now(h) + ms;
    for (;;) {
        if (stash_take(st, kind, id, out))
            return true;
        struct sm_coord_result r;
        while (sm_coord_poll(c, &r) == 1) {
            cr_assert(st->count < HARNESS_STASH_MAX, "too many results not taken");
            st->results[st->count++] = r;
        }
        if (stash_take(st, kind, id, out))
            return true;
        if (h->now(h) >= deadline)
            return false;
        h->wait(h, c, 20);
    }
}

void harness_await(struct harness *h, struct sm_coord *c, uint64_t id, struct sm_coord_result *out)
{
    cr_assert(id != 0, "a request was submitted");
    cr_assert(await_kind(h, c, SM_COORD_DONE, id, AWAIT_MS, out), "request %llu answered",
              (unsigned long long)id);
}

bool harness_events(struct harness *h, struct sm_coord *c, uint64_t watch_id, int64_t ms,
                    struct sm_coord_result *out)
{
    return await_kind(h, c, SM_COORD_WATCH_EVENTS, watch_id, ms, out);
}

/* ---- small helpers ------------------------------------------------------------------------- */

static struct sm_coord_result run_put(struct harness *h, struct sm_coord *c, const char *key,
                                      const char *value, int64_t lease)
{
    uint64_t id;
    int rc = sm_coord_put(c, key, value, strlen(value), lease, &id);
    cr_assert_eq(rc, 0, "put %s submitted: %s", key, sm_strerror(rc));
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    return r;
}

static int64_t put_ok(struct harness *h, struct sm_coord *c, const char *key, const char *value,
                      int64_t lease)
{
    struct sm_coord_result r = run_put(h, c, key, value, lease);
    cr_assert_eq(r.err, 0, "put %s: %s", key, r.message);
    cr_assert(r.succeeded);
    int64_t rev = r.revision;
    sm_coord_result_free(&r);
    return rev;
}

static struct sm_coord_result get(struct harness *h, struct sm_coord *c, const char *key,
                                  bool prefix)
{
    uint64_t id;
    cr_assert_eq(sm_coord_get(c, key, prefix, &id), 0);
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "get %s: %s", key, r.message);
    return r;
}

static int64_t grant(struct harness *h, struct sm_coord *c, int64_t ttl_ms)
{
    uint64_t id;
    cr_assert_eq(sm_coord_lease_grant(c, ttl_ms, &id), 0);
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "grant: %s", r.message);
    cr_assert(r.lease > 0);
    cr_assert(r.ttl_ms >= ttl_ms, "granted %lld ms for %lld", (long long)r.ttl_ms,
              (long long)ttl_ms);
    return r.lease;
}

static void expect_value(const struct sm_coord_kv *kv, const char *key, const char *value)
{
    cr_assert_str_eq(kv->key, key);
    cr_assert_eq(kv->key_len, strlen(key));
    cr_assert_eq(kv->value_len, strlen(value));
    cr_assert(memcmp(kv->value, value, kv->value_len) == 0, "value of %s", key);
}

/* ---- the suite ----------------------------------------------------------------------------- */

void suite_crud(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    int64_t r1 = put_ok(h, c, "/t/a", "1", 0);
    int64_t r2 = put_ok(h, c, "/t/b", "2", 0);
    int64_t r3 = put_ok(h, c, "/t/a", "one", 0);
    cr_assert(r1 > 1 && r2 == r1 + 1 && r3 == r2 + 1, "each write bumps the revision once");
    put_ok(h, c, "/u", "other", 0);

    struct sm_coord_result r = get(h, c, "/t/a", false);
    cr_assert_eq(r.kvs_count, 1);
    expect_value(&r.kvs[0], "/t/a", "one");
    cr_assert_eq(r.kvs[0].create_revision, r1);
    cr_assert_eq(r.kvs[0].mod_revision, r3);
    cr_assert_eq(r.kvs[0].version, 2);
    cr_assert_eq(r.kvs[0].lease, 0);
    sm_coord_result_free(&r);

    r = get(h, c, "/t/", true);
    cr_assert_eq(r.kvs_count, 2, "a prefix read returns both keys, not /u");
    expect_value(&r.kvs[0], "/t/a", "one");
    expect_value(&r.kvs[1], "/t/b", "2");
    sm_coord_result_free(&r);

    r = get(h, c, "/t/zz", false);
    cr_assert_eq(r.kvs_count, 0, "a missing key reads as nothing");
    sm_coord_result_free(&r);

    /* Empty values and values with NUL bytes are values like others. */
    uint64_t id;
    cr_assert_eq(sm_coord_put(c, "/t/bin", "a\0b", 3, 0, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    r = get(h, c, "/t/bin", false);
    cr_assert_eq(r.kvs_count, 1);
    cr_assert_eq(r.kvs[0].value_len, 3);
    cr_assert(memcmp(r.kvs[0].value, "a\0b", 3) == 0);
    sm_coord_result_free(&r);
    put_ok(h, c, "/t/empty", "", 0);
    r = get(h, c, "/t/empty", false);
    cr_assert_eq(r.kvs_count, 1);
    cr_assert_eq(r.kvs[0].value_len, 0);
    sm_coord_result_free(&r);

    cr_assert_eq(sm_coord_delete(c, "/t/", true, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.deleted, 4, "prefix delete removed %lld keys", (long long)r.deleted);
    sm_coord_result_free(&r);
    r = get(h, c, "/t/", true);
    cr_assert_eq(r.kvs_count, 0);
    sm_coord_result_free(&r);
    r = get(h, c, "/u", false);
    cr_assert_eq(r.kvs_count, 1, "a key outside the prefix survives");
    sm_coord_result_free(&r);

    cr_assert_eq(sm_coord_delete(c, "/nothing", false, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.deleted, 0);
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

void suite_txn_compares(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    int64_t rev = put_ok(h, c, "/x", "v1", 0);
    struct {
        struct sm_coord_cmp cmp;
        bool holds;
    } cases[] = {
        {{.key = "/x", .target = SM_COORD_CMP_VERSION, .result = SM_COORD_EQUAL, .number = 1},
         true},
        {{.key = "/x", .target = SM_COORD_CMP_VERSION, .result = SM_COORD_GREATER, .number = 1},
         false},
        {{.key = "/x",
          .target = SM_COORD_CMP_MOD_REVISION,
          .result = SM_COORD_EQUAL,
          .number = rev},
         true},
        {{.key = "/x", .target = SM_COORD_CMP_MOD_REVISION, .result = SM_COORD_LESS, .number = rev},
         false},
        {{.key = "/x", .target = SM_COORD_CMP_CREATE_REVISION, .result = SM_COORD_NOT_EQUAL}, true},
        {{.key = "/missing", .target = SM_COORD_CMP_CREATE_REVISION, .result = SM_COORD_EQUAL},
         true},
        {{.key = "/missing", .target = SM_COORD_CMP_VERSION, .result = SM_COORD_EQUAL}, true},
        {{.key = "/x", .target = SM_COORD_CMP_VALUE, .value = "v1", .value_len = 2}, true},
        {{.key = "/x",
          .target = SM_COORD_CMP_VALUE,
          .result = SM_COORD_GREATER,
          .value = "v0",
          .value_len = 2},
         true},
        {{.key = "/x", .target = SM_COORD_CMP_VALUE, .value = "v2", .value_len = 2}, false},
        {{.key = "/x", .target = SM_COORD_CMP_LEASE, .result = SM_COORD_EQUAL, .number = 0}, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sm_coord_op then_op = {.kind = SM_COORD_OP_RANGE, .key = "/x"};
        uint64_t id;
        cr_assert_eq(sm_coord_txn(c, &cases[i].cmp, 1, &then_op, 1, NULL, 0, &id), 0);
        struct sm_coord_result r;
        harness_await(h, c, id, &r);
        cr_assert_eq(r.err, 0, "case %zu: %s", i, r.message);
        cr_assert_eq(r.succeeded, cases[i].holds, "case %zu", i);
        cr_assert_eq(r.kvs_count, cases[i].holds ? 1u : 0u, "case %zu", i);
        cr_assert_eq(r.revision, rev, "a read-only transaction does not bump the revision");
        sm_coord_result_free(&r);
    }
    /* Both branches write; only the chosen one applies, at one revision. */
    struct sm_coord_cmp cmp = {.key = "/x", .target = SM_COORD_CMP_VERSION, .number = 5};
    struct sm_coord_op then_ops[] = {
        {.kind = SM_COORD_OP_PUT, .key = "/then", .value = "t", .value_len = 1}};
    struct sm_coord_op else_ops[] = {
        {.kind = SM_COORD_OP_PUT, .key = "/else1", .value = "e", .value_len = 1},
        {.kind = SM_COORD_OP_PUT, .key = "/else2", .value = "e", .value_len = 1},
        {.kind = SM_COORD_OP_RANGE, .key = "/else", .prefix = true},
    };
    uint64_t id;
    cr_assert_eq(sm_coord_txn(c, &cmp, 1, then_ops, 1, else_ops, 3, &id), 0);
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "%s", r.message);
    cr_assert(!r.succeeded);
    cr_assert_eq(r.revision, rev + 1, "two puts of one transaction share one revision");
    cr_assert_eq(r.kvs_count, 2, "a range after puts in the same branch sees them");
    cr_assert_eq(r.kvs[0].mod_revision, rev + 1);
    cr_assert_eq(r.kvs[1].mod_revision, rev + 1);
    sm_coord_result_free(&r);
    r = get(h, c, "/then", false);
    cr_assert_eq(r.kvs_count, 0, "the branch not taken did not run");
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

void suite_cas_race(struct harness *h)
{
    struct sm_coord *a = harness_client(h);
    struct sm_coord *b = harness_client(h);
    int64_t rev = put_ok(h, a, "/cfg", "epoch=1", 0);
    for (int round = 0; round < 5; round++) {
        /* Both read rev, both try to replace it: exactly one wins. */
        struct sm_coord_cmp cmp = {
            .key = "/cfg", .target = SM_COORD_CMP_MOD_REVISION, .number = rev};
        char va[32], vb[32];
        snprintf(va, sizeof va, "a%d", round);
        snprintf(vb, sizeof vb, "b%d", round);
        struct sm_coord_op pa = {
            .kind = SM_COORD_OP_PUT, .key = "/cfg", .value = va, .value_len = strlen(va)};
        struct sm_coord_op pb = {
            .kind = SM_COORD_OP_PUT, .key = "/cfg", .value = vb, .value_len = strlen(vb)};
        struct sm_coord_op read = {.kind = SM_COORD_OP_RANGE, .key = "/cfg"};
        uint64_t ia, ib;
        cr_assert_eq(sm_coord_txn(a, &cmp, 1, &pa, 1, &read, 1, &ia), 0);
        cr_assert_eq(sm_coord_txn(b, &cmp, 1, &pb, 1, &read, 1, &ib), 0);
        struct sm_coord_result ra, rb;
        harness_await(h, a, ia, &ra);
        harness_await(h, b, ib, &rb);
        cr_assert_eq(ra.err, 0);
        cr_assert_eq(rb.err, 0);
        cr_assert(ra.succeeded != rb.succeeded, "round %d: exactly one CAS wins", round);
        struct sm_coord_result *win = ra.succeeded ? &ra : &rb;
        struct sm_coord_result *lose = ra.succeeded ? &rb : &ra;
        cr_assert_eq(lose->kvs_count, 1, "the loser reads the winner's value");
        expect_value(&lose->kvs[0], "/cfg", ra.succeeded ? va : vb);
        cr_assert_eq(lose->kvs[0].mod_revision, win->revision);
        rev = win->revision;
        sm_coord_result_free(&ra);
        sm_coord_result_free(&rb);
    }
    harness_close_clients(h);
}

void suite_lease_expiry(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    int64_t lease = grant(h, c, h->ttl_ms);
    put_ok(h, c, "/m/1", "alive", lease);
    put_ok(h, c, "/m/2", "alive", lease);
    put_ok(h, c, "/m/keep", "no lease", 0);
    struct sm_coord_result r = get(h, c, "/m/1", false);
    cr_assert_eq(r.kvs[0].lease, lease);
    sm_coord_result_free(&r);

    /* Kept alive across three TTLs: the keys stay. */
    for (int i = 0; i < 9; i++) {
        h->advance(h, h->ttl_ms / 3);
        uint64_t id;
        cr_assert_eq(sm_coord_lease_keepalive(c, lease, &id), 0);
        harness_await(h, c, id, &r);
        cr_assert_eq(r.err, 0, "keepalive %d: %s", i, r.message);
        cr_assert_eq(r.lease, lease);
        cr_assert(r.ttl_ms > 0);
        sm_coord_result_free(&r);
    }
    r = get(h, c, "/m/", true);
    cr_assert_eq(r.kvs_count, 3, "keys under a renewed lease stay");
    sm_coord_result_free(&r);

    /* Renewals stop: past the TTL the lease's keys are gone, the others stay. */
    int64_t waited = 0;
    size_t left = 3;
    while (left != 1 && waited < h->ttl_ms + 4000) {
        h->advance(h, 100);
        waited += 100;
        r = get(h, c, "/m/", true);
        left = r.kvs_count;
        sm_coord_result_free(&r);
    }
    cr_assert_eq(left, 1, "the lease's keys expired (waited %lld ms)", (long long)waited);
    cr_assert(waited >= h->ttl_ms - 100, "not before the TTL (%lld ms)", (long long)waited);
    r = get(h, c, "/m/keep", false);
    cr_assert_eq(r.kvs_count, 1);
    sm_coord_result_free(&r);

    uint64_t id;
    cr_assert_eq(sm_coord_lease_keepalive(c, lease, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, SM_E_NOTFOUND, "a keepalive of an expired lease says it is lost");
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

void suite_lease_unknown(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    struct sm_coord_result r = run_put(h, c, "/k", "v", 987654321);
    cr_assert_eq(r.err, SM_E_NOTFOUND, "a put under an unknown lease fails: %s", r.message);
    sm_coord_result_free(&r);
    r = get(h, c, "/k", false);
    cr_assert_eq(r.kvs_count, 0, "and writes nothing");
    sm_coord_result_free(&r);
    uint64_t id;
    cr_assert_eq(sm_coord_lease_revoke(c, 987654321, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, SM_E_NOTFOUND);
    sm_coord_result_free(&r);

    /* Revoking deletes the lease's keys at once. */
    int64_t lease = grant(h, c, h->ttl_ms * 10);
    put_ok(h, c, "/k", "v", lease);
    cr_assert_eq(sm_coord_lease_revoke(c, lease, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);
    r = get(h, c, "/k", false);
    cr_assert_eq(r.kvs_count, 0);
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

static void expect_event(const struct sm_coord_event *e, enum sm_coord_event_type type,
                         const char *key, int64_t revision)
{
    cr_assert_eq(e->type, type, "event type of %s", key);
    cr_assert_str_eq(e->kv.key, key);
    cr_assert_eq(e->kv.mod_revision, revision, "revision of %s: %lld", key,
                 (long long)e->kv.mod_revision);
}

/* The next event of the watch, whatever result it came in. */
struct event_reader {
    struct sm_coord_result r;
    size_t next;
};

static const struct sm_coord_event *next_event(struct harness *h, struct sm_coord *c,
                                               uint64_t watch, struct event_reader *er)
{
    while (er->next >= er->r.events_count) {
        sm_coord_result_free(&er->r);
        er->next = 0;
        if (!harness_events(h, c, watch, AWAIT_MS, &er->r))
            return NULL;
        cr_assert_eq(er->r.err, 0, "watch failed: %s", er->r.message);
    }
    return &er->r.events[er->next++];
}

void suite_watch_from_revision(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    int64_t r1 = put_ok(h, c, "/w/a", "1", 0);
    int64_t r2 = put_ok(h, c, "/w/b", "2", 0);
    put_ok(h, c, "/elsewhere", "x", 0);
    uint64_t id;
    cr_assert_eq(sm_coord_delete(c, "/w/a", false, &id), 0);
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    int64_t r3 = r.revision;
    sm_coord_result_free(&r);

    /* From r1: the past first, in order, then what happens next. */
    uint64_t w;
    cr_assert_eq(sm_coord_watch(c, "/w/", true, r1, &w), 0);
    harness_await(h, c, w, &r);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);
    struct event_reader er = {0};
    const struct sm_coord_event *e = next_event(h, c, w, &er);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_PUT, "/w/a", r1);
    cr_assert_eq(e->kv.value_len, 1);
    cr_assert_eq(e->kv.value[0], '1');
    e = next_event(h, c, w, &er);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_PUT, "/w/b", r2);
    e = next_event(h, c, w, &er);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_DELETE, "/w/a", r3);
    int64_t r4 = put_ok(h, c, "/w/c", "3", 0);
    put_ok(h, c, "/elsewhere", "y", 0);
    int64_t r6 = put_ok(h, c, "/w/b", "22", 0);
    e = next_event(h, c, w, &er);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_PUT, "/w/c", r4);
    e = next_event(h, c, w, &er);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_PUT, "/w/b", r6);
    cr_assert_eq(e->kv.version, 2);
    cr_assert_eq(e->kv.create_revision, r2);
    sm_coord_result_free(&er.r);

    /* A second watch, on one key, from now: sees only later changes of that key. */
    uint64_t w2;
    cr_assert_eq(sm_coord_watch(c, "/w/c", false, 0, &w2), 0);
    harness_await(h, c, w2, &r);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    put_ok(h, c, "/w/cc", "no", 0);
    int64_t r8 = put_ok(h, c, "/w/c", "4", 0);
    struct event_reader er2 = {0};
    e = next_event(h, c, w2, &er2);
    cr_assert(e);
    expect_event(e, SM_COORD_EVENT_PUT, "/w/c", r8);
    sm_coord_result_free(&er2.r);
    harness_close_clients(h);
}

void suite_watch_cancel(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    uint64_t w, id;
    cr_assert_eq(sm_coord_watch(c, "/q/", true, 0, &w), 0);
    struct sm_coord_result r;
    harness_await(h, c, w, &r);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    put_ok(h, c, "/q/1", "x", 0);
    cr_assert(harness_events(h, c, w, AWAIT_MS, &r));
    cr_assert_eq(r.events_count, 1);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_watch_cancel(c, w, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);
    put_ok(h, c, "/q/2", "x", 0);
    cr_assert(!harness_events(h, c, w, 300, &r), "no events after cancel");
    cr_assert_eq(sm_coord_watch_cancel(c, w, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, SM_E_NOTFOUND, "cancelling twice: no such watch");
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

void suite_bad_requests(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    uint64_t id = 77;
    static char big_key[SM_COORD_KEY_BYTES_MAX + 2];
    memset(big_key, 'k', sizeof big_key - 1);
    big_key[0] = '/';
    static char big_value[SM_COORD_VALUE_BYTES_MAX + 1];
    cr_assert_eq(sm_coord_put(c, big_key, "v", 1, 0, &id), SM_E_TOOLARGE);
    cr_assert_eq(id, 0, "nothing submitted");
    big_key[SM_COORD_KEY_BYTES_MAX] = '\0'; /* exactly at the bound: fine */
    cr_assert_eq(sm_coord_put(c, big_key, "v", 1, 0, &id), 0);
    struct sm_coord_result r;
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "a key of the largest size is stored: %s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_put(c, "/v", big_value, sizeof big_value, 0, &id), SM_E_TOOLARGE);
    cr_assert_eq(sm_coord_put(c, "/v", big_value, sizeof big_value - 1, 0, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "a value of the largest size is stored: %s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_put(c, "", "v", 1, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_put(c, NULL, "v", 1, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_put(c, "/v", NULL, 3, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_put(c, "/v", "v", 1, -1, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_delete(c, "", true, &id), SM_E_BADARG, "no delete of everything");
    cr_assert_eq(sm_coord_lease_grant(c, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_lease_grant(c, SM_COORD_LEASE_TTL_MS_MAX + 1, &id), SM_E_TOOLARGE);
    cr_assert_eq(sm_coord_lease_keepalive(c, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_lease_revoke(c, -5, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_watch(c, "/w", false, -1, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_watch(c, "", false, 0, &id), SM_E_BADARG);
    cr_assert_eq(sm_coord_watch_cancel(c, 0, &id), SM_E_BADARG);

    struct sm_coord_op ops[SM_COORD_TXN_OPS_MAX + 1];
    char keys[SM_COORD_TXN_OPS_MAX + 1][16];
    for (int i = 0; i <= SM_COORD_TXN_OPS_MAX; i++) {
        snprintf(keys[i], sizeof keys[i], "/many/%03d", i);
        ops[i] = (struct sm_coord_op){
            .kind = SM_COORD_OP_PUT, .key = keys[i], .value = "x", .value_len = 1};
    }
    cr_assert_eq(sm_coord_txn(c, NULL, 0, ops, SM_COORD_TXN_OPS_MAX + 1, NULL, 0, &id),
                 SM_E_TOOLARGE);
    cr_assert_eq(sm_coord_txn(c, NULL, 0, ops, SM_COORD_TXN_OPS_MAX, NULL, 0, &id), 0);
    harness_await(h, c, id, &r);
    cr_assert_eq(r.err, 0, "a transaction of the largest size applies: %s", r.message);
    sm_coord_result_free(&r);
    struct sm_coord_op dup[2] = {ops[0], ops[0]};
    cr_assert_eq(sm_coord_txn(c, NULL, 0, dup, 2, NULL, 0, &id), SM_E_BADARG,
                 "two writes of one key in one branch");
    struct sm_coord_op overlap[2] = {ops[0],
                                     {.kind = SM_COORD_OP_DELETE, .key = "/many/", .prefix = true}};
    cr_assert_eq(sm_coord_txn(c, NULL, 0, overlap, 2, NULL, 0, &id), SM_E_BADARG,
                 "a put inside a deleted prefix");
    struct sm_coord_op bad_kind = {.kind = (enum sm_coord_op_kind)9, .key = "/x"};
    cr_assert_eq(sm_coord_txn(c, NULL, 0, &bad_kind, 1, NULL, 0, &id), SM_E_BADARG);
    struct sm_coord_cmp bad_cmp = {.key = "/x", .target = (enum sm_coord_cmp_target)9};
    cr_assert_eq(sm_coord_txn(c, &bad_cmp, 1, NULL, 0, NULL, 0, &id), SM_E_BADARG);
    harness_close_clients(h);
}

void suite_linearizable_order(struct harness *h)
{
    /* Three clients write interleaved; every client's watch sees the same changes in the same
     * order, and each write's revision is the order it took effect in. */
    struct sm_coord *cs[3];
    uint64_t ws[3];
    for (int i = 0; i < 3; i++) {
        cs[i] = harness_client(h);
        cr_assert_eq(sm_coord_watch(cs[i], "/lin/", true, 0, &ws[i]), 0);
        struct sm_coord_result r;
        harness_await(h, cs[i], ws[i], &r);
        cr_assert_eq(r.err, 0);
        sm_coord_result_free(&r);
    }
    enum { WRITES = 30 };
    int64_t revs[WRITES];
    for (int i = 0; i < WRITES; i++) {
        char key[32], value[32];
        snprintf(key, sizeof key, "/lin/%d", i % 4);
        snprintf(value, sizeof value, "%d", i);
        revs[i] = put_ok(h, cs[i % 3], key, value, 0);
        if (i > 0)
            cr_assert(revs[i] > revs[i - 1], "a later write has a later revision");
    }
    for (int k = 0; k < 3; k++) {
        struct event_reader er = {0};
        for (int i = 0; i < WRITES; i++) {
            const struct sm_coord_event *e = next_event(h, cs[k], ws[k], &er);
            cr_assert(e, "client %d event %d", k, i);
            cr_assert_eq(e->kv.mod_revision, revs[i], "client %d sees write %d in order", k, i);
            char value[32];
            snprintf(value, sizeof value, "%d", i);
            cr_assert_eq(e->kv.value_len, strlen(value));
            cr_assert(memcmp(e->kv.value, value, e->kv.value_len) == 0);
        }
        sm_coord_result_free(&er.r);
    }
    harness_close_clients(h);
}

/* ---- the directory ------------------------------------------------------------------------- */

void suite_directory(struct harness *h)
{
    struct sm_coord *a = harness_client(h);
    struct sm_coord *b = harness_client(h);
    struct sm_coord_dir da, db;
    cr_assert_eq(sm_coord_dir_init(&da, a, "test-1"), 0);
    cr_assert_eq(sm_coord_dir_init(&db, b, "test-1"), 0);

    /* meta: created once; the second creator reads the first one's. */
    struct sm_coord_meta m1 = {.partitions = 16, .replicas = 3},
                         m2 = {.partitions = 8, .replicas = 1};
    uint64_t id;
    struct sm_coord_result r;
    cr_assert_eq(sm_coord_dir_create_meta(&da, &m1, &id), 0);
    harness_await(h, a, id, &r);
    cr_assert_eq(r.err, 0);
    cr_assert(r.succeeded);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_create_meta(&db, &m2, &id), 0);
    harness_await(h, b, id, &r);
    cr_assert(!r.succeeded);
    cr_assert_eq(r.kvs_count, 1);
    struct sm_coord_entry e;
    cr_assert_eq(sm_coord_dir_decode(&db, &r.kvs[0], false, &e), 0);
    cr_assert_eq(e.kind, SM_COORD_ENTRY_META);
    cr_assert_eq(e.meta.partitions, 16);
    cr_assert_eq(e.meta.replicas, 3);
    sm_coord_result_free(&r);

    /* members under leases */
    int64_t la = grant(h, a, h->ttl_ms), lb = grant(h, b, h->ttl_ms * 20);
    struct sm_coord_member ma = {
        .id = "node-a", .addr = "127.0.0.1:7001", .zone = "z1", .weight = 1};
    struct sm_coord_member mb = {.id = "node-b", .addr = "127.0.0.1:7002", .zone = "", .weight = 3};
    cr_assert_eq(sm_coord_dir_join(&da, &ma, la, &id), 0);
    harness_await(h, a, id, &r);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_join(&db, &mb, lb, &id), 0);
    harness_await(h, b, id, &r);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);

    /* partitions created if absent, then changed by CAS only */
    struct sm_coord_partition p = {.partition = 7,
                                   .epoch = 1,
                                   .primary = "node-a",
                                   .isr_count = 2,
                                   .isr = {"node-a", "node-b"}};
    cr_assert_eq(sm_coord_dir_partition_cas(&da, &p, 0, &id), 0);
    harness_await(h, a, id, &r);
    cr_assert(r.succeeded, "created: %s", r.message);
    int64_t p_rev = r.revision;
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_partition_cas(&db, &p, 0, &id), 0);
    harness_await(h, b, id, &r);
    cr_assert(!r.succeeded, "created only once");
    sm_coord_result_free(&r);

    /* The load sees everything at one revision. */
    cr_assert_eq(sm_coord_dir_load(&db, &id), 0);
    harness_await(h, b, id, &r);
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.kvs_count, 4, "meta, two members, one partition: %zu", r.kvs_count);
    int seen[5] = {0};
    for (size_t i = 0; i < r.kvs_count; i++) {
        cr_assert_eq(sm_coord_dir_decode(&db, &r.kvs[i], false, &e), 0, "%s", r.kvs[i].key);
        seen[e.kind]++;
        if (e.kind == SM_COORD_ENTRY_MEMBER && strcmp(e.member.id, "node-b") == 0) {
            cr_assert_str_eq(e.member.addr, "127.0.0.1:7002");
            cr_assert_eq(e.member.weight, 3);
        }
        if (e.kind == SM_COORD_ENTRY_PARTITION) {
            cr_assert_eq(e.partition.partition, 7);
            cr_assert_eq(e.partition.epoch, 1);
            cr_assert_str_eq(e.partition.primary, "node-a");
            cr_assert_eq(e.partition.isr_count, 2);
            cr_assert_str_eq(e.partition.isr[1], "node-b");
            cr_assert_eq(e.partition.mod_revision, p_rev);
        }
    }
    cr_assert_eq(seen[SM_COORD_ENTRY_META], 1);
    cr_assert_eq(seen[SM_COORD_ENTRY_MEMBER], 2);
    cr_assert_eq(seen[SM_COORD_ENTRY_PARTITION], 1);
    int64_t load_rev = r.revision;
    sm_coord_result_free(&r);

    uint64_t w;
    cr_assert_eq(sm_coord_dir_watch(&db, load_rev + 1, &w), 0);
    harness_await(h, b, w, &r);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);

    /* Two controllers race to fail the partition over from the same revision: one wins. */
    struct sm_coord_partition pa = p, pb = p;
    pa.epoch = pb.epoch = 2;
    snprintf(pb.primary, sizeof pb.primary, "node-b");
    pa.isr_count = 1;
    pb.isr_count = 1;
    snprintf(pb.isr[0], sizeof pb.isr[0], "node-b");
    uint64_t ia, ib;
    cr_assert_eq(sm_coord_dir_partition_cas(&da, &pa, p_rev, &ia), 0);
    cr_assert_eq(sm_coord_dir_partition_cas(&db, &pb, p_rev, &ib), 0);
    struct sm_coord_result ra, rb;
    harness_await(h, a, ia, &ra);
    harness_await(h, b, ib, &rb);
    cr_assert(ra.succeeded != rb.succeeded, "one CAS of the configuration wins");
    struct sm_coord_result *lose = ra.succeeded ? &rb : &ra;
    cr_assert_eq(lose->kvs_count, 1);
    cr_assert_eq(sm_coord_dir_decode(&da, &lose->kvs[0], false, &e), 0);
    cr_assert_str_eq(e.partition.primary, ra.succeeded ? "node-a" : "node-b");
    sm_coord_result_free(&ra);
    sm_coord_result_free(&rb);

    /* The watcher sees the new configuration and node-a's member key vanish with its lease
     * (in either order: the lease may lapse first on a slow machine). */
    bool gone = false, changed = false;
    for (int i = 0; i < 100 && !(gone && changed); i++) {
        while (harness_events(h, b, w, 50, &r)) {
            cr_assert_eq(r.err, 0, "%s", r.message);
            for (size_t k = 0; k < r.events_count; k++) {
                bool del = r.events[k].type == SM_COORD_EVENT_DELETE;
                cr_assert_eq(sm_coord_dir_decode(&db, &r.events[k].kv, del, &e), 0);
                if (e.kind == SM_COORD_ENTRY_PARTITION) {
                    cr_assert(!del && !changed);
                    cr_assert_eq(e.partition.epoch, 2);
                    changed = true;
                } else {
                    cr_assert_eq(e.kind, SM_COORD_ENTRY_MEMBER);
                    cr_assert(del && !gone);
                    cr_assert_str_eq(e.member.id, "node-a");
                    gone = true;
                }
            }
            sm_coord_result_free(&r);
        }
        h->advance(h, h->ttl_ms / 4);
        /* node-b renews its own lease meanwhile */
        cr_assert_eq(sm_coord_lease_keepalive(b, lb, &id), 0);
        harness_await(h, b, id, &r);
        cr_assert_eq(r.err, 0);
        sm_coord_result_free(&r);
    }
    cr_assert(changed, "the watcher saw the new configuration");
    cr_assert(gone, "a member that stops renewing leaves the directory");
    harness_close_clients(h);
}

void suite_election(struct harness *h)
{
    struct sm_coord *a = harness_client(h);
    struct sm_coord *b = harness_client(h);
    struct sm_coord_dir da, db;
    cr_assert_eq(sm_coord_dir_init(&da, a, "elect"), 0);
    cr_assert_eq(sm_coord_dir_init(&db, b, "elect"), 0);
    int64_t la = grant(h, a, h->ttl_ms * 20), lb = grant(h, b, h->ttl_ms * 20);
    uint64_t ia, ib, id;
    cr_assert_eq(sm_coord_dir_campaign(&da, "node-a", la, &ia), 0);
    cr_assert_eq(sm_coord_dir_campaign(&db, "node-b", lb, &ib), 0);
    struct sm_coord_result ra, rb;
    harness_await(h, a, ia, &ra);
    harness_await(h, b, ib, &rb);
    cr_assert(ra.succeeded != rb.succeeded, "one controller");
    bool a_won = ra.succeeded;
    struct sm_coord_dir *winner = a_won ? &da : &db;
    struct sm_coord_dir *loser = a_won ? &db : &da;
    struct sm_coord *lc = a_won ? b : a;
    struct sm_coord *wc = a_won ? a : b;
    struct sm_coord_result *lr = a_won ? &rb : &ra;
    struct sm_coord_entry e;
    cr_assert_eq(lr->kvs_count, 1);
    cr_assert_eq(sm_coord_dir_decode(loser, &lr->kvs[0], false, &e), 0);
    cr_assert_eq(e.kind, SM_COORD_ENTRY_CONTROLLER);
    cr_assert_str_eq(e.controller.id, a_won ? "node-a" : "node-b");
    cr_assert_eq(e.controller.lease, a_won ? la : lb);
    int64_t elected_rev = lr->kvs[0].mod_revision;
    sm_coord_result_free(&ra);
    sm_coord_result_free(&rb);

    /* The loser watches the controller key; the winner resigns; the loser then wins. */
    uint64_t w;
    cr_assert_eq(sm_coord_dir_watch(loser, elected_rev + 1, &w), 0);
    struct sm_coord_result r;
    harness_await(h, lc, w, &r);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_resign(loser, a_won ? lb : la, &id), 0);
    harness_await(h, lc, id, &r);
    cr_assert(!r.succeeded, "only the holder can resign");
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_resign(winner, a_won ? la : lb, &id), 0);
    harness_await(h, wc, id, &r);
    cr_assert(r.succeeded);
    sm_coord_result_free(&r);
    cr_assert(harness_events(h, lc, w, AWAIT_MS, &r));
    cr_assert_eq(r.events[0].type, SM_COORD_EVENT_DELETE);
    cr_assert_eq(sm_coord_dir_decode(loser, &r.events[0].kv, true, &e), 0);
    cr_assert_eq(e.kind, SM_COORD_ENTRY_CONTROLLER);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_dir_campaign(loser, a_won ? "node-b" : "node-a", a_won ? lb : la, &id),
                 0);
    harness_await(h, lc, id, &r);
    cr_assert(r.succeeded, "the next campaign wins");
    sm_coord_result_free(&r);
    harness_close_clients(h);
}

void suite_session(struct harness *h)
{
    struct sm_coord *c = harness_client(h);
    struct sm_coord_session s;
    sm_coord_session_init(&s, c, h->ttl_ms);
    int64_t start = h->now(h);
    /* Driven for three TTLs, polling like an event loop: the lease stays live. */
    while (h->now(h) - start < 3 * h->ttl_ms) {
        cr_assert_eq(sm_coord_session_tick(&s, h->now(h)), 0);
        struct sm_coord_result r;
        h->wait(h, c, 20);
        while (sm_coord_poll(c, &r) == 1) {
            cr_assert(sm_coord_session_on_result(&s, &r, h->now(h)));
            sm_coord_result_free(&r);
        }
        if (s.state == SM_COORD_SESSION_LIVE)
            cr_assert(s.valid_until_ms > h->now(h));
        h->advance(h, 50);
    }
    cr_assert_eq(s.state, SM_COORD_SESSION_LIVE, "state %d, err %d", s.state, s.last_err);
    int64_t lease = s.lease;
    put_ok(h, c, "/s/me", "x", lease);
    /* The caller stops ticking (a paused process): the session turns LOST once a TTL passed
     * since its last renewal, and the store drops the lease. */
    h->advance(h, s.granted_ttl_ms + 200);
    cr_assert_eq(sm_coord_session_tick(&s, h->now(h)), 0);
    cr_assert_eq(s.state, SM_COORD_SESSION_LOST);
    struct sm_coord_result r;
    bool gone = false;
    for (int i = 0; i < 40 && !gone; i++) {
        r = get(h, c, "/s/me", false);
        gone = r.kvs_count == 0;
        sm_coord_result_free(&r);
        if (!gone)
            h->advance(h, 100);
    }
    cr_assert(gone, "the lease's key is gone");
    sm_coord_session_restart(&s);
    cr_assert_eq(sm_coord_session_tick(&s, h->now(h)), 0);
    cr_assert_eq(s.state, SM_COORD_SESSION_GRANTING);
    for (int i = 0; i < 500 && s.state != SM_COORD_SESSION_LIVE; i++) {
        h->wait(h, c, 20);
        while (sm_coord_poll(c, &r) == 1) {
            sm_coord_session_on_result(&s, &r, h->now(h));
            sm_coord_result_free(&r);
        }
    }
    cr_assert_eq(s.state, SM_COORD_SESSION_LIVE);
    cr_assert_neq(s.lease, lease, "a new lease");
    harness_close_clients(h);
}
