"""Kafka access on Kubernetes: one TLS + SCRAM-SHA-512 listener, ACLs enforced, and KafkaUsers whose
ACLs equal what the code and the catalogue need, no more and no less.

The expected ACLs are derived, never listed here:

* topics produced and consumed: schemas/catalog.py (Topic.producer, Topic.consumers, Topic.dlq);
* consumer groups: the ``add_consumer`` calls in services/<svc>/app.py (a consumer with a checkpoint
  joins a group per generation, ``<name>.g<N>``: a prefix ACL on ``<name>.``);
* agency readers: schemas/feeds.py;
* the ``keda`` user: the Kafka triggers of the ScaledObjects in deploy/k8s/base/autoscaling;
* the ``ops`` user: what ``python -m runtime.dlq_cli`` does (read a DLQ, write its origin topic,
  commit in group ``dlq-replay``).
"""
from __future__ import annotations

import ast
import asyncio
import functools
import importlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from runtime.dlq_cli import REPLAY_GROUP
from schemas.catalog import TOPICS
from schemas import event_spec_for_model
from schemas.feeds import FEEDS

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "k8s" / "base"
SERVICES = tuple(dict.fromkeys([t.producer for t in TOPICS] + [c for t in TOPICS for c in t.consumers]))
KEDA_USER = "keda"
OPS_USER = "ops"
SCRAM = "scram-sha-512"
CA_SECRET_KEY = "ca.crt"


# --------------------------------------------------------------------------- loading


@functools.cache
def base_objects() -> tuple[dict[str, Any], ...]:
    found = []
    for path in sorted(BASE.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        found += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return tuple(found)


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [d for d in base_objects() if d.get("kind") == kind]


def named(kind: str, name: str) -> dict[str, Any] | None:
    found = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) <= 1, f"two {kind}s named {name}"
    return found[0] if found else None


def kafka() -> dict[str, Any]:
    found = of_kind("Kafka")
    assert len(found) == 1, "expected exactly one Strimzi Kafka"
    return found[0]


def cluster_name() -> str:
    return kafka()["metadata"]["name"]


def namespace() -> str:
    return yaml.safe_load((BASE / "kustomization.yaml").read_text())["namespace"]


def client_listener() -> dict[str, Any]:
    listeners = kafka()["spec"]["kafka"]["listeners"]
    assert len(listeners) == 1, f"expected one client listener, found {[x['name'] for x in listeners]}"
    return listeners[0]


def users() -> dict[str, dict[str, Any]]:
    found = {u["metadata"]["name"]: u for u in of_kind("KafkaUser")}
    assert len(found) == len(of_kind("KafkaUser")), "two KafkaUsers with one name"
    return found


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {"In": labels.get(key) in values, "NotIn": labels.get(key) not in values,
              "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not ok:
            return False
    return True


# --------------------------------------------------------------------------- the code's consumers


@dataclass(frozen=True)
class Consumer:
    service: str
    group: str  # the add_consumer name
    topics: frozenset[str]
    checkpoint: Any  # the checkpoint object's class, or None: a fixed group

    @property
    def group_acl(self) -> tuple[str, str]:
        """(name, patternType) of the group ACL it needs."""
        return (f"{self.group}.", "prefix") if self.checkpoint else (self.group, "literal")


def _resolve(node: ast.expr, module: Any, where: str) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return getattr(module, node.id)
    pytest.fail(f"{where}: cannot read {ast.unparse(node)!r}; use a literal or a module-level name", pytrace=False)


def _handled_models(node: ast.expr, module: Any, where: str) -> list[Any]:
    if isinstance(node, ast.Dict):
        return [_resolve(k, module, where) for k in node.keys]
    if isinstance(node, ast.DictComp) and isinstance(node.generators[0].iter, ast.Tuple | ast.List):
        return [_resolve(e, module, where) for e in node.generators[0].iter.elts]
    return list(_resolve(node, module, where))  # a dict bound to a name: its keys


@functools.cache
def code_consumers() -> tuple[Consumer, ...]:
    """Every add_consumer(...) call in services/<svc>/app.py, resolved against the imported module."""
    found = []
    for svc in SERVICES:
        path = REPO / "services" / svc / "app.py"
        module = importlib.import_module(f"services.{svc}.app")
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "add_consumer"):
                continue
            where = f"{path.relative_to(REPO)}:{node.lineno}"
            group = _resolve(node.args[0], module, where)
            models = _handled_models(node.args[1], module, where)
            checkpoint = next((k.value for k in node.keywords if k.arg == "checkpoint"), None)
            if checkpoint is not None:
                assert isinstance(checkpoint, ast.Call), f"{where}: checkpoint must be constructed in the call"
                checkpoint = _resolve(checkpoint.func, module, where)
            topics = frozenset(event_spec_for_model(m).topic for m in models)
            found.append(Consumer(svc, group, topics, checkpoint))
    assert found, "no add_consumer calls found in services/*/app.py"
    return tuple(found)


