/*
 * The lock service of one partition (DESIGN.md section 5 "Locks"): sessions with leases,
 * exclusive locks (optionally reentrant), read-write locks, and semaphores of N permits, each
 * grant carrying a 64-bit fencing token. It is a pure state machine inside the engine: no clock,
 * no I/O, no allocation after locks_init. Every mutating call takes the log index of the record
 * being applied and the leader's stamped time, so every replica that applies the same records
 * reaches the same state, byte for byte (locks_save).
 *
 *   session (id, ttl, lease end) ---< entry >--- lock (name, kind)
 *                                     |
 *                          held (token, lease end)  or  queued (waiter id, deadline)
 *
 * Fencing: the token of a grant is the log index of the record that made it. Indexes strictly
 * increase for the whole life of a partition (failovers and moves included), and a lock is
 * granted at most once per record except for grants that are held together (several readers,
 * several permits woken by one release), which share the token. So tokens strictly increase per
 * lock with no counter to remember when a lock's row is freed. docs/locks.md has the argument.
 *
 * Waking: when a release, close, cancel or tick hands a lock to queued waiters, the call appends
 * one event per waiter that leaves a queue (granted, timed out, cancelled) to the caller's event
 * buffer, in FIFO order per lock, so the node can wake the right parked connection. Every waiter
 * that was ever queued ends with exactly one event.
 *
 * Ownership: struct locks is embedded by the caller; locks_init allocates every table, locks_free
 * releases them. Byte strings passed in (session ids, lock names) are borrowed for the call only.
 */
#ifndef SHARDMART_ENGINE_LOCKS_H
#define SHARDMART_ENGINE_LOCKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "util/assert.h"
#include "util/buf.h"
#include "util/index.h"

/* Table sizes, fixed at init. Every bound is checked; a full table is SM_E_BUSY. */
struct locks_config {
    uint32_t sessions_max; /* open sessions */
    uint32_t locks_max;    /* lock names that have a holder or a waiter */
    uint32_t holds_max;    /* grants made directly by an acquire (held locks, shares, permits) */
    uint32_t waiters_max;  /* queued waits; also the event buffer size every caller must give */
    uint32_t permits_max;  /* the largest N a semaphore may have, <= SM_LOCK_PERMITS_MAX */
    uint32_t reentry_max; /* reentrant acquisitions of one exclusive lock, <= SM_LOCK_REENTRY_MAX */
};

/* What an acquire asks for. The kind of a lock follows from it and is fixed while the lock has a
 * row: EXCLUSIVE makes an exclusive lock, READ/WRITE a read-write lock, PERMIT a semaphore. */
enum locks_type {
    LOCKS_EXCLUSIVE = 1,
    LOCKS_READ = 2,
    LOCKS_WRITE = 3,
    LOCKS_PERMIT = 4,
};

enum locks_kind {
    LOCKS_KIND_EXCLUSIVE = 1,
    LOCKS_KIND_RW = 2,
    LOCKS_KIND_SEMAPHORE = 3,
};

/* The outcome of a successful acquire call (its return value is 0). */
enum locks_status {
    LOCKS_GRANTED = 1,     /* held now; token (and permit_id for semaphores) are set */
    LOCKS_NOT_GRANTED = 2, /* a try (wait_ms == 0) that found the lock taken; nothing changed */
    LOCKS_QUEUED = 3,      /* queued; one event for waiter_id will follow */
};

struct locks_acquire {
    enum locks_type type;
    uint64_t owner;     /* who within the session holds it (a thread, a task); any value */
    int64_t wait_ms;    /* 0: try only; 1..SM_LOCK_TTL_MS_MAX: queue with deadline now + wait_ms */
    int64_t lease_ms;   /* 0: held as long as the session; else released at now + lease_ms */
    uint64_t waiter_id; /* non-zero, unique among queued waiters; needed only when wait_ms > 0 */
    uint32_t permits;   /* PERMIT: the semaphore's N, 1..permits_max, same for every call */
    bool reentrant;     /* EXCLUSIVE: a holder's repeat acquire counts up instead of failing */
};

struct locks_grant {
    enum locks_status status;
    uint64_t token;     /* GRANTED: the fencing token */
    uint64_t permit_id; /* GRANTED on a semaphore: the permit's id (release and renew use it) */
    uint32_t count;     /* GRANTED exclusive: reentry depth (1 for a first acquire) */
};

/* Names a grant for release and renew: exclusive and read-write grants by (session, owner),
 * semaphore permits by (session, permit_id). */
struct locks_ref {
    const void *session;
    size_t session_len;
    const void *name;
    size_t name_len;
    uint64_t owner;     /* exclusive and read-write locks */
    uint64_t permit_id; /* semaphores */
    /* locks_key_hash of session and of name, or 0: computed by the call. A caller that prepares
     * records ahead of their turn (engine_apply_batch) hashes them there, once. */
    uint64_t session_hash, name_hash;
};

