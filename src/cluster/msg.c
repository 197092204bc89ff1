/*
 * The replication messages' wire codec. All integers little-endian.
 *
 *   header (22 bytes): version u8 (1) | type u8 | partition u32 | from u32 | to u32 | epoch u64
 *   APPEND:        prev_index u64 | prev_epoch u64 | commit u64 | round u64 | count u32 |
 *                  count x (epoch u64 | time_ms i64 | kind u8 | len u32 | len bytes)
 *                  (entry i has index prev_index + 1 + i: indexes are implied, never sent)
 *   APPEND_ACK:    ok u8 (0/1) | match_index u64 | last_index u64 | round u64
 *   SNAPSHOT:      snap_index u64 | snap_epoch u64 | snap_time_ms i64 | commit u64 | len u32 |
 * bytes LOG_END_QUERY: query_id u64 LOG_END:       query_id u64 | last_index u64 | last_epoch u64
 *
 * Rules the decoder enforces (and the encoder refuses to break): node ids below
 * SM_CLUSTER_NODES_MAX; entry epochs non-decreasing, at least prev_epoch and at most the message
 * epoch; TICK and EPOCH entries carry no payload, ENGINE entries 1..SM_ENGINE_RECORD_BYTES_MAX;
 * times in 0..SM_ENGINE_TIME_MS_MAX; commit and match at most what the sender can know; nothing
 * after the last field.
 */
#include "cluster/msg.h"

#include <string.h>

#include "util/buf.h"
#include "util/error.h"

#define HEADER_BYTES      22
#define ENTRY_HEAD_BYTES  21
#define APPEND_HEAD_BYTES 36

const char *cluster_msg_type_name(int type)
{
    switch (type) {
    case CLUSTER_MSG_APPEND:
        return "APPEND";
    case CLUSTER_MSG_APPEND_ACK:
        return "APPEND_ACK";
    case CLUSTER_MSG_SNAPSHOT:
        return "SNAPSHOT";
    case CLUSTER_MSG_LOG_END_QUERY:
        return "LOG_END_QUERY";
    case CLUSTER_MSG_LOG_END:
        return "LOG_END";
    default:
        return "?";
    }
}

static bool time_ok(int64_t t)
{
    return t >= 0 && t <= SM_ENGINE_TIME_MS_MAX;
}

/* The per-entry rules shared by encoder and decoder. */
static bool entry_ok(const struct cluster_entry *e, uint64_t min_epoch, uint64_t max_epoch)
{
    if (e->epoch < min_epoch || e->epoch > max_epoch || !time_ok(e->time_ms))
        return false;
    switch (e->kind) {
    case CLUSTER_ENTRY_ENGINE:
        return e->len >= 1 && e->len <= SM_ENGINE_RECORD_BYTES_MAX;
    case CLUSTER_ENTRY_TICK:
    case CLUSTER_ENTRY_EPOCH:
        return e->len == 0;
    default:
        return false;
    }
}

/* The rules of the fields outside the entries, shared by encoder and decoder. */
static bool fields_ok(const struct cluster_msg *m)
{
    if (m->from >= SM_CLUSTER_NODES_MAX || m->to >= SM_CLUSTER_NODES_MAX ||
        m->partition >= SM_PARTITIONS_MAX)
        return false;
    switch (m->type) {
    case CLUSTER_MSG_APPEND:
        return m->prev_epoch <= m->epoch && m->entries_count <= SM_CLUSTER_MSG_ENTRIES_MAX &&
               m->prev_index <= UINT64_MAX - SM_CLUSTER_MSG_ENTRIES_MAX;
    case CLUSTER_MSG_APPEND_ACK:
        return m->match_index <= m->last_index;
    case CLUSTER_MSG_SNAPSHOT:
        return m->snap_epoch <= m->epoch && time_ok(m->snap_time_ms) &&
               m->commit_index >= m->snap_index && m->snap_len <= SM_CLUSTER_SNAPSHOT_BYTES_MAX;
    case CLUSTER_MSG_LOG_END_QUERY:
        return true;
    case CLUSTER_MSG_LOG_END:
        return m->last_epoch <= m->epoch;
    default:
        return false;
    }
}

