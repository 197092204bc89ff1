/*
 * SHARDMART_FAULT (fault.h): a file-system table that forwards every call to the real one and
 * raises SIGKILL at the armed moment. Only calls on the thread that armed it (the loop, which
 * commits every batch, and the snapshot child forked from it) count: the log's spare segment is
 * zero-filled and synced per MiB on a worker thread, and counting those would spend every N
 * before the first request.
 */
#include "server/fault.h"

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

enum fault_kind {
    FAULT_BEFORE_FSYNC,
    FAULT_AFTER_FSYNC,
    FAULT_MID_WRITE,
    FAULT_BEFORE_SNAPSHOT_RENAME,
    FAULT_AFTER_SNAPSHOT_RENAME,
};

/* The fault names, in the order of enum fault_kind; the snapshot ones may omit ":N". */
static const char *const fault_names[] = {
    "kill-before-fsync",           "kill-after-fsync",           "kill-mid-write",
    "kill-before-snapshot-rename", "kill-after-snapshot-rename",
};

/* The one armed fault of this process. */
static struct {
    const struct sm_fs *real;
    enum fault_kind kind;
    uint64_t at;    /* the count at which to die (1 = the first) */
    uint64_t count; /* calls of the kind counted so far, on the loop thread */
    pid_t node_pid; /* the node; a snapshot child kills it first */
    pthread_t loop_thread;
} fault;

static _Noreturn void die(void)
{
    /* A snapshot child is not the node: the node dies first, as with a machine crash. */
    if (getpid() != fault.node_pid)
        (void)kill(fault.node_pid, SIGKILL);
    (void)raise(SIGKILL);
    abort(); /* not reached: SIGKILL cannot be caught */
}

/* True when this call of the armed kind is the one to die at. */
static bool hit(enum fault_kind kind)
{
    return fault.kind == kind && pthread_equal(pthread_self(), fault.loop_thread) &&
           ++fault.count == fault.at;
}

static int f_open(void *ctx, const char *path, int flags, int *fd_out)
{
    (void)ctx;
    return fault.real->open(fault.real->ctx, path, flags, fd_out);
}

static int f_close(void *ctx, int fd)
{
    (void)ctx;
    return fault.real->close(fault.real->ctx, fd);
}

/* The torn write: the first half of the bytes reach the file, then the process dies. */
static int f_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    (void)ctx;
    if (!hit(FAULT_MID_WRITE))
        return fault.real->pwritev(fault.real->ctx, fd, iov, iovcnt, offset);
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    size_t half = total / 2;
    for (int i = 0; i < iovcnt && half > 0; i++) {
        size_t n = iov[i].iov_len < half ? iov[i].iov_len : half;
        struct iovec part = {.iov_base = iov[i].iov_base, .iov_len = n};
        if (fault.real->pwritev(fault.real->ctx, fd, &part, 1, offset) < 0)
            break;
        offset += n;
        half -= n;
    }
    die();
}

static int f_pread(void *ctx, int fd, void *buf, size_t len, uint64_t offset, size_t *got_bytes)
{
    (void)ctx;
    return fault.real->pread(fault.real->ctx, fd, buf, len, offset, got_bytes);
}

static int sync_with_fault(int fd, int (*sync)(void *ctx, int fd))
{
    if (hit(FAULT_BEFORE_FSYNC))
        die();
    int rc = sync(fault.real->ctx, fd);
    if (hit(FAULT_AFTER_FSYNC))
        die();
    return rc;
}

static int f_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return sync_with_fault(fd, fault.real->fdatasync);
}

static int f_fsync(void *ctx, int fd)
{
    (void)ctx;
    return sync_with_fault(fd, fault.real->fsync);
}

static int f_truncate(void *ctx, int fd, uint64_t len_bytes)
{
    (void)ctx;
    return fault.real->truncate(fault.real->ctx, fd, len_bytes);
}

static int f_size(void *ctx, int fd, uint64_t *size_bytes)
{
    (void)ctx;
    return fault.real->size(fault.real->ctx, fd, size_bytes);
}

/* Only snapshots rename a ".tmp" file into place (wal/snapshot.c). */
static int f_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    size_t n = strlen(from);
    bool snapshot = n > 4 && strcmp(from + n - 4, ".tmp") == 0;
    if (snapshot && hit(FAULT_BEFORE_SNAPSHOT_RENAME))
        die();
    int rc = fault.real->rename(fault.real->ctx, from, to);
    if (snapshot && hit(FAULT_AFTER_SNAPSHOT_RENAME))
        die();
    return rc;
}

static int f_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return fault.real->unlink(fault.real->ctx, path);
}

static int f_mkdir(void *ctx, const char *path)
{
    (void)ctx;
    return fault.real->mkdir(fault.real->ctx, path);
}

static int f_list(void *ctx, const char *dir, sm_fs_list_fn fn, void *fn_ctx)
{
    (void)ctx;
    return fault.real->list(fault.real->ctx, dir, fn, fn_ctx);
}

static int f_fsync_dir(void *ctx, const char *dir)
{
    (void)ctx;
    return fault.real->fsync_dir(fault.real->ctx, dir);
}

static const struct sm_fs fault_fs = {
    .ctx = NULL,
    .open = f_open,
    .close = f_close,
    .pwritev = f_pwritev,
    .pread = f_pread,
    .fdatasync = f_fdatasync,
    .fsync = f_fsync,
    .truncate = f_truncate,
    .size = f_size,
    .rename = f_rename,
    .unlink = f_unlink,
    .mkdir = f_mkdir,
    .list = f_list,
    .fsync_dir = f_fsync_dir,
};

int server_fault_arm(const char *spec, const struct sm_fs **fs, char *why, size_t why_cap)
{
    ASSERT(spec != NULL && fs != NULL);
    for (size_t k = 0; k < sizeof fault_names / sizeof fault_names[0]; k++) {
        size_t n = strlen(fault_names[k]);
        if (strncmp(spec, fault_names[k], n) != 0 || (spec[n] != '\0' && spec[n] != ':'))
            continue;
        bool snapshot = k >= FAULT_BEFORE_SNAPSHOT_RENAME;
        char *end = NULL;
        unsigned long long at = spec[n] == ':' ? strtoull(spec + n + 1, &end, 10) : 0;
        if (spec[n] == '\0' && snapshot)
            at = 1;
        else if (spec[n] == '\0' || end == spec + n + 1 || *end != '\0' || at < 1 ||
                 at > SERVER_FAULT_COUNT_MAX)
            break;
        fault.real = sm_fs_posix();
        fault.kind = (enum fault_kind)k;
        fault.at = at;
        fault.count = 0;
        fault.node_pid = getpid();
        fault.loop_thread = pthread_self();
        *fs = &fault_fs;
        return 0;
    }
    (void)snprintf(why, why_cap,
                   "SHARDMART_FAULT='%s': want kill-before-fsync:N, kill-after-fsync:N, "
                   "kill-mid-write:N, kill-before-snapshot-rename[:N] or "
                   "kill-after-snapshot-rename[:N], N in 1..%u",
                   spec, SERVER_FAULT_COUNT_MAX);
    return SM_E_BADARG;
}