def consumers_of(svc: str) -> list[Consumer]:
    return [c for c in code_consumers() if c.service == svc]


# --------------------------------------------------------------------------- ACLs

Acl = tuple[str, str, str, str]  # (resource type, name, patternType, operation)


def acls(user: dict[str, Any]) -> set[Acl]:
    name = user["metadata"]["name"]
    authorization = user["spec"].get("authorization") or {}
    assert authorization.get("type") == "simple", f"KafkaUser {name}: authorization type simple"
    out: set[Acl] = set()
    for rule in authorization["acls"]:
        assert rule.get("type", "allow") == "allow", f"KafkaUser {name}: only allow rules"
        assert rule.get("host", "*") == "*", f"KafkaUser {name}: host-bound rule"
        resource = rule["resource"]
        assert resource["type"] in ("topic", "group"), f"KafkaUser {name}: {resource['type']} resources"
        for op in rule["operations"]:
            assert op != "All", f"KafkaUser {name}: operation All"
            out.add((resource["type"], resource["name"], resource.get("patternType", "literal"), op))
    return out


def grant(kind: str, name: str, *ops: str, pattern: str = "literal") -> set[Acl]:
    return {(kind, name, pattern, op) for op in ops}


def expected_service_acls(svc: str) -> set[Acl]:
    out: set[Acl] = set()
    for t in TOPICS:
        if t.producer == svc:
            out |= grant("topic", t.name, "Write", "Describe")  # the outbox relay
        if svc in t.consumers:
            out |= grant("topic", t.name, "Read", "Describe")
            out |= grant("topic", t.dlq, "Write", "Describe")  # runtime/dlq.py
    for c in consumers_of(svc):
        name, pattern = c.group_acl
        out |= grant("group", name, "Read", pattern=pattern)
    return out


def expected_ops_acls() -> set[Acl]:
    out = grant("group", REPLAY_GROUP, "Read")
    for t in TOPICS:
        if t.consumers:  # only consumed topics get dead letters
            out |= grant("topic", t.dlq, "Read", "Describe") | grant("topic", t.name, "Write", "Describe")
    return out


def kafka_triggers() -> list[dict[str, Any]]:
    return [t for so in of_kind("ScaledObject") for t in so["spec"]["triggers"] if t["type"] == "kafka"]


def expected_keda_acls() -> set[Acl]:
    out: set[Acl] = set()
    for trigger in kafka_triggers():
        meta = trigger["metadata"]
        out |= grant("group", meta["consumerGroup"], "Describe")  # OffsetFetch
        out |= grant("topic", meta["topic"], "Describe")  # Metadata, ListOffsets
    return out


def expected_reader_acls(feed) -> set[Acl]:
    return grant("topic", feed.topic, "Read", "Describe") | grant("group", feed.reader, "Read", pattern="prefix")


# --------------------------------------------------------------------------- the cluster


def test_one_client_listener_tls_with_scram() -> None:
    listener = client_listener()
    assert listener["type"] == "internal" and listener["tls"] is True
    assert listener["authentication"]["type"] == SCRAM
    assert listener["port"] != 9092, "9092 is the plaintext port by convention; the client listener is TLS"


def test_acls_are_enforced_and_nobody_is_a_super_user() -> None:
    spec = kafka()["spec"]
    assert spec["kafka"]["authorization"]["type"] == "simple"
    assert not spec["kafka"]["authorization"].get("superUsers"), "Strimzi adds its own components; nobody else"
    assert "userOperator" in spec["entityOperator"], "without the User Operator no KafkaUser takes effect"


