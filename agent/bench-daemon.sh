#!/usr/bin/env bash
# `make bench-agent-daemon`: the whole agent daemon over TLS+SRTP against
# UDP+plain RTP, side by side in one run (issue 14: TLS+SRTP at most 1.2x
# the plain CPU). Two release `sipsensor-agent run` processes, one config
# each, stream to one release collector on 127.0.0.1 that listens on SIP
# over UDP and TLS (a throw-away CA from `sipsensor-loadgen pki`, as
# `make demo` makes one). Once both stream, their CPU (utime + stime from
# /proc/PID/stat) is taken over SIPSENSOR_BENCH_SECONDS; then their peak
# RSS (VmHWM) and the packets the collector received from each
# (/api/streams), so a run where one agent streamed nothing shows.
# Prints a markdown table (docs/benchmarks.md, "The whole agent daemon");
# the figures are printed, never asserted.
#
# Knobs: SIPSENSOR_BENCH_SECONDS (60), SIPSENSOR_BENCH_KEEP (0; 1 keeps the
# configs and logs and says where). Needs curl and jq. Every process
# started here is stopped by its PID on exit.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
CARGO=${CARGO:-cargo}
seconds=${SIPSENSOR_BENCH_SECONDS:-60}
for tool in curl jq; do
    command -v "$tool" >/dev/null || { echo "$tool is needed" >&2; exit 2; }
done

"$CARGO" build --release --locked -p sipsensor-agent -p sipsensor-collector -p sipsensor-loadgen >&2
bin=${CARGO_TARGET_DIR:-$root/target}/release
work=$(mktemp -d /tmp/sipsensor-bench-agent.XXXXXX)
collector_pid="" agent_pids=()

