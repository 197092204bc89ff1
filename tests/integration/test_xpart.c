/*
 * Cross-partition orders, payments and transfers over RESP against a real node with
 * --partitions 8: orders whose SKUs live in three partitions are placed, retried, paid with
 * accounts in two other partitions, cancelled and expired; transfers cross partitions; and
 * everything acknowledged is there after kill -9 and a restart.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/node_proc.h"
#include "../support/redis_helpers.h"
#include "shardmart/ring.h"

#define PARTITIONS 8

static struct node_proc node;

/* count names "<prefix><i>" whose partitions differ from each other's and from avoid. */
static void pick(const char *prefix, char (*names)[16], int count, uint32_t avoid)
{
    uint32_t used[4];
    int found = 0;
    for (int i = 0; found < count && i < 1000; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        uint32_t p;
        cr_assert_eq(ring_key_partition(name, strlen(name), PARTITIONS, &p), 0);
        bool dup = p == avoid;
        for (int k = 0; k < found; k++)
            dup |= used[k] == p;
        if (!dup) {
            used[found] = p;
            strcpy(names[found++], name);
        }
    }
    cr_assert_eq(found, count);
}

static long long field(redisContext *c, const char *cmd, const char *key, const char *name)
{
    redisReply *r = node_proc_command(c, "%s %s", cmd, key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s %s: %s", cmd, key,
                 r->type == REDIS_REPLY_ERROR ? r->str : "not a map");
    long long x = -999999;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0 && r->element[i + 1]->type == REDIS_REPLY_INTEGER)
            x = r->element[i + 1]->integer;
    freeReplyObject(r);
    return x;
}

static void expect_status(redisContext *c, const char *want, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_ERROR ||
                  r->type == REDIS_REPLY_INTEGER,
              "%s: type %d", fmt, r->type);
    if (r->type == REDIS_REPLY_INTEGER)
        cr_assert_str_eq(want, "int", "%s", fmt);
    else
        cr_assert(strncmp(r->str, want, strlen(want)) == 0, "%s: got '%s'", fmt, r->str);
    freeReplyObject(r);
}

/* ORDER.PLACE of 1, 2, 3 of the three SKUs; the order id. */
static void place(redisContext *c, const char *rid, char (*sku)[16], char *id)
{
    redisReply *r = node_proc_command(c, "ORDER.PLACE %s alice 60000 %s 1 %s 2 %s 3", rid, sku[0],
                                      sku[1], sku[2]);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "%s", r->type == REDIS_REPLY_ERROR ? r->str : "?");
    cr_assert_eq(r->len, 21);
    memcpy(id, r->str, 22);
    freeReplyObject(r);
}

Test(xpart, orders_payments_and_transfers_across_partitions)
{
    const char *flags[] = {"--partitions", "8", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    redisContext *c = node_proc_client(&node);
    char sku[3][16], acct[2][16];
    pick("sku", sku, 3, UINT32_MAX);
    uint32_t order_p;
    cr_assert_eq(ring_key_partition(sku[0], strlen(sku[0]), PARTITIONS, &order_p), 0);
    pick("acct", acct, 2, order_p); /* neither account lives with the order */
    for (int i = 0; i < 3; i++)
        expect_status(c, "OK", "STOCK.CREATE s%d %s 10 PRICE %d", i, sku[i], 100 * (i + 1));
    for (int i = 0; i < 2; i++) {
        expect_status(c, "OK", "ACCOUNT.OPEN a%d %s", i, acct[i]);
        expect_status(c, "int", "ACCOUNT.DEPOSIT d%d %s 10000", i, acct[i]);
    }

    /* Place across three partitions; a retry names the same order and holds nothing more. */
    char id[32], again[32];
    place(c, "o1", sku, id);
    place(c, "o1", sku, again);
    cr_assert_str_eq(id, again);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(field(c, "STOCK.GET", sku[i], "reserved"), i + 1);
        cr_assert_eq(field(c, "STOCK.GET", sku[i], "available"), 10 - (i + 1));
    }
    cr_assert_eq(field(c, "ORDER.GET", id, "total_cents"), 1400);

    /* Pay it with accounts in two other partitions: money and every item move together. */
    expect_status(c, "OK", "ORDER.PAY p1 %s %s %s", id, acct[0], acct[1]);
    expect_status(c, "OK", "ORDER.PAY p1 %s %s %s", id, acct[0], acct[1]);
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(field(c, "STOCK.GET", sku[i], "sold"), i + 1);
        cr_assert_eq(field(c, "STOCK.GET", sku[i], "reserved"), 0);
    }
    cr_assert_eq(field(c, "ACCOUNT.GET", acct[0], "balance_cents"), 10000 - 1400);
    cr_assert_eq(field(c, "ACCOUNT.GET", acct[1], "balance_cents"), 10000 + 1400);

    /* A second order, cancelled: every partition gets its stock back. */
    place(c, "o2", sku, id);
    expect_status(c, "OK", "ORDER.CANCEL c2 %s", id);
    /* The release reaches the other partitions a batch or two later. */
    for (int tries = 0; tries < 100 && field(c, "STOCK.GET", sku[2], "reserved") != 0; tries++)
        expect_status(c, "PONG", "PING");
    for (int i = 0; i < 3; i++)
        cr_assert_eq(field(c, "STOCK.GET", sku[i], "available"), 10 - (i + 1));

    /* Sold out in a remote partition: the whole order is refused, nothing stays held. */
    expect_status(c, "int", "STOCK.ADJUST j1 %s 6", sku[2]);
    redisReply *r = node_proc_command(c, "ORDER.PLACE o3 bob 60000 %s 1 %s 1", sku[0], sku[2]);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "one left of %s: fits", sku[2]);
    freeReplyObject(r);
    r = node_proc_command(c, "ORDER.PLACE o4 bob 60000 %s 1 %s 5", sku[1], sku[2]);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert(strncmp(r->str, "SOLDOUT", 7) == 0, "%s", r->str);
    freeReplyObject(r);
    cr_assert_eq(field(c, "STOCK.GET", sku[1], "available"), 8);

    /* Transfers across partitions, and one without the funds. */
    expect_status(c, "OK", "ACCOUNT.TRANSFER t1 %s %s 600", acct[0], acct[1]);
    expect_status(c, "OK", "ACCOUNT.TRANSFER t1 %s %s 600", acct[0], acct[1]);
    expect_status(c, "NOFUNDS", "ACCOUNT.TRANSFER t2 %s %s 999999", acct[0], acct[1]);
    cr_assert_eq(field(c, "ACCOUNT.GET", acct[0], "balance_cents"), 10000 - 1400 - 600);
    cr_assert_eq(field(c, "ACCOUNT.GET", acct[1], "balance_cents"), 10000 + 1400 + 600);
    redisFree(c);

    /* Everything acknowledged survives kill -9. */
    char data[300];
    snprintf(data, sizeof data, "%s", node.data_dir);
    node_proc_kill(&node);
    cr_assert_eq(node_proc_start(&node, data, flags), 0);
    c = node_proc_client(&node);
    cr_assert_eq(field(c, "ACCOUNT.GET", acct[0], "balance_cents"), 10000 - 1400 - 600);
    cr_assert_eq(field(c, "STOCK.GET", sku[0], "sold"), 1);
    cr_assert_eq(field(c, "STOCK.GET", sku[2], "reserved"), 1); /* order o3 */
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}
