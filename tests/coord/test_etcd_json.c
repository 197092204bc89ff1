/*
 * The etcd gateway's JSON, without a server: base64 and prefix-range vectors, request bodies
 * pinned byte for byte, and every way a response can be wrong mapped to a clear error. The
 * response shapes are the ones etcd 3.4 sends (captured from /usr/bin/etcd 3.4.23 with curl).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord/etcd_json.h"
#include "util/error.h"

static void b64_round(const char *plain, const char *encoded)
{
    char *e;
    cr_assert_eq(etcd_b64_encode(plain, strlen(plain), &e), 0);
    cr_assert_str_eq(e, encoded);
    free(e);
    uint8_t *d;
    size_t n;
    cr_assert_eq(etcd_b64_decode(encoded, strlen(encoded), &d, &n), 0);
    cr_assert_eq(n, strlen(plain));
    cr_assert(memcmp(d, plain, n) == 0);
    cr_assert_eq(d[n], 0, "NUL-terminated");
    free(d);
}

Test(etcd_json, base64_rfc4648_vectors)
{
    b64_round("", "");
    b64_round("f", "Zg==");
    b64_round("fo", "Zm8=");
    b64_round("foo", "Zm9v");
    b64_round("foob", "Zm9vYg==");
    b64_round("fooba", "Zm9vYmE=");
    b64_round("foobar", "Zm9vYmFy");
    static const char *const bad[] = {"Zg=",  "Z===",     "=Zg=", "Zm9v\n", "Zm 9",
                                      "Zg=a", "Zm9v!A==", "====", "Zh==",   "Zm9="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t *d;
        size_t n;
        cr_assert_eq(etcd_b64_decode(bad[i], strlen(bad[i]), &d, &n), SM_E_CORRUPT, "%s", bad[i]);
        cr_assert_null(d);
    }
}

Test(etcd_json, prefix_end)
{
    char end[SM_COORD_KEY_BYTES_MAX + 1];
    cr_assert_eq(etcd_prefix_end("/a/", 3, end), 3);
    cr_assert_str_eq(end, "/a0");
    cr_assert_eq(etcd_prefix_end("a\xff", 2, end), 1);
    cr_assert_str_eq(end, "b");
    cr_assert_eq(etcd_prefix_end("\xff\xff", 2, end), 1);
    cr_assert_eq(end[0], '\0', "all 0xff: to the end of the keyspace");
    cr_assert_eq(etcd_prefix_end("", 0, end), 1);
    cr_assert_eq(end[0], '\0');
}

/* A transaction request built by hand, as coord.c would after its checks. */
static struct sm_coord_cmp cmps[1];
static struct sm_coord_op ops[3];
static struct coord_req txn = {.kind = SM_COORD_REQ_TXN,
                               .id = 1,
                               .cmps = cmps,
                               .ncmps = 1,
                               .ops = ops,
                               .nthen = 2,
                               .nelse = 1};

static void init_txn(void)
{
    cmps[0] = (struct sm_coord_cmp){
        .key = "/k", .target = SM_COORD_CMP_MOD_REVISION, .result = SM_COORD_EQUAL, .number = 5};
    ops[0] = (struct sm_coord_op){
        .kind = SM_COORD_OP_PUT, .key = "/k", .value = "v", .value_len = 1, .lease = 7};
    ops[1] = (struct sm_coord_op){.kind = SM_COORD_OP_DELETE, .key = "/p/", .prefix = true};
    ops[2] = (struct sm_coord_op){.kind = SM_COORD_OP_RANGE, .key = "/k"};
}

/* cppcheck-suppress unknownMacro */
TestSuite(etcd_json, .init = init_txn);

