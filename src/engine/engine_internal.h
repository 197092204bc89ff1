/*
 * Rows and helpers shared by the engine's .c files (engine.c, stock.c, orders.c, money.c,
 * snapshot.c, check.c). Nothing outside src/engine/ includes this.
 *
 * Identity: SKUs keep their name (a SOLDOUT reply names it). Orders, holds, accounts, users and
 * request ids are known by the XXH3-128 digest of their bytes, which keeps a row small (an open
 * single-item order is one 80-byte row). Two different ids share a digest with probability about
 * n^2 / 2^129; for the 2^32 rows a partition can hold that is below 2^-64.
 */
#ifndef SHARDMART_ENGINE_INTERNAL_H
#define SHARDMART_ENGINE_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "engine/engine.h"
#include "util/error.h"

#define ENGINE_NONE UINT32_MAX

/* XXH3-128 of an id. */
struct engine_digest {
    uint64_t lo, hi;
};

static inline bool engine_digest_eq(struct engine_digest a, struct engine_digest b)
{
    return a.lo == b.lo && a.hi == b.hi;
}

struct engine_digest engine_digest_of(const struct engine_key *k);

enum engine_order_state {
    ORDER_FREE = 0,
    ORDER_RESERVED = 1,
    ORDER_PAID = 2,
    ORDER_SHIPPED = 3,
    ORDER_COMPLETED = 4,
    ORDER_CANCELLED = 5,
    ORDER_EXPIRED = 6,
    ORDER_REFUNDED = 7,
    ORDER_STATE_COUNT
};

enum engine_hold_state {
    HOLD_FREE = 0,
    HOLD_PREPARED = 1,
    HOLD_COMMITTED = 2,
    HOLD_ABORTED = 3,
    HOLD_REFUNDED = 4, /* committed, then its order was refunded: holds nothing */
    HOLD_STATE_COUNT
};

/* Indexes into the message table of STATE replies (engine_state_message). */
enum engine_state_msg {
    STATE_MSG_ORDER = 0, /* + enum engine_order_state */
    STATE_MSG_HOLD = 16, /* + enum engine_hold_state */
    STATE_MSG_LOCK_KIND = 32,
};

struct engine_sku {
    int64_t stocked, available, reserved, sold;
    int64_t limit_per_user; /* 0: no limit */
    int64_t price_cents;
    uint8_t name_len;
    uint8_t name[SM_KEY_BYTES_MAX];
};

struct engine_account {
    struct engine_digest id;
    int64_t balance_cents;
    int64_t overdraft_cents; /* the balance may go down to -overdraft_cents */
};

/* An item as stored: SKU slot and quantity (1..SM_ORDER_ITEM_QUANTITY_MAX fits 32 bits). */
struct engine_stored_item {
    uint32_t sku;
    uint32_t quantity;
};

#define ENGINE_CHUNK_ITEMS 8
/* Items 2..n of an order or hold, 8 per chunk, chained by next. */
struct engine_chunk {
    struct engine_stored_item items[ENGINE_CHUNK_ITEMS];
    uint32_t next;
};

/* Where an order's or hold's items live: the first inline, the rest in chunks. */
struct engine_items {
    struct engine_stored_item first;
    uint32_t chunk; /* ENGINE_NONE when count == 1 */
    uint8_t count;
};

/* Payment of an order: accounts (slot numbers) or the digest of an external reference. */
struct engine_order {
    struct engine_digest id;
    struct engine_digest user;
    int64_t at_ms;       /* RESERVED: payment deadline; finished: when it is dropped */
    int64_t total_cents; /* sum of price * quantity at placement */
    uint64_t payment;    /* buyer << 32 | merchant, or external reference digest (low 64 bits) */
    struct engine_items items;
    uint32_t timer; /* position in the timer heap, ENGINE_NONE when not scheduled */
    uint8_t state;
    uint8_t paid_external;
};

