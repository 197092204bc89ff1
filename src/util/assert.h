/*
 * Assertions that stay on in every build. ASSERT(x) states that we have a proof that x holds;
 * when it does not, the process logs file:line and the expression, then aborts, because going on
 * with a broken invariant in a trading engine can only turn one bug into lost money.
 * Operating errors (bad input, a full table, a failed write) are never assertions: they are
 * negative return codes (src/util/error.h).
 */
#ifndef SHARDMART_UTIL_ASSERT_H
#define SHARDMART_UTIL_ASSERT_H

__attribute__((noreturn, cold)) void sm_assert_fail(const char *expr, const char *file, int line);

#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (__builtin_expect(!(x), 0))                                                             \
            sm_assert_fail(#x, __FILE__, __LINE__);                                                \
    } while (0)

/* For paths that must never run (a switch over every enum value, say). */
#define UNREACHABLE() sm_assert_fail("unreachable", __FILE__, __LINE__)

#define MUST_USE __attribute__((warn_unused_result))

#endif
