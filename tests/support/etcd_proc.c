/* Real etcd processes for tests (see etcd_proc.h). */
#include "etcd_proc.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ETCD_BINARY   "/usr/bin/etcd"
#define READY_WAIT_MS 20000

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Ports for etcd. A port the kernel hands out for bind(port 0) comes from the ephemeral range,
 * where any process's outgoing connection may take it between our close() and etcd's bind()
 * (seen under load: "bind: address already in use"). So ports are drawn at random below the
 * ephemeral range (/proc/sys/net/ipv4/ip_local_port_range starts at 32768 by default), checked
 * free by binding them, and held bound until every port of the cluster is chosen, so two
 * members never get the same one. A clash that still happens (another test drew the same port)
 * is retried with new ports by etcd_cluster_start.
 */
#define PORT_LOW      20000
#define PORT_HIGH     32000
#define PORT_ATTEMPTS 1000
#define START_TRIES   3

static int port_hold(int *fd_out)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() ^ (unsigned)time(NULL);
    for (int attempt = 0; attempt < PORT_ATTEMPTS; attempt++) {
        int port = PORT_LOW + (int)(rand_r(&seed) % (PORT_HIGH - PORT_LOW));
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        cr_assert(fd >= 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0) {
            *fd_out = fd;
            return port;
        }
        close(fd);
    }
    cr_assert_fail("no free port in %d..%d after %d tries", PORT_LOW, PORT_HIGH, PORT_ATTEMPTS);
    return 0;
}

int etcd_proc_free_port(void)
{
    int fd = -1;
    int port = port_hold(&fd);
    close(fd);
    return port;
}

void etcd_proc_free_ports(int *ports, int n)
{
    for (int i = 0; i < n; i++) {
        bool again;
        do {
            ports[i] = etcd_proc_free_port();
            again = false;
            for (int j = 0; j < i; j++)
                again = again || ports[j] == ports[i];
        } while (again);
    }
}

void etcd_cluster_spec(const struct etcd_cluster *c, char *out, size_t cap)
{
    size_t used = 0;
    for (int i = 0; i < c->members_count; i++) {
        int n = snprintf(out + used, cap - used, "%s127.0.0.1:%d", i ? "," : "etcd://",
                         c->members[i].client_port);
        cr_assert(n > 0 && (size_t)n < cap - used, "the etcd endpoint list does not fit");
        used += (size_t)n;
    }
}

/* True when member i's log says a port was taken: the start is worth retrying on new ports. */
static bool lost_port_race(const struct etcd_cluster *c, int i)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", c->dir, c->members[i].name);
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f))
        found = strstr(line, "address already in use") != NULL;
    fclose(f);
    return found;
}

static void initial_cluster(const struct etcd_cluster *c, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (int i = 0; i < c->members_count; i++) {
        size_t used = strlen(buf);
        snprintf(buf + used, cap - used, "%s%s=http://127.0.0.1:%d", i ? "," : "",
                 c->members[i].name, c->members[i].peer_port);
    }
}

