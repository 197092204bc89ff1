/*
 * Trading over RESP against a real node: stock, orders, payments, accounts, expiry by ticks,
 * bad arguments, and durability: what was acknowledged is there after a clean restart and after
 * kill -9.
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

static void expect_ok(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert(r->type == REDIS_REPLY_STATUS && strcmp(r->str, "OK") == 0, "%s: got %d '%s'", fmt,
              r->type, r->str ? r->str : "");
    freeReplyObject(r);
}

static void expect_err(redisContext *c, const char *prefix, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "%s: expected an error, got type %d", fmt, r->type);
    cr_assert(strncmp(r->str, prefix, strlen(prefix)) == 0, "%s: got '%s'", fmt, r->str);
    freeReplyObject(r);
}

/* A field of a map reply (RESP2: a flat array of name, value). */
static long long field(redisContext *c, const char *cmd, const char *key, const char *name)
{
    redisReply *r = node_proc_command(c, "%s %s", cmd, key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY, "%s %s: type %d %s", cmd, key, r->type,
                 r->type == REDIS_REPLY_ERROR ? r->str : "");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, name) == 0) {
            redisReply *v = r->element[i + 1];
            long long x = v->type == REDIS_REPLY_INTEGER ? v->integer : -999999;
            freeReplyObject(r);
            return x;
        }
    }
    cr_assert_fail("%s %s has no field %s", cmd, key, name);
    return 0;
}

static char *field_str(redisContext *c, const char *cmd, const char *key, const char *name)
{
    static char buf[64];
    redisReply *r = node_proc_command(c, "%s %s", cmd, key);
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        if (strcmp(r->element[i]->str, name) == 0) {
            snprintf(buf, sizeof buf, "%s", r->element[i + 1]->str);
            freeReplyObject(r);
            return buf;
        }
    }
    cr_assert_fail("no field %s", name);
    return NULL;
}

static void place(redisContext *c, const char *rid, const char *user, const char *ttl,
                  const char *sku, const char *qty, char *id_out)
{
    redisReply *r = node_proc_command(c, "ORDER.PLACE %s %s %s %s %s", rid, user, ttl, sku, qty);
    cr_assert_eq(r->type, REDIS_REPLY_STRING, "ORDER.PLACE %s: %s", rid,
                 r->type == REDIS_REPLY_ERROR ? r->str : "?");
    snprintf(id_out, 64, "%s", r->str);
    freeReplyObject(r);
}

