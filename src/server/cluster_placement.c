/* The placement key and the replica table (see cluster_placement.h). */
#include "server/cluster_placement.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shardmart/ring.h"

bool cluster_placement_decode(const uint8_t *value, size_t len,
                              uint32_t nodes[SM_CLUSTER_NODES_MAX], uint32_t *count)
{
    json_t *o = json_loadb((const char *)value, len, 0, NULL);
    json_t *list = o ? json_object_get(o, "nodes") : NULL;
    bool ok = json_is_array(list) && json_array_size(list) >= 1 &&
              json_array_size(list) <= SM_CLUSTER_NODES_MAX;
    uint32_t n = 0;
    for (size_t i = 0; ok && i < json_array_size(list); i++) {
        json_t *v = json_array_get(list, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        ok = id >= 0 && id < SM_CLUSTER_NODES_MAX && (n == 0 || (uint32_t)id > nodes[n - 1]);
        if (ok)
            nodes[n++] = (uint32_t)id;
    }
    json_decref(o);
    *count = n;
    return ok;
}

int cluster_placement_replicas(const uint32_t *nodes, uint32_t count, uint32_t partitions,
                               uint32_t replicas, uint32_t **table)
{
    *table = NULL;
    if (count < replicas)
        return RING_E_REPLICAS_NODES;
    struct ring ring;
    if (ring_init(&ring, 0) != 0)
        return RING_E_NOMEM;
    struct ring_node_spec *specs = calloc(count, sizeof *specs);
    char(*ids)[16] = calloc(count, sizeof *ids);
    uint32_t *out = calloc((size_t)partitions * replicas, sizeof *out);
    int rc = (specs && ids && out) ? 0 : RING_E_NOMEM;
    for (uint32_t i = 0; rc == 0 && i < count; i++) {
        int n = snprintf(ids[i], sizeof ids[i], "%" PRIu32, nodes[i]);
        specs[i] = (struct ring_node_spec){.id = ids[i], .id_len = (size_t)n, .weight = 1};
    }
    if (rc == 0)
        rc = ring_add_nodes(&ring, specs, count);
    struct ring_place_config pc = {.partitions = partitions, .replicas = replicas, .epsilon = 0.05};
    struct ring_placement pl;
    if (rc == 0)
        rc = ring_place(&ring, NULL, &pc, &pl);
    if (rc == 0) {
        for (size_t i = 0; i < (size_t)partitions * replicas; i++) {
            /* The ids are the decimal numbers written above. */
            const struct ring_placement_node *pn = &pl.nodes[pl.table[i]];
            uint32_t v = 0;
            for (size_t k = 0; k < pn->id_len; k++)
                v = v * 10 + (uint32_t)(pn->id[k] - '0');
            out[i] = v;
        }
        ring_placement_destroy(&pl);
        *table = out;
        out = NULL;
    }
    ring_destroy(&ring);
    free(specs);
    free(ids);
    free(out);
    return rc;
}
