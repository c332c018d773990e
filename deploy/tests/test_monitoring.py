"""deploy/prometheus/alerts.yml and deploy/grafana/tenantry.json: they parse (PromQL included),
and every metric they use is one the server exports, found in its Rust source, or one of the
few listed below as planned."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from conftest import DEPLOY, ROOT, need

ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "tenantry.json"
RUNBOOK = ROOT / "docs" / "RUNBOOK.md"

# Metrics the rules and the dashboard use although the server does not export them yet. Each
# is planned (issue 14) and documented as such in alerts.yml, the dashboard and docs/RUNBOOK.md.
PLANNED: dict[str, str] = {}
# Series Prometheus itself writes for every scrape target.
PROMETHEUS_BUILTIN = {"up"}

# Grafana's variables, replaced by plausible values so the queries parse as PromQL.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "6h", "$instance": ".*"}


def exported_metrics() -> dict[str, str]:
    """Metric families registered in the server's Rust source: name -> kind. The server's
    registry prefixes every family with `tenantry_` (Registry::new_custom)."""
    families: dict[str, str] = {}
    pattern = re.compile(
        r"\b(?P<ctor>HistogramOpts|Opts|IntGauge|Gauge|IntCounter|Counter|Histogram)::(?:new|with_opts)\(\s*"
        r"\"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\"",
    )
    macro = re.compile(r"\bregister_(?P<kind>[a-z_]+?)(?:_vec)?!\(\s*\"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\"")
    sources = [*(ROOT / "apps").rglob("*.rs"), *(ROOT / "crates").rglob("*.rs")]
    prefixed = False
    for path in sources:
        text = path.read_text(encoding="utf-8")
        if 'new_custom(Some("tenantry".to_owned())' in text or "new_custom(Some(\"tenantry\"" in text:
            prefixed = True
        for match in pattern.finditer(text):
            kind = "histogram" if "Histogram" in match["ctor"] else "other"
            families[match["name"]] = kind
        for match in macro.finditer(text):
            families[match["name"]] = "histogram" if "histogram" in match["kind"] else "other"
    assert prefixed, "the server's registry no longer prefixes families with tenantry_: update this test"
    return {(name if name.startswith("tenantry_") else f"tenantry_{name}"): kind for name, kind in families.items()}


def series_names(families: dict[str, str]) -> set[str]:
    names = set()
    for name, kind in families.items():
        names.add(name)
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    return names


def promql():
    try:
        import promql_parser
    except ImportError:
        need(False, "promql-parser (pip) to parse PromQL")
    return promql_parser


def selectors(expr: str) -> list:
    """Every vector selector of `expr` (a PromQL syntax error fails the test)."""
    parser = promql()
    try:
        tree = parser.parse(expr)
    except ValueError as err:
        pytest.fail(f"invalid PromQL: {err}\n{expr}")
    found = []

    def visit(node):
        if isinstance(node, parser.VectorSelector):
            found.append(node)

    parser.walk(tree, visit)
    assert found, f"no metric in {expr}"
    return found


def alert_rules() -> list[dict]:
    document = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    assert set(document) == {"groups"}
    rules = []
    for group in document["groups"]:
        assert group["name"].startswith("tenantry-") and group["rules"], group
        rules += group["rules"]
    return rules


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            queries.append(expr)
    return queries


def label_values_of(text_path: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, (ROOT / text_path).read_text(encoding="utf-8")))


KNOWN_LABEL_VALUES = {
    # route: the templates the server labels requests with (the OpenAPI paths).
    "route": lambda: set(json.loads((ROOT / "docs/openapi.json").read_text())["paths"]),
    "outcome": lambda: label_values_of("crates/domain/src/webhooks.rs", r'Self::\w+ => "([a-z_]+)"'),
    "group": lambda: label_values_of("apps/server/src/http/limits.rs", r'Self::\w+ => "([a-z_]+)"'),
}


def check_metrics(exprs: list[str], where: str) -> set[str]:
    allowed = series_names(exported_metrics()) | set(PLANNED) | PROMETHEUS_BUILTIN
    used = set()
    for expr in exprs:
        for selector in selectors(expr):
            assert selector.name, f"{where}: a selector without a metric name: {expr}"
            assert selector.name in allowed, (
                f"{where}: {selector.name} is neither exported by the server (apps/, crates/) nor listed as planned")
            used.add(selector.name)
            for matcher in selector.matchers.matchers if selector.matchers else []:
                if matcher.name not in KNOWN_LABEL_VALUES or str(matcher.op) not in ("MatchOp.Equal", "MatchOp.Re"):
                    continue
                values = [matcher.value] if str(matcher.op) == "MatchOp.Equal" else matcher.value.split("|")
                known = KNOWN_LABEL_VALUES[matcher.name]()
                for value in values:
                    if re.fullmatch(r"[\w/{}.-]+", value):  # a literal, not a pattern
                        assert value in known, f"{where}: {matcher.name}=\"{value}\" is not a value the server uses"
    return used


# --- tests -------------------------------------------------------------------------------------

def test_the_server_exports_the_metrics_this_suite_expects_to_find():
    families = exported_metrics()
    for name in ("tenantry_http_requests_total", "tenantry_http_request_duration_seconds",
                 "tenantry_webhook_queue_depth", "tenantry_webhook_attempts_total"):
        assert name in families, f"{name} not found: is the extraction still right?"
    assert families["tenantry_http_request_duration_seconds"] == "histogram"


def test_alert_rules_are_complete():
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names)), "duplicate alert names"
    for rule in rules:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"Tenantry[A-Z][A-Za-z]+", rule["alert"])
        assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], rule["alert"]
        assert annotations["runbook_url"].endswith("docs/RUNBOOK.md#" + rule["alert"].lower()), rule["alert"]


def test_every_alert_has_a_runbook_section():
    headings = {line[4:].strip() for line in RUNBOOK.read_text(encoding="utf-8").splitlines() if line.startswith("### ")}
    for rule in alert_rules():
        assert rule["alert"] in headings, f"docs/RUNBOOK.md has no '### {rule['alert']}' section"


def test_alert_expressions_parse_and_use_only_known_metrics():
    used = check_metrics([rule["expr"] for rule in alert_rules()], "alerts.yml")
    # The topics the rules must cover, by the metric that carries each.
    for metric in ("up", "tenantry_http_requests_total", "tenantry_http_request_duration_seconds_bucket",
                   "tenantry_webhook_queue_depth", "tenantry_webhook_attempts_total", "tenantry_mail_outbox_depth",
                   "tenantry_db_pool_connections_in_use", "tenantry_rate_limit_store_failures_total"):
        assert metric in used, f"no alert over {metric}"
    login = [rule for rule in alert_rules() if 'route="/api/v1/auth/login"' in rule["expr"]]
    assert login, "no alert on sign-in failures"
    ready = [rule for rule in alert_rules() if 'route="/health/ready"' in rule["expr"]]
    assert ready, "no alert on readiness"


def test_the_dashboard_parses_and_uses_only_known_metrics():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] and dashboard["title"] == "Tenantry" and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] != "row":
            assert panel["targets"] and panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert {t["refId"] for t in panel["targets"]} == {chr(65 + i) for i in range(len(panel["targets"]))}
    used = check_metrics(dashboard_queries(), "tenantry.json")
    alerting = set()
    for rule in alert_rules():
        alerting |= {selector.name for selector in selectors(rule["expr"])}
    assert alerting <= used, f"metrics alerted on but not on the dashboard: {sorted(alerting - used)}"


def test_planned_metrics_are_used_and_marked_as_planned_where_they_appear():
    alerts_text = ALERTS.read_text(encoding="utf-8")
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    runbook = RUNBOOK.read_text(encoding="utf-8")
    exported = series_names(exported_metrics())
    for name in PLANNED:
        if name in exported:
            continue  # landed: it may leave PLANNED
        assert name in alerts_text and name in runbook, name
        panels = [p for p in dashboard["panels"] if any(name in t["expr"] for t in p.get("targets", []))]
        assert panels and all("PLANNED" in p["description"] for p in panels), name
    assert alerts_text.count("PLANNED") >= len([n for n in PLANNED if n not in exported])


def test_promtool_accepts_the_rules_when_installed():
    import shutil
    import subprocess

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not installed (no registry ships it); the parser checks above ran instead")
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
