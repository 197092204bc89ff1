/*
 * The engine's records: the binary form of a mutation that the log carries, replicas apply and
 * recovery replays. The log frames each record with its length, checksum, index and time
 * (DESIGN.md section 6); this file owns only the payload. All integers are little-endian.
 *
 *   offset  size  field
 *   0       1     type (enum engine_cmd_type, 1..95; reads never appear in a record)
 *   1       1     r = request id length, 1..128          } absent for ENGINE_TICK
 *   2       r     request id bytes                       }
 *   ...           the type's arguments, in the order of its layout below:
 *
 *     K, U, M  key, key2, key3: 1 byte length n (1..128), then n bytes
 *     a, b, c  num, num2, num3: 8 bytes, two's-complement int64
 *     t, r     lock_type, reentrant (0 or 1): 1 byte each
 *     o, w, p  owner, waiter_id, permit_id: 8 bytes, uint64
 *     n        permits: 4 bytes, uint32
 *     I        items: 1 byte count (1..64), then per item: 1 byte length n (1..128), n bytes
 *              of SKU name, 4 bytes quantity (uint32, 1..SM_ORDER_ITEM_QUANTITY_MAX);
 *              a SKU appears at most once
 *
 *   type  name                  layout    meaning
 *   1     SKU_CREATE            K a b c   sku, quantity, per-user limit (0 none), price_cents
 *   2     SKU_RESTOCK           K a       sku, quantity added
 *   3     SKU_ADJUST            K a       sku, quantity removed from available
 *   4     ORDER_PLACE           K U a I   order id, user, ttl_ms, items
 *   5     ORDER_PAY             K U M     order id, buyer account, merchant account
 *   6     ORDER_PAY_EXTERNAL    K U       order id, external payment reference
 *   7-9   ORDER_CANCEL/SHIP/COMPLETE  K   order id
 *   10    ORDER_REFUND          K a       order id, 1 = stock back to available, 0 = written off
 *   11    HOLD_PREPARE          K a I     txid, ttl_ms, items
 *   12-13 HOLD_COMMIT/ABORT     K         txid
 *   14    ACCOUNT_OPEN          K a       account, overdraft limit in cents (>= 0)
 *   15-16 ACCOUNT_DEPOSIT/WITHDRAW K a    account, amount_cents (> 0)
 *   17    ACCOUNT_TRANSFER      K U a     from, to, amount_cents (> 0)
 *   18    TICK                  (none)    expire what is due at the record's time
 *   19    ORDER_PLACE_PART      K U a b I order id, user, ttl_ms, cents held elsewhere, the
 *                                         items of this partition (a cross-partition order)
 *   20    HOLD_PREPARE_USER     K U a I   txid, user, ttl_ms, items: a hold counted against the
 *                                         user's per-user limits (a cross-partition order's leg)
 *   21    HOLD_REFUND           K a       txid, 1 = stock back to available, 0 = written off
 *   22    ORDER_REFUND_XPAY     K U M a   order id, buyer account, merchant account, 1 = restock:
 *                                         the refund of an order paid across partitions
 *   64    LOCK_SESSION_OPEN     K a       session, ttl_ms
 *   65-66 LOCK_HEARTBEAT/SESSION_CLOSE  K session
 *   67    LOCK_ACQUIRE          K U t o a b w n r   session, lock name, enum locks_type, owner,
 *                                         wait_ms, lease_ms, waiter_id, permits, reentrant
 *   68    LOCK_RELEASE          K U o p   session, name, owner, permit_id
 *   69    LOCK_RENEW            K U o p a session, name, owner, permit_id, lease_ms
 *   70    LOCK_CANCEL           K w       session, waiter_id
 *
 * Nothing may follow the last field. Example: SKU_RESTOCK of "tv" by 5 under request id "r1":
 *   02 | 02 'r' '1' | 02 't' 'v' | 05 00 00 00 00 00 00 00
 * Number ranges (quantity > 0, ttl within SM_ENGINE_TTL_MS_MAX ...) are checked by
 * engine_encode and again by engine_apply (as BADARG), not by the decoder, so that a record
 * logged by an older version with a looser range still decodes.
 */
