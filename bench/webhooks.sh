#!/usr/bin/env bash
# Webhook delivery on PostgreSQL, to one local receiver over 10 endpoints of one org:
#  1. live: events committed through the API as fast as it takes them (one org's writes queue
#     on its audit head) while `tenantry serve` delivers them: p50/p99 commit-to-delivery
#     latency from the server's own histogram (goal p99 < 1 s);
#  2. drain: 10,000 events committed with the worker off, then one `tenantry worker` process
#     started: deliveries per second until the last one succeeded (goal ≥ 1,000/s).
# Needs TENANTRY_BENCH_DATABASE_URL (a PostgreSQL database it may write to); loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

EVENTS="${EVENTS:-10000}"
LIVE_EVENTS="${LIVE_EVENTS:-3000}"
ENDPOINTS="${ENDPOINTS:-10}"
: "${TENANTRY_BENCH_DATABASE_URL:?set TENANTRY_BENCH_DATABASE_URL=postgres://…}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"
cargo build --release -q -p tenantry-server
bin="$CARGO_TARGET_DIR/release/tenantry"
work=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port=$(free_port)
receiver_port=$(free_port)
base="http://127.0.0.1:$port"

# A receiver that answers 204 at once (asyncio, keep-alive).
cat >"$work/receiver.py" <<'PY'
import asyncio, sys
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            await writer.drain()
    except Exception:
        writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    async with server:
        await server.serve_forever()
asyncio.run(main())
PY
python3 "$work/receiver.py" "$receiver_port" &
receiver_pid=$!

run() { # tenantry subcommand and flags, in the background; its pid in `pid`
  env TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
    TENANTRY_DATABASE_URL="$TENANTRY_BENCH_DATABASE_URL" TENANTRY_WEBHOOK_ALLOW_PRIVATE=true \
    TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
    TENANTRY_METER_API_CALLS=false TENANTRY_DEFAULT_PLAN=enterprise \
    "$bin" "$@" >>"$work/server.log" 2>&1 &
  pid=$!
}
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
pid=""
trap 'kill -TERM $pid $receiver_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT
live() { for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }
run serve
live

bench_py() { python3 - "$@" <<'PY'
import http.client, json, os, re, sys, threading, time, urllib.parse
mode, base, receiver_port, events, endpoints = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
host = urllib.parse.urlparse(base)
def call(conn, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = "Bearer " + token
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    data = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {data[:200]!r}")
    return json.loads(data) if data else None
conn = http.client.HTTPConnection(host.hostname, host.port)
run = str(time.time_ns())
credentials = {"email": f"hooks-{run}@example.com", "password": "bench pass phrase that is long 42"}
call(conn, "POST", "/api/v1/auth/register", credentials)
token = call(conn, "POST", "/api/v1/auth/login", credentials)["access_token"]
org = call(conn, "POST", "/api/v1/orgs", {"name": "Hooks", "slug": f"hooks-{run[-9:]}"}, token)["id"]
hooks = [call(conn, "POST", f"/api/v1/orgs/{org}/webhooks",
              {"url": f"http://127.0.0.1:{receiver_port}/h{i}", "events": []}, token)["id"] for i in range(endpoints)]

def succeeded():
    text = call_text("/metrics")
    match = re.search(r'^tenantry_webhook_attempts_total\{outcome="succeeded"\} (\d+)', text, re.M)
    return int(match.group(1)) if match else 0
def call_text(path):
    c = http.client.HTTPConnection(host.hostname, host.port)
    c.request("GET", path)
    return c.getresponse().read().decode()

start = time.monotonic()
def enqueue(share):
    c = http.client.HTTPConnection(host.hostname, host.port)
    for n in share:
        call(c, "POST", f"/api/v1/orgs/{org}/webhooks/{hooks[n % endpoints]}/test", {}, token)
threads = [threading.Thread(target=enqueue, args=(range(t, events, 8),)) for t in range(8)]
for t in threads: t.start()
for t in threads: t.join()
committed = time.monotonic() - start
if mode == "enqueue":
    print(f"{events} events committed with the worker off in {committed:.1f} s ({events / committed:.0f}/s)")
    sys.exit(0)
while succeeded() < events:
    if time.monotonic() - start > 300:
        raise SystemExit(f"only {succeeded()} of {events} delivered after 300 s")
    time.sleep(0.05)
elapsed = time.monotonic() - start

text = call_text("/metrics")
buckets = [(float(le), int(v)) for le, v in re.findall(
    r'^tenantry_webhook_commit_to_delivery_seconds_bucket\{le="([^"+]+)"\} (\d+)', text, re.M)]
total = int(re.search(r'^tenantry_webhook_commit_to_delivery_seconds_count (\d+)', text, re.M).group(1))
def quantile(q):
    for le, count in buckets:
        if count >= q * total:
            return f"≤ {le * 1000:.0f} ms"
    return "> largest bucket"
print(f"live: {events} events to {endpoints} endpoints committed at {events / committed:.0f}/s, "
      f"all delivered {elapsed - committed:.2f} s after the last commit")
print(f"live: commit-to-delivery p50 {quantile(0.5)}, p99 {quantile(0.99)} (goal p99 < 1 s; histogram buckets)")
PY
}

echo "live run ($LIVE_EVENTS events)…"
bench_py live "$base" "$receiver_port" "$LIVE_EVENTS" "$ENDPOINTS"
stop
echo "drain run: committing $EVENTS events with the worker off…"
run serve --no-worker
live
bench_py enqueue "$base" "$receiver_port" "$EVENTS" "$ENDPOINTS"
stop
succeeded() { psql "$TENANTRY_BENCH_DATABASE_URL" -Atqc "SELECT count(*) FROM webhook_deliveries WHERE status = 'succeeded'"; }
already=$(succeeded)
started=$(date +%s.%N)
run worker
target=$((already + EVENTS))
while [ "$(succeeded)" -lt "$target" ]; do
  if (( $(echo "$(date +%s.%N) - $started > 300" | bc) )); then echo "not drained after 300 s" >&2; exit 1; fi
  sleep 0.1
done
elapsed=$(echo "$(date +%s.%N) - $started" | bc)
stop
printf 'drain: %s deliveries in %.2f s by one worker process: %.0f/s (goal ≥ 1000; includes the worker start)\n' \
  "$EVENTS" "$elapsed" "$(echo "$EVENTS / $elapsed" | bc -l)"
