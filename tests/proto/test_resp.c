/*
 * The RESP request parser and integer parser (src/proto/resp.c): golden requests, every input
 * split at every byte boundary and fed as a connection would feed it, pipelining, every limit at
 * the bound and one past it, and every malformed case with its error code and message.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"
#include "util/error.h"

/* ---- integers ------------------------------------------------------------------------------ */

static int parse_int(const char *s, int64_t *v)
{
    struct resp_int n;
    resp_int_init(&n);
    for (size_t i = 0; s[i]; i++) {
        int rc = resp_int_feed(&n, (uint8_t)s[i]);
        if (rc != 0)
            return rc;
    }
    return resp_int_finish(&n, v);
}

Test(resp_int, canonical_values)
{
    static const struct {
        const char *text;
        int64_t value;
    } ok[] = {
        {"0", 0},
        {"1", 1},
        {"-1", -1},
        {"42", 42},
        {"1048576", 1048576},
        {"9223372036854775807", INT64_MAX},
        {"-9223372036854775808", INT64_MIN},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        int64_t v = 7;
        cr_assert_eq(parse_int(ok[i].text, &v), 0, "%s", ok[i].text);
        cr_assert_eq(v, ok[i].value, "%s", ok[i].text);
    }
}

Test(resp_int, rejects_noncanonical_and_overflow)
{
    static const char *const bad[] = {
        "",
        "-",
        "+1",
        "01",
        "00",
        "-0",
        "--1",
        "1-",
        " 1",
        "1 ",
        "0x10",
        "1.0",
        "a",
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t v;
        cr_assert_eq(parse_int(bad[i], &v), SM_E_PROTO, "'%s' accepted", bad[i]);
    }
}

/* ---- a simulated connection ---------------------------------------------------------------- */

/* Feeds input to a fresh parser in chunks ending at the given cut points (ascending), the way a
 * server would: append what arrived, take out every complete request, move the rest to the front
 * of the buffer. Writes a transcript of the requests (and a final error) to out. Also checks
 * after every incomplete call that the parser examined every byte it was given, which is what
 * keeps byte-at-a-time feeding O(n). */
static void feed(const uint8_t *input, size_t n, const size_t *cuts, size_t ncuts, char *out,
                 size_t out_cap)
{
    uint8_t *buf = malloc(n + 1);
    cr_assert_not_null(buf);
    static struct resp_parser p;
    static struct resp_request req;
    resp_parser_init(&p);
    size_t have = 0, delivered = 0, o = 0;
    out[0] = '\0';
    for (size_t c = 0; c <= ncuts; c++) {
        size_t upto = cuts != NULL && c < ncuts ? cuts[c] : n;
        memcpy(buf + have, input + delivered, upto - delivered);
        have += upto - delivered;
        delivered = upto;
        for (;;) {
            int rc = resp_request_parse(&p, buf, have, &req);
            if (rc < 0) {
                o += (size_t)snprintf(out + o, out_cap - o, "E%d[%s]", rc, resp_parser_message(&p));
                free(buf);
                return;
            }
            if (rc == 0) {
                cr_assert_eq(p.pos, have, "parser must examine every byte it is given");
                break;
            }
            o += (size_t)snprintf(out + o, out_cap - o, "#%d:", rc);
            for (uint32_t i = 0; i < req.argc; i++) {
                o += (size_t)snprintf(out + o, out_cap - o, "%zu'", req.argv[i].len);
                cr_assert_lt(o + req.argv[i].len + 2, out_cap);
                memcpy(out + o, req.argv[i].ptr, req.argv[i].len);
                o += req.argv[i].len;
                out[o++] = '\'';
            }
            out[o] = '\0';
            cr_assert_leq((size_t)rc, have);
            memmove(buf, buf + rc, have - (size_t)rc);
            have -= (size_t)rc;
        }
    }
    o += (size_t)snprintf(out + o, out_cap - o, "+%zu", have); /* bytes left incomplete */
    free(buf);
}

#define TRANSCRIPT_BYTES 8192

/* Checks that every way of splitting input gives the transcript of feeding it whole, and
 * returns that transcript in whole. */
static void check_splits(const char *input, size_t n, char *whole)
{
    char *got = malloc(TRANSCRIPT_BYTES);
    size_t *cuts = malloc((n + 1) * sizeof *cuts);
    cr_assert(got && cuts);
    feed((const uint8_t *)input, n, NULL, 0, whole, TRANSCRIPT_BYTES);
    for (size_t k = 0; k <= n; k++) {
        cuts[0] = k;
        feed((const uint8_t *)input, n, cuts, 1, got, TRANSCRIPT_BYTES);
        cr_assert_str_eq(got, whole, "split at %zu of %zu", k, n);
    }
    for (size_t k = 0; k < n; k++)
        cuts[k] = k + 1;
    feed((const uint8_t *)input, n, cuts, n, got, TRANSCRIPT_BYTES);
    cr_assert_str_eq(got, whole, "byte at a time");
    free(got);
    free(cuts);
}