enum locks_event_kind {
    LOCKS_EVENT_GRANTED = 1,   /* the waiter holds the lock now */
    LOCKS_EVENT_TIMEOUT = 2,   /* its deadline passed (tick) */
    LOCKS_EVENT_CANCELLED = 3, /* locks_cancel, or its session closed or expired */
};

struct locks_event {
    uint64_t waiter_id;
    uint64_t token;     /* GRANTED */
    uint64_t permit_id; /* GRANTED on a semaphore */
    enum locks_event_kind kind;
    uint32_t name_len;
    uint8_t name[SM_KEY_BYTES_MAX];
};

/* Caller-owned event buffer. Calls append (count grows); the caller resets count. Each event is
 * one waiter leaving a queue, so cap >= waiters_max always suffices, and is asserted. */
struct locks_events {
    struct locks_event *items;
    uint32_t count;
    uint32_t cap;
};

struct locks_session;
struct locks_lock;
struct locks_entry;

/* The state. Fields are private to locks.c except the counts, which callers may read. */
struct locks {
    struct locks_config config;
    struct locks_session *sessions;
    struct locks_lock *locks;
    struct locks_entry *entries; /* holds_max + waiters_max rows: a waiter keeps its row when
                                    granted, so a release never needs a free row */
    uint32_t *dirty;             /* locks to wake at the end of a call (scratch) */
    struct sm_index session_index;
    struct sm_index lock_index;
    struct sm_index waiter_index;
    uint32_t session_free, lock_free, entry_free; /* free-list heads of rows freed once */
    /* Rows at or above these were never used: free too, and still untouched memory, so the
     * tables cost address space, not memory, until rows fill (a node has one per partition). */
    uint32_t session_high, lock_high, entry_high;
    uint32_t dirty_count;
    uint32_t session_count, lock_count, hold_count, waiter_count;
    uint64_t index_min;    /* the next mutating call's index must be >= this */
    int64_t expiry_min_ms; /* nothing expires before this time: a tick earlier is a no-op */
};

/* Allocates every table. 0, SM_E_BADARG (a zero size, a bound above its SM_ limit) or
 * SM_E_NOMEM (nothing left allocated). Free with locks_free. */
MUST_USE int locks_init(struct locks *l, const struct locks_config *config);
void locks_free(struct locks *l);
/* Back to the empty state of a fresh locks_init, keeping the tables (no allocation, so it
 * cannot fail); costs the rows used since the last reset, not the capacity. */
void locks_reset(struct locks *l);

/*
 * Every mutating call below takes:
 *   index  - the log index of the record being applied. It must be >= the index of the last
 *            call that changed state plus one (asserted): at most one state change per record,
 *            and a failed call leaves the index free for the next record.
 *   now_ms - the time stamped on the record by the leader. It never goes backward (the caller
 *            carries it across failovers). now + a duration saturates just below INT64_MAX,
 *            which means "never", so no stamped time can overflow.
 * and returns 0 or a negative SM_E_* code; a failed call changes nothing. Session ids and lock
 * names are 1..SM_KEY_BYTES_MAX bytes (else SM_E_BADARG). A session whose lease has passed is
 * gone for every call (SM_E_NOTFOUND) even before the tick that frees it.
 */

/* Opens a session with ttl_ms (1..SM_LOCK_TTL_MS_MAX); *expires_ms = now + ttl.
 * SM_E_EXISTS (open already), SM_E_TRYAGAIN (its lease passed but no tick has ended it yet),
 * SM_E_BUSY (sessions_max), SM_E_BADARG. */
MUST_USE int locks_session_open(struct locks *l, uint64_t index, int64_t now_ms,
                                const void *session, size_t session_len, int64_t ttl_ms,
                                int64_t *expires_ms);

/* Extends the lease to now + ttl. SM_E_NOTFOUND, SM_E_BADARG. */
MUST_USE int locks_session_heartbeat(struct locks *l, uint64_t index, int64_t now_ms,
                                     const void *session, size_t session_len, int64_t *expires_ms);

/* Ends a session: cancels its waits, releases its locks and permits (handing them to the next
 * waiters, events appended). SM_E_NOTFOUND, SM_E_BADARG. */
MUST_USE int locks_session_close(struct locks *l, uint64_t index, int64_t now_ms,
                                 const void *session, size_t session_len,
                                 struct locks_events *events);

/* Acquires `name` for `session` as args says; *grant tells what happened. Errors:
 *   SM_E_NOTFOUND  no such (live) session
 *   SM_E_STATE     the name is a lock of another kind, or a semaphore with another N
 *   SM_E_EXISTS    the (session, owner) holds it already (not reentrant, or a read-write lock),
 *                  or already waits for it, or waiter_id is queued already
 *   SM_E_LIMIT     a reentrant acquire past reentry_max
 *   SM_E_BUSY      locks_max, holds_max or waiters_max reached
 *   SM_E_BADARG    a bad type, time, permit count, or waiter_id 0 with wait_ms > 0
 * Queueing is FIFO per lock: an acquire is granted at once only when nobody waits (so a queued
 * writer blocks later readers, and nobody overtakes). */
