/*
 * The simulator's world, shared by its files: sim.c (scheduler, network, disks, nodes), plane.c
 * (each node's client of the embedded control plane of src/coord/, and the scheduler's delivery
 * of its requests and results), workload.c (clients and their history) and check.c (the oracle
 * log and the checks).
 * Everything here is private to src/sim/.
 */
#ifndef SHARDMART_SIM_SIM_INTERNAL_H
#define SHARDMART_SIM_SIM_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cluster/controller.h"
#include "cluster/part.h"
#include "coord/coord.h"
#include "coord/directory.h"
#include "sim/sim.h"

/* ---- PRNG ---------------------------------------------------------------------------------- */

/* xoshiro256** seeded by splitmix64 (Blackman and Vigna, public-domain reference algorithm):
 * hand-written because the run must draw the same numbers on every platform and libc, which
 * rand() and random() do not promise. */
struct sim_rng {
    uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [0, n) (n >= 1), and in [lo, hi]. */
uint64_t sim_rng_below(struct sim_rng *r, uint64_t n);
int64_t sim_rng_range(struct sim_rng *r, int64_t lo, int64_t hi);
/* True with probability per_mille / 1000. */
bool sim_rng_chance(struct sim_rng *r, uint32_t per_mille);

/* ---- events -------------------------------------------------------------------------------- */

enum sim_ev_type {
    SIM_EV_TICK = 1,           /* node: timers of every partition and of its lease */
    SIM_EV_DELIVER = 2,        /* node <- bytes from other */
    SIM_EV_SYNC_DONE = 3,      /* node, part: a SYNC (a = index, b = epoch, other = write seq) */
    SIM_EV_CRASH = 4,          /* node */
    SIM_EV_RESTART = 5,        /* node */
    SIM_EV_CUT = 6,            /* a network partition starts (a = mask of one side) */
    SIM_EV_HEAL = 7,           /* every link back */
    SIM_EV_COORD_APPLY = 8,    /* node's oldest request reaches the store (or is lost) */
    SIM_EV_COORD_RESULT = 9,   /* node: its control plane results due by now arrive */
    SIM_EV_CLIENT_WAKE = 10,   /* client: its timer (a = op, b = attempt) */
    SIM_EV_CLIENT_REQ = 11,    /* client -> node: a = history index */
    SIM_EV_CLIENT_REPLY = 12,  /* node -> client: a = history index, bytes = engine_reply or err */
    SIM_EV_END_FAULTS = 13,    /* heal everything, restart everyone, stop new operations */
    SIM_EV_CHECK_QUIET = 14,   /* is the cluster quiet yet? */
    SIM_EV_COORD_TIMEOUT = 15, /* node: a request that got no answer (bytes = sm_coord_result) */
};

struct sim_ev {
    int64_t at;
    uint64_t seq;
    uint8_t type;
    uint32_t node, other, part;
    uint32_t incarnation; /* the target's incarnation when scheduled (timers, syncs) */
    uint64_t a, b;
    uint8_t *bytes; /* owned by the event */
    size_t len;
};

/* ---- disks --------------------------------------------------------------------------------- */

struct sim_disk_entry {
    struct cluster_entry e; /* e.data owned */
    uint64_t wseq;          /* write order, for what a sync covers */
    bool synced;
};

/* One partition's log on one node's disk. Truncation and snapshots are durable at once (the real
 * server fsyncs them before going on); appends are durable only once a sync covering them ends. */
struct sim_disk {
    uint8_t *snap;
    size_t snap_len;
    uint64_t snap_index, snap_epoch;
    int64_t snap_time_ms;
    struct sim_disk_entry *entries;
    uint32_t count, cap;
    uint64_t wseq;
};

/* ---- nodes and the control plane ----------------------------------------------------------- */

struct sim_world;

/* A control plane result on its way to a node: results arrive in the order the store made them
 * (a watch stream), each no earlier than due_at. */
struct sim_inbox_item {
    struct sm_coord_result r; /* owned */
    int64_t due_at;
};

/* A CAS a node sent and awaits: the partition's own (its answer goes back to it) or the
 * controller's (its result shows in the config, through the watch). */
struct sim_cas {
    uint64_t id;
    uint32_t part;
    bool from_part;
    struct cluster_config config; /* what it writes if it applies */
};

#define SIM_CAS_INFLIGHT_MAX 32

struct sim_node {
    struct sim_world *w;
    uint32_t id;
    char name[12]; /* its member id in the directory: "n<id>" */
    bool up;
    bool loaded; /* has read the control plane since it started: may take messages */
    uint32_t incarnation;
    int64_t skew_ms; /* its clock = true time + skew */
    struct cluster_part *parts;
    struct sim_disk *disks;
    struct cluster_config *configs; /* its view, from its load and its watch */
    bool live[SIM_NODES_MAX];       /* its view of the members (keys under their leases) */
    int32_t controller;             /* its view of who runs the controller (-1 none) */
    int64_t controller_lease;       /* the lease the controller key is under */
    bool is_controller;             /* the controller key is ours, under our current lease */
    struct cluster_controller ctl;
    uint32_t cur_part; /* the partition whose actions are being emitted */

