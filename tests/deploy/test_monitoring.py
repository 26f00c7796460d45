"""Static checks of deploy/k8s/base/monitoring: the alerts and the OpenTelemetry Collector.

* Every metric an alert reads exists in the services' Prometheus registry (or comes from Prometheus or
  kube-state-metrics), every label it matches or groups by exists on it, and fixed label values are
  ones the services produce (pre-initialised series, consumer groups, enums).
* Every selector is scoped to namespace hotline111; every alert has a severity, a summary, a
  description and a runbook_url whose anchor exists in the operations docs.
* With promtool on PATH, the rules pass `promtool check rules` and the rule unit tests below (the
  alerts fire on what they should and stay quiet otherwise); without it those two are skipped.
* The collector's configuration wires defined components only, listens where the Service, the probes
  and the NetworkPolicies say, and the pods are locked down like the services'.

Schema validation of these objects is done for every manifest by test_k8s_manifests.py.
"""
from __future__ import annotations

import functools
import importlib
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
MONITORING = K8S_DIR / "base" / "monitoring"
DOCS = REPO / "docs" / "operations.md"
RUNBOOKS = "https://github.com/hotline111/hotline111/blob/main/docs/operations.md#"
NAMESPACE = "hotline111"
SERVICES = ("intake", "referral", "notify", "reporting")
SEVERITIES = frozenset({"critical", "warning", "info"})
COLLECTOR = "otel-collector"
# The services' exporter speaks OTLP/HTTP (runtime/tracing.py) and appends /v1/traces itself.
OTLP_ENDPOINT = f"http://{COLLECTOR}:4318"

# Labels Prometheus Operator puts on every ServiceMonitor/PodMonitor target. A metric's own label of the
# same name is kept as exported_<name> (honorLabels is off).
TARGET_LABELS = frozenset({"job", "instance", "namespace", "service", "pod", "container", "endpoint"})
# Series that are not the services': Prometheus's own, and kube-state-metrics' (honorLabels on, so its
# `namespace` is the object's).
EXTERNAL: dict[str, frozenset[str]] = {
    "up": TARGET_LABELS,
    "kube_deployment_status_replicas_available": TARGET_LABELS | {"deployment"},
    "kube_deployment_spec_replicas": TARGET_LABELS | {"deployment"},
}

FUNCTIONS = frozenset("""
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes clamp clamp_max
    clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year days_in_month deg delta deriv
    double_exponential_smoothing exp floor histogram_avg histogram_count histogram_fraction histogram_quantile
    histogram_stddev histogram_stdvar histogram_sum holt_winters hour idelta increase info irate label_join
    label_replace last_over_time ln log10 log2 mad_over_time max_over_time min_over_time minute month pi
    predict_linear present_over_time quantile_over_time rad rate resets round scalar sgn sin sinh sort
    sort_by_label sort_by_label_desc sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time tan tanh
    time timestamp vector year
""".split())
AGGREGATORS = frozenset("sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk "
                        "limit_ratio".split())
KEYWORDS = frozenset("by without on ignoring group_left group_right and or unless offset bool atan2 inf nan "
                     "start end".split())
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
STRING = re.compile(r'"((?:[^"\\]|\\.)*)"' + r"|'((?:[^'\\]|\\.)*)'")
SELECTOR = re.compile(r"(?<![\w:])([a-zA-Z_:][\w:]*)?\s*\{([^{}]*)\}")
MATCHER = re.compile(r'\s*([a-zA-Z_]\w*)\s*(=~|!~|!=|=)\s*"S(\d+)"\s*,?')
IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)")


# ------------------------------------------------------------------------------------------ loading


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


@functools.cache
def objects() -> tuple[dict[str, Any], ...]:
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    return tuple(d for entry in kustomization["resources"] for d in _docs(MONITORING / entry))


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in objects() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name!r} in {MONITORING}, found {len(found)}"
    return found[0]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in objects() if d["kind"] == kind]


def alerts() -> list[dict[str, Any]]:
    rules = [r for rule in of_kind("PrometheusRule") for g in rule["spec"]["groups"] for r in g["rules"]]
    return [r for r in rules if "alert" in r]


ALERTS = alerts()


