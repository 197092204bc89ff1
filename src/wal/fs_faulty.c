/*
 * The faulty in-memory disk (see fs_faulty.h for the model). Files are inodes holding their
 * current bytes, their durable bytes and the list of changes made since the last sync; names live
 * in two tables, the current one and the durable one, with the name changes in between queued in
 * order. A crash rebuilds everything from the durable state plus a random part of what was
 * pending. This is test code: it allocates freely and favours plain arrays over speed.
 */
#include "wal/fs_faulty.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FD_BASE 3 /* descriptors start at 3 so a stray 0 never means a file */

struct faulty_change {
    bool is_truncate;
    uint64_t offset; /* write: where; truncate: the new length */
    uint64_t len;
    uint8_t *data;
};

struct faulty_inode {
    bool used;
    uint8_t *data; /* current bytes, what reads see */
    uint64_t len;
    uint64_t cap;
    uint8_t *durable; /* what a crash starts from */
    uint64_t durable_len;
    struct faulty_change *pending;
    uint32_t pending_count, pending_cap;
};

struct faulty_name {
    char *path;
    uint32_t inode;
};

enum faulty_ns_kind { NS_LINK, NS_UNLINK, NS_RENAME };

struct faulty_ns_op {
    enum faulty_ns_kind kind;
    char *path;
    char *from; /* NS_RENAME only */
    uint32_t inode;
};

struct faulty_fd {
    bool used;
    bool dead; /* open at a crash: the number is never handed out again */
    bool writable;
    uint32_t inode;
};

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    ASSERT(q != NULL); /* test code: running out of memory is not a modelled fault */
    return q;
}

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = xrealloc(NULL, n);
    memcpy(p, s, n);
    return p;
}

static uint8_t *xmemdup(const uint8_t *src, uint64_t n)
{
    uint8_t *p = xrealloc(NULL, (size_t)n);
    if (n)
        memcpy(p, src, (size_t)n);
    return p;
}

#define GROW(arr, count, cap)                                                                      \
    do {                                                                                           \
        if ((count) == (cap)) {                                                                    \
            (cap) = (cap) ? (cap)*2 : 8;                                                           \
            (arr) = xrealloc((arr), (size_t)(cap) * sizeof *(arr));                                \
        }                                                                                          \
    } while (0)

