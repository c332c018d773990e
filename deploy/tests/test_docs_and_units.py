"""The operator documentation, the systemd units and the licence: links resolve, only real
variables are named, the units are valid and hardened, the licence matches Cargo.toml."""

from __future__ import annotations

import configparser
import hashlib
import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import DEPLOY, ROOT, known_variables

DOCS = [ROOT / "docs" / name for name in ("DEPLOYMENT.md", "PRODUCTION_CHECKLIST.md", "RUNBOOK.md", "SCALING.md")]
DOCS += [ROOT / name for name in ("SECURITY.md", "CONTRIBUTING.md", "CHANGELOG.md")]
# Named in the docs as planned, not read by the server yet (API.md lists it).
PLANNED_VARIABLES: set[str] = set()
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
# The canonical text of https://www.apache.org/licenses/LICENSE-2.0.txt
APACHE_2_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"


def variables_in(text: str) -> set[str]:
    return {name for name in re.findall(r"TENANTRY_[A-Z0-9_]*[A-Z0-9]", text)
            if not name.startswith(("TENANTRY_TEST_", "TENANTRY_CI_"))}


def slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = re.sub(r"[`*]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {slug(line.lstrip("#")) for line in lines if line.startswith("#")}


def check_variables(path) -> None:
    """Every TENANTRY_* in `path` is read by the server, or is planned and said to be so nearby."""
    known = known_variables()
    text = path.read_text(encoding="utf-8", errors="replace")
    for name in variables_in(text):
        where = f"{path.relative_to(ROOT)} names {name}"
        assert name in known or name in PLANNED_VARIABLES, f"{where}, which the server does not read"
        if name in known:
            continue
        for match in re.finditer(re.escape(name), text):
            context = text[max(0, match.start() - 300): match.end() + 300].lower()
            assert "planned" in context, f"{where} without saying it is planned"


def test_deployment_files_name_only_variables_the_server_reads():
    files = [p for p in DEPLOY.rglob("*") if p.is_file() and "tests" not in p.relative_to(DEPLOY).parts]
    assert len(files) > 30
    for path in files:
        check_variables(path)


def test_docs_name_only_real_or_explicitly_planned_variables():
    for path in DOCS:
        check_variables(path)


@pytest.mark.parametrize("path", DOCS + [ROOT / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    text = path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file_part, _, anchor = target.partition("#")
        destination = (path.parent / file_part).resolve() if file_part else path
        assert destination.exists(), f"{path.name}: broken link {target}"
        if anchor and destination.suffix == ".md":
            assert anchor in anchors(destination), f"{path.name}: no #{anchor} in {destination.name}"


def test_the_deployment_guide_covers_every_way_to_run_it():
    headings = anchors(ROOT / "docs" / "DEPLOYMENT.md")
    for section in ("docker-compose", "kubernetes", "helm", "one-vm-with-systemd", "the-database-roles", "monitoring"):
        assert section in headings, section
    scaling = anchors(ROOT / "docs" / "SCALING.md")
    for section in ("api-replicas-are-stateless", "worker-count", "read-replicas", "redis", "partitioning-by-org_id"):
        assert section in scaling, section
    assert "Redis Cluster" in (ROOT / "docs" / "SCALING.md").read_text()


def test_the_licence_files_match_the_declared_licence():
    licence = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["license"]
    apache = lambda path: hashlib.md5(path.read_bytes()).hexdigest() == APACHE_2_MD5  # noqa: E731
    if licence == "Apache-2.0":
        assert apache(ROOT / "LICENSE"), "LICENSE is not the standard Apache-2.0 text"
        assert "Copyright 2026 Tenantry contributors" in (ROOT / "NOTICE").read_text()
    elif licence == "MIT OR Apache-2.0":
        assert apache(ROOT / "LICENSE-APACHE")
        assert "Permission is hereby granted, free of charge" in (ROOT / "LICENSE-MIT").read_text()
        assert "LICENSE-MIT" in (ROOT / "LICENSE").read_text()
    else:
        pytest.fail(f"no licence files for {licence!r}")


def test_the_readme_names_the_prerequisites():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Prerequisites", 1)[1].split("\n## ", 1)[0]
    minimum = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["rust-version"]
    channel = tomllib.loads((ROOT / "rust-toolchain.toml").read_text())["toolchain"]["channel"]
    assert f"Rust {minimum}" in section and channel in section and "C compiler" in section


def read_unit(path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text())
    return parser


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_units_run_the_right_command_unprivileged_and_hardened(path):
    unit = read_unit(path)
    service = unit["Service"]
    expected = {
        "tenantry.service": "/usr/local/bin/tenantry serve --no-migrate --no-worker",
        "tenantry-worker.service": "/usr/local/bin/tenantry worker",
        "tenantry-migrate.service": "/usr/local/bin/tenantry migrate",
    }[path.name]
    assert service["ExecStart"] == expected
    assert service["User"] == "tenantry" and service["Group"] == "tenantry"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
                       "PrivateTmp": "yes", "CapabilityBoundingSet": "", "StateDirectory": "tenantry"}.items():
        assert service[key] == value, f"{path.name}: {key}"
    assert service["EnvironmentFile"]  # the last one read; tenantry.env is first for every unit
    assert "EnvironmentFile=/etc/tenantry/tenantry.env" in path.read_text()
    if path.name == "tenantry-migrate.service":
        assert service["Type"] == "oneshot"
        assert "EnvironmentFile=/etc/tenantry/migrate.env" in path.read_text(), "migrations run as the owner"
    else:
        assert "migrate.env" not in path.read_text(), "the owner's credentials stay with the migration unit"
        assert "tenantry-migrate.service" in unit["Unit"]["Requires"].split()
        assert "tenantry-migrate.service" in unit["Unit"]["After"].split()
        assert service["RestartPreventExitStatus"] == "78"
        assert int(service["TimeoutStopSec"].rstrip("s")) > 30, "above TENANTRY_SHUTDOWN_TIMEOUT_SECS"


def test_systemd_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed; the parsed checks above still ran")
    for path in UNITS:
        # verify wants ExecStart's binary to exist: point it at one that does.
        (tmp_path / path.name).write_text(path.read_text().replace("/usr/local/bin/tenantry", "/bin/true"))
    result = subprocess.run([analyze, "verify", *(str(tmp_path / p.name) for p in UNITS)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    # Unknown keys and bad values are only warnings: treat any output as a failure.
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr + result.stdout


def test_env_examples_hold_only_known_variables_and_placeholders():
    known = known_variables()
    for name in ("tenantry.env.example", "migrate.env.example"):
        for line in (DEPLOY / "systemd" / name).read_text().splitlines():
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            assert key in known or key.startswith("AWS_"), f"{name}: {key}"
            if key in ("TENANTRY_DATABASE_URL", "TENANTRY_SMTP_URL", "TENANTRY_ENCRYPTION_KEY", "AWS_SECRET_ACCESS_KEY"):
                assert "CHANGE-ME" in value, f"{name}: {key} must be a placeholder"


def test_ci_runs_these_checks():
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"-m pytest -q .*deploy/tests", ci), "the deploy checks are not in .ci/run"