def read_env_file(path: Path) -> dict[str, str]:
    pairs = (line.strip().partition("=") for line in path.read_text().splitlines())
    return {k: v for k, _, v in pairs if k and not k.startswith("#")}


# ------------------------------------------------------------------------------- the registry


@functools.cache
def registry() -> dict[str, frozenset[str]]:
    """Every sample name the four services expose (foo_total, foo_bucket, ...) -> its label names."""
    for svc in SERVICES:  # importing the apps defines every metric (nothing is created or started)
        importlib.import_module(f"services.{svc}.app")
    names: dict[str, frozenset[str]] = {}
    for name, collector in REGISTRY._names_to_collectors.items():  # noqa: SLF001 - no public listing
        labels = frozenset(getattr(collector, "_labelnames", ()))
        names[name] = labels | {"le"} if name.endswith("_bucket") else labels
    return names


# Counters whose every series is created at 0 on import: their samples list every value a label takes.
PREINITIALISED = frozenset({"referral_deadline_breaches_total", "referral_escalations_unplaced_total",
                            "referral_deadline_scans_total", "notify_notifications_finished_total"})


@functools.cache
def known_values() -> dict[tuple[str, str], frozenset[str]]:
    """(sample name, label) -> the values the services produce, where they are known up front: series
    pre-initialised at 0, the consumer groups, the provider verdicts."""
    registry()
    values: dict[tuple[str, str], set[str]] = {}
    for family in REGISTRY.collect():
        for sample in family.samples:
            if sample.name in PREINITIALISED:
                for label, value in sample.labels.items():
                    values.setdefault((sample.name, label), set()).add(value)
    assert {name for name, _ in values} == PREINITIALISED, "a pre-initialised counter has no series"
    from services.notify.delivery.outcome import Verdict

    values[("notify_send_attempts_total", "verdict")] = {v.value for v in Verdict}
    for name in ("consumer_lag", "events_dead_lettered_total", "events_failed_total", "events_consumed_total"):
        values[(name, "consumer")] = set(consumer_groups())
    return {k: frozenset(v) for k, v in values.items()}


@functools.cache
def consumer_groups() -> frozenset[str]:
    """The consumer groups the services' apps add (a literal, or a module constant)."""
    groups = set()
    for svc in SERVICES:
        module = importlib.import_module(f"services.{svc}.app")
        source = Path(module.__file__).read_text()
        for literal, constant in re.findall(r'add_consumer\(\s*(?:"([^"]+)"|([A-Z_][A-Z0-9_]*))', source):
            groups.add(literal or getattr(module, constant))
    assert groups, "no add_consumer( calls found in services/*/app.py"
    return frozenset(groups)


def effective_labels(metric: str) -> frozenset[str]:
    """The labels a series has in Prometheus: the target's, plus its own (renamed if they clash)."""
    if metric in EXTERNAL:
        return EXTERNAL[metric]
    own = registry()[metric]
    return TARGET_LABELS | {f"exported_{label}" if label in TARGET_LABELS else label for label in own}


# ---------------------------------------------------------------------------------------- PromQL


class Query:
    """What an expression reads: its selectors (metric, matchers) and the labels it groups or matches on.
    Enough PromQL for alert rules; not a parser."""

    def __init__(self, expr: str):
        self.strings: list[str] = []

        def stash(m: re.Match) -> str:
            self.strings.append(m.group(1) if m.group(1) is not None else m.group(2))
            return f'"S{len(self.strings) - 1}"'

        text = STRING.sub(stash, expr)
        self.grouping = [label.strip() for _, labels in GROUPING.findall(text)
                         for label in labels.split(",") if label.strip()]
        text = GROUPING.sub(" ", text)
        self.selectors: list[tuple[str, list[tuple[str, str, str]]]] = []
        for name, body in SELECTOR.findall(text):
            matchers = [(label, op, self.strings[int(i)]) for label, op, i in MATCHER.findall(body)]
            assert MATCHER.sub("", body).strip() == "", f"cannot read matchers {{{body}}} in {expr}"
            self.selectors.append((name, matchers))
        text = SELECTOR.sub(" ", text)
        text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
        text = re.sub(r"\boffset\s+-?[\dsmhdwy]+", " ", text)
        text = re.sub(r"\b\d+(\.\d+)?([eE][-+]?\d+)?[smhdwy]?\b", " ", text)
        for name in IDENTIFIER.findall(text):
            if name not in FUNCTIONS | AGGREGATORS | KEYWORDS:
                self.selectors.append((name, []))

    @property
    def metrics(self) -> list[str]:
        return [name for name, _ in self.selectors]