#include "engine/engine.h"

#include <endian.h>
#include <string.h>

#include "engine/engine_internal.h"

#include "util/error.h"

/* The layout of each type's arguments; NULL for a type that is not a mutation. */
static const char *record_layout(enum engine_cmd_type type)
{
    switch (type) {
    case ENGINE_SKU_CREATE:
        return "Kabc";
    case ENGINE_SKU_RESTOCK:
    case ENGINE_SKU_ADJUST:
    case ENGINE_ORDER_REFUND:
    case ENGINE_ACCOUNT_OPEN:
    case ENGINE_ACCOUNT_DEPOSIT:
    case ENGINE_ACCOUNT_WITHDRAW:
        return "Ka";
    case ENGINE_ORDER_PLACE:
        return "KUaI";
    case ENGINE_ORDER_PLACE_PART:
        return "KUabI";
    case ENGINE_ORDER_PAY:
        return "KUM";
    case ENGINE_ORDER_PAY_EXTERNAL:
        return "KU";
    case ENGINE_ORDER_CANCEL:
    case ENGINE_ORDER_SHIP:
    case ENGINE_ORDER_COMPLETE:
    case ENGINE_HOLD_COMMIT:
    case ENGINE_HOLD_ABORT:
        return "K";
    case ENGINE_HOLD_PREPARE:
        return "KaI";
    case ENGINE_HOLD_PREPARE_USER:
        return "KUaI";
    case ENGINE_HOLD_REFUND:
        return "Ka";
    case ENGINE_ORDER_REFUND_XPAY:
        return "KUMa";
    case ENGINE_ACCOUNT_TRANSFER:
        return "KUa";
    case ENGINE_TICK:
        return "";
    case ENGINE_LOCK_SESSION_OPEN:
        return "Ka";
    case ENGINE_LOCK_HEARTBEAT:
    case ENGINE_LOCK_SESSION_CLOSE:
        return "K";
    case ENGINE_LOCK_ACQUIRE:
        return "KUtoabwnr";
    case ENGINE_LOCK_RELEASE:
        return "KUop";
    case ENGINE_LOCK_RENEW:
        return "KUopa";
    case ENGINE_LOCK_CANCEL:
        return "Kw";
    default:
        return NULL;
    }
}

static bool key_valid(const struct engine_key *k)
{
    return k->ptr != NULL && k->len >= 1 && k->len <= SM_KEY_BYTES_MAX;
}

/* Items: 1..64, each quantity in range, no SKU twice (quadratic, but n <= 64 and it avoids any
 * table; the hot single-item order costs nothing). */
static bool items_valid(const struct engine_cmd *cmd)
{
    if (cmd->items_count < 1 || cmd->items_count > SM_ORDER_ITEMS_MAX)
        return false;
    for (uint32_t i = 0; i < cmd->items_count; i++) {
        const struct engine_item *it = &cmd->items[i];
        if (!key_valid(&it->sku) || it->quantity < 1 || it->quantity > SM_ORDER_ITEM_QUANTITY_MAX)
            return false;
        for (uint32_t j = 0; j < i; j++) {
            const struct engine_key *o = &cmd->items[j].sku;
            if (o->len == it->sku.len && memcmp(o->ptr, it->sku.ptr, o->len) == 0)
                return false;
        }
    }
    return true;
}

static struct engine_key *layout_key(struct engine_cmd *cmd, char f)
{
    return f == 'K' ? &cmd->key : f == 'U' ? &cmd->key2 : &cmd->key3;
}

static int64_t *layout_num(struct engine_cmd *cmd, char f)
{
    return f == 'a' ? &cmd->num : f == 'b' ? &cmd->num2 : &cmd->num3;
}

static uint64_t *layout_u64(struct engine_cmd *cmd, char f)
{
    return f == 'o' ? &cmd->owner : f == 'w' ? &cmd->waiter_id : &cmd->permit_id;
}

