/* The replication messages' codec (src/cluster/msg.c): a golden vector pins the wire format,
 * every type round-trips, every proper prefix and every rule break is refused. */
#include <criterion/criterion.h>
#include <string.h>

#include "cluster/msg.h"
#include "util/error.h"

static struct cluster_msg m, d;
static uint8_t buf[4096];

static struct cluster_msg *append_msg(void)
{
    memset(&m, 0, sizeof m);
    m.type = CLUSTER_MSG_APPEND;
    m.partition = 7;
    m.from = 1;
    m.to = 2;
    m.epoch = 3;
    m.prev_index = 10;
    m.prev_epoch = 2;
    m.commit_index = 9;
    m.round = 4;
    m.entries_count = 3;
    static const uint8_t rec[] = {2, 2, 'r', '1', 2, 't', 'v', 5, 0, 0, 0, 0, 0, 0, 0};
    m.entries[0] = (struct cluster_entry){
        .epoch = 2, .time_ms = 100, .kind = CLUSTER_ENTRY_ENGINE, .len = sizeof rec, .data = rec};
    m.entries[1] = (struct cluster_entry){.epoch = 3, .time_ms = 101, .kind = CLUSTER_ENTRY_EPOCH};
    m.entries[2] = (struct cluster_entry){.epoch = 3, .time_ms = 102, .kind = CLUSTER_ENTRY_TICK};
    return &m;
}

Test(cluster_msg, golden_ack_bytes)
{
    memset(&m, 0, sizeof m);
    m.type = CLUSTER_MSG_APPEND_ACK;
    m.partition = 1;
    m.from = 2;
    m.to = 3;
    m.epoch = 4;
    m.ok = true;
    m.match_index = 5;
    m.last_index = 6;
    m.round = 7;
    static const uint8_t want[] = {1, 2, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0,
                                   0, 0, 0, 0, 0, 0, 1, 5, 0, 0, 0, 0, 0, 0, 0, 6,
                                   0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0};
    size_t len;
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), 0);
    cr_assert_eq(len, sizeof want);
    cr_assert_eq(memcmp(buf, want, len), 0);
    cr_assert_eq(cluster_msg_encoded_len(&m), len);
}

Test(cluster_msg, append_round_trips_and_indexes_are_implied)
{
    size_t len;
    cr_assert_eq(cluster_msg_encode(append_msg(), buf, sizeof buf, &len), 0);
    cr_assert_eq(cluster_msg_encoded_len(&m), len);
    cr_assert_eq(cluster_msg_decode(buf, len, &d), 0);
    cr_assert_eq(d.entries_count, 3);
    cr_assert_eq(d.entries[0].index, 11);
    cr_assert_eq(d.entries[2].index, 13);
    cr_assert_eq(d.entries[0].len, m.entries[0].len);
    cr_assert_eq(memcmp(d.entries[0].data, m.entries[0].data, d.entries[0].len), 0);
    cr_assert_eq(d.entries[1].kind, CLUSTER_ENTRY_EPOCH);
    cr_assert_eq(d.entries[2].time_ms, 102);
    cr_assert_eq(d.commit_index, 9);
    cr_assert_eq(d.round, 4);
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(cluster_msg_decode(buf, cut, &d), SM_E_BADARG, "prefix of %zu bytes", cut);
    buf[len] = 0;
    cr_assert_eq(cluster_msg_decode(buf, len + 1, &d), SM_E_BADARG, "a trailing byte");
}

Test(cluster_msg, other_types_round_trip)
{
    static const uint8_t snap[] = {1, 2, 3, 4, 5};
    struct cluster_msg cases[3];
    memset(cases, 0, sizeof cases);
    cases[0] = (struct cluster_msg){.type = CLUSTER_MSG_SNAPSHOT,
                                    .epoch = 5,
                                    .snap_index = 40,
                                    .snap_epoch = 4,
                                    .snap_time_ms = 77,
                                    .commit_index = 41,
                                    .snap_len = sizeof snap,
                                    .snap_data = snap};
    cases[1] = (struct cluster_msg){.type = CLUSTER_MSG_LOG_END_QUERY, .epoch = 5, .query_id = 9};
    cases[2] = (struct cluster_msg){
        .type = CLUSTER_MSG_LOG_END, .epoch = 5, .query_id = 9, .last_index = 12, .last_epoch = 5};
    for (int i = 0; i < 3; i++) {
        size_t len;
        cr_assert_eq(cluster_msg_encode(&cases[i], buf, sizeof buf, &len), 0);
        cr_assert_eq(cluster_msg_decode(buf, len, &d), 0);
        cr_assert_eq(d.type, cases[i].type);
        cr_assert_eq(d.epoch, 5);
        cr_assert_eq(d.query_id, cases[i].query_id);
        cr_assert_eq(d.last_index, cases[i].last_index);
        cr_assert_eq(d.snap_len, cases[i].snap_len);
        cr_assert_str_neq(cluster_msg_type_name(d.type), "?");
    }
    cr_assert_eq(memcmp(d.snap_data ? d.snap_data : snap, snap, 0), 0);
}

Test(cluster_msg, rule_breaks_are_refused_by_both_sides)
{
    size_t len;
    append_msg()->entries[1].epoch = 4; /* above the message's epoch */
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    append_msg()->entries[2].epoch = 2; /* epochs must not go down */
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    append_msg()->entries[1].len = 1; /* an EPOCH entry has no payload */
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    append_msg()->entries[0].kind = 9;
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    append_msg()->to = SM_CLUSTER_NODES_MAX;
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    append_msg()->entries_count = SM_CLUSTER_MSG_ENTRIES_MAX + 1;
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    cr_assert_eq(cluster_msg_encode(append_msg(), buf, 20, &len), SM_E_TOOLARGE);

    /* the decoder refuses the same things when they arrive as bytes */
    cr_assert_eq(cluster_msg_encode(append_msg(), buf, sizeof buf, &len), 0);
    buf[0] = 2; /* version */
    cr_assert_eq(cluster_msg_decode(buf, len, &d), SM_E_BADARG);
    buf[0] = 1;
    buf[1] = 99; /* type */
    cr_assert_eq(cluster_msg_decode(buf, len, &d), SM_E_BADARG);
    buf[1] = CLUSTER_MSG_APPEND;
    uint32_t huge = SM_CLUSTER_MSG_ENTRIES_MAX + 1;
    memcpy(buf + 22 + 32, &huge, 4); /* entries count */
    cr_assert_eq(cluster_msg_decode(buf, len, &d), SM_E_BADARG);
    cr_assert_eq(cluster_msg_encode(append_msg(), buf, sizeof buf, &len), 0);
    uint32_t big_len = 0xffffffffu;
    memcpy(buf + 22 + 36 + 17, &big_len, 4); /* first entry's length */
    cr_assert_eq(cluster_msg_decode(buf, len, &d), SM_E_BADARG);

    memset(&m, 0, sizeof m);
    m.type = CLUSTER_MSG_APPEND_ACK;
    m.match_index = 5;
    m.last_index = 4; /* match past the end */
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), SM_E_BADARG);
    m.last_index = 5;
    cr_assert_eq(cluster_msg_encode(&m, buf, sizeof buf, &len), 0);
    buf[22] = 2; /* ok is 0 or 1 */
    cr_assert_eq(cluster_msg_decode(buf, len, &d), SM_E_BADARG);
}
