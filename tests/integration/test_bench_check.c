/*
 * `shardmart bench` and `shardmart check` against a real node: a flash sale with a history is
 * proven correct by check, sells exactly its stock, and doctored copies of the history (an order
 * that does not exist, an order id acknowledged twice, a request id with two results, a missing
 * acknowledgement, a broken limit) are each caught with the violation named. The locks and mixed
 * workloads are proven too, and doctored copies of their histories (a hold never released, a
 * token granted twice or going back, money made, an account's balance off, an overdraft
 * changed) are each caught. So is cart --cross, whose orders, payments, refunds and transfers
 * cross partitions, with doctored copies (a refund left out, forged or recorded as a restock,
 * a payment's accounts swapped). Bad flags and malformed histories exit 2.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../support/node_proc.h"

static struct node_proc node;
static char port[16];
static char out[1 << 16];

#define LINES_MAX 4096

/* A history in memory: its lines, each without the newline. */
struct lines {
    char *text;
    char *line[LINES_MAX];
    size_t n;
};

static void start(void)
{
    cr_assert_eq(node_proc_start(&node, NULL, NULL), 0, "node did not start");
    snprintf(port, sizeof port, "%d", node.resp_port);
}

static void stop(void)
{
    cr_assert_eq(node_proc_stop(&node, false), 0);
}

static void path_of(const char *name, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", node.dir, name);
}

static int check(const char *history)
{
    const char *argv[] = {"check", history, "--port", port, NULL};
    return node_proc_run(argv, out, sizeof out);
}

static void load(const char *path, struct lines *l)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    l->text = calloc(1, 1 << 20);
    size_t len = fread(l->text, 1, (1 << 20) - 1, f);
    fclose(f);
    cr_assert(len < (1 << 20) - 1, "history too large for the test");
    l->n = 0;
    for (char *save = NULL, *s = strtok_r(l->text, "\n", &save); s;
         s = strtok_r(NULL, "\n", &save)) {
        cr_assert(l->n < LINES_MAX);
        l->line[l->n++] = s;
    }
}

/* Writes lines to name, with line `replace` (if < n) swapped for `with`, and `extra` appended. */
static void write_doctored(const char *name, const struct lines *l, size_t replace,
                           const char *with, const char *extra, char *path, size_t cap)
{
    path_of(name, path, cap);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    for (size_t i = 0; i < l->n; i++)
        if (i != replace || with)
            fprintf(f, "%s\n", i == replace ? with : l->line[i]);
    if (extra)
        fprintf(f, "%s\n", extra);
    fclose(f);
}

/* The index of the k-th line whose op and outcome match (k from 0). */
static size_t find_line(const struct lines *l, const char *op, const char *outcome, int k)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\t%s\t", op);
    for (size_t i = 0; i < l->n; i++) {
        if (l->line[i][0] == '#' || !strstr(l->line[i], pat))
            continue;
        char copy[512];
        snprintf(copy, sizeof copy, "%s", l->line[i]);
        char *save = NULL, *f = strtok_r(copy, "\t", &save);
        for (int j = 0; j < 5 && f; j++)
            f = strtok_r(NULL, "\t", &save);
        if (f && strcmp(f, outcome) == 0 && k-- == 0)
            return i;
    }
    cr_assert_fail("no %s %s line among %zu lines", op, outcome, l->n);
    return 0;
}

/* Field i (0-based) of a history line, copied. */
static void field(const char *line, int i, char *s, size_t cap)
{
    char copy[512];
    snprintf(copy, sizeof copy, "%s", line);
    char *save = NULL, *f = strtok_r(copy, "\t", &save);
    for (int j = 0; j < i && f; j++)
        f = strtok_r(NULL, "\t", &save);
    cr_assert_not_null(f);
    snprintf(s, cap, "%s", f);
}

