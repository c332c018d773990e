#!/usr/bin/env bash
# The cost of tracing per request: the same release binary with OTLP export off (spans and
# W3C ids are still made, for the logs) and on (every span exported over OTLP/HTTP to a sink
# on loopback that decodes nothing and answers 200). Loopback only, bounded in time.
#
# For GET /health/live (one span) and GET /api/v1/orgs/{org_id} with an access token (the
# request span, the access check, the org read and their SQL spans), it prints req/s, p50 and
# p99 for both runs and the ratio export-on / export-off, and how many export requests the
# sink received.
#
#   bench/traces.sh                 # 10 s per run, 32 connections, 2 wrk threads
#   DURATION=20 bench/traces.sh
#   PROFILE=dev bench/traces.sh     # the debug build (figures only good for a quick look)
#   NO_BUILD=1 bench/traces.sh      # use the binary already in $CARGO_TARGET_DIR
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
THREADS="${THREADS:-2}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"
command -v wrk >/dev/null || { echo "wrk is required: apt-get install -y wrk" >&2; exit 2; }

PROFILE="${PROFILE:-release}"
[ -n "${NO_BUILD:-}" ] || cargo build --profile "$PROFILE" -q -p tenantry-server
bin="$CARGO_TARGET_DIR/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")/tenantry"
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The sink: accepts OTLP/HTTP exports, counts them and their bytes, answers 200 with an empty
# ExportTraceServiceResponse (an empty protobuf message is zero bytes).
cat >"$work/sink.py" <<'PY'
import http.server, sys, threading
count = {"requests": 0, "bytes": 0}
lock = threading.Lock()
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        self.rfile.read(length)
        with lock:
            count["requests"] += 1
            count["bytes"] += length
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()
    def do_GET(self):
        body = f'{count["requests"]} {count["bytes"]}'.encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink).serve_forever()
PY
sink_port=$(free_port)
python3 "$work/sink.py" "$sink_port" &
pids+=($!)

# Starts the server with the extra environment given; sets $base and $server_pid.
start() {
  local port
  port=$(free_port)
  base="http://127.0.0.1:$port"
  env TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
    TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
    TENANTRY_METER_API_CALLS=false "$@" "$bin" serve >>"$work/server.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 200); do curl -fs "$base/health/live" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "the server did not start" >&2; tail -5 "$work/server.log" >&2; exit 1
}
stop() { kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

# wrk's req/s, p50 and p99 (ms) for GET $1 with optional bearer $2.
measure() {
  local url=$1 token=${2:-} out
  if [ -n "$token" ]; then
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "authorization: Bearer $token" "$url")
  else
    out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$url")
  fi
  local rps p50 p99 errors
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  errors=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  echo "$rps $p50 $p99 ${errors:-0}"
}

# One run: the server, an account with an org and a token, both routes measured.
run() {
  start "$@"
  local email="bench-$(date +%s%N)@example.com" password="bench pass phrase that is long 42" token org
  curl -fs -H 'content-type: application/json' -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
    "$base/api/v1/auth/register" >/dev/null
  token=$(curl -fs -H 'content-type: application/json' -d "{\"email\":\"$email\",\"password\":\"$password\"}" \
    "$base/api/v1/auth/login" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  org=$(curl -fs -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d "{\"name\":\"Bench\",\"slug\":\"bench-$RANDOM$RANDOM\"}" "$base/api/v1/orgs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  live=$(measure "$base/health/live")
  orgs=$(measure "$base/api/v1/orgs/$org" "$token")
  stop
}

ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/b:.3f}')" "$1" "$2"; }
ms() { python3 -c "import sys; v=sys.argv[1]; print(float(v[:-2]) if v.endswith('ms') else float(v[:-2])/1000 if v.endswith('us') else float(v[:-1])*1000)" "$1"; }

run
off_live=$live off_orgs=$orgs
run OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$sink_port" OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf
on_live=$live on_orgs=$orgs
exports=$(curl -fs "http://127.0.0.1:$sink_port/")

printf '%-28s %10s %10s %10s %8s\n' "run" "req/s" "p50 ms" "p99 ms" "non-2xx"
for row in "live, export off:$off_live" "live, export on:$on_live" "org read, export off:$off_orgs" "org read, export on:$on_orgs"; do
  name=${row%%:*}; read -r rps p50 p99 errors <<<"${row#*:}"
  printf '%-28s %10s %10s %10s %8s\n' "$name" "$rps" "$(ms "$p50")" "$(ms "$p99")" "$errors"
done
echo "export on / off, req/s: live $(ratio "${on_live%% *}" "${off_live%% *}"), org read $(ratio "${on_orgs%% *}" "${off_orgs%% *}")"
echo "sink received (export requests, bytes): $exports"
