/*
 * `shardmart check FILE`: proves a benchmark history against the node's final state (read over
 * RESP with STOCK.GET and ORDER.GET). What it proves, in order, stopping at the first violation:
 *
 *   1. no request id was acknowledged with two different results;
 *   2. every acknowledged order id belongs to one request only, and ORDER.GET finds it with the
 *      quantity the history ordered (of an order across partitions: the units of the SKUs in
 *      the order's own partition, which is what the node keeps there; the partition count
 *      comes from CONFIG GET partitions); a paid order (ORDER.PAY or ORDER.PAYEXT) is not RESERVED,
 *      a cancelled one CANCELLED, a refunded one REFUNDED;
 *   3. per SKU created in the history: all counts >= 0, stocked as created less the units of
 *      refunds that wrote them off (within what unanswered refunds allow),
 *      available + reserved + sold == stocked (so no oversell), and reserved + sold equals the
 *      units of acknowledged orders now RESERVED/PAID/SHIPPED/COMPLETED, plus at most the units
 *      of orders whose reply never came;
 *   4. no user holds more than a SKU's LIMIT across its live acknowledged orders;
 *   5. money conserved (check_money.c: deposits, withdrawals, transfers, payments and refunds)
 *      and 6. lock safety (check_locks.c), see check.h.
 *
 * Cross-partition work settles after its reply: a remote partition releases, sells or refunds
 * an order's items, and credits a payment's payee, a batch or two after the client's reply
 * (docs/node.md). So when 3 or 5 finds a violation, the node's state is read again, after 10
 * ms, then twice as long each time up to CHECK_SETTLE_STEP_MS, for CHECK_SETTLE_MS in all,
 * and only a violation that outlasts them is reported. A node at rest settles in milliseconds;
 * a real violation never does. A history with no cross-partition work (every order's SKUs,
 * every payment's and transfer's accounts in one partition) is read once.
 *
 * Exit 0 with a one-line summary, 1 with the first violation, 2 for usage or a bad history.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/check.h"
#include "cli/commands.h"
#include "cli/history.h"
#include "cli/resp_client.h"
#include "limits.h"
#include "shardmart/ring.h"
#include "util/error.h"

const char cli_check_usage[] =
    "usage: shardmart check FILE [--host H] [--port P]\n"
    "Reads a history written by 'shardmart bench --history FILE' and proves it against the\n"
    "node's state: acknowledged orders exist once, no oversell, stock identities, per-user\n"
    "limits, one result per request id, money conserved, lock tokens increasing and never two\n"
    "holders at once (docs/tools.md).\n"
    "exit: 0 all hold, 1 a violation (the first is explained), 2 usage or malformed history\n";

/* Reads of the node's stock and money while cross-partition work may still be settling. */
#define CHECK_SETTLE_MS      2000
#define CHECK_SETTLE_STEP_MS 250

struct check_sku {
    char name[CHECK_NAME_BYTES];
    uint32_t line;
    int64_t stocked, limit, live, unknown;
    int64_t written_off, written_off_maybe; /* units refunds wrote off: answered, unanswered */
};

/* A unit of a limited SKU held by a user in a live order. */
struct check_hold {
    const char *user;
    uint32_t sku;
    int64_t quantity;
    uint32_t line;
};

struct check {
    struct history h;
    struct rc_conn c;
    const struct history_line **by_rid;
    const struct history_line **orders; /* acknowledged ORDER.PLACE, sorted by order id */
    char (*states)[16];                 /* the state read back, parallel to orders */
    size_t orders_n;
    struct check_sku *skus; /* sorted by name */
    size_t skus_n;
    struct check_hold *holds;
    size_t holds_n;
    int64_t totals[4];   /* available, reserved, sold, stocked over all SKUs */
    uint32_t partitions; /* the node's, or 0 when it did not say */
    bool cross;          /* the history has cross-partition work (or partitions is 0) */
    struct check_summary summary;
};

bool check_quiet;