/* The record codec writes and reads through a bare cursor with inline helpers rather than
 * util/buf.c's out-of-line per-field calls: records are encoded and decoded once per command, and
 * those calls were about a tenth of a lock acquire's cost. The bounds rules are the same: a write
 * that does not fit, or a read past the end, sets the sticky failed flag and does nothing. */
struct cursor {
    uint8_t *p;
    const uint8_t *end;
    bool failed;
};

static inline void put_bytes(struct cursor *w, const void *src, size_t n)
{
    if (w->failed || (size_t)(w->end - w->p) < n) {
        w->failed = true;
        return;
    }
    memcpy(w->p, src, n);
    w->p += n;
}

static inline void put_u8(struct cursor *w, uint8_t v)
{
    put_bytes(w, &v, 1);
}

/* The low n bytes of v, little-endian. One 8-byte value converted whole: filling a byte array
 * one byte at a time and copying it out made every field a failed store-to-load forward. */
static inline void put_le(struct cursor *w, uint64_t v, size_t n)
{
    ASSERT(n <= 8);
    uint64_t le = htole64(v);
    put_bytes(w, &le, n);
}

static inline void put_key(struct cursor *w, const struct engine_key *k)
{
    ASSERT(k->len <= SM_KEY_BYTES_MAX);
    put_u8(w, (uint8_t)k->len);
    put_bytes(w, k->ptr, k->len);
}

struct reader {
    const uint8_t *p;
    const uint8_t *end;
    bool failed;
};

