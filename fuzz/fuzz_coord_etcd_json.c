/*
 * libFuzzer target for the etcd gateway parsers (src/coord/etcd_json.c): whatever an endpoint
 * sends, parsing ends in a result or a clear error, never a crash, a leak or a read out of
 * bounds. The first input byte picks what the rest is parsed as (a txn response, a lease
 * response, an error body, a watch line, base64); on success the checks below must hold.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "coord/etcd_json.h"
#include "util/error.h"

static void check_kv(const struct sm_coord_kv *kv)
{
    ASSERT(kv->key && kv->key_len >= 1 && kv->key_len <= SM_COORD_KEY_BYTES_MAX);
    ASSERT(strlen(kv->key) == kv->key_len);
    ASSERT(kv->value && kv->value_len <= SM_COORD_VALUE_BYTES_MAX);
    ASSERT(kv->value[kv->value_len] == 0);
}

static void response(const struct coord_req *r, const char *body, size_t len)
{
    struct sm_coord_result out = {0};
    int rc = etcd_json_response(r, body, len, &out);
    ASSERT(rc == out.err && rc <= 0);
    if (rc != 0) {
        ASSERT(out.message[0] != '\0');
        ASSERT(out.kvs_count == 0 || out.kvs);
    }
    ASSERT(out.kvs_count <= SM_COORD_RANGE_KVS_MAX);
    for (size_t i = 0; i < out.kvs_count; i++)
        check_kv(&out.kvs[i]);
    if (rc == 0 && r->kind != SM_COORD_REQ_TXN && r->kind != SM_COORD_REQ_LEASE_REVOKE)
        ASSERT(out.ttl_ms > 0);
    sm_coord_result_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct sm_coord_cmp cmp = {.key = "/k", .target = SM_COORD_CMP_VERSION};
    struct sm_coord_op ops[3] = {
        {.kind = SM_COORD_OP_RANGE, .key = "/k", .prefix = true},
        {.kind = SM_COORD_OP_PUT, .key = "/k", .value = "v", .value_len = 1},
        {.kind = SM_COORD_OP_DELETE, .key = "/d"}};
    struct coord_req txn = {
        .kind = SM_COORD_REQ_TXN, .cmps = &cmp, .ncmps = 1, .ops = ops, .nthen = 2, .nelse = 1};
    struct coord_req lease = {.lease = 7};
    switch (data[0] % 6) {
    case 0:
        response(&txn, body, len);
        break;
    case 1:
    case 2:
        lease.kind = data[0] % 6 == 1 ? SM_COORD_REQ_LEASE_GRANT : SM_COORD_REQ_LEASE_KEEPALIVE;
        response(&lease, body, len);
        break;
    case 3: {
        struct sm_coord_result out = {0};
        int rc = etcd_json_error(data[0], body, len, &out);
        ASSERT(rc < 0 && rc == out.err && out.message[0] != '\0');
        break;
    }
    case 4: {
        struct etcd_watch_msg m;
        int rc = etcd_json_watch_line(body, len, &m);
        if (rc != 0)
            ASSERT(m.events == NULL && m.events_count == 0);
        for (size_t i = 0; i < m.events_count; i++) {
            check_kv(&m.events[i].kv);
            ASSERT(m.events[i].kv.mod_revision > 0);
            ASSERT(i == 0 || m.events[i].kv.mod_revision >= m.events[i - 1].kv.mod_revision);
        }
        etcd_watch_msg_free(&m);
        break;
    }
    default: {
        uint8_t *out;
        size_t n;
        if (etcd_b64_decode(body, len, &out, &n) == 0) {
            ASSERT(n <= len / 4 * 3 && out[n] == 0);
            char *again;
            ASSERT(etcd_b64_encode(out, n, &again) == 0);
            ASSERT(strlen(again) == len && memcmp(again, body, len) == 0);
            free(again);
            free(out);
        }
        break;
    }
    }
    return 0;
}