    /* Its client of the store (manual mode: the scheduler applies each request), the directory
     * over it and the session that keeps its lease; a new client per incarnation. */
    struct sm_coord *coord;
    struct sm_coord_dir dir;
    struct sm_coord_session session;
    int64_t joined_lease; /* the lease its member key was written under (0: not joined) */
    int64_t join_lease;   /* the lease of the join in flight */
    uint64_t join_id, load_id, watch_id, campaign_id;
    bool need_load;   /* its watch fell behind compaction: read everything again */
    bool stalled;     /* its watch stream is held by a cut */
    int64_t revision; /* the store revision its view reflects */
    int64_t next_campaign_ms;
    uint32_t applies_scheduled;   /* SIM_EV_COORD_APPLY events on their way, one per request */
    int64_t apply_at;             /* requests reach the store in order (one connection) */
    int64_t result_at;            /* and results come back in order */
    struct sim_inbox_item *inbox; /* FIFO ring */
    uint32_t inbox_head, inbox_count, inbox_cap;
    struct sim_cas cas[SIM_CAS_INFLIGHT_MAX];
    uint32_t cas_count;
};

/* ---- clients and history ------------------------------------------------------------------- */

#define SIM_ITEMS_MAX 3

enum sim_op_kind {
    SIM_OP_SETUP = 1, /* SKU_CREATE / ACCOUNT_OPEN / DEPOSIT issued before the load */
    SIM_OP_ORDER = 2,
    SIM_OP_PAY = 3,
    SIM_OP_CANCEL = 4,
    SIM_OP_READ = 5,
    SIM_OP_LOCK = 6, /* session open, heartbeat, acquire, release */
};

/* One client operation: what was sent, when, and what came back. */
struct sim_hist {
    uint32_t client;
    uint8_t kind;     /* enum sim_op_kind */
    uint8_t cmd_type; /* enum engine_cmd_type */
    uint32_t part;
    char rid[24];
    char key[24], key2[24], key3[24];
    int64_t num, num2;
    uint8_t items_count;
    uint8_t item_sku[SIM_ITEMS_MAX]; /* cart SKU numbers; 255 = the hot SKU */
    int32_t item_qty[SIM_ITEMS_MAX];
    int64_t invoke_ms, ack_ms;
    uint32_t attempts;
    bool acked;
    uint64_t frontier; /* the oracle's committed end of this partition when acked (reads) */
    struct engine_reply reply;
};

struct sim_client {
    uint32_t id;
    bool busy;
    int64_t hist; /* current operation, -1 none */
    uint32_t attempt;
    uint32_t seq;
    bool setup_done;
    uint32_t setup_step;
};

/* ---- the oracle ---------------------------------------------------------------------------- */

struct sim_oracle_entry {
    bool known;
    uint32_t node;          /* who reported it first */
    struct cluster_entry e; /* data owned */
};

struct sim_oracle {
    struct sim_oracle_entry *entries; /* index i at [i - 1] */
    uint64_t cap, max;
};

/* ---- the world ----------------------------------------------------------------------------- */

struct sim_world {
    struct sim_options opt;
    struct sim_result *res;
    struct sim_rng rng;
    int64_t now;
    uint64_t seq;
    struct sim_ev *heap;
    uint32_t heap_count, heap_cap;
    uint64_t hash;

