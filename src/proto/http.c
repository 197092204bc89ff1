/*
 * The HTTP/1.1 request parser and response writer (see http.h).
 *
 * Parsing runs in two phases. First the end of the head (the blank line) is searched with memchr,
 * one line at a time, resuming where the last call stopped, with the request-line and head
 * limits checked as bytes arrive so a client cannot make us buffer more than the bounds. Once the
 * head is complete it is parsed in one pass (it is at most SM_HTTP_HEAD_BYTES_MAX bytes) and the
 * body length becomes known; the head is parsed once more when the body completes, because the
 * caller may have moved its buffer in between. Each byte is thus looked at a bounded number of
 * times however the request is split.
 *
 * Lines end with CRLF; a bare LF is accepted as RFC 9112 2.2 allows, a bare CR is not.
 */
#include "proto/http.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

/* The longest request line: a 16-byte method, the target, " HTTP/1.1", CRLF and the spaces. */
#define REQUEST_LINE_BYTES_MAX (16 + 1 + SM_HTTP_TARGET_BYTES_MAX + 1 + 8 + 2)
#define METHOD_BYTES_MAX       16

void http_parser_init(struct http_parser *p)
{
    memset(p, 0, sizeof *p);
}

int http_parser_status(const struct http_parser *p)
{
    return p->status;
}

const char *http_parser_message(const struct http_parser *p)
{
    return p->msg;
}

bool http_parser_wants_continue(const struct http_parser *p)
{
    return p->expect_continue;
}

static int set_status(struct http_parser *p, int status)
{
    ASSERT(status >= 400 && status < 600);
    p->status = (uint16_t)status;
    /* Limits passed are TOOLARGE; everything else is a malformed or unsupported request. */
    p->err = status == 413 || status == 414 || status == 431 ? SM_E_TOOLARGE : SM_E_PROTO;
    return p->err;
}

/* Records the status to answer with and why; evaluates to the error code. A macro over snprintf
 * (formats still checked) so that no va_list reaches the static analyzer. */
#define refuse(p, status, ...)                                                                     \
    (snprintf((p)->msg, sizeof(p)->msg, __VA_ARGS__), set_status((p), (status)))

