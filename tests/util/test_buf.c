/* Round trips and the sticky bounds check of the byte codec. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/buf.h"

Test(buf, round_trip)
{
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    sm_wbuf_u8(&w, 0xab);
    sm_wbuf_u16(&w, 0xbeef);
    sm_wbuf_u32(&w, 0xdeadbeef);
    sm_wbuf_u64(&w, 0x0123456789abcdefULL);
    sm_wbuf_i64(&w, -42);
    sm_wbuf_str8(&w, "sku-1", 5);
    for (int i = 0; i < 1000; i++)
        sm_wbuf_u32(&w, (uint32_t)i);
    cr_assert(!w.failed);
    cr_assert_eq(w.data[1], 0xef, "little-endian");

    struct sm_rbuf r;
    sm_rbuf_init(&r, w.data, w.len);
    cr_assert_eq(sm_rbuf_u8(&r), 0xab);
    cr_assert_eq(sm_rbuf_u16(&r), 0xbeef);
    cr_assert_eq(sm_rbuf_u32(&r), 0xdeadbeef);
    cr_assert_eq(sm_rbuf_u64(&r), 0x0123456789abcdefULL);
    cr_assert_eq(sm_rbuf_i64(&r), -42);
    size_t n;
    const uint8_t *s = sm_rbuf_str8(&r, &n);
    cr_assert_eq(n, 5);
    cr_assert(memcmp(s, "sku-1", 5) == 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sm_rbuf_u32(&r), (uint32_t)i);
    cr_assert(sm_rbuf_ok(&r));
    cr_assert_eq(sm_rbuf_left(&r), 0);
    sm_wbuf_free(&w);
}

Test(buf, short_read_is_sticky)
{
    uint8_t data[3] = {1, 2, 3};
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, sizeof data);
    cr_assert_eq(sm_rbuf_u32(&r), 0);
    cr_assert(!sm_rbuf_ok(&r));
    cr_assert_eq(sm_rbuf_u8(&r), 0, "nothing is read after a failure");
    size_t n = 7;
    cr_assert_null(sm_rbuf_str8(&r, &n));
    cr_assert_eq(n, 0);
}

Test(buf, str8_longer_than_input_fails)
{
    uint8_t data[3] = {200, 'a', 'b'};
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, sizeof data);
    size_t n;
    cr_assert_null(sm_rbuf_str8(&r, &n));
    cr_assert(!sm_rbuf_ok(&r));
}

Test(buf, fixed_writer_never_overflows)
{
    uint8_t mem[6];
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, mem, sizeof mem);
    sm_wbuf_u32(&w, 1);
    cr_assert(!w.failed);
    sm_wbuf_u32(&w, 2);
    cr_assert(w.failed);
    cr_assert_eq(w.len, 4);
    sm_wbuf_free(&w);
}
