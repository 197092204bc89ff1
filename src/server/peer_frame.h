/*
 * The frames of the transport between nodes (src/server/peer.c), as pure functions so the
 * decoder can be fuzzed (fuzz/fuzz_server_peer_frame.c) and tested without sockets.
 *
 * Every frame, little-endian (docs/cluster.md, "Transport between nodes"):
 *
 *   0        4     5      6        8          12         16
 *   +--------+-----+------+--------+----------+----------+----------------------+
 *   | "SMPF" | ver | type | 0 0    | len (u32)| CRC32C   | payload (len bytes)  |
 *   +--------+-----+------+--------+----------+----------+----------------------+
 *
 * type HELLO: the handshake, payload = cluster id (u64), sender node (u32), node it means to
 * reach (u32). type MESSAGE: payload = one message, opaque to the transport. The CRC covers the
 * payload; the header is checked field by field (magic, version, type, zero bytes, length), so a
 * frame is refused as soon as its 16 header bytes are in, before its payload is buffered.
 */
#ifndef SHARDMART_SERVER_PEER_FRAME_H
#define SHARDMART_SERVER_PEER_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "util/assert.h"

#define PEER_FRAME_MAGIC        "SMPF"
#define PEER_FRAME_VERSION      1
#define PEER_FRAME_HEADER_BYTES 16
#define PEER_HELLO_BYTES        16

/* Frame types: the sixth byte on the wire; never renumber. */
enum peer_frame_type {
    PEER_FRAME_HELLO = 1,
    PEER_FRAME_MESSAGE = 2,
};

/* A decoded frame; payload borrows the input. */
struct peer_frame {
    uint8_t type; /* enum peer_frame_type */
    uint32_t len;
    const uint8_t *payload;
};

/* The handshake's payload. */
struct peer_hello {
    uint64_t cluster_id;
    uint32_t from_node; /* the sender */
    uint32_t to_node;   /* the node the sender means to reach */
};

/* Writes the 16-byte header of a frame carrying [payload, payload+len) into out. len must fit in
 * 32 bits (asserted): callers check it against their bound first. */
void peer_frame_header(uint8_t out[PEER_FRAME_HEADER_BYTES], uint8_t type, const uint8_t *payload,
                       size_t len);

/* Looks for one frame at the start of [buf, buf+len). Returns the whole frame's size (> 0) with
 * *out filled; 0 when more bytes are needed (*need_total, if not NULL, gets the size the frame will
 * have once its header is in, else 16); or a negative error: SM_E_PROTO (bad magic, version, type
 * or reserved bytes), SM_E_TOOLARGE (payload longer than payload_max), SM_E_CORRUPT (the CRC does
 * not match). An error is final for the stream: the caller closes the connection. */
MUST_USE int64_t peer_frame_decode(const uint8_t *buf, size_t len, size_t payload_max,
                                   struct peer_frame *out, size_t *need_total);

/* Encodes a whole HELLO frame (header and payload) into out. */
void peer_hello_encode(uint8_t out[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES],
                       const struct peer_hello *h);

/* Parses a HELLO frame's payload: 0, or SM_E_PROTO when it is not exactly 16 bytes. */
MUST_USE int peer_hello_decode(const struct peer_frame *f, struct peer_hello *out);

#endif
