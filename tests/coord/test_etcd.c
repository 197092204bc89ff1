/*
 * The etcd backend against a real etcd 3.4 (Debian etcd-server) started by each test on loopback:
 * the shared behavioural suite (tests/support/coord_suite.c) in real time, then what only a real
 * server shows: watches resumed after a restart and across a member's death without loss or
 * repetition, failover along the endpoint list, endpoints that are down or are not etcd.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "coord/coord.h"
#include "util/error.h"

#include "../support/coord_harness.h"
#include "../support/etcd_proc.h"

static struct etcd_cluster ec;
static struct harness h;
/* Which members a new client lists as its endpoints (all by default). */
static int endpoint_members[ETCD_PROC_MEMBERS_MAX];
static int endpoint_members_count;

static int64_t real_now(struct harness *hh)
{
    (void)hh;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void real_advance(struct harness *hh, int64_t ms)
{
    (void)hh;
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Waits on the client's eventfd, as an event loop would. */
static void real_wait(struct harness *hh, struct sm_coord *c, int64_t ms)
{
    (void)hh;
    struct pollfd p = {.fd = sm_coord_fd(c), .events = POLLIN};
    cr_assert(p.fd >= 0);
    poll(&p, 1, (int)ms);
}

static struct sm_coord *real_open(struct harness *hh)
{
    (void)hh;
    struct sm_coord_etcd_config cfg = {.request_timeout_ms = 3000, .connect_timeout_ms = 500};
    for (int i = 0; i < endpoint_members_count; i++)
        cfg.endpoints[cfg.endpoints_count++] = ec.members[endpoint_members[i]].endpoint;
    struct sm_coord *c;
    return sm_coord_etcd_open(&cfg, &c) == 0 ? c : NULL;
}

static void harness_init(void)
{
    memset(&h, 0, sizeof h);
    h.open = real_open;
    h.advance = real_advance;
    h.now = real_now;
    h.wait = real_wait;
    h.ttl_ms = 1000;
    endpoint_members_count = ec.members_count;
    for (int i = 0; i < ec.members_count; i++)
        endpoint_members[i] = i;
}

static void setup_one(void)
{
    etcd_cluster_start(&ec, 1);
    harness_init();
}

static void setup_three(void)
{
    etcd_cluster_start(&ec, 3);
    harness_init();
}

static void teardown(void)
{
    harness_close_clients(&h);
    etcd_cluster_stop(&ec);
}

/* cppcheck-suppress unknownMacro */
TestSuite(etcd, .init = setup_one, .fini = teardown, .timeout = 60);

Test(etcd, crud)
{
    suite_crud(&h);
}
Test(etcd, txn_compares)
{
    suite_txn_compares(&h);
}
Test(etcd, cas_race)
{
    suite_cas_race(&h);
}
Test(etcd, lease_expiry)
{
    suite_lease_expiry(&h);
}
Test(etcd, lease_unknown)
{
    suite_lease_unknown(&h);
}
Test(etcd, watch_from_revision)
{
    suite_watch_from_revision(&h);
}
Test(etcd, watch_cancel)
{
    suite_watch_cancel(&h);
}
Test(etcd, bad_requests)
{
    suite_bad_requests(&h);
}
Test(etcd, linearizable_order)
{
    suite_linearizable_order(&h);
}
Test(etcd, directory)
{
    suite_directory(&h);
}
Test(etcd, election)
{
    suite_election(&h);
}
Test(etcd, session)
{
    suite_session(&h);
}

/* ---- etcd only ----------------------------------------------------------------------------- */

static struct sm_coord_result done(struct sm_coord *c, uint64_t id)
{
    struct sm_coord_result r;
    harness_await(&h, c, id, &r);
    return r;
}

static int64_t put(struct sm_coord *c, const char *key, const char *value)
{
    uint64_t id;
    cr_assert_eq(sm_coord_put(c, key, value, strlen(value), 0, &id), 0);
    struct sm_coord_result r = done(c, id);
    cr_assert_eq(r.err, 0, "put %s: %s", key, r.message);
    int64_t rev = r.revision;
    sm_coord_result_free(&r);
    return rev;
}

/* Collects watch events until `want` arrived (or 15 s passed); returns how many. */
static int collect(struct sm_coord *c, uint64_t w, int64_t *revs, const char **keys, int want)
{
    int got = 0;
    int64_t deadline = real_now(&h) + 15000;
    while (got < want && real_now(&h) < deadline) {
        struct sm_coord_result r;
        if (!harness_events(&h, c, w, 200, &r))
            continue;
        cr_assert_eq(r.err, 0, "watch ended: %s", r.message);
        for (size_t i = 0; i < r.events_count; i++) {
            cr_assert(got < want, "more events than written (a repeat?): %s @%lld",
                      r.events[i].kv.key, (long long)r.events[i].kv.mod_revision);
            revs[got] = r.events[i].kv.mod_revision;
            cr_assert_str_eq(r.events[i].kv.key, keys[got], "event %d", got);
            got++;
        }
        sm_coord_result_free(&r);
    }
    return got;
}

static void watch_survives_restart(bool kill9)
{
    struct sm_coord *c = harness_client(&h);
    int64_t r1 = put(c, "/r/a", "1");
    uint64_t w;
    cr_assert_eq(sm_coord_watch(c, "/r/", true, r1, &w), 0);
    struct sm_coord_result r = done(c, w);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);
    const char *keys[] = {"/r/a", "/r/b", "/r/c"};
    int64_t revs[3];
    cr_assert_eq(collect(c, w, revs, keys, 1), 1);
    cr_assert_eq(revs[0], r1);

    etcd_member_stop(&ec, 0, kill9);
    /* While etcd is down a write fails cleanly, not as a hang or a crash. */
    uint64_t id;
    cr_assert_eq(sm_coord_put(c, "/r/lost", "x", 1, 0, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, SM_E_TRYAGAIN, "endpoint down: %s (%s)", sm_errcode(r.err), r.message);
    sm_coord_result_free(&r);
    etcd_member_restart(&ec, 0);

    int64_t r2 = put(c, "/r/b", "2"), r3 = put(c, "/r/c", "3");
    cr_assert_eq(collect(c, w, revs + 1, keys + 1, 2), 2, "events after the restart arrive");
    cr_assert_eq(revs[1], r2);
    cr_assert_eq(revs[2], r3);
    cr_assert(!harness_events(&h, c, w, 300, &r), "and nothing repeats");
}

Test(etcd, watch_resumes_after_clean_restart)
{
    watch_survives_restart(false);
}

Test(etcd, watch_resumes_after_kill9_restart)
{
    watch_survives_restart(true);
}

/* Its own suite: the etcd suite's setup would start a one-member etcd first. */
Test(etcd3, three_members_one_killed, .init = setup_three, .fini = teardown, .timeout = 90)
{
    /* c lists m0 first, so m0 serves it; w watches through c. */
    struct sm_coord *c = harness_client(&h);
    int64_t r1 = put(c, "/f/a", "1");
    uint64_t w, id;
    cr_assert_eq(sm_coord_watch(c, "/f/", true, r1 + 1, &w), 0);
    struct sm_coord_result r = done(c, w);
    cr_assert_eq(r.err, 0);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_lease_grant(c, 3000, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, 0);
    int64_t lease = r.lease;
    sm_coord_result_free(&r);

    /* A second client that only knows m1 and m2 writes while m0 is dead. */
    endpoint_members_count = 2;
    endpoint_members[0] = 1;
    endpoint_members[1] = 2;
    struct sm_coord *other = harness_client(&h);
    etcd_member_stop(&ec, 0, true);
    /* m0 may have been the leader: a write is refused (TRYAGAIN) until m1 and m2 elect one. */
    for (int i = 0; i < 200 && !etcd_member_healthy(&ec, 1, 500); i++)
        real_advance(&h, 20);
    int64_t r2 = put(other, "/f/b", "2");

    /* c fails over to m1: writes, reads, CAS and keepalives go on; the watch resumes through
     * m1 from its last revision and so sees the write made while its member was dead. */
    int64_t r3 = put(c, "/f/c", "3");
    cr_assert(r3 > r2);
    cr_assert_eq(sm_coord_get(c, "/f/", true, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, 0, "%s", r.message);
    cr_assert_eq(r.kvs_count, 3);
    sm_coord_result_free(&r);
    struct sm_coord_cmp cmp = {.key = "/f/c", .target = SM_COORD_CMP_MOD_REVISION, .number = r3};
    struct sm_coord_op op = {.kind = SM_COORD_OP_PUT, .key = "/f/c", .value = "4", .value_len = 1};
    cr_assert_eq(sm_coord_txn(c, &cmp, 1, &op, 1, NULL, 0, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, 0, "%s", r.message);
    cr_assert(r.succeeded);
    int64_t r4 = r.revision;
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_lease_keepalive(c, lease, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, 0, "keepalive through another member: %s", r.message);
    sm_coord_result_free(&r);

    const char *keys[] = {"/f/b", "/f/c", "/f/c"};
    int64_t revs[3];
    cr_assert_eq(collect(c, w, revs, keys, 3), 3, "the watch resumed on another member");
    cr_assert_eq(revs[0], r2);
    cr_assert_eq(revs[1], r3);
    cr_assert_eq(revs[2], r4);
    cr_assert(!harness_events(&h, c, w, 300, &r), "and nothing repeats");
}

Test(etcd, endpoints_down)
{
    /* Two endpoints where nothing listens, then the real one: requests find it. */
    struct sm_coord_etcd_config cfg = {.connect_timeout_ms = 300};
    char dead1[64], dead2[64];
    snprintf(dead1, sizeof dead1, "http://127.0.0.1:%d", ec.members[0].client_port + 7);
    snprintf(dead2, sizeof dead2, "http://127.0.0.1:%d", ec.members[0].client_port + 9);
    cfg.endpoints[0] = dead1;
    cfg.endpoints[1] = dead2;
    cfg.endpoints[2] = ec.members[0].endpoint;
    cfg.endpoints_count = 3;
    struct sm_coord *c;
    cr_assert_eq(sm_coord_etcd_open(&cfg, &c), 0);
    h.clients[h.clients_count++] = c;
    put(c, "/d", "1");
    uint64_t w;
    cr_assert_eq(sm_coord_watch(c, "/d", false, 0, &w), 0);
    struct sm_coord_result r = done(c, w);
    cr_assert_eq(r.err, 0, "%s", r.message);
    sm_coord_result_free(&r);

    /* Only dead endpoints: every request says TRYAGAIN, a watch cannot open. */
    cfg.endpoints_count = 2;
    cr_assert_eq(sm_coord_etcd_open(&cfg, &c), 0);
    h.clients[h.clients_count++] = c;
    uint64_t id;
    cr_assert_eq(sm_coord_put(c, "/d", "2", 1, 0, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, SM_E_TRYAGAIN, "%s", r.message);
    cr_assert(strstr(r.message, "no etcd endpoint"), "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_watch(c, "/d", false, 0, &w), 0);
    r = done(c, w);
    cr_assert_eq(r.err, SM_E_TRYAGAIN, "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_lease_grant(c, 1000, &id), 0);
    r = done(c, id);
    cr_assert_eq(r.err, SM_E_TRYAGAIN);
    sm_coord_result_free(&r);
}

/* A server on loopback that answers every request with one canned HTTP response. */
struct fake_server {
    int fd;
    int port;
    char response[512];
    pthread_t thread;
};

static void *fake_serve(void *arg)
{
    struct fake_server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char buf[4096];
        ssize_t got = read(c, buf, sizeof buf); /* the request (small, one read is enough) */
        (void)got;
        ssize_t n = write(c, s->response, strlen(s->response));
        (void)n;
        close(c);
    }
}

static void fake_start(struct fake_server *s, const char *body)
{
    snprintf(s->response, sizeof s->response,
             "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", strlen(body),
             body);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    cr_assert(bind(s->fd, (struct sockaddr *)&a, sizeof a) == 0);
    cr_assert(listen(s->fd, 16) == 0);
    cr_assert(getsockname(s->fd, (struct sockaddr *)&a, &len) == 0);
    s->port = ntohs(a.sin_port);
    cr_assert(pthread_create(&s->thread, NULL, fake_serve, s) == 0);
}

static struct sm_coord *fake_client(const struct fake_server *s)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", s->port);
    struct sm_coord_etcd_config cfg = {.endpoints = {url}, .endpoints_count = 1};
    struct sm_coord *c;
    cr_assert_eq(sm_coord_etcd_open(&cfg, &c), 0);
    h.clients[h.clients_count++] = c;
    return c;
}

Test(etcd, not_etcd_is_corrupt)
{
    static struct fake_server s1, s2;
    fake_start(&s1, "hello world");
    fake_start(&s2, "{\"header\":{\"revision\":\"x\"},\"a\":1}");
    struct sm_coord *c1 = fake_client(&s1), *c2 = fake_client(&s2);
    uint64_t id;
    struct sm_coord_result r;
    cr_assert_eq(sm_coord_get(c1, "/k", false, &id), 0);
    r = done(c1, id);
    cr_assert_eq(r.err, SM_E_CORRUPT, "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_get(c2, "/k", false, &id), 0);
    r = done(c2, id);
    cr_assert_eq(r.err, SM_E_CORRUPT, "%s", r.message);
    sm_coord_result_free(&r);
    cr_assert_eq(sm_coord_lease_keepalive(c1, 5, &id), 0);
    r = done(c1, id);
    cr_assert_eq(r.err, SM_E_CORRUPT, "%s", r.message);
    sm_coord_result_free(&r);
    /* A watch stream of garbage ends the watch with CORRUPT. */
    cr_assert_eq(sm_coord_watch(c1, "/k", false, 0, &id), 0);
    r = done(c1, id);
    cr_assert_eq(r.err, SM_E_CORRUPT, "%s", r.message);
    sm_coord_result_free(&r);
    /* The fake servers' threads end with the test process. */
}

Test(etcd, parse_endpoints)
{
    struct sm_coord_etcd_config cfg;
    char buf[SM_COORD_ENDPOINTS_MAX][SM_COORD_ENDPOINT_BYTES_MAX];
    cr_assert_eq(sm_coord_etcd_parse_endpoints("etcd://10.0.0.1:2379,10.0.0.2:2379", &cfg, buf), 0);
    cr_assert_eq(cfg.endpoints_count, 2);
    cr_assert_str_eq(cfg.endpoints[0], "http://10.0.0.1:2379");
    cr_assert_str_eq(cfg.endpoints[1], "http://10.0.0.2:2379");
    cr_assert_eq(sm_coord_etcd_parse_endpoints("https://a:1", &cfg, buf), 0);
    cr_assert_str_eq(cfg.endpoints[0], "https://a:1");
    cr_assert_eq(sm_coord_etcd_parse_endpoints("", &cfg, buf), SM_E_BADARG);
    cr_assert_eq(sm_coord_etcd_parse_endpoints("etcd://", &cfg, buf), SM_E_BADARG);
    cr_assert_eq(sm_coord_etcd_parse_endpoints("a:1,,b:2", &cfg, buf), SM_E_BADARG);
    cr_assert_eq(sm_coord_etcd_parse_endpoints("a:1,", &cfg, buf), SM_E_BADARG);
    cr_assert_eq(sm_coord_etcd_parse_endpoints("a b:1", &cfg, buf), SM_E_BADARG);
    cr_assert_eq(sm_coord_etcd_parse_endpoints("ftp://a:1", &cfg, buf), SM_E_BADARG);
    char many[1024] = "";
    for (int i = 0; i <= SM_COORD_ENDPOINTS_MAX; i++)
        snprintf(many + strlen(many), sizeof many - strlen(many), "%sh%d:1", i ? "," : "", i);
    cr_assert_eq(sm_coord_etcd_parse_endpoints(many, &cfg, buf), SM_E_TOOLARGE);
    char longest[SM_COORD_ENDPOINT_BYTES_MAX + 8];
    memset(longest, 'h', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    cr_assert_eq(sm_coord_etcd_parse_endpoints(longest, &cfg, buf), SM_E_TOOLARGE);
    struct sm_coord *c;
    struct sm_coord_etcd_config none = {0};
    cr_assert_eq(sm_coord_etcd_open(&none, &c), SM_E_BADARG);
    struct sm_coord_etcd_config bad = {.endpoints = {"127.0.0.1:2379"}, .endpoints_count = 1};
    cr_assert_eq(sm_coord_etcd_open(&bad, &c), SM_E_BADARG, "an endpoint needs its scheme");
}