/* The next n bytes, or NULL (and failed) when fewer remain. */
static inline const uint8_t *get_bytes(struct reader *r, size_t n)
{
    if (r->failed || (size_t)(r->end - r->p) < n) {
        r->failed = true;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    return p;
}

static inline uint64_t get_le(struct reader *r, size_t n)
{
    ASSERT(n <= 8);
    const uint8_t *p = get_bytes(r, n);
    uint64_t v = 0;
    if (p != NULL)
        memcpy(&v, p, n); /* the low n bytes of v on a little-endian host; le64toh fixes others */
    return le64toh(v);
}

static void write_small(struct cursor *w, const struct engine_cmd *cmd, char f)
{
    if (f == 't')
        put_u8(w, cmd->lock_type);
    else if (f == 'r')
        put_u8(w, cmd->reentrant ? 1 : 0);
    else
        put_le(w, cmd->permits, 4);
}

static void read_small(struct reader *r, struct engine_cmd *cmd, char f)
{
    if (f == 't') {
        cmd->lock_type = (uint8_t)get_le(r, 1);
    } else if (f == 'r') {
        uint64_t v = get_le(r, 1);
        if (v > 1)
            r->failed = true;
        cmd->reentrant = v == 1;
    } else {
        cmd->permits = (uint32_t)get_le(r, 4);
    }
}

int engine_encode(const struct engine_cmd *cmd, uint8_t *buf, size_t cap, size_t *len_out)
{
    const char *layout = record_layout(cmd->type);
    if (layout == NULL)
        return SM_E_BADARG;
    /* The layout helpers hand out pointers into a cmd; encode only reads through them. */
    struct engine_cmd *c = (struct engine_cmd *)cmd;
    ASSERT(buf != NULL || cap == 0);
    struct cursor w = {.p = buf, .end = buf != NULL ? buf + cap : buf, .failed = false};
    put_u8(&w, (uint8_t)cmd->type);
    if (cmd->type != ENGINE_TICK) {
        if (!key_valid(&cmd->request_id))
            return SM_E_BADARG;
        put_key(&w, &cmd->request_id);
    }
    for (const char *f = layout; *f; f++) {
        if (*f == 'K' || *f == 'U' || *f == 'M') {
            const struct engine_key *k = layout_key(c, *f);
            if (!key_valid(k))
                return SM_E_BADARG;
            put_key(&w, k);
        } else if (*f == 'I') {
            if (!items_valid(cmd))
                return SM_E_BADARG;
            put_u8(&w, (uint8_t)cmd->items_count);
            for (uint32_t i = 0; i < cmd->items_count; i++) {
                put_key(&w, &cmd->items[i].sku);
                put_le(&w, (uint32_t)cmd->items[i].quantity, 4);
            }
        } else if (*f == 'o' || *f == 'w' || *f == 'p') {
            put_le(&w, *layout_u64(c, *f), 8);
        } else if (*f == 't' || *f == 'r' || *f == 'n') {
            write_small(&w, cmd, *f);
        } else {
            put_le(&w, (uint64_t)*layout_num(c, *f), 8);
        }
    }
    if (!engine_args_valid(cmd))
        return SM_E_BADARG;
    if (w.failed)
        return SM_E_TOOLARGE;
    *len_out = (size_t)(w.p - buf);
    return 0;
}

static void read_key(struct reader *r, struct engine_key *k)
{
    size_t n = (size_t)get_le(r, 1);
    k->ptr = get_bytes(r, n);
    k->len = k->ptr != NULL ? n : 0;
    if (k->ptr != NULL && (n == 0 || n > SM_KEY_BYTES_MAX))
        r->failed = true;
}

static void read_items(struct reader *r, struct engine_cmd *cmd)
{
    uint32_t n = (uint32_t)get_le(r, 1);
    if (n < 1 || n > SM_ORDER_ITEMS_MAX) {
        r->failed = true;
        return;
    }
    cmd->items_count = n;
    for (uint32_t i = 0; i < n && !r->failed; i++) {
        read_key(r, &cmd->items[i].sku);
        cmd->items[i].quantity = (uint32_t)get_le(r, 4);
    }
}

/* Zeroes every field but the items (which items_count bounds), field by field: the compiler
 * turned the memset of this prefix into a `rep stos`, whose start-up cost was a quarter of
 * decoding a lock record. */
static void cmd_clear(struct engine_cmd *cmd)
{
    /* A field added to struct engine_cmd moves this offset: clear it here too, then update. */
    _Static_assert(offsetof(struct engine_cmd, items) == 144, "cmd_clear knows every field");
    const struct engine_key none = {NULL, 0};
    cmd->type = 0;
    cmd->request_id = none;
    cmd->key = none;
    cmd->key2 = none;
    cmd->key3 = none;
    cmd->num = cmd->num2 = cmd->num3 = 0;
    cmd->lock_type = 0;
    cmd->reentrant = false;
    cmd->permits = 0;
    cmd->owner = cmd->waiter_id = cmd->permit_id = cmd->token = 0;
    cmd->items_count = 0;
}

int engine_decode(const uint8_t *rec, size_t len, struct engine_cmd *cmd)
{
    ASSERT(rec != NULL || len == 0);
    cmd_clear(cmd);
    struct reader r = {.p = rec, .end = rec != NULL ? rec + len : rec, .failed = false};
    uint8_t type = (uint8_t)get_le(&r, 1);
    const char *layout = r.failed ? NULL : record_layout((enum engine_cmd_type)type);
    if (layout == NULL)
        return SM_E_BADARG;
    cmd->type = (enum engine_cmd_type)type;
    if (cmd->type != ENGINE_TICK)
        read_key(&r, &cmd->request_id);
    bool has_items = false;
    for (const char *f = layout; *f && !r.failed; f++) {
        if (*f == 'K' || *f == 'U' || *f == 'M') {
            read_key(&r, layout_key(cmd, *f));
        } else if (*f == 'I') {
            read_items(&r, cmd);
            has_items = true;
        } else if (*f == 'o' || *f == 'w' || *f == 'p') {
            *layout_u64(cmd, *f) = get_le(&r, 8);
        } else if (*f == 't' || *f == 'r' || *f == 'n') {
            read_small(&r, cmd, *f);
        } else {
            *layout_num(cmd, *f) = (int64_t)get_le(&r, 8);
        }
    }
    if (r.failed || r.p != r.end)
        return SM_E_BADARG;
    if (has_items && !items_valid(cmd))
        return SM_E_BADARG;
    return 0;
}