Test(trading, stock_orders_and_their_errors)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 tv 3 LIMIT 2 PRICE 1000");
    expect_err(c, "EXISTS", "STOCK.CREATE r1b tv 3");
    cr_assert_eq(field(c, "STOCK.GET", "tv", "available"), 3);
    char a[64], b[64], again[64];
    place(c, "o1", "alice", "60000", "tv", "1", a);
    place(c, "o1", "alice", "60000", "tv", "1", again);
    cr_assert_str_eq(a, again, "a retried ORDER.PLACE names the same order");
    cr_assert_eq(field(c, "STOCK.GET", "tv", "reserved"), 1, "the retry reserved nothing more");
    expect_err(c, "IDEMPOTENCY", "ORDER.PLACE o1 alice 60000 tv 2");
    expect_err(c, "LIMIT", "ORDER.PLACE o2 alice 60000 tv 2");
    place(c, "o3", "bob", "60000", "tv", "2", b);
    expect_err(c, "SOLDOUT tv", "ORDER.PLACE o4 carol 60000 tv 1");
    cr_assert_str_eq(field_str(c, "ORDER.GET", a, "state"), "RESERVED");
    expect_ok(c, "ORDER.CANCEL c1 %s", a);
    expect_err(c, "STATE", "ORDER.PAYEXT p1 %s ref-1", a);
    cr_assert_eq(field(c, "STOCK.GET", "tv", "available"), 1, "cancel released the stock");
    expect_ok(c, "ORDER.PAYEXT p2 %s ref-2", b);
    expect_ok(c, "ORDER.SHIP s1 %s", b);
    expect_ok(c, "ORDER.COMPLETE d1 %s", b);
    cr_assert_eq(field(c, "STOCK.GET", "tv", "sold"), 2);
    cr_assert_eq(field(c, "STOCK.GET", "tv", "stocked"), 3);
    expect_err(c, "NOTFOUND", "ORDER.GET nope");
    expect_err(c, "NOTFOUND", "STOCK.GET nope");
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(trading, bad_arguments_are_clear_errors)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    redisContext *c = client();
    expect_err(c, "BADARG quantity", "STOCK.CREATE r1 tv many");
    expect_err(c, "BADARG quantity", "STOCK.CREATE r1 tv -1");
    expect_err(c, "BADARG quantity", "STOCK.CREATE r1 tv 99999999999999999999999");
    expect_err(c, "BADARG options", "STOCK.CREATE r1 tv 1 COLOR red");
    char big[200];
    memset(big, 'k', 129);
    big[129] = '\0';
    expect_err(c, "TOOLARGE sku", "STOCK.CREATE r1 %s 1", big);
    expect_err(c, "TOOLARGE request id", "STOCK.CREATE %s tv 1", big);
    expect_err(c, "BADARG sku", "STOCK.CREATE r1 %b 1", "", (size_t)0);
    expect_err(c, "BADARG ttl_ms", "ORDER.PLACE o1 u 0 tv 1");
    expect_err(c, "BADARG items", "ORDER.PLACE o1 u 1000 tv 1 tv2");
    /* 65 items: one past the bound. */
    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd, "ORDER.PLACE o1 u 1000");
    for (int i = 0; i < 65; i++)
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " s%d 1", i);
    expect_err(c, "TOOLARGE", cmd);
    expect_err(c, "ERR wrong number of arguments", "ORDER.PAY r1 x");
    expect_err(c, "BADARG say RESTOCK", "ORDER.REFUND r1 0000-0000000000000000 MAYBE");
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(trading, payment_moves_money_when_everything_shares_a_partition)
{
    const char *flags[] = {"--partitions", "1", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 book 10 PRICE 2500");
    expect_ok(c, "ACCOUNT.OPEN r2 buyer");
    expect_ok(c, "ACCOUNT.OPEN r3 shop");
    redisReply *r = node_proc_command(c, "ACCOUNT.DEPOSIT r4 buyer 4000");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    freeReplyObject(r);
    char a[64], b[64];
    place(c, "o1", "u1", "60000", "book", "1", a);
    place(c, "o2", "u1", "60000", "book", "1", b);
    expect_ok(c, "ORDER.PAY p1 %s buyer shop", a);
    expect_err(c, "NOFUNDS", "ORDER.PAY p2 %s buyer shop", b);
    cr_assert_eq(field(c, "ACCOUNT.GET", "buyer", "balance_cents"), 1500);
    cr_assert_eq(field(c, "ACCOUNT.GET", "shop", "balance_cents"), 2500);
    expect_ok(c, "ORDER.REFUND f1 %s RESTOCK", a);
    cr_assert_eq(field(c, "ACCOUNT.GET", "buyer", "balance_cents"), 4000);
    cr_assert_eq(field(c, "STOCK.GET", "book", "available"), 9, "one still reserved by o2");
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

Test(trading, unpaid_orders_expire_by_tick)
{
    const char *flags[] = {"--tick-ms", "20", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 hat 5");
    char a[64];
    place(c, "o1", "u", "200", "hat", "2", a);
    cr_assert_eq(field(c, "STOCK.GET", "hat", "available"), 3);
    bool expired = false;
    for (int i = 0; i < 250 && !expired; i++) {
        expired = strcmp(field_str(c, "ORDER.GET", a, "state"), "EXPIRED") == 0;
        if (!expired)
            usleep(20 * 1000);
    }
    cr_assert(expired, "order not expired within 5 s");
    cr_assert_eq(field(c, "STOCK.GET", "hat", "available"), 5, "expiry released the stock");
    expect_err(c, "STATE", "ORDER.PAYEXT p1 %s ref", a);
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

/* Places n single-unit orders of sku, each acknowledged, pipelined 50 at a time. */
static void sell(redisContext *c, const char *sku, int n, int first)
{
    for (int i = 0; i < n; i++)
        redisAppendCommand(c, "ORDER.PLACE rid-%d user-%d 600000 %s 1", first + i, first + i, sku);
    for (int i = 0; i < n; i++) {
        redisReply *r;
        cr_assert_eq(redisGetReply(c, (void **)&r), REDIS_OK);
        cr_assert_eq(r->type, REDIS_REPLY_STRING, "order %d: %s", i,
                     r->type == REDIS_REPLY_ERROR ? r->str : "?");
        freeReplyObject(r);
    }
}

Test(trading, acknowledged_writes_survive_restart_and_kill_9)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    char data[300];
    snprintf(data, sizeof data, "%s", node.data_dir);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 phone 1000");
    sell(c, "phone", 300, 0);
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, true), 0);
    char keep[256];
    snprintf(keep, sizeof keep, "%s", node.dir);

    cr_assert_eq(node_proc_start(&node, data, NULL), 0, "restart after a clean stop");
    c = client();
    cr_assert_eq(field(c, "STOCK.GET", "phone", "reserved"), 300);
    sell(c, "phone", 200, 300);
    redisFree(c);
    node_proc_kill(&node);

    cr_assert_eq(node_proc_start(&node, data, NULL), 0, "restart after kill -9");
    c = client();
    cr_assert_eq(field(c, "STOCK.GET", "phone", "reserved"), 500,
                 "every acknowledged order survived kill -9");
    cr_assert_eq(field(c, "STOCK.GET", "phone", "available"), 500);
    /* A retry of an acknowledged order after the crash is recognised, not sold twice. */
    redisReply *r = node_proc_command(c, "ORDER.PLACE rid-499 user-499 600000 phone 1");
    cr_assert_eq(r->type, REDIS_REPLY_STRING);
    freeReplyObject(r);
    cr_assert_eq(field(c, "STOCK.GET", "phone", "reserved"), 500);
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, false), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(trading, corrupt_log_refuses_to_start_with_file_and_offset)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0);
    char data[300];
    snprintf(data, sizeof data, "%s", node.data_dir);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 cup 100");
    sell(c, "cup", 50, 0);
    redisFree(c);
    cr_assert_eq(node_proc_stop(&node, true), 0);
    char keep[256];
    snprintf(keep, sizeof keep, "%s", node.dir);
    /* Flip a byte early in the first segment: damage before the tail. */
    char seg[400];
    snprintf(seg, sizeof seg, "%s/wal-00000000000000000001.log", data);
    FILE *f = fopen(seg, "r+b");
    cr_assert_not_null(f, "no segment at %s", seg);
    fseek(f, 100, SEEK_SET);
    int ch = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(ch ^ 0x40, f);
    fclose(f);
    char out[2048];
    const char *args[] = {"start", "--port",       "0", "--http-port", "0", "--data",
                          data,    "--partitions", "4", NULL};
    cr_assert_eq(node_proc_run(args, out, sizeof out), 1);
    cr_assert(strstr(out, "wal-00000000000000000001.log") != NULL, "no file named: %s", out);
    cr_assert(strstr(out, "offset") != NULL, "no offset: %s", out);
    /* Another partition count would route keys elsewhere: refused, whatever the log says. */
    const char *other[] = {"start", "--port",       "0", "--http-port", "0", "--data",
                           data,    "--partitions", "8", NULL};
    cr_assert_eq(node_proc_run(other, out, sizeof out), 1);
    cr_assert(strstr(out, "was created with --partitions 4") != NULL, "got: %s", out);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keep);
    cr_assert_eq(system(cmd), 0);
}

