/*
 * `shardmart ring`: the operator's planning tool for placement. For a generated cluster (nodes
 * node-0..node-<N-1>, zones zone-0..zone-<Z-1> round-robin) it prints the balance of the plain
 * ring against the balanced placement, and what adding or removing K nodes would move against
 * the ideal minimum, so an operator can choose P, R and epsilon before creating a cluster.
 * Everything it reports comes from the placement library (include/shardmart/ring.h).
 */
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "limits.h"
#include "shardmart/ring.h"

const char cli_ring_usage[] =
    "usage: shardmart ring --nodes N [--weights w1,w2,...] [--zones Z] [--partitions P]\n"
    "                      [--replicas R] [--epsilon E] [--add K] [--remove K] [--json]\n"
    "\n"
    "Plans placement for a generated cluster of N nodes (node-0 .. node-<N-1>, spread round-robin\n"
    "over Z zones) and prints:\n"
    "  - balance of the plain consistent-hash ring (160 points per unit of weight) and of the\n"
    "    balanced placement: replicas per node over its fair share (max, min, stddev), and the\n"
    "    same for primaries;\n"
    "  - replicas moved when K nodes join (weight 1 each) or K nodes leave (spread through the\n"
    "    list, not only the last), against the ideal minimum (the joined nodes' fair share, or\n"
    "    the replicas the leaving nodes held), and moves between two nodes that both stay;\n"
    "  - partitions whose replicas share a zone although there are >= R zones.\n"
    "\n"
    "  --nodes N        1..4096 (required)\n"
    "  --weights LIST   N comma-separated integer weights, 1..65535 (default all 1)\n"
    "  --zones Z        1..N (default 1)\n"
    "  --partitions P   1..65536 (default 256)\n"
    "  --replicas R     1..7, <= N (default 3, or N if smaller)\n"
    "  --epsilon E      allowed overload over the fair share, (0, 1] (default 0.05)\n"
    "  --add K          nodes to add (default 0)\n"
    "  --remove K       nodes to remove, leaving at least R (default 0)\n"
    "  --json           one JSON object instead of the table\n"
    "\n"
    "Exit status: 0, or 2 for a bad flag (with a one-line reason).\n";

/* What the operator asked for. */
struct ring_opts {
    uint32_t nodes;
    uint32_t zones;
    uint32_t partitions;
    uint32_t replicas;
    uint32_t add;
    uint32_t remove;
    double epsilon;
    bool json;
    bool replicas_set;
    const char *weights; /* the raw list, parsed once nodes is known */
};

/* One scenario's outcome: a table against the base table. */
struct ring_change {
    int moved;             /* replicas copied to a new node */
    double ideal;          /* the least any placement could move */
    int staying_moves;     /* moves whose both ends stay members */
    int ring_moved;        /* the same change on the plain ring */
    struct ring_balance b; /* balance after the change */
};

/* Everything the report prints. */
struct ring_report {
    struct ring_balance plain;
    struct ring_balance placed;
    double place_ms;
    uint32_t zones_present;
    struct ring_change add;
    struct ring_change remove;
};

