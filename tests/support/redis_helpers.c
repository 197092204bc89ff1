/* hiredis conveniences for integration tests (see redis_helpers.h). */
#include "redis_helpers.h"

#include <criterion/criterion.h>
#include <stdarg.h>

redisContext *node_proc_client(const struct node_proc *p)
{
    redisContext *c = redisConnect("127.0.0.1", p->resp_port);
    cr_assert(c != NULL && c->err == 0, "connect: %s", c ? c->errstr : "no memory");
    return c;
}

redisReply *node_proc_command(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    cr_assert_not_null(r, "no reply: %s", c->errstr);
    return r;
}