/* A hold with has_user set (HOLD_PREPARE_USER) counts its items against user's per-user limits
 * while prepared or committed, exactly like an order's items. */
struct engine_hold {
    struct engine_digest txid;
    struct engine_digest user; /* zero unless has_user */
    int64_t at_ms;             /* PREPARED: deadline; decided: when it is forgotten */
    struct engine_items items;
    uint32_t timer;
    uint8_t state;
    uint8_t has_user;
};

/* How many of a SKU one user has bought or reserved (only for SKUs with a limit). */
struct engine_limit {
    struct engine_digest user;
    uint32_t sku;
    uint32_t count; /* > 0 while the row is live; <= the SKU's limit */
};

#define ENGINE_TIMER_HOLD 0x80000000u
/* A scheduled time: ref is an order slot, or a hold slot | ENGINE_TIMER_HOLD. */
struct engine_timer {
    int64_t at_ms;
    uint32_t ref;
};

/* The stored form of a mutation's reply, rendered again for a replay (engine_render). aux is a
 * SKU slot (SOLDOUT, LIMIT) or a state message (STATE). */
struct engine_result {
    int64_t value;
    uint64_t value2;
    uint32_t aux;
    uint8_t kind; /* enum engine_reply_kind but FIELDS, or ENGINE_RESULT_GRANT */
    int16_t err;
};

/* A lock acquire's outcome: value = token, value2 = permit id, aux = status | reentry count << 2;
 * rendered as fields. */
#define ENGINE_RESULT_GRANT 4

struct engine_request {
    struct engine_digest id;
    uint64_t args_hash; /* XXH3-64 of the record past the request id, seeded with the type */
    struct engine_result result;
};

/* ---- results ---- */
static inline struct engine_result engine_ok(void)
{
    return (struct engine_result){.kind = ENGINE_REPLY_OK};
}
static inline struct engine_result engine_int(int64_t v)
{
    return (struct engine_result){.kind = ENGINE_REPLY_INT, .value = v};
}
static inline struct engine_result engine_err(int err, uint32_t aux)
{
    return (struct engine_result){.kind = ENGINE_REPLY_ERR, .err = (int16_t)err, .aux = aux};
}
static inline bool engine_failed(struct engine_result r)
{
    return r.kind == ENGINE_REPLY_ERR;
}
void engine_render(const struct engine *e, const struct engine_result *r, struct engine_reply *out);
void engine_reply_err(struct engine_reply *out, int err, const char *msg);

/* ---- slots ---- */
MUST_USE int engine_slots_init(struct engine_slots *s, uint32_t capacity);
void engine_slots_free(struct engine_slots *s);
void engine_slots_reset(struct engine_slots *s);
static inline uint32_t engine_slots_live(const struct engine_slots *s)
{
    return s->high_water - s->free_count;
}
static inline bool engine_slots_full(const struct engine_slots *s, uint32_t n)
{
    return (uint64_t)engine_slots_live(s) + n > s->capacity;
}
uint32_t engine_slots_alloc(struct engine_slots *s); /* the caller checked engine_slots_full */
void engine_slots_release(struct engine_slots *s, uint32_t slot);

/* ---- lookups ---- */
uint32_t engine_sku_find(const struct engine *e, const struct engine_key *name);
uint32_t engine_account_find(const struct engine *e, struct engine_digest id);
uint32_t engine_order_find(const struct engine *e, struct engine_digest id);
uint32_t engine_hold_find(const struct engine *e, struct engine_digest id);
uint32_t engine_request_find(const struct engine *e, struct engine_digest id);
uint64_t engine_limit_hash(struct engine_digest user, uint32_t sku);
uint32_t engine_limit_find(const struct engine *e, struct engine_digest user, uint32_t sku);