Test(etcd_json, request_bodies_golden)
{
    char *body;
    cr_assert_eq(etcd_json_request(&txn, 0, &body), 0);
    cr_assert_str_eq(body,
                     "{\"compare\":[{\"key\":\"L2s=\",\"target\":\"MOD\",\"result\":\"EQUAL\","
                     "\"mod_revision\":\"5\"}],\"success\":[{\"request_put\":{\"key\":"
                     "\"L2s=\",\"value\":\"dg==\",\"lease\":\"7\"}},{\"request_delete_range\":"
                     "{\"key\":\"L3Av\",\"range_end\":\"L3Aw\"}}],\"failure\":[{"
                     "\"request_range\":{\"key\":\"L2s=\",\"limit\":\"69649\"}}]}");
    free(body);
    struct coord_req grant = {.kind = SM_COORD_REQ_LEASE_GRANT, .ttl_ms = 1001};
    cr_assert_eq(etcd_json_request(&grant, 0, &body), 0);
    cr_assert_str_eq(body, "{\"TTL\":\"2\"}", "TTL rounds up to whole seconds");
    free(body);
    struct coord_req ka = {.kind = SM_COORD_REQ_LEASE_KEEPALIVE, .lease = 4111120302050518790};
    cr_assert_eq(etcd_json_request(&ka, 0, &body), 0);
    cr_assert_str_eq(body, "{\"ID\":\"4111120302050518790\"}");
    free(body);
    struct coord_req w = {.kind = SM_COORD_REQ_WATCH, .key = "/w/", .prefix = true};
    cr_assert_eq(etcd_json_request(&w, 42, &body), 0);
    cr_assert_str_eq(body, "{\"create_request\":{\"key\":\"L3cv\",\"range_end\":\"L3cw\","
                           "\"start_revision\":\"42\"}}");
    free(body);
    struct coord_req all = {.kind = SM_COORD_REQ_WATCH, .key = "", .prefix = true};
    cr_assert_eq(etcd_json_request(&all, 0, &body), 0);
    cr_assert_str_eq(body, "{\"create_request\":{\"key\":\"AA==\",\"range_end\":\"AA==\"}}");
    free(body);
}

static int parse(const struct coord_req *r, const char *body, struct sm_coord_result *out)
{
    memset(out, 0, sizeof *out);
    int rc = etcd_json_response(r, body, strlen(body), out);
    cr_assert_eq(rc, out->err);
    if (rc != 0)
        cr_assert(out->message[0], "an error carries a message");
    return rc;
}

#define HDR                                                                                        \
    "\"header\":{\"cluster_id\":\"1\",\"member_id\":\"2\",\"revision\":\"9\",\"raft_term\":\"2\"}"

Test(etcd_json, txn_responses)
{
    struct sm_coord_result r;
    /* The else-branch ran (no "succeeded": false is left out). */
    cr_assert_eq(
        parse(&txn,
              "{" HDR ",\"responses\":[{\"response_range\":{\"header\":{\"revision\":\"9\"},"
              "\"kvs\":[{\"key\":\"L2s=\",\"create_revision\":\"2\",\"mod_revision\":\"8\","
              "\"version\":\"3\",\"value\":\"eA==\",\"lease\":\"7\"}],\"count\":\"1\"}}]}",
              &r),
        0);
    cr_assert(!r.succeeded);
    cr_assert_eq(r.revision, 9);
    cr_assert_eq(r.kvs_count, 1);
    cr_assert_str_eq(r.kvs[0].key, "/k");
    cr_assert_eq(r.kvs[0].value_len, 1);
    cr_assert_eq(r.kvs[0].value[0], 'x');
    cr_assert_eq(r.kvs[0].create_revision, 2);
    cr_assert_eq(r.kvs[0].mod_revision, 8);
    cr_assert_eq(r.kvs[0].version, 3);
    cr_assert_eq(r.kvs[0].lease, 7);
    sm_coord_result_free(&r);
    /* The then-branch: a put and a delete; an empty value is left out of a kv. */
    cr_assert_eq(parse(&txn,
                       "{" HDR
                       ",\"succeeded\":true,\"responses\":[{\"response_put\":{\"header\":{}}},"
                       "{\"response_delete_range\":{\"header\":{},\"deleted\":\"4\"}}]}",
                       &r),
                 0);
    cr_assert(r.succeeded);
    cr_assert_eq(r.deleted, 4);
    sm_coord_result_free(&r);

    static const struct {
        const char *body;
        int err;
    } bad[] = {
        {"", SM_E_CORRUPT},
        {"[]", SM_E_CORRUPT},
        {"{\"responses\":[]}", SM_E_CORRUPT},                                    /* no header */
        {"{\"header\":{\"revision\":\"x9\"},\"responses\":[{}]}", SM_E_CORRUPT}, /* bad number */
        {"{\"header\":{\"revision\":true}}", SM_E_CORRUPT},
        {"{" HDR ",\"succeeded\":\"yes\"}", SM_E_CORRUPT},
        {"{" HDR "}", SM_E_CORRUPT}, /* the else-branch has one op: one response is due */
        {"{" HDR ",\"responses\":[{\"response_put\":{}}]}", SM_E_CORRUPT}, /* wrong kind */
        {"{" HDR ",\"responses\":[{\"response_range\":{},\"response_put\":{}}]}", SM_E_CORRUPT},
        {"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":{}}}]}", SM_E_CORRUPT},
        {"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"value\":\"eA==\"}]}}]}",
         SM_E_CORRUPT}, /* a kv without a key */
        {"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"!!\"}]}}]}",
         SM_E_CORRUPT}, /* bad base64 */
        {"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"AA==\"}]}}]}",
         SM_E_CORRUPT}, /* a NUL in a key */
        {"{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"L2s=\","
         "\"version\":\"-1\"}]}}]}",
         SM_E_CORRUPT},
        {"{" HDR ",\"responses\":[{\"response_range\":{\"more\":true}}]}", SM_E_TOOLARGE},
        {"{" HDR ",\"responses\":[{\"response_range\":{\"more\":1}}]}", SM_E_CORRUPT},
        {"{\"error\":\"etcdserver: requested lease not found\",\"code\":5}", SM_E_NOTFOUND},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(parse(&txn, bad[i].body, &r), bad[i].err, "case %zu: %s", i, r.message);
        cr_assert_eq(r.kvs_count, 0);
        sm_coord_result_free(&r);
    }
}