/* RFC 9110 5.6.2 token characters: method and header names. */
static bool is_tchar(uint8_t c)
{
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool all_tchar(struct proto_slice s)
{
    for (size_t i = 0; i < s.len; i++)
        if (!is_tchar(s.ptr[i]))
            return false;
    return s.len > 0;
}

/* The method: one we serve, one HTTP defines that we serve nowhere (405), or unknown (501). */
static int parse_method(struct http_parser *p, struct proto_slice m, struct http_request *req)
{
    static const char *const served[] = {"GET", "HEAD", "POST", "PUT", "DELETE"};
    static const char *const refused[] = {"OPTIONS", "PATCH", "CONNECT", "TRACE"};
    if (!all_tchar(m))
        return refuse(p, 400, "malformed method");
    for (size_t i = 0; i < sizeof served / sizeof served[0]; i++) {
        if (proto_slice_eq(m, served[i])) {
            req->method = (enum http_method)(HTTP_GET + (int)i);
            return 0;
        }
    }
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
        if (proto_slice_eq(m, refused[i]))
            return refuse(p, 405, "method %s not allowed", refused[i]);
    return refuse(p, 501, "unknown method");
}

/* The target: origin-form only ("/path?query"), visible ASCII, path percent-decoded. */
static int parse_target(struct http_parser *p, struct proto_slice t, struct http_request *req)
{
    if (t.len > SM_HTTP_TARGET_BYTES_MAX)
        return refuse(p, 414, "request target longer than %d bytes", SM_HTTP_TARGET_BYTES_MAX);
    if (t.len == 0 || t.ptr[0] != '/')
        return refuse(p, 400, "request target must start with '/'");
    for (size_t i = 0; i < t.len; i++)
        if (t.ptr[i] <= 0x20 || t.ptr[i] >= 0x7f)
            return refuse(p, 400, "bad byte in request target");
    req->target = t;
    const uint8_t *q = memchr(t.ptr, '?', t.len);
    struct proto_slice path = {t.ptr, q ? (size_t)(q - t.ptr) : t.len};
    req->query.ptr = q ? q + 1 : t.ptr + t.len;
    req->query.len = q ? t.len - path.len - 1 : 0;
    if (http_percent_decode(path, false, req->path, sizeof req->path - 1, &req->path_len) != 0)
        return refuse(p, 400, "bad percent-encoding in path");
    req->path[req->path_len] = '\0';
    return 0;
}

static int parse_version(struct http_parser *p, struct proto_slice v, struct http_request *req)
{
    if (v.len != 8 || memcmp(v.ptr, "HTTP/", 5) != 0 || v.ptr[6] != '.' || v.ptr[5] < '0' ||
        v.ptr[5] > '9' || v.ptr[7] < '0' || v.ptr[7] > '9')
        return refuse(p, 400, "malformed HTTP version");
    if (v.ptr[5] != '1' || v.ptr[7] > '1')
        return refuse(p, 505, "only HTTP/1.0 and HTTP/1.1 are supported");
    req->version_minor = (uint8_t)(v.ptr[7] - '0');
    return 0;
}

/* "METHOD SP target SP HTTP/1.x", exactly one space between the three. */
static int parse_request_line(struct http_parser *p, struct proto_slice line,
                              struct http_request *req)
{
    const uint8_t *sp1 = memchr(line.ptr, ' ', line.len);
    if (sp1 == NULL)
        return refuse(p, 400, "malformed request line");
    struct proto_slice method = {line.ptr, (size_t)(sp1 - line.ptr)};
    const uint8_t *rest = sp1 + 1;
    size_t rest_len = line.len - method.len - 1;
    const uint8_t *sp2 = memchr(rest, ' ', rest_len);
    if (sp2 == NULL || memchr(sp2 + 1, ' ', rest_len - (size_t)(sp2 - rest) - 1) != NULL)
        return refuse(p, 400, "malformed request line");
    struct proto_slice target = {rest, (size_t)(sp2 - rest)};
    struct proto_slice version = {sp2 + 1, rest_len - target.len - 1};
    if (method.len > METHOD_BYTES_MAX)
        return refuse(p, 501, "unknown method");
    int rc = parse_version(p, version, req);
    if (rc == 0)
        rc = parse_method(p, method, req);
    if (rc == 0)
        rc = parse_target(p, target, req);
    return rc;
}

static bool has_token(struct proto_slice list, const char *token)
{
    /* Comma-separated, case-insensitive, optional whitespace: "keep-alive, Upgrade". */
    size_t i = 0;
    while (i < list.len) {
        while (i < list.len && (list.ptr[i] == ' ' || list.ptr[i] == '\t' || list.ptr[i] == ','))
            i++;
        size_t s = i;
        while (i < list.len && list.ptr[i] != ',' && list.ptr[i] != ' ' && list.ptr[i] != '\t')
            i++;
        struct proto_slice t = {list.ptr + s, i - s};
        if (t.len > 0 && proto_slice_eq_nocase(t, token))
            return true;
    }
    return false;
}

/* What the headers say about framing and the connection, checked once all are read. */
struct head_facts {
    int64_t content_length; /* -1 when absent */
    uint32_t hosts;
    bool transfer_encoding;
    bool chunked;
    bool conn_close;
    bool conn_keep_alive;
    bool expect_continue;
};

static int content_length_of(struct http_parser *p, struct proto_slice v, int64_t *out)
{
    if (v.len == 0 || v.len > 18)
        return v.len == 0 ? refuse(p, 400, "empty Content-Length")
                          : refuse(p, 413, "body larger than %d bytes", SM_HTTP_BODY_BYTES_MAX);
    int64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return refuse(p, 400, "malformed Content-Length");
        n = n * 10 + (v.ptr[i] - '0');
    }
    if (*out >= 0 && *out != n)
        return refuse(p, 400, "conflicting Content-Length headers");
    *out = n;
    return 0;
}