static void expect_transcript(const char *input, size_t n, const char *expected)
{
    char whole[TRANSCRIPT_BYTES];
    check_splits(input, n, whole);
    cr_assert_str_eq(whole, expected, "got %s for %.*s", whole, (int)n, input);
}

#define EXPECT(lit, expected) expect_transcript(lit, sizeof(lit) - 1, expected)

/* ---- golden requests ----------------------------------------------------------------------- */

Test(resp_request, array_of_bulk_strings)
{
    EXPECT("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", "#31:3'SET'1'k'5'value'+0");
    EXPECT("*1\r\n$4\r\nPING\r\n", "#14:4'PING'+0");
    EXPECT("*2\r\n$4\r\nECHO\r\n$0\r\n\r\n", "#20:4'ECHO'0''+0");
}

Test(resp_request, bulk_strings_are_binary_safe)
{
    EXPECT("*2\r\n$4\r\nECHO\r\n$6\r\na\r\n\0*$\r\n", "#26:4'ECHO'6'a\r\n\0*$'+0");
}

Test(resp_request, redis_benchmark_ping_and_set_pipeline)
{
    /* What `redis-benchmark -P 3 -t ping,set` writes: the same request back to back. */
    EXPECT("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n",
           "#14:4'PING'#14:4'PING'#14:4'PING'+0");
    EXPECT("*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n"
           "*3\r\n$3\r\nSET\r\n$16\r\nkey:__rand_int__\r\n$3\r\nxxx\r\n",
           "#45:3'SET'16'key:__rand_int__'3'xxx'#45:3'SET'16'key:__rand_int__'3'xxx'+0");
}

Test(resp_request, empty_arrays_are_empty_requests)
{
    EXPECT("*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n", "#4:#5:#14:4'PING'+0");
}

Test(resp_request, inline_commands)
{
    EXPECT("PING\r\n", "#6:4'PING'+0");
    EXPECT("PING\n", "#5:4'PING'+0");
    EXPECT("SET  k\tv  \r\n", "#12:3'SET'1'k'1'v'+0");
    EXPECT("\r\n", "#2:+0");
    EXPECT("   \n", "#4:+0");
}

Test(resp_request, inline_quotes_and_escapes)
{
    /* redis-cli's quoting: double quotes with C escapes, single quotes with only \'. */
    EXPECT("SET \"a b\" 'c d'\r\n", "#17:3'SET'3'a b'3'c d'+0");
    EXPECT("ECHO \"x\\n\\t\\\"\\x41\\x4a\"\r\n", "#24:4'ECHO'6'x\n\t\"AJ'+0");
    EXPECT("ECHO 'it\\'s' \"\"\r\n", "#17:4'ECHO'4'it's'0''+0");
    EXPECT("ECHO a\"b c\" d\r\n", "#15:4'ECHO'4'ab c'1'd'+0");
}

Test(resp_request, inline_and_arrays_pipelined)
{
    EXPECT("PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nECHO \"x y\"\r\n*1\r\n$4\r\nQU",
           "#6:4'PING'#22:4'ECHO'2'hi'#12:4'ECHO'3'x y'+10");
}

Test(resp_request, incomplete_input_waits)
{
    EXPECT("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nval", "+27");
    EXPECT("PING", "+4");
    EXPECT("*", "+1");
}

/* ---- malformed input ----------------------------------------------------------------------- */

