/*
 * The RESP request parser (see resp.h): what clients send, as arrays of bulk strings (every
 * client library, redis-cli, redis-benchmark) or as inline lines (telnet, `redis-cli` typed by
 * hand through nc). It is a byte-level state machine whose whole state lives in struct
 * resp_parser, so a request that arrives in pieces resumes where it stopped: length lines are
 * read one byte at a time through struct resp_int, bulk payloads are skipped by arithmetic, and
 * an inline line is searched with memchr from where the last search ended. Each byte of a
 * request is therefore examined once however it is split, and a pipelined buffer costs O(n).
 *
 * Error messages follow Redis ("Protocol error: ...") so that a person who knows Redis
 * recognizes them; the codes map to SM_E_PROTO (malformed) and SM_E_TOOLARGE (a limit passed).
 */
#include "proto/resp.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

/* ---- integers ------------------------------------------------------------------------------ */

void resp_int_init(struct resp_int *n)
{
    memset(n, 0, sizeof *n);
}

int resp_int_feed(struct resp_int *n, uint8_t c)
{
    if (c == '-') {
        /* A sign only in first position, and only once. */
        if (n->negative || n->digits > 0)
            return SM_E_PROTO;
        n->negative = true;
        return 0;
    }
    if (c < '0' || c > '9')
        return SM_E_PROTO; /* includes '+': RESP never sends it */
    if (n->leading_zero)
        return SM_E_PROTO; /* "01", "00": not canonical */
    if (n->digits == 0 && c == '0') {
        if (n->negative)
            return SM_E_PROTO; /* "-0" */
        n->leading_zero = true;
    }
    /* The limit is 2^63 - 1 for positive values and 2^63 for negative ones (INT64_MIN). */
    uint64_t limit = n->negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v;
    if (__builtin_mul_overflow(n->magnitude, 10, &v) ||
        __builtin_add_overflow(v, (uint64_t)(c - '0'), &v) || v > limit)
        return SM_E_PROTO;
    n->magnitude = v;
    n->digits++;
    return 0;
}

int resp_int_finish(const struct resp_int *n, int64_t *value)
{
    if (n->digits == 0)
        return SM_E_PROTO;
    if (n->negative)
        *value = n->magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)n->magnitude;
    else
        *value = (int64_t)n->magnitude;
    return 0;
}

/* ---- request parser ------------------------------------------------------------------------ */

enum parse_state {
    ST_START,       /* first byte of a request: '*' (array) or anything else (inline) */
    ST_COUNT,       /* digits of "*N" up to CR */
    ST_COUNT_LF,    /* LF after "*N\r" */
    ST_BULK_TYPE,   /* '$' of the next argument */
    ST_BULK_LEN,    /* digits of "$N" up to CR */
    ST_BULK_LEN_LF, /* LF after "$N\r" */
    ST_BULK_DATA,   /* the N payload bytes, skipped */
    ST_BULK_CR,     /* CR after the payload */
    ST_BULK_LF,     /* LF after the payload */
    ST_INLINE,      /* an inline line: everything up to LF */
};

void resp_parser_init(struct resp_parser *p)
{
    memset(p, 0, sizeof *p);
}

const char *resp_parser_message(const struct resp_parser *p)
{
    return p->msg;
}

static int set_error(struct resp_parser *p, int err)
{
    ASSERT(err == SM_E_PROTO || err == SM_E_TOOLARGE);
    p->err = err;
    return err;
}

/* Records an error with its message in Redis's wording; evaluates to err so that callers can
 * `return fail(...)`. A macro over snprintf rather than a variadic function: the compiler still
 * checks every format, and there is no va_list for the static analyzer to lose track of. */
#define fail(p, err, ...) (snprintf((p)->msg, sizeof(p)->msg, __VA_ARGS__), set_error((p), (err)))

/* A byte as Redis shows it in "expected '$', got 'x'": printable as itself, else escaped. */
static const char *shown(uint8_t c, char out[8])
{
    if (c >= 0x20 && c < 0x7f)
        snprintf(out, 8, "%c", c);
    else
        snprintf(out, 8, "\\x%02x", c);
    return out;
}

