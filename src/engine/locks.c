/*
 * The lock service state machine (see locks.h for the contract, docs/locks.md for the semantics
 * and the fencing argument).
 *
 * Three fixed tables, each with a free list and a hash index:
 *   sessions  by id           (sm_index over XXH3 of the id)
 *   locks     by name         (a row exists only while the lock has a holder or a waiter)
 *   entries   holds and waits (waits also indexed by waiter id, for cancel)
 * An entry sits on two doubly linked lists: its lock's holder list (grant order, so tokens never
 * decrease along it) or wait queue (FIFO), and its session's list (for close and expiry).
 * Waking is deferred: a call that removes entries marks their locks dirty and wakes them once at
 * the end, after every removal, so a grant never goes to a waiter that the same call removes
 * and a lock is granted at most once per call except to grants held together (docs/locks.md).
 *
 * Snapshot format (all integers little-endian; str8 = u8 length + bytes), canonical: sessions
 * sorted by id, locks by name (bytewise, shorter first on a common prefix), holders in grant
 * order, waiters in queue order. Nothing in it depends on row numbers.
 *
 *   u32 magic "LCK1"   u16 version (1)   u64 index_min
 *   u32 sessions  { str8 id  i64 ttl_ms  i64 expires_ms }
 *   u32 locks     { str8 name  u8 kind  u32 permits  u32 holders  u32 waiters
 *                   holders { u32 session_ordinal  u8 type  u64 owner  u64 token  u64 permit_id
 *                             u32 count  i64 lease_ms  i64 expires_ms }
 *                   waiters { u32 session_ordinal  u8 type  u64 owner  u64 waiter_id
 *                             i64 lease_ms  i64 deadline_ms } }
 *
 * There is no checksum here: the engine's snapshot container checksums the whole stream; this
 * loader validates every field and every invariant instead, so any byte string is safe to load.
 */
#include "engine/locks.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#define XXH_INLINE_ALL /* session ids and lock names are short: inlined XXH3 is faster */
#include <xxhash.h>

#include "util/error.h"

#define NIL           UINT32_MAX
#define LOCKS_MAGIC   0x314b434cU /* "LCK1" */
#define LOCKS_VERSION 1

enum entry_state { ENTRY_FREE = 0, ENTRY_HELD = 1, ENTRY_QUEUED = 2 };

/* An open session. id_len == 0 marks a free row (next_free links it). */
struct locks_session {
    uint64_t hash;
    int64_t ttl_ms;
    int64_t expires_ms; /* the lease: gone at expires_ms <= now */
    uint32_t entries;   /* head of its entry list */
    uint32_t next_free;
    uint8_t id_len;
    bool dying; /* scratch during a tick */
    uint8_t id[SM_KEY_BYTES_MAX];
};

/* A lock with at least one holder or waiter. name_len == 0 marks a free row. */
struct locks_lock {
    uint64_t hash;
    uint32_t holders_head, holders_tail, holders;
    uint32_t waiters_head, waiters_tail, waiters;
    uint32_t permits; /* semaphores: N; 0 otherwise */
    uint32_t next_free;
    uint8_t kind;
    uint8_t name_len;
    bool dirty; /* on the dirty stack, to be woken at the end of the call */
    uint8_t name[SM_KEY_BYTES_MAX];
};

/* A grant (HELD) or a queued wait (QUEUED). A waiter keeps its row when granted. */
struct locks_entry {
    uint64_t owner;
    uint64_t token;     /* HELD */
    uint64_t permit_id; /* HELD on a semaphore */
    uint64_t waiter_id; /* QUEUED */
    int64_t expires_ms; /* HELD: lease end (INT64_MAX: none); QUEUED: deadline */
    int64_t lease_ms;   /* the lease asked for (applied at grant, and kept for the snapshot) */
    uint32_t lock, session;
    uint32_t prev, next;           /* in the lock's holder list or wait queue */
    uint32_t sess_prev, sess_next; /* in the session's list; next_free when free */
    uint32_t count;                /* HELD exclusive: reentry depth */
    uint8_t type;                  /* enum locks_type */
    uint8_t state;                 /* enum entry_state */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const void *p, size_t n)
{
    return XXH3_64bits(p, n);
}

uint64_t locks_key_hash(const void *key, size_t len)
{
    return hash_bytes(key, len);
}

/* A caller's precomputed hash (locks_ref), or 0: compute it here. A key whose hash really is 0
 * is hashed again to 0, so the two paths never disagree. */
static uint64_t hash_given(uint64_t given, const void *p, size_t n)
{
    return given != 0 ? given : hash_bytes(p, n);
}

static uint64_t hash_waiter(uint64_t waiter_id)
{
    return XXH3_64bits(&waiter_id, sizeof waiter_id);
}

/* now + d, saturating below INT64_MAX (which means "no lease"), so no stamped time can overflow. */
static int64_t add_ms(int64_t now_ms, int64_t d_ms)
{
    int64_t r;
    if (__builtin_add_overflow(now_ms, d_ms, &r) || r == INT64_MAX)
        return INT64_MAX - 1;
    return r;
}

static bool key_ok(size_t len)
{
    return len >= 1 && len <= SM_KEY_BYTES_MAX;
}

static enum locks_kind kind_of(uint8_t type)
{
    switch (type) {
    case LOCKS_EXCLUSIVE:
        return LOCKS_KIND_EXCLUSIVE;
    case LOCKS_READ:
    case LOCKS_WRITE:
        return LOCKS_KIND_RW;
    case LOCKS_PERMIT:
        return LOCKS_KIND_SEMAPHORE;
    default:
        UNREACHABLE();
    }
}

static void index_check(struct locks *l, uint64_t index)
{
    /* One state change per record; see the fencing argument in docs/locks.md. */
    ASSERT(index >= l->index_min);
    ASSERT(index <= SM_LOCK_INDEX_MAX);
}

static void changed(struct locks *l, uint64_t index)
{
    l->index_min = index + 1;
}

static void expiry_note(struct locks *l, int64_t at_ms)
{
    if (at_ms < l->expiry_min_ms)
        l->expiry_min_ms = at_ms;
}

struct key_ctx {
    const struct locks *l;
    const void *p;
    size_t n;
};

static bool session_eq(const void *ctx, uint32_t slot)
{
    const struct key_ctx *k = ctx;
    const struct locks_session *s = &k->l->sessions[slot];
    return s->id_len == k->n && memcmp(s->id, k->p, k->n) == 0;
}

static bool lock_eq(const void *ctx, uint32_t slot)
{
    const struct key_ctx *k = ctx;
    const struct locks_lock *lk = &k->l->locks[slot];
    return lk->name_len == k->n && memcmp(lk->name, k->p, k->n) == 0;
}

static bool waiter_eq(const void *ctx, uint32_t slot)
{
    const struct key_ctx *k = ctx;
    const struct locks_entry *e = &k->l->entries[slot];
    return e->state == ENTRY_QUEUED && e->waiter_id == *(const uint64_t *)k->p;
}

static uint32_t session_find(const struct locks *l, const void *id, size_t len, uint64_t hash)
{
    struct key_ctx k = {l, id, len};
    return sm_index_find(&l->session_index, hash, session_eq, &k);
}

static uint32_t session_lookup(const struct locks *l, const void *id, size_t len)
{
    return session_find(l, id, len, hash_bytes(id, len));
}

/* The live session with this id, or NIL: a session whose lease passed is gone already. */
static uint32_t session_live_hashed(const struct locks *l, const void *id, size_t len,
                                    uint64_t hash, int64_t now_ms)
{
    uint32_t s = session_find(l, id, len, hash);
    if (s != NIL && l->sessions[s].expires_ms <= now_ms)
        return NIL;
    return s;
}

static uint32_t session_live(const struct locks *l, const void *id, size_t len, int64_t now_ms)
{
    return session_live_hashed(l, id, len, hash_bytes(id, len), now_ms);
}