/* Expects check of the doctored history to exit 1 naming `what`. */
static void expect_violation(const char *name, const struct lines *l, size_t replace,
                             const char *with, const char *extra, const char *what)
{
    char path[512];
    write_doctored(name, l, replace, with, extra, path, sizeof path);
    cr_assert_eq(check(path), 1, "%s: %s", name, out);
    cr_assert(strstr(out, "VIOLATION") && strstr(out, what), "%s: got %s", name, out);
}

/* A history line from its eight fields. */
static void join(char *s, size_t cap, const char *const f[8])
{
    int n = snprintf(s, cap, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s", f[0], f[1], f[2], f[3], f[4], f[5],
                     f[6], f[7]);
    cr_assert(n > 0 && (size_t)n < cap, "line too long");
}

/* Each doctored copy of a good history breaks one property. */
static void doctored(const char *history)
{
    struct lines l;
    load(history, &l);
    size_t create = find_line(&l, "STOCK.CREATE", "ok", 0);
    size_t first = find_line(&l, "ORDER.PLACE", "ok", 0);
    size_t second = find_line(&l, "ORDER.PLACE", "ok", 1);
    char sku[128], line[2048], f[8][160];
    field(l.line[create], 7, sku, sizeof sku);
    sku[strcspn(sku, " ")] = '\0';
    for (int i = 0; i < 8; i++)
        field(l.line[first], i, f[i], sizeof f[i]);
    const char *v[8] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};

    char args[300];
    snprintf(args, sizeof args, "u1 600000 %s 1", sku);
    const char *ghost[8] = {"1",  "ORDER.PLACE",           "ghost-1", "0", "0",
                            "ok", "0000-0123456789abcdef", args};
    join(line, sizeof line, ghost);
    expect_violation("ghost.tsv", &l, l.n, NULL, line, "not found on the node");

    v[2] = "another-rid"; /* the same order id acknowledged for a second request */
    join(line, sizeof line, v);
    expect_violation("twice.tsv", &l, l.n, NULL, line, "acknowledged for two requests");

    v[2] = f[2];
    v[5] = "SOLDOUT"; /* the same request id answered twice, differently */
    v[6] = "-";
    join(line, sizeof line, v);
    expect_violation("two-results.tsv", &l, l.n, NULL, line, "two different results");

    /* An acknowledged order left out: the node holds a unit the history cannot account for. */
    expect_violation("missing.tsv", &l, first, NULL, NULL, "reserved + sold differs");

    /* Two live orders of one user for a LIMIT 1 SKU. */
    char user[64], rest[300];
    field(l.line[first], 7, user, sizeof user);
    user[strcspn(user, " ")] = '\0';
    const char *r[8];
    for (int i = 0; i < 8; i++) {
        field(l.line[second], i, f[i], sizeof f[i]);
        r[i] = f[i];
    }
    snprintf(rest, sizeof rest, "%s%s", user, strchr(f[7], ' '));
    r[7] = rest;
    join(line, sizeof line, r);
    expect_violation("limit.tsv", &l, second, line, NULL, "LIMIT");

    char path[512];
    write_doctored("malformed.tsv", &l, l.n, NULL, "1\tORDER.PLACE\tonly-three", path, sizeof path);
    cr_assert_eq(check(path), 2, "%s", out);
    char want[64];
    snprintf(want, sizeof want, ":%zu: malformed history line", l.n + 1);
    cr_assert(strstr(out, want) != NULL, "want %s, got %s", want, out);
    free(l.text);
}

