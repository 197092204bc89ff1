/* Unit tests of orders: place (all or nothing), pay, pay external, cancel, ship, complete,
 * refund, expiry on tick, retention, every illegal transition, every capacity limit. */
#include "engine_harness.h"

static void shop(struct harness *h)
{
    harness_init(h);
    assert_ok(sku_create(h, "tv", 10, 0, 300));
    assert_ok(sku_create(h, "radio", 5, 2, 100));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "buyer", 0));
    assert_ok(acct(h, ENGINE_ACCOUNT_OPEN, "shop", 0));
    assert_int(acct(h, ENGINE_ACCOUNT_DEPOSIT, "buyer", 10000), 10000);
}

Test(orders, place_reserves_and_totals)
{
    struct harness h;
    shop(&h);
    const char *skus[] = {"tv", "radio"};
    const int64_t qty[] = {2, 1};
    assert_int(place_n(&h, "o1", "u1", 5000, 2, skus, qty), 2 * 300 + 100);
    cr_assert_eq(sku_field(&h, "tv", "available"), 8);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 2);
    cr_assert_eq(sku_field(&h, "radio", "reserved"), 1);
    const struct engine_reply *r = read_cmd(&h, ENGINE_ORDER_GET, "o1");
    cr_assert_str_eq(field_str(r, "state"), "RESERVED");
    cr_assert_eq(field(r, "items"), 2);
    cr_assert_eq(field(r, "quantity"), 3);
    cr_assert_eq(field(r, "total_cents"), 700);
    engine_free(&h.e);
}

Test(orders, soldout_names_the_sku_and_reserves_nothing)
{
    struct harness h;
    shop(&h);
    const char *skus[] = {"tv", "radio"};
    const int64_t qty[] = {2, 6};
    assert_err_msg(place_n(&h, "o1", "u1", 5000, 2, skus, qty), SM_E_SOLDOUT, "radio");
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    cr_assert_eq(sku_field(&h, "radio", "available"), 5);
    assert_err(read_cmd(&h, ENGINE_ORDER_GET, "o1"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(orders, per_user_limit_counts_across_orders_and_is_given_back)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "radio", 1), 100);
    assert_int(place(&h, "o2", "u1", "radio", 1), 100);
    assert_err_msg(place(&h, "o3", "u1", "radio", 1), SM_E_LIMIT, "radio");
    assert_int(place(&h, "o4", "u2", "radio", 2), 200);
    assert_ok(order_op(&h, ENGINE_ORDER_CANCEL, "o1"));
    assert_int(place(&h, "o5", "u1", "radio", 1), 100);
    engine_free(&h.e);
}

Test(orders, limit_survives_completion_and_is_returned_by_refund)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "radio", 2), 200);
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    assert_err(place(&h, "o2", "u1", "radio", 1), SM_E_LIMIT);
    assert_ok(refund(&h, "o1", true));
    assert_int(place(&h, "o2", "u1", "radio", 1), 100);
    engine_free(&h.e);
}

Test(orders, place_errors)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    assert_err(place(&h, "o1", "u1", "tv", 1), SM_E_EXISTS);
    assert_err(place(&h, "o2", "u1", "nope", 1), SM_E_NOTFOUND);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 1);
    /* Bad shapes never become records. */
    uint8_t buf[SM_ENGINE_RECORD_BYTES_MAX];
    size_t len;
    struct engine_cmd c = {.type = ENGINE_ORDER_PLACE,
                           .request_id = K("r"),
                           .key = K("o9"),
                           .key2 = K("u"),
                           .num = 100,
                           .items_count = 0};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.items_count = SM_ORDER_ITEMS_MAX + 1;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.items_count = 2;
    c.items[0] = (struct engine_item){K("tv"), 1};
    c.items[1] = (struct engine_item){K("tv"), 1};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG, "duplicate SKU");
    c.items_count = 1;
    c.items[0].quantity = SM_ORDER_ITEM_QUANTITY_MAX + 1;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.items[0].quantity = 0;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.items[0].quantity = 1;
    c.num = 0;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG, "ttl 0");
    c.num = SM_ENGINE_TTL_MS_MAX + 1;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG, "ttl too long");
    c.num = 100;
    cr_assert_eq(engine_encode(&c, buf, 8, &len), SM_E_TOOLARGE);
    engine_free(&h.e);
}

