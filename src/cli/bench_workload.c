/*
 * The benchmark's workloads: which SKUs exist and what the next operation is. Every mutation
 * carries a request id "<tag>-<seq>" where the tag is unique per run, so runs against the same
 * node never collide, and names of SKUs carry the tag for the same reason.
 *
 *   flash-sale  one SKU, --stock units, LIMIT 1; single-unit orders for random users
 *   spread      --skus SKUs; single-unit orders for a random SKU and user
 *   cart        --skus SKUs of one partition; orders of 2-5 distinct SKUs; about half the placed
 *               orders are then paid (ORDER.PAYEXT) and a quarter cancelled
 *   locks       one session, --locks names; LOCK.ACQUIRE of a random name by a fresh owner (a
 *               try, with a lease); every grant is released by the next operation issued
 *   mixed       per operation: 40% single-unit orders over --skus SKUs (then paid or cancelled
 *               as in cart), 20% lock acquires (then released), 40% money: deposits,
 *               withdrawals and transfers between --accounts accounts of one partition
 *   cart --cross  the same carts over --skus SKUs spread over every partition (LIMIT 2 per
 *               user), so nearly every order is a cross-partition transaction; about half the
 *               placed orders are paid with ORDER.PAY between two of --accounts accounts, also
 *               spread (each opened with BENCH_CROSS_DEPOSIT cents), a quarter cancelled; a
 *               third of the paid orders refunded (one refund in four WRITEOFF, the rest
 *               RESTOCK); one operation in five moves money between the accounts. It is the
 *               history `shardmart check` proves cross-partition orders, payments and refunds on
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/bench.h"
#include "shardmart/ring.h"
#include "util/error.h"

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

/* Cart SKUs and mixed accounts share a partition so that the load measures the single-partition
 * path (spanning orders and transfers cost a two-phase commit, docs/node.md): keep generated names
 * "<tag>-<letter><i>" whose partition is the first one's. */
static int pick_colocated(struct bench_workload_state *w, char letter, uint32_t want_n,
                          char (*names)[BENCH_NAME_BYTES], uint32_t *names_n)
{
    uint32_t want = 0;
    uint64_t tries_max = (uint64_t)want_n * w->cfg->partitions * 64 + 1000;
    for (uint64_t i = 0; *names_n < want_n && i < tries_max; i++) {
        char name[BENCH_NAME_BYTES];
        int n = snprintf(name, sizeof name, "%s-%c%llu", w->tag, letter, (unsigned long long)i);
        uint32_t p = 0;
        if (ring_key_partition(name, (size_t)n, w->cfg->partitions, &p) != 0)
            return SM_E_BADARG;
        if (*names_n == 0)
            want = p;
        if (p == want)
            memcpy(names[(*names_n)++], name, (size_t)n + 1);
    }
    return *names_n == want_n ? 0 : SM_E_BADARG;
}

/* Every account of cart --cross starts with this much, so most payments find the funds. */
#define BENCH_CROSS_DEPOSIT 1000000

static bool cross(const struct bench_config *cfg)
{
    return cfg->workload == BENCH_CART && cfg->cross;
}

static uint32_t skus_wanted(const struct bench_config *cfg)
{
    switch (cfg->workload) {
    case BENCH_FLASH_SALE:
        return 1;
    case BENCH_LOCKS:
        return 0;
    default:
        return cfg->skus;
    }
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
    bool with_locks = cfg->workload == BENCH_LOCKS || cfg->workload == BENCH_MIXED;
    uint32_t n = skus_wanted(cfg);
    uint32_t accounts = cfg->workload == BENCH_MIXED || cross(cfg) ? cfg->accounts : 0;
    w->skus = calloc(n + 1, sizeof *w->skus);
    w->accounts = calloc(accounts + 1, sizeof *w->accounts);
    if (!w->skus || !w->accounts)
        return SM_E_NOMEM;
    if (with_locks)
        (void)snprintf(w->session, sizeof w->session, "%s-session", w->tag);
    w->setup_n = (with_locks ? 1 : 0) + n + accounts * (cross(cfg) ? 2 : 1);
    if (cross(cfg)) {
        /* Spread: names as they come, whatever their partitions. */
        for (uint32_t i = 0; i < n; i++)
            (void)snprintf(w->skus[i], BENCH_NAME_BYTES, "%s-x%u", w->tag, i);
        for (uint32_t i = 0; i < accounts; i++)
            (void)snprintf(w->accounts[i], BENCH_NAME_BYTES, "%s-a%u", w->tag, i);
        w->skus_n = n;
        w->accounts_n = accounts;
        return 0;
    }
    if (accounts > 0 && pick_colocated(w, 'a', accounts, w->accounts, &w->accounts_n) != 0)
        return SM_E_BADARG;
    if (cfg->workload == BENCH_CART)
        return pick_colocated(w, 'c', n, w->skus, &w->skus_n);
    for (uint32_t i = 0; i < n; i++)
        (void)snprintf(w->skus[i], BENCH_NAME_BYTES, "%s-%c%u", w->tag,
                       cfg->workload == BENCH_FLASH_SALE ? 'f' : 's', i);
    w->skus_n = n;
    return 0;
}

