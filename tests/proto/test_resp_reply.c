/*
 * The RESP encoder and reply parser (src/proto/resp_encode.c, resp_reply.c): golden bytes for
 * every type in RESP2 and RESP3, parse -> encode round trips, every proper prefix reported as
 * incomplete, malformed replies, the nesting and node limits, and output-buffer overflow as a
 * clean error with nothing written.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"
#include "util/error.h"

/* ---- encoder golden vectors ---------------------------------------------------------------- */

struct out {
    struct sm_wbuf w;
    struct resp_encoder e;
};

static void out_init(struct out *o, int version)
{
    sm_wbuf_init(&o->w);
    resp_encoder_init(&o->e, &o->w, SIZE_MAX, version);
}

static void expect_bytes(struct out *o, const char *expected, size_t n)
{
    cr_assert_eq(o->w.len, n, "got %zu bytes '%.*s', want '%.*s'", o->w.len, (int)o->w.len,
                 (const char *)o->w.data, (int)n, expected);
    cr_assert(memcmp(o->w.data, expected, n) == 0, "got '%.*s'", (int)n, (const char *)o->w.data);
    sm_wbuf_free(&o->w);
}

#define EXPECT_BYTES(o, lit) expect_bytes(o, lit, sizeof(lit) - 1)

/* Encodes the same small reply of every kind in one dialect. */
static void encode_all(struct out *o)
{
    struct resp_encoder *e = &o->e;
    cr_assert_eq(resp_put_simple(e, "OK", 2), 0);
    cr_assert_eq(resp_put_error(e, "SOLDOUT", "sku-1 has 0 left"), 0);
    cr_assert_eq(resp_put_sm_error(e, SM_E_NOTFOUND, NULL), 0);
    cr_assert_eq(resp_put_int(e, 0), 0);
    cr_assert_eq(resp_put_int(e, -42), 0);
    cr_assert_eq(resp_put_int(e, INT64_MIN), 0);
    cr_assert_eq(resp_put_bulk(e, "a\r\nb", 4), 0);
    cr_assert_eq(resp_put_bulk(e, "", 0), 0);
    cr_assert_eq(resp_put_null(e), 0);
    cr_assert_eq(resp_put_null_array(e), 0);
    cr_assert_eq(resp_put_map(e, 1), 0);
    cr_assert_eq(resp_put_bulk(e, "k", 1), 0);
    cr_assert_eq(resp_put_bool(e, true), 0);
    cr_assert_eq(resp_put_set(e, 1), 0);
    cr_assert_eq(resp_put_bool(e, false), 0);
    cr_assert_eq(resp_put_push(e, 0), 0);
    cr_assert_eq(resp_put_array(e, 2), 0);
    cr_assert_eq(resp_put_verbatim(e, "txt", "hi", 2), 0);
    cr_assert_eq(resp_put_bignum(e, "-12345678901234567890", 21), 0);
}

Test(resp_encode, resp2_golden)
{
    struct out o;
    out_init(&o, 2);
    encode_all(&o);
    EXPECT_BYTES(&o, "+OK\r\n-SOLDOUT sku-1 has 0 left\r\n-NOTFOUND no such object\r\n:0\r\n"
                     ":-42\r\n:-9223372036854775808\r\n$4\r\na\r\nb\r\n$0\r\n\r\n$-1\r\n*-1\r\n"
                     "*2\r\n$1\r\nk\r\n:1\r\n*1\r\n:0\r\n*0\r\n*2\r\n$2\r\nhi\r\n"
                     "$21\r\n-12345678901234567890\r\n");
}

Test(resp_encode, resp3_golden)
{
    struct out o;
    out_init(&o, 3);
    encode_all(&o);
    EXPECT_BYTES(&o, "+OK\r\n-SOLDOUT sku-1 has 0 left\r\n-NOTFOUND no such object\r\n:0\r\n"
                     ":-42\r\n:-9223372036854775808\r\n$4\r\na\r\nb\r\n$0\r\n\r\n_\r\n_\r\n"
                     "%1\r\n$1\r\nk\r\n#t\r\n~1\r\n#f\r\n>0\r\n*2\r\n=6\r\ntxt:hi\r\n"
                     "(-12345678901234567890\r\n");
}

