"""Static checks of the Kubernetes manifests in deploy/k8s.

* Core objects validate against the Kubernetes OpenAPI schemas shipped by
  kubernetes-validate, in strict mode (unknown fields fail).
* KEDA and Prometheus Operator objects validate against the typed models of
  cloudcoil-models-keda and cloudcoil-models-prometheus-operator; a field the
  model does not know (dropped on the round trip) fails, as strict mode would.
* Strimzi and CloudNativePG objects validate against the CRD schemas in
  ``<repo>/../shared/crds``, with unknown fields rejected the way the API
  server's strict field validation does. When that folder is absent (outside
  the workspace) these tests are skipped; the rest still run.
* The KafkaTopics equal schemas/catalog.py: names, partitions, DLQs.
* Each service's Deployment, Service, ServiceMonitor, PodDisruptionBudget,
  database and NetworkPolicies are present and consistent with each other.
* The services verify bearer tokens against the OIDC provider's JWKS (AUTH_MODE=jwks), may
  reach it on 443, and never carry the development HS256 secret.
* The kustomizations reference files that exist and leave none out; when
  ``kustomize`` or ``kubectl`` is on PATH, the rendered base and overlays are
  validated too.

The CRDs' CEL rules (x-kubernetes-validations) are not evaluated here.
"""
from __future__ import annotations

import copy
import functools
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import pytest
import yaml
from cloudcoil.models.keda import v1alpha1 as keda
from cloudcoil.models.prometheus_operator import v1 as monitoring

from runtime.auth import AuthMode, AuthSettings
from schemas.catalog import CATALOG

REPO = Path(__file__).resolve().parents[2]
K8S_DIR = REPO / "deploy" / "k8s"
CRD_DIR = REPO.parent / "shared" / "crds"
DOCS = REPO / "docs" / "operations.md"

# The oldest Kubernetes minor we support and the newest kubernetes-validate ships.
K8S_VERSIONS = ("1.33", "1.37")
NAMESPACE = "hotline111"
SERVICES = ("intake", "referral", "notify", "reporting")
ROLES = ("api", "worker")  # each service: its HTTP API, and its consumers and loops (SERVICE_ROLE)
DEPLOYED = [(svc, role) for svc in SERVICES for role in ROLES]
IMAGE_REPO = "ghcr.io/hotline111/hotline111"
CRD_GROUPS = frozenset({"kafka.strimzi.io", "postgresql.cnpg.io"})
# Kinds validated against cloudcoil's typed models (no CRD files for them in shared/crds).
MODELS: dict[tuple[str, str], type[pydantic.BaseModel]] = {
    ("keda.sh/v1alpha1", "ScaledObject"): keda.ScaledObject,
    ("keda.sh/v1alpha1", "TriggerAuthentication"): keda.TriggerAuthentication,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): monitoring.ServiceMonitor,
    ("monitoring.coreos.com/v1", "PodMonitor"): monitoring.PodMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): monitoring.PrometheusRule,
}
# Secrets the manifests read but must not contain: created by ops (documented
# in docs/operations.md) or by the CloudNativePG operator (<cluster>-app).
EXTERNAL_SECRETS = frozenset({"intake-pii-keys", "notify-smtp", "notify-keys", "notify-sms-providers",
                              "referral-link-secret"})
KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZATION_KEYS = frozenset(
    {"apiVersion", "kind", "namespace", "resources", "configMapGenerator", "images", "patches", "components"}
)
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_LIKE = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
OIDC_POLICY = "services-allow-oidc"
KAFKA_PORT = 9093  # the services' listener (common.env KAFKA_BOOTSTRAP_SERVERS)  # egress of every service pod to the OIDC provider's JWKS


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class Manifest:
    path: Path
    index: int
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.doc.get("kind", "")

    @property
    def name(self) -> str:
        return self.doc.get("metadata", {}).get("name", "")

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(K8S_DIR)}#{self.index}:{self.kind}/{self.name}"


def _is_kustomization(path: Path) -> bool:
    return path.name in KUSTOMIZATION_NAMES


def _yaml_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*") if p.is_file() and p.suffix in (".yaml", ".yml"))


@functools.cache
def manifests() -> tuple[Manifest, ...]:
    found = []
    for path in _yaml_files():
        if _is_kustomization(path):
            continue
        for index, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc is not None:
                found.append(Manifest(path, index, doc))
    return tuple(found)


@functools.cache
def kustomizations() -> tuple[tuple[Path, dict[str, Any]], ...]:
    return tuple((p, yaml.safe_load(p.read_text()) or {}) for p in _yaml_files() if _is_kustomization(p))


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [m.doc for m in manifests() if m.kind == kind]


def one(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} named {name!r}, found {len(found)}"
    return found[0]


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path}: not KEY=VALUE: {line!r}"
            values[key] = value
    return values


