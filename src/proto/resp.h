/*
 * RESP, the Redis serialization protocol, in both directions and without I/O (DESIGN.md 2, 8).
 *
 * The server hands the request parser whatever bytes arrived on a connection; the parser takes
 * out one complete request at a time as argc + argv slices that point into the caller's buffer
 * (zero-copy), and remembers how far it got when a request is still incomplete, so bytes that
 * trickle in one at a time are each looked at once. Replies are encoded into a per-connection
 * struct sm_wbuf by an encoder that knows whether the connection speaks RESP2 or RESP3 (HELLO).
 * A reply parser for every RESP2 and RESP3 type serves our own tools and tests.
 *
 *   connection bytes:  *3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n PING\r\n ...
 *                      |<------------- request 1 ------------->|<- 2 ->|
 *   resp_request_parse -> returns 33, argv = {"SET","k","v"} (slices into the bytes above)
 *
 * Nothing here allocates; all state lives in caller-owned structs sized by src/limits.h.
 */
#ifndef SHARDMART_PROTO_RESP_H
#define SHARDMART_PROTO_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "proto/slice.h"
#include "util/assert.h"
#include "util/buf.h"

/* ---- integers ------------------------------------------------------------------------------ */

/* An incremental parser for the decimal integers of RESP length and integer lines, fed one byte
 * at a time so a number split across reads needs no buffering. Only the canonical form is
 * accepted ("0", "-1", "123"; not "", "-", "+1", "01", "-0", or anything past int64), which makes
 * every accepted reply re-encode to the same bytes. */
struct resp_int {
    uint64_t magnitude;
    uint8_t digits;
    bool negative;
    bool leading_zero; /* the first digit was 0: nothing may follow it */
};

void resp_int_init(struct resp_int *n);
/* Adds one byte. SM_E_PROTO for a non-digit, a sign anywhere but first, a leading zero or an
 * overflow of int64; after an error the value is meaningless. */
MUST_USE int resp_int_feed(struct resp_int *n, uint8_t c);
/* The value so far; SM_E_PROTO when no digit was fed. */
MUST_USE int resp_int_finish(const struct resp_int *n, int64_t *value);

/* ---- requests (client -> server) ----------------------------------------------------------- */

/* One parsed command. argv[i] points into the buffer given to resp_request_parse and is valid
 * until the caller discards those bytes. argc is 0 for a blank inline line or an empty array
 * ("*0", "*-1"), which Redis accepts and ignores; the server does the same. */
struct resp_request {
    uint32_t argc;
    struct proto_slice argv[SM_REQUEST_ARGS_MAX];
};

/* The per-connection request parser state: where the current request's parse stopped. Arguments
 * are kept as offsets, not pointers, so the caller may move or grow its buffer between calls as
 * long as the unconsumed bytes stay in order at its start. About 2 KiB; no heap. */
struct resp_parser {
    uint32_t pos;        /* bytes of the current request already examined */
    uint8_t state;       /* enum in resp.c */
    uint32_t argc;       /* array requests: arguments announced by "*N" */
    uint32_t args_done;  /* arguments complete so far */
    struct resp_int num; /* the length line being read */
    uint32_t arg_off[SM_REQUEST_ARGS_MAX];
    uint32_t arg_len[SM_REQUEST_ARGS_MAX];
    int err;       /* 0, or the error returned (sticky: the connection is closed) */
    char msg[112]; /* Redis-style text of err, e.g. "Protocol error: expected '$', got 'x'" */
};

void resp_parser_init(struct resp_parser *p);

/*
 * Takes the next request from buf[0, len), the connection's unconsumed bytes.
 *   > 0: a complete request used that many bytes; *req is filled; the caller drops them and
 *        calls again for the next (pipelining). The parser is reset for the next request.
 *   0:   incomplete; call again with the same bytes plus more (len never shrinks between calls
 *        for one request). Bytes already examined are not examined again.
 *   < 0: SM_E_PROTO (malformed) or SM_E_TOOLARGE (more than SM_REQUEST_ARGS_MAX arguments or
 *        SM_REQUEST_BYTES_MAX bytes); resp_parser_message() says which. Sticky: the parser does
 *        not resynchronize, the server replies with the error and closes the connection.
 * Inline requests ("SET k \"a b\"\r\n") are split like redis-cli's quoting; their escapes are
 * decoded in place, inside this request's own bytes, which is why buf is not const.
 */
MUST_USE int resp_request_parse(struct resp_parser *p, uint8_t *buf, size_t len,
                                struct resp_request *req);

/* The message of the last error ("" when there was none); owned by p. */
const char *resp_parser_message(const struct resp_parser *p);

/* ---- replies (server -> client) ------------------------------------------------------------ */

