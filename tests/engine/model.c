/*
 * The reference model (see model.h). Written from the contract in src/engine/engine.h and the
 * comments of orders.c, stock.c and money.c, not from their code: linear scans over small arrays,
 * keys compared as strings, every error checked in the documented order.
 */
#include "model.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

static const char *const order_names[] = {"FREE",      "RESERVED",  "PAID",    "SHIPPED",
                                          "COMPLETED", "CANCELLED", "EXPIRED", "REFUNDED"};
static const char *const hold_names[] = {"FREE", "PREPARED", "COMMITTED", "ABORTED"};

enum { RESERVED = 1, PAID, SHIPPED, COMPLETED, CANCELLED, EXPIRED, REFUNDED };
enum { PREPARED = 1, COMMITTED, ABORTED };

void model_init(struct model *m, const struct engine_config *cfg)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
}

static void key_str(const struct engine_key *k, char *out)
{
    size_t n = k->len < MODEL_KEY - 1 ? k->len : MODEL_KEY - 1;
    memcpy(out, k->ptr, n);
    out[n] = '\0';
}

/* ---- replies ---- */

static void ok(struct engine_reply *r)
{
    memset(r, 0, sizeof *r);
    r->kind = ENGINE_REPLY_OK;
}

static void integer(struct engine_reply *r, int64_t v)
{
    ok(r);
    r->kind = ENGINE_REPLY_INT;
    r->value = v;
}

static void err(struct engine_reply *r, int code, const char *msg)
{
    memset(r, 0, sizeof *r);
    r->kind = ENGINE_REPLY_ERR;
    r->err = code;
    snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : sm_strerror(code));
    r->msg_len = strlen(r->msg);
}

/* ---- lookups ---- */

static int find_sku(const struct model *m, const char *name)
{
    for (int i = 0; i < m->skus_count; i++)
        if (strcmp(m->skus[i].name, name) == 0)
            return i;
    return -1;
}

static int find_account(const struct model *m, const char *id)
{
    for (int i = 0; i < m->accounts_count; i++)
        if (strcmp(m->accounts[i].id, id) == 0)
            return i;
    return -1;
}

static int find_order(const struct model *m, const char *id)
{
    for (int i = 0; i < MODEL_ROWS; i++)
        if (m->orders[i].live && strcmp(m->orders[i].id, id) == 0)
            return i;
    return -1;
}

static int find_hold(const struct model *m, const char *id)
{
    for (int i = 0; i < MODEL_ROWS; i++)
        if (m->holds[i].live && strcmp(m->holds[i].id, id) == 0)
            return i;
    return -1;
}

static int find_limit(const struct model *m, const char *user, int sku)
{
    for (int i = 0; i < MODEL_ROWS; i++)
        if (m->limits[i].count > 0 && m->limits[i].sku == sku &&
            strcmp(m->limits[i].user, user) == 0)
            return i;
    return -1;
}

static int64_t limit_count(const struct model *m, const char *user, int sku)
{
    int i = find_limit(m, user, sku);
    return i < 0 ? 0 : m->limits[i].count;
}

static void limit_add(struct model *m, const char *user, int sku, int64_t delta)
{
    if (m->skus[sku].limit == 0)
        return;
    int i = find_limit(m, user, sku);
    if (i < 0) {
        for (i = 0; m->limits[i].count > 0; i++)
            ;
        snprintf(m->limits[i].user, MODEL_KEY, "%s", user);
        m->limits[i].sku = sku;
    }
    m->limits[i].count += delta;
}

/* ---- capacity ---- */

static int chunks_of(int n)
{
    return n == 0 ? 0 : (n - 1 + 7) / 8;
}

static int live_orders(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < MODEL_ROWS; i++)
        n += m->orders[i].live;
    return n;
}

static int live_holds(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < MODEL_ROWS; i++)
        n += m->holds[i].live;
    return n;
}

static int chunks_used(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < MODEL_ROWS; i++) {
        if (m->orders[i].live)
            n += chunks_of(m->orders[i].n);
        if (m->holds[i].live)
            n += chunks_of(m->holds[i].n);
    }
    return n;
}

static int limits_used(const struct model *m)
{
    int n = 0;
    for (int i = 0; i < MODEL_ROWS; i++)
        n += m->limits[i].count > 0;
    return n;
}

