/* The placement key and the replica table every node and `shardmart admin status` derive from
 * it (src/server/cluster_placement.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cluster_placement.h"
#include "shardmart/ring.h"

static bool decode(const char *json, uint32_t nodes[SM_CLUSTER_NODES_MAX], uint32_t *count)
{
    return cluster_placement_decode((const uint8_t *)json, strlen(json), nodes, count);
}

Test(cluster_placement, decodes_ascending_ids_and_refuses_anything_else)
{
    static uint32_t nodes[SM_CLUSTER_NODES_MAX];
    uint32_t count = 0;
    cr_assert(decode("{\"nodes\":[1,2,7]}", nodes, &count));
    cr_assert_eq(count, 3);
    cr_assert(nodes[0] == 1 && nodes[1] == 2 && nodes[2] == 7);
    const char *bad[] = {
        "",
        "not json",
        "{}",
        "{\"nodes\":[]}",
        "{\"nodes\":7}",
        "{\"nodes\":[2,1]}",
        "{\"nodes\":[1,1]}",
        "{\"nodes\":[-1]}",
        "{\"nodes\":[\"1\"]}",
        "{\"nodes\":[4096]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(decode(bad[i], nodes, &count), "accepted %s", bad[i]);
    char ok[64];
    snprintf(ok, sizeof ok, "{\"nodes\":[%d]}", SM_CLUSTER_NODES_MAX - 1);
    cr_assert(decode(ok, nodes, &count), "the largest id is accepted");
}

Test(cluster_placement, every_partition_gets_distinct_replicas_and_the_table_is_a_pure_function)
{
    const uint32_t nodes[] = {3, 5, 8, 13};
    uint32_t *a = NULL, *b = NULL;
    cr_assert_eq(cluster_placement_replicas(nodes, 4, 64, 3, &a), 0);
    cr_assert_eq(cluster_placement_replicas(nodes, 4, 64, 3, &b), 0);
    cr_assert_eq(memcmp(a, b, 64 * 3 * sizeof *a), 0, "two derivations differ");
    uint32_t led[4] = {0};
    for (uint32_t p = 0; p < 64; p++) {
        const uint32_t *r = &a[p * 3];
        cr_assert(r[0] != r[1] && r[0] != r[2] && r[1] != r[2], "partition %u", p);
        for (int k = 0; k < 3; k++) {
            bool known = false;
            for (int n = 0; n < 4; n++) {
                known = known || r[k] == nodes[n];
                led[n] += k == 0 && r[k] == nodes[n];
            }
            cr_assert(known, "partition %u names node %u", p, r[k]);
        }
    }
    for (int n = 0; n < 4; n++)
        cr_assert_gt(led[n], 0, "node %u leads nothing", nodes[n]);
    free(a);
    free(b);
    uint32_t *c = NULL;
    cr_assert_eq(cluster_placement_replicas(nodes, 2, 64, 3, &c), RING_E_REPLICAS_NODES);
    cr_assert_null(c);
}