/* ---- items ---- */
static inline uint32_t engine_chunks_needed(uint32_t items_count)
{
    return (items_count - 1 + ENGINE_CHUNK_ITEMS - 1) / ENGINE_CHUNK_ITEMS;
}
/* Copies the items out into out[0..count). */
uint32_t engine_items_get(const struct engine *e, const struct engine_items *it,
                          struct engine_stored_item *out);
/* Stores items (chunks must be available). */
void engine_items_put(struct engine *e, struct engine_items *it,
                      const struct engine_stored_item *items, uint32_t count);
void engine_items_release(struct engine *e, struct engine_items *it);

/* ---- timers ---- */
void engine_timer_add(struct engine *e, int64_t at_ms, uint32_t ref);
void engine_timer_remove(struct engine *e, uint32_t pos);
uint32_t *engine_timer_pos(struct engine *e, uint32_t ref);

/* ---- stock used by orders and holds ---- */
/* Checks that every item can be reserved (SOLDOUT/NOTFOUND/LIMIT/OVERFLOW) and resolves SKU
 * slots into out; *total_cents gets sum(price * quantity), *limit_rows_new the rows to create. */
struct engine_result engine_stock_check(const struct engine *e, const struct engine_cmd *cmd,
                                        const struct engine_digest *user,
                                        struct engine_stored_item *out, int64_t *total_cents,
                                        uint32_t *limit_rows_new);
void engine_stock_reserve(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                          const struct engine_digest *user);
/* Undo a reservation: back to available (and limit counts down when user is given). */
void engine_stock_release(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                          const struct engine_digest *user);
void engine_stock_sell(struct engine *e, const struct engine_stored_item *items, uint32_t n);
/* Undo a sale: sold back to available (restock) or written off (stocked down). */
void engine_stock_unsell(struct engine *e, const struct engine_stored_item *items, uint32_t n,
                         bool restock, const struct engine_digest *user);

/* ---- command handlers (result, no idempotency: engine.c wraps them) ---- */
struct engine_result engine_sku_cmd(struct engine *e, const struct engine_cmd *cmd);
struct engine_result engine_order_cmd(struct engine *e, const struct engine_cmd *cmd);
/* Digests of an ORDER_PLACE's order id (key) and user (key2), computed once per record. */
struct engine_hashes {
    struct engine_digest key, key2;
};
struct engine_result engine_order_place(struct engine *e, const struct engine_cmd *cmd,
                                        const struct engine_hashes *h);
struct engine_result engine_hold_cmd(struct engine *e, const struct engine_cmd *cmd);
struct engine_result engine_account_cmd(struct engine *e, const struct engine_cmd *cmd);
/* Moves amount between accounts if the payer's overdraft allows; NOFUNDS otherwise. */
struct engine_result engine_account_move(struct engine *e, uint32_t from, uint32_t to,
                                         int64_t amount_cents);
void engine_tick(struct engine *e, struct engine_reply *out);
/* A lock record's effect. session_hash and name_hash: locks_key_hash of cmd's key and key2 when
 * the caller has them, else 0 (computed here). */
struct engine_result engine_lock_cmd(struct engine *e, const struct engine_cmd *cmd,
                                     uint64_t session_hash, uint64_t name_hash);
void engine_read_lock(const struct engine *e, const struct engine_cmd *cmd,
                      struct engine_reply *out);
void engine_render_grant(const struct engine_result *r, struct engine_reply *out);

/* ---- reads ---- */
void engine_read_sku(const struct engine *e, const struct engine_cmd *cmd,
                     struct engine_reply *out);
void engine_read_order(const struct engine *e, const struct engine_cmd *cmd,
                       struct engine_reply *out);
void engine_read_hold(const struct engine *e, const struct engine_cmd *cmd,
                      struct engine_reply *out);
void engine_read_account(const struct engine *e, const struct engine_cmd *cmd,
                         struct engine_reply *out);

/* Arguments valid for the command beyond what the decoder checks (ranges of numbers). */
bool engine_args_valid(const struct engine_cmd *cmd);

#endif
