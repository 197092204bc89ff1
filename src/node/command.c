/*
 * The command table and the connection-level commands (PING, ECHO, HELLO, AUTH, QUIT, SELECT,
 * CLIENT, COMMAND, CONFIG GET, INFO). The table is data: name, arity, flags, handler, in the
 * style of Redis's command table, so dispatch, COMMAND output and the per-command counters can
 * never disagree. Arity follows Redis: N > 0 means exactly N words including the name, -N means
 * at least N.
 *
 * Trading commands (STOCK.*, ORDER.*, ACCOUNT.*, LOCK.* ...) are added to this table by the
 * files that implement them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node/node.h"
#include "util/error.h"

#include "node/command.h"

static int cmd_ping(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out);
static int cmd_echo(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out);
static int cmd_hello(struct node *n, struct node_client *c, const struct resp_request *req,
                     struct resp_encoder *out);
static int cmd_auth(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out);
static int cmd_quit(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out);
static int cmd_select(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out);
static int cmd_client(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out);
static int cmd_command(struct node *n, struct node_client *c, const struct resp_request *req,
                       struct resp_encoder *out);
static int cmd_config(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out);
static int cmd_info(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out);

static const struct command commands[] = {
    {"PING", -1, CMD_READONLY, cmd_ping, NULL, 0},
    {"ECHO", 2, CMD_READONLY, cmd_echo, NULL, 0},
    {"HELLO", -1, CMD_NOAUTH | CMD_READONLY, cmd_hello, NULL, 0},
    {"AUTH", -2, CMD_NOAUTH | CMD_READONLY, cmd_auth, NULL, 0},
    {"QUIT", -1, CMD_NOAUTH | CMD_READONLY, cmd_quit, NULL, 0},
    {"SELECT", 2, CMD_READONLY, cmd_select, NULL, 0},
    {"CLIENT", -2, CMD_READONLY, cmd_client, NULL, 0},
    {"COMMAND", -1, CMD_READONLY, cmd_command, NULL, 0},
    {"CONFIG", -2, CMD_READONLY | CMD_ADMIN, cmd_config, NULL, 0},
    {"INFO", -1, CMD_READONLY, cmd_info, NULL, 0},
};

#define CONN_COMMANDS_COUNT ((uint32_t)(sizeof commands / sizeof commands[0]))
#define COMMANDS_COUNT      (CONN_COMMANDS_COUNT + trade_commands_count + lock_commands_count)

/* Row i of the tables seen as one: connection commands, trading commands, lock commands. */
static const struct command *command_at(uint32_t i)
{
    ASSERT(i < COMMANDS_COUNT);
    if (i < CONN_COMMANDS_COUNT)
        return &commands[i];
    i -= CONN_COMMANDS_COUNT;
    return i < trade_commands_count ? &trade_commands[i] : &lock_commands[i - trade_commands_count];
}

uint32_t node_command_count(void)
{
    return COMMANDS_COUNT;
}

const char *node_command_name(uint32_t i)
{
    return command_at(i)->name;
}

int node_init(struct node *n, const struct node_config *cfg, uint64_t now_ms)
{
    memset(n, 0, sizeof *n);
    n->cfg = *cfg;
    n->started_ms = now_ms;
    n->now_ms = now_ms;
    n->stats = calloc(COMMANDS_COUNT, sizeof *n->stats);
    if (!n->stats)
        return SM_E_NOMEM;
    return 0;
}

void node_free(struct node *n)
{
    free(n->stats);
    memset(n, 0, sizeof *n);
}

static bool password_required(const struct node *n)
{
    return n->cfg.password != NULL && n->cfg.password[0] != '\0';
}

void node_client_init(struct node *n, struct node_client *c)
{
    memset(c, 0, sizeof *c);
    c->id = ++n->clients_created;
    c->resp_version = 2;
    c->authenticated = !password_required(n);
}

void node_count_protocol_error(struct node *n)
{
    n->protocol_errors++;
}

/* Binary search would need a sorted table; a few dozen rows scanned with a length check first
 * is as fast and keeps the tables in the order a reader expects. */
static int find_command(struct proto_slice name)
{
    for (uint32_t i = 0; i < COMMANDS_COUNT; i++)
        if (proto_slice_eq_nocase(name, command_at(i)->name))
            return (int)i;
    return -1;
}

