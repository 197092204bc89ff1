/*
 * Recovery of a node's state (issue 4: 10,000,000 orders, serving again in under 10 s), without
 * hours of client traffic: the state is written through the store itself, as the node would
 * (its default partitions and capacities, SKUs, then single-unit orders spread over them, a tick
 * every 100 ms of log time and a snapshot every 1,000,000 records like `--snapshot-every`), with
 * --fsync never while building. Then the store is opened again RUNS times and each recovery
 * (snapshot load + replay of the log after it) is timed; the median is printed next to the
 * build's own rate (the same tables written by the live path) as the peer.
 *
 *   bench_node_recovery [ORDERS [RUNS]]          build in a temp dir, time RUNS opens, remove it
 *   bench_node_recovery --build DIR ORDERS       only build (bench/recovery then restarts a real
 *                                                node on DIR and times it until /readyz)
 *   bench_node_recovery --open DIR               only time one recovery of DIR (for profiles)
 *
 * The engine capacities must equal `shardmart start`'s defaults (a snapshot of other capacities
 * is refused): they are copied from server_config_defaults in src/server/server.c.
 */
#define _POSIX_C_SOURCE 200809L
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "node/store.h"
#include "util/error.h"
#include "bench_util.h"

#define SKUS           10000
#define TICK_MS        100
#define SNAPSHOT_EVERY 1000000
#define ORDERS_PER_MS  10 /* log time advances 1 ms per this many orders */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The node's default engine capacities and store settings. */
static void node_config(struct store_config *c, const char *dir, enum wal_sync_mode sync)
{
    memset(c, 0, sizeof *c);
    c->partitions = SM_PARTITIONS_DEFAULT;
    c->dir = dir;
    c->sync_mode = sync;
    c->preallocate = true;
    store_engine_defaults(&c->engine);
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_node_recovery: %s: %s\n", what, sm_strerror(rc));
    exit(1);
}

/* Logs and applies one command, syncing first when the batch is full. */
static void mutate(struct store *s, const char *sku, const struct engine_cmd *cmd, uint64_t *n)
{
    uint32_t p = store_partition(s, sku, strlen(sku));
    const struct engine_output *out;
    int rc = store_mutate(s, p, cmd, &out);
    if (rc == SM_E_BUSY) {
        rc = store_sync(s);
        if (rc != 0)
            die("sync", rc);
        rc = store_mutate(s, p, cmd, &out);
    }
    if (rc != 0)
        die("mutate", rc);
    if (out->reply.kind == ENGINE_REPLY_ERR)
        die("command refused", out->reply.err);
    if (++*n % SNAPSHOT_EVERY == 0 && (rc = store_snapshot(s)) != 0)
        die("snapshot", rc);
}

static void tick(struct store *s, uint64_t *n)
{
    int rc = store_tick(s);
    if (rc == SM_E_BUSY) {
        if ((rc = store_sync(s)) != 0)
            die("sync", rc);
        rc = store_tick(s);
    }
    if (rc != 0)
        die("tick", rc);
    if (++*n % SNAPSHOT_EVERY == 0 && (rc = store_snapshot(s)) != 0)
        die("snapshot", rc);
}

