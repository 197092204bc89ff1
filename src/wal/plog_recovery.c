/*
 * Recovery of the partition log (plog_open): the wal's own recovery first (segments, torn tail,
 * corruption, repair; wal_open), then the records replayed into every partition's state, then
 * the snapshot files checked against their markers. The rules are at the top of plog.c.
 *
 * Recovery allocates as it goes (entries are copied one by one, arrays grow by doubling): it runs
 * once at start-up, and plog_recovered_free gives it all back once the parts are initialised.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "wal/crc32c.h"
#include "wal/plog.h"
#include "wal/plog_internal.h"

/* Recovery-only facts about a partition. */
struct rec_part {
    bool known;     /* its state at the current record is known (see plog.c's rules) */
    uint64_t epoch; /* of the newest snapshot marker (or file) */
    int64_t time_ms;
    uint64_t len;
    uint32_t crc;
    uint64_t loaded_pos; /* the snapshot file loaded into the recovered part (0: none) */
};

/* A snapshot file found in the directory. */
struct snap_file {
    uint32_t partition;
    uint64_t position;
};

struct listing {
    struct snap_file *files;
    uint32_t count, cap;
    char (*temps)[64];
    uint32_t temps_count, temps_cap;
};

static int resolve_config(struct plog_config *c)
{
    if (!c->dir || c->dir[0] == '\0' || strlen(c->dir) > SM_WAL_DIR_BYTES_MAX)
        return SM_E_BADARG;
    if (c->partitions == 0 || c->partitions > SM_PLOG_PARTITIONS_MAX)
        return SM_E_BADARG;
    uint32_t batch = c->batch_bytes ? c->batch_bytes : SM_WAL_BATCH_BYTES_DEFAULT;
    if (batch < SM_WAL_BATCH_BYTES_MIN)
        return SM_E_BADARG;
    uint32_t fit = batch - WAL_RECORD_HEADER_BYTES - PLOG_HEAD_BYTES;
    if (c->entry_bytes_max == 0)
        c->entry_bytes_max = fit < SM_PLOG_ENTRY_BYTES_MAX ? fit : SM_PLOG_ENTRY_BYTES_MAX;
    if (c->entry_bytes_max > SM_PLOG_ENTRY_BYTES_MAX || c->entry_bytes_max > fit ||
        c->entry_bytes_max < PLOG_MARKER_BODY_BYTES)
        return SM_E_BADARG;
    if (c->snapshot_bytes_max == 0)
        c->snapshot_bytes_max = SM_PLOG_SNAPSHOT_BYTES_MAX;
    if (c->snapshot_bytes_max > SM_PLOG_SNAPSHOT_BYTES_MAX)
        return SM_E_BADARG;
    return 0;
}

static void path_join(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, WAL_PATH_BYTES, "%s/%s", dir, name);
    ASSERT(n > 0 && n < WAL_PATH_BYTES);
}

static int corrupt(struct plog_recovery *rep, const char *path, uint64_t position,
                   uint32_t partition, const char *why)
{
    rep->corrupt = true;
    snprintf(rep->corrupt_path, sizeof rep->corrupt_path, "%s", path);
    rep->corrupt_position = position;
    rep->corrupt_partition = partition;
    snprintf(rep->corrupt_reason, sizeof rep->corrupt_reason, "%s", why);
    return SM_E_CORRUPT;
}

