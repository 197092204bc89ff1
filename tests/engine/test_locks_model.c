/*
 * Model-based random test of the lock service: seeded streams of operations (sessions opening,
 * lapsing and closing, every kind of acquire with tries, waits, leases and reentrancy, releases,
 * renews, cancels, ticks, bad arguments, full tables) are applied both to src/engine/locks.c and
 * to a deliberately simple reference model below (arrays scanned linearly, every lock woken on
 * every change). Return codes, grants, tokens, permit ids and wake events are compared one by
 * one; the visible state of every lock is compared after every step, locks_check runs after
 * every step, and the state goes through a save/load round trip every few thousand steps (the
 * run continues on the loaded copy, so a load that lost anything shows up as a divergence).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/locks.h"
#include "util/error.h"

#define NS         6 /* session names; sessions_max is 5, so opening can be BUSY */
#define NL         6 /* lock names; locks_max is 4 */
#define ROWS_MAX   64
#define EVENTS_MAX 64

static const struct locks_config CONFIG = {
    .sessions_max = 5,
    .locks_max = 4,
    .holds_max = 10,
    .waiters_max = 8,
    .permits_max = 3,
    .reentry_max = 3,
};

/* ---- the reference model ------------------------------------------------------------------ */

struct m_session {
    bool open;
    int64_t ttl_ms, expires_ms;
};

struct m_grant {
    int session;
    uint8_t type;
    uint64_t owner, token, permit_id, waiter_id;
    uint32_t count;
    int64_t lease_ms, expires_ms; /* held: lease end; queued: deadline */
};

struct m_lock {
    int kind; /* 0: no row */
    uint32_t permits;
    int nh, nw;
    struct m_grant h[ROWS_MAX], w[ROWS_MAX];
};

struct model {
    struct m_session s[NS];
    struct m_lock k[NL];
    struct locks_event ev[EVENTS_MAX];
    int nev;
};

static struct model M;
static const char *SNAME[NS] = {"s0", "s1", "s2", "s3", "s4", "s5"};
static const char *LNAME[NL] = {"L0", "L1", "L2", "L3", "L4", "L5"};

static int m_count(int what) /* 0 sessions, 1 locks, 2 holds, 3 waits */
{
    int n = 0;
    for (int i = 0; i < NS && what == 0; i++)
        n += M.s[i].open;
    for (int i = 0; i < NL; i++) {
        n += what == 1 && M.k[i].kind != 0;
        n += what == 2 ? M.k[i].nh : what == 3 ? M.k[i].nw : 0;
    }
    return n;
}

static bool rows_full(void)
{
    return m_count(2) + m_count(3) >= (int)(CONFIG.holds_max + CONFIG.waiters_max);
}

static int64_t m_add(int64_t now, int64_t d)
{
    int64_t r;
    if (__builtin_add_overflow(now, d, &r) || r == INT64_MAX)
        return INT64_MAX - 1;
    return r;
}

static bool m_live(int s, int64_t now)
{
    return s >= 0 && M.s[s].open && M.s[s].expires_ms > now;
}

static int kind_of_type(uint8_t t)
{
    return t == LOCKS_EXCLUSIVE ? 1 : t == LOCKS_PERMIT ? 3 : 2;
}

static void m_event(int kind, int lk, const struct m_grant *g)
{
    struct locks_event *e = &M.ev[M.nev++];
    memset(e, 0, sizeof *e);
    e->kind = kind;
    e->waiter_id = g->waiter_id;
    if (kind == LOCKS_EVENT_GRANTED) {
        e->token = g->token;
        e->permit_id = g->permit_id;
    }
    e->name_len = 2;
    memcpy(e->name, LNAME[lk], 2);
}

static bool m_compatible(const struct m_lock *k, uint8_t type)
{
    if (type == LOCKS_PERMIT)
        return k->nh < (int)k->permits;
    if (type == LOCKS_READ) {
        for (int i = 0; i < k->nh; i++)
            if (k->h[i].type == LOCKS_WRITE)
                return false;
        return true;
    }
    return k->nh == 0;
}

static void m_grant_to(int lk, struct m_grant *g, uint64_t index, int64_t now)
{
    struct m_lock *k = &M.k[lk];
    g->token = index;
    g->count = 1;
    g->permit_id = 0;
    if (k->kind == 3) {
        uint64_t rank = 0;
        for (int i = 0; i < k->nh; i++)
            rank += k->h[i].token == index;
        g->permit_id = index << 16 | rank;
    }
    g->expires_ms = g->lease_ms ? m_add(now, g->lease_ms) : INT64_MAX;
    k->h[k->nh++] = *g;
}