int check_violation(const char *fmt, ...)
{
    if (check_quiet)
        return 1;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer does not see va_start through GCC's builtin va_list here. */
    int n = vsnprintf(text, sizeof text, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    printf("check: VIOLATION: %s\n", n >= 0 ? text : fmt);
    return 1;
}

bool check_word_int(const char *word, size_t len, int64_t max, int64_t *v)
{
    int64_t x = 0;
    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (word[i] < '0' || word[i] > '9' || __builtin_mul_overflow(x, 10, &x) ||
            __builtin_add_overflow(x, word[i] - '0', &x))
            return false;
    }
    if (x > max)
        return false;
    *v = x;
    return true;
}

static int violation(const char *fmt, const char *a, const char *b, uint32_t l1, uint32_t l2)
{
    if (check_quiet)
        return 1;
    printf("check: VIOLATION: ");
    printf(fmt, a, b, l1, l2);
    printf("\n");
    return 1;
}

static int cmp_rid(const void *a, const void *b)
{
    const struct history_line *x = *(const struct history_line *const *)a;
    const struct history_line *y = *(const struct history_line *const *)b;
    int c = strcmp(x->rid, y->rid);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

static int cmp_order(const void *a, const void *b)
{
    const struct history_line *x = *(const struct history_line *const *)a;
    const struct history_line *y = *(const struct history_line *const *)b;
    int c = strcmp(x->result, y->result);
    return c ? c : (x->line > y->line) - (x->line < y->line);
}

/* 1: one result per acknowledged request id. */
static int check_rids(struct check *k)
{
    k->by_rid = malloc((k->h.lines_n + 1) * sizeof(const struct history_line *));
    if (!k->by_rid)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < k->h.lines_n; i++)
        if (k->h.lines[i].acked)
            k->by_rid[n++] = &k->h.lines[i];
    qsort(k->by_rid, n, sizeof(const struct history_line *), cmp_rid);
    for (size_t i = 1; i < n; i++) {
        const struct history_line *x = k->by_rid[i - 1], *y = k->by_rid[i];
        if (strcmp(x->rid, y->rid) == 0 && (x->op != y->op || strcmp(x->outcome, y->outcome) != 0 ||
                                            strcmp(x->result, y->result) != 0))
            return violation("request id %s acknowledged with two different results (%s; lines "
                             "%u and %u)",
                             x->rid, "a retry must return the first reply", x->line, y->line);
    }
    return 0;
}

static int cmp_sku(const void *a, const void *b)
{
    return strcmp(((const struct check_sku *)a)->name, ((const struct check_sku *)b)->name);
}

static struct check_sku *find_sku(struct check *k, const char *name, size_t len)
{
    struct check_sku key = {.line = 0};
    if (len >= sizeof key.name)
        return NULL;
    memcpy(key.name, name, len);
    key.name[len] = '\0';
    return bsearch(&key, k->skus, k->skus_n, sizeof key, cmp_sku);
}

/* The SKUs the history created: "sku qty [LIMIT n] [PRICE p]". */
static int collect_skus(struct check *k)
{
    k->skus = calloc(k->h.lines_n + 1, sizeof *k->skus);
    if (!k->skus)
        return -1;
    for (size_t i = 0; i < k->h.lines_n; i++) {
        const struct history_line *l = &k->h.lines[i];
        if (l->op != HISTORY_CREATE || !l->ok)
            continue;
        struct check_sku *s = &k->skus[k->skus_n];
        long long qty = 0, limit = 0;
        int used = 0;
        if (sscanf(l->args, "%159s %lld%n", s->name, &qty, &used) != 2 || qty < 0) {
            printf("check: line %u: cannot read STOCK.CREATE arguments '%s'\n", l->line, l->args);
            return 2;
        }
        const char *lim = strstr(l->args + used, "LIMIT ");
        if (lim && sscanf(lim + 6, "%lld", &limit) != 1)
            limit = 0;
        s->line = l->line;
        s->stocked = qty;
        s->limit = limit;
        k->skus_n++;
    }
    qsort(k->skus, k->skus_n, sizeof *k->skus, cmp_sku);
    for (size_t i = 1; i < k->skus_n; i++)
        if (strcmp(k->skus[i - 1].name, k->skus[i].name) == 0)
            return violation("SKU %s created twice (%s lines %u and %u)", k->skus[i].name,
                             "STOCK.CREATE of an existing SKU must fail:", k->skus[i - 1].line,
                             k->skus[i].line);
    return 0;
}

