/*
 * The faulty in-memory disk itself, since the log's crash tests and the simulator stand on it:
 * synced data always survives, unsynced data survives only as an in-order prefix torn at sector
 * granularity, names need a directory fsync, faults fire exactly as armed, and a seed reproduces
 * a run exactly. The POSIX implementation is checked against the same basic contract.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "wal/fs_faulty.h"
#include "wal/wal.h"

static int write_at(struct sm_fs *fs, int fd, const char *s, uint64_t off)
{
    return sm_fs_pwrite(fs, fd, s, strlen(s), off);
}

static bool exists(struct sm_faulty_fs *d, const char *path)
{
    const uint8_t *data;
    size_t len;
    return sm_faulty_fs_get_file(d, path, &data, &len) == 0;
}

Test(fs_faulty, synced_data_and_names_survive_every_crash)
{
    for (uint64_t seed = 1; seed <= 50; seed++) {
        struct sm_faulty_fs d;
        struct sm_faulty_config c = {.seed = seed, .sector_bytes = 512};
        sm_faulty_fs_init(&d, &c);
        struct sm_fs fs = sm_faulty_fs_iface(&d);
        int fd;
        cr_assert_eq(fs.open(fs.ctx, "/d/a", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(write_at(&fs, fd, "durable", 0), 0);
        cr_assert_eq(fs.fdatasync(fs.ctx, fd), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/d"), 0);
        cr_assert_eq(write_at(&fs, fd, "-volatile", 7), 0);
        sm_faulty_fs_crash(&d);
        const uint8_t *data;
        size_t len;
        cr_assert_eq(sm_faulty_fs_get_file(&d, "/d/a", &data, &len), 0);
        cr_assert_geq(len, 7);
        cr_assert(memcmp(data, "durable", 7) == 0);
        cr_assert_eq(fs.close(fs.ctx, fd), -EBADF, "descriptors die with the crash");
        sm_faulty_fs_free(&d);
    }
}

Test(fs_faulty, unsynced_writes_are_lost_or_torn_as_an_in_order_prefix)
{
    uint32_t kept = 0, dropped = 0, torn = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct sm_faulty_fs d;
        struct sm_faulty_config c = {.seed = seed, .sector_bytes = 512};
        sm_faulty_fs_init(&d, &c);
        struct sm_fs fs = sm_faulty_fs_iface(&d);
        int fd;
        cr_assert_eq(fs.open(fs.ctx, "/d/a", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/d"), 0);
        uint8_t buf[3000];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)(i % 251 + 1);
        cr_assert_eq(sm_fs_pwrite(&fs, fd, buf, 1000, 0), 0);
        cr_assert_eq(sm_fs_pwrite(&fs, fd, buf + 1000, 2000, 1000), 0);
        sm_faulty_fs_crash(&d);
        const uint8_t *data;
        size_t len;
        cr_assert_eq(sm_faulty_fs_get_file(&d, "/d/a", &data, &len), 0);
        cr_assert_leq(len, 3000);
        cr_assert(memcmp(data, buf, len) == 0, "a prefix of what was written, no holes");
        cr_assert(len == 0 || len == 1000 || len == 3000 || len % 512 == 0,
                  "tears end on a sector boundary: %zu", len);
        kept += len == 3000;
        dropped += len == 0;
        torn += len != 0 && len != 1000 && len != 3000;
        sm_faulty_fs_free(&d);
    }
    cr_assert_gt(kept, 0);
    cr_assert_gt(dropped, 0);
    cr_assert_gt(torn, 0);
}

Test(fs_faulty, unsynced_overwrites_of_synced_zeros_revert_to_zeros_or_tear)
{
    /* A preallocated segment: zeros written and synced, then records written over them. */
    uint32_t kept = 0, dropped = 0, torn = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct sm_faulty_fs d;
        struct sm_faulty_config c = {.seed = seed, .sector_bytes = seed % 2 ? 512 : 0};
        sm_faulty_fs_init(&d, &c);
        struct sm_fs fs = sm_faulty_fs_iface(&d);
        int fd;
        cr_assert_eq(fs.open(fs.ctx, "/d/a", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(wal_write_zeros(&fs, fd, 0, 8192), 0);
        cr_assert_eq(fs.fdatasync(fs.ctx, fd), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/d"), 0);
        uint8_t buf[3000];
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = (uint8_t)(i % 251 + 1);
        cr_assert_eq(sm_fs_pwrite(&fs, fd, buf, 1000, 100), 0);
        cr_assert_eq(fs.fdatasync(fs.ctx, fd), 0);
        cr_assert_eq(sm_fs_pwrite(&fs, fd, buf + 1000, 2000, 1100), 0);
        sm_faulty_fs_crash(&d);
        const uint8_t *data;
        size_t len;
        cr_assert_eq(sm_faulty_fs_get_file(&d, "/d/a", &data, &len), 0);
        cr_assert_eq(len, 8192, "synced zeros survive: the size never changes");
        cr_assert(wal_all_zero(data, 100) && memcmp(data + 100, buf, 1000) == 0, "synced data");
        size_t k = 0; /* the kept prefix of the unsynced overwrite, zeros after it */
        while (k < 2000 && data[1100 + k] == buf[1000 + k])
            k++;
        cr_assert(wal_all_zero(data + 1100 + k, 8192 - 1100 - k), "seed %lu: zeros after %zu",
                  (unsigned long)seed, k);
        kept += k == 2000;
        dropped += k == 0;
        torn += k > 0 && k < 2000;
        sm_faulty_fs_free(&d);
    }
    cr_assert_gt(kept, 0);
    cr_assert_gt(dropped, 0);
    cr_assert_gt(torn, 0);
}

Test(fs_faulty, names_need_a_directory_fsync)
{
    uint32_t create_lost = 0, rename_lost = 0;
    for (uint64_t seed = 1; seed <= 100; seed++) {
        struct sm_faulty_fs d;
        struct sm_faulty_config c = {.seed = seed};
        sm_faulty_fs_init(&d, &c);
        struct sm_fs fs = sm_faulty_fs_iface(&d);
        int fd;
        cr_assert_eq(fs.open(fs.ctx, "/d/old", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(write_at(&fs, fd, "x", 0), 0);
        cr_assert_eq(fs.fsync(fs.ctx, fd), 0);
        cr_assert_eq(fs.close(fs.ctx, fd), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/d"), 0);
        cr_assert_eq(fs.open(fs.ctx, "/d/new", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(fs.fsync(fs.ctx, fd), 0); /* the file's data, not its name */
        cr_assert_eq(fs.rename(fs.ctx, "/d/old", "/d/renamed"), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/other"), 0, "another directory does not help");
        sm_faulty_fs_crash(&d);
        create_lost += !exists(&d, "/d/new");
        bool renamed = exists(&d, "/d/renamed");
        rename_lost += !renamed;
        cr_assert(renamed != exists(&d, "/d/old"), "a rename is atomic: exactly one name");
        /* In order: a rename that survived implies the earlier create survived. */
        cr_assert(!renamed || exists(&d, "/d/new"));
        sm_faulty_fs_free(&d);
    }
    cr_assert_gt(create_lost, 0);
    cr_assert_gt(rename_lost, 0);
}

Test(fs_faulty, same_seed_same_disk)
{
    size_t lens[2];
    for (int k = 0; k < 2; k++) {
        struct sm_faulty_fs d;
        struct sm_faulty_config c = {.seed = 77, .sector_bytes = 0};
        sm_faulty_fs_init(&d, &c);
        struct sm_fs fs = sm_faulty_fs_iface(&d);
        int fd;
        cr_assert_eq(fs.open(fs.ctx, "/d/a", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
        cr_assert_eq(fs.fsync_dir(fs.ctx, "/d"), 0);
        for (int i = 0; i < 10; i++)
            cr_assert_eq(write_at(&fs, fd, "0123456789abcdef", (uint64_t)i * 16), 0);
        sm_faulty_fs_crash(&d);
        const uint8_t *data;
        cr_assert_eq(sm_faulty_fs_get_file(&d, "/d/a", &data, &lens[k]), 0);
        sm_faulty_fs_free(&d);
    }
    cr_assert_eq(lens[0], lens[1]);
}

Test(fs_faulty, faults_fire_as_armed_and_helpers_check_arguments)
{
    struct sm_faulty_fs d;
    struct sm_faulty_config c = {.seed = 1};
    sm_faulty_fs_init(&d, &c);
    struct sm_fs fs = sm_faulty_fs_iface(&d);
    int fd;
    cr_assert_eq(fs.open(fs.ctx, "/d/a", SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
    sm_faulty_fs_fail(&d, SM_FAULTY_WRITE, -ENOSPC, 2, 1);
    cr_assert_eq(write_at(&fs, fd, "a", 0), 0);
    cr_assert_eq(write_at(&fs, fd, "b", 1), 0);
    cr_assert_eq(write_at(&fs, fd, "c", 2), -ENOSPC, "after two successes");
    cr_assert_eq(write_at(&fs, fd, "c", 2), 0, "only once");
    sm_faulty_fs_fail(&d, SM_FAULTY_READ, -EIO, 0, 1);
    char buf[4];
    cr_assert_eq(sm_fs_pread_full(&fs, fd, buf, 3, 0), -EIO);
    cr_assert_eq(sm_fs_pread_full(&fs, fd, buf, 3, 0), 0);
    cr_assert(memcmp(buf, "abc", 3) == 0);
    cr_assert_eq(sm_fs_pread_full(&fs, fd, buf, 4, 0), -EIO, "short file");
    sm_faulty_fs_fail(&d, SM_FAULTY_TRUNCATE, -EIO, 0, 1);
    cr_assert_eq(fs.truncate(fs.ctx, fd, 1), -EIO);
    sm_faulty_fs_fail(&d, SM_FAULTY_UNLINK, -EPERM, 0, 1);
    cr_assert_eq(fs.unlink(fs.ctx, "/d/a"), -EPERM);
    cr_assert_eq(fs.open(fs.ctx, "/d/none", SM_FS_READ, &fd), -ENOENT);
    cr_assert_eq(fs.rename(fs.ctx, "/d/none", "/d/x"), -ENOENT);
    cr_assert_eq(fs.unlink(fs.ctx, "/d/none"), -ENOENT);
    cr_assert_eq(sm_faulty_fs_flip_bit(&d, "/d/none", 0), -ENOENT);
    cr_assert_eq(sm_faulty_fs_flip_bit(&d, "/d/a", 8 * 3), -EINVAL);
    cr_assert_eq(sm_faulty_fs_flip_bit(&d, "/d/a", 1), 0);
    cr_assert_eq(sm_fs_pread_full(&fs, fd, buf, 1, 0), 0);
    cr_assert_eq(buf[0], 'a' ^ 2);
    cr_assert_eq(fs.pwritev(fs.ctx, 99, NULL, 0, 0), -EBADF);
    sm_faulty_fs_free(&d);
}

static int count_entry(void *ctx, const char *name)
{
    (void)name;
    (*(int *)ctx)++;
    return 0;
}

Test(fs_posix, basic_contract_on_real_files)
{
    char dir[] = "/tmp/smfs-test-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    const struct sm_fs *fs = sm_fs_posix();
    char a[64], b[64];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    int fd;
    cr_assert_eq(fs->open(fs->ctx, a, SM_FS_READ, &fd), -ENOENT);
    cr_assert_eq(fs->open(fs->ctx, a, SM_FS_WRITE | SM_FS_CREATE, &fd), 0);
    struct iovec iov[3] = {{"ab", 2}, {"cde", 3}, {"f", 1}};
    cr_assert_eq(fs->pwritev(fs->ctx, fd, iov, 3, 10), 0);
    uint64_t size;
    cr_assert_eq(fs->size(fs->ctx, fd, &size), 0);
    cr_assert_eq(size, 16);
    char buf[8];
    cr_assert_eq(sm_fs_pread_full(fs, fd, buf, 6, 10), 0);
    cr_assert(memcmp(buf, "abcdef", 6) == 0);
    cr_assert_eq(sm_fs_pread_full(fs, fd, buf, 8, 10), -EIO);
    cr_assert_eq(fs->fdatasync(fs->ctx, fd), 0);
    cr_assert_eq(fs->fsync(fs->ctx, fd), 0);
    cr_assert_eq(fs->truncate(fs->ctx, fd, 12), 0);
    cr_assert_eq(fs->size(fs->ctx, fd, &size), 0);
    cr_assert_eq(size, 12);
    cr_assert_eq(fs->close(fs->ctx, fd), 0);
    cr_assert_eq(fs->rename(fs->ctx, a, b), 0);
    cr_assert_eq(fs->fsync_dir(fs->ctx, dir), 0);
    cr_assert_eq(fs->mkdir(fs->ctx, dir), 0, "existing is fine");
    int n = 0;
    cr_assert_eq(fs->list(fs->ctx, dir, count_entry, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(fs->list(fs->ctx, "/nonexistent-smfs", count_entry, &n), -ENOENT);
    cr_assert_eq(fs->fsync_dir(fs->ctx, "/nonexistent-smfs"), -ENOENT);
    cr_assert_eq(fs->unlink(fs->ctx, b), 0);
    cr_assert_eq(fs->unlink(fs->ctx, b), -ENOENT);
    cr_assert_eq(fs->rename(fs->ctx, a, b), -ENOENT);
    cr_assert_eq(rmdir(dir), 0);
}
