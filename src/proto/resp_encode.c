/*
 * The RESP reply encoder (see resp.h). Every put computes its full size first and writes only if
 * all of it fits, so a full output buffer leaves the stream well-formed: the caller stops reading
 * that client (backpressure) and retries the same put once the client has drained its replies.
 * The connection's dialect decides how RESP3-only types look to a RESP2 client, following what
 * Redis does (a map is a flat array, a boolean an integer, a null "$-1" or "*-1").
 */
#include "proto/resp.h"

#include <string.h>

#include "util/error.h"

void resp_encoder_init(struct resp_encoder *e, struct sm_wbuf *w, size_t out_max, int version)
{
    ASSERT(w != NULL);
    ASSERT(version == 2 || version == 3);
    e->w = w;
    e->out_max = out_max;
    e->version = (uint8_t)version;
}

/* True when n more bytes fit; on a fixed buffer or past out_max this does not mark the buffer
 * failed, so the caller can drain it and retry. */
static bool room(struct resp_encoder *e, size_t n)
{
    struct sm_wbuf *w = e->w;
    if (w->failed || w->len > e->out_max || n > e->out_max - w->len)
        return false;
    if (w->fixed)
        return n <= w->cap - w->len;
    return sm_wbuf_reserve(w, n);
}

static void raw(struct resp_encoder *e, const void *s, size_t n)
{
    struct sm_wbuf *w = e->w;
    ASSERT(n <= w->cap - w->len);
    if (n > 0)
        memcpy(w->data + w->len, s, n);
    w->len += n;
}

/* Writes "<type><v>\r\n" into out (at least 24 bytes); returns its length. */
static size_t format_header(char *out, uint8_t type, int64_t v)
{
    char digits[24];
    size_t d = 0;
    uint64_t m = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[d++] = (char)('0' + m % 10);
        m /= 10;
    } while (m != 0);
    size_t n = 0;
    out[n++] = (char)type;
    if (v < 0)
        out[n++] = '-';
    while (d > 0)
        out[n++] = digits[--d];
    out[n++] = '\r';
    out[n++] = '\n';
    return n;
}

/* "<type><text>\r\n": simple strings, doubles, big numbers, "_", "#t". */
static int put_line(struct resp_encoder *e, uint8_t type, const void *s, size_t n)
{
    if (!room(e, n + 3))
        return SM_E_NOMEM;
    raw(e, &type, 1);
    raw(e, s, n);
    raw(e, "\r\n", 2);
    return 0;
}

/* "<type><n>\r\n<n bytes>\r\n", optionally with a 4-byte prefix inside the n (verbatim). */
static int put_blob(struct resp_encoder *e, uint8_t type, const char *prefix, const void *s,
                    size_t n)
{
    size_t prefix_len = prefix ? strlen(prefix) : 0;
    ASSERT(n <= INT64_MAX - prefix_len);
    char head[32];
    size_t h = format_header(head, type, (int64_t)(n + prefix_len));
    if (n + prefix_len > SIZE_MAX - h - 2 || !room(e, h + prefix_len + n + 2))
        return SM_E_NOMEM;
    raw(e, head, h);
    raw(e, prefix, prefix_len);
    raw(e, s, n);
    raw(e, "\r\n", 2);
    return 0;
}

static int put_header(struct resp_encoder *e, uint8_t type, int64_t v)
{
    char head[32];
    size_t h = format_header(head, type, v);
    if (!room(e, h))
        return SM_E_NOMEM;
    raw(e, head, h);
    return 0;
}

static bool has_crlf(const void *s, size_t n)
{
    return memchr(s, '\r', n) != NULL || memchr(s, '\n', n) != NULL;
}

int resp_put_simple(struct resp_encoder *e, const char *s, size_t n)
{
    ASSERT(!has_crlf(s, n));
    return put_line(e, RESP_SIMPLE, s, n);
}

int resp_put_error(struct resp_encoder *e, const char *code, const char *message)
{
    size_t c = strlen(code), m = strlen(message);
    ASSERT(c > 0 && !has_crlf(code, c) && !has_crlf(message, m));
    if (!room(e, 1 + c + 1 + m + 2))
        return SM_E_NOMEM;
    raw(e, "-", 1);
    raw(e, code, c);
    raw(e, " ", 1);
    raw(e, message, m);
    raw(e, "\r\n", 2);
    return 0;
}

