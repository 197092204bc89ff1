/*
 * The lock-cycle load generator of bench/peers/run: one program drives both peers, so their
 * figures come from the same client code, the same connections and the same pipeline.
 *
 *   peers_lock_cycles --target redis|shardmart --port P [--clients 50] [--pipeline 1]
 *                     [--cycles 100000] [--host 127.0.0.1]
 *
 * A cycle is one acquire and one release of a lock, each answered before the next is sent:
 *
 *   redis       SET <name> <token> NX PX 30000            -> +OK
 *               EVALSHA <compare-and-delete> 1 <name> <token> -> :1
 *   shardmart   LOCK.ACQUIRE <rid> <session> <name> 1 LEASE 30000 -> GRANTED
 *               LOCK.RELEASE <rid> <session> <name> 1             -> :0 (holds left)
 *
 * Each connection owns `pipeline` lock names of its own (uncontended, as redis-benchmark's random
 * keys were) and works in lock step, as redis-benchmark -P does: it sends one command per name,
 * waits for every reply, then sends the next half of each cycle. shardmart's session is opened
 * once per connection before the clock starts (SESSION.OPEN), never per cycle. Request ids are
 * unique per run (a tag from the clock and pid, the connection and a counter): redis-benchmark's
 * independent __rand_int__ draws repeated them, which the node rightly refuses (-IDEMPOTENCY).
 *
 * Every reply is checked (an acquire not granted or a release that freed nothing is counted and
 * fails the run): a fast wrong answer is not a cycle. The output is one line, cycles per second,
 * so the script can take medians; details go to stderr. hiredis (Debian libhiredis) does the
 * protocol; one poll() loop drives every connection, like redis-benchmark's event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/assert.h"

/* Bounds of the tool. */
#define LC_CLIENTS_MAX    1024  /* one poll() set; 50 is what the peers table uses */
#define LC_PIPELINE_MAX   64    /* names per connection in flight */
#define LC_NAME_BYTES     64    /* "lc-<tag>-<client>-<lane>" */
#define LC_STALL_MS       10000 /* no reply for this long: a peer is stuck, fail the run */
#define LC_LEASE_MS       "30000"
#define LC_SESSION_TTL_MS "600000"

static const char UNLOCK_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) "
    "else return 0 end";

enum lc_target { LC_REDIS, LC_SHARDMART };

struct lc_config {
    enum lc_target target;
    const char *host;
    int port;
    uint32_t clients;
    uint32_t pipeline;
    uint64_t cycles;
};

/* One connection: its names, the half of the cycle it is in, replies still owed. */
struct lc_client {
    redisContext *ctx;
    uint32_t id;
    bool releasing; /* the batch in flight is releases */
    uint32_t owed;
    uint32_t batch; /* commands in the batch in flight */
    uint64_t seq;
    char session[LC_NAME_BYTES];
};

