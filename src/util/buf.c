/* Little-endian writer and bounds-checked reader (see buf.h). */
#include "util/buf.h"

#include <stdlib.h>
#include <string.h>

void sm_wbuf_init(struct sm_wbuf *w)
{
    memset(w, 0, sizeof *w);
}

void sm_wbuf_init_fixed(struct sm_wbuf *w, void *mem, size_t cap)
{
    ASSERT(mem != NULL || cap == 0);
    memset(w, 0, sizeof *w);
    w->data = mem;
    w->cap = cap;
    w->fixed = true;
}

void sm_wbuf_free(struct sm_wbuf *w)
{
    if (!w->fixed)
        free(w->data);
    memset(w, 0, sizeof *w);
}

bool sm_wbuf_reserve(struct sm_wbuf *w, size_t n)
{
    if (w->failed)
        return false;
    if (n <= w->cap - w->len)
        return true;
    if (w->fixed) {
        w->failed = true;
        return false;
    }
    size_t need;
    if (__builtin_add_overflow(w->len, n, &need)) {
        w->failed = true;
        return false;
    }
    size_t cap = w->cap ? w->cap : 256;
    while (cap < need) {
        if (__builtin_mul_overflow(cap, 2, &cap)) {
            w->failed = true;
            return false;
        }
    }
    uint8_t *p = realloc(w->data, cap);
    if (!p) {
        w->failed = true;
        return false;
    }
    w->data = p;
    w->cap = cap;
    return true;
}

void sm_wbuf_put(struct sm_wbuf *w, const void *src, size_t n)
{
    if (n == 0 || !sm_wbuf_reserve(w, n))
        return;
    memcpy(w->data + w->len, src, n);
    w->len += n;
}

void sm_wbuf_u8(struct sm_wbuf *w, uint8_t v)
{
    sm_wbuf_put(w, &v, 1);
}

void sm_wbuf_u16(struct sm_wbuf *w, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    sm_wbuf_put(w, b, sizeof b);
}

void sm_wbuf_u32(struct sm_wbuf *w, uint32_t v)
{
    uint8_t b[4];
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    sm_wbuf_put(w, b, sizeof b);
}

void sm_wbuf_u64(struct sm_wbuf *w, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    sm_wbuf_put(w, b, sizeof b);
}

void sm_wbuf_i64(struct sm_wbuf *w, int64_t v)
{
    sm_wbuf_u64(w, (uint64_t)v);
}

void sm_wbuf_str8(struct sm_wbuf *w, const void *s, size_t n)
{
    ASSERT(n <= UINT8_MAX);
    sm_wbuf_u8(w, (uint8_t)n);
    sm_wbuf_put(w, s, n);
}

void sm_wbuf_str32(struct sm_wbuf *w, const void *s, size_t n)
{
    ASSERT(n <= UINT32_MAX);
    sm_wbuf_u32(w, (uint32_t)n);
    sm_wbuf_put(w, s, n);
}

void sm_rbuf_init(struct sm_rbuf *r, const void *data, size_t len)
{
    ASSERT(data != NULL || len == 0);
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->failed = false;
}

const uint8_t *sm_rbuf_take(struct sm_rbuf *r, size_t n)
{
    if (r->failed || n > r->len - r->pos) {
        r->failed = true;
        return NULL;
    }
    static const uint8_t empty[1];
    if (r->data == NULL)
        return empty; /* n == 0 here: an empty input has nothing to point into */
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

static uint64_t read_le(struct sm_rbuf *r, size_t n)
{
    const uint8_t *p = sm_rbuf_take(r, n);
    if (!p)
        return 0;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t sm_rbuf_u8(struct sm_rbuf *r)
{
    return (uint8_t)read_le(r, 1);
}

uint16_t sm_rbuf_u16(struct sm_rbuf *r)
{
    return (uint16_t)read_le(r, 2);
}

uint32_t sm_rbuf_u32(struct sm_rbuf *r)
{
    return (uint32_t)read_le(r, 4);
}

uint64_t sm_rbuf_u64(struct sm_rbuf *r)
{
    return read_le(r, 8);
}

int64_t sm_rbuf_i64(struct sm_rbuf *r)
{
    return (int64_t)read_le(r, 8);
}

const uint8_t *sm_rbuf_str8(struct sm_rbuf *r, size_t *len)
{
    size_t n = sm_rbuf_u8(r);
    const uint8_t *p = sm_rbuf_take(r, n);
    *len = p ? n : 0;
    return p;
}

const uint8_t *sm_rbuf_str32(struct sm_rbuf *r, size_t *len)
{
    size_t n = sm_rbuf_u32(r);
    const uint8_t *p = sm_rbuf_take(r, n);
    *len = p ? n : 0;
    return p;
}