Test(bench_check, flash_sale_sells_exactly_its_stock_and_check_proves_it)
{
    start();
    char history[512];
    path_of("flash.tsv", history, sizeof history);
    const char *bench[] = {"bench",     "flash-sale", "--port", port,         "--stock",
                           "200",       "--clients",  "4",      "--requests", "2000",
                           "--history", history,      NULL};
    cr_assert_eq(node_proc_run(bench, out, sizeof out), 0, "%s", out);
    long long stocked = -1, available = -1, reserved = -1, sold = -1;
    const char *s = strstr(out, "stock (1 SKUs):");
    cr_assert_not_null(s, "%s", out);
    cr_assert_eq(sscanf(s, "stock (1 SKUs): stocked %lld available %lld reserved %lld sold %lld",
                        &stocked, &available, &reserved, &sold),
                 4);
    cr_assert_eq(reserved + sold, 200, "%s", out);
    cr_assert_eq(available, 0);
    cr_assert(strstr(out, "ok 200 ") != NULL, "%s", out);
    cr_assert(strstr(out, "SOLDOUT ") != NULL, "%s", out);
    cr_assert_eq(check(history), 0, "%s", out);
    cr_assert(strstr(out, "check: OK: 2001 operations, 200 acknowledged orders") != NULL, "%s",
              out);
    doctored(history);
    stop();
}

Test(bench_check, cart_with_payments_and_cancels_is_proven)
{
    start();
    char history[512];
    path_of("cart.tsv", history, sizeof history);
    const char *bench[] = {"bench",     "cart",       "--port", port,         "--clients",
                           "4",         "--pipeline", "4",      "--requests", "1200",
                           "--history", history,      "--json", NULL};
    cr_assert_eq(node_proc_run(bench, out, sizeof out), 0, "%s", out);
    cr_assert(strstr(out, "\"workload\":\"cart\"") != NULL, "%s", out);
    cr_assert(strstr(out, "\"ops\":1200") != NULL, "%s", out);
    /* Every order was placed (the SKUs share the partition the node reported), none refused. */
    cr_assert(strstr(out, "\"outcomes\":{\"ok\":1200}") != NULL, "%s", out);
    static char bench_out[sizeof out];
    memcpy(bench_out, out, sizeof out);
    cr_assert_eq(check(history), 0, "%s", out);
    cr_log_info("bench: %s\ncheck: %s", bench_out, out);
    struct lines l;
    load(history, &l);
    /* Follow-ups happened and were acknowledged. */
    (void)find_line(&l, "ORDER.PAYEXT", "ok", 0);
    (void)find_line(&l, "ORDER.CANCEL", "ok", 0);
    free(l.text);
    stop();
}

/* Runs bench with args and check on its history; both must succeed. */
static void run_and_prove(const char *const *bench, const char *history)
{
    cr_assert_eq(node_proc_run(bench, out, sizeof out), 0, "%s", out);
    static char bench_out[sizeof out];
    memcpy(bench_out, out, sizeof out);
    cr_assert_eq(check(history), 0, "%s", out);
    cr_log_info("bench: %s\ncheck: %s", bench_out, out);
}

/* The word i (0-based) of a history line's arguments, copied. */
static void arg(const char *line, int i, char *s, size_t cap)
{
    char args[512];
    field(line, 7, args, sizeof args);
    char *save = NULL, *w = strtok_r(args, " ", &save);
    for (int j = 0; j < i && w; j++)
        w = strtok_r(NULL, " ", &save);
    cr_assert_not_null(w);
    snprintf(s, cap, "%s", w);
}

