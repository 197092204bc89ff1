/*
 * ketama mode against the installed libmemcached (Debian libmemcached-dev 1.1.4): the same server
 * list goes to both, and memcached_generate_hash must name the same server index as ketama_lookup
 * for every key.
 *
 * Coverage, chosen to keep the run to a few seconds (CTest runs it twice, once under ASan):
 *   - every list size from 2 to 100 servers, 1,000,000 random keys in total spread over the 99
 *     sizes (10,101 each, the remainder on the last), lists given to libmemcached with
 *     memcached_server_push;
 *   - a full 1,000,000 random keys on one 100-server list, servers added one by one with
 *     memcached_server_add_with_weight;
 *   - the published 8-server list and equal weights at 3, 10, 25, 47, 50 and 100 servers
 *     (20,000 keys each, added one by one), and push against add on 2, 50 and 100 servers.
 * Lists are random: host names of 1..64 printable bytes (some up to 1024), dotted IPv4 addresses
 * and loopback, ports 11211 or random (so both point string formats), and four weight regimes:
 * 1..1000, all equal (where float rounding gives 156 points instead of 160 for some sizes),
 * 1..UINT32_MAX, and a mix of 1 and 10^6 (servers that round to zero points). Keys are random
 * bytes of length 0..250 (memcached's key limit), binary included.
 *
 * Debian's libmemcached aborts when a 101st server is added (an assertion that the continuum
 * fits MEMCACHED_CONTINUUM_SIZE = 100 x 100 points), so 100 is the largest list that can be
 * compared; the last test pins that abort.
 *
 * memcached_server_add_with_weight only records a server: generate_hash never connects. The
 * tests check it by counting the process's sockets before and after.
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <libmemcached/memcached.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "shardmart/ketama.h"

#define KEYS_SPREAD_TOTAL        1000000
#define KEYS_FULL                1000000
#define LIBMEMCACHED_SERVERS_MAX 100
#define KEY_BYTES_MAX            250

/* xorshift64*: a fixed seed, so a failure reproduces. */
static uint64_t rng_state = 0x243f6a8885a308d3ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* Sockets the process holds, from /proc/self/fd. */
static int sockets_open(void)
{
    DIR *d = opendir("/proc/self/fd");
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char path[300], target[300];
        snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof target - 1);
        if (len > 0) {
            target[len] = '\0';
            n += strncmp(target, "socket:", 7) == 0;
        }
    }
    closedir(d);
    return n;
}

/* A random host: dotted IPv4, loopback, or printable text (never starting with '/', which
 * libmemcached would take for a unix socket path). */
static void random_host(char *host, size_t host_size)
{
    uint64_t r = rng();
    if (r % 8 == 0) {
        snprintf(host, host_size, "127.0.0.1");
    } else if (r % 8 < 4) {
        snprintf(host, host_size, "%u.%u.%u.%u", (unsigned)(rng() % 256), (unsigned)(rng() % 256),
                 (unsigned)(rng() % 256), (unsigned)(rng() % 256));
    } else {
        size_t len = 1 + (r % 32 == 4 ? rng() % KETAMA_HOST_BYTES_MAX : rng() % 64);
        cr_assert_lt(len, host_size);
        for (size_t i = 0; i < len; i++)
            host[i] = (char)(33 + rng() % 94);
        if (host[0] == '/')
            host[0] = 'h';
        host[len] = '\0';
    }
}

static uint32_t random_weight(unsigned regime, uint32_t equal)
{
    switch (regime % 4) {
    case 0:
        return (uint32_t)(1 + rng() % 1000);
    case 1:
        return equal;
    case 2:
        return (uint32_t)(1 + rng() % UINT32_MAX);
    default:
        return (rng() & 1) ? 1 : 1000000;
    }
}

static bool listed(const struct ketama_server *s, size_t n, const char *host, uint16_t port)
{
    for (size_t i = 0; i < n; i++)
        if (s[i].port == port && strcmp(s[i].host, host) == 0)
            return true;
    return false;
}

/* n distinct random servers; hosts are written into names (n x (KETAMA_HOST_BYTES_MAX + 1)). */
static void random_servers(struct ketama_server *s, size_t n, char *names, unsigned regime)
{
    uint32_t equal = (uint32_t)(1 + rng() % 5000);
    for (size_t i = 0; i < n; i++) {
        char *host = names + i * (KETAMA_HOST_BYTES_MAX + 1);
        uint16_t port;
        do {
            random_host(host, KETAMA_HOST_BYTES_MAX + 1);
            port = (rng() & 1) ? 11211 : (uint16_t)(1 + rng() % 65535);
        } while (listed(s, i, host, port));
        s[i].host = host;
        s[i].port = port;
        s[i].weight = random_weight(regime, equal);
    }
}

