/*
 * Locks over RESP against a real node: sessions, try and blocking acquires woken in FIFO order,
 * fencing tokens that only grow (across a restart too), timeouts, a waiter that disconnects,
 * and a session that stops heartbeating.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../support/node_proc.h"
#include "../support/redis_helpers.h"

static struct node_proc node;

static redisContext *client(void)
{
    return node_proc_client(&node);
}

/* A map field of a reply (RESP2 flat array); -1 when absent. */
static long long field_of(const redisReply *r, const char *name)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, name) == 0)
            return r->element[i + 1]->type == REDIS_REPLY_INTEGER ? r->element[i + 1]->integer : -2;
    return -1;
}

static const char *status_of(const redisReply *r)
{
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (strcmp(r->element[i]->str, "status") == 0)
            return r->element[i + 1]->str;
    return r->type == REDIS_REPLY_ERROR ? r->str : "?";
}

/* Acquires and returns the token; fails the test unless granted at once. */
static long long grab(redisContext *c, const char *rid, const char *session, const char *name,
                      const char *owner)
{
    redisReply *r = node_proc_command(c, "LOCK.ACQUIRE %s %s %s %s", rid, session, name, owner);
    cr_assert_str_eq(status_of(r), "GRANTED");
    long long token = field_of(r, "token");
    freeReplyObject(r);
    return token;
}

static long long info(redisContext *c, const char *name, const char *what)
{
    redisReply *r = node_proc_command(c, "LOCK.INFO %s", name);
    long long v = field_of(r, what);
    freeReplyObject(r);
    return v;
}

static void open_session(redisContext *c, const char *rid, const char *s, const char *ttl)
{
    redisReply *r = node_proc_command(c, "SESSION.OPEN %s %s %s", rid, s, ttl);
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "SESSION.OPEN: %s", r->str ? r->str : "");
    freeReplyObject(r);
}

/* Waits until LOCK.INFO shows n waiters (the blocked clients have been queued). */
static void await_waiters(redisContext *c, const char *name, long long n)
{
    for (int i = 0; i < 500 && info(c, name, "waiters") != n; i++)
        usleep(10 * 1000);
    cr_assert_eq(info(c, name, "waiters"), n);
}

