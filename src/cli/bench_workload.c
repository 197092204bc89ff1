/*
 * The benchmark's workloads: which SKUs exist and what the next operation is. Every mutation
 * carries a request id "<tag>-<seq>" where the tag is unique per run, so runs against the same
 * node never collide, and names of SKUs carry the tag for the same reason.
 *
 *   flash-sale  one SKU, --stock units, LIMIT 1; single-unit orders for random users
 *   spread      --skus SKUs; single-unit orders for a random SKU and user
 *   cart        --skus SKUs of one partition; orders of 2-5 distinct SKUs; about half the placed
 *               orders are then paid (ORDER.PAYEXT) and a quarter cancelled
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "shardmart/ring.h"
#include "util/error.h"

static const char *const op_names[] = {"STOCK.CREATE", "ORDER.PLACE", "ORDER.PAYEXT",
                                       "ORDER.CANCEL"};

const char *bench_op_name(int kind)
{
    ASSERT(kind >= 0 && kind <= BENCH_OP_CANCEL);
    return op_names[kind];
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: small, fast, and reproducible from --seed. */
static uint64_t rng_next(struct bench_workload_state *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1DULL;
}

static uint32_t rng_below(struct bench_workload_state *w, uint32_t n)
{
    ASSERT(n > 0);
    return (uint32_t)((rng_next(w) >> 32) * n >> 32);
}

/* Cart SKUs must share a partition (the node refuses cross-partition orders): keep generated
 * names whose partition is the first one's. */
static int pick_cart_names(struct bench_workload_state *w)
{
    uint32_t want = 0;
    uint64_t tries_max = (uint64_t)w->cfg->skus * w->cfg->partitions * 64 + 1000;
    for (uint64_t i = 0; w->skus_n < w->cfg->skus && i < tries_max; i++) {
        char name[BENCH_NAME_BYTES];
        int n = snprintf(name, sizeof name, "%s-c%llu", w->tag, (unsigned long long)i);
        uint32_t p = 0;
        if (ring_key_partition(name, (size_t)n, w->cfg->partitions, &p) != 0)
            return SM_E_BADARG;
        if (w->skus_n == 0)
            want = p;
        if (p == want)
            memcpy(w->skus[w->skus_n++], name, (size_t)n + 1);
    }
    return w->skus_n == w->cfg->skus ? 0 : SM_E_BADARG;
}

int bench_workload_init(struct bench_workload_state *w, const struct bench_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    w->rng = cfg->seed * 0x9E3779B97F4A7C15ULL + 1;
    /* The tag comes from the clock and pid, not the seed: the same seed run twice against one
     * node must still use fresh request ids and SKU names. */
    uint64_t t = bench_now_ns() ^ ((uint64_t)getpid() << 40);
    (void)snprintf(w->tag, sizeof w->tag, "b%08llx", (unsigned long long)(t & 0xffffffffu));
    uint32_t n = cfg->workload == BENCH_FLASH_SALE ? 1 : cfg->skus;
    w->skus = calloc(n, sizeof *w->skus);
    if (!w->skus)
        return SM_E_NOMEM;
    if (cfg->workload == BENCH_CART)
        return pick_cart_names(w);
    for (uint32_t i = 0; i < n; i++)
        (void)snprintf(w->skus[i], BENCH_NAME_BYTES, "%s-%c%u", w->tag,
                       cfg->workload == BENCH_FLASH_SALE ? 'f' : 's', i);
    w->skus_n = n;
    return 0;
}

void bench_workload_free(struct bench_workload_state *w)
{
    free(w->skus);
    w->skus = NULL;
}

static void next_rid(struct bench_workload_state *w, struct bench_op *op)
{
    (void)snprintf(op->rid, sizeof op->rid, "%s-%llu", w->tag, (unsigned long long)++w->seq);
}

void bench_workload_setup_op(struct bench_workload_state *w, uint32_t i, struct bench_op *op)
{
    ASSERT(i < w->skus_n);
    op->kind = BENCH_OP_CREATE;
    next_rid(w, op);
    bool limited = w->cfg->workload == BENCH_FLASH_SALE;
    (void)snprintf(op->args, sizeof op->args, "%s %lld%s PRICE 100", w->skus[i],
                   (long long)w->cfg->stock, limited ? " LIMIT 1" : "");
}