def _admitted(labels: dict[str, str], pod_namespace: str | None = None) -> bool:
    """Whether the listener's networkPolicyPeers let a pod with these labels in (None: Kafka's namespace)."""
    for peer in client_listener()["networkPolicyPeers"]:
        ns_selector = peer.get("namespaceSelector")
        if ns_selector is None and pod_namespace is not None:
            continue
        if ns_selector is not None and (pod_namespace is None or not selects(
                ns_selector, {"kubernetes.io/metadata.name": pod_namespace})):
            continue
        if selects(peer.get("podSelector") or {}, labels):
            return True
    return False


@pytest.mark.parametrize("svc", SERVICES)
def test_listener_admits_the_service_pods_api_and_worker(svc: str) -> None:
    for component in ("api", "worker"):
        labels = {"app.kubernetes.io/name": svc, "app.kubernetes.io/part-of": "hotline111",
                  "app.kubernetes.io/component": component}
        assert _admitted(labels), f"{svc}-{component} cannot reach the brokers"


def test_listener_admits_keda_and_the_ops_pod_and_nothing_else() -> None:
    assert _admitted({"app": "keda-operator"}, "keda"), "KEDA's operator reads the consumer lag"
    assert _admitted({"app.kubernetes.io/part-of": "hotline111", "app.kubernetes.io/component": "ops"})
    assert not _admitted({"app": "keda-operator"}, "default")
    assert not _admitted({"app.kubernetes.io/part-of": "hotline111", "app.kubernetes.io/component": "database"})
    assert not _admitted({"app.kubernetes.io/part-of": "hotline111"})
    assert not _admitted({})


# --------------------------------------------------------------------------- users and ACLs


def test_the_users_are_the_services_the_agency_readers_keda_and_ops() -> None:
    readers = {r for t in TOPICS for r in t.readers}
    assert readers == {f.reader for f in FEEDS}
    assert set(users()) == set(SERVICES) | readers | {KEDA_USER, OPS_USER}


def test_every_user_logs_in_with_scram_on_this_cluster() -> None:
    for name, user in users().items():
        assert user["spec"]["authentication"]["type"] == SCRAM, name
        assert user["metadata"]["labels"]["strimzi.io/cluster"] == cluster_name(), name


def test_the_catalogue_and_the_code_agree_on_who_consumes_what() -> None:
    """The ACLs come from the catalogue; the code subscribes by its handlers' event types."""
    for svc in SERVICES:
        catalogue = {t.name for t in TOPICS if svc in t.consumers}
        code = set().union(*(c.topics for c in consumers_of(svc)))
        assert code == catalogue, f"{svc}: code consumes {sorted(code)}, catalogue says {sorted(catalogue)}"
    groups = [c.group for c in code_consumers()]
    assert len(groups) == len(set(groups)), "two consumers share a group name"


@pytest.mark.parametrize("svc", SERVICES)
def test_service_acls_equal_what_it_produces_and_consumes(svc: str) -> None:
    got, expected = acls(users()[svc]), expected_service_acls(svc)
    assert got == expected, f"{svc}: extra {sorted(got - expected)}, missing {sorted(expected - got)}"


def test_a_generation_group_falls_under_its_prefix(monkeypatch) -> None:
    """The checkpoint really names its groups <name>.g<N>: the prefix ACL covers them, and only them."""
    generational = [c for c in code_consumers() if c.checkpoint]
    assert generational, "no checkpointed consumer (reporting's projections) found"

    class _Uow:
        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            return False

    async def generation(uow, *, lock: bool = False) -> int:
        return 7

    for c in generational:
        monkeypatch.setattr(importlib.import_module(c.checkpoint.__module__), "current_generation", generation)
        group = asyncio.run(c.checkpoint(_Uow).group(c.group))
        prefix, _ = c.group_acl
        assert group.startswith(prefix) and group != c.group, f"{c.group}: joins {group}, outside {prefix}*"
        others = [o.group for o in code_consumers() if o is not c]
        assert not any(o.startswith(prefix) for o in others), f"prefix {prefix} covers another service's group"


def test_ops_acls_are_what_the_dlq_tool_needs() -> None:
    got, expected = acls(users()[OPS_USER]), expected_ops_acls()
    assert got == expected, f"ops: extra {sorted(got - expected)}, missing {sorted(expected - got)}"


