/*
 * Engine snapshots: the whole state of a partition as one versioned, checksummed byte stream.
 * wal/ writes them to files; a new replica loads one and replays the log after it.
 *
 * Layout (little-endian; "slots" sections carry a table's free list so that a loaded engine
 * hands out the same slots as the one that saved, which keeps every later snapshot identical):
 *
 *   u64 magic "SMENGSN1" | u32 version (2; version 1 is still loaded, see holds)
 *   config: u32 skus_max orders_max holds_max accounts_max limit_rows_max item_chunks_max
 *           request_ids_max | i64 order_retention_ms hold_retention_ms
 *           | u32 locks: sessions_max locks_max holds_max waiters_max permits_max reentry_max
 *   state:  u64 last_index | i64 now_ms deposits_total withdrawals_total
 *   skus:   u32 n, then n x (str8 name, i64 stocked available reserved sold limit price)
 *   accounts: u32 n, then n x (u64 id.lo id.hi, i64 balance overdraft)
 *   orders: slots, u32 live, then live x (u32 slot, u64 id.lo id.hi user.lo user.hi,
 *           i64 at_ms total_cents, u64 payment, u8 state paid_external, items)
 *   holds:  slots, u32 live, then live x (u32 slot, u64 txid.lo txid.hi, i64 at_ms, u8 state,
 *           u8 has_user, u64 user.lo user.hi, items; an aborted hold that was never prepared
 *           has 0 items; a hold without a user has has_user 0 and a zero user). Version 1
 *           had no has_user and user: its holds load without a user.
 *   limits: slots, u32 live, then live x (u32 slot, u64 user.lo user.hi, u32 sku count)
 *   requests: u32 head count, then count x (u64 id.lo id.hi args_hash, i64 value, u64 value2,
 *           u32 aux, u8 kind, i16 err), oldest first
 *   locks:  locks_save's stream (locks.c)
 *   u64 XXH3-64 of every byte before it
 *
 *   slots = u32 high_water, u32 free_count, free_count x u32 (bottom of the stack first)
 *   items = u8 count, count x (u32 sku slot, u32 quantity)
 *
 * Rows are written in slot order, so the same state always gives the same bytes, and timers
 * (rebuilt from the rows) and index layouts (rebuilt by inserting) never appear. The checksum is
 * XXH3-64 rather than CRC32C: it is already linked for keys, runs at memory speed without
 * special instructions (a snapshot of 10^7 orders is ~1 GB), and gives 64 bits of detection;
 * CRC32C's guaranteed burst detection matters for wal/'s short records, where it is used.
 *
 * Loading trusts nothing: every count, slot, state and reference is range-checked, rows out of
 * slot order are refused, and the loaded state must pass engine_check before it is accepted
 * (which also refuses duplicate orders and request ids: a second row with the same digest is not
 * the one its index lookup finds). A stream that loads saves back to the same bytes.
 */
#include <endian.h>
#include <stdio.h>
#include <xxhash.h>

#include "engine/engine_internal.h"
#include "util/buf.h"

#define SNAPSHOT_MAGIC                0x314e53474e454d53ULL /* "SMENGSN1" read little-endian */
#define SNAPSHOT_VERSION              2u
#define SNAPSHOT_VERSION_NO_HOLD_USER 1u /* still loaded: holds without users */

static void put_config(struct sm_wbuf *w, const struct engine_config *c)
{
    sm_wbuf_u32(w, c->skus_max);
    sm_wbuf_u32(w, c->orders_max);
    sm_wbuf_u32(w, c->holds_max);
    sm_wbuf_u32(w, c->accounts_max);
    sm_wbuf_u32(w, c->limit_rows_max);
    sm_wbuf_u32(w, c->item_chunks_max);
    sm_wbuf_u32(w, c->request_ids_max);
    sm_wbuf_i64(w, c->order_retention_ms);
    sm_wbuf_i64(w, c->hold_retention_ms);
    sm_wbuf_u32(w, c->locks.sessions_max);
    sm_wbuf_u32(w, c->locks.locks_max);
    sm_wbuf_u32(w, c->locks.holds_max);
    sm_wbuf_u32(w, c->locks.waiters_max);
    sm_wbuf_u32(w, c->locks.permits_max);
    sm_wbuf_u32(w, c->locks.reentry_max);
}

