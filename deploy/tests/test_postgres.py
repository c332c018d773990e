"""The PostgreSQL init script, the roles it creates, and backup.sh / restore.sh, run for real
against the local PostgreSQL on scratch databases and roles (dropped afterwards)."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path

import pytest

from conftest import DEPLOY, pg_url, psql, run_init_script

BACKUP = DEPLOY / "backup" / "backup.sh"
RESTORE = DEPLOY / "backup" / "restore.sh"

ORG_A = "0190c5a0-0000-7000-8000-00000000000a"
ORG_B = "0190c5a0-0000-7000-8000-00000000000b"

# The policy expression of migrations/src/m20261122_000010_row_level_security.rs (`visible`).
VISIBLE = (
    "{column} = NULLIF(current_setting('tenantry.org_id', true), '')::uuid "
    "OR current_setting('tenantry.scope', true) = 'platform'"
)

# A small schema shaped like Tenantry's: tenant tables fenced by forced RLS, a foreign key with
# cascade, jsonb, timestamps, and a sequence (which the app role must be able to use).
SCHEMA = """
CREATE TABLE orgs (id uuid PRIMARY KEY, name text NOT NULL);
CREATE TABLE memberships (
    org_id uuid NOT NULL REFERENCES orgs (id) ON DELETE CASCADE,
    email text NOT NULL,
    profile jsonb NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, email)
);
CREATE TABLE audit_log (seq bigserial PRIMARY KEY, org_id uuid NOT NULL REFERENCES orgs (id), action text NOT NULL);
CREATE INDEX audit_log_org ON audit_log (org_id, seq);
"""


def fence(table: str, column: str) -> str:
    rule = VISIBLE.format(column=column)
    return (
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY; ALTER TABLE {table} FORCE ROW LEVEL SECURITY; "
        f"CREATE POLICY tenant_isolation ON {table} USING ({rule}) WITH CHECK ({rule});"
    )


def as_app(names: dict, database: str, sql: str, org: str | None = None, platform: bool = False, check=True):
    setup = ""
    if org:
        setup += f"SET LOCAL tenantry.org_id = '{org}'; "
    if platform:
        setup += "SET LOCAL tenantry.scope = 'platform'; "
    return psql(database, f"BEGIN; {setup}{sql}; COMMIT;", user=names["app"], check=check)


def build_source(names: dict) -> str:
    """Init script, then the schema as the owner (as `tenantry migrate` would), then data written
    by the application role."""
    result = run_init_script(names)
    assert result.returncode == 0, result.stderr
    database = names["database"]
    psql(database, SCHEMA + fence("orgs", "id") + fence("memberships", "org_id") + fence("audit_log", "org_id"),
         user=names["owner"])
    as_app(names, database, f"INSERT INTO orgs VALUES ('{ORG_A}', 'A'), ('{ORG_B}', 'B')", platform=True)
    for org, count in ((ORG_A, 40), (ORG_B, 25)):
        as_app(names, database,
               f"INSERT INTO memberships (org_id, email, profile) SELECT '{org}', 'user' || i || '@example.com', "
               f"jsonb_build_object('i', i) FROM generate_series(1, {count}) i; "
               f"INSERT INTO audit_log (org_id, action) SELECT '{org}', 'member.added' FROM generate_series(1, {count})",
               org=org)
    return database


def fingerprint(database: str) -> dict:
    """Row counts and a digest of every table's ordered rows, read as the superuser."""
    out = {}
    for table, order in (("orgs", "id"), ("memberships", "org_id, email"), ("audit_log", "seq")):
        rows = psql(database, f"SELECT md5(string_agg(t::text, '|' ORDER BY {order})), count(*) FROM {table} t").stdout
        out[table] = rows.strip()
    return out


def fences(database: str) -> list[str]:
    return psql(database,
                "SELECT c.relname || ':' || c.relrowsecurity || ':' || c.relforcerowsecurity || ':' || "
                "pg_get_userbyid(c.relowner) || ':' || count(p.policyname) FROM pg_class c "
                "LEFT JOIN pg_policies p ON p.tablename = c.relname AND p.schemaname = 'public' "
                "WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r' "
                "GROUP BY c.relname, c.relrowsecurity, c.relforcerowsecurity, c.relowner ORDER BY 1").stdout.split()


