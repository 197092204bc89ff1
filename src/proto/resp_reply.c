/*
 * The RESP reply parser (see resp.h): every RESP2 and RESP3 type, for our own tools and tests.
 * hiredis is the client of the integration tests; this parser exists so that the benchmark
 * client and the fuzzers can read replies without a dependency and check that what the encoder
 * writes is what a reader gets back.
 *
 * A reply is a tree; the parser walks it without recursion, keeping for every open aggregate how
 * many elements are still due, and emits the nodes in pre-order into the caller's array. RESP3
 * attributes ("|") annotate the value that follows them, so a finished attribute does not fill
 * its parent's slot: the annotated value does.
 */
#include "proto/resp.h"

#include <string.h>

#include "util/error.h"

/* An open aggregate: elements still due; attributes do not fill their parent's slot. */
struct open_frame {
    int64_t left;
    bool attribute;
};

/* Finds the CRLF-terminated line at buf[*pos]; 1 with the line in *line and *pos past the CRLF,
 * 0 when incomplete, or an error (a lone CR or LF inside the line). */
static int read_line(const uint8_t *buf, size_t len, size_t *pos, struct proto_slice *line)
{
    const uint8_t *start = buf + *pos;
    size_t avail = len - *pos;
    const uint8_t *cr = memchr(start, '\r', avail);
    if (cr == NULL)
        return avail > SM_RESP_REPLY_BULK_BYTES_MAX ? SM_E_TOOLARGE : 0;
    size_t n = (size_t)(cr - start);
    if (n + 1 == avail)
        return 0; /* the LF has not arrived */
    if (cr[1] != '\n' || memchr(start, '\n', n) != NULL)
        return SM_E_PROTO;
    line->ptr = start;
    line->len = n;
    *pos += n + 2;
    return 1;
}

static int line_int(struct proto_slice line, int64_t *v)
{
    struct resp_int num;
    resp_int_init(&num);
    for (size_t i = 0; i < line.len; i++)
        if (resp_int_feed(&num, line.ptr[i]) != 0)
            return SM_E_PROTO;
    return resp_int_finish(&num, v);
}

/* RESP3 doubles: "1.5", "-2e10", "inf", "-inf", "nan". Only the alphabet is checked: the text is
 * handed on as is (shardmart itself never uses floating point, DESIGN.md 8). */
static bool double_ok(struct proto_slice s)
{
    if (s.len == 0)
        return false;
    if (proto_slice_eq(s, "inf") || proto_slice_eq(s, "-inf") || proto_slice_eq(s, "nan"))
        return true;
    for (size_t i = 0; i < s.len; i++) {
        uint8_t c = s.ptr[i];
        if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+'))
            return false;
    }
    return true;
}

static bool bignum_ok(struct proto_slice s)
{
    size_t i = s.len > 0 && s.ptr[0] == '-' ? 1 : 0;
    if (i == s.len)
        return false;
    for (; i < s.len; i++)
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
    return true;
}

/* "$N\r\n<N bytes>\r\n" and its kin '!' and '='; the length line is already read. */
static int read_blob(const uint8_t *buf, size_t len, size_t *pos, struct resp_value *v, int64_t n)
{
    if (n == -1 && v->type == RESP_BULK) {
        v->is_null = true;
        return 1;
    }
    if (n < 0)
        return SM_E_PROTO;
    if (n > SM_RESP_REPLY_BULK_BYTES_MAX)
        return SM_E_TOOLARGE;
    if (len - *pos < (size_t)n + 2)
        return 0;
    const uint8_t *p = buf + *pos;
    if (p[n] != '\r' || p[n + 1] != '\n')
        return SM_E_PROTO;
    if (v->type == RESP_VERBATIM && (n < 4 || p[3] != ':'))
        return SM_E_PROTO; /* "txt:" or "mkd:" must lead a verbatim string */
    v->str.ptr = p;
    v->str.len = (size_t)n;
    *pos += (size_t)n + 2;
    return 1;
}

/* Checks the line of a one-line type; 1 or SM_E_PROTO. */
static int read_scalar(struct proto_slice line, struct resp_value *v)
{
    switch (v->type) {
    case RESP_SIMPLE:
    case RESP_ERROR:
        v->str = line;
        return 1;
    case RESP_INTEGER:
        return line_int(line, &v->integer) == 0 ? 1 : SM_E_PROTO;
    case RESP_NULL:
        return line.len == 0 ? 1 : SM_E_PROTO;
    case RESP_DOUBLE:
        v->str = line;
        return double_ok(line) ? 1 : SM_E_PROTO;
    case RESP_BOOLEAN:
        if (!proto_slice_eq(line, "t") && !proto_slice_eq(line, "f"))
            return SM_E_PROTO;
        v->integer = line.ptr[0] == 't';
        return 1;
    case RESP_BIGNUM:
        v->str = line;
        return bignum_ok(line) ? 1 : SM_E_PROTO;
    default:
        return SM_E_PROTO;
    }
}

