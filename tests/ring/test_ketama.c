/*
 * ketama mode against libmemcached's published vectors, and the properties of the continuum:
 * point counts, point strings, sort order, the prefix-table lookup against a plain scan, every
 * error code and both limits. The comparison with the installed libmemcached itself, on random
 * server lists, is in test_ketama_libmemcached.c.
 */
#include <criterion/criterion.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardmart/ketama.h"

/* libmemcached's weighted-ketama compatibility table, copied verbatim from
 * libmemcached (awesomized/libmemcached) test/fixtures/ketama.hpp, ketama_test_cases[99]: key,
 * the key's hash, the value of the continuum point that key lands on, and the chosen server, for
 * the server list below. libmemcached's own test checks the server column with
 * MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED; we also check the two hash columns. */
struct vector {
    const char *key;
    unsigned long key_hash;
    unsigned long point_value;
    const char *server;
};

static const struct vector vectors[] = {
    {"SVa_]_V41)", 443691461UL, 445379617UL, "10.0.1.7"},
    {"*/Z;?V(.\\8", 1422915503UL, 1428303028UL, "10.0.1.1"},
    {"30C1*Z*S/_", 1473165754UL, 1480075959UL, "10.0.1.2"},
    {"ERR:EC58G>", 2148406511UL, 2168579133UL, "10.0.1.7"},
    {"1I=cTMNTKF", 2882686667UL, 2885206587UL, "10.0.1.5"},
    {"]VG<`I*Z8)", 1103544263UL, 1104827657UL, "10.0.1.5"},
    {"UUTC`-V159", 3716288206UL, 3727224240UL, "10.0.1.5"},
    {"@7RU6C6T+Z", 3862737685UL, 3871917949UL, "10.0.1.5"},
    {"/XLN0@+36;", 1623269830UL, 1627683651UL, "10.0.1.1"},
    {"4(`X;\\V.^c", 373546328UL, 383925769UL, "10.0.1.1"},
    {"726bW=9*a4", 4213440020UL, 4213950705UL, "10.0.1.7"},
    {"\\`)<B)UE,c", 951096736UL, 955226069UL, "10.0.1.1"},
    {"P1[Ma3=K1/", 1989324036UL, 1994028240UL, "10.0.1.8"},
    {"C89I.-V?cT", 1604239957UL, 1606398093UL, "10.0.1.8"},
    {"D[HE+cFXDK", 2117036136UL, 2117124014UL, "10.0.1.3"},
    {"P1L?NAB[)K", 2129972569UL, 2132542634UL, "10.0.1.1"},
    {"cDT0)Z5P6,", 176485284UL, 178675413UL, "10.0.1.5"},
    {"@JW`+[WAO8", 2720940826UL, 2743975456UL, "10.0.1.5"},
    {"\\39DKW^)N_", 3548879868UL, 3550704865UL, "10.0.1.3"},
    {"EM75N0+[X1", 1558531507UL, 1559308507UL, "10.0.1.4"},
    {"`,SS]NBP,b", 1883545960UL, 1884847278UL, "10.0.1.1"},
    {"XX1a9LT+F?", 653487707UL, 656410408UL, "10.0.1.5"},
    {"Zc\\-,F-c6V", 1160802451UL, 1171575728UL, "10.0.1.5"},
    {"1*RTMC7,03", 1602398012UL, 1606398093UL, "10.0.1.8"},
    {"*Xc+V0P>32", 536016577UL, 539988520UL, "10.0.1.7"},
    {"U))Fb-(`,.", 4128682289UL, 4136854163UL, "10.0.1.7"},
    {"R-08RNTaRT", 3718170086UL, 3727224240UL, "10.0.1.5"},
    {"(LHcO203I3", 1007779411UL, 1014643570UL, "10.0.1.5"},
    {"=256P+;Qc8", 3976201210UL, 3976304873UL, "10.0.1.5"},
    {"OI5XZ_BBT(", 2155922164UL, 2168579133UL, "10.0.1.7"},
    {"2TLRL/UL;:", 1086800909UL, 1095659802UL, "10.0.1.7"},
    {"WHD\\O1`ZRW", 3087923411UL, 3095471560UL, "10.0.1.5"},
    {".=54)_c;=T", 2497691631UL, 2502731301UL, "10.0.1.1"},
    {";G<W-XWZ@b", 2888169733UL, 2888728739UL, "10.0.1.5"},
    {"(,>E`)FT\\4", 580747448UL, 581063326UL, "10.0.1.2"},
    {"HZAU*;P*N]", 2564670474UL, 2565697267UL, "10.0.1.7"},
    {"NZ@ZE=O84_", 533335275UL, 539988520UL, "10.0.1.7"},
    {"6,cEI`F_P>", 3972869246UL, 3974773167UL, "10.0.1.6"},
    {"c,5AQ/T5)6", 2835605783UL, 2847870057UL, "10.0.1.8"},
    {".O,>>BT)RX", 3857978174UL, 3871917949UL, "10.0.1.5"},
    {"XY\\X::LX50", 1749241099UL, 1752196488UL, "10.0.1.6"},
    {"+550F^/.01", 3781824099UL, 3783248219UL, "10.0.1.6"},
    {"<.X9E2S5+9", 3232479481UL, 3234387706UL, "10.0.1.7"},
    {"]\\.UH8_0a1", 2419699252UL, 2423002920UL, "10.0.1.4"},
    {"8(6=(T0/Z0", 728266737UL, 729026070UL, "10.0.1.7"},
    {"8*6a;Sc*X+", 4223431086UL, 4230156966UL, "10.0.1.2"},
    {"<QW:;3K6;H", 2731158143UL, 2743975456UL, "10.0.1.5"},
    {"7C@EY@-Y?_", 760770733UL, 761576669UL, "10.0.1.5"},
    {"aPb3E1WD4K", 2500489218UL, 2502731301UL, "10.0.1.1"},
    {"?@12R<=1BH", 1494795329UL, 1502505505UL, "10.0.1.8"},
    {"QR(a+Q=1FU", 3238535074UL, 3238996435UL, "10.0.1.6"},
    {"`C9^FV,960", 2628553463UL, 2628733766UL, "10.0.1.6"},
    {"UNHVP..^8H", 977096483UL, 977319837UL, "10.0.1.4"},
    {":Y.2W2[(35", 2777083668UL, 2784182515UL, "10.0.1.7"},
    {"M/HV^_HZ4O", 3623390946UL, 3624445007UL, "10.0.1.7"},
    {"ZY16KQ<ICD", 1831153193UL, 1838563516UL, "10.0.1.4"},
    {"bV2,`a.PY9", 1962228869UL, 1962648654UL, "10.0.1.1"},
    {"U;9:-+5N]9", 269504649UL, 277560877UL, "10.0.1.1"},
    {"1S/:aJ[1(;", 578069729UL, 581063326UL, "10.0.1.2"},
    {"Nb-X^]M)I:", 330865696UL, 331009896UL, "10.0.1.6"},
    {"2;M;ES>J5/", 2776949824UL, 2784182515UL, "10.0.1.7"},
    {"[>RZHG97Q9", 71954686UL, 72034069UL, "10.0.1.6"},
    {"J3/G[)9<^Z", 2799896459UL, 2805183696UL, "10.0.1.7"},
    {"N-)88>[O`,", 50404102UL, 51792557UL, "10.0.1.5"},
    {"NP:=FR\\OaA", 3837333776UL, 3837792034UL, "10.0.1.7"},
    {"`@L+W;a,O[", 1512157148UL, 1522285852UL, "10.0.1.6"},
    {"W2`P:-+1T[", 2945171975UL, 2946196424UL, "10.0.1.5"},
    {"-6G7K^YDIN", 3168617340UL, 3170513015UL, "10.0.1.7"},
    {"U>*>9ZI6V5", 668514946UL, 674097631UL, "10.0.1.6"},
    {".I?^6Ic9RK", 938419020UL, 942832691UL, "10.0.1.6"},
    {"0OZH^9BKM[", 3682518606UL, 3686781297UL, "10.0.1.8"},
    {"5?50UGZ:ML", 868610882UL, 869425986UL, "10.0.1.5"},
    {"?K2NF@3=IU", 381218851UL, 383925769UL, "10.0.1.1"},
    {"YI@G-2X?UB", 3688706179UL, 3693197681UL, "10.0.1.5"},
    {"7cY</BSaL=", 3976870223UL, 3978903843UL, "10.0.1.6"},
    {"A(`KF:[RH8", 3292979676UL, 3294849139UL, "10.0.1.6"},
    {";=ZT\\W^P+H", 1401102653UL, 1416290674UL, "10.0.1.4"},
    {"b2?WFF56;R", 480494704UL, 486971192UL, "10.0.1.4"},
    {"CTR74,J+N.", 137446045UL, 146633907UL, "10.0.1.8"},
    {"<b;*R+QDST", 1304985302UL, 1308223778UL, "10.0.1.5"},
    {"\\R^7=9UCG`", 126218373UL, 129199837UL, "10.0.1.5"},
    {"1bQS5]WOXB", 1853470245UL, 1855329369UL, "10.0.1.4"},
    {"M(@X^b[L:K", 3019630308UL, 3022260113UL, "10.0.1.1"},
    {"431cBF8,YO", 1679726993UL, 1685224295UL, "10.0.1.7"},
    {"(bEIQJ:E./", 2922607787UL, 2925521819UL, "10.0.1.6"},
    {"WS/3H*)7F;", 419488232UL, 422140585UL, "10.0.1.5"},
    {"ZJF[Ia6Q)+", 3960568056UL, 3962489998UL, "10.0.1.7"},
    {"<]*QCK8U,>", 2590140172UL, 2598117636UL, "10.0.1.7"},
    {"\\[a\\^=V_M0", 689410119UL, 698690782UL, "10.0.1.6"},
    {"7;RM+8J9YC", 1530175299UL, 1531107082UL, "10.0.1.7"},
    {"4*=.SPR[AV", 3928582722UL, 3928853792UL, "10.0.1.1"},
    {"-2F+^88P4U", 3023552752UL, 3025823613UL, "10.0.1.7"},
    {"X;-F`(N?9D", 570465234UL, 572485994UL, "10.0.1.7"},
    {"R=F_D-K2a]", 1287750228UL, 1290935562UL, "10.0.1.7"},
    {"X*+2aaC.EG", 3200948713UL, 3201088518UL, "10.0.1.5"},
    {"[1ZXONX2]a", 4108881567UL, 4109865744UL, "10.0.1.4"},
    {"FL;\\GWacaV", 458449508UL, 467374054UL, "10.0.1.4"},
    {"\\MQ_XNT7L-", 1259349383UL, 1259509450UL, "10.0.1.7"},
    {"VD6D0]ba_\\", 3842502950UL, 3842588691UL, "10.0.1.1"},
};