static uint32_t lock_find(const struct locks *l, const void *name, size_t len, uint64_t hash)
{
    struct key_ctx k = {l, name, len};
    return sm_index_find(&l->lock_index, hash, lock_eq, &k);
}

static uint32_t lock_lookup(const struct locks *l, const void *name, size_t len)
{
    return lock_find(l, name, len, hash_bytes(name, len));
}

static uint32_t waiter_lookup(const struct locks *l, uint64_t waiter_id)
{
    struct key_ctx k = {l, &waiter_id, sizeof waiter_id};
    return sm_index_find(&l->waiter_index, hash_waiter(waiter_id), waiter_eq, &k);
}

/* ---- init and free ------------------------------------------------------------------------ */

static void tables_reset(struct locks *l)
{
    /* Only rows below the high-water marks were ever written; the rest are still zero. */
    memset(l->sessions, 0, (size_t)l->session_high * sizeof *l->sessions);
    memset(l->locks, 0, (size_t)l->lock_high * sizeof *l->locks);
    memset(l->entries, 0, (size_t)l->entry_high * sizeof *l->entries);
    sm_index_clear(&l->session_index);
    sm_index_clear(&l->lock_index);
    sm_index_clear(&l->waiter_index);
    l->session_free = l->lock_free = l->entry_free = NIL;
    l->session_high = l->lock_high = l->entry_high = 0;
    l->dirty_count = 0;
    l->session_count = l->lock_count = l->hold_count = l->waiter_count = 0;
    l->index_min = 1;
    l->expiry_min_ms = INT64_MAX;
}

/* A free row: the newest freed one, else the next never-used one; NIL when the table is full. */
static uint32_t row_take(uint32_t *free_head, uint32_t *high, uint32_t max, uint32_t next_free)
{
    uint32_t r = *free_head;
    if (r != NIL) {
        *free_head = next_free;
        return r;
    }
    if (*high >= max)
        return NIL;
    return (*high)++;
}

static bool session_row_free(const struct locks *l)
{
    return l->session_free != NIL || l->session_high < l->config.sessions_max;
}

static bool lock_row_free(const struct locks *l)
{
    return l->lock_free != NIL || l->lock_high < l->config.locks_max;
}

static bool entry_row_free(const struct locks *l)
{
    return l->entry_free != NIL || l->entry_high < l->config.holds_max + l->config.waiters_max;
}

int locks_init(struct locks *l, const struct locks_config *config)
{
    ASSERT(l != NULL && config != NULL);
    memset(l, 0, sizeof *l);
    const struct locks_config *c = config;
    if (c->sessions_max == 0 || c->locks_max == 0 || c->holds_max == 0 || c->waiters_max == 0 ||
        c->permits_max == 0 || c->reentry_max == 0 || c->permits_max > SM_LOCK_PERMITS_MAX ||
        c->reentry_max > SM_LOCK_REENTRY_MAX || c->holds_max > UINT32_MAX / 2 - 1 ||
        c->waiters_max > UINT32_MAX / 2 - 1)
        return SM_E_BADARG;
    l->config = *c;
    size_t rows = (size_t)c->holds_max + c->waiters_max;
    l->sessions = calloc(c->sessions_max, sizeof *l->sessions);
    l->locks = calloc(c->locks_max, sizeof *l->locks);
    l->entries = calloc(rows, sizeof *l->entries);
    l->dirty = calloc(c->locks_max, sizeof *l->dirty);
    if (!l->sessions || !l->locks || !l->entries || !l->dirty ||
        sm_index_init(&l->session_index, c->sessions_max) != 0 ||
        sm_index_init(&l->lock_index, c->locks_max) != 0 ||
        sm_index_init(&l->waiter_index, c->waiters_max) != 0) {
        locks_free(l);
        return SM_E_NOMEM;
    }
    tables_reset(l);
    return 0;
}

void locks_reset(struct locks *l)
{
    ASSERT(l != NULL && l->sessions != NULL);
    tables_reset(l);
}

void locks_free(struct locks *l)
{
    free(l->sessions);
    free(l->locks);
    free(l->entries);
    free(l->dirty);
    if (l->session_index.cells)
        sm_index_free(&l->session_index);
    if (l->lock_index.cells)
        sm_index_free(&l->lock_index);
    if (l->waiter_index.cells)
        sm_index_free(&l->waiter_index);
    memset(l, 0, sizeof *l);
}

/* ---- rows and lists ----------------------------------------------------------------------- */

/* Takes a free session row and indexes it; the caller checked session_row_free(). */
static uint32_t session_add(struct locks *l, const void *id, size_t len, int64_t ttl_ms,
                            int64_t expires_ms)
{
    uint32_t s = row_take(&l->session_free, &l->session_high, l->config.sessions_max,
                          l->session_free != NIL ? l->sessions[l->session_free].next_free : NIL);
    ASSERT(s != NIL);
    struct locks_session *row = &l->sessions[s];
    memset(row, 0, sizeof *row);
    memcpy(row->id, id, len);
    row->id_len = (uint8_t)len;
    row->hash = hash_bytes(id, len);
    row->ttl_ms = ttl_ms;
    row->expires_ms = expires_ms;
    row->entries = NIL;
    row->next_free = NIL;
    int rc = sm_index_insert(&l->session_index, row->hash, s);
    ASSERT(rc == 0); /* the index holds sessions_max entries, as many as there are rows */
    l->session_count++;
    expiry_note(l, expires_ms);
    return s;
}

static void session_drop(struct locks *l, uint32_t s)
{
    struct locks_session *row = &l->sessions[s];
    ASSERT(row->id_len != 0 && row->entries == NIL);
    sm_index_remove(&l->session_index, row->hash, s);
    memset(row, 0, sizeof *row);
    row->next_free = l->session_free;
    l->session_free = s;
    l->session_count--;
}

/* hash is the name's (hash_bytes): a wrong one would leave the lock unfindable, which
 * locks_check (run by the tests after every step) reports. */
static uint32_t lock_add(struct locks *l, const void *name, size_t len, uint64_t hash, uint8_t kind,
                         uint32_t permits)
{
    uint32_t k = row_take(&l->lock_free, &l->lock_high, l->config.locks_max,
                          l->lock_free != NIL ? l->locks[l->lock_free].next_free : NIL);
    ASSERT(k != NIL);
    struct locks_lock *lk = &l->locks[k];
    memset(lk, 0, sizeof *lk);
    memcpy(lk->name, name, len);
    lk->name_len = (uint8_t)len;
    lk->hash = hash;
    lk->kind = kind;
    lk->permits = permits;
    lk->holders_head = lk->holders_tail = lk->waiters_head = lk->waiters_tail = NIL;
    lk->next_free = NIL;
    int rc = sm_index_insert(&l->lock_index, lk->hash, k);
    ASSERT(rc == 0); /* locks_max index entries for locks_max rows */
    l->lock_count++;
    return k;
}

/* Frees a lock's row once nobody holds or waits: a token comes from the log index, so nothing
 * about the lock needs remembering for its next grant to carry a larger token. */
static void lock_drop_if_idle(struct locks *l, uint32_t k)
{
    struct locks_lock *lk = &l->locks[k];
    if (lk->holders != 0 || lk->waiters != 0 || lk->dirty)
        return;
    ASSERT(lk->holders_head == NIL && lk->waiters_head == NIL);
    sm_index_remove(&l->lock_index, lk->hash, k);
    memset(lk, 0, sizeof *lk);
    lk->next_free = l->lock_free;
    l->lock_free = k;
    l->lock_count--;
}

static void mark_dirty(struct locks *l, uint32_t k)
{
    if (l->locks[k].dirty)
        return;
    ASSERT(l->dirty_count < l->config.locks_max);
    l->locks[k].dirty = true;
    l->dirty[l->dirty_count++] = k;
}

