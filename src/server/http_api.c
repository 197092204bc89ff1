/*
 * The JSON API on the HTTP port: every RESP command, and friendly reads.
 *
 *   POST /api/command   body: a JSON array of strings, e.g. ["ORDER.PLACE","r1","alice",...]
 *   GET  /api/stock/<sku>, /api/orders/<id>, /api/accounts/<account>, /api/locks/<name>
 *
 * A request is turned into the same argument vector a RESP client sends and run by
 * node_execute() inside the batch, so it is logged, fsync'ed and answered exactly like its RESP
 * twin (the reply leaves with the batch, after its fsync). The RESP3 reply is then rendered as
 * JSON: a map becomes an object, an array an array, an integer a number, a string a string, and
 * an error {"error": "<CODE>", "message": "..."} with an HTTP status chosen from the code.
 * With --requirepass, requests carry "Authorization: Bearer <password>".
 */
#include "server/http_api.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "proto/resp.h"
#include "util/error.h"

/* A RESP3 reply of one command is at most a map of a few fields: 64 nodes is plenty. */
#define API_REPLY_NODES_MAX 64
/* Arguments of one API command: the RESP bound. */
#define API_ARGS_MAX SM_REQUEST_ARGS_MAX

/* The HTTP status for an error code: the client's fault, a conflict with the state, or ours. */
static int status_of(const char *code, size_t len)
{
    static const struct {
        const char *code;
        int status;
    } map[] = {
        {"NOTFOUND", 404},    {"NOAUTH", 401},   {"WRONGPASS", 401}, {"TOOLARGE", 413},
        {"BUSY", 503},        {"TRYAGAIN", 503}, {"IO", 503},        {"SOLDOUT", 409},
        {"LIMIT", 409},       {"NOFUNDS", 409},  {"STATE", 409},     {"EXISTS", 409},
        {"IDEMPOTENCY", 409},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strlen(map[i].code) == len && memcmp(map[i].code, code, len) == 0)
            return map[i].status;
    return 400;
}

/* Builds the JSON value of nodes[*at..] (one RESP value and its children). */
static json_t *to_json(const struct resp_value *v, size_t n, size_t *at, int *status)
{
    if (*at >= n)
        return json_null();
    const struct resp_value *x = &v[(*at)++];
    switch (x->type) {
    case RESP_INTEGER:
        return json_integer(x->integer);
    case RESP_BOOLEAN:
        return json_boolean(x->integer);
    case RESP_NULL:
        return json_null();
    case RESP_ERROR:
    case RESP_BLOB_ERROR: {
        const char *s = (const char *)x->str.ptr;
        size_t len = x->str.len, code = 0;
        while (code < len && s[code] != ' ')
            code++;
        *status = status_of(s, code);
        json_t *o = json_object();
        json_object_set_new(o, "error", json_stringn(s, code));
        json_object_set_new(
            o, "message",
            json_stringn(code < len ? s + code + 1 : "", code < len ? len - code - 1 : 0));
        return o;
    }
    case RESP_MAP: {
        json_t *o = json_object();
        for (int64_t i = 0; i < x->integer; i++) {
            const struct resp_value *k = *at < n ? &v[*at] : NULL;
            char key[SM_KEY_BYTES_MAX + 1] = "";
            if (k && k->str.len < sizeof key) {
                memcpy(key, k->str.ptr, k->str.len);
                key[k->str.len] = '\0';
            }
            (*at)++;
            json_object_set_new(o, key, to_json(v, n, at, status));
        }
        return o;
    }
    case RESP_ARRAY:
    case RESP_SET:
    case RESP_PUSH: {
        json_t *a = json_array();
        for (int64_t i = 0; !x->is_null && i < x->integer; i++)
            json_array_append_new(a, to_json(v, n, at, status));
        return x->is_null ? (json_decref(a), json_null()) : a;
    }
    default: /* simple, bulk, verbatim, double, big number: text */
        return x->is_null ? json_null() : json_stringn((const char *)x->str.ptr, x->str.len);
    }
}

/* Writes a JSON response; 0 or SM_E_NOMEM. */
static int respond(struct sm_wbuf *out, int status, json_t *body, bool keep_alive)
{
    char *text = json_dumps(body, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(body);
    if (!text)
        return SM_E_NOMEM;
    size_t len = strlen(text);
    int rc = http_response(out, status, "application/json", text, len, keep_alive);
    free(text);
    return rc;
}

static int respond_error(struct sm_wbuf *out, int status, const char *code, const char *msg,
                         bool keep_alive)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(code));
    json_object_set_new(o, "message", json_string(msg));
    return respond(out, status, o, keep_alive);
}

