/*
 * Real etcd servers for tests (Debian etcd-server, /usr/bin/etcd, installed by
 * scripts/install-deps): one or three members on 127.0.0.1, on free ports, in a temporary
 * directory, each stopped by its PID. Readiness is polled (GET /health until it says true),
 * never slept for. Short heartbeats (25 ms, election 250 ms) make 1-second leases possible and
 * keep tests quick.
 */
#ifndef SHARDMART_TESTS_ETCD_PROC_H
#define SHARDMART_TESTS_ETCD_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#define ETCD_PROC_MEMBERS_MAX 3

struct etcd_member {
    pid_t pid;
    int client_port;
    int peer_port;
    char name[16];
    char endpoint[64]; /* http://127.0.0.1:<client_port> */
};

struct etcd_cluster {
    char dir[256]; /* holds <name>/ data directories and <name>.log */
    int members_count;
    struct etcd_member members[ETCD_PROC_MEMBERS_MAX];
};

/* Starts n (1 or 3) members and waits until every one is healthy. Fails the current Criterion
 * test (after stopping what it started) when etcd is missing or does not get ready in 20 s. */
void etcd_cluster_start(struct etcd_cluster *c, int n);
/* SIGTERM (clean) or SIGKILL one member and wait for it; its data stays. */
void etcd_member_stop(struct etcd_cluster *c, int i, bool kill9);
/* Starts a stopped member again on its ports and data; waits until it is healthy. */
void etcd_member_restart(struct etcd_cluster *c, int i);
/* True when GET /health of member i answers {"health":"true"} within timeout_ms. */
bool etcd_member_healthy(const struct etcd_cluster *c, int i, int timeout_ms);
/* A port below the ephemeral range that was free a moment ago (for other servers of a test,
 * e.g. a node's peer listener), drawn as etcd's are. */
int etcd_proc_free_port(void);
/* n such ports, all different. */
void etcd_proc_free_ports(int *ports, int n);
/* The cluster's endpoint list for `--cluster`: "etcd://127.0.0.1:P1,127.0.0.1:P2,...". */
void etcd_cluster_spec(const struct etcd_cluster *c, char *out, size_t cap);
/* Stops every member (SIGKILL) and removes the directory. Safe to call twice. */
void etcd_cluster_stop(struct etcd_cluster *c);

#endif
