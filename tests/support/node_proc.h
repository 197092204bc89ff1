/*
 * Starts a real `shardmart start` process for integration tests: on loopback, on ports the OS
 * picks (--port 0, read back from --ready-file), in a temporary data directory, and stops it by
 * its PID. Readiness is polled, never slept for.
 */
#ifndef SHARDMART_TESTS_NODE_PROC_H
#define SHARDMART_TESTS_NODE_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct node_proc {
    pid_t pid;
    int resp_port;
    int http_port;
    char dir[256];      /* temporary directory holding data/, ready, out */
    char data_dir[300]; /* dir/data unless the caller chose another */
};

/* Starts a node with the extra flags (NULL-terminated list, may be NULL) and waits until it
 * listens. Returns 0, or -1 when it exited or did not get ready within 20 s (its output is
 * printed). When data_dir is not NULL the node uses it instead of a fresh one. */
int node_proc_start(struct node_proc *p, const char *data_dir, const char *const *flags);

/* The shardmart binary the tests run ($SHARDMART_BIN, else ./shardmart). */
const char *node_proc_binary(void);

/* Runs the binary with argv (NULL-terminated, without the program name) to completion;
 * returns its exit status and copies up to out_cap-1 bytes of stdout+stderr into out. */
int node_proc_run(const char *const *argv, char *out, size_t out_cap);

/* SIGTERM, then waits; returns the exit status (or 128+signal). Removes the directory unless
 * keep_dir. */
int node_proc_stop(struct node_proc *p, bool keep_dir);

/* SIGKILL, then waits. Keeps the directory (crash tests restart on it). */
void node_proc_kill(struct node_proc *p);

/* A TCP connection to 127.0.0.1:port with a receive timeout of timeout_ms; -1 on failure. */
int node_proc_connect(int port, int timeout_ms);

/* Sends all of buf; false on failure. */
bool node_proc_send(int fd, const void *buf, size_t len);

/* Reads until `expect` bytes arrived, the peer closed, or the timeout; returns bytes read. */
size_t node_proc_recv(int fd, void *buf, size_t expect);

/* True when the peer closed the connection within timeout_ms (reads and drops data). */
bool node_proc_closed(int fd, int timeout_ms);

#endif
