"""deploy/Dockerfile: the dependency recipe covers the whole workspace (and really loads), the
toolchain matches rust-toolchain.toml, the runtime stage is non-root and read-only friendly."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib

import pytest

from conftest import DEPLOY, ROOT, need

DOCKERFILE = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
# Instructions with their continuation lines joined.
INSTRUCTIONS = [line.strip() for line in re.sub(r"\\\n", " ", DOCKERFILE).splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
WORKSPACE = tomllib.loads((ROOT / "Cargo.toml").read_text(encoding="utf-8"))
# Members as cargo reads them: a glob (`examples/*`) stands for every folder it matches.
MEMBERS = sorted(
    str(path.relative_to(ROOT)) for pattern in WORKSPACE["workspace"]["members"]
    for path in (ROOT.glob(pattern) if "*" in pattern else [ROOT / pattern])
    if (path / "Cargo.toml").is_file()
)


def stages() -> list[list[str]]:
    result: list[list[str]] = []
    for instruction in INSTRUCTIONS:
        if instruction.upper().startswith("FROM "):
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def planner_script() -> str:
    """The planner stage's RUN command, which writes the dependency recipe to /recipe."""
    (script,) = [i[len("RUN "):] for i in stages()[0] if i.startswith("RUN ")]
    assert script.startswith("out=/recipe ")
    return script


def test_the_build_stages_use_the_pinned_toolchain_and_the_workspace_minimum_allows_it():
    toolchain = tomllib.loads((ROOT / "rust-toolchain.toml").read_text(encoding="utf-8"))["toolchain"]
    assert [stage[0] for stage in stages()[:2]] == [
        f"FROM rust:{toolchain['channel']}-bookworm AS planner",
        f"FROM rust:{toolchain['channel']}-bookworm AS builder",
    ]
    assert set(toolchain["components"]) >= {"rustfmt", "clippy"}
    minimum = tuple(int(part) for part in WORKSPACE["workspace"]["package"]["rust-version"].split("."))
    assert minimum >= (1, 94), "the locked sea-orm 2 / sqlx 0.9 need 1.94"
    assert tuple(int(part) for part in toolchain["channel"].split(".")[:2]) >= minimum


def test_the_dependency_layers_come_before_the_sources():
    planner, builder = stages()[0], stages()[1]
    assert planner[1:3] == ["WORKDIR /src", "COPY . ."]
    steps = builder[1:]
    order = [steps.index(step) for step in (
        "COPY --from=planner /recipe/ ./",
        "RUN cargo fetch --locked",
        "RUN cargo build --release --locked --offline -p tenantry-server",
        "COPY . .",
    )]
    assert order == sorted(order), steps
    last = steps[steps.index("COPY . .") + 1]
    assert last.startswith("RUN find . -type f -name '*.rs'") and "-exec touch {} +" in last, \
        "the real sources must be newer than the stand-ins"


def test_the_recipe_covers_every_workspace_member_and_loads_with_the_locked_dependencies(tmp_path):
    """Runs the planner's script on a copy of the repository, then asks cargo to load the recipe
    with --locked (same resolution as the real workspace) and offline."""
    need(shutil.which("cargo") is not None, "cargo")
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns("target", ".git", "data", "__pycache__", "*.db"))
    recipe = tmp_path / "recipe"
    script = planner_script().replace("out=/recipe", f"out={recipe}", 1)
    result = subprocess.run(["sh", "-c", script], cwd=source, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    for member in MEMBERS:
        assert (recipe / member / "Cargo.toml").read_bytes() == (source / member / "Cargo.toml").read_bytes(), member
        stand_ins = sorted((recipe / member / "src").iterdir())
        assert stand_ins and all(len(p.read_text()) < 60 for p in stand_ins), member
    assert (recipe / "apps/server/src/main.rs").read_text() == "fn main() {}\n"
    result = subprocess.run(["cargo", "metadata", "--locked", "--offline", "--format-version", "1"],
                            cwd=recipe, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 and "offline" in result.stderr and "download" in result.stderr:
        need(False, "the crates of Cargo.lock in the local registry (`cargo fetch --locked` first)")
    assert result.returncode == 0, result.stderr[-2000:]
    assert (recipe / "Cargo.lock").read_bytes() == (source / "Cargo.lock").read_bytes(), "the lock file changed"
    assert len(json.loads(result.stdout)["workspace_members"]) == len(MEMBERS)


def test_the_runtime_stage_is_non_root_read_only_friendly_and_health_checked():
    runtime = stages()[-1]
    assert len(stages()) == 3
    assert runtime[0].startswith("FROM gcr.io/distroless/cc-debian12:nonroot")
    users = [instruction for instruction in runtime if instruction.startswith("USER ")]
    assert users == ["USER nonroot:nonroot"]
    assert 'VOLUME ["/var/lib/tenantry/data"]' in runtime
    assert any(instruction.startswith("COPY --from=builder --chown=65532:65532 /out/data /var/lib/tenantry/data")
               for instruction in runtime)
    health = [instruction for instruction in runtime if instruction.startswith("HEALTHCHECK ")]
    assert len(health) == 1 and health[0].endswith('CMD ["/usr/local/bin/tenantry", "healthcheck"]'), health
    assert 'ENTRYPOINT ["/usr/local/bin/tenantry"]' in runtime
    assert not any(instruction.startswith("RUN ") for instruction in runtime), "distroless has no shell"


def test_the_build_context_leaves_out_build_output_and_the_toolchain_file():
    # The image's toolchain is the pinned release; the file would make rustup fetch the rustfmt
    # and clippy components it lists during the build.
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    for entry in ("target/", ".git/", "data/", "rust-toolchain.toml"):
        assert entry in ignored, entry


def test_the_cli_has_the_healthcheck_subcommand_the_image_calls():
    cli = (ROOT / "apps/server/src/cli.rs").read_text(encoding="utf-8")
    assert re.search(r"^\s*Healthcheck\b", cli, re.M)