/* Redis-style "ERR unknown command 'x'": the name is cut and stripped of control bytes so a
 * hostile name can neither break the reply framing nor make it long. */
static int reply_unknown(struct resp_encoder *out, struct proto_slice name)
{
    char shown[64];
    size_t n = name.len < sizeof shown - 1 ? name.len : sizeof shown - 1;
    for (size_t i = 0; i < n; i++) {
        uint8_t ch = name.ptr[i];
        shown[i] = (ch < 0x20 || ch >= 0x7f) ? '?' : (char)ch;
    }
    shown[n] = '\0';
    char msg[128];
    snprintf(msg, sizeof msg, "unknown command '%s'", shown);
    return resp_put_error(out, "ERR", msg);
}

static bool arity_ok(int arity, uint32_t argc)
{
    return arity > 0 ? argc == (uint32_t)arity : argc >= (uint32_t)-arity;
}

int node_execute(struct node *n, struct node_client *c, const struct resp_request *req,
                 struct resp_encoder *out)
{
    if (req->argc == 0)
        return 0;
    out->version = c->resp_version;
    int i = find_command(req->argv[0]);
    if (i < 0) {
        n->unknown_commands++;
        return reply_unknown(out, req->argv[0]);
    }
    const struct command *cmd = command_at((uint32_t)i);
    struct node_command_stats *st = &n->stats[i];
    st->calls++;
    if (!c->authenticated && !(cmd->flags & CMD_NOAUTH)) {
        st->errors++;
        return resp_put_error(out, "NOAUTH", "Authentication required.");
    }
    if (!arity_ok(cmd->arity, req->argc)) {
        st->errors++;
        char msg[96];
        snprintf(msg, sizeof msg, "wrong number of arguments for '%s' command", cmd->name);
        return resp_put_error(out, "ERR", msg);
    }
    size_t before = out->w->len;
    int rc = cmd->fn ? cmd->fn(n, c, req, out) : cmd->typed_fn(n, req, out, cmd->type);
    if (rc == SM_E_BUSY) {
        st->calls--; /* not run: it runs again in the next batch and is counted then */
        return rc;
    }
    /* An error reply starts with '-'; count it without threading a flag through every handler. */
    if (rc == 0 && out->w->len > before && out->w->data[before] == '-')
        st->errors++;
    return rc;
}

static int cmd_ping(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out)
{
    (void)n;
    (void)c;
    if (req->argc > 2)
        return resp_put_error(out, "ERR", "wrong number of arguments for 'ping' command");
    if (req->argc == 2)
        return resp_put_bulk(out, req->argv[1].ptr, req->argv[1].len);
    return resp_put_simple(out, "PONG", 4);
}

static int cmd_echo(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out)
{
    (void)n;
    (void)c;
    return resp_put_bulk(out, req->argv[1].ptr, req->argv[1].len);
}

/* Compares a password argument with the configured one without stopping at the first difference,
 * so response time says nothing about how much of a guess was right. */
static bool password_matches(const struct node *n, struct proto_slice given)
{
    const char *want = n->cfg.password;
    size_t want_len = strlen(want);
    uint8_t diff = given.len != want_len;
    for (size_t i = 0; i < given.len; i++)
        diff |= (uint8_t)(given.ptr[i] ^ (uint8_t)want[i % (want_len ? want_len : 1)]);
    return diff == 0;
}

static int cmd_auth(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out)
{
    if (req->argc > 3)
        return resp_put_error(out, "ERR", "syntax error");
    if (!password_required(n))
        return resp_put_error(out, "ERR",
                              "AUTH <password> called without any password "
                              "configured for the default user. Are you sure "
                              "your configuration is correct?");
    /* AUTH <password> or AUTH <username> <password>; the only user is "default". */
    struct proto_slice pass = req->argv[req->argc - 1];
    if (req->argc == 3 && !proto_slice_eq(req->argv[1], "default")) {
        c->authenticated = false;
        return resp_put_error(out, "WRONGPASS",
                              "invalid username-password pair or user is "
                              "disabled.");
    }
    if (!password_matches(n, pass)) {
        c->authenticated = false;
        return resp_put_error(out, "WRONGPASS",
                              "invalid username-password pair or user is "
                              "disabled.");
    }
    c->authenticated = true;
    return resp_put_simple(out, "OK", 2);
}

