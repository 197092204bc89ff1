/*
 * P engines behind one write-ahead log (see store.h for the record and snapshot layouts).
 */
#include "node/store.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "node/txn.h"
#include "shardmart/ring.h"
#include "util/buf.h"
#include "util/error.h"

#define SNAPSHOT_MAGIC      "SMSNAP02"
#define SNAPSHOT_MAGIC_V1   "SMSNAP01"
#define RECORD_PREFIX_BYTES 2
/* A transaction record: partition, kind, then a client's engine record or a message. */
#define TXN_RECORD_BYTES_MAX (RECORD_PREFIX_BYTES + 1 + TXN_MSG_BYTES_MAX)

uint32_t store_partition(const struct store *s, const void *key, size_t len)
{
    uint32_t p = 0;
    int rc = ring_key_partition(key, len, s->partitions, &p);
    ASSERT(rc == 0); /* partitions was validated at open */
    return p;
}

void store_set_time(struct store *s, int64_t now_ms)
{
    if (now_ms > s->now_ms)
        s->now_ms = now_ms;
}

bool store_has_room(const struct store *s, size_t record_bytes)
{
    if (s->repl)
        return true; /* the part answers SM_E_BUSY itself when its log is full */
    /* Half the batch buffer, so that a batch split at a segment boundary always fits too. */
    uint64_t need =
        (uint64_t)s->wal.buf_len + WAL_RECORD_HEADER_BYTES + RECORD_PREFIX_BYTES + record_bytes;
    return need <= s->wal.config.batch_bytes / 2;
}

bool store_dirty(const struct store *s)
{
    if (s->repl)
        return false;
    return s->wal.buf_len > 0;
}

static int append(struct store *s, uint8_t type, const void *payload, uint32_t len)
{
    struct wal_record r = {
        .type = type,
        .epoch = s->epoch,
        .index = wal_index_next(&s->wal),
        .timestamp_us = (uint64_t)s->now_ms * 1000,
        .payload = payload,
        .len = len,
    };
    return wal_append(&s->wal, &r);
}

static void forward_events(struct store *s, const struct engine_output *out)
{
    if (!s->event_fn)
        return;
    for (uint32_t i = 0; i < out->events_count; i++)
        s->event_fn(s->event_ctx, &out->events[i]);
}

/* Applies one engine record to every partition; out keeps partition 0's reply. */
static void apply_all(struct store *s, uint64_t index, int64_t now_ms, const uint8_t *rec,
                      size_t len, struct engine_output *out)
{
    struct engine_reply first = {0};
    for (uint32_t p = 0; p < s->partitions; p++) {
        engine_apply(&s->engines[p], index, now_ms, rec, len, out);
        forward_events(s, out);
        if (p == 0)
            first = out->reply;
    }
    out->reply = first;
    out->events_count = 0;
}

/* Applies one logged record to the engines (replay and the live path share this). */
static int apply_record(struct store *s, uint8_t type, uint64_t index, int64_t now_ms,
                        const uint8_t *payload, size_t len, struct engine_output *out)
{
    if (type == STORE_RECORD_TICK) {
        uint8_t tick[SM_ENGINE_RECORD_BYTES_MAX];
        size_t tick_len;
        struct engine_cmd cmd = {.type = ENGINE_TICK};
        int rc = engine_encode(&cmd, tick, sizeof tick, &tick_len);
        ASSERT(rc == 0);
        apply_all(s, index, now_ms, tick, tick_len, out);
        txn_tick(s, index, now_ms);
        s->records_applied++;
        return 0;
    }
    if (type == STORE_RECORD_ALL) {
        apply_all(s, index, now_ms, payload, len, out);
        s->records_applied++;
        return 0;
    }
    if ((type != STORE_RECORD_ENGINE && type != STORE_RECORD_TXN) || len < RECORD_PREFIX_BYTES)
        return SM_E_CORRUPT;
    uint32_t p = (uint32_t)payload[0] | (uint32_t)payload[1] << 8;
    if (p >= s->partitions)
        return SM_E_CORRUPT;
    s->records_applied++;
    if (type == STORE_RECORD_TXN)
        return txn_apply(s, p, index, now_ms, payload + RECORD_PREFIX_BYTES,
                         len - RECORD_PREFIX_BYTES);
    engine_apply(&s->engines[p], index, now_ms, payload + RECORD_PREFIX_BYTES,
                 len - RECORD_PREFIX_BYTES, out);
    txn_after_engine(s, p, index, payload + RECORD_PREFIX_BYTES, len - RECORD_PREFIX_BYTES);
    return 0;
}