struct lc_run {
    const struct lc_config *cfg;
    struct lc_client *clients;
    char tag[24];
    char sha[48];            /* the compare-and-delete script's SHA1 (redis) */
    uint64_t started_cycles; /* cycles whose acquire was sent */
    uint64_t done_cycles;
    uint64_t failures;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lock_name(const struct lc_run *r, const struct lc_client *c, uint32_t lane, char *s,
                      size_t cap)
{
    int n = snprintf(s, cap, "lc-%s-%u-%u", r->tag, c->id, lane);
    ASSERT(n > 0 && (size_t)n < cap);
}

/* Appends one half of the cycle of lane to c's output buffer. */
static void append_half(struct lc_run *r, struct lc_client *c, uint32_t lane)
{
    char name[LC_NAME_BYTES], rid[LC_NAME_BYTES + 24];
    lock_name(r, c, lane, name, sizeof name);
    int rc;
    if (r->cfg->target == LC_REDIS) {
        /* The token is the name itself: unique to this connection and lane. */
        rc = c->releasing ? redisAppendCommand(c->ctx, "EVALSHA %s 1 %s %s", r->sha, name, name)
                          : redisAppendCommand(c->ctx, "SET %s %s NX PX " LC_LEASE_MS, name, name);
    } else {
        (void)snprintf(rid, sizeof rid, "%s-%" PRIu64, name, c->seq++);
        rc = c->releasing
                 ? redisAppendCommand(c->ctx, "LOCK.RELEASE %s %s %s 1", rid, c->session, name)
                 : redisAppendCommand(c->ctx, "LOCK.ACQUIRE %s %s %s 1 LEASE " LC_LEASE_MS, rid,
                                      c->session, name);
    }
    ASSERT(rc == REDIS_OK);
    c->owed++;
}

/* Starts c's next batch: releases after acquires, or new acquires while cycles are left. */
static bool next_batch(struct lc_run *r, struct lc_client *c)
{
    ASSERT(c->owed == 0);
    if (!c->releasing && r->started_cycles >= r->cfg->cycles)
        return false;
    for (uint32_t lane = 0; lane < r->cfg->pipeline; lane++) {
        if (!c->releasing) {
            if (r->started_cycles >= r->cfg->cycles)
                break;
            r->started_cycles++;
        }
        append_half(r, c, lane);
    }
    c->batch = c->owed;
    return c->owed > 0;
}

/* Is the reply the success of the half it answers? */
static bool reply_ok(const struct lc_run *r, const struct lc_client *c, const redisReply *rep)
{
    if (r->cfg->target == LC_REDIS)
        return c->releasing ? rep->type == REDIS_REPLY_INTEGER && rep->integer == 1
                            : rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0;
    if (c->releasing)
        return rep->type == REDIS_REPLY_INTEGER && rep->integer == 0;
    /* RESP2: a flat array "status" "GRANTED" "token" ... */
    if (rep->type != REDIS_REPLY_ARRAY)
        return false;
    for (size_t i = 0; i + 1 < rep->elements; i += 2)
        if (rep->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(rep->element[i]->str, "status") == 0)
            return rep->element[i + 1]->type == REDIS_REPLY_STRING &&
                   strcmp(rep->element[i + 1]->str, "GRANTED") == 0;
    return false;
}

/* Reads what c's socket has and takes the complete replies. -1 on a lost connection. */
static int take_replies(struct lc_run *r, struct lc_client *c)
{
    if (redisBufferRead(c->ctx) != REDIS_OK)
        return -1;
    while (c->owed > 0) {
        void *p = NULL;
        if (redisGetReplyFromReader(c->ctx, &p) != REDIS_OK)
            return -1;
        if (!p)
            break;
        redisReply *rep = p;
        if (!reply_ok(r, c, rep)) {
            if (r->failures++ < 5)
                fprintf(stderr, "lock_cycles: unexpected reply to a%s: type %d %s\n",
                        c->releasing ? " release" : "n acquire", rep->type,
                        rep->str ? rep->str : "");
        }
        freeReplyObject(rep);
        c->owed--;
        if (c->owed == 0 && c->releasing)
            r->done_cycles += c->batch;
    }
    if (c->owed == 0) {
        c->releasing = !c->releasing;
        next_batch(r, c);
    }
    return 0;
}

/* Sends one command on a fresh blocking connection and checks it answered without an error. */
static int setup_call(redisContext *ctx, redisReply **out, const char *fmt, const char *a,
                      const char *b)
{
    redisReply *rep = redisCommand(ctx, fmt, a, b);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fprintf(stderr, "lock_cycles: set-up failed: %s\n",
                rep ? rep->str : (ctx->errstr[0] ? ctx->errstr : "no reply"));
        if (rep)
            freeReplyObject(rep);
        return -1;
    }
    if (out)
        *out = rep;
    else
        freeReplyObject(rep);
    return 0;
}

static int connect_all(struct lc_run *r)
{
    const struct lc_config *cfg = r->cfg;
    for (uint32_t i = 0; i < cfg->clients; i++) {
        struct lc_client *c = &r->clients[i];
        c->id = i;
        c->ctx = redisConnect(cfg->host, cfg->port);
        if (!c->ctx || c->ctx->err) {
            fprintf(stderr, "lock_cycles: cannot connect to %s:%d: %s\n", cfg->host, cfg->port,
                    c->ctx ? c->ctx->errstr : "out of memory");
            return -1;
        }
        if (cfg->target == LC_SHARDMART) {
            char rid[LC_NAME_BYTES];
            (void)snprintf(c->session, sizeof c->session, "lc-%s-s%u", r->tag, i);
            (void)snprintf(rid, sizeof rid, "lc-%s-open%u", r->tag, i);
            if (setup_call(c->ctx, NULL, "SESSION.OPEN %s %s " LC_SESSION_TTL_MS, rid,
                           c->session) != 0)
                return -1;
        } else if (i == 0) {
            redisReply *rep = NULL;
            if (setup_call(c->ctx, &rep, "SCRIPT LOAD %s%s", UNLOCK_LUA, "") != 0)
                return -1;
            (void)snprintf(r->sha, sizeof r->sha, "%s", rep->str ? rep->str : "");
            freeReplyObject(rep);
        }
        /* From now on driven by poll(): a read or write that would block returns at once. */
        int fl = fcntl(c->ctx->fd, F_GETFL);
        if (fl < 0 || fcntl(c->ctx->fd, F_SETFL, fl | O_NONBLOCK) != 0)
            return -1;
        c->ctx->flags &= ~REDIS_BLOCK;
    }
    return 0;
}