Test(bench_check, locks_are_proven_and_broken_lock_histories_are_caught)
{
    start();
    char history[512];
    path_of("locks.tsv", history, sizeof history);
    const char *bench[] = {"bench",     "locks",   "--port", port,         "--clients",
                           "4",         "--locks", "4",      "--requests", "1500",
                           "--history", history,   NULL};
    run_and_prove(bench, history);
    cr_assert(strstr(out, "lock grants on 4 locks, tokens increasing") != NULL, "%s", out);
    struct lines l;
    load(history, &l);
    /* The first acquire that was granted: a try can be answered ok yet NOT_GRANTED when
     * another client holds the lock, so the first ok line is not always a grant. */
    size_t grant = 0;
    for (int k = 0;; k++) {
        char token[64];
        grant = find_line(&l, "LOCK.ACQUIRE", "ok", k);
        field(l.line[grant], 6, token, sizeof token);
        if (strcmp(token, "NOT_GRANTED") != 0)
            break;
    }
    size_t release = find_line(&l, "LOCK.RELEASE", "ok", 0);
    (void)find_line(&l, "SESSION.OPEN", "ok", 0);

    /* The first release left out: its lock was granted again while (as far as the history
     * knows) its holder never let go. */
    expect_violation("unreleased.tsv", &l, release, NULL, NULL, "two holders at once");

    /* A grant's token given to a second request. */
    char f[8][160], line[2048];
    for (int i = 0; i < 8; i++)
        field(l.line[grant], i, f[i], sizeof f[i]);
    cr_assert(strcmp(f[6], "NOT_GRANTED") != 0, "the first acquire was not granted");
    const char *v[8] = {f[0], "LOCK.ACQUIRE", "forged-1", f[3], f[4], "ok", f[6], f[7]};
    join(line, sizeof line, v);
    expect_violation("twice.tsv", &l, l.n, NULL, line, "granted twice");

    /* Token 1, asked for after every other grant had been answered, and released at once. */
    char session[128], lock[128], both[4096], rel[1024], acq[1024];
    arg(l.line[grant], 0, session, sizeof session);
    arg(l.line[grant], 1, lock, sizeof lock);
    snprintf(acq, sizeof acq, "%s %s 999999 LEASE 600000", session, lock);
    const char *late[8] = {"1",         "LOCK.ACQUIRE", "forged-2", "999000000",
                           "999000001", "ok",           "1",        acq};
    join(line, sizeof line, late);
    snprintf(rel, sizeof rel,
             "1\tLOCK.RELEASE\tforged-3\t999000002\t999000003\tok\t0\t%s %s "
             "999999",
             session, lock);
    snprintf(both, sizeof both, "%s\n%s", line, rel);
    expect_violation("backwards.tsv", &l, l.n, NULL, both, "tokens went back");
    free(l.text);
    stop();
}

Test(bench_check, mixed_money_and_locks_are_proven_and_made_money_is_caught)
{
    start();
    char history[512];
    path_of("mixed.tsv", history, sizeof history);
    const char *bench[] = {"bench",     "mixed",      "--port", port,         "--clients",
                           "4",         "--pipeline", "2",      "--requests", "2000",
                           "--history", history,      NULL};
    run_and_prove(bench, history);
    cr_assert(strstr(out, "16 accounts hold") != NULL, "%s", out);
    cr_assert(strstr(out, " 0 lock grants") == NULL, "%s", out);
    struct lines l;
    load(history, &l);
    size_t deposit = find_line(&l, "ACCOUNT.DEPOSIT", "ok", 0);
    (void)find_line(&l, "ACCOUNT.TRANSFER", "ok", 0);
    (void)find_line(&l, "ACCOUNT.WITHDRAW", "ok", 0);
    (void)find_line(&l, "ORDER.PLACE", "ok", 0);
    (void)find_line(&l, "LOCK.RELEASE", "ok", 0);
    char a[128], b[128], line[2048], args[512];
    arg(l.line[find_line(&l, "ACCOUNT.OPEN", "ok", 0)], 0, a, sizeof a);
    arg(l.line[find_line(&l, "ACCOUNT.OPEN", "ok", 1)], 0, b, sizeof b);

    /* A deposit the node never saw: the books show money that is not there. */
    snprintf(args, sizeof args, "%s 7", a);
    const char *made[8] = {"1", "ACCOUNT.DEPOSIT", "forged-1", "5", "6", "ok", "7", args};
    join(line, sizeof line, made);
    expect_violation("made.tsv", &l, l.n, NULL, line, "money not conserved");

    /* An acknowledged deposit left out: the same, the other way. */
    expect_violation("lost.tsv", &l, deposit, NULL, NULL, "money not conserved");

    /* A transfer the node never saw: the total holds, the two accounts do not. */
    snprintf(args, sizeof args, "%s %s 7", a, b);
    const char *moved[8] = {"1", "ACCOUNT.TRANSFER", "forged-2", "5", "6", "ok", "OK", args};
    join(line, sizeof line, moved);
    expect_violation("moved.tsv", &l, l.n, NULL, line, "operations allow only");

    /* An account opened with an overdraft, recorded as opened without one. */
    size_t od = 0;
    for (int k = 0; k < 16; k++) {
        od = find_line(&l, "ACCOUNT.OPEN", "ok", k);
        if (strstr(l.line[od], "OVERDRAFT"))
            break;
    }
    cr_assert(strstr(l.line[od], "OVERDRAFT") != NULL);
    char f[8][160];
    for (int i = 0; i < 8; i++)
        field(l.line[od], i, f[i], sizeof f[i]);
    arg(l.line[od], 0, a, sizeof a);
    const char *plain[8] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], a};
    join(line, sizeof line, plain);
    expect_violation("overdraft.tsv", &l, od, line, NULL, "beyond its overdraft");
    free(l.text);
    stop();
}

