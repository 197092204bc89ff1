/*
 * The embedded control plane: the shared behavioural suite (tests/support/coord_suite.c) on
 * simulated time, plus what only the embedded store promises: determinism, manual delivery for
 * the simulator, lease expiry exactly at the tick that passes the deadline, and compaction.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "coord/coord.h"
#include "coord/directory.h"
#include "util/error.h"

#include "../support/coord_harness.h"

struct embedded_harness {
    struct sm_coord_store *store;
    int64_t now_ms;
};

static struct embedded_harness eh;
static struct harness h;

static struct sm_coord *eh_open(struct harness *hh)
{
    (void)hh;
    struct sm_coord *c;
    return sm_coord_embedded_open(eh.store, &c) == 0 ? c : NULL;
}

static void eh_advance(struct harness *hh, int64_t ms)
{
    (void)hh;
    eh.now_ms += ms;
    sm_coord_embedded_tick(eh.store, eh.now_ms);
}

static int64_t eh_now(struct harness *hh)
{
    (void)hh;
    return eh.now_ms;
}

/* Waiting is time passing: the store's leases expire meanwhile, as they would in etcd. */
static void eh_wait(struct harness *hh, struct sm_coord *c, int64_t ms)
{
    (void)c;
    eh_advance(hh, ms);
}

static void setup(void)
{
    eh.store = sm_coord_store_new();
    cr_assert(eh.store);
    eh.now_ms = 0;
    memset(&h, 0, sizeof h);
    h.open = eh_open;
    h.advance = eh_advance;
    h.now = eh_now;
    h.wait = eh_wait;
    h.ttl_ms = 1000;
}

static void teardown(void)
{
    harness_close_clients(&h);
    sm_coord_store_free(eh.store);
}

/* cppcheck-suppress unknownMacro */
TestSuite(embedded, .init = setup, .fini = teardown);

Test(embedded, crud)
{
    suite_crud(&h);
}
Test(embedded, txn_compares)
{
    suite_txn_compares(&h);
}
Test(embedded, cas_race)
{
    suite_cas_race(&h);
}
Test(embedded, lease_expiry)
{
    suite_lease_expiry(&h);
}
Test(embedded, lease_unknown)
{
    suite_lease_unknown(&h);
}
Test(embedded, watch_from_revision)
{
    suite_watch_from_revision(&h);
}
Test(embedded, watch_cancel)
{
    suite_watch_cancel(&h);
}
Test(embedded, bad_requests)
{
    suite_bad_requests(&h);
}
Test(embedded, linearizable_order)
{
    suite_linearizable_order(&h);
}
Test(embedded, directory)
{
    suite_directory(&h);
}
Test(embedded, election)
{
    suite_election(&h);
}
Test(embedded, session)
{
    suite_session(&h);
}

/* ---- embedded only ------------------------------------------------------------------------- */

static struct sm_coord_result done(struct sm_coord *c, uint64_t id)
{
    struct sm_coord_result r;
    harness_await(&h, c, id, &r);
    return r;
}

Test(embedded, lease_expires_exactly_at_deadline)
{
    struct sm_coord *c = harness_client(&h);
    uint64_t id;
    eh_advance(&h, 500);
    cr_assert_eq(sm_coord_lease_grant(c, 1000, &id), 0);
    struct sm_coord_result r = done(c, id);
    int64_t lease = r.lease;
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_put(c, "/k", "v", 1, lease, &id), 0);
    r = done(c, id);
    int64_t rev = r.revision;
    sm_coord_result_free(&r);
    sm_coord_embedded_tick(eh.store, 1499);
    cr_assert_eq(sm_coord_store_revision(eh.store), rev, "alive 1 ms before the deadline");
    sm_coord_embedded_tick(eh.store, 1200); /* time never goes back */
    sm_coord_embedded_tick(eh.store, 1500);
    cr_assert_eq(sm_coord_store_revision(eh.store), rev + 1, "deleted at the deadline");
    cr_assert_eq(sm_coord_lease_keepalive(c, lease, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, SM_E_NOTFOUND);
    sm_coord_result_free(&r);
}

