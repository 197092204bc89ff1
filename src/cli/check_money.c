/*
 * The money proof of `shardmart check` (check.h). From the history alone, every account it
 * opened gets the range its balance must lie in:
 *
 *   acknowledged ok      deposit +a, withdrawal -a, transfer -a from / +a to   (happened)
 *   unknown (no reply)   the same effect, or none                              (may have happened)
 *   an error reply       none                                                  (changed nothing)
 *
 * so lo = definite effects + every unknown decrease, hi = definite effects + every unknown
 * increase. The node's ACCOUNT.GET must then give, for every account, a balance in [lo, hi] that
 * is not below -overdraft; and the sum of the balances must equal deposits minus withdrawals
 * (transfers move money, never make it), again within what unanswered operations allow. A
 * request id that appears twice (a retry) counts once: check_rids in cmd_check.c has already
 * proved its answers agree.
 *
 * Orders move money too: ORDER.PAY <order> <buyer> <merchant> moves the order's total from the
 * buyer to the merchant, and ORDER.REFUND of an order paid that way moves it back (an order
 * paid by ORDER.PAYEXT moves none either way). The total comes from the history: the
 * acknowledged ORDER.PLACE that returned the order id, its items' quantities times the PRICE
 * of their STOCK.CREATE. A refund's accounts are those of the order's acknowledged payment, or
 * of an unanswered one (an answered refund proves that payment happened; counting it as maybe
 * only widens the range, so the proof stays sound).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/check.h"
#include "util/error.h"

/* Amounts past this are not something a history of ours holds: refused as malformed, which also
 * keeps every sum below far from int64 overflow (2^20 operations of at most 2^40 each). */
#define MONEY_AMOUNT_MAX (INT64_C(1) << 40)

struct money_account {
    char name[CHECK_NAME_BYTES];
    uint32_t line;                   /* its ACCOUNT.OPEN */
    int64_t overdraft;               /* cents it may go below zero */
    int64_t lo, hi;                  /* the balance the history allows */
    int64_t balance, overdraft_node; /* read back from the node */
};

/* A SKU's price, or an order's total, by name (an order's name is its id). */
struct money_named {
    char name[CHECK_NAME_BYTES];
    int64_t cents; /* -1: unknown (a SKU this history did not create) */
};

/* A payment by ORDER.PAY: answered ok, or unanswered. */
struct money_pay {
    const struct history_line *l;
    char order[CHECK_NAME_BYTES];
};

struct money {
    const struct history *h;
    struct money_account *accounts; /* sorted by name */
    size_t accounts_n;
    struct money_named *prices, *totals; /* sorted by name */
    size_t prices_n, totals_n;
    struct money_pay *pays; /* sorted by order, the answered first */
    size_t pays_n;
    int64_t deposits, withdrawals;             /* acknowledged */
    int64_t deposits_maybe, withdrawals_maybe; /* unanswered */
};

static int cmp_account(const void *a, const void *b)
{
    return strcmp(((const struct money_account *)a)->name, ((const struct money_account *)b)->name);
}

static struct money_account *find_account(struct money *m, const char *name, size_t len)
{
    struct money_account key = {.line = 0};
    if (len >= sizeof key.name)
        return NULL;
    memcpy(key.name, name, len);
    key.name[len] = '\0';
    return bsearch(&key, m->accounts, m->accounts_n, sizeof key, cmp_account);
}

static int malformed(const struct history_line *l, const char *what)
{
    printf("check: line %u: cannot read %s arguments '%s' (%s)\n", l->line, history_op_name(l->op),
           l->args, what);
    return 2;
}