void bench_workload_free(struct bench_workload_state *w)
{
    free(w->skus);
    free(w->accounts);
    w->skus = NULL;
    w->accounts = NULL;
}

static void next_rid(struct bench_workload_state *w, struct bench_op *op)
{
    (void)snprintf(op->rid, sizeof op->rid, "%s-%llu", w->tag, (unsigned long long)++w->seq);
}

/* Set-up order: the session (locks, mixed), then the SKUs, then the accounts (mixed, cart
 * --cross; every fourth may overdraw by 500 cents, so the money proof sees both kinds), then
 * (cart --cross) a deposit to each account. */
void bench_workload_setup_op(struct bench_workload_state *w, uint32_t i, struct bench_op *op)
{
    ASSERT(i < w->setup_n);
    next_rid(w, op);
    if (w->session[0] && i == 0) {
        op->kind = HISTORY_SESSION;
        (void)snprintf(op->args, sizeof op->args, "%s %lld", w->session, (long long)w->cfg->ttl_ms);
        return;
    }
    i -= w->session[0] ? 1 : 0;
    if (i < w->skus_n) {
        op->kind = HISTORY_CREATE;
        const char *limit = w->cfg->workload == BENCH_FLASH_SALE ? " LIMIT 1"
                            : cross(w->cfg)                      ? " LIMIT 2"
                                                                 : "";
        (void)snprintf(op->args, sizeof op->args, "%s %lld%s PRICE 100", w->skus[i],
                       (long long)w->cfg->stock, limit);
        return;
    }
    i -= w->skus_n;
    if (i >= w->accounts_n) {
        i -= w->accounts_n;
        ASSERT(cross(w->cfg) && i < w->accounts_n);
        op->kind = HISTORY_DEPOSIT;
        (void)snprintf(op->args, sizeof op->args, "%s %d", w->accounts[i], BENCH_CROSS_DEPOSIT);
        return;
    }
    op->kind = HISTORY_OPEN;
    (void)snprintf(op->args, sizeof op->args, "%s%s", w->accounts[i],
                   i % 4 == 3 ? " OVERDRAFT 500" : "");
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

/* A try-acquire of a random lock by a fresh owner, leased for --ttl-ms. */
static void lock_acquire(struct bench_workload_state *w, struct bench_op *op)
{
    op->kind = HISTORY_ACQUIRE;
    (void)snprintf(op->args, sizeof op->args, "%s %s-l%u %llu LEASE %lld", w->session, w->tag,
                   rng_below(w, w->cfg->locks), (unsigned long long)w->seq,
                   (long long)w->cfg->ttl_ms);
}

/* A deposit, withdrawal or transfer of 1..BENCH_AMOUNT_MAX cents (mixed). */
static void money(struct bench_workload_state *w, struct bench_op *op, uint32_t dice)
{
    uint32_t a = rng_below(w, w->accounts_n), amount = 1 + rng_below(w, BENCH_AMOUNT_MAX);
    if (dice < 2 || w->accounts_n < 2) {
        op->kind = dice % 2 ? HISTORY_WITHDRAW : HISTORY_DEPOSIT;
        (void)snprintf(op->args, sizeof op->args, "%s %u", w->accounts[a], amount);
        return;
    }
    uint32_t b = (a + 1 + rng_below(w, w->accounts_n - 1)) % w->accounts_n; /* b != a */
    op->kind = HISTORY_TRANSFER;
    (void)snprintf(op->args, sizeof op->args, "%s %s %u", w->accounts[a], w->accounts[b], amount);
}

void bench_workload_next(struct bench_workload_state *w, struct bench_op *op)
{
    next_rid(w, op);
    if (w->followups_n > 0) {
        uint32_t at = w->followups_head;
        op->kind = w->followup_kind[at];
        if (op->kind == HISTORY_PAYEXT) {
            (void)snprintf(op->args, sizeof op->args, "%s pay-%s", w->followups[at], op->rid);
        } else if (op->kind == HISTORY_PAY) {
            /* A buyer and another account as the merchant, anywhere. */
            uint32_t a = rng_below(w, w->accounts_n);
            uint32_t b = (a + 1 + rng_below(w, w->accounts_n - 1)) % w->accounts_n;
            (void)snprintf(op->args, sizeof op->args, "%s %s %s", w->followups[at], w->accounts[a],
                           w->accounts[b]);
        } else
            (void)snprintf(op->args, sizeof op->args, "%s", w->followups[at]);
        w->followups_head = (at + 1) % BENCH_FOLLOWUPS_MAX;
        w->followups_n--;
        return;
    }
    if (w->cfg->workload == BENCH_LOCKS) {
        lock_acquire(w, op);
        return;
    }
    if (cross(w->cfg) && w->accounts_n >= 2 && rng_below(w, 5) == 0) {
        money(w, op, rng_below(w, 4));
        return;
    }
    if (w->cfg->workload == BENCH_MIXED) {
        uint32_t dice = rng_below(w, 10);
        if (dice >= 4 && dice < 6) {
            lock_acquire(w, op);
            return;
        }
        if (dice >= 6) {
            money(w, op, dice - 6);
            return;
        }
    }
    op->kind = HISTORY_PLACE;
    int n = snprintf(op->args, sizeof op->args, "u%u %lld", rng_below(w, w->cfg->users),
                     (long long)w->cfg->ttl_ms);
    ASSERT(n > 0 && (size_t)n < sizeof op->args);
    if (w->cfg->workload == BENCH_CART) {
        cart_items(w, op->args, sizeof op->args);
        return;
    }
    uint32_t k = w->skus_n == 1 ? 0 : rng_below(w, w->skus_n);
    (void)snprintf(op->args + n, sizeof op->args - (size_t)n, " %s 1", w->skus[k]);
}

static void followup(struct bench_workload_state *w, uint8_t kind, const char *args, size_t len)
{
    uint32_t at = (w->followups_head + w->followups_n) % BENCH_FOLLOWUPS_MAX;
    ASSERT(w->followups_n < BENCH_FOLLOWUPS_MAX && len < sizeof w->followups[at]);
    memcpy(w->followups[at], args, len);
    w->followups[at][len] = '\0';
    w->followup_kind[at] = kind;
    w->followups_n++;
}

void bench_workload_acked(struct bench_workload_state *w, const struct bench_op *op,
                          const char *result)
{
    if (w->followups_n == BENCH_FOLLOWUPS_MAX)
        return; /* the follow-ups are a sample; the ring full means the load outruns them */
    if (op->kind == HISTORY_ACQUIRE && strcmp(result, "NOT_GRANTED") != 0) {
        /* "<session> <lock> <owner>": the acquire's arguments up to its LEASE. */
        const char *lease = strstr(op->args, " LEASE ");
        ASSERT(lease != NULL);
        followup(w, HISTORY_RELEASE, op->args, (size_t)(lease - op->args));
        return;
    }
    if (op->kind == HISTORY_PAY && strcmp(result, "OK") == 0 && rng_below(w, 3) == 0) {
        /* "<order> RESTOCK|WRITEOFF": the order id is the payment's first word. */
        char args[BENCH_FOLLOWUP_BYTES];
        size_t id = strcspn(op->args, " ");
        int n = snprintf(args, sizeof args, "%.*s %s", (int)id, op->args,
                         rng_below(w, 4) == 0 ? "WRITEOFF" : "RESTOCK");
        if (n > 0 && (size_t)n < sizeof args)
            followup(w, HISTORY_REFUND, args, (size_t)n);
        return;
    }
    bool orders = w->cfg->workload == BENCH_CART || w->cfg->workload == BENCH_MIXED;
    if (op->kind != HISTORY_PLACE || !orders)
        return;
    uint32_t dice = rng_below(w, 4);
    if (dice == 3)
        return; /* left reserved */
    size_t len = strlen(result);
    uint8_t pay = cross(w->cfg) ? HISTORY_PAY : HISTORY_PAYEXT;
    if (len < BENCH_FOLLOWUP_BYTES)
        followup(w, dice == 2 ? HISTORY_CANCEL : pay, result, len);
}

void bench_reply_result(const struct rc_conn *c, const struct bench_op *op, char *s, size_t cap)
{
    char status[24] = "";
    int64_t token = 0;
    if (op->kind == HISTORY_ACQUIRE) {
        if (rc_field_str(c, "status", status, sizeof status) && strcmp(status, "GRANTED") == 0 &&
            rc_field_int(c, "token", &token))
            (void)snprintf(s, cap, "%lld", (long long)token);
        else
            (void)snprintf(s, cap, "%s", status[0] ? status : "?");
        return;
    }
    if (!rc_text(c, s, cap))
        (void)snprintf(s, cap, "%s", "?");
}

void bench_send_op(struct rc_conn *c, const struct bench_op *op)
{
    char args[BENCH_ARGS_BYTES];
    memcpy(args, op->args, sizeof args);
    const char *argv[2 + 2 * SM_ORDER_ITEMS_MAX + 8];
    int argc = 0;
    argv[argc++] = history_op_name(op->kind);
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
    (void)fprintf(f, "%u\t%s\t%s\t%llu\t%llu\t%s\t%s\t%s\n", client, history_op_name(op->kind),
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