def test_query_reader_finds_metrics_labels_and_skips_the_rest() -> None:
    q = Query('sum by (namespace, job) (rate(foo_total{namespace="hotline111", route!~"/a|/b"}[5m])) / '
              'on (namespace) group_left max(bar) > 0.5 and baz unless qux{x="by (y)"} offset 10m')
    assert q.metrics == ["foo_total", "qux", "bar", "baz"]
    assert q.grouping == ["namespace", "job", "namespace"]
    assert q.selectors[0][1] == [("namespace", "=", "hotline111"), ("route", "!~", "/a|/b")]
    assert q.selectors[1][1] == [("x", "=", "by (y)")]


# ---------------------------------------------------------------------------------------- alerts


def _id(rule: dict[str, Any]) -> str:
    return rule["alert"]


def test_alerts_found_and_named_once() -> None:
    names = [r["alert"] for r in ALERTS]
    assert len(names) >= 10, f"only {len(names)} alerts"
    assert len(names) == len(set(names)), "an alert name is used twice"
    for name in names:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", name), f"{name}: CamelCase, letters and digits only"


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_alert_reads_metrics_the_services_export(rule: dict[str, Any]) -> None:
    query = Query(rule["expr"])
    assert query.metrics, f"{rule['alert']}: no metric in its expression"
    for name, matchers in query.selectors:
        assert name in registry() or name in EXTERNAL, (
            f"{rule['alert']}: metric {name!r} is exported by no service (counters end in _total, "
            "histograms in _bucket/_sum/_count)")
        labels = effective_labels(name)
        for label, op, value in matchers:
            assert label in labels, f"{rule['alert']}: {name} has no label {label!r} (it has {sorted(labels)})"
            known = known_values().get((name, label))
            if known and name not in EXTERNAL:
                _check_value(rule["alert"], name, label, op, value, known)
        # Other applications export metrics of these names: our selectors must stay in our namespace.
        assert ("namespace", "=", NAMESPACE) in matchers, (
            f'{rule["alert"]}: {name} must be selected with namespace="{NAMESPACE}"')
    for label in query.grouping:
        for name in query.metrics:
            assert label in effective_labels(name), f"{rule['alert']}: groups by {label!r}, which {name} lacks"


def _check_value(alert: str, metric: str, label: str, op: str, value: str, known: frozenset[str]) -> None:
    where = f'{alert}: {metric}{{{label}{op}"{value}"}}'
    if op in ("=", "!="):
        assert value in known, f"{where}: {value!r} is not one of {sorted(known)}"
    else:  # each alternative of a regex must match something, or it is a typo
        for alternative in value.split("|"):
            assert any(re.fullmatch(alternative, k) for k in known), (
                f"{where}: {alternative!r} matches none of {sorted(known)}")


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_alert_has_severity_annotations_and_a_runbook(rule: dict[str, Any]) -> None:
    name = rule["alert"]
    assert rule.get("for"), f"{name}: give `for` (0m when the expression already spans a window)"
    assert rule.get("labels", {}).get("severity") in SEVERITIES, f"{name}: severity one of {sorted(SEVERITIES)}"
    annotations = rule.get("annotations", {})
    for key in ("summary", "description", "runbook_url"):
        assert annotations.get(key, "").strip(), f"{name}: annotation {key} is missing"
    assert annotations["runbook_url"] == f"{RUNBOOKS}alert-{name.lower()}", f"{name}: runbook_url"
    assert f"alert-{name.lower()}" in doc_anchors(), (
        f"{name}: {DOCS} has no section whose anchor is alert-{name.lower()} (a heading 'Alert: {name}')")