/* The accounts the history opened: "account [OVERDRAFT cents]". */
static int collect_accounts(struct money *m)
{
    m->accounts = calloc(m->h->lines_n + 1, sizeof *m->accounts);
    if (!m->accounts)
        return -1;
    for (size_t i = 0; i < m->h->lines_n; i++) {
        const struct history_line *l = &m->h->lines[i];
        if (l->op != HISTORY_OPEN || !l->ok)
            continue;
        struct money_account *a = &m->accounts[m->accounts_n];
        const char *p = l->args, *w = NULL;
        size_t n = check_next_word(&p, &w);
        if (n == 0 || n >= sizeof a->name)
            return malformed(l, "no account name");
        memcpy(a->name, w, n);
        a->line = l->line;
        size_t o = check_next_word(&p, &w);
        if (o > 0 &&
            !(o == 9 && memcmp(w, "OVERDRAFT", 9) == 0 && (n = check_next_word(&p, &w)) > 0 &&
              check_word_int(w, n, MONEY_AMOUNT_MAX, &a->overdraft)))
            return malformed(l, "want OVERDRAFT <cents>");
        m->accounts_n++;
    }
    qsort(m->accounts, m->accounts_n, sizeof *m->accounts, cmp_account);
    for (size_t i = 1; i < m->accounts_n; i++)
        if (strcmp(m->accounts[i - 1].name, m->accounts[i].name) == 0)
            return check_violation("account %s opened twice (lines %u and %u): ACCOUNT.OPEN of "
                                   "an existing account must fail",
                                   m->accounts[i].name, m->accounts[i - 1].line,
                                   m->accounts[i].line);
    return 0;
}

static int cmp_named(const void *a, const void *b)
{
    return strcmp(((const struct money_named *)a)->name, ((const struct money_named *)b)->name);
}

static const struct money_named *find_named(const struct money_named *v, size_t n, const char *name,
                                            size_t len)
{
    struct money_named key = {.cents = 0};
    if (len >= sizeof key.name)
        return NULL;
    memcpy(key.name, name, len);
    key.name[len] = '\0';
    return bsearch(&key, v, n, sizeof key, cmp_named);
}

/* The price of every SKU created ("sku qty [LIMIT n] [PRICE p]"; no PRICE: 0). */
static int collect_prices(struct money *m)
{
    m->prices = calloc(m->h->lines_n + 1, sizeof *m->prices);
    if (!m->prices)
        return -1;
    for (size_t i = 0; i < m->h->lines_n; i++) {
        const struct history_line *l = &m->h->lines[i];
        if (l->op != HISTORY_CREATE || !l->ok)
            continue;
        struct money_named *s = &m->prices[m->prices_n];
        const char *p = l->args, *w = NULL;
        size_t n = check_next_word(&p, &w);
        if (n == 0 || n >= sizeof s->name)
            return malformed(l, "no SKU name");
        memcpy(s->name, w, n);
        for (size_t k; (k = check_next_word(&p, &w)) > 0;) {
            if (k == 5 && memcmp(w, "PRICE", 5) == 0 &&
                ((k = check_next_word(&p, &w)) == 0 ||
                 !check_word_int(w, k, MONEY_AMOUNT_MAX, &s->cents)))
                return malformed(l, "want PRICE <cents>");
        }
        m->prices_n++;
    }
    qsort(m->prices, m->prices_n, sizeof *m->prices, cmp_named);
    return 0;
}

