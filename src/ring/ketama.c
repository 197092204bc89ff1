/*
 * ketama mode: libmemcached's weighted ketama continuum, rebuilt here so that shardmart (and any
 * program linking include/shardmart/ketama.h) sends every key to the server libmemcached's
 * memcached_generate_hash picks for the same server list. Compatibility is the whole point, so
 * every quirk is kept on purpose and marked as such: the single-precision float arithmetic of the
 * point count, the point strings ("host-i" on port 11211, "host:port-i" otherwise), the four
 * little-endian words taken from each digest, and the (value, server index) order of the sort.
 *
 * What is ours is the lookup structure. libmemcached binary-searches an array of 8-byte
 * (value, index) pairs; we keep the same pairs packed into one sorted uint64 array plus a prefix
 * table over the top bits of the hash, so a lookup costs one table load and a short forward scan
 * instead of about 14 dependent loads. MD5 comes from libcrypto (EVP, one context per thread).
 */
#include "shardmart/ketama.h"

#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "limits.h"
#include "util/assert.h"

_Static_assert(KETAMA_SERVERS_MAX == SM_KETAMA_SERVERS_MAX, "public and internal limits agree");
_Static_assert(KETAMA_HOST_BYTES_MAX == SM_KETAMA_HOST_BYTES_MAX, "public and internal limits");
/* The largest continuum: every server's digest count exceeds its exact share by less than one
 * (float error is far below 1 at these magnitudes), so at most (160 + 4) points per server. */
_Static_assert((uint64_t)SM_KETAMA_SERVERS_MAX *(KETAMA_POINTS_PER_SERVER + 4) < UINT32_MAX,
               "point indexes fit in 32 bits");

/* The prefix table has about one bucket per point, capped at 2^16 buckets (256 KiB): past that
 * the table itself stops fitting in L2 and a couple of extra scan steps are cheaper. */
#define KETAMA_BUCKET_BITS_MAX 16
/* "host:65535-4294967295" on top of the longest host, plus the NUL. */
#define KETAMA_POINT_STRING_BYTES_MAX (KETAMA_HOST_BYTES_MAX + 24)

static const char *const ketama_messages[KETAMA_ERR_COUNT] = {
#define KETAMA_ERR_MSG(name, msg) msg,
    KETAMA_ERRORS(KETAMA_ERR_MSG)
#undef KETAMA_ERR_MSG
};

const char *ketama_strerror(int err)
{
    if (err == 0)
        return "ketama: ok";
    if (err < 0 && err >= -KETAMA_ERR_COUNT)
        return ketama_messages[-err - 1];
    return "ketama: unknown error";
}

/* ---- MD5 ----------------------------------------------------------------------------------- */

int ketama_hasher_init(struct ketama_hasher *h)
{
    ASSERT(h != NULL);
    h->md = NULL;
    h->md_ctx = NULL;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return KETAMA_E_NOMEM;
    /* Fetched once: EVP_md5() would look the implementation up again on every digest. */
    EVP_MD *md = EVP_MD_fetch(NULL, "MD5", NULL);
    if (md == NULL) {
        EVP_MD_CTX_free(ctx);
        return KETAMA_E_CRYPTO;
    }
    h->md = md;
    h->md_ctx = ctx;
    return 0;
}

void ketama_hasher_free(struct ketama_hasher *h)
{
    ASSERT(h != NULL);
    EVP_MD_CTX_free(h->md_ctx);
    EVP_MD_free(h->md);
    h->md = NULL;
    h->md_ctx = NULL;
}

/* MD5 of data into digest. A reused context re-initialised per message is the fastest path the
 * non-deprecated OpenSSL 3 API offers (measured in docs/ketama.md: EVP_Digest and EVP_Q_digest
 * set up a new context every call). */
static int md5(struct ketama_hasher *h, const void *data, size_t len, unsigned char digest[16])
{
    ASSERT(h->md != NULL && h->md_ctx != NULL);
    ASSERT(data != NULL || len == 0);
    unsigned int digest_len = 0;
    if (EVP_DigestInit_ex2(h->md_ctx, h->md, NULL) != 1 ||
        EVP_DigestUpdate(h->md_ctx, data, len) != 1 ||
        EVP_DigestFinal_ex(h->md_ctx, digest, &digest_len) != 1)
        return KETAMA_E_CRYPTO;
    ASSERT(digest_len == 16);
    return 0;
}

