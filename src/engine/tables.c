/*
 * The engine's table machinery: slot free lists, key digests and index lookups, item chunks and
 * the timer heap. Everything here works on memory allocated by engine_init and never allocates.
 */
#include <stdlib.h>
#define XXH_INLINE_ALL /* the short keys of the hot path hash faster inlined */
#include <xxhash.h>

#include "engine/engine_internal.h"

struct engine_digest engine_digest_of(const struct engine_key *k)
{
    XXH128_hash_t h = XXH3_128bits(k->ptr, k->len);
    return (struct engine_digest){.lo = h.low64, .hi = h.high64};
}

/* ---- slots ---------------------------------------------------------------------------------- */

int engine_slots_init(struct engine_slots *s, uint32_t capacity)
{
    memset(s, 0, sizeof *s);
    s->free = malloc((size_t)capacity * sizeof *s->free);
    if (s->free == NULL)
        return SM_E_NOMEM;
    s->capacity = capacity;
    return 0;
}

void engine_slots_free(struct engine_slots *s)
{
    free(s->free);
    memset(s, 0, sizeof *s);
}

void engine_slots_reset(struct engine_slots *s)
{
    s->free_count = 0;
    s->high_water = 0;
}

uint32_t engine_slots_alloc(struct engine_slots *s)
{
    ASSERT(!engine_slots_full(s, 1));
    if (s->free_count > 0)
        return s->free[--s->free_count];
    ASSERT(s->high_water < s->capacity);
    return s->high_water++;
}

void engine_slots_release(struct engine_slots *s, uint32_t slot)
{
    ASSERT(slot < s->high_water);
    ASSERT(s->free_count < s->high_water);
    s->free[s->free_count++] = slot;
}

/* ---- lookups -------------------------------------------------------------------------------- */

struct find_ctx {
    const struct engine *e;
    const struct engine_key *name;
    struct engine_digest id;
    uint32_t sku;
};

static bool sku_eq(const void *ctx, uint32_t slot)
{
    const struct find_ctx *c = ctx;
    const struct engine_sku *s = &c->e->skus[slot];
    return s->name_len == c->name->len && memcmp(s->name, c->name->ptr, s->name_len) == 0;
}

uint32_t engine_sku_find(const struct engine *e, const struct engine_key *name)
{
    struct find_ctx c = {.e = e, .name = name};
    return sm_index_find(&e->sku_index, XXH3_64bits(name->ptr, name->len), sku_eq, &c);
}

static bool account_eq(const void *ctx, uint32_t slot)
{
    const struct find_ctx *c = ctx;
    return engine_digest_eq(c->e->accounts[slot].id, c->id);
}

uint32_t engine_account_find(const struct engine *e, struct engine_digest id)
{
    struct find_ctx c = {.e = e, .id = id};
    return sm_index_find(&e->account_index, id.lo, account_eq, &c);
}

static bool order_eq(const void *ctx, uint32_t slot)
{
    const struct find_ctx *c = ctx;
    return engine_digest_eq(c->e->orders[slot].id, c->id);
}

uint32_t engine_order_find(const struct engine *e, struct engine_digest id)
{
    struct find_ctx c = {.e = e, .id = id};
    return sm_index_find(&e->order_index, id.lo, order_eq, &c);
}

static bool hold_eq(const void *ctx, uint32_t slot)
{
    const struct find_ctx *c = ctx;
    return engine_digest_eq(c->e->holds[slot].txid, c->id);
}

uint32_t engine_hold_find(const struct engine *e, struct engine_digest id)
{
    struct find_ctx c = {.e = e, .id = id};
    return sm_index_find(&e->hold_index, id.lo, hold_eq, &c);
}

static bool limit_eq(const void *ctx, uint32_t slot)
{
    const struct find_ctx *c = ctx;
    const struct engine_limit *l = &c->e->limits[slot];
    return l->sku == c->sku && engine_digest_eq(l->user, c->id);
}

uint64_t engine_limit_hash(struct engine_digest user, uint32_t sku)
{
    return user.lo ^ ((uint64_t)sku * 0x9e3779b97f4a7c15ULL);
}

uint32_t engine_limit_find(const struct engine *e, struct engine_digest user, uint32_t sku)
{
    struct find_ctx c = {.e = e, .id = user, .sku = sku};
    return sm_index_find(&e->limit_index, engine_limit_hash(user, sku), limit_eq, &c);
}

