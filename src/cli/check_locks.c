/*
 * The lock proof of `shardmart check` (check.h), for exclusive locks (LOCK.ACQUIRE without
 * REENTRANT). A grant is an acknowledged LOCK.ACQUIRE whose result is a fencing token. Times are
 * the history's (microseconds since its load began): a grant happened somewhere in
 * [intended, reply], a release in [its intended, its reply]. So the hold of grant A lasted at
 * least until
 *
 *   end(A) = min(intended of the first release of A's lock and owner sent after A was,
 *                A's intended + its LEASE)
 *
 * (a release whose reply never came counts: it may have happened). Per lock, sorted by token:
 *
 *   1. tokens are distinct: no token granted to two requests;
 *   2. tokens follow real time: if A's reply came before B was sent, A's token is below B's;
 *   3. never two holders: every grant B came after every lower-token grant A could have ended,
 *      i.e. reply(B) >= end(A) (otherwise B was granted while A certainly still held);
 *   4. the node's LOCK.INFO shows at most one holder and a token_max no lower than any token
 *      the history was granted (tokens never go back, across restarts too). A lock nobody holds
 *      or waits for is gone from the node (NOTFOUND), which proves nothing either way.
 *
 * Time is compared only between operations on one lock; the benchmark names its locks after
 * its run, so concatenated histories never compare two runs' clocks. A session's expiry also
 * ends its holds; it is not modelled, so the benchmark leases locks for no longer than its
 * session lives (both --ttl-ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/check.h"
#include "util/error.h"

struct lock_grant {
    char lock[CHECK_NAME_BYTES];
    char owner[32];
    const char *rid;
    int64_t token;
    uint64_t intended_us, reply_us;
    uint64_t end_us; /* the earliest its hold may have ended */
    uint32_t line;
};

struct lock_release {
    char lock[CHECK_NAME_BYTES];
    char owner[32];
    uint64_t intended_us;
};

/* Copies word into s[0, cap) as a string; false when it does not fit or is empty. */
static bool take_word(const char **p, char *s, size_t cap)
{
    const char *w = NULL;
    size_t n = check_next_word(p, &w);
    if (n == 0 || n >= cap)
        return false;
    memcpy(s, w, n);
    s[n] = '\0';
    return true;
}

/* "session lock owner [WAIT ms] [LEASE ms] [REENTRANT]" of an acknowledged grant into g; 1 for a
 * reentrant acquire (not exclusive: skipped), 2 when malformed. */
static int read_grant(const struct history_line *l, struct lock_grant *g)
{
    const char *p = l->args;
    char session[CHECK_NAME_BYTES];
    if (!take_word(&p, session, sizeof session) || !take_word(&p, g->lock, sizeof g->lock) ||
        !take_word(&p, g->owner, sizeof g->owner) ||
        !check_word_int(l->result, strlen(l->result), INT64_MAX, &g->token))
        return 2;
    g->rid = l->rid;
    g->intended_us = l->intended_us;
    g->reply_us = l->reply_us;
    g->end_us = UINT64_MAX;
    g->line = l->line;
    const char *w = NULL;
    for (size_t n; (n = check_next_word(&p, &w)) > 0;) {
        int64_t ms = 0;
        if (n == 9 && memcmp(w, "REENTRANT", 9) == 0)
            return 1;
        bool lease = n == 5 && memcmp(w, "LEASE", 5) == 0;
        if (!(lease || (n == 4 && memcmp(w, "WAIT", 4) == 0)) ||
            (n = check_next_word(&p, &w)) == 0 || !check_word_int(w, n, INT64_C(1) << 40, &ms))
            return 2;
        if (lease && ms > 0)
            g->end_us = g->intended_us + (uint64_t)ms * 1000u;
    }
    return 0;
}

static int cmp_grant(const void *a, const void *b)
{
    const struct lock_grant *x = a, *y = b;
    int c = strcmp(x->lock, y->lock);
    return c ? c : (x->token > y->token) - (x->token < y->token);
}

static int cmp_release(const void *a, const void *b)
{
    const struct lock_release *x = a, *y = b;
    int c = strcmp(x->lock, y->lock);
    c = c ? c : strcmp(x->owner, y->owner);
    return c ? c : (x->intended_us > y->intended_us) - (x->intended_us < y->intended_us);
}

struct locks {
    struct lock_grant *grants; /* sorted by lock, then token */
    size_t grants_n;
    struct lock_release *releases; /* sorted by lock, owner, intended */
    size_t releases_n;
};

static int collect(const struct history *h, struct locks *k)
{
    k->grants = calloc(h->lines_n + 1, sizeof *k->grants);
    k->releases = calloc(h->lines_n + 1, sizeof *k->releases);
    if (!k->grants || !k->releases)
        return -1;
    for (size_t i = 0; i < h->lines_n; i++) {
        const struct history_line *l = &h->lines[i];
        if (l->op == HISTORY_ACQUIRE && l->ok && strcmp(l->result, "NOT_GRANTED") != 0) {
            int rc = read_grant(l, &k->grants[k->grants_n]);
            if (rc == 2) {
                printf("check: line %u: cannot read LOCK.ACQUIRE '%s' granted '%s'\n", l->line,
                       l->args, l->result);
                return 2;
            }
            k->grants_n += rc == 0;
        } else if (l->op == HISTORY_RELEASE && (l->ok || !l->acked)) {
            struct lock_release *r = &k->releases[k->releases_n];
            const char *p = l->args;
            char session[CHECK_NAME_BYTES];
            if (!take_word(&p, session, sizeof session) ||
                !take_word(&p, r->lock, sizeof r->lock) ||
                !take_word(&p, r->owner, sizeof r->owner)) {
                printf("check: line %u: cannot read LOCK.RELEASE '%s'\n", l->line, l->args);
                return 2;
            }
            r->intended_us = l->intended_us;
            k->releases_n++;
        }
    }
    qsort(k->releases, k->releases_n, sizeof *k->releases, cmp_release);
    return 0;
}