/* Cart: 2-5 distinct SKUs (fewer when fewer exist), one unit each. */
static void cart_items(struct bench_workload_state *w, char *s, size_t cap)
{
    uint32_t n = 2 + rng_below(w, 4);
    if (n > w->skus_n)
        n = w->skus_n;
    uint32_t first = rng_below(w, w->skus_n);
    size_t len = strlen(s);
    for (uint32_t i = 0; i < n; i++) {
        /* Consecutive names from a random start: distinct because n <= skus_n. */
        uint32_t k = (first + i) % w->skus_n;
        int m = snprintf(s + len, cap - len, " %s 1", w->skus[k]);
        ASSERT(m > 0 && (size_t)m < cap - len);
        len += (size_t)m;
    }
}

void bench_workload_next(struct bench_workload_state *w, struct bench_op *op)
{
    next_rid(w, op);
    if (w->followups_n > 0) {
        uint32_t at = w->followups_head;
        op->kind = w->followup_kind[at];
        if (op->kind == BENCH_OP_PAYEXT)
            (void)snprintf(op->args, sizeof op->args, "%s pay-%s", w->followups[at], op->rid);
        else
            (void)snprintf(op->args, sizeof op->args, "%s", w->followups[at]);
        w->followups_head = (at + 1) % BENCH_FOLLOWUPS_MAX;
        w->followups_n--;
        return;
    }
    op->kind = BENCH_OP_PLACE;
    int n = snprintf(op->args, sizeof op->args, "u%u %lld", rng_below(w, w->cfg->users),
                     (long long)w->cfg->ttl_ms);
    ASSERT(n > 0 && (size_t)n < sizeof op->args);
    if (w->cfg->workload == BENCH_CART) {
        cart_items(w, op->args, sizeof op->args);
        return;
    }
    uint32_t k = w->cfg->workload == BENCH_FLASH_SALE ? 0 : rng_below(w, w->skus_n);
    (void)snprintf(op->args + n, sizeof op->args - (size_t)n, " %s 1", w->skus[k]);
}

void bench_workload_placed(struct bench_workload_state *w, const char *order_id)
{
    if (w->cfg->workload != BENCH_CART || w->followups_n == BENCH_FOLLOWUPS_MAX)
        return;
    uint32_t dice = rng_below(w, 4);
    if (dice == 3)
        return; /* left reserved */
    uint32_t at = (w->followups_head + w->followups_n) % BENCH_FOLLOWUPS_MAX;
    (void)snprintf(w->followups[at], sizeof w->followups[at], "%s", order_id);
    w->followup_kind[at] = dice == 2 ? BENCH_OP_CANCEL : BENCH_OP_PAYEXT;
    w->followups_n++;
}

void bench_send_op(struct rc_conn *c, const struct bench_op *op)
{
    char args[BENCH_ARGS_BYTES];
    memcpy(args, op->args, sizeof args);
    const char *argv[2 + 2 * SM_ORDER_ITEMS_MAX + 8];
    int argc = 0;
    argv[argc++] = bench_op_name(op->kind);
    argv[argc++] = op->rid;
    char *save = NULL;
    for (char *t = strtok_r(args, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
        ASSERT(argc < (int)(sizeof argv / sizeof argv[0]));
        argv[argc++] = t;
    }
    rc_command(c, argc, argv);
}

void bench_history_line(FILE *f, uint32_t client, const struct bench_op *op, uint64_t reply_ns,
                        const char *outcome, const char *result)
{
    if (!f)
        return;
    (void)fprintf(f, "%u\t%s\t%s\t%llu\t%llu\t%s\t%s\t%s\n", client, bench_op_name(op->kind),
                  op->rid, (unsigned long long)(op->intended_ns / 1000),
                  (unsigned long long)(reply_ns / 1000), outcome, result, op->args);
}

void bench_count_outcome(struct bench_result *r, const char *code)
{
    for (uint32_t i = 0; i < r->outcomes_n; i++) {
        if (strcmp(r->outcomes[i].code, code) == 0) {
            r->outcomes[i].count++;
            return;
        }
    }
    struct bench_outcome *o = r->outcomes_n < BENCH_OUTCOMES_MAX ? &r->outcomes[r->outcomes_n++]
                                                                 : &r->outcomes[BENCH_OUTCOMES_MAX];
    if (o->count == 0)
        (void)snprintf(o->code, sizeof o->code, "%s",
                       o == &r->outcomes[BENCH_OUTCOMES_MAX] ? "other" : code);
    o->count++;
}