/* Records what one header means for framing; other headers are left to the caller. */
static int note_header(struct http_parser *p, const struct http_header *h, struct head_facts *f)
{
    if (proto_slice_eq_nocase(h->name, "content-length"))
        return content_length_of(p, h->value, &f->content_length);
    if (proto_slice_eq_nocase(h->name, "transfer-encoding")) {
        f->transfer_encoding = true;
        f->chunked = f->chunked || has_token(h->value, "chunked");
    } else if (proto_slice_eq_nocase(h->name, "connection")) {
        f->conn_close = f->conn_close || has_token(h->value, "close");
        f->conn_keep_alive = f->conn_keep_alive || has_token(h->value, "keep-alive");
    } else if (proto_slice_eq_nocase(h->name, "host")) {
        f->hosts++;
    } else if (proto_slice_eq_nocase(h->name, "expect")) {
        if (!proto_slice_eq_nocase(h->value, "100-continue"))
            return refuse(p, 417, "unsupported Expect");
        f->expect_continue = true;
    }
    return 0;
}

/* "Name: value" with no space before the colon, no obsolete line folding, no control bytes. */
static int parse_header(struct http_parser *p, struct proto_slice line, struct http_header *h)
{
    if (line.ptr[0] == ' ' || line.ptr[0] == '\t')
        return refuse(p, 400, "obsolete header line folding");
    const uint8_t *colon = memchr(line.ptr, ':', line.len);
    if (colon == NULL)
        return refuse(p, 400, "header line without ':'");
    h->name.ptr = line.ptr;
    h->name.len = (size_t)(colon - line.ptr);
    if (!all_tchar(h->name))
        return refuse(p, 400, "malformed header name");
    const uint8_t *v = colon + 1, *end = line.ptr + line.len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    for (const uint8_t *c = v; c < end; c++)
        if ((*c < 0x20 && *c != '\t') || *c == 0x7f)
            return refuse(p, 400, "control byte in header value");
    h->value.ptr = v;
    h->value.len = (size_t)(end - v);
    return 0;
}

/* The next line of head[*at, n): without its CR and LF. The head is complete, so every line
 * ends with LF. A CR anywhere but right before the LF is refused. */
static int next_line(struct http_parser *p, const uint8_t *head, size_t n, size_t *at,
                     struct proto_slice *line)
{
    const uint8_t *s = head + *at;
    const uint8_t *lf = memchr(s, '\n', n - *at);
    ASSERT(lf != NULL);
    size_t len = (size_t)(lf - s);
    *at += len + 1;
    if (len > 0 && s[len - 1] == '\r')
        len--;
    if (memchr(s, '\r', len) != NULL)
        return refuse(p, 400, "bare CR in head");
    line->ptr = s;
    line->len = len;
    return 0;
}

/* Decides framing and persistence from the facts of the headers. */
static int apply_facts(struct http_parser *p, const struct head_facts *f, struct http_request *req)
{
    if (f->transfer_encoding) {
        /* Chunked uploads are refused with 411: the client can always resend with a length. */
        if (f->chunked)
            return refuse(p, 411, "chunked request bodies are not supported; send Content-Length");
        return refuse(p, 501, "unsupported Transfer-Encoding");
    }
    if (req->version_minor == 1 && f->hosts != 1)
        return refuse(p, 400, f->hosts == 0 ? "missing Host header" : "more than one Host header");
    if (f->content_length > SM_HTTP_BODY_BYTES_MAX)
        return refuse(p, 413, "body larger than %d bytes", SM_HTTP_BODY_BYTES_MAX);
    req->keep_alive = req->version_minor == 1 ? !f->conn_close : f->conn_keep_alive;
    if (f->conn_close)
        req->keep_alive = false;
    p->body_len = f->content_length < 0 ? 0 : (uint32_t)f->content_length;
    p->expect_continue = f->expect_continue && req->version_minor == 1;
    return 0;
}