Test(resp_encode, overflow_is_an_error_not_an_abort)
{
    uint8_t mem[16];
    struct sm_wbuf w;
    struct resp_encoder e;
    sm_wbuf_init_fixed(&w, mem, sizeof mem);
    resp_encoder_init(&e, &w, SIZE_MAX, 2);
    cr_assert_eq(resp_put_simple(&e, "OK", 2), 0);
    cr_assert_eq(resp_put_bulk(&e, "0123456", 7), SM_E_NOMEM, "13 bytes into 11 left");
    cr_assert_eq(w.len, 5, "nothing of the failed put was written");
    cr_assert(!w.failed, "the caller may drain and retry");
    cr_assert_eq(resp_put_bulk(&e, "012345", 6), SM_E_NOMEM, "12 bytes into 11 left");
    cr_assert_eq(resp_put_bulk(&e, "01234", 5), 0, "11 bytes into 11 left");
    cr_assert_eq(w.len, 16);
    cr_assert(memcmp(mem, "+OK\r\n$5\r\n01234\r\n", 16) == 0);
}

Test(resp_encode, fixed_buffer_exact_fit_and_one_past)
{
    uint8_t mem[17];
    struct sm_wbuf w;
    struct resp_encoder e;
    sm_wbuf_init_fixed(&w, mem, sizeof mem);
    resp_encoder_init(&e, &w, SIZE_MAX, 2);
    cr_assert_eq(resp_put_bulk(&e, "0123456789", 10), 0, "17 bytes into 17");
    cr_assert_eq(w.len, 17);
    cr_assert_eq(resp_put_null(&e), SM_E_NOMEM);
    cr_assert_eq(resp_put_array(&e, 1), SM_E_NOMEM);
    cr_assert_eq(resp_put_error(&e, "E", "x"), SM_E_NOMEM);
    cr_assert_eq(w.len, 17);
    w.len = 0; /* drained */
    cr_assert_eq(resp_put_null(&e), 0);
}

Test(resp_encode, out_max_bounds_a_growable_buffer)
{
    struct sm_wbuf w;
    struct resp_encoder e;
    sm_wbuf_init(&w);
    resp_encoder_init(&e, &w, 10, 3);
    cr_assert_eq(resp_put_int(&e, 1234567), 0); /* 10 bytes */
    cr_assert_eq(w.len, 10);
    cr_assert_eq(resp_put_null(&e), SM_E_NOMEM);
    cr_assert_eq(w.len, 10);
    sm_wbuf_free(&w);
}

/* ---- reply parser -------------------------------------------------------------------------- */

#define VALS_MAX 64

/* Parses lit whole; checks that every proper prefix is incomplete, that the parse used all of
 * it, and that encoding the nodes gives back exactly the same bytes. Returns the node count. */
static size_t parse_round_trip(const char *lit, size_t n, struct resp_value *vals)
{
    size_t count;
    for (size_t k = 0; k < n; k++)
        cr_assert_eq(resp_reply_parse((const uint8_t *)lit, k, vals, VALS_MAX, &count), 0,
                     "prefix %zu of '%s'", k, lit);
    int rc = resp_reply_parse((const uint8_t *)lit, n, vals, VALS_MAX, &count);
    cr_assert_eq(rc, (int)n, "parse of '%s' gave %d", lit, rc);
    struct out o;
    out_init(&o, 3);
    cr_assert_eq(resp_put_values(&o.e, vals, count), 0);
    expect_bytes(&o, lit, n);
    return count;
}

#define ROUND_TRIP(lit, vals) parse_round_trip(lit, sizeof(lit) - 1, vals)

