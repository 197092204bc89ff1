/*
 * ketama mode against libmemcached, same run, same keys: ketama_lookup (MD5 through libcrypto's
 * EVP plus our prefix-table lookup) against memcached_generate_hash (libmemcached's own MD5 plus
 * its binary search), both on one random 100-server list (the most libmemcached accepts).
 * Prints medians of RUNS runs in ns per key (thread CPU time) and the ratio; the target is
 * ratio > 1 (ours faster).
 *
 * Then the parts, to show where the time goes and why the MD5 call is what it is: three ways to
 * get an MD5 out of OpenSSL 3 without deprecated calls, and the lookup alone (prefix table)
 * against a plain binary search over the same continuum.
 */
#include <libmemcached/memcached.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shardmart/ketama.h"
#include "bench_util.h"

#define SERVERS     100
#define KEYS        1000000
#define RUNS        7
#define CHUNK       10000
#define KEY_LEN_MAX 40

static uint64_t rng_state = 0x6a09e667f3bcc908ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* This thread's CPU time, not wall time: the machine is shared, and time spent descheduled while
 * another process runs says nothing about either contender. */
static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/* Keys: printable, 8..40 bytes, like "user:1234:cart" style memcached keys, in one buffer. */
struct keys {
    char *bytes;
    uint32_t offset[KEYS + 1];
    uint32_t hash[KEYS];
};

static void make_keys(struct keys *k)
{
    k->bytes = malloc((size_t)KEYS * KEY_LEN_MAX);
    if (k->bytes == NULL)
        abort();
    uint32_t at = 0;
    for (uint32_t i = 0; i < KEYS; i++) {
        k->offset[i] = at;
        uint32_t len = 8 + (uint32_t)(rng() % (KEY_LEN_MAX - 7));
        for (uint32_t j = 0; j < len; j++)
            k->bytes[at + j] = (char)('!' + rng() % 94);
        at += len;
    }
    k->offset[KEYS] = at;
}

#define KEY(k, i)     ((k)->bytes + (k)->offset[i])
#define KEY_LEN(k, i) ((size_t)((k)->offset[(i) + 1] - (k)->offset[i]))

static memcached_st *make_libmemcached(const struct ketama_server *s)
{
    memcached_st *memc = memcached_create(NULL);
    if (memc == NULL ||
        memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) != MEMCACHED_SUCCESS)
        abort();
    for (int i = 0; i < SERVERS; i++)
        if (memcached_server_add_with_weight(memc, s[i].host, s[i].port, s[i].weight) !=
            MEMCACHED_SUCCESS)
            abort();
    return memc;
}

/* Timed passes over keys [from, to) for each contender, results into out[]. */
static double pass_ours(const struct ketama *kt, struct ketama_hasher *h, const struct keys *k,
                        uint32_t from, uint32_t to, uint32_t *out)
{
    double t = now_ns();
    for (uint32_t i = from; i < to; i++)
        if (ketama_lookup(kt, h, KEY(k, i), KEY_LEN(k, i), &out[i]) != 0)
            abort();
    return now_ns() - t;
}

static double pass_libmemcached(const memcached_st *memc, const struct keys *k, uint32_t from,
                                uint32_t to, uint32_t *out)
{
    double t = now_ns();
    for (uint32_t i = from; i < to; i++)
        out[i] = memcached_generate_hash(memc, KEY(k, i), KEY_LEN(k, i));
    return now_ns() - t;
}

/* One run: the keys in chunks of CHUNK, each chunk timed for both contenders back to back, the
 * order alternating, so that load from other processes on a shared machine lands on both alike
 * instead of on whoever happened to run during a burst. */
