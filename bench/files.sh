#!/usr/bin/env bash
# File throughput, loopback only, release build: upload and download rates (MiB/s) of 1 MiB and
# 100 MiB files through the server on a local folder and on an S3 server (moto on loopback),
# against baselines measured in the same run on the same bytes:
#   - `cp` of the file into a folder, then `sync` (the local store fsyncs too);
#   - a raw `object_store` multipart put of the file (crates/adapters/storage/examples/raw_put.rs),
#     to the same folder kind and the same S3 server: no HTTP, no hashing, no metadata row.
# Then one 1 GiB upload to the local folder with the server's peak RSS (VmHWM) before and after:
# the upload streams, so the peak should grow by far less than 64 MiB.
#
#   bench/files.sh                 # 1 MiB ×20 and 100 MiB ×3 per store, plus the 1 GiB upload
#   REPS_SMALL=50 REPS_LARGE=5 BIG=0 bench/files.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPS_SMALL="${REPS_SMALL:-20}"
REPS_LARGE="${REPS_LARGE:-3}"
BIG="${BIG:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/tenantry-target}"

cargo build --release -q -p tenantry-server
cargo build --release -q -p tenantry-adapter-storage --example raw_put
bin="$CARGO_TARGET_DIR/release/tenantry"
raw_put="$CARGO_TARGET_DIR/release/examples/raw_put"

