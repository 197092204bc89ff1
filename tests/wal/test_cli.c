/*
 * `shardmart wal verify|dump` run as a process (the binary CTest names in SHARDMART_BIN) against
 * log directories made here: clean, torn, corrupt, with a snapshot, and bad usage.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"
#include "wal/wal.h"

static char dir[128];

/* Runs the binary with args, returns its exit code and (first 64 KiB of) stdout+stderr. */
static int run(const char *args, char *out, size_t cap)
{
    const char *bin = getenv("SHARDMART_BIN");
    cr_assert_not_null(bin, "SHARDMART_BIN is set by CTest");
    cr_assert_eq(access(bin, X_OK), 0, "%s is built (needs the cli layer)", bin);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* prealloc: default-size (64 MiB) preallocated segments, as the node makes them. */
static void make_log(uint64_t records, bool with_snapshot, bool prealloc)
{
    /* Check for the binary first, so a failing run leaves no directory behind. */
    const char *bin = getenv("SHARDMART_BIN");
    cr_assert(bin && access(bin, X_OK) == 0, "SHARDMART_BIN (%s) is built (needs the cli layer)",
              bin ? bin : "unset");
    snprintf(dir, sizeof dir, "/tmp/smwal-cli-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    struct wal_config c = {.dir = dir, .segment_bytes = 4096, .batch_bytes = 2048};
    if (prealloc)
        c = (struct wal_config){.dir = dir, .preallocate = true};
    struct wal w;
    struct wal_recovery rep;
    cr_assert_eq(wal_open(&w, &c, &rep), 0);
    uint64_t acked;
    for (uint64_t i = 1; i <= records; i++) {
        struct wal_record r = {.type = 2,
                               .epoch = 7,
                               .index = i,
                               .timestamp_us = i * 10,
                               .payload = "hello",
                               .len = 5};
        cr_assert_eq(wal_append(&w, &r), 0);
        cr_assert_eq(wal_sync(&w, &acked), 0);
    }
    if (with_snapshot) {
        struct wal_snapshot_writer sw;
        cr_assert_eq(wal_snapshot_begin(&w, &sw, records / 2, 7), 0);
        cr_assert_eq(wal_snapshot_write(&sw, "engine state", 12), 0);
        cr_assert_eq(wal_snapshot_finish(&sw), 0);
    }
    wal_close(&w);
}

static void remove_log(void)
{
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static char out[65536];

Test(wal_cli, verify_and_dump_a_clean_log)
{
    make_log(100, false, false);
    char args[256];
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "log: records 1..100"), "%s", out);
    cr_assert_not_null(strstr(out, "ok: clean\n"), "%s", out);
    snprintf(args, sizeof args, "wal dump '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, 100);
    cr_assert(strncmp(out, "index=1 epoch=7 type=2 timestamp_us=10 len=5\n", 45) == 0, "%s", out);
    snprintf(args, sizeof args, "wal dump --payload '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "index=100 epoch=7 type=2 timestamp_us=1000 len=5 "
                                   "payload=68656c6c6f\n"));
    remove_log();
}

Test(wal_cli, verify_reports_a_torn_tail_and_changes_nothing)
{
    make_log(100, false, false);
    char path[WAL_PATH_BYTES], args[256];
    /* 45-byte records, 90 to a 4 KiB segment: the last segment starts at 91. */
    wal_segment_name(path, sizeof path, dir, 91);
    cr_assert_eq(truncate(path, 32 + 9 * 45 + 20), 0);
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    char want[WAL_PATH_BYTES + 64];
    snprintf(want, sizeof want, "torn tail: %s at offset %d: 20 byte(s)", path, 32 + 9 * 45);
    cr_assert_not_null(strstr(out, want), "%s", out);
    cr_assert_not_null(strstr(out, "log: records 1..99"), "%s", out);
    /* Read-only: a second run sees the same torn tail. */
    cr_assert_eq(run(args, out, sizeof out), 0);
    cr_assert_not_null(strstr(out, want), "%s", out);
    remove_log();
}

Test(wal_cli, verify_and_dump_a_preallocated_log)
{
    make_log(100, false, true);
    char path[WAL_PATH_BYTES], args[256];
    wal_segment_name(path, sizeof path, dir, 1);
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "log: records 1..100"), "%s", out);
    cr_assert_not_null(strstr(out, "ok: clean\n"), "the zero tail is not torn: %s", out);
    snprintf(args, sizeof args, "wal dump '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0);
    int lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, 100);
    /* Garbage 10 bytes after the last record: a torn tail up to its last byte. */
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 32 + 100 * 45 + 10, SEEK_SET);
    fputs("abc", f);
    fclose(f);
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    char want[WAL_PATH_BYTES + 64];
    snprintf(want, sizeof want, "torn tail: %s at offset %d: 13 byte(s)", path, 32 + 100 * 45);
    cr_assert_not_null(strstr(out, want), "%s", out);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_size, SM_WAL_SEGMENT_BYTES_DEFAULT, "verify changes nothing");
    remove_log();
}

Test(wal_cli, verify_names_file_and_offset_of_corruption)
{
    make_log(100, false, false);
    char path[WAL_PATH_BYTES], args[256];
    wal_segment_name(path, sizeof path, dir, 1);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 32 + 10 * 45 + 42, SEEK_SET); /* inside record 11's payload */
    fputc('X', f);
    fclose(f);
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    char want[WAL_PATH_BYTES + 64];
    snprintf(want, sizeof want, "CORRUPT: %s at offset %d: record checksum mismatch", path,
             32 + 10 * 45);
    cr_assert_not_null(strstr(out, want), "%s", out);
    snprintf(args, sizeof args, "wal dump '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 1);
    remove_log();
}

Test(wal_cli, snapshot_usage_and_errors)
{
    make_log(40, true, false);
    char args[256];
    snprintf(args, sizeof args, "wal verify '%s'", dir);
    cr_assert_eq(run(args, out, sizeof out), 0, "%s", out);
    cr_assert_not_null(strstr(out, "(index 20, epoch 7, 12 bytes)"), "%s", out);
    cr_assert_not_null(strstr(out, "log: records 21..40"), "%s", out);
    /* A damaged snapshot: recovery would fall back, verify says so and fails. */
    char path[WAL_PATH_BYTES];
    wal_snapshot_name(path, sizeof path, dir, 20);
    FILE *f = fopen(path, "r+b");
    fseek(f, 50, SEEK_SET);
    fputc('?', f);
    fclose(f);
    cr_assert_eq(run(args, out, sizeof out), 1, "%s", out);
    cr_assert_not_null(strstr(out, "BAD SNAPSHOT"), "%s", out);
    remove_log();
    cr_assert_eq(run("wal verify /nonexistent-shardmart-dir", out, sizeof out), 1);
    cr_assert_not_null(strstr(out, "cannot read"));
    cr_assert_eq(run("wal", out, sizeof out), 2);
    cr_assert_eq(run("wal frobnicate /tmp", out, sizeof out), 2);
    cr_assert_eq(run("wal verify a b", out, sizeof out), 2);
    cr_assert_eq(run("wal --help", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "usage: shardmart wal verify <dir>"));
    cr_assert_eq(run("help wal", out, sizeof out), 0);
    cr_assert_not_null(strstr(out, "--payload"));
}
