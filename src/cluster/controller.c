/*
 * The failover controller (see controller.h for the rule and why it is safe).
 */
#include "cluster/controller.h"

#include <stdlib.h>
#include <string.h>

#include "util/error.h"

int cluster_controller_init(struct cluster_controller *c,
                            const struct cluster_controller_config *cfg)
{
    ASSERT(c && cfg);
    memset(c, 0, sizeof *c);
    if (!cfg->emit || cfg->partitions < 1 || cfg->partitions > SM_PARTITIONS_MAX ||
        cfg->node >= SM_CLUSTER_NODES_MAX || cfg->query_timeout_ms < 1)
        return SM_E_BADARG;
    c->cfg = *cfg;
    c->failovers = calloc(cfg->partitions, sizeof *c->failovers);
    c->scratch = malloc(256);
    if (!c->failovers || !c->scratch) {
        cluster_controller_free(c);
        return SM_E_NOMEM;
    }
    return 0;
}

void cluster_controller_free(struct cluster_controller *c)
{
    free(c->failovers);
    free(c->scratch);
    memset(c, 0, sizeof *c);
}

void cluster_controller_reset(struct cluster_controller *c)
{
    memset(c->failovers, 0, c->cfg.partitions * sizeof *c->failovers);
}

static bool is_live(const bool *live, uint32_t nodes_count, uint32_t node)
{
    return node < nodes_count && live[node];
}

static void send_query(struct cluster_controller *c, uint32_t p, const struct cluster_failover *f,
                       uint32_t to)
{
    struct cluster_msg m;
    memset(&m, 0, offsetof(struct cluster_msg, entries));
    m.type = CLUSTER_MSG_LOG_END_QUERY;
    m.partition = p;
    m.from = c->cfg.node;
    m.to = to;
    m.epoch = f->epoch;
    m.query_id = f->query_id;
    size_t len;
    int rc = cluster_msg_encode(&m, c->scratch, 256, &len);
    ASSERT(rc == 0);
    struct cluster_action a = {
        .type = CLUSTER_ACT_SEND, .partition = p, .to = to, .bytes = c->scratch, .len = len};
    c->cfg.emit(c->cfg.emit_ctx, &a);
}

static void start(struct cluster_controller *c, int64_t now_ms, uint32_t p,
                  const struct cluster_config *config, const bool *live, uint32_t nodes_count)
{
    struct cluster_failover *f = &c->failovers[p];
    memset(f, 0, sizeof *f);
    f->epoch = config->epoch;
    f->revision = config->revision;
    f->query_id = ++c->next_query_id;
    f->started_ms = now_ms;
    for (uint32_t i = 0; i < config->isr_count; i++) {
        uint32_t node = config->isr[i];
        if (node != config->primary && is_live(live, nodes_count, node))
            f->asked[f->asked_count++] = node;
    }
    if (f->asked_count == 0)
        return; /* no live in-sync replica: the partition waits (no unclean election) */
    f->active = true;
    c->failovers_started++;
    for (uint32_t i = 0; i < f->asked_count; i++)
        send_query(c, p, f, f->asked[i]);
}

static void decide(struct cluster_controller *c, uint32_t p, const struct cluster_config *config)
{
    struct cluster_failover *f = &c->failovers[p];
    int best = -1;
    for (uint32_t i = 0; i < f->asked_count; i++) {
        if (!f->answered[i])
            continue;
        if (best < 0 || f->last_index[i] > f->last_index[best] ||
            (f->last_index[i] == f->last_index[best] &&
             (f->last_epoch[i] > f->last_epoch[best] ||
              (f->last_epoch[i] == f->last_epoch[best] && f->asked[i] < f->asked[best]))))
            best = (int)i;
    }
    if (best < 0)
        return;
    struct cluster_config next = *config;
    next.epoch = config->epoch + 1;
    next.primary = f->asked[best];
    next.isr_count = 0;
    for (uint32_t i = 0; i < f->asked_count; i++)
        if (f->answered[i])
            next.isr[next.isr_count++] = f->asked[i];
    f->cas_sent = true;
    c->failovers_done++;
    struct cluster_action a = {.type = CLUSTER_ACT_CAS, .partition = p, .config = &next};
    c->cfg.emit(c->cfg.emit_ctx, &a);
}

void cluster_controller_check(struct cluster_controller *c, int64_t now_ms, uint32_t p,
                              const struct cluster_config *config, const bool *live,
                              uint32_t nodes_count)
{
    ASSERT(p < c->cfg.partitions);
    struct cluster_failover *f = &c->failovers[p];
    if (is_live(live, nodes_count, config->primary)) {
        f->active = false;
        return;
    }
    bool same = f->epoch == config->epoch && f->revision == config->revision;
    bool stale = now_ms - f->started_ms >= 4 * c->cfg.query_timeout_ms;
    if (!f->active || !same || (f->cas_sent && stale)) {
        start(c, now_ms, p, config, live, nodes_count);
        return;
    }
    if (f->cas_sent)
        return; /* its result comes back as a new config (or the same one: then we retry) */
    uint32_t answered = 0;
    for (uint32_t i = 0; i < f->asked_count; i++)
        answered += f->answered[i];
    if (answered == f->asked_count || now_ms - f->started_ms >= c->cfg.query_timeout_ms) {
        if (answered == 0)
            start(c, now_ms, p, config, live, nodes_count);
        else
            decide(c, p, config);
    }
}

void cluster_controller_receive(struct cluster_controller *c, int64_t now_ms,
                                const struct cluster_msg *m)
{
    (void)now_ms;
    if (m->type != CLUSTER_MSG_LOG_END || m->partition >= c->cfg.partitions)
        return;
    struct cluster_failover *f = &c->failovers[m->partition];
    if (!f->active || f->cas_sent || m->query_id != f->query_id)
        return;
    for (uint32_t i = 0; i < f->asked_count; i++) {
        if (f->asked[i] == m->from) {
            f->answered[i] = true;
            f->last_index[i] = m->last_index;
            f->last_epoch[i] = m->last_epoch;
        }
    }
}
