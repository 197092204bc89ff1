/*
 * The tools' RESP client (resp_client.h): non-blocking sockets, src/proto's encoder for requests,
 * resp_reply_parse for replies. The input buffer grows to hold the largest reply seen (the tools
 * read small replies, so it stays at its first size), bounded by RC_IN_BYTES_MAX.
 *
 * Following redirects (resp_client.h): `sent` holds the encoded commands not yet answered, oldest
 * first, and `lens` their lengths; each reply pops one. A redirected command goes out again on a
 * side connection to the node named (or, for a retry, the node that refused it), one blocking
 * round trip at a time: the tools that follow redirects are themselves blocking, and a redirect
 * is rare (a stale map, a failover), so its cost is one extra round trip, not a second loop.
 */
#include "cli/resp_client.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "limits.h"
#include "util/error.h"

/* Side connections one following connection keeps, one per node it was redirected to: a cluster
 * this client reads from has at most this many nodes that lead partitions. */
#define RC_SIDES_MAX SM_CLIENT_NODES_MAX

struct rc_follow {
    struct sm_wbuf sent; /* commands written, not answered yet: [sent_off, sent.len) */
    size_t sent_off;
    size_t *lens; /* their lengths: [lens_head, lens_n) */
    size_t lens_head;
    size_t lens_n;
    size_t lens_cap;
    struct rc_conn *sides[RC_SIDES_MAX];
    char side_addr[RC_SIDES_MAX][SM_CLIENT_ADDR_BYTES_MAX];
};

#define RC_IN_BYTES_INITIAL (64 * 1024)
/* No reply the tools ask for comes near this; a larger one is a protocol error, not a reason to
 * grow without end. */
#define RC_IN_BYTES_MAX (16 * 1024 * 1024)

static int follow_on(struct rc_conn *c);

int rc_open(struct rc_conn *c, const char *host, int port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (strcmp(host, "localhost") == 0)
        host = "127.0.0.1";
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &sa.sin_addr) != 1)
        return SM_E_BADARG;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return SM_E_IO;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return SM_E_IO;
    }
    c->in = malloc(RC_IN_BYTES_INITIAL);
    if (!c->in) {
        close(fd);
        return SM_E_NOMEM;
    }
    c->in_cap = RC_IN_BYTES_INITIAL;
    c->fd = fd;
    (void)snprintf(c->host, sizeof c->host, "%s", host);
    c->port = port;
    sm_wbuf_init(&c->out);
    if (follow_on(c) != 0) {
        rc_close(c);
        return SM_E_NOMEM;
    }
    return 0;
}

static void follow_free(struct rc_follow *f)
{
    if (!f)
        return;
    for (size_t i = 0; i < RC_SIDES_MAX; i++) {
        if (f->sides[i]) {
            rc_close(f->sides[i]);
            free(f->sides[i]);
        }
    }
    sm_wbuf_free(&f->sent);
    free(f->lens);
    free(f);
}

void rc_close(struct rc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    sm_wbuf_free(&c->out);
    follow_free(c->follow);
    c->follow = NULL;
}

void rc_unfollow(struct rc_conn *c)
{
    ASSERT(!c->follow || c->follow->lens_n == c->follow->lens_head);
    follow_free(c->follow);
    c->follow = NULL;
}

static int follow_on(struct rc_conn *c)
{
    ASSERT(c->follow == NULL);
    c->follow = calloc(1, sizeof *c->follow);
    if (!c->follow)
        return SM_E_NOMEM;
    sm_wbuf_init(&c->follow->sent);
    return 0;
}

