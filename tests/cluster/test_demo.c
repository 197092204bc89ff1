/*
 * `shardmart demo` end to end: it starts etcd and three nodes itself, kills the sold SKU's
 * primary midway through the sale, and must report exactly the stock sold, a passing check and
 * the killed node back in the in-sync set; bad arguments are a usage error.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "../support/node_proc.h"

/* cppcheck-suppress unknownMacro */
TestSuite(cluster_demo, .timeout = 120);

Test(cluster_demo, a_flash_sale_sells_exactly_its_stock_through_a_primary_kill)
{
    static char out[65536];
    const char *const argv[] = {"demo", "--stock", "600", "--rate", "1000", NULL};
    int status = node_proc_run(argv, out, sizeof out);
    cr_assert_eq(status, 0, "%s", out);
    cr_assert_not_null(strstr(out, "OK: 600 units, 600 sold through a primary's kill -9, exactly "
                                   "the stock, check passed"),
                       "%s", out);
    cr_assert_not_null(strstr(out, "outcomes: ok 600 SOLDOUT 300"), "%s", out);
    cr_assert_not_null(strstr(out, " is the new primary (epoch "), "%s", out);
    cr_assert_not_null(strstr(out, "caught up and back in the partition's in-sync set"), "%s", out);
    cr_assert_not_null(strstr(out, "check: OK:"), "%s", out);
}

Test(cluster_demo, bad_arguments_are_a_usage_error)
{
    static char out[8192];
    const char *const bad[] = {"demo", "--stock", "5", NULL};
    cr_assert_eq(node_proc_run(bad, out, sizeof out), 2, "%s", out);
    cr_assert_not_null(strstr(out, "bad argument '--stock'"), "%s", out);
    const char *const unknown[] = {"demo", "--frobnicate", NULL};
    cr_assert_eq(node_proc_run(unknown, out, sizeof out), 2, "%s", out);
}
