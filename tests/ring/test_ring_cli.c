/*
 * `shardmart ring` end to end: runs the binary CTest points at (SHARDMART_BIN), parses its --json
 * object with jansson and checks the placement targets on it, and checks that bad flags give one
 * line on stderr and exit status 2. In a build without the cli layer (SHARDMART_ONLY=ring) there
 * is no binary: the tests then report themselves skipped, by name, rather than pass.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *shardmart_bin(void)
{
    const char *bin = getenv("SHARDMART_BIN");
    if (!bin || access(bin, X_OK) != 0)
        cr_skip_test("no shardmart binary (SHARDMART_BIN); build the cli layer to run this");
    return bin;
}

/* Runs `bin ring <args>` and returns its exit status; its stdout (or, with want_stderr, its
 * stderr) goes to out. */
static int run_ring(const char *args, bool want_stderr, char *out, size_t out_max)
{
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s ring %s %s", shardmart_bin(), args,
             want_stderr ? "2>&1 >/dev/null" : "2>/dev/null");
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    size_t n = fread(out, 1, out_max - 1, f);
    out[n] = 0;
    int status = pclose(f);
    cr_assert(WIFEXITED(status), "%s did not exit", cmd);
    return WEXITSTATUS(status);
}

static double num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    cr_assert_not_null(v, "key %s missing", key);
    cr_assert(json_is_number(v), "key %s not a number", key);
    return json_number_value(v);
}

static json_t *run_json(const char *args)
{
    static char out[65536];
    cr_assert_eq(run_ring(args, false, out, sizeof(out)), 0, "ring %s failed", args);
    json_error_t error;
    json_t *root = json_loads(out, 0, &error);
    cr_assert_not_null(root, "bad JSON (%s): %s", error.text, out);
    cr_assert(json_is_object(root));
    return root;
}

/* The sample cluster of `make run`: every key the issue names, and the targets on them. */
Test(ring_cli, json_report_of_sample_cluster)
{
    json_t *j = run_json("--nodes 10 --zones 3 --partitions 256 --replicas 3 --add 1 --remove 1 "
                         "--json");
    cr_assert_eq(num(j, "nodes"), 10);
    cr_assert_eq(num(j, "partitions"), 256);
    cr_assert_eq(num(j, "replicas"), 3);
    cr_assert_float_eq(num(j, "epsilon"), 0.05, 1e-9);
    double ring = num(j, "ring_max_over_mean"), placed = num(j, "placement_max_over_mean");
    cr_assert_leq(placed, 1.05 + 1e-9, "fair share 76.8 >= 20, so max/mean <= 1.05");
    cr_assert_gt(ring, placed, "the plain ring is less balanced");
    cr_assert_gt(num(j, "ideal_add"), 0);
    cr_assert_leq(num(j, "moved_add"), 1.10 * num(j, "ideal_add"));
    cr_assert_geq(num(j, "moved_remove"), num(j, "ideal_remove"));
    cr_assert_leq(num(j, "moved_remove"), 1.10 * num(j, "ideal_remove"));
    cr_assert_eq(num(j, "staying_moves_add"), 0);
    cr_assert_eq(num(j, "staying_moves_remove"), 0);
    cr_assert_eq(num(j, "zones_violations"), 0);
    cr_assert_eq(num(j, "placement_over_cap"), 0);
    json_decref(j);
}

/* A larger, weighted cluster, several nodes added and removed at once. */
Test(ring_cli, json_report_weighted_many_changes)
{
    char args[512];
    int len = snprintf(args, sizeof(args),
                       "--nodes 40 --partitions 4096 --replicas 2 --add 3 "
                       "--remove 4 --epsilon 0.1 --json --weights ");
    for (int i = 0; i < 40; i++)
        len += snprintf(args + len, sizeof(args) - (size_t)len, "%s%d", i ? "," : "", 1 + i % 3);
    json_t *j = run_json(args);
    cr_assert_eq(num(j, "nodes"), 40);
    cr_assert_float_eq(num(j, "epsilon"), 0.1, 1e-9);
    cr_assert_leq(num(j, "placement_max_over_mean"), 1.1 + 1e-9);
    cr_assert_leq(num(j, "moved_add"), 1.10 * num(j, "ideal_add"));
    cr_assert_leq(num(j, "moved_remove"), 1.10 * num(j, "ideal_remove"));
    cr_assert_eq(num(j, "staying_moves_add"), 0);
    cr_assert_eq(num(j, "staying_moves_remove"), 0);
    json_decref(j);
}

Test(ring_cli, text_report_reads)
{
    static char out[65536];
    cr_assert_eq(run_ring("--nodes 10 --zones 3 --add 1 --remove 1", false, out, sizeof(out)), 0);
    cr_assert_not_null(strstr(out, "plain ring"));
    cr_assert_not_null(strstr(out, "balanced placement"));
    cr_assert_not_null(strstr(out, "add 1 node (node-10)"));
    cr_assert_not_null(strstr(out, "remove 1 node (node-5)"), "removal from the middle: %s", out);
}

/* Every bad flag: exit status 2 and exactly one line on stderr, naming the flag. */
Test(ring_cli, bad_flags_exit_2_with_one_line)
{
    static const struct {
        const char *args;
        const char *mentions;
    } bad[] = {
        {"", "--nodes"},
        {"--nodes 0", "--nodes"},
        {"--nodes 4097", "--nodes"},
        {"--nodes ten", "--nodes"},
        {"--nodes", "--nodes"},
        {"--nodes 3 --replicas 4", "--replicas"},
        {"--nodes 3 --replicas 0", "--replicas"},
        {"--nodes 10 --replicas 8", "--replicas"},
        {"--nodes 3 --partitions 0", "--partitions"},
        {"--nodes 3 --partitions 65537", "--partitions"},
        {"--nodes 3 --epsilon 0", "--epsilon"},
        {"--nodes 3 --epsilon 1.5", "--epsilon"},
        {"--nodes 3 --epsilon x", "--epsilon"},
        {"--nodes 3 --zones 4", "--zones"},
        {"--nodes 3 --weights 1,2", "--weights"},
        {"--nodes 3 --weights 1,2,3,4", "--weights"},
        {"--nodes 3 --weights 1,0,1", "--weights"},
        {"--nodes 3 --weights 1,-2,1", "--weights"},
        {"--nodes 3 --weights 1,65536,1", "--weights"},
        {"--nodes 3 --remove 1", "--remove"},
        {"--nodes 4096 --add 1", "--add"},
        {"--nodes 3 --frobnicate 1", "--frobnicate"},
        {"--nodes 3 stray", "stray"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[4096];
        cr_assert_eq(run_ring(bad[i].args, true, err, sizeof(err)), 2, "'%s'", bad[i].args);
        char *nl = strchr(err, '\n');
        cr_assert_not_null(nl, "'%s': no message", bad[i].args);
        cr_assert_eq(nl[1], 0, "'%s': more than one line: %s", bad[i].args, err);
        cr_assert_not_null(strstr(err, bad[i].mentions), "'%s': %s", bad[i].args, err);
        cr_assert_not_null(strstr(err, "shardmart ring: "), "'%s': %s", bad[i].args, err);
    }
}

Test(ring_cli, help_explains_the_command)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s help ring", shardmart_bin());
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    static char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, f);
    out[n] = 0;
    cr_assert_eq(WEXITSTATUS(pclose(f)), 0);
    cr_assert_not_null(strstr(out, "usage: shardmart ring --nodes N"));
    cr_assert_not_null(strstr(out, "--json"));
}
