/*
 * libFuzzer target for the peer transport's frame decoder (src/server/peer_frame.c): bytes from
 * the network, read as a stream of frames the way a connection reads them. Beyond "no crash, no
 * sanitizer report": a frame that decodes re-encodes to exactly its header; no proper prefix of
 * it decodes as a whole frame; a decoded length never exceeds the bound; a HELLO that parses
 * encodes back to the same bytes.
 */
#include <stdint.h>
#include <string.h>

#include "server/peer_frame.h"
#include "util/assert.h"

/* A small bound, so inputs can reach "too large" as easily as "fits". */
#define PAYLOAD_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct peer_frame f;
        size_t need = 0;
        int64_t used = peer_frame_decode(data + off, size - off, PAYLOAD_MAX, &f, &need);
        if (used <= 0) {
            ASSERT(used < 0 || need > size - off);
            break;
        }
        ASSERT((size_t)used == PEER_FRAME_HEADER_BYTES + f.len && f.len <= PAYLOAD_MAX);
        ASSERT(f.payload == data + off + PEER_FRAME_HEADER_BYTES);
        uint8_t header[PEER_FRAME_HEADER_BYTES];
        peer_frame_header(header, f.type, f.payload, f.len);
        ASSERT(memcmp(header, data + off, sizeof header) == 0);
        for (size_t cut = 0; cut < (size_t)used; cut += 1 + cut / 4) {
            struct peer_frame g;
            ASSERT(peer_frame_decode(data + off, cut, PAYLOAD_MAX, &g, NULL) == 0);
        }
        struct peer_hello h;
        if (peer_hello_decode(&f, &h) == 0) {
            uint8_t again[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES];
            peer_hello_encode(again, &h);
            ASSERT(memcmp(again, data + off, sizeof again) == 0);
        }
        off += (size_t)used;
    }
    return 0;
}