size_t cluster_msg_encoded_len(const struct cluster_msg *m)
{
    size_t n = HEADER_BYTES;
    switch (m->type) {
    case CLUSTER_MSG_APPEND:
        n += APPEND_HEAD_BYTES;
        for (uint32_t i = 0; i < m->entries_count && i < SM_CLUSTER_MSG_ENTRIES_MAX; i++)
            n += ENTRY_HEAD_BYTES + m->entries[i].len;
        return n;
    case CLUSTER_MSG_APPEND_ACK:
        return n + 25;
    case CLUSTER_MSG_SNAPSHOT:
        return n + 36 + m->snap_len;
    case CLUSTER_MSG_LOG_END_QUERY:
        return n + 8;
    case CLUSTER_MSG_LOG_END:
        return n + 24;
    default:
        return n;
    }
}

int cluster_msg_encode(const struct cluster_msg *m, uint8_t *buf, size_t cap, size_t *len_out)
{
    ASSERT(m && buf && len_out);
    if (!fields_ok(m))
        return SM_E_BADARG;
    size_t need = cluster_msg_encoded_len(m);
    size_t max = m->type == CLUSTER_MSG_SNAPSHOT ? SM_CLUSTER_SNAPSHOT_BYTES_MAX + 64
                                                 : SM_CLUSTER_MSG_BYTES_MAX;
    if (need > cap || need > max)
        return SM_E_TOOLARGE;
    struct sm_wbuf w;
    sm_wbuf_init_fixed(&w, buf, cap);
    sm_wbuf_u8(&w, CLUSTER_MSG_VERSION);
    sm_wbuf_u8(&w, m->type);
    sm_wbuf_u32(&w, m->partition);
    sm_wbuf_u32(&w, m->from);
    sm_wbuf_u32(&w, m->to);
    sm_wbuf_u64(&w, m->epoch);
    switch (m->type) {
    case CLUSTER_MSG_APPEND: {
        sm_wbuf_u64(&w, m->prev_index);
        sm_wbuf_u64(&w, m->prev_epoch);
        sm_wbuf_u64(&w, m->commit_index);
        sm_wbuf_u64(&w, m->round);
        sm_wbuf_u32(&w, m->entries_count);
        uint64_t min_epoch = m->prev_epoch;
        for (uint32_t i = 0; i < m->entries_count; i++) {
            const struct cluster_entry *e = &m->entries[i];
            if (!entry_ok(e, min_epoch, m->epoch))
                return SM_E_BADARG;
            min_epoch = e->epoch;
            sm_wbuf_u64(&w, e->epoch);
            sm_wbuf_i64(&w, e->time_ms);
            sm_wbuf_u8(&w, e->kind);
            sm_wbuf_u32(&w, e->len);
            sm_wbuf_put(&w, e->data, e->len);
        }
        break;
    }
    case CLUSTER_MSG_APPEND_ACK:
        sm_wbuf_u8(&w, m->ok ? 1 : 0);
        sm_wbuf_u64(&w, m->match_index);
        sm_wbuf_u64(&w, m->last_index);
        sm_wbuf_u64(&w, m->round);
        break;
    case CLUSTER_MSG_SNAPSHOT:
        sm_wbuf_u64(&w, m->snap_index);
        sm_wbuf_u64(&w, m->snap_epoch);
        sm_wbuf_i64(&w, m->snap_time_ms);
        sm_wbuf_u64(&w, m->commit_index);
        sm_wbuf_u32(&w, m->snap_len);
        sm_wbuf_put(&w, m->snap_data, m->snap_len);
        break;
    case CLUSTER_MSG_LOG_END_QUERY:
        sm_wbuf_u64(&w, m->query_id);
        break;
    case CLUSTER_MSG_LOG_END:
        sm_wbuf_u64(&w, m->query_id);
        sm_wbuf_u64(&w, m->last_index);
        sm_wbuf_u64(&w, m->last_epoch);
        break;
    default:
        UNREACHABLE();
    }
    ASSERT(!w.failed && w.len == need);
    *len_out = w.len;
    return 0;
}

