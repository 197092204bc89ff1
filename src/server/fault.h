/*
 * Deliberate crashes for the crash test (tests/integration/test_crash.c): the environment
 * variable SHARDMART_FAULT, read by `shardmart start` only when it is set, makes the node kill
 * itself with SIGKILL at a chosen moment of its disk I/O. It wraps the file-system table the log
 * and the snapshots use (wal/fs.h), so the moments are exact and the rest of the node is the
 * production code. The node announces the fault on stderr at start. docs/node.md lists them:
 *
 *   kill-before-fsync:N          before the Nth fsync/fdatasync (written, not yet durable)
 *   kill-after-fsync:N           after the Nth fsync/fdatasync (durable, nothing replied yet)
 *   kill-mid-write:N             the Nth write reaches the file half-way (a torn tail)
 *   kill-before-snapshot-rename[:N]  the Nth snapshot is written and synced, not yet renamed
 *   kill-after-snapshot-rename[:N]   the Nth snapshot is renamed, the directory not yet synced
 *
 * A kill in the snapshot child kills the node first (a crash of the machine takes both).
 */
#ifndef SHARDMART_SERVER_FAULT_H
#define SHARDMART_SERVER_FAULT_H

#include <stddef.h>

#include "util/assert.h"
#include "wal/fs.h"

/* The largest N a fault takes: past any test's I/O count. */
#define SERVER_FAULT_COUNT_MAX 1000000000u

/* Parses spec (the value of SHARDMART_FAULT) and points *fs at a table that runs the real file
 * system with the fault armed. 0, or SM_E_BADARG with the reason in why[0, why_cap). The table
 * is static: one fault per process. */
MUST_USE int server_fault_arm(const char *spec, const struct sm_fs **fs, char *why, size_t why_cap);

#endif