def test_keda_may_describe_only_the_groups_and_topics_it_scales_on() -> None:
    expected = expected_keda_acls()
    assert expected, "no Kafka trigger in the ScaledObjects"
    got = acls(users()[KEDA_USER])
    assert got == expected, f"keda: extra {sorted(got - expected)}, missing {sorted(expected - got)}"
    assert {op for *_, op in got} == {"Describe"}, "KEDA reads offsets, never records"


@pytest.mark.parametrize("feed", FEEDS, ids=lambda f: f.id)
def test_agency_reader_reads_only_its_own_feed(feed) -> None:
    got = acls(users()[feed.reader])
    assert got == expected_reader_acls(feed), f"{feed.reader}: {sorted(got)}"
    readable = {name for kind, name, _, op in got if kind == "topic" and op == "Read"}
    assert readable == {feed.topic}


def test_agency_group_prefixes_do_not_overlap() -> None:
    """A prefix group ACL of one agency must not cover another agency's (or a service's) groups."""
    readers = [f.reader for f in FEEDS]
    for a in readers:
        for b in readers:
            assert a == b or not b.startswith(a), f"group prefix {a} also covers {b}'s groups"
        assert not any(c.group.startswith(a) for c in code_consumers()), a


def test_nobody_else_reads_a_feed() -> None:
    for t in TOPICS:
        if not t.readers:
            continue
        readers = {name for name, user in users().items()
                   if any(kind == "topic" and n == t.name and op == "Read" for kind, n, _, op in acls(user))}
        assert readers == set(t.readers), f"{t.name} is read by {sorted(readers)}"


# --------------------------------------------------------------------------- the Deployments


def _env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def _common_env() -> dict[str, str]:
    values = {}
    for line in (BASE / "common.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def _kafka_clients() -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(Deployment, container) for every container that talks to Kafka as a user."""
    found = []
    for d in of_kind("Deployment"):
        for c in d["spec"]["template"]["spec"]["containers"]:
            if "KAFKA_SASL_USERNAME" in _env(c):
                found.append((d, c))
    assert found, "no Deployment sets KAFKA_SASL_USERNAME"
    return found


def test_every_service_deployment_logs_in_as_its_own_user() -> None:
    clients = _kafka_clients()
    for d in of_kind("Deployment"):
        labels = d["spec"]["template"]["metadata"]["labels"]
        if labels.get("app.kubernetes.io/name") in SERVICES and labels.get("app.kubernetes.io/component") in (
                "api", "worker"):
            main = d["spec"]["template"]["spec"]["containers"][0]
            assert any(c is main for _, c in clients), f"{d['metadata']['name']}: no KAFKA_SASL_USERNAME"
    for d, c in clients:
        where = f"{d['metadata']['name']}/{c['name']}"
        env = _env(c)
        user = env["KAFKA_SASL_USERNAME"].get("value")
        assert user in users(), f"{where}: no KafkaUser {user!r}"
        svc = d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
        assert user == svc, f"{where}: logs in as {user}, not as its own service {svc}"
        ref = env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]
        assert (ref["name"], ref["key"]) == (user, "password"), f"{where}: password from {ref}"


def test_every_kafka_client_uses_tls_scram_and_the_cluster_ca() -> None:
    listener = client_listener()
    for d, c in _kafka_clients():
        where = f"{d['metadata']['name']}/{c['name']}"
        settings = _common_env() | {k: e["value"] for k, e in _env(c).items() if "value" in e}
        assert settings["KAFKA_BOOTSTRAP_SERVERS"] == f"{cluster_name()}-kafka-bootstrap:{listener['port']}", where
        assert settings["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", where
        assert settings["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512", where
        ca_file = PurePosixPath(settings["KAFKA_SSL_CAFILE"])
        volumes = {v["name"]: v for v in d["spec"]["template"]["spec"].get("volumes", [])}
        mounts = [m for m in c.get("volumeMounts", []) if PurePosixPath(m["mountPath"]) == ca_file.parent]
        assert len(mounts) == 1, f"{where}: nothing mounted at {ca_file.parent}"
        secret = volumes[mounts[0]["name"]].get("secret") or {}
        assert secret.get("secretName") == f"{cluster_name()}-cluster-ca-cert", f"{where}: CA from {secret}"
        paths = {i["key"]: i["path"] for i in secret.get("items", [])} or {CA_SECRET_KEY: CA_SECRET_KEY}
        assert paths.get(CA_SECRET_KEY) == ca_file.name, f"{where}: {ca_file} is not the Secret's {CA_SECRET_KEY}"
