/* The one place an assertion failure ends up: log it whole, then abort (see assert.h). */
#include "util/assert.h"

#include <stdio.h>
#include <stdlib.h>

void sm_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "shardmart: assertion failed at %s:%d: %s\n", file, line, expr);
    fflush(stderr);
    abort();
}