/* 2a: distinct order ids among acknowledged placements (a retry of one rid may repeat one). */
static int collect_orders(struct check *k)
{
    k->orders = malloc((k->h.lines_n + 1) * sizeof(const struct history_line *));
    if (!k->orders)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < k->h.lines_n; i++)
        if (k->h.lines[i].op == HISTORY_PLACE && k->h.lines[i].ok)
            k->orders[n++] = &k->h.lines[i];
    qsort(k->orders, n, sizeof(const struct history_line *), cmp_order);
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        const struct history_line *prev = out ? k->orders[out - 1] : NULL;
        if (prev && strcmp(prev->result, k->orders[i]->result) == 0) {
            if (strcmp(prev->rid, k->orders[i]->rid) != 0)
                return violation("order id %s acknowledged for two requests (%s; lines %u and %u)",
                                 prev->result, k->orders[i]->rid, prev->line, k->orders[i]->line);
            continue;
        }
        k->orders[out++] = k->orders[i];
    }
    k->orders_n = out;
    size_t items = 0; /* an upper bound: every other word of the arguments */
    for (size_t i = 0; i < out; i++) {
        ASSERT(k->orders[i] != NULL);
        for (const char *p = k->orders[i]->args; *p; p++)
            items += *p == ' ';
    }
    k->states = calloc(out + 1, sizeof *k->states);
    k->holds = calloc(items / 2 + 1, sizeof *k->holds);
    return k->states && k->holds ? 0 : -1;
}

size_t check_next_word(const char **p, const char **word)
{
    while (**p == ' ')
        (*p)++;
    *word = *p;
    while (**p && **p != ' ')
        (*p)++;
    return (size_t)(*p - *word);
}

static bool is_live(const char *state)
{
    return !strcmp(state, "RESERVED") || !strcmp(state, "PAID") || !strcmp(state, "SHIPPED") ||
           !strcmp(state, "COMPLETED");
}

/* Walks an ORDER.PLACE's items "user ttl sku qty ...": adds each to its SKU's live or unknown
 * units (and to the holds of limited SKUs when live); returns the total quantity, -1 if bad. */
static int64_t apply_items(struct check *k, const struct history_line *l, bool live)
{
    const char *p = l->args, *user = NULL, *w = NULL;
    size_t user_len = check_next_word(&p, &user);
    if (user_len == 0 || check_next_word(&p, &w) == 0)
        return -1;
    int64_t total = 0;
    for (size_t n; (n = check_next_word(&p, &w)) > 0;) {
        const char *q = NULL;
        if (check_next_word(&p, &q) == 0)
            return -1;
        int64_t qty = strtoll(q, NULL, 10);
        total += qty;
        struct check_sku *s = find_sku(k, w, n);
        if (!s)
            continue; /* a SKU this history did not create: not ours to account */
        if (!l->acked)
            s->unknown += qty;
        else if (live)
            s->live += qty;
        if (live && s->limit > 0)
            k->holds[k->holds_n++] = (struct check_hold){
                .user = user, .sku = (uint32_t)(s - k->skus), .quantity = qty, .line = l->line};
    }
    return total;
}

bool check_node_failed(const struct rc_conn *c, const char *what)
{
    char code[24];
    if (!rc_is_error(c, code, sizeof code) || strcmp(code, "NOTFOUND") == 0)
        return false;
    fprintf(stderr, "shardmart check: the node answered %s with '%.*s'\n", what,
            (int)c->vals[0].str.len, (const char *)c->vals[0].str.ptr);
    return true;
}

