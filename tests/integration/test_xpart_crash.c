/*
 * kill -9 under a load of cross-partition orders, payments, cancellations and transfers: a node
 * with --partitions 8 (snapshots every 300 records, so kills land mid-snapshot too) is killed at
 * a random moment, restarted on its data, the one command in flight at the kill is retried with
 * its request id (exactly once: it either happened or happens now, never twice), and loaded
 * again, round after round. At the end every SKU's reserved and sold counts equal the units of
 * the orders acknowledged RESERVED and PAID, every account holds exactly what the acknowledged
 * payments and transfers left it, and money is conserved: all or nothing across partitions,
 * through every crash.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/node_proc.h"
#include "../support/redis_helpers.h"
#include "shardmart/ring.h"

#define PARTITIONS 8
#define SKUS       6
#define ACCOUNTS   4
#define STOCK      400
#define PRICE      100
#define DEPOSIT    1000000
#define ROUNDS     8
#define OPS_MAX    4000
#define ORDERS_MAX OPS_MAX

enum { ORDER_NONE, ORDER_RESERVED, ORDER_PAID, ORDER_CANCELLED };

struct order {
    char id[32];
    int units[SKUS];
    int state;
};

struct model {
    char sku[SKUS][16];
    char acct[ACCOUNTS][16];
    long long balance[ACCOUNTS];
    struct order orders[ORDERS_MAX];
    int orders_n;
    uint64_t rng;
};

static struct node_proc node;

static uint32_t rnd(struct model *m, uint32_t n)
{
    m->rng ^= m->rng << 13;
    m->rng ^= m->rng >> 7;
    m->rng ^= m->rng << 17;
    return (uint32_t)(m->rng % n);
}

/* Names spread over as many partitions as there are (round robin over the 8). */
static void pick(const char *prefix, char (*names)[16], int count)
{
    int found = 0;
    for (int i = 0; found < count && i < 10000; i++) {
        char name[16];
        snprintf(name, sizeof name, "%s%d", prefix, i);
        uint32_t p;
        cr_assert_eq(ring_key_partition(name, strlen(name), PARTITIONS, &p), 0);
        if (p == (uint32_t)found % PARTITIONS)
            strcpy(names[found++], name);
    }
    cr_assert_eq(found, count);
}

/* One command with its arguments in argv; NULL when the node died under it. */
static redisReply *send_argv(redisContext *c, int argc, const char **argv)
{
    return redisCommandArgv(c, argc, argv, NULL);
}

/* A command, its reply applied to the model. Returns false when the node died first (the
 * command is then unknown and the caller keeps it to retry after the restart). */
struct command {
    int argc;
    char words[12][32];
    int kind; /* 0 place, 1 pay, 2 cancel, 3 transfer */
    int order, from, to;
    long long amount;
    int units[SKUS];
};

static bool run(struct model *m, redisContext *c, struct command *k)
{
    const char *argv[12];
    for (int i = 0; i < k->argc; i++)
        argv[i] = k->words[i];
    redisReply *r = send_argv(c, k->argc, argv);
    if (!r)
        return false;
    bool ok = r->type != REDIS_REPLY_ERROR;
    if (k->kind == 0 && ok) {
        cr_assert_eq(r->type, REDIS_REPLY_STRING);
        cr_assert_lt(m->orders_n, ORDERS_MAX);
        struct order *o = &m->orders[m->orders_n++];
        snprintf(o->id, sizeof o->id, "%s", r->str);
        memcpy(o->units, k->units, sizeof o->units);
        o->state = ORDER_RESERVED;
        for (int i = 0; i < m->orders_n - 1; i++)
            cr_assert_str_neq(m->orders[i].id, o->id, "an order placed twice");
    } else if (k->kind == 0) {
        cr_assert(strncmp(r->str, "SOLDOUT", 7) == 0, "place: %s", r->str);
    } else if (k->kind == 1 && ok) {
        m->orders[k->order].state = ORDER_PAID;
        m->balance[k->from] -= k->amount;
        m->balance[k->to] += k->amount;
    } else if (k->kind == 2 && ok) {
        m->orders[k->order].state = ORDER_CANCELLED;
    } else if (k->kind == 3 && ok) {
        m->balance[k->from] -= k->amount;
        m->balance[k->to] += k->amount;
    } else {
        cr_assert(k->kind == 3 && strncmp(r->str, "NOFUNDS", 7) == 0, "kind %d: %s", k->kind,
                  r->str);
    }
    freeReplyObject(r);
    return true;
}

static void word(struct command *k, const char *s)
{
    snprintf(k->words[k->argc++], 32, "%s", s);
}

static void word_int(struct command *k, long long v)
{
    snprintf(k->words[k->argc++], 32, "%lld", v);
}

