/* The hash index against a brute-force model, with colliding hashes and long delete runs. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "util/error.h"
#include "util/index.h"

#define ROWS 2000

static uint64_t row_keys[ROWS];
static bool row_live[ROWS];

static bool eq_key(const void *ctx, uint32_t slot)
{
    return row_live[slot] && row_keys[slot] == *(const uint64_t *)ctx;
}

/* A deliberately poor hash (many collisions) so probe runs and shifts are exercised. */
static uint64_t weak_hash(uint64_t key)
{
    return (key % 97) * 0x100000001ULL;
}

Test(index, matches_model_under_random_inserts_and_removes)
{
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, ROWS), 0);
    srand(7);
    for (int step = 0; step < 200000; step++) {
        uint32_t slot = (uint32_t)(rand() % ROWS);
        uint64_t key = (uint64_t)slot * 31 + 5;
        if (row_live[slot]) {
            cr_assert_eq(sm_index_find(&ix, weak_hash(key), eq_key, &key), slot);
            sm_index_remove(&ix, weak_hash(key), slot);
            row_live[slot] = false;
            cr_assert_eq(sm_index_find(&ix, weak_hash(key), eq_key, &key), SM_INDEX_NONE);
        } else {
            cr_assert_eq(sm_index_find(&ix, weak_hash(key), eq_key, &key), SM_INDEX_NONE);
            row_keys[slot] = key;
            row_live[slot] = true;
            cr_assert_eq(sm_index_insert(&ix, weak_hash(key), slot), 0);
        }
    }
    uint32_t live = 0;
    for (uint32_t s = 0; s < ROWS; s++) {
        if (!row_live[s])
            continue;
        live++;
        uint64_t key = row_keys[s];
        cr_assert_eq(sm_index_find(&ix, weak_hash(key), eq_key, &key), s);
    }
    cr_assert_eq(ix.count, live);
    sm_index_free(&ix);
}

Test(index, full_index_says_busy)
{
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, 3), 0);
    for (uint32_t s = 0; s < 3; s++)
        cr_assert_eq(sm_index_insert(&ix, s + 1, s), 0);
    cr_assert_eq(sm_index_insert(&ix, 99, 3), SM_E_BUSY);
    cr_assert_eq(ix.count, 3);
    sm_index_free(&ix);
}

Test(index, zero_hash_is_usable)
{
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, 4), 0);
    uint64_t key = 0;
    row_keys[0] = 0;
    row_live[0] = true;
    cr_assert_eq(sm_index_insert(&ix, 0, 0), 0);
    cr_assert_eq(sm_index_find(&ix, 0, eq_key, &key), 0);
    sm_index_remove(&ix, 0, 0);
    cr_assert_eq(sm_index_find(&ix, 0, eq_key, &key), SM_INDEX_NONE);
    sm_index_free(&ix);
}

/* A cell keeps only the low 32 bits of a hash: hashes that differ only above them share a tag,
 * and the row's own key must still tell the entries apart, through removals too. */
Test(index, hashes_equal_in_the_low_32_bits_are_told_apart_by_the_key)
{
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, 64), 0);
    for (uint32_t s = 0; s < 40; s++) {
        row_keys[s] = 1000 + s;
        row_live[s] = true;
        cr_assert_eq(sm_index_insert(&ix, (uint64_t)s << 32 | 7, s), 0);
    }
    for (uint32_t s = 0; s < 40; s += 2) {
        sm_index_remove(&ix, (uint64_t)s << 32 | 7, s);
        row_live[s] = false;
    }
    for (uint32_t s = 0; s < 40; s++) {
        uint64_t key = 1000 + s;
        cr_assert_eq(sm_index_find(&ix, (uint64_t)s << 32 | 7, eq_key, &key),
                     s % 2 ? s : SM_INDEX_NONE);
    }
    cr_assert_eq(ix.count, 20);
    sm_index_free(&ix);
}

Test(index, bytes_are_eight_per_cell_at_load_at_most_0_7)
{
    cr_assert_eq(sm_index_bytes(1), 16 * 8);
    cr_assert_eq(sm_index_bytes(11), 16 * 8);
    cr_assert_eq(sm_index_bytes(12), 32 * 8);
    cr_assert_eq(sm_index_bytes(10000000), (size_t)(1u << 24) * 8);
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, 12), 0);
    cr_assert_eq((size_t)ix.mask_max + 1, 32);
    sm_index_free(&ix);
}

/* The cells in use start small and double in place while entries arrive, every entry findable
 * across each doubling (weak hashes: long runs wrap around the end of the cells in use), up to
 * the full size; removing leaves the size, clear shrinks back, presize starts at the full size. */
Test(index, grows_in_place_from_the_start_size_to_the_full_size)
{
    struct sm_index ix;
    cr_assert_eq(sm_index_init(&ix, ROWS), 0);
    cr_assert_eq((size_t)ix.mask + 1, SM_INDEX_CELLS_START);
    cr_assert_eq((size_t)ix.mask_max + 1, 4096);
    uint32_t masks_seen = 0, last_mask = ix.mask;
    for (uint32_t s = 0; s < ROWS; s++) {
        row_keys[s] = (uint64_t)s * 7919 + 3;
        row_live[s] = true;
        cr_assert_eq(sm_index_insert(&ix, weak_hash(row_keys[s]) ^ s, s), 0);
        cr_assert(ix.count * 10 <= ((uint64_t)ix.mask + 1) * 7, "load above 0.7 at %u", s);
        if (ix.mask != last_mask) {
            masks_seen++;
            last_mask = ix.mask;
            for (uint32_t t = 0; t <= s; t++)
                cr_assert_eq(sm_index_find(&ix, weak_hash(row_keys[t]) ^ t, eq_key, &row_keys[t]),
                             t);
        }
    }
    cr_assert_eq(masks_seen, 2); /* 1024 -> 2048 -> 4096 */
    cr_assert_eq(ix.mask, ix.mask_max);
    cr_assert_eq(sm_index_insert(&ix, 1, ROWS), SM_E_BUSY);
    for (uint32_t s = 0; s < ROWS; s += 3) {
        sm_index_remove(&ix, weak_hash(row_keys[s]) ^ s, s);
        row_live[s] = false;
    }
    for (uint32_t s = 0; s < ROWS; s++)
        cr_assert_eq(sm_index_find(&ix, weak_hash(row_keys[s]) ^ s, eq_key, &row_keys[s]),
                     s % 3 ? s : SM_INDEX_NONE);
    sm_index_clear(&ix);
    cr_assert_eq((size_t)ix.mask + 1, SM_INDEX_CELLS_START);
    for (uint32_t s = 0; s < ROWS; s++) {
        row_live[s] = false;
        cr_assert_eq(sm_index_find(&ix, weak_hash(row_keys[s]) ^ s, eq_key, &row_keys[s]),
                     SM_INDEX_NONE);
    }
    sm_index_presize(&ix);
    cr_assert_eq(ix.mask, ix.mask_max);
    sm_index_clear(&ix);
    cr_assert_eq(ix.mask, ix.mask_max);
    sm_index_free(&ix);
}
