/*
 * Every bound in shardmart, in one place, each with its reason (DESIGN.md section 9). A limit that
 * is passed is a clear error reply, never an abort; each one has a test that passes it.
 * Relations between limits are checked at compile time at the bottom of this file.
 *
 * Layers add their own bounds here, in their own section, rather than in private headers, so that
 * an operator can read the whole envelope of the system in one file.
 */
#ifndef SHARDMART_LIMITS_H
#define SHARDMART_LIMITS_H

/* ---- keys and ids -------------------------------------------------------------------------- */

/* A key, SKU, order id, account id, lock name or request id: 1..128 bytes. Long enough for a
 * UUID with a prefix, short enough that an index entry stays in two cache lines. */
#define SM_KEY_BYTES_MAX 128

/* ---- placement (src/ring/) ----------------------------------------------------------------- */

/* Partitions per cluster: fixed at creation; 2^16 lets a partition number fit in 16 bits of an
 * order id and keeps the placement table (P x R node indexes) small. */
#define SM_PARTITIONS_MAX 65536
/* The default partition count: enough that 1.05x balance holds up to ~16 nodes at R=3. */
#define SM_PARTITIONS_DEFAULT 256
/* Replicas per partition: 1..7; beyond that every write waits on too many fsyncs to be useful. */
#define SM_REPLICAS_MAX     7
#define SM_REPLICAS_DEFAULT 3
/* The placement library stands alone, so its other bounds live in include/shardmart/ring.h;
 * ring.c checks at compile time that these copies agree. A node id is 1..64 bytes (host:port or
 * a prefixed UUID); a ring holds at most 4096 nodes (the placement table stores 16-bit node
 * indexes) and 2^22 points (48 MiB with its index); a weight is 1..65535. */
#define SM_NODE_ID_BYTES_MAX 64
#define SM_RING_NODES_MAX    4096
#define SM_RING_POINTS_MAX   4194304u /* 2^22 */
#define SM_RING_WEIGHT_MAX   65535

/* ---- ketama mode (src/ring/ketama.c, include/shardmart/ketama.h) --------------------------- */

/* Servers in one ketama continuum. libmemcached aborts past 100; 1024 leaves room for larger
 * twemproxy pools while a continuum (at most 164 points of 8 bytes per server) stays under
 * 1.4 MB and every count fits comfortably in 32 bits. */
#define SM_KETAMA_SERVERS_MAX 1024
/* A memcached host name: libmemcached stores it in char[NI_MAXHOST] (1025 bytes with the NUL), so
 * 1024 bytes is the longest name it accepts, and we accept the same. */
#define SM_KETAMA_HOST_BYTES_MAX 1024

/* ---- orders -------------------------------------------------------------------------------- */

/* Items per order: 1..64. A cart larger than that is several orders; the bound keeps a prepared
 * order's hold list on the stack and its record small. */
#define SM_ORDER_ITEMS_MAX 64

/* ---- locks (src/engine/locks.h) ------------------------------------------------------------ */

/* Session TTL, grant lease and wait timeout: 1 ms .. 1 day. A lease longer than a day is a lock
 * nobody will release; the bound also keeps now + duration far from int64 overflow. */
#define SM_LOCK_TTL_MS_MAX (24LL * 60 * 60 * 1000)
/* Reentrant acquisitions of one exclusive lock by its holder. Code that nests deeper than this is
 * looping; Java's ReentrantLock stops at 2^31, we stop far earlier to catch the bug. */
#define SM_LOCK_REENTRY_MAX 65535
/* Permits of one semaphore. A permit id is (log index << 16 | n) with n < 2^16 the permit's rank
 * among those granted to that semaphore in one record, so N must fit in 16 bits. */
#define SM_LOCK_PERMITS_MAX 65535
/* Log indexes the lock service accepts: 2^48 - 1, so that index << 16 fits a permit id. At a
 * million records per second per partition that is about nine years of one partition's log. */
#define SM_LOCK_INDEX_MAX ((1ULL << 48) - 1)

/* ---- engine (src/engine/) ------------------------------------------------------------------ */