/* Takes a free entry row for session s and lock k, linked on the session's list. */
static uint32_t entry_add(struct locks *l, uint32_t s, uint32_t k, uint8_t type, uint64_t owner)
{
    uint32_t e =
        row_take(&l->entry_free, &l->entry_high, l->config.holds_max + l->config.waiters_max,
                 l->entry_free != NIL ? l->entries[l->entry_free].sess_next : NIL);
    ASSERT(e != NIL);
    struct locks_entry *row = &l->entries[e];
    memset(row, 0, sizeof *row);
    row->session = s;
    row->lock = k;
    row->type = type;
    row->owner = owner;
    row->prev = row->next = NIL;
    row->sess_prev = NIL;
    row->sess_next = l->sessions[s].entries;
    if (row->sess_next != NIL)
        l->entries[row->sess_next].sess_prev = e;
    l->sessions[s].entries = e;
    return e;
}

/* Appends e at the tail of a lock list (holders or waiters). */
static void list_append(struct locks *l, uint32_t *head, uint32_t *tail, uint32_t e)
{
    struct locks_entry *row = &l->entries[e];
    row->prev = *tail;
    row->next = NIL;
    if (*tail != NIL)
        l->entries[*tail].next = e;
    else
        *head = e;
    *tail = e;
}

static void list_unlink(struct locks *l, uint32_t *head, uint32_t *tail, uint32_t e)
{
    struct locks_entry *row = &l->entries[e];
    if (row->prev != NIL)
        l->entries[row->prev].next = row->next;
    else
        *head = row->next;
    if (row->next != NIL)
        l->entries[row->next].prev = row->prev;
    else
        *tail = row->prev;
    row->prev = row->next = NIL;
}

static void event_add(struct locks_events *ev, enum locks_event_kind kind,
                      const struct locks_lock *lk, const struct locks_entry *e)
{
    /* cap >= waiters_max and every event is a distinct waiter leaving a queue. */
    ASSERT(ev->count < ev->cap);
    struct locks_event *out = &ev->items[ev->count++];
    out->kind = kind;
    out->waiter_id = e->waiter_id;
    out->token = kind == LOCKS_EVENT_GRANTED ? e->token : 0;
    out->permit_id = kind == LOCKS_EVENT_GRANTED ? e->permit_id : 0;
    out->name_len = lk->name_len;
    memcpy(out->name, lk->name, lk->name_len);
}

/* Removes an entry (a grant or a wait) and frees its row; its lock is marked for waking. A
 * removed wait gets its event (TIMEOUT or CANCELLED) here. */
static void entry_remove(struct locks *l, uint32_t e, struct locks_events *ev,
                         enum locks_event_kind why)
{
    struct locks_entry *row = &l->entries[e];
    struct locks_lock *lk = &l->locks[row->lock];
    if (row->state == ENTRY_QUEUED) {
        event_add(ev, why, lk, row);
        list_unlink(l, &lk->waiters_head, &lk->waiters_tail, e);
        sm_index_remove(&l->waiter_index, hash_waiter(row->waiter_id), e);
        lk->waiters--;
        l->waiter_count--;
    } else {
        ASSERT(row->state == ENTRY_HELD);
        list_unlink(l, &lk->holders_head, &lk->holders_tail, e);
        lk->holders--;
        l->hold_count--;
    }
    mark_dirty(l, row->lock);
    struct locks_session *s = &l->sessions[row->session];
    if (row->sess_prev != NIL)
        l->entries[row->sess_prev].sess_next = row->sess_next;
    else
        s->entries = row->sess_next;
    if (row->sess_next != NIL)
        l->entries[row->sess_next].sess_prev = row->sess_prev;
    memset(row, 0, sizeof *row);
    row->sess_next = l->entry_free;
    l->entry_free = e;
}

/* ---- granting ----------------------------------------------------------------------------- */

/* Makes entry e (already unlinked from any queue) a holder of lock k at `index`. Permits granted
 * to one semaphore by one record share the token and are ranked 0, 1, ... in grant order; they
 * are the tail of the holder list, since that list is in grant order. */
static void grant(struct locks *l, uint32_t k, uint32_t e, uint64_t index, int64_t now_ms)
{
    struct locks_lock *lk = &l->locks[k];
    struct locks_entry *row = &l->entries[e];
    ASSERT(lk->holders_tail == NIL || l->entries[lk->holders_tail].token <= index);
    row->state = ENTRY_HELD;
    row->token = index;
    row->count = 1;
    row->waiter_id = 0;
    row->permit_id = 0;
    if (lk->kind == LOCKS_KIND_SEMAPHORE) {
        uint64_t rank = 0;
        for (uint32_t h = lk->holders_tail; h != NIL && l->entries[h].token == index;
             h = l->entries[h].prev)
            rank++;
        ASSERT(rank < (1U << 16));
        row->permit_id = index << 16 | rank;
    }
    row->expires_ms = row->lease_ms ? add_ms(now_ms, row->lease_ms) : INT64_MAX;
    expiry_note(l, row->expires_ms);
    list_append(l, &lk->holders_head, &lk->holders_tail, e);
    lk->holders++;
    l->hold_count++;
}

static bool holder_is_writer(const struct locks *l, const struct locks_lock *lk)
{
    return lk->holders_head != NIL && l->entries[lk->holders_head].type == LOCKS_WRITE;
}

/* Whether a request of `type` could be granted ignoring the queue. */
static bool compatible(const struct locks *l, const struct locks_lock *lk, uint8_t type)
{
    switch (type) {
    case LOCKS_EXCLUSIVE:
    case LOCKS_WRITE:
        return lk->holders == 0;
    case LOCKS_READ:
        return !holder_is_writer(l, lk);
    case LOCKS_PERMIT:
        return lk->holders < lk->permits;
    default:
        UNREACHABLE();
    }
}

/* Grants the head of k's queue while it is compatible: one writer or exclusive waiter, or a run of
 * readers up to the next writer, or as many permit waiters as there are free permits. Strict
 * FIFO: a waiter that cannot go blocks every waiter behind it. */
static void wake(struct locks *l, uint32_t k, uint64_t index, int64_t now_ms,
                 struct locks_events *ev)
{
    struct locks_lock *lk = &l->locks[k];
    while (lk->waiters_head != NIL) {
        uint32_t e = lk->waiters_head;
        struct locks_entry *row = &l->entries[e];
        if (!compatible(l, lk, row->type))
            break;
        ASSERT(l->sessions[row->session].id_len != 0 && !l->sessions[row->session].dying);
        list_unlink(l, &lk->waiters_head, &lk->waiters_tail, e);
        sm_index_remove(&l->waiter_index, hash_waiter(row->waiter_id), e);
        lk->waiters--;
        l->waiter_count--;
        uint64_t waiter_id = row->waiter_id;
        grant(l, k, e, index, now_ms);
        row->waiter_id = waiter_id; /* for the event only */
        event_add(ev, LOCKS_EVENT_GRANTED, lk, row);
        row->waiter_id = 0;
    }
}

/* Wakes every lock the call marked, then frees the rows of those left idle. */
static void wake_dirty(struct locks *l, uint64_t index, int64_t now_ms, struct locks_events *ev)
{
    for (uint32_t i = 0; i < l->dirty_count; i++) {
        uint32_t k = l->dirty[i];
        ASSERT(l->locks[k].dirty);
        l->locks[k].dirty = false;
        wake(l, k, index, now_ms, ev);
        lock_drop_if_idle(l, k);
    }
    l->dirty_count = 0;
}

/* The holder entry of lock k for (session, owner) or, on a semaphore, (session, permit_id), whose
 * lease has not passed; NIL when there is none. */
static uint32_t holder_find(const struct locks *l, uint32_t k, uint32_t s, uint64_t owner,
                            uint64_t permit_id, int64_t now_ms)
{
    const struct locks_lock *lk = &l->locks[k];
    bool by_permit = lk->kind == LOCKS_KIND_SEMAPHORE;
    for (uint32_t h = lk->holders_head; h != NIL; h = l->entries[h].next) {
        const struct locks_entry *e = &l->entries[h];
        if (e->session != s || e->expires_ms <= now_ms)
            continue;
        if (by_permit ? e->permit_id == permit_id : e->owner == owner)
            return h;
    }
    return NIL;
}