/* Word `word` (0..3) of a digest, assembled little-endian whatever the host's byte order, which
 * is how libmemcached reads both key hashes (word 0) and point values (words 0..3). */
static uint32_t digest_word(const unsigned char digest[16], unsigned word)
{
    ASSERT(word < 4);
    const unsigned char *p = digest + 4 * word;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int ketama_key_hash(struct ketama_hasher *h, const void *key, size_t key_len, uint32_t *hash_out)
{
    ASSERT(hash_out != NULL);
    unsigned char digest[16];
    int err = md5(h, key, key_len, digest);
    if (err != 0)
        return err;
    *hash_out = digest_word(digest, 0);
    return 0;
}

/* ---- building the continuum ---------------------------------------------------------------- */

uint32_t ketama_points_of_server(uint32_t weight, uint64_t weight_total, uint32_t servers_count)
{
    ASSERT(weight_total >= weight && weight_total > 0);
    ASSERT(servers_count > 0);
    /* Kept exactly as libmemcached computes it, in float and in this order, because the rounding
     * decides how many digests a server gets: share * 160 / 4 * servers, plus 1e-10 (which only
     * matters for values that are integers up to float error), floored, times 4. */
    float share = (float)weight / (float)weight_total;
    float digests = share * (float)KETAMA_POINTS_PER_SERVER / (float)KETAMA_POINTS_PER_DIGEST *
                        (float)servers_count +
                    0.0000000001F;
    return (uint32_t)floorf(digests) * KETAMA_POINTS_PER_DIGEST;
}

/* Every bad input is an error value; the first one found, in list order, is reported. */
static int validate_servers(const struct ketama_server *servers, size_t servers_count)
{
    if (servers_count == 0)
        return KETAMA_E_NO_SERVERS;
    if (servers_count > KETAMA_SERVERS_MAX)
        return KETAMA_E_TOO_MANY_SERVERS;
    ASSERT(servers != NULL);
    for (size_t i = 0; i < servers_count; i++) {
        const struct ketama_server *s = &servers[i];
        if (s->host == NULL || s->host[0] == '\0')
            return KETAMA_E_HOST_EMPTY;
        if (strnlen(s->host, KETAMA_HOST_BYTES_MAX + 1) > KETAMA_HOST_BYTES_MAX)
            return KETAMA_E_HOST_TOO_LONG;
        if (s->port == 0)
            return KETAMA_E_PORT_ZERO;
        if (s->weight == 0)
            return KETAMA_E_WEIGHT_ZERO;
        /* Quadratic, but over at most 1024 servers once per build; a duplicate would only ever
         * lose every tie to its twin and receive no keys, so it is a configuration mistake. */
        for (size_t j = 0; j < i; j++)
            if (servers[j].port == s->port && strcmp(servers[j].host, s->host) == 0)
                return KETAMA_E_DUPLICATE;
    }
    return 0;
}

/* Appends server `server`'s points at points[*count]. */
static int add_server_points(struct ketama_hasher *h, const struct ketama_server *s,
                             uint32_t server, uint32_t points, uint64_t *out, uint32_t *count)
{
    ASSERT(points % KETAMA_POINTS_PER_DIGEST == 0);
    char text[KETAMA_POINT_STRING_BYTES_MAX];
    for (uint32_t d = 0; d < points / KETAMA_POINTS_PER_DIGEST; d++) {
        int len =
            s->port == KETAMA_DEFAULT_PORT
                ? snprintf(text, sizeof text, "%s-%u", s->host, (unsigned)d)
                : snprintf(text, sizeof text, "%s:%u-%u", s->host, (unsigned)s->port, (unsigned)d);
        ASSERT(len > 0 && (size_t)len < sizeof text);
        unsigned char digest[16];
        int err = md5(h, text, (size_t)len, digest);
        if (err != 0)
            return err;
        for (unsigned w = 0; w < KETAMA_POINTS_PER_DIGEST; w++)
            out[(*count)++] = (uint64_t)digest_word(digest, w) << 32 | server;
    }
    return 0;
}

static int compare_points(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* One bucket per point, rounded up to a power of two, within [2, 2^KETAMA_BUCKET_BITS_MAX]. */
static uint32_t bucket_bits_for(uint32_t points_count)
{
    uint32_t bits = 1;
    while (bits < KETAMA_BUCKET_BITS_MAX && (1U << bits) < points_count)
        bits++;
    return bits;
}

/* bucket_first[b] = first point whose value >= b << shift; the last entry is points_count. */
static void fill_buckets(struct ketama *k, uint32_t buckets)
{
    uint32_t j = 0;
    for (uint32_t b = 0; b <= buckets; b++) {
        uint64_t start = (uint64_t)b << k->bucket_shift;
        while (j < k->points_count && k->points[j] >> 32 < start)
            j++;
        k->bucket_first[b] = j;
    }
    ASSERT(k->bucket_first[buckets] == k->points_count);
}

static int fill_points(struct ketama *k, const struct ketama_server *servers, uint64_t weight_total)
{
    struct ketama_hasher h;
    int err = ketama_hasher_init(&h);
    if (err != 0)
        return err;
    uint32_t count = 0;
    for (uint32_t i = 0; i < k->servers_count && err == 0; i++) {
        uint32_t points =
            ketama_points_of_server(servers[i].weight, weight_total, k->servers_count);
        err = add_server_points(&h, &servers[i], i, points, k->points, &count);
    }
    ketama_hasher_free(&h);
    if (err != 0)
        return err;
    ASSERT(count == k->points_count);
    /* Sorting the packed (value << 32 | index) words is libmemcached's order: by value, ties
     * broken by the lower server index, so colliding points resolve the same way. */
    qsort(k->points, count, sizeof k->points[0], compare_points);
    return 0;
}

int ketama_init(struct ketama *k, const struct ketama_server *servers, size_t servers_count)
{
    ASSERT(k != NULL);
    memset(k, 0, sizeof *k);
    int err = validate_servers(servers, servers_count);
    if (err != 0)
        return err;
    k->servers_count = (uint32_t)servers_count;
    uint64_t weight_total = 0;
    for (size_t i = 0; i < servers_count; i++)
        weight_total += servers[i].weight;
    uint64_t points_count = 0;
    for (size_t i = 0; i < servers_count; i++)
        points_count += ketama_points_of_server(servers[i].weight, weight_total, k->servers_count);
    /* The heaviest server has at least the mean weight, so at least ~160 points: never empty. */
    ASSERT(points_count >= KETAMA_POINTS_PER_DIGEST);
    ASSERT(points_count <= (uint64_t)servers_count * (KETAMA_POINTS_PER_SERVER + 4));
    k->points_count = (uint32_t)points_count;
    uint32_t bits = bucket_bits_for(k->points_count);
    k->bucket_shift = 32 - bits;
    k->points = malloc(points_count * sizeof k->points[0]);
    k->bucket_first = malloc(((size_t)1 << bits) * sizeof k->bucket_first[0] + sizeof(uint32_t));
    if (k->points == NULL || k->bucket_first == NULL) {
        err = KETAMA_E_NOMEM;
        goto fail;
    }
    err = fill_points(k, servers, weight_total);
    if (err != 0)
        goto fail;
    fill_buckets(k, 1U << bits);
    return 0;
fail:
    ketama_free(k);
    return err;
}

void ketama_free(struct ketama *k)
{
    ASSERT(k != NULL);
    free(k->points);
    free(k->bucket_first);
    memset(k, 0, sizeof *k);
}

/* ---- lookup -------------------------------------------------------------------------------- */

uint32_t ketama_server_of_hash(const struct ketama *k, uint32_t hash)
{
    ASSERT(k->points_count > 0);
    /* Points before bucket_first[b] are below b << shift <= hash; points from bucket_first[b + 1]
     * on are at or above (b + 1) << shift > hash. So the first point >= hash is in between, or
     * is bucket_first[b + 1] itself. */
    uint32_t b = hash >> k->bucket_shift;
    uint32_t i = k->bucket_first[b];
    uint32_t end = k->bucket_first[b + 1];
    uint64_t want = (uint64_t)hash << 32;
    while (i < end && k->points[i] < want)
        i++;
    if (i == k->points_count)
        i = 0; /* past the last point: wrap to the first, as libmemcached does */
    return (uint32_t)k->points[i];
}

int ketama_lookup(const struct ketama *k, struct ketama_hasher *h, const void *key, size_t key_len,
                  uint32_t *server_out)
{
    ASSERT(server_out != NULL);
    uint32_t hash;
    int err = ketama_key_hash(h, key, key_len, &hash);
    if (err != 0)
        return err;
    *server_out = ketama_server_of_hash(k, hash);
    ASSERT(*server_out < k->servers_count);
    return 0;
}