/* Remembers the command just encoded at out[from, out.len) until its reply comes. */
static void follow_record(struct rc_follow *f, const struct sm_wbuf *out, size_t from)
{
    if (f->lens_head == f->lens_n) { /* everything answered: start over at the front */
        f->lens_head = f->lens_n = 0;
        f->sent.len = 0;
        f->sent_off = 0;
    }
    if (f->lens_n == f->lens_cap) {
        size_t cap = f->lens_cap ? f->lens_cap * 2 : 64;
        size_t *bigger = realloc(f->lens, cap * sizeof *bigger);
        ASSERT(bigger != NULL); /* as for the output buffer: the tools cannot go on without it */
        f->lens = bigger;
        f->lens_cap = cap;
    }
    f->lens[f->lens_n++] = out->len - from;
    sm_wbuf_put(&f->sent, out->data + from, out->len - from);
    ASSERT(!f->sent.failed);
}

void rc_command(struct rc_conn *c, int argc, const char *const *argv)
{
    ASSERT(argc > 0);
    struct resp_encoder e;
    size_t from = c->out.len;
    resp_encoder_init(&e, &c->out, SIZE_MAX, 2);
    int rc = resp_put_array(&e, (uint32_t)argc);
    for (int i = 0; rc == 0 && i < argc; i++)
        rc = resp_put_bulk(&e, argv[i], strlen(argv[i]));
    /* A growable buffer only fails when malloc does; the tools cannot go on without memory. */
    ASSERT(rc == 0);
    if (c->follow)
        follow_record(c->follow, &c->out, from);
}

size_t rc_pending(const struct rc_conn *c)
{
    return c->out.len - c->out_off;
}

int rc_flush(struct rc_conn *c)
{
    while (c->out_off < c->out.len) {
        ssize_t n = send(c->fd, c->out.data + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return SM_E_IO;
        c->out_off += (size_t)n;
    }
    c->out.len = 0;
    c->out_off = 0;
    return 0;
}

int rc_fill(struct rc_conn *c)
{
    if (c->in_off > 0) { /* keep the unparsed tail at the start */
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
        c->vals_n = 0; /* the old reply's slices moved */
    }
    if (c->in_len == c->in_cap) {
        ASSERT(c->in_cap > 0);
        if (c->in_cap >= RC_IN_BYTES_MAX)
            return SM_E_PROTO;
        uint8_t *bigger = realloc(c->in, c->in_cap * 2);
        if (!bigger)
            return SM_E_NOMEM;
        c->in = bigger;
        c->in_cap *= 2;
    }
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, c->in_cap - c->in_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            return SM_E_IO;
        c->in_len += (size_t)n;
        return 0;
    }
}

static int follow_reply(struct rc_conn *c);

int rc_next(struct rc_conn *c)
{
    if (c->in_off == c->in_len)
        return 0;
    int n = resp_reply_parse(c->in + c->in_off, c->in_len - c->in_off, c->vals, RC_REPLY_NODES_MAX,
                             &c->vals_n);
    if (n < 0)
        return SM_E_PROTO;
    if (n == 0)
        return 0;
    c->in_off += (size_t)n;
    if (c->follow) {
        int rc = follow_reply(c);
        if (rc < 0)
            return rc;
    }
    return 1;
}

int rc_wait(struct rc_conn *c, int timeout_ms)
{
    for (int waited_ms = 0;;) {
        int rc = rc_flush(c);
        if (rc < 0)
            return rc;
        rc = rc_next(c);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        if (waited_ms >= timeout_ms)
            return SM_E_TIMEOUT;
        struct pollfd p = {.fd = c->fd, .events = POLLIN | (rc_pending(c) ? POLLOUT : 0)};
        int step_ms = 100;
        if (poll(&p, 1, step_ms) == 0)
            waited_ms += step_ms;
        else if ((p.revents & (POLLIN | POLLHUP | POLLERR)) && (rc = rc_fill(c)) < 0)
            return rc;
    }
}

static void copy_slice(struct proto_slice s, char *out, size_t cap)
{
    ASSERT(cap > 0);
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    memcpy(out, s.ptr, n);
    out[n] = '\0';
}

