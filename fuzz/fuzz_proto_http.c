/*
 * libFuzzer target for the HTTP/1.1 parser (src/proto/http.c).
 *
 * Beyond "no crash, no sanitizer report", it checks properties that a parser bug would break:
 * the transcript (bytes used, method, decoded path, query, headers, body, keep-alive, or the
 * error status and message) is the same when the input arrives whole, in two pieces split at a
 * point taken from the input, and one byte at a time; every slice lies inside the bytes its
 * request used; every error status is one the server knows how to answer; the query splitter
 * and percent-decoder stay inside their inputs; a response for each request fits where it must.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/http.h"
#include "util/error.h"

static uint64_t mix(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static struct http_parser parser;
static struct http_request req;

static bool inside(struct proto_slice s, const uint8_t *buf, size_t n)
{
    return s.len == 0 || (s.ptr >= buf && s.ptr + s.len <= buf + n);
}

/* Checks one request and folds it into the transcript hash. */
static uint64_t fold_request(uint64_t h, const uint8_t *buf, int used)
{
    size_t n = (size_t)used;
    ASSERT(inside(req.target, buf, n) && inside(req.query, buf, n) && inside(req.body, buf, n));
    ASSERT(req.body.len <= SM_HTTP_BODY_BYTES_MAX);
    ASSERT(req.header_count <= SM_HTTP_HEADERS_MAX);
    ASSERT(req.path_len <= SM_HTTP_TARGET_BYTES_MAX && strlen(req.path) == req.path_len);
    h = mix(h, &used, sizeof used);
    h = mix(h, &req.method, sizeof req.method);
    h = mix(h, &req.keep_alive, sizeof req.keep_alive);
    h = mix(h, req.path, req.path_len);
    h = mix(h, req.query.ptr, req.query.len);
    h = mix(h, req.body.ptr, req.body.len);
    for (uint32_t i = 0; i < req.header_count; i++) {
        ASSERT(inside(req.headers[i].name, buf, n) && inside(req.headers[i].value, buf, n));
        h = mix(h, req.headers[i].name.ptr, req.headers[i].name.len);
        h = mix(h, req.headers[i].value.ptr, req.headers[i].value.len);
    }
    struct http_query_iter it;
    struct proto_slice k, v;
    char out[SM_HTTP_TARGET_BYTES_MAX];
    size_t out_len;
    http_query_init(&it, req.query);
    while (http_query_next(&it, &k, &v)) {
        ASSERT(inside(k, buf, n) && inside(v, buf, n));
        if (http_percent_decode(v, true, out, sizeof out, &out_len) == 0)
            ASSERT(out_len <= v.len);
    }
    return h;
}

static uint64_t run(const uint8_t *data, size_t size, size_t first, size_t step)
{
    uint8_t *buf = malloc(size + 1);
    ASSERT(buf != NULL);
    http_parser_init(&parser);
    uint64_t h = 14695981039346656037ULL;
    size_t have = 0, delivered = 0;
    bool started = false;
    while (delivered < size) {
        size_t chunk = started ? step : first;
        started = true;
        if (chunk > size - delivered)
            chunk = size - delivered;
        memcpy(buf + have, data + delivered, chunk);
        have += chunk;
        delivered += chunk;
        for (;;) {
            int rc = http_request_parse(&parser, buf, have, &req);
            if (rc < 0) {
                int status = http_parser_status(&parser);
                ASSERT(strcmp(http_status_reason(status), "Unknown") != 0);
                const char *msg = http_parser_message(&parser);
                h = mix(mix(h, &status, sizeof status), msg, strlen(msg));
                free(buf);
                return h;
            }
            if (rc == 0)
                break;
            ASSERT((size_t)rc <= have);
            h = fold_request(h, buf, rc);
            memmove(buf, buf + rc, have - (size_t)rc);
            have -= (size_t)rc;
        }
    }
    h = mix(h, &have, sizeof have);
    free(buf);
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint64_t whole = run(data, size, size, size);
    ASSERT(run(data, size, data[0] % (size + 1), size) == whole);
    if (size <= 4096)
        ASSERT(run(data, size, 1, 1) == whole);
    /* The response writer: all or nothing into a small fixed buffer. */
    uint8_t mem[128];
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, mem, sizeof mem);
    int rc = http_response(&w, 200, "text/plain", data, size, size % 2 == 0);
    ASSERT(rc == 0 ? w.len > size : (rc == SM_E_NOMEM && w.len == 0 && !w.failed));
    return 0;
}
