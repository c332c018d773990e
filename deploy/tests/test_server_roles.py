"""The database role model of the deployment files, with the real `tenantry` binary: migrations
as the owner, the API and the worker as the application role (bound by Row-Level Security,
unable to change the schema), the worker's health check command, the metric labels the alert
rules select on, and a backup restored into a new database that the API then serves.

The binary is the debug build .ci/run makes before this step (`cargo build -p tenantry-server`),
or TENANTRY_TEST_SERVER_BIN."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import DEPLOY, PG_HOST, PG_PORT, need, pg_url, psql, run_init_script

PASSWORD = "correct horse battery staple 42"


def server_binary() -> Path | None:
    explicit = os.environ.get("TENANTRY_TEST_SERVER_BIN")
    target = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/tenantry-target"))
    for candidate in (explicit, target / "debug" / "tenantry"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


def role_url(names: dict, role: str, database: str | None = None) -> str:
    password = "owner-secret" if role == "owner" else "app-secret"
    return f"postgres://{names[role]}:{password}@{PG_HOST}:{PG_PORT}/{database or names['database']}"


class Tenantry:
    """Runs the binary with a clean TENANTRY_* environment (development mode, no Redis)."""

    def __init__(self, binary: Path, data_dir: Path):
        self.binary = binary
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TENANTRY_")}
        self.env.update(TENANTRY_DATA_DIR=str(data_dir), TENANTRY_LOG_FORMAT="json", TENANTRY_LOG="info",
                        TENANTRY_BIND="127.0.0.1:0")

    def run(self, database_url: str, *args: str) -> subprocess.CompletedProcess:
        env = dict(self.env, TENANTRY_DATABASE_URL=database_url)
        return subprocess.run([str(self.binary), *args], env=env, capture_output=True, text=True, timeout=120)

    def start(self, database_url: str, *args: str) -> "Running":
        env = dict(self.env, TENANTRY_DATABASE_URL=database_url)
        process = subprocess.Popen([str(self.binary), *args], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True)
        return Running(process)


class Running:
    """A started process whose output a thread drains (a full pipe would block it)."""

    def __init__(self, process: subprocess.Popen):
        self.process = process
        self.lines: list[str] = []
        self.listening = threading.Event()
        self.port = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line)
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("message") == "tenantry is listening":
                self.port = int(entry["address"].rsplit(":", 1)[1])
                self.listening.set()

    def wait_listening(self) -> int:
        if not self.listening.wait(timeout=60):
            self.process.kill()
            pytest.fail(f"the server did not start (exit {self.process.poll()}): {self.log()}")
        return self.port

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.reader.join(timeout=5)


def call(port: int, method: str, path: str, body: dict | None = None, token: str | None = None):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_the_deployment_role_model_with_the_real_server(scratch_roles, tmp_path):
    binary = server_binary()
    need(binary is not None, "the tenantry binary (cargo build -p tenantry-server, or TENANTRY_TEST_SERVER_BIN)")
    names = scratch_roles
    assert run_init_script(names).returncode == 0
    tenantry = Tenantry(binary, tmp_path / "data")
    app_url, owner_url = role_url(names, "app"), role_url(names, "owner")

    # The application role cannot migrate (it may create nothing); the owner does, once.
    refused = tenantry.run(app_url, "migrate")
    assert refused.returncode != 0 and "permission denied for schema public" in refused.stderr
    migrated = tenantry.run(owner_url, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    owners = psql(names["database"], "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'").stdout
    assert owners.split() == [names["owner"]]
    # The worker's health check in docker-compose.yml and deploy/k8s, run as the worker runs.
    status = tenantry.run(app_url, "migrate", "--status")
    assert status.returncode == 0, status.stderr

    server = tenantry.start(app_url, "serve", "--no-migrate", "--no-worker")
    worker = tenantry.start(app_url, "worker")
    try:
        port = server.wait_listening()
        assert call(port, "GET", "/health/ready")[0] == 200
        assert call(port, "POST", "/api/v1/auth/register", {"email": "ops@example.com", "password": PASSWORD})[0] == 201
        status_code, body = call(port, "POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD})
        assert status_code == 200, body
        token = json.loads(body)["access_token"]
        assert call(port, "POST", "/api/v1/orgs", {"name": "Acme", "slug": "acme"}, token)[0] == 201
        assert call(port, "POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": "wrong"})[0] == 401
        # The series the alert rules select on, as the server writes them.
        metrics = call(port, "GET", "/metrics")[1]
        for series in ('tenantry_http_requests_total{method="POST",route="/api/v1/auth/login",status="401"} 1',
                       'tenantry_http_requests_total{method="GET",route="/health/ready",status="200"} 1',
                       'tenantry_http_request_duration_seconds_bucket{method="POST",route="/api/v1/orgs",le="+Inf"} 1',
                       "tenantry_http_requests_in_flight 1"):
            assert series in metrics, series
        # Tenant rows are fenced for the application role outside a tenant transaction.
        assert psql(names["database"], "SELECT count(*) FROM orgs", user=names["app"]).stdout.strip() == "0"
        assert psql(names["database"], "SELECT count(*) FROM orgs").stdout.strip() == "1"
        time.sleep(1)  # let the worker run a few steps as the application role
        assert worker.process.poll() is None, worker.log()
    finally:
        assert server.stop() == 0, server.log()
        worker_exit = worker.stop()
    worker_log = worker.log()
    assert worker_exit == 0, worker_log
    assert '"level":"ERROR"' not in worker_log, worker_log

    # Backup as the superuser, restore into a new database, serve it as the application role.
    backup = subprocess.run(["bash", str(DEPLOY / "backup/backup.sh"), "-d", pg_url(names["database"]),
                             "-o", str(tmp_path / "backups")], capture_output=True, text=True, timeout=120)
    assert backup.returncode == 0, backup.stderr
    restored = f"{names['database']}_restored"
    names["created_databases"].append(restored)
    psql("postgres", f'CREATE DATABASE "{restored}" OWNER "{names["owner"]}"')
    restore = subprocess.run(["bash", str(DEPLOY / "backup/restore.sh"), "-t", pg_url(restored), backup.stdout.strip()],
                             capture_output=True, text=True, timeout=120)
    assert restore.returncode == 0, restore.stderr
    assert tenantry.run(role_url(names, "app", restored), "migrate", "--status").returncode == 0
    server = tenantry.start(role_url(names, "app", restored), "serve", "--no-migrate", "--no-worker")
    try:
        port = server.wait_listening()
        status_code, body = call(port, "POST", "/api/v1/auth/login", {"email": "ops@example.com", "password": PASSWORD})
        assert status_code == 200, body
        status_code, body = call(port, "GET", "/api/v1/orgs", token=json.loads(body)["access_token"])
        assert status_code == 200 and [org["slug"] for org in json.loads(body)["items"]] == ["acme"], body
    finally:
        assert server.stop() == 0, server.log()