/* Ends a request: argv from the stored offsets, the parser reset, the bytes used returned. */
static int complete(struct resp_parser *p, uint8_t *buf, struct resp_request *req, uint32_t argc)
{
    ASSERT(argc <= SM_REQUEST_ARGS_MAX);
    ASSERT(p->pos > 0 && p->pos <= SM_REQUEST_BYTES_MAX);
    req->argc = argc;
    for (uint32_t i = 0; i < argc; i++) {
        req->argv[i].ptr = buf + p->arg_off[i];
        req->argv[i].len = p->arg_len[i];
    }
    int used = (int)p->pos;
    p->pos = 0;
    p->state = ST_START;
    p->argc = 0;
    p->args_done = 0;
    return used;
}

/* "*N" is complete: check N and move on to the first argument. Returns 0, 1 when the request is
 * complete already (an empty array), or an error. */
static int on_count(struct resp_parser *p)
{
    int64_t n;
    if (resp_int_finish(&p->num, &n) != 0 || n < -1)
        return fail(p, SM_E_PROTO, "Protocol error: invalid multibulk length");
    if (n > SM_REQUEST_ARGS_MAX)
        return fail(p, SM_E_TOOLARGE, "Protocol error: too many arguments (%lld, max %d)",
                    (long long)n, SM_REQUEST_ARGS_MAX);
    if (n <= 0)
        return 1; /* "*0" and "*-1": an empty request, ignored as Redis does */
    p->argc = (uint32_t)n;
    p->args_done = 0;
    p->state = ST_BULK_TYPE;
    return 0;
}

/* "$N" is complete: check N against the request bound before any payload arrives, so a client
 * announcing a huge argument is refused at once rather than after we buffered it. */
static int on_bulk_len(struct resp_parser *p)
{
    int64_t n;
    if (resp_int_finish(&p->num, &n) != 0 || n < 0)
        return fail(p, SM_E_PROTO, "Protocol error: invalid bulk length");
    /* Payload plus its CRLF must fit in what is left of the request. */
    if (n > (int64_t)SM_REQUEST_BYTES_MAX - 2 - (int64_t)p->pos)
        return fail(p, SM_E_TOOLARGE, "Protocol error: request too large (max %d bytes)",
                    SM_REQUEST_BYTES_MAX);
    p->arg_off[p->args_done] = p->pos;
    p->arg_len[p->args_done] = (uint32_t)n;
    p->state = ST_BULK_DATA;
    return 0;
}

/* One step of a length line: a digit (or sign) for p->num, or CR ending it. */
static int length_byte(struct resp_parser *p, uint8_t c, enum parse_state on_cr, const char *what)
{
    if (c == '\r') {
        p->state = on_cr;
        return 0;
    }
    if (resp_int_feed(&p->num, c) != 0)
        return fail(p, SM_E_PROTO, "Protocol error: invalid %s length", what);
    return 0;
}

