/*
 * The store's recovery on the real file system (src/node/store.c): the snapshot is mapped, its
 * partitions are loaded by several threads, and the state that comes back is the same, byte for
 * byte, whatever the number of threads; a partition that does not load refuses the whole open.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/store.h"
#include "util/buf.h"
#include "util/error.h"
#include "wal/crc32c.h"

#define PARTITIONS 16
#define ORDERS     3000

static struct store_config config(const char *dir, uint32_t threads)
{
    struct store_config c = {
        .partitions = PARTITIONS,
        .dir = dir,
        .sync_mode = WAL_SYNC_NEVER,
        .load_threads = threads,
        .engine = {.skus_max = 64,
                   .orders_max = 4096,
                   .holds_max = 64,
                   .accounts_max = 16,
                   .limit_rows_max = 64,
                   .item_chunks_max = 4096,
                   .request_ids_max = 4096,
                   .order_retention_ms = 1000000,
                   .hold_retention_ms = 1000000,
                   .locks = {.sessions_max = 4,
                             .locks_max = 4,
                             .holds_max = 4,
                             .waiters_max = 4,
                             .permits_max = 4,
                             .reentry_max = 4}},
    };
    return c;
}

static void mutate(struct store *s, const char *route, const struct engine_cmd *cmd)
{
    const struct engine_output *out;
    uint32_t p = store_partition(s, route, strlen(route));
    int rc = store_mutate(s, p, cmd, &out);
    if (rc == SM_E_BUSY) {
        cr_assert_eq(store_sync(s), 0);
        rc = store_mutate(s, p, cmd, &out);
    }
    cr_assert_eq(rc, 0);
    cr_assert_neq(out->reply.kind, ENGINE_REPLY_ERR, "refused: %d", out->reply.err);
}

static void place(struct store *s, uint32_t i)
{
    char sku[16], id[16], user[16], req[16];
    snprintf(sku, sizeof sku, "sku:%u", i % 40);
    snprintf(id, sizeof id, "o%u", i);
    snprintf(user, sizeof user, "u%u", i);
    snprintf(req, sizeof req, "r%u", i);
    struct engine_cmd cmd = {.type = ENGINE_ORDER_PLACE,
                             .request_id = {(const uint8_t *)req, strlen(req)},
                             .key = {(const uint8_t *)id, strlen(id)},
                             .key2 = {(const uint8_t *)user, strlen(user)},
                             .num = 500000,
                             .items_count = 1};
    cmd.items[0].sku = (struct engine_key){(const uint8_t *)sku, strlen(sku)};
    cmd.items[0].quantity = 1 + i % 3;
    mutate(s, sku, &cmd);
}

/* A state with a snapshot and records after it: SKUs, then orders, a snapshot, more orders. */
static void build(const char *dir)
{
    struct store_config c = config(dir, 1);
    struct store s;
    struct wal_recovery report;
    char why[256];
    cr_assert_eq(store_open(&s, &c, &report, why, sizeof why), 0, "%s", why);
    store_set_time(&s, 1000);
    for (uint32_t k = 0; k < 40; k++) {
        char sku[16], req[16];
        snprintf(sku, sizeof sku, "sku:%u", k);
        snprintf(req, sizeof req, "c%u", k);
        struct engine_cmd cmd = {.type = ENGINE_SKU_CREATE,
                                 .request_id = {(const uint8_t *)req, strlen(req)},
                                 .key = {(const uint8_t *)sku, strlen(sku)},
                                 .num = 1000,
                                 .num3 = 100};
        mutate(&s, sku, &cmd);
    }
    for (uint32_t i = 0; i < ORDERS; i++)
        place(&s, i);
    cr_assert_eq(store_snapshot(&s), 0);
    for (uint32_t i = ORDERS; i < ORDERS + 100; i++)
        place(&s, i);
    cr_assert_eq(store_sync(&s), 0);
    store_close(&s);
}

