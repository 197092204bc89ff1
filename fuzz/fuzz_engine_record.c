/*
 * libFuzzer target for the engine's records (record.c) and engine_apply: the input is a stream
 * of records, each as [u8 time step][u16 length][bytes], applied to a small engine. Any bytes
 * must decode or be refused, never crash; a record that decodes and whose numbers are in range
 * must encode back to exactly its bytes (the encoding is canonical); after every record the
 * state must pass engine_check; at the end, load(save(state)) must save to the same bytes.
 * Replayed over fuzz/corpus/fuzz_engine_record/ by CTest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "util/buf.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const struct engine_config CONFIG = {.skus_max = 8,
                                            .orders_max = 16,
                                            .holds_max = 8,
                                            .accounts_max = 8,
                                            .limit_rows_max = 8,
                                            .item_chunks_max = 8,
                                            .request_ids_max = 16,
                                            .order_retention_ms = 100,
                                            .hold_retention_ms = 100,
                                            .locks = {.sessions_max = 4,
                                                      .locks_max = 4,
                                                      .holds_max = 8,
                                                      .waiters_max = 8,
                                                      .permits_max = 4,
                                                      .reentry_max = 3}};

static void assert_valid(const struct engine *e)
{
    char why[200];
    if (!engine_check(e, why, sizeof why))
        sm_assert_fail(why, __FILE__, __LINE__);
}

static void check_canonical(const uint8_t *rec, size_t len)
{
    static struct engine_cmd cmd;
    static uint8_t again[SM_ENGINE_RECORD_BYTES_MAX];
    if (engine_decode(rec, len, &cmd) != 0)
        return;
    size_t again_len;
    int rc = engine_encode(&cmd, again, sizeof again, &again_len);
    ASSERT(rc == 0 || rc == SM_E_BADARG); /* BADARG: a number out of range, refused by apply */
    if (rc == 0)
        ASSERT(again_len == len && memcmp(again, rec, len) == 0);
}

static void check_snapshot(const struct engine *e)
{
    struct sm_wbuf a, b;
    sm_wbuf_init(&a);
    sm_wbuf_init(&b);
    ASSERT(engine_save(e, &a) == 0);
    static struct engine copy;
    ASSERT(engine_init(&copy, &CONFIG) == 0);
    ASSERT(engine_load(&copy, a.data, a.len) == 0);
    ASSERT(engine_save(&copy, &b) == 0);
    ASSERT(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
    engine_free(&copy);
    sm_wbuf_free(&a);
    sm_wbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct engine e;
    static struct engine_output out;
    ASSERT(engine_init(&e, &CONFIG) == 0);
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, size);
    uint64_t index = 0;
    int64_t now = 1000;
    while (sm_rbuf_left(&r) >= 3) {
        now += sm_rbuf_u8(&r) * 10;
        size_t len = sm_rbuf_u16(&r);
        if (len > sm_rbuf_left(&r))
            len = sm_rbuf_left(&r);
        const uint8_t *rec = sm_rbuf_take(&r, len);
        check_canonical(rec, len);
        engine_apply(&e, ++index, now, rec, len, &out);
        ASSERT(out.reply.kind <= ENGINE_REPLY_ERR);
        ASSERT(out.reply.msg_len < sizeof out.reply.msg);
        assert_valid(&e);
    }
    check_snapshot(&e);
    engine_free(&e);
    return 0;
}
