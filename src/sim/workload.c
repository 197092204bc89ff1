/*
 * The simulator's clients: each runs one operation at a time against the node the control plane
 * names as the partition's primary, retries with the same request id after a timeout or a
 * TRYAGAIN / MOVED / BUSY answer, and records every operation in the history the checker reads.
 *
 * Workload per partition p: a hot SKU "h<p>" (40 units, at most 3 per user) sold in a flash sale,
 * three cart SKUs "c<p>k" (60 units each) bought 2-3 at a time, buyers' accounts "u<c>p<p>" with
 * a little money and a merchant "m<p>" (ORDER.PAY moves money), cancels, STOCK.GET reads, and a
 * lock "L<p>" taken and released by sessions "s<c>" with short leases.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim_internal.h"
#include "util/error.h"

#define CLIENT_TIMEOUT_MS 150

static struct engine_key k(const char *s)
{
    return (struct engine_key){(const uint8_t *)s, strlen(s)};
}

static const char *item_name(const struct sim_hist *h, uint32_t i, char *buf, size_t cap)
{
    if (h->item_sku[i] == 255)
        snprintf(buf, cap, "h%u", h->part);
    else
        snprintf(buf, cap, "c%u%u", h->part, h->item_sku[i]);
    return buf;
}

void sim_hist_cmd(const struct sim_hist *h, struct engine_cmd *cmd)
{
    static char names[SIM_ITEMS_MAX][16];
    memset(cmd, 0, offsetof(struct engine_cmd, items));
    cmd->type = h->cmd_type;
    if (h->rid[0])
        cmd->request_id = k(h->rid);
    if (h->key[0])
        cmd->key = k(h->key);
    if (h->key2[0])
        cmd->key2 = k(h->key2);
    if (h->key3[0])
        cmd->key3 = k(h->key3);
    cmd->num = h->num;
    cmd->num2 = h->num2;
    if (h->cmd_type == ENGINE_LOCK_ACQUIRE || h->cmd_type == ENGINE_LOCK_RELEASE) {
        cmd->lock_type = LOCKS_EXCLUSIVE;
        cmd->owner = h->client + 1;
    }
    cmd->items_count = h->items_count;
    for (uint32_t i = 0; i < h->items_count; i++) {
        cmd->items[i].sku = k(item_name(h, i, names[i], sizeof names[i]));
        cmd->items[i].quantity = h->item_qty[i];
    }
}

static struct sim_hist *new_op(struct sim_world *w, struct sim_client *c, uint8_t kind,
                               uint8_t type, uint32_t part)
{
    if (w->hist_count == w->hist_cap) {
        w->hist_cap = w->hist_cap ? w->hist_cap * 2 : 1024;
        w->hist = realloc(w->hist, w->hist_cap * sizeof *w->hist);
        ASSERT(w->hist);
    }
    c->hist = w->hist_count;
    struct sim_hist *h = &w->hist[w->hist_count++];
    memset(h, 0, sizeof *h);
    h->client = c->id;
    h->kind = kind;
    h->cmd_type = type;
    h->part = part;
    if (type < ENGINE_SKU_GET)
        snprintf(h->rid, sizeof h->rid, "r%u_%u", c->id, ++c->seq);
    h->invoke_ms = w->now;
    return h;
}

/* Client 0 creates the SKUs and merchants; every client opens and funds its accounts. */
static bool setup_op(struct sim_world *w, struct sim_client *c)
{
    uint32_t per_part = c->id == 0 ? 7 : 2;
    uint32_t step = c->setup_step++;
    if (step >= per_part * w->parts_count)
        return false;
    uint32_t p = step / per_part, s = step % per_part;
    if (c->id != 0)
        s += 5;
    struct sim_hist *h;
    if (s == 0) {
        h = new_op(w, c, SIM_OP_SETUP, ENGINE_SKU_CREATE, p);
        snprintf(h->key, sizeof h->key, "h%u", p);
        h->num = 40;
        h->num2 = 3;
    } else if (s <= 3) {
        h = new_op(w, c, SIM_OP_SETUP, ENGINE_SKU_CREATE, p);
        snprintf(h->key, sizeof h->key, "c%u%u", p, s - 1);
        h->num = 60;
    } else if (s == 4) {
        h = new_op(w, c, SIM_OP_SETUP, ENGINE_ACCOUNT_OPEN, p);
        snprintf(h->key, sizeof h->key, "m%u", p);
    } else if (s == 5) {
        h = new_op(w, c, SIM_OP_SETUP, ENGINE_ACCOUNT_OPEN, p);
        snprintf(h->key, sizeof h->key, "u%up%u", c->id, p);
    } else {
        h = new_op(w, c, SIM_OP_SETUP, ENGINE_ACCOUNT_DEPOSIT, p);
        snprintf(h->key, sizeof h->key, "u%up%u", c->id, p);
        h->num = 5000;
    }
    return true;
}