static int bad_flag(const char *fmt, const char *arg)
{
    fprintf(stderr, "shardmart ring: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
    return 2;
}

static bool parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end != 0 || v < (long long)lo || v > (long long)hi)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* One flag and its value; returns 0, or 2 after printing the reason. */
static int parse_flag(struct ring_opts *o, const char *flag, const char *value)
{
    static const struct {
        const char *name;
        size_t offset;
        uint32_t lo, hi;
        const char *range;
    } ints[] = {
        {"--nodes", offsetof(struct ring_opts, nodes), 1, RING_NODES_MAX, "1..4096"},
        {"--zones", offsetof(struct ring_opts, zones), 1, RING_NODES_MAX, "1..4096"},
        {"--partitions", offsetof(struct ring_opts, partitions), 1, RING_PARTITIONS_MAX,
         "1..65536"},
        {"--replicas", offsetof(struct ring_opts, replicas), 1, RING_REPLICAS_MAX, "1..7"},
        {"--add", offsetof(struct ring_opts, add), 0, RING_NODES_MAX, "0..4096"},
        {"--remove", offsetof(struct ring_opts, remove), 0, RING_NODES_MAX, "0..4096"},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        if (strcmp(flag, ints[i].name) != 0)
            continue;
        if (!parse_u32(value, ints[i].lo, ints[i].hi, (uint32_t *)((char *)o + ints[i].offset))) {
            fprintf(stderr, "shardmart ring: %s must be an integer in %s, not '%s'\n", flag,
                    ints[i].range, value);
            return 2;
        }
        o->replicas_set |= strcmp(flag, "--replicas") == 0;
        return 0;
    }
    if (strcmp(flag, "--epsilon") == 0) {
        char *end = NULL;
        o->epsilon = strtod(value, &end);
        if (end == value || *end != 0 || !(o->epsilon > 0 && o->epsilon <= 1))
            return bad_flag("--epsilon must be a number in (0, 1], not '%s'", value);
        return 0;
    }
    if (strcmp(flag, "--weights") == 0) {
        o->weights = value;
        return 0;
    }
    return bad_flag("unknown flag '%s' (see 'shardmart help ring')", flag);
}

static int parse_args(int argc, char **argv, struct ring_opts *o)
{
    *o = (struct ring_opts){.zones = 1,
                            .partitions = SM_PARTITIONS_DEFAULT,
                            .replicas = SM_REPLICAS_DEFAULT,
                            .epsilon = RING_EPSILON_DEFAULT};
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0)
            return bad_flag("unexpected argument '%s' (see 'shardmart help ring')", argv[i]);
        if (i + 1 >= argc)
            return bad_flag("%s needs a value", argv[i]);
        int err = parse_flag(o, argv[i], argv[i + 1]);
        if (err)
            return err;
        i++;
    }
    if (o->nodes == 0)
        return bad_flag("%s", "--nodes N is required (see 'shardmart help ring')");
    if (!o->replicas_set && o->replicas > o->nodes)
        o->replicas = o->nodes;
    char n[16];
    snprintf(n, sizeof(n), "%u", o->nodes);
    if (o->zones > o->nodes)
        return bad_flag("--zones must be at most --nodes (%s)", n);
    if (o->replicas > o->nodes)
        return bad_flag("--replicas must be at most --nodes (%s)", n);
    if (o->add > RING_NODES_MAX - o->nodes)
        return bad_flag("--add would pass 4096 nodes (--nodes %s)", n);
    if (o->remove > o->nodes - o->replicas)
        return bad_flag("--remove must leave at least --replicas nodes (--nodes %s)", n);
    return 0;
}

/* The N weights of --weights; 2 after printing the reason. */
static int parse_weights(const struct ring_opts *o, int64_t *weights)
{
    for (uint32_t i = 0; i < o->nodes; i++)
        weights[i] = 1;
    if (!o->weights)
        return 0;
    const char *s = o->weights;
    for (uint32_t i = 0; i < o->nodes; i++) {
        char *end = NULL;
        errno = 0;
        long long w = strtoll(s, &end, 10);
        if (errno || end == s || w < 1 || w > RING_WEIGHT_MAX || (*end != ',' && *end != 0))
            return bad_flag("--weights must be integers in 1..65535, not '%s'", o->weights);
        weights[i] = w;
        if (*end == 0 && i + 1 < o->nodes)
            return bad_flag("--weights needs one weight per node: '%s' is too short", o->weights);
        s = end + 1;
        if (*end == 0)
            break;
        if (i + 1 == o->nodes)
            return bad_flag("--weights needs one weight per node: '%s' is too long", o->weights);
    }
    return 0;
}

static char node_ids[RING_NODES_MAX][16];
static char zone_labels[RING_NODES_MAX][16];

static struct ring_node_spec node_spec(uint32_t i, uint32_t zones, int64_t weight)
{
    snprintf(node_ids[i], sizeof(node_ids[i]), "node-%u", i);
    snprintf(zone_labels[i], sizeof(zone_labels[i]), "zone-%u", i % zones);
    return (struct ring_node_spec){node_ids[i], strlen(node_ids[i]), zone_labels[i],
                                   strlen(zone_labels[i]), weight};
}

