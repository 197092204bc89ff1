/*
 * Stock: SKUs with stocked = available + reserved + sold, and per-user purchase limits.
 *
 * Orders and holds move quantities between the counts through the helpers here, so the identity
 * is kept in one file: reserve (available -> reserved), release (reserved -> available), sell
 * (reserved -> sold), unsell (sold -> available, or sold and stocked down when written off).
 * A per-user limit counts what one user has reserved or bought of a SKU over the life of the
 * partition (a completed order still counts; a cancelled, expired or refunded one does not); its
 * row exists only while the count is above zero.
 */
#define XXH_INLINE_ALL /* the short keys of the hot path hash faster inlined */
#include <xxhash.h>

#include "engine/engine_internal.h"

static struct engine_result sku_create(struct engine *e, const struct engine_cmd *cmd)
{
    if (engine_sku_find(e, &cmd->key) != SM_INDEX_NONE)
        return engine_err(SM_E_EXISTS, 0);
    if (e->skus_count >= e->cfg.skus_max)
        return engine_err(SM_E_BUSY, 0);
    uint32_t slot = e->skus_count++;
    struct engine_sku *s = &e->skus[slot];
    memset(s, 0, sizeof *s);
    s->stocked = s->available = cmd->num;
    s->limit_per_user = cmd->num2;
    s->price_cents = cmd->num3;
    s->name_len = (uint8_t)cmd->key.len;
    memcpy(s->name, cmd->key.ptr, cmd->key.len);
    int rc = sm_index_insert(&e->sku_index, XXH3_64bits(cmd->key.ptr, cmd->key.len), slot);
    ASSERT(rc == 0); /* skus_count < skus_max */
    return engine_ok();
}

struct engine_result engine_sku_cmd(struct engine *e, const struct engine_cmd *cmd)
{
    if (cmd->type == ENGINE_SKU_CREATE)
        return sku_create(e, cmd);
    uint32_t slot = engine_sku_find(e, &cmd->key);
    if (slot == SM_INDEX_NONE)
        return engine_err(SM_E_NOTFOUND, 0);
    struct engine_sku *s = &e->skus[slot];
    if (cmd->type == ENGINE_SKU_RESTOCK) {
        int64_t stocked, available;
        if (__builtin_add_overflow(s->stocked, cmd->num, &stocked) ||
            __builtin_add_overflow(s->available, cmd->num, &available))
            return engine_err(SM_E_OVERFLOW, 0);
        s->stocked = stocked;
        s->available = available;
        return engine_int(s->available);
    }
    ASSERT(cmd->type == ENGINE_SKU_ADJUST);
    if (s->available < cmd->num)
        return engine_err(SM_E_SOLDOUT, slot);
    s->available -= cmd->num;
    s->stocked -= cmd->num;
    return engine_int(s->available);
}

struct engine_result engine_stock_check(const struct engine *e, const struct engine_cmd *cmd,
                                        const struct engine_digest *user,
                                        struct engine_stored_item *out, int64_t *total_cents,
                                        uint32_t *limit_rows_new)
{
    int64_t total = 0;
    uint32_t rows_new = 0;
    for (uint32_t i = 0; i < cmd->items_count; i++) {
        const struct engine_item *it = &cmd->items[i];
        uint32_t slot = engine_sku_find(e, &it->sku);
        if (slot == SM_INDEX_NONE)
            return engine_err(SM_E_NOTFOUND, 0);
        const struct engine_sku *s = &e->skus[slot];
        if (s->available < it->quantity)
            return engine_err(SM_E_SOLDOUT, slot);
        if (user != NULL && s->limit_per_user > 0) {
            uint32_t row = engine_limit_find(e, *user, slot);
            int64_t count = row == SM_INDEX_NONE ? 0 : e->limits[row].count;
            if (count + it->quantity > s->limit_per_user)
                return engine_err(SM_E_LIMIT, slot);
            rows_new += row == SM_INDEX_NONE;
        }
        int64_t cost;
        if (__builtin_mul_overflow(s->price_cents, it->quantity, &cost) ||
            __builtin_add_overflow(total, cost, &total))
            return engine_err(SM_E_OVERFLOW, 0);
        out[i] = (struct engine_stored_item){.sku = slot, .quantity = (uint32_t)it->quantity};
    }
    *total_cents = total;
    *limit_rows_new = rows_new;
    return engine_ok();
}