/* A successful order of this client, or -1. */
static int64_t pick_order(struct sim_world *w, const struct sim_client *c)
{
    for (int tries = 0; tries < 8; tries++) {
        int64_t i = (int64_t)sim_rng_below(&w->rng, w->hist_count);
        const struct sim_hist *h = &w->hist[i];
        if (h->client == c->id && h->kind == SIM_OP_ORDER && h->acked &&
            h->reply.kind != ENGINE_REPLY_ERR)
            return i;
    }
    return -1;
}

static void order_op(struct sim_world *w, struct sim_client *c, uint32_t p)
{
    struct sim_hist *h = new_op(w, c, SIM_OP_ORDER, ENGINE_ORDER_PLACE, p);
    snprintf(h->key, sizeof h->key, "o%u_%u", c->id, c->seq);
    snprintf(h->key2, sizeof h->key2, "u%u", c->id);
    h->num = 600000;
    if (sim_rng_chance(&w->rng, 650)) {
        h->items_count = 1;
        h->item_sku[0] = 255;
        h->item_qty[0] = (int32_t)sim_rng_range(&w->rng, 1, 2);
        return;
    }
    h->items_count = (uint8_t)sim_rng_range(&w->rng, 2, 3);
    uint32_t first = (uint32_t)sim_rng_below(&w->rng, 3);
    for (uint32_t i = 0; i < h->items_count; i++) {
        h->item_sku[i] = (uint8_t)((first + i) % 3);
        h->item_qty[i] = (int32_t)sim_rng_range(&w->rng, 1, 3);
    }
}

static void lock_op(struct sim_world *w, struct sim_client *c, uint32_t p)
{
    uint64_t pick = sim_rng_below(&w->rng, 10);
    uint8_t type = pick < 2   ? ENGINE_LOCK_SESSION_OPEN
                   : pick < 3 ? ENGINE_LOCK_HEARTBEAT
                   : pick < 7 ? ENGINE_LOCK_ACQUIRE
                              : ENGINE_LOCK_RELEASE;
    struct sim_hist *h = new_op(w, c, SIM_OP_LOCK, type, p);
    snprintf(h->key, sizeof h->key, "s%u", c->id);
    if (type == ENGINE_LOCK_SESSION_OPEN)
        h->num = 1000;
    if (type == ENGINE_LOCK_ACQUIRE || type == ENGINE_LOCK_RELEASE)
        snprintf(h->key2, sizeof h->key2, "L%u", p);
    if (type == ENGINE_LOCK_ACQUIRE)
        h->num2 = 200; /* lease_ms; num = wait_ms stays 0: a try-lock */
}

/* Picks the client's next operation; false when it has nothing more to do. */
static bool next_op(struct sim_world *w, struct sim_client *c)
{
    if (!c->setup_done) {
        if (setup_op(w, c))
            return true;
        c->setup_done = true;
    }
    if (w->load_over)
        return false;
    uint32_t p = (uint32_t)sim_rng_below(&w->rng, w->parts_count);
    uint64_t pick = sim_rng_below(&w->rng, 100);
    if (pick < 45) {
        order_op(w, c, p);
    } else if (pick < 60) {
        int64_t o = pick_order(w, c);
        if (o < 0) {
            order_op(w, c, p);
            return true;
        }
        /* copies: new_op may move the history */
        uint32_t part = w->hist[o].part;
        char key[sizeof w->hist[o].key];
        memcpy(key, w->hist[o].key, sizeof key);
        bool pay = pick < 54;
        struct sim_hist *h = new_op(w, c, pay ? SIM_OP_PAY : SIM_OP_CANCEL,
                                    pay ? ENGINE_ORDER_PAY : ENGINE_ORDER_CANCEL, part);
        memcpy(h->key, key, sizeof h->key);
        if (pay) {
            snprintf(h->key2, sizeof h->key2, "u%up%u", c->id, part);
            snprintf(h->key3, sizeof h->key3, "m%u", part);
        }
    } else if (pick < 80) {
        struct sim_hist *h = new_op(w, c, SIM_OP_READ, ENGINE_SKU_GET, p);
        if (sim_rng_chance(&w->rng, 600))
            snprintf(h->key, sizeof h->key, "h%u", p);
        else
            snprintf(h->key, sizeof h->key, "c%u%u", p, (unsigned)sim_rng_below(&w->rng, 3));
    } else {
        lock_op(w, c, p);
    }
    return true;
}

