/*
 * libFuzzer target for locks_load (src/engine/locks.h): any byte string must load cleanly or be
 * refused with an error, never crash, hang or leave a broken state. An accepted input must pass
 * locks_check, save back to exactly the bytes it was read from (the format is canonical), and
 * keep its invariants through a tick that expires everything and through closing a session.
 * Replayed over fuzz/corpus/fuzz_engine_locks_load/ by CTest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/locks.h"
#include "util/assert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct locks_config CONFIG = {
    .sessions_max = 16,
    .locks_max = 16,
    .holds_max = 64,
    .waiters_max = 64,
    .permits_max = 8,
    .reentry_max = 4,
};

static void assert_valid(const struct locks *l)
{
    char why[200];
    if (locks_check(l, why, sizeof why) != 0)
        sm_assert_fail(why, __FILE__, __LINE__);
}

/* Exercises a loaded state: a tick far in the future ends every session and wait. */
static void exercise(struct locks *l)
{
    static struct locks_event items[64];
    struct locks_events ev = {items, 0, 64};
    if (l->index_min > SM_LOCK_INDEX_MAX - 2)
        return;
    uint64_t index = l->index_min;
    ASSERT(locks_tick(l, index++, 0, &ev) == 0);
    assert_valid(l);
    ASSERT(locks_tick(l, index, INT64_MAX, &ev) == 0);
    assert_valid(l);
    ASSERT(l->session_count == 0 && l->hold_count == 0 && l->waiter_count == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct locks l;
    static bool ready;
    if (!ready) {
        ASSERT(locks_init(&l, &CONFIG) == 0);
        ready = true;
    }
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, size);
    if (locks_load(&l, &r) != 0) {
        ASSERT(l.session_count == 0 && l.lock_count == 0);
        assert_valid(&l);
        return 0;
    }
    assert_valid(&l);
    size_t used = size - sm_rbuf_left(&r);
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    ASSERT(locks_save(&l, &w) == 0);
    ASSERT(w.len == used && memcmp(w.data, data, used) == 0);
    sm_wbuf_free(&w);
    exercise(&l);
    return 0;
}