/* ---- argument checks (BADARG) ---- */

static bool same_key(const struct engine_key *a, const struct engine_key *b)
{
    return a->len == b->len && memcmp(a->ptr, b->ptr, a->len) == 0;
}

static bool args_valid(const struct engine_cmd *c)
{
    switch (c->type) {
    case ENGINE_SKU_CREATE:
        return c->num >= 0 && c->num2 >= 0 && c->num3 >= 0;
    case ENGINE_SKU_RESTOCK:
    case ENGINE_SKU_ADJUST:
    case ENGINE_ACCOUNT_DEPOSIT:
    case ENGINE_ACCOUNT_WITHDRAW:
        return c->num > 0;
    case ENGINE_ORDER_PLACE:
    case ENGINE_HOLD_PREPARE:
        return c->num >= 1 && c->num <= SM_ENGINE_TTL_MS_MAX;
    case ENGINE_ORDER_PAY:
        return !same_key(&c->key2, &c->key3);
    case ENGINE_ORDER_REFUND:
        return c->num == 0 || c->num == 1;
    case ENGINE_ACCOUNT_OPEN:
        return c->num >= 0;
    case ENGINE_ACCOUNT_TRANSFER:
        return c->num > 0 && !same_key(&c->key, &c->key2);
    default:
        return true;
    }
}

/* ---- stock ---- */

static void sku_cmd(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    char name[MODEL_KEY];
    key_str(&c->key, name);
    int s = find_sku(m, name);
    if (c->type == ENGINE_SKU_CREATE) {
        if (s >= 0)
            return err(r, SM_E_EXISTS, NULL);
        if (m->skus_count >= (int)m->cfg.skus_max)
            return err(r, SM_E_BUSY, NULL);
        struct model_sku *k = &m->skus[m->skus_count++];
        memset(k, 0, sizeof *k);
        snprintf(k->name, MODEL_KEY, "%s", name);
        k->stocked = k->available = c->num;
        k->limit = c->num2;
        k->price = c->num3;
        return ok(r);
    }
    if (s < 0)
        return err(r, SM_E_NOTFOUND, NULL);
    struct model_sku *k = &m->skus[s];
    if (c->type == ENGINE_SKU_RESTOCK) {
        if (k->stocked > INT64_MAX - c->num)
            return err(r, SM_E_OVERFLOW, NULL);
        k->stocked += c->num;
        k->available += c->num;
        return integer(r, k->available);
    }
    if (k->available < c->num)
        return err(r, SM_E_SOLDOUT, k->name);
    k->available -= c->num;
    k->stocked -= c->num;
    integer(r, k->available);
}

/* Checks items in order; fills items/total/new limit rows; false with *r set on failure. */
static bool stock_check(const struct model *m, const struct engine_cmd *c, const char *user,
                        struct model_item *items, int64_t *total, int *rows_new,
                        struct engine_reply *r)
{
    *total = 0;
    *rows_new = 0;
    for (uint32_t i = 0; i < c->items_count; i++) {
        char name[MODEL_KEY];
        key_str(&c->items[i].sku, name);
        int s = find_sku(m, name);
        if (s < 0)
            return err(r, SM_E_NOTFOUND, NULL), false;
        const struct model_sku *k = &m->skus[s];
        int64_t q = c->items[i].quantity;
        if (k->available < q)
            return err(r, SM_E_SOLDOUT, k->name), false;
        if (user && k->limit > 0) {
            if (limit_count(m, user, s) + q > k->limit)
                return err(r, SM_E_LIMIT, k->name), false;
            *rows_new += find_limit(m, user, s) < 0;
        }
        __int128 cost = (__int128)k->price * q + *total;
        if (cost > INT64_MAX)
            return err(r, SM_E_OVERFLOW, NULL), false;
        *total = (int64_t)cost;
        items[i] = (struct model_item){s, q};
    }
    return true;
}

static void reserve(struct model *m, const struct model_item *it, int n, const char *user)
{
    for (int i = 0; i < n; i++) {
        m->skus[it[i].sku].available -= it[i].qty;
        m->skus[it[i].sku].reserved += it[i].qty;
        if (user)
            limit_add(m, user, it[i].sku, it[i].qty);
    }
}

