/* The replicated log of one partition (src/cluster/part.c): commit only on the whole ISR, the
 * hazards of issue 5 one by one (stale reads on a deposed primary, rebuilding diverged state,
 * ISR shrink before commit and re-add after catch-up, fencing tokens and cluster time across a
 * failover, snapshot catch-up, restart), each in a world where the test decides every delivery. */
#include "part_harness.h"

static int64_t field(const struct engine_reply *r, const char *name)
{
    for (uint32_t i = 0; i < r->fields_count; i++)
        if (strcmp(r->fields[i].name, name) == 0)
            return r->fields[i].value;
    cr_assert_fail("no field %s", name);
    return 0;
}

static void propose(struct harness *h, uint32_t node, uint64_t token, struct engine_cmd c)
{
    struct engine_reply r;
    cr_assert_eq(cluster_part_propose(&h->nodes[node].part, h->now_ms, token, &c, &r), 0);
}

static void create_sku(struct harness *h, uint32_t node, uint64_t token, const char *rid,
                       int64_t qty)
{
    propose(h, node, token, h_cmd(ENGINE_SKU_CREATE, rid, "tv", qty));
}

static void read_sku(struct harness *h, uint32_t node, uint64_t token)
{
    struct engine_cmd c = h_cmd(ENGINE_SKU_GET, NULL, "tv", 0);
    cr_assert_eq(cluster_part_read(&h->nodes[node].part, h->now_ms, token, &c), 0);
}

static void adjust(struct harness *h, uint32_t node, uint64_t token, const char *rid, int64_t n)
{
    propose(h, node, token, h_cmd(ENGINE_SKU_ADJUST, rid, "tv", n));
}

Test(cluster_part, commits_only_once_every_isr_member_has_it_durable)
{
    static struct harness h;
    h_init(&h, 3);
    h.sync_stalled[2] = true;
    create_sku(&h, 0, 1, "r1", 10);
    h_settle(&h);
    cr_assert_null(h_find_reply(&h, 1), "no reply before node 2's fsync");
    cr_assert_eq(h.nodes[0].part.commit_index, 0);
    cr_assert_eq(h.nodes[1].part.applied_index, 0, "replicas apply committed entries only");
    h.sync_stalled[2] = false;
    h_settle(&h);
    const struct h_reply *r = h_find_reply(&h, 1);
    cr_assert_not_null(r);
    cr_assert_not(r->dropped);
    cr_assert_eq(r->reply.kind, ENGINE_REPLY_OK);
    h_advance(&h, 20); /* a heartbeat carries the commit index */
    cr_assert(h_same_state(&h, 0, 1) && h_same_state(&h, 0, 2));
    cr_assert_eq(h.nodes[2].part.commit_index, h.nodes[0].part.commit_index);
    h_free(&h);
}

Test(cluster_part, a_lagging_member_leaves_the_isr_by_cas_before_commit_and_comes_back)
{
    static struct harness h;
    h_init(&h, 3);
    create_sku(&h, 0, 1, "r1", 10);
    h_settle(&h);
    h_isolate(&h, 2, true);
    adjust(&h, 0, 2, "r2", 1);
    h_advance(&h, 50);
    cr_assert_null(h_find_reply(&h, 2), "node 2 is still in the ISR: no commit without it");
    h_advance(&h, 100);
    cr_assert(h.nodes[0].cas_wanted, "the primary asks to drop the laggard");
    cr_assert_eq(h.nodes[0].cas.isr_count, 2);
    cr_assert_not(cluster_config_has_isr(&h.nodes[0].cas, 2));
    cr_assert_null(h_find_reply(&h, 2), "not before the CAS is applied");
    cr_assert(h_apply_cas(&h, 0));
    h_settle(&h);
    cr_assert_not_null(h_find_reply(&h, 2));
    /* node 2 comes back, catches up, and is added back */
    h_isolate(&h, 2, false);
    h_advance(&h, 100);
    cr_assert(h.nodes[0].cas_wanted);
    cr_assert(cluster_config_has_isr(&h.nodes[0].cas, 2));
    cr_assert(h_apply_cas(&h, 0));
    h_advance(&h, 20);
    cr_assert_eq(h.config.isr_count, 3);
    cr_assert(h_same_state(&h, 0, 2));
    h_free(&h);
}