/* The next command of the load (round r, step i). */
static bool next_command(struct model *m, int r, int i, struct command *k)
{
    memset(k, 0, sizeof *k);
    uint32_t dice = rnd(m, 100);
    int open[64], n = 0;
    for (int o = m->orders_n - 1; o >= 0 && n < 64; o--)
        if (m->orders[o].state == ORDER_RESERVED)
            open[n++] = o;
    char rid[32];
    snprintf(rid, sizeof rid, "r%d-%d", r, i);
    if (dice < 50 || (dice < 80 && n == 0)) {
        k->kind = 0;
        word(k, "ORDER.PLACE");
        word(k, rid);
        word(k, "u");
        word(k, "600000");
        int items = 2 + (int)rnd(m, 3), first = (int)rnd(m, SKUS);
        for (int s = 0; s < items; s++) {
            int sku = (first + s) % SKUS;
            k->units[sku] = 1 + (int)rnd(m, 2);
            word(k, m->sku[sku]);
            word_int(k, k->units[sku]);
        }
        return true;
    }
    if (dice < 80) {
        int o = open[rnd(m, (uint32_t)n)];
        k->order = o;
        if (dice < 65) {
            k->kind = 1;
            k->from = (int)rnd(m, ACCOUNTS);
            k->to = (k->from + 1 + (int)rnd(m, ACCOUNTS - 1)) % ACCOUNTS;
            for (int s = 0; s < SKUS; s++)
                k->amount += (long long)m->orders[o].units[s] * PRICE;
            word(k, "ORDER.PAY");
            word(k, rid);
            word(k, m->orders[o].id);
            word(k, m->acct[k->from]);
            word(k, m->acct[k->to]);
        } else {
            k->kind = 2;
            word(k, "ORDER.CANCEL");
            word(k, rid);
            word(k, m->orders[o].id);
        }
        return true;
    }
    k->kind = 3;
    k->from = (int)rnd(m, ACCOUNTS);
    k->to = (k->from + 1 + (int)rnd(m, ACCOUNTS - 1)) % ACCOUNTS;
    k->amount = 1 + rnd(m, 5000);
    word(k, "ACCOUNT.TRANSFER");
    word(k, rid);
    word(k, m->acct[k->from]);
    word(k, m->acct[k->to]);
    word_int(k, k->amount);
    return true;
}

static long long field(redisContext *c, const char *cmd, const char *key, const char *name)
{
    redisReply *r = node_proc_command(c, "%s %s", cmd, key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    long long x = -1;
    for (size_t i = 0; i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            x = r->element[i + 1]->integer;
    freeReplyObject(r);
    return x;
}

/* Whether the node's state is the model's: stock per SKU, balances, conservation. */
static bool state_matches(struct model *m, redisContext *c, char *why, size_t cap)
{
    long long total = 0;
    for (int a = 0; a < ACCOUNTS; a++) {
        long long b = field(c, "ACCOUNT.GET", m->acct[a], "balance_cents");
        total += b;
        if (b != m->balance[a]) {
            snprintf(why, cap, "%s holds %lld, expected %lld", m->acct[a], b, m->balance[a]);
            return false;
        }
    }
    cr_assert_eq(total, (long long)ACCOUNTS * DEPOSIT, "money conserved");
    for (int s = 0; s < SKUS; s++) {
        long long reserved = 0, sold = 0;
        for (int o = 0; o < m->orders_n; o++) {
            reserved += m->orders[o].state == ORDER_RESERVED ? m->orders[o].units[s] : 0;
            sold += m->orders[o].state == ORDER_PAID ? m->orders[o].units[s] : 0;
        }
        long long r = field(c, "STOCK.GET", m->sku[s], "reserved");
        long long d = field(c, "STOCK.GET", m->sku[s], "sold");
        long long a = field(c, "STOCK.GET", m->sku[s], "available");
        cr_assert_eq(a + r + d, STOCK, "%s: stock identity", m->sku[s]);
        if (r != reserved || d != sold) {
            snprintf(why, cap, "%s reserved %lld sold %lld, expected %lld and %lld", m->sku[s], r,
                     d, reserved, sold);
            return false;
        }
    }
    return true;
}

Test(xpart_crash, kill_9_under_cross_partition_load_recovers_all_or_nothing)
{
    const char *flags[] = {"--partitions", "8", "--snapshot-every", "300", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    char data[300];
    snprintf(data, sizeof data, "%s", node.data_dir);
    static struct model m;
    memset(&m, 0, sizeof m);
    m.rng = 20261128;
    pick("sku", m.sku, SKUS);
    pick("acct", m.acct, ACCOUNTS);
    redisContext *c = node_proc_client(&node);
    for (int s = 0; s < SKUS; s++)
        freeReplyObject(
            node_proc_command(c, "STOCK.CREATE s%d %s %d PRICE %d", s, m.sku[s], STOCK, PRICE));
    for (int a = 0; a < ACCOUNTS; a++) {
        freeReplyObject(node_proc_command(c, "ACCOUNT.OPEN o%d %s", a, m.acct[a]));
        freeReplyObject(node_proc_command(c, "ACCOUNT.DEPOSIT d%d %s %d", a, m.acct[a], DEPOSIT));
        m.balance[a] = DEPOSIT;
    }
    srand(4);
    int killed_in_flight = 0;
    for (int r = 0; r < ROUNDS; r++) {
        useconds_t delay = (useconds_t)(30000 + rand() % 200000);
        pid_t killer = fork();
        if (killer == 0) {
            usleep(delay);
            kill(node.pid, SIGKILL);
            _exit(0);
        }
        struct command k;
        bool alive = true;
        for (int i = 0; alive && i < OPS_MAX / ROUNDS; i++) {
            next_command(&m, r, i, &k);
            alive = run(&m, c, &k);
        }
        waitpid(killer, NULL, 0);
        redisFree(c);
        node_proc_kill(&node);
        cr_assert_eq(node_proc_start(&node, data, flags), 0, "restart %d", r);
        c = node_proc_client(&node);
        if (!alive) {
            /* The command in flight at the kill, retried with its request id: exactly once. */
            killed_in_flight++;
            cr_assert(run(&m, c, &k), "the retry is answered");
        }
    }
    cr_assert_gt(killed_in_flight, ROUNDS / 2, "most kills land under load");
    cr_assert_gt(m.orders_n, 20);
    /* Aborted transactions may still be releasing for a batch or two: poll, then insist. */
    char why[256] = "";
    bool ok = false;
    for (int tries = 0; tries < 200 && !ok; tries++) {
        ok = state_matches(&m, c, why, sizeof why);
        if (!ok)
            usleep(10000);
    }
    cr_assert(ok, "%s", why);
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}