static bool waiter_exists(const struct locks *l, uint32_t k, uint32_t s, uint64_t owner)
{
    for (uint32_t w = l->locks[k].waiters_head; w != NIL; w = l->entries[w].next)
        if (l->entries[w].session == s && l->entries[w].owner == owner)
            return true;
    return false;
}

/* ---- sessions ----------------------------------------------------------------------------- */

int locks_session_open(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                       size_t session_len, int64_t ttl_ms, int64_t *expires_ms)
{
    index_check(l, index);
    ASSERT(expires_ms != NULL);
    if (!key_ok(session_len) || ttl_ms < 1 || ttl_ms > SM_LOCK_TTL_MS_MAX)
        return SM_E_BADARG;
    uint32_t s = session_lookup(l, session, session_len);
    if (s != NIL) /* a lapsed session waits for the tick that ends it: retry after it */
        return l->sessions[s].expires_ms <= now_ms ? SM_E_TRYAGAIN : SM_E_EXISTS;
    if (!session_row_free(l))
        return SM_E_BUSY;
    *expires_ms = add_ms(now_ms, ttl_ms);
    session_add(l, session, session_len, ttl_ms, *expires_ms);
    changed(l, index);
    return 0;
}

int locks_session_heartbeat(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                            size_t session_len, int64_t *expires_ms)
{
    index_check(l, index);
    ASSERT(expires_ms != NULL);
    if (!key_ok(session_len))
        return SM_E_BADARG;
    uint32_t s = session_live(l, session, session_len, now_ms);
    if (s == NIL)
        return SM_E_NOTFOUND;
    struct locks_session *row = &l->sessions[s];
    row->expires_ms = add_ms(now_ms, row->ttl_ms);
    *expires_ms = row->expires_ms;
    changed(l, index);
    return 0;
}

/* Removes every entry of session s (waits first get CANCELLED events), then frees it. The locks it
 * touched are left dirty for the caller's wake_dirty. */
static void session_end(struct locks *l, uint32_t s, struct locks_events *ev)
{
    while (l->sessions[s].entries != NIL)
        entry_remove(l, l->sessions[s].entries, ev, LOCKS_EVENT_CANCELLED);
    session_drop(l, s);
}

int locks_session_close(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                        size_t session_len, struct locks_events *events)
{
    index_check(l, index);
    ASSERT(events != NULL && events->cap >= l->config.waiters_max);
    if (!key_ok(session_len))
        return SM_E_BADARG;
    uint32_t s = session_live(l, session, session_len, now_ms);
    if (s == NIL)
        return SM_E_NOTFOUND;
    /* Its waits go before anything is woken, so nothing is handed to the closing session. */
    session_end(l, s, events);
    wake_dirty(l, index, now_ms, events);
    changed(l, index);
    return 0;
}

/* ---- acquire ------------------------------------------------------------------------------ */

static int acquire_args_check(const struct locks *l, const struct locks_acquire *a)
{
    if (a->type < LOCKS_EXCLUSIVE || a->type > LOCKS_PERMIT)
        return SM_E_BADARG;
    if (a->wait_ms < 0 || a->wait_ms > SM_LOCK_TTL_MS_MAX || a->lease_ms < 0 ||
        a->lease_ms > SM_LOCK_TTL_MS_MAX)
        return SM_E_BADARG;
    if (a->wait_ms > 0 && a->waiter_id == 0)
        return SM_E_BADARG;
    if (a->type == LOCKS_PERMIT ? a->permits < 1 || a->permits > l->config.permits_max
                                : a->permits != 0)
        return SM_E_BADARG;
    if (a->reentrant && a->type != LOCKS_EXCLUSIVE)
        return SM_E_BADARG;
    return 0;
}

/* A holder's repeat acquire: one more level when reentrant, else EXISTS. */
static int acquire_again(struct locks *l, uint64_t index, uint32_t h, const struct locks_acquire *a,
                         struct locks_grant *g)
{
    struct locks_entry *e = &l->entries[h];
    if (!a->reentrant)
        return SM_E_EXISTS;
    if (e->count >= l->config.reentry_max)
        return SM_E_LIMIT;
    e->count++;
    g->status = LOCKS_GRANTED;
    g->token = e->token;
    g->count = e->count;
    changed(l, index);
    return 0;
}

static int acquire_queue(struct locks *l, uint64_t index, int64_t now_ms, uint32_t s, uint32_t k,
                         const struct locks_acquire *a, struct locks_grant *g)
{
    if (waiter_lookup(l, a->waiter_id) != NIL)
        return SM_E_EXISTS;
    if (a->type != LOCKS_PERMIT && waiter_exists(l, k, s, a->owner))
        return SM_E_EXISTS;
    if (l->waiter_count >= l->config.waiters_max || !entry_row_free(l))
        return SM_E_BUSY;
    uint32_t e = entry_add(l, s, k, (uint8_t)a->type, a->owner);
    struct locks_entry *row = &l->entries[e];
    struct locks_lock *lk = &l->locks[k];
    row->state = ENTRY_QUEUED;
    row->waiter_id = a->waiter_id;
    row->lease_ms = a->lease_ms;
    row->expires_ms = add_ms(now_ms, a->wait_ms);
    expiry_note(l, row->expires_ms);
    list_append(l, &lk->waiters_head, &lk->waiters_tail, e);
    lk->waiters++;
    l->waiter_count++;
    int rc = sm_index_insert(&l->waiter_index, hash_waiter(a->waiter_id), e);
    ASSERT(rc == 0); /* waiters_max index entries and waiter_count < waiters_max */
    g->status = LOCKS_QUEUED;
    changed(l, index);
    return 0;
}

int locks_acquire(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                  size_t session_len, const void *name, size_t name_len,
                  const struct locks_acquire *args, struct locks_grant *g)
{
    const struct locks_ref keys = {
        .session = session, .session_len = session_len, .name = name, .name_len = name_len};
    return locks_acquire_keyed(l, index, now_ms, &keys, args, g);
}

int locks_acquire_keyed(struct locks *l, uint64_t index, int64_t now_ms,
                        const struct locks_ref *keys, const struct locks_acquire *args,
                        struct locks_grant *g)
{
    index_check(l, index);
    ASSERT(keys != NULL && args != NULL && g != NULL);
    memset(g, 0, sizeof *g);
    const void *name = keys->name;
    size_t name_len = keys->name_len;
    if (!key_ok(keys->session_len) || !key_ok(name_len))
        return SM_E_BADARG;
    int rc = acquire_args_check(l, args);
    if (rc != 0)
        return rc;
    uint32_t s = session_live_hashed(
        l, keys->session, keys->session_len,
        hash_given(keys->session_hash, keys->session, keys->session_len), now_ms);
    if (s == NIL)
        return SM_E_NOTFOUND;
    uint8_t kind = (uint8_t)kind_of((uint8_t)args->type);
    uint64_t name_hash = hash_given(keys->name_hash, name, name_len);
    uint32_t k = lock_find(l, name, name_len, name_hash);
    if (k != NIL) {
        const struct locks_lock *lk = &l->locks[k];
        if (lk->kind != kind || lk->permits != args->permits)
            return SM_E_STATE;
        if (kind != LOCKS_KIND_SEMAPHORE) {
            uint32_t h = holder_find(l, k, s, args->owner, 0, now_ms);
            if (h != NIL)
                return acquire_again(l, index, h, args, g);
        }
        if (lk->waiters != 0 || !compatible(l, lk, (uint8_t)args->type))
            return args->wait_ms == 0 ? (g->status = LOCKS_NOT_GRANTED, 0)
                                      : acquire_queue(l, index, now_ms, s, k, args, g);
    }
    if (l->hold_count >= l->config.holds_max || !entry_row_free(l) ||
        (k == NIL && !lock_row_free(l)))
        return SM_E_BUSY;
    if (k == NIL)
        k = lock_add(l, name, name_len, name_hash, kind, args->permits);
    uint32_t e = entry_add(l, s, k, (uint8_t)args->type, args->owner);
    l->entries[e].lease_ms = args->lease_ms;
    grant(l, k, e, index, now_ms);
    g->status = LOCKS_GRANTED;
    g->token = l->entries[e].token;
    g->permit_id = l->entries[e].permit_id;
    g->count = 1;
    changed(l, index);
    return 0;
}

