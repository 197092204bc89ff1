/*
 * The HTTP/1.1 parser and response writer (src/proto/http.c): golden requests, every input split
 * at every byte boundary, pipelining and keep-alive rules, every error status, every limit at the
 * bound and one past it, percent-decoding and the query splitter, and response bytes.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http.h"
#include "util/error.h"

/* ---- a simulated connection ---------------------------------------------------------------- */

static const char *method_name(enum http_method m)
{
    static const char *const names[] = {"?", "GET", "HEAD", "POST", "PUT", "DELETE"};
    return names[m];
}

/* Appends a one-line description of req to out. */
static size_t describe(const struct http_request *req, int used, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "#%d %s %s q=%.*s 1.%d %s h=%u b=%.*s|", used,
                                method_name(req->method), req->path, (int)req->query.len,
                                (const char *)req->query.ptr, req->version_minor,
                                req->keep_alive ? "ka" : "close", req->header_count,
                                (int)req->body.len, (const char *)req->body.ptr);
    return o < cap ? o : cap - 1;
}

/* Feeds input in chunks ending at cuts (ascending), taking out each complete request and moving
 * the rest to the front, as a server would; writes a transcript to out. */
static void feed(const char *input, size_t n, const size_t *cuts, size_t ncuts, char *out,
                 size_t cap)
{
    uint8_t *buf = malloc(n + 1);
    cr_assert_not_null(buf);
    static struct http_parser p;
    static struct http_request req;
    http_parser_init(&p);
    size_t have = 0, delivered = 0, o = 0;
    out[0] = '\0';
    for (size_t c = 0; c <= ncuts; c++) {
        size_t upto = cuts != NULL && c < ncuts ? cuts[c] : n;
        memcpy(buf + have, input + delivered, upto - delivered);
        have += upto - delivered;
        delivered = upto;
        for (;;) {
            int rc = http_request_parse(&p, buf, have, &req);
            if (rc < 0) {
                snprintf(out + o, cap - o, "E%d %d %s", rc, http_parser_status(&p),
                         http_parser_message(&p));
                free(buf);
                return;
            }
            if (rc == 0)
                break;
            o += describe(&req, rc, out + o, cap - o);
            memmove(buf, buf + rc, have - (size_t)rc);
            have -= (size_t)rc;
        }
    }
    snprintf(out + o, cap - o, "+%zu", have);
    free(buf);
}

#define TRANSCRIPT_BYTES 4096

static void expect_transcript(const char *input, size_t n, const char *expected)
{
    char whole[TRANSCRIPT_BYTES], got[TRANSCRIPT_BYTES];
    feed(input, n, NULL, 0, whole, sizeof whole);
    cr_assert_str_eq(whole, expected, "got %s", whole);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    cr_assert_not_null(cuts);
    for (size_t k = 0; k <= n; k++) {
        cuts[0] = k;
        feed(input, n, cuts, 1, got, sizeof got);
        cr_assert_str_eq(got, whole, "split at %zu", k);
    }
    for (size_t k = 0; k < n; k++)
        cuts[k] = k + 1;
    feed(input, n, cuts, n, got, sizeof got);
    cr_assert_str_eq(got, whole, "byte at a time");
    free(cuts);
}

#define EXPECT(lit, expected) expect_transcript(lit, sizeof(lit) - 1, expected)

/* ---- golden requests ----------------------------------------------------------------------- */

Test(http, probes_as_curl_and_prometheus_send_them)
{
    EXPECT("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:7380\r\nUser-Agent: curl/7.88.1\r\n"
           "Accept: */*\r\n\r\n",
           "#85 GET /healthz q= 1.1 ka h=3 b=|+0");
    EXPECT("GET /metrics HTTP/1.1\r\nHost: localhost:7380\r\nAccept: text/plain;version=0.0.4\r\n"
           "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n",
           "#145 GET /metrics q= 1.1 ka h=4 b=|+0");
}

Test(http, target_path_decoding_and_query)
{
    EXPECT("GET /api/stock/sku%2D1%20x?user=u%201&x HTTP/1.1\r\nHost: a\r\n\r\n",
           "#61 GET /api/stock/sku-1 x q=user=u%201&x 1.1 ka h=1 b=|+0");
    EXPECT("GET /? HTTP/1.1\r\nHost: a\r\n\r\n", "#28 GET / q= 1.1 ka h=1 b=|+0");
}