/* The list of that test: "10.0.1.1:11211 600, ..., 10.0.1.8:11211 100", in this order. */
static const struct ketama_server vector_servers[] = {
    {"10.0.1.1", 11211, 600}, {"10.0.1.2", 11211, 300},  {"10.0.1.3", 11211, 200},
    {"10.0.1.4", 11211, 350}, {"10.0.1.5", 11211, 1000}, {"10.0.1.6", 11211, 800},
    {"10.0.1.7", 11211, 950}, {"10.0.1.8", 11211, 100},
};
#define VECTOR_SERVERS (sizeof vector_servers / sizeof vector_servers[0])

/* xorshift64*: a fixed seed, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dULL;
}

/* The reference lookups: a plain scan for the first point >= hash, wrapping to the first, and a
 * textbook binary search doing the same (checked against the scan, fast enough for big lists). */
static uint32_t scan_lookup(const struct ketama *k, uint32_t hash)
{
    for (uint32_t i = 0; i < k->points_count; i++)
        if ((uint32_t)(k->points[i] >> 32) >= hash)
            return (uint32_t)k->points[i];
    return (uint32_t)k->points[0];
}

static uint32_t bisect_lookup(const struct ketama *k, uint32_t hash)
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

static uint32_t reference_lookup(const struct ketama *k, uint32_t hash)
{
    uint32_t server = bisect_lookup(k, hash);
    if (k->points_count <= 2000)
        cr_assert_eq(server, scan_lookup(k, hash));
    return server;
}