/* The first RESTOCK or WRITEOFF refund answered ok, and the order of the first payment
 * answered ok that no refund names. */
static size_t find_refund(const struct lines *l, const char *how)
{
    for (int k = 0;; k++) {
        size_t i = find_line(l, "ORDER.REFUND", "ok", k);
        if (strstr(l->line[i], how))
            return i;
    }
}

static size_t find_unrefunded_payment(const struct lines *l)
{
    for (int k = 0;; k++) {
        size_t i = find_line(l, "ORDER.PAY", "ok", k);
        char order[64];
        arg(l->line[i], 0, order, sizeof order);
        bool refunded = false;
        for (size_t j = 0; j < l->n && !refunded; j++)
            refunded = strstr(l->line[j], "\tORDER.REFUND\t") && strstr(l->line[j], order);
        if (!refunded)
            return i;
    }
}

Test(bench_check, cart_across_partitions_with_payments_refunds_and_limits_is_proven)
{
    start();
    char history[512];
    path_of("cross.tsv", history, sizeof history);
    /* SKUs (LIMIT 2 per user) and accounts spread over the node's 256 partitions: nearly every
     * order is a cross-partition transaction, and 20 users run into their limits. */
    const char *bench[] = {"bench", "cart",       "--cross", "--port",    port,    "--users",
                           "20",    "--accounts", "8",       "--clients", "4",     "--pipeline",
                           "2",     "--requests", "2000",    "--history", history, NULL};
    run_and_prove(bench, history);
    cr_assert(strstr(out, "8 accounts hold") != NULL, "%s", out);
    struct lines l;
    load(history, &l);
    (void)find_line(&l, "ORDER.PLACE", "LIMIT", 0);
    (void)find_line(&l, "ACCOUNT.TRANSFER", "ok", 0);
    (void)find_line(&l, "ORDER.CANCEL", "ok", 0);
    size_t restock = find_refund(&l, "RESTOCK"), writeoff = find_refund(&l, "WRITEOFF");
    size_t pay = find_unrefunded_payment(&l);
    char order[64], a[64], b[64], line[2048], args[512], f[8][160];
    arg(l.line[pay], 0, order, sizeof order);
    arg(l.line[pay], 1, a, sizeof a);
    arg(l.line[pay], 2, b, sizeof b);

    /* A refund left out: the buyer holds money its operations do not explain. */
    expect_violation("refund-lost.tsv", &l, restock, NULL, NULL, "operations allow only");

    /* A write-off recorded as a restock: stocked is short of what the history says. */
    for (int i = 0; i < 8; i++)
        field(l.line[writeoff], i, f[i], sizeof f[i]);
    char *w = strstr(f[7], "WRITEOFF");
    cr_assert_not_null(w);
    memcpy(w, "RESTOCK", 8);
    const char *restocked[8] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]};
    join(line, sizeof line, restocked);
    expect_violation("writeoff.tsv", &l, writeoff, line, NULL, "refunds wrote off");

    /* A refund the node never saw: the order is still paid. */
    snprintf(args, sizeof args, "%s RESTOCK", order);
    const char *forged[8] = {"1", "ORDER.REFUND", "forged-1", "5", "6", "ok", "OK", args};
    join(line, sizeof line, forged);
    expect_violation("refund-forged.tsv", &l, l.n, NULL, line, "after an acknowledged");

    /* A payment recorded with buyer and merchant swapped. */
    for (int i = 0; i < 8; i++)
        field(l.line[pay], i, f[i], sizeof f[i]);
    snprintf(args, sizeof args, "%s %s %s", order, b, a);
    const char *swapped[8] = {f[0], f[1], f[2], f[3], f[4], f[5], f[6], args};
    join(line, sizeof line, swapped);
    expect_violation("pay-swapped.tsv", &l, pay, line, NULL, "operations allow only");
    free(l.text);
    stop();
}

