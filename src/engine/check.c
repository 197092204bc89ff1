/*
 * engine_check: every invariant of DESIGN.md section 1 that one partition can state about
 * itself, plus the engine's own bookkeeping (indexes, free lists, timers, item chunks), so that a
 * test can call it after every step and engine_load can refuse a snapshot that parses but lies.
 *
 *   no oversell      available + reserved + sold == stocked, each >= 0, per SKU;
 *                    reserved == the items of RESERVED orders and PREPARED holds;
 *                    sold >= the items of PAID/SHIPPED/COMPLETED orders and COMMITTED holds
 *   money conserved  sum of balances == deposits - withdrawals; balance >= -overdraft >= ...
 *   limits           0 < count <= the SKU's limit, and >= what live orders of the user hold
 *   lock safety      locks_check
 *
 * It allocates temporary sums (it is a test and load-time tool, not a command), O(state).
 */
#include <stdio.h>
#include <stdlib.h>

#include "engine/engine_internal.h"

struct check_sums {
    int64_t *reserved; /* per SKU */
    int64_t *sold;     /* per SKU */
    int64_t *limited;  /* per limit row */
    uint32_t chunks;
};

/* Writes the reason and evaluates to false; `why` and `n` are in scope wherever it is used. */
#define fail(why, n, ...) (snprintf((why), (n), __VA_ARGS__), false)

static bool check_skus(const struct engine *e, const struct check_sums *s, char *why, size_t n)
{
    for (uint32_t i = 0; i < e->skus_count; i++) {
        const struct engine_sku *k = &e->skus[i];
        if (k->available < 0 || k->reserved < 0 || k->sold < 0 || k->stocked < 0)
            return fail(why, n, "sku %u: a negative count", i);
        __int128 sum = (__int128)k->available + k->reserved + k->sold;
        if (sum != k->stocked)
            return fail(why, n, "sku %u: available + reserved + sold != stocked", i);
        if (k->reserved != s->reserved[i])
            return fail(why, n, "sku %u: reserved %lld but open items hold %lld", i,
                        (long long)k->reserved, (long long)s->reserved[i]);
        if (k->sold < s->sold[i])
            return fail(why, n, "sku %u: sold below what live orders bought", i);
        if (engine_sku_find(e, &(struct engine_key){k->name, k->name_len}) != i)
            return fail(why, n, "sku %u: not indexed", i);
    }
    if (e->sku_index.count != e->skus_count)
        return fail(why, n, "sku index count");
    return true;
}

static bool check_accounts(const struct engine *e, char *why, size_t n)
{
    __int128 sum = 0;
    for (uint32_t i = 0; i < e->accounts_count; i++) {
        const struct engine_account *a = &e->accounts[i];
        if (a->overdraft_cents < 0 || a->balance_cents < -a->overdraft_cents)
            return fail(why, n, "account %u: balance below its overdraft", i);
        if (engine_account_find(e, a->id) != i)
            return fail(why, n, "account %u: not indexed", i);
        sum += a->balance_cents;
    }
    if (sum != (__int128)e->deposits_total_cents - e->withdrawals_total_cents)
        return fail(why, n, "money: balances != deposits - withdrawals");
    if (e->deposits_total_cents < 0 || e->withdrawals_total_cents < 0)
        return fail(why, n, "money: negative totals");
    if (e->account_index.count != e->accounts_count)
        return fail(why, n, "account index count");
    return true;
}

/* Items of a row: valid, summed into reserved or sold, and counted against limit rows. */
static bool add_items(const struct engine *e, struct check_sums *s, const struct engine_items *it,
                      int where, const struct engine_digest *user)
{
    if (it->count < 1 || it->count > SM_ORDER_ITEMS_MAX)
        return false;
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    uint32_t count = engine_items_get(e, it, items);
    s->chunks += engine_chunks_needed(count);
    for (uint32_t i = 0; i < count; i++) {
        if (items[i].sku >= e->skus_count || items[i].quantity < 1 ||
            items[i].quantity > SM_ORDER_ITEM_QUANTITY_MAX)
            return false;
        if (where == 1)
            s->reserved[items[i].sku] += items[i].quantity;
        else if (where == 2)
            s->sold[items[i].sku] += items[i].quantity;
        if (user != NULL && e->skus[items[i].sku].limit_per_user > 0) {
            uint32_t row = engine_limit_find(e, *user, items[i].sku);
            if (row == SM_INDEX_NONE)
                return false;
            s->limited[row] += items[i].quantity;
        }
    }
    return true;
}