static uint32_t points_owned_by(const struct ketama *k, uint32_t server)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < k->points_count; i++)
        n += (uint32_t)k->points[i] == server;
    return n;
}

static void build(struct ketama *k, const struct ketama_server *servers, size_t n)
{
    int err = ketama_init(k, servers, n);
    cr_assert_eq(err, 0, "ketama_init: %s", ketama_strerror(err));
}

Test(ketama, libmemcached_vectors)
{
    cr_assert_eq(sizeof vectors / sizeof vectors[0], 99);
    struct ketama k;
    build(&k, vector_servers, VECTOR_SERVERS);
    struct ketama_hasher h;
    cr_assert_eq(ketama_hasher_init(&h), 0);
    for (size_t i = 0; i < 99; i++) {
        const struct vector *v = &vectors[i];
        uint32_t hash, server;
        cr_assert_eq(ketama_key_hash(&h, v->key, strlen(v->key), &hash), 0);
        cr_assert_eq(hash, v->key_hash, "key %s: hash %u, want %lu", v->key, hash, v->key_hash);
        cr_assert_eq(ketama_lookup(&k, &h, v->key, strlen(v->key), &server), 0);
        cr_assert_str_eq(vector_servers[server].host, v->server, "key %s", v->key);
        /* The point the key lands on: first point >= hash. */
        uint32_t at = 0;
        while (at < k.points_count && (uint32_t)(k.points[at] >> 32) < hash)
            at++;
        cr_assert_lt(at, k.points_count);
        cr_assert_eq((uint32_t)(k.points[at] >> 32), v->point_value, "key %s", v->key);
        cr_assert_eq((uint32_t)k.points[at], server);
    }
    ketama_hasher_free(&h);
    ketama_free(&k);
}