Test(cluster_part, a_deposed_primary_never_answers_a_read_and_rebuilds_its_engine)
{
    static struct harness h;
    h_init(&h, 3);
    create_sku(&h, 0, 1, "r1", 10);
    h_settle(&h);
    cr_assert_not_null(h_find_reply(&h, 1));
    /* node 0 is cut off; it still believes it leads epoch 1 */
    h_isolate(&h, 0, true);
    adjust(&h, 0, 2, "r2", 3); /* applied on node 0 only, never committed */
    read_sku(&h, 0, 3);        /* would see available = 7: a dirty read */
    h_advance(&h, 50);
    cr_assert_null(h_find_reply(&h, 2));
    cr_assert_null(h_find_reply(&h, 3), "no confirmation round can complete");
    /* the controller promotes node 1 (epoch 2, ISR {1, 2}); node 0 does not hear of it yet */
    h.config.epoch = 2;
    h.config.revision++;
    h.config.primary = 1;
    h.config.isr_count = 2;
    h.config.isr[0] = 1;
    h.config.isr[1] = 2;
    cluster_part_set_config(&h.nodes[1].part, h.now_ms, &h.config);
    cluster_part_set_config(&h.nodes[2].part, h.now_ms, &h.config);
    adjust(&h, 1, 4, "r4", 1);
    h_settle(&h);
    const struct h_reply *r = h_find_reply(&h, 4);
    cr_assert_not_null(r);
    read_sku(&h, 1, 5);
    h_advance(&h, 20);
    r = h_find_reply(&h, 5);
    cr_assert_not_null(r);
    cr_assert_eq(field(&r->reply, "available"), 9);
    cr_assert_null(h_find_reply(&h, 3), "the old primary still cannot confirm");
    /* node 0 rejoins: it learns epoch 2, drops its waiting requests, rebuilds and truncates */
    h_isolate(&h, 0, false);
    cluster_part_set_config(&h.nodes[0].part, h.now_ms, &h.config);
    cr_assert(h_find_reply(&h, 2)->dropped);
    cr_assert(h_find_reply(&h, 3)->dropped);
    cr_assert_geq(h.nodes[0].part.stats_rebuilds, 1);
    h_advance(&h, 50);
    cr_assert_geq(h.nodes[0].part.stats_truncated, 1);
    cr_assert(h_same_state(&h, 0, 1));
    h_free(&h);
}

static struct engine_cmd lock_cmd(int type, const char *rid, const char *session)
{
    struct engine_cmd c = h_cmd(type, rid, session, 0);
    c.key2 = (struct engine_key){(const uint8_t *)"L", 1};
    c.lock_type = LOCKS_EXCLUSIVE;
    c.owner = 7;
    c.num = 0;
    return c;
}

Test(cluster_part, fencing_tokens_and_cluster_time_keep_increasing_across_a_failover)
{
    static struct harness h;
    h_init(&h, 3);
    h.now_ms = 50000;
    propose(&h, 0, 1, h_cmd(ENGINE_LOCK_SESSION_OPEN, "s1", "sess", 60000));
    propose(&h, 0, 2, lock_cmd(ENGINE_LOCK_ACQUIRE, "a1", "sess"));
    h_settle(&h);
    const struct h_reply *r = h_find_reply(&h, 2);
    cr_assert_not_null(r);
    int64_t t1 = field(&r->reply, "token");
    int64_t time1 = engine_now_ms(&h.nodes[0].part.engine);
    propose(&h, 0, 3, lock_cmd(ENGINE_LOCK_RELEASE, "x1", "sess"));
    h_settle(&h);
    /* node 1 takes over with a clock 40 s behind */
    h.now_ms = 10000;
    uint32_t isr[] = {1, 2};
    h_set_config(&h, 2, 1, isr, 2);
    propose(&h, 1, 4, lock_cmd(ENGINE_LOCK_ACQUIRE, "a2", "sess"));
    h_settle(&h);
    h_advance(&h, 20);
    r = h_find_reply(&h, 4);
    cr_assert_not_null(r);
    cr_assert_gt(field(&r->reply, "token"), t1);
    cr_assert_geq(engine_now_ms(&h.nodes[1].part.engine), time1, "cluster time never goes back");
    h_free(&h);
}

