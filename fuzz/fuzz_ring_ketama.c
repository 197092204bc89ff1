/*
 * Fuzzes ketama_init with arbitrary server lists, then checks what it built.
 *
 * Input: a sequence of server records, until the input runs out (a truncated record is dropped):
 *
 *   +-----+---------------------+-----------+-------------+
 *   | len | host (len bytes)    | port u16  | weight u32  |   integers little-endian
 *   +-----+---------------------+-----------+-------------+
 *   len is one byte; 255 means "a u16 length follows" (to reach hosts past the 1024-byte limit).
 *   A NUL inside host bytes ends the C string there, as it would for any caller.
 *
 * Oracles: the error ketama_init returns is the one an independent re-statement of the rules
 * predicts (first offending server in list order); on success, every server owns exactly
 * ketama_points_of_server points, the continuum is sorted, the prefix table brackets every bucket,
 * and lookups agree with a plain binary search on input-derived hashes and around every point.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shardmart/ketama.h"
#include "util/assert.h"

#define FUZZ_SERVERS_MAX (KETAMA_SERVERS_MAX + 1)

struct parsed {
    struct ketama_server servers[FUZZ_SERVERS_MAX];
    size_t count;
    char *text; /* every host, NUL-terminated, back to back */
};

static size_t parse(const uint8_t *data, size_t size, struct parsed *p)
{
    size_t at = 0, text_at = 0;
    p->count = 0;
    while (p->count < FUZZ_SERVERS_MAX && at < size) {
        size_t len = data[at++];
        if (len == 255) {
            if (size - at < 2)
                break;
            len = (size_t)data[at] | (size_t)data[at + 1] << 8;
            at += 2;
        }
        if (size - at < len + 6)
            break;
        struct ketama_server *s = &p->servers[p->count++];
        memcpy(p->text + text_at, data + at, len);
        p->text[text_at + len] = '\0';
        s->host = p->text + text_at;
        text_at += len + 1;
        at += len;
        s->port = (uint16_t)(data[at] | data[at + 1] << 8);
        s->weight = (uint32_t)data[at + 2] | (uint32_t)data[at + 3] << 8 |
                    (uint32_t)data[at + 4] << 16 | (uint32_t)data[at + 5] << 24;
        at += 6;
    }
    return p->count;
}

/* The rules, restated independently of ketama.c. */
static int expected_error(const struct parsed *p)
{
    if (p->count == 0)
        return KETAMA_E_NO_SERVERS;
    if (p->count > KETAMA_SERVERS_MAX)
        return KETAMA_E_TOO_MANY_SERVERS;
    for (size_t i = 0; i < p->count; i++) {
        const struct ketama_server *s = &p->servers[i];
        size_t len = strlen(s->host);
        if (len == 0)
            return KETAMA_E_HOST_EMPTY;
        if (len > KETAMA_HOST_BYTES_MAX)
            return KETAMA_E_HOST_TOO_LONG;
        if (s->port == 0)
            return KETAMA_E_PORT_ZERO;
        if (s->weight == 0)
            return KETAMA_E_WEIGHT_ZERO;
        for (size_t j = 0; j < i; j++)
            if (p->servers[j].port == s->port && strcmp(p->servers[j].host, s->host) == 0)
                return KETAMA_E_DUPLICATE;
    }
    return 0;
}

static uint32_t bisect(const struct ketama *k, uint32_t hash)
{
    uint32_t lo = 0, hi = k->points_count;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if ((uint32_t)(k->points[mid] >> 32) < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    return (uint32_t)k->points[lo == k->points_count ? 0 : lo];
}

static void check_built(const struct ketama *k, const struct parsed *p, const uint8_t *data,
                        size_t size)
{
    ASSERT(k->servers_count == p->count);
    uint64_t total = 0;
    for (size_t i = 0; i < p->count; i++)
        total += p->servers[i].weight;
    uint32_t *owned = calloc(p->count, sizeof *owned);
    ASSERT(owned != NULL);
    for (uint32_t i = 0; i < k->points_count; i++) {
        ASSERT(i == 0 || k->points[i - 1] <= k->points[i]);
        uint32_t server = (uint32_t)k->points[i];
        ASSERT(server < p->count);
        owned[server]++;
    }
    for (size_t i = 0; i < p->count; i++)
        ASSERT(owned[i] ==
               ketama_points_of_server(p->servers[i].weight, total, (uint32_t)p->count));
    free(owned);
    uint32_t buckets = 1U << (32 - k->bucket_shift);
    ASSERT(k->bucket_first[0] == 0 && k->bucket_first[buckets] == k->points_count);
    for (uint32_t b = 0; b < buckets; b++)
        ASSERT(k->bucket_first[b] <= k->bucket_first[b + 1]);
    uint32_t hash = 2166136261U;
    for (size_t i = 0; i < size; i++) {
        hash = (hash ^ data[i]) * 16777619U;
        ASSERT(ketama_server_of_hash(k, hash) == bisect(k, hash));
    }
    for (uint32_t i = 0; i < k->points_count; i += 1 + k->points_count / 512) {
        uint32_t v = (uint32_t)(k->points[i] >> 32);
        ASSERT(ketama_server_of_hash(k, v) == bisect(k, v));
        ASSERT(ketama_server_of_hash(k, v - 1) == bisect(k, v - 1));
        ASSERT(ketama_server_of_hash(k, v + 1) == bisect(k, v + 1));
    }
    ASSERT(ketama_server_of_hash(k, 0) == bisect(k, 0));
    ASSERT(ketama_server_of_hash(k, UINT32_MAX) == bisect(k, UINT32_MAX));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct parsed p;
    p.text = malloc(size + FUZZ_SERVERS_MAX);
    ASSERT(p.text != NULL);
    parse(data, size, &p);
    struct ketama k;
    int err = ketama_init(&k, p.servers, p.count);
    ASSERT(err == expected_error(&p));
    if (err == 0)
        check_built(&k, &p, data, size);
    else
        ASSERT(k.points == NULL && k.bucket_first == NULL);
    ketama_free(&k);
    free(p.text);
    return 0;
}