/* From the same libmemcached test: "VDEAAAAA hashes to fffcd1b5, after the last continuum point,
 * and lets us test the boundary wraparound": it must go to the owner of the first point. */
Test(ketama, wraps_past_the_last_point)
{
    struct ketama k;
    build(&k, vector_servers, VECTOR_SERVERS);
    struct ketama_hasher h;
    cr_assert_eq(ketama_hasher_init(&h), 0);
    uint32_t hash, server;
    cr_assert_eq(ketama_key_hash(&h, "VDEAAAAA", 8, &hash), 0);
    cr_assert_eq(hash, 0xfffcd1b5U);
    cr_assert_gt(hash, (uint32_t)(k.points[k.points_count - 1] >> 32));
    cr_assert_eq(ketama_lookup(&k, &h, "VDEAAAAA", 8, &server), 0);
    cr_assert_eq(server, (uint32_t)k.points[0]);
    cr_assert_eq(ketama_server_of_hash(&k, UINT32_MAX), (uint32_t)k.points[0]);
    ketama_hasher_free(&h);
    ketama_free(&k);
}

/* MD5("") = d41d8cd98f00b204e9800998ecf8427e (RFC 1321 test suite): first word little-endian. */
Test(ketama, key_hash_is_first_md5_word_little_endian)
{
    struct ketama_hasher h;
    cr_assert_eq(ketama_hasher_init(&h), 0);
    uint32_t hash;
    cr_assert_eq(ketama_key_hash(&h, NULL, 0, &hash), 0);
    cr_assert_eq(hash, 0xd98c1dd4U);
    /* MD5("abc") = 900150983cd24fb0d6963f7d28e17f72 */
    cr_assert_eq(ketama_key_hash(&h, "abc", 3, &hash), 0);
    cr_assert_eq(hash, 0x98500190U);
    ketama_hasher_free(&h);
}

