#!/bin/sh
# Creates Tenantry's database and its two roles, neither a superuser nor BYPASSRLS:
#
#   owner  (APP_DB_OWNER, default tenantry_owner)  owns the database and its schema; runs
#          `tenantry migrate`. It can change the schema, so the server does not run as it.
#   app    (APP_DB_USER, default tenantry_app)     what `tenantry serve` and `tenantry worker`
#          connect as: SELECT, INSERT, UPDATE, DELETE on the tables the owner creates, nothing
#          else. It cannot create, alter or drop anything, and cannot switch Row-Level Security
#          off (only a table's owner can), so the tenant policies always bind it.
#
# The postgres image runs this once, when its data directory is empty (files in
# /docker-entrypoint-initdb.d). It is idempotent and can be run by hand against any server as a
# superuser (psql's usual PGHOST, PGPORT, PGUSER… apply), for example to set up a managed
# database:
#
#     POSTGRES_USER=postgres PGHOST=db.internal APP_DB_OWNER_PASSWORD=… APP_DB_PASSWORD=… \
#       sh deploy/postgres/init/10-tenantry-roles.sh
#
# Backups need a role that Row-Level Security does not bind (a superuser, or a BYPASSRLS role
# with pg_read_all_data): pg_dump as the owner fails on the forced policies. See
# deploy/backup/backup.sh.
set -eu

: "${POSTGRES_USER:=postgres}"
: "${APP_DB_NAME:=tenantry}"
: "${APP_DB_OWNER:=tenantry_owner}"
: "${APP_DB_USER:=tenantry_app}"
: "${APP_DB_OWNER_PASSWORD:?set APP_DB_OWNER_PASSWORD (the migration role's password)}"
: "${APP_DB_PASSWORD:?set APP_DB_PASSWORD (the application role's password)}"

run_psql() { # database, then psql's stdin
  psql -X -q -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$1" \
    -v db="$APP_DB_NAME" -v owner="$APP_DB_OWNER" -v app="$APP_DB_USER" \
    -v owner_password="$APP_DB_OWNER_PASSWORD" -v app_password="$APP_DB_PASSWORD"
}

# Roles and the database (CREATE DATABASE cannot run inside a DO block or a transaction, hence
# \gexec on a generated statement).
run_psql postgres <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'owner') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'owner') \gexec
SELECT format('CREATE ROLE %I LOGIN', :'app') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') \gexec
-- Stated in full on every run, so a role that existed before is brought to the same shape.
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L', :'owner', :'owner_password') \gexec
SELECT format('ALTER ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD %L', :'app', :'app_password') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'owner') WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
SELECT format('ALTER DATABASE %I OWNER TO %I', :'db', :'owner') \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', :'db') \gexec
SELECT format('GRANT CONNECT ON DATABASE %I TO %I', :'db', :'app') \gexec
SQL

# The schema belongs to the owner; the app role may use it but create nothing in it, and gets
# data rights on every table and sequence the owner creates from now on (migrations) and on
# those that exist already (when this runs again after migrations).
run_psql "$APP_DB_NAME" <<'SQL'
SELECT format('ALTER SCHEMA public OWNER TO %I', :'owner') \gexec
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SELECT format('GRANT USAGE ON SCHEMA public TO %I', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %I', :'owner', :'app') \gexec
SELECT format('ALTER DEFAULT PRIVILEGES FOR ROLE %I IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO %I', :'owner', :'app') \gexec
SELECT format('GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %I', :'app') \gexec
SELECT format('GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %I', :'app') \gexec
SQL

echo "tenantry: database $APP_DB_NAME owned by $APP_DB_OWNER; application role $APP_DB_USER (data rights only)"