static int set_client_name(struct node_client *c, struct proto_slice name, struct resp_encoder *out)
{
    if (name.len > SM_CLIENT_NAME_BYTES_MAX)
        return resp_put_error(out, "TOOLARGE", "client name longer than 64 bytes");
    for (size_t i = 0; i < name.len; i++)
        if (name.ptr[i] <= ' ' || name.ptr[i] > '~')
            return resp_put_error(out, "ERR",
                                  "Client names cannot contain spaces, newlines or "
                                  "special characters.");
    memcpy(c->name, name.ptr, name.len);
    c->name_len = (uint8_t)name.len;
    return 0;
}

static int hello_reply(struct node *n, struct node_client *c, struct resp_encoder *out)
{
    int rc = resp_put_map(out, 7);
    rc = rc ? rc : resp_put_bulk(out, "server", 6);
    rc = rc ? rc : resp_put_bulk(out, "shardmart", 9);
    rc = rc ? rc : resp_put_bulk(out, "version", 7);
    rc = rc ? rc : resp_put_bulk(out, "0.1.0", 5);
    rc = rc ? rc : resp_put_bulk(out, "proto", 5);
    rc = rc ? rc : resp_put_int(out, c->resp_version);
    rc = rc ? rc : resp_put_bulk(out, "id", 2);
    rc = rc ? rc : resp_put_int(out, (int64_t)c->id);
    rc = rc ? rc : resp_put_bulk(out, "mode", 4);
    rc = rc ? rc : resp_put_bulk(out, "standalone", 10);
    rc = rc ? rc : resp_put_bulk(out, "role", 4);
    rc = rc ? rc : resp_put_bulk(out, "master", 6);
    rc = rc ? rc : resp_put_bulk(out, "modules", 7);
    rc = rc ? rc : resp_put_array(out, 0);
    (void)n;
    return rc;
}

/* HELLO [protover [AUTH username password] [SETNAME clientname]] */
static int cmd_hello(struct node *n, struct node_client *c, const struct resp_request *req,
                     struct resp_encoder *out)
{
    uint8_t version = c->resp_version;
    if (req->argc >= 2) {
        if (proto_slice_eq(req->argv[1], "2"))
            version = 2;
        else if (proto_slice_eq(req->argv[1], "3"))
            version = 3;
        else
            return resp_put_error(out, "NOPROTO", "unsupported protocol version");
    }
    for (uint32_t i = 2; i < req->argc; i++) {
        if (proto_slice_eq_nocase(req->argv[i], "AUTH") && i + 2 < req->argc) {
            bool ok = password_required(n) && proto_slice_eq(req->argv[i + 1], "default") &&
                      password_matches(n, req->argv[i + 2]);
            if (!ok && password_required(n))
                return resp_put_error(out, "WRONGPASS",
                                      "invalid username-password pair or "
                                      "user is disabled.");
            c->authenticated = true;
            i += 2;
        } else if (proto_slice_eq_nocase(req->argv[i], "SETNAME") && i + 1 < req->argc) {
            size_t before = out->w->len;
            int rc = set_client_name(c, req->argv[i + 1], out);
            if (rc != 0 || out->w->len > before)
                return rc;
            i += 1;
        } else {
            return resp_put_error(out, "ERR", "syntax error in HELLO option");
        }
    }
    if (!c->authenticated)
        return resp_put_error(out, "NOAUTH",
                              "HELLO must be called with the client already "
                              "authenticated, otherwise the HELLO AUTH <user> "
                              "<pass> option can be used to authenticate the "
                              "client and select the RESP protocol version at "
                              "the same time");
    c->resp_version = version;
    out->version = version;
    return hello_reply(n, c, out);
}

static int cmd_quit(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out)
{
    (void)n;
    (void)req;
    c->close_after_reply = true;
    return resp_put_simple(out, "OK", 2);
}

static int cmd_select(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out)
{
    (void)n;
    (void)c;
    if (!proto_slice_eq(req->argv[1], "0"))
        return resp_put_error(out, "ERR",
                              "DB index is out of range (shardmart has one "
                              "keyspace: SELECT 0)");
    return resp_put_simple(out, "OK", 2);
}

