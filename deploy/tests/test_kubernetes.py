"""deploy/k8s and the Helm chart: every object parses, passes the Kubernetes schema
(kubernetes-validate, strict) and the checks an operator relies on (probes, resources,
non-root, read-only root, no capabilities, hooks, selectors that select something)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from conftest import DEPLOY, helm_binary, known_variables, load_yaml_documents, need

K8S = DEPLOY / "k8s"
CHART = DEPLOY / "helm" / "tenantry"
DATA_DIR = "/var/lib/tenantry/data"
SECRET_KEYS = {"database-url", "migrate-database-url", "redis-url", "smtp-url", "encryption-key",
               "aws-access-key-id", "aws-secret-access-key", "jwt-ed25519.pem"}
SCHEMA_VERSIONS = ("1.30.0", "1.37.0")  # the oldest the manifests support (preStop sleep), the newest known


def plain_manifests() -> list[dict]:
    objects = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            objects += load_yaml_documents(path)
    return objects


def helm(*args: str) -> subprocess.CompletedProcess:
    binary = helm_binary()
    need(binary is not None, "helm (HELM_BIN, PATH or /var/tmp/tenantry-tools/helm; .ci/run installs it)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=120)


def render(*values: str, extra: tuple[str, ...] = ()) -> list[dict]:
    args = ["template", "t", str(CHART), "--namespace", "tenantry"]
    for name in values:
        args += ["-f", str(CHART / "ci" / name)]
    result = helm(*args, *extra)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(objects: list[dict], kind: str) -> list[dict]:
    return [obj for obj in objects if obj["kind"] == kind]


def hook(obj: dict) -> str | None:
    return obj["metadata"].get("annotations", {}).get("helm.sh/hook")


def pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag not in ("", "latest")


def check_pod(owner: dict, known: set[str]) -> None:
    """What every Tenantry pod template must have."""
    name = f"{owner['kind']}/{owner['metadata']['name']}"
    spec = owner["spec"]["template"]["spec"]
    security = spec["securityContext"]
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0, name
    assert security["seccompProfile"]["type"] == "RuntimeDefault", name
    assert spec["automountServiceAccountToken"] is False, name
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    for container in spec["containers"]:
        where = f"{name} container {container['name']}"
        assert pinned(container["image"]), f"{where}: image {container['image']} is not pinned"
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), where
        assert "memory" in resources["limits"], where
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, where
        assert context["allowPrivilegeEscalation"] is False, where
        assert context["runAsNonRoot"] is True, where
        assert context["capabilities"]["drop"] == ["ALL"], where
        assert "add" not in context["capabilities"], where
        mounts = {mount["mountPath"]: mount for mount in container["volumeMounts"]}
        # With a read-only root, these are the only writable places: both must be volumes.
        for path in ("/tmp", DATA_DIR):
            assert path in mounts and "emptyDir" in volumes[mounts[path]["name"]], f"{where}: {path}"
        jwt = mounts["/var/run/secrets/tenantry"]
        assert jwt["readOnly"] is True and "secret" in volumes[jwt["name"]], where
        for variable in container.get("env", []):
            if variable["name"].startswith("TENANTRY_"):
                assert variable["name"] in known, f"{where}: {variable['name']}"
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in SECRET_KEYS, f"{where}: secret key {ref['key']}"
        assert [source["configMapRef"]["name"] for source in container["envFrom"]], where


REQUIRED_KINDS = ("Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                  "NetworkPolicy", "Job", "ConfigMap")


def check_set(objects: list[dict], helm_rendered: bool = False, disabled: tuple[str, ...] = ()) -> None:
    known = known_variables()
    kinds = {obj["kind"] for obj in objects}
    for kind in REQUIRED_KINDS:
        if kind not in disabled:
            assert kind in kinds, f"no {kind}"
    for obj in objects:
        assert obj["apiVersion"] and obj["metadata"]["name"], obj
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "tenantry", obj["metadata"]["name"]

    deployments = {obj["spec"]["template"]["spec"]["containers"][0]["args"][0]: obj for obj in by_kind(objects, "Deployment")}
    assert set(deployments) == {"serve", "worker"}
    serve, worker = deployments["serve"], deployments["worker"]
    for deployment in (serve, worker):
        check_pod(deployment, known)
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] >= 35

    api = serve["spec"]["template"]["spec"]["containers"][0]
    assert api["args"] == ["serve", "--no-migrate", "--no-worker"]
    assert [port["name"] for port in api["ports"]] == ["http"]
    assert api["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert api["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert api["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert api["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    jobs = worker["spec"]["template"]["spec"]["containers"][0]
    assert jobs["args"] == ["worker"] and "ports" not in jobs
    assert jobs["readinessProbe"]["exec"]["command"] == ["/usr/local/bin/tenantry", "migrate", "--status"]
    assert "livenessProbe" not in jobs, "a liveness probe over the database would restart every worker in an outage"

    (job,) = by_kind(objects, "Job")
    check_pod(job, known)
    migrate = job["spec"]["template"]["spec"]["containers"][0]
    assert migrate["args"] == ["migrate"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0
    database = next(v for v in migrate["env"] if v["name"] == "TENANTRY_DATABASE_URL")
    assert database["valueFrom"]["secretKeyRef"]["key"] == "migrate-database-url", "migrations run as the owner"
    for deployment in (serve, worker):
        app_database = next(v for v in deployment["spec"]["template"]["spec"]["containers"][0]["env"]
                            if v["name"] == "TENANTRY_DATABASE_URL")
        assert app_database["valueFrom"]["secretKeyRef"]["key"] == "database-url"

    (service,) = by_kind(objects, "Service")
    assert service["spec"]["selector"].items() <= serve["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["selector"].items() - worker["spec"]["template"]["metadata"]["labels"].items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"

    for ingress in by_kind(objects, "Ingress"):
        assert ingress["spec"]["tls"], "TLS terminates at the Ingress"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["backend"]["service"]["name"] == service["metadata"]["name"]
                assert path["backend"]["service"]["port"]["name"] == "http"
                assert path["path"] not in ("/", "/metrics") and not path["path"].startswith("/health"), path

    for hpa in by_kind(objects, "HorizontalPodAutoscaler"):
        assert hpa["spec"]["scaleTargetRef"]["name"] == serve["metadata"]["name"]
        assert 2 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
        assert "replicas" not in serve["spec"] or not helm_rendered, "with an HPA the chart leaves replicas to it"

    selected = set()
    for pdb in by_kind(objects, "PodDisruptionBudget"):
        labels = pdb["spec"]["selector"]["matchLabels"].items()
        matches = [d for d in (serve, worker) if labels <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(matches) == 1, pdb["metadata"]["name"]
        selected.add(matches[0]["metadata"]["name"])
    assert serve["metadata"]["name"] in selected

    policies = by_kind(objects, "NetworkPolicy")
    deny = [p for p in policies if set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
            and not p["spec"].get("ingress") and not p["spec"].get("egress")]
    assert deny, "no default-deny policy"
    assert deny[0]["spec"]["podSelector"]["matchLabels"].items() <= job["spec"]["template"]["metadata"]["labels"].items()
    egress_ports = {port["port"] for p in policies for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])}
    assert {53, 5432, 6379, 443, 465} <= egress_ports
    api_ingress = [p for p in policies if p["spec"].get("ingress")]
    assert api_ingress and all(rule["ports"] == [{"port": 8080, "protocol": "TCP"}]
                               for p in api_ingress for rule in p["spec"]["ingress"])

    for config in by_kind(objects, "ConfigMap"):
        for key in config["data"]:
            assert key in known or key.startswith("AWS_"), f"ConfigMap {config['metadata']['name']}: {key}"
        assert config["data"]["TENANTRY_ENV"] == "production"
        assert config["data"]["TENANTRY_PUBLIC_URL"].startswith("https://")
        assert config["data"]["TENANTRY_STORAGE_URL"].startswith("s3://")
        assert config["data"]["TENANTRY_JWT_PRIVATE_KEY_FILE"] == "/var/run/secrets/tenantry/jwt-ed25519.pem"


def schema_check(objects: list[dict], tmp_path: Path) -> None:
    try:
        import kubernetes_validate
    except ImportError:
        need(False, "kubernetes-validate (pip), which ships the Kubernetes JSON schemas")
    for version in SCHEMA_VERSIONS:
        for obj in objects:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as err:  # pragma: no cover - the message is the point
                pytest.fail(f"{obj['kind']}/{obj['metadata']['name']} against {version}: {err.message} at {list(err.path)}")


# --- plain manifests ---------------------------------------------------------------------------

def test_plain_manifests_parse_and_pass_the_checks():
    check_set(plain_manifests())


def test_plain_manifests_pass_the_kubernetes_schema(tmp_path):
    schema_check(plain_manifests(), tmp_path)


def test_the_example_secret_holds_every_key_the_pods_read():
    (secret,) = load_yaml_documents(K8S / "secret.example.yaml")
    assert set(secret["stringData"]) == SECRET_KEYS
    assert all("CHANGE-ME" in value for value in secret["stringData"].values()), "placeholders only"


def test_kustomization_lists_the_manifests_and_renders():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    # Applied by hand, in order: the Secret (real values), and the Job before the rollout.
    assert on_disk - listed == {"secret.example.yaml", "job-migrate.yaml"}
    assert listed <= on_disk
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (for `kubectl kustomize`, which works offline)")
    result = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rendered = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    assert all(obj["metadata"]["namespace"] == "tenantry" for obj in rendered)
    rendered += load_yaml_documents(K8S / "job-migrate.yaml")
    check_set(rendered)


# --- Helm chart --------------------------------------------------------------------------------

def test_helm_lint_passes():
    for values in ("values-secrets.yaml", "values-existing-secret.yaml"):
        result = helm("lint", "--strict", str(CHART), "-f", str(CHART / "ci" / values))
        assert result.returncode == 0, result.stdout + result.stderr


def test_the_chart_renders_the_same_objects_with_secrets_from_values(tmp_path):
    objects = render("values-secrets.yaml")
    check_set(objects, helm_rendered=True)
    schema_check(objects, tmp_path)
    secrets = {s["metadata"]["name"]: s for s in by_kind(objects, "Secret")}
    assert set(secrets) == {"t-tenantry", "t-tenantry-migrate"}
    for secret in secrets.values():
        assert set(secret["data"]) == SECRET_KEYS
    data = {key: base64.b64decode(value).decode() for key, value in secrets["t-tenantry"]["data"].items()}
    values = yaml.safe_load((CHART / "ci" / "values-secrets.yaml").read_text())
    app = urlsplit(data["database-url"])
    # The password survives URL encoding exactly (spaces, slashes, colons, at signs).
    assert (unquote(app.username), unquote(app.password)) == ("tenantry_app", values["postgresql"]["app"]["password"])
    assert app.hostname == "postgres.example.internal" and app.port == 5432 and app.query == "sslmode=require"
    assert urlsplit(data["migrate-database-url"]).username == "tenantry_owner"
    assert data["redis-url"] == values["redis"]["url"]
    # Pods roll when the configuration or the secrets change.
    for deployment in by_kind(objects, "Deployment"):
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert {"checksum/config", "checksum/secret"} <= set(annotations)


def test_migrations_are_a_pre_install_and_pre_upgrade_hook_with_their_own_config():
    objects = render("values-secrets.yaml")
    hooks = [obj for obj in objects if hook(obj)]
    assert {(obj["kind"], obj["metadata"]["name"]) for obj in hooks} == {
        ("Job", "t-tenantry-migrate"), ("ConfigMap", "t-tenantry-migrate"), ("Secret", "t-tenantry-migrate")}
    weights = {obj["kind"]: int(obj["metadata"]["annotations"]["helm.sh/hook-weight"]) for obj in hooks}
    assert weights["ConfigMap"] < weights["Job"] and weights["Secret"] < weights["Job"]
    for obj in hooks:
        assert hook(obj) == "pre-install,pre-upgrade"
        assert "hook-succeeded" in obj["metadata"]["annotations"]["helm.sh/hook-delete-policy"]
    (job,) = by_kind(objects, "Job")
    spec = job["spec"]["template"]["spec"]
    assert "serviceAccountName" not in spec, "the release's ServiceAccount does not exist before install"
    container = spec["containers"][0]
    assert container["envFrom"][0]["configMapRef"]["name"] == "t-tenantry-migrate"
    assert {v["valueFrom"]["secretKeyRef"]["name"] for v in container["env"]} == {"t-tenantry-migrate"}


def test_the_chart_with_an_existing_secret_renders_no_secret(tmp_path):
    objects = render("values-existing-secret.yaml")
    check_set(objects, helm_rendered=True, disabled=("Ingress", "HorizontalPodAutoscaler"))
    schema_check(objects, tmp_path)
    assert not by_kind(objects, "Secret") and not by_kind(objects, "Ingress")
    assert not by_kind(objects, "HorizontalPodAutoscaler")
    names = {v["valueFrom"]["secretKeyRef"]["name"]
             for d in by_kind(objects, "Deployment") + by_kind(objects, "Job")
             for v in d["spec"]["template"]["spec"]["containers"][0]["env"] if "valueFrom" in v}
    assert names == {"tenantry-managed"}
    serve = next(d for d in by_kind(objects, "Deployment") if d["metadata"]["name"].endswith("-serve"))
    assert serve["spec"]["replicas"] == 3
    config = next(c for c in by_kind(objects, "ConfigMap") if not hook(c))
    assert config["data"]["TENANTRY_RATE_LIMIT_ANONYMOUS"] == "60/min"
    policy = next(p for p in by_kind(objects, "NetworkPolicy") if p["spec"].get("ingress"))
    allowed = [s["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] for s in policy["spec"]["ingress"][0]["from"]]
    assert allowed == ["traefik", "observability"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ((), "postgresql.app.password is required"),
        (("-f", str(CHART / "ci" / "values-secrets.yaml"), "--set", "image.tag=latest"), "not latest"),
        (("-f", str(CHART / "ci" / "values-secrets.yaml"), "--set", "config.TENANTRY_ENV=development"),
         "config.TENANTRY_ENV is set by the chart"),
    ],
)
def test_the_chart_refuses_incomplete_or_unsafe_values(extra, message):
    result = helm("template", "t", str(CHART), *extra)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_the_chart_names_only_variables_the_server_reads():
    known = known_variables()
    for path in [*CHART.rglob("*.yaml"), *CHART.rglob("*.tpl")]:
        for name in set(re.findall(r"TENANTRY_[A-Z0-9_]+", path.read_text())):
            assert name in known, f"{path.relative_to(CHART)}: {name}"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["appVersion"]
    json.dumps(chart)  # plain data
