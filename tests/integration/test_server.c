/*
 * The server against real clients: a `shardmart start` process on loopback, hiredis for RESP2,
 * raw sockets for RESP3 bytes, malformed input and HTTP, redis-cli for what a person types.
 * Every limit of `shardmart start` is passed here once.
 */
#include <criterion/criterion.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/node_proc.h"
#include "../support/redis_helpers.h"

static struct node_proc node;

static void start(const char *const *flags)
{
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0, "node did not start");
}

static void stop(void)
{
    cr_assert_eq(node_proc_stop(&node, false), 0, "node did not shut down cleanly");
}

static redisContext *client(void)
{
    return node_proc_client(&node);
}

static void expect_status(redisContext *c, const char *want, const char *fmt)
{
    redisReply *r = node_proc_command(c, fmt);
    cr_assert(r->type == REDIS_REPLY_STATUS || r->type == REDIS_REPLY_STRING, "type %d", r->type);
    cr_assert_str_eq(r->str, want);
    freeReplyObject(r);
}

static void expect_error_prefix(redisContext *c, const char *prefix, const char *fmt)
{
    redisReply *r = node_proc_command(c, fmt);
    cr_assert_eq(r->type, REDIS_REPLY_ERROR, "expected an error for %s", fmt);
    cr_assert(strncmp(r->str, prefix, strlen(prefix)) == 0, "got '%s'", r->str);
    freeReplyObject(r);
}

/* Sends raw bytes and reads exactly the expected reply bytes back. */
static void expect_raw(int fd, const char *send, const char *want)
{
    cr_assert(node_proc_send(fd, send, strlen(send)));
    char buf[4096] = {0};
    size_t got = node_proc_recv(fd, buf, strlen(want));
    cr_assert_eq(got, strlen(want), "got %zu bytes: '%s'", got, buf);
    cr_assert(memcmp(buf, want, got) == 0, "got '%s', want '%s'", buf, want);
}

Test(server, ping_echo_and_errors)
{
    start(NULL);
    redisContext *c = client();
    expect_status(c, "PONG", "PING");
    expect_status(c, "hello-world", "ECHO hello-world");
    redisReply *r = node_proc_command(c, "ECHO %b", "a\0b", (size_t)3);
    cr_assert_eq(r->len, 3);
    cr_assert(memcmp(r->str, "a\0b", 3) == 0, "binary-safe bulk");
    freeReplyObject(r);
    expect_error_prefix(c, "ERR unknown command 'NOPE'", "NOPE");
    expect_error_prefix(c, "ERR wrong number of arguments for 'ECHO'", "ECHO");
    expect_status(c, "OK", "SELECT 0");
    expect_error_prefix(c, "ERR DB index is out of range", "SELECT 1");
    expect_status(c, "OK", "CLIENT SETNAME tester");
    expect_status(c, "tester", "CLIENT GETNAME");
    expect_error_prefix(c, "ERR Client names cannot contain spaces", "CLIENT SETNAME a\tb");
    r = node_proc_command(c, "CONFIG GET appendonly");
    cr_assert_eq(r->type, REDIS_REPLY_ARRAY);
    cr_assert_eq(r->elements, 2);
    cr_assert_str_eq(r->element[1]->str, "yes");
    freeReplyObject(r);
    r = node_proc_command(c, "COMMAND COUNT");
    cr_assert_eq(r->type, REDIS_REPLY_INTEGER);
    cr_assert_gt(r->integer, 5);
    freeReplyObject(r);
    r = node_proc_command(c, "INFO");
    cr_assert(strstr(r->str, "shardmart_version:") != NULL);
    freeReplyObject(r);
    expect_status(c, "OK", "QUIT");
    redisFree(c);
    stop();
}

Test(server, resp3_after_hello)
{
    start(NULL);
    int fd = node_proc_connect(node.resp_port, 5000);
    cr_assert_geq(fd, 0);
    expect_raw(fd, "PING\r\n", "+PONG\r\n");
    cr_assert(node_proc_send(fd, "HELLO 3\r\n", 9));
    char buf[512] = {0};
    size_t got = node_proc_recv(fd, buf, 3);
    cr_assert_eq(got, 3);
    cr_assert(memcmp(buf, "%7\r", 3) == 0, "HELLO 3 answers a RESP3 map, got '%s'", buf);
    /* Drain the rest of the map, then a RESP3-only type must appear: CLIENT GETNAME's null. */
    usleep(100 * 1000);
    (void)recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    expect_raw(fd, "CLIENT GETNAME\r\n", "_\r\n");
    expect_raw(fd, "HELLO 4\r\n", "-NOPROTO unsupported protocol version\r\n");
    close(fd);
    stop();
}