/* ---- release, renew, cancel --------------------------------------------------------------- */

/* Finds the live grant that ref names: 0 with *k and *h set, or an error. */
static int ref_find(const struct locks *l, int64_t now_ms, const struct locks_ref *ref, uint32_t *k,
                    uint32_t *h)
{
    if (!key_ok(ref->session_len) || !key_ok(ref->name_len))
        return SM_E_BADARG;
    uint32_t s =
        session_live_hashed(l, ref->session, ref->session_len,
                            hash_given(ref->session_hash, ref->session, ref->session_len), now_ms);
    if (s == NIL)
        return SM_E_NOTFOUND;
    *k = lock_find(l, ref->name, ref->name_len,
                   hash_given(ref->name_hash, ref->name, ref->name_len));
    if (*k == NIL)
        return SM_E_NOTHELD;
    *h = holder_find(l, *k, s, ref->owner, ref->permit_id, now_ms);
    return *h == NIL ? SM_E_NOTHELD : 0;
}

int locks_release(struct locks *l, uint64_t index, int64_t now_ms, const struct locks_ref *ref,
                  uint32_t *remaining, struct locks_events *events)
{
    index_check(l, index);
    ASSERT(ref != NULL && remaining != NULL);
    ASSERT(events != NULL && events->cap >= l->config.waiters_max);
    uint32_t k, h;
    int rc = ref_find(l, now_ms, ref, &k, &h);
    if (rc != 0)
        return rc;
    struct locks_entry *e = &l->entries[h];
    if (e->count > 1) {
        e->count--;
        *remaining = e->count;
    } else {
        entry_remove(l, h, events, LOCKS_EVENT_CANCELLED);
        wake_dirty(l, index, now_ms, events);
        *remaining = 0;
    }
    changed(l, index);
    return 0;
}

int locks_renew(struct locks *l, uint64_t index, int64_t now_ms, const struct locks_ref *ref,
                int64_t lease_ms, int64_t *expires_ms)
{
    index_check(l, index);
    ASSERT(ref != NULL && expires_ms != NULL);
    if (lease_ms < 0 || lease_ms > SM_LOCK_TTL_MS_MAX)
        return SM_E_BADARG;
    uint32_t k, h;
    int rc = ref_find(l, now_ms, ref, &k, &h);
    if (rc != 0)
        return rc;
    struct locks_entry *e = &l->entries[h];
    e->lease_ms = lease_ms;
    e->expires_ms = lease_ms ? add_ms(now_ms, lease_ms) : INT64_MAX;
    expiry_note(l, e->expires_ms);
    *expires_ms = e->expires_ms;
    changed(l, index);
    return 0;
}

int locks_cancel(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                 size_t session_len, uint64_t waiter_id, struct locks_events *events)
{
    index_check(l, index);
    ASSERT(events != NULL && events->cap >= l->config.waiters_max);
    if (!key_ok(session_len))
        return SM_E_BADARG;
    uint32_t s = session_live(l, session, session_len, now_ms);
    if (s == NIL)
        return SM_E_NOTFOUND;
    uint32_t e = waiter_lookup(l, waiter_id);
    if (e == NIL || l->entries[e].session != s)
        return SM_E_NOTFOUND;
    entry_remove(l, e, events, LOCKS_EVENT_CANCELLED);
    wake_dirty(l, index, now_ms, events);
    changed(l, index);
    return 0;
}

/* ---- tick --------------------------------------------------------------------------------- */

/* The earliest time anything expires, recomputed after a tick and a load. Rows at or above a
 * high-water mark were never taken (row_take is the only way in) and are still zero, so the walk
 * stops there: an empty lock service of a partition costs nothing, instead of a pass over (and
 * the page faults of) its whole tables, 256 times at a node's start. */
static void expiry_recompute(struct locks *l)
{
    int64_t m = INT64_MAX;
    for (uint32_t i = 0; i < l->session_high; i++)
        if (l->sessions[i].id_len != 0 && l->sessions[i].expires_ms < m)
            m = l->sessions[i].expires_ms;
    uint32_t rows = l->entry_high;
    for (uint32_t i = 0; i < rows; i++)
        if (l->entries[i].state != ENTRY_FREE && l->entries[i].expires_ms < m)
            m = l->entries[i].expires_ms;
    l->expiry_min_ms = m;
}

int locks_tick(struct locks *l, uint64_t index, int64_t now_ms, struct locks_events *events)
{
    index_check(l, index);
    ASSERT(events != NULL && events->cap >= l->config.waiters_max);
    if (now_ms < l->expiry_min_ms)
        return 0; /* nothing is due: the common tick costs one comparison */
    bool any = false;
    for (uint32_t i = 0; i < l->config.sessions_max; i++) {
        struct locks_session *s = &l->sessions[i];
        s->dying = s->id_len != 0 && s->expires_ms <= now_ms;
        any |= s->dying;
    }
    /* Every removal happens before any waking, so no grant goes to a wait or a session that this
     * tick ends, and a lock is handed over at most once. */
    uint32_t rows = l->config.holds_max + l->config.waiters_max;
    for (uint32_t i = 0; i < rows; i++) {
        struct locks_entry *e = &l->entries[i];
        if (e->state == ENTRY_FREE)
            continue;
        bool dying = l->sessions[e->session].dying;
        if (e->expires_ms <= now_ms || dying) {
            enum locks_event_kind why = e->expires_ms <= now_ms && e->state == ENTRY_QUEUED
                                            ? LOCKS_EVENT_TIMEOUT
                                            : LOCKS_EVENT_CANCELLED;
            entry_remove(l, i, events, why);
            any = true;
        }
    }
    for (uint32_t i = 0; i < l->config.sessions_max; i++)
        if (l->sessions[i].dying) {
            l->sessions[i].dying = false;
            session_end(l, i, events);
        }
    wake_dirty(l, index, now_ms, events);
    expiry_recompute(l);
    if (any)
        changed(l, index);
    return 0;
}

/* ---- reads -------------------------------------------------------------------------------- */

int locks_token_check(const struct locks *l, const void *name, size_t name_len, uint64_t token,
                      bool *current)
{
    ASSERT(current != NULL);
    *current = false;
    if (!key_ok(name_len))
        return SM_E_BADARG;
    uint32_t k = lock_lookup(l, name, name_len);
    if (k == NIL)
        return 0;
    for (uint32_t h = l->locks[k].holders_head; h != NIL; h = l->entries[h].next)
        if (l->entries[h].token == token) {
            *current = true;
            break;
        }
    return 0;
}

int locks_info(const struct locks *l, const void *name, size_t name_len, struct locks_info *info)
{
    ASSERT(info != NULL);
    memset(info, 0, sizeof *info);
    if (!key_ok(name_len))
        return SM_E_BADARG;
    uint32_t k = lock_lookup(l, name, name_len);
    if (k == NIL)
        return SM_E_NOTFOUND;
    const struct locks_lock *lk = &l->locks[k];
    info->kind = (enum locks_kind)lk->kind;
    info->permits = lk->permits;
    info->holders = lk->holders;
    info->waiters = lk->waiters;
    /* The holder list is in grant order, so its tail carries the newest token. */
    info->token_max = lk->holders_tail != NIL ? l->entries[lk->holders_tail].token : 0;
    return 0;
}