Test(resp_request, malformed_inputs_have_specific_errors)
{
    static const struct {
        const char *input;
        const char *transcript;
    } cases[] = {
        {"*1\r\n:4\r\nPING\r\n", "E-18[Protocol error: expected '$', got ':']"},
        {"*1\r\n\r\n", "E-18[Protocol error: expected '$', got '\\x0d']"},
        {"*x\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*+1\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*01\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*-2\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*99999999999999999999\r\n", "E-18[Protocol error: invalid multibulk length]"},
        {"*1\r", "+3"},
        {"*1\rx", "E-18[Protocol error: expected '\\n', got 'x']"},
        {"*1\r\n$-1\r\n", "E-18[Protocol error: invalid bulk length]"},
        {"*1\r\n$\r\n", "E-18[Protocol error: invalid bulk length]"},
        {"*1\r\n$4x\r\n", "E-18[Protocol error: invalid bulk length]"},
        {"*1\r\n$4\rx", "E-18[Protocol error: expected '\\n', got 'x']"},
        {"*1\r\n$4\r\nPINGx\r\n",
         "E-18[Protocol error: expected CRLF after a bulk string of 4 bytes, got 'x']"},
        {"*1\r\n$4\r\nPING\rx",
         "E-18[Protocol error: expected CRLF after a bulk string of 4 bytes, got 'x']"},
        {"*1\r\n$4\r\nPING\n\r",
         "E-18[Protocol error: expected CRLF after a bulk string of 4 bytes, got '\\x0a']"},
        {"SET \"abc\r\n", "E-18[Protocol error: unbalanced quotes in request]"},
        {"SET 'abc\r\n", "E-18[Protocol error: unbalanced quotes in request]"},
        {"SET \"a\"b\r\n", "E-18[Protocol error: unbalanced quotes in request]"},
        {"SET a\"b c\"d\r\n", "E-18[Protocol error: unbalanced quotes in request]"},
        {"SET \"a\\\"\r\n", "E-18[Protocol error: unbalanced quotes in request]"},
        {"PING\r\n*1\r\n$4\r\nPING\r\n$", "#6:4'PING'#14:4'PING'+1"},
        {"PING\r\n*1\r\n%4\r\n", "#6:4'PING'E-18[Protocol error: expected '$', got '%']"},
    };
    cr_assert_eq(SM_E_PROTO, -18, "the transcripts above spell SM_E_PROTO as -18");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_transcript(cases[i].input, strlen(cases[i].input), cases[i].transcript);
}

Test(resp_request, errors_are_sticky)
{
    struct resp_parser p;
    static struct resp_request req;
    resp_parser_init(&p);
    uint8_t bad[] = "*1\r\n!";
    cr_assert_eq(resp_request_parse(&p, bad, sizeof bad - 1, &req), SM_E_PROTO);
    uint8_t good[] = "PING\r\n";
    cr_assert_eq(resp_request_parse(&p, good, sizeof good - 1, &req), SM_E_PROTO);
    cr_assert_str_eq(resp_parser_message(&p), "Protocol error: expected '$', got '!'");
}

/* ---- limits -------------------------------------------------------------------------------- */

/* Parses buf whole; returns the result and leaves the request in *req. */
static int parse_once(uint8_t *buf, size_t n, struct resp_request *req, struct resp_parser *p)
{
    resp_parser_init(p);
    return resp_request_parse(p, buf, n, req);
}

/* "*argc\r\n" followed by argc copies of "$1\r\nx\r\n". */
static size_t array_of(uint8_t *buf, uint32_t argc)
{
    size_t n = (size_t)sprintf((char *)buf, "*%u\r\n", argc);
    for (uint32_t i = 0; i < argc; i++)
        n += (size_t)sprintf((char *)buf + n, "$1\r\nx\r\n");
    return n;
}

Test(resp_limits, arguments_at_and_past_the_bound)
{
    static uint8_t buf[16 * 1024];
    static struct resp_parser p;
    static struct resp_request req;
    size_t n = array_of(buf, SM_REQUEST_ARGS_MAX);
    cr_assert_eq(parse_once(buf, n, &req, &p), (int)n);
    cr_assert_eq(req.argc, SM_REQUEST_ARGS_MAX);
    n = array_of(buf, SM_REQUEST_ARGS_MAX + 1);
    cr_assert_eq(parse_once(buf, 6, &req, &p), SM_E_TOOLARGE, "refused from the count alone");
    cr_assert_str_eq(resp_parser_message(&p), "Protocol error: too many arguments (257, max 256)");

    /* Inline: SM_REQUEST_ARGS_MAX words pass, one more does not. */
    n = 0;
    for (int i = 0; i < SM_REQUEST_ARGS_MAX; i++)
        n += (size_t)sprintf((char *)buf + n, "a ");
    memcpy(buf + n, "\r\n", 2);
    cr_assert_eq(parse_once(buf, n + 2, &req, &p), (int)n + 2);
    cr_assert_eq(req.argc, SM_REQUEST_ARGS_MAX);
    memcpy(buf + n, "b\r\n", 3);
    cr_assert_eq(parse_once(buf, n + 3, &req, &p), SM_E_TOOLARGE);
    cr_assert_str_eq(resp_parser_message(&p), "Protocol error: too many arguments (max 256)");
}

/* "*2\r\n$4\r\nECHO\r\n$L\r\n<L bytes>\r\n" of exactly total bytes. */
static size_t echo_of_size(uint8_t *buf, size_t total)
{
    size_t payload = total - 14 - 5; /* header and ECHO argument, "$\r\n" and the final CRLF */
    int digits = snprintf(NULL, 0, "%zu", payload);
    payload -= (size_t)digits;
    size_t n = (size_t)sprintf((char *)buf, "*2\r\n$4\r\nECHO\r\n$%zu\r\n", payload);
    memset(buf + n, 'v', payload);
    n += payload;
    memcpy(buf + n, "\r\n", 2);
    return n + 2;
}

