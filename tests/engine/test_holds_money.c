/* Unit tests of holds (prepare, commit, abort, their idempotence, empty rollback, suspension,
 * expiry) and of money (open, deposit, withdraw, transfer, overdraft, overflow). */
#include "engine_harness.h"

static void stocked(struct harness *h)
{
    harness_init(h);
    assert_ok(sku_create(h, "tv", 10, 0, 0));
}

static const struct engine_reply *hold_op(struct harness *h, enum engine_cmd_type t,
                                          const char *txid)
{
    struct engine_cmd c = {.type = t, .key = K(txid)};
    return run(h, &c);
}

static const char *hold_state(struct harness *h, const char *txid)
{
    const struct engine_reply *r = read_cmd(h, ENGINE_HOLD_GET, txid);
    return r->kind == ENGINE_REPLY_ERR ? "NONE" : field_str(r, "state");
}

Test(holds, prepare_commit)
{
    struct harness h;
    stocked(&h);
    assert_ok(hold_prepare(&h, "tx1", "tv", 3, 1000));
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 3);
    cr_assert_str_eq(hold_state(&h, "tx1"), "PREPARED");
    cr_assert_eq(field(read_cmd(&h, ENGINE_HOLD_GET, "tx1"), "quantity"), 3);
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "tx1"));
    cr_assert_eq(sku_field(&h, "tv", "sold"), 3);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 0);
    /* idempotent: again commit, and a repeated prepare, change nothing */
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "tx1"));
    assert_ok(hold_prepare(&h, "tx1", "tv", 3, 1000));
    cr_assert_eq(sku_field(&h, "tv", "sold"), 3);
    assert_err_msg(hold_op(&h, ENGINE_HOLD_ABORT, "tx1"), SM_E_STATE, "COMMITTED");
    engine_free(&h.e);
}

Test(holds, prepare_abort)
{
    struct harness h;
    stocked(&h);
    assert_ok(hold_prepare(&h, "tx1", "tv", 3, 1000));
    assert_ok(hold_prepare(&h, "tx1", "tv", 3, 1000));
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 3);
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "tx1"));
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "tx1"));
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    assert_err_msg(hold_op(&h, ENGINE_HOLD_COMMIT, "tx1"), SM_E_STATE, "ABORTED");
    assert_err_msg(hold_prepare(&h, "tx1", "tv", 3, 1000), SM_E_STATE, "ABORTED");
    engine_free(&h.e);
}

Test(holds, abort_of_unknown_is_remembered_so_a_late_prepare_fails)
{
    struct harness h;
    stocked(&h);
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "late"));
    cr_assert_str_eq(hold_state(&h, "late"), "ABORTED");
    assert_err_msg(hold_prepare(&h, "late", "tv", 1, 1000), SM_E_STATE, "ABORTED");
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 0);
    /* Forgotten after the retention; then a prepare would succeed. */
    tick(&h, h.now_ms + 1001);
    cr_assert_str_eq(hold_state(&h, "late"), "NONE");
    assert_ok(hold_prepare(&h, "late", "tv", 1, 1000));
    engine_free(&h.e);
}

Test(holds, errors)
{
    struct harness h;
    stocked(&h);
    assert_err(hold_op(&h, ENGINE_HOLD_COMMIT, "nope"), SM_E_NOTFOUND);
    assert_err_msg(hold_prepare(&h, "tx", "tv", 11, 1000), SM_E_SOLDOUT, "tv");
    assert_err(hold_prepare(&h, "tx", "nope", 1, 1000), SM_E_NOTFOUND);
    assert_err(read_cmd(&h, ENGINE_HOLD_GET, "tx"), SM_E_NOTFOUND);
    engine_free(&h.e);
}

Test(holds, full_table_is_busy)
{
    struct harness h;
    stocked(&h);
    char name[16];
    for (uint32_t i = 0; i < harness_config().holds_max; i++) {
        snprintf(name, sizeof name, "t%u", i);
        assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, name));
    }
    assert_err(hold_op(&h, ENGINE_HOLD_ABORT, "more"), SM_E_BUSY);
    assert_err(hold_prepare(&h, "more", "tv", 1, 100), SM_E_BUSY);
    cr_assert_eq(sku_field(&h, "tv", "reserved"), 0);
    engine_free(&h.e);
}

