/*
 * A tiny, fully controlled world for one partition replicated on up to five cluster_parts: the
 * test decides which messages arrive (a block matrix), when syncs finish and when the control
 * plane applies a CAS. Messages go through the real codec. Header-only so each test file stays
 * self-contained.
 */
#ifndef SHARDMART_TESTS_CLUSTER_PART_HARNESS_H
#define SHARDMART_TESTS_CLUSTER_PART_HARNESS_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/part.h"
#include "util/buf.h"
#include "util/error.h"

#define H_NODES   5
#define H_QUEUE   8192
#define H_REPLIES 4096

struct h_msg {
    uint32_t from, to;
    uint8_t *bytes;
    size_t len;
};

struct h_reply {
    uint64_t token;
    bool dropped;
    struct engine_reply reply;
};

struct harness;

struct h_node {
    struct harness *h;
    uint32_t id;
    struct cluster_part part;
    bool sync_wanted;
    uint64_t sync_index, sync_epoch;
    bool cas_wanted;
    struct cluster_config cas;
};

struct harness {
    uint32_t n;
    struct h_node nodes[H_NODES];
    struct h_msg q[H_QUEUE];
    uint32_t qn;
    bool blocked[H_NODES][H_NODES]; /* blocked[from][to] */
    bool sync_stalled[H_NODES];
    struct cluster_config config; /* the control plane's copy */
    struct h_reply replies[H_REPLIES];
    uint32_t replies_n;
    int64_t now_ms;
    uint32_t snapshots_sent;
};

static inline void h_emit(void *ctx, const struct cluster_action *a)
{
    struct h_node *node = ctx;
    struct harness *h = node->h;
    switch (a->type) {
    case CLUSTER_ACT_SEND: {
        cr_assert_lt(h->qn, H_QUEUE);
        struct h_msg *m = &h->q[h->qn++];
        m->from = node->id;
        m->to = a->to;
        m->bytes = malloc(a->len);
        memcpy(m->bytes, a->bytes, a->len);
        m->len = a->len;
        if (a->len > 0 && a->bytes[1] == CLUSTER_MSG_SNAPSHOT)
            h->snapshots_sent++;
        return;
    }
    case CLUSTER_ACT_SYNC:
        node->sync_wanted = true;
        node->sync_index = a->index;
        node->sync_epoch = a->epoch;
        return;
    case CLUSTER_ACT_REPLY:
    case CLUSTER_ACT_REPLY_DROPPED:
        cr_assert_lt(h->replies_n, H_REPLIES);
        h->replies[h->replies_n].token = a->token;
        h->replies[h->replies_n].dropped = a->type == CLUSTER_ACT_REPLY_DROPPED;
        if (a->reply)
            h->replies[h->replies_n].reply = *a->reply;
        h->replies_n++;
        return;
    case CLUSTER_ACT_CAS:
        node->cas_wanted = true;
        node->cas = *a->config;
        return;
    default:
        return; /* persistence: the harness keeps everything in memory */
    }
}

static inline struct cluster_part_config h_part_config(struct h_node *node)
{
    struct cluster_part_config c = {
        .partition = 0,
        .node = node->id,
        .engine = {.skus_max = 64,
                   .orders_max = 256,
                   .holds_max = 16,
                   .accounts_max = 64,
                   .limit_rows_max = 256,
                   .item_chunks_max = 64,
                   .request_ids_max = 512,
                   .order_retention_ms = 3600000,
                   .hold_retention_ms = 3600000,
                   .locks = {.sessions_max = 16,
                             .locks_max = 16,
                             .holds_max = 64,
                             .waiters_max = 16,
                             .permits_max = 16,
                             .reentry_max = 16}},
        .log_entries_max = 64,
        .log_bytes_max = 64 * 1024,
        .pending_max = 256,
        .heartbeat_ms = 10,
        .retransmit_ms = 30,
        .lag_timeout_ms = 100,
        .tick_ms = 0,
        .snapshot_every = 40,
        .emit = h_emit,
        .emit_ctx = node,
    };
    return c;
}

/* Gives every node the control plane's config. */
static inline void h_publish(struct harness *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        cluster_part_set_config(&h->nodes[i].part, h->now_ms, &h->config);
}

static inline void h_set_config(struct harness *h, uint64_t epoch, uint32_t primary,
                                const uint32_t *isr, uint32_t isr_count)
{
    h->config.epoch = epoch;
    h->config.revision++;
    h->config.primary = primary;
    h->config.isr_count = isr_count;
    memcpy(h->config.isr, isr, isr_count * sizeof *isr);
    h_publish(h);
}