/* The total of every acknowledged order: "user ttl sku qty ..." priced by collect_prices. */
static int collect_totals(struct money *m)
{
    m->totals = calloc(m->h->lines_n + 1, sizeof *m->totals);
    if (!m->totals)
        return -1;
    for (size_t i = 0; i < m->h->lines_n; i++) {
        const struct history_line *l = &m->h->lines[i];
        size_t id_len = strlen(l->result);
        if (l->op != HISTORY_PLACE || !l->ok || id_len == 0 || id_len >= CHECK_NAME_BYTES)
            continue;
        struct money_named *o = &m->totals[m->totals_n];
        memcpy(o->name, l->result, id_len);
        const char *p = l->args, *w = NULL;
        size_t user = check_next_word(&p, &w);
        size_t ttl = check_next_word(&p, &w);
        if (user == 0 || ttl == 0)
            return malformed(l, "want a user and a ttl");
        for (size_t n; (n = check_next_word(&p, &w)) > 0;) {
            const char *q = NULL;
            size_t qn = check_next_word(&p, &q);
            int64_t qty = 0;
            if (qn == 0 || !check_word_int(q, qn, MONEY_AMOUNT_MAX, &qty))
                return malformed(l, "want SKU and quantity pairs");
            const struct money_named *s = find_named(m->prices, m->prices_n, w, n);
            if (!s || o->cents < 0)
                o->cents = -1; /* a SKU of another history: its price is not known here */
            else if (__builtin_mul_overflow(qty, s->cents, &qty) ||
                     __builtin_add_overflow(o->cents, qty, &o->cents) ||
                     o->cents > MONEY_AMOUNT_MAX)
                return malformed(l, "an order's total past what a history of ours holds");
        }
        m->totals_n++;
    }
    qsort(m->totals, m->totals_n, sizeof *m->totals, cmp_named);
    /* A retried placement names its order twice, with the same items. */
    size_t out = 0;
    for (size_t i = 0; i < m->totals_n; i++)
        if (out == 0 || strcmp(m->totals[out - 1].name, m->totals[i].name) != 0)
            m->totals[out++] = m->totals[i];
    m->totals_n = out;
    return 0;
}

static int cmp_pay(const void *a, const void *b)
{
    const struct money_pay *x = a, *y = b;
    int c = strcmp(x->order, y->order);
    return c ? c : (int)y->l->ok - (int)x->l->ok;
}

/* Every payment by ORDER.PAY that may have happened (answered ok, or unanswered). */
static int collect_pays(struct money *m)
{
    m->pays = calloc(m->h->lines_n + 1, sizeof *m->pays);
    if (!m->pays)
        return -1;
    for (size_t i = 0; i < m->h->lines_n; i++) {
        const struct history_line *l = &m->h->lines[i];
        if (l->op != HISTORY_PAY || (l->acked && !l->ok))
            continue;
        const char *p = l->args, *w = NULL;
        size_t n = check_next_word(&p, &w);
        if (n == 0 || n >= CHECK_NAME_BYTES)
            return malformed(l, "want an order, a buyer and a merchant");
        struct money_pay *y = &m->pays[m->pays_n++];
        y->l = l;
        memcpy(y->order, w, n);
    }
    qsort(m->pays, m->pays_n, sizeof *m->pays, cmp_pay);
    return 0;
}

/* The payment of an order (the answered one first), or NULL: not paid by ORDER.PAY. */
static const struct money_pay *find_pay(const struct money *m, const char *order, size_t len)
{
    if (len >= CHECK_NAME_BYTES)
        return NULL;
    size_t lo = 0, hi = m->pays_n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strncmp(m->pays[mid].order, order, len);
        if (c == 0 && m->pays[mid].order[len] != '\0')
            c = 1;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == m->pays_n || strncmp(m->pays[lo].order, order, len) != 0 ||
        m->pays[lo].order[len] != '\0')
        return NULL;
    return &m->pays[lo];
}

/* Adds an effect of delta cents to a's range: always when it happened, to one side when it may
 * have. */
static void effect(struct money_account *a, int64_t delta, bool happened)
{
    if (!a)
        return; /* an account this history did not open: not ours to account */
    if (happened || delta < 0)
        a->lo += delta;
    if (happened || delta > 0)
        a->hi += delta;
}

static int cmp_line_rid(const void *a, const void *b)
{
    const struct history_line *x = *(const struct history_line *const *)a;
    const struct history_line *y = *(const struct history_line *const *)b;
    int c = strcmp(x->rid, y->rid);
    return c ? c : (int)y->acked - (int)x->acked; /* an answered copy first */
}

/* ORDER.PAY "order buyer merchant", or ORDER.REFUND "order RESTOCK|WRITEOFF" of an order paid
 * by ORDER.PAY: the order's total from one account to the other. */