uint64_t sm_faulty_fs_random(struct sm_faulty_fs *f)
{
    /* splitmix64: tiny, full period, good enough to pick crash points. */
    uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rand_below(struct sm_faulty_fs *f, uint64_t n)
{
    ASSERT(n > 0);
    return sm_faulty_fs_random(f) % n;
}

void sm_faulty_fs_init(struct sm_faulty_fs *f, const struct sm_faulty_config *config)
{
    memset(f, 0, sizeof *f);
    f->config = *config;
    f->rng = config->seed;
}

static void inode_clear(struct faulty_inode *ino)
{
    free(ino->data);
    free(ino->durable);
    for (uint32_t i = 0; i < ino->pending_count; i++)
        free(ino->pending[i].data);
    free(ino->pending);
    memset(ino, 0, sizeof *ino);
}

static void ns_op_free(struct faulty_ns_op *op)
{
    free(op->path);
    free(op->from);
}

void sm_faulty_fs_free(struct sm_faulty_fs *f)
{
    for (uint32_t i = 0; i < f->inodes_count; i++)
        inode_clear(&f->inodes[i]);
    for (uint32_t i = 0; i < f->names_count; i++)
        free(f->names[i].path);
    for (uint32_t i = 0; i < f->names_durable_count; i++)
        free(f->names_durable[i].path);
    for (uint32_t i = 0; i < f->ns_ops_count; i++)
        ns_op_free(&f->ns_ops[i]);
    free(f->inodes);
    free(f->names);
    free(f->names_durable);
    free(f->ns_ops);
    free(f->fds);
    memset(f, 0, sizeof *f);
}

/* ---- names --------------------------------------------------------------------------------- */

static int64_t name_find(const struct faulty_name *names, uint32_t count, const char *path)
{
    for (uint32_t i = 0; i < count; i++)
        if (strcmp(names[i].path, path) == 0)
            return i;
    return -1;
}

static void name_remove(struct faulty_name *names, uint32_t *count, const char *path)
{
    int64_t i = name_find(names, *count, path);
    if (i < 0)
        return;
    free(names[i].path);
    names[i] = names[--*count];
}

static void name_set(struct faulty_name **names, uint32_t *count, uint32_t *cap, const char *path,
                     uint32_t inode)
{
    int64_t i = name_find(*names, *count, path);
    if (i >= 0) {
        (*names)[i].inode = inode;
        return;
    }
    GROW(*names, *count, *cap);
    (*names)[*count].path = xstrdup(path);
    (*names)[*count].inode = inode;
    (*count)++;
}

/* Applies one name change to the durable table. */
static void ns_apply_durable(struct sm_faulty_fs *f, const struct faulty_ns_op *op)
{
    switch (op->kind) {
    case NS_LINK:
        name_set(&f->names_durable, &f->names_durable_count, &f->names_durable_cap, op->path,
                 op->inode);
        return;
    case NS_UNLINK:
        name_remove(f->names_durable, &f->names_durable_count, op->path);
        return;
    case NS_RENAME:
        name_remove(f->names_durable, &f->names_durable_count, op->from);
        name_set(&f->names_durable, &f->names_durable_count, &f->names_durable_cap, op->path,
                 op->inode);
        return;
    }
    UNREACHABLE();
}

static void ns_queue(struct sm_faulty_fs *f, enum faulty_ns_kind kind, const char *path,
                     const char *from, uint32_t inode)
{
    GROW(f->ns_ops, f->ns_ops_count, f->ns_ops_cap);
    struct faulty_ns_op *op = &f->ns_ops[f->ns_ops_count++];
    op->kind = kind;
    op->path = xstrdup(path);
    op->from = from ? xstrdup(from) : NULL;
    op->inode = inode;
}

/* True when `path` is directly inside `dir`. */
static bool in_dir(const char *path, const char *dir)
{
    size_t n = strlen(dir);
    return strncmp(path, dir, n) == 0 && path[n] == '/' && strchr(path + n + 1, '/') == NULL;
}

/* ---- inodes and descriptors ---------------------------------------------------------------- */

static bool inode_referenced(const struct sm_faulty_fs *f, uint32_t ino)
{
    for (uint32_t i = 0; i < f->names_count; i++)
        if (f->names[i].inode == ino)
            return true;
    for (uint32_t i = 0; i < f->names_durable_count; i++)
        if (f->names_durable[i].inode == ino)
            return true;
    for (uint32_t i = 0; i < f->ns_ops_count; i++)
        if (f->ns_ops[i].inode == ino && f->ns_ops[i].kind != NS_UNLINK)
            return true;
    for (uint32_t i = 0; i < f->fds_count; i++)
        if (f->fds[i].used && !f->fds[i].dead && f->fds[i].inode == ino)
            return true;
    return false;
}

/* Frees the bytes of files no name, pending change or descriptor can reach any more. */
static void inodes_collect(struct sm_faulty_fs *f)
{
    for (uint32_t i = 0; i < f->inodes_count; i++)
        if (f->inodes[i].used && !inode_referenced(f, i))
            inode_clear(&f->inodes[i]);
}

static uint32_t inode_new(struct sm_faulty_fs *f)
{
    for (uint32_t i = 0; i < f->inodes_count; i++)
        if (!f->inodes[i].used) {
            f->inodes[i].used = true;
            return i;
        }
    GROW(f->inodes, f->inodes_count, f->inodes_cap);
    memset(&f->inodes[f->inodes_count], 0, sizeof f->inodes[0]);
    f->inodes[f->inodes_count].used = true;
    return f->inodes_count++;
}

static struct faulty_fd *fd_get(struct sm_faulty_fs *f, int fd)
{
    if (fd < FD_BASE || (uint32_t)(fd - FD_BASE) >= f->fds_count)
        return NULL;
    struct faulty_fd *d = &f->fds[fd - FD_BASE];
    if (!d->used || d->dead)
        return NULL;
    ASSERT(d->inode < f->inodes_count && f->inodes[d->inode].used);
    return d;
}

static int fault_hit(struct sm_faulty_fs *f, enum sm_faulty_op op)
{
    struct faulty_fault *ft = &f->faults[op];
    if (ft->count == 0)
        return 0;
    if (ft->skip > 0) {
        ft->skip--;
        return 0;
    }
    ft->count--;
    return ft->err;
}

void sm_faulty_fs_fail(struct sm_faulty_fs *f, enum sm_faulty_op op, int err, uint32_t skip,
                       uint32_t count)
{
    ASSERT(op < SM_FAULTY_OP_COUNT);
    ASSERT(err < 0);
    f->faults[op] = (struct faulty_fault){.skip = skip, .count = count, .err = err};
}

/* Sets bytes [off, off+n) of a byte array, growing it with zeros. */
static void bytes_write(uint8_t **data, uint64_t *len, uint64_t *cap, uint64_t off,
                        const uint8_t *src, uint64_t n)
{
    uint64_t end = off + n;
    if (end > *cap) {
        uint64_t c = *cap ? *cap : 256;
        while (c < end)
            c *= 2;
        *data = xrealloc(*data, (size_t)c);
        *cap = c;
    }
    if (off > *len)
        memset(*data + *len, 0, (size_t)(off - *len));
    if (n)
        memcpy(*data + off, src, (size_t)n);
    if (end > *len)
        *len = end;
}

static void bytes_truncate(uint8_t **data, uint64_t *len, uint64_t *cap, uint64_t new_len)
{
    if (new_len > *len)
        bytes_write(data, len, cap, new_len, NULL, 0);
    *len = new_len;
}

static void change_queue(struct faulty_inode *ino, bool is_truncate, uint64_t offset,
                         const uint8_t *src, uint64_t n)
{
    GROW(ino->pending, ino->pending_count, ino->pending_cap);
    struct faulty_change *c = &ino->pending[ino->pending_count++];
    c->is_truncate = is_truncate;
    c->offset = offset;
    c->len = n;
    c->data = is_truncate ? NULL : xmemdup(src, n);
}

/* ---- the struct sm_fs operations ----------------------------------------------------------- */

static int f_open(void *ctx, const char *path, int flags, int *fd_out)
{
    struct sm_faulty_fs *f = ctx;
    int rc = fault_hit(f, SM_FAULTY_OPEN);
    if (rc < 0)
        return rc;
    int64_t ni = name_find(f->names, f->names_count, path);
    uint32_t ino;
    if (ni >= 0) {
        ino = f->names[ni].inode;
    } else {
        if (!(flags & SM_FS_CREATE) || !(flags & SM_FS_WRITE))
            return -ENOENT;
        ino = inode_new(f);
        name_set(&f->names, &f->names_count, &f->names_cap, path, ino);
        ns_queue(f, NS_LINK, path, NULL, ino);
    }
    struct faulty_inode *node = &f->inodes[ino];
    if ((flags & SM_FS_TRUNC) && (flags & SM_FS_WRITE) && node->len > 0) {
        node->len = 0;
        change_queue(node, true, 0, NULL, 0);
    }
    uint32_t slot = f->fds_count;
    for (uint32_t i = 0; i < f->fds_count; i++)
        if (!f->fds[i].used && !f->fds[i].dead) {
            slot = i;
            break;
        }
    if (slot == f->fds_count) {
        GROW(f->fds, f->fds_count, f->fds_cap);
        f->fds_count++;
    }
    f->fds[slot] =
        (struct faulty_fd){.used = true, .writable = (flags & SM_FS_WRITE) != 0, .inode = ino};
    *fd_out = (int)slot + FD_BASE;
    return 0;
}

static int f_close(void *ctx, int fd)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d)
        return -EBADF;
    d->used = false;
    inodes_collect(f);
    return 0;
}