/* The load: every connection starts a batch, then poll() until all cycles are done. */
static int drive(struct lc_run *r, struct pollfd *pfds)
{
    const struct lc_config *cfg = r->cfg;
    for (uint32_t i = 0; i < cfg->clients; i++)
        next_batch(r, &r->clients[i]);
    uint64_t last_reply = now_ns();
    while (r->done_cycles < r->started_cycles || r->started_cycles < cfg->cycles) {
        for (uint32_t i = 0; i < cfg->clients; i++) {
            struct lc_client *c = &r->clients[i];
            int done = 0;
            if (c->ctx->obuf && sdslen(c->ctx->obuf) > 0 &&
                redisBufferWrite(c->ctx, &done) != REDIS_OK)
                return -1;
            pfds[i].fd = c->ctx->fd;
            pfds[i].events =
                (short)((c->owed > 0 ? POLLIN : 0) | (sdslen(c->ctx->obuf) > 0 ? POLLOUT : 0));
            pfds[i].revents = 0;
        }
        int n = poll(pfds, cfg->clients, 1000);
        if (n < 0 && errno != EINTR)
            return -1;
        uint64_t t = now_ns();
        if (n <= 0) {
            if (t - last_reply > (uint64_t)LC_STALL_MS * 1000000u) {
                fprintf(stderr, "lock_cycles: no reply for %d ms\n", LC_STALL_MS);
                return -1;
            }
            continue;
        }
        last_reply = t;
        for (uint32_t i = 0; i < cfg->clients; i++)
            if ((pfds[i].revents & (POLLIN | POLLERR | POLLHUP)) &&
                take_replies(r, &r->clients[i]) != 0) {
                fprintf(stderr, "lock_cycles: connection %u lost\n", i);
                return -1;
            }
        if (r->failures > 0)
            return -1; /* a wrong answer ends the run: its rate would mean nothing */
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct lc_config *cfg)
{
    *cfg = (struct lc_config){.target = LC_REDIS,
                              .host = "127.0.0.1",
                              .port = 0,
                              .clients = 50,
                              .pipeline = 1,
                              .cycles = 100000};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *k = argv[i], *v = argv[i + 1];
        unsigned long long x = strtoull(v, NULL, 10);
        if (strcmp(k, "--target") == 0 && strcmp(v, "redis") == 0)
            cfg->target = LC_REDIS;
        else if (strcmp(k, "--target") == 0 && strcmp(v, "shardmart") == 0)
            cfg->target = LC_SHARDMART;
        else if (strcmp(k, "--host") == 0)
            cfg->host = v;
        else if (strcmp(k, "--port") == 0 && x > 0 && x < 65536)
            cfg->port = (int)x;
        else if (strcmp(k, "--clients") == 0 && x > 0 && x <= LC_CLIENTS_MAX)
            cfg->clients = (uint32_t)x;
        else if (strcmp(k, "--pipeline") == 0 && x > 0 && x <= LC_PIPELINE_MAX)
            cfg->pipeline = (uint32_t)x;
        else if (strcmp(k, "--cycles") == 0 && x > 0)
            cfg->cycles = x;
        else {
            fprintf(stderr, "lock_cycles: bad or out-of-range option %s %s\n", k, v);
            return -1;
        }
    }
    if (argc % 2 != 1 || cfg->port == 0) {
        fprintf(stderr,
                "usage: %s --target redis|shardmart --port P [--clients 1..%d] "
                "[--pipeline 1..%d] [--cycles N] [--host H]\n",
                argv[0], LC_CLIENTS_MAX, LC_PIPELINE_MAX);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct lc_config cfg;
    if (parse_args(argc, argv, &cfg) != 0)
        return 2;
    struct lc_run r = {.cfg = &cfg};
    (void)snprintf(r.tag, sizeof r.tag, "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
    r.clients = calloc(cfg.clients, sizeof *r.clients);
    struct pollfd *pfds = calloc(cfg.clients, sizeof *pfds);
    int rc = (r.clients && pfds) ? connect_all(&r) : -1;
    uint64_t t0 = now_ns();
    if (rc == 0)
        rc = drive(&r, pfds);
    double secs = (double)(now_ns() - t0) / 1e9;
    for (uint32_t i = 0; r.clients && i < cfg.clients; i++)
        if (r.clients[i].ctx)
            redisFree(r.clients[i].ctx);
    free(r.clients);
    free(pfds);
    if (rc != 0 || r.failures > 0) {
        fprintf(stderr, "lock_cycles: failed (%" PRIu64 " unexpected replies)\n", r.failures);
        return 1;
    }
    fprintf(stderr, "lock_cycles: %s, %u clients, pipeline %u: %" PRIu64 " cycles in %.2f s\n",
            cfg.target == LC_REDIS ? "redis" : "shardmart", cfg.clients, cfg.pipeline,
            r.done_cycles, secs);
    printf("%.0f\n", (double)r.done_cycles / secs);
    return 0;
}
