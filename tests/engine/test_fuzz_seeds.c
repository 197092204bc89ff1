/*
 * The seed corpora of fuzz/fuzz_engine_record.c and fuzz/fuzz_engine_snapshot.c, made from
 * scenarios that reach every command, error and state. They double as golden vectors of the
 * record and snapshot formats: the checked-in files must equal what these scenarios produce now,
 * so a format change cannot slip in unnoticed. To regenerate after a deliberate change:
 *   SHARDMART_WRITE_SEEDS=1 ./engine_test_fuzz_seeds   (from the build directory)
 */
#include <endian.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_harness.h"

static struct engine_config seed_config(void)
{
    /* Matches CONFIG in fuzz/fuzz_engine_record.c, so record seeds see the same tables. */
    return (struct engine_config){.skus_max = 8,
                                  .orders_max = 16,
                                  .holds_max = 8,
                                  .accounts_max = 8,
                                  .limit_rows_max = 8,
                                  .item_chunks_max = 8,
                                  .request_ids_max = 16,
                                  .order_retention_ms = 100,
                                  .hold_retention_ms = 100,
                                  .locks = {.sessions_max = 4,
                                            .locks_max = 4,
                                            .holds_max = 8,
                                            .waiters_max = 8,
                                            .permits_max = 4,
                                            .reentry_max = 3}};
}

static void scenario_shop(struct harness *h)
{
    assert_ok(sku_create(h, "tv", 10, 2, 300));
    assert_ok(sku_create(h, "radio", 5, 0, 100));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "buyer", 100));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "shop", 0));
    assert_int(acct(h, ENGINE_ACCOUNT_DEPOSIT, "buyer", 5000), 5000);
    const char *skus[] = {"tv", "radio"};
    const int64_t qty[] = {1, 2};
    assert_int(place_n(h, "o1", "u1", 500, 2, skus, qty), 500);
    assert_ok(pay(h, "o1", "buyer", "shop"));
    assert_ok(order_op(h, ENGINE_ORDER_SHIP, "o1"));
    assert_ok(order_op(h, ENGINE_ORDER_COMPLETE, "o1"));
    assert_int(place(h, "o2", "u1", "tv", 1), 300);
    assert_err(place(h, "o3", "u1", "tv", 1), SM_E_LIMIT);
    assert_ok(pay(h, "o2", "buyer", "shop"));
    assert_ok(refund(h, "o2", true));
    assert_int(place(h, "o4", "u2", "radio", 3), 300);
    assert_ok(order_op(h, ENGINE_ORDER_CANCEL, "o4"));
    assert_int(place(h, "o5", "u2", "radio", 1), 100);
    struct engine_cmd ext = {.type = ENGINE_ORDER_PAY_EXTERNAL, .key = K("o5"), .key2 = K("ref")};
    assert_ok(run(h, &ext));
    assert_ok(refund(h, "o5", false));
    /* The refund of an order paid across partitions: only of one paid externally. */
    assert_int(place(h, "o7", "u3", "radio", 1), 100);
    struct engine_cmd xr = {.type = ENGINE_ORDER_REFUND_XPAY,
                            .key = K("o7"),
                            .key2 = K("buyer"),
                            .key3 = K("shop"),
                            .num = 1};
    ext.key = K("o7");
    ext.request_id = (struct engine_key){0};
    assert_ok(run(h, &ext));
    assert_ok(run(h, &xr));
    assert_int(place(h, "o6", "u3", "radio", 1), 100);
    assert_int(sku_op(h, ENGINE_SKU_RESTOCK, "radio", 4), 5);
    assert_int(sku_op(h, ENGINE_SKU_ADJUST, "radio", 1), 4);
    assert_ok(transfer(h, "shop", "buyer", 100));
    assert_int(acct(h, ENGINE_ACCOUNT_WITHDRAW, "buyer", 50), 4550);
    tick(h, h->now_ms + 600);
    tick(h, h->now_ms + 600);
}

static void scenario_holds(struct harness *h)
{
    assert_ok(sku_create(h, "tv", 10, 0, 0));
    assert_ok(hold_prepare(h, "t1", "tv", 2, 300));
    assert_ok(hold_prepare(h, "t2", "tv", 2, 300));
    struct engine_cmd c = {.type = ENGINE_HOLD_COMMIT, .key = K("t1")};
    assert_ok(run(h, &c));
    struct engine_cmd a = {.type = ENGINE_HOLD_ABORT, .key = K("t3")};
    assert_ok(run(h, &a));
    assert_err(hold_prepare(h, "t3", "tv", 1, 300), SM_E_STATE);
    /* Holds that carry a user: the per-user limit of "cam" is counted, refused, given back. */
    assert_ok(sku_create(h, "cam", 5, 2, 0));
    struct engine_cmd u = {.type = ENGINE_HOLD_PREPARE_USER,
                           .key = K("t4"),
                           .key2 = K("u1"),
                           .num = 300,
                           .items_count = 1};
    u.items[0] = (struct engine_item){.sku = K("cam"), .quantity = 2};
    assert_ok(run(h, &u));
    u.key = K("t5");
    u.request_id = (struct engine_key){0};
    assert_err(run(h, &u), SM_E_LIMIT);
    struct engine_cmd a4 = {.type = ENGINE_HOLD_ABORT, .key = K("t4")};
    assert_ok(run(h, &a4));
    u.request_id = (struct engine_key){0};
    assert_ok(run(h, &u));
    struct engine_cmd c5 = {.type = ENGINE_HOLD_COMMIT, .key = K("t5")};
    assert_ok(run(h, &c5));
    struct engine_cmd r5 = {.type = ENGINE_HOLD_REFUND, .key = K("t5"), .num = 1};
    assert_ok(run(h, &r5));
    tick(h, h->now_ms + 400);
}