/* Opens dir with `threads` loaders and returns every partition's saved bytes, concatenated. */
static struct sm_wbuf reopen(const char *dir, uint32_t threads, uint64_t *replayed)
{
    struct store_config c = config(dir, threads);
    struct store s;
    struct wal_recovery report;
    char why[256];
    cr_assert_eq(store_open(&s, &c, &report, why, sizeof why), 0, "%s", why);
    cr_assert(report.snapshot_found);
    cr_assert(store_check(&s, why, sizeof why), "%s", why);
    *replayed = s.replayed;
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    for (uint32_t p = 0; p < PARTITIONS; p++)
        cr_assert_eq(engine_save(&s.engines[p], &w), 0);
    cr_assert(!w.failed);
    store_close(&s);
    return w;
}

static void make_dir(char *dir)
{
    cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(store, parallel_load_gives_the_same_state_as_one_thread)
{
    char dir[] = "/tmp/shardmart-test-store.XXXXXX";
    make_dir(dir);
    build(dir);
    uint64_t replayed_1 = 0, replayed_n = 0, replayed_auto = 0;
    struct sm_wbuf one = reopen(dir, 1, &replayed_1);
    struct sm_wbuf four = reopen(dir, 4, &replayed_n);
    struct sm_wbuf any = reopen(dir, 0, &replayed_auto);
    cr_assert_eq(replayed_1, 100);
    cr_assert(replayed_n == replayed_1 && replayed_auto == replayed_1);
    cr_assert(one.len > (uint64_t)ORDERS * 60, "the orders are in the state");
    cr_assert(one.len == four.len && memcmp(one.data, four.data, one.len) == 0);
    cr_assert(one.len == any.len && memcmp(one.data, any.data, one.len) == 0);
    sm_wbuf_free(&one);
    sm_wbuf_free(&four);
    sm_wbuf_free(&any);
    remove_dir(dir);
}

/* The snapshot file's only .snap entry, read whole. */
static uint8_t *read_snapshot(const char *dir, char *path, size_t path_cap, size_t *len)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls %s/*.snap", dir);
    FILE *ls = popen(cmd, "r");
    cr_assert_not_null(ls);
    cr_assert_not_null(fgets(path, (int)path_cap, ls));
    cr_assert_eq(pclose(ls), 0);
    path[strcspn(path, "\n")] = '\0';
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    cr_assert(n > WAL_SNAPSHOT_HEADER_BYTES);
    uint8_t *data = malloc((size_t)n);
    rewind(f);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return data;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* A partition whose stream is damaged (the file's own checksums made to match, so only the
 * engine's loader can tell) refuses the open with either loader, and leaks nothing. */
Test(store, a_partition_that_does_not_load_refuses_the_open)
{
    char dir[] = "/tmp/shardmart-test-store.XXXXXX";
    make_dir(dir);
    build(dir);
    char path[512];
    size_t len;
    uint8_t *file = read_snapshot(dir, path, sizeof path, &len);
    /* Payload: magic, u32 partitions, then per partition u64 length + stream. Damage the last
     * partition's stream in its middle, so that the threads load the others first. */
    uint8_t *payload = file + WAL_SNAPSHOT_HEADER_BYTES;
    size_t off = 12;
    for (uint32_t p = 0; p + 1 < PARTITIONS; p++) {
        uint64_t n = 0;
        for (int i = 7; i >= 0; i--)
            n = n << 8 | payload[off + (size_t)i];
        off += 8 + n;
    }
    payload[off + 8 + 200] ^= 0x5a;
    size_t payload_len = len - WAL_SNAPSHOT_HEADER_BYTES;
    put_le32(file + 40, sm_crc32c(0, payload, payload_len));
    put_le32(file + 44, sm_crc32c(0, file, 44));
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(file, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    free(file);
    for (uint32_t threads = 1; threads <= 4; threads += 3) {
        struct store_config c = config(dir, threads);
        struct store s;
        struct wal_recovery report;
        char why[256];
        cr_assert_eq(store_open(&s, &c, &report, why, sizeof why), SM_E_CORRUPT);
        cr_assert(strstr(why, "does not load") != NULL, "%s", why);
        cr_assert_null(s.engines, "nothing is left allocated");
    }
    remove_dir(dir);
}