int store_mutate(struct store *s, uint32_t p, const struct engine_cmd *cmd,
                 const struct engine_output **out)
{
    ASSERT(p < s->partitions);
    if (s->repl) {
        s->output->events_count = 0;
        s->output->events = NULL;
        *out = s->output;
        return s->repl->mutate(s->repl->ctx, p, cmd, &s->output->reply);
    }
    size_t len;
    int rc = engine_encode(cmd, s->scratch + RECORD_PREFIX_BYTES, SM_ENGINE_RECORD_BYTES_MAX, &len);
    if (rc != 0)
        return SM_E_BADARG;
    if (!store_has_room(s, len))
        return SM_E_BUSY;
    s->scratch[0] = (uint8_t)p;
    s->scratch[1] = (uint8_t)(p >> 8);
    uint64_t index = wal_index_next(&s->wal);
    rc = append(s, STORE_RECORD_ENGINE, s->scratch, (uint32_t)(len + RECORD_PREFIX_BYTES));
    /* Room was checked and the record encoded: the only failure left is a poisoned log, after
     * which nothing may be acknowledged again; stop before the state runs ahead of the log. */
    if (rc != 0)
        return rc;
    engine_apply(&s->engines[p], index, s->now_ms, s->scratch + RECORD_PREFIX_BYTES, len,
                 s->output);
    s->records_applied++;
    forward_events(s, s->output);
    /* The watch may read the order (it leaves the reply alone: reads fill their own). */
    txn_after_engine(s, p, index, s->scratch + RECORD_PREFIX_BYTES, len);
    *out = s->output;
    return 0;
}

int store_mutate_all(struct store *s, const struct engine_cmd *cmd,
                     const struct engine_output **out)
{
    ASSERT(!s->repl); /* lock sessions are refused in cluster mode (store.h) */
    size_t len;
    int rc = engine_encode(cmd, s->scratch, SM_ENGINE_RECORD_BYTES_MAX, &len);
    if (rc != 0)
        return SM_E_BADARG;
    if (!store_has_room(s, len))
        return SM_E_BUSY;
    uint64_t index = wal_index_next(&s->wal);
    rc = append(s, STORE_RECORD_ALL, s->scratch, (uint32_t)len);
    if (rc != 0)
        return rc;
    rc = apply_record(s, STORE_RECORD_ALL, index, s->now_ms, s->scratch, len, s->output);
    ASSERT(rc == 0);
    *out = s->output;
    return 0;
}

void store_read(const struct store *s, uint32_t p, const struct engine_cmd *cmd,
                struct engine_reply *out)
{
    ASSERT(p < s->partitions);
    if (s->repl) {
        s->repl->read(s->repl->ctx, p, cmd, out);
        return;
    }
    engine_read(&s->engines[p], cmd, out);
}

int store_tick(struct store *s)
{
    if (!store_has_room(s, 0))
        return SM_E_BUSY;
    uint64_t index = wal_index_next(&s->wal);
    int rc = append(s, STORE_RECORD_TICK, NULL, 0);
    if (rc != 0)
        return rc;
    return apply_record(s, STORE_RECORD_TICK, index, s->now_ms, NULL, 0, s->output);
}

int store_sync(struct store *s)
{
    uint64_t acked;
    return wal_sync(&s->wal, &acked);
}

/* ---- cross-partition transactions ---------------------------------------------------------- */

