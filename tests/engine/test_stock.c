/* Unit tests of SKU commands: create, restock, adjust, read, and every error they return. */
#include "engine_harness.h"

Test(stock, create_and_read)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 2, 500));
    const struct engine_reply *r = read_cmd(&h, ENGINE_SKU_GET, "tv");
    cr_assert_eq(field(r, "available"), 10);
    cr_assert_eq(field(r, "reserved"), 0);
    cr_assert_eq(field(r, "sold"), 0);
    cr_assert_eq(field(r, "stocked"), 10);
    cr_assert_eq(field(r, "limit_per_user"), 2);
    cr_assert_eq(field(r, "price_cents"), 500);
    engine_free(&h.e);
}

Test(stock, create_existing_is_exists)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 0));
    assert_err(sku_create(&h, "tv", 5, 0, 0), SM_E_EXISTS);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 10);
    engine_free(&h.e);
}

Test(stock, create_past_skus_max_is_busy)
{
    struct harness h;
    harness_init(&h);
    char name[16];
    for (uint32_t i = 0; i < harness_config().skus_max; i++) {
        snprintf(name, sizeof name, "s%u", i);
        assert_ok(sku_create(&h, name, 1, 0, 0));
    }
    assert_err(sku_create(&h, "one-more", 1, 0, 0), SM_E_BUSY);
    assert_err(read_cmd(&h, ENGINE_SKU_GET, "one-more"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(stock, negative_arguments_do_not_encode_and_are_badarg_as_records)
{
    struct harness h;
    harness_init(&h);
    uint8_t buf[256];
    size_t len;
    struct engine_cmd c = {
        .type = ENGINE_SKU_CREATE, .request_id = K("r"), .key = K("x"), .num = -1};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    /* The same record built by hand still cannot do harm when applied. */
    c.num = 1;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), 0);
    buf[len - 24] = 0xff; /* quantity's top byte: a negative int64 */
    for (int i = 0; i < 8; i++)
        buf[len - 24 + i] = 0xff;
    assert_err(apply_raw(&h, buf, len), SM_E_BADARG);
    assert_err(read_cmd(&h, ENGINE_SKU_GET, "x"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(stock, restock_and_adjust)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 0));
    assert_int(sku_op(&h, ENGINE_SKU_RESTOCK, "tv", 5), 15);
    assert_int(sku_op(&h, ENGINE_SKU_ADJUST, "tv", 3), 12);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 12);
    assert_err(sku_op(&h, ENGINE_SKU_RESTOCK, "nope", 1), SM_E_NOTFOUND);
    assert_err(sku_op(&h, ENGINE_SKU_ADJUST, "nope", 1), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(stock, adjust_never_takes_reserved_or_sold)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 0));
    assert_int(place(&h, "o1", "u1", "tv", 7), 0);
    assert_err_msg(sku_op(&h, ENGINE_SKU_ADJUST, "tv", 4), SM_E_SOLDOUT, "tv");
    assert_int(sku_op(&h, ENGINE_SKU_ADJUST, "tv", 3), 0);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 7);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 7);
    engine_free(&h.e);
}

Test(stock, restock_overflow_is_refused)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", INT64_MAX - 1, 0, 0));
    assert_err(sku_op(&h, ENGINE_SKU_RESTOCK, "tv", 2), SM_E_OVERFLOW);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), INT64_MAX - 1);
    engine_free(&h.e);
}

Test(stock, zero_quantity_restock_is_badarg)
{
    struct harness h;
    harness_init(&h);
    uint8_t buf[64];
    size_t len;
    struct engine_cmd c = {.type = ENGINE_SKU_RESTOCK, .request_id = K("r"), .key = K("x")};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.type = ENGINE_SKU_ADJUST;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    engine_free(&h.e);
}

Test(stock, read_unknown_and_bad_key)
{
    struct harness h;
    harness_init(&h);
    assert_err(read_cmd(&h, ENGINE_SKU_GET, "nope"), SM_E_NOTFOUND);
    assert_err(read_cmd(&h, ENGINE_SKU_GET, ""), SM_E_BADARG);
    assert_err(read_cmd(&h, (enum engine_cmd_type)200, "x"), SM_E_UNKNOWN);
    engine_free(&h.e);
}

Test(stock, stats_count_tables)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 0));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0));
    assert_int(place(&h, "o1", "u1", "tv", 1), 0);
    const struct engine_reply *r = read_cmd(&h, ENGINE_STATS_GET, NULL);
    cr_assert_eq(field(r, "skus"), 1);
    cr_assert_eq(field(r, "accounts"), 1);
    cr_assert_eq(field(r, "orders"), 1);
    cr_assert_eq(field(r, "request_ids"), 3);
    cr_assert_eq(field(r, "last_index"), 3);
    engine_free(&h.e);
}

Test(stock, init_rejects_bad_config)
{
    struct engine e;
    struct engine_config c = harness_config();
    c.orders_max = 0;
    cr_assert_eq(engine_init(&e, &c), SM_E_BADARG);
    c = harness_config();
    c.order_retention_ms = -1;
    cr_assert_eq(engine_init(&e, &c), SM_E_BADARG);
    c = harness_config();
    c.locks.sessions_max = 0;
    cr_assert_eq(engine_init(&e, &c), SM_E_BADARG);
    c = harness_config();
    cr_assert_eq(engine_init(&e, &c), 0);
    cr_assert_gt(engine_memory_bytes(&c), 0);
    engine_free(&e);
}
