/*
 * libFuzzer target for engine_load (snapshot.c): any byte string must load or be refused with an
 * error, never crash. Most inputs would die at the checksum, so an input whose first byte is even
 * is re-sealed (its last 8 bytes replaced by the XXH3-64 of the rest) before loading, which lets
 * the fuzzer reach the structure behind the checksum. A config larger than a small bound is not
 * loaded (it would only test malloc). An accepted snapshot must pass engine_check, save back to
 * exactly its own bytes (the format is canonical; a version 1 stream saves as the current
 * version, which must load), and survive a tick far in the future.
 * Replayed over fuzz/corpus/fuzz_engine_snapshot/ by CTest.
 */
#include <endian.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "engine/engine.h"
#include "util/buf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool config_small(const struct engine_config *c)
{
    const uint32_t caps[] = {c->skus_max,        c->orders_max,         c->holds_max,
                             c->accounts_max,    c->limit_rows_max,     c->item_chunks_max,
                             c->request_ids_max, c->locks.sessions_max, c->locks.locks_max,
                             c->locks.holds_max, c->locks.waiters_max};
    for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++)
        if (caps[i] > 256)
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 16 || size > (1u << 20))
        return 0;
    uint8_t *buf = malloc(size);
    ASSERT(buf != NULL);
    memcpy(buf, data, size);
    if ((buf[0] & 1) == 0) {
        buf[0] = 'S'; /* the magic's first byte, which is even */
        uint64_t sum = XXH3_64bits(buf, size - 8);
        memcpy(buf + size - 8, &sum, 8);
    }
    struct engine_config cfg;
    static struct engine e;
    if (engine_snapshot_config(buf, size, &cfg) != 0 || !config_small(&cfg) ||
        engine_init(&e, &cfg) != 0) {
        free(buf);
        return 0;
    }
    if (engine_load(&e, buf, size) == 0) {
        char why[200];
        ASSERT(engine_check(&e, why, sizeof why));
        struct sm_wbuf w;
        sm_wbuf_init(&w);
        ASSERT(engine_save(&e, &w) == 0);
        uint32_t version;
        memcpy(&version, buf + 8, 4);
        if (le32toh(version) == 1) {
            /* An older version loads and saves as the current one, which loads again. */
            static struct engine again;
            ASSERT(engine_init(&again, &cfg) == 0);
            ASSERT(engine_load(&again, w.data, w.len) == 0);
            engine_free(&again);
        } else {
            ASSERT(w.len == size && memcmp(w.data, buf, size) == 0);
        }
        sm_wbuf_free(&w);
        static struct engine_output out;
        static const uint8_t tick[] = {ENGINE_TICK};
        uint64_t index = engine_last_index(&e);
        if (index < UINT64_MAX / 2 && index < SM_LOCK_INDEX_MAX - 2) {
            engine_apply(&e, index + 1, SM_ENGINE_TIME_MS_MAX, tick, sizeof tick, &out);
            ASSERT(engine_check(&e, why, sizeof why));
        }
    }
    engine_free(&e);
    free(buf);
    return 0;
}