/* Point counts follow the weights: checked against the same formula evaluated independently in
 * double precision (no value here is near an integer, so float and double agree), and every
 * server's points in the continuum match ketama_points_of_server. */
Test(ketama, points_follow_weights)
{
    struct ketama k;
    build(&k, vector_servers, VECTOR_SERVERS);
    uint64_t total = 0;
    for (size_t i = 0; i < VECTOR_SERVERS; i++)
        total += vector_servers[i].weight;
    uint32_t sum = 0;
    for (uint32_t i = 0; i < VECTOR_SERVERS; i++) {
        uint32_t want =
            (uint32_t)(vector_servers[i].weight * 160.0 * VECTOR_SERVERS / (double)total / 4.0) * 4;
        uint32_t got = ketama_points_of_server(vector_servers[i].weight, total, VECTOR_SERVERS);
        cr_assert_eq(got, want, "server %u: %u points, want %u", i, got, want);
        cr_assert_eq(points_owned_by(&k, i), got);
        sum += got;
    }
    cr_assert_eq(k.points_count, sum);
    cr_assert_eq(k.servers_count, VECTOR_SERVERS);
    ketama_free(&k);
    /* Equal weights with a power-of-two count are exact in float: 160 points each. */
    for (uint32_t n = 1; n <= 1024; n *= 2)
        cr_assert_eq(ketama_points_of_server(7, 7ULL * n, n), 160);
    /* libmemcached's float rounding: 100 equal servers get 39.99... digests each, so 156 points
     * (test_ketama_libmemcached.c checks the library agrees at this size). */
    cr_assert_eq(ketama_points_of_server(1, 100, 100), 156);
    cr_assert_eq(ketama_points_of_server(1, 25, 25), 156);
    cr_assert_eq(ketama_points_of_server(1, 24, 24), 160);
    /* A weight that is a sliver of the total rounds to zero points. */
    cr_assert_eq(ketama_points_of_server(1, 1ULL + UINT32_MAX, 2), 0);
}

/* The digest strings are "host-i" on 11211 and "host:port-i" otherwise, 4 points per digest. */
static void check_point_strings(uint16_t port)
{
    const struct ketama_server one = {"cache-a.example", port, 5};
    struct ketama k;
    build(&k, &one, 1);
    cr_assert_eq(k.points_count, 160);
    uint32_t want[160];
    for (unsigned d = 0; d < 40; d++) {
        char text[64];
        if (port == 11211)
            snprintf(text, sizeof text, "%s-%u", one.host, d);
        else
            snprintf(text, sizeof text, "%s:%u-%u", one.host, (unsigned)port, d);
        unsigned char md[16];
        size_t md_len = 0;
        cr_assert(EVP_Q_digest(NULL, "MD5", NULL, text, strlen(text), md, &md_len));
        for (unsigned w = 0; w < 4; w++)
            want[4 * d + w] = (uint32_t)md[4 * w] | (uint32_t)md[4 * w + 1] << 8 |
                              (uint32_t)md[4 * w + 2] << 16 | (uint32_t)md[4 * w + 3] << 24;
    }
    /* Same multiset: sort the expectation and compare with the (sorted) continuum. */
    for (int i = 1; i < 160; i++)
        for (int j = i; j > 0 && want[j - 1] > want[j]; j--) {
            uint32_t t = want[j];
            want[j] = want[j - 1];
            want[j - 1] = t;
        }
    for (uint32_t i = 0; i < 160; i++) {
        cr_assert_eq((uint32_t)(k.points[i] >> 32), want[i], "port %u point %u", port, i);
        cr_assert_eq((uint32_t)k.points[i], 0);
    }
    ketama_free(&k);
}

