/* CRC32C golden vectors (RFC 3720, appendix B.4) for both the hardware and the table path. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "wal/crc32c.h"

static void check_vector(const uint8_t *data, size_t len, uint32_t want)
{
    cr_assert_eq(sm_crc32c(0, data, len), want, "dispatch: got %08x want %08x",
                 sm_crc32c(0, data, len), want);
    cr_assert_eq(sm_crc32c_portable(0, data, len), want, "portable: got %08x want %08x",
                 sm_crc32c_portable(0, data, len), want);
}

Test(crc32c, rfc3720_zeros)
{
    uint8_t buf[32];
    memset(buf, 0, sizeof buf);
    check_vector(buf, sizeof buf, 0x8A9136AAu);
}

Test(crc32c, rfc3720_ones)
{
    uint8_t buf[32];
    memset(buf, 0xFF, sizeof buf);
    check_vector(buf, sizeof buf, 0x62A8AB43u);
}

Test(crc32c, rfc3720_ascending_and_descending)
{
    uint8_t buf[32];
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)i;
    check_vector(buf, sizeof buf, 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (uint8_t)(31 - i);
    check_vector(buf, sizeof buf, 0x113FDB5Cu);
}

Test(crc32c, check_value_123456789)
{
    /* The catalogue "check" value of CRC-32C over the ASCII digits 1..9. */
    check_vector((const uint8_t *)"123456789", 9, 0xE3069283u);
}

Test(crc32c, incremental_equals_whole_at_every_split_and_alignment)
{
    uint8_t buf[300];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (size_t start = 0; start < 9; start++) {
        size_t len = sizeof buf - start;
        uint32_t whole = sm_crc32c_portable(0, buf + start, len);
        cr_assert_eq(sm_crc32c(0, buf + start, len), whole);
        for (size_t cut = 0; cut <= len; cut += 7) {
            uint32_t c = sm_crc32c(0, buf + start, cut);
            c = sm_crc32c(c, buf + start + cut, len - cut);
            cr_assert_eq(c, whole, "start %zu cut %zu", start, cut);
        }
    }
    cr_assert_eq(sm_crc32c(0, NULL, 0), 0u);
}
