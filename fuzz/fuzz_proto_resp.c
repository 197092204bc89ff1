/*
 * libFuzzer target for the RESP parsers (src/proto/resp.c, resp_reply.c, resp_encode.c).
 *
 * Every input is read twice over: as client requests and as a server reply. Beyond "no crash,
 * no sanitizer report", it checks properties that a parser bug would break:
 *   - requests: the transcript (bytes used, argv, or the error and its message) is the same
 *     when the input arrives whole, in two pieces split at a point taken from the input, and one
 *     byte at a time; every argv slice lies inside the bytes its request used; and a request
 *     re-encoded as a RESP array parses back to the same arguments;
 *   - replies: a parsed reply re-encodes to exactly the bytes it was parsed from, and a proper
 *     prefix of it is reported incomplete (RESP is self-delimiting).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"
#include "util/error.h"

/* FNV-1a, enough to compare transcripts without storing them. */
static uint64_t mix(uint64_t h, const void *data, size_t n)
{
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

static struct resp_parser parser;
static struct resp_parser check_parser;
static struct resp_request req;
static struct resp_request check_req;

/* Re-encodes req as an array of bulk strings and checks it parses back to the same argv. */
static void check_reencode(const struct resp_request *r)
{
    if (r->argc == 0)
        return;
    struct sm_wbuf w;
    struct resp_encoder e;
    sm_wbuf_init(&w);
    resp_encoder_init(&e, &w, SIZE_MAX, 2);
    ASSERT(resp_put_array(&e, r->argc) == 0);
    for (uint32_t i = 0; i < r->argc; i++)
        ASSERT(resp_put_bulk(&e, r->argv[i].ptr, r->argv[i].len) == 0);
    resp_parser_init(&check_parser);
    int rc = resp_request_parse(&check_parser, w.data, w.len, &check_req);
    /* The array form carries more framing, so it may pass the byte bound the inline form met. */
    if (rc == SM_E_TOOLARGE) {
        sm_wbuf_free(&w);
        return;
    }
    ASSERT(rc == (int)w.len);
    ASSERT(check_req.argc == r->argc);
    for (uint32_t i = 0; i < r->argc; i++) {
        ASSERT(check_req.argv[i].len == r->argv[i].len);
        ASSERT(memcmp(check_req.argv[i].ptr, r->argv[i].ptr, r->argv[i].len) == 0);
    }
    sm_wbuf_free(&w);
}

/* Feeds data to a fresh parser in chunks of `step` bytes (the first chunk `first` bytes), the
 * way a server does, and returns a hash of the transcript. */
static uint64_t run_requests(const uint8_t *data, size_t size, size_t first, size_t step,
                             bool check)
{
    uint8_t *buf = malloc(size + 1);
    ASSERT(buf != NULL);
    resp_parser_init(&parser);
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
            int rc = resp_request_parse(&parser, buf, have, &req);
            if (rc < 0) {
                const char *msg = resp_parser_message(&parser);
                h = mix(mix(h, &rc, sizeof rc), msg, strlen(msg));
                free(buf);
                return h;
            }
            if (rc == 0)
                break;
            ASSERT((size_t)rc <= have && req.argc <= SM_REQUEST_ARGS_MAX);
            h = mix(mix(h, &rc, sizeof rc), &req.argc, sizeof req.argc);
            for (uint32_t i = 0; i < req.argc; i++) {
                struct proto_slice a = req.argv[i];
                ASSERT(a.ptr >= buf && a.ptr + a.len <= buf + rc);
                h = mix(mix(h, &a.len, sizeof a.len), a.ptr, a.len);
            }
            if (check)
                check_reencode(&req);
            memmove(buf, buf + rc, have - (size_t)rc);
            have -= (size_t)rc;
        }
    }
    h = mix(h, &have, sizeof have);
    free(buf);
    return h;
}

static void check_replies(const uint8_t *data, size_t size)
{
    static struct resp_value vals[1024];
    size_t n;
    int rc = resp_reply_parse(data, size, vals, sizeof vals / sizeof vals[0], &n);
    if (rc <= 0)
        return;
    ASSERT((size_t)rc <= size && n > 0);
    struct sm_wbuf w;
    struct resp_encoder e;
    sm_wbuf_init(&w);
    resp_encoder_init(&e, &w, SIZE_MAX, 3);
    ASSERT(resp_put_values(&e, vals, n) == 0);
    ASSERT(w.len == (size_t)rc && memcmp(w.data, data, w.len) == 0);
    sm_wbuf_free(&w);
    size_t m;
    ASSERT(resp_reply_parse(data, (size_t)rc - 1, vals, 1024, &m) == 0);
    ASSERT(resp_reply_parse(data, (size_t)rc / 2, vals, 1024, &m) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint64_t whole = run_requests(data, size, size, size, true);
    size_t cut = data[0] % (size + 1);
    ASSERT(run_requests(data, size, cut, size, false) == whole);
    if (size <= 4096)
        ASSERT(run_requests(data, size, 1, 1, false) == whole);
    check_replies(data, size);
    return 0;
}