static inline void h_init(struct harness *h, uint32_t n)
{
    memset(h, 0, sizeof *h);
    h->n = n;
    h->now_ms = 1000;
    h->config.replicas_count = n;
    for (uint32_t i = 0; i < n; i++) {
        h->nodes[i].h = h;
        h->nodes[i].id = i;
        h->config.replicas[i] = i;
        struct cluster_part_config c = h_part_config(&h->nodes[i]);
        cr_assert_eq(cluster_part_init(&h->nodes[i].part, &c, NULL, 0, 0, 0, 0, NULL, 0, false), 0);
    }
    uint32_t isr[H_NODES] = {0, 1, 2, 3, 4};
    h_set_config(h, 1, 0, isr, n);
}

static inline void h_free(struct harness *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        cluster_part_free(&h->nodes[i].part);
    for (uint32_t i = 0; i < h->qn; i++)
        free(h->q[i].bytes);
}

/* One round: finish every wanted sync, deliver every queued message that is not blocked (a
 * blocked one is lost), flush everyone. Returns the number of messages delivered. */
static inline uint32_t h_round(struct harness *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        struct h_node *node = &h->nodes[i];
        if (node->sync_wanted && !h->sync_stalled[i]) {
            node->sync_wanted = false;
            cluster_part_persisted(&node->part, h->now_ms, node->sync_index, node->sync_epoch);
        }
    }
    uint32_t qn = h->qn, delivered = 0;
    struct h_msg *batch = malloc(sizeof *batch * (qn ? qn : 1));
    memcpy(batch, h->q, sizeof *batch * qn);
    h->qn = 0;
    static struct cluster_msg m;
    for (uint32_t i = 0; i < qn; i++) {
        struct h_msg *x = &batch[i];
        if (x->to < h->n && !h->blocked[x->from][x->to]) {
            cr_assert_eq(cluster_msg_decode(x->bytes, x->len, &m), 0);
            cluster_part_receive(&h->nodes[x->to].part, h->now_ms, &m);
            delivered++;
        }
        free(x->bytes);
    }
    free(batch);
    for (uint32_t i = 0; i < h->n; i++)
        cluster_part_flush(&h->nodes[i].part, h->now_ms);
    return delivered;
}

/* Rounds until nothing moves (at most 200). */
static inline void h_settle(struct harness *h)
{
    for (int i = 0; i < 200; i++) {
        h_round(h);
        bool syncs = false;
        for (uint32_t j = 0; j < h->n; j++)
            syncs = syncs || (h->nodes[j].sync_wanted && !h->sync_stalled[j]);
        if (h->qn == 0 && !syncs)
            return;
    }
}

/* Advances time by ms in steps of 5, ticking everyone and settling after each step. */
static inline void h_advance(struct harness *h, int64_t ms)
{
    for (int64_t t = 0; t < ms; t += 5) {
        h->now_ms += 5;
        for (uint32_t i = 0; i < h->n; i++)
            cluster_part_tick(&h->nodes[i].part, h->now_ms);
        h_settle(h);
    }
}

/* Applies node i's pending CAS if its revision is current, then publishes; else fails it. */
static inline bool h_apply_cas(struct harness *h, uint32_t i)
{
    struct h_node *node = &h->nodes[i];
    if (!node->cas_wanted)
        return false;
    node->cas_wanted = false;
    if (node->cas.revision != h->config.revision) {
        cluster_part_cas_failed(&node->part, h->now_ms);
        return false;
    }
    h->config = node->cas;
    h->config.revision++;
    h_publish(h);
    return true;
}

static inline void h_isolate(struct harness *h, uint32_t i, bool on)
{
    for (uint32_t j = 0; j < h->n; j++) {
        h->blocked[i][j] = on;
        h->blocked[j][i] = on;
    }
}

static inline const struct h_reply *h_find_reply(const struct harness *h, uint64_t token)
{
    for (uint32_t i = 0; i < h->replies_n; i++)
        if (h->replies[i].token == token)
            return &h->replies[i];
    return NULL;
}

/* A command with request id rid, key and num; the strings must outlive the call. */
static inline struct engine_cmd h_cmd(int type, const char *rid, const char *key, int64_t num)
{
    struct engine_cmd c;
    memset(&c, 0, sizeof c);
    c.type = type;
    if (rid)
        c.request_id = (struct engine_key){(const uint8_t *)rid, strlen(rid)};
    if (key)
        c.key = (struct engine_key){(const uint8_t *)key, strlen(key)};
    c.num = num;
    return c;
}

/* engine_save bytes of node i, compared with node j's. */
static inline bool h_same_state(struct harness *h, uint32_t i, uint32_t j)
{
    struct sm_wbuf a, b;
    sm_wbuf_init(&a);
    sm_wbuf_init(&b);
    cr_assert_eq(engine_save(&h->nodes[i].part.engine, &a), 0);
    cr_assert_eq(engine_save(&h->nodes[j].part.engine, &b), 0);
    bool same = a.len == b.len && memcmp(a.data, b.data, a.len) == 0;
    sm_wbuf_free(&a);
    sm_wbuf_free(&b);
    return same;
}

#endif