/* libmemcached in weighted ketama mode with servers s[0..n) in order. one_by_one adds each server
 * with memcached_server_add_with_weight, the documented way; libmemcached then rebuilds and
 * re-sorts the whole continuum on every add (quadratic: most of this file's run time), so the
 * sweep over sizes hands it the list at once with memcached_server_push, which builds the same
 * continuum once (push_equals_add checks that). */
static memcached_st *libmemcached_for(const struct ketama_server *s, size_t n, bool one_by_one)
{
    memcached_st *memc = memcached_create(NULL);
    cr_assert_not_null(memc);
    cr_assert_eq(memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1),
                 MEMCACHED_SUCCESS);
    /* What KETAMA_WEIGHTED implies: MD5 for keys and points, the weighted consistent mode. */
    cr_assert_eq(memcached_behavior_get(memc, MEMCACHED_BEHAVIOR_HASH), MEMCACHED_HASH_MD5);
    cr_assert_eq(memcached_behavior_get(memc, MEMCACHED_BEHAVIOR_KETAMA_HASH), MEMCACHED_HASH_MD5);
    cr_assert_eq(memcached_behavior_get(memc, MEMCACHED_BEHAVIOR_DISTRIBUTION),
                 MEMCACHED_DISTRIBUTION_CONSISTENT_WEIGHTED);
    if (one_by_one) {
        for (size_t i = 0; i < n; i++)
            cr_assert_eq(memcached_server_add_with_weight(memc, s[i].host, s[i].port, s[i].weight),
                         MEMCACHED_SUCCESS, "server %zu (%s:%u)", i, s[i].host, s[i].port);
    } else {
        memcached_server_list_st list = NULL;
        for (size_t i = 0; i < n; i++) {
            memcached_return_t rc;
            list = memcached_server_list_append_with_weight(list, s[i].host, s[i].port, s[i].weight,
                                                            &rc);
            cr_assert_eq(rc, MEMCACHED_SUCCESS, "server %zu", i);
        }
        cr_assert_eq(memcached_server_push(memc, list), MEMCACHED_SUCCESS);
        memcached_server_list_free(list);
    }
    cr_assert_eq(memcached_server_count(memc), n);
    return memc;
}

static void random_key(unsigned char *key, size_t *len, size_t i)
{
    /* Mostly short keys, like real ones; every length up to 250 now and then. */
    *len = (i % 16 == 0) ? rng() % (KEY_BYTES_MAX + 1) : rng() % 40;
    for (size_t j = 0; j < *len; j += 8) {
        uint64_t r = rng();
        memcpy(key + j, &r, *len - j < 8 ? *len - j : 8);
    }
}

/* Both implementations on `keys` random keys; returns how many agreed (the caller asserts all). */
static size_t compare_on_random_keys(const struct ketama_server *s, size_t n, size_t keys,
                                     bool one_by_one)
{
    struct ketama k;
    int err = ketama_init(&k, s, n);
    cr_assert_eq(err, 0, "%s", ketama_strerror(err));
    struct ketama_hasher h;
    cr_assert_eq(ketama_hasher_init(&h), 0);
    memcached_st *memc = libmemcached_for(s, n, one_by_one);
    size_t agreed = 0;
    unsigned char key[KEY_BYTES_MAX];
    for (size_t i = 0; i < keys; i++) {
        size_t len;
        random_key(key, &len, i);
        uint32_t ours;
        cr_assert_eq(ketama_lookup(&k, &h, key, len, &ours), 0);
        uint32_t theirs = memcached_generate_hash(memc, (const char *)key, len);
        if (ours == theirs)
            agreed++;
        else
            cr_log_error("n=%zu key #%zu (len %zu): ours %u, libmemcached %u", n, i, len, ours,
                         theirs);
    }
    memcached_free(memc);
    ketama_hasher_free(&h);
    ketama_free(&k);
    return agreed;
}

Test(ketama_libmemcached, every_size_2_to_100)
{
    struct ketama_server s[LIBMEMCACHED_SERVERS_MAX];
    char *names = malloc(LIBMEMCACHED_SERVERS_MAX * (KETAMA_HOST_BYTES_MAX + 1));
    cr_assert_not_null(names);
    int sockets_before = sockets_open();
    const size_t sizes = LIBMEMCACHED_SERVERS_MAX - 1;
    size_t total = 0;
    for (size_t n = 2; n <= LIBMEMCACHED_SERVERS_MAX; n++) {
        size_t keys = KEYS_SPREAD_TOTAL / sizes;
        if (n == LIBMEMCACHED_SERVERS_MAX)
            keys = KEYS_SPREAD_TOTAL - total;
        random_servers(s, n, names, (unsigned)n);
        size_t agreed = compare_on_random_keys(s, n, keys, false);
        cr_assert_eq(agreed, keys, "n=%zu: %zu of %zu keys agree", n, agreed, keys);
        total += keys;
    }
    cr_assert_eq(total, KEYS_SPREAD_TOTAL);
    cr_assert_eq(sockets_open(), sockets_before, "libmemcached opened no connection");
    free(names);
}