/* Logs and applies one transaction record of partition p (payload: kind, then bytes). */
static int txn_record(struct store *s, uint32_t p, uint8_t kind, const uint8_t *bytes, size_t len)
{
    ASSERT(p < s->partitions && len + RECORD_PREFIX_BYTES + 1 <= TXN_RECORD_BYTES_MAX);
    if (!store_has_room(s, len + 1))
        return SM_E_BUSY;
    uint8_t *rec = s->txn_record;
    rec[0] = (uint8_t)p;
    rec[1] = (uint8_t)(p >> 8);
    rec[2] = kind;
    memcpy(rec + 3, bytes, len);
    uint64_t index = wal_index_next(&s->wal);
    int rc = append(s, STORE_RECORD_TXN, rec, (uint32_t)(len + 3));
    if (rc != 0)
        return rc;
    s->records_applied++;
    rc = txn_apply(s, p, index, s->now_ms, rec + RECORD_PREFIX_BYTES, len + 1);
    ASSERT(rc == 0); /* we built it */
    return 0;
}

int store_txn_begin(struct store *s, uint32_t p, const struct engine_cmd *cmd)
{
    ASSERT(!s->repl); /* cross-partition commands are refused in cluster mode (store.h) */
    size_t len;
    if (engine_encode(cmd, s->scratch, SM_ENGINE_RECORD_BYTES_MAX, &len) != 0)
        return SM_E_BADARG;
    return txn_record(s, p, 1, s->scratch, len);
}

/* The target partition of an encoded message (its bytes 5..8). */
static uint32_t msg_target(const uint8_t *m)
{
    return (uint32_t)m[5] | (uint32_t)m[6] << 8 | (uint32_t)m[7] << 16 | (uint32_t)m[8] << 24;
}

int store_txn_deliver(struct store *s)
{
    struct sm_wbuf *r = &s->outbox_ready;
    while (s->outbox_ready_pos < r->len) {
        const uint8_t *at = r->data + s->outbox_ready_pos;
        uint32_t len =
            (uint32_t)at[0] | (uint32_t)at[1] << 8 | (uint32_t)at[2] << 16 | (uint32_t)at[3] << 24;
        ASSERT(len >= 9 && s->outbox_ready_pos + 4 + len <= r->len);
        uint32_t to = msg_target(at + 4);
        ASSERT(to < s->partitions);
        /* Copy out: applying may send, which writes the pending buffer, not this one. */
        int rc = txn_record(s, to, 2, at + 4, len);
        if (rc != 0)
            return rc;
        s->outbox_ready_pos += 4 + len;
        ASSERT(s->outbox_count > 0);
        s->outbox_count--;
    }
    r->len = 0;
    s->outbox_ready_pos = 0;
    return 0;
}

void store_txn_durable(struct store *s)
{
    if (s->outbox_pending.len == 0)
        return;
    if (s->outbox_ready_pos == s->outbox_ready.len) {
        s->outbox_ready.len = 0;
        s->outbox_ready_pos = 0;
    }
    sm_wbuf_put(&s->outbox_ready, s->outbox_pending.data, s->outbox_pending.len);
    s->outbox_pending.len = 0;
    if (s->outbox_ready.failed) {
        /* Out of memory: drop them all; the resend timer sends them again. */
        s->outbox_ready.failed = false;
        s->outbox_ready.len = 0;
        s->outbox_ready_pos = 0;
        s->outbox_count = 0;
    }
}

bool store_txn_ready(const struct store *s)
{
    return s->outbox_ready_pos < s->outbox_ready.len;
}

void store_txn_send(struct store *s, const struct txn_msg *m)
{
    if (s->replaying || s->outbox_count >= SM_TXN_OUTBOX_MAX)
        return; /* recovery (or the resend timer) sends it again */
    struct sm_wbuf *w = &s->outbox_pending;
    size_t at = w->len;
    sm_wbuf_u32(w, 0);
    int rc = txn_msg_encode(m, w);
    if (rc != 0 || w->failed) {
        w->failed = false;
        w->len = at;
        return;
    }
    uint32_t len = (uint32_t)(w->len - at - 4);
    for (int i = 0; i < 4; i++)
        w->data[at + (size_t)i] = (uint8_t)(len >> (8 * i));
    s->outbox_count++;
}