MUST_USE int locks_acquire(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                           size_t session_len, const void *name, size_t name_len,
                           const struct locks_acquire *args, struct locks_grant *grant);

/* locks_acquire with session and name (and their hashes, see struct locks_ref) in keys; keys'
 * owner and permit_id are not used (args says them). */
MUST_USE int locks_acquire_keyed(struct locks *l, uint64_t index, int64_t now_ms,
                                 const struct locks_ref *keys, const struct locks_acquire *args,
                                 struct locks_grant *grant);

/* The hash the lock service keys a session id or a lock name by (XXH3-64 of the bytes). */
uint64_t locks_key_hash(const void *key, size_t len);

/* Starts fetching the index cells a call with these hashes (locks_key_hash) will probe first, so
 * that a caller preparing records ahead overlaps their misses with other work. Reads no state. */
static inline void locks_prefetch(const struct locks *l, uint64_t session_hash, uint64_t name_hash)
{
    sm_index_prefetch(&l->session_index, session_hash);
    sm_index_prefetch(&l->lock_index, name_hash);
}

/* Releases one grant (one reentry level of a reentrant exclusive lock); *remaining is the
 * reentry depth left (0 when the lock was let go). The next waiters get it (events). A grant
 * whose lease has passed is not held any more for release, renew or a reentrant acquire, though
 * it blocks others until the tick that frees it.
 * SM_E_NOTHELD (no such lock, or not held by this session/owner/permit), SM_E_NOTFOUND
 * (session), SM_E_BADARG. */
MUST_USE int locks_release(struct locks *l, uint64_t index, int64_t now_ms,
                           const struct locks_ref *ref, uint32_t *remaining,
                           struct locks_events *events);

/* Sets a held grant's lease to now + lease_ms (0: as long as the session). The token is kept.
 * SM_E_NOTHELD, SM_E_NOTFOUND (session), SM_E_BADARG. */
MUST_USE int locks_renew(struct locks *l, uint64_t index, int64_t now_ms,
                         const struct locks_ref *ref, int64_t lease_ms, int64_t *expires_ms);

/* Removes a queued wait of this session (one CANCELLED event for it, then any waiters it was
 * blocking are granted). SM_E_NOTFOUND (no such session or no such wait of this session). */
MUST_USE int locks_cancel(struct locks *l, uint64_t index, int64_t now_ms, const void *session,
                          size_t session_len, uint64_t waiter_id, struct locks_events *events);

/* Applies the passing of time to now_ms: waits whose deadline is <= now time out, grants whose
 * lease is <= now are released, sessions whose lease is <= now are closed; then freed locks go to
 * the next live waiters in order. Always 0 (no input to reject); events appended. */
MUST_USE int locks_tick(struct locks *l, uint64_t index, int64_t now_ms,
                        struct locks_events *events);

/* LOCK.CHECK: *current is true when some grant of `name` held now carries `token`.
 * 0 or SM_E_BADARG (name length). */
MUST_USE int locks_token_check(const struct locks *l, const void *name, size_t name_len,
                               uint64_t token, bool *current);

struct locks_info {
    enum locks_kind kind;
    uint32_t permits; /* semaphores: N */
    uint32_t holders;
    uint32_t waiters;
    uint64_t token_max; /* the newest token held now */
};

/* What a lock looks like now. SM_E_NOTFOUND when it has no holder and no waiter. */
MUST_USE int locks_info(const struct locks *l, const void *name, size_t name_len,
                        struct locks_info *info);

/* Appends the whole state to w in a canonical form (sorted by session id and lock name), so two
 * replicas with the same state write the same bytes however their tables are laid out.
 * 0, or SM_E_NOMEM (w failed or sort scratch). The format is documented in locks.c. */
MUST_USE int locks_save(const struct locks *l, struct sm_wbuf *w);

/* Replaces l's state (l initialized by locks_init) with one read from r. Everything is validated:
 * 0, or SM_E_CORRUPT (malformed, not canonical, breaks an invariant) or SM_E_BUSY (does not fit
 * this config); on error l is left empty. A stream that loads saves back to the same bytes. */
MUST_USE int locks_load(struct locks *l, struct sm_rbuf *r);

/* Checks every invariant (at most one exclusive holder, holders belong to live rows, queues
 * consistent and not wakeable, permits <= N, counts match the rows, indexes find every row).
 * 0, or SM_E_CORRUPT with `why` naming the first broken one. O(state); tests call it often. */
MUST_USE int locks_check(const struct locks *l, char *why, size_t why_len);

#endif