Test(bench_check, usage_errors_exit_2)
{
    const char *const cases[][8] = {
        {"bench", NULL},
        {"bench", "auction", NULL},
        {"bench", "flash-sale", "--clients", "0", NULL},
        {"bench", "flash-sale", "--pipeline", "99999", NULL},
        {"bench", "spread", "--requests", "ten", NULL},
        {"bench", "cart", "--frobnicate", NULL},
        {"bench", "locks", "--locks", "0", NULL},
        {"bench", "mixed", "--accounts", "100000", NULL},
        {"bench", "flash-sale", "--port", NULL},
        {"check", NULL},
        {"check", "/nonexistent/history.tsv", NULL},
        {"check", "x.tsv", "--port", "0", NULL},
        {"check", "x.tsv", "--verbose", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cr_assert_eq(node_proc_run(cases[i], out, sizeof out), 2, "case %zu: %s", i, out);
        cr_assert(strstr(out, "shardmart ") != NULL || strstr(out, "usage:") != NULL,
                  "case %zu: %s", i, out);
    }
}

Test(bench_check, a_node_that_is_not_there)
{
    /* Port 1 on loopback: nothing listens. bench says so and exits 1; check exits 2 (it could
     * not prove anything, which is not a violation). */
    const char *bench[] = {"bench", "flash-sale", "--port", "1", "--requests", "10", NULL};
    cr_assert_eq(node_proc_run(bench, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "cannot connect") != NULL, "%s", out);
}

Test(bench_check, a_node_that_cannot_answer_proves_nothing)
{
    /* Every command of an unauthenticated client is refused (-NOAUTH): check exits 2, naming the
     * reply, rather than calling the missing order a violation. */
    const char *flags[] = {"--requirepass", "secret", NULL};
    cr_assert_eq(node_proc_start(&node, NULL, flags), 0, "node did not start");
    snprintf(port, sizeof port, "%d", node.resp_port);
    char path[512];
    path_of("hand.tsv", path, sizeof path);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "# written by hand\n0\tSTOCK.CREATE\tr1\t0\t0\tok\tOK\tsku1 5 LIMIT 1\n"
               "1\tORDER.PLACE\tr2\t10\t20\tok\t0000-0123456789abcdef\tu1 600000 sku1 1\n");
    fclose(f);
    cr_assert_eq(check(path), 2, "%s", out);
    cr_assert(strstr(out, "answered ORDER.GET with 'NOAUTH") != NULL, "%s", out);
    const char *bench[] = {"bench", "flash-sale", "--port", port, "--requests", "10", NULL};
    cr_assert_eq(node_proc_run(bench, out, sizeof out), 1, "%s", out);
    cr_assert(strstr(out, "NOAUTH") != NULL, "%s", out);
    stop();
}
