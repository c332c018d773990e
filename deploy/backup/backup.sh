#!/usr/bin/env bash
# Backs up Tenantry's PostgreSQL database: one pg_dump in the custom format (compressed, restored
# selectively and in parallel by pg_restore), checked readable, with a SHA-256 file beside it.
#
#     deploy/backup/backup.sh --database-url postgres://postgres@db:5432/tenantry --output-dir /backups --keep 14
#
# Options (or the environment variable in brackets):
#   -d, --database-url URL   libpq URL or connection string of the database [BACKUP_DATABASE_URL]
#   -o, --output-dir DIR     where backups go, created if missing (default ./backups) [BACKUP_DIR]
#   -k, --keep N             keep the newest N backups of this database, delete older ones
#                            (default 0: delete nothing) [BACKUP_KEEP]
#
# The role must see every row: a superuser, or a role with BYPASSRLS and pg_read_all_data.
# Tenantry's owner and application roles are bound by Row-Level Security, so pg_dump refuses
# to run as them ("query would be affected by row-level security policy").
#
# The database is not the whole state: keep TENANTRY_ENCRYPTION_KEY (without it TOTP and
# webhook secrets in the dump are unreadable) and the JWT signing key with the backups, stored
# apart from them. See docs/RUNBOOK.md, "Backups and restore".
#
# Prints the backup's path on standard output; progress goes to standard error. Exits non-zero
# if anything failed, leaving no partial file behind.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit "${1:-2}"; }
log() { printf 'backup: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

database_url="${BACKUP_DATABASE_URL:-}"
output_dir="${BACKUP_DIR:-./backups}"
keep="${BACKUP_KEEP:-0}"
while [ $# -gt 0 ]; do
  case "$1" in
    -d|--database-url) database_url="${2:?$1 needs a value}"; shift 2 ;;
    -o|--output-dir) output_dir="${2:?$1 needs a value}"; shift 2 ;;
    -k|--keep) keep="${2:?$1 needs a value}"; shift 2 ;;
    -h|--help) usage 0 ;;
    *) log "unknown argument: $1"; usage ;;
  esac
done
[ -n "$database_url" ] || { log "no database: pass --database-url or set BACKUP_DATABASE_URL"; usage; }
case "$keep" in ''|*[!0-9]*) die "--keep must be a whole number, not '$keep'" ;; esac
for tool in pg_dump pg_restore psql sha256sum; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (PostgreSQL client tools, coreutils)"
done

# The database's own name labels the file, so backups of several databases can share a folder.
database_name="$(psql --no-psqlrc --no-password -Atq -d "$database_url" -c 'SELECT current_database()')" ||
  die "cannot connect to the database"
case "$database_name" in ''|*[!A-Za-z0-9_.-]*) label="database" ;; *) label="$database_name" ;; esac

umask 077
mkdir -p "$output_dir"
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
final="$output_dir/tenantry-$label-$stamp.dump"
partial="$final.partial"
[ ! -e "$final" ] || die "$final exists already"
trap 'rm -f "$partial"' EXIT

log "dumping $database_name to $final"
started=$(date +%s)
# One consistent snapshot; do not wait forever behind a migration's lock.
pg_dump --format=custom --no-password --lock-wait-timeout=60000 --dbname="$database_url" --file="$partial"
# Readable by pg_restore, and not empty of data.
entries="$(pg_restore --list "$partial")" || die "pg_restore cannot read the dump"
tables="$(printf '%s\n' "$entries" | grep -c ' TABLE DATA ' || true)"
mv "$partial" "$final"
trap - EXIT
(cd "$output_dir" && sha256sum "$(basename "$final")" > "$(basename "$final").sha256")
size="$(wc -c < "$final" | tr -d ' ')"
log "done: $tables tables, $size bytes, $(( $(date +%s) - started ))s"

if [ "$keep" -gt 0 ]; then
  # Newest first by the UTC stamp in the name (not mtime, which copies and restores change).
  find "$output_dir" -maxdepth 1 -type f -name "tenantry-$label-*.dump" -printf '%f\n' | sort -r |
    tail -n +"$((keep + 1))" | while read -r old; do
      log "removing old backup $old"
      rm -f "$output_dir/$old" "$output_dir/$old.sha256"
    done
fi

printf '%s\n' "$final"