Test(etcd_json, oversized_value_is_toolarge)
{
    size_t n = SM_COORD_VALUE_BYTES_MAX + 3; /* a multiple of 3: base64 without padding */
    uint8_t *raw = calloc(1, n);
    char *b64;
    cr_assert_eq(etcd_b64_encode(raw, n, &b64), 0);
    size_t cap = strlen(b64) + 256;
    char *body = malloc(cap);
    snprintf(body, cap,
             "{" HDR ",\"responses\":[{\"response_range\":{\"kvs\":[{\"key\":\"L2s=\","
             "\"value\":\"%s\"}]}}]}",
             b64);
    struct sm_coord_result r;
    cr_assert_eq(parse(&txn, body, &r), SM_E_TOOLARGE);
    sm_coord_result_free(&r);
    free(raw);
    free(b64);
    free(body);
}

Test(etcd_json, lease_responses)
{
    struct coord_req grant = {.kind = SM_COORD_REQ_LEASE_GRANT, .ttl_ms = 1000};
    struct coord_req ka = {.kind = SM_COORD_REQ_LEASE_KEEPALIVE, .lease = 123};
    struct coord_req revoke = {.kind = SM_COORD_REQ_LEASE_REVOKE, .lease = 123};
    struct sm_coord_result r;
    cr_assert_eq(parse(&grant, "{" HDR ",\"ID\":\"4111120302050518790\",\"TTL\":\"1\"}", &r), 0);
    cr_assert_eq(r.lease, 4111120302050518790);
    cr_assert_eq(r.ttl_ms, 1000);
    cr_assert_eq(parse(&grant, "{" HDR ",\"TTL\":\"1\"}", &r), SM_E_CORRUPT, "no ID");
    cr_assert_eq(parse(&grant, "{" HDR ",\"ID\":\"5\"}", &r), SM_E_CORRUPT, "no TTL");
    cr_assert_eq(parse(&grant, "{" HDR ",\"ID\":\"5\",\"TTL\":\"99999999999\"}", &r), SM_E_CORRUPT,
                 "TTL past the bound");
    cr_assert_eq(parse(&ka, "{\"result\":{" HDR ",\"ID\":\"123\",\"TTL\":\"3\"}}", &r), 0);
    cr_assert_eq(r.lease, 123);
    cr_assert_eq(r.ttl_ms, 3000);
    cr_assert_eq(parse(&ka, "{\"result\":{" HDR ",\"ID\":\"123\"}}", &r), SM_E_NOTFOUND,
                 "no TTL in a keepalive: the lease is gone");
    cr_assert_eq(parse(&ka, "{" HDR ",\"ID\":\"123\",\"TTL\":\"3\"}", &r), SM_E_CORRUPT,
                 "a keepalive answer is a stream message");
    cr_assert_eq(parse(&ka, "", &r), SM_E_CORRUPT, "an empty stream");
    cr_assert_eq(parse(&revoke, "{" HDR "}", &r), 0);
}

