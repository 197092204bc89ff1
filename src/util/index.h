/*
 * A fixed-capacity hash index from a 64-bit hash to a 32-bit slot number, for tables whose rows
 * live in a caller-owned array allocated at start-up (SKUs, orders, accounts, locks, request ids).
 *
 * The index stores only (hash, slot) pairs, open addressing with linear probing and
 * backward-shift deletion (no tombstones, so a long run of inserts and deletes never degrades).
 * The caller keeps the keys in its rows and confirms a candidate with an equality callback; the
 * full 64-bit hash is compared first, so the callback runs about once per lookup.
 *
 * Capacity is fixed at init: entries_max rows at a load factor of at most 0.7. Inserting past
 * entries_max returns SM_E_BUSY; nothing allocates after init.
 */
#ifndef SHARDMART_UTIL_INDEX_H
#define SHARDMART_UTIL_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "util/assert.h"

#define SM_INDEX_NONE UINT32_MAX

struct sm_index {
    uint64_t *hashes; /* 0 marks an empty cell; real hashes are forced non-zero */
    uint32_t *slots;
    uint32_t mask;        /* cells - 1; cells is a power of two */
    uint32_t count;       /* entries present */
    uint32_t entries_max; /* inserts past this fail with SM_E_BUSY */
};

/* Equality of the caller's row `slot` with the key being looked up (carried in ctx). */
typedef bool (*sm_index_eq_fn)(const void *ctx, uint32_t slot);

/* Allocates cells for entries_max entries (>= 1). 0, or SM_E_NOMEM. Free with sm_index_free. */
MUST_USE int sm_index_init(struct sm_index *ix, uint32_t entries_max);
void sm_index_free(struct sm_index *ix);
/* Removes every entry, keeping the memory. */
void sm_index_clear(struct sm_index *ix);

/* Forces 0 (the empty marker) to another value; use on every hash given to the index. */
static inline uint64_t sm_index_hash_fix(uint64_t h)
{
    return h ? h : 0x9e3779b97f4a7c15ULL;
}

/* The slot whose row equals the key, or SM_INDEX_NONE. */
static inline uint32_t sm_index_find(const struct sm_index *ix, uint64_t hash, sm_index_eq_fn eq,
                                     const void *ctx)
{
    hash = sm_index_hash_fix(hash);
    for (uint32_t i = (uint32_t)hash & ix->mask;; i = (i + 1) & ix->mask) {
        uint64_t h = ix->hashes[i];
        if (h == 0)
            return SM_INDEX_NONE;
        if (h == hash && eq(ctx, ix->slots[i]))
            return ix->slots[i];
    }
}

/* Adds (hash, slot). The caller has checked that the key is absent. 0, or SM_E_BUSY when the
 * index already holds entries_max entries. */
MUST_USE int sm_index_insert(struct sm_index *ix, uint64_t hash, uint32_t slot);

/* Removes the entry (hash, slot); it must be present. */
void sm_index_remove(struct sm_index *ix, uint64_t hash, uint32_t slot);

#endif