/* Quantity of one order item: 1..10^9. Stock counts are int64; bounding an item keeps a 64-item
 * order's quantity and price * quantity sums far from overflow, and an item in 32 bits. */
#define SM_ORDER_ITEM_QUANTITY_MAX 1000000000
/* Payment deadline and hold lifetime: at most 30 days of log time; longer is a client bug. */
#define SM_ENGINE_TTL_MS_MAX (30LL * 24 * 3600 * 1000)
/* The log's stamped time: 0..2^62 ms. Real time is ~2^41 ms since 1970; the bound leaves every
 * deadline and retention sum far from overflow. */
#define SM_ENGINE_TIME_MS_MAX (1LL << 62)
/* Rows in any engine table: slot numbers are 32-bit with the top bit tagging holds in timers. */
#define SM_ENGINE_ROWS_MAX 0x7fffffffu
/* One record: type, request id, three keys, three numbers and 64 items of a 128-byte SKU each. */
#define SM_ENGINE_RECORD_BYTES_MAX 16384
/* An error message: a SKU name (128 bytes) or a state name, with room to spare. */
#define SM_ENGINE_MESSAGE_BYTES_MAX 160
/* Fields in one read reply (an order, a SKU, the stats). */
#define SM_ENGINE_REPLY_FIELDS_MAX 16
/* ---- protocol and connections (src/proto/, src/server/) ------------------------------------ */

/* One request, all arguments together: 1 MiB. Redis allows 512 MiB per bulk; a trading command
 * never needs more than a few KiB, and a small bound keeps a bad client from eating memory. */
#define SM_REQUEST_BYTES_MAX (1024 * 1024)
/* Arguments in one command: an order of 64 items with their quantities and options fits. */
#define SM_REQUEST_ARGS_MAX 256

/* RESP replies read by our own tools (src/proto/resp.h): nesting depth and one bulk string.
 * Depth 32 is far more than any reply we send (two levels) and bounds the parser's stack;
 * 512 MiB is Redis's own proto-max-bulk-len default, so a reply a real server sends is accepted. */
#define SM_RESP_REPLY_DEPTH_MAX      32
#define SM_RESP_REPLY_BULK_BYTES_MAX (512L * 1024 * 1024)

/* HTTP/1.1 (src/proto/http.h) serves probes, metrics and a small JSON API, never uploads.
 * Request line + headers: 8 KiB (nginx's large_client_header_buffers default) -> 431.
 * Request target: 2 KiB, enough for any API path with its query -> 414.
 * Header lines: 32; curl sends 3, browsers about 15 -> 431.
 * Body: 64 KiB, a JSON order of 64 items is about 4 KiB -> 413. */
#define SM_HTTP_HEAD_BYTES_MAX   8192
#define SM_HTTP_TARGET_BYTES_MAX 2048
#define SM_HTTP_HEADERS_MAX      32
#define SM_HTTP_BODY_BYTES_MAX   (64 * 1024)

/* ---- the node and its server (src/node/, src/server/) ------------------------------------ */

/* Clients connected at once (--maxclients): 10,000 by default, like Redis; at most 1,000,000,
 * since each costs a read buffer that grows to SM_REQUEST_BYTES_MAX while a request arrives. */
#define SM_CLIENTS_DEFAULT 10000
#define SM_CLIENTS_MAX     1000000
/* Requests one connection may have parsed but not yet answered (--pipeline-max). Past it the
 * server stops reading that connection until replies drain: one client cannot fill a batch. */
#define SM_PIPELINE_DEFAULT 1024
#define SM_PIPELINE_MAX     65536
/* Reply bytes waiting for a client that does not read (--output-max): reading it stops at this
 * mark (backpressure) and resumes when it drains. 8 MiB covers any pipeline of our replies. */
