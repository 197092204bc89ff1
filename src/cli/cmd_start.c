/*
 * `shardmart start`: one node with its flags. Every limit of the server is a flag here with a
 * default from src/limits.h, and every flag is checked against its bounds before anything
 * starts, so a typo is a one-line error and exit code 2, never a node running with a surprise.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "limits.h"
#include "server/server.h"

const char cli_start_usage[] =
    "usage: shardmart start [flags]\n"
    "Starts one node: RESP (any Redis client) and HTTP (/healthz, /readyz, /metrics).\n"
    "\n"
    "  --bind HOST            address to listen on (default 127.0.0.1)\n"
    "  --port N               RESP port (default 7379; 0 = any free port)\n"
    "  --http-port N          HTTP port (default 7380; 0 = any free port; -1 = none)\n"
    "  --data DIR             data directory (default ./data)\n"
    "  --requirepass PASS     clients must AUTH with PASS first (at most 512 bytes)\n"
    "  --maxclients N         connections at once (default 10000, 1..1000000)\n"
    "  --pipeline-max N       requests one connection may have in one batch (default 1024,\n"
    "                         1..65536)\n"
    "  --output-max BYTES     reply bytes waiting for a client before it is no longer read\n"
    "                         (default 8388608, 65536..1073741824)\n"
    "  --idle-timeout-ms N    close connections silent this long (default 0 = never)\n"
    "  --partitions N         partitions of the key space (default 256, 1..65536)\n"
    "  --ready-file PATH      write \"<resp port> <http port>\" there once listening\n"
    "  --fsync MODE           always (default): one fdatasync per batch before any reply;\n"
    "                         every:<ms>: replies after the write, fdatasync at most <ms>\n"
    "                         apart (a crash of the machine loses up to <ms> of writes,\n"
    "                         or up to --tick-ms when idle);\n"
    "                         never: benchmarks only, the OS decides\n"
    "  --repair               set a damaged log aside (a copy is kept) instead of refusing\n"
    "                         to start\n"
    "  --tick-ms N            how often engine time advances (default 100, 1..10000)\n"
    "  --segment-bytes N      log segment size (default 67108864, 4096..1073741824)\n"
    "  --no-preallocate       grow segments instead of zero-filling them ahead (each fsync\n"
    "                         then also commits the file size: slower)\n"
    "  --batch-wait-us N      how long a batch may wait for the clients the last one\n"
    "                         answered, so one fsync carries them all (default 0 =\n"
    "                         off, at most 10000; 200 helps a saturated machine)\n"
    "  --snapshot-every N     records between background snapshots (default 1000000;\n"
    "                         0 = never): recovery replays at most about this many\n"
    "  --skus-max N           SKUs per partition (default 65536)\n"
    "  --orders-max N         open and retained orders per partition (default 1000000)\n"
    "  --accounts-max N       accounts per partition (default 65536)\n"
    "  --holds-max N          holds per partition (default 65536)\n"
    "  --request-ids-max N    request ids remembered per partition (default 1000000)\n"
    "Cluster mode (docs/cluster.md):\n"
    "  --cluster etcd://H:P[,H:P...]  join the cluster whose control plane is this etcd\n"
    "  --node-id N            this node's id, unique in the cluster (0..4095)\n"
    "  --advertise HOST:PORT  where other nodes reach this one\n"
    "  --zone Z               failure zone (replicas go to distinct zones when possible)\n"
    "  --replicas N           copies of each partition (default 3, 1..7; the first node's\n"
    "                         value is the cluster's, others must match)\n"
    "  --cluster-name NAME    the cluster's directory in etcd (default shardmart)\n"
    "  --lease-ms N           membership lease (default 1000, 100..60000)\n"
    "Tables are allocated at start as address space; memory is used as rows fill.\n";

/* Parses a decimal integer within [lo, hi]; false for anything else. */
static bool parse_range(const char *s, long long lo, long long hi, long long *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

struct num_flag {
    const char *name;
    long long lo, hi;
};

static const struct num_flag num_flags[] = {
    {"--port", 0, 65535},
    {"--http-port", -1, 65535},
    {"--maxclients", 1, SM_CLIENTS_MAX},
    {"--pipeline-max", 1, SM_PIPELINE_MAX},
    {"--output-max", SM_OUTPUT_BYTES_MIN, SM_OUTPUT_BYTES_MAX},
    {"--idle-timeout-ms", 0, 24LL * 3600 * 1000},
    {"--partitions", 1, SM_PARTITIONS_MAX},
    {"--tick-ms", 1, 10000},
    {"--batch-wait-us", 0, SM_BATCH_WAIT_US_MAX},
    {"--snapshot-every", 0, 1LL << 40},
    {"--segment-bytes", SM_WAL_SEGMENT_BYTES_MIN, SM_WAL_SEGMENT_BYTES_MAX},
    {"--skus-max", 1, 1LL << 30},
    {"--orders-max", 1, 1LL << 30},
    {"--accounts-max", 1, 1LL << 30},
    {"--holds-max", 1, 1LL << 30},
    {"--request-ids-max", 1, 1LL << 30},
    {"--node-id", 0, SM_CLUSTER_NODES_MAX - 1},
    {"--replicas", 1, SM_REPLICAS_MAX},
    {"--lease-ms", 100, 60000},
};

static void set_num(struct server_config *cfg, const char *name, long long v)
{
    if (strcmp(name, "--port") == 0)
        cfg->resp_port = (int)v;
    else if (strcmp(name, "--http-port") == 0)
        cfg->http_port = (int)v;
    else if (strcmp(name, "--maxclients") == 0)
        cfg->clients_max = (uint32_t)v;
    else if (strcmp(name, "--pipeline-max") == 0)
        cfg->pipeline_max = (uint32_t)v;
    else if (strcmp(name, "--output-max") == 0)
        cfg->output_bytes_max = (uint64_t)v;
    else if (strcmp(name, "--idle-timeout-ms") == 0)
        cfg->idle_timeout_ms = (uint32_t)v;
    else if (strcmp(name, "--partitions") == 0)
        cfg->partitions = (uint32_t)v;
    else if (strcmp(name, "--tick-ms") == 0)
        cfg->tick_ms = (uint32_t)v;
    else if (strcmp(name, "--batch-wait-us") == 0)
        cfg->batch_wait_us = (uint32_t)v;
    else if (strcmp(name, "--snapshot-every") == 0)
        cfg->snapshot_every = (uint64_t)v;
    else if (strcmp(name, "--segment-bytes") == 0)
        cfg->segment_bytes = (uint64_t)v;
    else if (strcmp(name, "--skus-max") == 0)
        cfg->engine.skus_max = (uint32_t)v;
    else if (strcmp(name, "--orders-max") == 0)
        cfg->engine.orders_max = cfg->engine.limit_rows_max = (uint32_t)v;
    else if (strcmp(name, "--accounts-max") == 0)
        cfg->engine.accounts_max = (uint32_t)v;
    else if (strcmp(name, "--holds-max") == 0)
        cfg->engine.holds_max = (uint32_t)v;
    else if (strcmp(name, "--request-ids-max") == 0)
        cfg->engine.request_ids_max = (uint32_t)v;
    else if (strcmp(name, "--node-id") == 0)
        cfg->node_id = (uint32_t)v;
    else if (strcmp(name, "--replicas") == 0)
        cfg->replicas = (uint32_t)v;
    else if (strcmp(name, "--lease-ms") == 0)
        cfg->lease_ms = v;
}

/* --fsync always | every:<ms> | never */
static bool parse_fsync(struct server_config *cfg, const char *value)
{
    long long ms;
    if (!value)
        return false;
    if (strcmp(value, "always") == 0)
        cfg->sync_mode = WAL_SYNC_ALWAYS;
    else if (strcmp(value, "never") == 0)
        cfg->sync_mode = WAL_SYNC_NEVER;
    else if (strncmp(value, "every:", 6) == 0 && parse_range(value + 6, 1, 60000, &ms)) {
        cfg->sync_mode = WAL_SYNC_EVERY;
        cfg->fsync_every_ms = (uint32_t)ms;
    } else
        return false;
    return true;
}

/* One flag and its value at argv[i], argv[i+1]. 1 when consumed, 0 when unknown, -1 when bad. */
static int parse_flag(struct server_config *cfg, const char *flag, const char *value)
{
    for (size_t k = 0; k < sizeof num_flags / sizeof num_flags[0]; k++) {
        const struct num_flag *f = &num_flags[k];
        if (strcmp(flag, f->name) != 0)
            continue;
        long long v;
        if (!parse_range(value, f->lo, f->hi, &v)) {
            fprintf(stderr, "shardmart start: %s needs an integer in %lld..%lld, got '%s'\n", flag,
                    f->lo, f->hi, value ? value : "");
            return -1;
        }
        set_num(cfg, flag, v);
        return 1;
    }
    if (strcmp(flag, "--fsync") == 0) {
        if (parse_fsync(cfg, value))
            return 1;
        fprintf(stderr,
                "shardmart start: --fsync takes always, every:<ms> (1..60000) or never, "
                "got '%s'\n",
                value ? value : "");
        return -1;
    }
    const char **dst = NULL;
    if (strcmp(flag, "--bind") == 0)
        dst = &cfg->bind_host;
    else if (strcmp(flag, "--data") == 0)
        dst = &cfg->data_dir;
    else if (strcmp(flag, "--requirepass") == 0)
        dst = &cfg->password;
    else if (strcmp(flag, "--ready-file") == 0)
        dst = &cfg->ready_file;
    else if (strcmp(flag, "--cluster") == 0)
        dst = &cfg->cluster_spec;
    else if (strcmp(flag, "--cluster-name") == 0)
        dst = &cfg->cluster_name;
    else if (strcmp(flag, "--advertise") == 0)
        dst = &cfg->advertise;
    else if (strcmp(flag, "--zone") == 0)
        dst = &cfg->zone;
    if (!dst)
        return 0;
    if (!value || !*value) {
        fprintf(stderr, "shardmart start: %s needs a value\n", flag);
        return -1;
    }
    if (dst == &cfg->password && strlen(value) > SM_PASSWORD_BYTES_MAX) {
        fprintf(stderr, "shardmart start: --requirepass longer than %d bytes\n",
                SM_PASSWORD_BYTES_MAX);
        return -1;
    }
    *dst = value;
    return 1;
}

int cli_start(int argc, char **argv)
{
    struct server_config cfg;
    server_config_defaults(&cfg);
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--repair") == 0) {
            cfg.repair = true;
            continue;
        }
        if (strcmp(argv[i], "--no-preallocate") == 0) {
            cfg.preallocate = false;
            continue;
        }
        int rc = parse_flag(&cfg, argv[i], i + 1 < argc ? argv[i + 1] : NULL);
        if (rc < 0)
            return 2;
        if (rc == 0) {
            fprintf(stderr, "shardmart start: unknown flag '%s' (see 'shardmart start --help')\n",
                    argv[i]);
            return 2;
        }
        i++;
    }
    bool node_id_set = false;
    for (int i = 0; i < argc; i++)
        node_id_set = node_id_set || strcmp(argv[i], "--node-id") == 0;
    if (cfg.cluster_spec && (!node_id_set || !cfg.advertise)) {
        fprintf(stderr, "shardmart start: --cluster needs --node-id and --advertise\n");
        return 2;
    }
    if (!cfg.cluster_spec && (node_id_set || cfg.advertise)) {
        fprintf(stderr, "shardmart start: --node-id and --advertise need --cluster\n");
        return 2;
    }
    if (cfg.resp_port != 0 && cfg.resp_port == cfg.http_port) {
        fprintf(stderr, "shardmart start: --port and --http-port must differ\n");
        return 2;
    }
    return server_run(&cfg) == 0 ? 0 : 1;
}
