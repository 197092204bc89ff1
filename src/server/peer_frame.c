/*
 * Frame codec of the transport between nodes; the byte layout is in peer_frame.h. Pure: no
 * allocation, no I/O, every length checked against the input before it is read.
 */
#include "server/peer_frame.h"

#include <string.h>

#include "util/buf.h"
#include "util/error.h"
#include "wal/crc32c.h"

void peer_frame_header(uint8_t out[PEER_FRAME_HEADER_BYTES], uint8_t type, const uint8_t *payload,
                       size_t len)
{
    ASSERT(type == PEER_FRAME_HELLO || type == PEER_FRAME_MESSAGE);
    ASSERT(len <= UINT32_MAX && (payload != NULL || len == 0));
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, out, PEER_FRAME_HEADER_BYTES);
    sm_wbuf_put(&w, PEER_FRAME_MAGIC, 4);
    sm_wbuf_u8(&w, PEER_FRAME_VERSION);
    sm_wbuf_u8(&w, type);
    sm_wbuf_u16(&w, 0);
    sm_wbuf_u32(&w, (uint32_t)len);
    sm_wbuf_u32(&w, len ? sm_crc32c(0, payload, len) : 0);
    ASSERT(!w.failed && w.len == PEER_FRAME_HEADER_BYTES);
}

int64_t peer_frame_decode(const uint8_t *buf, size_t len, size_t payload_max,
                          struct peer_frame *out, size_t *need_total)
{
    ASSERT(out != NULL && (buf != NULL || len == 0));
    /* Check what has arrived of the header at once: a stream that starts with garbage is refused
     * on its first bytes, not after 16. */
    size_t magic_seen = len < 4 ? len : 4;
    if (magic_seen > 0 && memcmp(buf, PEER_FRAME_MAGIC, magic_seen) != 0)
        return SM_E_PROTO;
    if (len < PEER_FRAME_HEADER_BYTES) {
        if (need_total)
            *need_total = PEER_FRAME_HEADER_BYTES;
        return 0;
    }
    struct sm_rbuf r;
    sm_rbuf_init(&r, buf + 4, PEER_FRAME_HEADER_BYTES - 4);
    uint8_t version = sm_rbuf_u8(&r);
    uint8_t type = sm_rbuf_u8(&r);
    uint16_t reserved = sm_rbuf_u16(&r);
    uint32_t payload_len = sm_rbuf_u32(&r);
    uint32_t crc = sm_rbuf_u32(&r);
    ASSERT(sm_rbuf_ok(&r) && sm_rbuf_left(&r) == 0);
    if (version != PEER_FRAME_VERSION || reserved != 0 ||
        (type != PEER_FRAME_HELLO && type != PEER_FRAME_MESSAGE))
        return SM_E_PROTO;
    if (payload_len > payload_max)
        return SM_E_TOOLARGE;
    size_t total = PEER_FRAME_HEADER_BYTES + (size_t)payload_len;
    if (len < total) {
        if (need_total)
            *need_total = total;
        return 0;
    }
    const uint8_t *payload = buf + PEER_FRAME_HEADER_BYTES;
    if ((payload_len ? sm_crc32c(0, payload, payload_len) : 0) != crc)
        return SM_E_CORRUPT;
    out->type = type;
    out->len = payload_len;
    out->payload = payload;
    return (int64_t)total;
}

void peer_hello_encode(uint8_t out[PEER_FRAME_HEADER_BYTES + PEER_HELLO_BYTES],
                       const struct peer_hello *h)
{
    ASSERT(h != NULL);
    uint8_t *payload = out + PEER_FRAME_HEADER_BYTES;
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, payload, PEER_HELLO_BYTES);
    sm_wbuf_u64(&w, h->cluster_id);
    sm_wbuf_u32(&w, h->from_node);
    sm_wbuf_u32(&w, h->to_node);
    ASSERT(!w.failed && w.len == PEER_HELLO_BYTES);
    peer_frame_header(out, PEER_FRAME_HELLO, payload, PEER_HELLO_BYTES);
}

int peer_hello_decode(const struct peer_frame *f, struct peer_hello *out)
{
    ASSERT(f != NULL && out != NULL);
    if (f->type != PEER_FRAME_HELLO || f->len != PEER_HELLO_BYTES)
        return SM_E_PROTO;
    struct sm_rbuf r;
    sm_rbuf_init(&r, f->payload, f->len);
    out->cluster_id = sm_rbuf_u64(&r);
    out->from_node = sm_rbuf_u32(&r);
    out->to_node = sm_rbuf_u32(&r);
    ASSERT(sm_rbuf_ok(&r) && sm_rbuf_left(&r) == 0);
    return 0;
}