Test(orders, sixty_four_items_fit)
{
    struct harness h;
    struct engine_config cfg = harness_config();
    cfg.skus_max = 64;
    harness_init_with(&h, &cfg);
    static char names[64][8];
    const char *skus[64];
    int64_t qty[64];
    for (int i = 0; i < 64; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        skus[i] = names[i];
        qty[i] = 1;
        assert_ok(sku_create(&h, names[i], 1, 0, i));
    }
    assert_int(place_n(&h, "big", "u", 100, 64, skus, qty), 64 * 63 / 2);
    cr_assert_eq(field(read_cmd(&h, ENGINE_ORDER_GET, "big"), "items"), 64);
    assert_ok(order_op(&h, ENGINE_ORDER_CANCEL, "big"));
    for (int i = 0; i < 64; i++)
        cr_assert_eq(sku_field(&h, names[i], "available"), 1);
    engine_free(&h.e);
}

Test(orders, total_overflow_is_refused)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "gold", 100, 0, INT64_MAX / 2));
    assert_err(place(&h, "o1", "u", "gold", 3), SM_E_OVERFLOW);
    cr_assert_eq(sku_field(&h, "gold", "reserved"), 0);
    engine_free(&h.e);
}

Test(orders, full_tables_are_busy_with_no_effect)
{
    struct harness h;
    struct engine_config cfg = harness_config();
    cfg.orders_max = 2;
    cfg.limit_rows_max = 1;
    cfg.item_chunks_max = 1;
    harness_init_with(&h, &cfg);
    assert_ok(sku_create(&h, "a", 100, 0, 0));
    assert_ok(sku_create(&h, "lim", 100, 5, 0));
    static char names[20][8];
    const char *skus[20];
    int64_t qty[20];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof names[i], "m%d", i);
        skus[i] = names[i];
        qty[i] = 1;
    }
    /* chunks: 10 items need 2 chunks of 8, only 1 exists */
    for (int i = 0; i < 10; i++)
        assert_ok(sku_create(&h, names[i], 5, 0, 0));
    assert_err(place_n(&h, "o1", "u", 100, 10, skus, qty), SM_E_BUSY);
    cr_assert_eq(sku_field(&h, "m0", "reserved"), 0);
    assert_int(place_n(&h, "o1", "u", 100, 9, skus, qty), 0);
    /* limit rows: one (user, SKU) row exists */
    assert_int(place(&h, "o2", "u1", "lim", 1), 0);
    assert_err(place(&h, "o3", "u2", "lim", 1), SM_E_BUSY);
    /* orders: two exist */
    assert_err(place(&h, "o3", "u2", "a", 1), SM_E_BUSY);
    cr_assert_eq(sku_field(&h, "a", "reserved"), 0);
    /* BUSY is not remembered: after a cancel and retirement the same request succeeds. */
    struct engine_cmd c = {.type = ENGINE_ORDER_PLACE,
                           .request_id = K("again"),
                           .key = K("o3"),
                           .key2 = K("u2"),
                           .num = 100,
                           .items_count = 1};
    c.items[0] = (struct engine_item){K("a"), 1};
    assert_err(run(&h, &c), SM_E_BUSY);
    assert_ok(order_op(&h, ENGINE_ORDER_CANCEL, "o2"));
    tick(&h, h.now_ms + cfg.order_retention_ms + 1);
    assert_int(run(&h, &c), 0);
    engine_free(&h.e);
}

Test(orders, pay_moves_money_and_stock)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 2), 600);
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    cr_assert_eq(balance(&h, "buyer"), 9400);
    cr_assert_eq(balance(&h, "shop"), 600);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 0);
    cr_assert_eq(sku_field(&h, "tv", "sold"), 2);
    cr_assert_str_eq(order_state(&h, "o1"), "PAID");
    assert_err_msg(pay(&h, "o1", "buyer", "shop"), SM_E_STATE, "PAID");
    engine_free(&h.e);
}