void store_txn_engine(struct store *s, uint32_t p, uint64_t index, const struct engine_cmd *cmd,
                      struct engine_output *out)
{
    uint8_t *buf = s->txn_scratch + SM_ENGINE_RECORD_BYTES_MAX;
    size_t len;
    int rc = engine_encode(cmd, buf, SM_ENGINE_RECORD_BYTES_MAX, &len);
    ASSERT(rc == 0); /* built from a record that decoded */
    engine_apply(&s->engines[p], index, s->now_ms, buf, len, out);
    forward_events(s, out);
}

void store_txn_event(struct store *s, const struct txn_event *ev)
{
    if (!s->replaying && s->txn_event_fn)
        s->txn_event_fn(s->txn_event_ctx, ev);
}

/* ---- snapshots ----------------------------------------------------------------------------- */

/* The partitions of a snapshot, loaded by several threads: each takes the next partition not yet
 * taken. Engines share nothing (each owns its tables; loading reads only its own bytes), so the
 * threads need no lock, only the counter; the result does not depend on who loaded what. */
struct load_job {
    struct engine *engines;
    const uint8_t **bytes; /* partition p's stream, bytes[p], lens[p] long */
    const uint64_t *lens;
    uint32_t partitions;
    atomic_uint next;   /* the next partition to take */
    atomic_bool failed; /* a partition did not load: the others stop taking work */
};

static void *load_worker(void *arg)
{
    struct load_job *job = arg;
    for (;;) {
        uint32_t p = atomic_fetch_add(&job->next, 1);
        if (p >= job->partitions || atomic_load(&job->failed))
            return NULL;
        if (engine_load(&job->engines[p], job->bytes[p], job->lens[p]) != 0)
            atomic_store(&job->failed, true);
    }
}

static uint32_t load_threads(uint32_t wanted, uint32_t partitions)
{
    if (wanted == 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        wanted = cpus < 1                           ? 1
                 : cpus > SM_STORE_LOAD_THREADS_MAX ? SM_STORE_LOAD_THREADS_MAX
                                                    : (uint32_t)cpus;
    }
    return wanted < partitions ? wanted : partitions;
}

/* Loads every partition's stream; the calling thread is one of the workers. A thread that cannot
 * be started leaves its share to the others. */
static int engines_load(struct store *s, const uint8_t **bytes, const uint64_t *lens,
                        uint32_t threads)
{
    struct load_job job = {
        .engines = s->engines, .bytes = bytes, .lens = lens, .partitions = s->partitions};
    atomic_init(&job.next, 0);
    atomic_init(&job.failed, false);
    pthread_t tid[SM_STORE_LOAD_THREADS_MAX];
    uint32_t started = 0;
    ASSERT(threads >= 1 && threads <= SM_STORE_LOAD_THREADS_MAX);
    for (uint32_t t = 1; t < threads; t++)
        if (pthread_create(&tid[started], NULL, load_worker, &job) == 0)
            started++;
    (void)load_worker(&job);
    for (uint32_t t = 0; t < started; t++) {
        int rc = pthread_join(tid[t], NULL);
        ASSERT(rc == 0);
    }
    return atomic_load(&job.failed) ? SM_E_CORRUPT : 0;
}

