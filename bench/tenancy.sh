#!/usr/bin/env bash
# Org-scoped reads as a ratio to GET /health/live in the same run (goal ≥ 0.5):
#   GET /api/v1/orgs/{id}/members with a JWT, and the same with an API key.
# Loopback only, bounded in time. Set TENANTRY_BENCH_DATABASE_URL / TENANTRY_BENCH_REDIS_URL to
# run on PostgreSQL + Redis instead of the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }
cargo build --release -q -p tenantry-server
bin="$CARGO_TARGET_DIR/release/tenantry"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
env_extra=()
[ -n "${TENANTRY_BENCH_DATABASE_URL:-}" ] && env_extra+=("TENANTRY_DATABASE_URL=$TENANTRY_BENCH_DATABASE_URL")
[ -n "${TENANTRY_BENCH_REDIS_URL:-}" ] && env_extra+=("TENANTRY_REDIS_URL=$TENANTRY_BENCH_REDIS_URL" "TENANTRY_REDIS_KEY_PREFIX=bench-$$:")
env TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
  TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
  TENANTRY_DEFAULT_PLAN=enterprise \
  "${env_extra[@]}" "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done

run_id="$(date +%s)-$$"
body="{\"email\":\"tenancy-$run_id@example.com\",\"password\":\"bench pass phrase that is long 42\"}"
curl -fs -H 'content-type: application/json' -d "$body" "$base/api/v1/auth/register" >/dev/null
token=$(curl -fs -H 'content-type: application/json' -d "$body" "$base/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
org=$(curl -fs -H 'content-type: application/json' -H "authorization: Bearer $token" \
  -d "{\"name\":\"Bench\",\"slug\":\"bench-$$\"}" "$base/api/v1/orgs" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')

to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n = n; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }
parse() {
  local out; out=$(cat)
  echo "$(awk '/Requests\/sec/ { print $2 }' <<<"$out") $(to_ms "$(awk '$1 == "50%" { print $2 }' <<<"$out")") $(to_ms "$(awk '$1 == "99%" { print $2 }' <<<"$out")")"
}
printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" >"$work/jwt.lua"
api_key=$(curl -fs -H 'content-type: application/json' -H "authorization: Bearer $token" \
  -d '{"name":"bench","permissions":["members:read"]}' "$base/api/v1/orgs/$org/api-keys" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["key"])')
printf 'wrk.headers["x-api-key"] = "%s"\n' "$api_key" >"$work/key.lua"

echo "warm-up…"
wrk -t1 -c8 -d2s "$base/health/live" >/dev/null
wrk -t1 -c8 -d2s -s "$work/jwt.lua" "$base/api/v1/orgs/$org/members" >/dev/null
read -r live_rps live_p50 live_p99 < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency "$base/health/live" | parse)
read -r jwt_rps jwt_p50 jwt_p99 < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/jwt.lua" "$base/api/v1/orgs/$org/members" | parse)
read -r key_rps key_p50 key_p99 < <(wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" --latency -s "$work/key.lua" "$base/api/v1/orgs/$org/members" | parse)

printf '\n%-44s %10s %9s %9s\n' "measurement" "req/s" "p50 ms" "p99 ms"
printf '%-44s %10.0f %9s %9s\n' "GET /health/live (baseline)" "$live_rps" "$live_p50" "$live_p99"
printf '%-44s %10.0f %9s %9s\n' "GET /api/v1/orgs/{id}/members (JWT)" "$jwt_rps" "$jwt_p50" "$jwt_p99"
printf '%-44s %10.0f %9s %9s\n' "GET /api/v1/orgs/{id}/members (API key)" "$key_rps" "$key_p50" "$key_p99"
printf '\nratio members(JWT) ÷ health/live: %.2f (goal ≥ 0.50); backend: %s\n' \
  "$(awk -v a="$jwt_rps" -v b="$live_rps" 'BEGIN { print a / b }')" "$([ -n "${TENANTRY_BENCH_DATABASE_URL:-}" ] && echo postgres+redis || echo sqlite+in-process)"
printf 'ratio members(API key) ÷ health/live: %.2f (goal ≥ 0.50)\n' "$(awk -v a="$key_rps" -v b="$live_rps" 'BEGIN { print a / b }')"