def test_the_emergency_path_pages() -> None:
    """A referral that cannot reach an agency is critical; a lagging projection is a warning."""
    severity = {r["alert"]: r["labels"]["severity"] for r in ALERTS}
    for name in ("ConsumerStalledEmergencyPath", "EventsDeadLetteredEmergencyPath", "OutboxStalled",
                 "ReferralDeadlineMissedEmergency", "ReferralEscalationExhaustedEmergency",
                 "ReferralDeadlineScannerDown", "NotifyTechnicalFailures"):
        assert severity[name] == "critical", name
    assert severity["ConsumerStalled"] == "warning"
    emergency = {"referral.cases", "notify.referrals", "referral.notifications"}
    assert emergency <= consumer_groups()
    for rule in ALERTS:
        for _, matchers in Query(rule["expr"]).selectors:
            for label, op, value in matchers:
                if label == "consumer" and op in ("=~", "!~"):
                    assert set(value.split("|")) == emergency, f"{rule['alert']}: the emergency consumers"


@functools.cache
def doc_anchors() -> frozenset[str]:
    """GitHub's anchors for the docs' headings (lower case, punctuation dropped, spaces to dashes)."""
    anchors = set()
    for line in DOCS.read_text().splitlines():
        if m := re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line):
            anchors.add(re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-"))
    return frozenset(anchors)


# --------------------------------------------------------------------------------------- promtool


def _rules_file(tmp_path: Path) -> Path:
    """The rule groups as Prometheus reads them, without annotations (the unit tests check labels)."""
    groups = []
    for rule in of_kind("PrometheusRule"):
        for group in rule["spec"]["groups"]:
            groups.append({**group, "rules": [{k: v for k, v in r.items() if k != "annotations"}
                                              for r in group["rules"]]})
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    return path


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is not on PATH (Debian: apt-get install prometheus)")
    return promtool


def test_promtool_checks_the_rules(tmp_path: Path) -> None:
    promtool = _promtool()
    result = subprocess.run([promtool, "check", "rules", str(_rules_file(tmp_path))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _series(metric: str, values: list[float | None] | str, **labels: str) -> dict[str, str]:
    """One input series, in the namespace and with the target labels a ServiceMonitor gives it."""
    labels = {"namespace": NAMESPACE, "job": "svc", "instance": "10.0.0.1:8000", "pod": "svc-0", **labels}
    text = ", ".join(f'{k}="{v}"' for k, v in labels.items())
    if not isinstance(values, str):
        values = " ".join("_" if v is None else f"{v:g}" for v in values)
    return {"series": f"{metric}{{{text}}}", "values": values}


def _counter(per_step: float, steps: int, start: float = 0) -> list[float]:
    return [start + per_step * i for i in range(steps)]


def _fires(minute: int, alert: str, *expected: dict[str, str]) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": [{"exp_labels": e} for e in expected]}


def _quiet(minute: int, alert: str) -> dict[str, Any]:
    return {"eval_time": f"{minute}m", "alertname": alert, "exp_alerts": []}


def rule_unit_tests() -> list[dict[str, Any]]:
    """Scenarios at a 30 s scrape interval (two samples a minute)."""
    ns = {"namespace": NAMESPACE}
    dead = {"consumer": "referral.cases", "topic": "intake.cases.v1", "reason": "processing-failed"}
    lagging = {"consumer": "referral.cases", "topic": "intake.cases.v1", "partition": "0"}
    keeping_up = {"consumer": "notify.referrals", "topic": "referral.referrals.v1", "partition": "0"}
    return [
        {   # The first dead letter creates its series (at 1): increase() cannot see it, `unless offset` does.
            "interval": "30s",
            "input_series": [_series("events_dead_lettered_total", [None] * 20 + [1] * 40 + [2] * 20, **dead)],
            "alert_rule_test": [
                _quiet(5, "EventsDeadLetteredEmergencyPath"),
                _fires(11, "EventsDeadLetteredEmergencyPath", {**ns, **dead, "severity": "critical"}),
                _quiet(11, "EventsDeadLettered"),
                _quiet(28, "EventsDeadLetteredEmergencyPath"),  # nothing new for 10 minutes
                _fires(32, "EventsDeadLetteredEmergencyPath", {**ns, **dead, "severity": "critical"}),
            ],
        },
        {   # Stuck behind for minutes pages; a consumer that keeps returning to 0 does not.
            "interval": "30s",
            "input_series": [
                _series("consumer_lag", [0] * 10 + [3] * 50, **lagging),
                _series("consumer_lag", [3, 0] * 30, **keeping_up),
            ],
            "alert_rule_test": [
                _quiet(8, "ConsumerStalledEmergencyPath"),
                _fires(12, "ConsumerStalledEmergencyPath",
                       {**ns, "consumer": "referral.cases", "topic": "intake.cases.v1", "severity": "critical"}),
                _quiet(12, "ConsumerStalled"),
            ],
        },
        {   # 5xx from /readyz (a pod not ready) are not API errors; a fifth of API requests failing is.
            "interval": "30s",
            "input_series": [
                _series("http_request_duration_seconds_count", _counter(50, 60), job="intake", route="/v1/cases",
                        status="201", method="POST"),
                _series("http_request_duration_seconds_count", _counter(20, 60), job="intake", route="/readyz",
                        status="503", method="GET"),
                _series("http_request_duration_seconds_count", _counter(40, 60), job="referral",
                        route="/referrals", status="200", method="GET"),
                _series("http_request_duration_seconds_count", _counter(10, 60), job="referral",
                        route="/referrals", status="500", method="GET"),
            ],
            "alert_rule_test": [
                _fires(20, "HotlineHttpErrors", {**ns, "job": "referral", "severity": "warning"}),
                _quiet(20, "HotlineHttpErrorsCritical"),  # 20 % is not over a quarter
            ],
        },
        {   # Series start at 0 (pre-initialised): one emergency breach is seen at once, and a third of
            # SMS failing, three of them on our side, is both a high failure rate and a page.
            "interval": "30s",
            "input_series": [
                _series("referral_deadline_breaches_total", [0] * 10 + [1] * 30, step="remind", urgency="emergency"),
                _series("referral_deadline_breaches_total", _counter(1, 40), step="remind", urgency="normal"),
                _series("notify_notifications_finished_total", _counter(2, 60), channel="sms", status="delivered"),
                _series("notify_notifications_finished_total", _counter(1, 60), channel="sms",
                        status="technical-failure"),
                _series("notify_notifications_finished_total", [0] * 60, channel="email", status="delivered"),
            ],
            "alert_rule_test": [
                _quiet(4, "ReferralDeadlineMissedEmergency"),
                _fires(6, "ReferralDeadlineMissedEmergency", {**ns, "step": "remind", "severity": "critical"}),
                _fires(20, "NotifyFailureRateHigh", {**ns, "channel": "sms", "severity": "warning"}),
                _fires(20, "NotifyTechnicalFailures", {**ns, "channel": "sms", "severity": "critical"}),
            ],
        },
        {   # Scans that only fail, on every worker, page; one worker scanning is enough.
            "interval": "30s",
            "input_series": [
                _series("referral_deadline_scans_total", _counter(6, 20) + [114] * 40, outcome="ok",
                        pod="referral-worker-a"),
                _series("referral_deadline_scans_total", [0] * 20 + _counter(6, 40), outcome="failed",
                        pod="referral-worker-a"),
            ],
            "alert_rule_test": [
                _quiet(12, "ReferralDeadlineScannerDown"),  # the last success is under 10 minutes old
                _quiet(22, "ReferralDeadlineScannerDown"),  # none for 10 minutes: pending for 5 more
                _fires(27, "ReferralDeadlineScannerDown", {**ns, "severity": "critical"}),
            ],
        },
        {
            "interval": "30s",
            "input_series": [
                _series("referral_deadline_scans_total", [0] * 60, outcome="ok", pod="referral-worker-a"),
                _series("referral_deadline_scans_total", _counter(6, 60), outcome="ok", pod="referral-worker-b"),
            ],
            "alert_rule_test": [_quiet(20, "ReferralDeadlineScannerDown")],
        },
    ]


def test_promtool_rule_unit_tests(tmp_path: Path) -> None:
    promtool = _promtool()
    rules = _rules_file(tmp_path)
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [rules.name], "evaluation_interval": "30s",
                                     "tests": rule_unit_tests()}, sort_keys=False))
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True, timeout=120,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