Test(resp_reply, scalars)
{
    struct resp_value v[VALS_MAX];
    cr_assert_eq(ROUND_TRIP("+OK\r\n", v), 1);
    cr_assert_eq(v[0].type, RESP_SIMPLE);
    cr_assert(proto_slice_eq(v[0].str, "OK"));
    cr_assert_eq(ROUND_TRIP("-SOLDOUT sku-1\r\n", v), 1);
    cr_assert_eq(v[0].type, RESP_ERROR);
    cr_assert(proto_slice_eq(v[0].str, "SOLDOUT sku-1"));
    cr_assert_eq(ROUND_TRIP(":-9223372036854775808\r\n", v), 1);
    cr_assert_eq(v[0].integer, INT64_MIN);
    cr_assert_eq(ROUND_TRIP("$5\r\nhe\r\no\r\n", v), 1);
    cr_assert(proto_slice_eq(v[0].str, "he\r\no"));
    cr_assert_eq(ROUND_TRIP("$-1\r\n", v), 1);
    cr_assert(v[0].is_null && v[0].type == RESP_BULK);
    cr_assert_eq(ROUND_TRIP("*-1\r\n", v), 1);
    cr_assert(v[0].is_null && v[0].type == RESP_ARRAY);
    cr_assert_eq(ROUND_TRIP("_\r\n", v), 1);
    cr_assert_eq(v[0].type, RESP_NULL);
    cr_assert_eq(ROUND_TRIP(",3.14\r\n", v), 1);
    cr_assert(proto_slice_eq(v[0].str, "3.14"));
    cr_assert_eq(ROUND_TRIP(",-inf\r\n", v), 1);
    cr_assert_eq(ROUND_TRIP("#t\r\n", v), 1);
    cr_assert_eq(v[0].integer, 1);
    cr_assert_eq(ROUND_TRIP("#f\r\n", v), 1);
    cr_assert_eq(v[0].integer, 0);
    cr_assert_eq(ROUND_TRIP("!21\r\nSYNTAX invalid syntax\r\n", v), 1);
    cr_assert(proto_slice_eq(v[0].str, "SYNTAX invalid syntax"));
    cr_assert_eq(ROUND_TRIP("=15\r\ntxt:Some string\r\n", v), 1);
    cr_assert(proto_slice_eq(v[0].str, "txt:Some string"));
    cr_assert_eq(ROUND_TRIP("(3492890328409238509324850943850943825024385\r\n", v), 1);
    cr_assert_eq(v[0].type, RESP_BIGNUM);
}

Test(resp_reply, aggregates_in_pre_order)
{
    struct resp_value v[VALS_MAX];
    /* The RESP3 specification's own map example, then nesting and empty aggregates. */
    cr_assert_eq(ROUND_TRIP("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n", v), 5);
    cr_assert_eq(v[0].type, RESP_MAP);
    cr_assert_eq(v[0].integer, 2);
    cr_assert_eq(v[4].integer, 2);
    cr_assert_eq(ROUND_TRIP("*2\r\n*3\r\n:1\r\n$-1\r\n_\r\n~1\r\n#t\r\n", v), 7);
    cr_assert_eq(v[5].type, RESP_SET);
    cr_assert_eq(ROUND_TRIP("*0\r\n", v), 1);
    cr_assert_eq(ROUND_TRIP("*2\r\n*0\r\n%0\r\n", v), 3);
    cr_assert_eq(ROUND_TRIP(">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n", v), 4);
}

Test(resp_reply, attributes_annotate_the_next_value)
{
    struct resp_value v[VALS_MAX];
    /* From the RESP3 specification: an attribute before an array, and inside one. */
    cr_assert_eq(ROUND_TRIP("|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n"
                            ",0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n",
                            v),
                 10);
    cr_assert_eq(v[0].type, RESP_ATTRIBUTE);
    cr_assert_eq(v[7].type, RESP_ARRAY);
    cr_assert_eq(ROUND_TRIP("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n", v), 6);
    cr_assert_eq(ROUND_TRIP("|0\r\n:7\r\n", v), 2);
}

Test(resp_reply, pipelined_replies_one_at_a_time)
{
    const char *in = "+OK\r\n:1\r\n*1\r\n$1\r\nx\r\n";
    size_t len = strlen(in), pos = 0, count, replies = 0;
    struct resp_value v[VALS_MAX];
    while (pos < len) {
        int rc = resp_reply_parse((const uint8_t *)in + pos, len - pos, v, VALS_MAX, &count);
        cr_assert_gt(rc, 0);
        pos += (size_t)rc;
        replies++;
    }
    cr_assert_eq(replies, 3);
}

