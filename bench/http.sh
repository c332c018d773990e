#!/usr/bin/env bash
# Throughput and latency of GET /health/live: the baseline every later route is compared to.
# Loopback only, bounded in time. Prints req/s, p50, p99 and the server's peak RSS.
#
#   bench/http.sh                 # 10 s per run, 64 connections, 2 wrk threads
#   DURATION=30 CONNECTIONS=128 bench/http.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-64}"
THREADS="${THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"

command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
cargo build --release -q -p tenantry-server
bin="$CARGO_TARGET_DIR/release/tenantry"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
  TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
  "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do
  curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break
  sleep 0.1
done

# wrk's --latency table gives p50/p99 in us/ms/s; normalise to milliseconds.
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

run() { # path → prints "req/s p50_ms p99_ms"
  local out
  out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "http://127.0.0.1:$port$1")
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ { print $2 }' <<<"$out")
  p50=$(awk '$1 == "50%" { print $2 }' <<<"$out")
  p99=$(awk '$1 == "99%" { print $2 }' <<<"$out")
  echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}

echo "warm-up (2 s)…"
wrk -t1 -c8 -d2s "http://127.0.0.1:$port/health/live" >/dev/null
read -r rps p50 p99 < <(run /health/live)
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")

printf '\n%-28s %12s %10s %10s\n' "route" "req/s" "p50 ms" "p99 ms"
printf '%-28s %12.0f %10s %10s\n' "GET /health/live (baseline)" "$rps" "$p50" "$p99"
printf '\nserver peak RSS: %.1f MiB   (%s connections, %s wrk threads, %ss, %s cores)\n' \
  "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')" "$CONNECTIONS" "$THREADS" "$DURATION" "$(nproc)"
echo "ratio to baseline: 1.00 (this route is the baseline)"
