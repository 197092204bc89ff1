/* Open-addressing hash index with backward-shift deletion (see index.h). */
#include "util/index.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

int sm_index_init(struct sm_index *ix, uint32_t entries_max)
{
    ASSERT(entries_max >= 1);
    memset(ix, 0, sizeof *ix);
    /* cells >= entries_max / 0.7, rounded up to a power of two. */
    uint64_t want = (uint64_t)entries_max * 10 / 7 + 1;
    uint64_t cells = 16;
    while (cells < want)
        cells *= 2;
    if (cells > (1ULL << 32))
        return SM_E_NOMEM;
    ix->hashes = calloc(cells, sizeof *ix->hashes);
    ix->slots = calloc(cells, sizeof *ix->slots);
    if (!ix->hashes || !ix->slots) {
        sm_index_free(ix);
        return SM_E_NOMEM;
    }
    ix->mask = (uint32_t)(cells - 1);
    ix->entries_max = entries_max;
    return 0;
}

void sm_index_free(struct sm_index *ix)
{
    free(ix->hashes);
    free(ix->slots);
    memset(ix, 0, sizeof *ix);
}

void sm_index_clear(struct sm_index *ix)
{
    /* Deletion shifts entries back and zeroes the cell it frees, so an empty index has no
     * non-zero cell: skipping the memset keeps a fresh index's pages untouched (calloc'ed
     * address space costs no memory until rows arrive). */
    if (ix->count == 0)
        return;
    memset(ix->hashes, 0, ((size_t)ix->mask + 1) * sizeof *ix->hashes);
    ix->count = 0;
}

int sm_index_insert(struct sm_index *ix, uint64_t hash, uint32_t slot)
{
    ASSERT(ix->hashes != NULL);
    if (ix->count >= ix->entries_max)
        return SM_E_BUSY;
    hash = sm_index_hash_fix(hash);
    uint32_t i = (uint32_t)hash & ix->mask;
    while (ix->hashes[i] != 0) {
        ASSERT(!(ix->hashes[i] == hash && ix->slots[i] == slot));
        i = (i + 1) & ix->mask;
    }
    ix->hashes[i] = hash;
    ix->slots[i] = slot;
    ix->count++;
    return 0;
}

void sm_index_remove(struct sm_index *ix, uint64_t hash, uint32_t slot)
{
    hash = sm_index_hash_fix(hash);
    uint32_t i = (uint32_t)hash & ix->mask;
    while (!(ix->hashes[i] == hash && ix->slots[i] == slot)) {
        ASSERT(ix->hashes[i] != 0); /* the entry must be present */
        i = (i + 1) & ix->mask;
    }
    /* Backward shift: pull later entries of the probe run into the hole when their home cell
     * is at or before it, so lookups never need tombstones. */
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & ix->mask; ix->hashes[j] != 0; j = (j + 1) & ix->mask) {
        uint32_t home = (uint32_t)ix->hashes[j] & ix->mask;
        /* Distance from home to j, and from home to hole, around the ring. */
        if (((j - home) & ix->mask) >= ((j - hole) & ix->mask)) {
            ix->hashes[hole] = ix->hashes[j];
            ix->slots[hole] = ix->slots[j];
            hole = j;
        }
    }
    ix->hashes[hole] = 0;
    ix->count--;
}
