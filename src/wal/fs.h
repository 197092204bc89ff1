/*
 * The file-system interface under the WAL and snapshots. Everything in src/wal/ touches the disk
 * only through a `struct sm_fs`, a table of function pointers, so the same log code runs on real
 * files (sm_fs_posix(), fs_posix.c) and on the in-memory faulty disk of the tests and of the
 * simulator (fs_faulty.c), which models the page cache: what was not fsync'ed can be lost or torn
 * by a simulated crash.
 *
 * Conventions, libuv style: every call returns 0 (or a count) on success and a negative errno
 * (-EIO, -ENOSPC, -ENOENT, ...) on failure; outputs go last. Paths are full paths ("dir/name").
 * A write either writes everything or fails: implementations loop over short writes.
 * Durability: data written to a file is durable only after fdatasync/fsync of that file; a
 * created, renamed or unlinked name is durable only after fsync_dir of its directory.
 */
#ifndef SHARDMART_WAL_FS_H
#define SHARDMART_WAL_FS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "util/assert.h"

/* Flags of open(). */
enum sm_fs_open_flags {
    SM_FS_READ = 0,        /* read only */
    SM_FS_WRITE = 1 << 0,  /* read and write */
    SM_FS_CREATE = 1 << 1, /* create when missing (with SM_FS_WRITE) */
    SM_FS_TRUNC = 1 << 2,  /* empty the file on open (with SM_FS_WRITE) */
};

/* Called by list() once per entry of the directory (not "." or ".."); a non-zero return stops
 * the listing and is returned by list(). `name` is the entry's name alone, valid for the call. */
typedef int (*sm_fs_list_fn)(void *ctx, const char *name);

/* A file system. `ctx` is the implementation's state; the struct is copied by value freely. */
struct sm_fs {
    void *ctx;
    int (*open)(void *ctx, const char *path, int flags, int *fd_out);
    int (*close)(void *ctx, int fd);
    /* Writes all iov bytes at `offset`; never a short write (the rest is an error). */
    int (*pwritev)(void *ctx, int fd, const struct iovec *iov, int iovcnt, uint64_t offset);
    /* Reads up to len bytes at offset; *got_bytes < len only at end of file. */
    int (*pread)(void *ctx, int fd, void *buf, size_t len, uint64_t offset, size_t *got_bytes);
    int (*fdatasync)(void *ctx, int fd);
    int (*fsync)(void *ctx, int fd);
    int (*truncate)(void *ctx, int fd, uint64_t len_bytes);
    int (*size)(void *ctx, int fd, uint64_t *size_bytes);
    int (*rename)(void *ctx, const char *from, const char *to);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path); /* 0 when it already exists */
    int (*list)(void *ctx, const char *dir, sm_fs_list_fn fn, void *fn_ctx);
    int (*fsync_dir)(void *ctx, const char *dir);
    /* Optional (NULL: the caller reads with pread instead). Maps the first len (>= 1) bytes of
     * an open file read-only into memory, valid until unmap even after close; *addr_out. */
    int (*map)(void *ctx, int fd, uint64_t len, const void **addr_out);
    int (*unmap)(void *ctx, const void *addr, uint64_t len);
};

/* The real file system (POSIX calls, EINTR retried). Stateless: the returned table is static. */
const struct sm_fs *sm_fs_posix(void);

/* Reads exactly len bytes at offset; -EIO when the file is shorter. */
MUST_USE int sm_fs_pread_full(const struct sm_fs *fs, int fd, void *buf, size_t len,
                              uint64_t offset);
/* Writes one buffer at offset (pwritev with one iovec). */
MUST_USE int sm_fs_pwrite(const struct sm_fs *fs, int fd, const void *buf, size_t len,
                          uint64_t offset);

#endif
