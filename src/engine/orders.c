/*
 * Orders, holds and the tick that expires them.
 *
 * Order states (every other transition is -STATE <current state>):
 *
 *   place -> RESERVED -pay--> PAID -ship-> SHIPPED -complete-> COMPLETED
 *               |  |            '--refund--> REFUNDED
 *               |  '-cancel-> CANCELLED
 *               '--tick past the deadline--> EXPIRED
 *
 * A deadline is passed when now_ms > deadline_ms. Past it the order is treated as expired even
 * before a tick expires it: pay answers -STATE EXPIRED and changes nothing. Stock is released
 * exactly once because only the RESERVED state holds it and every exit from RESERVED is one
 * transition. A finished order (COMPLETED, CANCELLED, EXPIRED, REFUNDED) stays readable, and its
 * id taken, for cfg.order_retention_ms, then a tick drops it.
 *
 * Holds are the participant side of a cross-partition order (TCC): prepare reserves the items
 * under a transaction id until a deadline, commit sells them, abort releases them. Each is
 * idempotent on the txid. An abort of an unknown txid is remembered as ABORTED, so a prepare
 * that arrives after its own rollback fails (-STATE ABORTED) instead of reserving stock no one
 * will release. A prepared hold past its deadline is aborted by the tick; commit past the
 * deadline is -STATE ABORTED. Decided holds are remembered for cfg.hold_retention_ms.
 */
#include "engine/engine_internal.h"

static struct engine_result state_err(uint8_t state)
{
    return engine_err(SM_E_STATE, STATE_MSG_ORDER + state);
}

static struct engine_result hold_state_err(uint8_t state)
{
    return engine_err(SM_E_STATE, STATE_MSG_HOLD + state);
}

static void reschedule(struct engine *e, uint32_t ref, uint32_t *timer, int64_t at_ms)
{
    if (*timer != ENGINE_NONE)
        engine_timer_remove(e, *timer);
    engine_timer_add(e, at_ms, ref);
}

static void order_finish(struct engine *e, uint32_t slot, uint8_t state)
{
    struct engine_order *o = &e->orders[slot];
    o->state = state;
    o->at_ms = e->now_ms + e->cfg.order_retention_ms;
    reschedule(e, slot, &o->timer, o->at_ms);
}

struct engine_result engine_order_place(struct engine *e, const struct engine_cmd *cmd,
                                        const struct engine_hashes *h)
{
    ASSERT(cmd->type == ENGINE_ORDER_PLACE || cmd->type == ENGINE_ORDER_PLACE_PART);
    struct engine_digest id = h->key, user = h->key2;
    if (engine_order_find(e, id) != SM_INDEX_NONE)
        return engine_err(SM_E_EXISTS, 0);
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    int64_t total;
    uint32_t rows_new;
    struct engine_result r = engine_stock_check(e, cmd, &user, items, &total, &rows_new);
    if (engine_failed(r))
        return r;
    /* A cross-partition order's part here also carries the price of its items held elsewhere,
     * so paying it moves the whole order's total. */
    if (cmd->type == ENGINE_ORDER_PLACE_PART && __builtin_add_overflow(total, cmd->num2, &total))
        return engine_err(SM_E_OVERFLOW, 0);
    if (engine_slots_full(&e->order_slots, 1) ||
        engine_slots_full(&e->chunk_slots, engine_chunks_needed(cmd->items_count)) ||
        engine_slots_full(&e->limit_slots, rows_new))
        return engine_err(SM_E_BUSY, 0);
    uint32_t slot = engine_slots_alloc(&e->order_slots);
    struct engine_order *o = &e->orders[slot];
    *o = (struct engine_order){.id = id,
                               .user = user,
                               .at_ms = e->now_ms + cmd->num,
                               .total_cents = total,
                               .timer = ENGINE_NONE,
                               .state = ORDER_RESERVED};
    engine_items_put(e, &o->items, items, cmd->items_count);
    int rc = sm_index_insert(&e->order_index, id.lo, slot);
    ASSERT(rc == 0); /* a free slot means room in the index */
    engine_stock_reserve(e, items, cmd->items_count, &user);
    engine_timer_add(e, o->at_ms, slot);
    return engine_int(total);
}