static void run_interleaved(const struct ketama *kt, struct ketama_hasher *h,
                            const memcached_st *memc, const struct keys *k, uint32_t *ours_out,
                            uint32_t *theirs_out, double *ours_ns, double *theirs_ns)
{
    *ours_ns = 0;
    *theirs_ns = 0;
    for (uint32_t from = 0, c = 0; from < KEYS; from += CHUNK, c++) {
        uint32_t to = from + CHUNK < KEYS ? from + CHUNK : KEYS;
        if (c % 2 == 0) {
            *ours_ns += pass_ours(kt, h, k, from, to, ours_out);
            *theirs_ns += pass_libmemcached(memc, k, from, to, theirs_out);
        } else {
            *theirs_ns += pass_libmemcached(memc, k, from, to, theirs_out);
            *ours_ns += pass_ours(kt, h, k, from, to, ours_out);
        }
    }
    *ours_ns /= KEYS;
    *theirs_ns /= KEYS;
}

static void head_to_head(const struct ketama *kt, struct ketama_hasher *h, const memcached_st *memc,
                         const struct keys *k)
{
    static uint32_t ours_out[KEYS], theirs_out[KEYS];
    double ours[RUNS], theirs[RUNS], ratio[RUNS];
    for (int r = 0; r < RUNS; r++) {
        run_interleaved(kt, h, memc, k, ours_out, theirs_out, &ours[r], &theirs[r]);
        ratio[r] = theirs[r] / ours[r];
    }
    uint32_t differ = 0;
    for (uint32_t i = 0; i < KEYS; i++)
        differ += ours_out[i] != theirs_out[i];
    double o = bench_median(ours, RUNS), t = bench_median(theirs, RUNS),
           q = bench_median(ratio, RUNS);
    printf("key -> server, %d servers, %d keys of 8..%d bytes, CPU time, median of %d runs:\n",
           SERVERS, KEYS, KEY_LEN_MAX, RUNS);
    printf("  shardmart ketama_lookup               %7.1f ns/op\n", o);
    printf("  libmemcached memcached_generate_hash  %7.1f ns/op\n", t);
    printf("  ratio libmemcached/shardmart          %7.2fx  (median of per-run ratios %.2fx, "
           "range %.2f..%.2f; target > 1: %s)\n",
           t / o, q, ratio[0], ratio[RUNS - 1], q > 1 ? "met" : "NOT met");
    printf("  keys placed differently               %7u\n", differ);
}

typedef void (*md5_fn)(EVP_MD_CTX *ctx, const EVP_MD *md, const void *key, size_t len,
                       unsigned char *digest);

static void md5_reused_ctx(EVP_MD_CTX *ctx, const EVP_MD *md, const void *key, size_t len,
                           unsigned char *digest)
{
    unsigned int n;
    if (!EVP_DigestInit_ex2(ctx, md, NULL) || !EVP_DigestUpdate(ctx, key, len) ||
        !EVP_DigestFinal_ex(ctx, digest, &n))
        abort();
}

static void md5_evp_digest(EVP_MD_CTX *ctx, const EVP_MD *md, const void *key, size_t len,
                           unsigned char *digest)
{
    (void)ctx;
    unsigned int n;
    if (!EVP_Digest(key, len, digest, &n, md, NULL))
        abort();
}

static void md5_evp_q_digest(EVP_MD_CTX *ctx, const EVP_MD *md, const void *key, size_t len,
                             unsigned char *digest)
{
    (void)ctx;
    (void)md;
    size_t n;
    if (!EVP_Q_digest(NULL, "MD5", NULL, key, len, digest, &n))
        abort();
}

/* One pass of an MD5 way over every 4th key (a quarter of the keys is plenty to time it). */
static double time_md5(md5_fn fn, EVP_MD_CTX *ctx, const EVP_MD *md, const struct keys *k,
                       uint32_t *sink)
{
    unsigned char digest[16];
    double t = now_ns();
    for (uint32_t i = 0; i < KEYS; i += 4) {
        fn(ctx, md, KEY(k, i), KEY_LEN(k, i), digest);
        *sink += digest[0];
    }
    return (now_ns() - t) / (KEYS / 4);
}