def common_env() -> dict[str, str]:
    return read_env_file(K8S_DIR / "base" / "common.env")


def api_group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def is_core(doc: dict[str, Any]) -> bool:
    group = api_group(doc.get("apiVersion", ""))
    return group == "" or "." not in group or group.endswith(".k8s.io")


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a LabelSelector matches a label set."""
    if not all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[op]
        if not ok:
            return False
    return True


def pod_labels(svc: str, role: str = "api") -> dict[str, str]:
    return one("Deployment", f"{svc}-{role}")["spec"]["template"]["metadata"]["labels"]


def kafka() -> dict[str, Any]:
    found = of_kind("Kafka")
    assert len(found) == 1, "expected exactly one Strimzi Kafka"
    return found[0]


# ------------------------------------------------------------------ schema validation


def _fail_validation(where: str, err: jsonschema.ValidationError) -> None:
    path = "/".join(str(p) for p in err.absolute_path) or "(root)"
    pytest.fail(f"{where}: {path}: {err.message}", pytrace=False)


def validate_core(doc: dict[str, Any], where: str) -> None:
    for version in K8S_VERSIONS:
        # Fail outside the except blocks: a chained traceback would print the schema.
        error: kubernetes_validate.ValidationError | None = None
        missing = ""
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as err:
            error = err
        except kubernetes_validate.SchemaNotFoundError as err:
            missing = err.message
        if error is not None:
            _fail_validation(f"{where} (Kubernetes {version})", error)
        if missing:
            pytest.fail(f"{where}: {missing}", pytrace=False)


def strict_schema(schema: Any) -> Any:
    """Reject unknown fields as the API server's strict field validation does.

    A structural CRD schema prunes (or, in strict mode, rejects) fields it does
    not list unless x-kubernetes-preserve-unknown-fields is set; JSON Schema
    allows them. Combinators (oneOf, ...) only add value checks on fields the
    enclosing schema already lists, so they are left as they are.
    """
    if isinstance(schema, list):
        return [strict_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key == "properties":
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, dict):
            out[key] = strict_schema(value)
        else:
            out[key] = value
    if (
        "properties" in out
        and "additionalProperties" not in out
        and not out.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


@functools.cache
def crd_validators() -> dict[tuple[str, str], jsonschema.protocols.Validator]:
    """(apiVersion, kind) -> validator for every served version of every CRD."""
    if not CRD_DIR.is_dir():
        pytest.skip(
            f"CRD schemas not found at {CRD_DIR} (shared/ sits beside the checkout only in the "
            "workspace); Strimzi and CloudNativePG objects are not validated"
        )
    validators = {}
    for path in sorted(CRD_DIR.rglob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            for version in spec["versions"]:
                if version.get("served"):
                    schema = strict_schema(version["schema"]["openAPIV3Schema"])
                    # OpenAPI v3.0 schemas (boolean exclusiveMinimum) are closest to draft 4.
                    validators[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (
                        jsonschema.Draft4Validator(schema)
                    )
    assert validators, f"no CustomResourceDefinitions under {CRD_DIR}"
    return validators


def validate_crd_object(doc: dict[str, Any], where: str) -> None:
    validator = crd_validators().get((doc["apiVersion"], doc["kind"]))
    if validator is None:
        pytest.fail(f"{where}: no CRD in {CRD_DIR} serves {doc['apiVersion']} {doc['kind']}", pytrace=False)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is not None:
        _fail_validation(where, error)


def _unknown_field(given: Any, kept: Any, path: str) -> str | None:
    """The first field of `given` that the model's round trip `kept` dropped."""
    if isinstance(given, dict) and isinstance(kept, dict):
        for key, value in given.items():
            if key not in kept:
                return f"{path}/{key}"
            if found := _unknown_field(value, kept[key], f"{path}/{key}"):
                return found
    elif isinstance(given, list) and isinstance(kept, list):
        for i, (value, back) in enumerate(zip(given, kept, strict=False)):
            if found := _unknown_field(value, back, f"{path}/{i}"):
                return found
    return None


def validate_model(doc: dict[str, Any], where: str) -> None:
    model = MODELS[(doc["apiVersion"], doc["kind"])]
    try:
        parsed = model.model_validate(doc)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        pytest.fail(f"{where}: {'/'.join(map(str, first['loc']))}: {first['msg']}", pytrace=False)
    if unknown := _unknown_field(doc, parsed.model_dump(by_alias=True, exclude_unset=True, mode="json"), ""):
        pytest.fail(f"{where}: {unknown}: unknown field", pytrace=False)


def validate_any(doc: dict[str, Any], where: str) -> None:
    if (doc.get("apiVersion"), doc.get("kind")) in MODELS:
        validate_model(doc, where)
    elif is_core(doc):
        validate_core(doc, where)
    else:
        validate_crd_object(doc, where)