static int f_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, uint64_t offset)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d || !d->writable)
        return -EBADF;
    int rc = fault_hit(f, SM_FAULTY_WRITE);
    if (rc < 0)
        return rc;
    struct faulty_inode *ino = &f->inodes[d->inode];
    for (int i = 0; i < iovcnt; i++) {
        bytes_write(&ino->data, &ino->len, &ino->cap, offset, iov[i].iov_base, iov[i].iov_len);
        change_queue(ino, false, offset, iov[i].iov_base, iov[i].iov_len);
        offset += iov[i].iov_len;
    }
    f->writes++;
    return 0;
}

static int f_pread(void *ctx, int fd, void *buf, size_t len, uint64_t offset, size_t *got_bytes)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d)
        return -EBADF;
    int rc = fault_hit(f, SM_FAULTY_READ);
    if (rc < 0)
        return rc;
    const struct faulty_inode *ino = &f->inodes[d->inode];
    size_t n = 0;
    if (offset < ino->len)
        n = (size_t)(ino->len - offset) < len ? (size_t)(ino->len - offset) : len;
    if (n)
        memcpy(buf, ino->data + offset, n);
    *got_bytes = n;
    return 0;
}

static int f_sync(void *ctx, int fd)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d)
        return -EBADF;
    /* A failed sync leaves the changes pending: a crash may still lose them. */
    int rc = fault_hit(f, SM_FAULTY_SYNC);
    if (rc < 0)
        return rc;
    struct faulty_inode *ino = &f->inodes[d->inode];
    free(ino->durable);
    ino->durable = xmemdup(ino->data, ino->len);
    ino->durable_len = ino->len;
    for (uint32_t i = 0; i < ino->pending_count; i++)
        free(ino->pending[i].data);
    ino->pending_count = 0;
    f->syncs++;
    return 0;
}