/* The node's partition count (CONFIG GET partitions), or 0 when it does not say. */
static int read_partitions(struct check *k)
{
    const char *argv[] = {"CONFIG", "GET", "partitions"};
    rc_command(&k->c, 3, argv);
    if (rc_wait(&k->c, CHECK_TIMEOUT_MS) != 0)
        return -1;
    char text[32] = "";
    if (k->c.vals_n == 3 && k->c.vals[2].type == RESP_BULK)
        (void)snprintf(text, sizeof text, "%.*s", (int)k->c.vals[2].str.len,
                       (const char *)k->c.vals[2].str.ptr);
    long long p = strtoll(text, NULL, 10);
    k->partitions = p >= 1 && p <= SM_PARTITIONS_MAX ? (uint32_t)p : 0;
    return 0;
}

/* The units of an ORDER.PLACE ("user ttl sku qty ...") that the node keeps with the order: all
 * of them, or of an order across partitions those whose SKU lives in the order's partition
 * (its id's first 4 hex digits). */
static int64_t units_at_order(const struct check *k, const struct history_line *l)
{
    const char *p = l->args, *w = NULL;
    (void)check_next_word(&p, &w);
    (void)check_next_word(&p, &w);
    char *end = NULL;
    unsigned long home = strtoul(l->result, &end, 16);
    bool by_partition = k->partitions > 0 && end == l->result + 4 && *end == '-';
    int64_t units = 0;
    for (size_t n; (n = check_next_word(&p, &w)) > 0;) {
        const char *q = NULL;
        if (check_next_word(&p, &q) == 0)
            return -1;
        uint32_t at = 0;
        if (by_partition && (ring_key_partition(w, n, k->partitions, &at) != 0 || at != home))
            continue;
        units += strtoll(q, NULL, 10);
    }
    return units;
}

/* The partition of a name, or UINT32_MAX when partitions is unknown. */
static uint32_t partition_of(const struct check *k, const char *name, size_t len)
{
    uint32_t p = 0;
    if (k->partitions == 0 || ring_key_partition(name, len, k->partitions, &p) != 0)
        return UINT32_MAX;
    return p;
}

/* Whether line l is cross-partition work: an order whose SKUs span partitions, a payment or a
 * transfer whose accounts do not all live with its order or each other. (A refund is cross
 * only when its order's payment was, which that payment's line already says.) */
static bool line_is_cross(const struct check *k, const struct history_line *l)
{
    const char *p = l->args, *w = NULL;
    size_t n;
    uint32_t home = UINT32_MAX;
    bool first = true;
    if (l->op == HISTORY_PLACE) {
        (void)check_next_word(&p, &w);
        (void)check_next_word(&p, &w);
        for (; (n = check_next_word(&p, &w)) > 0; first = false) {
            uint32_t at = partition_of(k, w, n);
            if (at == UINT32_MAX || (!first && at != home))
                return true;
            home = at;
            (void)check_next_word(&p, &w); /* quantity */
        }
        return false;
    }
    if (l->op != HISTORY_PAY && l->op != HISTORY_TRANSFER)
        return false;
    if (l->op == HISTORY_PAY) {
        char *end = NULL;
        home = (uint32_t)strtoul(l->args, &end, 16);
        if (k->partitions == 0 || end != l->args + 4)
            return true;
        (void)check_next_word(&p, &w);
        first = false;
    }
    for (int i = 0; i < 2 && (n = check_next_word(&p, &w)) > 0; i++, first = false) {
        uint32_t at = partition_of(k, w, n);
        if (at == UINT32_MAX || (!first && at != home))
            return true;
        home = at;
    }
    return false;
}

/* 2b: ORDER.GET of every acknowledged order: found, with the quantity ordered. */
static int read_orders(struct check *k)
{
    if (read_partitions(k) != 0)
        return -1;
    for (size_t i = 0; i < k->h.lines_n && !k->cross; i++)
        k->cross = line_is_cross(k, &k->h.lines[i]);
    for (size_t base = 0; base < k->orders_n; base += CHECK_CHUNK) {
        size_t n = k->orders_n - base < CHECK_CHUNK ? k->orders_n - base : CHECK_CHUNK;
        for (size_t i = 0; i < n; i++) {
            const char *argv[] = {"ORDER.GET", k->orders[base + i]->result};
            rc_command(&k->c, 2, argv);
        }
        for (size_t i = 0; i < n; i++) {
            const struct history_line *l = k->orders[base + i];
            char code[24];
            int64_t qty = 0;
            if (rc_wait(&k->c, CHECK_TIMEOUT_MS) != 0 || check_node_failed(&k->c, "ORDER.GET"))
                return -1;
            if (rc_is_error(&k->c, code, sizeof code))
                return violation("acknowledged order %s not found on the node (%s, line %u%.0u)",
                                 l->result, code, l->line, 0);
            if (!rc_field_str(&k->c, "state", k->states[base + i], sizeof k->states[0]) ||
                !rc_field_int(&k->c, "quantity", &qty))
                return -1;
            if (apply_items(k, l, is_live(k->states[base + i])) < 0 || units_at_order(k, l) != qty)
                return violation("order %s holds a quantity other than ordered (%s; line %u%.0u)",
                                 l->result, l->args, l->line, 0);
        }
    }
    return 0;
}