/* Parses a complete head (request line through the blank line) into req. */
static int parse_head(struct http_parser *p, const uint8_t *head, size_t n,
                      struct http_request *req)
{
    size_t at = 0;
    struct proto_slice line = {head, 0};
    int rc = next_line(p, head, n, &at, &line);
    if (rc == 0)
        rc = parse_request_line(p, line, req);
    struct head_facts facts = {.content_length = -1};
    req->header_count = 0;
    while (rc == 0) {
        rc = next_line(p, head, n, &at, &line);
        if (rc != 0 || line.len == 0)
            break;
        if (req->header_count == SM_HTTP_HEADERS_MAX)
            return refuse(p, 431, "more than %d header lines", SM_HTTP_HEADERS_MAX);
        struct http_header *h = &req->headers[req->header_count];
        rc = parse_header(p, line, h);
        if (rc == 0)
            rc = note_header(p, h, &facts);
        req->header_count++;
    }
    if (rc != 0)
        return rc;
    ASSERT(at == n);
    return apply_facts(p, &facts, req);
}

/* Searches for the blank line that ends the head, from where the last call stopped. Returns 1
 * with p->head_len set, 0 when more bytes are needed, or an error for a limit passed. */
static int find_head_end(struct http_parser *p, const uint8_t *buf, size_t len)
{
    while (p->pos < len) {
        const uint8_t *lf = memchr(buf + p->pos, '\n', len - p->pos);
        size_t line_end = lf ? (size_t)(lf - buf) + 1 : len;
        bool first = p->line_start == p->start;
        /* The shortest the line (and the head) can still turn out to be: a line that has run past
         * its bound cannot become valid, so it is refused before more of it is buffered. */
        size_t least = lf ? line_end - p->start : len - p->start + 1;
        if (first && least > REQUEST_LINE_BYTES_MAX)
            return refuse(p, 414, "request line longer than %d bytes", REQUEST_LINE_BYTES_MAX);
        if (least > SM_HTTP_HEAD_BYTES_MAX)
            return refuse(p, 431, "request head larger than %d bytes", SM_HTTP_HEAD_BYTES_MAX);
        if (!lf) {
            p->pos = (uint32_t)len;
            return 0;
        }
        size_t line_len = line_end - p->line_start;
        bool blank = line_len == 1 || (line_len == 2 && buf[p->line_start] == '\r');
        p->pos = (uint32_t)line_end;
        p->line_start = (uint32_t)line_end;
        if (blank && first) {
            p->start = (uint32_t)line_end; /* an empty line before the request line */
            if (p->start > 4) /* one or two CRLFs are tolerated, not a stream of them */
                return refuse(p, 400, "too many empty lines before the request");
            continue;
        }
        if (blank) {
            p->head_len = (uint32_t)(line_end - p->start);
            return 1;
        }
    }
    return 0;
}

int http_request_parse(struct http_parser *p, const uint8_t *buf, size_t len,
                       struct http_request *req)
{
    ASSERT(buf != NULL || len == 0);
    ASSERT(len >= p->pos);
    if (p->err != 0)
        return p->err;
    bool parsed = false;
    if (p->head_len == 0) {
        int rc = find_head_end(p, buf, len);
        if (rc <= 0)
            return rc;
        rc = parse_head(p, buf + p->start, p->head_len, req);
        if (rc != 0)
            return rc;
        parsed = true;
    }
    size_t total = (size_t)p->start + p->head_len + p->body_len;
    if (len < total)
        return 0;
    if (!parsed) {
        /* The buffer may have moved since the head was parsed: parse it again where it is. */
        int rc = parse_head(p, buf + p->start, p->head_len, req);
        ASSERT(rc == 0);
    }
    req->body.ptr = buf + p->start + p->head_len;
    req->body.len = p->body_len;
    http_parser_init(p);
    ASSERT(total <= INT32_MAX);
    return (int)total;
}