static bool is_space(uint8_t c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static int hex_value(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The escapes redis-cli understands inside double quotes. *r points at the backslash; returns
 * the decoded byte and advances *r past the escape. */
static uint8_t double_quote_escape(const uint8_t **r, const uint8_t *end)
{
    const uint8_t *s = *r;
    if (end - s >= 4 && s[1] == 'x' && hex_value(s[2]) >= 0 && hex_value(s[3]) >= 0) {
        *r = s + 4;
        return (uint8_t)(hex_value(s[2]) * 16 + hex_value(s[3]));
    }
    *r = s + 2;
    switch (s[1]) {
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    case 'b':
        return '\b';
    case 'a':
        return '\a';
    default:
        return s[1];
    }
}

/* Reads one inline argument starting at *r (not a space), decoding quotes in place: the decoded
 * bytes go to w, which never runs ahead of *r because decoding only shrinks. Returns the decoded
 * length or -1 for unbalanced quotes (or a closing quote not followed by a space). */
static long inline_arg(const uint8_t **r, const uint8_t *end, uint8_t *w)
{
    const uint8_t *s = *r;
    uint8_t *start = w;
    uint8_t quote = 0;
    while (s < end) {
        uint8_t c = *s;
        if (quote == 0) {
            if (is_space(c))
                break;
            if (c == '"' || c == '\'')
                quote = c;
            else
                *w++ = c;
            s++;
        } else if (c == quote) {
            s++;
            if (s < end && !is_space(*s))
                return -1; /* "foo"bar */
            quote = 0;
            break;
        } else if (c == '\\' && quote == '"' && end - s >= 2) {
            *w++ = double_quote_escape(&s, end);
        } else if (c == '\\' && quote == '\'' && end - s >= 2 && s[1] == '\'') {
            *w++ = '\'';
            s += 2;
        } else {
            *w++ = c;
            s++;
        }
    }
    if (quote != 0)
        return -1;
    *r = s;
    return (long)(w - start);
}

/* An inline line buf[0, line_len) is complete: split it into arguments. */
static int split_inline(struct resp_parser *p, uint8_t *buf, size_t line_len)
{
    const uint8_t *r = buf;
    const uint8_t *end = buf + line_len;
    uint32_t argc = 0;
    for (;;) {
        while (r < end && is_space(*r))
            r++;
        if (r == end)
            break;
        if (argc == SM_REQUEST_ARGS_MAX)
            return fail(p, SM_E_TOOLARGE, "Protocol error: too many arguments (max %d)",
                        SM_REQUEST_ARGS_MAX);
        uint8_t *w = buf + (r - buf);
        long n = inline_arg(&r, end, w);
        if (n < 0)
            return fail(p, SM_E_PROTO, "Protocol error: unbalanced quotes in request");
        p->arg_off[argc] = (uint32_t)(w - buf);
        p->arg_len[argc] = (uint32_t)n;
        argc++;
    }
    p->argc = argc;
    return 0;
}

/* ST_INLINE: look for LF from where the last call stopped. Returns 1 when the line is complete
 * (p->pos past its LF, p->argc set), 0 when more bytes are needed, or an error. */
static int inline_step(struct resp_parser *p, uint8_t *buf, size_t len)
{
    const uint8_t *lf = memchr(buf + p->pos, '\n', len - p->pos);
    if (lf == NULL) {
        p->pos = (uint32_t)(len < SM_REQUEST_BYTES_MAX ? len : SM_REQUEST_BYTES_MAX);
        if (len >= SM_REQUEST_BYTES_MAX) /* the LF would make it MAX + 1 bytes at least */
            return fail(p, SM_E_TOOLARGE, "Protocol error: request too large (max %d bytes)",
                        SM_REQUEST_BYTES_MAX);
        return 0;
    }
    size_t line_len = (size_t)(lf - buf);
    if (line_len + 1 > SM_REQUEST_BYTES_MAX)
        return fail(p, SM_E_TOOLARGE, "Protocol error: request too large (max %d bytes)",
                    SM_REQUEST_BYTES_MAX);
    p->pos = (uint32_t)(line_len + 1);
    int rc = split_inline(p, buf, line_len);
    return rc < 0 ? rc : 1;
}

/* One byte of an array request in state p->state at buf[p->pos]. Returns 1 when the request is
 * complete, 0 to go on, or an error. Advances p->pos past what it used. */
static int array_step(struct resp_parser *p, uint8_t *buf, size_t len)
{
    uint8_t c = buf[p->pos];
    char seen[8];
    int rc = 0;
    switch ((enum parse_state)p->state) {
    case ST_COUNT:
        rc = length_byte(p, c, ST_COUNT_LF, "multibulk");
        break;
    case ST_COUNT_LF:
        if (c != '\n')
            return fail(p, SM_E_PROTO, "Protocol error: expected '\\n', got '%s'", shown(c, seen));
        p->pos++;
        return on_count(p);
    case ST_BULK_TYPE:
        if (c != '$')
            return fail(p, SM_E_PROTO, "Protocol error: expected '$', got '%s'", shown(c, seen));
        resp_int_init(&p->num);
        p->state = ST_BULK_LEN;
        break;
    case ST_BULK_LEN:
        rc = length_byte(p, c, ST_BULK_LEN_LF, "bulk");
        break;
    case ST_BULK_LEN_LF:
        if (c != '\n')
            return fail(p, SM_E_PROTO, "Protocol error: expected '\\n', got '%s'", shown(c, seen));
        p->pos++;
        return on_bulk_len(p);
    case ST_BULK_DATA: {
        /* Skip the payload by arithmetic: as much of it as has arrived. */
        size_t end = (size_t)p->arg_off[p->args_done] + p->arg_len[p->args_done];
        p->pos = (uint32_t)(len < end ? len : end);
        if (p->pos == end)
            p->state = ST_BULK_CR;
        return 0;
    }
    case ST_BULK_CR:
    case ST_BULK_LF:
        if (c != (p->state == ST_BULK_CR ? '\r' : '\n'))
            return fail(p, SM_E_PROTO,
                        "Protocol error: expected CRLF after a bulk string of %u bytes, got '%s'",
                        (unsigned)p->arg_len[p->args_done], shown(c, seen));
        p->pos++;
        if (p->state == ST_BULK_CR) {
            p->state = ST_BULK_LF;
            return 0;
        }
        p->args_done++;
        p->state = ST_BULK_TYPE;
        return p->args_done == p->argc ? 1 : 0;
    default:
        UNREACHABLE();
    }
    if (rc == 0)
        p->pos++;
    return rc;
}

/* Reads a short canonical decimal ending in CRLF at buf[*at] (at most 7 digits, so no overflow);
 * true with *v set and *at past the CRLF. False for anything else: the byte-wise path then
 * reads the same bytes and gives the same value or the precise error. */
static bool fast_number(const uint8_t *buf, size_t len, size_t *at, uint32_t *v)
{
    size_t i = *at;
    uint32_t n = 0;
    while (i < len && i - *at < 7 && buf[i] >= '0' && buf[i] <= '9')
        n = n * 10 + (uint32_t)(buf[i++] - '0');
    size_t digits = i - *at;
    if (digits == 0 || (buf[*at] == '0' && digits > 1) || len - i < 2 || buf[i] != '\r' ||
        buf[i + 1] != '\n')
        return false;
    *v = n;
    *at = i + 2;
    return true;
}

/* The common case in one go: "$N\r\n<N bytes>\r\n" all present. Returns 1 when the argument
 * was taken whole (p->pos past it) and it was the last, 0 when taken and more are due, -1 to
 * leave it to the byte-wise path. The checks are those of on_bulk_len and ST_BULK_CR/LF. */
static int fast_bulk(struct resp_parser *p, const uint8_t *buf, size_t len)
{
    ASSERT(p->state == ST_BULK_TYPE && p->args_done < p->argc);
    size_t at = p->pos + 1;
    uint32_t n;
    if (buf[p->pos] != '$' || !fast_number(buf, len, &at, &n))
        return -1;
    if (at + n + 2 > SM_REQUEST_BYTES_MAX || len - at < (size_t)n + 2 || buf[at + n] != '\r' ||
        buf[at + n + 1] != '\n')
        return -1;
    p->arg_off[p->args_done] = (uint32_t)at;
    p->arg_len[p->args_done] = n;
    p->args_done++;
    p->pos = (uint32_t)(at + n + 2);
    return p->args_done == p->argc ? 1 : 0;
}

int resp_request_parse(struct resp_parser *p, uint8_t *buf, size_t len, struct resp_request *req)
{
    ASSERT(buf != NULL || len == 0);
    ASSERT(len >= p->pos); /* the caller never takes back bytes it gave us */
    if (p->err != 0)
        return p->err;
    while (p->pos < len) {
        int rc;
        if (p->state == ST_BULK_TYPE && (rc = fast_bulk(p, buf, len)) >= 0) {
            if (rc > 0)
                return complete(p, buf, req, p->args_done);
            continue;
        }
        if (p->state == ST_START) {
            size_t at = 1;
            uint32_t n;
            if (buf[0] == '*' && fast_number(buf, len, &at, &n) && n > 0 &&
                n <= SM_REQUEST_ARGS_MAX) {
                p->argc = n;
                p->args_done = 0;
                p->state = ST_BULK_TYPE;
                p->pos = (uint32_t)at;
                continue;
            }
            if (buf[0] == '*') {
                resp_int_init(&p->num);
                p->state = ST_COUNT;
                p->pos = 1;
                continue;
            }
            p->state = ST_INLINE;
        }
        if (p->state == ST_INLINE)
            rc = inline_step(p, buf, len);
        else
            rc = array_step(p, buf, len);
        if (rc < 0)
            return rc;
        if (rc > 0)
            return complete(p, buf, req, p->state == ST_INLINE ? p->argc : p->args_done);
        /* Framing bytes count toward the request bound too (a stream of "$0\r\n\r\n"...). */
        if (p->pos > SM_REQUEST_BYTES_MAX)
            return fail(p, SM_E_TOOLARGE, "Protocol error: request too large (max %d bytes)",
                        SM_REQUEST_BYTES_MAX);
    }
    return 0;
}