/* The index in k->orders of the order a follow-up names (its first word), or k->orders_n. */
static size_t followup_order(const struct check *k, const struct history_line *l)
{
    const char *p = l->args, *w = NULL;
    size_t n = check_next_word(&p, &w);
    char id[CHECK_NAME_BYTES];
    if (n == 0 || n >= sizeof id)
        return k->orders_n;
    memcpy(id, w, n);
    id[n] = '\0';
    struct history_line key = {.result = id, .line = 0};
    const struct history_line *kp = &key;
    /* The sort puts line 0 first among equal ids, so search for the first with this id. */
    size_t lo = 0, hi = k->orders_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cmp_order(&k->orders[mid], &kp) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < k->orders_n && strcmp(k->orders[lo]->result, id) == 0 ? lo : k->orders_n;
}

/* A refund "order WRITEOFF" answered ok (or unanswered: maybe) took the order's units out of
 * stocked. */
static void written_off(struct check *k, const struct history_line *refund, size_t order)
{
    const char *p = refund->args, *w = NULL;
    (void)check_next_word(&p, &w);
    size_t n = check_next_word(&p, &w);
    if (n != 8 || memcmp(w, "WRITEOFF", 8) != 0)
        return;
    p = k->orders[order]->args;
    (void)check_next_word(&p, &w); /* user */
    (void)check_next_word(&p, &w); /* ttl */
    for (size_t sn; (sn = check_next_word(&p, &w)) > 0;) {
        const char *q = NULL;
        if (check_next_word(&p, &q) == 0)
            return;
        struct check_sku *s = find_sku(k, w, sn);
        if (s)
            *(refund->ok ? &s->written_off : &s->written_off_maybe) += strtoll(q, NULL, 10);
    }
}

/* 2c: an acknowledged payment left its order paid, an acknowledged cancel cancelled it, an
 * acknowledged refund refunded it. */
static int check_followups(struct check *k)
{
    for (size_t i = 0; i < k->h.lines_n; i++) {
        const struct history_line *l = &k->h.lines[i];
        bool refund = l->op == HISTORY_REFUND;
        if ((l->acked && !l->ok) ||
            (l->op != HISTORY_PAYEXT && l->op != HISTORY_PAY && l->op != HISTORY_CANCEL && !refund))
            continue;
        size_t o = followup_order(k, l);
        if (o == k->orders_n)
            continue; /* an order this history did not place */
        if (refund)
            written_off(k, l, o);
        if (!l->ok)
            continue;
        const char *state = k->states[o];
        bool fine = l->op == HISTORY_CANCEL ? strcmp(state, "CANCELLED") == 0
                    : refund                ? strcmp(state, "REFUNDED") == 0
                             : strcmp(state, "RESERVED") != 0 && strcmp(state, "CANCELLED") != 0 &&
                                   strcmp(state, "EXPIRED") != 0;
        if (!fine)
            return violation("order %s is %s after an acknowledged payment, cancel or refund "
                             "(line %u%.0u)",
                             k->orders[o]->result, state, l->line, 0);
    }
    return 0;
}