static void get_config(struct sm_rbuf *r, struct engine_config *c)
{
    memset(c, 0, sizeof *c);
    c->skus_max = sm_rbuf_u32(r);
    c->orders_max = sm_rbuf_u32(r);
    c->holds_max = sm_rbuf_u32(r);
    c->accounts_max = sm_rbuf_u32(r);
    c->limit_rows_max = sm_rbuf_u32(r);
    c->item_chunks_max = sm_rbuf_u32(r);
    c->request_ids_max = sm_rbuf_u32(r);
    c->order_retention_ms = sm_rbuf_i64(r);
    c->hold_retention_ms = sm_rbuf_i64(r);
    c->locks.sessions_max = sm_rbuf_u32(r);
    c->locks.locks_max = sm_rbuf_u32(r);
    c->locks.holds_max = sm_rbuf_u32(r);
    c->locks.waiters_max = sm_rbuf_u32(r);
    c->locks.permits_max = sm_rbuf_u32(r);
    c->locks.reentry_max = sm_rbuf_u32(r);
}

static bool config_same(const struct engine_config *a, const struct engine_config *b)
{
    return a->skus_max == b->skus_max && a->orders_max == b->orders_max &&
           a->holds_max == b->holds_max && a->accounts_max == b->accounts_max &&
           a->limit_rows_max == b->limit_rows_max && a->item_chunks_max == b->item_chunks_max &&
           a->request_ids_max == b->request_ids_max &&
           a->order_retention_ms == b->order_retention_ms &&
           a->hold_retention_ms == b->hold_retention_ms &&
           memcmp(&a->locks, &b->locks, sizeof a->locks) == 0;
}

/* ---- save ----------------------------------------------------------------------------------- */

static void put_slots(struct sm_wbuf *w, const struct engine_slots *s)
{
    sm_wbuf_u32(w, s->high_water);
    sm_wbuf_u32(w, s->free_count);
    sm_wbuf_put(w, s->free, (size_t)s->free_count * sizeof(uint32_t));
}

/* An order row's fixed part (slot, digests, times, payment, state): encoded straight into a
 * byte array, because the per-field writer calls dominated saving 10^7 orders. */
#define ORDER_ROW_BYTES (4 + 32 + 24 + 2)

static uint8_t *le_put32(uint8_t *p, uint32_t v)
{
    v = htole32(v);
    memcpy(p, &v, 4);
    return p + 4;
}

static uint8_t *le_put64(uint8_t *p, uint64_t v)
{
    v = htole64(v);
    memcpy(p, &v, 8);
    return p + 8;
}

static const uint8_t *le_get32(const uint8_t *p, uint32_t *v)
{
    memcpy(v, p, 4);
    *v = le32toh(*v);
    return p + 4;
}

static const uint8_t *le_get64(const uint8_t *p, uint64_t *v)
{
    memcpy(v, p, 8);
    *v = le64toh(*v);
    return p + 8;
}

static void put_items(struct sm_wbuf *w, const struct engine *e, const struct engine_items *it)
{
    uint8_t buf[1 + 8 * SM_ORDER_ITEMS_MAX], *p = buf;
    *p++ = it->count;
    if (it->count > 0) {
        struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
        uint32_t n = engine_items_get(e, it, items);
        for (uint32_t i = 0; i < n; i++) {
            p = le_put32(p, items[i].sku);
            p = le_put32(p, items[i].quantity);
        }
    }
    sm_wbuf_put(w, buf, (size_t)(p - buf));
}