def run(script: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=120)


def test_init_script_creates_roles_that_rls_binds_and_that_cannot_change_the_schema(scratch_roles):
    names = scratch_roles
    database = build_source(names)
    # Idempotent: a second run (e.g. by hand after migrations) succeeds and changes nothing.
    again = run_init_script(names)
    assert again.returncode == 0, again.stderr

    for role in (names["owner"], names["app"]):
        flags = psql("postgres", f"SELECT rolsuper, rolbypassrls, rolcreatedb, rolcreaterole FROM pg_roles "
                                 f"WHERE rolname = '{role}'").stdout.strip()
        assert flags == "f|f|f|f", f"{role}: {flags}"
    owner = psql("postgres", f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'").stdout
    assert owner.strip() == names["owner"]

    # The application role changes no schema and cannot lift the fence.
    denied = psql(database, "CREATE TABLE intruder (id int)", user=names["app"], check=False)
    assert denied.returncode != 0 and "permission denied" in denied.stderr
    not_owner = psql(database, "ALTER TABLE memberships NO FORCE ROW LEVEL SECURITY", user=names["app"], check=False)
    assert not_owner.returncode != 0 and "must be owner" in not_owner.stderr

    # Row-Level Security binds it: nothing without a tenant, only its tenant's rows with one.
    assert as_app(names, database, "SELECT count(*) FROM memberships").stdout.strip() == "0"
    assert as_app(names, database, "SELECT count(*) FROM memberships", org=ORG_A).stdout.strip() == "40"
    assert as_app(names, database, "SELECT count(DISTINCT org_id) FROM audit_log", org=ORG_B).stdout.strip() == "1"
    crossing = as_app(names, database, f"INSERT INTO memberships (org_id, email) VALUES ('{ORG_B}', 'x@example.com')",
                      org=ORG_A, check=False)
    assert crossing.returncode != 0 and "row-level security" in crossing.stderr
    # The owner is bound too (FORCE), which is why backups need a role that bypasses RLS.
    assert psql(database, "SELECT count(*) FROM memberships", user=names["owner"]).stdout.strip() == "0"
    dump_as_owner = subprocess.run(["pg_dump", "--format=custom", "-f", "/dev/null", pg_url(database, names["owner"])],
                                   capture_output=True, text=True, timeout=60)
    assert dump_as_owner.returncode != 0 and "row-level security" in dump_as_owner.stderr


def test_backup_then_restore_gives_back_the_same_rows_fences_owners_and_grants(scratch_roles, tmp_path):
    names = scratch_roles
    source = build_source(names)
    before = fingerprint(source)
    assert before["memberships"].endswith("|65")

    backup = run(BACKUP, "--database-url", pg_url(source), "--output-dir", str(tmp_path / "backups"))
    assert backup.returncode == 0, backup.stderr
    dump = Path(backup.stdout.strip())
    assert dump.parent == tmp_path / "backups" and dump.name.startswith(f"tenantry-{source}-")
    assert dump.read_bytes()[:5] == b"PGDMP", "pg_dump's custom format"
    checksum = (dump.parent / (dump.name + ".sha256")).read_text().split()
    assert checksum == [hashlib.sha256(dump.read_bytes()).hexdigest(), dump.name]
    assert not list(dump.parent.glob("*.partial"))

    # Into a fresh, empty database on the same server, keeping the dump's owners and grants.
    target = f"{names['database']}_restored"
    names["created_databases"].append(target)
    psql("postgres", f'CREATE DATABASE "{target}" OWNER "{names["owner"]}"')
    restore = run(RESTORE, "--target-url", pg_url(target), str(dump))
    assert restore.returncode == 0, restore.stderr
    assert "checksum ok" in restore.stderr
    assert fingerprint(target) == before
    assert fences(target) == fences(source)
    assert all(entry.split(":")[1:4] == ["true", "true", names["owner"]] for entry in fences(target)), fences(target)
    # The application role reads its tenant's rows and only those, and can still write.
    assert as_app(names, target, "SELECT count(*) FROM memberships", org=ORG_B).stdout.strip() == "25"
    assert as_app(names, target, "SELECT count(*) FROM memberships").stdout.strip() == "0"
    as_app(names, target, f"INSERT INTO audit_log (org_id, action) VALUES ('{ORG_A}', 'restored')", org=ORG_A)

    # A database that already has tables is refused, unless --clean.
    refused = run(RESTORE, "--target-url", pg_url(target), str(dump))
    assert refused.returncode != 0 and "already has" in refused.stderr
    cleaned = run(RESTORE, "--clean", "--target-url", pg_url(target), str(dump))
    assert cleaned.returncode == 0, cleaned.stderr
    assert fingerprint(target) == before, "--clean put back the dump's rows exactly"


def test_restore_under_another_owner_relies_on_the_init_scripts_default_privileges(scratch_roles, tmp_path):
    names = scratch_roles
    source = build_source(names)
    dump = Path(run(BACKUP, "-d", pg_url(source), "-o", str(tmp_path)).stdout.strip())
    # A server set up by the init script: the owner's default privileges grant the app its rights,
    # so --owner with --no-acl still gives a working application role.
    fresh = dict(names, database=f"{names['database']}_fresh")
    names["created_databases"].append(fresh["database"])
    assert run_init_script(fresh).returncode == 0
    restore = run(RESTORE, "--owner", names["owner"], "--no-acl", "-t", pg_url(fresh["database"]), str(dump))
    assert restore.returncode == 0, restore.stderr
    assert fingerprint(fresh["database"]) == fingerprint(source)
    assert all(entry.split(":")[3] == names["owner"] for entry in fences(fresh["database"]))
    assert as_app(names, fresh["database"], "SELECT count(*) FROM memberships", org=ORG_A).stdout.strip() == "40"


def test_restore_refuses_a_dump_that_does_not_match_its_checksum(scratch_roles, tmp_path):
    names = scratch_roles
    source = build_source(names)
    dump = Path(run(BACKUP, "-d", pg_url(source), "-o", str(tmp_path)).stdout.strip())
    data = bytearray(dump.read_bytes())
    data[-10] ^= 0xFF
    dump.write_bytes(bytes(data))
    target = f"{names['database']}_corrupt"
    names["created_databases"].append(target)
    psql("postgres", f'CREATE DATABASE "{target}"')
    refused = run(RESTORE, "-t", pg_url(target), str(dump))
    assert refused.returncode != 0 and "checksum" in refused.stderr
    assert psql(target, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").stdout.strip() == "0"


def test_backup_keeps_only_the_newest_backups_and_fails_cleanly(scratch_roles, tmp_path):
    names = scratch_roles
    source = build_source(names)
    for stamp in ("20000101T000000Z", "20000102T000000Z"):
        old = tmp_path / f"tenantry-{source}-{stamp}.dump"
        old.write_bytes(b"old")
        (tmp_path / f"{old.name}.sha256").write_text("x")
    other = tmp_path / "tenantry-otherdb-20000101T000000Z.dump"
    other.write_bytes(b"another database's backup")
    result = run(BACKUP, "-d", pg_url(source), "-o", str(tmp_path), "--keep", "2")
    assert result.returncode == 0, result.stderr
    kept = sorted(p.name for p in tmp_path.glob(f"tenantry-{source}-*.dump"))
    assert kept == [f"tenantry-{source}-20000102T000000Z.dump", Path(result.stdout.strip()).name]
    assert not (tmp_path / f"tenantry-{source}-20000101T000000Z.dump.sha256").exists()
    assert other.exists(), "another database's backups are not touched"

    missing = run(BACKUP, "-d", pg_url(f"no_such_db_{uuid.uuid4().hex[:8]}"), "-o", str(tmp_path / "none"))
    assert missing.returncode != 0 and missing.stdout == ""
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    assert run(BACKUP, "-o", str(tmp_path)).returncode == 2, "no database named: usage"


@pytest.mark.parametrize("script", [BACKUP, RESTORE])
def test_scripts_are_executable_bash_with_strict_mode(script):
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
