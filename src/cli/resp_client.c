/*
 * The tools' RESP client (resp_client.h): non-blocking sockets, src/proto's encoder for requests,
 * resp_reply_parse for replies. The input buffer grows to hold the largest reply seen (the tools
 * read small replies, so it stays at its first size), bounded by RC_IN_BYTES_MAX.
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
#include <unistd.h>

#include "util/error.h"

#define RC_IN_BYTES_INITIAL (64 * 1024)
/* No reply the tools ask for comes near this; a larger one is a protocol error, not a reason to
 * grow without end. */
#define RC_IN_BYTES_MAX (16 * 1024 * 1024)

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
    sm_wbuf_init(&c->out);
    return 0;
}

void rc_close(struct rc_conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    c->in = NULL;
    sm_wbuf_free(&c->out);
}

void rc_command(struct rc_conn *c, int argc, const char *const *argv)
{
    ASSERT(argc > 0);
    struct resp_encoder e;
    resp_encoder_init(&e, &c->out, SIZE_MAX, 2);
    int rc = resp_put_array(&e, (uint32_t)argc);
    for (int i = 0; rc == 0 && i < argc; i++)
        rc = resp_put_bulk(&e, argv[i], strlen(argv[i]));
    /* A growable buffer only fails when malloc does; the tools cannot go on without memory. */
    ASSERT(rc == 0);
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