static void put_orders(struct sm_wbuf *w, const struct engine *e)
{
    put_slots(w, &e->order_slots);
    sm_wbuf_u32(w, engine_slots_live(&e->order_slots));
    for (uint32_t i = 0; i < e->order_slots.high_water; i++) {
        const struct engine_order *o = &e->orders[i];
        if (o->state == ORDER_FREE)
            continue;
        uint8_t row[ORDER_ROW_BYTES], *p = row;
        p = le_put32(p, i);
        p = le_put64(p, o->id.lo);
        p = le_put64(p, o->id.hi);
        p = le_put64(p, o->user.lo);
        p = le_put64(p, o->user.hi);
        p = le_put64(p, (uint64_t)o->at_ms);
        p = le_put64(p, (uint64_t)o->total_cents);
        p = le_put64(p, o->payment);
        *p++ = o->state;
        *p++ = o->paid_external;
        ASSERT(p == row + sizeof row);
        sm_wbuf_put(w, row, sizeof row);
        put_items(w, e, &o->items);
    }
}

static void put_holds(struct sm_wbuf *w, const struct engine *e)
{
    put_slots(w, &e->hold_slots);
    sm_wbuf_u32(w, engine_slots_live(&e->hold_slots));
    for (uint32_t i = 0; i < e->hold_slots.high_water; i++) {
        const struct engine_hold *h = &e->holds[i];
        if (h->state == HOLD_FREE)
            continue;
        sm_wbuf_u32(w, i);
        sm_wbuf_u64(w, h->txid.lo);
        sm_wbuf_u64(w, h->txid.hi);
        sm_wbuf_i64(w, h->at_ms);
        sm_wbuf_u8(w, h->state);
        sm_wbuf_u8(w, h->has_user);
        sm_wbuf_u64(w, h->user.lo);
        sm_wbuf_u64(w, h->user.hi);
        put_items(w, e, &h->items);
    }
}

/* Limit rows have no state byte; a freed row has count 0 (limit_add in stock.c). */
static bool limit_live(const struct engine *e, uint32_t slot)
{
    return e->limits[slot].count > 0;
}

static void put_limits(struct sm_wbuf *w, const struct engine *e)
{
    put_slots(w, &e->limit_slots);
    sm_wbuf_u32(w, engine_slots_live(&e->limit_slots));
    for (uint32_t i = 0; i < e->limit_slots.high_water; i++) {
        if (!limit_live(e, i))
            continue;
        const struct engine_limit *l = &e->limits[i];
        sm_wbuf_u32(w, i);
        sm_wbuf_u64(w, l->user.lo);
        sm_wbuf_u64(w, l->user.hi);
        sm_wbuf_u32(w, l->sku);
        sm_wbuf_u32(w, l->count);
    }
}

#define REQUEST_ROW_BYTES (24 + 16 + 4 + 1 + 2)

static void put_requests(struct sm_wbuf *w, const struct engine *e)
{
    sm_wbuf_u32(w, e->requests_head);
    sm_wbuf_u32(w, e->requests_count);
    for (uint32_t i = 0; i < e->requests_count; i++) {
        const struct engine_request *q =
            &e->requests[((uint64_t)e->requests_head + i) % e->cfg.request_ids_max];
        uint8_t row[REQUEST_ROW_BYTES], *p = row;
        p = le_put64(p, q->id.lo);
        p = le_put64(p, q->id.hi);
        p = le_put64(p, q->args_hash);
        p = le_put64(p, (uint64_t)q->result.value);
        p = le_put64(p, q->result.value2);
        p = le_put32(p, q->result.aux);
        *p++ = q->result.kind;
        uint16_t err = htole16((uint16_t)q->result.err);
        memcpy(p, &err, 2);
        sm_wbuf_put(w, row, sizeof row);
    }
}

