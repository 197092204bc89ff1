/*
 * Money: accounts of int64 minor units (cents) with an optional overdraft limit, deposits,
 * withdrawals and double-entry transfers. The engine keeps the total ever deposited and ever
 * withdrawn, so "the sum of all balances equals deposits minus withdrawals" is checkable at any
 * time (engine_check). Every sum goes through __builtin_*_overflow: an operation that would
 * overflow is -OVERFLOW and changes nothing.
 */
#include "engine/engine_internal.h"

struct engine_result engine_account_move(struct engine *e, uint32_t from, uint32_t to,
                                         int64_t amount_cents)
{
    ASSERT(amount_cents >= 0);
    ASSERT(from != to);
    struct engine_account *a = &e->accounts[from], *b = &e->accounts[to];
    int64_t a_new, b_new;
    if (__builtin_sub_overflow(a->balance_cents, amount_cents, &a_new))
        return engine_err(SM_E_NOFUNDS, 0);
    if (a_new < -a->overdraft_cents)
        return engine_err(SM_E_NOFUNDS, 0);
    if (__builtin_add_overflow(b->balance_cents, amount_cents, &b_new))
        return engine_err(SM_E_OVERFLOW, 0);
    a->balance_cents = a_new;
    b->balance_cents = b_new;
    return engine_ok();
}

static struct engine_result account_open(struct engine *e, const struct engine_cmd *cmd,
                                         struct engine_digest id)
{
    if (engine_account_find(e, id) != SM_INDEX_NONE)
        return engine_err(SM_E_EXISTS, 0);
    if (e->accounts_count >= e->cfg.accounts_max)
        return engine_err(SM_E_BUSY, 0);
    uint32_t slot = e->accounts_count++;
    e->accounts[slot] = (struct engine_account){.id = id, .overdraft_cents = cmd->num};
    int rc = sm_index_insert(&e->account_index, id.lo, slot);
    ASSERT(rc == 0);
    return engine_ok();
}

static struct engine_result account_deposit(struct engine *e, struct engine_account *a,
                                            int64_t amount)
{
    int64_t balance, total;
    if (__builtin_add_overflow(a->balance_cents, amount, &balance) ||
        __builtin_add_overflow(e->deposits_total_cents, amount, &total))
        return engine_err(SM_E_OVERFLOW, 0);
    a->balance_cents = balance;
    e->deposits_total_cents = total;
    return engine_int(balance);
}

static struct engine_result account_withdraw(struct engine *e, struct engine_account *a,
                                             int64_t amount)
{
    int64_t balance, total;
    if (__builtin_sub_overflow(a->balance_cents, amount, &balance) || balance < -a->overdraft_cents)
        return engine_err(SM_E_NOFUNDS, 0);
    if (__builtin_add_overflow(e->withdrawals_total_cents, amount, &total))
        return engine_err(SM_E_OVERFLOW, 0);
    a->balance_cents = balance;
    e->withdrawals_total_cents = total;
    return engine_int(balance);
}

struct engine_result engine_account_cmd(struct engine *e, const struct engine_cmd *cmd)
{
    struct engine_digest id = engine_digest_of(&cmd->key);
    if (cmd->type == ENGINE_ACCOUNT_OPEN)
        return account_open(e, cmd, id);
    uint32_t slot = engine_account_find(e, id);
    if (slot == SM_INDEX_NONE)
        return engine_err(SM_E_NOTFOUND, 0);
    switch (cmd->type) {
    case ENGINE_ACCOUNT_DEPOSIT:
        return account_deposit(e, &e->accounts[slot], cmd->num);
    case ENGINE_ACCOUNT_WITHDRAW:
        return account_withdraw(e, &e->accounts[slot], cmd->num);
    case ENGINE_ACCOUNT_TRANSFER: {
        uint32_t to = engine_account_find(e, engine_digest_of(&cmd->key2));
        if (to == SM_INDEX_NONE)
            return engine_err(SM_E_NOTFOUND, 0);
        return engine_account_move(e, slot, to, cmd->num);
    }
    default:
        UNREACHABLE();
    }
}

void engine_read_account(const struct engine *e, const struct engine_cmd *cmd,
                         struct engine_reply *out)
{
    uint32_t slot = engine_account_find(e, engine_digest_of(&cmd->key));
    if (slot == SM_INDEX_NONE) {
        engine_reply_err(out, SM_E_NOTFOUND, sm_strerror(SM_E_NOTFOUND));
        return;
    }
    const struct engine_account *a = &e->accounts[slot];
    out->kind = ENGINE_REPLY_FIELDS;
    out->fields_count = 2;
    out->fields[0] = (struct engine_field){.name = "balance_cents", .value = a->balance_cents};
    out->fields[1] = (struct engine_field){.name = "overdraft_cents", .value = a->overdraft_cents};
}