/* Wakes every lock, then frees idle ones: simpler than tracking which ones changed. */
static void m_wake_all(uint64_t index, int64_t now)
{
    for (int lk = 0; lk < NL; lk++) {
        struct m_lock *k = &M.k[lk];
        while (k->kind && k->nw > 0 && m_compatible(k, k->w[0].type)) {
            struct m_grant g = k->w[0];
            memmove(&k->w[0], &k->w[1], sizeof k->w[0] * (size_t)(k->nw - 1));
            k->nw--;
            m_grant_to(lk, &g, index, now);
            m_event(LOCKS_EVENT_GRANTED, lk, &g);
        }
        if (k->kind && k->nh == 0 && k->nw == 0)
            k->kind = 0;
    }
}

static void m_remove_hold(int lk, int i)
{
    struct m_lock *k = &M.k[lk];
    memmove(&k->h[i], &k->h[i + 1], sizeof k->h[0] * (size_t)(k->nh - i - 1));
    k->nh--;
}

static void m_remove_wait(int lk, int i, int why)
{
    struct m_lock *k = &M.k[lk];
    m_event(why, lk, &k->w[i]);
    memmove(&k->w[i], &k->w[i + 1], sizeof k->w[0] * (size_t)(k->nw - i - 1));
    k->nw--;
}

/* Removes every wait and hold of the sessions flagged in `ending`, and the expired ones. */
static bool m_sweep(const bool *ending, int64_t now, bool by_time)
{
    bool any = false;
    for (int lk = 0; lk < NL; lk++) {
        struct m_lock *k = &M.k[lk];
        for (int i = 0; i < k->nw;) {
            bool timed_out = by_time && k->w[i].expires_ms <= now;
            if (timed_out || ending[k->w[i].session]) {
                m_remove_wait(lk, i, timed_out ? LOCKS_EVENT_TIMEOUT : LOCKS_EVENT_CANCELLED);
                any = true;
            } else {
                i++;
            }
        }
        for (int i = 0; i < k->nh;) {
            if ((by_time && k->h[i].expires_ms <= now) || ending[k->h[i].session]) {
                m_remove_hold(lk, i);
                any = true;
            } else {
                i++;
            }
        }
    }
    return any;
}

static int m_find_holder(int lk, int s, uint64_t owner, uint64_t permit, int64_t now)
{
    struct m_lock *k = &M.k[lk];
    for (int i = 0; i < k->nh; i++) {
        const struct m_grant *g = &k->h[i];
        if (g->session == s && g->expires_ms > now &&
            (k->kind == 3 ? g->permit_id == permit : g->owner == owner))
            return i;
    }
    return -1;
}

static bool m_waiter_id_used(uint64_t id)
{
    for (int lk = 0; lk < NL; lk++)
        for (int i = 0; i < M.k[lk].nw; i++)
            if (M.k[lk].w[i].waiter_id == id)
                return true;
    return false;
}

static int m_acquire_checks(const struct locks_acquire *a)
{
    if (a->type < LOCKS_EXCLUSIVE || a->type > LOCKS_PERMIT || a->wait_ms < 0 ||
        a->wait_ms > SM_LOCK_TTL_MS_MAX || a->lease_ms < 0 || a->lease_ms > SM_LOCK_TTL_MS_MAX)
        return SM_E_BADARG;
    if (a->wait_ms > 0 && a->waiter_id == 0)
        return SM_E_BADARG;
    if (a->type == LOCKS_PERMIT ? a->permits < 1 || a->permits > CONFIG.permits_max
                                : a->permits != 0)
        return SM_E_BADARG;
    if (a->reentrant && a->type != LOCKS_EXCLUSIVE)
        return SM_E_BADARG;
    return 0;
}