Test(orders, pay_errors_change_nothing)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 10), 3000);
    assert_err(pay(&h, "o1", "nobody", "shop"), SM_E_NOTFOUND);
    assert_err(pay(&h, "o1", "buyer", "nobody"), SM_E_NOTFOUND);
    assert_err(pay(&h, "nope", "buyer", "shop"), SM_E_NOTFOUND);
    assert_int(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "buyer", 8000), 2000);
    assert_err(pay(&h, "o1", "buyer", "shop"), SM_E_NOFUNDS);
    cr_assert_eq(balance(&h, "buyer"), 2000);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 10);
    cr_assert_str_eq(order_state(&h, "o1"), "RESERVED");
    uint8_t buf[512];
    size_t len;
    struct engine_cmd c = {.type = ENGINE_ORDER_PAY,
                           .request_id = K("r"),
                           .key = K("o1"),
                           .key2 = K("buyer"),
                           .key3 = K("buyer")};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    engine_free(&h.e);
}

Test(orders, overdraft_lets_a_buyer_go_negative_up_to_its_limit)
{
    struct harness h;
    shop(&h);
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "credit", 500));
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    assert_int(place(&h, "o2", "u1", "tv", 1), 300);
    assert_ok(pay(&h, "o1", "credit", "shop"));
    cr_assert_eq(balance(&h, "credit"), -300);
    assert_err(pay(&h, "o2", "credit", "shop"), SM_E_NOFUNDS);
    engine_free(&h.e);
}

Test(orders, pay_after_the_deadline_is_refused_then_expired_by_tick)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 3), 900); /* deadline now + 5000 */
    h.now_ms += 5000;
    assert_ok(pay(&h, "o1", "buyer", "shop")); /* at the deadline: still in time */
    assert_int(place(&h, "o2", "u1", "tv", 3), 900);
    h.now_ms += 5001;
    assert_err_msg(pay(&h, "o2", "buyer", "shop"), SM_E_STATE, "EXPIRED");
    cr_assert_str_eq(order_state(&h, "o2"), "RESERVED");
    const struct engine_reply *r = tick(&h, h.now_ms);
    cr_assert_eq(field(r, "orders_expired"), 1);
    cr_assert_str_eq(order_state(&h, "o2"), "EXPIRED");
    cr_assert_eq(sku_field(&h, "tv", "available"), 7);
    /* Released exactly once: another tick and a cancel change nothing. */
    r = tick(&h, h.now_ms + 1);
    cr_assert_eq(field(r, "orders_expired"), 0);
    assert_err_msg(order_op(&h, ENGINE_ORDER_CANCEL, "o2"), SM_E_STATE, "EXPIRED");
    cr_assert_eq(sku_field(&h, "tv", "available"), 7);
    engine_free(&h.e);
}

Test(orders, pay_external_records_a_reference)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    struct engine_cmd c = {
        .type = ENGINE_ORDER_PAY_EXTERNAL, .key = K("o1"), .key2 = K("stripe:ch_1")};
    assert_ok(run(&h, &c));
    cr_assert_eq(field(read_cmd(&h, ENGINE_ORDER_GET, "o1"), "paid_external"), 1);
    cr_assert_eq(balance(&h, "buyer"), 10000);
    cr_assert_eq(sku_field(&h, "tv", "sold"), 1);
    assert_ok(refund(&h, "o1", false)); /* money is returned outside; stock written off */
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 9);
    cr_assert_eq(sku_field(&h, "tv", "sold"), 0);
    engine_free(&h.e);
}

