#!/usr/bin/env bash
# The cost of rate limiting and API-call metering (goal ≥ 0.85), in one run on PostgreSQL + Redis:
#   GET /api/v1/orgs/{id}/members with limits and metering on (limits high enough never to
#   refuse, so every request is decided), as a ratio to the same server with both off.
# Then raw limiter decisions per second against Redis (no leases: one script call each) beside
# redis-benchmark's PING rate on the same machine.
# Needs TENANTRY_BENCH_DATABASE_URL (a PostgreSQL database it may write to) and
# TENANTRY_BENCH_REDIS_URL; loopback only, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
: "${TENANTRY_BENCH_DATABASE_URL:?set TENANTRY_BENCH_DATABASE_URL=postgres://…}"
: "${TENANTRY_BENCH_REDIS_URL:?set TENANTRY_BENCH_REDIS_URL=redis://…}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
cargo build --release -q -p tenantry-server -p tenantry-adapter-redis --examples --bins
bin="$CARGO_TARGET_DIR/release/tenantry"
work=$(mktemp -d)
pids=()
trap 'for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"' EXIT

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
parse() {
  local out; out=$(cat)
  echo "$(awk '/Requests\/sec/ { print $2 }' <<<"$out") $(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")") $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
}

# serve NAME EXTRA_ENV... : starts a server (its pid joins `pids`), sets `base` to its URL.
serve() {
  local name=$1; shift
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/$name" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
    TENANTRY_DATABASE_URL="$TENANTRY_BENCH_DATABASE_URL" TENANTRY_REDIS_URL="$TENANTRY_BENCH_REDIS_URL" \
    TENANTRY_REDIS_KEY_PREFIX="bench-$$-$name:" "$@" "$bin" serve >"$work/$name.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$port/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  base="http://127.0.0.1:$port"
}

# measure BASE: members-list req/s p50 p99 with a fresh user and org on BASE.
measure() {
  local base=$1 run_id; run_id="$(date +%s%N)"
  local body="{\"email\":\"limits-$run_id@example.com\",\"password\":\"bench pass phrase that is long 42\"}"
  curl -fs -H 'content-type: application/json' -d "$body" "$base/api/v1/auth/register" >/dev/null
  local token org
  token=$(curl -fs -H 'content-type: application/json' -d "$body" "$base/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  org=$(curl -fs -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d "{\"name\":\"Bench\",\"slug\":\"bench-$run_id\"}" "$base/api/v1/orgs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" >"$work/jwt-$run_id.lua"
  wrk -t1 -c8 -d2s -s "$work/jwt-$run_id.lua" "$base/api/v1/orgs/$org/members" >/dev/null
  wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/jwt-$run_id.lua" "$base/api/v1/orgs/$org/members" | parse
}

high="1000000000/min"
serve on TENANTRY_RATE_LIMIT_ANONYMOUS="$high" TENANTRY_RATE_LIMIT_PRINCIPAL="$high" TENANTRY_RATE_LIMIT_ORG="$high" \
  TENANTRY_METER_API_CALLS=true TENANTRY_DEFAULT_PLAN=enterprise
on=$base
serve off TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
  TENANTRY_METER_API_CALLS=false TENANTRY_DEFAULT_PLAN=enterprise
off=$base
echo "warm-up and measure (each ${DURATION}s, alternating off/on twice)…"
read -r off1 off_p50 off_p99 < <(measure "$off")
read -r on1 on_p50 on_p99 < <(measure "$on")
read -r off2 _ _ < <(measure "$off")
read -r on2 _ _ < <(measure "$on")
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

decisions=$("$CARGO_TARGET_DIR/release/examples/limiter_rate" "$TENANTRY_BENCH_REDIS_URL" 2>/dev/null | awk '/decisions\/s/ { print $1 }')
redis_port=$(python3 -c "import urllib.parse,sys; u=urllib.parse.urlparse(sys.argv[1]); print(u.port or 6379)" "$TENANTRY_BENCH_REDIS_URL")
ping=$(redis-benchmark -p "$redis_port" -t ping -n 200000 -c 32 --csv 2>/dev/null | awk -F'"' '$2 == "PING_MBULK" { print $4 }')

printf '\n%-52s %10s %9s %9s\n' "measurement" "req/s" "p50 ms" "p99 ms"
printf '%-52s %10.0f %9s %9s\n' "members, limits and metering off (baseline)" "$off1" "$off_p50" "$off_p99"
printf '%-52s %10.0f %9s %9s\n' "members, limits and metering on" "$on1" "$on_p50" "$on_p99"
printf '%-52s %10.0f\n' "members, off (second round)" "$off2"
printf '%-52s %10.0f\n' "members, on (second round)" "$on2"
printf '\nratio on ÷ off: %.2f and %.2f (goal ≥ 0.85); backend: postgres+redis\n' \
  "$(awk -v a="$on1" -v b="$off1" 'BEGIN { print a / b }')" "$(awk -v a="$on2" -v b="$off2" 'BEGIN { print a / b }')"
printf 'limiter decisions/s against Redis (no leases): %s; redis-benchmark PING/s: %s; ratio %.2f\n' \
  "${decisions:-n/a}" "${ping:-n/a}" "$(awk -v a="${decisions:-0}" -v b="${ping:-1}" 'BEGIN { print a / b }')"