    uint32_t nodes_count, parts_count, clients_count;
    struct sim_node nodes[SIM_NODES_MAX];
    /* The control plane: one embedded store shared by every node's client, and an observer
     * client (automatic mode) whose watch keeps configs[] equal to the store's partitions for
     * the clients' routing and the checker. */
    struct sm_coord_store *store;
    struct sm_coord *observer;
    struct sm_coord_dir observer_dir;
    uint64_t observer_watch;
    struct cluster_config configs[SIM_PARTITIONS_MAX];
    struct cluster_config placement[SIM_PARTITIONS_MAX]; /* replicas of each partition */
    bool cut[SIM_NODES_MAX][SIM_NODES_MAX];              /* cut[a][b]: a's messages to b are lost */
    bool cut_plane[SIM_NODES_MAX];   /* the node cannot reach the control plane */
    bool cut_clients[SIM_NODES_MAX]; /* clients cannot reach the node */
    bool faults_over;
    bool load_over;
    int64_t end_ms;

    /* fault knobs drawn from the seed */
    uint32_t loss_pm, dup_pm, spike_pm;
    int64_t delay_max_ms, lease_ttl_ms;
    uint32_t coord_loss_pm; /* requests to the control plane, and answers, lost */
    struct cluster_part_config part_cfg;

    struct sim_client clients[SIM_CLIENTS_MAX];
    struct sim_hist *hist;
    uint32_t hist_count, hist_cap;

    struct sim_oracle oracle[SIM_PARTITIONS_MAX];
    bool violated;
    struct cluster_msg *msg; /* decode scratch */
};

/* sim.c */
void sim_schedule(struct sim_world *w, const struct sim_ev *ev);
void sim_fail(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sim_trace(struct sim_world *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A node receives a client's operation (history index h). */
void sim_node_client_request(struct sim_world *w, struct sim_node *n, uint32_t h);

/* plane.c */
/* Sets up the store with the cluster's meta and initial partition configs. 0 or SM_E_NOMEM. */
MUST_USE int sim_plane_init(struct sim_world *w);
void sim_plane_free(struct sim_world *w);
/* Opens a new incarnation's client (and starts its load); closes the old one's. */
MUST_USE int sim_plane_node_open(struct sim_world *w, struct sim_node *n);
void sim_plane_node_close(struct sim_world *w, struct sim_node *n);
/* The node's control plane upkeep at its tick: lease, member key, load, watch, campaign. */
void sim_plane_node_tick(struct sim_world *w, struct sim_node *n);
/* A CAS of partition config c for the node's partition (from_part) or its controller. */
void sim_plane_cas(struct sim_world *w, struct sim_node *n, const struct cluster_config *c,
                   uint32_t part, bool from_part);
/* Before each event: the store's time. After it: requests to apply, results to deliver. */
void sim_plane_time(struct sim_world *w);
void sim_plane_pump(struct sim_world *w);
void sim_plane_apply(struct sim_world *w, const struct sim_ev *ev);
void sim_plane_deliver(struct sim_world *w, const struct sim_ev *ev);
void sim_plane_timeout(struct sim_world *w, const struct sim_ev *ev);
/* Every cut healed: results held by a broken stream flow again. */
void sim_plane_heal(struct sim_world *w);
/* sim.c, called by plane.c: a node learned a partition's config / its members changed. */
void sim_node_config(struct sim_world *w, struct sim_node *n, uint32_t p,
                     const struct cluster_config *c);
int64_t sim_node_now(const struct sim_node *n);

/* workload.c */
void sim_clients_start(struct sim_world *w);
void sim_client_wake(struct sim_world *w, const struct sim_ev *ev);
void sim_client_reply(struct sim_world *w, const struct sim_ev *ev);
bool sim_clients_idle(const struct sim_world *w);
/* Builds the engine command of history entry h (pointers into h's strings). */
void sim_hist_cmd(const struct sim_hist *h, struct engine_cmd *cmd);

/* check.c */
void sim_oracle_commit(struct sim_world *w, uint32_t node, uint32_t part,
                       const struct cluster_entry *e);
void sim_oracle_free(struct sim_world *w);
/* The final checks after the cluster is quiet; records the first violation. */
void sim_check_final(struct sim_world *w);
bool sim_replies_equal(const struct engine_reply *a, const struct engine_reply *b);

#endif