static void scenario_locks(struct harness *h)
{
    struct engine_cmd c = {.type = ENGINE_LOCK_SESSION_OPEN, .key = K("s1"), .num = 1000};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_SESSION_OPEN, .key = K("s2"), .num = 5000};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_ACQUIRE,
                            .key = K("s1"),
                            .key2 = K("L"),
                            .lock_type = LOCKS_EXCLUSIVE,
                            .owner = 1,
                            .reentrant = true};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_ACQUIRE,
                            .key = K("s2"),
                            .key2 = K("L"),
                            .lock_type = LOCKS_EXCLUSIVE,
                            .owner = 2,
                            .num = 3000,
                            .waiter_id = 9};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_ACQUIRE,
                            .key = K("s2"),
                            .key2 = K("S"),
                            .lock_type = LOCKS_PERMIT,
                            .permits = 2,
                            .num2 = 500};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_ACQUIRE,
                            .key = K("s2"),
                            .key2 = K("R"),
                            .lock_type = LOCKS_READ,
                            .owner = 3};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_HEARTBEAT, .key = K("s2")};
    run(h, &c);
    c = (struct engine_cmd){
        .type = ENGINE_LOCK_RENEW, .key = K("s1"), .key2 = K("L"), .owner = 1, .num = 700};
    run(h, &c);
    c = (struct engine_cmd){.type = ENGINE_LOCK_CANCEL, .key = K("s2"), .waiter_id = 77};
    run(h, &c);
    c = (struct engine_cmd){
        .type = ENGINE_LOCK_RELEASE, .key = K("s1"), .key2 = K("L"), .owner = 1};
    run(h, &c);
    tick(h, h->now_ms + 2000);
    c = (struct engine_cmd){.type = ENGINE_LOCK_SESSION_CLOSE, .key = K("s2")};
    run(h, &c);
}

typedef void (*scenario_fn)(struct harness *h);
static const scenario_fn scenarios[] = {scenario_shop, scenario_holds, scenario_locks};
#define SCENARIOS (sizeof scenarios / sizeof scenarios[0])

/* Runs scenario i; fills the record stream and the snapshot of the state at its end. */
static void produce(size_t i, struct sm_wbuf *records, struct sm_wbuf *snapshot)
{
    static struct harness h;
    struct engine_config cfg = seed_config();
    harness_init_with(&h, &cfg);
    sm_wbuf_init(records);
    h.log = records;
    scenarios[i](&h);
    harness_save(&h.e, snapshot);
    engine_free(&h.e);
}

static void check_or_write(const char *target, size_t i, const struct sm_wbuf *w, bool write)
{
    const char *src = getenv("SHARDMART_SOURCE_DIR");
    cr_assert(src != NULL, "SHARDMART_SOURCE_DIR is set by CTest");
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/%s/seed-%zu", src, target, i);
    if (write) {
        FILE *f = fopen(path, "wb");
        cr_assert(f != NULL, "%s", path);
        cr_assert_eq(fwrite(w->data, 1, w->len, f), w->len);
        fclose(f);
        return;
    }
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "missing seed %s (regenerate: see the top of this file)", path);
    uint8_t *buf = malloc(w->len + 1);
    size_t n = fread(buf, 1, w->len + 1, f);
    fclose(f);
    cr_assert(n == w->len && memcmp(buf, w->data, n) == 0,
              "%s differs from what the scenario produces: the format changed", path);
    free(buf);
}

Test(fuzz_seeds, checked_in_seeds_match_the_scenarios)
{
    bool write = getenv("SHARDMART_WRITE_SEEDS") != NULL;
    for (size_t i = 0; i < SCENARIOS; i++) {
        struct sm_wbuf records, snapshot;
        produce(i, &records, &snapshot);
        check_or_write("fuzz_engine_record", i, &records, write);
        check_or_write("fuzz_engine_snapshot", i, &snapshot, write);
        sm_wbuf_free(&records);
        sm_wbuf_free(&snapshot);
    }
}

/* A version 1 snapshot (before holds carried a user), kept in the corpus as v1-seed-1: it still
 * loads, its holds without a user, and saves as the current version. */
Test(fuzz_seeds, a_version_1_snapshot_still_loads)
{
    const char *src = getenv("SHARDMART_SOURCE_DIR");
    cr_assert(src != NULL, "SHARDMART_SOURCE_DIR is set by CTest");
    char path[1024];
    snprintf(path, sizeof path, "%s/fuzz/corpus/fuzz_engine_snapshot/v1-seed-1", src);
    FILE *f = fopen(path, "rb");
    cr_assert(f != NULL, "%s", path);
    static uint8_t buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint32_t version;
    memcpy(&version, buf + 8, 4);
    cr_assert_eq(le32toh(version), 1);
    struct harness h;
    struct engine_config cfg = seed_config();
    harness_init_with(&h, &cfg);
    cr_assert_eq(engine_load(&h.e, buf, n), 0);
    struct sm_wbuf w;
    harness_save(&h.e, &w);
    memcpy(&version, w.data + 8, 4);
    cr_assert_eq(le32toh(version), 2);
    struct harness h2;
    harness_init_with(&h2, &cfg);
    cr_assert_eq(engine_load(&h2.e, w.data, w.len), 0);
    sm_wbuf_free(&w);
    engine_free(&h.e);
    engine_free(&h2.e);
}