work=$(mktemp -d /var/tmp/tenantry-bench-files.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
now() { date +%s.%N; }
rate() { awk -v bytes="$1" -v secs="$2" 'BEGIN { printf "%.1f", bytes / 1048576 / secs }'; }

# The S3 server: moto's server mode from PyPI, in the venv .ci/run uses.
moto_venv=/var/tmp/tenantry-moto-venv
if ! "$moto_venv/bin/moto_server" --help >/dev/null 2>&1; then
  python3 -m venv "$moto_venv"
  "$moto_venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
s3_port=$(free_port)
"$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
s3="http://127.0.0.1:$s3_port"
export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
for _ in $(seq 1 100); do curl -fs "$s3" >/dev/null 2>&1 && break; sleep 0.1; done
"$moto_venv/bin/python" - "$s3" <<'PY'
import sys, boto3
boto3.client("s3", endpoint_url=sys.argv[1], region_name="us-east-1").create_bucket(Bucket="bench")
PY

# Test files: a gzip signature (an allowed type, sniffed from the bytes) then random bytes.
make_file() { { printf '\x1f\x8b\x08\x00'; head -c $(($2 - 4)) /dev/urandom; } >"$1"; }
make_file "$work/1mib.gz" $((1024 * 1024))
make_file "$work/100mib.gz" $((100 * 1024 * 1024))

# A server on `storage`; sets `base`, `token`, `org`, `server_pid`.
start_server() {
  local storage="$1" port; port=$(free_port)
  base="http://127.0.0.1:$port"
  TENANTRY_BIND="127.0.0.1:$port" TENANTRY_DATA_DIR="$work/data-$2" TENANTRY_LOG=warn TENANTRY_LOG_FORMAT=json \
    TENANTRY_RATE_LIMIT_ANONYMOUS=off TENANTRY_RATE_LIMIT_PRINCIPAL=off TENANTRY_RATE_LIMIT_ORG=off \
    TENANTRY_PLANS='[{"name":"bench","limits":{}}]' TENANTRY_DEFAULT_PLAN=bench \
    TENANTRY_MAX_UPLOAD_BYTES=$((2 * 1024 * 1024 * 1024)) \
    TENANTRY_STORAGE_URL="$storage" TENANTRY_S3_ENDPOINT="$s3" \
    "$bin" serve >"$work/server-$2.log" 2>&1 &
  server_pid=$!
  pids+=("$server_pid")
  for _ in $(seq 1 100); do curl -fs "$base/health/live" >/dev/null 2>&1 && break; sleep 0.1; done
  local credentials='{"email":"files@example.com","password":"bench pass phrase that is long 42"}'
  curl -fs -H 'content-type: application/json' -d "$credentials" "$base/api/v1/auth/register" >/dev/null
  token=$(curl -fs -H 'content-type: application/json' -d "$credentials" "$base/api/v1/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  org=$(curl -fs -H 'content-type: application/json' -H "authorization: Bearer $token" \
    -d "{\"name\":\"Bench $2\",\"slug\":\"bench-$2\"}" "$base/api/v1/orgs" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
}
stop_server() { kill -TERM "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

# Upload `file` `reps` times, downloading each once; prints "upload_MiB/s download_MiB/s". Times
# are curl's own (`time_total`: from connecting to the last byte), so process start-up is not
# counted, as it is not for the baselines.
through_server() {
  local file="$1" reps="$2" size up=0 down=0 id seconds
  size=$(stat -c %s "$file")
  for _ in $(seq 1 "$reps"); do
    seconds=$(curl -fs -H "authorization: Bearer $token" -F "file=@$file;filename=bench.gz" \
      -o "$work/uploaded.json" -w '%{time_total}' "$base/api/v1/orgs/$org/files")
    up=$(awk -v a="$up" -v b="$seconds" 'BEGIN { print a + b }')
    id=$(sed -E 's/.*"id":"([^"]+)".*/\1/' "$work/uploaded.json")
    seconds=$(curl -fsL -H "authorization: Bearer $token" -o /dev/null -w '%{time_total}' \
      "$base/api/v1/orgs/$org/files/$id/download")
    down=$(awk -v a="$down" -v b="$seconds" 'BEGIN { print a + b }')
    curl -fs -X DELETE -H "authorization: Bearer $token" "$base/api/v1/orgs/$org/files/$id" >/dev/null
  done
  echo "$(rate $((size * reps)) "$up") $(rate $((size * reps)) "$down")"
}

# `cp` then `sync`, `reps` times; MiB/s.
copy_rate() {
  local file="$1" reps="$2" size total=0 t0 t1
  size=$(stat -c %s "$file"); mkdir -p "$work/cp"
  for n in $(seq 1 "$reps"); do
    t0=$(now); cp "$file" "$work/cp/$n"; sync "$work/cp/$n"; t1=$(now)
    total=$(awk -v a="$total" -v b="$t0" -v c="$t1" 'BEGIN { print a + c - b }')
    rm -f "$work/cp/$n"
  done
  rate $((size * reps)) "$total"
}

# The raw object_store put, `reps` times; MiB/s over the total of the times it measures itself
# (from opening the upload to its completion).
raw_rate() {
  local file="$1" reps="$2" size total=0 mibs
  size=$(stat -c %s "$file"); shift 2
  for _ in $(seq 1 "$reps"); do
    mibs=$("$raw_put" "$file" "$@")
    total=$(awk -v a="$total" -v s="$size" -v r="$mibs" 'BEGIN { print a + s / 1048576 / r }')
  done
  rate $((size * reps)) "$total"
}

declare -A result
for store in local s3; do
  if [ "$store" = local ]; then start_server "file://$work/files-local" local; else start_server "s3://bench/server" s3; fi
  through_server "$work/1mib.gz" 2 >/dev/null # warm-up
  read -r result[$store,1,up] result[$store,1,down] < <(through_server "$work/1mib.gz" "$REPS_SMALL")
  read -r result[$store,100,up] result[$store,100,down] < <(through_server "$work/100mib.gz" "$REPS_LARGE")
  stop_server
done
for size in 1 100; do
  reps=$([ "$size" = 1 ] && echo "$REPS_SMALL" || echo "$REPS_LARGE")
  result[cp,$size]=$(copy_rate "$work/${size}mib.gz" "$reps")
  result[rawlocal,$size]=$(raw_rate "$work/${size}mib.gz" "$reps" "file://$work/raw-local")
  result[raws3,$size]=$(raw_rate "$work/${size}mib.gz" "$reps" "s3://bench" "$s3")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
printf '\n%-44s %10s %10s\n' "MiB/s ($(nproc) cores, loopback)" "1 MiB" "100 MiB"
printf '%-44s %10s %10s\n' "cp + sync (baseline, local)" "${result[cp,1]}" "${result[cp,100]}"
printf '%-44s %10s %10s\n' "raw object_store put, local (baseline)" "${result[rawlocal,1]}" "${result[rawlocal,100]}"
printf '%-44s %10s %10s\n' "server upload, local" "${result[local,1,up]}" "${result[local,100,up]}"
printf '%-44s %10s %10s\n' "server download, local" "${result[local,1,down]}" "${result[local,100,down]}"
printf '%-44s %10s %10s\n' "raw object_store put, S3 (baseline)" "${result[raws3,1]}" "${result[raws3,100]}"
printf '%-44s %10s %10s\n' "server upload, S3" "${result[s3,1,up]}" "${result[s3,100,up]}"
printf '%-44s %10s %10s\n' "server download, S3 (302 to presigned GET)" "${result[s3,1,down]}" "${result[s3,100,down]}"
printf '\nupload ÷ raw put: local %s (1 MiB), %s (100 MiB); S3 %s (1 MiB), %s (100 MiB)\n' \
  "$(ratio "${result[local,1,up]}" "${result[rawlocal,1]}")" "$(ratio "${result[local,100,up]}" "${result[rawlocal,100]}")" \
  "$(ratio "${result[s3,1,up]}" "${result[raws3,1]}")" "$(ratio "${result[s3,100,up]}" "${result[raws3,100]}")"
printf 'upload ÷ cp: local %s (1 MiB), %s (100 MiB)\n' \
  "$(ratio "${result[local,1,up]}" "${result[cp,1]}")" "$(ratio "${result[local,100,up]}" "${result[cp,100]}")"

if [ "$BIG" = 1 ]; then
  make_file "$work/1gib.gz" $((1024 * 1024 * 1024))
  rm -f "$work/100mib.gz"
  start_server "file://$work/files-big" big
  through_server "$work/1mib.gz" 1 >/dev/null
  before=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")
  t0=$(now)
  curl -fs -H "authorization: Bearer $token" -F "file=@$work/1gib.gz;filename=big.gz" \
    "$base/api/v1/orgs/$org/files" >"$work/big.json"
  t1=$(now)
  after=$(awk '/VmHWM/ { print $2 }' "/proc/$server_pid/status")
  expected=$(sha256sum "$work/1gib.gz" | cut -d' ' -f1)
  stored=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["sha256"])' "$work/big.json")
  stop_server
  printf '1 GiB upload (local folder): %s MiB/s; peak RSS %.1f MiB before, %.1f MiB after: grew %.1f MiB (goal < 64 MiB); sha256 %s\n' \
    "$(rate $((1024 * 1024 * 1024)) "$(awk -v b="$t0" -v c="$t1" 'BEGIN { print c - b }')")" \
    "$(awk -v k="$before" 'BEGIN { print k / 1024 }')" "$(awk -v k="$after" 'BEGIN { print k / 1024 }')" \
    "$(awk -v a="$after" -v b="$before" 'BEGIN { print (a - b) / 1024 }')" \
    "$([ "$expected" = "$stored" ] && echo matches || echo "DIFFERS ($stored vs $expected)")"
fi