/* The k-th of K nodes to remove, spread through the list: the middles of K equal stretches. */
static uint32_t removed_index(const struct ring_opts *o, uint32_t k)
{
    return (uint32_t)(((2ULL * k + 1) * o->nodes) / (2ULL * o->remove));
}

static bool is_member(const struct ring_placement *pl, const struct ring_placement_node *n)
{
    for (uint32_t i = 0; i < pl->node_count; i++)
        if (pl->nodes[i].id_len == n->id_len && memcmp(pl->nodes[i].id, n->id, n->id_len) == 0)
            return true;
    return false;
}

/* Moves of a -> b and how many of them go between two nodes that are members of both. */
static int count_moves(const struct ring_placement *a, const struct ring_placement *b,
                       int *staying_out)
{
    int total = ring_placement_diff(a, b, NULL, 0);
    *staying_out = 0;
    if (total <= 0)
        return total;
    struct ring_move *moves = calloc((size_t)total, sizeof(*moves));
    if (!moves)
        return RING_E_NOMEM;
    int got = ring_placement_diff(a, b, moves, (size_t)total);
    for (int i = 0; i < got; i++) {
        if (moves[i].from == UINT32_MAX)
            continue;
        *staying_out +=
            is_member(b, &a->nodes[moves[i].from]) && is_member(a, &b->nodes[moves[i].to]);
    }
    free(moves);
    return total;
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The base cluster: N nodes with their weights, zones round-robin. */
static int build_ring(const struct ring_opts *o, const int64_t *weights, struct ring *ring)
{
    int err = ring_init(ring, RING_POINTS_PER_WEIGHT_DEFAULT);
    if (err)
        return err;
    struct ring_node_spec *specs = calloc(o->nodes, sizeof(*specs));
    if (!specs) {
        ring_destroy(ring);
        return RING_E_NOMEM;
    }
    for (uint32_t i = 0; i < o->nodes; i++)
        specs[i] = node_spec(i, o->zones, weights[i]);
    err = ring_add_nodes(ring, specs, o->nodes);
    free(specs);
    if (err)
        ring_destroy(ring);
    return err;
}

/* Builds the base cluster with one change (K nodes added, or K removed), re-places from base and
 * plain_base, and measures the moves and the balance after. */
static int measure_change(const struct ring_opts *o, const int64_t *weights, bool adding,
                          const struct ring_placement *base,
                          const struct ring_placement *plain_base, struct ring_change *out)
{
    struct ring ring_storage;
    struct ring *ring = &ring_storage;
    int err = build_ring(o, weights, ring);
    if (err)
        return err;
    struct ring_place_config cfg = {o->partitions, o->replicas, o->epsilon};
    uint32_t count = adding ? o->add : o->remove;
    for (uint32_t k = 0; k < count && !err; k++) {
        if (adding) {
            struct ring_node_spec s = node_spec(o->nodes + k, o->zones, 1);
            err = ring_add_node(ring, &s);
        } else {
            const char *id = node_ids[removed_index(o, k)];
            err = ring_remove_node(ring, id, strlen(id));
        }
    }
    struct ring_placement next = {0}, plain_next = {0};
    if (!err)
        err = ring_place(ring, base, &cfg, &next);
    if (!err && (err = ring_place_plain(ring, &cfg, &plain_next)))
        ring_placement_destroy(&next);
    ring_destroy(ring);
    if (err)
        return err;
    int staying = 0;
    out->moved = count_moves(base, &next, &out->staying_moves);
    out->ring_moved = count_moves(plain_base, &plain_next, &staying);
    out->ideal = 0;
    for (uint32_t i = 0; adding && i < next.node_count; i++)
        if (!is_member(base, &next.nodes[i]))
            out->ideal += ring_placement_share(&next, i);
    for (size_t c = 0; !adding && c < (size_t)base->partitions * base->replicas; c++)
        out->ideal += !is_member(&next, &base->nodes[base->table[c]]);
    err = ring_placement_balance(&next, o->epsilon, &out->b);
    ring_placement_destroy(&next);
    ring_placement_destroy(&plain_next);
    if (err || out->moved < 0)
        return err ? err : out->moved;
    return out->ring_moved < 0 ? out->ring_moved : 0;
}

static int run_report(const struct ring_opts *o, const int64_t *weights, struct ring_report *rep)
{
    struct ring ring;
    struct ring_place_config cfg = {o->partitions, o->replicas, o->epsilon};
    struct ring_placement base = {0}, plain = {0};
    int err = build_ring(o, weights, &ring);
    if (err)
        return err;
    rep->zones_present = ring.zone_count;
    double t0 = now_ms();
    err = ring_place(&ring, NULL, &cfg, &base);
    rep->place_ms = now_ms() - t0;
    if (!err && (err = ring_place_plain(&ring, &cfg, &plain)))
        ring_placement_destroy(&base);
    ring_destroy(&ring);
    if (err)
        return err;
    if (!(err = ring_placement_balance(&base, o->epsilon, &rep->placed)))
        err = ring_placement_balance(&plain, o->epsilon, &rep->plain);
    if (!err && o->add)
        err = measure_change(o, weights, true, &base, &plain, &rep->add);
    if (!err && o->remove)
        err = measure_change(o, weights, false, &base, &plain, &rep->remove);
    ring_placement_destroy(&base);
    ring_placement_destroy(&plain);
    return err;
}

static double ratio(double moved, double ideal)
{
    return ideal > 0 ? moved / ideal : 0;
}

static void print_change(const struct ring_opts *o, bool adding, const struct ring_change *c)
{
    uint32_t count = adding ? o->add : o->remove;
    char label[64];
    int len = snprintf(label, sizeof(label), "%s %u node%s", adding ? "add" : "remove", count,
                       count == 1 ? "" : "s");
    /* Name the nodes when they fit, so the operator sees removal is not just the last ones. */
    for (uint32_t k = 0; k < count && count <= 3 && len < (int)sizeof(label); k++)
        len += snprintf(label + len, sizeof(label) - (size_t)len, "%s%s", k ? "," : " (",
                        node_ids[adding ? o->nodes + k : removed_index(o, k)]);
    if (count <= 3 && len < (int)sizeof(label) - 1)
        snprintf(label + len, sizeof(label) - (size_t)len, ")");
    printf("  %-32s %7d %9.1f %6.3f %8d %8d %9.3f\n", label, c->moved, c->ideal,
           ratio(c->moved, c->ideal), c->staying_moves, c->ring_moved, c->b.max_over_share);
}

static void print_text(const struct ring_opts *o, const struct ring_report *r)
{
    printf("placement of %u partitions x %u replicas on %u nodes in %u zone%s, epsilon %.3g\n\n",
           o->partitions, o->replicas, o->nodes, r->zones_present, r->zones_present == 1 ? "" : "s",
           o->epsilon);
    printf("balance: replicas per node over its fair share (\"mean\" is the weighted,\n"
           "zone-aware fair share; with equal weights and no zone constraint it is the mean)\n");
    printf("  %-24s %8s %8s %8s %13s %10s\n", "", "max/mean", "min/mean", "stddev", "primaries max",
           "zone viol.");
    printf("  %-24s %8.3f %8.3f %8.3f %13.3f %10u\n", "plain ring (160 pts/w)",
           r->plain.max_over_share, r->plain.min_over_share, r->plain.stddev_over_share,
           r->plain.primary_max_over_share, r->plain.zone_violations);
    printf("  %-24s %8.3f %8.3f %8.3f %13.3f %10u\n", "balanced placement",
           r->placed.max_over_share, r->placed.min_over_share, r->placed.stddev_over_share,
           r->placed.primary_max_over_share, r->placed.zone_violations);
    printf("  (computed in %.1f ms)\n", r->place_ms);
    if (!o->add && !o->remove)
        return;
    printf("\nmovement: replicas copied to another node, against the ideal minimum\n");
    printf("  %-32s %7s %9s %6s %8s %8s %9s\n", "change", "moved", "ideal", "ratio", "staying",
           "ring", "max/mean");
    if (o->add)
        print_change(o, true, &r->add);
    if (o->remove)
        print_change(o, false, &r->remove);
    printf("  (staying: moves between two nodes that both stay, always 0; ring: what the plain\n"
           "   ring moves for the same change; max/mean: balance after the change)\n");
}

static int print_json(const struct ring_opts *o, const struct ring_report *r)
{
    json_t *j = json_object();
    if (!j)
        return RING_E_NOMEM;
    int bad = 0;
    bad |= json_object_set_new(j, "nodes", json_integer(o->nodes));
    bad |= json_object_set_new(j, "zones", json_integer(r->zones_present));
    bad |= json_object_set_new(j, "partitions", json_integer(o->partitions));
    bad |= json_object_set_new(j, "replicas", json_integer(o->replicas));
    bad |= json_object_set_new(j, "epsilon", json_real(o->epsilon));
    bad |= json_object_set_new(j, "ring_max_over_mean", json_real(r->plain.max_over_share));
    bad |= json_object_set_new(j, "ring_stddev", json_real(r->plain.stddev_over_share));
    bad |= json_object_set_new(j, "placement_max_over_mean", json_real(r->placed.max_over_share));
    bad |= json_object_set_new(j, "placement_min_over_mean", json_real(r->placed.min_over_share));
    bad |= json_object_set_new(j, "placement_stddev", json_real(r->placed.stddev_over_share));
    bad |= json_object_set_new(j, "primary_max_over_mean",
                               json_real(r->placed.primary_max_over_share));
    bad |= json_object_set_new(j, "placement_ms", json_real(r->place_ms));
    bad |= json_object_set_new(j, "add", json_integer(o->add));
    bad |= json_object_set_new(j, "moved_add", json_integer(r->add.moved));
    bad |= json_object_set_new(j, "ideal_add", json_real(r->add.ideal));
    bad |= json_object_set_new(j, "staying_moves_add", json_integer(r->add.staying_moves));
    bad |= json_object_set_new(j, "ring_moved_add", json_integer(r->add.ring_moved));
    bad |= json_object_set_new(j, "remove", json_integer(o->remove));
    bad |= json_object_set_new(j, "moved_remove", json_integer(r->remove.moved));
    bad |= json_object_set_new(j, "ideal_remove", json_real(r->remove.ideal));
    bad |= json_object_set_new(j, "staying_moves_remove", json_integer(r->remove.staying_moves));
    bad |= json_object_set_new(j, "ring_moved_remove", json_integer(r->remove.ring_moved));
    bad |= json_object_set_new(j, "zones_violations", json_integer(r->placed.zone_violations));
    bad |= json_object_set_new(j, "placement_over_cap", json_integer(r->placed.over_cap));
    bad |= json_object_set_new(j, "ring_zones_violations", json_integer(r->plain.zone_violations));
    if (!bad)
        bad = json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    json_decref(j);
    if (bad)
        return RING_E_NOMEM;
    putchar('\n');
    return 0;
}

int cli_ring(int argc, char **argv)
{
    struct ring_opts o;
    int err = parse_args(argc, argv, &o);
    if (err)
        return err;
    int64_t *weights = calloc(o.nodes, sizeof(*weights));
    if (!weights) {
        fprintf(stderr, "shardmart ring: out of memory\n");
        return 1;
    }
    if ((err = parse_weights(&o, weights))) {
        free(weights);
        return err;
    }
    struct ring_report rep = {0};
    err = run_report(&o, weights, &rep);
    free(weights);
    if (err) {
        fprintf(stderr, "shardmart ring: %s\n", ring_strerror(err));
        return 2;
    }
    if (o.json)
        return print_json(&o, &rep) ? 1 : 0;
    print_text(&o, &rep);
    return 0;
}