#define SM_OUTPUT_BYTES_DEFAULT (8 * 1024 * 1024)
#define SM_OUTPUT_BYTES_MIN     (64 * 1024)
#define SM_OUTPUT_BYTES_MAX     (1024 * 1024 * 1024)
/* The gathering window (--batch-wait-us, src/server/server.c gather_wait): how long a batch may
 * wait for the clients the previous batch answered to send again, so one fsync carries them all.
 * Shorter than one fdatasync here (0.34-0.39 ms quiet), which it saves; 0 turns it off; at most
 * 10 ms, past which a window costs more latency than any fsync it could save. Off by default:
 * on a quiet machine it cost throughput (bench/peers/run, docs/benchmarks.md); it helped only
 * while the machine was saturated. */
#define SM_BATCH_WAIT_US_DEFAULT 0
#define SM_BATCH_WAIT_US_MAX     10000
/* A connection silent this long is closed (--idle-timeout-ms, 0 = never). */
#define SM_IDLE_TIMEOUT_MS_DEFAULT 0
/* A client name (CLIENT SETNAME) and a password (--requirepass, AUTH). */
#define SM_CLIENT_NAME_BYTES_MAX 64
#define SM_PASSWORD_BYTES_MAX    512

/* Threads that load a snapshot's partitions at a node's start (store_config.load_threads; 0 =
 * one per online CPU up to this). Partitions are independent engines, so loading scales with
 * cores; past 64 the threads would outnumber the cores of any machine this runs on. */
#define SM_STORE_LOAD_THREADS_MAX 64

/* ---- cross-partition transactions (src/node/txn.c) ----------------------------------------- */

/* Transaction rows per partition, coordinated and participating together: 16384. A row lives
 * from prepare until every participant acknowledged the decision (for an order: until it is
 * paid, cancelled or expired), so this bounds the open cross-partition orders one partition
 * coordinates; then it stays as the remembered outcome of its request id until its slot is
 * needed. New transactions past the bound are -BUSY; a prepare that finds no room votes no
 * (BUSY). A partition's rows (about 300 bytes each) and their hash index (384 KiB) are
 * allocated only once it holds a row. */
#define SM_TXN_ROWS_MAX 16384
/* Participants of one transaction: an order's remote partitions (at most one per item) or the
 * two legs of a payment; the bound lets a row keep its votes and acknowledgements in a u64. */
#define SM_TXN_LEGS_MAX SM_ORDER_ITEMS_MAX
/* A coordinator that has not heard every vote this long after it began decides abort (presumed
 * abort: nothing was promised yet). 10 s of log time is far beyond a batch or a restart of a
 * node, short enough that a stuck prepare does not keep stock reserved for long. */
#define SM_TXN_PREPARE_TIMEOUT_MS 10000
/* Messages not yet answered (prepare without vote, decision without acknowledgement, a query of
 * a late decision) are sent again every this many ms of log time, and after a restart. */
#define SM_TXN_RESEND_MS 1000
/* A cross-partition order's payment deadline: at most 15 days, half the engine's bound, so the
 * holds in other partitions (prepared for SM_ENGINE_TTL_MS_MAX) outlive the order by 15 days of
 * log time and only the coordinator's decision ends them. */
#define SM_TXN_ORDER_TTL_MS_MAX (SM_ENGINE_TTL_MS_MAX / 2)
/* Encoded messages waiting for the next batch (the outbox): every row can have at most one
 * message per leg in flight, so this is only a guard against a bug; a message past it is
 * dropped and sent again by the resend timer. */
#define SM_TXN_OUTBOX_MAX (4 * SM_TXN_ROWS_MAX)

/* ---- write-ahead log and snapshots (src/wal/) ---------------------------------------------- */

/* One record's payload: a whole request plus the engine's stamping fits, with room to spare.
 * A per-log bound below this can be configured (tests use small ones). */
#define SM_WAL_RECORD_PAYLOAD_BYTES_MAX (2 * 1024 * 1024)
/* A segment file: at least 4 KiB (tests roll over every few records), at most 1 GiB so that
 * offsets stay small and one damaged segment never costs more than that to scan or to copy
 * aside in repair mode. The default, 64 MiB, rolls over about once a second at full speed. */