Test(resp_reply, malformed)
{
    static const char *const bad[] = {
        "x\r\n",         "\0\r\n",         ":01\r\n", ":+1\r\n",        ":\r\n",
        ":1\rx",         "+a\nb\r\n",      "$-2\r\n", "$3\r\nabcd\r\n", "$3\r\nab\r\n\r\n",
        "*-2\r\n",       "%-1\r\n",        "_x\r\n",  "#x\r\n",         "#tt\r\n",
        ",\r\n",         ",1a\r\n",        "(\r\n",   "(-\r\n",         "(1x\r\n",
        "=3\r\ntxt\r\n", "=4\r\ntxt;\r\n", "!-1\r\n", "*1\r\n?\r\n",
    };
    struct resp_value v[VALS_MAX];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t count;
        size_t n = strlen(bad[i]) + (bad[i][0] == '\0' ? 3 : 0);
        cr_assert_eq(resp_reply_parse((const uint8_t *)bad[i], n, v, VALS_MAX, &count), SM_E_PROTO,
                     "'%s' accepted", bad[i]);
    }
}

Test(resp_reply, depth_limit_at_and_past_the_bound)
{
    char in[4 * (SM_RESP_REPLY_DEPTH_MAX + 2) + 8];
    struct resp_value v[VALS_MAX];
    size_t count, n = 0;
    for (int i = 0; i < SM_RESP_REPLY_DEPTH_MAX; i++)
        n += (size_t)sprintf(in + n, "*1\r\n");
    n += (size_t)sprintf(in + n, ":1\r\n");
    cr_assert_eq(resp_reply_parse((uint8_t *)in, n, v, VALS_MAX, &count), (int)n);
    cr_assert_eq(count, SM_RESP_REPLY_DEPTH_MAX + 1);
    n = 0;
    for (int i = 0; i < SM_RESP_REPLY_DEPTH_MAX + 1; i++)
        n += (size_t)sprintf(in + n, "*1\r\n");
    n += (size_t)sprintf(in + n, ":1\r\n");
    cr_assert_eq(resp_reply_parse((uint8_t *)in, n, v, VALS_MAX, &count), SM_E_TOOLARGE);
}

Test(resp_reply, node_and_bulk_limits)
{
    struct resp_value v[4];
    size_t count;
    const char *fits = "*3\r\n:1\r\n:2\r\n:3\r\n";
    cr_assert_gt(resp_reply_parse((const uint8_t *)fits, strlen(fits), v, 4, &count), 0);
    cr_assert_eq(count, 4);
    const char *past = "*4\r\n";
    cr_assert_eq(resp_reply_parse((const uint8_t *)past, strlen(past), v, 4, &count), SM_E_TOOLARGE,
                 "refused from the header alone");
    const char *map = "%2\r\n";
    cr_assert_eq(resp_reply_parse((const uint8_t *)map, strlen(map), v, 4, &count), SM_E_TOOLARGE,
                 "a map of 2 pairs is 5 nodes");
    const char *huge = "%9223372036854775807\r\n";
    cr_assert_eq(resp_reply_parse((const uint8_t *)huge, strlen(huge), v, 4, &count), SM_E_TOOLARGE,
                 "no overflow doubling the pairs");
    huge = "|9223372036854775807\r\n";
    cr_assert_eq(resp_reply_parse((const uint8_t *)huge, strlen(huge), v, 4, &count),
                 SM_E_TOOLARGE);
    char big[64];
    snprintf(big, sizeof big, "$%ld\r\n", SM_RESP_REPLY_BULK_BYTES_MAX + 1);
    cr_assert_eq(resp_reply_parse((const uint8_t *)big, strlen(big), v, 4, &count), SM_E_TOOLARGE);
    snprintf(big, sizeof big, "$%ld\r\n", SM_RESP_REPLY_BULK_BYTES_MAX);
    cr_assert_eq(resp_reply_parse((const uint8_t *)big, strlen(big), v, 4, &count), 0,
                 "at the bound: waits for the bytes");
}

Test(resp_reply, encoder_output_parses_back)
{
    struct out o;
    out_init(&o, 3);
    encode_all(&o);
    struct resp_value v[VALS_MAX];
    size_t pos = 0, count, replies = 0;
    while (pos < o.w.len) {
        int rc = resp_reply_parse(o.w.data + pos, o.w.len - pos, v, VALS_MAX, &count);
        cr_assert_gt(rc, 0, "at %zu", pos);
        pos += (size_t)rc;
        replies++;
    }
    cr_assert_eq(replies, 14, "19 puts, 5 of them inside aggregates");
    sm_wbuf_free(&o.w);
}