Test(holds, expire_on_tick_and_commit_after_deadline)
{
    struct harness h;
    stocked(&h);
    assert_ok(hold_prepare(&h, "a", "tv", 2, 100));
    assert_ok(hold_prepare(&h, "b", "tv", 2, 100));
    h.now_ms += 101;
    assert_err_msg(hold_op(&h, ENGINE_HOLD_COMMIT, "a"), SM_E_STATE, "ABORTED");
    const struct engine_reply *r = tick(&h, h.now_ms);
    cr_assert_eq(field(r, "holds_expired"), 2);
    cr_assert_str_eq(hold_state(&h, "b"), "ABORTED");
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "b"));
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    engine_free(&h.e);
}

Test(money, open_deposit_withdraw_transfer)
{
    struct harness h;
    harness_init(&h);
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "b", 100));
    assert_err(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0), SM_E_EXISTS);
    assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "a", 500), 500);
    assert_int(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "a", 200), 300);
    assert_err(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "a", 301), SM_E_NOFUNDS);
    assert_int(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "b", 100), -100); /* overdraft */
    assert_err(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "b", 1), SM_E_NOFUNDS);
    assert_ok(transfer(&h, "a", "b", 300));
    cr_assert_eq(balance(&h, "a"), 0);
    cr_assert_eq(balance(&h, "b"), 200);
    assert_err(transfer(&h, "a", "b", 1), SM_E_NOFUNDS);
    assert_err(transfer(&h, "a", "nope", 1), SM_E_NOTFOUND);
    assert_err(transfer(&h, "nope", "a", 1), SM_E_NOTFOUND);
    assert_err(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "nope", 1), SM_E_NOTFOUND);
    assert_err(read_cmd(&h, ENGINE_ACCOUNT_GET, "nope"), SM_E_NOTFOUND);
    cr_assert_eq(field(read_cmd(&h, ENGINE_ACCOUNT_GET, "b"), "overdraft_cents"), 100);
    const struct engine_reply *s = read_cmd(&h, ENGINE_STATS_GET, NULL);
    cr_assert_eq(field(s, "deposits_total_cents"), 500);
    cr_assert_eq(field(s, "withdrawals_total_cents"), 300);
    engine_free(&h.e);
}

Test(money, bad_amounts_and_self_transfer_are_badarg)
{
    uint8_t buf[512];
    size_t len;
    struct engine_cmd c = {.type = ENGINE_ACCOUNT_DEPOSIT, .request_id = K("r"), .key = K("a")};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.num = -5;
    c.type = ENGINE_ACCOUNT_WITHDRAW;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c.type = ENGINE_ACCOUNT_OPEN;
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
    c = (struct engine_cmd){.type = ENGINE_ACCOUNT_TRANSFER,
                            .request_id = K("r"),
                            .key = K("a"),
                            .key2 = K("a"),
                            .num = 1};
    cr_assert_eq(engine_encode(&c, buf, sizeof buf, &len), SM_E_BADARG);
}

Test(money, overflow_is_refused)
{
    struct harness h;
    harness_init(&h);
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "a", 0));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "b", 0));
    assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "a", INT64_MAX), INT64_MAX);
    assert_err(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "b", 1), SM_E_OVERFLOW); /* the deposit total */
    assert_int(acct(&h, ENGINE_ACCOUNT_WITHDRAW, "a", 10), INT64_MAX - 10);
    assert_err(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "a", 11), SM_E_OVERFLOW);
    cr_assert_eq(balance(&h, "b"), 0);
    engine_free(&h.e);
}

Test(money, full_table_is_busy)
{
    struct harness h;
    harness_init(&h);
    char name[16];
    for (uint32_t i = 0; i < harness_config().accounts_max; i++) {
        snprintf(name, sizeof name, "a%u", i);
        assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, name, 0));
    }
    assert_err(acct(&h, ENGINE_ACCOUNT_OPEN, "more", 0), SM_E_BUSY);
    engine_free(&h.e);
}