Test(server, pipelined_requests_answer_in_order)
{
    start(NULL);
    int fd = node_proc_connect(node.resp_port, 10000);
    enum { N = 2000 };
    static char req[N * 32], want[N * 32], got[N * 32];
    size_t rl = 0, wl = 0;
    for (int i = 0; i < N; i++) {
        rl += (size_t)sprintf(req + rl, "*2\r\n$4\r\nECHO\r\n$%d\r\n%d\r\n",
                              snprintf(NULL, 0, "%d", i), i);
        wl += (size_t)sprintf(want + wl, "$%d\r\n%d\r\n", snprintf(NULL, 0, "%d", i), i);
    }
    cr_assert(node_proc_send(fd, req, rl));
    cr_assert_eq(node_proc_recv(fd, got, wl), wl);
    cr_assert(memcmp(got, want, wl) == 0, "replies out of order or wrong");
    close(fd);
    stop();
}

Test(server, requirepass_gates_everything_but_auth)
{
    const char *flags[] = {"--requirepass", "s3cret", NULL};
    start(flags);
    redisContext *c = client();
    expect_error_prefix(c, "NOAUTH", "PING");
    expect_error_prefix(c, "WRONGPASS", "AUTH nope");
    expect_error_prefix(c, "NOAUTH", "PING");
    expect_status(c, "OK", "AUTH s3cret");
    expect_status(c, "PONG", "PING");
    redisFree(c);
    c = client();
    expect_status(c, "OK", "AUTH default s3cret");
    expect_status(c, "PONG", "PING");
    redisFree(c);
    stop();
}

Test(server, malformed_resp_gets_error_and_close)
{
    start(NULL);
    int fd = node_proc_connect(node.resp_port, 5000);
    cr_assert(node_proc_send(fd, "*1\r\n$x\r\n", 8));
    char buf[256] = {0};
    size_t got = node_proc_recv(fd, buf, 4);
    cr_assert_eq(got, 4);
    cr_assert(strncmp(buf, "-ERR", 4) == 0, "got '%s'", buf);
    cr_assert(node_proc_closed(fd, 5000), "connection left open after a protocol error");
    close(fd);
    /* The node is unharmed: a new client works. */
    redisContext *c = client();
    expect_status(c, "PONG", "PING");
    redisFree(c);
    stop();
}

Test(server, request_over_one_mib_is_refused)
{
    start(NULL);
    int fd = node_proc_connect(node.resp_port, 5000);
    const char *req = "*2\r\n$4\r\nECHO\r\n$2000000\r\n";
    cr_assert(node_proc_send(fd, req, strlen(req)));
    char buf[256] = {0};
    size_t got = node_proc_recv(fd, buf, 9);
    cr_assert_eq(got, 9);
    cr_assert(strncmp(buf, "-TOOLARGE", 9) == 0, "got '%s'", buf);
    cr_assert(node_proc_closed(fd, 5000));
    close(fd);
    stop();
}

Test(server, maxclients_refuses_the_next_client)
{
    const char *flags[] = {"--maxclients", "2", NULL};
    start(flags);
    redisContext *a = client(), *b = client();
    expect_status(a, "PONG", "PING");
    expect_status(b, "PONG", "PING");
    int fd = node_proc_connect(node.resp_port, 5000);
    char buf[128] = {0};
    const char want[] = "-ERR max number of clients reached\r\n";
    cr_assert_eq(node_proc_recv(fd, buf, sizeof want - 1), sizeof want - 1);
    cr_assert_str_eq(buf, want);
    cr_assert(node_proc_closed(fd, 5000));
    close(fd);
    redisFree(a);
    /* A freed slot is usable again once the node has seen the close. */
    bool ok = false;
    for (int i = 0; i < 100 && !ok; i++) {
        redisContext *c = redisConnect("127.0.0.1", node.resp_port);
        redisReply *r = c && !c->err ? redisCommand(c, "PING") : NULL;
        ok = r && r->type == REDIS_REPLY_STATUS;
        if (r)
            freeReplyObject(r);
        redisFree(c);
        if (!ok)
            usleep(20 * 1000);
    }
    cr_assert(ok, "slot not freed");
    redisFree(b);
    stop();
}

