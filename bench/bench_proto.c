/*
 * Protocol parsing speed: how many requests per second the RESP request parser takes out of a
 * typical flash-sale pipeline (16 ORDER.PLACE requests in one read, as redis-benchmark -P 16
 * sends them), against hiredis's redisReader on the very same bytes in the same run. The bytes
 * are a valid RESP stream of 16 arrays of bulk strings for both, so the peer does the same
 * framing work; redisReader also builds a reply object tree (one allocation per element),
 * which is exactly what our zero-copy parser avoids and part of what is being compared.
 * Also measured: the same pipeline arriving in 2 reads, and our own reply parser.
 *
 * Prints the median of RUNS runs of each, and the ratio to hiredis. The machine is shared and
 * noisy: compare the ratios, rerun before believing a change of a few percent.
 */
#include <hiredis/read.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proto/resp.h"
#include "util/assert.h"
#include "bench_util.h"

#define PIPELINE 16
#define RUNS     7
#define ROUNDS   40000 /* pipelines per run: each run takes ~0.1-0.5 s */

/* ORDER.PLACE <request id> <order id> <user> <ttl ms> <sku> <qty>, as a client library sends it. */
static size_t build_pipeline(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    for (int i = 0; i < PIPELINE; i++) {
        char rid[32], oid[32], user[32];
        snprintf(rid, sizeof rid, "req-%08d", 1000000 + i);
        snprintf(oid, sizeof oid, "o-%08d", 5000000 + i);
        snprintf(user, sizeof user, "user-%06d", 4200 + i);
        const char *argv[] = {"ORDER.PLACE", rid, oid, user, "900000", "sku-flash-0001", "1"};
        int argc = (int)(sizeof argv / sizeof argv[0]);
        n += (size_t)snprintf((char *)buf + n, cap - n, "*%d\r\n", argc);
        for (int a = 0; a < argc; a++)
            n += (size_t)snprintf((char *)buf + n, cap - n, "$%zu\r\n%s\r\n", strlen(argv[a]),
                                  argv[a]);
    }
    ASSERT(n < cap);
    return n;
}

static struct resp_parser parser;
static struct resp_request req;
static volatile size_t sink; /* keeps the compiler from dropping the work */

/* Ours: parse the pipeline with `pieces` reads per pipeline; returns requests per second. */
static double run_ours(uint8_t *buf, size_t len, int pieces)
{
    size_t cut = pieces == 2 ? len / 2 : len;
    double t0 = bench_now_s();
    for (int r = 0; r < ROUNDS; r++) {
        resp_parser_init(&parser);
        size_t used = 0, have = cut, got = 0;
        for (;;) {
            int rc = resp_request_parse(&parser, buf + used, have - used, &req);
            ASSERT(rc >= 0);
            if (rc == 0) {
                if (have == len)
                    break;
                have = len;
                continue;
            }
            used += (size_t)rc;
            got++;
            sink += req.argv[req.argc - 1].len;
        }
        ASSERT(got == PIPELINE && used == len);
    }
    return (double)ROUNDS * PIPELINE / (bench_now_s() - t0);
}

static double run_hiredis(const uint8_t *buf, size_t len)
{
    redisReader *reader = redisReaderCreate();
    ASSERT(reader != NULL);
    double t0 = bench_now_s();
    for (int r = 0; r < ROUNDS; r++) {
        ASSERT(redisReaderFeed(reader, (const char *)buf, len) == REDIS_OK);
        for (int i = 0; i < PIPELINE; i++) {
            void *reply = NULL;
            ASSERT(redisReaderGetReply(reader, &reply) == REDIS_OK && reply != NULL);
            sink += ((redisReply *)reply)->elements;
            freeReplyObject(reply);
        }
    }
    double rate = (double)ROUNDS * PIPELINE / (bench_now_s() - t0);
    redisReaderFree(reader);
    return rate;
}

static double run_reply_parser(const uint8_t *buf, size_t len)
{
    static struct resp_value vals[64];
    double t0 = bench_now_s();
    for (int r = 0; r < ROUNDS; r++) {
        size_t used = 0, n;
        for (int i = 0; i < PIPELINE; i++) {
            int rc = resp_reply_parse(buf + used, len - used, vals, 64, &n);
            ASSERT(rc > 0);
            used += (size_t)rc;
            sink += n;
        }
    }
    return (double)ROUNDS * PIPELINE / (bench_now_s() - t0);
}

int main(void)
{
    static uint8_t buf[8192];
    size_t len = build_pipeline(buf, sizeof buf);
    double ours[RUNS], ours2[RUNS], hi[RUNS], reply[RUNS];
    for (int i = 0; i < RUNS; i++) {
        /* Interleaved so that noise from the shared machine hits every contender alike. */
        ours[i] = run_ours(buf, len, 1);
        hi[i] = run_hiredis(buf, len);
        ours2[i] = run_ours(buf, len, 2);
        reply[i] = run_reply_parser(buf, len);
    }
    double m_ours = bench_median(ours, RUNS), m_hi = bench_median(hi, RUNS);
    double m_ours2 = bench_median(ours2, RUNS), m_reply = bench_median(reply, RUNS);
    printf("RESP parsing: pipeline of %d ORDER.PLACE requests (%zu bytes, %zu per request), "
           "median of %d runs x %d pipelines\n",
           PIPELINE, len, len / PIPELINE, RUNS, ROUNDS);
    printf("%-46s %14s %10s\n", "parser", "requests/s", "vs hiredis");
    printf("%-46s %14.0f %9.2fx\n", "shardmart resp_request_parse, 1 read", m_ours, m_ours / m_hi);
    printf("%-46s %14.0f %9.2fx\n", "shardmart resp_request_parse, 2 reads", m_ours2,
           m_ours2 / m_hi);
    printf("%-46s %14.0f %9.2fx\n", "shardmart resp_reply_parse (same bytes)", m_reply,
           m_reply / m_hi);
    printf("%-46s %14.0f %9.2fx\n", "hiredis redisReader (same bytes)", m_hi, 1.0);
    printf("throughput: ours %.0f MB/s, hiredis %.0f MB/s\n", m_ours * (double)len / PIPELINE / 1e6,
           m_hi * (double)len / PIPELINE / 1e6);
    return 0;
}