static int apply_order(struct money *m, const struct history_line *l)
{
    const char *p = l->args, *order = NULL, *buyer = NULL, *merchant = NULL;
    size_t on = check_next_word(&p, &order);
    size_t bn = 0, mn = 0;
    if (on == 0)
        return malformed(l, "want an order");
    if (l->acked && !l->ok)
        return 0; /* refused: nothing moved */
    if (l->op == HISTORY_PAY) {
        bn = check_next_word(&p, &buyer);
        mn = check_next_word(&p, &merchant);
        if (bn == 0 || mn == 0)
            return malformed(l, "want an order, a buyer and a merchant");
    } else {
        const struct money_pay *y = find_pay(m, order, on);
        if (!y)
            return 0; /* not paid by ORDER.PAY: its refund moves no money */
        const char *q = y->l->args, *w = NULL;
        (void)check_next_word(&q, &w);
        bn = check_next_word(&q, &buyer);
        mn = check_next_word(&q, &merchant);
    }
    const struct money_named *o = find_named(m->totals, m->totals_n, order, on);
    if (!o)
        return 0; /* an order this history did not place: not ours to account */
    if (o->cents < 0)
        return malformed(l, "an order of SKUs this history did not create: its total is unknown");
    int64_t t = l->op == HISTORY_PAY ? o->cents : -o->cents;
    effect(find_account(m, buyer, bn), -t, l->ok);
    effect(find_account(m, merchant, mn), t, l->ok);
    return 0;
}

/* One deposit, withdrawal or transfer: "account cents" or "from to cents". */
static int apply(struct money *m, const struct history_line *l)
{
    if (l->op == HISTORY_PAY || l->op == HISTORY_REFUND)
        return apply_order(m, l);
    const char *p = l->args, *w1 = NULL, *w2 = NULL, *w3 = NULL;
    size_t n1 = check_next_word(&p, &w1), n2 = check_next_word(&p, &w2);
    size_t n3 = l->op == HISTORY_TRANSFER ? check_next_word(&p, &w3) : n2;
    const char *amount_word = l->op == HISTORY_TRANSFER ? w3 : w2;
    int64_t amount = 0;
    if (n1 == 0 || n3 == 0 || !check_word_int(amount_word, n3, MONEY_AMOUNT_MAX, &amount))
        return malformed(l, "want an account and an amount in cents");
    if (l->acked && !l->ok)
        return 0; /* refused (NOFUNDS, NOTFOUND ...): nothing changed */
    bool happened = l->ok;
    struct money_account *a = find_account(m, w1, n1);
    if (l->op == HISTORY_TRANSFER) {
        effect(a, -amount, happened);
        effect(find_account(m, w2, n2), amount, happened);
        return 0;
    }
    bool deposit = l->op == HISTORY_DEPOSIT;
    effect(a, deposit ? amount : -amount, happened);
    if (!a)
        return 0;
    int64_t *sum = deposit ? (happened ? &m->deposits : &m->deposits_maybe)
                           : (happened ? &m->withdrawals : &m->withdrawals_maybe);
    *sum += amount;
    return 0;
}

static int apply_all(struct money *m)
{
    const struct history_line **ops =
        malloc((m->h->lines_n + 1) * sizeof(const struct history_line *));
    if (!ops)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < m->h->lines_n; i++) {
        uint8_t op = m->h->lines[i].op;
        if (op == HISTORY_DEPOSIT || op == HISTORY_WITHDRAW || op == HISTORY_TRANSFER ||
            op == HISTORY_PAY || op == HISTORY_REFUND)
            ops[n++] = &m->h->lines[i];
    }
    qsort(ops, n, sizeof(const struct history_line *), cmp_line_rid);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (i == 0 || strcmp(ops[i - 1]->rid, ops[i]->rid) != 0)
            rc = apply(m, ops[i]);
    free(ops);
    return rc;
}