Test(orders, ship_complete_and_the_state_machine)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    assert_err_msg(order_op(&h, ENGINE_ORDER_SHIP, "o1"), SM_E_STATE, "RESERVED");
    assert_err_msg(order_op(&h, ENGINE_ORDER_COMPLETE, "o1"), SM_E_STATE, "RESERVED");
    assert_err_msg(refund(&h, "o1", true), SM_E_STATE, "RESERVED");
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    assert_err_msg(order_op(&h, ENGINE_ORDER_CANCEL, "o1"), SM_E_STATE, "PAID");
    assert_err_msg(order_op(&h, ENGINE_ORDER_COMPLETE, "o1"), SM_E_STATE, "PAID");
    assert_ok(order_op(&h, ENGINE_ORDER_SHIP, "o1"));
    cr_assert_str_eq(order_state(&h, "o1"), "SHIPPED");
    assert_err_msg(order_op(&h, ENGINE_ORDER_SHIP, "o1"), SM_E_STATE, "SHIPPED");
    assert_err_msg(refund(&h, "o1", true), SM_E_STATE, "SHIPPED");
    assert_err_msg(pay(&h, "o1", "buyer", "shop"), SM_E_STATE, "SHIPPED");
    assert_ok(order_op(&h, ENGINE_ORDER_COMPLETE, "o1"));
    cr_assert_str_eq(order_state(&h, "o1"), "COMPLETED");
    assert_err_msg(order_op(&h, ENGINE_ORDER_COMPLETE, "o1"), SM_E_STATE, "COMPLETED");
    assert_err_msg(order_op(&h, ENGINE_ORDER_CANCEL, "o1"), SM_E_STATE, "COMPLETED");
    assert_err(order_op(&h, ENGINE_ORDER_SHIP, "nope"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(orders, cancel_releases_and_is_final)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 4), 1200);
    assert_ok(order_op(&h, ENGINE_ORDER_CANCEL, "o1"));
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    cr_assert_str_eq(order_state(&h, "o1"), "CANCELLED");
    assert_err_msg(order_op(&h, ENGINE_ORDER_CANCEL, "o1"), SM_E_STATE, "CANCELLED");
    assert_err_msg(pay(&h, "o1", "buyer", "shop"), SM_E_STATE, "CANCELLED");
    engine_free(&h.e);
}

Test(orders, refund_restock_or_write_off)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 2), 600);
    assert_int(place(&h, "o2", "u1", "tv", 1), 300);
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    assert_ok(pay(&h, "o2", "buyer", "shop"));
    assert_ok(refund(&h, "o1", true));
    cr_assert_eq(balance(&h, "buyer"), 9700);
    cr_assert_eq(sku_field(&h, "tv", "available"), 9);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 10);
    assert_ok(refund(&h, "o2", false));
    cr_assert_eq(sku_field(&h, "tv", "available"), 9);
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 9);
    cr_assert_eq(balance(&h, "buyer"), 10000);
    cr_assert_str_eq(order_state(&h, "o2"), "REFUNDED");
    assert_err_msg(refund(&h, "o2", true), SM_E_STATE, "REFUNDED");
    uint8_t buf[512];
    size_t len;
    struct engine_cmd c = {
        .type = ENGINE_ORDER_REFUND, .request_id = K("r"), .key = K("o1"), .num = 2};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    engine_free(&h.e);
}

Test(orders, refund_needs_the_merchants_funds)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    assert_int(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "shop", 300), 0);
    assert_err(refund(&h, "o1", true), SM_E_NOFUNDS);
    cr_assert_str_eq(order_state(&h, "o1"), "PAID");
    cr_assert_eq(sku_field(&h, "tv", "sold"), 1);
    engine_free(&h.e);
}

Test(orders, finished_orders_are_dropped_after_retention)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300);
    assert_ok(order_op(&h, ENGINE_ORDER_CANCEL, "o1"));
    int64_t t = h.now_ms;
    cr_assert_eq(field(tick(&h, t + 1000), "retired"), 0); /* at the end of retention */
    cr_assert_str_eq(order_state(&h, "o1"), "CANCELLED");
    cr_assert_eq(field(tick(&h, t + 1001), "retired"), 1);
    assert_err(read_cmd(&h, ENGINE_ORDER_GET, "o1"), SM_E_NOTFOUND);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300); /* the id is free again */
    engine_free(&h.e);
}

Test(orders, time_never_moves_backwards)
{
    struct harness h;
    shop(&h);
    assert_int(place(&h, "o1", "u1", "tv", 1), 300); /* deadline 1000 + 5000 */
    h.now_ms = 10000;
    tick(&h, 10000);
    cr_assert_str_eq(order_state(&h, "o1"), "EXPIRED");
    h.now_ms = 10; /* a new leader's clock behind the old one */
    assert_int(place(&h, "o2", "u1", "tv", 1), 300);
    tick(&h, 10);
    cr_assert_eq(engine_now_ms(&h.e), 10000);
    tick(&h, 15001);
    cr_assert_str_eq(order_state(&h, "o2"), "EXPIRED"); /* deadline was 10000 + 5000 */
    engine_free(&h.e);
}