Test(etcd_json, error_bodies)
{
    static const struct {
        long status;
        const char *body;
        int err;
    } cases[] = {
        {404, "{\"error\":\"etcdserver: requested lease not found\",\"code\":5}", SM_E_NOTFOUND},
        {400, "{\"error\":\"etcdserver: duplicate key given in txn request\",\"code\":3}",
         SM_E_BADARG},
        {503,
         "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\","
         "\"code\":14}",
         SM_E_TRYAGAIN},
        {503, "{\"message\":\"etcdserver: request timed out\",\"code\":14}", SM_E_TIMEOUT},
        {503, "{\"message\":\"etcdserver: leader changed\",\"code\":14}", SM_E_TIMEOUT},
        {400, "{\"message\":\"mvcc: required revision has been compacted\",\"code\":11}",
         SM_E_STATE},
        {413, "{\"code\":8}", SM_E_TOOLARGE},
        {504, "{\"code\":4}", SM_E_TIMEOUT},
        {500, "<html>oops</html>", SM_E_TRYAGAIN},
        {403, "", SM_E_IO},
        {400, "{\"code\":\"three\"}", SM_E_IO},
        {200, "{\"error\":{\"grpc_code\":14,\"message\":\"no leader\"}}", SM_E_TRYAGAIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sm_coord_result r = {0};
        int rc = etcd_json_error(cases[i].status, cases[i].body, strlen(cases[i].body), &r);
        cr_assert_eq(rc, cases[i].err, "case %zu: %s", i, r.message);
        cr_assert_eq(r.err, rc);
        cr_assert(strstr(r.message, "etcd"), "case %zu: %s", i, r.message);
    }
}

static int line(const char *text, struct etcd_watch_msg *m)
{
    return etcd_json_watch_line(text, strlen(text), m);
}

Test(etcd_json, watch_lines)
{
    struct etcd_watch_msg m;
    cr_assert_eq(line("{\"result\":{" HDR ",\"created\":true}}", &m), 0);
    cr_assert(m.created);
    cr_assert_eq(m.header_revision, 9);
    cr_assert_eq(m.events_count, 0);
    etcd_watch_msg_free(&m);
    cr_assert_eq(line("{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"Zm9v\","
                      "\"create_revision\":\"2\",\"mod_revision\":\"2\",\"version\":\"1\","
                      "\"value\":\"YmFy\"}},{\"type\":\"DELETE\",\"kv\":{\"key\":\"Zm9v\","
                      "\"mod_revision\":\"4\"}}]}}",
                      &m),
                 0);
    cr_assert_eq(m.events_count, 2);
    cr_assert_eq(m.events[0].type, SM_COORD_EVENT_PUT);
    cr_assert_str_eq(m.events[0].kv.key, "foo");
    cr_assert_str_eq((char *)m.events[0].kv.value, "bar");
    cr_assert_eq(m.events[1].type, SM_COORD_EVENT_DELETE);
    cr_assert_eq(m.events[1].kv.mod_revision, 4);
    etcd_watch_msg_free(&m);
    cr_assert_eq(line("{\"result\":{\"header\":{\"raft_term\":\"2\"},\"canceled\":true,"
                      "\"compact_revision\":\"4\"}}",
                      &m),
                 0);
    cr_assert(m.canceled);
    cr_assert_eq(m.compact_revision, 4);
    etcd_watch_msg_free(&m);
    cr_assert_eq(line("{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"x\"}}", &m), 0);
    cr_assert(m.error);
    etcd_watch_msg_free(&m);
    static const char *const bad[] = {
        "",
        "hello",
        "{\"result\":1}",
        "{\"result\":{}}", /* no header */
        "{\"result\":{" HDR ",\"created\":\"yes\"}}",
        "{\"result\":{" HDR ",\"events\":{}}}",
        "{\"result\":{" HDR ",\"events\":[{\"type\":\"BOGUS\",\"kv\":{\"key\":\"Zm9v\","
        "\"mod_revision\":\"3\"}}]}}",
        "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"0\"}}]}}",
        "{\"result\":{" HDR ",\"events\":[{\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"5\"}},"
        "{\"kv\":{\"key\":\"Zm9v\",\"mod_revision\":\"4\"}}]}}", /* out of order */
        "{\"result\":{" HDR ",\"events\":[{}]}}",
        "{\"result\":{" HDR ",\"compact_revision\":\"-1\"}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_neq(line(bad[i], &m), 0, "case %zu", i);
        cr_assert_eq(m.events_count, 0);
        cr_assert_null(m.events);
    }
}