#define SM_WAL_SEGMENT_BYTES_MIN     (4 * 1024)
#define SM_WAL_SEGMENT_BYTES_MAX     (1024 * 1024 * 1024)
#define SM_WAL_SEGMENT_BYTES_DEFAULT (64 * 1024 * 1024)
/* Segments alive at once: the segment table is allocated at open. 16384 x 64 MiB = 1 TiB of
 * log between snapshots is far more than a partition ever keeps. */
#define SM_WAL_SEGMENTS_MAX 16384
/* The group-commit buffer: the bytes of one batch, allocated twice at open (one being written
 * while the next fills). A batch must fit in half a segment, so a batch never spans more than
 * one segment boundary. 4 MiB is about 40,000 small records: more than one fsync ever waits on. */
#define SM_WAL_BATCH_BYTES_MIN     (1024)
#define SM_WAL_BATCH_BYTES_MAX     (256 * 1024 * 1024)
#define SM_WAL_BATCH_BYTES_DEFAULT (4 * 1024 * 1024)
/* A snapshot's payload: 16 GiB, well above 10 million orders, far below what a node can load. */
#define SM_WAL_SNAPSHOT_BYTES_MAX (16ull * 1024 * 1024 * 1024)
/* Snapshots kept: the newest N (so a corrupt newest one falls back to the one before). */
#define SM_WAL_SNAPSHOTS_KEEP_MAX     16
#define SM_WAL_SNAPSHOTS_KEEP_DEFAULT 2
/* A data directory path: file names are appended to it in fixed buffers. */
#define SM_WAL_DIR_BYTES_MAX 3072
/* Zeros written per call when preallocating a segment or zeroing a torn tail: 1 MiB amortises
 * the syscall (64 per 64 MiB segment) and is one static zero buffer, so it costs no heap. */
#define SM_WAL_ZERO_CHUNK_BYTES (1024 * 1024)

/* The partition log (src/wal/plog.c), one shared log of every partition a node hosts:
 * partitions of one node, the same bound as the cluster's partitions. */
#define SM_PLOG_PARTITIONS_MAX SM_PARTITIONS_MAX
/* A partition's entry and snapshot indexes: 2^62, a million entries a second for 146,000 years,
 * and far enough from 2^64 that last + 1 never wraps, whatever a damaged log says. */
#define SM_PLOG_INDEX_MAX (1ull << 62)
/* One entry's payload: a wal record less the 16-byte partition head in front of it. */
#define SM_PLOG_ENTRY_BYTES_MAX (SM_WAL_RECORD_PAYLOAD_BYTES_MAX - 16)
/* One partition snapshot file: read whole into memory at recovery, so bounded like a snapshot
 * shipped between replicas (SM_CLUSTER_SNAPSHOT_BYTES_MAX, asserted below). */
#define SM_PLOG_SNAPSHOT_BYTES_MAX (256 * 1024 * 1024)

/* ---- control plane (src/coord/) ------------------------------------------------------------ */

/* A key in the control plane: /shardmart/<cluster>/partitions/<n> and friends are well under
 * 200 bytes; 512 leaves room and is far below etcd's 1.5 MiB request bound. */
#define SM_COORD_KEY_BYTES_MAX 512
/* A value: a partition configuration with 7 replica ids of 64 bytes is under 1 KiB of JSON;
 * 16 KiB catches a runaway writer long before etcd's request bound. */
#define SM_COORD_VALUE_BYTES_MAX (16 * 1024)
/* Compares plus operations in one transaction: etcd's default --max-txn-ops is 128. */
#define SM_COORD_TXN_OPS_MAX 128
/* Keys one read returns (every range of a transaction together): all partitions of the largest
 * cluster plus every member, the controller and the meta key. */
#define SM_COORD_RANGE_KVS_MAX (SM_PARTITIONS_MAX + SM_RING_NODES_MAX + 16)
/* One HTTP response body from etcd: a full read of the largest cluster is about 40 MiB of
 * base64 JSON; a larger body is refused rather than buffered without bound. */