/* ---- items ---------------------------------------------------------------------------------- */

uint32_t engine_items_get(const struct engine *e, const struct engine_items *it,
                          struct engine_stored_item *out)
{
    ASSERT(it->count >= 1 && it->count <= SM_ORDER_ITEMS_MAX);
    out[0] = it->first;
    uint32_t chunk = it->chunk;
    for (uint32_t i = 1; i < it->count; i++) {
        uint32_t k = (i - 1) % ENGINE_CHUNK_ITEMS;
        ASSERT(chunk < e->chunk_slots.high_water);
        out[i] = e->chunks[chunk].items[k];
        if (k == ENGINE_CHUNK_ITEMS - 1)
            chunk = e->chunks[chunk].next;
    }
    return it->count;
}

void engine_items_put(struct engine *e, struct engine_items *it,
                      const struct engine_stored_item *items, uint32_t count)
{
    ASSERT(count >= 1 && count <= SM_ORDER_ITEMS_MAX);
    ASSERT(!engine_slots_full(&e->chunk_slots, engine_chunks_needed(count)));
    it->count = (uint8_t)count;
    it->first = items[0];
    it->chunk = ENGINE_NONE;
    uint32_t *link = &it->chunk;
    for (uint32_t i = 1; i < count; i += ENGINE_CHUNK_ITEMS) {
        uint32_t c = engine_slots_alloc(&e->chunk_slots);
        *link = c;
        uint32_t n = count - i < ENGINE_CHUNK_ITEMS ? count - i : ENGINE_CHUNK_ITEMS;
        memcpy(e->chunks[c].items, &items[i], n * sizeof items[0]);
        e->chunks[c].next = ENGINE_NONE;
        link = &e->chunks[c].next;
    }
}

void engine_items_release(struct engine *e, struct engine_items *it)
{
    uint32_t chunk = it->chunk;
    while (chunk != ENGINE_NONE) {
        uint32_t next = e->chunks[chunk].next;
        engine_slots_release(&e->chunk_slots, chunk);
        chunk = next;
    }
    it->chunk = ENGINE_NONE;
}

/* ---- timers: a binary min-heap on (at_ms, ref); ties broken by ref, so the order in which due
 * timers fire is a function of the set of timers, not of the heap's layout ----------------------
 */

uint32_t *engine_timer_pos(struct engine *e, uint32_t ref)
{
    if (ref & ENGINE_TIMER_HOLD)
        return &e->holds[ref & ~ENGINE_TIMER_HOLD].timer;
    return &e->orders[ref].timer;
}

static bool timer_less(const struct engine_timer *a, const struct engine_timer *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->ref < b->ref);
}

static void timer_place(struct engine *e, uint32_t pos, struct engine_timer t)
{
    e->timers[pos] = t;
    *engine_timer_pos(e, t.ref) = pos;
}

static void timer_sift(struct engine *e, uint32_t pos)
{
    struct engine_timer t = e->timers[pos];
    while (pos > 0 && timer_less(&t, &e->timers[(pos - 1) / 2])) {
        timer_place(e, pos, e->timers[(pos - 1) / 2]);
        pos = (pos - 1) / 2;
    }
    for (;;) {
        uint32_t child = 2 * pos + 1;
        if (child >= e->timers_count)
            break;
        if (child + 1 < e->timers_count && timer_less(&e->timers[child + 1], &e->timers[child]))
            child++;
        if (!timer_less(&e->timers[child], &t))
            break;
        timer_place(e, pos, e->timers[child]);
        pos = child;
    }
    timer_place(e, pos, t);
}

void engine_timer_add(struct engine *e, int64_t at_ms, uint32_t ref)
{
    ASSERT(*engine_timer_pos(e, ref) == ENGINE_NONE);
    ASSERT((uint64_t)e->timers_count < (uint64_t)e->cfg.orders_max + e->cfg.holds_max);
    uint32_t pos = e->timers_count++;
    timer_place(e, pos, (struct engine_timer){.at_ms = at_ms, .ref = ref});
    timer_sift(e, pos);
}

void engine_timer_remove(struct engine *e, uint32_t pos)
{
    ASSERT(pos < e->timers_count);
    *engine_timer_pos(e, e->timers[pos].ref) = ENGINE_NONE;
    uint32_t last = --e->timers_count;
    if (pos != last) {
        timer_place(e, pos, e->timers[last]);
        timer_sift(e, pos);
    }
}