Test(ketama, point_strings)
{
    check_point_strings(11211);
    check_point_strings(11212);
    check_point_strings(1);
}

/* n random servers; hosts are "h<random>", ports 11211 or random, weights 1..1000. */
static struct ketama_server *random_servers(size_t n, char (*names)[32])
{
    struct ketama_server *s = calloc(n, sizeof *s);
    cr_assert_not_null(s);
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], 32, "h%zu-%llx", i, (unsigned long long)(rng() & 0xffffff));
        s[i].host = names[i];
        s[i].port = (rng() & 1) ? 11211 : (uint16_t)(1 + rng() % 65535);
        s[i].weight = (uint32_t)(1 + rng() % 1000);
    }
    return s;
}

/* The continuum is sorted by (value, server), the prefix table brackets every bucket, and the
 * table lookup agrees with the reference on every point value, its neighbours, random hashes. */
static void check_structure_and_lookup(size_t n)
{
    char(*names)[32] = calloc(n, 32);
    cr_assert_not_null(names);
    struct ketama_server *servers = random_servers(n, names);
    struct ketama k;
    build(&k, servers, n);
    for (uint32_t i = 1; i < k.points_count; i++)
        cr_assert_lt(k.points[i - 1], k.points[i], "sorted, no duplicate (value, server)");
    uint32_t buckets = 1U << (32 - k.bucket_shift);
    cr_assert_eq(k.bucket_first[buckets], k.points_count);
    for (uint32_t b = 0; b < buckets; b++) {
        uint32_t first = k.bucket_first[b];
        cr_assert_leq(first, k.bucket_first[b + 1]);
        if (first < k.points_count)
            cr_assert_geq(k.points[first] >> 32, (uint64_t)b << k.bucket_shift);
        if (first > 0)
            cr_assert_lt(k.points[first - 1] >> 32, (uint64_t)b << k.bucket_shift);
    }
    for (uint32_t i = 0; i < k.points_count; i++) {
        uint32_t v = (uint32_t)(k.points[i] >> 32);
        cr_assert_eq(ketama_server_of_hash(&k, v), reference_lookup(&k, v));
        cr_assert_eq(ketama_server_of_hash(&k, v - 1), reference_lookup(&k, v - 1));
        cr_assert_eq(ketama_server_of_hash(&k, v + 1), reference_lookup(&k, v + 1));
    }
    cr_assert_eq(ketama_server_of_hash(&k, 0), reference_lookup(&k, 0));
    cr_assert_eq(ketama_server_of_hash(&k, UINT32_MAX), reference_lookup(&k, UINT32_MAX));
    for (int i = 0; i < 2000; i++) {
        uint32_t hash = (uint32_t)rng();
        uint32_t server = ketama_server_of_hash(&k, hash);
        cr_assert_lt(server, n);
        cr_assert_eq(server, reference_lookup(&k, hash));
    }
    ketama_free(&k);
    free(servers);
    free(names);
}

Test(ketama, lookup_matches_reference)
{
    static const size_t sizes[] = {1, 2, 3, 10, 100, 333};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_structure_and_lookup(sizes[i]);
}

/* KETAMA_SERVERS_MAX servers build and look up; one more is refused. */
Test(ketama, servers_limit)
{
    check_structure_and_lookup(KETAMA_SERVERS_MAX);
    char(*names)[32] = calloc(KETAMA_SERVERS_MAX + 1, 32);
    cr_assert_not_null(names);
    struct ketama_server *servers = random_servers(KETAMA_SERVERS_MAX + 1, names);
    struct ketama k;
    cr_assert_eq(ketama_init(&k, servers, KETAMA_SERVERS_MAX + 1), KETAMA_E_TOO_MANY_SERVERS);
    cr_assert_null(k.points);
    ketama_free(&k);
    free(servers);
    free(names);
}