/* Returns the expected code; *g the expected grant; *changed whether state changed. */
static int m_acquire(uint64_t index, int64_t now, int s, int lk, const struct locks_acquire *a,
                     struct locks_grant *g, bool *changed)
{
    memset(g, 0, sizeof *g);
    int rc = m_acquire_checks(a);
    if (rc != 0)
        return rc;
    if (!m_live(s, now))
        return SM_E_NOTFOUND;
    struct m_lock *k = &M.k[lk];
    int kind = kind_of_type((uint8_t)a->type);
    if (k->kind) {
        if (k->kind != kind || k->permits != a->permits)
            return SM_E_STATE;
        int h = kind == 3 ? -1 : m_find_holder(lk, s, a->owner, 0, now);
        if (h >= 0) {
            if (!a->reentrant)
                return SM_E_EXISTS;
            if (k->h[h].count >= CONFIG.reentry_max)
                return SM_E_LIMIT;
            k->h[h].count++;
            *g = (struct locks_grant){LOCKS_GRANTED, k->h[h].token, 0, k->h[h].count};
            *changed = true;
            return 0;
        }
        if (k->nw > 0 || !m_compatible(k, (uint8_t)a->type)) {
            if (a->wait_ms == 0) {
                g->status = LOCKS_NOT_GRANTED;
                return 0;
            }
            if (m_waiter_id_used(a->waiter_id))
                return SM_E_EXISTS;
            for (int i = 0; i < k->nw && a->type != LOCKS_PERMIT; i++)
                if (k->w[i].session == s && k->w[i].owner == a->owner)
                    return SM_E_EXISTS;
            if (m_count(3) >= (int)CONFIG.waiters_max || rows_full())
                return SM_E_BUSY;
            k->w[k->nw++] = (struct m_grant){.session = s,
                                             .type = (uint8_t)a->type,
                                             .owner = a->owner,
                                             .waiter_id = a->waiter_id,
                                             .lease_ms = a->lease_ms,
                                             .expires_ms = m_add(now, a->wait_ms)};
            g->status = LOCKS_QUEUED;
            *changed = true;
            return 0;
        }
    }
    if (m_count(2) >= (int)CONFIG.holds_max || rows_full() ||
        (!k->kind && m_count(1) >= (int)CONFIG.locks_max))
        return SM_E_BUSY;
    if (!k->kind) {
        k->kind = kind;
        k->permits = a->permits;
    }
    struct m_grant ng = {
        .session = s, .type = (uint8_t)a->type, .owner = a->owner, .lease_ms = a->lease_ms};
    m_grant_to(lk, &ng, index, now);
    *g = (struct locks_grant){LOCKS_GRANTED, ng.token, ng.permit_id, 1};
    *changed = true;
    return 0;
}

/* ---- the driver --------------------------------------------------------------------------- */

static struct locks L;
static struct locks_event event_items[EVENTS_MAX];
static struct locks_events EV = {event_items, 0, EVENTS_MAX};

static int event_cmp(const void *a, const void *b)
{
    const struct locks_event *x = a, *y = b;
    if (x->waiter_id != y->waiter_id)
        return x->waiter_id < y->waiter_id ? -1 : 1;
    return x->kind - y->kind;
}

/* Events are compared as sets: their order across locks is unspecified (per lock it is FIFO,
 * which the unit tests pin down). */
static void compare_events(uint64_t step)
{
    cr_assert_eq(EV.count, (uint32_t)M.nev, "step %llu: %u events, model %d",
                 (unsigned long long)step, EV.count, M.nev);
    qsort(EV.items, EV.count, sizeof EV.items[0], event_cmp);
    qsort(M.ev, (size_t)M.nev, sizeof M.ev[0], event_cmp);
    for (int i = 0; i < M.nev; i++) {
        const struct locks_event *a = &EV.items[i], *b = &M.ev[i];
        cr_assert(a->kind == b->kind && a->waiter_id == b->waiter_id && a->token == b->token &&
                      a->permit_id == b->permit_id && a->name_len == b->name_len &&
                      memcmp(a->name, b->name, a->name_len) == 0,
                  "step %llu: event %d differs (waiter %llu kind %d vs %d)",
                  (unsigned long long)step, i, (unsigned long long)b->waiter_id, a->kind, b->kind);
    }
}

