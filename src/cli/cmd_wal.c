/*
 * `shardmart wal verify|dump <dir>`: the operator's view of a log directory. Both open the log
 * read-only (recovery's checks, no change to any file): verify says whether a node would start
 * on it and why not, naming the file and offset; dump prints one line per record.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "util/error.h"
#include "wal/wal.h"

const char cli_wal_usage[] =
    "usage: shardmart wal verify <dir>\n"
    "       shardmart wal dump [--payload] <dir>\n"
    "\n"
    "Reads a log directory (segments wal-*.log and snapshots snap-*.snap) without changing it.\n"
    "\n"
    "verify  runs recovery's checks and reports the snapshot chosen, the records in the log, a\n"
    "        torn tail (the unsynced end of the last segment after a crash: normal, start cuts\n"
    "        it off) and any corruption before the tail, with the file and byte offset.\n"
    "        Exit 0: the log is clean, or only has a torn tail. Exit 1: corruption (start refuses\n"
    "        unless --repair) or a snapshot that fails its checks, or the directory is "
    "unreadable.\n"
    "dump    prints one line per record: index, epoch, type, timestamp (microseconds) and payload\n"
    "        length; --payload adds the payload in hex. Exit 1 when the log cannot be read.\n"
    "\n"
    "Exit 2: bad usage.\n";

static int open_read_only(const char *dir, struct wal *w, struct wal_recovery *rep)
{
    struct wal_config c = {.dir = dir, .read_only = true};
    int rc = wal_open(w, &c, rep);
    if (rc == SM_E_CORRUPT)
        fprintf(stderr, "CORRUPT: %s at offset %" PRIu64 ": %s\n", rep->corrupt_path,
                rep->corrupt_offset, rep->corrupt_reason);
    else if (rc < 0)
        fprintf(stderr, "shardmart wal: cannot read %s: %s\n", dir, sm_strerror(rc));
    return rc;
}

static void print_report(const struct wal_recovery *rep)
{
    if (rep->snapshot_found)
        printf("snapshot: %s (index %" PRIu64 ", epoch %" PRIu64 ", %" PRIu64 " bytes)\n",
               rep->snapshot_path, rep->snapshot_index, rep->snapshot_epoch, rep->snapshot_bytes);
    else
        printf("snapshot: none\n");
    if (rep->snapshots_corrupt)
        printf("BAD SNAPSHOT: %s fails its checks (%u skipped; recovery falls back)\n",
               rep->snapshot_corrupt_path, rep->snapshots_corrupt);
    if (rep->index_last >= rep->index_first)
        printf("log: records %" PRIu64 "..%" PRIu64 " after the snapshot, %u segment(s)\n",
               rep->index_first, rep->index_last, rep->segments);
    else
        printf("log: no records after the snapshot, %u segment(s)\n", rep->segments);
    if (rep->torn)
        printf("torn tail: %s at offset %" PRIu64 ": %" PRIu64
               " byte(s) after the last complete record (start cuts them off)\n",
               rep->torn_path, rep->torn_offset, rep->torn_bytes);
}

static int wal_verify(const char *dir)
{
    struct wal w;
    struct wal_recovery rep;
    if (open_read_only(dir, &w, &rep) < 0) {
        if (rep.corrupt)
            fprintf(stderr, "start refuses this log; 'shardmart start --repair' keeps a copy of "
                            "the damaged file and truncates it at that offset\n");
        return 1;
    }
    print_report(&rep);
    wal_close(&w);
    if (rep.snapshots_corrupt)
        return 1;
    printf(rep.torn ? "ok: clean but for the torn tail\n" : "ok: clean\n");
    return 0;
}

static void print_record(const struct wal_record *r, bool payload)
{
    printf("index=%" PRIu64 " epoch=%" PRIu64 " type=%u timestamp_us=%" PRIu64 " len=%" PRIu32,
           r->index, r->epoch, r->type, r->timestamp_us, r->len);
    if (payload) {
        fputs(" payload=", stdout);
        const uint8_t *p = r->payload;
        for (uint32_t i = 0; i < r->len; i++)
            printf("%02x", p[i]);
    }
    putchar('\n');
}

static int wal_dump(const char *dir, bool payload)
{
    struct wal w;
    struct wal_recovery rep;
    if (open_read_only(dir, &w, &rep) < 0)
        return 1;
    int rc = 0;
    if (w.segments_count > 0) {
        struct wal_iter it;
        rc = wal_iter_init(&it, &w, w.segments[0].index_first);
        struct wal_record r;
        while (rc == 0 && (rc = wal_iter_next(&it, &r)) == 1) {
            print_record(&r, payload);
            rc = 0;
        }
        if (rc >= 0)
            wal_iter_free(&it);
    }
    wal_close(&w);
    if (rc < 0) {
        fprintf(stderr, "shardmart wal: reading %s: %s\n", dir, sm_strerror(rc));
        return 1;
    }
    return 0;
}

int cli_wal(int argc, char **argv)
{
    bool payload = false;
    const char *words[3] = {NULL, NULL, NULL};
    int nwords = 0;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--payload") == 0)
            payload = true;
        else if (nwords < 3)
            words[nwords++] = argv[i];
    }
    const char *verb = nwords == 2 ? words[0] : NULL;
    const char *dir = words[1];
    if (verb && strcmp(verb, "verify") == 0 && !payload)
        return wal_verify(dir);
    if (verb && strcmp(verb, "dump") == 0)
        return wal_dump(dir, payload);
    fputs(cli_wal_usage, stderr);
    return 2;
}
