/*
 * Every bound in shardmart, in one place, each with its reason (DESIGN.md section 9). A limit that
 * is passed is a clear error reply, never an abort; each one has a test that passes it.
 * Relations between limits are checked at compile time at the bottom of this file.
 *
 * Layers add their own bounds here, in their own section, rather than in private headers, so that
 * an operator can read the whole envelope of the system in one file.
 */
#ifndef SHARDMART_LIMITS_H
#define SHARDMART_LIMITS_H

/* ---- keys and ids -------------------------------------------------------------------------- */

/* A key, SKU, order id, account id, lock name or request id: 1..128 bytes. Long enough for a
 * UUID with a prefix, short enough that an index entry stays in two cache lines. */
#define SM_KEY_BYTES_MAX 128

/* ---- placement (src/ring/) ----------------------------------------------------------------- */

/* Partitions per cluster: fixed at creation; 2^16 lets a partition number fit in 16 bits of an
 * order id and keeps the placement table (P x R node indexes) small. */
#define SM_PARTITIONS_MAX 65536
/* The default partition count: enough that 1.05x balance holds up to ~16 nodes at R=3. */
#define SM_PARTITIONS_DEFAULT 256
/* Replicas per partition: 1..7; beyond that every write waits on too many fsyncs to be useful. */
#define SM_REPLICAS_MAX     7
#define SM_REPLICAS_DEFAULT 3

/* ---- orders -------------------------------------------------------------------------------- */

/* Items per order: 1..64. A cart larger than that is several orders; the bound keeps a prepared
 * order's hold list on the stack and its record small. */
#define SM_ORDER_ITEMS_MAX 64

/* ---- locks (src/engine/locks.h) ------------------------------------------------------------ */

/* Session TTL, grant lease and wait timeout: 1 ms .. 1 day. A lease longer than a day is a lock
 * nobody will release; the bound also keeps now + duration far from int64 overflow. */
#define SM_LOCK_TTL_MS_MAX (24LL * 60 * 60 * 1000)
/* Reentrant acquisitions of one exclusive lock by its holder. Code that nests deeper than this is
 * looping; Java's ReentrantLock stops at 2^31, we stop far earlier to catch the bug. */
#define SM_LOCK_REENTRY_MAX 65535
/* Permits of one semaphore. A permit id is (log index << 16 | n) with n < 2^16 the permit's rank
 * among those granted to that semaphore in one record, so N must fit in 16 bits. */
#define SM_LOCK_PERMITS_MAX 65535
/* Log indexes the lock service accepts: 2^48 - 1, so that index << 16 fits a permit id. At a
 * million records per second per partition that is about nine years of one partition's log. */
#define SM_LOCK_INDEX_MAX ((1ULL << 48) - 1)

/* ---- protocol and connections (src/proto/, src/server/) ------------------------------------ */

/* One request, all arguments together: 1 MiB. Redis allows 512 MiB per bulk; a trading command
 * never needs more than a few KiB, and a small bound keeps a bad client from eating memory. */
#define SM_REQUEST_BYTES_MAX (1024 * 1024)
/* Arguments in one command: an order of 64 items with their quantities and options fits. */
#define SM_REQUEST_ARGS_MAX 256

/* RESP replies read by our own tools (src/proto/resp.h): nesting depth and one bulk string.
 * Depth 32 is far more than any reply we send (two levels) and bounds the parser's stack;
 * 512 MiB is Redis's own proto-max-bulk-len default, so a reply a real server sends is accepted. */
#define SM_RESP_REPLY_DEPTH_MAX      32
#define SM_RESP_REPLY_BULK_BYTES_MAX (512L * 1024 * 1024)

/* HTTP/1.1 (src/proto/http.h) serves probes, metrics and a small JSON API, never uploads.
 * Request line + headers: 8 KiB (nginx's large_client_header_buffers default) -> 431.
 * Request target: 2 KiB, enough for any API path with its query -> 414.
 * Header lines: 32; curl sends 3, browsers about 15 -> 431.
 * Body: 64 KiB, a JSON order of 64 items is about 4 KiB -> 413. */
#define SM_HTTP_HEAD_BYTES_MAX   8192
#define SM_HTTP_TARGET_BYTES_MAX 2048
#define SM_HTTP_HEADERS_MAX      32
#define SM_HTTP_BODY_BYTES_MAX   (64 * 1024)

_Static_assert(SM_KEY_BYTES_MAX < SM_REQUEST_BYTES_MAX, "a key must fit in a request");
_Static_assert(2 * SM_ORDER_ITEMS_MAX + 32 <= SM_REQUEST_ARGS_MAX,
               "a full order must fit in one command");
_Static_assert(SM_HTTP_TARGET_BYTES_MAX < SM_HTTP_HEAD_BYTES_MAX, "a target must fit in a head");
_Static_assert(SM_REQUEST_BYTES_MAX <= SM_RESP_REPLY_BULK_BYTES_MAX, "replies hold any request");
_Static_assert(SM_REPLICAS_DEFAULT <= SM_REPLICAS_MAX, "default replicas within bound");
_Static_assert(SM_PARTITIONS_DEFAULT <= SM_PARTITIONS_MAX, "default partitions within bound");

#endif