/* Reads a whole small file; *len_out its length. -ENOENT when missing; SM_E_TOOLARGE past max. */
static int read_file(const struct sm_fs *fs, const char *path, uint64_t max, uint8_t **out,
                     uint64_t *len_out)
{
    int fd, rc = fs->open(fs->ctx, path, SM_FS_READ, &fd);
    if (rc < 0)
        return rc;
    uint64_t size = 0;
    uint8_t *buf = NULL;
    if ((rc = fs->size(fs->ctx, fd, &size)) < 0)
        goto done;
    if (size > max) {
        rc = SM_E_TOOLARGE;
        goto done;
    }
    buf = malloc(size ? (size_t)size : 1);
    if (!buf) {
        rc = -ENOMEM;
        goto done;
    }
    rc = sm_fs_pread_full(fs, fd, buf, (size_t)size, 0);
done:
    (void)fs->close(fs->ctx, fd);
    if (rc < 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len_out = size;
    return 0;
}

static int read_start(struct plog *l, struct plog_recovery *rep)
{
    char path[WAL_PATH_BYTES];
    path_join(path, l->dir, PLOG_START_NAME);
    uint8_t *buf;
    uint64_t len;
    int rc = read_file(&l->fs, path, PLOG_START_BYTES, &buf, &len);
    l->start = 1;
    if (rc == -ENOENT)
        return 0;
    if (rc == SM_E_TOOLARGE)
        return corrupt(rep, path, 0, 0, "log start file damaged");
    if (rc < 0)
        return plog_io_err(rc);
    bool ok = len == PLOG_START_BYTES && sm_crc32c(0, buf, 8) == plog_get_u32(buf + 8) &&
              plog_get_u32(buf + 12) == 0 && plog_get_u64(buf) >= 1;
    if (ok)
        l->start = plog_get_u64(buf);
    free(buf);
    return ok ? 0 : corrupt(rep, path, 0, 0, "log start file damaged");
}

/* ---- the directory ------------------------------------------------------------------------- */

static int on_entry(void *ctx, const char *name)
{
    struct listing *ls = ctx;
    struct snap_file f;
    size_t n = strlen(name);
    if (plog_parse_snapshot_name(name, &f.partition, &f.position)) {
        if (ls->count == ls->cap) {
            uint32_t cap = ls->cap ? ls->cap * 2 : 64;
            struct snap_file *p = realloc(ls->files, (size_t)cap * sizeof *p);
            if (!p)
                return -ENOMEM;
            ls->files = p;
            ls->cap = cap;
        }
        ls->files[ls->count++] = f;
        return 0;
    }
    bool temp = n < 64 && n > 4 && strcmp(name + n - 4, ".tmp") == 0 &&
                (strncmp(name, "plog-snap-", 10) == 0 || strcmp(name, PLOG_START_NAME ".tmp") == 0);
    if (temp) {
        if (ls->temps_count == ls->temps_cap) {
            uint32_t cap = ls->temps_cap ? ls->temps_cap * 2 : 4;
            char(*p)[64] = realloc(ls->temps, (size_t)cap * sizeof *p);
            if (!p)
                return -ENOMEM;
            ls->temps = p;
            ls->temps_cap = cap;
        }
        memcpy(ls->temps[ls->temps_count++], name, n + 1);
    }
    return 0;
}

static int list_files(struct plog *l, struct listing *ls, struct plog_recovery *rep)
{
    int rc = l->fs.list(l->fs.ctx, l->dir, on_entry, ls);
    if (rc == -ENOENT && l->config.read_only)
        return 0;
    if (rc < 0)
        return plog_io_err(rc);
    for (uint32_t i = 0; i < ls->temps_count && !l->config.read_only; i++) {
        char path[WAL_PATH_BYTES];
        path_join(path, l->dir, ls->temps[i]);
        if ((rc = l->fs.unlink(l->fs.ctx, path)) < 0 && rc != -ENOENT)
            return plog_io_err(rc);
        rep->snapshot_temps_removed++;
    }
    return 0;
}

/* ---- snapshot files ------------------------------------------------------------------------ */

/* Loads and checks the snapshot file of partition p at position pos into its recovered part.
 * When `marker` is set, the file must agree with the marker's facts in rp. */
static int load_snapshot(struct plog *l, uint32_t p, uint64_t pos, bool marker, struct rec_part *rp,
                         struct plog_recovery *rep)
{
    char path[WAL_PATH_BYTES];
    plog_snapshot_name(path, sizeof path, l->dir, p, pos);
    uint8_t *buf;
    uint64_t len;
    int rc = read_file(&l->fs, path, l->config.snapshot_bytes_max + PLOG_SNAPSHOT_HEADER_BYTES,
                       &buf, &len);
    if (rc == -ENOENT)
        return corrupt(rep, path, pos, p, "snapshot file of a durable marker missing");
    if (rc == SM_E_TOOLARGE)
        return corrupt(rep, path, pos, p, "snapshot file larger than the maximum");
    if (rc < 0)
        return plog_io_err(rc);
    struct plog_snap_header h;
    const char *why = "snapshot file shorter than its header";
    if (len < PLOG_SNAPSHOT_HEADER_BYTES || !plog_snap_header_decode(buf, &h, &why))
        goto bad;
    why = "snapshot file names another partition or position";
    if (h.partition != p || h.position != pos)
        goto bad;
    why = "snapshot length differs from the file";
    if (h.len != len - PLOG_SNAPSHOT_HEADER_BYTES)
        goto bad;
    why = "snapshot checksum mismatch";
    if (sm_crc32c(0, buf + PLOG_SNAPSHOT_HEADER_BYTES, (size_t)h.len) != h.crc)
        goto bad;
    why = "snapshot file differs from its marker";
    if (marker && (h.index != l->parts[p].snap_index || h.epoch != rp->epoch ||
                   h.time_ms != rp->time_ms || h.len != rp->len || h.crc != rp->crc))
        goto bad;
    struct plog_part *part = &l->recovered[p];
    free(part->snap);
    memmove(buf, buf + PLOG_SNAPSHOT_HEADER_BYTES, (size_t)h.len);
    part->snap = buf;
    part->snap_len = (size_t)h.len;
    part->snap_index = h.index;
    part->snap_epoch = h.epoch;
    part->snap_time_ms = h.time_ms;
    rp->epoch = h.epoch;
    rp->time_ms = h.time_ms;
    rp->len = h.len;
    rp->crc = h.crc;
    rp->loaded_pos = pos;
    return 0;
bad:
    free(buf);
    return corrupt(rep, path, pos, p, why);
}

/* Partitions whose newest snapshot's marker was compacted away start from that file. */
static int load_base_snapshots(struct plog *l, const struct listing *ls, uint64_t log_first,
                               struct rec_part *rs, struct plog_recovery *rep)
{
    for (uint32_t i = 0; i < ls->count; i++) {
        const struct snap_file *f = &ls->files[i];
        if (f->partition < l->config.partitions && f->position < log_first &&
            f->position > l->parts[f->partition].snap_pos)
            l->parts[f->partition].snap_pos = f->position; /* the newest, chosen below */
    }
    for (uint32_t p = 0; p < l->config.partitions; p++) {
        struct plog_pstate *ps = &l->parts[p];
        if (ps->snap_pos == 0)
            continue;
        int rc = load_snapshot(l, p, ps->snap_pos, false, &rs[p], rep);
        if (rc < 0)
            return rc;
        ps->snap_index = ps->last = l->recovered[p].snap_index;
        ps->need_at_marker = UINT64_MAX;
        ps->first_pos = ps->snap_pos;
        rs[p].known = true;
    }
    return 0;
}

/* Removes the files no marker vouches for, and those a newer snapshot replaced. */
static int remove_stale_snapshots(struct plog *l, const struct listing *ls,
                                  struct plog_recovery *rep)
{
    uint32_t removed = 0;
    for (uint32_t i = 0; i < ls->count; i++) {
        const struct snap_file *f = &ls->files[i];
        if (f->partition >= l->config.partitions)
            continue; /* not ours to judge: a directory of a node with more partitions */
        uint64_t keep = l->parts[f->partition].snap_pos;
        if (f->position == keep)
            continue;
        if (f->position > keep)
            rep->snapshots_not_durable++;
        else
            rep->snapshots_superseded++;
        if (l->config.read_only)
            continue;
        char path[WAL_PATH_BYTES];
        plog_snapshot_name(path, sizeof path, l->dir, f->partition, f->position);
        int rc = l->fs.unlink(l->fs.ctx, path);
        if (rc < 0 && rc != -ENOENT)
            return plog_io_err(rc);
        removed++;
    }
    if ((removed || rep->snapshot_temps_removed) && !l->config.read_only) {
        int rc = l->fs.fsync_dir(l->fs.ctx, l->dir);
        if (rc < 0)
            return plog_io_err(rc);
    }
    return 0;
}

/* ---- replay -------------------------------------------------------------------------------- */

static int part_push(struct plog_part *part, const struct wal_record *r, uint64_t index,
                     uint8_t kind, const uint8_t *body, uint32_t len)
{
    if (part->entries_count == part->entries_cap) {
        uint32_t cap = part->entries_cap ? part->entries_cap * 2 : 16;
        struct plog_entry *e = realloc(part->entries, (size_t)cap * sizeof *e);
        if (!e)
            return SM_E_NOMEM;
        part->entries = e;
        part->entries_cap = cap;
    }
    uint8_t *copy = NULL;
    if (len > 0) {
        if (!(copy = malloc(len)))
            return SM_E_NOMEM;
        memcpy(copy, body, len);
    }
    part->entries[part->entries_count++] = (struct plog_entry){.index = index,
                                                               .epoch = r->epoch,
                                                               .time_ms = (int64_t)r->timestamp_us,
                                                               .kind = kind,
                                                               .payload = copy,
                                                               .len = len};
    return 0;
}

/* Drops the recovered entries above `after` (truncate) or up to `upto` (snapshot). */
static void part_truncate(struct plog_part *part, uint64_t after)
{
    while (part->entries_count > 0 && part->entries[part->entries_count - 1].index > after)
        free((void *)part->entries[--part->entries_count].payload);
}

static void part_drop_upto(struct plog_part *part, uint64_t upto)
{
    uint32_t k = 0;
    while (k < part->entries_count && part->entries[k].index <= upto)
        free((void *)part->entries[k++].payload);
    if (k == 0)
        return;
    memmove(part->entries, part->entries + k, (part->entries_count - k) * sizeof *part->entries);
    part->entries_count -= k;
}

/* The segment file holding a position, for messages. */
static void segment_of(const struct plog *l, uint64_t pos, char *out)
{
    uint64_t first = 1;
    for (uint32_t i = 0; i < l->wal.segments_count && l->wal.segments[i].index_first <= pos; i++)
        first = l->wal.segments[i].index_first;
    wal_segment_name(out, WAL_PATH_BYTES, l->dir, first);
}

/* Applies one record; a record that does not follow is damage (*why). */
static int replay_one(struct plog *l, struct rec_part *rs, const struct wal_record *r,
                      uint32_t *partition, const char **why)
{
    const uint8_t *pl = r->payload;
    *why = "record shorter than its partition head";
    if (r->len < PLOG_HEAD_BYTES)
        return SM_E_CORRUPT;
    uint32_t p = plog_get_u32(pl);
    uint8_t kind = pl[4];
    uint64_t index = plog_get_u64(pl + 8);
    const uint8_t *body = pl + PLOG_HEAD_BYTES;
    uint32_t blen = r->len - PLOG_HEAD_BYTES;
    *partition = p;
    *why = "record index above the maximum";
    if (index > SM_PLOG_INDEX_MAX)
        return SM_E_CORRUPT;
    *why = "record of a partition out of range";
    if (p >= l->config.partitions)
        return SM_E_CORRUPT;
    *why = "record head reserved bytes not zero";
    if (pl[5] || pl[6] || pl[7])
        return SM_E_CORRUPT;
    struct plog_pstate *ps = &l->parts[p];
    struct rec_part *rp = &rs[p];
    struct plog_part *part = &l->recovered[p];
    int rc;
    switch (r->type) {
    case PLOG_REC_ENTRY:
        *why = "entry out of sequence";
        if (kind == 0 || index <= ps->snap_index)
            return SM_E_CORRUPT;
        if (!rp->known) {
            ps->last = index - 1; /* its history before the log start is gone: a base */
            rp->known = true;
        }
        if (index != ps->last + 1)
            return SM_E_CORRUPT;
        if ((rc = plog_pos_reserve(ps)) < 0 ||
            (rc = part_push(part, r, index, kind, body, blen)) < 0)
            return rc;
        plog_state_entry(ps, index, r->index);
        return 0;
    case PLOG_REC_TRUNCATE:
        *why = "truncation out of sequence";
        if (kind != 0 || blen != 0)
            return SM_E_CORRUPT;
        if (!rp->known) {
            if (index < ps->snap_index)
                return SM_E_CORRUPT;
            plog_state_note(ps, r->index);
            ps->last = index;
            rp->known = true;
            return 0;
        }
        if (index < ps->snap_index || index >= ps->last)
            return SM_E_CORRUPT;
        plog_state_truncate(ps, index, r->index);
        part_truncate(part, index);
        return 0;
    case PLOG_REC_SNAPSHOT:
        *why = "snapshot marker out of sequence";
        if (kind != 0 || blen != PLOG_MARKER_BODY_BYTES || index == 0 || index < ps->snap_index ||
            plog_get_u32(body + 12) != 0)
            return SM_E_CORRUPT;
        plog_state_snapshot(ps, index, r->index);
        part_drop_upto(part, index);
        /* Not a base when unknown: live entries above index may precede it, cut away with the
         * segments a newer snapshot covers; the next entry or truncation sets the base. */
        rp->epoch = r->epoch;
        rp->time_ms = (int64_t)r->timestamp_us;
        rp->len = plog_get_u64(body);
        rp->crc = plog_get_u32(body + 8);
        return 0;
    default:
        *why = "unknown record type";
        return SM_E_CORRUPT;
    }
}

static int replay(struct plog *l, struct rec_part *rs, uint64_t log_first,
                  struct plog_recovery *rep)
{
    if (log_first > l->wal.index_written)
        return 0; /* no record */
    struct wal_iter it;
    int rc = wal_iter_init(&it, &l->wal, log_first);
    if (rc < 0)
        return rc;
    struct wal_record r;
    rep->position_first = log_first;
    while ((rc = wal_iter_next(&it, &r)) == 1) {
        uint32_t p = 0;
        const char *why = NULL;
        rc = replay_one(l, rs, &r, &p, &why);
        if (rc == SM_E_CORRUPT) {
            char path[WAL_PATH_BYTES];
            segment_of(l, r.index, path);
            rc = corrupt(rep, path, r.index, p, why);
        }
        if (rc < 0)
            break;
        rep->records++;
        rep->position_last = r.index;
    }
    wal_iter_free(&it);
    return rc < 0 ? rc : 0;
}

/* ---- open and close ------------------------------------------------------------------------ */

static int open_wal(struct plog *l, struct plog_recovery *rep)
{
    struct wal_config wc = {
        .dir = l->dir,
        .fs = &l->fs,
        .segment_bytes = l->config.segment_bytes,
        .batch_bytes = l->config.batch_bytes,
        .payload_bytes_max = l->config.entry_bytes_max + PLOG_HEAD_BYTES,
        .segments_max = l->config.segments_max,
        .sync_mode = l->config.sync_mode,
        .preallocate = l->config.preallocate,
        .repair = l->config.repair,
        .read_only = l->config.read_only,
        .index_start = l->start,
    };
    return wal_open(&l->wal, &wc, &rep->wal);
}

static int recover(struct plog *l, struct rec_part *rs, struct plog_recovery *rep)
{
    struct listing ls;
    memset(&ls, 0, sizeof ls);
    int rc;
    if ((rc = read_start(l, rep)) < 0 || (rc = open_wal(l, rep)) < 0 ||
        (rc = list_files(l, &ls, rep)) < 0)
        goto done;
    const struct wal *w = &l->wal;
    uint64_t log_first = w->segments_count ? w->segments[0].index_first : wal_index_next(w);
    bool whole = log_first <= 1;
    for (uint32_t p = 0; p < l->config.partitions; p++)
        rs[p].known = whole;
    if ((rc = load_base_snapshots(l, &ls, log_first, rs, rep)) < 0 ||
        (rc = replay(l, rs, log_first, rep)) < 0)
        goto done;
    for (uint32_t p = 0; p < l->config.partitions; p++) {
        const struct plog_pstate *ps = &l->parts[p];
        if (ps->snap_pos != 0 && rs[p].loaded_pos != ps->snap_pos &&
            (rc = load_snapshot(l, p, ps->snap_pos, true, &rs[p], rep)) < 0)
            goto done;
        struct plog_part *part = &l->recovered[p];
        part->last_index = ps->last;
        if (ps->snap_pos != 0 || part->entries_count > 0)
            rep->partitions_with_state++;
        if (part->snap != NULL)
            rep->snapshots_loaded++;
        rep->entries += part->entries_count;
    }
    rc = remove_stale_snapshots(l, &ls, rep);
done:
    free(ls.files);
    free(ls.temps);
    return rc;
}

int plog_open(struct plog *l, const struct plog_config *c, struct plog_recovery *rep)
{
    ASSERT(l != NULL && c != NULL && rep != NULL);
    memset(rep, 0, sizeof *rep);
    memset(l, 0, sizeof *l);
    l->wal.fd = -1;
    l->wal.spare_fd = -1;
    l->config = *c;
    int rc = resolve_config(&l->config);
    if (rc < 0)
        return rc;
    memcpy(l->dir, c->dir, strlen(c->dir) + 1);
    l->config.dir = l->dir;
    l->fs = c->fs ? *c->fs : *sm_fs_posix();
    l->config.fs = &l->fs;
    l->parts = calloc(l->config.partitions, sizeof *l->parts);
    l->recovered = calloc(l->config.partitions, sizeof *l->recovered);
    struct rec_part *rs = calloc(l->config.partitions, sizeof *rs);
    if (!l->parts || !l->recovered || !rs) {
        rc = SM_E_NOMEM;
        goto fail;
    }
    if ((rc = recover(l, rs, rep)) < 0)
        goto fail;
    free(rs);
    ASSERT(l->wal.index_next >= l->start);
    return 0;
fail:
    free(rs);
    plog_close(l);
    return rc;
}

const struct plog_part *plog_recovered(const struct plog *l, uint32_t partition)
{
    ASSERT(partition < l->config.partitions);
    return l->recovered ? &l->recovered[partition] : NULL;
}

void plog_recovered_free(struct plog *l)
{
    if (!l->recovered)
        return;
    for (uint32_t p = 0; p < l->config.partitions; p++) {
        struct plog_part *part = &l->recovered[p];
        part_truncate(part, 0);
        free(part->entries);
        free(part->snap);
    }
    free(l->recovered);
    l->recovered = NULL;
}

void plog_close(struct plog *l)
{
    wal_close(&l->wal);
    plog_recovered_free(l);
    if (l->parts) {
        for (uint32_t p = 0; p < l->config.partitions; p++)
            free(l->parts[p].pos);
        free(l->parts);
    }
    memset(l, 0, sizeof *l);
    l->wal.fd = -1;
    l->wal.spare_fd = -1;
}