bool rc_is_error(const struct rc_conn *c, char *code, size_t cap)
{
    if (c->vals_n == 0 || (c->vals[0].type != RESP_ERROR && c->vals[0].type != RESP_BLOB_ERROR))
        return false;
    struct proto_slice s = c->vals[0].str;
    const uint8_t *sp = memchr(s.ptr, ' ', s.len);
    if (sp)
        s.len = (size_t)(sp - s.ptr);
    copy_slice(s, code, cap);
    return true;
}

bool rc_text(const struct rc_conn *c, char *s, size_t cap)
{
    if (c->vals_n == 0)
        return false;
    const struct resp_value *v = &c->vals[0];
    if (v->type == RESP_INTEGER) {
        (void)snprintf(s, cap, "%lld", (long long)v->integer);
        return true;
    }
    if ((v->type != RESP_SIMPLE && v->type != RESP_BULK) || v->is_null)
        return false;
    copy_slice(v->str, s, cap);
    return true;
}

/* The value node after the key `name` at the top level of a map or flat array, or NULL. */
static const struct resp_value *field(const struct rc_conn *c, const char *name)
{
    if (c->vals_n < 1 || (c->vals[0].type != RESP_MAP && c->vals[0].type != RESP_ARRAY))
        return NULL;
    size_t len = strlen(name);
    /* Our maps are flat (no nested aggregates), so keys sit at odd positions. */
    for (size_t i = 1; i + 1 < c->vals_n; i += 2) {
        const struct resp_value *k = &c->vals[i];
        if (k->str.len == len && memcmp(k->str.ptr, name, len) == 0)
            return &c->vals[i + 1];
    }
    return NULL;
}

bool rc_field_int(const struct rc_conn *c, const char *name, int64_t *v)
{
    const struct resp_value *f = field(c, name);
    if (!f || f->type != RESP_INTEGER)
        return false;
    *v = f->integer;
    return true;
}

bool rc_field_str(const struct rc_conn *c, const char *name, char *s, size_t cap)
{
    const struct resp_value *f = field(c, name);
    if (!f || (f->type != RESP_BULK && f->type != RESP_SIMPLE) || f->is_null)
        return false;
    copy_slice(f->str, s, cap);
    return true;
}

/* ---- following redirects ------------------------------------------------------------------- */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The side connection to addr ("a.b.c.d:port"), opened when needed; NULL when it cannot be. */
static struct rc_conn *side_open(struct rc_follow *f, const char *addr)
{
    size_t free_at = RC_SIDES_MAX;
    for (size_t i = 0; i < RC_SIDES_MAX; i++) {
        if (f->sides[i] && strcmp(f->side_addr[i], addr) == 0)
            return f->sides[i];
        if (!f->sides[i] && free_at == RC_SIDES_MAX)
            free_at = i;
    }
    const char *colon = strrchr(addr, ':');
    char host[sizeof((struct rc_conn *)0)->host];
    if (free_at == RC_SIDES_MAX || !colon || (size_t)(colon - addr) >= sizeof host)
        return NULL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (end == colon + 1 || *end || port < 1 || port > 65535)
        return NULL;
    struct rc_conn *s = malloc(sizeof *s);
    if (!s)
        return NULL;
    if (rc_open(s, host, (int)port) != 0) {
        free(s);
        return NULL;
    }
    rc_unfollow(s); /* follow_reply follows for it */
    f->sides[free_at] = s;
    (void)snprintf(f->side_addr[free_at], sizeof f->side_addr[0], "%s", addr);
    return s;
}

static void side_drop(struct rc_follow *f, struct rc_conn *s)
{
    for (size_t i = 0; i < RC_SIDES_MAX; i++) {
        if (f->sides[i] == s) {
            rc_close(s);
            free(s);
            f->sides[i] = NULL;
            return;
        }
    }
    UNREACHABLE();
}

enum redirect { REDIRECT_NONE, REDIRECT_MOVED, REDIRECT_RETRY };

/* Whether the current reply of c asks to go elsewhere (-MOVED <partition> <host:port>: the
 * address into to[0, cap)) or to come back later (-TRYAGAIN, -CLUSTERDOWN). */