Test(cluster_part, a_replica_whose_tail_is_gone_gets_a_snapshot)
{
    static struct harness h;
    h_init(&h, 3);
    create_sku(&h, 0, 1, "r1", 1000);
    h_settle(&h);
    h_isolate(&h, 2, true);
    uint32_t isr[] = {0, 1};
    h.config.revision++;
    h.config.isr_count = 2;
    memcpy(h.config.isr, isr, sizeof isr);
    h_publish(&h);
    char rid[16];
    for (int i = 0; i < 100; i++) {
        snprintf(rid, sizeof rid, "a%d", i);
        adjust(&h, 0, 10 + (uint64_t)i, rid, 1);
        h_settle(&h);
    }
    cr_assert_gt(h.nodes[0].part.snap_index, 1, "the primary compacted its log");
    h_isolate(&h, 2, false);
    h_advance(&h, 100);
    cr_assert_geq(h.snapshots_sent, 1);
    cr_assert(h_apply_cas(&h, 0), "caught up: added back");
    h_advance(&h, 20);
    cr_assert(h_same_state(&h, 0, 2));
    h_free(&h);
}

Test(cluster_part, an_older_epoch_is_refused_and_tells_the_sender)
{
    static struct harness h;
    h_init(&h, 3);
    uint32_t isr[] = {1, 2};
    /* nodes 1, 2 at epoch 2; node 0 still at epoch 1 */
    h.config.epoch = 2;
    h.config.revision++;
    h.config.primary = 1;
    h.config.isr_count = 2;
    memcpy(h.config.isr, isr, sizeof isr);
    cluster_part_set_config(&h.nodes[1].part, h.now_ms, &h.config);
    cluster_part_set_config(&h.nodes[2].part, h.now_ms, &h.config);
    create_sku(&h, 0, 1, "r1", 5);
    h_settle(&h);
    cr_assert(h_find_reply(&h, 1)->dropped, "the old primary learns of epoch 2 and gives up");
    cr_assert_neq(h.nodes[0].part.role, CLUSTER_ROLE_PRIMARY);
    cr_assert_eq(h.nodes[0].part.epoch, 2);
    cr_assert_eq(h.nodes[1].part.commit_index, 1, "node 1 committed only its epoch marker");
    h_free(&h);
}

Test(cluster_part, a_restarted_primary_asks_for_a_new_epoch_before_leading)
{
    static struct harness h;
    h_init(&h, 3);
    create_sku(&h, 0, 1, "r1", 5);
    h_settle(&h);
    /* node 0 restarts from its durable log: entries 1..2 */
    struct cluster_entry e[2];
    cr_assert(cluster_part_entry(&h.nodes[0].part, 1, &e[0]));
    cr_assert(cluster_part_entry(&h.nodes[0].part, 2, &e[1]));
    uint8_t copy[256];
    cr_assert_lt(e[1].len, sizeof copy);
    memcpy(copy, e[1].data, e[1].len);
    e[1].data = copy;
    cluster_part_free(&h.nodes[0].part);
    struct cluster_part_config c = h_part_config(&h.nodes[0]);
    cr_assert_eq(cluster_part_init(&h.nodes[0].part, &c, NULL, 0, 0, 0, 0, e, 2, true), 0);
    cluster_part_set_config(&h.nodes[0].part, h.now_ms, &h.config);
    struct engine_cmd cmd = h_cmd(ENGINE_SKU_ADJUST, "r2", "tv", 1);
    struct engine_reply r;
    cr_assert_eq(cluster_part_propose(&h.nodes[0].part, h.now_ms, 2, &cmd, &r), SM_E_TRYAGAIN);
    cr_assert(h.nodes[0].cas_wanted);
    cr_assert_eq(h.nodes[0].cas.epoch, 2);
    cr_assert(h_apply_cas(&h, 0));
    propose(&h, 0, 2, cmd);
    h_settle(&h);
    cr_assert_not_null(h_find_reply(&h, 2));
    cr_assert_eq(h.nodes[0].part.epoch, 2);
    h_free(&h);
}

