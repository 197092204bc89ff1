/*
 * A borrowed run of bytes: what the protocol parsers hand out instead of copies. The bytes belong
 * to the caller's connection buffer and stay valid until the caller drops them.
 */
#ifndef SHARDMART_PROTO_SLICE_H
#define SHARDMART_PROTO_SLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct proto_slice {
    const uint8_t *ptr;
    size_t len;
};

/* True when the slice holds exactly the NUL-terminated string s (byte for byte). */
static inline bool proto_slice_eq(struct proto_slice s, const char *text)
{
    size_t n = strlen(text);
    return s.len == n && (n == 0 || memcmp(s.ptr, text, n) == 0);
}

/* Like proto_slice_eq, ignoring ASCII case (command names, HTTP header names). */
static inline bool proto_slice_eq_nocase(struct proto_slice s, const char *text)
{
    size_t n = strlen(text);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        uint8_t a = s.ptr[i], b = (uint8_t)text[i];
        if (a >= 'A' && a <= 'Z')
            a = (uint8_t)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (uint8_t)(b + 32);
        if (a != b)
            return false;
    }
    return true;
}

#endif