Test(ketama_libmemcached, full_million_at_100)
{
    const size_t n = LIBMEMCACHED_SERVERS_MAX;
    struct ketama_server s[LIBMEMCACHED_SERVERS_MAX];
    char *names = malloc(LIBMEMCACHED_SERVERS_MAX * (KETAMA_HOST_BYTES_MAX + 1));
    cr_assert_not_null(names);
    int sockets_before = sockets_open();
    random_servers(s, n, names, 0);
    size_t agreed = compare_on_random_keys(s, n, KEYS_FULL, true);
    cr_assert_eq(agreed, KEYS_FULL, "n=%zu: %zu of %d keys agree", n, agreed, KEYS_FULL);
    cr_assert_eq(sockets_open(), sockets_before, "libmemcached opened no connection");
    free(names);
}

/* The installed library also agrees with the published list our other test checks, and with
 * equal weights at sizes where float rounding bites (39.99... digests: 156 points, not 160). */
Test(ketama_libmemcached, published_list_and_equal_weights)
{
    static const struct ketama_server s[] = {
        {"10.0.1.1", 11211, 600}, {"10.0.1.2", 11211, 300},  {"10.0.1.3", 11211, 200},
        {"10.0.1.4", 11211, 350}, {"10.0.1.5", 11211, 1000}, {"10.0.1.6", 11211, 800},
        {"10.0.1.7", 11211, 950}, {"10.0.1.8", 11211, 100},
    };
    cr_assert_eq(compare_on_random_keys(s, 8, 20000, true), 20000);
    static const size_t sizes[] = {3, 10, 25, 47, 50, 100};
    struct ketama_server eq[LIBMEMCACHED_SERVERS_MAX];
    char names[LIBMEMCACHED_SERVERS_MAX][32];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof names[i], "10.1.0.%zu", i);
            eq[i] = (struct ketama_server){names[i], 11211, 1};
        }
        cr_assert_eq(compare_on_random_keys(eq, n, 20000, true), 20000, "equal weights, n=%zu", n);
    }
}

/* The sweep's shortcut is sound: pushing a list and adding it server by server give libmemcached
 * the same continuum (same answer on every key). */
Test(ketama_libmemcached, push_equals_add)
{
    static const size_t sizes[] = {2, 50, 100};
    struct ketama_server s[LIBMEMCACHED_SERVERS_MAX];
    char *names = malloc(LIBMEMCACHED_SERVERS_MAX * (KETAMA_HOST_BYTES_MAX + 1));
    cr_assert_not_null(names);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        random_servers(s, sizes[k], names, (unsigned)k);
        memcached_st *pushed = libmemcached_for(s, sizes[k], false);
        memcached_st *added = libmemcached_for(s, sizes[k], true);
        unsigned char key[KEY_BYTES_MAX];
        for (size_t i = 0; i < 20000; i++) {
            size_t len;
            random_key(key, &len, i);
            cr_assert_eq(memcached_generate_hash(pushed, (const char *)key, len),
                         memcached_generate_hash(added, (const char *)key, len), "n=%zu", sizes[k]);
        }
        memcached_free(pushed);
        memcached_free(added);
    }
    free(names);
}

/* Debian's libmemcached 1.1.4 asserts (and aborts) when a 101st server is added. Run in a child
 * so the abort is observed rather than suffered. */
Test(ketama_libmemcached, libmemcached_aborts_past_100_servers)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        /* Its backtrace on stderr is expected; keep the test log readable. */
        if (freopen("/dev/null", "w", stderr) == NULL)
            _exit(2);
        memcached_st *memc = memcached_create(NULL);
        if (memc == NULL || memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1) !=
                                MEMCACHED_SUCCESS)
            _exit(3);
        for (unsigned i = 0; i <= LIBMEMCACHED_SERVERS_MAX; i++) {
            char host[32];
            snprintf(host, sizeof host, "10.2.0.%u", i);
            memcached_return_t rc = memcached_server_add_with_weight(memc, host, 11211, 1);
            if (rc != MEMCACHED_SUCCESS)
                _exit(4);
        }
        _exit(0); /* 101 servers accepted: the limit is gone */
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, "status %#x", status);
}