Test(http, bodies_and_pipelining)
{
    EXPECT("POST /api/orders HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
           "Content-Length: 13\r\n\r\n{\"sku\":\"s1\"}\n"
           "DELETE /api/orders/o1 HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
           "GET /readyz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /x",
           "#103 POST /api/orders q= 1.1 ka h=3 b={\"sku\":\"s1\"}\n|"
           "#62 DELETE /api/orders/o1 q= 1.1 ka h=2 b=|"
           "#52 GET /readyz q= 1.1 close h=2 b=|+6");
}

Test(http, keep_alive_rules)
{
    EXPECT("GET / HTTP/1.0\r\n\r\n", "#18 GET / q= 1.0 close h=0 b=|+0");
    EXPECT("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", "#42 GET / q= 1.0 ka h=1 b=|+0");
    EXPECT("HEAD / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
           "#59 HEAD / q= 1.1 close h=2 b=|+0");
    EXPECT("PUT / HTTP/1.1\r\nHost: a\r\nconnection:Upgrade\r\n\r\n",
           "#47 PUT / q= 1.1 ka h=2 b=|+0");
}

Test(http, bare_lf_and_leading_empty_lines)
{
    EXPECT("GET / HTTP/1.1\nHost: a\n\n", "#24 GET / q= 1.1 ka h=1 b=|+0");
    EXPECT("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", "#29 GET / q= 1.1 ka h=1 b=|+0");
}

Test(http, headers_are_trimmed_and_found_by_any_case)
{
    static struct http_parser p;
    static struct http_request req;
    http_parser_init(&p);
    const char *in = "GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: \t r-1 \t\r\nEmpty:\r\n\r\n";
    cr_assert_eq(http_request_parse(&p, (const uint8_t *)in, strlen(in), &req), (int)strlen(in));
    const struct http_header *h = http_request_header(&req, "x-request-id");
    cr_assert_not_null(h);
    cr_assert(proto_slice_eq(h->value, "r-1"));
    h = http_request_header(&req, "EMPTY");
    cr_assert_not_null(h);
    cr_assert_eq(h->value.len, 0);
    cr_assert_null(http_request_header(&req, "missing"));
}

Test(http, expect_continue_is_reported_while_the_body_is_due)
{
    static struct http_parser p;
    static struct http_request req;
    http_parser_init(&p);
    const char *in = "POST /a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2"
                     "\r\n\r\nok";
    size_t n = strlen(in);
    cr_assert_eq(http_request_parse(&p, (const uint8_t *)in, n - 2, &req), 0);
    cr_assert(http_parser_wants_continue(&p));
    cr_assert_eq(http_request_parse(&p, (const uint8_t *)in, n, &req), (int)n);
    cr_assert(!http_parser_wants_continue(&p));
    cr_assert(proto_slice_eq(req.body, "ok"));
}

/* ---- errors -------------------------------------------------------------------------------- */