static int cmd_client(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out)
{
    (void)n;
    struct proto_slice sub = req->argv[1];
    if (proto_slice_eq_nocase(sub, "SETNAME") && req->argc == 3) {
        size_t before = out->w->len;
        int rc = set_client_name(c, req->argv[2], out);
        if (rc != 0 || out->w->len > before)
            return rc;
        return resp_put_simple(out, "OK", 2);
    }
    if (proto_slice_eq_nocase(sub, "GETNAME") && req->argc == 2)
        return c->name_len ? resp_put_bulk(out, c->name, c->name_len) : resp_put_null(out);
    if (proto_slice_eq_nocase(sub, "ID") && req->argc == 2)
        return resp_put_int(out, (int64_t)c->id);
    /* Client libraries send these on connect; accepting them keeps those libraries quiet. */
    if ((proto_slice_eq_nocase(sub, "SETINFO") && req->argc == 4) ||
        (proto_slice_eq_nocase(sub, "NO-EVICT") && req->argc == 3) ||
        (proto_slice_eq_nocase(sub, "NO-TOUCH") && req->argc == 3))
        return resp_put_simple(out, "OK", 2);
    return resp_put_error(out, "ERR",
                          "unknown CLIENT subcommand or wrong number of arguments "
                          "(try SETNAME, GETNAME, ID)");
}

/* One COMMAND row, Redis 7 shape: name, arity, flags, first key, last key, step, ACL
 * categories, tips, key specs, subcommands. */
static int command_row(const struct command *cmd, struct resp_encoder *out)
{
    char lower[32];
    size_t len = strlen(cmd->name);
    ASSERT(len < sizeof lower);
    for (size_t i = 0; i < len; i++)
        lower[i] =
            (char)((cmd->name[i] >= 'A' && cmd->name[i] <= 'Z') ? cmd->name[i] + 32 : cmd->name[i]);
    int rc = resp_put_array(out, 10);
    rc = rc ? rc : resp_put_bulk(out, lower, len);
    rc = rc ? rc : resp_put_int(out, cmd->arity);
    uint32_t nflags = !!(cmd->flags & CMD_WRITE) + !!(cmd->flags & CMD_READONLY) +
                      !!(cmd->flags & CMD_NOAUTH) + !!(cmd->flags & CMD_ADMIN);
    rc = rc ? rc : resp_put_set(out, nflags);
    if (!rc && (cmd->flags & CMD_WRITE))
        rc = resp_put_simple(out, "write", 5);
    if (!rc && (cmd->flags & CMD_READONLY))
        rc = resp_put_simple(out, "readonly", 8);
    if (!rc && (cmd->flags & CMD_NOAUTH))
        rc = resp_put_simple(out, "no_auth", 7);
    if (!rc && (cmd->flags & CMD_ADMIN))
        rc = resp_put_simple(out, "admin", 5);
    rc = rc ? rc : resp_put_int(out, 0);
    rc = rc ? rc : resp_put_int(out, 0);
    rc = rc ? rc : resp_put_int(out, 0);
    rc = rc ? rc : resp_put_set(out, 0);
    rc = rc ? rc : resp_put_set(out, 0);
    rc = rc ? rc : resp_put_array(out, 0);
    rc = rc ? rc : resp_put_array(out, 0);
    return rc;
}

static int cmd_command(struct node *n, struct node_client *c, const struct resp_request *req,
                       struct resp_encoder *out)
{
    (void)n;
    (void)c;
    if (req->argc == 1) {
        int rc = resp_put_array(out, (uint32_t)COMMANDS_COUNT);
        for (uint32_t i = 0; rc == 0 && i < COMMANDS_COUNT; i++)
            rc = command_row(command_at(i), out);
        return rc;
    }
    struct proto_slice sub = req->argv[1];
    if (proto_slice_eq_nocase(sub, "COUNT"))
        return resp_put_int(out, (int64_t)COMMANDS_COUNT);
    /* redis-cli 7 asks for COMMAND DOCS at start to show hints; an empty map is a valid
     * answer that makes it fall back to its built-in help. */
    if (proto_slice_eq_nocase(sub, "DOCS"))
        return resp_put_map(out, 0);
    if (proto_slice_eq_nocase(sub, "INFO")) {
        int rc = resp_put_array(out, req->argc - 2);
        for (uint32_t i = 2; rc == 0 && i < req->argc; i++) {
            int row = find_command(req->argv[i]);
            rc = row < 0 ? resp_put_null_array(out) : command_row(command_at((uint32_t)row), out);
        }
        return rc;
    }
    return resp_put_error(out, "ERR", "unknown COMMAND subcommand (try COUNT, INFO, DOCS)");
}