static int decode_entries(struct sm_rbuf *r, struct cluster_msg *m)
{
    uint64_t min_epoch = m->prev_epoch;
    for (uint32_t i = 0; i < m->entries_count; i++) {
        struct cluster_entry *e = &m->entries[i];
        e->index = m->prev_index + 1 + i;
        e->epoch = sm_rbuf_u64(r);
        e->time_ms = sm_rbuf_i64(r);
        e->kind = sm_rbuf_u8(r);
        e->len = sm_rbuf_u32(r);
        if (!sm_rbuf_ok(r) || e->len > sm_rbuf_left(r) || !entry_ok(e, min_epoch, m->epoch))
            return SM_E_BADARG;
        e->data = e->len ? sm_rbuf_take(r, e->len) : NULL;
        min_epoch = e->epoch;
    }
    return 0;
}

int cluster_msg_decode(const uint8_t *data, size_t len, struct cluster_msg *m)
{
    ASSERT(m);
    memset(m, 0, offsetof(struct cluster_msg, entries));
    memset(&m->ok, 0, sizeof *m - offsetof(struct cluster_msg, ok));
    if (len > SM_CLUSTER_SNAPSHOT_BYTES_MAX + 64)
        return SM_E_BADARG;
    struct sm_rbuf r;
    sm_rbuf_init(&r, data, len);
    uint8_t version = sm_rbuf_u8(&r);
    m->type = sm_rbuf_u8(&r);
    m->partition = sm_rbuf_u32(&r);
    m->from = sm_rbuf_u32(&r);
    m->to = sm_rbuf_u32(&r);
    m->epoch = sm_rbuf_u64(&r);
    if (!sm_rbuf_ok(&r) || version != CLUSTER_MSG_VERSION)
        return SM_E_BADARG;
    if (m->type != CLUSTER_MSG_SNAPSHOT && len > SM_CLUSTER_MSG_BYTES_MAX)
        return SM_E_BADARG;
    switch (m->type) {
    case CLUSTER_MSG_APPEND:
        m->prev_index = sm_rbuf_u64(&r);
        m->prev_epoch = sm_rbuf_u64(&r);
        m->commit_index = sm_rbuf_u64(&r);
        m->round = sm_rbuf_u64(&r);
        m->entries_count = sm_rbuf_u32(&r);
        if (!sm_rbuf_ok(&r) || !fields_ok(m) || decode_entries(&r, m) != 0)
            return SM_E_BADARG;
        break;
    case CLUSTER_MSG_APPEND_ACK: {
        uint8_t ok = sm_rbuf_u8(&r);
        m->ok = ok == 1;
        m->match_index = sm_rbuf_u64(&r);
        m->last_index = sm_rbuf_u64(&r);
        m->round = sm_rbuf_u64(&r);
        if (ok > 1)
            return SM_E_BADARG;
        break;
    }
    case CLUSTER_MSG_SNAPSHOT:
        m->snap_index = sm_rbuf_u64(&r);
        m->snap_epoch = sm_rbuf_u64(&r);
        m->snap_time_ms = sm_rbuf_i64(&r);
        m->commit_index = sm_rbuf_u64(&r);
        m->snap_len = sm_rbuf_u32(&r);
        if (!sm_rbuf_ok(&r) || m->snap_len > sm_rbuf_left(&r))
            return SM_E_BADARG;
        m->snap_data = m->snap_len ? sm_rbuf_take(&r, m->snap_len) : NULL;
        break;
    case CLUSTER_MSG_LOG_END_QUERY:
        m->query_id = sm_rbuf_u64(&r);
        break;
    case CLUSTER_MSG_LOG_END:
        m->query_id = sm_rbuf_u64(&r);
        m->last_index = sm_rbuf_u64(&r);
        m->last_epoch = sm_rbuf_u64(&r);
        break;
    default:
        return SM_E_BADARG;
    }
    if (!sm_rbuf_ok(&r) || sm_rbuf_left(&r) != 0 || !fields_ok(m))
        return SM_E_BADARG;
    return 0;
}
