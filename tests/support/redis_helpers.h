/*
 * hiredis conveniences for integration tests: a connection to a node started with node_proc, and
 * a command whose reply must arrive. Both fail the current Criterion test instead of returning
 * NULL, so a test reads as the conversation it checks.
 */
#ifndef SHARDMART_TESTS_REDIS_HELPERS_H
#define SHARDMART_TESTS_REDIS_HELPERS_H

#include <hiredis/hiredis.h>

#include "node_proc.h"

/* A new connection to the node's RESP port; the caller frees it with redisFree. */
redisContext *node_proc_client(const struct node_proc *p);

/* Sends a command (hiredis format) and returns its reply; the caller frees it. */
redisReply *node_proc_command(redisContext *c, const char *fmt, ...);

#endif
