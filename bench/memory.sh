#!/usr/bin/env bash
# Server memory, loopback only, embedded default (SQLite), release build:
#  1. resident set idle after start (the baseline of this run);
#  2. high-water mark after 53 sequential registrations (each hashes a password);
#  3. high-water mark after a read load (GET /api/v1/users/me);
#  4. high-water mark after a login flood (hashing at full tilt from many connections);
# each as MiB and as a ratio to the idle figure. Goal: the peak under the login flood < 96 MiB.
#
#   bench/memory.sh              # 10 s per load
#   DURATION=20 CONNECTIONS=64 bench/memory.sh
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
TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
  TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
  "$bin" serve >"$work/server.log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
sleep 1

kib() { awk -v f="$1" '$1 == f":" { print $2 }' "/proc/$pid/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }

idle=$(kib VmRSS)

run_id=$(date +%s)
password="bench pass phrase that is long 42"
registrations=53
for n in $(seq 0 $((registrations - 1))); do
  curl -fs -H 'content-type: application/json' \
    -d "{\"email\":\"mem-$n-$run_id@example.com\",\"password\":\"$password\"}" "$base/api/v1/auth/register" >/dev/null
done
after_register=$(kib VmHWM)

token=$(curl -fs -H 'content-type: application/json' \
  -d "{\"email\":\"mem-0-$run_id@example.com\",\"password\":\"$password\"}" "$base/api/v1/auth/login" |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
cat >"$work/me.lua" <<LUA
wrk.headers["Authorization"] = "Bearer $token"
LUA
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/me.lua" "$base/api/v1/users/me" >/dev/null
after_reads=$(kib VmHWM)

cat >"$work/login.lua" <<LUA
local i = 0
request = function()
  i = i + 1
  local body = string.format('{"email":"mem-%d-$run_id@example.com","password":"$password"}', i % $registrations)
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
wrk -t2 -c"$CONNECTIONS" -d"${DURATION}s" -s "$work/login.lua" "$base/api/v1/auth/login" >"$work/login.out"
after_logins=$(kib VmHWM)
settled=$(kib VmRSS)
logins=$(awk '/Requests\/sec/ { print $2 }' "$work/login.out")
threads=$(awk '$1 == "Threads:" { print $2 }' "/proc/$pid/status")

ratio() { awk -v a="$1" -v b="$idle" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-52s %9s %14s\n' "server memory ($(nproc) cores)" "MiB" "× idle (base)"
printf '%-52s %9s %14s\n' "idle RSS after start (baseline)" "$(mib "$idle")" "1.00"
printf '%-52s %9s %14s\n' "peak after $registrations sequential registrations" "$(mib "$after_register")" "$(ratio "$after_register")"
printf '%-52s %9s %14s\n' "peak after ${DURATION}s of GET /users/me ($CONNECTIONS conns)" "$(mib "$after_reads")" "$(ratio "$after_reads")"
printf '%-52s %9s %14s\n' "peak after ${DURATION}s login flood ($CONNECTIONS conns, ${logins}/s)" "$(mib "$after_logins")" "$(ratio "$after_logins")"
printf '%-52s %9s %14s\n' "RSS once the flood is over" "$(mib "$settled")" "$(ratio "$settled")"
printf 'threads: %s; goal: peak under the login flood < 96 MiB → %s\n' "$threads" \
  "$(awk -v k="$after_logins" 'BEGIN { print (k < 96 * 1024) ? "met" : "NOT met" }')"