/* A host of KETAMA_HOST_BYTES_MAX bytes is accepted (and hashed whole); one byte more is not. */
Test(ketama, host_length_limit)
{
    char *host = malloc(KETAMA_HOST_BYTES_MAX + 2);
    cr_assert_not_null(host);
    memset(host, 'x', KETAMA_HOST_BYTES_MAX + 1);
    host[KETAMA_HOST_BYTES_MAX] = '\0';
    struct ketama_server s[2] = {{host, 11211, 1}, {"y", 4000, 1}};
    struct ketama k;
    build(&k, s, 2);
    cr_assert_eq(k.points_count, 320);
    ketama_free(&k);
    host[KETAMA_HOST_BYTES_MAX] = 'x';
    host[KETAMA_HOST_BYTES_MAX + 1] = '\0';
    cr_assert_eq(ketama_init(&k, s, 2), KETAMA_E_HOST_TOO_LONG);
    free(host);
}

/* A server whose weight rounds to zero points receives no key, as in libmemcached. */
Test(ketama, sliver_weight_gets_no_keys)
{
    const struct ketama_server s[2] = {{"small", 11211, 1}, {"big", 11211, UINT32_MAX}};
    struct ketama k;
    build(&k, s, 2);
    cr_assert_eq(points_owned_by(&k, 0), 0);
    cr_assert_eq(k.points_count, 320);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(ketama_server_of_hash(&k, (uint32_t)rng()), 1);
    ketama_free(&k);
}

static void expect_error(const struct ketama_server *s, size_t n, int want)
{
    struct ketama k;
    int err = ketama_init(&k, s, n);
    cr_assert_eq(err, want, "got %d (%s), want %d (%s)", err, ketama_strerror(err), want,
                 ketama_strerror(want));
    cr_assert_null(k.points, "nothing is left allocated on error");
    cr_assert_null(k.bucket_first);
    ketama_free(&k);
}

Test(ketama, bad_input_errors)
{
    const struct ketama_server ok = {"a", 11211, 1};
    expect_error(NULL, 0, KETAMA_E_NO_SERVERS);
    expect_error(&ok, 0, KETAMA_E_NO_SERVERS);
    const struct ketama_server weight0[2] = {ok, {"b", 11211, 0}};
    expect_error(weight0, 2, KETAMA_E_WEIGHT_ZERO);
    const struct ketama_server host_null[2] = {ok, {NULL, 11211, 1}};
    expect_error(host_null, 2, KETAMA_E_HOST_EMPTY);
    const struct ketama_server host_empty[2] = {ok, {"", 11211, 1}};
    expect_error(host_empty, 2, KETAMA_E_HOST_EMPTY);
    const struct ketama_server port0[2] = {ok, {"b", 0, 1}};
    expect_error(port0, 2, KETAMA_E_PORT_ZERO);
    const struct ketama_server dup[3] = {ok, {"b", 11211, 1}, {"a", 11211, 7}};
    expect_error(dup, 3, KETAMA_E_DUPLICATE);
    /* The same host on two ports is two servers. */
    const struct ketama_server two_ports[2] = {ok, {"a", 11212, 1}};
    struct ketama k;
    build(&k, two_ports, 2);
    cr_assert_gt(points_owned_by(&k, 1), 0);
    ketama_free(&k);
}

Test(ketama, error_messages)
{
    cr_assert_str_eq(ketama_strerror(0), "ketama: ok");
    cr_assert_str_eq(ketama_strerror(1), "ketama: unknown error");
    cr_assert_str_eq(ketama_strerror(-KETAMA_ERR_COUNT - 1), "ketama: unknown error");
    for (int i = 1; i <= KETAMA_ERR_COUNT; i++) {
        const char *m = ketama_strerror(-i);
        cr_assert_not_null(m);
        cr_assert(strncmp(m, "ketama: ", 8) == 0);
        cr_assert_str_neq(m, "ketama: unknown error");
        for (int j = 1; j < i; j++)
            cr_assert_str_neq(m, ketama_strerror(-j), "codes %d and %d share a message", i, j);
    }
    cr_assert_eq(KETAMA_E_CRYPTO, -KETAMA_ERR_COUNT, "the last row");
}

