/* Counters and the HTTP endpoints of a node (see metrics.h). */
#include "server/metrics.h"

#include <stdio.h>
#include <string.h>

#include "util/error.h"

void server_metrics_batch(struct server_metrics *m, uint32_t n)
{
    ASSERT(n > 0);
    uint32_t bucket = 0;
    while (bucket + 1 < SERVER_BATCH_BUCKETS && (1u << bucket) < n)
        bucket++;
    m->batches++;
    m->batch_buckets[bucket]++;
    m->batch_requests_sum += n;
}

void server_metrics_snapshot_fork(struct server_metrics *m, uint64_t elapsed_ns)
{
    if (elapsed_ns / 1000 > m->snapshot_fork_us_max)
        m->snapshot_fork_us_max = elapsed_ns / 1000;
}

void server_metrics_snapshot_done(struct server_metrics *m, bool ok, uint64_t elapsed_ns)
{
    if (ok)
        m->snapshots_ok++;
    else
        m->snapshots_failed++;
    m->snapshot_last_ms = elapsed_ns / 1000000;
}

void server_metrics_fsync(struct server_metrics *m, uint64_t elapsed_ns)
{
    uint64_t us = elapsed_ns / 1000;
    uint32_t bucket = 0;
    while (bucket + 1 < SERVER_FSYNC_BUCKETS && (16ull << bucket) < us)
        bucket++;
    m->fsync_buckets[bucket]++;
    m->fsync_count++;
    m->fsync_sum_us += us;
}

static void put_metric(struct sm_wbuf *w, const char *name, const char *type, const char *help,
                       uint64_t value)
{
    char line[512];
    int len = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name,
                       type, name, (unsigned long long)value);
    ASSERT(len > 0 && (size_t)len < sizeof line);
    sm_wbuf_put(w, line, (size_t)len);
}

static void put_text(struct sm_wbuf *w, const char *s)
{
    sm_wbuf_put(w, s, strlen(s));
}

/* A power-of-two histogram in Prometheus form: cumulative buckets whose upper bounds are
 * first * 2^b (divided by scale, for seconds), the last one +Inf; then sum and count. */
struct histogram_view {
    const char *name;
    const char *help;
    const uint64_t *buckets;
    uint32_t count;
    uint64_t first; /* upper bound of bucket 0, in the unit counted */
    double scale;   /* unit counted per unit shown: 1 for requests, 1e6 for us -> s */
    double sum;     /* in the unit shown */
    uint64_t total;
};

static void put_histogram(struct sm_wbuf *w, const struct histogram_view *h)
{
    char line[200];
    int len = snprintf(line, sizeof line, "# HELP %s %s\n# TYPE %s histogram\n", h->name, h->help,
                       h->name);
    sm_wbuf_put(w, line, (size_t)len);
    uint64_t cumulative = 0;
    for (uint32_t b = 0; b < h->count; b++) {
        cumulative += h->buckets[b];
        if (b + 1 < h->count)
            len = snprintf(line, sizeof line, "%s_bucket{le=\"%g\"} %llu\n", h->name,
                           (double)(h->first << b) / h->scale, (unsigned long long)cumulative);
        else
            len = snprintf(line, sizeof line, "%s_bucket{le=\"+Inf\"} %llu\n", h->name,
                           (unsigned long long)cumulative);
        sm_wbuf_put(w, line, (size_t)len);
    }
    len = snprintf(line, sizeof line, "%s_sum %.6f\n%s_count %llu\n", h->name, h->sum, h->name,
                   (unsigned long long)h->total);
    sm_wbuf_put(w, line, (size_t)len);
}

static void put_command_counters(struct sm_wbuf *w, const struct node *n)
{
    put_text(w, "# HELP shardmart_commands_total Commands executed, by name.\n"
                "# TYPE shardmart_commands_total counter\n");
    char line[160];
    for (uint32_t i = 0; i < node_command_count(); i++) {
        int len = snprintf(line, sizeof line, "shardmart_commands_total{command=\"%s\"} %llu\n",
                           node_command_name(i), (unsigned long long)n->stats[i].calls);
        sm_wbuf_put(w, line, (size_t)len);
    }
    put_text(w, "# HELP shardmart_command_errors_total Commands answered with an error, by "
                "name.\n# TYPE shardmart_command_errors_total counter\n");
    for (uint32_t i = 0; i < node_command_count(); i++) {
        int len =
            snprintf(line, sizeof line, "shardmart_command_errors_total{command=\"%s\"} %llu\n",
                     node_command_name(i), (unsigned long long)n->stats[i].errors);
        sm_wbuf_put(w, line, (size_t)len);
    }
}