/* end(A): the first release of A's lock and owner sent no earlier than A was. */
static void find_ends(struct locks *k)
{
    for (size_t i = 0; i < k->grants_n; i++) {
        struct lock_grant *g = &k->grants[i];
        size_t lo = 0, hi = k->releases_n;
        struct lock_release key = {.intended_us = g->intended_us};
        memcpy(key.lock, g->lock, sizeof key.lock);
        memcpy(key.owner, g->owner, sizeof key.owner);
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (cmp_release(&k->releases[mid], &key) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        const struct lock_release *r = lo < k->releases_n ? &k->releases[lo] : NULL;
        if (r && strcmp(r->lock, g->lock) == 0 && strcmp(r->owner, g->owner) == 0 &&
            r->intended_us < g->end_us)
            g->end_us = r->intended_us;
    }
}

/* Proves 2, then 1 and 3, over the grants of one lock, [from, to) of the sorted array. */
static int prove_lock(const struct locks *k, size_t from, size_t to)
{
    /* Real time: walking down the tokens, the earliest reply among the higher ones must not come
     * before a lower token's request was sent. */
    const struct lock_grant *first_reply = NULL;
    for (size_t i = to; i-- > from;) {
        const struct lock_grant *b = &k->grants[i];
        if (first_reply && first_reply->token > b->token && first_reply->reply_us < b->intended_us)
            return check_violation("lock %s: tokens went back: token %lld (line %u) was granted "
                                   "before token %lld (line %u) was asked for",
                                   b->lock, (long long)first_reply->token, first_reply->line,
                                   (long long)b->token, b->line);
        if (!first_reply || b->reply_us < first_reply->reply_us)
            first_reply = b;
    }
    uint64_t end_max_us = 0; /* the latest end(A) over the lower tokens so far */
    const struct lock_grant *end_max = NULL;
    for (size_t i = from; i < to; i++) {
        const struct lock_grant *b = &k->grants[i];
        if (i > from && k->grants[i - 1].token == b->token) {
            if (strcmp(k->grants[i - 1].rid, b->rid) == 0)
                continue; /* a retry answered with its first reply */
            return check_violation("lock %s: token %lld granted twice (lines %u and %u)", b->lock,
                                   (long long)b->token, k->grants[i - 1].line, b->line);
        }
        if (end_max && b->reply_us < end_max_us)
            return check_violation("lock %s: two holders at once: token %lld (line %u) was "
                                   "granted by %llu us, while token %lld (line %u) held it "
                                   "until at least %llu us",
                                   b->lock, (long long)b->token, b->line,
                                   (unsigned long long)b->reply_us, (long long)end_max->token,
                                   end_max->line, (unsigned long long)end_max_us);
        if (b->end_us >= end_max_us) {
            end_max_us = b->end_us;
            end_max = b;
        }
    }
    return 0;
}

/* 4: LOCK.INFO of every lock the history was granted. */
static int read_info(const struct locks *k, struct rc_conn *c, size_t *locks_n)
{
    size_t firsts[CHECK_CHUNK + 1];
    for (size_t i = 0; i < k->grants_n;) {
        size_t n = 0;
        for (; i < k->grants_n && n < CHECK_CHUNK; n++) {
            firsts[n] = i;
            const char *argv[] = {"LOCK.INFO", k->grants[i].lock};
            rc_command(c, 2, argv);
            while (++i < k->grants_n && strcmp(k->grants[i].lock, k->grants[i - 1].lock) == 0)
                ;
        }
        firsts[n] = i;
        for (size_t j = 0; j < n; j++) {
            const struct lock_grant *last = &k->grants[firsts[j + 1] - 1];
            int64_t holders = 0, token_max = 0;
            char code[24];
            (*locks_n)++;
            if (rc_wait(c, CHECK_TIMEOUT_MS) != 0 || check_node_failed(c, "LOCK.INFO"))
                return -1;
            if (rc_is_error(c, code, sizeof code))
                continue; /* NOTFOUND: free, nobody waiting */
            if (!rc_field_int(c, "holders", &holders) || !rc_field_int(c, "token_max", &token_max))
                return -1;
            if (holders > 1 || token_max < last->token)
                return check_violation("lock %s on the node: %lld holders, token_max %lld, but "
                                       "token %lld was granted (line %u)",
                                       last->lock, (long long)holders, (long long)token_max,
                                       (long long)last->token, last->line);
        }
    }
    return 0;
}

int check_locks(const struct history *h, struct rc_conn *c, struct check_summary *s)
{
    struct locks k = {.grants = NULL};
    int rc = collect(h, &k);
    if (rc == 0) {
        find_ends(&k);
        qsort(k.grants, k.grants_n, sizeof *k.grants, cmp_grant);
    }
    for (size_t i = 0, j = 0; rc == 0 && i < k.grants_n; i = j) {
        for (j = i + 1; j < k.grants_n && strcmp(k.grants[j].lock, k.grants[i].lock) == 0; j++)
            ;
        rc = prove_lock(&k, i, j);
    }
    s->grants_n = k.grants_n;
    rc = rc ? rc : read_info(&k, c, &s->locks_n);
    free(k.grants);
    free(k.releases);
    return rc;
}
