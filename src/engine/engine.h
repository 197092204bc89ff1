/*
 * The engine: one partition's deterministic state machine for stock, orders, holds, money,
 * idempotency and (through src/engine/locks.h) locks. Pure C: no I/O, no clock, and no
 * allocation after engine_init; every table is sized by struct engine_config and a full table is
 * an SM_E_BUSY reply with no partial effect.
 *
 * How the layers above use it (DESIGN.md section 4):
 *
 *   client command --engine_encode--> record bytes --engine_apply(index, now_ms)--> reply+events
 *                                          |
 *                                          +--> log (wal/) --> replicas, recovery: engine_apply
 *                                               of the same bytes at the same index and time
 *
 * A mutation is a RECORD (src/engine/record.c documents its bytes). The leader encodes the
 * client's command, applies the record and logs it; a replica or a recovering node applies the
 * same bytes at the same (index, now_ms) and reaches the same state, byte for byte (engine_save).
 * Every record is logged whatever its reply, because even an error changes the idempotency table.
 * Reads (engine_read) see the state and produce no record. Time enters only as the now_ms stamped
 * on each record; expiry of orders, holds, sessions and locks happens on an ENGINE_TICK record.
 * The engine keeps now_ms as the maximum stamped so far, so a record stamped earlier than its
 * predecessor (a clock step on a new leader) never moves cluster time backwards.
 *
 * Replies are small tagged values (struct engine_reply) that node/ turns into RESP; error codes
 * are the SM_E_* of src/util/error.h with a message that names the SKU that ran short (SOLDOUT,
 * LIMIT) or the current state (STATE).
 */
#ifndef SHARDMART_ENGINE_ENGINE_H
#define SHARDMART_ENGINE_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"
#include "engine/locks.h"
#include "util/index.h"

/* The command types. Values 1..63 are mutations carried by records, 64..95 reserved for the lock
 * service's mutations, 128.. are reads (never in a record). The numbers are the record's type
 * byte: a logged contract, never renumber. */
enum engine_cmd_type {
    ENGINE_SKU_CREATE = 1,         /* key=sku num=quantity num2=limit_per_user(0=none) num3=price */
    ENGINE_SKU_RESTOCK = 2,        /* key=sku num=quantity added */
    ENGINE_SKU_ADJUST = 3,         /* key=sku num=quantity removed from available */
    ENGINE_ORDER_PLACE = 4,        /* key=order id key2=user num=ttl_ms items */
    ENGINE_ORDER_PAY = 5,          /* key=order key2=buyer account key3=merchant account */
    ENGINE_ORDER_PAY_EXTERNAL = 6, /* key=order key2=external payment reference */
    ENGINE_ORDER_CANCEL = 7,       /* key=order */
    ENGINE_ORDER_SHIP = 8,         /* key=order */
    ENGINE_ORDER_COMPLETE = 9,     /* key=order */
    ENGINE_ORDER_REFUND = 10,      /* key=order num=1 restock to available, 0 write off */
    ENGINE_HOLD_PREPARE = 11,      /* key=txid num=ttl_ms items */
    ENGINE_HOLD_COMMIT = 12,       /* key=txid */
    ENGINE_HOLD_ABORT = 13,        /* key=txid */
    ENGINE_ACCOUNT_OPEN = 14,      /* key=account num=overdraft limit (>= 0) */
    ENGINE_ACCOUNT_DEPOSIT = 15,   /* key=account num=amount */
    ENGINE_ACCOUNT_WITHDRAW = 16,  /* key=account num=amount */
    ENGINE_ACCOUNT_TRANSFER = 17,  /* key=from key2=to num=amount */
    ENGINE_TICK = 18,              /* no request id, no arguments: expire what is due */
    ENGINE_ORDER_PLACE_PART = 19,  /* key=order id key2=user num=ttl_ms num2=cents of the items
                                      held in other partitions, items = this partition's part of
                                      a cross-partition order (node/txn.c) */
    ENGINE_HOLD_PREPARE_USER = 20, /* key=txid key2=user num=ttl_ms items: a hold whose items
                                      count against the user's per-user limits (the hold leg of
                                      a cross-partition order, node/txn.c) */
    ENGINE_HOLD_REFUND = 21,       /* key=txid num=1 restock to available, 0 write off: a
                                      committed hold's items leave sold (its order refunded) */
    ENGINE_ORDER_REFUND_XPAY = 22, /* key=order key2=buyer key3=merchant num=1 restock, 0 write
                                      off: the refund of an order paid by a cross-partition
                                      payment (its money moves in the transaction's legs, so the
                                      engine moves none; node/txn.c) */
    ENGINE_LOCK_SESSION_OPEN = 64, /* key=session num=ttl_ms */
    ENGINE_LOCK_HEARTBEAT = 65,    /* key=session */
    ENGINE_LOCK_SESSION_CLOSE = 66, /* key=session */
    ENGINE_LOCK_ACQUIRE = 67,       /* key=session key2=name lock_type owner num=wait_ms
                                       num2=lease_ms waiter_id permits reentrant */
    ENGINE_LOCK_RELEASE = 68,       /* key=session key2=name owner permit_id */
    ENGINE_LOCK_RENEW = 69,         /* key=session key2=name owner permit_id num=lease_ms */
    ENGINE_LOCK_CANCEL = 70,        /* key=session waiter_id */
    ENGINE_CMD_MUTATION_LAST = 95,
    ENGINE_SKU_GET = 128,     /* key=sku */
    ENGINE_ORDER_GET = 129,   /* key=order */
    ENGINE_HOLD_GET = 130,    /* key=txid */
    ENGINE_ACCOUNT_GET = 131, /* key=account */
    ENGINE_STATS_GET = 132,   /* no arguments: table fill and money totals */
    ENGINE_LOCK_CHECK = 133,  /* key=name token: is the fencing token current */
    ENGINE_LOCK_INFO = 134,   /* key=name */
};