/* Adds delta to the user's count of a limited SKU, creating or dropping the row as needed. */
static void limit_add(struct engine *e, const struct engine_digest *user, uint32_t sku,
                      int64_t delta)
{
    if (user == NULL || e->skus[sku].limit_per_user == 0)
        return;
    uint32_t row = engine_limit_find(e, *user, sku);
    if (row == SM_INDEX_NONE) {
        ASSERT(delta > 0);
        row = engine_slots_alloc(&e->limit_slots);
        e->limits[row] = (struct engine_limit){.user = *user, .sku = sku, .count = 0};
        int rc = sm_index_insert(&e->limit_index, engine_limit_hash(*user, sku), row);
        ASSERT(rc == 0);
    }
    struct engine_limit *l = &e->limits[row];
    ASSERT((int64_t)l->count + delta >= 0);
    ASSERT((int64_t)l->count + delta <= e->skus[sku].limit_per_user);
    l->count = (uint32_t)((int64_t)l->count + delta);
    if (l->count == 0) {
        sm_index_remove(&e->limit_index, engine_limit_hash(*user, sku), row);
        engine_slots_release(&e->limit_slots, row);
    }
}

void engine_stock_reserve(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                          const struct engine_digest *user)
{
    for (uint32_t i = 0; i < n; i++) {
        struct engine_sku *s = &e->skus[items[i].sku];
        ASSERT(s->available >= items[i].quantity);
        s->available -= items[i].quantity;
        s->reserved += items[i].quantity;
        limit_add(e, user, items[i].sku, items[i].quantity);
    }
}

void engine_stock_release(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                          const struct engine_digest *user)
{
    for (uint32_t i = 0; i < n; i++) {
        struct engine_sku *s = &e->skus[items[i].sku];
        ASSERT(s->reserved >= items[i].quantity);
        s->reserved -= items[i].quantity;
        s->available += items[i].quantity;
        limit_add(e, user, items[i].sku, -(int64_t)items[i].quantity);
    }
}

void engine_stock_sell(struct engine *e, const struct engine_stored_item *items, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        struct engine_sku *s = &e->skus[items[i].sku];
        ASSERT(s->reserved >= items[i].quantity);
        s->reserved -= items[i].quantity;
        s->sold += items[i].quantity;
    }
}

void engine_stock_unsell(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                         bool restock, const struct engine_digest *user)
{
    for (uint32_t i = 0; i < n; i++) {
        struct engine_sku *s = &e->skus[items[i].sku];
        ASSERT(s->sold >= items[i].quantity);
        s->sold -= items[i].quantity;
        if (restock)
            s->available += items[i].quantity;
        else
            s->stocked -= items[i].quantity;
        limit_add(e, user, items[i].sku, -(int64_t)items[i].quantity);
    }
}

void engine_read_sku(const struct engine *e, const struct engine_cmd *cmd, struct engine_reply *out)
{
    uint32_t slot = engine_sku_find(e, &cmd->key);
    if (slot == SM_INDEX_NONE) {
        engine_reply_err(out, SM_E_NOTFOUND, sm_strerror(SM_E_NOTFOUND));
        return;
    }
    const struct engine_sku *s = &e->skus[slot];
    const struct engine_field f[] = {
        {.name = "available", .value = s->available},
        {.name = "reserved", .value = s->reserved},
        {.name = "sold", .value = s->sold},
        {.name = "stocked", .value = s->stocked},
        {.name = "limit_per_user", .value = s->limit_per_user},
        {.name = "price_cents", .value = s->price_cents},
    };
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = sizeof f / sizeof f[0];
    memcpy(out->fields, f, sizeof f);
}