/* ---- holds that carry a user (the hold leg of a cross-partition order) ---- */

static const struct engine_reply *hold_prepare_user(struct harness *h, const char *txid,
                                                    const char *user, const char *sku, int64_t qty,
                                                    int64_t ttl)
{
    struct engine_cmd c = {.type = ENGINE_HOLD_PREPARE_USER,
                           .key = K(txid),
                           .key2 = K(user),
                           .num = ttl,
                           .items_count = 1};
    c.items[0] = (struct engine_item){.sku = K(sku), .quantity = qty};
    return run(h, &c);
}

Test(holds, a_hold_with_a_user_checks_and_counts_the_per_user_limit)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 20, 3, 100));
    /* A plain hold never counts against anyone. */
    assert_ok(hold_prepare(&h, "plain", "tv", 4, 1000));
    assert_ok(hold_prepare_user(&h, "t1", "alice", "tv", 2, 1000));
    assert_err_msg(hold_prepare_user(&h, "t2", "alice", "tv", 2, 1000), SM_E_LIMIT, "tv");
    cr_assert_str_eq(hold_state(&h, "t2"), "NONE", "a refused prepare leaves no row");
    assert_err(place(&h, "o1", "alice", "tv", 2), SM_E_LIMIT);
    assert_int(place(&h, "o1", "alice", "tv", 1), 100); /* orders and holds share the count */
    assert_ok(hold_prepare_user(&h, "t3", "bob", "tv", 3, 1000));
    /* Abort gives alice's count back; a repeated abort does not give it twice. */
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "t1"));
    assert_ok(hold_op(&h, ENGINE_HOLD_ABORT, "t1"));
    assert_err(hold_prepare_user(&h, "t4", "alice", "tv", 3, 1000), SM_E_LIMIT);
    assert_ok(hold_prepare_user(&h, "t4", "alice", "tv", 2, 1000));
    /* Commit keeps the count (bought); a snapshot keeps the hold's user. */
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "t4"));
    struct sm_wbuf w;
    harness_save(&h.e, &w);
    struct harness h2;
    harness_init(&h2);
    cr_assert_eq(engine_load(&h2.e, w.data, w.len), 0);
    h2.index = h.index;
    h2.request_seq = h.request_seq;
    struct sm_wbuf w2;
    harness_save(&h2.e, &w2);
    cr_assert_eq(w.len, w2.len);
    cr_assert_eq(memcmp(w.data, w2.data, w.len), 0, "load(save(s)) saves the same bytes");
    sm_wbuf_free(&w);
    sm_wbuf_free(&w2);
    /* Expiry on a tick gives bob's count back, in the loaded engine too. */
    h2.now_ms = h.now_ms + 1001;
    const struct engine_reply *r = tick(&h2, h2.now_ms);
    cr_assert_eq(field(r, "holds_expired"), 2); /* bob's and the plain one */
    assert_ok(hold_prepare_user(&h2, "t5", "bob", "tv", 3, 1000));
    assert_err(hold_prepare_user(&h2, "t6", "alice", "tv", 1, 1000), SM_E_LIMIT);
    char why[160];
    cr_assert(engine_check(&h2.e, why, sizeof why), "%s", why);
    engine_free(&h.e);
    engine_free(&h2.e);
}