/* 3: the stock identities of every SKU the history created. */
static int check_one_sku(struct check *k, const struct check_sku *s)
{
    int64_t v[4] = {0};
    static const char *const names[] = {"available", "reserved", "sold", "stocked"};
    for (int i = 0; i < 4; i++)
        if (!rc_field_int(&k->c, names[i], &v[i]))
            return violation("SKU %s created (line %u) is not on the node%s%.0u", s->name, "",
                             s->line, 0);
    char why[200];
    const char *bad = NULL;
    if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0)
        bad = "a negative count";
    else if (v[3] > s->stocked - s->written_off ||
             v[3] < s->stocked - s->written_off - s->written_off_maybe)
        bad = "stocked differs from the quantity created less the units refunds wrote off";
    else if (v[1] + v[2] > v[3])
        bad = "oversold: reserved + sold > stocked";
    else if (v[0] + v[1] + v[2] != v[3])
        bad = "available + reserved + sold != stocked";
    else if (v[1] + v[2] < s->live || v[1] + v[2] > s->live + s->unknown)
        bad = "reserved + sold differs from the units of acknowledged live orders";
    for (int i = 0; i < 4; i++)
        k->totals[i] += v[i];
    if (!bad)
        return 0;
    if (check_quiet)
        return 1;
    snprintf(why, sizeof why,
             "available %lld reserved %lld sold %lld stocked %lld; created %lld, written off "
             "%lld (+%lld unanswered), live acked units %lld, unanswered %lld",
             (long long)v[0], (long long)v[1], (long long)v[2], (long long)v[3],
             (long long)s->stocked, (long long)s->written_off, (long long)s->written_off_maybe,
             (long long)s->live, (long long)s->unknown);
    printf("check: VIOLATION: SKU %s (created line %u): %s (%s)\n", s->name, s->line, bad, why);
    return 1;
}

static int check_stock(struct check *k)
{
    int bad = 0; /* the first violation; the chunk's other replies are still read */
    memset(k->totals, 0, sizeof k->totals);
    for (size_t base = 0; bad == 0 && base < k->skus_n; base += CHECK_CHUNK) {
        size_t n = k->skus_n - base < CHECK_CHUNK ? k->skus_n - base : CHECK_CHUNK;
        for (size_t i = 0; i < n; i++) {
            const char *argv[] = {"STOCK.GET", k->skus[base + i].name};
            rc_command(&k->c, 2, argv);
        }
        for (size_t i = 0; i < n; i++) {
            if (rc_wait(&k->c, CHECK_TIMEOUT_MS) != 0 || check_node_failed(&k->c, "STOCK.GET"))
                return -1;
            if (bad == 0)
                bad = check_one_sku(k, &k->skus[base + i]);
        }
    }
    return bad;
}

static int check_money_of(struct check *k)
{
    return check_money(&k->h, &k->c, &k->summary);
}

/* A proof of the node's state (3 or 5), read again while it fails: cross-partition work may
 * still be settling. */
static int check_settled(struct check *k, int (*proof)(struct check *))
{
    long waited_ms = k->cross ? 0 : CHECK_SETTLE_MS, step_ms = 10;
    for (;;) {
        check_quiet = waited_ms < CHECK_SETTLE_MS;
        int rc = proof(k);
        if (rc != 1 || !check_quiet) {
            check_quiet = false;
            return rc;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = step_ms * 1000000L};
        nanosleep(&ts, NULL);
        waited_ms += step_ms;
        step_ms = step_ms * 2 > CHECK_SETTLE_STEP_MS ? CHECK_SETTLE_STEP_MS : step_ms * 2;
    }
}

static int cmp_word(const char *a, const char *b)
{
    size_t la = strcspn(a, " "), lb = strcspn(b, " ");
    int c = memcmp(a, b, la < lb ? la : lb);
    return c ? c : (la > lb) - (la < lb);
}

static int cmp_hold(const void *a, const void *b)
{
    const struct check_hold *x = a, *y = b;
    int c = cmp_word(x->user, y->user);
    return c ? c : (x->sku > y->sku) - (x->sku < y->sku);
}

