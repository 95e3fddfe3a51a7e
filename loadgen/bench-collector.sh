#!/usr/bin/env bash
# `make bench-collector`: the collector under N simulated sensors (register,
# call, 3 channels at 10 packets/s), for SQLite and a throw-away PostgreSQL.
# Prints one markdown row per run (docs/benchmarks.md, "collector").
#
# Knobs: SIPSENSOR_BENCH_SENSORS ("100 1000 10000"), SIPSENSOR_BENCH_SECONDS
# (30), SIPSENSOR_BENCH_BACKENDS ("sqlite postgres"), SIPSENSOR_PG_BINDIR,
# SIPSENSOR_BENCH_RCVBUF (the collector's media.receive_buffer_bytes; its
# default when unset), SIPSENSOR_BENCH_PIN (1), SIPSENSOR_BENCH_KEEP (0; 1 keeps
# the logs, the collector's and PostgreSQL's, and says where),
# SIPSENSOR_BENCH_SRTP (0: SIP over UDP and plain RTP; 1: SIP over TLS and
# SRTP, each sensor on its own TLS connection as boards are, under a
# throw-away CA; both: plain then SRTP for each N, back to back).
# Every process started here is stopped by its PID on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CARGO=${CARGO:-cargo}
sensors=${SIPSENSOR_BENCH_SENSORS:-"100 1000 10000"}
# SIPSENSOR_BENCH_BACKFILL=M:S (issue #15): the last M sensors offer
# docs/protocol.md 11 and, called after the others, backfill S seconds
# each at once while the rest stream live.
backfill_args=()
if [ -n "${SIPSENSOR_BENCH_BACKFILL:-}" ]; then
    backfill_args=(--backfill-sensors "${SIPSENSOR_BENCH_BACKFILL%%:*}" --backfill-seconds "${SIPSENSOR_BENCH_BACKFILL##*:}")
fi
seconds=${SIPSENSOR_BENCH_SECONDS:-30}
backends=${SIPSENSOR_BENCH_BACKENDS:-"sqlite postgres"}
pg_bin=${SIPSENSOR_PG_BINDIR:-/usr/lib/postgresql/15/bin}
rcvbuf=${SIPSENSOR_BENCH_RCVBUF:-}
case ${SIPSENSOR_BENCH_SRTP:-0} in
    0) medias="plain" ;;
    1) medias="srtp" ;;
    both) medias="plain srtp" ;;
    *) echo "SIPSENSOR_BENCH_SRTP must be 0, 1 or both" >&2; exit 2 ;;
esac
# The collector on CPU 0 and the load generator on the others, so the
# collector's figure is its own and "under one core" holds by construction
# (SIPSENSOR_BENCH_PIN=0: no pinning). The kernel's loopback delivery runs
# in the sender's context, on the load generator's CPUs.
pin_collector="" pin_loadgen=""
if [ "${SIPSENSOR_BENCH_PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    pin_collector="taskset -c 0"
    pin_loadgen="taskset -c 1-$(( $(nproc) - 1 ))"
fi

"$CARGO" build --release --locked -p sipsensor-collector -p sipsensor-loadgen >&2
bin=$root/target/release
work=$(mktemp -d /tmp/sipsensor-bench.XXXXXX)
chmod 755 "$work" # the postgres user reaches its directory inside
collector_pid=""
pg_data=""

as_pg() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    if [ -n "$collector_pid" ]; then
        kill -TERM "$collector_pid" 2>/dev/null || true
        wait "$collector_pid" 2>/dev/null || true
    fi
    if [ -n "$pg_data" ]; then
        as_pg "$pg_bin/pg_ctl" -D "$pg_data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [ "${SIPSENSOR_BENCH_KEEP:-0}" = 1 ]; then
        rm -rf "$work/pg/data"
        echo "logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
case $medias in
    *srtp*) "$bin/sipsensor-loadgen" pki --dir "$work" ;;
esac

start_pg() {
    if [ ! -x "$pg_bin/initdb" ]; then
        echo "PostgreSQL server binaries not in $pg_bin: skipping postgres" >&2
        return 1
    fi
    mkdir -p "$work/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$work/pg"
    as_pg "$pg_bin/initdb" -D "$work/pg/data" -U postgres --auth=trust -E UTF8 >/dev/null
    as_pg "$pg_bin/pg_ctl" -D "$work/pg/data" -l "$work/pg/server.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories='$work/pg' -p 5432 -c max_connections=50 -c shared_buffers=1GB" \
        start >/dev/null
    pg_data=$work/pg/data
}

# CPU seconds used so far by the PostgreSQL server's processes.
pg_cpu() {
    local total=0 pid t
    for pid in $(pgrep -u postgres -f "$pg_data" ; pgrep -u postgres -P "$(head -1 "$pg_data/postmaster.pid")"); do
        t=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)
        total=$((total + t))
    done
    echo $((total / 100))
}

# Waits for a line matching $2 in log $1; prints the line.
await_line() {
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -E "$2" "$1"); then
            echo "$line"
            return 0
        fi
        if ! kill -0 "$collector_pid" 2>/dev/null; then
            echo "the collector exited:" >&2
            tail -20 "$1" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "no '$2' in $1" >&2
    return 1
}