/* Runs one argument vector through the node and answers with its reply as JSON. */
static int run_command(struct node *n, struct node_client *c, struct resp_request *req,
                       struct sm_wbuf *out, bool keep_alive)
{
    struct sm_wbuf reply;
    sm_wbuf_init(&reply);
    struct resp_encoder enc;
    resp_encoder_init(&enc, &reply, SM_REQUEST_BYTES_MAX, 3);
    c->resp_version = 3;
    int rc = node_execute(n, c, req, &enc);
    if (rc == 0 && c->waiting_for != 0 && c->wait_session_len == 0) {
        /* A cross-partition command goes on without us: its retry answers its outcome. */
        c->waiting_for = 0;
        sm_wbuf_free(&reply);
        return respond_error(out, 409, "PENDING",
                             "cross-partition command in flight: retry it with the same request "
                             "id for its outcome",
                             keep_alive);
    }
    if (rc == 0 && c->waiting_for != 0) {
        /* A blocking acquire cannot park an HTTP request: the wait stays queued and ends on its
         * deadline; say so rather than hold the connection. */
        c->waiting_for = 0;
        sm_wbuf_free(&reply);
        return respond_error(out, 409, "QUEUED", "queued: use LOCK.ACQUIRE without WAIT here",
                             keep_alive);
    }
    if (rc != 0) {
        sm_wbuf_free(&reply);
        return rc;
    }
    struct resp_value vals[API_REPLY_NODES_MAX];
    size_t nvals = 0;
    int status = 200;
    json_t *body;
    if (reply.len == 0)
        body = json_null();
    else if (resp_reply_parse(reply.data, reply.len, vals, API_REPLY_NODES_MAX, &nvals) <= 0)
        body = (status = 500, json_string("reply not renderable"));
    else {
        size_t at = 0;
        body = to_json(vals, nvals, &at, &status);
    }
    sm_wbuf_free(&reply);
    return respond(out, status, body, keep_alive);
}

/* Authenticates the request from "Authorization: Bearer <password>" when the node needs it. */
static int authenticate(struct node *n, struct node_client *c, const struct http_request *req)
{
    if (c->authenticated)
        return 0;
    const struct http_header *h = http_request_header(req, "Authorization");
    if (!h || h->value.len < 8 || memcmp(h->value.ptr, "Bearer ", 7) != 0)
        return SM_E_NOAUTH;
    struct resp_request *auth = calloc(1, sizeof *auth);
    if (!auth)
        return SM_E_NOMEM;
    auth->argc = 2;
    auth->argv[0] = (struct proto_slice){(const uint8_t *)"AUTH", 4};
    auth->argv[1] = (struct proto_slice){h->value.ptr + 7, h->value.len - 7};
    struct sm_wbuf sink;
    sm_wbuf_init(&sink);
    struct resp_encoder enc;
    resp_encoder_init(&enc, &sink, 4096, 2);
    int rc = node_execute(n, c, auth, &enc);
    sm_wbuf_free(&sink);
    free(auth);
    return rc != 0 ? rc : c->authenticated ? 0 : SM_E_NOAUTH;
}

/* POST /api/command: the body is a JSON array of strings. */
static int parse_command(const struct http_request *req, json_t **doc, struct resp_request *out)
{
    json_error_t err;
    *doc = json_loadb((const char *)req->body.ptr, req->body.len, 0, &err);
    if (!*doc || !json_is_array(*doc) || json_array_size(*doc) == 0 ||
        json_array_size(*doc) > API_ARGS_MAX)
        return SM_E_BADARG;
    out->argc = (uint32_t)json_array_size(*doc);
    for (uint32_t i = 0; i < out->argc; i++) {
        json_t *s = json_array_get(*doc, i);
        if (!json_is_string(s))
            return SM_E_BADARG;
        out->argv[i] =
            (struct proto_slice){(const uint8_t *)json_string_value(s), json_string_length(s)};
    }
    return 0;
}

/* GET /api/<what>/<key>: the read command for it. */
static bool parse_read(const struct http_request *req, struct resp_request *out)
{
    static const struct {
        const char *prefix;
        const char *command;
    } reads[] = {
        {"/api/stock/", "STOCK.GET"},
        {"/api/orders/", "ORDER.GET"},
        {"/api/accounts/", "ACCOUNT.GET"},
        {"/api/locks/", "LOCK.INFO"},
    };
    for (size_t i = 0; i < sizeof reads / sizeof reads[0]; i++) {
        size_t len = strlen(reads[i].prefix);
        if (req->path_len > len && strncmp(req->path, reads[i].prefix, len) == 0) {
            out->argc = 2;
            out->argv[0] =
                (struct proto_slice){(const uint8_t *)reads[i].command, strlen(reads[i].command)};
            out->argv[1] =
                (struct proto_slice){(const uint8_t *)req->path + len, req->path_len - len};
            return true;
        }
    }
    return false;
}

int server_http_api(struct node *n, struct node_client *c, const struct http_request *req,
                    struct sm_wbuf *out)
{
    bool keep = req->keep_alive;
    int rc = authenticate(n, c, req);
    if (rc == SM_E_NOAUTH)
        return respond_error(out, 401, "NOAUTH", "send Authorization: Bearer <password>", keep);
    if (rc != 0)
        return rc;
    struct resp_request *cmd = calloc(1, sizeof *cmd);
    if (!cmd)
        return SM_E_NOMEM;
    json_t *doc = NULL;
    if (req->method == HTTP_POST && strcmp(req->path, "/api/command") == 0) {
        rc = parse_command(req, &doc, cmd);
        rc = rc ? respond_error(out, 400, "BADARG",
                                "the body must be a JSON array of 1..256 strings", keep)
                : run_command(n, c, cmd, out, keep);
    } else if (req->method == HTTP_GET && parse_read(req, cmd)) {
        rc = run_command(n, c, cmd, out, keep);
    } else {
        rc = respond_error(out, 404, "NOTFOUND",
                           "try POST /api/command or GET /api/{stock,orders,accounts,locks}/<key>",
                           keep);
    }
    json_decref(doc);
    free(cmd);
    return rc;
}