/* 4: per-user limits over live acknowledged orders. */
static int check_limits(struct check *k)
{
    qsort(k->holds, k->holds_n, sizeof *k->holds, cmp_hold);
    int64_t run = 0;
    for (size_t i = 0; i < k->holds_n; i++) {
        const struct check_hold *h = &k->holds[i];
        run = i > 0 && cmp_hold(&k->holds[i - 1], h) == 0 ? run + h->quantity : h->quantity;
        const struct check_sku *s = &k->skus[h->sku];
        if (run > s->limit) {
            char user[160];
            snprintf(user, sizeof user, "%.*s", (int)strcspn(h->user, " "), h->user);
            return violation("user %s holds more than the LIMIT of SKU %s (live acknowledged "
                             "orders up to line %u, limit line %u)",
                             user, s->name, h->line, s->line);
        }
    }
    return 0;
}

static int prove(struct check *k)
{
    int rc = check_rids(k);
    rc = rc ? rc : collect_skus(k);
    rc = rc ? rc : collect_orders(k);
    rc = rc ? rc : read_orders(k);
    for (size_t i = 0; rc == 0 && i < k->h.lines_n; i++)
        if (k->h.lines[i].op == HISTORY_PLACE && !k->h.lines[i].acked)
            (void)apply_items(k, &k->h.lines[i], false);
    rc = rc ? rc : check_followups(k);
    rc = rc ? rc : check_settled(k, check_stock);
    rc = rc ? rc : check_limits(k);
    rc = rc ? rc : check_settled(k, check_money_of);
    rc = rc ? rc : check_locks(&k->h, &k->c, &k->summary);
    return rc;
}

static void check_free(struct check *k)
{
    free(k->by_rid);
    free(k->orders);
    free(k->states);
    free(k->skus);
    free(k->holds);
    history_free(&k->h);
}

/* Reads --host and --port after FILE; false (after a message) on anything else. */
static bool parse_target(int argc, char **argv, const char **host, int *port)
{
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            *host = argv[++i];
        } else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (!*argv[i] || *end || v < 1 || v > 65535) {
                fprintf(stderr, "shardmart check: --port wants 1..65535\n");
                return false;
            }
            *port = (int)v;
        } else {
            fprintf(stderr, "shardmart check: unknown or incomplete option '%s'\n", argv[i]);
            return false;
        }
    }
    return true;
}

int cli_check(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    int port = 7379;
    if (argc < 1 || argv[0][0] == '-' || !parse_target(argc, argv, &host, &port)) {
        if (argc < 1 || argv[0][0] == '-')
            fputs(cli_check_usage, stderr);
        return 2;
    }
    static struct check k;
    memset(&k, 0, sizeof k);
    uint32_t bad_line = 0;
    char why[160] = "";
    int rc = history_load(&k.h, argv[0], &bad_line, why, sizeof why);
    if (rc != 0) {
        if (rc == SM_E_CORRUPT)
            fprintf(stderr, "shardmart check: %s:%u: malformed history line: %s\n", argv[0],
                    bad_line, why);
        else
            fprintf(stderr, "shardmart check: cannot read %s: %s\n", argv[0],
                    rc == SM_E_IO ? strerror(errno) : sm_strerror(rc));
        check_free(&k);
        return 2;
    }
    if (rc_open(&k.c, host, port) != 0) {
        fprintf(stderr, "shardmart check: cannot connect to %s:%d: %s\n", host, port,
                strerror(errno));
        check_free(&k);
        return 2;
    }
    rc = prove(&k);
    if (rc < 0)
        fprintf(stderr, "shardmart check: reading the node's state failed\n");
    else if (rc == 0)
        printf("check: OK: %zu operations, %zu acknowledged orders found, %zu SKUs (stocked %lld, "
               "available %lld, reserved %lld, sold %lld), identities and limits hold; %zu "
               "accounts hold %lld cents, money conserved; %zu lock grants on %zu locks, tokens "
               "increasing, one holder at a time\n",
               k.h.lines_n, k.orders_n, k.skus_n, (long long)k.totals[3], (long long)k.totals[0],
               (long long)k.totals[1], (long long)k.totals[2], k.summary.accounts_n,
               (long long)k.summary.balances_cents, k.summary.grants_n, k.summary.locks_n);
    rc_close(&k.c);
    check_free(&k);
    return rc < 0 ? 2 : rc;
}