static enum redirect redirect_of(const struct rc_conn *c, char *to, size_t cap)
{
    char code[24];
    if (!rc_is_error(c, code, sizeof code))
        return REDIRECT_NONE;
    if (strcmp(code, "TRYAGAIN") == 0 || strcmp(code, "CLUSTERDOWN") == 0)
        return REDIRECT_RETRY;
    if (strcmp(code, "MOVED") != 0)
        return REDIRECT_NONE;
    char text[16 + SM_CLIENT_ADDR_BYTES_MAX];
    copy_slice(c->vals[0].str, text, sizeof text);
    const char *sp = strrchr(text, ' ');
    if (!sp || strlen(sp + 1) >= cap || !strchr(sp + 1, ':'))
        return REDIRECT_NONE; /* not a redirect this client understands: the caller sees it */
    (void)snprintf(to, cap, "%s", sp + 1);
    return REDIRECT_MOVED;
}

/*
 * Called with the reply just parsed on c: pops the command it answers and, when the reply is a
 * redirect, sends the same bytes again (the same request id: a retry of a request that may have
 * been applied is deduplicated by the node) until an answer that is not a redirect comes, the
 * redirects run out (the last refusal is then the reply) or nothing answers within
 * SM_CLIENT_RETRY_TOTAL_MS of back-off (SM_E_IO or SM_E_TIMEOUT).
 */
static int follow_reply(struct rc_conn *c)
{
    struct rc_follow *f = c->follow;
    if (f->lens_head == f->lens_n)
        return SM_E_PROTO; /* a reply to no command */
    const uint8_t *cmd = f->sent.data + f->sent_off;
    size_t len = f->lens[f->lens_head];
    f->sent_off += len;
    f->lens_head++;
    char origin[SM_CLIENT_ADDR_BYTES_MAX], to[SM_CLIENT_ADDR_BYTES_MAX], moved[sizeof to];
    (void)snprintf(origin, sizeof origin, "%s:%d", c->host, c->port);
    memcpy(to, origin, sizeof to);  /* a retry goes back to the node that refused */
    const struct rc_conn *from = c; /* whose current reply is the answer so far; NULL: none */
    int failed = 0, hops = 0, backoff_ms = SM_CLIENT_RETRY_MIN_MS, waited_ms = 0;
    for (;;) {
        enum redirect k = from ? redirect_of(from, moved, sizeof moved) : REDIRECT_RETRY;
        if (k == REDIRECT_NONE)
            break;
        if (k == REDIRECT_MOVED && hops < SM_CLIENT_REDIRECTS_MAX) {
            hops++;
            memcpy(to, moved, sizeof to);
        } else {
            if (waited_ms >= SM_CLIENT_RETRY_TOTAL_MS) {
                if (!from)
                    return failed;
                break; /* the last refusal stands as the reply */
            }
            sleep_ms(backoff_ms);
            waited_ms += backoff_ms;
            backoff_ms =
                backoff_ms * 2 > SM_CLIENT_RETRY_MAX_MS ? SM_CLIENT_RETRY_MAX_MS : backoff_ms * 2;
            hops = 0;
            if (k == REDIRECT_MOVED)
                memcpy(to, moved, sizeof to);
            else if (!from) /* the node could not be reached: ask the first one where to go */
                memcpy(to, origin, sizeof to);
        }
        struct rc_conn *s = side_open(f, to);
        if (!s) {
            from = NULL;
            failed = SM_E_IO;
            continue;
        }
        sm_wbuf_put(&s->out, cmd, len);
        ASSERT(!s->out.failed);
        int rc = rc_wait(s, SM_CLIENT_REPLY_TIMEOUT_MS);
        if (rc < 0) {
            side_drop(f, s);
            from = NULL;
            failed = rc;
            continue;
        }
        from = s;
    }
    ASSERT(from != NULL);
    if (from != c) {
        memcpy(c->vals, from->vals, from->vals_n * sizeof c->vals[0]);
        c->vals_n = from->vals_n;
    }
    return 0;
}