int engine_save(const struct engine *e, struct sm_wbuf *w)
{
    size_t start = w->len;
    sm_wbuf_u64(w, SNAPSHOT_MAGIC);
    sm_wbuf_u32(w, SNAPSHOT_VERSION);
    put_config(w, &e->cfg);
    sm_wbuf_u64(w, e->last_index);
    sm_wbuf_i64(w, e->now_ms);
    sm_wbuf_i64(w, e->deposits_total_cents);
    sm_wbuf_i64(w, e->withdrawals_total_cents);
    sm_wbuf_u32(w, e->skus_count);
    for (uint32_t i = 0; i < e->skus_count; i++) {
        const struct engine_sku *s = &e->skus[i];
        sm_wbuf_str8(w, s->name, s->name_len);
        sm_wbuf_i64(w, s->stocked);
        sm_wbuf_i64(w, s->available);
        sm_wbuf_i64(w, s->reserved);
        sm_wbuf_i64(w, s->sold);
        sm_wbuf_i64(w, s->limit_per_user);
        sm_wbuf_i64(w, s->price_cents);
    }
    sm_wbuf_u32(w, e->accounts_count);
    for (uint32_t i = 0; i < e->accounts_count; i++) {
        const struct engine_account *a = &e->accounts[i];
        sm_wbuf_u64(w, a->id.lo);
        sm_wbuf_u64(w, a->id.hi);
        sm_wbuf_i64(w, a->balance_cents);
        sm_wbuf_i64(w, a->overdraft_cents);
    }
    put_orders(w, e);
    put_holds(w, e);
    put_limits(w, e);
    put_requests(w, e);
    int rc = locks_save(&e->locks, w);
    if (w->failed || rc != 0)
        return w->fixed ? SM_E_TOOLARGE : SM_E_NOMEM;
    sm_wbuf_u64(w, XXH3_64bits(w->data + start, w->len - start));
    if (w->failed)
        return w->fixed ? SM_E_TOOLARGE : SM_E_NOMEM;
    return 0;
}

/* ---- load ----------------------------------------------------------------------------------- */

static int open_stream(const uint8_t *data, size_t len, struct sm_rbuf *r,
                       struct engine_config *cfg, uint32_t *version)
{
    if (len < 8 + 4 + 8)
        return SM_E_CORRUPT;
    uint64_t sum;
    memcpy(&sum, data + len - 8, 8);
    sum = le64toh(sum);
    if (XXH3_64bits(data, len - 8) != sum)
        return SM_E_CORRUPT;
    sm_rbuf_init(r, data, len - 8);
    if (sm_rbuf_u64(r) != SNAPSHOT_MAGIC)
        return SM_E_CORRUPT;
    *version = sm_rbuf_u32(r);
    if (*version != SNAPSHOT_VERSION && *version != SNAPSHOT_VERSION_NO_HOLD_USER)
        return SM_E_CORRUPT;
    get_config(r, cfg);
    return sm_rbuf_ok(r) ? 0 : SM_E_CORRUPT;
}

int engine_snapshot_config(const uint8_t *data, size_t len, struct engine_config *cfg)
{
    struct sm_rbuf r;
    uint32_t version;
    return open_stream(data, len, &r, cfg, &version);
}

static void get_slots(struct sm_rbuf *r, struct engine_slots *s)
{
    uint32_t high_water = sm_rbuf_u32(r), free_count = sm_rbuf_u32(r);
    if (high_water > s->capacity || free_count > high_water) {
        sm_rbuf_fail(r);
        return;
    }
    const uint8_t *p = sm_rbuf_take(r, (size_t)free_count * 4);
    if (p == NULL)
        return;
    for (uint32_t i = 0; i < free_count; i++) {
        uint32_t v;
        memcpy(&v, p + 4 * (size_t)i, 4);
        s->free[i] = le32toh(v);
        if (s->free[i] >= high_water) {
            sm_rbuf_fail(r);
            return; /* counts stay 0: nothing below may index by a bad slot */
        }
    }
    s->high_water = high_water;
    s->free_count = free_count;
}