/* Counts the snapshot files in a data directory. */
static int snapshot_files(const char *dir)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "ls %s | grep -c '^snap-.*\\.snap$' || true", dir);
    FILE *f = popen(cmd, "r");
    int n = 0;
    if (f) {
        if (fscanf(f, "%d", &n) != 1)
            n = 0;
        pclose(f);
    }
    return n;
}

Test(trading, background_snapshots_bound_recovery)
{
    const char *flags[] = {"--snapshot-every", "200", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    char data[300], keep[256];
    snprintf(data, sizeof data, "%s", node.data_dir);
    snprintf(keep, sizeof keep, "%s", node.dir);
    redisContext *c = client();
    expect_ok(c, "STOCK.CREATE r1 pen 5000");
    for (int round = 0; round < 4; round++)
        sell(c, "pen", 150, round * 150);
    /* The child writes in the background: wait for its file. */
    for (int i = 0; i < 500 && snapshot_files(data) == 0; i++)
        usleep(10 * 1000);
    cr_assert_geq(snapshot_files(data), 1, "no snapshot written");
    sell(c, "pen", 50, 600);
    redisFree(c);
    node_proc_kill(&node);

    cr_assert_eq(node_proc_start(&node, data, flags), 0);
    c = client();
    cr_assert_eq(field(c, "STOCK.GET", "pen", "reserved"), 650, "snapshot + log tail = all");
    redisFree(c);
    char out_path[400], line[256];
    snprintf(out_path, sizeof out_path, "%s/out", node.dir);
    FILE *f = fopen(out_path, "r");
    cr_assert_not_null(f);
    bool from_snapshot = false;
    while (fgets(line, sizeof line, f))
        from_snapshot |=
            strstr(line, "recovered") != NULL && strstr(line, "after snapshot 0") == NULL;
    fclose(f);
    cr_assert(from_snapshot, "recovery did not start from a snapshot");
    cr_assert_eq(node_proc_stop(&node, false), 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", keep);
    cr_assert_eq(system(cmd), 0);
}

Test(trading, fsync_modes_serve_and_keep_what_a_clean_stop_flushed)
{
    const char *modes[] = {"every:5", "never", "always"};
    for (int m = 0; m < 3; m++) {
        const char *flags[] = {"--fsync", modes[m], "--no-preallocate", NULL};
        cr_assert_eq(node_proc_start(&node, NULL, flags), 0, "--fsync %s", modes[m]);
        char data[300], keep[256];
        snprintf(data, sizeof data, "%s", node.data_dir);
        snprintf(keep, sizeof keep, "%s", node.dir);
        redisContext *c = client();
        expect_ok(c, "STOCK.CREATE r1 mug 100");
        sell(c, "mug", 40, 0);
        redisFree(c);
        cr_assert_eq(node_proc_stop(&node, true), 0);
        char out_path[400], line[256];
        snprintf(out_path, sizeof out_path, "%s/out", keep);
        FILE *f = fopen(out_path, "r");
        cr_assert_not_null(f);
        bool warned = false;
        while (fgets(line, sizeof line, f))
            warned |= strstr(line, "WARNING: --fsync never") != NULL;
        fclose(f);
        cr_assert_eq(warned, m == 1, "--fsync never says so loudly, the others do not");
        cr_assert_eq(node_proc_start(&node, data, flags), 0);
        c = client();
        cr_assert_eq(field(c, "STOCK.GET", "mug", "reserved"), 40, "--fsync %s", modes[m]);
        redisFree(c);
        cr_assert_eq(node_proc_stop(&node, false), 0);
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf %s", keep);
        cr_assert_eq(system(cmd), 0);
    }
}

/* One HTTP/1.0 request; returns the status and copies the body (NUL-terminated). */
static int http(const char *method, const char *path, const char *body, const char *auth, char *out,
                size_t cap)
{
    int fd = node_proc_connect(node.http_port, 5000);
    cr_assert_geq(fd, 0);
    char req[2048];
    int len = snprintf(req, sizeof req, "%s %s HTTP/1.0\r\n%s%s%sContent-Length: %zu\r\n\r\n%s",
                       method, path, auth ? "Authorization: Bearer " : "", auth ? auth : "",
                       auth ? "\r\n" : "", body ? strlen(body) : 0, body ? body : "");
    cr_assert(node_proc_send(fd, req, (size_t)len));
    char resp[8192];
    size_t got = node_proc_recv(fd, resp, sizeof resp - 1);
    close(fd);
    resp[got] = '\0';
    int status = 0;
    cr_assert_eq(sscanf(resp, "HTTP/1.1 %d", &status), 1, "got: %s", resp);
    const char *b = strstr(resp, "\r\n\r\n");
    snprintf(out, cap, "%s", b ? b + 4 : "");
    return status;
}

Test(trading, json_api_runs_commands_and_reads)
{
    const char *flags[] = {"--requirepass", "pw", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0);
    char body[4096];
    cr_assert_eq(http("GET", "/api/stock/tv", NULL, NULL, body, sizeof body), 401);
    cr_assert_eq(http("GET", "/api/stock/tv", NULL, "wrong", body, sizeof body), 401);
    cr_assert_eq(http("POST", "/api/command", "[\"STOCK.CREATE\",\"r1\",\"tv\",\"2\"]", "pw", body,
                      sizeof body),
                 200);
    cr_assert_str_eq(body, "\"OK\"");
    cr_assert_eq(http("POST", "/api/command",
                      "[\"ORDER.PLACE\",\"r2\",\"alice\",\"60000\",\"tv\",\"2\"]", "pw", body,
                      sizeof body),
                 200);
    char id[64], path[128];
    cr_assert_eq(sscanf(body, "\"%63[^\"]\"", id), 1, "got %s", body);
    snprintf(path, sizeof path, "/api/orders/%s", id);
    cr_assert_eq(http("GET", path, NULL, "pw", body, sizeof body), 200);
    cr_assert(strstr(body, "\"state\":\"RESERVED\"") != NULL, "got %s", body);
    cr_assert_eq(http("GET", "/api/stock/tv", NULL, "pw", body, sizeof body), 200);
    cr_assert(strstr(body, "\"reserved\":2") != NULL, "got %s", body);
    cr_assert_eq(http("POST", "/api/command",
                      "[\"ORDER.PLACE\",\"r3\",\"bob\",\"60000\",\"tv\",\"1\"]", "pw", body,
                      sizeof body),
                 409);
    cr_assert(strstr(body, "\"error\":\"SOLDOUT\"") != NULL, "got %s", body);
    cr_assert_eq(http("GET", "/api/stock/nope", NULL, "pw", body, sizeof body), 404);
    cr_assert_eq(http("POST", "/api/command", "{\"not\":\"an array\"}", "pw", body, sizeof body),
                 400);
    cr_assert_eq(http("POST", "/api/command", "[1,2]", "pw", body, sizeof body), 400);
    cr_assert_eq(http("GET", "/api/nothing", NULL, "pw", body, sizeof body), 404);
    cr_assert_eq(node_proc_stop(&node, false), 0);
}
