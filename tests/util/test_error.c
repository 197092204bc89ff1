/* The error table: every code has a distinct wire name and a message, and lookups are total. */
#include <criterion/criterion.h>
#include <string.h>

#include "util/error.h"

Test(error, every_code_has_distinct_wire_name_and_message)
{
    for (int a = -1; a >= -SM_ERR_COUNT; a--) {
        cr_assert_not_null(sm_errcode(a));
        cr_assert_gt(strlen(sm_strerror(a)), 0);
        for (int b = a - 1; b >= -SM_ERR_COUNT; b--)
            cr_assert_str_neq(sm_errcode(a), sm_errcode(b), "codes %d and %d share a name", a, b);
    }
}

Test(error, known_codes_keep_their_wire_names)
{
    cr_assert_str_eq(sm_errcode(SM_E_SOLDOUT), "SOLDOUT");
    cr_assert_str_eq(sm_errcode(SM_E_BUSY), "BUSY");
    cr_assert_str_eq(sm_errcode(SM_OK), "OK");
}

Test(error, out_of_range_values_are_safe)
{
    cr_assert_str_eq(sm_errcode(-1000), "ERR");
    cr_assert_str_eq(sm_errcode(7), "ERR");
    cr_assert_str_eq(sm_strerror(-1000), "unknown error");
}
