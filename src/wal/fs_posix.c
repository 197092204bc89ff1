/*
 * The real file system behind struct sm_fs (see fs.h): thin wrappers over POSIX that retry
 * EINTR and short writes and turn errno into negative return codes. It holds no state; file
 * descriptors are the kernel's.
 */
#include "wal/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int posix_open(void *ctx, const char *path, int flags, int *fd_out)
{
    (void)ctx;
    ASSERT(path != NULL && fd_out != NULL);
    int oflags = O_CLOEXEC | ((flags & SM_FS_WRITE) ? O_RDWR : O_RDONLY);
    if (flags & SM_FS_CREATE)
        oflags |= O_CREAT;
    if (flags & SM_FS_TRUNC)
        oflags |= O_TRUNC;
    int fd;
    do
        fd = open(path, oflags, 0644);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    *fd_out = fd;
    return 0;
}

static int posix_close(void *ctx, int fd)
{
    (void)ctx;
    /* Linux releases the descriptor even when close reports EINTR: never retry. */
    return close(fd) == 0 ? 0 : -errno;
}

static int posix_pwritev(void *ctx, int fd, const struct iovec *iov_in, int iovcnt, uint64_t offset)
{
    (void)ctx;
    ASSERT(iovcnt >= 0 && iovcnt <= 1024 /* IOV_MAX on Linux */);
    struct iovec iov[16];
    int left = iovcnt;
    const struct iovec *src = iov_in;
    while (left > 0) {
        int n = left < 16 ? left : 16;
        memcpy(iov, src, (size_t)n * sizeof iov[0]);
        int at = 0;
        while (at < n) {
            ssize_t w = pwritev(fd, iov + at, n - at, (off_t)offset);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                return -errno;
            if (w == 0)
                return -EIO;
            offset += (uint64_t)w;
            while (at < n && (size_t)w >= iov[at].iov_len)
                w -= (ssize_t)iov[at++].iov_len;
            if (at < n) {
                iov[at].iov_base = (uint8_t *)iov[at].iov_base + w;
                iov[at].iov_len -= (size_t)w;
            }
        }
        src += n;
        left -= n;
    }
    return 0;
}

static int posix_pread(void *ctx, int fd, void *buf, size_t len, uint64_t offset, size_t *got_bytes)
{
    (void)ctx;
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (uint8_t *)buf + got, len - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    ASSERT(got <= len);
    *got_bytes = got;
    return 0;
}

static int posix_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd) == 0 ? 0 : -errno;
}

static int posix_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd) == 0 ? 0 : -errno;
}

static int posix_truncate(void *ctx, int fd, uint64_t len_bytes)
{
    (void)ctx;
    return ftruncate(fd, (off_t)len_bytes) == 0 ? 0 : -errno;
}

static int posix_size(void *ctx, int fd, uint64_t *size_bytes)
{
    (void)ctx;
    struct stat st;
    if (fstat(fd, &st) != 0)
        return -errno;
    *size_bytes = (uint64_t)st.st_size;
    return 0;
}

static int posix_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) == 0 ? 0 : -errno;
}

static int posix_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) == 0 ? 0 : -errno;
}

static int posix_mkdir(void *ctx, const char *path)
{
    (void)ctx;
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    return -errno;
}

static int posix_list(void *ctx, const char *dir, sm_fs_list_fn fn, void *fn_ctx)
{
    (void)ctx;
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    int rc = 0;
    const struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        rc = fn(fn_ctx, e->d_name);
    }
    closedir(d);
    return rc;
}

static int posix_fsync_dir(void *ctx, const char *dir)
{
    (void)ctx;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) == 0 ? 0 : -errno;
    close(fd);
    return rc;
}

/* MAP_POPULATE maps the whole file at once (the page cache's pages, read ahead when cold) instead
 * of one fault per 4 KiB page as the reader walks it; a snapshot of 10^7 orders is ~2.3 GB. */
static int posix_map(void *ctx, int fd, uint64_t len, const void **addr_out)
{
    (void)ctx;
    ASSERT(len > 0 && addr_out != NULL);
    if (len > SIZE_MAX)
        return -ENOMEM;
    void *p = mmap(NULL, (size_t)len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    if (p == MAP_FAILED)
        return -errno;
    (void)madvise(p, (size_t)len, MADV_SEQUENTIAL); /* advice only: its failure changes nothing */
    *addr_out = p;
    return 0;
}

static int posix_unmap(void *ctx, const void *addr, uint64_t len)
{
    (void)ctx;
    ASSERT(addr != NULL && len > 0);
    return munmap((void *)addr, (size_t)len) == 0 ? 0 : -errno;
}

static const struct sm_fs posix_fs = {
    .ctx = NULL,
    .open = posix_open,
    .close = posix_close,
    .pwritev = posix_pwritev,
    .pread = posix_pread,
    .fdatasync = posix_fdatasync,
    .fsync = posix_fsync,
    .truncate = posix_truncate,
    .size = posix_size,
    .rename = posix_rename,
    .unlink = posix_unlink,
    .mkdir = posix_mkdir,
    .list = posix_list,
    .fsync_dir = posix_fsync_dir,
    .map = posix_map,
    .unmap = posix_unmap,
};

const struct sm_fs *sm_fs_posix(void)
{
    return &posix_fs;
}

int sm_fs_pread_full(const struct sm_fs *fs, int fd, void *buf, size_t len, uint64_t offset)
{
    size_t got = 0;
    int rc = fs->pread(fs->ctx, fd, buf, len, offset, &got);
    if (rc < 0)
        return rc;
    return got == len ? 0 : -EIO;
}

int sm_fs_pwrite(const struct sm_fs *fs, int fd, const void *buf, size_t len, uint64_t offset)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return fs->pwritev(fs->ctx, fd, &iov, 1, offset);
}
