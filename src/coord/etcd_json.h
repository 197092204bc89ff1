/*
 * etcd 3.4's v3 JSON gateway, as bytes: request bodies built from coord requests, and response
 * bodies parsed into coord results. Pure functions (no I/O), so that every parser is unit-tested
 * and fuzzed on its own (fuzz/fuzz_coord_etcd_json.c); etcd.c does the talking.
 *
 * The gateway maps etcd's protobuf messages to JSON (grpc-gateway, jsonpb): bytes are base64,
 * 64-bit integers are decimal strings, and fields holding their zero value are left out (an
 * event without "type" is a PUT, a keepalive without "TTL" means the lease is gone, a txn
 * without "succeeded" failed its compares). Streaming calls (watch, keepalive) wrap each message
 * as {"result": {...}} on its own line; errors are {"error": .., "message": .., "code": grpc}.
 */
#ifndef SHARDMART_COORD_ETCD_JSON_H
#define SHARDMART_COORD_ETCD_JSON_H

#include "coord/coord_internal.h"

/* The gateway path of a request kind ("/v3/kv/txn" ...). */
const char *etcd_json_path(enum sm_coord_req_kind kind);

/* The JSON body of request r, malloc'ed and NUL-terminated into *body (the caller frees it).
 * For a WATCH, start_revision is the revision to (re)start from (0 = now). 0 or SM_E_NOMEM. */
MUST_USE int etcd_json_request(const struct coord_req *r, int64_t start_revision, char **body);

/* Parses the 200 response body of request r into out (kind DONE, id and req already set).
 * Returns 0 with out filled, or an error with out->err and message set (SM_E_CORRUPT for a body
 * that does not match the API; SM_E_NOTFOUND for a keepalive of a lost lease; SM_E_TOOLARGE for
 * reads past SM_COORD_RANGE_KVS_MAX). */
int etcd_json_response(const struct coord_req *r, const char *body, size_t len,
                       struct sm_coord_result *out);

/* Parses an error body (any HTTP status but 200) into out->err and message, mapping the gRPC
 * code: NotFound -> NOTFOUND, InvalidArgument -> BADARG, ResourceExhausted -> TOOLARGE,
 * Unavailable -> TRYAGAIN, DeadlineExceeded -> TIMEOUT, OutOfRange (compacted) -> STATE, else IO.
 * Returns out->err. */
int etcd_json_error(long http_status, const char *body, size_t len, struct sm_coord_result *out);

/* One message of a watch stream. */
struct etcd_watch_msg {
    bool created;
    bool canceled;
    int64_t compact_revision; /* > 0: the start was compacted */
    int64_t header_revision;
    char reason[SM_COORD_MESSAGE_BYTES_MAX]; /* cancel_reason or error message */
    bool error;                              /* an {"error": ...} message */
    struct sm_coord_event *events;           /* owned; free with etcd_watch_msg_free */
    size_t events_count;
};

/* Parses one line of a watch stream. 0, or SM_E_CORRUPT / SM_E_NOMEM / SM_E_TOOLARGE (msg is
 * then empty). */
MUST_USE int etcd_json_watch_line(const char *line, size_t len, struct etcd_watch_msg *msg);
void etcd_watch_msg_free(struct etcd_watch_msg *msg);

/* The end of a prefix range in etcd's convention: the prefix with its last byte that is not
 * 0xff incremented and what follows it dropped; "\0" for a prefix of only 0xff bytes or an empty
 * one (everything). Writes into end[SM_COORD_KEY_BYTES_MAX + 1]; returns its length. */
size_t etcd_prefix_end(const char *prefix, size_t len, char *end);

/* Base64 (standard alphabet, padded), through OpenSSL's EVP_EncodeBlock / EVP_DecodeBlock.
 * Decoding checks the alphabet and canonical padding first (EVP_DecodeBlock alone accepts
 * whitespace and reports padding as zero bytes). *out is malloc'ed, NUL-terminated; the caller
 * frees it. 0, SM_E_CORRUPT or SM_E_NOMEM. */
MUST_USE int etcd_b64_encode(const void *data, size_t len, char **out);
MUST_USE int etcd_b64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

#endif
