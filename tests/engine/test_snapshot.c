/* Unit tests of engine snapshots: round trip to the same bytes, checksum, version and config
 * checks, every truncation refused, a lying snapshot refused by engine_check, and engine_check
 * itself catching broken invariants. */
#include "engine/engine_internal.h"
#include "engine_harness.h"

static void busy_state(struct harness *h)
{
    harness_init(h);
    assert_ok(sku_create(h, "tv", 10, 3, 300));
    assert_ok(sku_create(h, "radio", 10, 0, 100));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "b", 100));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "m", 0));
    assert_int(acct(h, ENGINE_ACCOUNT_DEPOSIT, "b", 5000), 5000);
    const char *skus[] = {"tv", "radio"};
    const int64_t qty[] = {1, 2};
    assert_int(place_n(h, "o1", "u1", 500, 2, skus, qty), 500);
    assert_int(place(h, "o2", "u1", "tv", 1), 300);
    assert_int(place(h, "o3", "u2", "radio", 1), 100);
    assert_ok(pay(h, "o2", "b", "m"));
    assert_ok(order_op(h, ENGINE_ORDER_CANCEL, "o3"));
    assert_ok(hold_prepare(h, "t1", "radio", 2, 300));
    struct engine_cmd a = {.type = ENGINE_HOLD_ABORT, .key = K("t2")};
    assert_ok(run(h, &a));
    struct engine_cmd s = {.type = ENGINE_LOCK_SESSION_OPEN, .key = K("sess"), .num = 10000};
    assert_int(run(h, &s), h->now_ms + 10000);
    struct engine_cmd l = {.type = ENGINE_LOCK_ACQUIRE,
                           .key = K("sess"),
                           .key2 = K("L"),
                           .lock_type = LOCKS_EXCLUSIVE,
                           .owner = 1};
    run(h, &l);
    cr_assert_str_eq(field_str(&h->out.reply, "status"), "GRANTED");
}

Test(snapshot, load_of_save_saves_the_same_bytes)
{
    struct harness h;
    busy_state(&h);
    struct sm_wbuf a, b;
    harness_save(&h.e, &a);
    struct engine e2;
    struct engine_config cfg;
    cr_assert_eq(engine_snapshot_config(a.data, a.len, &cfg), 0);
    cr_assert_eq(engine_init(&e2, &cfg), 0);
    cr_assert_eq(engine_load(&e2, a.data, a.len), 0);
    harness_save(&e2, &b);
    cr_assert_eq(a.len, b.len);
    cr_assert(memcmp(a.data, b.data, a.len) == 0);
    char why[200];
    cr_assert(engine_check(&e2, why, sizeof why), "%s", why);
    sm_wbuf_free(&a);
    sm_wbuf_free(&b);
    engine_free(&e2);
    engine_free(&h.e);
}

Test(snapshot, checksum_version_config_and_truncation)
{
    struct harness h;
    busy_state(&h);
    struct sm_wbuf a;
    harness_save(&h.e, &a);
    struct engine e2;
    struct engine_config cfg = harness_config();
    cr_assert_eq(engine_init(&e2, &cfg), 0);
    a.data[40] ^= 1;
    cr_assert_eq(engine_load(&e2, a.data, a.len), SM_E_CORRUPT);
    a.data[40] ^= 1;
    for (size_t cut = 0; cut < a.len; cut += 7)
        cr_assert_eq(engine_load(&e2, a.data, cut), SM_E_CORRUPT, "cut %zu", cut);
    engine_free(&e2);
    cfg.orders_max++;
    cr_assert_eq(engine_init(&e2, &cfg), 0);
    cr_assert_eq(engine_load(&e2, a.data, a.len), SM_E_BADARG);
    engine_free(&e2);
    /* A failed load leaves an empty engine. */
    cfg = harness_config();
    cr_assert_eq(engine_init(&e2, &cfg), 0);
    cr_assert_eq(engine_load(&e2, a.data, a.len), 0);
    a.data[a.len - 1] ^= 0x40;
    cr_assert_eq(engine_load(&e2, a.data, a.len), SM_E_CORRUPT);
    cr_assert_eq(engine_last_index(&e2), 0);
    sm_wbuf_free(&a);
    engine_free(&e2);
    engine_free(&h.e);
}

/* Re-seals a snapshot after an edit, so only the loader's validation stands in the way. */
static void reseal(struct sm_wbuf *w);
#include <xxhash.h>
static void reseal(struct sm_wbuf *w)
{
    uint64_t sum = XXH3_64bits(w->data, w->len - 8);
    memcpy(w->data + w->len - 8, &sum, 8);
}

Test(snapshot, a_well_formed_but_lying_snapshot_is_refused)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 0));
    struct sm_wbuf a;
    harness_save(&h.e, &a);
    /* The SKU row: after the header, config, state and the count: str8 "tv" then stocked. */
    size_t sku_at = 8 + 4 + 7 * 4 + 2 * 8 + 6 * 4 + 8 * 4 + 4;
    cr_assert_eq(a.data[sku_at], 2);
    a.data[sku_at + 3 + 8] = 9; /* available 9 while stocked stays 10 */
    reseal(&a);
    struct engine e2;
    struct engine_config cfg = harness_config();
    cr_assert_eq(engine_init(&e2, &cfg), 0);
    cr_assert_eq(engine_load(&e2, a.data, a.len), SM_E_CORRUPT);
    sm_wbuf_free(&a);
    engine_free(&e2);
    engine_free(&h.e);
}

Test(snapshot, check_catches_broken_invariants)
{
    struct harness h;
    busy_state(&h);
    char why[200];
    cr_assert(engine_check(&h.e, why, sizeof why));
    h.e.skus[0].available++;
    cr_assert(!engine_check(&h.e, why, sizeof why));
    cr_assert(strstr(why, "stocked") != NULL, "%s", why);
    h.e.skus[0].available--;
    h.e.skus[0].available--;
    h.e.skus[0].reserved++;
    cr_assert(!engine_check(&h.e, why, sizeof why));
    h.e.skus[0].available++;
    h.e.skus[0].reserved--;
    h.e.accounts[0].balance_cents++;
    cr_assert(!engine_check(&h.e, why, sizeof why));
    cr_assert(strstr(why, "money") != NULL, "%s", why);
    h.e.accounts[0].balance_cents--;
    h.e.timers[0].at_ms++;
    cr_assert(!engine_check(&h.e, why, sizeof why));
    h.e.timers[0].at_ms--;
    cr_assert(engine_check(&h.e, why, sizeof why), "%s", why);
    engine_free(&h.e);
}