static void build(const char *dir, uint64_t orders)
{
    struct store_config c;
    node_config(&c, dir, WAL_SYNC_NEVER);
    static struct store s;
    struct wal_recovery report;
    char why[512];
    int rc = store_open(&s, &c, &report, why, sizeof why);
    if (rc != 0) {
        fprintf(stderr, "bench_node_recovery: open %s: %s\n", dir, why);
        exit(1);
    }
    int64_t t = wall_ms(), next_tick = t + TICK_MS;
    store_set_time(&s, t);
    uint64_t records = 0;
    char sku[32], id[32], user[32], req[32];
    int64_t per_sku = (int64_t)(orders / SKUS + 2);
    for (uint32_t k = 0; k < SKUS; k++) {
        snprintf(sku, sizeof sku, "sku:%u", k);
        snprintf(req, sizeof req, "c%u", k);
        struct engine_cmd cmd = {.type = ENGINE_SKU_CREATE,
                                 .request_id = {(const uint8_t *)req, strlen(req)},
                                 .key = {(const uint8_t *)sku, strlen(sku)},
                                 .num = per_sku,
                                 .num3 = 100};
        mutate(&s, sku, &cmd, &records);
    }
    for (uint64_t i = 0; i < orders; i++) {
        if (i % ORDERS_PER_MS == 0) {
            store_set_time(&s, ++t);
            if (t >= next_tick) {
                tick(&s, &records);
                next_tick += TICK_MS;
            }
        }
        snprintf(sku, sizeof sku, "sku:%llu", (unsigned long long)(i * 7919 % SKUS));
        snprintf(id, sizeof id, "o%llu", (unsigned long long)i);
        snprintf(user, sizeof user, "u%llu", (unsigned long long)i);
        snprintf(req, sizeof req, "r%llu", (unsigned long long)i);
        struct engine_cmd cmd = {.type = ENGINE_ORDER_PLACE,
                                 .request_id = {(const uint8_t *)req, strlen(req)},
                                 .key = {(const uint8_t *)id, strlen(id)},
                                 .key2 = {(const uint8_t *)user, strlen(user)},
                                 .num = 86400000,
                                 .items_count = 1};
        cmd.items[0].sku = (struct engine_key){(const uint8_t *)sku, strlen(sku)};
        cmd.items[0].quantity = 1;
        mutate(&s, sku, &cmd, &records);
    }
    if ((rc = store_sync(&s)) != 0)
        die("sync", rc);
    store_close(&s);
}

static double open_once(const char *dir, uint64_t *replayed)
{
    struct store_config c;
    node_config(&c, dir, WAL_SYNC_ALWAYS);
    static struct store s;
    struct wal_recovery report;
    char why[512];
    double t0 = bench_now_s();
    int rc = store_open(&s, &c, &report, why, sizeof why);
    double dt = bench_now_s() - t0;
    if (rc != 0) {
        fprintf(stderr, "bench_node_recovery: recovery of %s: %s\n", dir, why);
        exit(1);
    }
    *replayed = s.replayed;
    store_close(&s);
    return dt;
}

int main(int argc, char **argv)
{
    /* As the node does (server.c): each large table a fresh zeroed mapping, not heap memset. */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    if (argc == 4 && strcmp(argv[1], "--build") == 0) {
        build(argv[2], strtoull(argv[3], NULL, 10));
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--open") == 0) {
        uint64_t replayed = 0;
        double dt = open_once(argv[2], &replayed);
        printf("recovery: store_open %.3f s (%llu records replayed after the snapshot)\n", dt,
               (unsigned long long)replayed);
        return 0;
    }
    uint64_t orders = argc > 1 ? strtoull(argv[1], NULL, 10) : 200000;
    int runs = argc > 2 ? atoi(argv[2]) : 3;
    if (runs < 1 || runs > 99 || orders == 0) {
        fprintf(stderr, "usage: bench_node_recovery [ORDERS [RUNS]] | --build DIR ORDERS\n");
        return 2;
    }
    char dir[] = "/tmp/shardmart-bench-recovery.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    double t0 = bench_now_s();
    build(dir, orders);
    double built = bench_now_s() - t0;
    printf("recovery: built %llu orders over %d SKUs in %.2f s (%.0f orders/s, live path, "
           "--fsync never)\n",
           (unsigned long long)orders, SKUS, built, (double)orders / built);
    double t[99];
    uint64_t replayed = 0;
    for (int r = 0; r < runs; r++) {
        t[r] = open_once(dir, &replayed);
        printf("  open %d: %.3f s (%llu records replayed after the snapshot)\n", r + 1, t[r],
               (unsigned long long)replayed);
    }
    qsort(t, (size_t)runs, sizeof t[0], bench_cmp_double);
    double median = runs % 2 ? t[runs / 2] : (t[runs / 2 - 1] + t[runs / 2]) / 2;
    printf("recovery: %llu orders: store_open median %.3f s over %d runs; %.2fx the build's "
           "time\n",
           (unsigned long long)orders, median, runs, median / built);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