int resp_put_sm_error(struct resp_encoder *e, int err, const char *message)
{
    ASSERT(err < 0);
    return resp_put_error(e, sm_errcode(err), message ? message : sm_strerror(err));
}

int resp_put_int(struct resp_encoder *e, int64_t v)
{
    return put_header(e, RESP_INTEGER, v);
}

int resp_put_bulk(struct resp_encoder *e, const void *s, size_t n)
{
    return put_blob(e, RESP_BULK, NULL, s, n);
}

int resp_put_null(struct resp_encoder *e)
{
    return e->version == 3 ? put_line(e, RESP_NULL, "", 0) : put_header(e, RESP_BULK, -1);
}

int resp_put_null_array(struct resp_encoder *e)
{
    return e->version == 3 ? put_line(e, RESP_NULL, "", 0) : put_header(e, RESP_ARRAY, -1);
}

int resp_put_array(struct resp_encoder *e, uint32_t n)
{
    return put_header(e, RESP_ARRAY, n);
}

int resp_put_map(struct resp_encoder *e, uint32_t pairs)
{
    if (e->version == 3)
        return put_header(e, RESP_MAP, pairs);
    return put_header(e, RESP_ARRAY, 2 * (int64_t)pairs);
}

int resp_put_set(struct resp_encoder *e, uint32_t n)
{
    return put_header(e, e->version == 3 ? RESP_SET : RESP_ARRAY, n);
}

int resp_put_push(struct resp_encoder *e, uint32_t n)
{
    return put_header(e, e->version == 3 ? RESP_PUSH : RESP_ARRAY, n);
}

int resp_put_bool(struct resp_encoder *e, bool v)
{
    if (e->version == 3)
        return put_line(e, RESP_BOOLEAN, v ? "t" : "f", 1);
    return put_header(e, RESP_INTEGER, v ? 1 : 0);
}

int resp_put_verbatim(struct resp_encoder *e, const char *format, const void *s, size_t n)
{
    ASSERT(strlen(format) == 3);
    if (e->version == 2)
        return put_blob(e, RESP_BULK, NULL, s, n);
    char prefix[5] = {format[0], format[1], format[2], ':', 0};
    return put_blob(e, RESP_VERBATIM, prefix, s, n);
}

int resp_put_bignum(struct resp_encoder *e, const char *digits, size_t n)
{
    ASSERT(n > 0 && !has_crlf(digits, n));
    if (e->version == 2)
        return put_blob(e, RESP_BULK, NULL, digits, n);
    return put_line(e, RESP_BIGNUM, digits, n);
}

/* One parsed node, exactly as it was on the wire. */
static int put_value(struct resp_encoder *e, const struct resp_value *v)
{
    switch (v->type) {
    case RESP_SIMPLE:
    case RESP_ERROR:
    case RESP_DOUBLE:
    case RESP_BIGNUM:
        return put_line(e, v->type, v->str.ptr, v->str.len);
    case RESP_NULL:
        return put_line(e, RESP_NULL, "", 0);
    case RESP_BOOLEAN:
        return put_line(e, RESP_BOOLEAN, v->integer ? "t" : "f", 1);
    case RESP_INTEGER:
        return put_header(e, RESP_INTEGER, v->integer);
    case RESP_BULK:
    case RESP_BLOB_ERROR:
    case RESP_VERBATIM:
        if (v->is_null)
            return put_header(e, v->type, -1);
        return put_blob(e, v->type, NULL, v->str.ptr, v->str.len);
    case RESP_ARRAY:
    case RESP_MAP:
    case RESP_SET:
    case RESP_PUSH:
    case RESP_ATTRIBUTE:
        return put_header(e, v->type, v->is_null ? -1 : v->integer);
    default:
        UNREACHABLE();
    }
}

int resp_put_values(struct resp_encoder *e, const struct resp_value *vals, size_t n)
{
    size_t start = e->w->len;
    for (size_t i = 0; i < n; i++) {
        int rc = put_value(e, &vals[i]);
        if (rc != 0) {
            e->w->len = start; /* all or nothing, like every other put */
            return rc;
        }
    }
    return 0;
}
