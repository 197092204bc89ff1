/*
 * libFuzzer target for the node's command path: the input is a stream of RESP requests, run one
 * by one through node_execute() against a node of two small partitions on the in-memory disk.
 * Whatever the bytes, nothing may crash, every partition's invariants must hold afterwards, and
 * a second node recovered from the same disk must reach exactly the same state (snapshots equal
 * byte for byte): what was logged is what was applied. Messages between the partitions (a
 * cross-partition order, payment or transfer) are delivered every few requests, after a sync,
 * as the server does between batches.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"
#include "node/store.h"
#include "proto/resp.h"
#include "util/buf.h"
#include "util/error.h"
#include "wal/fs_faulty.h"

#define REQUESTS_MAX 64
#define OUTPUT_MAX   (1024 * 1024)

static struct store_config config(const struct sm_fs *fs)
{
    struct store_config c = {
        .partitions = 2,
        .dir = "/data",
        .fs = fs,
        .sync_mode = WAL_SYNC_ALWAYS,
        .engine =
            {
                .skus_max = 16,
                .orders_max = 32,
                .holds_max = 8,
                .accounts_max = 8,
                .limit_rows_max = 32,
                .item_chunks_max = 16,
                .request_ids_max = 64,
                .order_retention_ms = 1000,
                .hold_retention_ms = 1000,
                .locks = {.sessions_max = 4,
                          .locks_max = 8,
                          .holds_max = 8,
                          .waiters_max = 8,
                          .permits_max = 4,
                          .reentry_max = 4},
            },
    };
    return c;
}

/* Every partition's snapshot bytes, concatenated. */
static void save_all(const struct store *s, struct sm_wbuf *w)
{
    for (uint32_t p = 0; p < s->partitions; p++)
        if (engine_save(&s->engines[p], w) != 0)
            abort();
}

/* One batch boundary: durable, then the messages of durable batches delivered. */
static void deliver(struct store *s)
{
    if (store_sync(s) != 0)
        abort();
    store_txn_durable(s);
    int rc = store_txn_deliver(s);
    if (rc != 0 && rc != SM_E_BUSY)
        abort();
}

static void run(struct store *s, const uint8_t *data, size_t size)
{
    struct node n;
    struct node_config nc = {.clients_max = 1, .pipeline_max = 1, .partitions = 2};
    if (node_init(&n, &nc, 0) != 0)
        abort();
    n.store = s;
    struct node_client c;
    node_client_init(&n, &c);
    struct resp_parser *parser = malloc(sizeof *parser);
    struct resp_request *req = malloc(sizeof *req);
    uint8_t *buf = malloc(size ? size : 1);
    memcpy(buf, data, size);
    resp_parser_init(parser);
    struct sm_wbuf out;
    sm_wbuf_init(&out);
    size_t used = 0;
    for (int i = 0; i < REQUESTS_MAX && used < size; i++) {
        int rc = resp_request_parse(parser, buf + used, size - used, req);
        if (rc <= 0)
            break;
        used += (size_t)rc;
        store_set_time(s, (int64_t)i * 250); /* time moves, so deadlines pass */
        struct resp_encoder enc;
        out.len = 0;
        resp_encoder_init(&enc, &out, OUTPUT_MAX, c.resp_version);
        c.waiting_for = 0; /* no connection parks here: each request is answered or dropped */
        rc = node_execute(&n, &c, req, &enc);
        if (rc == SM_E_BUSY && store_sync(s) != 0)
            abort();
        if (i % 8 == 7 && store_tick(s) != 0)
            abort();
        if (i % 4 == 3)
            deliver(s);
    }
    for (int i = 0; i < 8; i++)
        deliver(s);
    if (store_sync(s) != 0)
        abort();
    sm_wbuf_free(&out);
    free(buf);
    free(req);
    free(parser);
    node_free(&n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sm_faulty_fs disk;
    struct sm_faulty_config fc = {.seed = 1};
    sm_faulty_fs_init(&disk, &fc);
    struct sm_fs fs = sm_faulty_fs_iface(&disk);
    struct store_config cfg = config(&fs);
    struct store *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    struct wal_recovery *report = calloc(1, sizeof *report);
    char why[512];
    if (store_open(a, &cfg, report, why, sizeof why) != 0)
        abort();
    run(a, data, size);
    if (!store_check(a, why, sizeof why))
        abort();
    struct sm_wbuf live, recovered;
    sm_wbuf_init(&live);
    sm_wbuf_init(&recovered);
    save_all(a, &live);
    store_close(a);
    if (store_open(b, &cfg, report, why, sizeof why) != 0)
        abort();
    save_all(b, &recovered);
    if (live.len != recovered.len || memcmp(live.data, recovered.data, live.len) != 0)
        abort(); /* recovery did not reproduce the state that was acknowledged */
    store_close(b);
    sm_wbuf_free(&live);
    sm_wbuf_free(&recovered);
    free(report);
    free(a);
    free(b);
    sm_faulty_fs_free(&disk);
    return 0;
}
