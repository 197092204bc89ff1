/*
 * Little-endian byte encoding for records, snapshots and messages.
 *
 * struct sm_wbuf appends to a heap buffer that grows (snapshots, not the hot path) or to a fixed
 * caller buffer (records, where running out is an error). struct sm_rbuf reads with bounds checks
 * and a sticky error: after the first short read every getter returns 0 and sm_rbuf_ok() is false,
 * so a decoder checks once at the end instead of after every field, and a truncated or hostile
 * input can never read past its end.
 */
#ifndef SHARDMART_UTIL_BUF_H
#define SHARDMART_UTIL_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/assert.h"

struct sm_wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool fixed;  /* a caller-owned buffer that must not grow */
    bool failed; /* sticky: a write did not fit (fixed) or allocation failed */
};

/* A growable buffer that owns its memory; free with sm_wbuf_free. */
void sm_wbuf_init(struct sm_wbuf *w);
/* A writer over caller memory [mem, mem+cap); never allocates, never frees. */
void sm_wbuf_init_fixed(struct sm_wbuf *w, void *mem, size_t cap);
void sm_wbuf_free(struct sm_wbuf *w);
/* Makes room for n more bytes; false (and failed set) when it cannot. */
bool sm_wbuf_reserve(struct sm_wbuf *w, size_t n);
void sm_wbuf_put(struct sm_wbuf *w, const void *src, size_t n);
void sm_wbuf_u8(struct sm_wbuf *w, uint8_t v);
void sm_wbuf_u16(struct sm_wbuf *w, uint16_t v);
void sm_wbuf_u32(struct sm_wbuf *w, uint32_t v);
void sm_wbuf_u64(struct sm_wbuf *w, uint64_t v);
void sm_wbuf_i64(struct sm_wbuf *w, int64_t v);
/* A length-prefixed (u8) byte string of at most 255 bytes: keys and ids. */
void sm_wbuf_str8(struct sm_wbuf *w, const void *s, size_t n);
/* A length-prefixed (u32) byte string. */
void sm_wbuf_str32(struct sm_wbuf *w, const void *s, size_t n);

struct sm_rbuf {
    const uint8_t *data;
    size_t len;
    size_t pos;
    bool failed; /* sticky: a read ran past the end or a value was invalid */
};

void sm_rbuf_init(struct sm_rbuf *r, const void *data, size_t len);
/* True while every read so far was in bounds and no decoder called sm_rbuf_fail. */
static inline bool sm_rbuf_ok(const struct sm_rbuf *r)
{
    return !r->failed;
}
static inline size_t sm_rbuf_left(const struct sm_rbuf *r)
{
    return r->failed ? 0 : r->len - r->pos;
}
/* Marks the input invalid (a decoder found a value out of range). */
static inline void sm_rbuf_fail(struct sm_rbuf *r)
{
    r->failed = true;
}
/* Returns a pointer to the next n bytes and skips them, or NULL (and failed) if fewer remain. */
const uint8_t *sm_rbuf_take(struct sm_rbuf *r, size_t n);
uint8_t sm_rbuf_u8(struct sm_rbuf *r);
uint16_t sm_rbuf_u16(struct sm_rbuf *r);
uint32_t sm_rbuf_u32(struct sm_rbuf *r);
uint64_t sm_rbuf_u64(struct sm_rbuf *r);
int64_t sm_rbuf_i64(struct sm_rbuf *r);
/* Reads a str8; *len gets its length; NULL (and failed) when short. Not NUL-terminated. */
const uint8_t *sm_rbuf_str8(struct sm_rbuf *r, size_t *len);
const uint8_t *sm_rbuf_str32(struct sm_rbuf *r, size_t *len);

#endif
