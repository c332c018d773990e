#!/usr/bin/env bash
# Identity figures, loopback only, bounded in time:
#  1. GET /api/v1/users/me with a valid access token, as a ratio to GET /health/live (same run);
#  2. POST /api/v1/auth/login throughput against the machine's raw argon2id rate;
#  3. GET /health/live p99 while a login flood runs, against its idle p99.
#
#   bench/auth.sh              # 10 s per measurement
#   DURATION=20 bench/auth.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }

cargo build --release -q -p tenantry-server
cargo build --release -q -p tenantry-adapter-crypto --example argon2_rate
bin="$CARGO_TARGET_DIR/release/tenantry"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
  TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
  "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done

run_id=$(date +%s)
password="bench pass phrase that is long 42"
accounts=32
# Several accounts, so the login flood measures hashing, not the per-account lockout (which
# counts attempts in flight too).
for n in $(seq 0 $((accounts - 1))); do
  curl -fs -H 'content-type: application/json' \
    -d "{\"email\":\"bench-$n-$run_id@example.com\",\"password\":\"$password\"}" "$base/api/v1/auth/register" >/dev/null
done
body="{\"email\":\"bench-0-$run_id@example.com\",\"password\":\"$password\"}"
token=$(curl -fs -H 'content-type: application/json' -d "$body" "$base/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
parse() { # wrk output on stdin → "req/s p50_ms p99_ms"
  local out; out=$(cat)
  echo "$(awk '/Requests\/sec/ { print $2 }' <<<"$out") $(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")") $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
}

cat >"$work/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
cat >"$work/login.lua" <<LUA
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"email":"bench-%d-$run_id@example.com","password":"$password"}', i % $accounts)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA

echo "warm-up…"
wrk -t1 -c8 -d2s "$base/health/live" >/dev/null
wrk -t1 -c8 -d2s -s "$work/me.lua" "$base/api/v1/users/me" >/dev/null

read -r live_rps live_p50 live_p99 < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$base/health/live" | parse)
read -r me_rps me_p50 me_p99 < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/me.lua" "$base/api/v1/users/me" | parse)

# /health/live latency at a fixed, light rate (open loop): idle, then while a login flood runs.
read -r idle_p50 idle_p99 idle_n < <(python3 bench/latency_probe.py 127.0.0.1 "$port" /health/live "$((DURATION - 2))" 200)
wrk -t1 -c16 -d"${DURATION}s" --latency -s "$work/login.lua" "$base/api/v1/auth/login" >"$work/login.out" &
flood=$!
sleep 1
read -r flood_p50 flood_p99 flood_n < <(python3 bench/latency_probe.py 127.0.0.1 "$port" /health/live "$((DURATION - 2))" 200)
wait $flood
read -r login_rps login_p50 login_p99 < <(parse <"$work/login.out")
non2xx=$(awk '/Non-2xx/ { print $5 }' "$work/login.out")

raw=$("$CARGO_TARGET_DIR/release/examples/argon2_rate" 3)
raw_one=$(awk '/1_thread/ { print $2 }' <<<"$raw")
raw_all=$(awk '/threads/ && !/1_thread/ { print $2 }' <<<"$raw")
rss_kib=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")

printf '\n%-40s %10s %9s %9s\n' "measurement" "req/s" "p50 ms" "p99 ms"
printf '%-40s %10.0f %9s %9s\n' "GET /health/live (baseline)" "$live_rps" "$live_p50" "$live_p99"
printf '%-40s %10.0f %9s %9s\n' "GET /api/v1/users/me (JWT)" "$me_rps" "$me_p50" "$me_p99"
printf '%-40s %10.1f %9s %9s\n' "POST /api/v1/auth/login" "$login_rps" "$login_p50" "$login_p99"
printf '\nratio users/me ÷ health/live: %.2f (goal ≥ 0.60)\n' "$(awk -v a="$me_rps" -v b="$live_rps" 'BEGIN { print a / b }')"
printf 'login: %.1f/s; raw argon2id: %.1f/s on 1 thread, %.1f/s on all cores; login ÷ raw(all cores) = %.2f%s\n' \
  "$login_rps" "$raw_one" "$raw_all" "$(awk -v a="$login_rps" -v b="$raw_all" 'BEGIN { print a / b }')" \
  "${non2xx:+ (non-2xx responses: $non2xx)}"
printf '/health/live at 200 req/s: p50 %s ms, p99 %s ms idle (%s requests); p50 %s ms, p99 %s ms under a login flood (%s requests): p99 ratio %.2f× (goal ≤ 2×)\n' \
  "$idle_p50" "$idle_p99" "$idle_n" "$flood_p50" "$flood_p99" "$flood_n" "$(awk -v a="$flood_p99" -v b="$idle_p99" 'BEGIN { print a / b }')"
printf 'server peak RSS: %.1f MiB (%s cores)\n' "$(awk -v k="$rss_kib" 'BEGIN { print k / 1024 }')" "$(nproc)"
