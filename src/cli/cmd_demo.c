/*
 * `shardmart demo`: the cluster's promise in one command. It starts, on loopback in a temporary
 * directory, an etcd (Debian etcd-server, /usr/bin/etcd) and three `shardmart start --cluster`
 * nodes (R = 3, 1 s leases), runs a flash sale through the cluster client (`shardmart bench
 * flash-sale --cluster`, open loop, with a history), kills the sold SKU's primary with -9 in the
 * middle of it, and shows the sale finishing on the new primary with exactly the stock sold:
 * `shardmart check` proves the history against the final state, and the SKU's counts add up.
 * Then it restarts the killed node on its data and shows it back in the in-sync set. Every
 * process is started here, stopped by its PID (and dies with the demo: PR_SET_PDEATHSIG), and
 * the directory is removed unless --keep.
 *
 * Written by hand rather than as a script so that it ships inside the binary and needs nothing
 * but etcd besides it; each step is a child process of this binary (start, bench, check).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/resp_client.h"

const char cli_demo_usage[] =
    "usage: shardmart demo [--keep] [--stock N] [--rate R]\n"
    "\n"
    "Starts an etcd and three cluster nodes on loopback (replicas 3, lease 1 s), runs a flash\n"
    "sale of one SKU through the cluster client, kills the SKU's primary with -9 midway, and\n"
    "shows the sale finishing with exactly the stock sold: `shardmart check` proves the\n"
    "history, and the SKU's counts add up. Then the killed node comes back on its data.\n"
    "Needs /usr/bin/etcd (scripts/install-deps installs Debian's etcd-server).\n"
    "\n"
    "  --stock N   units of the SKU (default 2000, 10..1000000)\n"
    "  --rate R    orders per second the buyers send (default 1000, 100..100000); the sale\n"
    "              offers 1.5 x stock orders, so it lasts 1.5 x stock / R seconds\n"
    "  --keep      keep the directory (logs, data, history) and print where it is\n"
    "\n"
    "Exit 0: the sale sold exactly its stock and check passed. Exit 1: it did not, or a\n"
    "process failed (its log is printed). Exit 2: bad usage.\n";

#define DEMO_NODES       3
#define DEMO_PARTITIONS  "16"
#define DEMO_LEASE_MS    "1000"
#define DEMO_READY_MS    30000 /* every node ready within this long */
#define DEMO_STOCK_MIN   10
#define DEMO_STOCK_MAX   1000000
#define DEMO_RATE_MIN    100
#define DEMO_RATE_MAX    100000
#define DEMO_ARGS_MAX    48
#define DEMO_PATH_BYTES  512
#define DEMO_ETCD        "/usr/bin/etcd"
#define DEMO_ISR_BACK_MS 30000 /* the restarted node back in the in-sync set within this long */