Test(cluster_part, a_non_primary_redirects_and_bad_configs_are_refused)
{
    static struct harness h;
    h_init(&h, 3);
    struct engine_cmd cmd = h_cmd(ENGINE_SKU_CREATE, "r1", "tv", 1);
    struct engine_reply r;
    cr_assert_eq(cluster_part_propose(&h.nodes[1].part, h.now_ms, 1, &cmd, &r), SM_E_MOVED);
    struct cluster_part p;
    struct cluster_part_config c = h_part_config(&h.nodes[0]);
    c.log_entries_max = SM_CLUSTER_LOG_ENTRIES_MIN - 1;
    cr_assert_eq(cluster_part_init(&p, &c, NULL, 0, 0, 0, 0, NULL, 0, false), SM_E_BADARG);
    c = h_part_config(&h.nodes[0]);
    c.pending_max = SM_CLUSTER_PENDING_MAX + 1;
    cr_assert_eq(cluster_part_init(&p, &c, NULL, 0, 0, 0, 0, NULL, 0, false), SM_E_BADARG);
    c = h_part_config(&h.nodes[0]);
    c.node = SM_CLUSTER_NODES_MAX;
    cr_assert_eq(cluster_part_init(&p, &c, NULL, 0, 0, 0, 0, NULL, 0, false), SM_E_BADARG);
    h_free(&h);
}

Test(cluster_part, a_full_pending_queue_is_busy_not_an_abort)
{
    static struct harness h;
    h_init(&h, 3);
    h.sync_stalled[1] = true;
    char rid[16];
    int busy = 0;
    for (int i = 0; i < 300 && !busy; i++) {
        snprintf(rid, sizeof rid, "c%d", i);
        struct engine_cmd cmd = h_cmd(ENGINE_SKU_CREATE, rid, rid, 1);
        struct engine_reply r;
        int rc = cluster_part_propose(&h.nodes[0].part, h.now_ms, (uint64_t)i, &cmd, &r);
        cr_assert(rc == 0 || rc == SM_E_BUSY);
        busy = rc == SM_E_BUSY;
    }
    cr_assert(busy, "the log (64 entries) fills before 300 proposals");
    h_free(&h);
}

/* Simulator seed 2104: the primary asks to add a caught-up replica back to the ISR and counts it
 * for commit; the CAS applies in the control plane, but the answer and the watch event never
 * reach the primary. The replica is in the ISR as far as the controller knows (it may be the
 * next primary), so the primary must keep counting it: a timed-out CAS, and a failed retry of
 * it, prove nothing about whether the first attempt applied. */
Test(cluster_part, a_lost_answer_to_an_isr_add_keeps_the_replica_counted_for_commit)
{
    static struct harness h;
    h_init(&h, 3);
    create_sku(&h, 0, 1, "r1", 10);
    h_settle(&h);
    /* node 2 lags, leaves the ISR, then catches up and is asked back in */
    h_isolate(&h, 2, true);
    adjust(&h, 0, 2, "r2", 1);
    h_advance(&h, 150);
    cr_assert(h_apply_cas(&h, 0));
    h_settle(&h);
    cr_assert_not_null(h_find_reply(&h, 2));
    h_isolate(&h, 2, false);
    h_advance(&h, 100);
    cr_assert(h.nodes[0].cas_wanted);
    cr_assert(cluster_config_has_isr(&h.nodes[0].cas, 2));
    /* the control plane applies the add; nobody hears of it */
    h.config = h.nodes[0].cas;
    h.config.revision++;
    h.nodes[0].cas_wanted = false;
    /* node 2 is cut off again before it gets the next write */
    h_isolate(&h, 2, true);
    adjust(&h, 0, 3, "r3", 1);
    h_advance(&h, 4 * 100 + 50); /* past the CAS's timeout */
    cr_assert_null(h_find_reply(&h, 3), "committed without a member of the ISR");
    cr_assert(h.nodes[0].cas_wanted, "the add is asked again");
    cr_assert_not(h_apply_cas(&h, 0), "the retry fails: the revision moved");
    h_advance(&h, 50);
    cr_assert_null(h_find_reply(&h, 3), "a failed retry proves nothing");
    /* the config finally arrives; node 2 comes back; the write commits on the whole ISR */
    h_publish(&h);
    h_isolate(&h, 2, false);
    h_advance(&h, 100);
    const struct h_reply *r = h_find_reply(&h, 3);
    cr_assert_not_null(r);
    cr_assert_not(r->dropped);
    cr_assert(h_same_state(&h, 0, 2));
    h_free(&h);
}