static void get_items(struct sm_rbuf *r, struct engine *e, struct engine_items *it,
                      bool may_be_empty)
{
    it->count = 0;
    it->chunk = ENGINE_NONE;
    uint32_t n = sm_rbuf_u8(r);
    if (n == 0 && may_be_empty)
        return;
    if (n < 1 || n > SM_ORDER_ITEMS_MAX ||
        engine_slots_full(&e->chunk_slots, engine_chunks_needed(n))) {
        sm_rbuf_fail(r);
        return;
    }
    struct engine_stored_item items[SM_ORDER_ITEMS_MAX];
    const uint8_t *p = sm_rbuf_take(r, 8 * (size_t)n);
    if (p == NULL)
        return;
    for (uint32_t i = 0; i < n; i++) {
        p = le_get32(p, &items[i].sku);
        p = le_get32(p, &items[i].quantity);
        if (items[i].sku >= e->skus_count || items[i].quantity < 1 ||
            items[i].quantity > SM_ORDER_ITEM_QUANTITY_MAX)
            sm_rbuf_fail(r);
    }
    if (sm_rbuf_ok(r))
        engine_items_put(e, it, items, n);
}

/* The first checks shared by every slotted table's rows: slot in range and above the previous
 * row's (rows come in slot order, as engine_save writes them, so a stream that loads is the one
 * that state saves to: the format is canonical). *next is the lowest slot allowed next. */
static uint32_t get_row_slot(struct sm_rbuf *r, const struct engine_slots *s, uint32_t *next)
{
    uint32_t slot = sm_rbuf_u32(r);
    if (!sm_rbuf_ok(r) || slot >= s->high_water || slot < *next) {
        sm_rbuf_fail(r);
        return ENGINE_NONE;
    }
    *next = slot + 1;
    return slot;
}

static void get_skus_accounts(struct sm_rbuf *r, struct engine *e)
{
    uint32_t n = sm_rbuf_u32(r);
    if (n > e->cfg.skus_max)
        sm_rbuf_fail(r);
    for (uint32_t i = 0; i < n && sm_rbuf_ok(r); i++) {
        struct engine_sku *s = &e->skus[i];
        struct engine_key name;
        name.ptr = sm_rbuf_str8(r, &name.len);
        if (name.ptr == NULL || name.len < 1 || name.len > SM_KEY_BYTES_MAX ||
            engine_sku_find(e, &name) != SM_INDEX_NONE) {
            sm_rbuf_fail(r);
            return;
        }
        s->name_len = (uint8_t)name.len;
        memcpy(s->name, name.ptr, name.len);
        s->stocked = sm_rbuf_i64(r);
        s->available = sm_rbuf_i64(r);
        s->reserved = sm_rbuf_i64(r);
        s->sold = sm_rbuf_i64(r);
        s->limit_per_user = sm_rbuf_i64(r);
        s->price_cents = sm_rbuf_i64(r);
        if (s->limit_per_user < 0 || s->price_cents < 0)
            sm_rbuf_fail(r);
        int rc = sm_index_insert(&e->sku_index, XXH3_64bits(s->name, s->name_len), i);
        ASSERT(rc == 0);
        e->skus_count = i + 1;
    }
    n = sm_rbuf_u32(r);
    if (n > e->cfg.accounts_max)
        sm_rbuf_fail(r);
    for (uint32_t i = 0; i < n && sm_rbuf_ok(r); i++) {
        struct engine_account *a = &e->accounts[i];
        a->id.lo = sm_rbuf_u64(r);
        a->id.hi = sm_rbuf_u64(r);
        a->balance_cents = sm_rbuf_i64(r);
        a->overdraft_cents = sm_rbuf_i64(r);
        if (!sm_rbuf_ok(r) || engine_account_find(e, a->id) != SM_INDEX_NONE) {
            sm_rbuf_fail(r);
            return;
        }
        int rc = sm_index_insert(&e->account_index, a->id.lo, i);
        ASSERT(rc == 0);
        e->accounts_count = i + 1;
    }
}

#define LOAD_AHEAD 16

static void prefetch_insert(const struct sm_index *ix, uint64_t h)
{
    __builtin_prefetch(&ix->cells[sm_index_tag(h) & ix->mask], 1);
}

/* Rows are read first and indexed in a second pass, with inserts of rows LOAD_AHEAD further on
 * started early: an insert is a random access, and overlapping them is most of load's speed. */
