/*
 * libFuzzer target for the messages between partitions (src/node/txn.c): any bytes must decode
 * or be refused without reading past their end, and a message that decodes must encode back to
 * exactly its bytes (the encoding is canonical, so a message relayed between nodes in issue 5
 * is the message that was sent). Replayed over fuzz/corpus/fuzz_node_txn_msg/ by CTest.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/txn.h"
#include "util/buf.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan sees any read past the end. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct txn_msg m;
    if (txn_msg_decode(copy, size, &m) == 0) {
        struct sm_wbuf w;
        sm_wbuf_init(&w);
        int rc = txn_msg_encode(&m, &w);
        ASSERT(rc == 0);
        ASSERT(w.len == size && memcmp(w.data, copy, size) == 0);
        sm_wbuf_free(&w);
    }
    free(copy);
    return 0;
}
