/*
 * A deliberately simple reference model of the engine for model-based testing: fixed arrays,
 * linear scans, keys kept as strings, idempotency as a plain FIFO of (request id, argument bytes,
 * reply). It shares no code with src/engine/ beyond the public types, so a bug has to be made
 * twice, the same way, to go unnoticed. Lock commands are not modelled here (the lock service has
 * its own model test, tests/engine/test_locks_model.c).
 */
#ifndef SHARDMART_TESTS_ENGINE_MODEL_H
#define SHARDMART_TESTS_ENGINE_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

#define MODEL_ROWS  64
#define MODEL_KEY   24
#define MODEL_ARGS  1200
#define MODEL_ITEMS 12
#define MODEL_REQS  256

struct model_item {
    int sku;
    int64_t qty;
};

struct model_sku {
    char name[MODEL_KEY];
    int64_t stocked, available, reserved, sold, limit, price;
};

struct model_order {
    bool live;
    char id[MODEL_KEY], user[MODEL_KEY];
    int state; /* enum values as in replies: 1 RESERVED .. 7 REFUNDED */
    int64_t at_ms, total;
    int buyer, merchant;
    bool external;
    int n;
    struct model_item items[MODEL_ITEMS];
};

struct model_hold {
    bool live;
    char id[MODEL_KEY];
    int state; /* 1 PREPARED, 2 COMMITTED, 3 ABORTED */
    int64_t at_ms;
    int n;
    struct model_item items[MODEL_ITEMS];
};

struct model_account {
    char id[MODEL_KEY];
    int64_t balance, overdraft;
};

struct model_limit {
    char user[MODEL_KEY];
    int sku;
    int64_t count; /* 0: unused row */
};

struct model_request {
    char id[MODEL_KEY + 8];
    uint8_t args[MODEL_ARGS];
    size_t args_len;
    struct engine_reply reply;
};

struct model {
    struct engine_config cfg;
    int64_t now_ms;
    int64_t deposits, withdrawals;
    int skus_count, accounts_count;
    struct model_sku skus[MODEL_ROWS];
    struct model_account accounts[MODEL_ROWS];
    struct model_order orders[MODEL_ROWS];
    struct model_hold holds[MODEL_ROWS];
    struct model_limit limits[MODEL_ROWS];
    struct model_request requests[MODEL_REQS]; /* FIFO: [0] oldest */
    int requests_count;
};

void model_init(struct model *m, const struct engine_config *cfg);

/* Applies a mutation given as a command and its record bytes (for the argument comparison of
 * idempotency), at now_ms; writes the expected reply. A record that does not encode is passed
 * with rec == NULL and gets BADARG. */
void model_apply(struct model *m, int64_t now_ms, const struct engine_cmd *cmd, const uint8_t *rec,
                 size_t rec_len, struct engine_reply *out);

void model_read(const struct model *m, const struct engine_cmd *cmd, struct engine_reply *out);

#endif