#define SM_COORD_RESPONSE_BYTES_MAX (64 * 1024 * 1024)
/* Lease TTL: 1 ms .. 1 day (the embedded store counts ms; etcd rounds up to whole seconds). */
#define SM_COORD_LEASE_TTL_MS_MAX (24LL * 60 * 60 * 1000)
/* etcd endpoints tried in turn, and the bytes of one ("http://host:port"). */
#define SM_COORD_ENDPOINTS_MAX      16
#define SM_COORD_ENDPOINT_BYTES_MAX 256
/* Requests submitted and not yet polled, per client: a node has a handful in flight; running
 * out is SM_E_BUSY for the caller, not unbounded queueing. */
#define SM_COORD_PENDING_MAX 4096
/* Watches open at once per client. The cluster layer needs one (its cluster prefix). */
#define SM_COORD_WATCHES_MAX 64
/* The embedded store: keys, leases, and the events it keeps for watches that start at an old
 * revision (older ones are compacted: a watch from before them fails with SM_E_STATE). */
#define SM_COORD_EMBEDDED_KEYS_MAX    (1 << 20)
#define SM_COORD_EMBEDDED_LEASES_MAX  65536
#define SM_COORD_EMBEDDED_HISTORY_MAX 65536
/* An error message carried in a result (etcd's messages are short sentences). */
#define SM_COORD_MESSAGE_BYTES_MAX 160
/* A cluster name (the key prefix /shardmart/<name>/), a member's advertise address and zone. */
#define SM_COORD_CLUSTER_NAME_BYTES_MAX 64
#define SM_COORD_ADDR_BYTES_MAX         256
#define SM_COORD_ZONE_BYTES_MAX         64

/* ---- replication (src/cluster/) ------------------------------------------------------------ */

/* A node id inside the cluster layer: 0..4095, the same bound as the placement ring's nodes, so
 * a replica set or an in-sync set is a handful of small integers. */
#define SM_CLUSTER_NODES_MAX 4096
/* Log entries in one APPEND message: enough to ship a full group-commit batch of one partition in
 * one message; a replica further behind gets several. */
#define SM_CLUSTER_MSG_ENTRIES_MAX 256
/* One message on the wire, header and entries: 4 MiB (256 records of 16 KiB would be 4 MiB; the
 * sender stops adding entries before this). A snapshot message is bounded separately. */
#define SM_CLUSTER_MSG_BYTES_MAX (4 * 1024 * 1024)
/* A partition snapshot shipped in one message: 256 MiB. Chunked transfer is future work; the
 * bound keeps a hostile length from allocating more than a partition ever needs. */
#define SM_CLUSTER_SNAPSHOT_BYTES_MAX (256 * 1024 * 1024)
/* Log entries one partition keeps in memory between snapshots (for shipping and for rebuilding a
 * deposed primary): at least 16, at most 2^24. */
#define SM_CLUSTER_LOG_ENTRIES_MIN 16
#define SM_CLUSTER_LOG_ENTRIES_MAX (1u << 24)
/* Client requests waiting for their commit on one partition (writes and reads): past it a
 * proposal is refused with BUSY instead of queueing without bound. */
#define SM_CLUSTER_PENDING_MAX 65536

/* ---- transport between nodes (src/server/peer.c) ------------------------------------------ */

/* One message a peer_net carries (its config's message_bytes_max is at most this): a snapshot
 * travels in one message (SM_CLUSTER_SNAPSHOT_BYTES_MAX) plus room for its header. Reading a
 * frame needs a buffer this large, so the bound is what a hostile length can make a node allocate
 * per connection. */
#define SM_PEER_MESSAGE_BYTES_MAX (SM_CLUSTER_SNAPSHOT_BYTES_MAX + 64 * 1024)
/* Bytes queued for one peer and not yet written (frames included): 16 MiB by default, four full
 * cluster messages, enough to ride out a reconnect at replication rates; past it a send is refused
 * with BUSY and counted (the cluster protocol retransmits). The maximum is 1 GiB per peer. */
#define SM_PEER_QUEUE_BYTES_DEFAULT (16 * 1024 * 1024)
#define SM_PEER_QUEUE_BYTES_MAX     (1024 * 1024 * 1024)
/* Connections accepted from other nodes at once (finished handshakes or not): a few per node of
 * a large cluster; past it a new one is closed at once, so a flood cannot exhaust descriptors. */