# -------------------------------------------------------------------------------------- collector


@functools.cache
def collector_config() -> dict[str, Any]:
    return yaml.safe_load(one("ConfigMap", "otel-collector-config")["data"]["config.yaml"])


def _port(endpoint: str) -> int:
    return int(endpoint.rpartition(":")[2])


def test_collector_pipelines_use_defined_components() -> None:
    config = collector_config()
    service = config["service"]
    assert set(service.get("extensions", [])) <= set(config.get("extensions", {}))
    assert "health_check" in service["extensions"]
    assert service["pipelines"], "no pipeline"
    for name, pipeline in service["pipelines"].items():
        for kind in ("receivers", "processors", "exporters"):
            used = pipeline.get(kind, [])
            assert used or kind == "processors", f"pipeline {name}: no {kind}"
            missing = set(used) - set(config.get(kind, {}))
            assert not missing, f"pipeline {name}: {kind} {sorted(missing)} are not defined"
        assert pipeline["processors"][0] == "memory_limiter", f"pipeline {name}: memory_limiter goes first"
        assert "batch" in pipeline["processors"], f"pipeline {name}: batch"
    used = {c for p in service["pipelines"].values() for kind in ("receivers", "processors", "exporters")
            for c in p.get(kind, [])}
    defined = {c for kind in ("receivers", "processors", "exporters") for c in config.get(kind, {})}
    assert defined <= used, f"defined but never used: {sorted(defined - used)}"