"$bin/sipsensor-loadgen" table-header
for backend in $backends; do
    if [ "$backend" = postgres ] && [ -z "$pg_data" ]; then
        start_pg || continue
    fi
    for n in $sensors; do for media in $medias; do
        label=$backend
        [ "$media" = srtp ] && label="$backend, SRTP"
        "$bin/sipsensor-loadgen" credentials -n "$n" > "$work/credentials.yaml"
        chmod 600 "$work/credentials.yaml"
        case $backend in
            sqlite) url="sqlite://$work/bench-$n.db" ;;
            postgres)
                as_pg "$pg_bin/psql" -q -h "$work/pg" -U postgres -c "CREATE DATABASE bench_$n" >/dev/null
                url="postgresql:///bench_$n?user=postgres&host=$work/pg&port=5432" ;;
        esac
        # The registrar takes at most 1,000 AORs from one address unless it
        # trusts it (RFC 3261 21.5.4 503), and every sensor here is on
        # 127.0.0.1, TLS ones unavoidably (a connect-only client leaves
        # from where the kernel says): past 1,000, trusted, so without
        # digest, for plain and SRTP alike.
        trusted="[]"
        [ "$n" -gt 1000 ] && trusted="[127.0.0.1/32]"
        sip_tls="" tls_args=()
        if [ "$media" = srtp ]; then
            # A TLS connection per sensor, all from 127.0.0.1: the caps
            # raised past N, and no idle close while thousands set up.
            sip_tls="  tls:
    bind: 127.0.0.1:0
    certificate: $work/collector.crt
    private_key: $work/collector.key
  connections: {max_open: $((n + 1024)), max_per_source: $((n + 64)), idle_timeout_secs: 3600}"
            tls_args=(--tls-ca "$work/demo-ca.pem")
        fi
        cat > "$work/collector.yaml" <<YAML
storage:
  url: "$url"
http:
  bind: 127.0.0.1:0
sip:
  bind: 127.0.0.1:0
  domain: example.net
  credentials_file: $work/credentials.yaml
  control_socket: $work/control.sock
  trusted_peers: $trusted
$sip_tls
media:
  rtp_bind: 127.0.0.1:0
YAML
        [ -n "$rcvbuf" ] && echo "  receive_buffer_bytes: $rcvbuf" >> "$work/collector.yaml"
        log=$work/collector-$backend-$media-$n.log
        lglog=$work/loadgen-$backend-$media-$n.log
        RUST_LOG=info,sipsensor_collector::sip::tu=warn \
            $pin_collector "$bin/sipsensor-collector" run --config "$work/collector.yaml" 2> "$log" &
        collector_pid=$!
        sip=$(await_line "$log" "advertised [0-9.]+:[0-9]+" | sed -E 's/.*advertised ([0-9.]+:[0-9]+).*/\1/')
        http=$(await_line "$log" "on http://" | sed -E 's#.*on http://([0-9.]+:[0-9]+)/.*#\1#')
        if [ "$media" = srtp ]; then
            sip=$(await_line "$log" "TLS on [0-9.]+:[0-9]+" | sed -E 's/.*TLS on ([0-9.]+:[0-9]+).*/\1/')
        fi
        per=1 pumps=1
        [ "$n" -gt 2000 ] && per=4 pumps=2
        pg_cpu_before=0
        [ "$backend" = postgres ] && pg_cpu_before=$(pg_cpu)
        started=$SECONDS
        $pin_loadgen "$bin/sipsensor-loadgen" run --collector "$sip" --metrics "$http" -n "$n" \
            --seconds "$seconds" --collector-pid "$collector_pid" --per-rtp-socket "$per" --pumps "$pumps" \
            "${tls_args[@]}" "${backfill_args[@]}" --row "$label" 2> "$lglog" \
            || { echo "| $label | $n | load generator failed |"; tail -5 "$lglog" >&2; }
        # The load generator's own caveats (it fell behind, it could not send).
        grep '^  (' "$lglog" >&2 || true
        if [ "$backend" = postgres ]; then
            echo "  (postgres, $n streams: the PostgreSQL server used $(( $(pg_cpu) - pg_cpu_before )) CPU-seconds in the $(( SECONDS - started )) s run)" >&2
        fi
        kill -TERM "$collector_pid"
        wait "$collector_pid" || true
        collector_pid=""
        if grep -q "rows dropped\|storage is behind" "$log"; then
            echo "  ($label, $n streams: $(grep -c 'rows dropped\|storage is behind' "$log") storage-overload messages in the collector log)" >&2
        fi
        # The next run starts on a quiet machine: this run's database gone
        # and its dirty pages written out, not flushed under the next one.
        case $backend in
            sqlite) rm -f "$work/bench-$n.db" "$work/bench-$n.db-wal" "$work/bench-$n.db-shm" ;;
            postgres) as_pg "$pg_bin/psql" -q -h "$work/pg" -U postgres -c "DROP DATABASE bench_$n" >/dev/null \
                          && as_pg "$pg_bin/psql" -q -h "$work/pg" -U postgres -c "CHECKPOINT" >/dev/null ;;
        esac
        sync
        sleep 3
    done; done
done