#define SM_PEER_INBOUND_MAX 1024
/* A connection that has not finished its handshake (TCP connect included) this long after it
 * started is closed: a black-holed address or a silent client must not hold a slot. */
#define SM_PEER_HANDSHAKE_TIMEOUT_MS 5000
/* Reconnect backoff: the delay doubles from the minimum to the maximum after each failure and
 * resets after a handshake. 1 ms .. 1 hour; the defaults are 50 ms and 2 s (a restarted node is
 * found within about 2 s, and a dead one costs one connect attempt per 2 s). */
#define SM_PEER_RECONNECT_MS_MAX         (60LL * 60 * 1000)
#define SM_PEER_RECONNECT_MIN_MS_DEFAULT 50
#define SM_PEER_RECONNECT_MAX_MS_DEFAULT 2000
/* A host name for peer_net_set_address: a numeric IPv4 or IPv6 address, as text. */
#define SM_PEER_HOST_BYTES_MAX 64

/* ---- cluster clients (src/cli: shardmart bench --cluster, check, the set-up) ------------------
 */

/* A request refused with -TRYAGAIN or -CLUSTERDOWN, or whose connection was refused or lost, is
 * sent again with the same request id after a back-off that doubles from 10 ms to 200 ms: quick
 * enough to see a failover end within a few ms, slow enough that a client of a dead partition
 * costs the nodes five requests a second. */
#define SM_CLIENT_RETRY_MIN_MS 10
#define SM_CLIENT_RETRY_MAX_MS 200
/* A request still unanswered this long after it was first sent is given up (a clear error, and
 * "unknown" in the history when an attempt may have been applied): five times the 2 s a failover
 * is meant to take with a 1 s lease. */
#define SM_CLIENT_RETRY_TOTAL_MS 10000
/* -MOVED hops one request follows at once; past it (nodes disagree while a config changes) it
 * backs off like a -TRYAGAIN instead of bouncing between nodes at full speed. */
#define SM_CLIENT_REDIRECTS_MAX 8
/* Node addresses one cluster client keeps (one connection per node per client connection): a
 * cluster larger than this is driven by several benchmark processes. */
#define SM_CLIENT_NODES_MAX 64
/* A request on a live connection unanswered this long: the connection is dropped and its requests
 * retried elsewhere (a paused primary keeps its sockets open and answers nothing). */
#define SM_CLIENT_REPLY_TIMEOUT_MS 3000
/* "host:port" of a node in a -MOVED reply or CLUSTER.NODES. */
#define SM_CLIENT_ADDR_BYTES_MAX 64

_Static_assert(SM_KEY_BYTES_MAX < SM_REQUEST_BYTES_MAX, "a key must fit in a request");
_Static_assert(2 * SM_ORDER_ITEMS_MAX + 32 <= SM_REQUEST_ARGS_MAX,
               "a full order must fit in one command");
_Static_assert(SM_HTTP_TARGET_BYTES_MAX < SM_HTTP_HEAD_BYTES_MAX, "a target must fit in a head");
_Static_assert(SM_REQUEST_BYTES_MAX <= SM_RESP_REPLY_BULK_BYTES_MAX, "replies hold any request");
_Static_assert(SM_REPLICAS_DEFAULT <= SM_REPLICAS_MAX, "default replicas within bound");
_Static_assert(SM_PARTITIONS_DEFAULT <= SM_PARTITIONS_MAX, "default partitions within bound");

_Static_assert(SM_WAL_RECORD_PAYLOAD_BYTES_MAX >= SM_REQUEST_BYTES_MAX,
               "a whole request must fit in one log record");
_Static_assert(SM_WAL_SEGMENT_BYTES_MIN <= SM_WAL_SEGMENT_BYTES_DEFAULT &&
                   SM_WAL_SEGMENT_BYTES_DEFAULT <= SM_WAL_SEGMENT_BYTES_MAX,
               "default segment size within bounds");
_Static_assert(SM_WAL_BATCH_BYTES_DEFAULT * 2 <= SM_WAL_SEGMENT_BYTES_DEFAULT,
               "the default batch fits in half a default segment");