/* Longest CONFIG GET pattern: the longest setting name is 26 bytes. */
#define CONFIG_PATTERN_BYTES_MAX 64

/* A glob match of '*' and '?' only: CONFIG GET takes patterns such as "save" or "*max*". */
static bool glob_match(const char *pat, size_t pat_len, const char *s)
{
    if (pat_len == 0)
        return *s == '\0';
    if (*pat == '*') {
        for (;; s++) {
            if (glob_match(pat + 1, pat_len - 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    if (*s == '\0')
        return false;
    char a = *pat >= 'A' && *pat <= 'Z' ? (char)(*pat + 32) : *pat;
    return (a == '?' || a == *s) && glob_match(pat + 1, pat_len - 1, s + 1);
}

static int cmd_config(struct node *n, struct node_client *c, const struct resp_request *req,
                      struct resp_encoder *out)
{
    (void)c;
    if (!proto_slice_eq_nocase(req->argv[1], "GET") || req->argc < 3)
        return resp_put_error(out, "ERR",
                              "only CONFIG GET <pattern> is supported: settings "
                              "are flags of 'shardmart start'");
    char vals[8][32];
    snprintf(vals[0], sizeof vals[0], "%u", n->cfg.clients_max);
    snprintf(vals[1], sizeof vals[1], "%llu", (unsigned long long)n->cfg.output_bytes_max);
    snprintf(vals[2], sizeof vals[2], "%u", n->cfg.idle_timeout_ms / 1000);
    snprintf(vals[3], sizeof vals[3], "%d", n->cfg.resp_port);
    snprintf(vals[4], sizeof vals[4], "%u", n->cfg.partitions);
    /* redis-benchmark reads "save" and "appendonly" at start; the answers describe the truth:
     * shardmart has no RDB schedule and always logs before it replies. */
    const char *names[] = {"maxclients", "client-output-buffer-limit",
                           "timeout",    "port",
                           "partitions", "save",
                           "appendonly", "databases"};
    const char *values[] = {vals[0], vals[1], vals[2], vals[3], vals[4], "", "yes", "1"};
    uint32_t hits[8];
    uint32_t nhits = 0;
    for (uint32_t a = 2; a < req->argc; a++) {
        /* The matcher recurses once per pattern byte: bound the pattern, not the stack. */
        if (req->argv[a].len > CONFIG_PATTERN_BYTES_MAX)
            return resp_put_error(out, "TOOLARGE", "CONFIG GET pattern longer than 64 bytes");
        const char *pat = (const char *)req->argv[a].ptr;
        for (uint32_t i = 0; i < 8; i++) {
            bool dup = false;
            for (uint32_t k = 0; k < nhits; k++)
                dup |= hits[k] == i;
            if (!dup && glob_match(pat, req->argv[a].len, names[i]))
                hits[nhits++] = i;
        }
    }
    int rc = resp_put_map(out, nhits);
    for (uint32_t k = 0; rc == 0 && k < nhits; k++) {
        rc = resp_put_bulk(out, names[hits[k]], strlen(names[hits[k]]));
        rc = rc ? rc : resp_put_bulk(out, values[hits[k]], strlen(values[hits[k]]));
    }
    return rc;
}

static int cmd_info(struct node *n, struct node_client *c, const struct resp_request *req,
                    struct resp_encoder *out)
{
    (void)c;
    (void)req;
    char text[1024];
    int len =
        snprintf(text, sizeof text,
                 "# Server\r\nshardmart_version:0.1.0\r\ntcp_port:%d\r\n"
                 "uptime_in_seconds:%llu\r\npartitions:%u\r\n"
                 "# Clients\r\nmaxclients:%u\r\n"
                 "# Stats\r\ntotal_connections_received:%llu\r\n"
                 "unknown_commands:%llu\r\nprotocol_errors:%llu\r\n",
                 n->cfg.resp_port, (unsigned long long)((n->now_ms - n->started_ms) / 1000),
                 n->cfg.partitions, n->cfg.clients_max, (unsigned long long)n->clients_created,
                 (unsigned long long)n->unknown_commands, (unsigned long long)n->protocol_errors);
    ASSERT(len > 0 && (size_t)len < sizeof text);
    return resp_put_verbatim(out, "txt", text, (size_t)len);
}