static void index_orders(struct engine *e)
{
    uint32_t ahead = 0;
    for (uint32_t i = 0; i < e->order_slots.high_water; i++) {
        for (; ahead < e->order_slots.high_water && ahead < i + LOAD_AHEAD; ahead++)
            if (e->orders[ahead].state != ORDER_FREE)
                prefetch_insert(&e->order_index, e->orders[ahead].id.lo);
        if (e->orders[i].state == ORDER_FREE)
            continue;
        int rc = sm_index_insert(&e->order_index, e->orders[i].id.lo, i);
        ASSERT(rc == 0);
    }
}

static bool order_scheduled(uint8_t state)
{
    return state != ORDER_PAID && state != ORDER_SHIPPED;
}

static void get_orders(struct sm_rbuf *r, struct engine *e)
{
    get_slots(r, &e->order_slots);
    uint32_t live = sm_rbuf_u32(r), next = 0;
    if (!sm_rbuf_ok(r) || (uint64_t)live + e->order_slots.free_count != e->order_slots.high_water)
        sm_rbuf_fail(r);
    for (uint32_t i = 0; i < live && sm_rbuf_ok(r); i++) {
        uint32_t slot = get_row_slot(r, &e->order_slots, &next);
        if (slot == ENGINE_NONE || e->orders[slot].state != ORDER_FREE) {
            sm_rbuf_fail(r);
            return;
        }
        struct engine_order *o = &e->orders[slot];
        const uint8_t *p = sm_rbuf_take(r, ORDER_ROW_BYTES - 4);
        if (p == NULL)
            return;
        uint64_t at, total;
        p = le_get64(p, &o->id.lo);
        p = le_get64(p, &o->id.hi);
        p = le_get64(p, &o->user.lo);
        p = le_get64(p, &o->user.hi);
        p = le_get64(p, &at);
        p = le_get64(p, &total);
        p = le_get64(p, &o->payment);
        o->at_ms = (int64_t)at;
        o->total_cents = (int64_t)total;
        uint8_t state = *p++;
        o->paid_external = *p;
        o->timer = ENGINE_NONE;
        get_items(r, e, &o->items, false);
        if (!sm_rbuf_ok(r) || state == ORDER_FREE || state >= ORDER_STATE_COUNT ||
            o->paid_external > 1) {
            sm_rbuf_fail(r);
            return;
        }
        o->state = state;
        if (order_scheduled(state))
            engine_timer_add(e, o->at_ms, slot);
    }
    index_orders(e);
    /* Free slots must be distinct and empty: mark them through the unused timer field. */
    for (uint32_t i = 0; i < e->order_slots.free_count && sm_rbuf_ok(r); i++) {
        struct engine_order *o = &e->orders[e->order_slots.free[i]];
        if (o->state != ORDER_FREE || o->timer == 1)
            sm_rbuf_fail(r);
        o->timer = 1;
    }
    for (uint32_t i = 0; i < e->order_slots.free_count; i++)
        e->orders[e->order_slots.free[i]].timer = ENGINE_NONE;
}