static void compare_state(uint64_t step)
{
    char why[200];
    cr_assert_eq(locks_check(&L, why, sizeof why), 0, "step %llu: %s", (unsigned long long)step,
                 why);
    cr_assert_eq(L.session_count, (uint32_t)m_count(0), "step %llu", (unsigned long long)step);
    cr_assert_eq(L.lock_count, (uint32_t)m_count(1), "step %llu", (unsigned long long)step);
    cr_assert_eq(L.hold_count, (uint32_t)m_count(2), "step %llu", (unsigned long long)step);
    cr_assert_eq(L.waiter_count, (uint32_t)m_count(3), "step %llu", (unsigned long long)step);
    for (int lk = 0; lk < NL; lk++) {
        struct locks_info info;
        const struct m_lock *k = &M.k[lk];
        int rc = locks_info(&L, LNAME[lk], 2, &info);
        cr_assert_eq(rc, k->kind ? 0 : SM_E_NOTFOUND, "step %llu lock %d", (unsigned long long)step,
                     lk);
        if (!k->kind)
            continue;
        cr_assert(info.kind == (enum locks_kind)k->kind && info.permits == k->permits &&
                      info.holders == (uint32_t)k->nh && info.waiters == (uint32_t)k->nw,
                  "step %llu lock %d: holders %u/%d waiters %u/%d", (unsigned long long)step, lk,
                  info.holders, k->nh, info.waiters, k->nw);
        uint64_t token_max = k->nh ? k->h[k->nh - 1].token : 0;
        cr_assert_eq(info.token_max, token_max, "step %llu lock %d", (unsigned long long)step, lk);
        bool cur;
        for (int i = 0; i < k->nh; i++) {
            cr_assert_eq(locks_token_check(&L, LNAME[lk], 2, k->h[i].token, &cur), 0);
            cr_assert(cur);
        }
        cr_assert_eq(locks_token_check(&L, LNAME[lk], 2, token_max + 1, &cur), 0);
        cr_assert(!cur);
    }
}

/* Save, load into a fresh state, save again: identical bytes; the run goes on with the copy. */
static void round_trip(void)
{
    struct sm_wbuf w1, w2;
    sm_wbuf_init(&w1);
    sm_wbuf_init(&w2);
    cr_assert_eq(locks_save(&L, &w1), 0);
    struct locks copy;
    cr_assert_eq(locks_init(&copy, &CONFIG), 0);
    struct sm_rbuf r;
    sm_rbuf_init(&r, w1.data, w1.len);
    cr_assert_eq(locks_load(&copy, &r), 0);
    cr_assert_eq(sm_rbuf_left(&r), 0);
    cr_assert_eq(locks_save(&copy, &w2), 0);
    cr_assert_eq(w1.len, w2.len);
    cr_assert_eq(memcmp(w1.data, w2.data, w1.len), 0);
    locks_free(&L);
    L = copy;
    sm_wbuf_free(&w1);
    sm_wbuf_free(&w2);
}

struct rng {
    uint64_t x;
};

static uint32_t rnd(struct rng *r, uint32_t n)
{
    r->x ^= r->x << 13;
    r->x ^= r->x >> 7;
    r->x ^= r->x << 17;
    return (uint32_t)(r->x % n);
}

/* A waiter id: mostly fresh, sometimes one in use (EXISTS), rarely 0 (BADARG). */
static uint64_t pick_waiter_id(struct rng *r, uint64_t *next)
{
    uint32_t p = rnd(r, 100);
    if (p < 2)
        return 0;
    if (p < 8 && *next > 1)
        return 1 + rnd(r, (uint32_t)(*next - 1));
    return (*next)++;
}

static void random_acquire(struct rng *r, struct locks_acquire *a, int lk, uint64_t *next_wid)
{
    static const uint8_t preferred[NL] = {LOCKS_EXCLUSIVE, LOCKS_EXCLUSIVE, LOCKS_READ,
                                          LOCKS_WRITE,     LOCKS_PERMIT,    LOCKS_PERMIT};
    memset(a, 0, sizeof *a);
    a->type = preferred[lk];
    if (a->type == LOCKS_READ || a->type == LOCKS_WRITE)
        a->type = rnd(r, 2) ? LOCKS_READ : LOCKS_WRITE;
    if (rnd(r, 40) == 0)
        a->type = (enum locks_type)rnd(r, 6); /* other kinds, and 0 and 5: STATE, BADARG */
    a->owner = rnd(r, 2);
    a->wait_ms = rnd(r, 2) ? 0 : 1 + rnd(r, 1000);
    if (rnd(r, 200) == 0)
        a->wait_ms = rnd(r, 2) ? -1 : SM_LOCK_TTL_MS_MAX + 1;
    a->lease_ms = rnd(r, 10) < 7 ? 0 : 1 + rnd(r, 400);
    a->waiter_id = a->wait_ms > 0 ? pick_waiter_id(r, next_wid) : 0;
    if (a->type == LOCKS_PERMIT)
        a->permits = rnd(r, 30) == 0 ? rnd(r, 5) : (uint32_t)(lk == 4 ? 2 : 3);
    a->reentrant = a->type == LOCKS_EXCLUSIVE ? rnd(r, 3) == 0 : rnd(r, 100) == 0;
}