/* The three ways, rotated within every run so none always runs first or last. */
static void md5_parts(const struct keys *k)
{
    static const md5_fn fns[3] = {md5_reused_ctx, md5_evp_digest, md5_evp_q_digest};
    static const char *const names[3] = {
        "MD5, reused EVP_MD_CTX (ours)        ",
        "MD5, EVP_Digest with a fetched MD    ",
        "MD5, EVP_Q_digest                    ",
    };
    EVP_MD *md = EVP_MD_fetch(NULL, "MD5", NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL)
        abort();
    double t[3][RUNS];
    uint32_t sink = 0;
    for (int r = 0; r < RUNS; r++)
        for (int j = 0; j < 3; j++) {
            int m = (r + j) % 3;
            t[m][r] = time_md5(fns[m], ctx, md, k, &sink);
        }
    for (int m = 0; m < 3; m++)
        printf("  %s %7.1f ns/op%s\n", names[m], bench_median(t[m], RUNS), sink == 1 ? " " : "");
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
}

/* libmemcached's search, for comparison: lower bound over the sorted points, wrap at the end. */
static uint32_t bisect(const struct ketama *kt, uint32_t hash)
{
    uint32_t lo = 0, hi = kt->points_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)(kt->points[mid] >> 32) < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)kt->points[lo == kt->points_count ? 0 : lo];
}

static void parts(const struct ketama *kt, struct ketama_hasher *h, struct keys *k)
{
    printf("parts, CPU time, medians of %d runs:\n", RUNS);
    md5_parts(k);
    for (uint32_t i = 0; i < KEYS; i++)
        if (ketama_key_hash(h, KEY(k, i), KEY_LEN(k, i), &k->hash[i]) != 0)
            abort();
    double table[RUNS], search[RUNS];
    uint32_t sink = 0;
    for (int r = 0; r < RUNS; r++) {
        double t = now_ns();
        for (uint32_t i = 0; i < KEYS; i++)
            sink += ketama_server_of_hash(kt, k->hash[i]);
        table[r] = (now_ns() - t) / KEYS;
        t = now_ns();
        for (uint32_t i = 0; i < KEYS; i++)
            sink -= bisect(kt, k->hash[i]);
        search[r] = (now_ns() - t) / KEYS;
    }
    printf("  hash -> server, prefix table (ours)   %7.1f ns/op  (%u points, %u buckets)\n",
           bench_median(table, RUNS), kt->points_count, 1U << (32 - kt->bucket_shift));
    uint32_t differ = 0;
    for (uint32_t i = 0; i < KEYS; i++)
        differ += ketama_server_of_hash(kt, k->hash[i]) != bisect(kt, k->hash[i]);
    printf("  hash -> server, binary search         %7.1f ns/op  (%u answers differ%s)\n",
           bench_median(search, RUNS), differ, sink == 1 ? " " : "");
}

int main(void)
{
    static char names[SERVERS][32];
    struct ketama_server s[SERVERS];
    for (int i = 0; i < SERVERS; i++) {
        snprintf(names[i], sizeof names[i], "10.%u.%u.%u", (unsigned)(rng() % 256),
                 (unsigned)(rng() % 256), (unsigned)i);
        s[i] = (struct ketama_server){names[i], (rng() & 1) ? 11211 : (uint16_t)(11212 + i),
                                      (uint32_t)(1 + rng() % 1000)};
    }
    struct ketama kt;
    struct ketama_hasher h;
    if (ketama_init(&kt, s, SERVERS) != 0 || ketama_hasher_init(&h) != 0)
        abort();
    memcached_st *memc = make_libmemcached(s);
    static struct keys k;
    make_keys(&k);
    head_to_head(&kt, &h, memc, &k);
    parts(&kt, &h, &k);
    memcached_free(memc);
    ketama_hasher_free(&h);
    ketama_free(&kt);
    free(k.bytes);
    return 0;
}