static bool check_timer(const struct engine *e, uint32_t pos, uint32_t ref, int64_t at_ms)
{
    return pos < e->timers_count && e->timers[pos].ref == ref && e->timers[pos].at_ms == at_ms;
}

/* Index lookups of rows far ahead are started early so their cache misses overlap: checking a
 * loaded snapshot of 10^7 orders is otherwise one memory latency per row. */
#define CHECK_AHEAD 16

static void prefetch_cell(const struct sm_index *ix, uint64_t h)
{
    sm_index_prefetch(ix, h);
}

static bool check_orders(const struct engine *e, struct check_sums *s, uint32_t *timers, char *why,
                         size_t n)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < e->order_slots.high_water; i++) {
        if (i + CHECK_AHEAD < e->order_slots.high_water)
            prefetch_cell(&e->order_index, e->orders[i + CHECK_AHEAD].id.lo);
        const struct engine_order *o = &e->orders[i];
        if (o->state == ORDER_FREE)
            continue;
        live++;
        if (o->state >= ORDER_STATE_COUNT || engine_order_find(e, o->id) != i)
            return fail(why, n, "order %u: bad state or not indexed", i);
        bool open = o->state == ORDER_RESERVED;
        bool bought =
            o->state == ORDER_PAID || o->state == ORDER_SHIPPED || o->state == ORDER_COMPLETED;
        bool counts = open || bought;
        if (!add_items(e, s, &o->items, open ? 1 : bought ? 2 : 0, counts ? &o->user : NULL))
            return fail(why, n, "order %u: bad items or missing limit row", i);
        bool scheduled = o->state != ORDER_PAID && o->state != ORDER_SHIPPED;
        if (scheduled ? !check_timer(e, o->timer, i, o->at_ms) : o->timer != ENGINE_NONE)
            return fail(why, n, "order %u: timer", i);
        *timers += scheduled;
        if (o->total_cents < 0 || o->paid_external > 1)
            return fail(why, n, "order %u: total or payment", i);
        if ((o->state == ORDER_PAID || o->state == ORDER_SHIPPED) && !o->paid_external &&
            ((o->payment >> 32) >= e->accounts_count || (uint32_t)o->payment >= e->accounts_count ||
             (o->payment >> 32) == (uint32_t)o->payment))
            return fail(why, n, "order %u: payment accounts", i);
    }
    if (live != engine_slots_live(&e->order_slots) || live != e->order_index.count)
        return fail(why, n, "orders: live rows %u, slots %u, index %u", live,
                    engine_slots_live(&e->order_slots), e->order_index.count);
    for (uint32_t i = 0; i < e->order_slots.free_count; i++)
        if (e->orders[e->order_slots.free[i]].state != ORDER_FREE)
            return fail(why, n, "orders: a free slot is in use");
    return true;
}

static bool check_holds(const struct engine *e, struct check_sums *s, uint32_t *timers, char *why,
                        size_t n)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < e->hold_slots.high_water; i++) {
        const struct engine_hold *h = &e->holds[i];
        if (h->state == HOLD_FREE)
            continue;
        live++;
        if (h->state >= HOLD_STATE_COUNT || engine_hold_find(e, h->txid) != i)
            return fail(why, n, "hold %u: bad state or not indexed", i);
        bool empty_ok = h->state == HOLD_ABORTED && h->items.count == 0;
        int where = h->state == HOLD_PREPARED ? 1 : h->state == HOLD_COMMITTED ? 2 : 0;
        if (h->has_user > 1)
            return fail(why, n, "hold %u: bad user flag", i);
        const struct engine_digest *user = h->has_user && where != 0 ? &h->user : NULL;
        if (!empty_ok && !add_items(e, s, &h->items, where, user))
            return fail(why, n, "hold %u: bad items or missing limit row", i);
        if (!check_timer(e, h->timer, i | ENGINE_TIMER_HOLD, h->at_ms))
            return fail(why, n, "hold %u: timer", i);
        *timers += 1;
    }
    if (live != engine_slots_live(&e->hold_slots) || live != e->hold_index.count)
        return fail(why, n, "holds: live rows, slots and index disagree");
    for (uint32_t i = 0; i < e->hold_slots.free_count; i++)
        if (e->holds[e->hold_slots.free[i]].state != HOLD_FREE)
            return fail(why, n, "holds: a free slot is in use");
    return true;
}

