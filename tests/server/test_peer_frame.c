/* The peer transport's frame codec (src/server/peer_frame.c): a golden vector that pins the
 * bytes on the wire, and every refusal of the decoder. */
#include <criterion/criterion.h>
#include <string.h>

#include "server/peer_frame.h"
#include "util/error.h"

/* HELLO {cluster 42, node 1 -> node 2}. The CRC32C of its 16 payload bytes, 0xf076d718, was
 * computed independently (bitwise, polynomial 0x82F63B78). Changing these bytes breaks every
 * mixed-version cluster: bump PEER_FRAME_VERSION instead. */
static const uint8_t golden_hello[32] = {
    'S',  'M',  'P',  'F',  0x01, 0x01, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x18, 0xd7, 0x76, 0xf0,
    0x2a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00,
};

Test(peer_frame, hello_golden_vector)
{
    uint8_t out[32];
    struct peer_hello h = {.cluster_id = 42, .from_node = 1, .to_node = 2};
    peer_hello_encode(out, &h);
    cr_assert_arr_eq(out, golden_hello, sizeof out);

    struct peer_frame f;
    size_t need = 0;
    cr_assert_eq(peer_frame_decode(golden_hello, sizeof golden_hello, 16, &f, &need), 32);
    cr_assert_eq(f.type, PEER_FRAME_HELLO);
    struct peer_hello back;
    cr_assert_eq(peer_hello_decode(&f, &back), 0);
    cr_assert_eq(back.cluster_id, 42);
    cr_assert_eq(back.from_node, 1);
    cr_assert_eq(back.to_node, 2);
}

Test(peer_frame, prefixes_need_more)
{
    for (size_t cut = 0; cut < sizeof golden_hello; cut++) {
        struct peer_frame f;
        size_t need = 0;
        cr_assert_eq(peer_frame_decode(golden_hello, cut, 16, &f, &need), 0, "cut %zu", cut);
        cr_assert_eq(need, cut < 16 ? 16u : 32u, "cut %zu", cut);
    }
}

Test(peer_frame, refusals)
{
    uint8_t b[64];
    struct peer_frame f;
    memcpy(b, golden_hello, 32);
    b[20] ^= 0x40; /* a payload bit */
    cr_assert_eq(peer_frame_decode(b, 32, 16, &f, NULL), SM_E_CORRUPT);
    memcpy(b, golden_hello, 32);
    b[13] ^= 0x01; /* a CRC bit */
    cr_assert_eq(peer_frame_decode(b, 32, 16, &f, NULL), SM_E_CORRUPT);
    memcpy(b, golden_hello, 32);
    cr_assert_eq(peer_frame_decode(b, 32, 15, &f, NULL), SM_E_TOOLARGE, "over the bound");
    cr_assert_eq(peer_frame_decode(b, 16, 15, &f, NULL), SM_E_TOOLARGE, "from the header alone");
    b[4] = 2;
    cr_assert_eq(peer_frame_decode(b, 32, 16, &f, NULL), SM_E_PROTO, "version");
    memcpy(b, golden_hello, 32);
    b[5] = 3;
    cr_assert_eq(peer_frame_decode(b, 32, 16, &f, NULL), SM_E_PROTO, "type");
    memcpy(b, golden_hello, 32);
    b[7] = 1;
    cr_assert_eq(peer_frame_decode(b, 32, 16, &f, NULL), SM_E_PROTO, "reserved bytes");
    cr_assert_eq(peer_frame_decode((const uint8_t *)"G", 1, 16, &f, NULL), SM_E_PROTO,
                 "garbage is refused on its first byte");
    cr_assert_eq(peer_frame_decode((const uint8_t *)"SMPX", 4, 16, &f, NULL), SM_E_PROTO);
}

Test(peer_frame, messages_back_to_back)
{
    uint8_t b[128];
    const char *m = "hello, node";
    size_t len = strlen(m);
    peer_frame_header(b, PEER_FRAME_MESSAGE, (const uint8_t *)m, len);
    memcpy(b + 16, m, len);
    peer_frame_header(b + 16 + len, PEER_FRAME_MESSAGE, NULL, 0);
    size_t total = 32 + len;
    struct peer_frame f;
    cr_assert_eq(peer_frame_decode(b, total, 1024, &f, NULL), (int64_t)(16 + len));
    cr_assert_eq(f.type, PEER_FRAME_MESSAGE);
    cr_assert_eq(f.len, len);
    cr_assert_arr_eq(f.payload, m, len);
    struct peer_hello h;
    cr_assert_eq(peer_hello_decode(&f, &h), SM_E_PROTO, "a message is not a handshake");
    cr_assert_eq(peer_frame_decode(b + 16 + len, 16, 1024, &f, NULL), 16, "empty message");
    cr_assert_eq(f.len, 0);
}
