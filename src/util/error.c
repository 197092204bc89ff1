/* Lookups over the error table of error.h. */
#include "util/error.h"

static const char *const wire_codes[SM_ERR_COUNT] = {
#define SM_ERR_CODE(name, code, msg) [SM_ERR_ROW_##name] = code,
    SM_ERRORS(SM_ERR_CODE)
#undef SM_ERR_CODE
};

static const char *const messages[SM_ERR_COUNT] = {
#define SM_ERR_MSG(name, code, msg) [SM_ERR_ROW_##name] = msg,
    SM_ERRORS(SM_ERR_MSG)
#undef SM_ERR_MSG
};

static int row_of(int err)
{
    if (err >= 0 || err < -SM_ERR_COUNT)
        return -1;
    return -err - 1;
}

const char *sm_errcode(int err)
{
    if (err == SM_OK)
        return "OK";
    int row = row_of(err);
    return row < 0 ? "ERR" : wire_codes[row];
}

const char *sm_strerror(int err)
{
    if (err == SM_OK)
        return "ok";
    int row = row_of(err);
    return row < 0 ? "unknown error" : messages[row];
}