static bool check_limits(const struct engine *e, const struct check_sums *s, char *why, size_t n)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i < e->limit_slots.high_water; i++) {
        const struct engine_limit *l = &e->limits[i];
        if (l->count == 0)
            continue;
        live++;
        if (l->sku >= e->skus_count || engine_limit_find(e, l->user, l->sku) != i)
            return fail(why, n, "limit row %u: not indexed", i);
        if (e->skus[l->sku].limit_per_user == 0 || l->count > e->skus[l->sku].limit_per_user)
            return fail(why, n, "limit row %u: count above the SKU's limit", i);
        if (l->count < s->limited[i])
            return fail(why, n, "limit row %u: count below the user's live orders", i);
    }
    if (live != engine_slots_live(&e->limit_slots) || live != e->limit_index.count)
        return fail(why, n, "limit rows: live rows, slots and index disagree");
    return true;
}

static bool check_timers_requests(const struct engine *e, uint32_t timers, char *why, size_t n)
{
    if (timers != e->timers_count)
        return fail(why, n, "timers: %u scheduled rows, heap holds %u", timers, e->timers_count);
    for (uint32_t i = 1; i < e->timers_count; i++) {
        const struct engine_timer *p = &e->timers[(i - 1) / 2], *c = &e->timers[i];
        if (c->at_ms < p->at_ms || (c->at_ms == p->at_ms && c->ref < p->ref))
            return fail(why, n, "timers: heap order broken at %u", i);
    }
    if (e->requests_count > e->cfg.request_ids_max || e->requests_head >= e->cfg.request_ids_max ||
        e->request_index.count != e->requests_count)
        return fail(why, n, "requests: ring and index disagree");
    for (uint32_t i = 0; i < e->requests_count; i++) {
        if (i + CHECK_AHEAD < e->requests_count)
            prefetch_cell(
                &e->request_index,
                e->requests[((uint64_t)e->requests_head + i + CHECK_AHEAD) % e->cfg.request_ids_max]
                    .id.lo);
        uint32_t slot = (uint32_t)(((uint64_t)e->requests_head + i) % e->cfg.request_ids_max);
        if (engine_request_find(e, e->requests[slot].id) != slot)
            return fail(why, n, "requests: entry %u not indexed", slot);
    }
    if (e->now_ms < 0 || e->now_ms > SM_ENGINE_TIME_MS_MAX)
        return fail(why, n, "time out of range");
    return true;
}

bool engine_check(const struct engine *e, char *why, size_t why_cap)
{
    struct check_sums s = {
        .reserved = calloc((size_t)e->skus_count + 1, sizeof(int64_t)),
        .sold = calloc((size_t)e->skus_count + 1, sizeof(int64_t)),
        .limited = calloc((size_t)e->limit_slots.high_water + 1, sizeof(int64_t)),
    };
    bool ok = s.reserved && s.sold && s.limited;
    if (!ok)
        (void)fail(why, why_cap, "out of memory for the check");
    uint32_t timers = 0;
    ok = ok && check_orders(e, &s, &timers, why, why_cap);
    ok = ok && check_holds(e, &s, &timers, why, why_cap);
    ok = ok && check_skus(e, &s, why, why_cap);
    ok = ok && check_accounts(e, why, why_cap);
    ok = ok && check_limits(e, &s, why, why_cap);
    ok = ok && check_timers_requests(e, timers, why, why_cap);
    if (ok && engine_slots_live(&e->chunk_slots) != s.chunks)
        ok = fail(why, why_cap, "item chunks: %u in use, rows need %u",
                  engine_slots_live(&e->chunk_slots), s.chunks);
    if (ok && locks_check(&e->locks, why, why_cap) != 0)
        ok = false;
    free(s.reserved);
    free(s.sold);
    free(s.limited);
    return ok;
}