/* One scripted run; returns a digest of everything it observed. */
static uint64_t scripted_run(void)
{
    struct sm_coord_store *s = sm_coord_store_new();
    struct sm_coord *a, *b;
    cr_assert_eq(sm_coord_embedded_open(s, &a), 0);
    cr_assert_eq(sm_coord_embedded_open(s, &b), 0);
    uint64_t digest = 1469598103934665603ull, id;
    cr_assert_eq(sm_coord_watch(b, "/", true, 0, &id), 0);
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof key, "/k%d", i % 7);
        if (i % 5 == 0)
            cr_assert_eq(sm_coord_lease_grant(a, 100 + i, &id), 0);
        cr_assert_eq(sm_coord_put(i % 2 ? a : b, key, key, strlen(key), 0, &id), 0);
        sm_coord_embedded_tick(s, i * 37);
    }
    struct sm_coord *cs[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        struct sm_coord_result r;
        while (sm_coord_poll(cs[k], &r) == 1) {
            digest = (digest ^ (uint64_t)r.revision) * 1099511628211ull;
            digest = (digest ^ (uint64_t)r.lease) * 1099511628211ull;
            for (size_t i = 0; i < r.events_count; i++)
                digest = (digest ^ (uint64_t)r.events[i].kv.mod_revision) * 1099511628211ull;
            sm_coord_result_free(&r);
        }
    }
    sm_coord_close(a);
    sm_coord_close(b);
    sm_coord_store_free(s);
    return digest;
}

Test(embedded, deterministic)
{
    uint64_t d1 = scripted_run(), d2 = scripted_run();
    cr_assert_eq(d1, d2, "the same calls give the same results, revisions and lease ids");
}

Test(embedded, manual_mode_applies_when_told)
{
    struct sm_coord *a = harness_client(&h);
    struct sm_coord *b = harness_client(&h);
    sm_coord_embedded_set_manual(a, true);
    uint64_t ia1, ia2, ib;
    cr_assert_eq(sm_coord_put(a, "/x", "from-a", 6, 0, &ia1), 0);
    cr_assert_eq(sm_coord_put(a, "/y", "from-a", 6, 0, &ia2), 0);
    cr_assert_eq(sm_coord_embedded_pending(a), 2);
    struct sm_coord_result r;
    cr_assert_eq(sm_coord_poll(a, &r), 0, "nothing applied yet");
    /* b's write lands first although a submitted earlier: the order of apply is the order. */
    cr_assert_eq(sm_coord_put(b, "/x", "from-b", 6, 0, &ib), 0);
    r = done(b, ib);
    int64_t rb = r.revision;
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_embedded_apply(a, 1), 1);
    cr_assert_eq(sm_coord_embedded_pending(a), 1);
    r = done(a, ia1);
    cr_assert_eq(r.revision, rb + 1);
    sm_coord_result_free(&r);
    /* The rest fails as unreachable: never applied. */
    cr_assert_eq(sm_coord_embedded_fail_pending(a, SM_E_TRYAGAIN), 1);
    r = done(a, ia2);
    cr_assert_eq(r.err, SM_E_TRYAGAIN);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_get(b, "/y", false, &ib), 0);
    r = done(b, ib);
    cr_assert_eq(r.kvs_count, 0, "a failed request did not apply");
    sm_coord_result_free(&r);
    /* Back to automatic: a pending request applies at once. */
    cr_assert_eq(sm_coord_put(a, "/z", "1", 1, 0, &ia1), 0);
    sm_coord_embedded_set_manual(a, false);
    cr_assert_eq(sm_coord_embedded_pending(a), 0);
    r = done(a, ia1);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
}

Test(embedded, manual_mode_fails_the_oldest_requests_only)
{
    struct sm_coord *a = harness_client(&h);
    struct sm_coord *b = harness_client(&h);
    sm_coord_embedded_set_manual(a, true);
    uint64_t i1, i2, i3, ib;
    cr_assert_eq(sm_coord_put(a, "/p", "1", 1, 0, &i1), 0);
    cr_assert_eq(sm_coord_put(a, "/q", "2", 1, 0, &i2), 0);
    cr_assert_eq(sm_coord_put(a, "/r", "3", 1, 0, &i3), 0);
    /* The first is lost on its way: it fails, and the next one is now at the head. */
    cr_assert_eq(sm_coord_embedded_fail(a, 1, SM_E_TIMEOUT), 1);
    cr_assert_eq(sm_coord_embedded_pending(a), 2);
    struct sm_coord_result r = done(a, i1);
    cr_assert_eq(r.err, SM_E_TIMEOUT);
    cr_assert(strstr(r.message, "not applied") != NULL, "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_embedded_apply(a, 1), 1);
    r = done(a, i2);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    /* Asking for more than wait fails what there is. */
    cr_assert_eq(sm_coord_embedded_fail(a, 5, SM_E_TIMEOUT), 1);
    cr_assert_eq(sm_coord_embedded_pending(a), 0);
    r = done(a, i3);
    cr_assert_eq(r.err, SM_E_TIMEOUT);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_embedded_fail(a, 1, SM_E_TIMEOUT), 0, "nothing waits");
    /* Only /q applied. */
    cr_assert_eq(sm_coord_get(b, "/", true, &ib), 0);
    r = done(b, ib);
    cr_assert_eq(r.kvs_count, 1);
    cr_assert_str_eq(r.kvs[0].key, "/q");
    sm_coord_result_free(&r);
}