/* Reads the node at buf[*pos] into *v: 1 done, 0 incomplete, or an error. */
static int read_node(const uint8_t *buf, size_t len, size_t *pos, struct resp_value *v)
{
    if (*pos == len)
        return 0;
    memset(v, 0, sizeof *v);
    v->type = buf[*pos];
    if (strchr("+-:$*_,#!=(%~>|", v->type) == NULL || v->type == 0)
        return SM_E_PROTO; /* refused at once, not after a line that may never end */
    size_t at = *pos + 1;
    struct proto_slice line;
    int rc = read_line(buf, len, &at, &line);
    if (rc <= 0)
        return rc;
    switch (v->type) {
    case RESP_BULK:
    case RESP_BLOB_ERROR:
    case RESP_VERBATIM:
    case RESP_ARRAY:
    case RESP_MAP:
    case RESP_SET:
    case RESP_PUSH:
    case RESP_ATTRIBUTE:
        if (line_int(line, &v->integer) != 0)
            return SM_E_PROTO;
        if (v->type == RESP_BULK || v->type == RESP_BLOB_ERROR || v->type == RESP_VERBATIM) {
            rc = read_blob(buf, len, &at, v, v->integer);
            v->integer = 0;
        } else if (v->integer == -1 && v->type == RESP_ARRAY) {
            v->is_null = true;
            rc = 1;
        } else {
            rc = v->integer < 0 ? SM_E_PROTO : 1;
        }
        break;
    default:
        rc = read_scalar(line, v);
        break;
    }
    if (rc > 0)
        *pos = at;
    return rc;
}

/* A node that fills a slot completed: count it against the open aggregates, closing those that
 * are now full. True when the top-level reply is complete. */
static bool slot_filled(struct open_frame *stack, int *depth)
{
    while (*depth > 0) {
        struct open_frame *top = &stack[*depth - 1];
        if (--top->left > 0)
            return false;
        (*depth)--;
        if (top->attribute)
            return false; /* the annotated value is still to come, in the parent's slot */
    }
    return true;
}

/* Elements of an aggregate node (maps and attributes hold key-value pairs). */
static int64_t elements_of(const struct resp_value *v)
{
    bool pairs = v->type == RESP_MAP || v->type == RESP_ATTRIBUTE;
    return pairs ? v->integer * 2 : v->integer;
}

static bool is_aggregate(const struct resp_value *v)
{
    return !v->is_null && (v->type == RESP_ARRAY || v->type == RESP_MAP || v->type == RESP_SET ||
                           v->type == RESP_PUSH || v->type == RESP_ATTRIBUTE);
}

int resp_reply_parse(const uint8_t *buf, size_t len, struct resp_value *vals, size_t vals_max,
                     size_t *vals_n)
{
    ASSERT(buf != NULL || len == 0);
    ASSERT(vals != NULL && vals_max > 0);
    ASSERT(vals_max <= INT32_MAX); /* a node array, not an address space: keeps counts in int64 */
    struct open_frame stack[SM_RESP_REPLY_DEPTH_MAX];
    int depth = 0;
    size_t pos = 0;
    size_t n = 0;
    *vals_n = 0;
    for (;;) {
        if (n == vals_max)
            return SM_E_TOOLARGE;
        struct resp_value *v = &vals[n];
        int rc = read_node(buf, len, &pos, v);
        if (rc <= 0)
            return rc;
        n++;
        if (is_aggregate(v)) {
            /* Refuse at once what cannot fit rather than wait for its bytes; the count is bounded
             * first so that doubling a map's pairs cannot overflow. */
            if (v->integer > (int64_t)(vals_max - n))
                return SM_E_TOOLARGE;
            int64_t elements = elements_of(v);
            if (elements > (int64_t)(vals_max - n))
                return SM_E_TOOLARGE;
            if (elements > 0) {
                if (depth == SM_RESP_REPLY_DEPTH_MAX)
                    return SM_E_TOOLARGE;
                stack[depth].left = elements;
                stack[depth].attribute = v->type == RESP_ATTRIBUTE;
                depth++;
                continue;
            }
            if (v->type == RESP_ATTRIBUTE)
                continue; /* an empty attribute still precedes a value */
        }
        if (slot_filled(stack, &depth))
            break;
    }
    ASSERT(pos > 0 && pos <= len);
    *vals_n = n;
    return pos > (size_t)INT32_MAX ? SM_E_TOOLARGE : (int)pos;
}
