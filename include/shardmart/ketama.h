/*
 * ketama mode: the server choice of libmemcached's weighted ketama, bit for bit, for users who
 * move a memcached or twemproxy key space onto shardmart and must find every key where their
 * old clients put it. Usable on its own: it needs only this header, the library and libcrypto.
 *
 * How a key finds its server (see docs/ketama.md for the full story):
 *
 *   servers (host, port, weight) --MD5 of "host-i" or "host:port-i"--> 4 points per digest
 *        --> continuum: every point (32-bit value, server index), sorted
 *   key --MD5, first 4 bytes little-endian--> hash --first point >= hash, else the first-->
 *        server index
 *
 * A server gets floor(weight / total_weight * 40 * servers_count) digests, so 160 points at the
 * mean weight, computed in single-precision float exactly as libmemcached does it (the rounding
 * is part of the format). The server index is the position in the list given to ketama_init,
 * which is what libmemcached's memcached_generate_hash returns for the same list in the same order.
 *
 * Threads: a built struct ketama is read-only and may be shared; a struct ketama_hasher holds an
 * MD5 context and belongs to one thread at a time.
 *
 * Errors are 0 or a negative KETAMA_E_* code; ketama_strerror() gives the message.
 */
#ifndef SHARDMART_KETAMA_H
#define SHARDMART_KETAMA_H

#include <stddef.h>
#include <stdint.h>

#define KETAMA_MUST_USE __attribute__((warn_unused_result))

/* Servers in one continuum. libmemcached itself aborts past 100 (see docs/ketama.md); we accept
 * more, computed by the same rule. Mirrors SM_KETAMA_SERVERS_MAX in src/limits.h. */
#define KETAMA_SERVERS_MAX 1024
/* Longest host name, in bytes: libmemcached keeps a host in char[NI_MAXHOST] (1025 with the
 * terminating NUL), so this is the longest it accepts. Mirrors SM_KETAMA_HOST_BYTES_MAX. */
#define KETAMA_HOST_BYTES_MAX 1024
/* The port whose point strings omit ":port" (memcached's default port). */
#define KETAMA_DEFAULT_PORT 11211
/* Points per server at the mean weight, and points per MD5 digest (libmemcached's constants). */
#define KETAMA_POINTS_PER_SERVER 160
#define KETAMA_POINTS_PER_DIGEST 4

/* X(name, message). Codes are -(row + 1). */
#define KETAMA_ERRORS(X)                                                                           \
    X(NO_SERVERS, "ketama: the server list is empty")                                              \
    X(TOO_MANY_SERVERS, "ketama: more servers than KETAMA_SERVERS_MAX")                            \
    X(WEIGHT_ZERO, "ketama: a server has weight 0 (weights start at 1)")                           \
    X(HOST_EMPTY, "ketama: a server has an empty or missing host name")                            \
    X(HOST_TOO_LONG, "ketama: a host name is longer than KETAMA_HOST_BYTES_MAX bytes")             \
    X(PORT_ZERO, "ketama: a server has port 0")                                                    \
    X(DUPLICATE, "ketama: the same host and port are listed twice")                                \
    X(NOMEM, "ketama: out of memory")                                                              \
    X(CRYPTO, "ketama: libcrypto could not compute an MD5 digest")

enum ketama_err_row {
#define KETAMA_ERR_ROW(name, msg) KETAMA_ERR_ROW_##name,
    KETAMA_ERRORS(KETAMA_ERR_ROW)
#undef KETAMA_ERR_ROW
        KETAMA_ERR_COUNT
};

enum ketama_err {
    KETAMA_OK = 0,
#define KETAMA_ERR_ENUM(name, msg) KETAMA_E_##name = -(KETAMA_ERR_ROW_##name + 1),
    KETAMA_ERRORS(KETAMA_ERR_ENUM)
#undef KETAMA_ERR_ENUM
};

/* The message of a KETAMA_E_* code; "ketama: ok" for 0, a generic message for anything else.
 * Never NULL. */
const char *ketama_strerror(int err);

/* One memcached server as the caller lists it. host is a NUL-terminated name or address exactly
 * as given to libmemcached (it is hashed as text, never resolved); borrowed during ketama_init
 * only. weight >= 1 (libmemcached silently turns 0 into 1; we refuse it as an error). */
struct ketama_server {
    const char *host;
    uint16_t port;
    uint32_t weight;
};

/* A built continuum. Fields are read-only for callers. points[i] is (value << 32 | server): one
 * sorted uint64 array gives libmemcached's order (value, then server index) for free.
 * bucket_first[b] is the index of the first point whose value >= b << bucket_shift, so a lookup
 * jumps to its neighbourhood in one load instead of binary-searching the whole continuum. */
struct ketama {
    uint64_t *points;
    uint32_t *bucket_first; /* (1 << (32 - bucket_shift)) + 1 entries */
    uint32_t points_count;
    uint32_t servers_count;
    uint32_t bucket_shift;
};

/* An MD5 context reused from key to key (one per thread). */
struct ketama_hasher {
    void *md;     /* EVP_MD *, fetched once */
    void *md_ctx; /* EVP_MD_CTX * */
};

/* Builds the continuum of servers[0..servers_count). Borrows servers; allocates k's arrays (free
 * with ketama_free). 0, or KETAMA_E_NO_SERVERS, _TOO_MANY_SERVERS, _WEIGHT_ZERO, _HOST_EMPTY,
 * _HOST_TOO_LONG, _PORT_ZERO, _DUPLICATE, _NOMEM, _CRYPTO; on error k holds nothing to free
 * (ketama_free on it is still safe). */
KETAMA_MUST_USE int ketama_init(struct ketama *k, const struct ketama_server *servers,
                                size_t servers_count);
/* Frees what ketama_init allocated; safe on a zeroed or already freed struct. */
void ketama_free(struct ketama *k);

/* Points a server of weight `weight` gets in a list of servers_count servers whose weights add up
 * to weight_total: libmemcached's formula, float rounding included. A multiple of 4; may be 0 for
 * a server whose weight is tiny next to the others (such a server receives no keys). */
uint32_t ketama_points_of_server(uint32_t weight, uint64_t weight_total, uint32_t servers_count);

/* 0, or KETAMA_E_NOMEM / KETAMA_E_CRYPTO. Free with ketama_hasher_free. */
KETAMA_MUST_USE int ketama_hasher_init(struct ketama_hasher *h);
/* Safe on a zeroed or already freed hasher. */
void ketama_hasher_free(struct ketama_hasher *h);

/* The key's ketama hash: the first 4 bytes of MD5(key), little-endian. key may be NULL when
 * key_len is 0. 0, or KETAMA_E_CRYPTO (libcrypto failed, e.g. out of memory). */
KETAMA_MUST_USE int ketama_key_hash(struct ketama_hasher *h, const void *key, size_t key_len,
                                    uint32_t *hash_out);

/* The server index for a key hash: the first point >= hash, wrapping to the first point. */
uint32_t ketama_server_of_hash(const struct ketama *k, uint32_t hash);

/* ketama_key_hash then ketama_server_of_hash: the index into the list given to ketama_init, the
 * same number memcached_generate_hash returns. 0, or KETAMA_E_CRYPTO. */
KETAMA_MUST_USE int ketama_lookup(const struct ketama *k, struct ketama_hasher *h, const void *key,
                                  size_t key_len, uint32_t *server_out);

#endif