static void spawn(struct etcd_cluster *c, int i)
{
    struct etcd_member *m = &c->members[i];
    char data[400], log[400], client[64], peer[64], cluster[400];
    snprintf(data, sizeof data, "%s/%s", c->dir, m->name);
    snprintf(log, sizeof log, "%s/%s.log", c->dir, m->name);
    snprintf(client, sizeof client, "http://127.0.0.1:%d", m->client_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", m->peer_port);
    initial_cluster(c, cluster, sizeof cluster);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        /* etcd dies with the test process, even when a crash skips the teardown. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(ETCD_BINARY, ETCD_BINARY, "--name", m->name, "--data-dir", data,
              "--listen-client-urls", client, "--advertise-client-urls", client,
              "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
              "--initial-cluster", cluster, "--initial-cluster-state", "new",
              "--initial-cluster-token", c->dir, "--heartbeat-interval", "25", "--election-timeout",
              "250", "--logger", "zap", "--log-level", "warn", (char *)NULL);
        _exit(127);
    }
    m->pid = pid;
}

bool etcd_member_healthy(const struct etcd_cluster *c, int i, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)c->members[i].client_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = false;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
        static const char req[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
        if (write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
            char buf[2048];
            size_t len = 0;
            ssize_t got;
            while (len < sizeof buf - 1 && (got = read(fd, buf + len, sizeof buf - 1 - len)) > 0)
                len += (size_t)got;
            buf[len] = '\0';
            ok = strstr(buf, "\"health\":\"true\"") != NULL;
        }
    }
    close(fd);
    return ok;
}

static void print_log(const struct etcd_cluster *c, int i)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s.log", c->dir, c->members[i].name);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f) && n++ < 40)
        fprintf(stderr, "%s: %s", c->members[i].name, line);
    fclose(f);
}

/* Waits until member i is healthy; false (log printed) when it exits or takes too long. */
static bool wait_ready(struct etcd_cluster *c, int i)
{
    for (int waited = 0; waited < READY_WAIT_MS; waited += 20) {
        if (etcd_member_healthy(c, i, 500))
            return true;
        int status;
        if (waitpid(c->members[i].pid, &status, WNOHANG) == c->members[i].pid) {
            c->members[i].pid = 0;
            break;
        }
        sleep_ms(20);
    }
    print_log(c, i);
    return false;
}

/* One attempt: new directory, new ports, every member spawned; 0 when all are healthy, else
 * the index + 1 of a member that did not get ready (its log printed, the cluster stopped). */
static int start_once(struct etcd_cluster *c, int n, bool *port_race)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s/shardmart-etcd.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    cr_assert(mkdtemp(c->dir));
    c->members_count = n;
    int held[2 * ETCD_PROC_MEMBERS_MAX];
    for (int i = 0; i < n; i++) {
        struct etcd_member *m = &c->members[i];
        snprintf(m->name, sizeof m->name, "m%d", i);
        m->client_port = port_hold(&held[2 * i]);
        m->peer_port = port_hold(&held[2 * i + 1]);
        snprintf(m->endpoint, sizeof m->endpoint, "http://127.0.0.1:%d", m->client_port);
    }
    for (int i = 0; i < 2 * n; i++)
        close(held[i]);
    for (int i = 0; i < n; i++)
        spawn(c, i);
    for (int i = 0; i < n; i++) {
        if (!wait_ready(c, i)) {
            *port_race = lost_port_race(c, i);
            etcd_cluster_stop(c);
            return i + 1;
        }
    }
    return 0;
}

void etcd_cluster_start(struct etcd_cluster *c, int n)
{
    cr_assert(n >= 1 && n <= ETCD_PROC_MEMBERS_MAX);
    cr_assert(access(ETCD_BINARY, X_OK) == 0,
              ETCD_BINARY " missing: scripts/install-deps installs etcd-server");
    for (int attempt = 1;; attempt++) {
        bool port_race = false;
        int failed = start_once(c, n, &port_race);
        if (failed == 0)
            return;
        if (!port_race || attempt == START_TRIES)
            cr_assert_fail("etcd member %d did not get ready (attempt %d of %d)", failed - 1,
                           attempt, START_TRIES);
        fprintf(stderr, "etcd member %d lost a port race; starting again on new ports\n",
                failed - 1);
    }
}

void etcd_member_stop(struct etcd_cluster *c, int i, bool kill9)
{
    struct etcd_member *m = &c->members[i];
    if (m->pid > 0) {
        kill(m->pid, kill9 ? SIGKILL : SIGTERM);
        waitpid(m->pid, NULL, 0);
        m->pid = 0;
    }
}

void etcd_member_restart(struct etcd_cluster *c, int i)
{
    cr_assert_eq(c->members[i].pid, 0, "member %d is stopped", i);
    spawn(c, i);
    if (!wait_ready(c, i)) {
        etcd_cluster_stop(c);
        cr_assert_fail("etcd member %d did not come back", i);
    }
}

void etcd_cluster_stop(struct etcd_cluster *c)
{
    for (int i = 0; i < c->members_count; i++)
        etcd_member_stop(c, i, true);
    c->members_count = 0;
    if (c->dir[0]) {
        pid_t pid = fork();
        if (pid == 0) {
            execlp("rm", "rm", "-rf", c->dir, (char *)NULL);
            _exit(127);
        }
        if (pid > 0)
            waitpid(pid, NULL, 0);
        c->dir[0] = '\0';
    }
}
