/*
 * The project-wide error codes. Operating errors are values: a function returns 0 or one of these
 * (negative), outputs go last. The X-macro keeps the enum, the stable wire code that clients see
 * as `-CODE message`, and the default message in one table so they never drift apart.
 *
 * The wire codes are a public contract (DESIGN.md section 8): never rename one, only add.
 * The placement library (include/shardmart/ring.h) keeps its own codes because it is usable on
 * its own, without the rest of shardmart.
 */
#ifndef SHARDMART_UTIL_ERROR_H
#define SHARDMART_UTIL_ERROR_H

/* X(name, wire code, default message) */
#define SM_ERRORS(X)                                                                               \
    X(BADARG, "BADARG", "bad argument")                                                            \
    X(TOOLARGE, "TOOLARGE", "argument or request too large")                                       \
    X(NOTFOUND, "NOTFOUND", "no such object")                                                      \
    X(EXISTS, "EXISTS", "object already exists")                                                   \
    X(SOLDOUT, "SOLDOUT", "not enough stock")                                                      \
    X(LIMIT, "LIMIT", "per-user purchase limit reached")                                           \
    X(NOFUNDS, "NOFUNDS", "insufficient funds")                                                    \
    X(STATE, "STATE", "not allowed in the current state")                                          \
    X(IDEMPOTENCY, "IDEMPOTENCY", "request id reused with different arguments")                    \
    X(BUSY, "BUSY", "table full")                                                                  \
    X(MOVED, "MOVED", "partition lives elsewhere")                                                 \
    X(TRYAGAIN, "TRYAGAIN", "temporarily unavailable, retry")                                      \
    X(NOAUTH, "NOAUTH", "authentication required")                                                 \
    X(WRONGPASS, "WRONGPASS", "invalid password")                                                  \
    X(NOTHELD, "NOTHELD", "not the holder")                                                        \
    X(OVERFLOW, "OVERFLOW", "arithmetic overflow")                                                 \
    X(UNKNOWN, "ERR", "unknown command")                                                           \
    X(PROTO, "PROTO", "protocol error")                                                            \
    X(NOMEM, "NOMEM", "out of memory")                                                             \
    X(IO, "IO", "i/o error")                                                                       \
    X(CORRUPT, "CORRUPT", "corrupt data")                                                          \
    X(TIMEOUT, "TIMEOUT", "timed out")                                                             \
    X(FENCED, "FENCED", "stale epoch")

/* Row numbers of the table, for lookups; not error codes themselves. */
enum sm_err_row {
#define SM_ERR_ROW(name, code, msg) SM_ERR_ROW_##name,
    SM_ERRORS(SM_ERR_ROW)
#undef SM_ERR_ROW
        SM_ERR_COUNT
};

/* 0 is success; every error is negative: row r is -(r + 1). */
enum sm_err {
    SM_OK = 0,
#define SM_ERR_ENUM(name, code, msg) SM_E_##name = -(SM_ERR_ROW_##name + 1),
    SM_ERRORS(SM_ERR_ENUM)
#undef SM_ERR_ENUM
};

/* The stable wire code ("SOLDOUT") of an error; "OK" for 0, "ERR" for a value not in the table. */
const char *sm_errcode(int err);

/* The default human message of an error; never NULL. */
const char *sm_strerror(int err);

#endif