/* The type bytes of RESP2 and RESP3. */
enum resp_type {
    RESP_SIMPLE = '+',
    RESP_ERROR = '-',
    RESP_INTEGER = ':',
    RESP_BULK = '$',
    RESP_ARRAY = '*',
    RESP_NULL = '_',
    RESP_DOUBLE = ',',
    RESP_BOOLEAN = '#',
    RESP_BLOB_ERROR = '!',
    RESP_VERBATIM = '=',
    RESP_BIGNUM = '(',
    RESP_MAP = '%',
    RESP_SET = '~',
    RESP_PUSH = '>',
    RESP_ATTRIBUTE = '|',
};

/* One node of a parsed reply. A reply is a pre-order list of nodes: an aggregate is followed by
 * its elements (a map or attribute by key, value, key, value ...). An attribute node comes
 * before the value it annotates and does not count as an element of its parent. */
struct resp_value {
    uint8_t type;           /* enum resp_type */
    bool is_null;           /* RESP2 null bulk "$-1" or null array "*-1" */
    int64_t integer;        /* ':' value; '#' 1 or 0; aggregates: count ('%', '|': pairs) */
    struct proto_slice str; /* text of + - $ , ! = ( (verbatim keeps its "txt:" prefix) */
};

/*
 * Parses one complete reply from buf[0, len) into vals[0, *vals_n); 0 < vals_max <= INT32_MAX.
 *   > 0: bytes used; 0: incomplete (call again with more; the parse restarts from buf[0]);
 *   SM_E_PROTO: malformed; SM_E_TOOLARGE: more than vals_max nodes, nesting deeper than
 *   SM_RESP_REPLY_DEPTH_MAX, or a string over SM_RESP_REPLY_BULK_BYTES_MAX.
 * Strings point into buf. Unlike the request parser this one keeps no state between calls:
 * our tools read replies in large chunks, and statelessness keeps it small.
 */
MUST_USE int resp_reply_parse(const uint8_t *buf, size_t len, struct resp_value *vals,
                              size_t vals_max, size_t *vals_n);

/* ---- encoder ------------------------------------------------------------------------------- */

/* Where a connection's replies go and in which dialect. Every resp_put_* call writes its whole
 * element or nothing and returns 0 or SM_E_NOMEM when the output has no room: a fixed sm_wbuf is
 * full, len would pass out_max, or growth failed. That is backpressure, not a bug: the caller
 * stops reading the client until it drains, then retries. The encoder borrows w. */
struct resp_encoder {
    struct sm_wbuf *w;
    size_t out_max;  /* bound on w->len; SIZE_MAX for none */
    uint8_t version; /* 2 or 3, switched by HELLO */
};

void resp_encoder_init(struct resp_encoder *e, struct sm_wbuf *w, size_t out_max, int version);

/* "+OK". s must not contain CR or LF (asserted: callers pass constants and validated keys). */
MUST_USE int resp_put_simple(struct resp_encoder *e, const char *s, size_t n);
/* "-CODE message"; neither may contain CR or LF. */
MUST_USE int resp_put_error(struct resp_encoder *e, const char *code, const char *message);
/* "-<wire code of err> message" for an SM_E_* (src/util/error.h); NULL message = default. */
MUST_USE int resp_put_sm_error(struct resp_encoder *e, int err, const char *message);
MUST_USE int resp_put_int(struct resp_encoder *e, int64_t v);
MUST_USE int resp_put_bulk(struct resp_encoder *e, const void *s, size_t n);
/* A missing value: RESP2 "$-1", RESP3 "_". */
MUST_USE int resp_put_null(struct resp_encoder *e);
/* A missing aggregate: RESP2 "*-1", RESP3 "_". */
MUST_USE int resp_put_null_array(struct resp_encoder *e);
/* Aggregate headers; the caller then puts exactly n elements (2 * pairs for a map). RESP2 has
 * only arrays: a map becomes a flat array of 2 * pairs, a set or push a plain array. */
MUST_USE int resp_put_array(struct resp_encoder *e, uint32_t n);
MUST_USE int resp_put_map(struct resp_encoder *e, uint32_t pairs);
MUST_USE int resp_put_set(struct resp_encoder *e, uint32_t n);
MUST_USE int resp_put_push(struct resp_encoder *e, uint32_t n);
/* RESP3 "#t"/"#f"; RESP2 ":1"/":0" (what Redis does). */
MUST_USE int resp_put_bool(struct resp_encoder *e, bool v);
/* RESP3 verbatim "=N\r\ntxt:..." (format is 3 bytes, e.g. "txt"); RESP2 a bulk of s. */
MUST_USE int resp_put_verbatim(struct resp_encoder *e, const char *format, const void *s, size_t n);
/* RESP3 big number "(123..." from its decimal text; RESP2 a bulk of the text. */
MUST_USE int resp_put_bignum(struct resp_encoder *e, const char *digits, size_t n);

/* Writes nodes parsed by resp_reply_parse back out byte for byte as they arrived (in their own
 * dialect, whatever e->version says). Used by the round-trip checks and by tools that relay. */
MUST_USE int resp_put_values(struct resp_encoder *e, const struct resp_value *vals, size_t n);

#endif
