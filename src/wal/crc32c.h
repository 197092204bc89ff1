/*
 * CRC32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78), the checksum of every WAL
 * record, segment header and snapshot. Debian ships no maintained C library for it (Google's
 * crc32c is packaged only as a Python module), so this is a small implementation: the SSE4.2
 * CRC32 instruction when the CPU has it (about 20 GB/s, one 8-byte step per cycle) and a
 * slicing-by-8 table fallback everywhere else. Both give the same values, checked against the
 * RFC 3720 appendix B.4 vectors in tests/wal/test_crc32c.c.
 */
#ifndef SHARDMART_WAL_CRC32C_H
#define SHARDMART_WAL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends `crc` (the value returned for the bytes before; 0 to start) over [data, data+len).
 * sm_crc32c(sm_crc32c(0, a, n), b, m) == sm_crc32c(0, a||b, n+m), so checksums can be computed
 * over scattered pieces (a header and its payload, or a snapshot written in chunks). */
uint32_t sm_crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table version, always available; exported so tests can compare both paths. */
uint32_t sm_crc32c_portable(uint32_t crc, const void *data, size_t len);

/* True when sm_crc32c() uses the CPU instruction. */
int sm_crc32c_hardware(void);

#endif