static int f_truncate(void *ctx, int fd, uint64_t len_bytes)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d || !d->writable)
        return -EBADF;
    int rc = fault_hit(f, SM_FAULTY_TRUNCATE);
    if (rc < 0)
        return rc;
    struct faulty_inode *ino = &f->inodes[d->inode];
    bytes_truncate(&ino->data, &ino->len, &ino->cap, len_bytes);
    change_queue(ino, true, len_bytes, NULL, 0);
    return 0;
}

static int f_size(void *ctx, int fd, uint64_t *size_bytes)
{
    struct sm_faulty_fs *f = ctx;
    struct faulty_fd *d = fd_get(f, fd);
    if (!d)
        return -EBADF;
    *size_bytes = f->inodes[d->inode].len;
    return 0;
}

static int f_rename(void *ctx, const char *from, const char *to)
{
    struct sm_faulty_fs *f = ctx;
    int rc = fault_hit(f, SM_FAULTY_RENAME);
    if (rc < 0)
        return rc;
    int64_t i = name_find(f->names, f->names_count, from);
    if (i < 0)
        return -ENOENT;
    uint32_t ino = f->names[i].inode;
    name_remove(f->names, &f->names_count, from);
    name_set(&f->names, &f->names_count, &f->names_cap, to, ino);
    ns_queue(f, NS_RENAME, to, from, ino);
    inodes_collect(f);
    return 0;
}

static int f_unlink(void *ctx, const char *path)
{
    struct sm_faulty_fs *f = ctx;
    int rc = fault_hit(f, SM_FAULTY_UNLINK);
    if (rc < 0)
        return rc;
    if (name_find(f->names, f->names_count, path) < 0)
        return -ENOENT;
    name_remove(f->names, &f->names_count, path);
    ns_queue(f, NS_UNLINK, path, NULL, 0);
    inodes_collect(f);
    return 0;
}

static int f_mkdir(void *ctx, const char *path)
{
    (void)ctx;
    (void)path; /* directories exist implicitly: a name's directory is the part before '/' */
    return 0;
}

static int f_list(void *ctx, const char *dir, sm_fs_list_fn fn, void *fn_ctx)
{
    struct sm_faulty_fs *f = ctx;
    int rc = fault_hit(f, SM_FAULTY_LIST);
    if (rc < 0)
        return rc;
    /* Copy the names first: the callback may create or remove files. */
    uint32_t n = 0;
    char **copy = xrealloc(NULL, (size_t)(f->names_count + 1) * sizeof *copy);
    for (uint32_t i = 0; i < f->names_count; i++)
        if (in_dir(f->names[i].path, dir))
            copy[n++] = xstrdup(f->names[i].path + strlen(dir) + 1);
    for (uint32_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = fn(fn_ctx, copy[i]);
        free(copy[i]);
    }
    free(copy);
    return rc;
}

static int f_fsync_dir(void *ctx, const char *dir)
{
    struct sm_faulty_fs *f = ctx;
    int rc = fault_hit(f, SM_FAULTY_SYNC_DIR);
    if (rc < 0)
        return rc;
    uint32_t kept = 0;
    for (uint32_t i = 0; i < f->ns_ops_count; i++) {
        struct faulty_ns_op *op = &f->ns_ops[i];
        bool mine = in_dir(op->path, dir) || (op->from && in_dir(op->from, dir));
        if (mine) {
            ns_apply_durable(f, op);
            ns_op_free(op);
        } else {
            f->ns_ops[kept++] = *op;
        }
    }
    f->ns_ops_count = kept;
    inodes_collect(f);
    return 0;
}

struct sm_fs sm_faulty_fs_iface(struct sm_faulty_fs *f)
{
    return (struct sm_fs){
        .ctx = f,
        .open = f_open,
        .close = f_close,
        .pwritev = f_pwritev,
        .pread = f_pread,
        .fdatasync = f_sync,
        .fsync = f_sync,
        .truncate = f_truncate,
        .size = f_size,
        .rename = f_rename,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .list = f_list,
        .fsync_dir = f_fsync_dir,
    };
}

/* ---- crash --------------------------------------------------------------------------------- */

/* How many bytes of a write that starts at `offset` a tear keeps: a random prefix whose end
 * falls on a sector boundary of the file (or on any byte). */
static uint64_t tear_keep(struct sm_faulty_fs *f, uint64_t offset, uint64_t len)
{
    if (len == 0)
        return 0;
    uint64_t keep = rand_below(f, len);
    uint64_t sector = f->config.sector_bytes > 1 ? f->config.sector_bytes : 1;
    uint64_t end = offset + keep;
    end -= end % sector;
    return end > offset ? end - offset : 0;
}