static struct engine_result order_pay(struct engine *e, uint32_t slot, const struct engine_cmd *cmd)
{
    struct engine_order *o = &e->orders[slot];
    if (o->state != ORDER_RESERVED)
        return state_err(o->state);
    if (e->now_ms > o->at_ms)
        return state_err(ORDER_EXPIRED);
    if (cmd->type == ENGINE_ORDER_PAY) {
        uint32_t buyer = engine_account_find(e, engine_digest_of(&cmd->key2));
        uint32_t merchant = engine_account_find(e, engine_digest_of(&cmd->key3));
        if (buyer == SM_INDEX_NONE || merchant == SM_INDEX_NONE)
            return engine_err(SM_E_NOTFOUND, 0);
        struct engine_result r = engine_account_move(e, buyer, merchant, o->total_cents);
        if (engine_failed(r))
            return r;
        o->payment = (uint64_t)buyer << 32 | merchant;
        o->paid_external = 0;
    } else {
        o->payment = engine_digest_of(&cmd->key2).lo;
        o->paid_external = 1;
    }
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    uint32_t n = engine_items_get(e, &o->items, items);
    engine_stock_sell(e, items, n);
    o->state = ORDER_PAID;
    engine_timer_remove(e, o->timer);
    return engine_ok();
}

/* ORDER_REFUND, or ORDER_REFUND_XPAY (xpay): the refund of an order paid by a cross-partition
 * payment, whose money the transaction's legs move back (node/txn.c), so only an order paid
 * externally qualifies and no money moves here. */
static struct engine_result order_refund(struct engine *e, uint32_t slot, bool restock, bool xpay)
{
    struct engine_order *o = &e->orders[slot];
    if (o->state != ORDER_PAID)
        return state_err(o->state);
    if (xpay && !o->paid_external)
        return engine_err(SM_E_STATE, 0);
    if (!o->paid_external) {
        uint32_t buyer = (uint32_t)(o->payment >> 32), merchant = (uint32_t)o->payment;
        struct engine_result r = engine_account_move(e, merchant, buyer, o->total_cents);
        if (engine_failed(r))
            return r;
    }
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    uint32_t n = engine_items_get(e, &o->items, items);
    engine_stock_unsell(e, items, n, restock, &o->user);
    order_finish(e, slot, ORDER_REFUNDED);
    return engine_ok();
}

struct engine_result engine_order_cmd(struct engine *e, const struct engine_cmd *cmd)
{
    if (cmd->type == ENGINE_ORDER_PLACE || cmd->type == ENGINE_ORDER_PLACE_PART) {
        struct engine_hashes h = {engine_digest_of(&cmd->key), engine_digest_of(&cmd->key2)};
        return engine_order_place(e, cmd, &h);
    }
    uint32_t slot = engine_order_find(e, engine_digest_of(&cmd->key));
    if (slot == SM_INDEX_NONE)
        return engine_err(SM_E_NOTFOUND, 0);
    struct engine_order *o = &e->orders[slot];
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    switch (cmd->type) {
    case ENGINE_ORDER_PAY:
    case ENGINE_ORDER_PAY_EXTERNAL:
        return order_pay(e, slot, cmd);
    case ENGINE_ORDER_CANCEL: {
        if (o->state != ORDER_RESERVED)
            return state_err(o->state);
        uint32_t n = engine_items_get(e, &o->items, items);
        engine_stock_release(e, items, n, &o->user);
        order_finish(e, slot, ORDER_CANCELLED);
        return engine_ok();
    }
    case ENGINE_ORDER_SHIP:
        if (o->state != ORDER_PAID)
            return state_err(o->state);
        o->state = ORDER_SHIPPED;
        return engine_ok();
    case ENGINE_ORDER_COMPLETE:
        if (o->state != ORDER_SHIPPED)
            return state_err(o->state);
        order_finish(e, slot, ORDER_COMPLETED);
        return engine_ok();
    case ENGINE_ORDER_REFUND:
    case ENGINE_ORDER_REFUND_XPAY:
        return order_refund(e, slot, cmd->num == 1, cmd->type == ENGINE_ORDER_REFUND_XPAY);
    default:
        UNREACHABLE();
    }
}

/* ---- holds ---------------------------------------------------------------------------------- */

static void hold_finish(struct engine *e, uint32_t slot, uint8_t state)
{
    struct engine_hold *h = &e->holds[slot];
    h->state = state;
    h->at_ms = e->now_ms + e->cfg.hold_retention_ms;
    reschedule(e, slot | ENGINE_TIMER_HOLD, &h->timer, h->at_ms);
}

/* A new hold row (PREPARED with items, or ABORTED with none); the caller checked capacity. */
static uint32_t hold_new(struct engine *e, struct engine_digest txid)
{
    uint32_t slot = engine_slots_alloc(&e->hold_slots);
    e->holds[slot] = (struct engine_hold){.txid = txid, .timer = ENGINE_NONE};
    e->holds[slot].items.chunk = ENGINE_NONE;
    int rc = sm_index_insert(&e->hold_index, txid.lo, slot);
    ASSERT(rc == 0);
    return slot;
}

