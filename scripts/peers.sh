# Sourced by benchmarks and tests that need a real peer server (Redis, PostgreSQL, etcd).
# Every server is started on 127.0.0.1, on a free port, in a temporary directory of its own, and
# stopped by the PID this file recorded: never by name. `peers_stop_all` (installed as an EXIT
# trap by peers_init) stops everything that was started and removes the directories.
#
#   source scripts/peers.sh; peers_init
#   port=$(peers_free_port); peers_start_redis "$port" always
#   ...
# shellcheck shell=bash

PEERS_PIDS=()
PEERS_DIRS=()

peers_init() {
    trap peers_stop_all EXIT INT TERM
}

# A TCP port on 127.0.0.1 that nothing listens on now. Ports are drawn at random from a range
# outside the usual ephemeral one; a server that loses the race to bind fails loudly at start.
peers_free_port() {
    local port tries=0
    while ((tries++ < 200)); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return 0
        fi
    done
    echo "peers: no free port found" >&2
    return 1
}

# Polls until something accepts on 127.0.0.1:PORT, at most SECONDS (default 20).
peers_wait_port() {
    local port=$1 limit=${2:-20} i
    for ((i = 0; i < limit * 20; i++)); do
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
        sleep 0.05
    done
    echo "peers: nothing listening on 127.0.0.1:$port after ${limit}s" >&2
    return 1
}

# A new temporary directory in PEERS_TMPDIR, removed by peers_stop_all. Call it directly, never
# in $(...): a command substitution runs in a subshell, whose PEERS_DIRS the EXIT trap never sees.
peers_tmpdir() {
    PEERS_TMPDIR=$(mktemp -d "${TMPDIR:-/tmp}/shardmart-peer.XXXXXX")
    PEERS_DIRS+=("$PEERS_TMPDIR")
}

# peers_start_redis PORT always|everysec|off -> Redis 7 with AOF fsync as asked, no RDB snapshots.
peers_start_redis() {
    local port=$1 mode=$2 dir
    peers_tmpdir; dir=$PEERS_TMPDIR
    local aof=(--appendonly no)
    [[ $mode != off ]] && aof=(--appendonly yes --appendfsync "$mode")
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" "${aof[@]}" \
        --daemonize no --logfile "$dir/redis.log" &
    PEERS_PIDS+=($!)
    peers_wait_port "$port"
}

# peers_start_postgres PORT -> PostgreSQL 15 with default durability (fsync on, synchronous_commit
# on), run as the unprivileged `postgres` user because initdb refuses root.
peers_start_postgres() {
    local port=$1 dir bin
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    peers_tmpdir; dir=$PEERS_TMPDIR
    chown postgres "$dir"
    runuser -u postgres -- "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$bin/postgres" -D "$dir/data" -h 127.0.0.1 -p "$port" \
        -k "$dir" -c max_connections=200 >"$dir/pg.log" 2>&1 &
    PEERS_PIDS+=($!)
    peers_wait_port "$port" 60
}

# peers_start_etcd NAME CLIENT_PORT PEER_PORT [INITIAL_CLUSTER] -> one etcd member.
# etcd refuses lease TTLs below 1.5 x its election timeout (its default 1000 ms makes a 1 s
# lease a 2 s one): on loopback a 25 ms heartbeat and 250 ms election timeout allow 1 s leases,
# as in tests/support/etcd_proc.c.
peers_start_etcd() {
    local name=$1 cport=$2 pport=$3 cluster=${4:-"$1=http://127.0.0.1:$3"} dir
    peers_tmpdir; dir=$PEERS_TMPDIR
    etcd --name "$name" --data-dir "$dir/data" \
        --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
        --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --heartbeat-interval 25 --election-timeout 250 >"$dir/etcd.log" 2>&1 &
    PEERS_PIDS+=($!)
    peers_wait_port "$cport" 30
}

peers_stop_all() {
    local pid
    for pid in "${PEERS_PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PEERS_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    PEERS_PIDS=()
    for d in "${PEERS_DIRS[@]}"; do
        rm -rf "$d"
    done
    PEERS_DIRS=()
}
