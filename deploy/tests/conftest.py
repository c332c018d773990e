"""Shared helpers of the deployment checks (`python3 -m pytest deploy/tests`).

They need PyYAML and pytest; kubernetes-validate (Kubernetes schemas), promql-parser (PromQL
syntax), helm, docker-compose and a PostgreSQL server make more checks run. Under CI=true a
missing tool or service fails the check instead of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
IN_CI = os.environ.get("CI") == "true"


def need(condition: bool, reason: str) -> None:
    """Skips the test when `condition` is false, or fails it under CI=true."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required under CI=true: {reason}")
    pytest.skip(reason)


def load_yaml_documents(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def known_variables() -> set[str]:
    """KNOWN_VARIABLES of apps/server/src/config.rs: every TENANTRY_* the server reads."""
    source = (ROOT / "apps/server/src/config.rs").read_text(encoding="utf-8")
    block = source.split("pub const KNOWN_VARIABLES", 1)[1].split("];", 1)[0]
    names = set(re.findall(r'"(TENANTRY_[A-Z0-9_]+)"', block))
    assert len(names) > 20, "KNOWN_VARIABLES not found in config.rs"
    return names


def helm_binary() -> str | None:
    """helm from HELM_BIN, the PATH, or where .ci/run installs it."""
    for candidate in (os.environ.get("HELM_BIN"), shutil.which("helm"), "/var/tmp/tenantry-tools/helm"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


PG_HOST = os.environ.get("TENANTRY_CI_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("TENANTRY_CI_PG_PORT", "5432")
PG_USER = os.environ.get("TENANTRY_CI_PG_USER", "postgres")


def pg_url(database: str, user: str = PG_USER) -> str:
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{database}"


def psql(database: str, sql: str, user: str = PG_USER, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["psql", "--no-psqlrc", "-Atq", "-v", "ON_ERROR_STOP=1", "-d", pg_url(database, user), "-c", sql],
        capture_output=True,
        text=True,
        check=check,
        timeout=60,
    )


def postgres_available() -> bool:
    if not all(shutil.which(tool) for tool in ("psql", "pg_dump", "pg_restore")):
        return False
    try:
        return psql("postgres", "SELECT 1", check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture
def scratch_roles():
    """Unique owner and app role names and a database name; dropped afterwards."""
    need(postgres_available(), f"PostgreSQL at {PG_HOST}:{PG_PORT} (user {PG_USER}) with psql, pg_dump, pg_restore")
    suffix = uuid.uuid4().hex[:10]
    names = {
        "owner": f"tenantry_t_owner_{suffix}",
        "app": f"tenantry_t_app_{suffix}",
        "database": f"tenantry_test_deploy_{suffix}",
        "suffix": suffix,
    }
    created: list[str] = []
    names["created_databases"] = created
    yield names
    for database in [names["database"], *created]:
        psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', check=False)
    for role in (names["owner"], names["app"]):
        psql("postgres", f'DROP ROLE IF EXISTS "{role}"', check=False)


def run_init_script(names: dict) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        PGHOST=PG_HOST,
        PGPORT=PG_PORT,
        POSTGRES_USER=PG_USER,
        APP_DB_NAME=names["database"],
        APP_DB_OWNER=names["owner"],
        APP_DB_USER=names["app"],
        APP_DB_OWNER_PASSWORD="owner-secret",
        APP_DB_PASSWORD="app-secret",
    )
    return subprocess.run(
        ["sh", str(DEPLOY / "postgres/init/10-tenantry-roles.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
