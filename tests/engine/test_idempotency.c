/* Unit tests of request-id idempotency (replay, mismatch, the ring bound, what is not
 * remembered) and of the record decoder (every truncation, trailing bytes, unknown types). */
#include "engine_harness.h"

static const struct engine_reply *deposit_as(struct harness *h, const char *req, int64_t amount)
{
    struct engine_cmd c = {
        .type = ENGINE_ACCOUNT_DEPOSIT, .request_id = K(req), .key = K("a"), .num = amount};
    return run(h, &c);
}

Test(idempotency, replay_returns_the_first_reply_and_changes_nothing)
{
    struct harness h;
    harness_init(&h);
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0));
    assert_int(deposit_as(&h, "pay-1", 100), 100);
    cr_assert(!h.out.reply.replayed);
    assert_int(deposit_as(&h, "pay-1", 100), 100);
    cr_assert(h.out.reply.replayed);
    cr_assert_eq(balance(&h, "a"), 100);
    assert_err(deposit_as(&h, "pay-1", 200), SM_E_IDEMPOTENCY);
    cr_assert_eq(balance(&h, "a"), 100);
    engine_free(&h.e);
}

Test(idempotency, errors_are_replayed_too_with_their_message)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 1, 0, 0));
    struct engine_cmd c = {.type = ENGINE_ORDER_PLACE,
                           .request_id = K("r1"),
                           .key = K("o1"),
                           .key2 = K("u"),
                           .num = 100,
                           .items_count = 1};
    c.items[0] = (struct engine_item){K("tv"), 2};
    assert_err_msg(run(&h, &c), SM_E_SOLDOUT, "tv");
    assert_int(sku_op(&h, ENGINE_SKU_RESTOCK, "tv", 5), 6);
    assert_err_msg(run(&h, &c), SM_E_SOLDOUT, "tv"); /* the first reply, though stock is back */
    cr_assert(h.out.reply.replayed);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 0);
    engine_free(&h.e);
}

Test(idempotency, ids_are_forgotten_after_request_ids_max_newer_mutations)
{
    struct harness h;
    harness_init(&h);
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0));
    assert_int(deposit_as(&h, "first", 1), 1);
    for (uint32_t i = 0; i < harness_config().request_ids_max - 1; i++)
        assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "a", 1), 2 + i);
    assert_int(deposit_as(&h, "first", 1), 1); /* still remembered (64th newest): first reply */
    cr_assert(h.out.reply.replayed);
    assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "a", 1), 65);
    assert_int(deposit_as(&h, "first", 1), 66); /* forgotten: applied again */
    cr_assert(!h.out.reply.replayed);
    cr_assert_eq(field(read_cmd(&h, ENGINE_STATS_GET, NULL), "request_ids"), 64);
    engine_free(&h.e);
}

Test(idempotency, every_mutation_type_replays)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 0, 5));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "b", 0));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "m", 0));
    assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "b", 100), 100);
    struct engine_cmd cmds[] = {
        {.type = ENGINE_SKU_CREATE, .key = K("radio"), .num = 3},
        {.type = ENGINE_SKU_RESTOCK, .key = K("tv"), .num = 1},
        {.type = ENGINE_SKU_ADJUST, .key = K("tv"), .num = 1},
        {.type = ENGINE_ORDER_PLACE, .key = K("o1"), .key2 = K("u"), .num = 100, .items_count = 1},
        {.type = ENGINE_ORDER_PAY, .key = K("o1"), .key2 = K("b"), .key3 = K("m")},
        {.type = ENGINE_ORDER_SHIP, .key = K("o1")},
        {.type = ENGINE_ORDER_COMPLETE, .key = K("o1")},
        {.type = ENGINE_ORDER_PLACE, .key = K("o2"), .key2 = K("u"), .num = 100, .items_count = 1},
        {.type = ENGINE_ORDER_PAY_EXTERNAL, .key = K("o2"), .key2 = K("ref")},
        {.type = ENGINE_ORDER_REFUND, .key = K("o2"), .num = 1},
        {.type = ENGINE_ORDER_PLACE, .key = K("o3"), .key2 = K("u"), .num = 100, .items_count = 1},
        {.type = ENGINE_ORDER_CANCEL, .key = K("o3")},
        {.type = ENGINE_HOLD_PREPARE, .key = K("t1"), .num = 100, .items_count = 1},
        {.type = ENGINE_HOLD_COMMIT, .key = K("t1")},
        {.type = ENGINE_HOLD_ABORT, .key = K("t2")},
        {.type = ENGINE_ACCOUNT_OPEN, .key = K("c")},
        {.type = ENGINE_ACCOUNT_DEPOSIT, .key = K("c"), .num = 7},
        {.type = ENGINE_ACCOUNT_WITHDRAW, .key = K("c"), .num = 2},
        {.type = ENGINE_ACCOUNT_TRANSFER, .key = K("c"), .key2 = K("b"), .num = 1},
    };
    char req[16];
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        cmds[i].items[0] = (struct engine_item){K("tv"), 1};
        snprintf(req, sizeof req, "q%zu", i);
        cmds[i].request_id = K(req);
        struct engine_reply first = *run(&h, &cmds[i]);
        cr_assert_neq(first.kind, ENGINE_REPLY_ERR, "cmd %zu: %s", i, sm_errcode(first.err));
        struct sm_wbuf before, after;
        harness_save(&h.e, &before);
        const struct engine_reply *again = run(&h, &cmds[i]);
        cr_assert(again->replayed);
        cr_assert_eq(again->kind, first.kind);
        cr_assert_eq(again->value, first.value);
        harness_save(&h.e, &after);
        /* Only the applied index moves (offset of last_index in the stream: 12 + config). */
        cr_assert_eq(before.len, after.len);
        size_t index_at = 8 + 4 + 7 * 4 + 2 * 8 + 6 * 4;
        cr_assert(memcmp(before.data + index_at + 8, after.data + index_at + 8,
                         before.len - index_at - 16) == 0,
                  "cmd %zu changed state on replay", i);
        sm_wbuf_free(&before);
        sm_wbuf_free(&after);
    }
    engine_free(&h.e);
}