static int snapshot_decode(struct store *s, const uint8_t *data, uint64_t len, uint32_t threads)
{
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, len);
    const uint8_t *magic = sm_rbuf_take(&r, 8);
    uint32_t partitions = sm_rbuf_u32(&r);
    bool v1 = magic && memcmp(magic, SNAPSHOT_MAGIC_V1, 8) == 0;
    if (!magic || (!v1 && memcmp(magic, SNAPSHOT_MAGIC, 8) != 0) || partitions != s->partitions)
        return SM_E_CORRUPT;
    /* Find every partition's bytes first (a walk over the length prefixes), then load them. */
    const uint8_t **bytes = calloc(partitions, sizeof *bytes);
    uint64_t *lens = calloc(partitions, sizeof *lens);
    int rc = bytes && lens ? 0 : SM_E_NOMEM;
    for (uint32_t p = 0; rc == 0 && p < partitions; p++) {
        lens[p] = sm_rbuf_u64(&r);
        bytes[p] = sm_rbuf_take(&r, lens[p]);
        if (!bytes[p])
            rc = SM_E_CORRUPT;
    }
    if (rc == 0)
        rc = engines_load(s, bytes, lens, load_threads(threads, partitions));
    free((void *)bytes);
    free(lens);
    if (rc != 0)
        return rc;
    if (!v1) {
        uint64_t n = sm_rbuf_u64(&r);
        const uint8_t *txns = sm_rbuf_take(&r, n);
        if (!txns || txn_load(s, txns, n) != 0)
            return SM_E_CORRUPT;
    }
    return sm_rbuf_left(&r) == 0 && sm_rbuf_ok(&r) ? 0 : SM_E_CORRUPT;
}

int store_snapshot_write(const struct store *s, uint64_t index)
{
    ASSERT(index > 0 && index < wal_index_next(&s->wal));
    struct wal_snapshot_writer sw;
    /* wal_snapshot_begin only reads the wal (directory, file system, bounds). */
    int rc = wal_snapshot_begin((struct wal *)&s->wal, &sw, index, s->epoch);
    if (rc != 0)
        return rc;
    struct sm_wbuf w;
    sm_wbuf_init(&w);
    sm_wbuf_put(&w, SNAPSHOT_MAGIC, 8);
    sm_wbuf_u32(&w, s->partitions);
    rc = w.failed ? SM_E_NOMEM : wal_snapshot_write(&sw, w.data, w.len);
    /* One partition at a time: the peak is one engine's bytes, not the node's. */
    for (uint32_t p = 0; rc == 0 && p < s->partitions; p++) {
        w.len = 0;
        sm_wbuf_u64(&w, 0); /* the length, patched once known */
        rc = engine_save(&s->engines[p], &w);
        if (rc == 0 && w.failed)
            rc = SM_E_NOMEM;
        if (rc != 0)
            break;
        uint64_t n = w.len - 8;
        for (int i = 0; i < 8; i++)
            w.data[i] = (uint8_t)(n >> (8 * i));
        rc = wal_snapshot_write(&sw, w.data, w.len);
    }
    if (rc == 0) {
        w.len = 0;
        sm_wbuf_u64(&w, 0);
        rc = txn_save(s, &w);
        if (rc == 0 && w.failed)
            rc = SM_E_NOMEM;
        uint64_t n = w.len - 8;
        for (int i = 0; rc == 0 && i < 8; i++)
            w.data[i] = (uint8_t)(n >> (8 * i));
        rc = rc ? rc : wal_snapshot_write(&sw, w.data, w.len);
    }
    sm_wbuf_free(&w);
    rc = rc ? rc : wal_snapshot_finish(&sw);
    if (rc != 0)
        wal_snapshot_abort(&sw);
    return rc;
}

int store_snapshot(struct store *s)
{
    int rc = store_sync(s);
    if (rc != 0)
        return rc;
    uint64_t index = wal_index_next(&s->wal) - 1;
    if (index == 0)
        return 0; /* nothing logged yet */
    rc = store_snapshot_write(s, index);
    return rc ? rc : wal_compact(&s->wal);
}

/* ---- open and recovery --------------------------------------------------------------------- */

/* Linux merges adjacent anonymous mappings with the same flags into one, so the tables of 256
 * partitions become one mapping of tens of GiB of address space. fork() (the background
 * snapshot) then fails with ENOMEM under the default overcommit heuristic, which refuses to
 * duplicate any single accountable mapping larger than RAM + swap. An inaccessible page after
 * each partition's tables keeps its mappings apart; it costs address space only. A guard that
 * cannot be mapped is left out (NULL): the node still works, only its fork may fail. */