def test_collector_listens_where_the_service_probes_and_policies_say() -> None:
    config = collector_config()
    protocols = config["receivers"]["otlp"]["protocols"]
    receiving = {"otlp-grpc": _port(protocols["grpc"]["endpoint"]), "otlp-http": _port(protocols["http"]["endpoint"])}
    assert receiving == {"otlp-grpc": 4317, "otlp-http": 4318}
    for endpoint in [protocols["grpc"]["endpoint"], protocols["http"]["endpoint"],
                     config["extensions"]["health_check"]["endpoint"]]:
        # Since v0.110 the default is localhost, which neither other pods nor the kubelet reach.
        assert endpoint.startswith(("0.0.0.0:", "${env:")), f"{endpoint}: listen on the pod's address"

    service = one("Service", COLLECTOR)
    serving = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert {k: serving.get(k) for k in receiving} == receiving
    deployment = one("Deployment", COLLECTOR)
    pod = deployment["spec"]["template"]
    assert all(pod["metadata"]["labels"].get(k) == v for k, v in service["spec"]["selector"].items())
    [container] = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {k: ports[k] for k in receiving} == receiving

    # Its own metrics: on the pod's address, behind the Service's port the ServiceMonitor scrapes.
    [reader] = config["service"]["telemetry"]["metrics"]["readers"]
    prometheus = reader["pull"]["exporter"]["prometheus"]
    assert prometheus["host"] == "0.0.0.0"
    assert serving["metrics"] == ports["metrics"] == prometheus["port"]
    monitor = one("ServiceMonitor", COLLECTOR)
    assert all(service["metadata"]["labels"].get(k) == v for k, v in monitor["spec"]["selector"]["matchLabels"].items())
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    health = _port(config["extensions"]["health_check"]["endpoint"])
    for probe in ("livenessProbe", "readinessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert ports.get(port, port) == health, f"{probe} must probe the health_check extension ({health})"

    # The backend comes from the generated ConfigMap, and the exporter reads exactly that variable.
    kustomization = yaml.safe_load((MONITORING / "kustomization.yaml").read_text())
    [generator] = [g for g in kustomization["configMapGenerator"] if g["name"] == "otel-collector-env"]
    env = {k: v for f in generator["envs"] for k, v in read_env_file(MONITORING / f).items()}
    assert "otel-collector-env" in [s["configMapRef"]["name"] for s in container["envFrom"]]
    variables = set(re.findall(r"\$\{env:(\w+)\}", one("ConfigMap", "otel-collector-config")["data"]["config.yaml"]))
    assert variables and variables <= set(env) | {e["name"] for e in container.get("env", [])}
    assert _port(env["OTEL_BACKEND_ENDPOINT"]) == 443, "the collector's egress allows 443 only"


def test_collector_is_locked_down_and_sized() -> None:
    deployment = one("Deployment", COLLECTOR)
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    [c] = pod["containers"]
    image, _, tag = c["image"].partition(":")
    assert image in ("otel/opentelemetry-collector-contrib", "otel/opentelemetry-collector")
    assert re.fullmatch(r"0\.\d+\.\d+", tag) and int(tag.split(".")[1]) >= 144, (
        f"{c['image']}: pin a release from 0.144 on (the exporter is named otlp_grpc since then)")
    sc = c["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert {"cpu", "memory"} <= set(c["resources"]["requests"]) and "memory" in c["resources"]["limits"]
    pdb = one("PodDisruptionBudget", COLLECTOR)
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in pdb["spec"]["selector"]["matchLabels"].items())
    assert pdb["spec"]["maxUnavailable"] == 1


def _selects(selector: dict[str, Any] | None, labels: dict[str, str]) -> bool:
    """Whether a label selector selects `labels` (an absent one: nothing, as a peer it would be no pod)."""
    if not selector:
        return False
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if not {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[op]:
            return False
    return True


@functools.cache
def service_pods() -> dict[str, dict[str, str]]:
    """Each service Deployment's pod labels (<svc>-api and <svc>-worker), from base/<svc>/."""
    pods = {}
    for svc in SERVICES:
        for path in sorted((K8S_DIR / "base" / svc).glob("*.yaml")):
            if path.name == "kustomization.yaml":
                continue
            for doc in _docs(path):
                if doc.get("kind") == "Deployment":
                    pods[doc["metadata"]["name"]] = doc["spec"]["template"]["metadata"]["labels"]
    assert len(pods) >= len(SERVICES), f"service Deployments found: {sorted(pods)}"
    return pods


def test_network_policies_open_otlp_between_services_and_collector_only() -> None:
    collector = one("Deployment", COLLECTOR)["spec"]["template"]["metadata"]["labels"]
    policies = of_kind("NetworkPolicy")
    otlp = {4317, 4318}

    def ports(rule: dict[str, Any]) -> set[int]:
        return {p["port"] for p in rule.get("ports", [])}

    def selecting(labels: dict[str, str], direction: str) -> list[dict[str, Any]]:
        return [p for p in policies
                if _selects(p["spec"]["podSelector"], labels) and direction in p["spec"]["policyTypes"]]

    ingress = selecting(collector, "Ingress")
    assert ingress, "no ingress policy selects the collector: it would accept anything"
    rules = [r for p in ingress for r in p["spec"].get("ingress", [])]
    assert all(r.get("from") for r in rules), "ingress: from named peers"
    scrapes = [r for r in rules if ports(r) != otlp]
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    assert all(ports(r) == {8888} and r["from"] == [monitoring] for r in scrapes), (
        "ingress other than OTLP: Prometheus (namespace monitoring) on the metrics port only")
    peers = [peer for r in rules if ports(r) == otlp for peer in r["from"]]
    assert peers, "nothing may send OTLP to the collector"
    assert all("namespaceSelector" not in peer and "ipBlock" not in peer for peer in peers), "ingress: our pods only"
    for name, labels in service_pods().items():
        assert any(_selects(peer.get("podSelector"), labels) for peer in peers), f"the collector refuses {name}"
        assert any(_selects(peer.get("podSelector"), collector) and ports(r) == otlp
                   for p in selecting(labels, "Egress") for r in p["spec"]["egress"] for peer in r["to"]), (
            f"{name} may not reach the collector")
    assert not any(_selects(peer.get("podSelector"), collector) for peer in peers), "the collector sends to itself?"

    own = selecting(collector, "Egress")
    assert own, "no egress policy selects the collector"
    reached = {port for p in own for r in p["spec"]["egress"] for port in ports(r)}
    assert reached == {53, 443}, "the collector's egress: DNS and the backend on 443"
    assert all(r.get("to") for p in own for r in p["spec"]["egress"])


def test_services_export_to_the_collector() -> None:
    """common.env points the services' OTLP/HTTP exporter at the collector Service."""
    env = read_env_file(K8S_DIR / "base" / "common.env")
    assert env.get("OTEL_EXPORTER_OTLP_ENDPOINT") == OTLP_ENDPOINT