static void change_apply(struct faulty_inode *ino, const struct faulty_change *c, uint64_t keep)
{
    if (c->is_truncate)
        bytes_truncate(&ino->data, &ino->len, &ino->cap, c->offset);
    else
        bytes_write(&ino->data, &ino->len, &ino->cap, c->offset, c->data, keep);
}

/* Rebuilds a file from its durable bytes and part of its pending changes. */
static void inode_crash(struct sm_faulty_fs *f, struct faulty_inode *ino)
{
    ino->len = 0;
    bytes_write(&ino->data, &ino->len, &ino->cap, 0, ino->durable, ino->durable_len);
    uint32_t n = ino->pending_count;
    uint32_t cut = (uint32_t)rand_below(f, (uint64_t)n + 1);
    for (uint32_t i = 0; i < n; i++) {
        const struct faulty_change *c = &ino->pending[i];
        uint64_t r = f->config.reorder ? rand_below(f, 3) : (i < cut ? 0 : i == cut ? 2 : 1);
        if (r == 0)
            change_apply(ino, c, c->len);
        else if (r == 2 && (!c->is_truncate || rand_below(f, 2)))
            change_apply(ino, c, c->is_truncate ? 0 : tear_keep(f, c->offset, c->len));
        free(c->data);
    }
    ino->pending_count = 0;
    free(ino->durable);
    ino->durable = xmemdup(ino->data, ino->len);
    ino->durable_len = ino->len;
}

void sm_faulty_fs_crash(struct sm_faulty_fs *f)
{
    f->crashes++;
    for (uint32_t i = 0; i < f->fds_count; i++) {
        if (f->fds[i].used)
            f->fds[i].dead = true;
        f->fds[i].used = false;
    }
    /* Name changes reach the disk in order (a journal); a random prefix of them survives. */
    uint32_t cut = (uint32_t)rand_below(f, (uint64_t)f->ns_ops_count + 1);
    for (uint32_t i = 0; i < f->ns_ops_count; i++) {
        if (i < cut)
            ns_apply_durable(f, &f->ns_ops[i]);
        ns_op_free(&f->ns_ops[i]);
    }
    f->ns_ops_count = 0;
    for (uint32_t i = 0; i < f->names_count; i++)
        free(f->names[i].path);
    f->names_count = 0;
    for (uint32_t i = 0; i < f->names_durable_count; i++)
        name_set(&f->names, &f->names_count, &f->names_cap, f->names_durable[i].path,
                 f->names_durable[i].inode);
    inodes_collect(f);
    for (uint32_t i = 0; i < f->inodes_count; i++)
        if (f->inodes[i].used)
            inode_crash(f, &f->inodes[i]);
}

/* ---- test helpers -------------------------------------------------------------------------- */

int sm_faulty_fs_flip_bit(struct sm_faulty_fs *f, const char *path, uint64_t bit)
{
    int64_t i = name_find(f->names, f->names_count, path);
    if (i < 0)
        return -ENOENT;
    struct faulty_inode *ino = &f->inodes[f->names[i].inode];
    if (bit / 8 >= ino->len)
        return -EINVAL;
    ino->data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    if (bit / 8 < ino->durable_len)
        ino->durable[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    return 0;
}

int sm_faulty_fs_put_file(struct sm_faulty_fs *f, const char *path, const void *data, size_t len)
{
    int64_t i = name_find(f->names, f->names_count, path);
    uint32_t ino = i >= 0 ? f->names[i].inode : inode_new(f);
    struct faulty_inode *node = &f->inodes[ino];
    node->len = 0;
    bytes_write(&node->data, &node->len, &node->cap, 0, data, len);
    free(node->durable);
    node->durable = xmemdup(node->data, node->len);
    node->durable_len = node->len;
    for (uint32_t k = 0; k < node->pending_count; k++)
        free(node->pending[k].data);
    node->pending_count = 0;
    name_set(&f->names, &f->names_count, &f->names_cap, path, ino);
    name_set(&f->names_durable, &f->names_durable_count, &f->names_durable_cap, path, ino);
    return 0;
}

int sm_faulty_fs_get_file(struct sm_faulty_fs *f, const char *path, const uint8_t **data,
                          size_t *len)
{
    int64_t i = name_find(f->names, f->names_count, path);
    if (i < 0)
        return -ENOENT;
    const struct faulty_inode *ino = &f->inodes[f->names[i].inode];
    *data = ino->data;
    *len = (size_t)ino->len;
    return 0;
}
