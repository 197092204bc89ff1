/*
 * HTTP/1.1 for the node's second port (DESIGN.md 8): /healthz, /readyz, /metrics and a small JSON
 * API. Parsing and encoding only, no I/O, in the same shape as the RESP parser (resp.h): the
 * server hands over a connection's unconsumed bytes, gets back one complete request at a time
 * (head and body) as slices into those bytes, and writes responses into an sm_wbuf.
 *
 * Supported: HTTP/1.0 and 1.1, origin-form targets ("/path?query"), keep-alive by default on 1.1
 * and on request on 1.0, "Connection: close", Content-Length bodies, pipelining, "Expect:
 * 100-continue". Refused with the status the server answers before closing: chunked bodies
 * (411: send a Content-Length, every client we serve can), other transfer codings (501), unknown
 * methods (501) and known ones we serve nowhere (405), and every limit of src/limits.h.
 */
#ifndef SHARDMART_PROTO_HTTP_H
#define SHARDMART_PROTO_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "proto/slice.h"
#include "util/assert.h"
#include "util/buf.h"

enum http_method {
    HTTP_GET = 1,
    HTTP_HEAD,
    HTTP_POST,
    HTTP_PUT,
    HTTP_DELETE,
};

struct http_header {
    struct proto_slice name;  /* as sent; compare with proto_slice_eq_nocase */
    struct proto_slice value; /* surrounding spaces and tabs removed */
};

/* One complete request. Slices point into the buffer given to http_request_parse. */
struct http_request {
    enum http_method method;
    uint8_t version_minor;     /* HTTP/1.<minor>: 0 or 1 */
    bool keep_alive;           /* false: answer with "Connection: close" and close */
    struct proto_slice target; /* as sent: "/api/orders?id=o%2D1" */
    struct proto_slice query;  /* the raw text after '?', empty without one */
    /* The path part of the target, percent-decoded and NUL-terminated ("/api/orders"). */
    char path[SM_HTTP_TARGET_BYTES_MAX + 1];
    size_t path_len;
    uint32_t header_count;
    struct http_header headers[SM_HTTP_HEADERS_MAX];
    struct proto_slice body; /* Content-Length bytes; empty without one */
};

/* Per-connection parser state: where the search for the end of the head stopped, and what the
 * head announced while the body is still arriving. No pointers, so the caller may move its
 * buffer between calls. */
struct http_parser {
    uint32_t start; /* empty lines skipped before the request line (RFC 9112 2.2) */
    uint32_t pos;   /* bytes examined so far, from buf[0] */
    uint32_t line_start;
    uint32_t head_len; /* request line + headers + blank line; 0 until seen */
    uint32_t body_len; /* Content-Length, once the head is in */
    bool expect_continue;
    int err;         /* 0, or the error returned (sticky) */
    uint16_t status; /* the status to answer with after an error */
    char msg[96];    /* why, for the log and the response body */
};

void http_parser_init(struct http_parser *p);

/*
 * Takes the next request from buf[0, len), the connection's unconsumed bytes.
 *   > 0: a complete request (head and body) used that many bytes; *req is filled; the parser is
 *        ready for the next one (pipelining).
 *   0:   incomplete; call again with the same bytes plus more. If http_parser_wants_continue()
 *        the server should write "HTTP/1.1 100 Continue\r\n\r\n" once now.
 *   < 0: SM_E_PROTO (status 400, 405, 411, 501, 505) or SM_E_TOOLARGE (413, 414, 431);
 *        http_parser_status() and http_parser_message() say what to answer. Sticky: answer
 *        with "Connection: close" and close.
 */
MUST_USE int http_request_parse(struct http_parser *p, const uint8_t *buf, size_t len,
                                struct http_request *req);

int http_parser_status(const struct http_parser *p);
const char *http_parser_message(const struct http_parser *p);
/* True while the head asked for "100-continue" and its body has not arrived yet. */
bool http_parser_wants_continue(const struct http_parser *p);

/* The first header named name (any case), or NULL. */
const struct http_header *http_request_header(const struct http_request *req, const char *name);

/* ---- targets ------------------------------------------------------------------------------- */

/* Decodes %XX escapes of in into out[0, cap) (no NUL added); with form set, '+' means a space
 * (query strings, application/x-www-form-urlencoded). SM_E_PROTO for a bad or truncated
 * escape or a decoded NUL byte; SM_E_TOOLARGE when out is too small. */
MUST_USE int http_percent_decode(struct proto_slice in, bool form, char *out, size_t cap,
                                 size_t *out_len);

/* Walks "a=1&b=&c" one parameter at a time; key and value are still encoded (decode them with
 * http_percent_decode(..., true, ...)). A parameter without '=' has an empty value; empty
 * parameters ("a=1&&b=2") are skipped. */
struct http_query_iter {
    const uint8_t *at;
    size_t left;
};

void http_query_init(struct http_query_iter *it, struct proto_slice query);
bool http_query_next(struct http_query_iter *it, struct proto_slice *key,
                     struct proto_slice *value);

/* ---- responses ----------------------------------------------------------------------------- */

/* "OK", "Not Found", ...; "Unknown" for a status we never send. */
const char *http_status_reason(int status);

/* Writes a status line and the headers Content-Type, Content-Length and Connection, then the
 * blank line. Either all of it fits or nothing is written and SM_E_NOMEM is returned (the
 * caller's backpressure). content_type may be NULL (no body). */
MUST_USE int http_response_head(struct sm_wbuf *w, int status, const char *content_type,
                                size_t content_length, bool keep_alive);

/* A head followed by body[0, n), all or nothing. For HEAD requests use http_response_head with
 * the length the body would have had. */
MUST_USE int http_response(struct sm_wbuf *w, int status, const char *content_type,
                           const void *body, size_t n, bool keep_alive);

#endif
