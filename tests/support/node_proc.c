/* Real node processes for integration tests (see node_proc.h). */
#include "node_proc.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ARGS_MAX 64

const char *node_proc_binary(void)
{
    const char *bin = getenv("SHARDMART_BIN");
    return bin ? bin : "./shardmart";
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void print_output(const struct node_proc *p)
{
    char path[400];
    snprintf(path, sizeof path, "%s/out", p->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f))
        fprintf(stderr, "node: %s", line);
    fclose(f);
}

static void remove_tree(const char *dir);

/* A struct reused for the next incarnation of a node: the previous one's own directory (its
 * ready and out files) is removed, unless that process still runs or the directory holds the
 * data directory the new one runs on (a restart on its data: the caller removes it). Without
 * this every restart on another directory's data left one behind. */
static void forget_previous(const struct node_proc *p, const char *data_dir)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s/shardmart-test.",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    size_t n = strnlen(p->dir, sizeof p->dir);
    if (n == sizeof p->dir || strncmp(p->dir, prefix, strlen(prefix)) != 0)
        return; /* never set (or not one of ours) */
    if (p->pid > 0 && kill(p->pid, 0) == 0)
        return;
    if (data_dir && strncmp(data_dir, p->dir, n) == 0 && (data_dir[n] == '/' || !data_dir[n]))
        return;
    remove_tree(p->dir);
}

int node_proc_start(struct node_proc *p, const char *data_dir, const char *const *flags)
{
    forget_previous(p, data_dir);
    memset(p, 0, sizeof *p);
    snprintf(p->dir, sizeof p->dir, "%s/shardmart-test.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(p->dir))
        return -1;
    if (data_dir)
        snprintf(p->data_dir, sizeof p->data_dir, "%s", data_dir);
    else
        snprintf(p->data_dir, sizeof p->data_dir, "%s/data", p->dir);
    char ready[400], out[400];
    snprintf(ready, sizeof ready, "%s/ready", p->dir);
    snprintf(out, sizeof out, "%s/out", p->dir);
    const char *argv[ARGS_MAX];
    int n = 0;
    argv[n++] = node_proc_binary();
    argv[n++] = "start";
    argv[n++] = "--port";
    argv[n++] = "0";
    argv[n++] = "--http-port";
    argv[n++] = "0";
    argv[n++] = "--data";
    argv[n++] = p->data_dir;
    argv[n++] = "--ready-file";
    argv[n++] = ready;
    /* Small tables and few partitions keep start-up quick under ASan, which zeroes whatever it
     * allocates; a test that wants more says so in flags, which come later and win. */
    static const char *const small[] = {"--partitions",    "4",      "--orders-max",      "8192",
                                        "--skus-max",      "4096",   "--accounts-max",    "4096",
                                        "--holds-max",     "4096",   "--request-ids-max", "20000",
                                        "--segment-bytes", "1048576"};
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        argv[n++] = small[i];
    for (int i = 0; flags && flags[i] && n < ARGS_MAX - 1; i++)
        argv[n++] = flags[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    for (int waited = 0; waited < 20000; waited += 10) {
        FILE *f = fopen(ready, "r");
        if (f) {
            int ok = fscanf(f, "%d %d", &p->resp_port, &p->http_port);
            fclose(f);
            if (ok == 2)
                return 0;
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            p->pid = 0;
            print_output(p);
            return -1;
        }
        sleep_ms(10);
    }
    print_output(p);
    node_proc_kill(p);
    return -1;
}

int node_proc_run(const char *const *args, char *out, size_t out_cap)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    const char *argv[ARGS_MAX];
    int n = 0;
    argv[n++] = node_proc_binary();
    for (int i = 0; args[i] && n < ARGS_MAX - 1; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t got;
    char sink[4096];
    while ((got = read(pipefd[0], sink, sizeof sink)) > 0) {
        size_t take = (size_t)got;
        if (out_cap > 0 && len + take > out_cap - 1)
            take = out_cap - 1 - len;
        memcpy(out + len, sink, take);
        len += take;
    }
    close(pipefd[0]);
    if (out_cap > 0)
        out[len] = '\0';
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void remove_tree(const char *dir)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("rm", "rm", "-rf", dir, (char *)NULL);
        _exit(127);
    }
    int status;
    waitpid(pid, &status, 0);
}

int node_proc_stop(struct node_proc *p, bool keep_dir)
{
    int status = 0, code = -1;
    if (p->pid > 0) {
        kill(p->pid, SIGTERM);
        waitpid(p->pid, &status, 0);
        code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        p->pid = 0;
    }
    if (!keep_dir && p->dir[0])
        remove_tree(p->dir);
    return code;
}

void node_proc_kill(struct node_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
}

int node_proc_connect(int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

bool node_proc_send(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

size_t node_proc_recv(int fd, void *buf, size_t expect)
{
    size_t got = 0;
    while (got < expect) {
        ssize_t n = recv(fd, (char *)buf + got, expect - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

bool node_proc_closed(int fd, int timeout_ms)
{
    char sink[4096];
    for (int waited = 0; waited <= timeout_ms; waited += 50) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0) {
            ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                return true;
        }
    }
    return false;
}