/* The user a hold's items count against, or NULL (a hold prepared without one). */
static const struct engine_digest *hold_user(const struct engine_hold *h)
{
    return h->has_user ? &h->user : NULL;
}

/* HOLD_PREPARE, or HOLD_PREPARE_USER: then the user's per-user limits are checked and counted
 * here, in the SKUs' partition, as ORDER_PLACE does for its own items (-LIMIT <sku>). */
static struct engine_result hold_prepare(struct engine *e, struct engine_digest txid,
                                         const struct engine_cmd *cmd)
{
    bool with_user = cmd->type == ENGINE_HOLD_PREPARE_USER;
    struct engine_digest user =
        with_user ? engine_digest_of(&cmd->key2) : (struct engine_digest){0};
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    int64_t total;
    uint32_t rows_new;
    struct engine_result r =
        engine_stock_check(e, cmd, with_user ? &user : NULL, items, &total, &rows_new);
    if (engine_failed(r))
        return r;
    ASSERT(with_user || rows_new == 0);
    if (engine_slots_full(&e->hold_slots, 1) ||
        engine_slots_full(&e->chunk_slots, engine_chunks_needed(cmd->items_count)) ||
        engine_slots_full(&e->limit_slots, rows_new))
        return engine_err(SM_E_BUSY, 0);
    uint32_t slot = hold_new(e, txid);
    struct engine_hold *h = &e->holds[slot];
    h->state = HOLD_PREPARED;
    h->at_ms = e->now_ms + cmd->num;
    h->user = user;
    h->has_user = with_user;
    engine_items_put(e, &h->items, items, cmd->items_count);
    engine_stock_reserve(e, items, cmd->items_count, hold_user(h));
    engine_timer_add(e, h->at_ms, slot | ENGINE_TIMER_HOLD);
    return engine_ok();
}

/* Aborted or expired: the items go back to available and leave the user's counts. */
static struct engine_result hold_release(struct engine *e, uint32_t slot)
{
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    uint32_t n = engine_items_get(e, &e->holds[slot].items, items);
    engine_stock_release(e, items, n, hold_user(&e->holds[slot]));
    hold_finish(e, slot, HOLD_ABORTED);
    return engine_ok();
}

struct engine_result engine_hold_cmd(struct engine *e, const struct engine_cmd *cmd)
{
    struct engine_digest txid = engine_digest_of(&cmd->key);
    uint32_t slot = engine_hold_find(e, txid);
    if (slot == SM_INDEX_NONE) {
        if (cmd->type == ENGINE_HOLD_PREPARE || cmd->type == ENGINE_HOLD_PREPARE_USER)
            return hold_prepare(e, txid, cmd);
        if (cmd->type == ENGINE_HOLD_COMMIT || cmd->type == ENGINE_HOLD_REFUND)
            return engine_err(SM_E_NOTFOUND, 0);
        /* Abort of a txid never prepared: remember it so a late prepare is refused. */
        if (engine_slots_full(&e->hold_slots, 1))
            return engine_err(SM_E_BUSY, 0);
        slot = hold_new(e, txid);
        hold_finish(e, slot, HOLD_ABORTED);
        return engine_ok();
    }
    struct engine_hold *h = &e->holds[slot];
    switch (cmd->type) {
    case ENGINE_HOLD_PREPARE:
    case ENGINE_HOLD_PREPARE_USER:
        return h->state == HOLD_ABORTED ? hold_state_err(h->state) : engine_ok();
    case ENGINE_HOLD_COMMIT: {
        if (h->state == HOLD_COMMITTED || h->state == HOLD_REFUNDED)
            return engine_ok();
        if (h->state == HOLD_ABORTED || e->now_ms > h->at_ms)
            return hold_state_err(HOLD_ABORTED);
        struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
        uint32_t n = engine_items_get(e, &h->items, items);
        engine_stock_sell(e, items, n);
        hold_finish(e, slot, HOLD_COMMITTED);
        return engine_ok();
    }
    case ENGINE_HOLD_ABORT:
        if (h->state == HOLD_ABORTED)
            return engine_ok();
        if (h->state != HOLD_PREPARED)
            return hold_state_err(h->state);
        return hold_release(e, slot);
    case ENGINE_HOLD_REFUND: {
        /* The refund of the order whose leg this hold was: its items leave sold (back to
         * available or written off) and the user's count, exactly once. */
        if (h->state == HOLD_REFUNDED)
            return engine_ok();
        if (h->state != HOLD_COMMITTED)
            return hold_state_err(h->state);
        struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
        uint32_t n = engine_items_get(e, &h->items, items);
        engine_stock_unsell(e, items, n, cmd->num == 1, hold_user(h));
        hold_finish(e, slot, HOLD_REFUNDED);
        return engine_ok();
    }
    default:
        UNREACHABLE();
    }
}