_Static_assert(SM_WAL_BATCH_BYTES_DEFAULT > SM_WAL_RECORD_PAYLOAD_BYTES_MAX,
               "a full record fits in the default batch");
_Static_assert(SM_WAL_SNAPSHOTS_KEEP_DEFAULT <= SM_WAL_SNAPSHOTS_KEEP_MAX,
               "default snapshots kept within bound");

_Static_assert((SM_ENGINE_RECORD_BYTES_MAX) >= 1 + 3 * (1 + SM_KEY_BYTES_MAX) + 1 +
                                                   SM_KEY_BYTES_MAX + 24 + 1 +
                                                   SM_ORDER_ITEMS_MAX * (1 + SM_KEY_BYTES_MAX + 4),
               "the largest engine record fits");
_Static_assert(SM_ENGINE_MESSAGE_BYTES_MAX > SM_KEY_BYTES_MAX, "a SKU name fits in a message");
_Static_assert(SM_COORD_TXN_OPS_MAX >= 8, "a directory transaction (compare, put, read) fits");
_Static_assert(SM_COORD_KEY_BYTES_MAX >=
                   32 + SM_COORD_CLUSTER_NAME_BYTES_MAX + SM_NODE_ID_BYTES_MAX,
               "a member key fits");
_Static_assert(SM_TXN_LEGS_MAX <= 64, "a transaction's votes fit in a 64-bit mask");
_Static_assert(SM_TXN_ORDER_TTL_MS_MAX + SM_TXN_PREPARE_TIMEOUT_MS < SM_ENGINE_TTL_MS_MAX,
               "remote holds outlive the order they belong to");

_Static_assert(SM_CLUSTER_MSG_BYTES_MAX >= SM_CLUSTER_MSG_ENTRIES_MAX * 16 + 64 &&
                   SM_CLUSTER_MSG_BYTES_MAX > SM_ENGINE_RECORD_BYTES_MAX + 1024,
               "a message holds the largest record");
_Static_assert(SM_REPLICAS_MAX <= 8, "a replica set fits in a byte of flags");
_Static_assert(SM_PEER_MESSAGE_BYTES_MAX >= SM_CLUSTER_MSG_BYTES_MAX &&
                   SM_PEER_MESSAGE_BYTES_MAX > SM_CLUSTER_SNAPSHOT_BYTES_MAX &&
                   SM_PEER_MESSAGE_BYTES_MAX < 0xFFFFFFFFu - 64,
               "a peer frame holds any cluster message and its length fits in 32 bits");
_Static_assert(SM_PEER_QUEUE_BYTES_DEFAULT > SM_CLUSTER_MSG_BYTES_MAX + 64 &&
                   SM_PEER_QUEUE_BYTES_MAX > SM_PEER_MESSAGE_BYTES_MAX + 64,
               "a queue holds the largest message it may be given");
_Static_assert(SM_PEER_RECONNECT_MIN_MS_DEFAULT <= SM_PEER_RECONNECT_MAX_MS_DEFAULT &&
                   SM_PEER_RECONNECT_MAX_MS_DEFAULT <= SM_PEER_RECONNECT_MS_MAX,
               "default backoff within bounds");

_Static_assert(SM_PLOG_ENTRY_BYTES_MAX >= SM_REQUEST_BYTES_MAX, "a request fits in a plog entry");
_Static_assert(SM_PLOG_SNAPSHOT_BYTES_MAX >= SM_CLUSTER_SNAPSHOT_BYTES_MAX,
               "a shipped snapshot fits in a plog snapshot file");

_Static_assert(SM_CLIENT_RETRY_MIN_MS <= SM_CLIENT_RETRY_MAX_MS &&
                   SM_CLIENT_RETRY_MAX_MS < SM_CLIENT_RETRY_TOTAL_MS,
               "a client backs off several times before it gives up");
_Static_assert(SM_CLIENT_REPLY_TIMEOUT_MS < SM_CLIENT_RETRY_TOTAL_MS,
               "a request on a paused node is retried before it is given up");

#endif
