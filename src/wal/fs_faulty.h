/*
 * An in-memory file system that fails the way disks fail, for tests and for the simulator
 * (src/sim/). It models the page cache:
 *
 *   write/truncate  -> the file's current bytes change at once (reads see them), and the change
 *                      is queued as "pending" on the file until fdatasync/fsync of that file;
 *   create/rename/unlink -> the name changes at once, queued as pending on the directory until
 *                      fsync_dir of that directory;
 *   crash()         -> every open descriptor dies; each file restarts from its durable bytes plus
 *                      a random prefix of its pending changes in order, the last one kept torn (a
 *                      random prefix of it, cut at a sector boundary or at any byte); each
 * directory keeps a random prefix of its pending name changes. In reorder mode every pending change
 * of a file is instead kept, dropped or torn on its own.
 *
 * Overwrites are modelled like appends: a change lands on the durable bytes, so a preallocated
 * segment (zeros written and synced) keeps its size and its zeros across a crash, and records
 * written over the zeros but not synced come back as zeros, or as a prefix of them (torn).
 *
 * Faults on demand: an operation kind fails with a chosen errno (EIO, ENOSPC, ...) after N
 * successful calls, M times; single bits can be flipped in a file. Everything random comes from
 * one seeded generator, so a run is reproduced exactly by its seed. Not thread-safe: one
 * simulated machine is driven by one thread.
 */
#ifndef SHARDMART_WAL_FS_FAULTY_H
#define SHARDMART_WAL_FS_FAULTY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wal/fs.h"

/* Operation kinds that faults can target. */
enum sm_faulty_op {
    SM_FAULTY_OPEN,
    SM_FAULTY_WRITE,
    SM_FAULTY_READ,
    SM_FAULTY_SYNC, /* fdatasync and fsync */
    SM_FAULTY_TRUNCATE,
    SM_FAULTY_RENAME,
    SM_FAULTY_UNLINK,
    SM_FAULTY_SYNC_DIR,
    SM_FAULTY_LIST,
    SM_FAULTY_OP_COUNT,
};

struct sm_faulty_config {
    uint64_t seed;
    /* Tears cut at multiples of this many bytes of file offset; 0 or 1 = any byte. */
    uint32_t sector_bytes;
    /* Crash keeps, drops or tears each pending write of a file independently (harsher than a
     * disk that writes back in order; recovery may then see a hole followed by valid data). */
    bool reorder;
};

struct faulty_inode;
struct faulty_name;
struct faulty_fd;
struct faulty_ns_op;

/* A pending fault: after `skip` more successful calls of the kind, `count` calls fail with err. */
struct faulty_fault {
    uint32_t skip;
    uint32_t count;
    int err;
};

/* The whole simulated disk. Caller-owned; init with sm_faulty_fs_init, free with
 * sm_faulty_fs_free. Fields are private to fs_faulty.c. */
struct sm_faulty_fs {
    struct sm_faulty_config config;
    uint64_t rng;
    struct faulty_inode *inodes;
    uint32_t inodes_count, inodes_cap;
    struct faulty_name *names; /* the current namespace */
    uint32_t names_count, names_cap;
    struct faulty_name *names_durable; /* what survives a crash */
    uint32_t names_durable_count, names_durable_cap;
    struct faulty_ns_op *ns_ops; /* name changes not yet made durable by fsync_dir */
    uint32_t ns_ops_count, ns_ops_cap;
    struct faulty_fd *fds;
    uint32_t fds_count, fds_cap;
    struct faulty_fault faults[SM_FAULTY_OP_COUNT];
    uint64_t crashes;
    uint64_t syncs;  /* successful fdatasync/fsync calls, for tests that count them */
    uint64_t writes; /* successful pwritev calls */
};

void sm_faulty_fs_init(struct sm_faulty_fs *f, const struct sm_faulty_config *config);
void sm_faulty_fs_free(struct sm_faulty_fs *f);
/* The struct sm_fs that drives `f`; valid while f lives. */
struct sm_fs sm_faulty_fs_iface(struct sm_faulty_fs *f);

/* Power loss: see the file comment. Every descriptor opened before returns -EBADF afterwards. */
void sm_faulty_fs_crash(struct sm_faulty_fs *f);
/* Arms a fault on an operation kind (replaces any armed on that kind). */
void sm_faulty_fs_fail(struct sm_faulty_fs *f, enum sm_faulty_op op, int err, uint32_t skip,
                       uint32_t count);
/* Flips one bit of a file, in its current and durable bytes (media corruption). -ENOENT when
 * there is no such file, -EINVAL when the bit is past its end. */
MUST_USE int sm_faulty_fs_flip_bit(struct sm_faulty_fs *f, const char *path, uint64_t bit);
/* Creates or replaces a file with the given bytes, already durable (name and data). */
MUST_USE int sm_faulty_fs_put_file(struct sm_faulty_fs *f, const char *path, const void *data,
                                   size_t len);
/* The current bytes and length of a file (borrowed, valid until the next call); -ENOENT. */
MUST_USE int sm_faulty_fs_get_file(struct sm_faulty_fs *f, const char *path, const uint8_t **data,
                                   size_t *len);
/* A random number from the disk's generator (so a test can draw from the same seed). */
uint64_t sm_faulty_fs_random(struct sm_faulty_fs *f);

#endif