Test(embedded, pending_bound_is_busy)
{
    struct sm_coord *a = harness_client(&h);
    sm_coord_embedded_set_manual(a, true);
    uint64_t id;
    for (int i = 0; i < SM_COORD_PENDING_MAX; i++)
        cr_assert_eq(sm_coord_get(a, "/k", false, &id), 0);
    cr_assert_eq(sm_coord_get(a, "/k", false, &id), SM_E_BUSY);
    cr_assert_eq(id, 0);
    cr_assert_eq(sm_coord_embedded_apply(a, 10), 10);
    struct sm_coord_result r;
    cr_assert_eq(sm_coord_poll(a, &r), 1);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_get(a, "/k", false, &id), 0, "room again once a result is taken");
}

Test(embedded, watches_bound_is_busy)
{
    struct sm_coord *a = harness_client(&h);
    uint64_t id;
    struct sm_coord_result r;
    for (int i = 0; i < SM_COORD_WATCHES_MAX; i++) {
        cr_assert_eq(sm_coord_watch(a, "/k", false, 0, &id), 0);
        r = done(a, id);
        cr_assert_eq(r.err, 0);
        sm_coord_result_free(&r);
    }
    cr_assert_eq(sm_coord_watch(a, "/k", false, 0, &id), 0);
    r = done(a, id);
    cr_assert_eq(r.err, SM_E_BUSY);
    sm_coord_result_free(&r);
}

Test(embedded, watch_from_compacted_revision_fails)
{
    struct sm_coord *a = harness_client(&h);
    uint64_t id;
    struct sm_coord_result r;
    for (int i = 0; i < SM_COORD_EMBEDDED_HISTORY_MAX + 10; i++) {
        cr_assert_eq(sm_coord_put(a, "/hot", "v", 1, 0, &id), 0);
        r = done(a, id);
        sm_coord_result_free(&r);
    }
    cr_assert_eq(sm_coord_watch(a, "/hot", false, 2, &id), 0);
    r = done(a, id);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    cr_assert(harness_events(&h, a, id, 0, &r));
    cr_assert_eq(r.err, SM_E_STATE, "the start was compacted: %s", r.message);
    sm_coord_result_free(&r);
    /* A watch from a revision still kept works. */
    int64_t now = sm_coord_store_revision(eh.store);
    cr_assert_eq(sm_coord_watch(a, "/hot", false, now - 5, &id), 0);
    r = done(a, id);
    sm_coord_result_free(&r);
    cr_assert(harness_events(&h, a, id, 0, &r));
    cr_assert_eq(r.err, 0);
    cr_assert_eq(r.events_count, 1);
    cr_assert_eq(r.events[0].kv.mod_revision, now - 5);
    sm_coord_result_free(&r);
}

Test(embedded, range_bound_is_toolarge)
{
    struct sm_coord *a = harness_client(&h);
    struct sm_coord_op ops[SM_COORD_TXN_OPS_MAX];
    static char keys[SM_COORD_TXN_OPS_MAX][32];
    uint64_t id;
    struct sm_coord_result r;
    int written = 0;
    while (written <= SM_COORD_RANGE_KVS_MAX) {
        for (int i = 0; i < SM_COORD_TXN_OPS_MAX; i++) {
            snprintf(keys[i], sizeof keys[i], "/big/%08d", written++);
            ops[i] = (struct sm_coord_op){.kind = SM_COORD_OP_PUT, .key = keys[i]};
        }
        cr_assert_eq(sm_coord_txn(a, NULL, 0, ops, SM_COORD_TXN_OPS_MAX, NULL, 0, &id), 0);
        r = done(a, id);
        cr_assert_eq(r.err, 0);
        sm_coord_result_free(&r);
    }
    cr_assert_eq(sm_coord_get(a, "/big/", true, &id), 0);
    r = done(a, id);
    cr_assert_eq(r.err, SM_E_TOOLARGE, "%s", r.message);
    cr_assert_eq(r.kvs_count, 0);
    sm_coord_result_free(&r);
}

