"""deploy/docker-compose.yml: the wiring an operator relies on, checked on the parsed file, and by
`docker compose config` when a Compose binary is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
import yaml

from conftest import DEPLOY, ROOT, known_variables

COMPOSE = DEPLOY / "docker-compose.yml"
DATA_DIR = "/var/lib/tenantry/data"
TENANTRY_SERVICES = ("migrate", "tenantry", "tenantry-worker")


@pytest.fixture(scope="module")
def compose() -> dict:
    # PyYAML resolves the anchors and `<<` merge keys the file uses, as Compose does.
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


def test_a_one_shot_migrate_service_runs_the_real_subcommand(compose):
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["migrate"], "tenantry migrate (apps/server/src/cli.rs)"
    assert one_shot(migrate)
    cli = (ROOT / "apps/server/src/cli.rs").read_text(encoding="utf-8")
    assert re.search(r"^\s*Migrate\s*\{", cli, re.M), "the CLI has no migrate subcommand"


@pytest.mark.parametrize("name", ["tenantry", "tenantry-worker"])
def test_the_api_and_the_worker_wait_for_the_migrations_to_succeed(compose, name):
    service = compose["services"][name]
    assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    for dependency in ("postgres", "redis"):
        assert service["depends_on"][dependency]["condition"] == "service_healthy"
    assert "--no-migrate" in service["command"] or service["command"] == ["worker"]


def test_the_api_runs_neither_migrations_nor_jobs(compose):
    assert compose["services"]["tenantry"]["command"] == ["serve", "--no-migrate", "--no-worker"]
    assert compose["services"]["tenantry-worker"]["command"] == ["worker"]


def test_every_service_has_a_healthcheck_and_one_shots_disable_theirs(compose):
    for name, service in compose["services"].items():
        check = service.get("healthcheck")
        assert check is not None, f"{name} has no healthcheck"
        if one_shot(service):
            assert check == {"disable": True}, f"{name} runs once: its healthcheck is disabled explicitly"
        else:
            assert not check.get("disable"), name
            assert check["test"][0] in ("CMD", "CMD-SHELL") and len(check["test"]) > 1, name
            assert service.get("restart") == "unless-stopped", name


def test_the_api_probe_is_tenantry_healthcheck_and_the_worker_probe_exists_today(compose):
    assert compose["services"]["tenantry"]["healthcheck"]["test"] == ["CMD", "/usr/local/bin/tenantry", "healthcheck"]
    worker = compose["services"]["tenantry-worker"]["healthcheck"]["test"]
    assert worker == ["CMD", "/usr/local/bin/tenantry", "migrate", "--status"]


def test_every_image_is_pinned(compose):
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name} names no image"
        repository, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
        assert tag, f"{name}: {image} has no tag"
        assert tag != "latest", f"{name}: {image}"
        if "build" in service:
            assert image == "tenantry:local", f"{name} builds the local image"
            continue
        # A release tag: digits in it, and more than a bare major version (`16`, `7` float).
        assert re.search(r"\d+\.\d+|RELEASE\.\d{4}-\d{2}-\d{2}", tag), f"{name}: {image} is not a release tag"
        assert "@" not in repository


def test_keys_and_data_live_on_named_volumes(compose):
    volumes = compose["volumes"]
    for name in ("tenantry-keys", "postgres-data", "redis-data", "minio-data"):
        assert name in volumes, f"volume {name} is not declared"
    for name in TENANTRY_SERVICES:
        assert f"tenantry-keys:{DATA_DIR}" in compose["services"][name]["volumes"], name
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["postgres"]["volumes"]
    assert "redis-data:/data" in compose["services"]["redis"]["volumes"]
    assert "minio-data:/data" in compose["services"]["minio"]["volumes"]
    for service in compose["services"].values():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            assert source.startswith(".") or source in volumes, f"undeclared volume {source}"


def test_tenantry_containers_are_read_only_and_unprivileged(compose):
    for name in TENANTRY_SERVICES:
        service = compose["services"][name]
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert any(entry.startswith("/tmp") for entry in service["tmpfs"]), name


def test_the_app_connects_as_the_application_role_and_only_migrate_as_the_owner(compose):
    postgres = compose["services"]["postgres"]["environment"]
    superuser, owner, app = postgres["POSTGRES_USER"], postgres["APP_DB_OWNER"], postgres["APP_DB_USER"]
    assert len({superuser, owner, app}) == 3
    init = DEPLOY / "postgres/init/10-tenantry-roles.sh"
    assert "./postgres/init:/docker-entrypoint-initdb.d:ro" in compose["services"]["postgres"]["volumes"]
    assert init.exists() and init.stat().st_mode & 0o111

    def user_and_password(name: str) -> tuple[str, str]:
        url = urlsplit(compose["services"][name]["environment"]["TENANTRY_DATABASE_URL"])
        assert url.scheme == "postgres" and url.hostname == "postgres", url
        assert url.path == "/" + postgres["APP_DB_NAME"]
        return url.username, url.password

    for name in ("tenantry", "tenantry-worker"):
        user, password = user_and_password(name)
        assert user not in ("postgres", superuser, owner), f"{name} connects as {user}"
        assert (user, password) == (app, postgres["APP_DB_PASSWORD"])
    assert user_and_password("migrate") == (owner, postgres["APP_DB_OWNER_PASSWORD"])


def test_s3_and_smtp_are_there_for_development(compose):
    services = compose["services"]
    env = services["tenantry"]["environment"]
    assert env["TENANTRY_STORAGE_URL"] == "s3://tenantry"
    assert services["minio-init"]["command"] == ["mb", "--ignore-existing", "local/tenantry"]
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    assert urlsplit(env["TENANTRY_S3_ENDPOINT"]).hostname == "minio"
    assert urlsplit(env["TENANTRY_SMTP_URL"]).hostname == "mailpit"
    assert services["tenantry"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"


def test_only_variables_the_server_reads(compose):
    known = known_variables()
    for name in TENANTRY_SERVICES:
        for variable in compose["services"][name]["environment"]:
            assert variable in known or variable.startswith("AWS_"), f"{name}: {variable}"
    # Nothing else in the file may look like a server variable (the Rust test
    # tests/tests/deploy.rs checks the same).
    for variable in set(re.findall(r"TENANTRY_[A-Z0-9_]+", COMPOSE.read_text())):
        assert variable in known, variable


def test_published_ports_listen_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_docker_compose_config_accepts_the_file(tmp_path):
    """`docker compose config` (v2) validates the file against the Compose specification. With
    only the older `docker-compose` 1.x, whose schema predates the top-level `name`, the same
    file minus that line is validated."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                                capture_output=True, text=True, timeout=60)
    elif shutil.which("docker-compose"):
        text = COMPOSE.read_text(encoding="utf-8")
        assert text.count("\nname: tenantry\n") == 1
        copy = DEPLOY / f".compose-v1-check-{tmp_path.name}.yml"  # same folder: relative paths resolve
        copy.write_text(text.replace("\nname: tenantry\n", "\n"), encoding="utf-8")
        try:
            result = subprocess.run(["docker-compose", "-f", str(copy), "config", "--quiet"],
                                    capture_output=True, text=True, timeout=60)
        finally:
            copy.unlink()
    else:
        pytest.skip("no Compose binary (docker compose or docker-compose); the parsed checks above still ran")
    assert result.returncode == 0, result.stderr