/* ---- snapshot: save ----------------------------------------------------------------------- */

static int bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c;
    return (an > bn) - (an < bn);
}

static int session_order(const void *a, const void *b, void *ctx)
{
    const struct locks *l = ctx;
    const struct locks_session *x = &l->sessions[*(const uint32_t *)a];
    const struct locks_session *y = &l->sessions[*(const uint32_t *)b];
    return bytes_cmp(x->id, x->id_len, y->id, y->id_len);
}

static int lock_order(const void *a, const void *b, void *ctx)
{
    const struct locks *l = ctx;
    const struct locks_lock *x = &l->locks[*(const uint32_t *)a];
    const struct locks_lock *y = &l->locks[*(const uint32_t *)b];
    return bytes_cmp(x->name, x->name_len, y->name, y->name_len);
}

static void save_lock(const struct locks *l, const struct locks_lock *lk, const uint32_t *ordinal,
                      struct sm_wbuf *w)
{
    sm_wbuf_str8(w, lk->name, lk->name_len);
    sm_wbuf_u8(w, lk->kind);
    sm_wbuf_u32(w, lk->permits);
    sm_wbuf_u32(w, lk->holders);
    sm_wbuf_u32(w, lk->waiters);
    for (uint32_t h = lk->holders_head; h != NIL; h = l->entries[h].next) {
        const struct locks_entry *e = &l->entries[h];
        sm_wbuf_u32(w, ordinal[e->session]);
        sm_wbuf_u8(w, e->type);
        sm_wbuf_u64(w, e->owner);
        sm_wbuf_u64(w, e->token);
        sm_wbuf_u64(w, e->permit_id);
        sm_wbuf_u32(w, e->count);
        sm_wbuf_i64(w, e->lease_ms);
        sm_wbuf_i64(w, e->expires_ms);
    }
    for (uint32_t q = lk->waiters_head; q != NIL; q = l->entries[q].next) {
        const struct locks_entry *e = &l->entries[q];
        sm_wbuf_u32(w, ordinal[e->session]);
        sm_wbuf_u8(w, e->type);
        sm_wbuf_u64(w, e->owner);
        sm_wbuf_u64(w, e->waiter_id);
        sm_wbuf_i64(w, e->lease_ms);
        sm_wbuf_i64(w, e->expires_ms);
    }
}

int locks_save(const struct locks *l, struct sm_wbuf *w)
{
    ASSERT(l->dirty_count == 0);
    const struct locks_config *c = &l->config;
    /* Sorting needs scratch; a snapshot is not the hot path, so it is allocated here. */
    uint32_t *sessions = malloc(((size_t)c->sessions_max + 1) * sizeof *sessions);
    uint32_t *ordinal = malloc(((size_t)c->sessions_max + 1) * sizeof *ordinal);
    uint32_t *locks = malloc(((size_t)c->locks_max + 1) * sizeof *locks);
    int rc = SM_E_NOMEM;
    if (!sessions || !ordinal || !locks)
        goto done;
    uint32_t ns = 0, nl = 0;
    for (uint32_t i = 0; i < c->sessions_max; i++)
        if (l->sessions[i].id_len != 0)
            sessions[ns++] = i;
    for (uint32_t i = 0; i < c->locks_max; i++)
        if (l->locks[i].name_len != 0)
            locks[nl++] = i;
    ASSERT(ns == l->session_count && nl == l->lock_count);
    qsort_r(sessions, ns, sizeof *sessions, session_order, (void *)l);
    qsort_r(locks, nl, sizeof *locks, lock_order, (void *)l);
    sm_wbuf_u32(w, LOCKS_MAGIC);
    sm_wbuf_u16(w, LOCKS_VERSION);
    sm_wbuf_u64(w, l->index_min);
    sm_wbuf_u32(w, ns);
    for (uint32_t i = 0; i < ns; i++) {
        const struct locks_session *s = &l->sessions[sessions[i]];
        ordinal[sessions[i]] = i;
        sm_wbuf_str8(w, s->id, s->id_len);
        sm_wbuf_i64(w, s->ttl_ms);
        sm_wbuf_i64(w, s->expires_ms);
    }
    sm_wbuf_u32(w, nl);
    for (uint32_t i = 0; i < nl; i++)
        save_lock(l, &l->locks[locks[i]], ordinal, w);
    rc = w->failed ? SM_E_NOMEM : 0;
done:
    free(sessions);
    free(ordinal);
    free(locks);
    return rc;
}

/* ---- snapshot: load ----------------------------------------------------------------------- */

static int load_sessions(struct locks *l, struct sm_rbuf *r)
{
    uint32_t n = sm_rbuf_u32(r);
    if (!sm_rbuf_ok(r))
        return SM_E_CORRUPT;
    if (n > l->config.sessions_max)
        return SM_E_BUSY;
    for (uint32_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *id = sm_rbuf_str8(r, &len);
        int64_t ttl_ms = sm_rbuf_i64(r);
        int64_t expires_ms = sm_rbuf_i64(r);
        if (!sm_rbuf_ok(r) || !key_ok(len) || ttl_ms < 1 || ttl_ms > SM_LOCK_TTL_MS_MAX)
            return SM_E_CORRUPT;
        /* Rows fill 0, 1, 2 ... so ordinal i is row i; ids must be strictly increasing. */
        if (i > 0 && bytes_cmp(l->sessions[i - 1].id, l->sessions[i - 1].id_len, id, len) >= 0)
            return SM_E_CORRUPT;
        uint32_t s = session_add(l, id, len, ttl_ms, expires_ms);
        ASSERT(s == i);
    }
    return 0;
}

/* Reads the fields every entry has and takes a row for it on lock k. */
static int load_entry(struct locks *l, struct sm_rbuf *r, uint32_t k, uint32_t *e)
{
    uint32_t ordinal = sm_rbuf_u32(r);
    uint8_t type = sm_rbuf_u8(r);
    uint64_t owner = sm_rbuf_u64(r);
    if (!sm_rbuf_ok(r) || ordinal >= l->session_count || type < LOCKS_EXCLUSIVE ||
        type > LOCKS_PERMIT || kind_of(type) != l->locks[k].kind)
        return SM_E_CORRUPT;
    if (!entry_row_free(l))
        return SM_E_BUSY;
    *e = entry_add(l, ordinal, k, type, owner);
    return 0;
}

static bool lease_ok(int64_t lease_ms, int64_t expires_ms)
{
    return lease_ms >= 0 && lease_ms <= SM_LOCK_TTL_MS_MAX &&
           (lease_ms == 0) == (expires_ms == INT64_MAX);
}

static int load_holder(struct locks *l, struct sm_rbuf *r, uint32_t k)
{
    uint32_t e;
    int rc = load_entry(l, r, k, &e);
    if (rc != 0)
        return rc;
    struct locks_entry *row = &l->entries[e];
    struct locks_lock *lk = &l->locks[k];
    row->state = ENTRY_HELD; /* the row is linked before validation, so a reset frees it */
    list_append(l, &lk->holders_head, &lk->holders_tail, e);
    lk->holders++;
    l->hold_count++;
    row->token = sm_rbuf_u64(r);
    row->permit_id = sm_rbuf_u64(r);
    row->count = sm_rbuf_u32(r);
    row->lease_ms = sm_rbuf_i64(r);
    row->expires_ms = sm_rbuf_i64(r);
    if (!sm_rbuf_ok(r) || !lease_ok(row->lease_ms, row->expires_ms))
        return SM_E_CORRUPT;
    if (row->type == LOCKS_EXCLUSIVE && row->count > l->config.reentry_max &&
        row->count <= SM_LOCK_REENTRY_MAX)
        return SM_E_BUSY; /* valid, but deeper than this configuration allows */
    return 0;             /* token, permit id and count are checked by locks_check */
}