Test(server, slow_reader_is_backpressured_and_loses_nothing)
{
    const char *flags[] = {"--output-max", "65536", NULL};
    start(flags);
    int fd = node_proc_connect(node.resp_port, 20000);
    /* 400 ECHOs of 4 KiB: 1.6 MB of replies against a 64 KiB bound. The client writes them all
     * before reading anything, from a child so a full socket buffer cannot deadlock the test. */
    enum { N = 400, SIZE = 4096 };
    static char payload[SIZE];
    memset(payload, 'x', sizeof payload);
    char head[64];
    int hl = sprintf(head, "*2\r\n$4\r\nECHO\r\n$%d\r\n", SIZE);
    pid_t writer = fork();
    if (writer == 0) {
        for (int i = 0; i < N; i++) {
            payload[0] = (char)('a' + i % 26);
            if (!node_proc_send(fd, head, (size_t)hl) || !node_proc_send(fd, payload, SIZE) ||
                !node_proc_send(fd, "\r\n", 2))
                _exit(1);
        }
        _exit(0);
    }
    usleep(300 * 1000); /* let the node hit its bound while nobody reads */
    char rhead[64];
    static char body[SIZE + 2];
    for (int i = 0; i < N; i++) {
        size_t want_head = (size_t)sprintf(rhead, "$%d\r\n", SIZE);
        char got_head[64];
        cr_assert_eq(node_proc_recv(fd, got_head, want_head), want_head, "reply %d missing", i);
        cr_assert(memcmp(got_head, rhead, want_head) == 0);
        cr_assert_eq(node_proc_recv(fd, body, SIZE + 2), (size_t)SIZE + 2);
        cr_assert_eq(body[0], (char)('a' + i % 26), "reply %d out of order", i);
    }
    int status;
    waitpid(writer, &status, 0);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    close(fd);
    stop();
}

Test(server, idle_clients_are_closed)
{
    const char *flags[] = {"--idle-timeout-ms", "300", NULL};
    start(flags);
    int fd = node_proc_connect(node.resp_port, 5000);
    expect_raw(fd, "PING\r\n", "+PONG\r\n");
    cr_assert(node_proc_closed(fd, 5000), "idle connection not closed");
    close(fd);
    stop();
}

