#!/usr/bin/env bash
# Restores a backup made by backup.sh into a PostgreSQL database, all or nothing (one
# transaction: a failure leaves the target as it was).
#
#     deploy/backup/restore.sh --target-url postgres://postgres@db:5432/tenantry_restored /backups/tenantry-tenantry-20260101T020000Z.dump
#
# Options (or the environment variable in brackets):
#   -t, --target-url URL   the database to restore into; it must exist and be empty (create it
#                          first, e.g. `CREATE DATABASE tenantry_restored OWNER tenantry_owner`)
#                          [RESTORE_DATABASE_URL]
#   --owner ROLE           make ROLE own every restored object (pg_restore --no-owner
#                          --role=ROLE), for a server whose role names differ from the source's,
#                          or to run as ROLE instead of a superuser. Default: keep the dump's
#                          owners, which needs a superuser and the same roles on the target.
#   --no-acl               do not restore GRANTs (when the application role is named
#                          differently; the owner's default privileges then grant the data
#                          rights, see deploy/postgres/init/10-tenantry-roles.sh)
#   --clean                drop the objects the dump contains before restoring them, instead of
#                          refusing a database that already has tables
#
# Checks the .sha256 file beside the dump when there is one. Stop Tenantry (API, worker) while
# restoring in place, then start it: migrations newer than the dump are applied by
# `tenantry migrate`. See docs/RUNBOOK.md, "Backups and restore".
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
log() { printf 'restore: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

target="${RESTORE_DATABASE_URL:-}"
owner=""
acl=yes
clean=no
dump=""
while [ $# -gt 0 ]; do
  case "$1" in
    -t|--target-url) target="${2:?$1 needs a value}"; shift 2 ;;
    --owner) owner="${2:?$1 needs a value}"; shift 2 ;;
    --no-acl) acl=no; shift ;;
    --clean) clean=yes; shift ;;
    -h|--help) usage 0 ;;
    -*) log "unknown option: $1"; usage ;;
    *) [ -z "$dump" ] || { log "one dump file only"; usage; }; dump="$1"; shift ;;
  esac
done
[ -n "$dump" ] || { log "no dump file given"; usage; }
[ -n "$target" ] || { log "no target: pass --target-url or set RESTORE_DATABASE_URL"; usage; }
[ -f "$dump" ] || die "$dump: no such file"
for tool in pg_restore psql; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (PostgreSQL client tools)"
done

if [ -f "$dump.sha256" ]; then
  command -v sha256sum >/dev/null 2>&1 || die "sha256sum is not installed"
  (cd "$(dirname "$dump")" && sha256sum --check --quiet "$(basename "$dump").sha256") ||
    die "$dump does not match its checksum"
  log "checksum ok"
else
  log "no $dump.sha256 beside the dump: integrity not checked"
fi
pg_restore --list "$dump" >/dev/null || die "$dump is not a pg_dump custom-format archive"

query() { psql --no-psqlrc --no-password -Atq -v ON_ERROR_STOP=1 -d "$target" -c "$1"; }
database_name="$(query 'SELECT current_database()')" || die "cannot connect to the target database"
existing="$(query "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                   WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_%'
                     AND c.relkind IN ('r', 'p')")"
if [ "$existing" -gt 0 ] && [ "$clean" = no ]; then
  die "$database_name already has $existing tables: restore into an empty database, or pass --clean"
fi

args=(--exit-on-error --single-transaction --no-password --dbname="$target")
[ -z "$owner" ] || args+=(--no-owner --role="$owner")
[ "$acl" = yes ] || args+=(--no-acl)
[ "$clean" = no ] || args+=(--clean --if-exists)

log "restoring $dump into $database_name"
started=$(date +%s)
pg_restore "${args[@]}" "$dump"
# pg_restore does not collect planner statistics.
query 'ANALYZE' >/dev/null
tables="$(query "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')")"
log "done: $tables tables in $database_name, $(( $(date +%s) - started ))s"