static void get_holds(struct sm_rbuf *r, struct engine *e, uint32_t version)
{
    get_slots(r, &e->hold_slots);
    uint32_t live = sm_rbuf_u32(r), next = 0;
    if (!sm_rbuf_ok(r) || (uint64_t)live + e->hold_slots.free_count != e->hold_slots.high_water)
        sm_rbuf_fail(r);
    for (uint32_t i = 0; i < live && sm_rbuf_ok(r); i++) {
        uint32_t slot = get_row_slot(r, &e->hold_slots, &next);
        if (slot == ENGINE_NONE || e->holds[slot].state != HOLD_FREE) {
            sm_rbuf_fail(r);
            return;
        }
        struct engine_hold *h = &e->holds[slot];
        h->txid.lo = sm_rbuf_u64(r);
        h->txid.hi = sm_rbuf_u64(r);
        h->at_ms = sm_rbuf_i64(r);
        uint8_t state = sm_rbuf_u8(r);
        if (version != SNAPSHOT_VERSION_NO_HOLD_USER) {
            h->has_user = sm_rbuf_u8(r);
            h->user.lo = sm_rbuf_u64(r);
            h->user.hi = sm_rbuf_u64(r);
            /* One form per state: a hold without a user has a zero user (canonical bytes). */
            if (h->has_user > 1 || (!h->has_user && (h->user.lo | h->user.hi) != 0))
                sm_rbuf_fail(r);
        }
        h->timer = ENGINE_NONE;
        get_items(r, e, &h->items, state == HOLD_ABORTED);
        if (!sm_rbuf_ok(r) || state == HOLD_FREE || state >= HOLD_STATE_COUNT ||
            engine_hold_find(e, h->txid) != SM_INDEX_NONE) {
            sm_rbuf_fail(r);
            return;
        }
        h->state = state;
        int rc = sm_index_insert(&e->hold_index, h->txid.lo, slot);
        ASSERT(rc == 0);
        engine_timer_add(e, h->at_ms, slot | ENGINE_TIMER_HOLD);
    }
    for (uint32_t i = 0; i < e->hold_slots.free_count && sm_rbuf_ok(r); i++) {
        struct engine_hold *h = &e->holds[e->hold_slots.free[i]];
        if (h->state != HOLD_FREE || h->timer == 1)
            sm_rbuf_fail(r);
        h->timer = 1;
    }
    for (uint32_t i = 0; i < e->hold_slots.free_count; i++)
        e->holds[e->hold_slots.free[i]].timer = ENGINE_NONE;
}

static void get_limits(struct sm_rbuf *r, struct engine *e)
{
    get_slots(r, &e->limit_slots);
    uint32_t live = sm_rbuf_u32(r), next = 0;
    if (!sm_rbuf_ok(r) || (uint64_t)live + e->limit_slots.free_count != e->limit_slots.high_water)
        sm_rbuf_fail(r);
    for (uint32_t i = 0; i < live && sm_rbuf_ok(r); i++) {
        uint32_t slot = get_row_slot(r, &e->limit_slots, &next);
        if (slot == ENGINE_NONE || e->limits[slot].count != 0) {
            sm_rbuf_fail(r);
            return;
        }
        struct engine_limit *l = &e->limits[slot];
        l->user.lo = sm_rbuf_u64(r);
        l->user.hi = sm_rbuf_u64(r);
        l->sku = sm_rbuf_u32(r);
        uint32_t count = sm_rbuf_u32(r);
        if (!sm_rbuf_ok(r) || count == 0 || l->sku >= e->skus_count ||
            engine_limit_find(e, l->user, l->sku) != SM_INDEX_NONE) {
            sm_rbuf_fail(r);
            return;
        }
        l->count = count;
        int rc = sm_index_insert(&e->limit_index, engine_limit_hash(l->user, l->sku), slot);
        ASSERT(rc == 0);
    }
    for (uint32_t i = 0; i < e->limit_slots.free_count && sm_rbuf_ok(r); i++)
        if (e->limits[e->limit_slots.free[i]].count != 0)
            sm_rbuf_fail(r);
}

/* A stored result must render without tripping an assertion. */
static bool result_valid(const struct engine *e, const struct engine_result *q)
{
    switch (q->kind) {
    case ENGINE_REPLY_OK:
    case ENGINE_REPLY_INT:
        return q->err == 0 && q->aux == 0;
    case ENGINE_RESULT_GRANT:
        return q->err == 0 && (q->aux & 3) >= LOCKS_GRANTED && (q->aux & 3) <= LOCKS_QUEUED;
    case ENGINE_REPLY_ERR:
        if (q->err >= 0 || q->err < -SM_ERR_COUNT)
            return false;
        if (q->err == SM_E_SOLDOUT || q->err == SM_E_LIMIT)
            return q->aux == ENGINE_NONE || q->aux < e->skus_count;
        if (q->err == SM_E_STATE)
            return q->aux < ORDER_STATE_COUNT || q->aux == STATE_MSG_LOCK_KIND ||
                   (q->aux >= STATE_MSG_HOLD && q->aux < STATE_MSG_HOLD + HOLD_STATE_COUNT);
        return true;
    default:
        return false;
    }
}