Test(server, http_probes_and_metrics)
{
    start(NULL);
    redisContext *c = client();
    expect_status(c, "PONG", "PING");
    redisFree(c);
    int fd = node_proc_connect(node.http_port, 5000);
    const char get[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    cr_assert(node_proc_send(fd, get, sizeof get - 1));
    char buf[8192] = {0};
    size_t got = node_proc_recv(fd, buf, 17);
    cr_assert(strncmp(buf, "HTTP/1.1 200 OK\r\n", 17) == 0, "got '%.*s'", (int)got, buf);
    close(fd);

    fd = node_proc_connect(node.http_port, 5000);
    const char metrics[] = "GET /metrics HTTP/1.0\r\n\r\n";
    cr_assert(node_proc_send(fd, metrics, sizeof metrics - 1));
    got = node_proc_recv(fd, buf, sizeof buf - 1);
    buf[got] = '\0';
    cr_assert(strstr(buf, "shardmart_requests_total ") != NULL, "no request counter");
    cr_assert(strstr(buf, "shardmart_commands_total{command=\"PING\"} 1") != NULL,
              "PING not counted: %s", buf);
    cr_assert(strstr(buf, "shardmart_batch_requests_bucket{le=\"+Inf\"}") != NULL);
    close(fd);

    fd = node_proc_connect(node.http_port, 5000);
    const char missing[] = "GET /nope HTTP/1.0\r\n\r\n";
    cr_assert(node_proc_send(fd, missing, sizeof missing - 1));
    got = node_proc_recv(fd, buf, 12);
    cr_assert(strncmp(buf, "HTTP/1.1 404", 12) == 0);
    close(fd);

    fd = node_proc_connect(node.http_port, 5000);
    const char post[] = "POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    cr_assert(node_proc_send(fd, post, sizeof post - 1));
    got = node_proc_recv(fd, buf, 12);
    cr_assert(strncmp(buf, "HTTP/1.1 405", 12) == 0, "got '%.*s'", (int)got, buf);
    close(fd);

    fd = node_proc_connect(node.http_port, 5000);
    const char bad[] = "BLAH\r\n\r\n";
    cr_assert(node_proc_send(fd, bad, sizeof bad - 1));
    got = node_proc_recv(fd, buf, 12);
    cr_assert(strncmp(buf, "HTTP/1.1 400", 12) == 0 || strncmp(buf, "HTTP/1.1 501", 12) == 0,
              "got '%.*s'", (int)got, buf);
    cr_assert(node_proc_closed(fd, 5000));
    close(fd);
    stop();
}

Test(server, busy_port_and_shared_data_dir_are_one_line_errors)
{
    start(NULL);
    char port[16], out[1024];
    snprintf(port, sizeof port, "%d", node.resp_port);
    char other[400];
    snprintf(other, sizeof other, "%s/other", node.dir);
    const char *busy[] = {"start", "--port", port, "--http-port", "0", "--data", other, NULL};
    cr_assert_eq(node_proc_run(busy, out, sizeof out), 1);
    cr_assert(strstr(out, "cannot listen for RESP") != NULL, "got: %s", out);
    const char *shared[] = {"start", "--port", "0",           "--http-port",
                            "0",     "--data", node.data_dir, NULL};
    cr_assert_eq(node_proc_run(shared, out, sizeof out), 1);
    cr_assert(strstr(out, "in use by another node") != NULL, "got: %s", out);
    stop();
}

Test(server, bad_flags_exit_2_with_a_reason)
{
    char out[1024];
    const char *cases[][4] = {
        {"start", "--maxclients", "0", NULL},
        {"start", "--port", "70000", NULL},
        {"start", "--output-max", "12", NULL},
        {"start", "--partitions", "65537", NULL},
        {"start", "--pipeline-max", "x", NULL},
        {"start", "--bogus", "1", NULL},
        {"start", "--data", NULL, NULL},
        {"start", "--fsync", "sometimes", NULL},
        {"start", "--fsync", "every:0", NULL},
        {"start", "--segment-bytes", "12", NULL},
        {"start", "--tick-ms", "0", NULL},
        {"start", "--snapshot-every", "-1", NULL},
        {"start", "--batch-wait-us", "10001", NULL},
        {"start", "--batch-wait-us", "-1", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(node_proc_run(cases[i], out, sizeof out), 2, "case %zu", i);
        cr_assert(strstr(out, "shardmart start:") != NULL, "case %zu: %s", i, out);
    }
    const char *help[] = {"start", "--help", NULL};
    cr_assert_eq(node_proc_run(help, out, sizeof out), 0);
    cr_assert(strstr(out, "--idle-timeout-ms") != NULL);
}

/* The gathering window (--batch-wait-us): clients that send again right after their replies
 * (pipeline 1, in rounds) share one batch and one fsync instead of splitting into several, and
 * every one of them still gets its own reply. Each round 7 clients send at once and the 8th
 * 2 ms later (longer than an fsync on a quiet disk): without the window the 7 make one batch and
 * the 8th another, with a 10 ms window the batch waits for the 8th. The same rounds run against
 * a node without the window and one with it, and the window must save batches: a comparison in
 * the same minutes, so a loaded machine slows both alike instead of failing a fixed bound. */
static long rounds_batches(const char *window_us)
{
    const char *flags[] = {"--batch-wait-us", window_us, NULL};
    start(flags);
    enum { CLIENTS = 8, ROUNDS = 40 };
    redisContext *cs[CLIENTS];
    for (int i = 0; i < CLIENTS; i++)
        cs[i] = client();
    for (int k = 0; k < ROUNDS; k++) {
        for (int i = 0; i < CLIENTS; i++) {
            if (i == CLIENTS - 1)
                usleep(2000);
            cr_assert_eq(
                redisAppendCommand(cs[i], "SESSION.OPEN gw-%d-%d gw-s%d-%d 60000", i, k, i, k),
                REDIS_OK);
            int done = 0;
            while (!done)
                cr_assert_eq(redisBufferWrite(cs[i], &done), REDIS_OK);
        }
        for (int i = 0; i < CLIENTS; i++) {
            void *p = NULL;
            cr_assert_eq(redisGetReply(cs[i], &p), REDIS_OK);
            redisReply *r = p;
            cr_assert_eq(r->type, REDIS_REPLY_INTEGER, "client %d round %d: type %d %s", i, k,
                         r->type, r->str ? r->str : "");
            freeReplyObject(r);
        }
    }
    for (int i = 0; i < CLIENTS; i++)
        redisFree(cs[i]);
    int fd = node_proc_connect(node.http_port, 5000);
    const char metrics[] = "GET /metrics HTTP/1.0\r\n\r\n";
    cr_assert(node_proc_send(fd, metrics, sizeof metrics - 1));
    static char buf[65536];
    size_t got = node_proc_recv(fd, buf, sizeof buf - 1);
    buf[got] = '\0';
    close(fd);
    const char *at = strstr(buf, "shardmart_batch_requests_count ");
    cr_assert_not_null(at, "no batch counter");
    long batches = strtol(at + strlen("shardmart_batch_requests_count "), NULL, 10);
    cr_assert_geq(batches, ROUNDS, "%ld batches for %d rounds", batches, ROUNDS);
    stop();
    return batches;
}

Test(server, gathering_window_puts_returning_clients_in_one_batch)
{
    long without = rounds_batches("0");
    long with = rounds_batches("10000");
    cr_log_info("batches for 40 rounds: %ld without the window, %ld with it", without, with);
    cr_assert_lt(with, without, "the window saved no batch: %ld with it, %ld without", with,
                 without);
}

Test(server, redis_cli_one_shot)
{
    start(NULL);
    char cmdline[256];
    snprintf(cmdline, sizeof cmdline, "redis-cli -p %d PING 2>&1", node.resp_port);
    FILE *f = popen(cmdline, "r");
    cr_assert_not_null(f);
    char line[64] = {0};
    cr_assert_not_null(fgets(line, sizeof line, f));
    pclose(f);
    cr_assert_str_eq(line, "PONG\n");
    stop();
}