Test(locks, blocking_waiters_are_woken_in_order_with_growing_tokens)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    redisContext *a = client(), *b = client(), *w1 = client(), *w2 = client();
    open_session(a, "r1", "sa", "60000");
    open_session(a, "r2", "sb", "60000");
    long long t0 = grab(a, "r3", "sa", "door", "1");
    redisReply *r = node_proc_command(b, "LOCK.ACQUIRE r4 sb door 2");
    cr_assert_str_eq(status_of(r), "NOT_GRANTED", "a try does not wait");
    freeReplyObject(r);
    /* Two blocked acquires, queued in this order. */
    redisAppendCommand(w1, "LOCK.ACQUIRE r5 sb door 10 WAIT 20000");
    redisBufferWrite(w1, &(int){0});
    await_waiters(a, "door", 1);
    redisAppendCommand(w2, "LOCK.ACQUIRE r6 sb door 11 WAIT 20000");
    redisBufferWrite(w2, &(int){0});
    await_waiters(a, "door", 2);

    r = node_proc_command(a, "LOCK.RELEASE r7 sa door 1");
    freeReplyObject(r);
    redisReply *g1;
    cr_assert_eq(redisGetReply(w1, (void **)&g1), REDIS_OK);
    cr_assert_str_eq(status_of(g1), "GRANTED", "the first waiter gets it first");
    long long t1 = field_of(g1, "token");
    cr_assert_gt(t1, t0, "fencing tokens strictly increase");
    freeReplyObject(g1);
    cr_assert_eq(info(a, "door", "waiters"), 1, "the second still waits");

    r = node_proc_command(a, "LOCK.CHECK door %lld", t0);
    cr_assert_eq(r->integer, 0, "the old token is stale");
    freeReplyObject(r);
    r = node_proc_command(a, "LOCK.CHECK door %lld", t1);
    cr_assert_eq(r->integer, 1, "the new token is current");
    freeReplyObject(r);

    r = node_proc_command(a, "LOCK.RELEASE r8 sb door 10");
    freeReplyObject(r);
    redisReply *g2;
    cr_assert_eq(redisGetReply(w2, (void **)&g2), REDIS_OK);
    cr_assert_str_eq(status_of(g2), "GRANTED");
    cr_assert_gt(field_of(g2, "token"), t1);
    freeReplyObject(g2);
    redisFree(a);
    redisFree(b);
    redisFree(w1);
    redisFree(w2);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(locks, waits_time_out_and_a_vanished_waiter_is_cancelled)
{
    const char *flags[] = {"--tick-ms", "20", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    redisContext *a = client(), *w = client();
    open_session(a, "r1", "sa", "60000");
    open_session(a, "r2", "sb", "60000");
    grab(a, "r3", "sa", "gate", "1");
    redisReply *r = node_proc_command(w, "LOCK.ACQUIRE r4 sb gate 2 WAIT 200");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR);
    cr_assert(strncmp(r->str, "TIMEOUT", 7) == 0, "got %s", r->str);
    freeReplyObject(r);
    cr_assert_eq(info(a, "gate", "waiters"), 0);

    redisAppendCommand(w, "LOCK.ACQUIRE r5 sb gate 2 WAIT 60000");
    redisBufferWrite(w, &(int){0});
    await_waiters(a, "gate", 1);
    redisFree(w); /* gone while parked: its wait must not be granted to nobody */
    await_waiters(a, "gate", 0);
    redisFree(a);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(locks, a_silent_session_loses_its_lock_to_the_next_waiter)
{
    const char *flags[] = {"--tick-ms", "20", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    redisContext *a = client(), *w = client();
    open_session(a, "r1", "short", "300");
    open_session(a, "r2", "long", "60000");
    long long t0 = grab(a, "r3", "short", "res", "1");
    redisReply *r = node_proc_command(w, "LOCK.ACQUIRE r4 long res 2 WAIT 10000");
    cr_assert_str_eq(status_of(r), "GRANTED", "granted once the silent session expired");
    cr_assert_gt(field_of(r, "token"), t0);
    freeReplyObject(r);
    r = node_proc_command(a, "SESSION.HEARTBEAT r5 short");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "an expired session is gone");
    freeReplyObject(r);
    redisFree(a);
    redisFree(w);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(locks, tokens_keep_growing_across_a_restart)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    char data[300], keep[256];
    snprintf(data, sizeof data, "%s", node.data_dir);
    snprintf(keep, sizeof keep, "%s", node.dir);
    redisContext *a = client();
    open_session(a, "r1", "s", "60000");
    long long t0 = grab(a, "r2", "s", "x", "1");
    redisFree(a);
    node_proc_kill(&node);
    cr_assert_eq(node_proc_start(&node, data, NULL), 0);
    a = client();
    cr_assert_eq(info(a, "x", "holders"), 1, "the grant survived kill -9");
    redisReply *r = node_proc_command(a, "LOCK.RELEASE r3 s x 1");
    freeReplyObject(r);
    long long t1 = grab(a, "r4", "s", "x", "1");
    cr_assert_gt(t1, t0);
    redisFree(a);
    cr_assert_eq(node_proc_stop(&node, false), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(locks, semaphores_readers_and_bad_arguments)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    redisContext *a = client();
    open_session(a, "r1", "s", "60000");
    redisReply *r = node_proc_command(a, "SEM.ACQUIRE r2 s pool 2");
    cr_assert_str_eq(status_of(r), "GRANTED");
    long long p1 = field_of(r, "permit_id");
    freeReplyObject(r);
    r = node_proc_command(a, "SEM.ACQUIRE r3 s pool 2");
    cr_assert_str_eq(status_of(r), "GRANTED");
    cr_assert_neq(field_of(r, "permit_id"), p1, "each permit has its own id");
    freeReplyObject(r);
    r = node_proc_command(a, "SEM.ACQUIRE r4 s pool 2");
    cr_assert_str_eq(status_of(r), "NOT_GRANTED", "two permits only");
    freeReplyObject(r);
    r = node_proc_command(a, "SEM.RELEASE r5 s pool %lld", p1);
    cr_assert_neq(r->type, REDIS_REPLY_ERROR);
    freeReplyObject(r);
    r = node_proc_command(a, "RWLOCK.ACQUIRE r6 s book 1 READ");
    cr_assert_str_eq(status_of(r), "GRANTED");
    freeReplyObject(r);
    r = node_proc_command(a, "RWLOCK.ACQUIRE r7 s book 2 READ");
    cr_assert_str_eq(status_of(r), "GRANTED", "readers share");
    freeReplyObject(r);
    r = node_proc_command(a, "RWLOCK.ACQUIRE r8 s book 3 WRITE");
    cr_assert_str_eq(status_of(r), "NOT_GRANTED");
    freeReplyObject(r);
    r = node_proc_command(a, "RWLOCK.ACQUIRE r9 s book 3 MAYBE");
    cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BADARG say READ", 15) == 0);
    freeReplyObject(r);
    r = node_proc_command(a, "LOCK.ACQUIRE r10 s door someone");
    cr_assert(r->type == REDIS_REPLY_ERROR && strncmp(r->str, "BADARG owner", 12) == 0);
    freeReplyObject(r);
    r = node_proc_command(a, "LOCK.ACQUIRE r11 nosuch door 1");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "no such session");
    freeReplyObject(r);
    r = node_proc_command(a, "LOCK.RELEASE r12 s door 1");
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "releasing what is not held");
    freeReplyObject(r);
    redisFree(a);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}