static void release(struct model *m, const struct model_item *it, int n, const char *user)
{
    for (int i = 0; i < n; i++) {
        m->skus[it[i].sku].available += it[i].qty;
        m->skus[it[i].sku].reserved -= it[i].qty;
        if (user)
            limit_add(m, user, it[i].sku, -it[i].qty);
    }
}

static void sell(struct model *m, const struct model_item *it, int n)
{
    for (int i = 0; i < n; i++) {
        m->skus[it[i].sku].reserved -= it[i].qty;
        m->skus[it[i].sku].sold += it[i].qty;
    }
}

/* ---- money ---- */

static bool move(struct model *m, int from, int to, int64_t amount, struct engine_reply *r)
{
    struct model_account *a = &m->accounts[from], *b = &m->accounts[to];
    __int128 a_new = (__int128)a->balance - amount;
    if (a_new < INT64_MIN || a_new < -(__int128)a->overdraft)
        return err(r, SM_E_NOFUNDS, NULL), false;
    if ((__int128)b->balance + amount > INT64_MAX)
        return err(r, SM_E_OVERFLOW, NULL), false;
    a->balance = (int64_t)a_new;
    b->balance += amount;
    return true;
}

static void account_cmd(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    char id[MODEL_KEY];
    key_str(&c->key, id);
    int a = find_account(m, id);
    if (c->type == ENGINE_ACCOUNT_OPEN) {
        if (a >= 0)
            return err(r, SM_E_EXISTS, NULL);
        if (m->accounts_count >= (int)m->cfg.accounts_max)
            return err(r, SM_E_BUSY, NULL);
        struct model_account *n = &m->accounts[m->accounts_count++];
        snprintf(n->id, MODEL_KEY, "%s", id);
        n->balance = 0;
        n->overdraft = c->num;
        return ok(r);
    }
    if (a < 0)
        return err(r, SM_E_NOTFOUND, NULL);
    struct model_account *x = &m->accounts[a];
    if (c->type == ENGINE_ACCOUNT_DEPOSIT) {
        if ((__int128)x->balance + c->num > INT64_MAX || (__int128)m->deposits + c->num > INT64_MAX)
            return err(r, SM_E_OVERFLOW, NULL);
        x->balance += c->num;
        m->deposits += c->num;
        return integer(r, x->balance);
    }
    if (c->type == ENGINE_ACCOUNT_WITHDRAW) {
        if ((__int128)x->balance - c->num < -(__int128)x->overdraft)
            return err(r, SM_E_NOFUNDS, NULL);
        if ((__int128)m->withdrawals + c->num > INT64_MAX)
            return err(r, SM_E_OVERFLOW, NULL);
        x->balance -= c->num;
        m->withdrawals += c->num;
        return integer(r, x->balance);
    }
    char to_id[MODEL_KEY];
    key_str(&c->key2, to_id);
    int to = find_account(m, to_id);
    if (to < 0)
        return err(r, SM_E_NOTFOUND, NULL);
    if (move(m, a, to, c->num, r))
        ok(r);
}

/* ---- orders ---- */

static void finish(struct model *m, struct model_order *o, int state)
{
    o->state = state;
    o->at_ms = m->now_ms + m->cfg.order_retention_ms;
}

static void model_place(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    char id[MODEL_KEY], user[MODEL_KEY];
    key_str(&c->key, id);
    key_str(&c->key2, user);
    if (find_order(m, id) >= 0)
        return err(r, SM_E_EXISTS, NULL);
    struct model_item items[MODEL_ITEMS];
    int64_t total;
    int rows_new;
    if (!stock_check(m, c, user, items, &total, &rows_new, r))
        return;
    if (live_orders(m) >= (int)m->cfg.orders_max ||
        chunks_used(m) + chunks_of((int)c->items_count) > (int)m->cfg.item_chunks_max ||
        limits_used(m) + rows_new > (int)m->cfg.limit_rows_max)
        return err(r, SM_E_BUSY, NULL);
    int i = 0;
    while (m->orders[i].live)
        i++;
    struct model_order *o = &m->orders[i];
    memset(o, 0, sizeof *o);
    o->live = true;
    snprintf(o->id, MODEL_KEY, "%s", id);
    snprintf(o->user, MODEL_KEY, "%s", user);
    o->state = RESERVED;
    o->at_ms = m->now_ms + c->num;
    o->total = total;
    o->n = (int)c->items_count;
    memcpy(o->items, items, sizeof items[0] * (size_t)o->n);
    reserve(m, items, o->n, user);
    integer(r, total);
}