static void render_metrics(const struct node *n, const struct server_metrics *m, struct sm_wbuf *w)
{
    put_metric(w, "shardmart_connections", "gauge", "Open client connections.",
               m->connections_accepted - m->connections_closed);
    put_metric(w, "shardmart_connections_accepted_total", "counter", "Connections accepted.",
               m->connections_accepted);
    put_metric(w, "shardmart_connections_rejected_total", "counter",
               "Connections refused over --maxclients.", m->connections_rejected);
    put_metric(w, "shardmart_connections_timed_out_total", "counter",
               "Connections closed by --idle-timeout-ms.", m->connections_timed_out);
    put_metric(w, "shardmart_requests_total", "counter", "Requests executed (RESP and HTTP).",
               m->requests);
    put_metric(w, "shardmart_unknown_commands_total", "counter", "Requests naming no command.",
               n->unknown_commands);
    put_metric(w, "shardmart_protocol_errors_total", "counter",
               "Connections closed for malformed RESP.", n->protocol_errors);
    put_metric(w, "shardmart_read_bytes_total", "counter", "Bytes read from clients.",
               m->bytes_read);
    put_metric(w, "shardmart_written_bytes_total", "counter", "Bytes written to clients.",
               m->bytes_written);
    put_metric(w, "shardmart_snapshots_total", "counter", "Background snapshots written.",
               m->snapshots_ok);
    put_metric(w, "shardmart_snapshot_failures_total", "counter", "Background snapshots failed.",
               m->snapshots_failed);
    put_metric(w, "shardmart_snapshot_pause_max_microseconds", "gauge",
               "Longest loop pause a snapshot caused (the fork).", m->snapshot_fork_us_max);
    put_metric(w, "shardmart_snapshot_last_milliseconds", "gauge",
               "Time the last snapshot took to write.", m->snapshot_last_ms);
    put_command_counters(w, n);
    put_histogram(w, &(struct histogram_view){
                         .name = "shardmart_batch_requests",
                         .help = "Requests executed per batch (one group commit).",
                         .buckets = m->batch_buckets,
                         .count = SERVER_BATCH_BUCKETS,
                         .first = 1,
                         .scale = 1,
                         .sum = (double)m->batch_requests_sum,
                         .total = m->batches,
                     });
    put_histogram(w, &(struct histogram_view){
                         .name = "shardmart_fsync_seconds",
                         .help = "Write + fdatasync of one batch.",
                         .buckets = m->fsync_buckets,
                         .count = SERVER_FSYNC_BUCKETS,
                         .first = 16,
                         .scale = 1e6,
                         .sum = (double)m->fsync_sum_us / 1e6,
                         .total = m->fsync_count,
                     });
}

int server_http_handle(const struct node *n, const struct server_metrics *m,
                       const struct http_request *req, struct sm_wbuf *out)
{
    bool keep = req->keep_alive;
    if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
        static const char msg[] = "only GET and HEAD are served here\n";
        return http_response(out, 405, "text/plain", msg, sizeof msg - 1, keep);
    }
    struct sm_wbuf body;
    sm_wbuf_init(&body);
    int status = 200;
    const char *type = "text/plain";
    if (strcmp(req->path, "/healthz") == 0) {
        put_text(&body, "ok\n");
    } else if (strcmp(req->path, "/readyz") == 0) {
        put_text(&body, "ready\n");
    } else if (strcmp(req->path, "/metrics") == 0) {
        type = "text/plain; version=0.0.4";
        render_metrics(n, m, &body);
    } else {
        status = 404;
        put_text(&body, "not found: try /healthz, /readyz or /metrics\n");
    }
    int rc;
    if (body.failed)
        rc = SM_E_NOMEM;
    else if (req->method == HTTP_HEAD)
        rc = http_response_head(out, status, type, body.len, keep);
    else
        rc = http_response(out, status, type, body.data, body.len, keep);
    sm_wbuf_free(&body);
    return rc;
}