/* ACCOUNT.GET of every account into its balance and overdraft. */
static int read_balances(struct money *m, struct rc_conn *c)
{
    int bad = 0; /* a violation: the chunk's other replies are still read, so that the
                    connection can be used again (cmd_check.c reads again while work settles) */
    for (size_t base = 0; bad == 0 && base < m->accounts_n; base += CHECK_CHUNK) {
        size_t n = m->accounts_n - base < CHECK_CHUNK ? m->accounts_n - base : CHECK_CHUNK;
        for (size_t i = 0; i < n; i++) {
            const char *argv[] = {"ACCOUNT.GET", m->accounts[base + i].name};
            rc_command(c, 2, argv);
        }
        for (size_t i = 0; i < n; i++) {
            struct money_account *a = &m->accounts[base + i];
            if (rc_wait(c, CHECK_TIMEOUT_MS) != 0 || check_node_failed(c, "ACCOUNT.GET"))
                return -1;
            if (bad)
                continue;
            if (!rc_field_int(c, "balance_cents", &a->balance) ||
                !rc_field_int(c, "overdraft_cents", &a->overdraft_node))
                bad = check_violation("account %s opened (line %u) is not on the node", a->name,
                                      a->line);
            else if (a->balance < -MONEY_AMOUNT_MAX * 1024 || a->balance > MONEY_AMOUNT_MAX * 1024)
                bad = check_violation("account %s holds %lld cents, more than any history of "
                                      "ours can move",
                                      a->name, (long long)a->balance);
        }
    }
    return bad;
}

/* The total first, so that money made or lost is named as such; then every account. */
static int prove_money(struct money *m, struct rc_conn *c, struct check_summary *s)
{
    int rc = read_balances(m, c);
    if (rc != 0)
        return rc;
    int64_t sum = 0;
    for (size_t i = 0; i < m->accounts_n; i++)
        sum += m->accounts[i].balance;
    s->accounts_n = m->accounts_n;
    s->balances_cents = sum;
    int64_t lo = m->deposits - m->withdrawals - m->withdrawals_maybe;
    int64_t hi = m->deposits + m->deposits_maybe - m->withdrawals;
    if (sum < lo || sum > hi)
        return check_violation("money not conserved: the %zu accounts hold %lld cents in total, "
                               "deposits - withdrawals acknowledged = %lld - %lld (unanswered: "
                               "deposits %lld, withdrawals %lld)",
                               m->accounts_n, (long long)sum, (long long)m->deposits,
                               (long long)m->withdrawals, (long long)m->deposits_maybe,
                               (long long)m->withdrawals_maybe);
    for (size_t i = 0; i < m->accounts_n; i++) {
        const struct money_account *a = &m->accounts[i];
        if (a->balance < a->lo || a->balance > a->hi)
            return check_violation("account %s holds %lld cents, but its acknowledged "
                                   "operations allow only %lld..%lld (opened line %u)",
                                   a->name, (long long)a->balance, (long long)a->lo,
                                   (long long)a->hi, a->line);
        if (a->overdraft_node != a->overdraft || a->balance < -a->overdraft)
            return check_violation("account %s is below zero beyond its overdraft: balance "
                                   "%lld, overdraft %lld on the node, opened with %lld (line %u)",
                                   a->name, (long long)a->balance, (long long)a->overdraft_node,
                                   (long long)a->overdraft, a->line);
    }
    return 0;
}

int check_money(const struct history *h, struct rc_conn *c, struct check_summary *s)
{
    struct money m = {.h = h};
    int rc = collect_accounts(&m);
    rc = rc ? rc : collect_prices(&m);
    rc = rc ? rc : collect_totals(&m);
    rc = rc ? rc : collect_pays(&m);
    rc = rc ? rc : apply_all(&m);
    rc = rc ? rc : prove_money(&m, c, s);
    free(m.accounts);
    free(m.prices);
    free(m.totals);
    free(m.pays);
    return rc;
}