static void *guard_map(void)
{
    void *g = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    return g == MAP_FAILED ? NULL : g;
}

static void engines_free(struct store *s, uint32_t n)
{
    for (uint32_t p = 0; p < n; p++) {
        engine_free(&s->engines[p]);
        if (s->guards && s->guards[p])
            (void)munmap(s->guards[p], 4096);
    }
    free(s->engines);
    free((void *)s->guards);
    s->engines = NULL;
    s->guards = NULL;
}

static int engines_init(struct store *s, const struct store_config *cfg)
{
    s->engines = calloc(cfg->partitions, sizeof *s->engines);
    s->guards = calloc(cfg->partitions, sizeof *s->guards);
    if (!s->engines || !s->guards) {
        engines_free(s, 0);
        return SM_E_NOMEM;
    }
    for (uint32_t p = 0; p < cfg->partitions; p++) {
        int rc = engine_init(&s->engines[p], &cfg->engine);
        if (rc != 0) {
            engines_free(s, p);
            return rc;
        }
        s->guards[p] = guard_map();
    }
    return 0;
}

static int replay(struct store *s, const struct wal_recovery *report, uint32_t threads, char *why,
                  size_t why_cap)
{
    if (report->snapshot_found) {
        struct wal_snapshot_view view;
        int rc = wal_snapshot_view(&s->wal, report, &view);
        if (rc == 0) {
            rc = snapshot_decode(s, view.data, view.len, threads);
            wal_snapshot_unview(&s->wal, &view);
        }
        if (rc != 0) {
            snprintf(why, why_cap, "snapshot %s does not load (%s)", report->snapshot_path,
                     sm_strerror(rc));
            return rc;
        }
    }
    if (report->index_first > report->index_last)
        return 0;
    struct wal_iter it;
    int rc = wal_iter_init(&it, &s->wal, report->index_first);
    if (rc != 0) {
        snprintf(why, why_cap, "log does not start at index %llu",
                 (unsigned long long)report->index_first);
        return rc;
    }
    struct wal_record r;
    while ((rc = wal_iter_next(&it, &r)) == 1) {
        int64_t ms = (int64_t)(r.timestamp_us / 1000);
        store_set_time(s, ms);
        rc = apply_record(s, r.type, r.index, ms, r.payload, r.len, s->output);
        if (rc != 0) {
            snprintf(why, why_cap, "log record %llu has an unknown type %u or partition",
                     (unsigned long long)r.index, r.type);
            break;
        }
        s->replayed++;
        if (r.epoch > s->epoch)
            s->epoch = r.epoch;
    }
    wal_iter_free(&it);
    if (rc < 0 && why[0] == '\0')
        snprintf(why, why_cap, "log unreadable during replay (%s)", sm_strerror(rc));
    return rc < 0 ? rc : 0;
}

