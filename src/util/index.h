/*
 * A fixed-capacity hash index from a 64-bit hash to a 32-bit slot number, for tables whose rows
 * live in a caller-owned array allocated at start-up (SKUs, orders, accounts, locks, request ids).
 *
 * The index stores only (tag, slot) pairs, open addressing with linear probing and backward-shift
 * deletion (no tombstones, so a long run of inserts and deletes never degrades). The caller keeps
 * the keys in its rows and confirms a candidate with an equality callback.
 *
 * One cell is 8 bytes, slot << 32 | tag, where the tag is the low 32 bits of the hash (forced
 * non-zero, so a zero cell is empty). Tag and slot share a cache line, so an insert or a lookup
 * of a table far larger than the cache costs one memory access per probed line, not two (an
 * earlier layout kept hashes and slots in two arrays, and a new id paid a miss in each). The home
 * cell is tag & mask, so the tag alone is enough to move entries on deletion. The tag holds the
 * home bits plus 32 - log2(cells) more: for an index of 2^24 cells a different key with the same
 * home passes the tag compare with probability 1/256 and costs one extra callback.
 *
 *   cell:  63            32 31             0
 *         +----------------+----------------+
 *         |      slot      |  tag (!= 0)    |
 *         +----------------+----------------+
 *
 * Capacity is fixed at init: entries_max rows at a load factor of at most 0.7. Inserting past
 * entries_max returns SM_E_BUSY; nothing allocates after init.
 *
 * The cells of the full capacity are allocated (zeroed address space) at init, but only a prefix
 * is in use: it starts at SM_INDEX_CELLS_START cells and doubles in place when an insert would
 * take it past a load of 0.7, until it is the full size. A node has hundreds of partitions with
 * several indexes each, sized for the worst partition; with every index at its full size from
 * the start, each new key touched a page nobody had touched (a page fault, 4 KiB zeroed) and a
 * node held gigabytes for a few thousand rows. Now the pages in use follow the rows. A doubling
 * re-places every entry (scratch: cells after the full size, also reserved at init), so one
 * insert in a power of two costs a pass over the index; the positions of entries change, which
 * nothing outside this file observes.
 */
#ifndef SHARDMART_UTIL_INDEX_H
#define SHARDMART_UTIL_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/assert.h"

#define SM_INDEX_NONE UINT32_MAX
/* Cells an index starts with (a tuning constant, not a limit: 1024 cells are 8 KiB). */
#define SM_INDEX_CELLS_START 1024u

struct sm_index {
    uint64_t *cells;   /* slot << 32 | tag; 0 marks an empty cell */
    uint32_t mask;     /* cells in use - 1; cells is a power of two, at most 2^32 */
    uint32_t mask_min; /* cells in use when empty - 1 (the start size, or the full after presize) */
    uint32_t mask_max; /* cells at the full size - 1 */
    uint32_t count;    /* entries present */
    uint32_t entries_max; /* inserts past this fail with SM_E_BUSY */
};

/* Equality of the caller's row `slot` with the key being looked up (carried in ctx). */
typedef bool (*sm_index_eq_fn)(const void *ctx, uint32_t slot);

/* Allocates cells for entries_max entries (>= 1). 0, or SM_E_NOMEM. Free with sm_index_free. */
MUST_USE int sm_index_init(struct sm_index *ix, uint32_t entries_max);
void sm_index_free(struct sm_index *ix);
/* Removes every entry, keeping the memory (the cells in use shrink back to mask_min + 1). */
void sm_index_clear(struct sm_index *ix);
/* Puts the full size in use now and after every clear (an empty index only): for callers that touch
 * every page at start to keep page faults and doublings out of their measured path. */
void sm_index_presize(struct sm_index *ix);
/* Bytes of cells an index of entries_max entries uses at its full size (memory accounting). */
size_t sm_index_bytes(uint32_t entries_max);

/* The tag kept for a hash: its low 32 bits, 0 (the empty marker) forced to another value. */
static inline uint32_t sm_index_tag(uint64_t hash)
{
    uint32_t t = (uint32_t)hash;
    return t ? t : 0x9e3779b9u;
}

/* Starts fetching the first cell a lookup or insert of hash reads, so that the cache misses of
 * independent lookups overlap instead of following each other. */
static inline void sm_index_prefetch(const struct sm_index *ix, uint64_t hash)
{
    __builtin_prefetch(&ix->cells[sm_index_tag(hash) & ix->mask]);
}

/* The slot whose row equals the key, or SM_INDEX_NONE. */
static inline uint32_t sm_index_find(const struct sm_index *ix, uint64_t hash, sm_index_eq_fn eq,
                                     const void *ctx)
{
    uint32_t tag = sm_index_tag(hash);
    for (uint32_t i = tag & ix->mask;; i = (i + 1) & ix->mask) {
        uint64_t c = ix->cells[i];
        if (c == 0)
            return SM_INDEX_NONE;
        if ((uint32_t)c == tag && eq(ctx, (uint32_t)(c >> 32)))
            return (uint32_t)(c >> 32);
    }
}

/* Adds (hash, slot). The caller has checked that the key is absent. 0, or SM_E_BUSY when the
 * index already holds entries_max entries. */
MUST_USE int sm_index_insert(struct sm_index *ix, uint64_t hash, uint32_t slot);

/* Removes the entry (hash, slot); it must be present. */
void sm_index_remove(struct sm_index *ix, uint64_t hash, uint32_t slot);

#endif