/* ---- tick ----------------------------------------------------------------------------------- */

static void order_retire(struct engine *e, uint32_t slot)
{
    struct engine_order *o = &e->orders[slot];
    sm_index_remove(&e->order_index, o->id.lo, slot);
    engine_items_release(e, &o->items);
    o->state = ORDER_FREE;
    engine_slots_release(&e->order_slots, slot);
}

static void hold_retire(struct engine *e, uint32_t slot)
{
    struct engine_hold *h = &e->holds[slot];
    sm_index_remove(&e->hold_index, h->txid.lo, slot);
    engine_items_release(e, &h->items);
    h->state = HOLD_FREE;
    engine_slots_release(&e->hold_slots, slot);
}

/* Fires every timer due (at_ms < now_ms), in (at_ms, ref) order. A timer set while firing is at
 * now_ms or later, so the loop ends. Replies with how many orders and holds expired and how
 * many finished rows were dropped. */
void engine_tick(struct engine *e, struct engine_reply *out)
{
    int64_t orders_expired = 0, holds_expired = 0, retired = 0;
    while (e->timers_count > 0 && e->timers[0].at_ms < e->now_ms) {
        uint32_t ref = e->timers[0].ref;
        engine_timer_remove(e, 0);
        if (ref & ENGINE_TIMER_HOLD) {
            uint32_t slot = ref & ~ENGINE_TIMER_HOLD;
            if (e->holds[slot].state == HOLD_PREPARED) {
                hold_release(e, slot);
                holds_expired++;
            } else {
                hold_retire(e, slot);
                retired++;
            }
            continue;
        }
        struct engine_order *o = &e->orders[ref];
        if (o->state == ORDER_RESERVED) {
            struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
            uint32_t n = engine_items_get(e, &o->items, items);
            engine_stock_release(e, items, n, &o->user);
            order_finish(e, ref, ORDER_EXPIRED);
            orders_expired++;
        } else {
            order_retire(e, ref);
            retired++;
        }
    }
    out->kind = ENGINE_REPLY_FIELDS;
    out->err = 0;
    out->msg_len = 0;
    int rc = locks_tick(&e->locks, e->last_index, e->now_ms, &e->lock_events);
    ASSERT(rc == 0);
    out->fields_count = 4;
    out->fields[0] = (struct engine_field){.name = "orders_expired", .value = orders_expired};
    out->fields[1] = (struct engine_field){.name = "holds_expired", .value = holds_expired};
    out->fields[2] = (struct engine_field){.name = "retired", .value = retired};
    out->fields[3] = (struct engine_field){.name = "lock_events", .value = e->lock_events.count};
}

/* ---- reads ---------------------------------------------------------------------------------- */

static int64_t items_quantity(const struct engine *e, const struct engine_items *it)
{
    if (it->count == 0)
        return 0;
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    uint32_t n = engine_items_get(e, it, items);
    int64_t q = 0;
    for (uint32_t i = 0; i < n; i++)
        q += items[i].quantity;
    return q;
}

void engine_read_order(const struct engine *e, const struct engine_cmd *cmd,
                       struct engine_reply *out)
{
    uint32_t slot = engine_order_find(e, engine_digest_of(&cmd->key));
    if (slot == SM_INDEX_NONE) {
        engine_reply_err(out, SM_E_NOTFOUND, sm_strerror(SM_E_NOTFOUND));
        return;
    }
    const struct engine_order *o = &e->orders[slot];
    const struct engine_field f[] = {
        {.name = "state", .str = engine_order_state_name(o->state)},
        {.name = "items", .value = o->items.count},
        {.name = "quantity", .value = items_quantity(e, &o->items)},
        {.name = "total_cents", .value = o->total_cents},
        {.name = "paid_external", .value = o->paid_external},
    };
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = sizeof f / sizeof f[0];
    memcpy(out->fields, f, sizeof f);
}

void engine_read_hold(const struct engine *e, const struct engine_cmd *cmd,
                      struct engine_reply *out)
{
    uint32_t slot = engine_hold_find(e, engine_digest_of(&cmd->key));
    if (slot == SM_INDEX_NONE) {
        engine_reply_err(out, SM_E_NOTFOUND, sm_strerror(SM_E_NOTFOUND));
        return;
    }
    const struct engine_hold *h = &e->holds[slot];
    const struct engine_field f[] = {
        {.name = "state", .str = engine_hold_state_name(h->state)},
        {.name = "items", .value = h->items.count},
        {.name = "quantity", .value = items_quantity(e, &h->items)},
    };
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = sizeof f / sizeof f[0];
    memcpy(out->fields, f, sizeof f);
}