/* A borrowed byte string (key, id, SKU name): 1..SM_KEY_BYTES_MAX bytes, not NUL-terminated. */
struct engine_key {
    const uint8_t *ptr;
    size_t len;
};

struct engine_item {
    struct engine_key sku;
    int64_t quantity; /* 1..SM_ORDER_ITEM_QUANTITY_MAX */
};

/* One command, decoded or about to be encoded. Which fields a type uses is listed beside
 * enum engine_cmd_type; the others are ignored by the encoder and zeroed by the decoder. All
 * pointers are borrowed: from the caller (encode, read) or from the record bytes (decode). */
struct engine_cmd {
    enum engine_cmd_type type;
    struct engine_key request_id; /* 1..128 bytes; every mutation but TICK */
    struct engine_key key, key2, key3;
    int64_t num, num2, num3;
    /* lock commands (enum locks_type, and the fields of struct locks_acquire / locks_ref) */
    uint8_t lock_type;
    bool reentrant;
    uint32_t permits;
    uint64_t owner, waiter_id, permit_id, token;
    uint32_t items_count;
    struct engine_item items[SM_ORDER_ITEMS_MAX];
};

/* Capacity of every table, fixed at engine_init. Memory is allocated once, up front. */
struct engine_config {
    uint32_t skus_max;
    uint32_t orders_max;
    uint32_t holds_max;
    uint32_t accounts_max;
    uint32_t limit_rows_max;    /* distinct (user, SKU) pairs with a purchase count */
    uint32_t item_chunks_max;   /* chunks of 8 items for orders/holds of more than one item */
    uint32_t request_ids_max;   /* request ids remembered (a FIFO ring: the last N mutations) */
    int64_t order_retention_ms; /* a finished order stays readable this long, then is dropped */
    int64_t hold_retention_ms;  /* a decided (or unknown-aborted) hold is remembered this long */
    struct locks_config locks;  /* the lock service's tables (src/engine/locks.h) */
    /* Touch every table at init and ask for transparent huge pages: page faults and TLB misses
     * then stay out of the command path. Right for one hot engine (the benchmarks); a node of
     * many partitions leaves it off so that memory follows the rows actually used. Not part of
     * a snapshot's config. */
    bool prefault;
};