cleanup() {
    # Agents first: they hang up and unregister while the collector runs.
    for pid in "${agent_pids[@]}" $collector_pid; do
        kill -TERM "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ "${SIPSENSOR_BENCH_KEEP:-0}" = 1 ]; then
        echo "configs and logs kept in $work" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT

# Waits for a line matching $2 in log $1; prints the part matching $3.
await_line() {
    for _ in $(seq 1 300); do
        if line=$(grep -m1 -oE "$2" "$1" 2>/dev/null); then
            echo "$line" | grep -oE "$3"
            return 0
        fi
        kill -0 "$collector_pid" 2>/dev/null || { tail -20 "$1" >&2; return 1; }
        sleep 0.1
    done
    echo "no '$2' in $1" >&2
    return 1
}

"$bin/sipsensor-loadgen" pki --dir "$work" >&2
printf 'users:\n  tls-srtp: "pw-tls-%s"\n  udp-plain: "pw-udp-%s"\n' $$ $$ > "$work/credentials.yaml"
chmod 600 "$work/credentials.yaml"
cat > "$work/collector.yaml" <<YAML
storage:
  url: sqlite://$work/collector.db
http:
  bind: 127.0.0.1:0
sip:
  bind: 127.0.0.1:0
  domain: 127.0.0.1
  registrar: true
  credentials_file: $work/credentials.yaml
  control_socket: $work/collector.sock
  trusted_peers: []
  tls:
    bind: 127.0.0.1:0
    certificate: $work/collector.crt
    private_key: $work/collector.key
media:
  rtp_bind: 127.0.0.1:0
policy:
  mode: accept_as_offered
YAML
"$bin/sipsensor-collector" run --config "$work/collector.yaml" 2> "$work/collector.log" &
collector_pid=$!
ip_port='127\.0\.0\.1:[0-9]+'
udp=$(await_line "$work/collector.log" "advertised $ip_port" "$ip_port")
tls=$(await_line "$work/collector.log" "TLS on $ip_port" "$ip_port")
http=$(await_line "$work/collector.log" "on http://$ip_port" "$ip_port")

# One agent's config: $1 user, $2 the `sip:` lines for its transport, $3
# its `media.srtp`. Both stream what `make bench-agent` sends (3 channels
# at 100 Hz, 2 instants per packet: 50 packets/s) and spool it.
agent_config() {
    mkdir -p "$work/$1-spool"
    printf 'password: "%s"\n' "$(grep "  $1:" "$work/credentials.yaml" | cut -d'"' -f2)" \
        > "$work/$1.secrets.yaml"
    chmod 600 "$work/$1.secrets.yaml"
    cat > "$work/$1.yaml" <<YAML
secrets_file: $work/$1.secrets.yaml
identity:
  aor: sip:$1@127.0.0.1
sip:
$2
  bind: 127.0.0.1:0
  username: $1
media:
  srtp: $3
stream:
  rate: 100
  samples_per_packet: 2
sensors:
  - type: simulated
    name: sim
    seed: 7
    interval_ms: 10
    channels:
      - {name: temperature, unit: Cel, scale: 0.01, offset: 21.5, amplitude: 2.0, period_ms: 60000}
      - {name: humidity, unit: '%RH', scale: 0.1, offset: 45, amplitude: 8.0, period_ms: 45000}
      - {name: vibration, unit: m/s2, scale: 0.001, amplitude: 0.8, period_ms: 250}
spool:
  dir: $work/$1-spool
status:
  socket: $work/$1.sock
logging:
  level: warn
YAML
    chmod 600 "$work/$1.yaml"
}
agent_config tls-srtp "  registrar: sip:$tls
  collector: sip:collector@$tls
  transport: tls
  ca_file: $work/demo-ca.pem
  listen: false" required
agent_config udp-plain "  registrar: sip:$udp
  collector: sip:collector@$udp
  transport: udp" off

agents=(tls-srtp udp-plain)
for a in "${agents[@]}"; do
    "$bin/sipsensor-agent" run --no-override --config "$work/$a.yaml" 2> "$work/$a.log" &
    agent_pids+=($!)
done

streams() { curl -sf "http://$http/api/streams" || echo '[]'; }
# The field $2 of agent $1's stream (0 when it is not streaming).
stream_field() {
    streams | jq -r --arg aor "sip:$1@127.0.0.1" \
        '[(if type == "array" then . else .streams end)[] | select(.aor == $aor) | .'"$2"'] | first // 0'
}
for _ in $(seq 1 300); do
    [ "$(stream_field tls-srtp packets)" != 0 ] && [ "$(stream_field udp-plain packets)" != 0 ] && break
    sleep 0.1
done
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
declare -A cpu0 cpu1 pkts0
for i in 0 1; do
    cpu0[$i]=$(ticks "${agent_pids[$i]}")
    pkts0[$i]=$(stream_field "${agents[$i]}" packets)
done
t0=$(date +%s.%N)
sleep "$seconds"
for i in 0 1; do cpu1[$i]=$(ticks "${agent_pids[$i]}"); done
t1=$(date +%s.%N)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
hz=$(getconf CLK_TCK)

percent() { awk -v d="$1" -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.2f", d / hz / (t1 - t0) * 100 }'; }
plain=$(percent $(( cpu1[1] - cpu0[1] )))
echo "| agent | CPU % of a core | × plain | peak RSS kB (VmHWM) | RSS kB at the end | packets received in the window | lost |"
echo "|---|---|---|---|---|---|---|"
for i in 0 1; do
    pid=${agent_pids[$i]}
    cpu=$(percent $(( cpu1[$i] - cpu0[$i] )))
    ratio=$(awk -v a="$cpu" -v b="$plain" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')
    hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
    packets=$(( $(stream_field "${agents[$i]}" packets) - pkts0[$i] ))
    echo "| ${agents[$i]} | $cpu | $ratio | $hwm | $rss | $packets | $(stream_field "${agents[$i]}" lost) |"
done
echo
echo "$(awk -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.1f", t1 - t0 }') s measured; load average $load_before before, $load_after after; $(nproc) CPUs"