MANIFESTS = manifests()
CORE = [m for m in MANIFESTS if is_core(m.doc)]
CUSTOM = [m for m in MANIFESTS if api_group(m.doc.get("apiVersion", "")) in CRD_GROUPS]
MODELLED = [m for m in MANIFESTS if (m.doc.get("apiVersion"), m.kind) in MODELS]


def test_manifests_found() -> None:
    assert len(MANIFESTS) >= 30, f"only {len(MANIFESTS)} objects under {K8S_DIR}"


@pytest.mark.parametrize("m", MANIFESTS, ids=lambda m: m.id)
def test_object_has_identity_and_a_known_schema(m: Manifest) -> None:
    assert m.doc.get("apiVersion") and m.kind, f"{m.id}: apiVersion and kind are required"
    name = m.name
    assert name and len(name) <= 253 and DNS_SUBDOMAIN.match(name), f"{m.id}: bad metadata.name {name!r}"
    assert "namespace" not in m.doc["metadata"], f"{m.id}: the kustomization sets the namespace"
    known = is_core(m.doc) or m in CUSTOM or m in MODELLED
    assert known, f"{m.id}: no schema to validate {m.doc['apiVersion']} {m.kind} against"


@pytest.mark.parametrize("m", CORE, ids=lambda m: m.id)
def test_core_object_validates(m: Manifest) -> None:
    validate_core(m.doc, m.id)


@pytest.mark.parametrize("m", CUSTOM, ids=lambda m: m.id)
def test_custom_object_validates_against_crd(m: Manifest) -> None:
    validate_crd_object(m.doc, m.id)


@pytest.mark.parametrize("m", MODELLED, ids=lambda m: m.id)
def test_keda_and_prometheus_operator_object_validates(m: Manifest) -> None:
    validate_model(m.doc, m.id)


def test_model_validation_rejects_unknown_fields_and_bad_values() -> None:
    monitor = copy.deepcopy(of_kind("ServiceMonitor")[0])
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(pytest.fail.Exception, match="intervall: unknown field"):
        validate_model(monitor, "typo")
    monitor = copy.deepcopy(of_kind("ServiceMonitor")[0])
    monitor["spec"]["endpoints"] = "not a list"
    with pytest.raises(pytest.fail.Exception, match="endpoints"):
        validate_model(monitor, "bad value")


def test_crd_validation_rejects_unknown_fields() -> None:
    """The strict schemas catch a typo, yet allow free-form maps like spec.config."""
    topic = copy.deepcopy(of_kind("KafkaTopic")[0])
    validator = crd_validators()[(topic["apiVersion"], "KafkaTopic")]
    topic["spec"]["config"]["any.kafka.setting"] = "x"
    assert not list(validator.iter_errors(topic))
    topic["spec"]["partiton"] = 6
    assert list(validator.iter_errors(topic)), "an unknown spec field passed validation"

    cluster = copy.deepcopy(of_kind("Cluster")[0])
    cluster["spec"]["storage"]["sise"] = "1Gi"
    assert list(crd_validators()[(cluster["apiVersion"], "Cluster")].iter_errors(cluster))


def test_no_secrets_committed() -> None:
    assert not of_kind("Secret"), "Secrets are created out of band, never committed"
    for path, k in kustomizations():
        assert "secretGenerator" not in k, f"{path}: no secretGenerator; Secrets are created out of band"


# ----------------------------------------------------------------------- kustomize


def test_kustomizations_reference_existing_files_and_nothing_is_left_out() -> None:
    assert kustomizations(), f"no kustomization.yaml under {K8S_DIR}"
    referenced: set[Path] = set()
    for path, k in kustomizations():
        here = path.parent
        unknown = set(k) - KUSTOMIZATION_KEYS
        assert not unknown, f"{path}: unexpected keys {sorted(unknown)}"
        assert k.get("kind") == "Kustomization", f"{path}: kind must be Kustomization"
        for entry in k.get("resources", []):
            target = (here / entry).resolve()
            if target.is_dir():
                assert any((target / n).is_file() for n in KUSTOMIZATION_NAMES), (
                    f"{path}: resource {entry} is a folder without a kustomization.yaml"
                )
            else:
                assert target.is_file(), f"{path}: resource {entry} does not exist"
                referenced.add(target)
        for generator in k.get("configMapGenerator", []):
            for entry in generator.get("envs", []) + generator.get("files", []):
                target = (here / entry.rpartition("=")[2]).resolve()
                assert target.is_file(), f"{path}: generator file {entry} does not exist"
                referenced.add(target)
        for patch in k.get("patches", []):
            if "path" in patch:
                assert (here / patch["path"]).is_file(), f"{path}: patch {patch['path']} does not exist"
                referenced.add((here / patch["path"]).resolve())
    every_file = {
        p.resolve() for p in K8S_DIR.rglob("*") if p.is_file() and not _is_kustomization(p)
    }
    orphans = sorted(str(p.relative_to(K8S_DIR)) for p in every_file - referenced)
    assert not orphans, f"files no kustomization uses: {orphans}"