/* A permit id worth trying: one held on lock lk by anyone, or a random one. */
static uint64_t pick_permit(struct rng *r, int lk)
{
    const struct m_lock *k = &M.k[lk];
    if (k->nh > 0 && rnd(r, 5) != 0)
        return k->h[rnd(r, (uint32_t)k->nh)].permit_id;
    return rnd(r, 1000);
}

static uint64_t pick_waiter(struct rng *r)
{
    for (int tries = 0; tries < 4; tries++) {
        const struct m_lock *k = &M.k[rnd(r, NL)];
        if (k->nw > 0)
            return k->w[rnd(r, (uint32_t)k->nw)].waiter_id;
    }
    return rnd(r, 50);
}

struct run {
    struct rng rng;
    uint64_t index;
    int64_t now;
    uint64_t next_wid;
};

/* One random operation on both sides; returns whether the model says the state changed. */
static bool step_once(struct run *run, uint64_t step)
{
    struct rng *r = &run->rng;
    uint64_t ix = run->index;
    int64_t now = run->now;
    int s = (int)rnd(r, NS), lk = (int)rnd(r, NL);
    size_t slen = rnd(r, 100) == 0 ? 0 : 2;
    bool changed = false;
    int rc, want;
    EV.count = 0;
    M.nev = 0;
    uint32_t op = rnd(r, 100);
    if (op < 8) { /* open */
        int64_t ttl = rnd(r, 50) == 0 ? 0 : 200 + rnd(r, 2000), exp = 0;
        rc = locks_session_open(&L, ix, now, SNAME[s], slen, ttl, &exp);
        if (slen == 0 || ttl < 1)
            want = SM_E_BADARG;
        else if (M.s[s].open)
            want = M.s[s].expires_ms <= now ? SM_E_TRYAGAIN : SM_E_EXISTS;
        else if (m_count(0) >= (int)CONFIG.sessions_max)
            want = SM_E_BUSY;
        else {
            want = 0;
            M.s[s] = (struct m_session){true, ttl, m_add(now, ttl)};
            changed = true;
            cr_assert_eq(exp, M.s[s].expires_ms);
        }
    } else if (op < 20) { /* heartbeat */
        int64_t exp = 0;
        rc = locks_session_heartbeat(&L, ix, now, SNAME[s], slen, &exp);
        want = slen == 0 ? SM_E_BADARG : !m_live(s, now) ? SM_E_NOTFOUND : 0;
        if (want == 0) {
            M.s[s].expires_ms = m_add(now, M.s[s].ttl_ms);
            changed = true;
            cr_assert_eq(exp, M.s[s].expires_ms);
        }
    } else if (op < 23) { /* close */
        rc = locks_session_close(&L, ix, now, SNAME[s], slen, &EV);
        want = slen == 0 ? SM_E_BADARG : !m_live(s, now) ? SM_E_NOTFOUND : 0;
        if (want == 0) {
            bool ending[NS] = {false};
            ending[s] = true;
            m_sweep(ending, now, false);
            M.s[s].open = false;
            m_wake_all(ix, now);
            changed = true;
        }
    } else if (op < 58) { /* acquire */
        struct locks_acquire a;
        random_acquire(r, &a, lk, &run->next_wid);
        struct locks_grant g, mg;
        /* Every other call goes through locks_acquire_keyed with the hashes given, as
         * engine_apply_batch calls it: both must behave as the model says. */
        struct locks_ref keys = {SNAME[s], slen, LNAME[lk], 2, 0, 0, 0, 0};
        if (step % 2) {
            keys.session_hash = locks_key_hash(SNAME[s], slen);
            keys.name_hash = locks_key_hash(LNAME[lk], 2);
        }
        rc = step % 2 ? locks_acquire_keyed(&L, ix, now, &keys, &a, &g)
                      : locks_acquire(&L, ix, now, SNAME[s], slen, LNAME[lk], 2, &a, &g);
        want = slen == 0 ? (memset(&mg, 0, sizeof mg), SM_E_BADARG)
                         : m_acquire(ix, now, s, lk, &a, &mg, &changed);
        if (rc == 0 && want == 0)
            cr_assert(g.status == mg.status && g.token == mg.token && g.permit_id == mg.permit_id &&
                          g.count == mg.count,
                      "step %llu: grant differs: status %d/%d token %llu/%llu",
                      (unsigned long long)step, g.status, mg.status, (unsigned long long)g.token,
                      (unsigned long long)mg.token);
    } else if (op < 80) { /* release or renew */
        uint64_t owner = rnd(r, 2), permit = pick_permit(r, lk);
        struct locks_ref ref = {SNAME[s], slen, LNAME[lk], 2, owner, permit, 0, 0};
        if (step % 2) { /* hashes given, as engine_apply_batch does */
            ref.session_hash = locks_key_hash(SNAME[s], slen);
            ref.name_hash = locks_key_hash(LNAME[lk], 2);
        }
        bool renew = rnd(r, 4) == 0;
        int64_t lease = rnd(r, 3) == 0 ? 0 : 1 + rnd(r, 400);
        uint32_t remaining = 0;
        int64_t exp = 0;
        rc = renew ? locks_renew(&L, ix, now, &ref, lease, &exp)
                   : locks_release(&L, ix, now, &ref, &remaining, &EV);
        int h = -1;
        if (slen == 0)
            want = SM_E_BADARG;
        else if (!m_live(s, now))
            want = SM_E_NOTFOUND;
        else if (!M.k[lk].kind || (h = m_find_holder(lk, s, owner, permit, now)) < 0)
            want = SM_E_NOTHELD;
        else
            want = 0;
        if (want == 0) {
            struct m_grant *mh = &M.k[lk].h[h];
            changed = true;
            if (renew) {
                mh->lease_ms = lease;
                mh->expires_ms = lease ? m_add(now, lease) : INT64_MAX;
                cr_assert_eq(exp, mh->expires_ms);
            } else if (mh->count > 1) {
                mh->count--;
                cr_assert_eq(remaining, mh->count);
            } else {
                m_remove_hold(lk, h);
                m_wake_all(ix, now);
                cr_assert_eq(remaining, 0);
            }
        }
    } else if (op < 85) { /* cancel */
        uint64_t wid = pick_waiter(r);
        rc = locks_cancel(&L, ix, now, SNAME[s], slen, wid, &EV);
        want = slen == 0 ? SM_E_BADARG : SM_E_NOTFOUND; /* a live session's wait is found below */
        for (int k = 0; k < NL && slen && m_live(s, now); k++)
            for (int i = 0; i < M.k[k].nw; i++)
                if (M.k[k].w[i].waiter_id == wid && M.k[k].w[i].session == s) {
                    m_remove_wait(k, i, LOCKS_EVENT_CANCELLED);
                    m_wake_all(ix, now);
                    want = 0;
                    changed = true;
                    break;
                }
    } else { /* tick */
        rc = locks_tick(&L, ix, now, &EV);
        want = 0;
        bool ending[NS] = {false};
        for (int i = 0; i < NS; i++) {
            ending[i] = M.s[i].open && M.s[i].expires_ms <= now;
            changed |= ending[i];
        }
        changed |= m_sweep(ending, now, true);
        for (int i = 0; i < NS; i++)
            if (ending[i])
                M.s[i].open = false;
        m_wake_all(ix, now);
    }
    cr_assert_eq(rc, want, "step %llu op %u: %d, model %d", (unsigned long long)step, op, rc, want);
    compare_events(step);
    return changed;
}

static void run_seed(uint64_t seed, uint64_t steps)
{
    memset(&M, 0, sizeof M);
    cr_assert_eq(locks_init(&L, &CONFIG), 0);
    struct run run = {
        .rng = {seed * 0x9e3779b97f4a7c15ULL + 1}, .index = 1, .now = 0, .next_wid = 1};
    for (uint64_t step = 0; step < steps; step++) {
        if (step_once(&run, step))
            run.index += 1 + rnd(&run.rng, 3); /* log indexes have gaps (other engine records) */
        run.now += rnd(&run.rng, 12);
        compare_state(step);
        if (step % 2500 == 2499)
            round_trip();
    }
    locks_free(&L);
}

Test(locks_model, matches_the_reference_over_400k_seeded_steps)
{
    for (uint64_t seed = 1; seed <= 8; seed++)
        run_seed(seed, 50000);
}

Test(locks_model, long_run_with_one_seed)
{
    run_seed(77, 100000);
}