static void get_requests(struct sm_rbuf *r, struct engine *e)
{
    uint32_t cap = e->cfg.request_ids_max;
    uint32_t head = sm_rbuf_u32(r), count = sm_rbuf_u32(r);
    if (head >= cap || count > cap) {
        sm_rbuf_fail(r);
        return;
    }
    e->requests_head = head;
    for (uint32_t i = 0; i < count && sm_rbuf_ok(r); i++) {
        uint32_t slot = (uint32_t)(((uint64_t)head + i) % cap);
        struct engine_request *q = &e->requests[slot];
        const uint8_t *p = sm_rbuf_take(r, REQUEST_ROW_BYTES);
        if (p == NULL)
            return;
        uint64_t value;
        p = le_get64(p, &q->id.lo);
        p = le_get64(p, &q->id.hi);
        p = le_get64(p, &q->args_hash);
        p = le_get64(p, &value);
        p = le_get64(p, &q->result.value2);
        p = le_get32(p, &q->result.aux);
        q->result.value = (int64_t)value;
        q->result.kind = *p++;
        uint16_t err;
        memcpy(&err, p, 2);
        q->result.err = (int16_t)le16toh(err);
        if (!sm_rbuf_ok(r) || !result_valid(e, &q->result)) {
            sm_rbuf_fail(r);
            return;
        }
        e->requests_count = i + 1;
    }
    /* Indexed in a second pass with lookups started ahead, so that cache misses overlap. */
    for (uint32_t i = 0; i < e->requests_count; i++) {
        uint32_t slot = (uint32_t)(((uint64_t)head + i) % cap);
        if (i + LOAD_AHEAD < e->requests_count)
            prefetch_insert(&e->request_index,
                            e->requests[((uint64_t)head + i + LOAD_AHEAD) % cap].id.lo);
        int rc = sm_index_insert(&e->request_index, e->requests[slot].id.lo, slot);
        ASSERT(rc == 0);
    }
}

static int load_body(struct engine *e, struct sm_rbuf *r, uint32_t version)
{
    e->last_index = sm_rbuf_u64(r);
    e->now_ms = sm_rbuf_i64(r);
    e->deposits_total_cents = sm_rbuf_i64(r);
    e->withdrawals_total_cents = sm_rbuf_i64(r);
    if (e->now_ms < 0 || e->now_ms > SM_ENGINE_TIME_MS_MAX)
        sm_rbuf_fail(r);
    get_skus_accounts(r, e);
    if (sm_rbuf_ok(r))
        get_orders(r, e);
    if (sm_rbuf_ok(r))
        get_holds(r, e, version);
    if (sm_rbuf_ok(r))
        get_limits(r, e);
    if (sm_rbuf_ok(r))
        get_requests(r, e);
    if (!sm_rbuf_ok(r) || locks_load(&e->locks, r) != 0)
        return SM_E_CORRUPT;
    if (!sm_rbuf_ok(r) || sm_rbuf_left(r) != 0)
        return SM_E_CORRUPT;
    char why[160];
    if (!engine_check(e, why, sizeof why))
        return SM_E_CORRUPT;
    return 0;
}

int engine_load(struct engine *e, const uint8_t *data, size_t len)
{
    struct sm_rbuf r;
    struct engine_config cfg;
    uint32_t version = 0;
    int rc = open_stream(data, len, &r, &cfg, &version);
    if (rc == 0 && !config_same(&cfg, &e->cfg))
        return SM_E_BADARG;
    int reset_rc = engine_reset(e);
    if (reset_rc != 0)
        return reset_rc;
    if (rc == 0)
        rc = load_body(e, &r, version);
    if (rc != 0) {
        reset_rc = engine_reset(e);
        return reset_rc != 0 ? reset_rc : SM_E_CORRUPT;
    }
    return 0;
}
