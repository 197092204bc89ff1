/* Open-addressing hash index with backward-shift deletion (see index.h). */
#include "util/index.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

/* cells >= entries_max / 0.7, rounded up to a power of two (at least 16). */
static uint64_t cells_for(uint32_t entries_max)
{
    uint64_t want = (uint64_t)entries_max * 10 / 7 + 1;
    uint64_t cells = 16;
    while (cells < want)
        cells *= 2;
    return cells;
}

size_t sm_index_bytes(uint32_t entries_max)
{
    return (size_t)cells_for(entries_max) * sizeof(uint64_t);
}

static uint32_t start_mask(uint32_t mask_max)
{
    return mask_max < SM_INDEX_CELLS_START - 1 ? mask_max : SM_INDEX_CELLS_START - 1;
}

int sm_index_init(struct sm_index *ix, uint32_t entries_max)
{
    ASSERT(entries_max >= 1);
    memset(ix, 0, sizeof *ix);
    uint64_t cells = cells_for(entries_max);
    if (cells > (1ULL << 32))
        return SM_E_NOMEM;
    /* The full size, then room for half of it: the old cells while a doubling re-places them.
     * Untouched pages cost address space only. */
    ix->cells = calloc(cells + cells / 2, sizeof *ix->cells);
    if (!ix->cells)
        return SM_E_NOMEM;
    ix->mask_max = (uint32_t)(cells - 1);
    ix->mask_min = start_mask(ix->mask_max);
    ix->mask = ix->mask_min;
    ix->entries_max = entries_max;
    return 0;
}

void sm_index_presize(struct sm_index *ix)
{
    ASSERT(ix->count == 0);
    ix->mask_min = ix->mask_max;
    ix->mask = ix->mask_max;
}

void sm_index_free(struct sm_index *ix)
{
    free(ix->cells);
    memset(ix, 0, sizeof *ix);
}

void sm_index_clear(struct sm_index *ix)
{
    /* Deletion shifts entries back and zeroes the cell it frees, so an empty index has no
     * non-zero cell: skipping the memset keeps a fresh index's pages untouched (calloc'ed
     * address space costs no memory until rows arrive). */
    if (ix->count != 0)
        memset(ix->cells, 0, ((size_t)ix->mask + 1) * sizeof *ix->cells);
    ix->count = 0;
    /* Cells past the prefix in use are always zero, so any smaller prefix is a valid index. */
    ix->mask = ix->mask_min;
}

static uint64_t cell_of(uint32_t tag, uint32_t slot)
{
    return (uint64_t)slot << 32 | tag;
}

static void place(struct sm_index *ix, uint64_t cell)
{
    uint32_t i = (uint32_t)cell & ix->mask;
    while (ix->cells[i] != 0) {
        ASSERT(ix->cells[i] != cell);
        i = (i + 1) & ix->mask;
    }
    ix->cells[i] = cell;
}

/* Doubles the cells in use. The old cells are copied to the scratch after the full size, the
 * prefix is zeroed and every entry placed again under the new mask (the upper half is zero:
 * nothing is ever written past the prefix in use). */
static void grow(struct sm_index *ix)
{
    size_t old = (size_t)ix->mask + 1;
    uint64_t *scratch = ix->cells + (size_t)ix->mask_max + 1;
    ASSERT(ix->mask < ix->mask_max && old <= ((size_t)ix->mask_max + 1) / 2);
    memcpy(scratch, ix->cells, old * sizeof *ix->cells);
    memset(ix->cells, 0, old * sizeof *ix->cells);
    ix->mask = (uint32_t)(old * 2 - 1);
    for (size_t k = 0; k < old; k++)
        if (scratch[k] != 0)
            place(ix, scratch[k]);
}

int sm_index_insert(struct sm_index *ix, uint64_t hash, uint32_t slot)
{
    ASSERT(ix->cells != NULL);
    if (ix->count >= ix->entries_max)
        return SM_E_BUSY;
    /* Past a load of 0.7 of the cells in use, double them (at the full size the load stays at
     * most 0.7 because cells_for sized it so). */
    if (ix->mask < ix->mask_max && ((uint64_t)ix->count + 1) * 10 > ((uint64_t)ix->mask + 1) * 7)
        grow(ix);
    place(ix, cell_of(sm_index_tag(hash), slot));
    ix->count++;
    return 0;
}

void sm_index_remove(struct sm_index *ix, uint64_t hash, uint32_t slot)
{
    uint64_t cell = cell_of(sm_index_tag(hash), slot);
    uint32_t i = (uint32_t)cell & ix->mask;
    while (ix->cells[i] != cell) {
        ASSERT(ix->cells[i] != 0); /* the entry must be present */
        i = (i + 1) & ix->mask;
    }
    /* Backward shift: pull later entries of the probe run into the hole when their home cell
     * is at or before it, so lookups never need tombstones. */
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & ix->mask; ix->cells[j] != 0; j = (j + 1) & ix->mask) {
        uint32_t home = (uint32_t)ix->cells[j] & ix->mask;
        /* Distance from home to j, and from home to hole, around the ring. */
        if (((j - home) & ix->mask) >= ((j - hole) & ix->mask)) {
            ix->cells[hole] = ix->cells[j];
            hole = j;
        }
    }
    ix->cells[hole] = 0;
    ix->count--;
    ASSERT(ix->count < ix->entries_max);
}