struct demo {
    char dir[256];
    char self[DEMO_PATH_BYTES];
    pid_t etcd;
    int etcd_port, etcd_peer_port;
    pid_t node[DEMO_NODES];
    int resp[DEMO_NODES], http[DEMO_NODES], peer[DEMO_NODES];
    char spec[64];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void pause_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A port the kernel says is free now (bound, read back, released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Starts argv with stdout and stderr appended to log; the child dies with the demo. */
static pid_t spawn(const char *const *argv, const char *log)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    execv(argv[0], (char *const *)argv);
    fprintf(stderr, "shardmart demo: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

static void stop_pid(pid_t *pid, int sig)
{
    if (*pid <= 0)
        return;
    kill(*pid, sig);
    int status;
    waitpid(*pid, &status, 0);
    *pid = 0;
}

static void print_tail(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    static char buf[8192];
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, size > (long)sizeof buf - 1 ? size - (long)sizeof buf + 1 : 0, SEEK_SET);
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "---- %s ----\n%s\n", path, buf);
}

static void node_log(const struct demo *d, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s/node%d.log", d->dir, i);
}

static int start_node(struct demo *d, int i)
{
    char id[24], adv[48], port[24], http[24], data[320], log[320];
    snprintf(id, sizeof id, "%d", i);
    snprintf(adv, sizeof adv, "127.0.0.1:%d", d->peer[i]);
    snprintf(port, sizeof port, "%d", d->resp[i]);
    snprintf(http, sizeof http, "%d", d->http[i]);
    snprintf(data, sizeof data, "%s/node%d", d->dir, i);
    node_log(d, i, log, sizeof log);
    const char *const argv[] = {d->self,
                                "start",
                                "--cluster",
                                d->spec,
                                "--node-id",
                                id,
                                "--advertise",
                                adv,
                                "--port",
                                port,
                                "--http-port",
                                http,
                                "--data",
                                data,
                                "--replicas",
                                "3",
                                "--partitions",
                                DEMO_PARTITIONS,
                                "--lease-ms",
                                DEMO_LEASE_MS,
                                "--skus-max",
                                "1024",
                                "--orders-max",
                                "200000",
                                "--accounts-max",
                                "1024",
                                "--holds-max",
                                "1024",
                                "--request-ids-max",
                                "200000",
                                "--cluster-name",
                                "demo",
                                NULL};
    d->node[i] = spawn(argv, log);
    return d->node[i] > 0 ? 0 : -1;
}

/* One command on node i; the reply's text into out (a bulk or status), or its error code. */
static bool ask(const struct demo *d, int i, int argc, const char *const *argv, char *out,
                size_t cap)
{
    struct rc_conn c;
    if (rc_open(&c, "127.0.0.1", d->resp[i]) != 0)
        return false;
    rc_command(&c, argc, argv);
    bool ok = rc_wait(&c, 2000) == 0 && rc_text(&c, out, cap);
    rc_close(&c);
    return ok;
}

static bool node_ready(const struct demo *d, int i)
{
    char text[4096];
    const char *const argv[] = {"CLUSTER.INFO"};
    return ask(d, i, 1, argv, text, sizeof text) && strstr(text, "cluster_state:ok") &&
           strstr(text, "replication:on");
}

static int wait_ready(struct demo *d, int i)
{
    int64_t until = mono_ms() + DEMO_READY_MS;
    while (!node_ready(d, i)) {
        int status;
        if (waitpid(d->node[i], &status, WNOHANG) == d->node[i]) {
            d->node[i] = 0;
            char log[300];
            node_log(d, i, log, sizeof log);
            fprintf(stderr, "shardmart demo: node %d exited\n", i);
            print_tail(log);
            return -1;
        }
        if (mono_ms() >= until) {
            fprintf(stderr, "shardmart demo: node %d not ready after %d ms\n", i, DEMO_READY_MS);
            return -1;
        }
        pause_ms(50);
    }
    return 0;
}

/* Partition p's line of CLUSTER.PARTITIONS as a live node sees it: primary and ISR size. */
static bool partition_config(const struct demo *d, unsigned p, int *primary, unsigned *epoch,
                             int *isr)
{
    for (int i = 0; i < DEMO_NODES; i++) {
        if (d->node[i] <= 0)
            continue;
        static char text[16384];
        const char *const argv[] = {"CLUSTER.PARTITIONS"};
        if (!ask(d, i, 1, argv, text, sizeof text))
            continue;
        for (const char *line = text; line && *line; line = strchr(line, '\n')) {
            if (*line == '\n')
                line++;
            unsigned q, prim;
            char isrs[64];
            if (sscanf(line, "%u epoch=%u primary=%u isr=%63s", &q, epoch, &prim, isrs) == 4 &&
                q == p) {
                *primary = (int)prim;
                *isr = 1;
                for (const char *c = isrs; *c; c++)
                    *isr += *c == ',';
                return true;
            }
        }
    }
    return false;
}

/* Reads one integer field of STOCK.GET from whichever live node answers it (the primary). */
static bool stock_fields(const struct demo *d, const char *sku, int64_t *available,
                         int64_t *reserved, int64_t *sold)
{
    for (int i = 0; i < DEMO_NODES; i++) {
        if (d->node[i] <= 0)
            continue;
        struct rc_conn c;
        if (rc_open(&c, "127.0.0.1", d->resp[i]) != 0)
            continue;
        const char *const argv[] = {"STOCK.GET", sku};
        rc_command(&c, 2, argv);
        char code[32];
        bool ok = rc_wait(&c, 2000) == 0 && !rc_is_error(&c, code, sizeof code) &&
                  rc_field_int(&c, "available", available) &&
                  rc_field_int(&c, "reserved", reserved) && rc_field_int(&c, "sold", sold);
        rc_close(&c);
        if (ok)
            return true;
    }
    return false;
}

/* Runs a child of this binary to completion, its output to log; the exit status. */
static int run_child(const char *const *argv, const char *log)
{
    pid_t pid = spawn(argv, log);
    if (pid < 0)
        return -1;
    int status;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void print_file(const char *path, const char *indent)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f))
        printf("%s%s", indent, line);
    fclose(f);
}