Test(records, encode_decode_round_trip)
{
    struct engine_cmd c = {.type = ENGINE_ORDER_PLACE,
                           .request_id = K("req"),
                           .key = K("o1"),
                           .key2 = K("user"),
                           .num = 1234,
                           .items_count = 2};
    c.items[0] = (struct engine_item){K("tv"), 3};
    c.items[1] = (struct engine_item){K("radio"), 1000000000};
    uint8_t buf[512];
    size_t len;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), 0);
    struct engine_cmd d;
    cr_assert_eq(engine_decode(buf, len, &d), 0);
    cr_assert_eq(d.type, ENGINE_ORDER_PLACE);
    cr_assert_eq(d.num, 1234);
    cr_assert_eq(d.items_count, 2);
    cr_assert_eq(d.items[1].quantity, 1000000000);
    cr_assert(d.key2.len == 4 && memcmp(d.key2.ptr, "user", 4) == 0);
    /* The documented example: SKU_RESTOCK of "tv" by 5 under request id "r1". */
    struct engine_cmd r = {
        .type = ENGINE_SKU_RESTOCK, .request_id = K("r1"), .key = K("tv"), .num = 5};
    cr_assert_eq(engine_encode(&r, buf, sizeof buf, &len), 0);
    const uint8_t want[] = {2, 2, 'r', '1', 2, 't', 'v', 5, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(len, sizeof want);
    cr_assert(memcmp(buf, want, len) == 0);
}

Test(records, every_truncation_and_extension_is_rejected)
{
    struct engine_cmd c = {.type = ENGINE_LOCK_ACQUIRE,
                           .request_id = K("req"),
                           .key = K("s"),
                           .key2 = K("lock"),
                           .lock_type = LOCKS_EXCLUSIVE,
                           .owner = 7,
                           .num = 10,
                           .waiter_id = 3,
                           .reentrant = true};
    uint8_t buf[512];
    size_t len;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), 0);
    struct engine_cmd d;
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(engine_decode(buf, cut, &d), SM_E_BADARG, "cut at %zu", cut);
    buf[len] = 0;
    cr_assert_eq(engine_decode(buf, len + 1, &d), SM_E_BADARG);
    cr_assert_eq(engine_decode(buf, len, &d), 0);
    cr_assert(d.reentrant && d.owner == 7 && d.waiter_id == 3);
    buf[len - 1] = 2; /* reentrant must be 0 or 1 */
    cr_assert_eq(engine_decode(buf, len, &d), SM_E_BADARG);
}

Test(records, unknown_types_reads_and_bad_keys_are_rejected)
{
    struct engine_cmd d;
    const uint8_t unknown[] = {99, 1, 'r'};
    cr_assert_eq(engine_decode(unknown, sizeof unknown, &d), SM_E_BADARG);
    const uint8_t read[] = {ENGINE_SKU_GET, 1, 'r', 1, 'x'};
    cr_assert_eq(engine_decode(read, sizeof read, &d), SM_E_BADARG);
    const uint8_t empty_req[] = {ENGINE_ORDER_CANCEL, 0, 1, 'x'};
    cr_assert_eq(engine_decode(empty_req, sizeof empty_req, &d), SM_E_BADARG);
    uint8_t long_key[2 + 1 + 129] = {ENGINE_ORDER_CANCEL, 1, 'r', 129};
    cr_assert_eq(engine_decode(long_key, sizeof long_key, &d), SM_E_BADARG);
    cr_assert_eq(engine_decode(NULL, 0, &d), SM_E_BADARG);
    const uint8_t tick[] = {ENGINE_TICK};
    cr_assert_eq(engine_decode(tick, sizeof tick, &d), 0);
    struct engine_cmd c = {.type = ENGINE_SKU_GET, .request_id = K("r"), .key = K("x")};
    uint8_t buf[64];
    size_t len;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c = (struct engine_cmd){.type = ENGINE_ORDER_CANCEL, .key = K("x")};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG, "no request id");
}

Test(records, a_malformed_record_is_a_badarg_reply_with_no_effect)
{
    struct harness h;
    harness_init(&h);
    const uint8_t junk[] = {ENGINE_SKU_CREATE, 1, 'r', 1, 'x', 1, 2};
    assert_err(apply_raw(&h, junk, sizeof junk), SM_E_BADARG);
    cr_assert_eq(field(read_cmd(&h, ENGINE_STATS_GET, NULL), "request_ids"), 0);
    cr_assert_eq(engine_last_index(&h.e), 1);
    engine_free(&h.e);
}