enum engine_reply_kind {
    ENGINE_REPLY_OK = 0,
    ENGINE_REPLY_INT = 1,    /* value */
    ENGINE_REPLY_FIELDS = 2, /* fields[0..fields_count) */
    ENGINE_REPLY_ERR = 3,    /* err (SM_E_*) and msg */
};

/* A named field of a read reply: an integer, or a static string when str is not NULL. */
struct engine_field {
    const char *name;
    int64_t value;
    const char *str;
};

/* The reply to one command. msg/msg_len: the error message (bytes, may be a binary SKU name;
 * not NUL-terminated); replayed: the reply came from the idempotency table. */
struct engine_reply {
    enum engine_reply_kind kind;
    int err;
    int64_t value;
    bool replayed;
    size_t msg_len;
    char msg[SM_ENGINE_MESSAGE_BYTES_MAX];
    uint32_t fields_count;
    struct engine_field fields[SM_ENGINE_REPLY_FIELDS_MAX];
};

/* What engine_apply produces: the reply, and the lock service's events: one per parked waiter
 * that left its queue (granted, timed out, cancelled), in FIFO order per lock, so the node can
 * wake the right connection (struct locks_event, keyed by the waiter_id the acquire carried).
 * events points into the engine and stays valid until the next engine_apply. */
struct engine_output {
    struct engine_reply reply;
    uint32_t events_count;
    const struct locks_event *events;
};

/* Row types, private to src/engine/ (engine_internal.h). */
struct engine_sku;
struct engine_order;
struct engine_hold;
struct engine_account;
struct engine_limit;
struct engine_chunk;
struct engine_timer;
struct engine_request;
struct engine_prepared;

/* A free list over a table's slots: slots below high_water have been used; freed ones are
 * stacked in free[] and reused last-in first-out, so slot choice is a function of history that a
 * snapshot can carry exactly. */
struct engine_slots {
    uint32_t *free;
    uint32_t free_count;
    uint32_t high_water;
    uint32_t capacity;
};

/* One partition's state. The caller owns the struct (embed it or allocate it) and passes it to
 * engine_init; every field is private to src/engine/. */
struct engine {
    struct engine_config cfg;
    uint64_t last_index;
    int64_t now_ms;
    int64_t deposits_total_cents; /* every deposit ever, minus nothing: money in */
    int64_t withdrawals_total_cents;

    struct engine_sku *skus; /* dense: SKUs are never deleted */
    uint32_t skus_count;
    struct sm_index sku_index;

    struct engine_account *accounts; /* dense: accounts are never deleted */
    uint32_t accounts_count;
    struct sm_index account_index;

    struct engine_order *orders;
    struct engine_slots order_slots;
    struct sm_index order_index;

    struct engine_hold *holds;
    struct engine_slots hold_slots;
    struct sm_index hold_index;

    struct engine_limit *limits;
    struct engine_slots limit_slots;
    struct sm_index limit_index;

    struct engine_chunk *chunks; /* item chunks: a free stack, never observable */
    struct engine_slots chunk_slots;

    struct engine_timer *timers; /* min-heap on (at_ms, ref) of deadlines and retirements */
    uint32_t timers_count;

    struct locks locks; /* sessions, locks, semaphores (locks.c) */
    bool locks_ready;
    struct locks_events lock_events; /* waiters_max events, handed out by engine_apply */

    struct engine_request *requests; /* FIFO ring of remembered request ids */
    uint32_t requests_head;          /* oldest entry */
    uint32_t requests_count;
    struct sm_index request_index;

    struct engine_prepared *prepared; /* engine_apply_batch's records in flight (engine.c) */
};

/* Allocates every table of *e (caller-owned) up front. 0, SM_E_BADARG (a zero capacity, a
 * capacity past SM_ENGINE_ROWS_MAX or a negative retention), or SM_E_NOMEM. Free with
 * engine_free, which releases what engine_init allocated and nothing else. */
MUST_USE int engine_init(struct engine *e, const struct engine_config *cfg);
void engine_free(struct engine *e);

/* The bytes engine_init allocates for cfg: for sizing and the memory benchmark. */
size_t engine_memory_bytes(const struct engine_config *cfg);