static int load_waiter(struct locks *l, struct sm_rbuf *r, uint32_t k)
{
    uint32_t e;
    int rc = load_entry(l, r, k, &e);
    if (rc != 0)
        return rc;
    struct locks_entry *row = &l->entries[e];
    struct locks_lock *lk = &l->locks[k];
    row->state = ENTRY_QUEUED;
    list_append(l, &lk->waiters_head, &lk->waiters_tail, e);
    lk->waiters++;
    l->waiter_count++;
    row->waiter_id = sm_rbuf_u64(r);
    row->lease_ms = sm_rbuf_i64(r);
    row->expires_ms = sm_rbuf_i64(r);
    if (!sm_rbuf_ok(r) || row->waiter_id == 0 || row->lease_ms < 0 ||
        row->lease_ms > SM_LOCK_TTL_MS_MAX)
        return SM_E_CORRUPT;
    if (l->waiter_count > l->config.waiters_max)
        return SM_E_BUSY;
    if (waiter_lookup(l, row->waiter_id) != NIL)
        return SM_E_CORRUPT; /* waiter ids are unique */
    rc = sm_index_insert(&l->waiter_index, hash_waiter(row->waiter_id), e);
    ASSERT(rc == 0);
    return 0;
}

static int load_lock(struct locks *l, struct sm_rbuf *r, uint32_t i)
{
    size_t len;
    const uint8_t *name = sm_rbuf_str8(r, &len);
    uint8_t kind = sm_rbuf_u8(r);
    uint32_t permits = sm_rbuf_u32(r);
    uint32_t holders = sm_rbuf_u32(r);
    uint32_t waiters = sm_rbuf_u32(r);
    if (!sm_rbuf_ok(r) || !key_ok(len) || kind < LOCKS_KIND_EXCLUSIVE ||
        kind > LOCKS_KIND_SEMAPHORE || (uint64_t)holders + waiters == 0)
        return SM_E_CORRUPT;
    if (kind == LOCKS_KIND_SEMAPHORE ? permits < 1 || permits > SM_LOCK_PERMITS_MAX : permits != 0)
        return SM_E_CORRUPT;
    if (permits > l->config.permits_max)
        return SM_E_BUSY;
    if (i > 0 && bytes_cmp(l->locks[i - 1].name, l->locks[i - 1].name_len, name, len) >= 0)
        return SM_E_CORRUPT;
    uint32_t k = lock_add(l, name, len, hash_bytes(name, len), kind, permits);
    ASSERT(k == i);
    /* Each record is at least 29 bytes: a count larger than the bytes left is a lie, caught
     * before it can spin a loop for billions of rounds. */
    if ((uint64_t)holders + waiters > sm_rbuf_left(r) / 29 + 1)
        return SM_E_CORRUPT;
    for (uint32_t h = 0; h < holders; h++) {
        int rc = load_holder(l, r, k);
        if (rc != 0)
            return rc;
    }
    for (uint32_t q = 0; q < waiters; q++) {
        int rc = load_waiter(l, r, k);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int load_body(struct locks *l, struct sm_rbuf *r)
{
    uint32_t magic = sm_rbuf_u32(r);
    uint16_t version = sm_rbuf_u16(r);
    uint64_t index_min = sm_rbuf_u64(r);
    if (!sm_rbuf_ok(r) || magic != LOCKS_MAGIC || version != LOCKS_VERSION || index_min < 1 ||
        index_min > SM_LOCK_INDEX_MAX + 1)
        return SM_E_CORRUPT;
    l->index_min = index_min;
    int rc = load_sessions(l, r);
    if (rc != 0)
        return rc;
    uint32_t n = sm_rbuf_u32(r);
    if (!sm_rbuf_ok(r))
        return SM_E_CORRUPT;
    if (n > l->config.locks_max)
        return SM_E_BUSY;
    for (uint32_t i = 0; i < n; i++) {
        rc = load_lock(l, r, i);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int locks_load(struct locks *l, struct sm_rbuf *r)
{
    ASSERT(l->sessions != NULL && r != NULL);
    tables_reset(l);
    int rc = load_body(l, r);
    if (rc == 0) {
        expiry_recompute(l);
        char why[160];
        rc = locks_check(l, why, sizeof why) == 0 ? 0 : SM_E_CORRUPT;
    }
    if (rc != 0)
        tables_reset(l);
    return rc;
}

/* ---- invariants --------------------------------------------------------------------------- */

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, why_len, __VA_ARGS__);                                                   \
            return SM_E_CORRUPT;                                                                   \
        }                                                                                          \
    } while (0)

static int check_sessions(const struct locks *l, char *why, size_t why_len)
{
    uint32_t used = 0, free_rows = 0;
    CHECK(l->session_high <= l->config.sessions_max, "session high-water %u", l->session_high);
    /* Rows above the high-water mark were never taken: the walks stop there (expiry_recompute). */
    for (uint32_t i = 0; i < l->session_high; i++) {
        const struct locks_session *s = &l->sessions[i];
        if (s->id_len == 0)
            continue;
        used++;
        CHECK(key_ok(s->id_len) && !s->dying, "session %u: bad id length or left dying", i);
        CHECK(s->ttl_ms >= 1 && s->ttl_ms <= SM_LOCK_TTL_MS_MAX, "session %u: ttl out of range", i);
        CHECK(session_lookup(l, s->id, s->id_len) == i, "session %u: index does not find it", i);
        CHECK(s->expires_ms >= l->expiry_min_ms, "session %u: expires before expiry_min", i);
    }
    for (uint32_t f = l->session_free; f != NIL && free_rows <= l->config.sessions_max;
         f = l->sessions[f].next_free) {
        CHECK(l->sessions[f].id_len == 0, "session free list holds a used row %u", f);
        free_rows++;
    }
    CHECK(used == l->session_count, "session_count %u but %u rows used", l->session_count, used);
    free_rows += l->config.sessions_max - l->session_high;
    CHECK(used + free_rows == l->config.sessions_max, "session free list has %u rows", free_rows);
    CHECK(l->session_index.count == used, "session index has %u entries", l->session_index.count);
    return 0;
}

/* One holder of lock k; *prev_token and *prev_permit carry the previous holder's values. */
static int check_holder(const struct locks *l, uint32_t k, uint32_t h, uint64_t *prev_token,
                        uint64_t *prev_permit, char *why, size_t why_len)
{
    const struct locks_lock *lk = &l->locks[k];
    const struct locks_entry *e = &l->entries[h];
    CHECK(e->state == ENTRY_HELD && e->lock == k, "lock %u: holder %u not held or not its own", k,
          h);
    CHECK(kind_of(e->type) == lk->kind, "lock %u: holder %u of the wrong type", k, h);
    CHECK(e->session < l->config.sessions_max && l->sessions[e->session].id_len != 0,
          "lock %u: holder %u belongs to no open session", k, h);
    CHECK(e->token >= 1 && e->token < l->index_min, "lock %u: token %llu not below index_min", k,
          (unsigned long long)e->token);
    CHECK(e->token >= *prev_token, "lock %u: tokens decrease along the holder list", k);
    CHECK(lease_ok(e->lease_ms, e->expires_ms) && e->expires_ms >= l->expiry_min_ms,
          "lock %u: holder %u lease inconsistent", k, h);
    CHECK(e->waiter_id == 0, "lock %u: holder %u keeps a waiter id", k, h);
    if (lk->kind == LOCKS_KIND_SEMAPHORE) {
        CHECK(e->permit_id >> 16 == e->token && e->permit_id > *prev_permit && e->count == 1,
              "lock %u: permit id %llu not (token << 16 | rank) in order", k,
              (unsigned long long)e->permit_id);
    } else {
        uint32_t count_max = lk->kind == LOCKS_KIND_EXCLUSIVE ? l->config.reentry_max : 1;
        CHECK(e->permit_id == 0 && e->count >= 1 && e->count <= count_max,
              "lock %u: holder %u count %u or permit id wrong", k, h, e->count);
    }
    *prev_token = e->token;
    *prev_permit = e->permit_id;
    return 0;
}

static int check_waiter(const struct locks *l, uint32_t k, uint32_t q, char *why, size_t why_len)
{
    const struct locks_entry *e = &l->entries[q];
    CHECK(e->state == ENTRY_QUEUED && e->lock == k, "lock %u: waiter %u not queued here", k, q);
    CHECK(kind_of(e->type) == l->locks[k].kind, "lock %u: waiter %u of the wrong type", k, q);
    CHECK(e->session < l->config.sessions_max && l->sessions[e->session].id_len != 0,
          "lock %u: waiter %u belongs to no open session", k, q);
    CHECK(e->waiter_id != 0 && waiter_lookup(l, e->waiter_id) == q,
          "lock %u: waiter %u not found by its id", k, q);
    CHECK(e->lease_ms >= 0 && e->lease_ms <= SM_LOCK_TTL_MS_MAX, "lock %u: waiter lease", k);
    CHECK(e->expires_ms >= l->expiry_min_ms, "lock %u: deadline before expiry_min", k);
    CHECK(e->token == 0 && e->permit_id == 0 && e->count == 0, "lock %u: waiter has a grant", k);
    return 0;
}

/* Walks one lock's two lists, checking links, counts, the per-kind holder rules and that the
 * head of the queue really cannot be granted (else a wake was missed). */
static int check_lock(const struct locks *l, uint32_t k, char *why, size_t why_len)
{
    const struct locks_lock *lk = &l->locks[k];
    uint32_t rows = l->config.holds_max + l->config.waiters_max;
    CHECK(key_ok(lk->name_len) && !lk->dirty, "lock %u: bad name or left dirty", k);
    CHECK(lk->kind >= LOCKS_KIND_EXCLUSIVE && lk->kind <= LOCKS_KIND_SEMAPHORE, "lock %u: kind", k);
    CHECK(lk->kind == LOCKS_KIND_SEMAPHORE
              ? lk->permits >= 1 && lk->permits <= l->config.permits_max
              : lk->permits == 0,
          "lock %u: permits %u", k, lk->permits);
    CHECK(lock_lookup(l, lk->name, lk->name_len) == k, "lock %u: index does not find it", k);
    CHECK(lk->holders + lk->waiters > 0, "lock %u: idle but not freed", k);
    uint32_t n = 0, prev = NIL, writers = 0;
    uint64_t prev_token = 0, prev_permit = 0;
    for (uint32_t h = lk->holders_head; h != NIL && n <= rows; prev = h, h = l->entries[h].next) {
        CHECK(h < rows && l->entries[h].prev == prev, "lock %u: holder list links broken", k);
        int rc = check_holder(l, k, h, &prev_token, &prev_permit, why, why_len);
        if (rc != 0)
            return rc;
        writers += l->entries[h].type == LOCKS_WRITE || l->entries[h].type == LOCKS_EXCLUSIVE;
        n++;
    }
    CHECK(n == lk->holders && lk->holders_tail == prev, "lock %u: holder count or tail", k);
    CHECK(writers == 0 || lk->holders == 1, "lock %u: an exclusive holder is not alone", k);
    CHECK(lk->kind != LOCKS_KIND_SEMAPHORE || lk->holders <= lk->permits,
          "lock %u: %u permits held of %u", k, lk->holders, lk->permits);
    n = 0;
    prev = NIL;
    for (uint32_t q = lk->waiters_head; q != NIL && n <= rows; prev = q, q = l->entries[q].next) {
        CHECK(q < rows && l->entries[q].prev == prev, "lock %u: wait queue links broken", k);
        int rc = check_waiter(l, k, q, why, why_len);
        if (rc != 0)
            return rc;
        n++;
    }
    CHECK(n == lk->waiters && lk->waiters_tail == prev, "lock %u: waiter count or tail", k);
    CHECK(lk->waiters_head == NIL || !compatible(l, lk, l->entries[lk->waiters_head].type),
          "lock %u: the head waiter could be granted (missed wake)", k);
    return 0;
}

static int check_locks(const struct locks *l, uint32_t *holds, uint32_t *waits, char *why,
                       size_t why_len)
{
    uint32_t used = 0, free_rows = 0;
    CHECK(l->lock_high <= l->config.locks_max, "lock high-water %u", l->lock_high);
    for (uint32_t k = 0; k < l->lock_high; k++) {
        if (l->locks[k].name_len == 0)
            continue;
        used++;
        int rc = check_lock(l, k, why, why_len);
        if (rc != 0)
            return rc;
        *holds += l->locks[k].holders;
        *waits += l->locks[k].waiters;
    }
    for (uint32_t f = l->lock_free; f != NIL && free_rows <= l->config.locks_max;
         f = l->locks[f].next_free) {
        CHECK(l->locks[f].name_len == 0, "lock free list holds a used row %u", f);
        free_rows++;
    }
    CHECK(used == l->lock_count, "lock_count %u but %u rows used", l->lock_count, used);
    free_rows += l->config.locks_max - l->lock_high;
    CHECK(used + free_rows == l->config.locks_max, "lock free list has %u rows", free_rows);
    CHECK(l->lock_index.count == used, "lock index has %u entries", l->lock_index.count);
    return 0;
}

/* Every used entry is on exactly its session's list, and the free list holds the rest. */
static int check_entries(const struct locks *l, char *why, size_t why_len)
{
    uint32_t rows = l->config.holds_max + l->config.waiters_max;
    uint32_t used = 0, listed = 0, free_rows = 0;
    CHECK(l->entry_high <= rows, "entry high-water %u", l->entry_high);
    for (uint32_t i = 0; i < l->entry_high; i++)
        used += l->entries[i].state != ENTRY_FREE;
    for (uint32_t s = 0; s < l->session_high; s++) {
        if (l->sessions[s].id_len == 0)
            continue;
        uint32_t prev = NIL;
        for (uint32_t e = l->sessions[s].entries; e != NIL && listed <= rows;
             prev = e, e = l->entries[e].sess_next) {
            CHECK(e < rows && l->entries[e].session == s && l->entries[e].sess_prev == prev &&
                      l->entries[e].state != ENTRY_FREE,
                  "session %u: entry list broken at %u", s, e);
            listed++;
        }
    }
    for (uint32_t f = l->entry_free; f != NIL && free_rows <= rows; f = l->entries[f].sess_next) {
        CHECK(f < rows && l->entries[f].state == ENTRY_FREE, "entry free list broken at %u", f);
        free_rows++;
    }
    CHECK(listed == used, "%u entries used but %u on session lists", used, listed);
    free_rows += rows - l->entry_high;
    CHECK(used + free_rows == rows, "entry free list has %u rows", free_rows);
    CHECK(used == l->hold_count + l->waiter_count, "%u entries used, counts say %u", used,
          l->hold_count + l->waiter_count);
    return 0;
}

int locks_check(const struct locks *l, char *why, size_t why_len)
{
    ASSERT(why != NULL && why_len > 0);
    why[0] = '\0';
    CHECK(l->dirty_count == 0, "dirty locks left after a call");
    CHECK(l->index_min >= 1 && l->index_min <= SM_LOCK_INDEX_MAX + 1, "index_min out of range");
    int rc = check_sessions(l, why, why_len);
    if (rc != 0)
        return rc;
    uint32_t holds = 0, waits = 0;
    rc = check_locks(l, &holds, &waits, why, why_len);
    if (rc != 0)
        return rc;
    CHECK(holds == l->hold_count, "hold_count %u but locks hold %u", l->hold_count, holds);
    CHECK(waits == l->waiter_count && waits <= l->config.waiters_max,
          "waiter_count %u but locks queue %u", l->waiter_count, waits);
    CHECK(l->waiter_index.count == waits, "waiter index has %u entries", l->waiter_index.count);
    return check_entries(l, why, why_len);
}