/* "the first SKU (NAME) is in partition P" from the bench's stderr; false until it is there. */
static bool bench_sku(const char *err_path, char *sku, size_t cap, unsigned *p)
{
    FILE *f = fopen(err_path, "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        const char *a = strstr(line, "the first SKU (");
        const char *b = a ? strstr(a, ") is in partition ") : NULL;
        if (a && b && (size_t)(b - a - 15) < cap) {
            memcpy(sku, a + 15, (size_t)(b - a - 15));
            sku[b - a - 15] = '\0';
            found = sscanf(b, ") is in partition %u", p) == 1;
        }
    }
    fclose(f);
    return found;
}

static int parse_uint(const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!end || *end || end == s || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int demo_run(struct demo *d, long stock, long rate)
{
    printf("shardmart demo: etcd and 3 nodes in %s (replicas 3, %s partitions, lease %s ms)\n",
           d->dir, DEMO_PARTITIONS, DEMO_LEASE_MS);
    d->etcd_port = free_port();
    d->etcd_peer_port = free_port();
    char client[64], peer[64], initial[96], data[320], log[320];
    snprintf(client, sizeof client, "http://127.0.0.1:%d", d->etcd_port);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", d->etcd_peer_port);
    snprintf(initial, sizeof initial, "demo=%s", peer);
    snprintf(data, sizeof data, "%s/etcd", d->dir);
    snprintf(log, sizeof log, "%s/etcd.log", d->dir);
    const char *const etcd[] = {DEMO_ETCD, "--name",
                                "demo",    "--data-dir",
                                data,      "--listen-client-urls",
                                client,    "--advertise-client-urls",
                                client,    "--listen-peer-urls",
                                peer,      "--initial-advertise-peer-urls",
                                peer,      "--initial-cluster",
                                initial,   "--heartbeat-interval",
                                "25",      "--election-timeout",
                                "250",     "--log-level",
                                "warn",    NULL};
    d->etcd = spawn(etcd, log);
    snprintf(d->spec, sizeof d->spec, "etcd://127.0.0.1:%d", d->etcd_port);
    for (int i = 0; i < DEMO_NODES; i++) {
        d->resp[i] = free_port();
        d->http[i] = free_port();
        d->peer[i] = free_port();
        if (d->resp[i] < 0 || d->http[i] < 0 || d->peer[i] < 0 || start_node(d, i) != 0)
            return 1;
    }
    for (int i = 0; i < DEMO_NODES; i++)
        if (wait_ready(d, i) != 0)
            return 1;
    printf("  3 nodes ready: RESP on 127.0.0.1:%d, :%d, :%d\n", d->resp[0], d->resp[1], d->resp[2]);

    /* The sale: 1.5 x stock orders of distinct buyers, open loop at `rate` per second. */
    char hist[320], out[320], err[320], stock_s[24], rate_s[24], requests_s[24], port_s[24];
    snprintf(hist, sizeof hist, "%s/history.tsv", d->dir);
    snprintf(out, sizeof out, "%s/bench.out", d->dir);
    snprintf(err, sizeof err, "%s/bench.err", d->dir);
    snprintf(stock_s, sizeof stock_s, "%ld", stock);
    snprintf(rate_s, sizeof rate_s, "%ld", rate);
    snprintf(requests_s, sizeof requests_s, "%ld", stock * 3 / 2);
    snprintf(port_s, sizeof port_s, "%d", d->resp[0]);
    const char *const bench[] = {d->self,      "bench",     "flash-sale", "--cluster", "--port",
                                 port_s,       "--clients", "16",         "--rate",    rate_s,
                                 "--requests", requests_s,  "--stock",    stock_s,     "--users",
                                 "1000000000", "--history", hist,         NULL};
    int out_fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out_fd < 0)
        return 1;
    close(out_fd);
    pid_t parent = getpid();
    pid_t bench_pid = fork();
    if (bench_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int o = open(out, O_WRONLY | O_CLOEXEC),
            e = open(err, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (o >= 0)
            dup2(o, 1);
        if (e >= 0)
            dup2(e, 2);
        execv(bench[0], (char *const *)bench);
        _exit(127);
    }
    printf("  flash sale: %ld units of one SKU, %s orders from distinct buyers at %ld/s\n", stock,
           requests_s, rate);
    char sku[128] = "";
    unsigned p = 0;
    int64_t until = mono_ms() + 10000;
    while (!bench_sku(err, sku, sizeof sku, &p)) {
        if (mono_ms() >= until || waitpid(bench_pid, NULL, WNOHANG) == bench_pid) {
            fprintf(stderr, "shardmart demo: the bench did not start\n");
            print_tail(err);
            return 1;
        }
        pause_ms(20);
    }
    /* Midway: a third of the sale's time in, the SKU's primary dies. */
    pause_ms((int)(stock * 3 / 2 * 1000 / rate / 3));
    int victim = -1, isr = 0;
    unsigned epoch = 0;
    if (!partition_config(d, p, &victim, &epoch, &isr) || victim < 0 || victim >= DEMO_NODES) {
        fprintf(stderr, "shardmart demo: no primary for partition %u\n", p);
        return 1;
    }
    int64_t sold_before = 0, reserved_before = 0, available_before = 0;
    (void)stock_fields(d, sku, &available_before, &reserved_before, &sold_before);
    int64_t t_kill = mono_ms();
    stop_pid(&d->node[victim], SIGKILL);
    printf("  kill -9 of node %d, primary of the SKU's partition %u (epoch %u), with %" PRId64
           " of %ld units sold\n",
           victim, p, epoch, reserved_before + sold_before, stock);
    int primary = victim;
    unsigned epoch2 = epoch;
    while (primary == victim || primary < 0) {
        if (mono_ms() - t_kill > 20000) {
            fprintf(stderr, "shardmart demo: no new primary 20 s after the kill\n");
            return 1;
        }
        pause_ms(20);
        if (!partition_config(d, p, &primary, &epoch2, &isr))
            primary = -1;
    }
    printf("  node %d is the new primary (epoch %u) %" PRId64 " ms after the kill\n", primary,
           epoch2, mono_ms() - t_kill);
    int status = 0;
    waitpid(bench_pid, &status, 0);
    int bench_rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    printf("  the sale ended (bench exit %d):\n", bench_rc);
    print_file(out, "    ");
    int64_t available = -1, reserved = -1, sold = -1;
    if (!stock_fields(d, sku, &available, &reserved, &sold)) {
        fprintf(stderr, "shardmart demo: STOCK.GET %s: no answer\n", sku);
        return 1;
    }
    printf("  the SKU now: %" PRId64 " ordered (reserved %" PRId64 ", paid %" PRId64 "), %" PRId64
           " available, of %ld\n",
           reserved + sold, reserved, sold, available, stock);
    char check_log[320], live_port[24];
    snprintf(check_log, sizeof check_log, "%s/check.out", d->dir);
    snprintf(live_port, sizeof live_port, "%d", d->resp[primary]);
    const char *const check[] = {d->self, "check", hist, "--port", live_port, NULL};
    int check_rc = run_child(check, check_log);
    printf("  shardmart check of the history (every acknowledged order, nothing twice):\n");
    print_file(check_log, "    ");

    /* The killed node comes back on its data and rejoins the in-sync set. */
    if (start_node(d, victim) != 0 || wait_ready(d, victim) != 0)
        return 1;
    int64_t back = mono_ms();
    isr = 0;
    while (isr < DEMO_NODES && mono_ms() - back < DEMO_ISR_BACK_MS) {
        int prim = -1;
        unsigned ep = 0;
        if (!partition_config(d, p, &prim, &ep, &isr))
            isr = 0;
        if (isr < DEMO_NODES)
            pause_ms(50);
    }
    printf("  node %d restarted on its data: %s\n", victim,
           isr == DEMO_NODES ? "caught up and back in the partition's in-sync set"
                             : "not back in the in-sync set yet");
    bool exact = available == 0 && reserved + sold == stock;
    printf("\n%s: %ld units, %" PRId64 " sold through a primary's kill -9, %s, check %s\n",
           exact && check_rc == 0 ? "OK" : "FAILED", stock, reserved + sold,
           exact ? "exactly the stock" : "NOT the stock", check_rc == 0 ? "passed" : "FAILED");
    return exact && check_rc == 0 && bench_rc == 0 ? 0 : 1;
}

int cli_demo(int argc, char **argv)
{
    long stock = 2000, rate = 1000;
    bool keep = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--keep") == 0) {
            keep = true;
        } else if (strcmp(argv[i], "--stock") == 0 && i + 1 < argc &&
                   parse_uint(argv[i + 1], DEMO_STOCK_MIN, DEMO_STOCK_MAX, &stock) == 0) {
            i++;
        } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc &&
                   parse_uint(argv[i + 1], DEMO_RATE_MIN, DEMO_RATE_MAX, &rate) == 0) {
            i++;
        } else {
            fprintf(stderr, "shardmart demo: bad argument '%.100s'\n%s", argv[i], cli_demo_usage);
            return 2;
        }
    }
    if (access(DEMO_ETCD, X_OK) != 0) {
        fprintf(stderr,
                "shardmart demo: %s is missing: run scripts/install-deps (Debian's "
                "etcd-server)\n",
                DEMO_ETCD);
        return 1;
    }
    struct demo d = {0};
    ssize_t n = readlink("/proc/self/exe", d.self, sizeof d.self - 1);
    if (n <= 0)
        return 1;
    d.self[n] = '\0';
    snprintf(d.dir, sizeof d.dir, "%s/shardmart-demo.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(d.dir)) {
        fprintf(stderr, "shardmart demo: cannot create a directory: %s\n", strerror(errno));
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    int rc = demo_run(&d, stock, rate);
    for (int i = 0; i < DEMO_NODES; i++)
        stop_pid(&d.node[i], SIGTERM);
    stop_pid(&d.etcd, SIGTERM);
    if (keep || rc != 0) {
        printf("shardmart demo: logs, data and history kept in %s\n", d.dir);
    } else {
        char cmd[320];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", d.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "shardmart demo: could not remove %s\n", d.dir);
    }
    return rc;
}