Test(embedded, directory_rejects_bad_values)
{
    struct sm_coord *a = harness_client(&h);
    struct sm_coord_dir d;
    cr_assert_eq(sm_coord_dir_init(&d, a, ""), SM_E_BADARG);
    cr_assert_eq(sm_coord_dir_init(&d, a, "a/b"), SM_E_BADARG);
    char longname[SM_COORD_CLUSTER_NAME_BYTES_MAX + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_eq(sm_coord_dir_init(&d, a, longname), SM_E_TOOLARGE);
    cr_assert_eq(sm_coord_dir_init(&d, a, "ok"), 0);
    struct sm_coord_kv kv = {.key = "/shardmart/ok/partitions/00003"};
    kv.key_len = strlen(kv.key);
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "{\"epoch\":1,\"primary\":\"a\"}",
        "{\"epoch\":0,\"primary\":\"a\",\"isr\":[\"a\"]}",
        "{\"epoch\":1,\"primary\":\"a\",\"isr\":[\"b\"]}",
        "{\"epoch\":1,\"primary\":\"a\",\"isr\":[\"a\",\"a\"]}",
        "{\"epoch\":1,\"primary\":\"a\",\"isr\":[\"a\",1]}",
        "{\"epoch\":\"1\",\"primary\":\"a\",\"isr\":[\"a\"]}",
        "{\"epoch\":1,\"primary\":\"a\",\"isr\":[\"a\"],\"x\":1}",
        "{\"epoch\":1,\"epoch\":2,\"primary\":\"a\",\"isr\":[\"a\"]}",
        "{\"epoch\":1,\"primary\":\"a/b\",\"isr\":[\"a/b\"]}",
        "{\"epoch\":1,\"primary\":\"a\",\"isr\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\",\"g\",\"h\"]}",
    };
    struct sm_coord_entry e;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kv.value = (uint8_t *)bad[i];
        kv.value_len = strlen(bad[i]);
        cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), SM_E_CORRUPT, "value %zu", i);
    }
    kv.value = (uint8_t *)"{\"epoch\":9,\"primary\":\"a\",\"isr\":[\"b\",\"a\"]}";
    kv.value_len = strlen((char *)kv.value);
    kv.mod_revision = 42;
    cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), 0);
    cr_assert_eq(e.partition.partition, 3);
    cr_assert_eq(e.partition.epoch, 9);
    cr_assert_eq(e.partition.mod_revision, 42);
    static const char *const bad_keys[] = {"/shardmart/ok/partitions/3",
                                           "/shardmart/ok/partitions/99999",
                                           "/shardmart/ok/partitions/0000x"};
    for (size_t i = 0; i < sizeof bad_keys / sizeof bad_keys[0]; i++) {
        kv.key = (char *)bad_keys[i];
        kv.key_len = strlen(kv.key);
        cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), SM_E_CORRUPT, "%s", kv.key);
    }
    kv.key = "/shardmart/other/meta";
    kv.key_len = strlen(kv.key);
    cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), SM_E_BADARG);
    kv.key = "/shardmart/ok/something-else";
    kv.key_len = strlen(kv.key);
    cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), 0);
    cr_assert_eq(e.kind, SM_COORD_ENTRY_OTHER);
    kv.key = "/shardmart/ok/members/x";
    kv.key_len = strlen(kv.key);
    kv.value = (uint8_t *)"{\"id\":\"y\",\"addr\":\"h:1\",\"zone\":\"\",\"weight\":1}";
    kv.value_len = strlen((char *)kv.value);
    cr_assert_eq(sm_coord_dir_decode(&d, &kv, false, &e), SM_E_CORRUPT, "key and id differ");

    /* Encoders refuse what decoders would. */
    char buf[1024];
    size_t len;
    struct sm_coord_partition p = {.epoch = 1, .primary = "a", .isr_count = 1, .isr = {"b"}};
    cr_assert_eq(sm_coord_partition_encode(&p, buf, sizeof buf, &len), SM_E_BADARG);
    struct sm_coord_member m = {.id = "n", .addr = "h:1", .weight = 0};
    cr_assert_eq(sm_coord_member_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    m.weight = SM_RING_WEIGHT_MAX;
    cr_assert_eq(sm_coord_member_encode(&m, buf, 8, &len), SM_E_TOOLARGE);
    cr_assert_eq(sm_coord_member_encode(&m, buf, sizeof buf, &len), 0);
    struct sm_coord_member back;
    cr_assert_eq(sm_coord_member_decode(buf, len, &back), 0);
    cr_assert_eq(back.weight, SM_RING_WEIGHT_MAX);
    struct sm_coord_meta meta = {.partitions = SM_PARTITIONS_MAX + 1, .replicas = 3};
    cr_assert_eq(sm_coord_meta_encode(&meta, buf, sizeof buf, &len), SM_E_BADARG);
    uint64_t id;
    cr_assert_eq(sm_coord_dir_join(&d, &m, 0, &id), SM_E_BADARG, "a member needs a lease");
}