const struct http_header *http_request_header(const struct http_request *req, const char *name)
{
    for (uint32_t i = 0; i < req->header_count; i++)
        if (proto_slice_eq_nocase(req->headers[i].name, name))
            return &req->headers[i];
    return NULL;
}

/* ---- targets ------------------------------------------------------------------------------- */

static int hex_digit(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int http_percent_decode(struct proto_slice in, bool form, char *out, size_t cap, size_t *out_len)
{
    size_t n = 0;
    *out_len = 0;
    for (size_t i = 0; i < in.len; i++) {
        uint8_t c = in.ptr[i];
        if (c == '%') {
            if (in.len - i < 3 || hex_digit(in.ptr[i + 1]) < 0 || hex_digit(in.ptr[i + 2]) < 0)
                return SM_E_PROTO;
            c = (uint8_t)(hex_digit(in.ptr[i + 1]) * 16 + hex_digit(in.ptr[i + 2]));
            if (c == 0)
                return SM_E_PROTO; /* a NUL would cut every C string made from this */
            i += 2;
        } else if (c == '+' && form) {
            c = ' ';
        }
        if (n == cap)
            return SM_E_TOOLARGE;
        out[n++] = (char)c;
    }
    *out_len = n;
    return 0;
}

void http_query_init(struct http_query_iter *it, struct proto_slice query)
{
    it->at = query.ptr;
    it->left = query.len;
}

bool http_query_next(struct http_query_iter *it, struct proto_slice *key, struct proto_slice *value)
{
    while (it->left > 0) {
        const uint8_t *amp = memchr(it->at, '&', it->left);
        size_t n = amp ? (size_t)(amp - it->at) : it->left;
        const uint8_t *param = it->at;
        it->at += n + (amp ? 1 : 0);
        it->left -= n + (amp ? 1 : 0);
        if (n == 0)
            continue;
        const uint8_t *eq = memchr(param, '=', n);
        key->ptr = param;
        key->len = eq ? (size_t)(eq - param) : n;
        value->ptr = eq ? eq + 1 : param + n;
        value->len = eq ? n - key->len - 1 : 0;
        return true;
    }
    return false;
}

/* ---- responses ----------------------------------------------------------------------------- */

const char *http_status_reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}

int http_response_head(struct sm_wbuf *w, int status, const char *content_type,
                       size_t content_length, bool keep_alive)
{
    ASSERT(status >= 100 && status <= 599);
    ASSERT(content_type == NULL || strpbrk(content_type, "\r\n") == NULL);
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\n%s%s%sContent-Length: %zu\r\n"
                     "Connection: %s\r\n\r\n",
                     status, http_status_reason(status), content_type ? "Content-Type: " : "",
                     content_type ? content_type : "", content_type ? "\r\n" : "", content_length,
                     keep_alive ? "keep-alive" : "close");
    ASSERT(n > 0 && (size_t)n < sizeof head);
    if (w->failed || (w->fixed && (size_t)n > w->cap - w->len) || !sm_wbuf_reserve(w, (size_t)n))
        return SM_E_NOMEM;
    sm_wbuf_put(w, head, (size_t)n);
    return 0;
}

int http_response(struct sm_wbuf *w, int status, const char *content_type, const void *body,
                  size_t n, bool keep_alive)
{
    size_t start = w->len;
    int rc = http_response_head(w, status, content_type, n, keep_alive);
    if (rc != 0)
        return rc;
    if (w->fixed && n > w->cap - w->len) {
        w->len = start; /* all or nothing */
        return SM_E_NOMEM;
    }
    if (!sm_wbuf_reserve(w, n)) {
        w->len = start;
        return SM_E_NOMEM;
    }
    sm_wbuf_put(w, body, n);
    return 0;
}