/* Encodes a mutation into record bytes in buf[0..cap). *len_out gets the length. 0,
 * SM_E_BADARG (unknown or read type, a key of 0 or > 128 bytes, 0 or > 64 items, a quantity out
 * of range, a duplicated SKU) or SM_E_TOOLARGE (cap too small; SM_ENGINE_RECORD_BYTES_MAX always
 * suffices). Validates exactly what engine_decode validates, so an encoded record decodes. */
MUST_USE int engine_encode(const struct engine_cmd *cmd, uint8_t *buf, size_t cap, size_t *len_out);

/* Decodes record bytes into *cmd, whose pointers then borrow rec. 0 or SM_E_BADARG. Never
 * reads outside rec[0..len) whatever the bytes. */
MUST_USE int engine_decode(const uint8_t *rec, size_t len, struct engine_cmd *cmd);

/* Applies one record at log index `index` (strictly increasing from call to call) stamped with
 * the leader's now_ms (0..SM_ENGINE_TIME_MS_MAX). Always fills out->reply; a malformed record is an
 * SM_E_BADARG reply with no effect. out->events lists what the node must do besides replying. */
void engine_apply(struct engine *e, uint64_t index, int64_t now_ms, const uint8_t *rec, size_t len,
                  struct engine_output *out);

/* One record of a batch: borrowed bytes. */
struct engine_record {
    const uint8_t *data;
    size_t len;
};

/* Called by engine_apply_batch after record i is applied, before the next: out (and its
 * events) is valid only during the call. */
typedef void (*engine_applied_fn)(void *ctx, uint32_t i, const struct engine_output *out);

/* Applies recs[0..n) at log indexes first_index, first_index + 1, ..., all stamped now_ms,
 * exactly as n calls of engine_apply would (same state, same replies), calling done after each.
 * Faster: record i+1 is decoded and hashed, and the index cells it will probe are fetched,
 * before record i is applied, so its cache misses overlap with record i's work. Borrows recs and
 * their bytes for the call. */
void engine_apply_batch(struct engine *e, uint64_t first_index, int64_t now_ms,
                        const struct engine_record *recs, uint32_t n, engine_applied_fn done,
                        void *ctx);

/* Answers a read command (type >= ENGINE_SKU_GET) from the current state; no effect. Field
 * strings point to static storage. */
void engine_read(const struct engine *e, const struct engine_cmd *cmd, struct engine_reply *out);

/* Serializes the whole state (see snapshot.c for the format) by appending to w (a growable or
 * fixed sm_wbuf). 0, or SM_E_NOMEM / SM_E_TOOLARGE when w could not take it. */
struct sm_wbuf;
MUST_USE int engine_save(const struct engine *e, struct sm_wbuf *w);

/* Reads the config a snapshot was taken with, so the caller can engine_init a matching engine.
 * 0 or SM_E_CORRUPT. */
MUST_USE int engine_snapshot_config(const uint8_t *data, size_t len, struct engine_config *cfg);

/* Replaces the state of e (made with the snapshot's config) with the snapshot's. 0,
 * SM_E_CORRUPT (bad checksum, version, layout or a broken invariant; e is left empty),
 * SM_E_BADARG (the config differs from e's; e is unchanged) or SM_E_NOMEM (e unusable). */
MUST_USE int engine_load(struct engine *e, const uint8_t *data, size_t len);

/* Empties every table (as after engine_init). 0, or SM_E_NOMEM when the lock service's tables
 * could not be made again (e is then unusable but safe to engine_free). */
MUST_USE int engine_reset(struct engine *e);

/* Verifies every invariant of DESIGN.md section 1 and the engine's own bookkeeping. true when
 * all hold; otherwise false with a description in why[0..why_cap). O(size of state). */
bool engine_check(const struct engine *e, char *why, size_t why_cap);

/* The highest log index applied (0 before any), and the engine's cluster time. */
uint64_t engine_last_index(const struct engine *e);
int64_t engine_now_ms(const struct engine *e);

/* Names of order and hold states, as used in replies ("RESERVED", "PAID", ...). */
const char *engine_order_state_name(int state);
const char *engine_hold_state_name(int state);

#endif