def _kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


ENTRY_POINTS = [K8S_DIR / "base", K8S_DIR / "ops"] + sorted(
    p for p in (K8S_DIR / "overlays").glob("*") if (p / "kustomization.yaml").is_file()
)


@functools.cache
def render(root: Path) -> tuple[dict[str, Any], ...]:
    command = _kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is on PATH; rendered output not checked")
    result = subprocess.run([*command, str(root)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{' '.join(command)} {root} failed:\n{result.stderr}"
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


@pytest.mark.parametrize("root", ENTRY_POINTS, ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_rendered_kustomization_validates(root: Path) -> None:
    docs = render(root)
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    for doc in docs:
        where = f"{root.relative_to(K8S_DIR)}: {doc['kind']}/{doc['metadata']['name']}"
        if doc["kind"] == "Namespace":
            assert doc["metadata"]["name"] == NAMESPACE
        else:
            assert doc["metadata"].get("namespace") == NAMESPACE, f"{where}: not in namespace {NAMESPACE}"
        if (doc["apiVersion"], doc["kind"]) not in MODELS and not is_core(doc) and not CRD_DIR.is_dir():
            continue  # CRD objects: covered by test_custom_object_validates_against_crd's skip
        validate_any(doc, where)
        if doc["kind"] == "Deployment" and doc["metadata"]["labels"].get("app.kubernetes.io/component") in ROLES:
            pod = doc["spec"]["template"]["spec"]
            for c in pod.get("initContainers", []) + pod["containers"]:
                assert c["image"].startswith(IMAGE_REPO + ":"), f"{where}: image {c['image']}"
                for source in c.get("envFrom", []):
                    name = source["configMapRef"]["name"]
                    assert name in config_maps, f"{where}: ConfigMap {name} is not rendered"


# ------------------------------------------------------------------ Kafka and topics


def _topic_name(doc: dict[str, Any]) -> str:
    return doc["spec"].get("topicName") or doc["metadata"]["name"]


def test_kafka_topics_match_the_catalogue() -> None:
    expected = {}
    for topic in CATALOG.topics:
        expected[topic.name] = topic.partitions
        if topic.dead_letters:
            expected[topic.dlq] = topic.partitions  # a DLQ keeps its topic's keys and partitioning
    topics = {_topic_name(d): d for d in of_kind("KafkaTopic")}
    assert len(topics) == len(of_kind("KafkaTopic")), "two KafkaTopics for one Kafka topic"
    assert sorted(topics) == sorted(expected), "KafkaTopics differ from schemas/catalog.py (+ .dlq)"
    cluster = kafka()["metadata"]["name"]
    for name, doc in topics.items():
        spec = doc["spec"]
        assert spec.get("topicName") == name == doc["metadata"]["name"], (
            f"{name}: set spec.topicName explicitly, equal to metadata.name"
        )
        assert spec["partitions"] == expected[name], f"{name}: partitions"
        assert spec["replicas"] == 3, f"{name}: replicas"
        assert int(spec["config"]["min.insync.replicas"]) == 2, f"{name}: min.insync.replicas"
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == cluster, f"{name}: strimzi.io/cluster"


def test_kafka_cluster() -> None:
    k = kafka()
    name = k["metadata"]["name"]
    config = k["spec"]["kafka"]["config"]
    assert str(config["auto.create.topics.enable"]).lower() == "false"
    assert int(config["default.replication.factor"]) == 3
    assert int(config["min.insync.replicas"]) == 2
    assert int(config["offsets.topic.replication.factor"]) == 3

    pools = [p for p in of_kind("KafkaNodePool") if p["metadata"]["labels"].get("strimzi.io/cluster") == name]
    assert len(pools) == len(of_kind("KafkaNodePool")), "a KafkaNodePool belongs to no Kafka"
    brokers = sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"])
    controllers = sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"])
    assert brokers >= 3, "replicas 3 needs three brokers"
    assert controllers >= 3 and controllers % 2 == 1, "a KRaft quorum needs an odd number (>= 3) of controllers"

    # The services' listener: TLS, SCRAM users, ACLs (authorization simple); no plaintext one.
    listeners = {x["port"]: x for x in k["spec"]["kafka"]["listeners"]}
    assert all(x["tls"] for x in listeners.values()), "every listener is TLS"
    services = listeners[KAFKA_PORT]
    assert services["authentication"]["type"] == "scram-sha-512"
    assert k["spec"]["kafka"]["authorization"]["type"] == "simple"
    env = common_env()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"{name}-kafka-bootstrap:{KAFKA_PORT}"
    assert (env["KAFKA_SECURITY_PROTOCOL"], env["KAFKA_SASL_MECHANISM"]) == ("SASL_SSL", "SCRAM-SHA-512")
    # It admits the service pods (Strimzi makes a NetworkPolicy of it).
    for svc, role in DEPLOYED:
        assert any(selects(p.get("podSelector", {}), pod_labels(svc, role))
                   for p in services["networkPolicyPeers"]), f"Kafka listener {services['name']} rejects {svc}-{role}"


# ------------------------------------------------------------------------ services


def test_every_catalogue_service_is_deployed() -> None:
    named = {t.producer for t in CATALOG.topics} | {c for t in CATALOG.topics for c in t.consumers}
    assert named <= set(SERVICES), f"catalogue names services without manifests: {named - set(SERVICES)}"
    services = {d["metadata"]["name"] for d in of_kind("Deployment")
                if d["metadata"]["labels"].get("app.kubernetes.io/component") in ROLES}
    assert services == {f"{svc}-{role}" for svc, role in DEPLOYED}


def _containers(svc: str, role: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    pod = one("Deployment", f"{svc}-{role}")["spec"]["template"]["spec"]
    return pod, pod.get("initContainers", []), pod["containers"]


@pytest.mark.parametrize("svc, role", DEPLOYED)
def test_deployment_runs_the_service(svc: str, role: str) -> None:
    deployment = one("Deployment", f"{svc}-{role}")
    labels = pod_labels(svc, role)
    assert selects(deployment["spec"]["selector"], labels)
    assert not selects(deployment["spec"]["selector"], pod_labels(svc, "worker" if role == "api" else "api"))
    assert labels["app.kubernetes.io/component"] == role and labels["app.kubernetes.io/part-of"] == "hotline111"
    assert "replicas" not in deployment["spec"], "its autoscaler owns the replica count"
    pod, inits, containers = _containers(svc, role)
    assert len(containers) == 1
    main = containers[0]
    assert main["command"] == ["python", "-m", f"services.{svc}"]
    assert {"name": "SERVICE_ROLE", "value": role} in main["env"]
    commands = [c["command"] for c in inits]
    assert commands[0] == ["python", "-m", f"services.{svc}", "migrate"], "migrations run first"
    if svc == "referral":
        assert ["python", "-m", "services.referral", "seed"] in commands[1:], "referral seeds its directory"
    assert 20 <= pod["terminationGracePeriodSeconds"] <= 60, "time for a graceful shutdown on SIGTERM"
    assert pod.get("automountServiceAccountToken") is False

    env = common_env()
    assert env["HOST"] == "0.0.0.0"
    ports = {p["name"]: p["containerPort"] for p in main["ports"]}
    assert ports == {"http": int(env["PORT"])}, "the container port must equal PORT"
    assert main["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}


@pytest.mark.parametrize("svc, role", DEPLOYED)
def test_deployment_is_locked_down_and_sized(svc: str, role: str) -> None:
    pod, inits, containers = _containers(svc, role)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for c in inits + containers:
        where = f"{svc}/{c['name']}"
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False, where
        assert sc["readOnlyRootFilesystem"] is True, where
        assert sc["capabilities"]["drop"] == ["ALL"], where
        assert sc.get("runAsUser", 1) > 0 and sc.get("runAsNonRoot", True) is True, where
        resources = c["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), f"{where}: requests"
        assert "memory" in resources["limits"], f"{where}: memory limit"
        assert c["image"].startswith(IMAGE_REPO + ":"), where


def _env_sources(c: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    env = {e["name"]: e for e in c.get("env", [])}
    config_maps = [s["configMapRef"]["name"] for s in c.get("envFrom", [])]
    return env, config_maps


@pytest.mark.parametrize("svc, role", DEPLOYED)
def test_deployment_environment(svc: str, role: str) -> None:
    _, inits, containers = _containers(svc, role)
    for c in inits + containers:
        where = f"{svc}/{c['name']}"
        env, config_maps = _env_sources(c)
        assert "hotline111-common" in config_maps, where
        defined = set(common_env())
        for e in c.get("env", []):  # $(VAR) expands only variables defined before it
            for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                assert ref in defined, f"{where}: {e['name']} uses $({ref}) before it is defined"
            defined.add(e["name"])
            if SECRET_LIKE.search(e["name"]):
                assert "value" not in e, f"{where}: {e['name']} must come from a Secret"
        assert env["DATABASE_URL"]["value"].startswith("postgresql+asyncpg://"), where
        assert f"@{svc}-db-pooler-rw:5432/{svc}" in env["DATABASE_URL"]["value"], f"{where}: through the pooler"
        assert f"@{svc}-db-rw:5432/{svc}" in env["DATABASE_DIRECT_URL"]["value"], f"{where}: sessions direct"
        secrets = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for e in env.values()
            if e["name"].startswith("DB_") and "valueFrom" in e
        }
        assert secrets == {f"{svc}-db-app"}, f"{where}: must read only its own database's Secret"
        for key in ("KAFKA_BOOTSTRAP_SERVERS", "KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM", "KAFKA_SSL_CAFILE",
                    "LOG_LEVEL", "PORT", "HOST"):
            assert key in common_env(), key

    main = containers[0]  # its Kafka user and CA: test_kafka_access.py
    env, config_maps = _env_sources(main)
    if svc == "intake":
        assert env["PII_ENCRYPTION_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "intake-pii-keys"
        assert env["PII_HMAC_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "intake-pii-keys"
    if svc == "notify":
        assert "notify-config" in config_maps
        settings = read_env_file(K8S_DIR / "base" / "notify" / "notify.env")
        assert {"SMTP_HOST", "SMTP_PORT", "SMTP_STARTTLS", "NOTIFY_EMAIL_FROM"} <= set(settings)
        for key in ("SMTP_USERNAME", "SMTP_PASSWORD"):
            assert env[key]["valueFrom"]["secretKeyRef"]["name"] == "notify-smtp"
        assert env["PII_ENCRYPTION_KEYS"]["valueFrom"]["secretKeyRef"]["name"] == "notify-keys"
        assert env["SMS_PROVIDERS"]["valueFrom"]["secretKeyRef"]["name"] == "notify-sms-providers"
    if svc == "referral":
        assert env["REFERRAL_LINK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "referral-link-secret"
        assert "referral-config" in config_maps
        public_url = read_env_file(K8S_DIR / "base" / "referral" / "referral.env")["REFERRAL_PUBLIC_URL"]
        assert public_url.startswith("https://")


def test_secret_references_are_known_and_documented() -> None:
    referenced = set()
    for d in of_kind("Deployment"):
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    referenced.add(ref["name"])
    # CloudNativePG's <cluster>-app, and Strimzi's Secret for each KafkaUser.
    generated = {f"{c['metadata']['name']}-app" for c in of_kind("Cluster")}
    generated |= {u["metadata"]["name"] for u in of_kind("KafkaUser")}
    assert referenced - generated == EXTERNAL_SECRETS
    docs = DOCS.read_text()
    for name in EXTERNAL_SECRETS:
        assert name in docs, f"{DOCS.name} does not tell ops how to create Secret {name}"


@pytest.mark.parametrize("svc, role", DEPLOYED)
def test_service_service_monitor_and_pdb(svc: str, role: str) -> None:
    labels = pod_labels(svc, role)
    service = one("Service", svc if role == "api" else f"{svc}-{role}")
    assert selects({"matchLabels": service["spec"]["selector"]}, labels)
    other = pod_labels(svc, "worker" if role == "api" else "api")
    assert not selects({"matchLabels": service["spec"]["selector"]}, other), "the API Service routes to the API only"
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]

    monitors = [m for m in of_kind("ServiceMonitor") if selects(m["spec"]["selector"], service["metadata"]["labels"])]
    assert len(monitors) == 1, f"{svc}: expected one ServiceMonitor for its Service"
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitors[0]["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"

    pdbs = [p for p in of_kind("PodDisruptionBudget") if selects(p["spec"]["selector"], labels)]
    assert len(pdbs) == 1, f"{svc}-{role}: expected one PodDisruptionBudget"
    spec = pdbs[0]["spec"]
    assert spec.get("maxUnavailable", 0) >= 1, f"{svc}-{role}: a PDB must let a drain evict a pod"


def test_ops_tools_reach_kafka_as_the_services_do() -> None:
    """The DLQ tool (deploy/k8s/ops) cannot read the base's common.env; its Kafka settings must equal them."""
    (generator,) = yaml.safe_load((K8S_DIR / "ops" / "kustomization.yaml").read_text())["configMapGenerator"]
    literals = dict(item.split("=", 1) for item in generator["literals"])
    assert {k: v for k, v in common_env().items() if k.startswith("KAFKA_")} == {
        k: v for k, v in literals.items() if k.startswith("KAFKA_")}
    (tool,) = [d for d in of_kind("Pod") if d["metadata"]["name"] == "dlq-tool"]
    env = {e["name"]: e for e in tool["spec"]["containers"][0]["env"]}
    assert env["KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == env["KAFKA_SASL_USERNAME"]["value"]
    assert tool["spec"]["activeDeadlineSeconds"] <= 3600, "the tool goes away on its own"


def test_ingress_serves_each_api_over_tls_at_the_addresses_the_services_give_out() -> None:
    (ingress,) = of_kind("Ingress")
    hosts = {rule["host"]: rule for rule in ingress["spec"]["rules"]}
    covered = {h for tls in ingress["spec"]["tls"] for h in tls["hosts"]}
    assert covered == set(hosts), "every host has a certificate"
    assert all(tls.get("secretName") for tls in ingress["spec"]["tls"])
    served = set()
    for host, rule in hosts.items():
        for path in rule["http"]["paths"]:
            backend = path["backend"]["service"]
            service = one("Service", backend["name"])
            assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}, host
            assert service["metadata"]["labels"]["app.kubernetes.io/component"] == "api", f"{host}: an API Service"
            served.add(backend["name"])
    assert served == set(SERVICES)
    # The links and callbacks the services hand out point at hosts the ingress serves.
    public = {
        "REFERRAL_PUBLIC_URL": read_env_file(K8S_DIR / "base" / "referral" / "referral.env")["REFERRAL_PUBLIC_URL"],
        "SMS_CALLBACK_BASE_URL": read_env_file(K8S_DIR / "base" / "notify" / "notify.env")["SMS_CALLBACK_BASE_URL"],
    }
    for name, url in public.items():
        assert url.startswith("https://") and url.removeprefix("https://").split("/")[0] in hosts, name


def test_service_monitors() -> None:
    monitors = [m for m in MANIFESTS if m.kind == "ServiceMonitor"]
    assert len(monitors) >= len(SERVICES)
    for m in monitors:
        for endpoint in m.doc["spec"]["endpoints"]:
            assert isinstance(endpoint.get("port"), str), f"{m.id}: endpoints need a named port"


# ----------------------------------------------------------- databases and network


@pytest.mark.parametrize("svc", SERVICES)
def test_each_service_has_its_own_database(svc: str) -> None:
    cluster = one("Cluster", f"{svc}-db")
    assert cluster["spec"]["instances"] >= 3, "a primary and two standbys"
    initdb = cluster["spec"]["bootstrap"]["initdb"]
    assert initdb["database"] == svc and initdb["owner"] == svc
    assert len(of_kind("Cluster")) == len(SERVICES), "one PostgreSQL cluster per service, no shared one"


def _policies_for(labels: dict[str, str]) -> list[dict[str, Any]]:
    return [p for p in of_kind("NetworkPolicy") if selects(p["spec"]["podSelector"], labels)]


def _ports(rule: dict[str, Any]) -> set[Any]:
    return {p["port"] for p in rule.get("ports", [])}


@pytest.mark.parametrize("svc, role", DEPLOYED)
def test_service_egress_reaches_only_its_database_and_kafka(svc: str, role: str) -> None:
    policies = _policies_for(pod_labels(svc, role))
    assert any(
        set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"} and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
        for p in policies
    ), f"{svc}: no default-deny policy selects it"
    kafka_name = kafka()["metadata"]["name"]
    reached = set()
    for policy in policies:
        for rule in policy["spec"].get("egress", []):
            assert rule.get("to"), f"{policy['metadata']['name']}: an egress rule without 'to' allows everything"
            for peer in rule["to"]:
                pods = (peer.get("podSelector") or {}).get("matchLabels", {})
                namespaces = (peer.get("namespaceSelector") or {}).get("matchLabels", {})
                if policy["metadata"]["name"] == OIDC_POLICY:
                    # The OIDC provider's JWKS (outside the cluster by default), HTTPS only.
                    assert _ports(rule) == {443}, f"{OIDC_POLICY}: HTTPS only"
                    reached.add("oidc")
                elif namespaces.get("kubernetes.io/metadata.name") == "kube-system" and pods == {"k8s-app": "kube-dns"}:
                    assert _ports(rule) == {53}
                    reached.add("dns")
                elif "cnpg.io/cluster" in pods and not namespaces:
                    assert pods["cnpg.io/cluster"] == f"{svc}-db", f"{svc} may reach {pods['cnpg.io/cluster']}"
                    assert _ports(rule) == {5432}
                    reached.add("database")
                elif "cnpg.io/poolerName" in pods and not namespaces:
                    assert pods["cnpg.io/poolerName"] == f"{svc}-db-pooler-rw", f"{svc} may reach {pods}"
                    assert _ports(rule) == {5432}
                    reached.add("pooler")
                elif pods.get("strimzi.io/cluster") == kafka_name and not namespaces:
                    assert _ports(rule) == {KAFKA_PORT}
                    reached.add("kafka")
                elif pods.get("app.kubernetes.io/name") == "otel-collector" and not namespaces:
                    assert _ports(rule) <= {4317, 4318}, "OTLP only"
                    reached.add("telemetry")
                elif "ipBlock" in peer and svc == "notify":
                    # SMTP submission and HTTPS (SMS provider) only.
                    assert _ports(rule) <= {465, 587, 443}
                    reached.add("outside")
                else:
                    pytest.fail(f"{svc}: unexpected egress peer {peer} in {policy['metadata']['name']}")
    assert {"dns", "database", "pooler", "kafka", "oidc", "telemetry"} <= reached, f"{svc} reaches only {sorted(reached)}"


def test_services_verify_tokens_with_the_oidc_provider() -> None:
    """Production authentication: RS256/ES256 tokens checked against the provider's JWKS, never
    the development HS256 secret."""
    env = common_env()
    settings = AuthSettings.from_env(env)  # what the services will parse
    assert settings.auth_mode is AuthMode.JWKS
    assert env["AUTH_JWKS_URL"].startswith("https://") and env["AUTH_ISSUER"].startswith("https://")
    assert settings.auth_audience and settings.auth_roles_claim
    for d in of_kind("Deployment"):
        pod = d["spec"]["template"]["spec"]
        for c in pod.get("initContainers", []) + pod["containers"]:
            names = {e["name"] for e in c.get("env", [])}
            assert not {"AUTH_MODE", "AUTH_HS256_SECRET"} & names, f"{d['metadata']['name']}/{c['name']}"
    assert "AUTH_HS256_SECRET" not in env
    docs = DOCS.read_text()
    for key in ("AUTH_ISSUER", "AUTH_JWKS_URL", "AUTH_AUDIENCE", "AUTH_ROLES_CLAIM"):
        assert key in docs, f"{DOCS.name} does not explain {key}"


@pytest.mark.parametrize("svc", SERVICES)
def test_database_accepts_only_its_service(svc: str) -> None:
    db_labels = {"cnpg.io/cluster": f"{svc}-db"}
    policies = _policies_for(db_labels)
    assert policies, f"{svc}-db has no ingress NetworkPolicy"
    for other, role in DEPLOYED:
        admitted = any(
            selects(peer.get("podSelector", {}), pod_labels(other, role)) and "namespaceSelector" not in peer
            for p in policies
            for rule in p["spec"].get("ingress", [])
            for peer in rule.get("from", [])
        )
        assert admitted == (other == svc), f"{svc}-db {'rejects' if other == svc else 'admits'} {other}-{role}"


@pytest.mark.parametrize("svc", SERVICES)
def test_each_database_has_a_pooler_only_its_service_reaches(svc: str) -> None:
    pooler = one("Pooler", f"{svc}-db-pooler-rw")
    assert pooler["spec"]["cluster"]["name"] == f"{svc}-db" and pooler["spec"]["type"] == "rw"
    assert pooler["spec"]["instances"] >= 2, "a pooler is on every request's path: no single pod"
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    # asyncpg prepares every statement: PgBouncer must track them in transaction mode.
    assert int(pooler["spec"]["pgbouncer"]["parameters"]["max_prepared_statements"]) > 0
    policies = _policies_for({"cnpg.io/poolerName": f"{svc}-db-pooler-rw"})
    for other, role in DEPLOYED:
        admitted = any(selects(peer.get("podSelector", {}), pod_labels(other, role)) and "namespaceSelector" not in peer
                       for p in policies for rule in p["spec"].get("ingress", []) for peer in rule.get("from", []))
        assert admitted == (other == svc), f"{svc}'s pooler {'rejects' if other == svc else 'admits'} {other}-{role}"


# ------------------------------------------------------------------ overlays


@pytest.mark.parametrize("root", ENTRY_POINTS, ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_rendered_sizes_agree(root: Path) -> None:
    """Whatever an overlay shrinks or grows, the pieces still fit: topics no wider than the brokers, a quorum
    Kafka can keep, standbys for a synchronous commit, autoscaler bounds within partitions."""
    docs = render(root)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    if "Kafka" not in by_kind:
        return  # an ops kustomization: nothing to size
    brokers = sum(p["spec"]["replicas"] for p in by_kind["KafkaNodePool"] if "broker" in p["spec"]["roles"])
    config = by_kind["Kafka"][0]["spec"]["kafka"]["config"]
    for key in ("default.replication.factor", "offsets.topic.replication.factor"):
        assert int(config[key]) <= brokers, f"{key} > {brokers} brokers"
    assert int(config["min.insync.replicas"]) <= int(config["default.replication.factor"])
    for topic in by_kind["KafkaTopic"]:
        replicas, isr = topic["spec"]["replicas"], int(topic["spec"]["config"]["min.insync.replicas"])
        assert isr <= replicas <= brokers, f"{topic['metadata']['name']}: replicas {replicas}, ISR {isr}"
        assert isr < replicas or replicas == 1, f"{topic['metadata']['name']}: one broker down stops writes"
    for cluster in by_kind["Cluster"]:
        sync = (cluster["spec"].get("postgresql") or {}).get("synchronous")
        if sync:
            assert sync["number"] < cluster["spec"]["instances"], f"{cluster['metadata']['name']}: no standby"
    partitions = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in by_kind["KafkaTopic"]}
    for scaled in by_kind.get("ScaledObject", []):
        spec = scaled["spec"]
        assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
        for trigger in spec["triggers"]:
            if trigger["type"] == "kafka":
                assert spec["maxReplicaCount"] <= partitions[trigger["metadata"]["topic"]], scaled["metadata"]["name"]
    for hpa in by_kind.get("HorizontalPodAutoscaler", []):
        assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"], hpa["metadata"]["name"]