Test(holds, refund_of_a_committed_hold_restocks_or_writes_off_once)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 3, 100));
    assert_ok(hold_prepare_user(&h, "t1", "alice", "tv", 3, 1000));
    struct engine_cmd rf = {.type = ENGINE_HOLD_REFUND, .key = K("t1"), .num = 1};
    assert_err_msg(run(&h, &rf), SM_E_STATE, "PREPARED");
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "t1"));
    assert_err(hold_prepare_user(&h, "t2", "alice", "tv", 1, 1000), SM_E_LIMIT);
    rf.request_id = (struct engine_key){0};
    assert_ok(run(&h, &rf));
    cr_assert_str_eq(hold_state(&h, "t1"), "REFUNDED");
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    cr_assert_eq(sku_field(&h, "tv", "sold"), 0);
    rf.request_id = (struct engine_key){0}; /* a new request id: still only once */
    assert_ok(run(&h, &rf));
    cr_assert_eq(sku_field(&h, "tv", "available"), 10);
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "t1")); /* a late commit changes nothing */
    assert_err_msg(hold_op(&h, ENGINE_HOLD_ABORT, "t1"), SM_E_STATE, "REFUNDED");
    /* alice's count went back; written off, the stock leaves stocked. */
    assert_ok(hold_prepare_user(&h, "t2", "alice", "tv", 3, 1000));
    assert_ok(hold_op(&h, ENGINE_HOLD_COMMIT, "t2"));
    struct engine_cmd wo = {.type = ENGINE_HOLD_REFUND, .key = K("t2"), .num = 0};
    assert_ok(run(&h, &wo));
    cr_assert_eq(sku_field(&h, "tv", "stocked"), 7);
    cr_assert_eq(sku_field(&h, "tv", "available"), 7);
    struct engine_cmd unknown = {.type = ENGINE_HOLD_REFUND, .key = K("t9"), .num = 1};
    assert_err(run(&h, &unknown), SM_E_NOTFOUND);
    engine_free(&h.e);
}

/* ---- the refund of an order paid by a cross-partition payment (node/txn.c) ---- */

/* An order of qty units of sku (a local command: place() keeps its command in a static that
 * would point into this test's harness). */
static const struct engine_reply *place_local(struct harness *h, const char *id, const char *user,
                                              int64_t qty)
{
    struct engine_cmd c = {
        .type = ENGINE_ORDER_PLACE, .key = K(id), .key2 = K(user), .num = 5000, .items_count = 1};
    c.items[0] = (struct engine_item){.sku = K("tv"), .quantity = qty};
    return run(h, &c);
}

Test(orders, refund_xpay_refunds_an_externally_paid_order_without_moving_money)
{
    struct harness h;
    harness_init(&h);
    assert_ok(sku_create(&h, "tv", 10, 2, 100));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "buyer", 0));
    assert_ok(acct(&h, ENGINE_ACCOUNT_OPEN, "shop", 0));
    assert_int(acct(&h, ENGINE_ACCOUNT_DEPOSIT, "buyer", 1000), 1000);
    struct engine_cmd xr = {.type = ENGINE_ORDER_REFUND_XPAY,
                            .key = K("o1"),
                            .key2 = K("buyer"),
                            .key3 = K("shop"),
                            .num = 1};
    /* Paid from this partition's accounts: a plain ORDER_REFUND's job, refused here. */
    assert_int(place_local(&h, "o1", "alice", 2), 200);
    assert_ok(pay(&h, "o1", "buyer", "shop"));
    assert_err(run(&h, &xr), SM_E_STATE);
    cr_assert_eq(balance(&h, "shop"), 200);
    /* Paid externally (the transaction's reference): items back, the per-user count given
     * back, no money moved (the legs move it), and only once. */
    assert_int(place_local(&h, "o2", "bob", 2), 200);
    struct engine_cmd ext = {.type = ENGINE_ORDER_PAY_EXTERNAL, .key = K("o2"), .key2 = K("tx")};
    assert_ok(run(&h, &ext));
    xr.key = K("o2");
    xr.request_id = (struct engine_key){0};
    assert_ok(run(&h, &xr));
    cr_assert_eq(balance(&h, "buyer"), 800);
    cr_assert_eq(balance(&h, "shop"), 200);
    cr_assert_eq(sku_field(&h, "tv", "available"), 8);
    assert_int(place_local(&h, "o3", "bob", 2), 200);
    xr.request_id = (struct engine_key){0};
    assert_err_msg(run(&h, &xr), SM_E_STATE, "REFUNDED");
    xr.key3 = K("buyer"); /* the same account twice: no such record */
    uint8_t buf[SM_ENGINE_RECORD_BYTES_MAX];
    size_t len = 0;
    cr_assert_eq(engine_encode(&xr, buf, sizeof buf, &len), SM_E_BADARG);
    char why[160];
    cr_assert(engine_check(&h.e, why, sizeof why), "%s", why);
    engine_free(&h.e);
}