static void order_cmd(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    if (c->type == ENGINE_ORDER_PLACE)
        return model_place(m, c, r);
    char id[MODEL_KEY];
    key_str(&c->key, id);
    int i = find_order(m, id);
    if (i < 0)
        return err(r, SM_E_NOTFOUND, NULL);
    struct model_order *o = &m->orders[i];
    switch (c->type) {
    case ENGINE_ORDER_PAY:
    case ENGINE_ORDER_PAY_EXTERNAL: {
        if (o->state != RESERVED)
            return err(r, SM_E_STATE, order_names[o->state]);
        if (m->now_ms > o->at_ms)
            return err(r, SM_E_STATE, "EXPIRED");
        if (c->type == ENGINE_ORDER_PAY) {
            char b[MODEL_KEY], s[MODEL_KEY];
            key_str(&c->key2, b);
            key_str(&c->key3, s);
            int buyer = find_account(m, b), merchant = find_account(m, s);
            if (buyer < 0 || merchant < 0)
                return err(r, SM_E_NOTFOUND, NULL);
            if (!move(m, buyer, merchant, o->total, r))
                return;
            o->buyer = buyer;
            o->merchant = merchant;
            o->external = false;
        } else {
            o->external = true;
        }
        sell(m, o->items, o->n);
        o->state = PAID;
        return ok(r);
    }
    case ENGINE_ORDER_CANCEL:
        if (o->state != RESERVED)
            return err(r, SM_E_STATE, order_names[o->state]);
        release(m, o->items, o->n, o->user);
        finish(m, o, CANCELLED);
        return ok(r);
    case ENGINE_ORDER_SHIP:
        if (o->state != PAID)
            return err(r, SM_E_STATE, order_names[o->state]);
        o->state = SHIPPED;
        return ok(r);
    case ENGINE_ORDER_COMPLETE:
        if (o->state != SHIPPED)
            return err(r, SM_E_STATE, order_names[o->state]);
        finish(m, o, COMPLETED);
        return ok(r);
    default: /* refund */
        if (o->state != PAID)
            return err(r, SM_E_STATE, order_names[o->state]);
        if (!o->external && !move(m, o->merchant, o->buyer, o->total, r))
            return;
        for (int k = 0; k < o->n; k++) {
            struct model_sku *s = &m->skus[o->items[k].sku];
            s->sold -= o->items[k].qty;
            if (c->num == 1)
                s->available += o->items[k].qty;
            else
                s->stocked -= o->items[k].qty;
            limit_add(m, o->user, o->items[k].sku, -o->items[k].qty);
        }
        finish(m, o, REFUNDED);
        return ok(r);
    }
}

/* ---- holds ---- */

static void hold_cmd(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    char id[MODEL_KEY];
    key_str(&c->key, id);
    int i = find_hold(m, id);
    if (i < 0) {
        if (c->type == ENGINE_HOLD_COMMIT)
            return err(r, SM_E_NOTFOUND, NULL);
        struct model_item items[MODEL_ITEMS];
        int64_t total;
        int rows_new;
        int n = 0;
        if (c->type == ENGINE_HOLD_PREPARE) {
            if (!stock_check(m, c, NULL, items, &total, &rows_new, r))
                return;
            n = (int)c->items_count;
        }
        if (live_holds(m) >= (int)m->cfg.holds_max ||
            chunks_used(m) + chunks_of(n) > (int)m->cfg.item_chunks_max)
            return err(r, SM_E_BUSY, NULL);
        for (i = 0; m->holds[i].live; i++)
            ;
        struct model_hold *h = &m->holds[i];
        memset(h, 0, sizeof *h);
        h->live = true;
        snprintf(h->id, MODEL_KEY, "%s", id);
        if (c->type == ENGINE_HOLD_PREPARE) {
            h->state = PREPARED;
            h->at_ms = m->now_ms + c->num;
            h->n = n;
            memcpy(h->items, items, sizeof items[0] * (size_t)n);
            reserve(m, items, n, NULL);
        } else {
            h->state = ABORTED;
            h->at_ms = m->now_ms + m->cfg.hold_retention_ms;
        }
        return ok(r);
    }
    struct model_hold *h = &m->holds[i];
    if (c->type == ENGINE_HOLD_PREPARE)
        return h->state == ABORTED ? err(r, SM_E_STATE, "ABORTED") : ok(r);
    if (c->type == ENGINE_HOLD_COMMIT) {
        if (h->state == COMMITTED)
            return ok(r);
        if (h->state == ABORTED || m->now_ms > h->at_ms)
            return err(r, SM_E_STATE, "ABORTED");
        sell(m, h->items, h->n);
        h->state = COMMITTED;
        h->at_ms = m->now_ms + m->cfg.hold_retention_ms;
        return ok(r);
    }
    if (h->state == ABORTED)
        return ok(r);
    if (h->state == COMMITTED)
        return err(r, SM_E_STATE, "COMMITTED");
    release(m, h->items, h->n, NULL);
    h->state = ABORTED;
    h->at_ms = m->now_ms + m->cfg.hold_retention_ms;
    ok(r);
}

