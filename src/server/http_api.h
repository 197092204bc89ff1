/*
 * The JSON API on the HTTP port (see http_api.c): POST /api/command runs any RESP command from
 * a JSON array of strings; GET /api/{stock,orders,accounts,locks}/<key> reads one object.
 */
#ifndef SHARDMART_SERVER_HTTP_API_H
#define SHARDMART_SERVER_HTTP_API_H

#include <stdbool.h>
#include <string.h>

#include "node/node.h"
#include "proto/http.h"
#include "util/buf.h"

/* True for the paths this API serves. */
static inline bool server_http_api_path(const struct http_request *req)
{
    return req->path_len >= 5 && memcmp(req->path, "/api/", 5) == 0;
}

/* Answers one API request into out, running its command through the node inside the current
 * batch. 0; SM_E_BUSY when the batch's log buffer is full (nothing done: run it again in the
 * next batch); SM_E_NOMEM when the answer could not be built (the caller closes). */
MUST_USE int server_http_api(struct node *n, struct node_client *c, const struct http_request *req,
                             struct sm_wbuf *out);

#endif
