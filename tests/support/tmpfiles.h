/*
 * Temporary directories and whole-file reads and writes for tests that work on real files
 * (WAL truncation and tearing, say). Every call fails the current Criterion test on error.
 */
#ifndef SHARDMART_TESTS_TMPFILES_H
#define SHARDMART_TESTS_TMPFILES_H

#include <stddef.h>
#include <stdint.h>

/* Makes a fresh directory /tmp/<prefix>-XXXXXX and writes its path into dir[0, cap). */
void test_tmpdir_make(char *dir, size_t cap, const char *prefix);
/* Removes the directory and everything in it. */
void test_tmpdir_remove(const char *dir);
/* The whole file, malloc'ed (the caller frees); *len gets its length. */
uint8_t *test_file_read(const char *path, size_t *len);
/* Replaces the file's contents with data[0, len). */
void test_file_write(const char *path, const uint8_t *data, size_t len);

#endif