static void send_op(struct sim_world *w, struct sim_client *c)
{
    struct sim_hist *h = &w->hist[c->hist];
    h->attempts++;
    c->attempt++;
    uint32_t target = w->configs[h->part].primary;
    if (h->attempts > 2 && sim_rng_chance(&w->rng, 300))
        target = (uint32_t)sim_rng_below(&w->rng, w->nodes_count); /* a stale route */
    struct sim_ev req = {.at = w->now + sim_rng_range(&w->rng, 1, 4),
                         .type = SIM_EV_CLIENT_REQ,
                         .node = target,
                         .a = (uint64_t)c->hist};
    sim_schedule(w, &req);
    struct sim_ev timeout = {.at = w->now + CLIENT_TIMEOUT_MS,
                             .type = SIM_EV_CLIENT_WAKE,
                             .other = c->id,
                             .a = (uint64_t)c->hist + 1,
                             .b = c->attempt};
    sim_schedule(w, &timeout);
}

static void start_next(struct sim_world *w, struct sim_client *c)
{
    if (!next_op(w, c)) {
        c->busy = false;
        c->hist = -1;
        return;
    }
    c->busy = true;
    c->attempt = 0;
    send_op(w, c);
}

void sim_clients_start(struct sim_world *w)
{
    for (uint32_t i = 0; i < w->clients_count; i++) {
        struct sim_client *c = &w->clients[i];
        memset(c, 0, sizeof *c);
        c->id = i;
        c->hist = -1;
        c->busy = true;
        struct sim_ev ev = {.at = 20 + i * 3, .type = SIM_EV_CLIENT_WAKE, .other = i};
        sim_schedule(w, &ev);
    }
}

void sim_client_wake(struct sim_world *w, const struct sim_ev *ev)
{
    struct sim_client *c = &w->clients[ev->other];
    if (ev->a == 0) {
        start_next(w, c);
        return;
    }
    if ((int64_t)ev->a - 1 != c->hist || ev->b != c->attempt || w->hist[c->hist].acked)
        return; /* an old timer */
    send_op(w, c);
}

void sim_client_reply(struct sim_world *w, const struct sim_ev *ev)
{
    struct sim_hist *h = &w->hist[ev->a];
    struct sim_client *c = &w->clients[h->client];
    if (h->acked || c->hist != (int64_t)ev->a)
        return; /* a late duplicate of an answered operation */
    struct engine_reply r;
    memcpy(&r, ev->bytes, sizeof r);
    if (r.kind == ENGINE_REPLY_ERR &&
        (r.err == SM_E_TRYAGAIN || r.err == SM_E_MOVED || r.err == SM_E_BUSY)) {
        struct sim_ev retry = {.at = w->now + sim_rng_range(&w->rng, 5, 20),
                               .type = SIM_EV_CLIENT_WAKE,
                               .other = c->id,
                               .a = ev->a + 1,
                               .b = c->attempt};
        sim_schedule(w, &retry);
        return;
    }
    h->acked = true;
    h->ack_ms = w->now;
    h->reply = r;
    h->frontier = w->oracle[h->part].max;
    w->res->requests_acked++;
    struct sim_ev next = {
        .at = w->now + sim_rng_range(&w->rng, 1, 15), .type = SIM_EV_CLIENT_WAKE, .other = c->id};
    sim_schedule(w, &next);
}

bool sim_clients_idle(const struct sim_world *w)
{
    for (uint32_t i = 0; i < w->clients_count; i++)
        if (w->clients[i].busy)
            return false;
    return true;
}