/* ---- tick ---- */

static void model_tick(struct model *m, struct engine_reply *r)
{
    int64_t orders_expired = 0, holds_expired = 0, retired = 0;
    for (int i = 0; i < MODEL_ROWS; i++) {
        struct model_order *o = &m->orders[i];
        if (!o->live || o->at_ms >= m->now_ms || o->state == PAID || o->state == SHIPPED)
            continue;
        if (o->state == RESERVED) {
            release(m, o->items, o->n, o->user);
            finish(m, o, EXPIRED);
            orders_expired++;
        } else {
            o->live = false;
            retired++;
        }
    }
    for (int i = 0; i < MODEL_ROWS; i++) {
        struct model_hold *h = &m->holds[i];
        if (!h->live || h->at_ms >= m->now_ms)
            continue;
        if (h->state == PREPARED) {
            release(m, h->items, h->n, NULL);
            h->state = ABORTED;
            h->at_ms = m->now_ms + m->cfg.hold_retention_ms;
            holds_expired++;
        } else {
            h->live = false;
            retired++;
        }
    }
    ok(r);
    r->kind = ENGINE_REPLY_FIELDS;
    r->fields_count = 4;
    r->fields[0] = (struct engine_field){.name = "orders_expired", .value = orders_expired};
    r->fields[1] = (struct engine_field){.name = "holds_expired", .value = holds_expired};
    r->fields[2] = (struct engine_field){.name = "retired", .value = retired};
    r->fields[3] = (struct engine_field){.name = "lock_events", .value = 0};
}

/* ---- apply ---- */

static void dispatch(struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    switch (c->type) {
    case ENGINE_SKU_CREATE:
    case ENGINE_SKU_RESTOCK:
    case ENGINE_SKU_ADJUST:
        return sku_cmd(m, c, r);
    case ENGINE_HOLD_PREPARE:
    case ENGINE_HOLD_COMMIT:
    case ENGINE_HOLD_ABORT:
        return hold_cmd(m, c, r);
    case ENGINE_ACCOUNT_OPEN:
    case ENGINE_ACCOUNT_DEPOSIT:
    case ENGINE_ACCOUNT_WITHDRAW:
    case ENGINE_ACCOUNT_TRANSFER:
        return account_cmd(m, c, r);
    default:
        return order_cmd(m, c, r);
    }
}