Test(resp_limits, request_bytes_at_and_past_the_bound)
{
    uint8_t *buf = malloc(SM_REQUEST_BYTES_MAX + 64);
    cr_assert_not_null(buf);
    static struct resp_parser p;
    static struct resp_request req;
    size_t n = echo_of_size(buf, SM_REQUEST_BYTES_MAX);
    cr_assert_eq(n, SM_REQUEST_BYTES_MAX);
    cr_assert_eq(parse_once(buf, n, &req, &p), SM_REQUEST_BYTES_MAX);
    cr_assert_eq(req.argv[1].len, SM_REQUEST_BYTES_MAX - 26);

    n = echo_of_size(buf, SM_REQUEST_BYTES_MAX + 1);
    cr_assert_eq(n, SM_REQUEST_BYTES_MAX + 1);
    /* Whole in the buffer: refused too (the one-pass fast path defers to the checked one). */
    cr_assert_eq(parse_once(buf, n, &req, &p), SM_E_TOOLARGE);
    /* Refused once the length line is in, before any payload is buffered. */
    cr_assert_eq(parse_once(buf, 24, &req, &p), SM_E_TOOLARGE);
    cr_assert_str_eq(resp_parser_message(&p),
                     "Protocol error: request too large (max 1048576 bytes)");

    /* Inline: a line of exactly the bound (with its CRLF) passes; one byte more does not, and
     * is refused as soon as that many bytes arrived without a line end. */
    memset(buf, 'a', SM_REQUEST_BYTES_MAX);
    memcpy(buf + SM_REQUEST_BYTES_MAX - 2, "\r\n", 2);
    cr_assert_eq(parse_once(buf, SM_REQUEST_BYTES_MAX, &req, &p), SM_REQUEST_BYTES_MAX);
    cr_assert_eq(req.argc, 1);
    memset(buf, 'a', SM_REQUEST_BYTES_MAX + 1);
    cr_assert_eq(parse_once(buf, SM_REQUEST_BYTES_MAX - 1, &req, &p), 0);
    cr_assert_eq(resp_request_parse(&p, buf, SM_REQUEST_BYTES_MAX, &req), SM_E_TOOLARGE);
    free(buf);
}

Test(resp_limits, framing_counts_toward_the_bound)
{
    /* 256 empty arguments fit easily; the bound counts framing bytes too, so a huge declared
     * bulk after legitimate ones is refused from its length line. */
    static uint8_t buf[64];
    static struct resp_parser p;
    static struct resp_request req;
    size_t n = (size_t)sprintf((char *)buf, "*2\r\n$0\r\n\r\n$%d\r\n", SM_REQUEST_BYTES_MAX - 21);
    cr_assert_eq(parse_once(buf, n, &req, &p), SM_E_TOOLARGE);
    n = (size_t)sprintf((char *)buf, "*2\r\n$0\r\n\r\n$%d\r\n", SM_REQUEST_BYTES_MAX - 22);
    cr_assert_eq(parse_once(buf, n, &req, &p), 0, "exactly at the bound: waits for the payload");
}

Test(resp_limits, last_argument_crossing_the_bound)
{
    /* A first argument filling the request up to the bound, then "$1\r\nx\r\n" (7 bytes):
     * exactly at the bound it passes, one byte more and it is refused, whole or in pieces. */
    uint8_t *buf = malloc(SM_REQUEST_BYTES_MAX + 64);
    cr_assert_not_null(buf);
    static struct resp_parser p;
    static struct resp_request req;
    for (int extra = 0; extra <= 1; extra++) {
        size_t total = SM_REQUEST_BYTES_MAX + (size_t)extra;
        size_t payload = total - 4 - 12 - 7; /* "*2\r\n", "$NNNNNNN\r\n" + CRLF, last arg */
        size_t n = (size_t)sprintf((char *)buf, "*2\r\n$%zu\r\n", payload);
        memset(buf + n, 'v', payload);
        n += payload;
        n += (size_t)sprintf((char *)buf + n, "\r\n$1\r\nx\r\n");
        cr_assert_eq(n, total);
        int want = extra ? SM_E_TOOLARGE : (int)total;
        cr_assert_eq(parse_once(buf, n, &req, &p), want, "whole, extra %d", extra);
        cr_assert_eq(parse_once(buf, n - 1, &req, &p), extra ? SM_E_TOOLARGE : 0);
        if (!extra)
            cr_assert_eq(resp_request_parse(&p, buf, n, &req), want, "in two pieces");
    }
    free(buf);
}