int store_open(struct store *s, const struct store_config *cfg, struct wal_recovery *report,
               char *why, size_t why_cap)
{
    memset(s, 0, sizeof *s);
    why[0] = '\0';
    uint32_t probe;
    if (ring_key_partition("k", 1, cfg->partitions, &probe) != 0) {
        snprintf(why, why_cap, "partitions must be 1..%d", SM_PARTITIONS_MAX);
        return SM_E_BADARG;
    }
    s->partitions = cfg->partitions;
    /* The log first: a damaged directory is refused before any table is allocated. A record is
     * at most one engine record and its partition; a batch at most half a segment. */
    uint64_t segment = cfg->segment_bytes ? cfg->segment_bytes : SM_WAL_SEGMENT_BYTES_DEFAULT;
    uint32_t batch = SM_WAL_BATCH_BYTES_DEFAULT;
    if (batch > segment / 2)
        batch = (uint32_t)(segment / 2);
    struct wal_config wc = {
        .batch_bytes = batch,
        .payload_bytes_max = TXN_RECORD_BYTES_MAX,
        .dir = cfg->dir,
        .fs = cfg->fs,
        .segment_bytes = cfg->segment_bytes,
        .sync_mode = cfg->sync_mode,
        .repair = cfg->repair,
        .preallocate = cfg->preallocate,
    };
    int rc = wal_open(&s->wal, &wc, report);
    if (rc != 0) {
        if (report->corrupt)
            snprintf(why, why_cap,
                     "corrupt log: %s at offset %llu: %s (start with --repair to "
                     "set the damage aside)",
                     report->corrupt_path, (unsigned long long)report->corrupt_offset,
                     report->corrupt_reason);
        else
            snprintf(why, why_cap, "cannot open the log in %s (%s)", cfg->dir, sm_strerror(rc));
        goto fail;
    }
    s->wal_open = true;
    s->scratch = malloc(RECORD_PREFIX_BYTES + SM_ENGINE_RECORD_BYTES_MAX);
    s->output = calloc(1, sizeof *s->output);
    s->txns = calloc(cfg->partitions, sizeof *s->txns);
    s->txn_scratch = malloc(2 * SM_ENGINE_RECORD_BYTES_MAX);
    s->txn_record = malloc(TXN_RECORD_BYTES_MAX);
    sm_wbuf_init(&s->outbox_pending);
    sm_wbuf_init(&s->outbox_ready);
    rc = (!s->scratch || !s->output || !s->txns || !s->txn_scratch || !s->txn_record)
             ? SM_E_NOMEM
             : engines_init(s, cfg);
    if (rc != 0) {
        snprintf(why, why_cap, "cannot allocate %u partitions (%s)", cfg->partitions,
                 sm_strerror(rc));
        goto fail;
    }
    s->replaying = true;
    rc = replay(s, report, cfg->load_threads, why, why_cap);
    s->replaying = false;
    if (rc != 0)
        goto fail;
    /* Whatever was in flight is sent again; the batch that sent it is durable. */
    txn_recover(s);
    store_txn_durable(s);
    return 0;
fail:
    store_close(s);
    return rc;
}

int store_init_replicated(struct store *s, uint32_t partitions, const struct store_repl_ops *ops)
{
    ASSERT(ops && ops->mutate && ops->read);
    memset(s, 0, sizeof *s);
    uint32_t probe;
    if (ring_key_partition("k", 1, partitions, &probe) != 0)
        return SM_E_BADARG;
    s->output = calloc(1, sizeof *s->output);
    if (!s->output)
        return SM_E_NOMEM;
    s->partitions = partitions;
    s->repl = ops;
    return 0;
}

void store_close(struct store *s)
{
    if (s->wal_open)
        wal_close(&s->wal);
    if (s->engines)
        engines_free(s, s->partitions);
    free(s->scratch);
    free(s->output);
    txn_free(s);
    free(s->txns);
    free(s->txn_scratch);
    free(s->txn_record);
    sm_wbuf_free(&s->outbox_pending);
    sm_wbuf_free(&s->outbox_ready);
    memset(s, 0, sizeof *s);
}

bool store_check(const struct store *s, char *why, size_t why_cap)
{
    char inner[256];
    for (uint32_t p = 0; p < s->partitions; p++) {
        if (!engine_check(&s->engines[p], inner, sizeof inner)) {
            snprintf(why, why_cap, "partition %u: %s", p, inner);
            return false;
        }
    }
    return true;
}

void store_engine_defaults(struct engine_config *e)
{
    *e = (struct engine_config){
        .skus_max = 65536,
        .orders_max = 1000000,
        .holds_max = 65536,
        .accounts_max = 65536,
        .limit_rows_max = 1000000,
        .item_chunks_max = 262144,
        .request_ids_max = 1000000,
        .order_retention_ms = 3600 * 1000,
        .hold_retention_ms = 3600 * 1000,
        .locks =
            {
                .sessions_max = 1024,
                .locks_max = 4096,
                .holds_max = 4096,
                .waiters_max = 1024,
                .permits_max = 1024,
                .reentry_max = 64,
            },
    };
}