void model_apply(struct model *m, int64_t now_ms, const struct engine_cmd *c, const uint8_t *rec,
                 size_t rec_len, struct engine_reply *out)
{
    if (now_ms > m->now_ms)
        m->now_ms = now_ms;
    if (rec == NULL || !args_valid(c))
        return err(out, SM_E_BADARG, "malformed record");
    if (c->type == ENGINE_TICK)
        return model_tick(m, out);
    char id[MODEL_KEY + 8];
    size_t n = c->request_id.len < sizeof id - 1 ? c->request_id.len : sizeof id - 1;
    memcpy(id, c->request_id.ptr, n);
    id[n] = '\0';
    /* The arguments: the type and everything after the request id in the record. */
    uint8_t args[MODEL_ARGS];
    size_t args_len = rec_len - (2 + c->request_id.len) + 1;
    args[0] = rec[0];
    memcpy(args + 1, rec + 2 + c->request_id.len, args_len - 1);
    for (int i = 0; i < m->requests_count; i++) {
        struct model_request *q = &m->requests[i];
        if (strcmp(q->id, id) != 0)
            continue;
        if (q->args_len != args_len || memcmp(q->args, args, args_len) != 0)
            return err(out, SM_E_IDEMPOTENCY, NULL);
        *out = q->reply;
        out->replayed = true;
        return;
    }
    dispatch(m, c, out);
    if (out->kind == ENGINE_REPLY_ERR && (out->err == SM_E_BUSY || out->err == SM_E_BADARG))
        return;
    if (m->requests_count == (int)m->cfg.request_ids_max) {
        memmove(&m->requests[0], &m->requests[1],
                sizeof m->requests[0] * (size_t)(m->requests_count - 1));
        m->requests_count--;
    }
    struct model_request *q = &m->requests[m->requests_count++];
    snprintf(q->id, sizeof q->id, "%s", id);
    memcpy(q->args, args, args_len);
    q->args_len = args_len;
    q->reply = *out;
}

void model_read(const struct model *m, const struct engine_cmd *c, struct engine_reply *r)
{
    char key[MODEL_KEY];
    key_str(&c->key, key);
    int i;
    switch (c->type) {
    case ENGINE_SKU_GET: {
        if ((i = find_sku(m, key)) < 0)
            return err(r, SM_E_NOTFOUND, NULL);
        const struct model_sku *k = &m->skus[i];
        ok(r);
        r->kind = ENGINE_REPLY_FIELDS;
        r->fields_count = 6;
        r->fields[0] = (struct engine_field){.name = "available", .value = k->available};
        r->fields[1] = (struct engine_field){.name = "reserved", .value = k->reserved};
        r->fields[2] = (struct engine_field){.name = "sold", .value = k->sold};
        r->fields[3] = (struct engine_field){.name = "stocked", .value = k->stocked};
        r->fields[4] = (struct engine_field){.name = "limit_per_user", .value = k->limit};
        r->fields[5] = (struct engine_field){.name = "price_cents", .value = k->price};
        return;
    }
    case ENGINE_ORDER_GET: {
        if ((i = find_order(m, key)) < 0)
            return err(r, SM_E_NOTFOUND, NULL);
        const struct model_order *o = &m->orders[i];
        int64_t q = 0;
        for (int k = 0; k < o->n; k++)
            q += o->items[k].qty;
        ok(r);
        r->kind = ENGINE_REPLY_FIELDS;
        r->fields_count = 5;
        r->fields[0] = (struct engine_field){.name = "state", .str = order_names[o->state]};
        r->fields[1] = (struct engine_field){.name = "items", .value = o->n};
        r->fields[2] = (struct engine_field){.name = "quantity", .value = q};
        r->fields[3] = (struct engine_field){.name = "total_cents", .value = o->total};
        r->fields[4] = (struct engine_field){.name = "paid_external", .value = o->external};
        return;
    }
    case ENGINE_HOLD_GET: {
        if ((i = find_hold(m, key)) < 0)
            return err(r, SM_E_NOTFOUND, NULL);
        const struct model_hold *h = &m->holds[i];
        int64_t q = 0;
        for (int k = 0; k < h->n; k++)
            q += h->items[k].qty;
        ok(r);
        r->kind = ENGINE_REPLY_FIELDS;
        r->fields_count = 3;
        r->fields[0] = (struct engine_field){.name = "state", .str = hold_names[h->state]};
        r->fields[1] = (struct engine_field){.name = "items", .value = h->n};
        r->fields[2] = (struct engine_field){.name = "quantity", .value = q};
        return;
    }
    default: /* ENGINE_ACCOUNT_GET */
        if ((i = find_account(m, key)) < 0)
            return err(r, SM_E_NOTFOUND, NULL);
        ok(r);
        r->kind = ENGINE_REPLY_FIELDS;
        r->fields_count = 2;
        r->fields[0] =
            (struct engine_field){.name = "balance_cents", .value = m->accounts[i].balance};
        r->fields[1] =
            (struct engine_field){.name = "overdraft_cents", .value = m->accounts[i].overdraft};
        return;
    }
}