Test(ketama, free_is_idempotent)
{
    struct ketama k;
    memset(&k, 0, sizeof k);
    ketama_free(&k);
    build(&k, vector_servers, VECTOR_SERVERS);
    ketama_free(&k);
    ketama_free(&k);
    struct ketama_hasher h;
    memset(&h, 0, sizeof h);
    ketama_hasher_free(&h);
    cr_assert_eq(ketama_hasher_init(&h), 0);
    ketama_hasher_free(&h);
    ketama_hasher_free(&h);
}

/* libcrypto failures, provoked through OpenSSL's allocator hook: once allocations fail, digests
 * report KETAMA_E_CRYPTO and builds report KETAMA_E_NOMEM or KETAMA_E_CRYPTO, never a crash or
 * a wrong answer; when allocations work again, so does everything. The hook passes everything
 * through until this test sets a budget, and each Criterion test runs in its own process. */
static int crypto_allocs_left = -1; /* -1: unlimited */

static void *failing_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (crypto_allocs_left == 0)
        return NULL;
    if (crypto_allocs_left > 0)
        crypto_allocs_left--;
    return malloc(n);
}

static void *failing_realloc(void *p, size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    if (crypto_allocs_left == 0)
        return NULL;
    return realloc(p, n);
}

static void plain_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    free(p);
}

/* The hook only takes before libcrypto's first allocation, so it goes in at load time. */
static int crypto_hook_installed;
__attribute__((constructor)) static void install_crypto_hook(void)
{
    crypto_hook_installed = CRYPTO_set_mem_functions(failing_malloc, failing_realloc, plain_free);
}

Test(ketama, crypto_and_memory_failures)
{
    cr_assert_eq(crypto_hook_installed, 1);
    struct ketama_hasher h;
    cr_assert_eq(ketama_hasher_init(&h), 0);
    uint32_t hash, server;
    cr_assert_eq(ketama_key_hash(&h, "abc", 3, &hash), 0);
    struct ketama k;
    build(&k, vector_servers, VECTOR_SERVERS);

    crypto_allocs_left = 0;
    cr_assert_eq(ketama_key_hash(&h, "abc", 3, &hash), KETAMA_E_CRYPTO);
    cr_assert_eq(ketama_lookup(&k, &h, "abc", 3, &server), KETAMA_E_CRYPTO);
    /* Setup allocates the context first (its one allocation failing is _NOMEM), then fetches
     * the MD5 implementation (its first allocation failing is _CRYPTO); a build does the same. */
    static const int want[2] = {KETAMA_E_NOMEM, KETAMA_E_CRYPTO};
    for (int budget = 0; budget < 2; budget++) {
        crypto_allocs_left = budget;
        struct ketama_hasher h2;
        cr_assert_eq(ketama_hasher_init(&h2), want[budget], "budget %d", budget);
        crypto_allocs_left = budget;
        struct ketama k2;
        cr_assert_eq(ketama_init(&k2, vector_servers, VECTOR_SERVERS), want[budget]);
        cr_assert_null(k2.points);
    }
    /* A budget that runs out later in the build also ends in _CRYPTO, with nothing left over. */
    crypto_allocs_left = 2;
    struct ketama k3;
    cr_assert_eq(ketama_init(&k3, vector_servers, VECTOR_SERVERS), KETAMA_E_CRYPTO);
    cr_assert_null(k3.points);

    crypto_allocs_left = -1;
    cr_assert_eq(ketama_key_hash(&h, "abc", 3, &hash), 0);
    cr_assert_eq(hash, 0x98500190U);
    cr_assert_eq(ketama_lookup(&k, &h, "VDEAAAAA", 8, &server), 0);
    cr_assert_eq(server, (uint32_t)k.points[0]);
    ketama_free(&k);
    ketama_hasher_free(&h);
}
