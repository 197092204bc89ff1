/*
 * Reading a benchmark history (history.h). The file is read whole and split in place: every
 * field becomes a NUL-terminated string inside the one buffer, so a million-line history costs
 * its size plus one small row per line.
 */
#include "cli/history.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"

#define HISTORY_FIELDS 8

#define HISTORY_OP_NAME(e, name) name,
static const char *const op_names[] = {HISTORY_OPS(HISTORY_OP_NAME)};
#undef HISTORY_OP_NAME

const char *history_op_name(int op)
{
    ASSERT(op >= 0 && op < HISTORY_OPS_N);
    return op_names[op];
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        len += fread(buf + len, 1, cap - len, f);
        if (len < cap)
            break;
        char *bigger = realloc(buf, cap * 2 + 1);
        if (!bigger) {
            free(buf);
            buf = NULL;
        } else {
            buf = bigger;
            cap *= 2;
        }
    }
    if (buf && ferror(f)) {
        free(buf);
        buf = NULL;
        errno = EIO;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static bool all_digits(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Splits one line (NUL-terminated, no newline) into l; false with why on a malformed line. */
static bool parse_line(char *s, struct history_line *l, char *why, size_t why_cap)
{
    char *f[HISTORY_FIELDS];
    size_t n = 0;
    for (char *p = s; n < HISTORY_FIELDS; n++) {
        f[n] = p;
        char *tab = n + 1 < HISTORY_FIELDS ? strchr(p, '\t') : NULL;
        if (!tab) {
            n++;
            break;
        }
        *tab = '\0';
        p = tab + 1;
    }
    if (n != HISTORY_FIELDS) {
        snprintf(why, why_cap, "%zu fields, want %d (tab-separated)", n, HISTORY_FIELDS);
        return false;
    }
    size_t op = 0;
    while (op < HISTORY_OPS_N && strcmp(f[1], op_names[op]) != 0)
        op++;
    const char *bad = !all_digits(f[0])     ? "client is not a number"
                      : op == HISTORY_OPS_N ? "unknown operation"
                      : !*f[2]              ? "empty request id"
                      : !all_digits(f[3])   ? "intended_us is not a number"
                      : !all_digits(f[4])   ? "reply_us is not a number"
                      : !*f[5] || !*f[6]    ? "empty outcome or result"
                      : !*f[7]              ? "no arguments"
                                            : NULL;
    if (bad) {
        snprintf(why, why_cap, "%s", bad);
        return false;
    }
    l->op = (uint8_t)op;
    l->client = (uint32_t)strtoul(f[0], NULL, 10);
    l->intended_us = strtoull(f[3], NULL, 10);
    l->reply_us = strtoull(f[4], NULL, 10);
    l->rid = f[2];
    l->outcome = f[5];
    l->result = f[6];
    l->args = f[7];
    l->acked = strcmp(f[5], "unknown") != 0;
    l->ok = strcmp(f[5], "ok") == 0;
    return true;
}

int history_load(struct history *h, const char *path, uint32_t *bad_line, char *why, size_t why_cap)
{
    memset(h, 0, sizeof *h);
    *bad_line = 0;
    h->text = read_all(path);
    if (!h->text)
        return SM_E_IO;
    size_t cap = 0;
    uint32_t number = 0;
    for (char *s = h->text; *s;) {
        char *nl = strchr(s, '\n');
        char *next = nl ? nl + 1 : s + strlen(s);
        if (nl)
            *nl = '\0';
        number++;
        if (*s && *s != '#') {
            if (h->lines_n == cap) {
                cap = cap ? cap * 2 : 1024;
                struct history_line *bigger = realloc(h->lines, cap * sizeof *bigger);
                if (!bigger)
                    return SM_E_NOMEM;
                h->lines = bigger;
            }
            struct history_line *l = &h->lines[h->lines_n];
            l->line = number;
            if (!parse_line(s, l, why, why_cap)) {
                *bad_line = number;
                return SM_E_CORRUPT;
            }
            h->lines_n++;
        }
        s = next;
    }
    return 0;
}

void history_free(struct history *h)
{
    free(h->text);
    free(h->lines);
    memset(h, 0, sizeof *h);
}
