/*
 * The transport between nodes (src/server/peer.c): messages per second and MB/s from one
 * peer_net to another in the same process, over loopback TCP, on one libuv loop (so one core
 * does the sending, the framing, the CRCs and the receiving). The peer in the same run is a
 * plain AF_UNIX socketpair moving the same bytes with memcpy in and out and no framing, checksum
 * or event loop: the cost of the kernel copy alone, which the transport cannot beat. The ratio
 * is what framing, CRC32C, TCP and libuv cost on top.
 *
 * Prints the median of RUNS runs of each, for 1 KiB and 64 KiB messages. The machine is shared
 * and noisy: compare the ratios, and rerun before believing a change of a few percent.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/peer.h"
#include "util/assert.h"
#include "util/error.h"
#include "bench_util.h"

#define RUNS        5
#define TOTAL_BYTES (64u * 1024 * 1024) /* per run: each run takes ~0.05-0.5 s */
#define CHUNK_BYTES (256 * 1024)        /* the baseline's write and read size */

struct sink {
    uint64_t count, bytes;
    uint8_t last; /* touch the bytes, as a receiver would */
};

static void on_message(void *ctx, uint32_t from, const uint8_t *bytes, size_t len)
{
    (void)from;
    struct sink *s = ctx;
    s->count++;
    s->bytes += len;
    if (len)
        s->last ^= bytes[len - 1];
}

/* Seconds for `count` messages of `size` bytes from one peer_net to another. */
static double run_peer(size_t size, uint32_t count)
{
    uv_loop_t loop;
    ASSERT(uv_loop_init(&loop) == 0);
    struct sink rx = {0}, tx = {0};
    struct peer_net *a = NULL, *b = NULL;
    struct peer_net_config cfg = {
        .loop = &loop, .bind_host = "127.0.0.1", .cluster_id = 1, .on_message = on_message};
    cfg.self_node = 1;
    cfg.ctx = &tx;
    ASSERT(peer_net_start(&a, &cfg) == 0);
    cfg.self_node = 2;
    cfg.ctx = &rx;
    ASSERT(peer_net_start(&b, &cfg) == 0);
    ASSERT(peer_net_set_address(a, 2, "127.0.0.1", peer_net_port(b)) == 0);
    uint8_t *msg = malloc(size);
    ASSERT(msg);
    memset(msg, 0xa5, size);

    double t0 = bench_now_s();
    uint32_t sent = 0;
    while (sent < count) {
        int rc = peer_net_send(a, 2, msg, size);
        if (rc == SM_E_BUSY) {
            uv_run(&loop, UV_RUN_ONCE); /* the queue is full: let it drain */
            continue;
        }
        ASSERT(rc == 0);
        sent++;
    }
    while (rx.count < count)
        uv_run(&loop, UV_RUN_ONCE);
    double dt = bench_now_s() - t0;

    ASSERT(rx.bytes == (uint64_t)size * count);
    peer_net_stop(a);
    peer_net_stop(b);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT(uv_loop_close(&loop) == 0);
    free(msg);
    return dt;
}

/* Seconds for the same bytes through a socketpair: memcpy messages into a chunk, write it, read
 * it, memcpy messages out. Non-blocking, one thread, alternating, as the loop does. */
static double run_socketpair(size_t size, uint32_t count)
{
    int sv[2];
    ASSERT(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
    for (int i = 0; i < 2; i++)
        ASSERT(fcntl(sv[i], F_SETFL, O_NONBLOCK) == 0);
    uint8_t *msg = malloc(size), *out = malloc(CHUNK_BYTES), *in = malloc(CHUNK_BYTES);
    uint8_t *copy = malloc(size);
    ASSERT(msg && out && in && copy);
    memset(msg, 0xa5, size);
    uint64_t total = (uint64_t)size * count, written = 0, got = 0;
    size_t out_len = 0, out_off = 0, copy_len = 0;
    uint8_t last = 0;

    double t0 = bench_now_s();
    while (got < total) {
        /* Fill the chunk with whole or partial messages, then write what the socket takes. */
        while (out_len < CHUNK_BYTES && written + out_len < total) {
            size_t at = (size_t)((written + out_len) % size);
            size_t n = size - at;
            if (n > CHUNK_BYTES - out_len)
                n = CHUNK_BYTES - out_len;
            memcpy(out + out_len, msg + at, n);
            out_len += n;
        }
        while (out_off < out_len) {
            ssize_t w = write(sv[0], out + out_off, out_len - out_off);
            if (w < 0) {
                ASSERT(errno == EAGAIN);
                break;
            }
            out_off += (size_t)w;
        }
        if (out_off == out_len) {
            written += out_len;
            out_len = out_off = 0;
        }
        for (;;) {
            ssize_t r = read(sv[1], in, CHUNK_BYTES);
            if (r < 0) {
                ASSERT(errno == EAGAIN);
                break;
            }
            /* Reassemble messages, as a receiver must to hand them over whole. */
            for (size_t off = 0; off < (size_t)r;) {
                size_t n = size - copy_len;
                if (n > (size_t)r - off)
                    n = (size_t)r - off;
                memcpy(copy + copy_len, in + off, n);
                copy_len += n;
                off += n;
                if (copy_len == size) {
                    last ^= copy[size - 1];
                    copy_len = 0;
                }
            }
            got += (uint64_t)r;
        }
    }
    double dt = bench_now_s() - t0;
    ASSERT(got == total && (last == 0 || last == 0xa5));
    close(sv[0]);
    close(sv[1]);
    free(msg);
    free(out);
    free(in);
    free(copy);
    return dt;
}

static void measure(size_t size)
{
    uint32_t count = (uint32_t)(TOTAL_BYTES / size);
    double peer[RUNS], pair[RUNS];
    for (int r = 0; r < RUNS; r++) {
        peer[r] = run_peer(size, count);
        pair[r] = run_socketpair(size, count);
    }
    double tp = bench_median(peer, RUNS), ts = bench_median(pair, RUNS);
    double mb = (double)size * count / 1e6;
    printf("%-9zu %-28s %14.0f %10.0f %9.2fx\n", size, "peer_net -> peer_net (TCP)", count / tp,
           mb / tp, ts / tp);
    printf("%-9zu %-28s %14.0f %10.0f %9.2fx\n", size, "socketpair memcpy (baseline)", count / ts,
           mb / ts, 1.0);
}

int main(void)
{
    printf("peer transport: %u MiB per run, median of %d runs, one loop thread for both ends\n",
           TOTAL_BYTES >> 20, RUNS);
    printf("%-9s %-28s %14s %10s %10s\n", "msg bytes", "path", "messages/s", "MB/s", "vs base");
    measure(1024);
    measure(64 * 1024);
    return 0;
}