Test(http, errors_map_to_statuses)
{
    static const struct {
        const char *in;
        int status;
    } cases[] = {
        {"GET  / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1 \r\n\r\n", 400},
        {"GET /\r\n\r\n", 400},
        {"GET x HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET /%00 HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
        {"GET / HTTP/1.x\r\n\r\n", 400},
        {"GET / FTP/1.1\r\n\r\n", 400},
        {"\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 400},
        {"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400},
        {"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"PATCH / HTTP/1.1\r\nHost: a\r\n\r\n", 405},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 411},
        {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
        {"BREW / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"get / HTTP/1.1\r\nHost: a\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET / HTTP/1.2\r\n\r\n", 505},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 9999999999999999999\r\n\r\n", 413},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char got[TRANSCRIPT_BYTES];
        size_t n = strlen(cases[i].in);
        feed(cases[i].in, n, NULL, 0, got, sizeof got);
        char want[16];
        int code = cases[i].status == 413 ? SM_E_TOOLARGE : SM_E_PROTO;
        snprintf(want, sizeof want, "E%d %d ", code, cases[i].status);
        cr_assert(strncmp(got, want, strlen(want)) == 0, "case %zu: %s", i, got);
        /* The same verdict however the bytes arrive. */
        size_t *cuts = malloc(n * sizeof *cuts);
        for (size_t k = 0; k < n; k++)
            cuts[k] = k + 1;
        char split[TRANSCRIPT_BYTES];
        feed(cases[i].in, n, cuts, n, split, sizeof split);
        cr_assert_str_eq(split, got, "case %zu byte at a time", i);
        free(cuts);
    }
}

/* ---- limits -------------------------------------------------------------------------------- */

static int parse_whole(const char *in, size_t n, struct http_parser *p, struct http_request *req)
{
    http_parser_init(p);
    return http_request_parse(p, (const uint8_t *)in, n, req);
}

Test(http_limits, target_at_and_past_the_bound)
{
    static char in[SM_HTTP_TARGET_BYTES_MAX + 64];
    static struct http_parser p;
    static struct http_request req;
    for (int extra = 0; extra <= 1; extra++) {
        size_t t = SM_HTTP_TARGET_BYTES_MAX + (size_t)extra;
        size_t n = (size_t)sprintf(in, "GET /");
        memset(in + n, 'a', t - 1);
        n += t - 1;
        n += (size_t)sprintf(in + n, " HTTP/1.1\r\nHost: a\r\n\r\n");
        int rc = parse_whole(in, n, &p, &req);
        if (extra == 0) {
            cr_assert_eq(rc, (int)n);
            cr_assert_eq(req.path_len, SM_HTTP_TARGET_BYTES_MAX);
        } else {
            cr_assert_eq(rc, SM_E_TOOLARGE);
            cr_assert_eq(http_parser_status(&p), 414);
        }
    }
    /* A request line that never ends is refused once it is longer than any valid one. */
    memset(in, 'a', sizeof in);
    memcpy(in, "GET /", 5);
    cr_assert_eq(parse_whole(in, sizeof in, &p, &req), SM_E_TOOLARGE);
    cr_assert_eq(http_parser_status(&p), 414);
}

Test(http_limits, header_count_at_and_past_the_bound)
{
    static char in[4096];
    static struct http_parser p;
    static struct http_request req;
    for (int extra = 0; extra <= 1; extra++) {
        size_t n = (size_t)sprintf(in, "GET / HTTP/1.1\r\nHost: a\r\n");
        for (int i = 1; i < SM_HTTP_HEADERS_MAX + extra; i++)
            n += (size_t)sprintf(in + n, "X-%d: v\r\n", i);
        n += (size_t)sprintf(in + n, "\r\n");
        int rc = parse_whole(in, n, &p, &req);
        if (extra == 0) {
            cr_assert_eq(rc, (int)n);
            cr_assert_eq(req.header_count, SM_HTTP_HEADERS_MAX);
        } else {
            cr_assert_eq(rc, SM_E_TOOLARGE);
            cr_assert_eq(http_parser_status(&p), 431);
        }
    }
}

/* A GET whose head is exactly size bytes: one padding header fills it. */
static size_t head_of_size(char *in, size_t size)
{
    const char *start = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    size_t n = strlen(start);
    memcpy(in, start, n);
    size_t pad = size - n - 4;
    memset(in + n, 'p', pad);
    memcpy(in + n + pad, "\r\n\r\n", 4);
    return size;
}

Test(http_limits, head_bytes_at_and_past_the_bound)
{
    static char in[SM_HTTP_HEAD_BYTES_MAX + 16];
    static struct http_parser p;
    static struct http_request req;
    size_t n = head_of_size(in, SM_HTTP_HEAD_BYTES_MAX);
    cr_assert_eq(parse_whole(in, n, &p, &req), SM_HTTP_HEAD_BYTES_MAX);
    n = head_of_size(in, SM_HTTP_HEAD_BYTES_MAX + 1);
    cr_assert_eq(parse_whole(in, n, &p, &req), SM_E_TOOLARGE);
    cr_assert_eq(http_parser_status(&p), 431);
    /* Refused as soon as the bound is reached without the end of the head. */
    cr_assert_eq(parse_whole(in, SM_HTTP_HEAD_BYTES_MAX - 1, &p, &req), 0);
    cr_assert_eq(http_request_parse(&p, (const uint8_t *)in, SM_HTTP_HEAD_BYTES_MAX, &req),
                 SM_E_TOOLARGE);
}

Test(http_limits, body_at_and_past_the_bound)
{
    static char in[SM_HTTP_BODY_BYTES_MAX + 128];
    static struct http_parser p;
    static struct http_request req;
    for (int extra = 0; extra <= 1; extra++) {
        size_t body = SM_HTTP_BODY_BYTES_MAX + (size_t)extra;
        size_t n =
            (size_t)sprintf(in, "PUT /a HTTP/1.1\r\nHost: a\r\nContent-Length: %zu\r\n\r\n", body);
        size_t head = n;
        memset(in + n, 'b', body);
        n += body;
        int rc = parse_whole(in, head, &p, &req);
        if (extra == 0) {
            cr_assert_eq(rc, 0, "head accepted, body due");
            cr_assert_eq(http_request_parse(&p, (const uint8_t *)in, n, &req), (int)n);
            cr_assert_eq(req.body.len, SM_HTTP_BODY_BYTES_MAX);
        } else {
            cr_assert_eq(rc, SM_E_TOOLARGE, "refused from the head alone");
            cr_assert_eq(http_parser_status(&p), 413);
        }
    }
}

/* ---- targets ------------------------------------------------------------------------------- */

Test(http_target, percent_decode)
{
    char out[32];
    size_t n;
    struct proto_slice in = {(const uint8_t *)"a%2Fb+c%7e", 10};
    cr_assert_eq(http_percent_decode(in, false, out, sizeof out, &n), 0);
    cr_assert_eq(n, 6);
    cr_assert(memcmp(out, "a/b+c~", 6) == 0);
    cr_assert_eq(http_percent_decode(in, true, out, sizeof out, &n), 0);
    cr_assert(memcmp(out, "a/b c~", 6) == 0);
    cr_assert_eq(http_percent_decode(in, false, out, 6, &n), 0, "exactly fits");
    cr_assert_eq(http_percent_decode(in, false, out, 5, &n), SM_E_TOOLARGE);
    static const char *const bad[] = {"%", "%a", "%g0", "a%0g", "%00"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct proto_slice b = {(const uint8_t *)bad[i], strlen(bad[i])};
        cr_assert_eq(http_percent_decode(b, false, out, sizeof out, &n), SM_E_PROTO, "%s", bad[i]);
    }
}

Test(http_target, query_splitter)
{
    const char *q = "sku=s%201&&qty=2&flag&=v&last=";
    struct http_query_iter it;
    http_query_init(&it, (struct proto_slice){(const uint8_t *)q, strlen(q)});
    static const char *const want[][2] = {
        {"sku", "s%201"}, {"qty", "2"}, {"flag", ""}, {"", "v"}, {"last", ""}};
    struct proto_slice k, v;
    for (size_t i = 0; i < 5; i++) {
        cr_assert(http_query_next(&it, &k, &v), "param %zu", i);
        cr_assert(proto_slice_eq(k, want[i][0]), "key %zu", i);
        cr_assert(proto_slice_eq(v, want[i][1]), "value %zu", i);
    }
    cr_assert(!http_query_next(&it, &k, &v));
    http_query_init(&it, (struct proto_slice){(const uint8_t *)"", 0});
    cr_assert(!http_query_next(&it, &k, &v));
}

/* ---- responses ----------------------------------------------------------------------------- */

Test(http_response, golden)
{
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    cr_assert_eq(http_response(&w, 200, "text/plain; charset=utf-8", "ok\n", 3, true), 0);
    cr_assert_eq(http_response_head(&w, 431, NULL, 0, false), 0);
    const char *want = "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                       "Content-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n"
                       "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
                       "Connection: close\r\n\r\n";
    cr_assert_eq(w.len, strlen(want), "%.*s", (int)w.len, (const char *)w.data);
    cr_assert(memcmp(w.data, want, w.len) == 0, "%.*s", (int)w.len, (const char *)w.data);
    sm_wbuf_free(&w);
    static const int statuses[] = {400, 405, 411, 413, 414, 431, 501, 505};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        cr_assert_str_neq(http_status_reason(statuses[i]), "Unknown");
}

Test(http_response, full_fixed_buffer_writes_nothing)
{
    uint8_t mem[67];
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, mem, sizeof mem);
    /* The head alone is 62 bytes; with a 5-byte body it is exactly 67. */
    cr_assert_eq(http_response(&w, 200, NULL, "12345", 5, true), 0);
    cr_assert_eq(w.len, 67);
    w.len = 0;
    cr_assert_eq(http_response(&w, 200, NULL, "123456", 6, true), SM_E_NOMEM);
    cr_assert_eq(w.len, 0, "nothing written");
    cr_assert_eq(http_response_head(&w, 200, NULL, 5, true), 0);
    cr_assert_eq(http_response_head(&w, 200, NULL, 5, true), SM_E_NOMEM);
    cr_assert_eq(w.len, 62);
    cr_assert(!w.failed, "the caller may drain and retry");
}
