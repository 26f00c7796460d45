"""Autoscaling: each service's API Deployment has an HPA on CPU, each worker Deployment a KEDA
ScaledObject on the lag of the consumer groups it runs, and none can grow past what helps.

* ``<svc>-api``: a HorizontalPodAutoscaler (autoscaling/v2) on CPU, at least 2 replicas (one may be
  drained: the PodDisruptionBudgets allow one down).
* ``<svc>-worker``: a ScaledObject with a ``kafka`` trigger per fixed consumer group of the service
  (from services/<svc>/app.py) and a ``cpu`` trigger; a consumer whose group changes per generation
  (reporting) cannot be named to KEDA and is covered by the CPU trigger. At least 2 replicas, at
  most the partition count of every topic the worker consumes (schemas/catalog.py): a consumer
  beyond that sits idle.
* The Kafka triggers log in as KafkaUser keda over the TLS listener, trusting the cluster CA.
* The targets are Deployments that exist, with the right component label, and set no
  ``spec.replicas`` (applying one would reset the autoscaler's count on every apply).
"""
from __future__ import annotations

from typing import Any

import pytest

from schemas.catalog import TOPICS
from tests.deploy.test_kafka_access import (
    KEDA_USER,
    SERVICES,
    client_listener,
    cluster_name,
    code_consumers,
    consumers_of,
    named,
    namespace,
    of_kind,
    selects,
    users,
)

MIN_REPLICAS = 2
# KEDA's Kafka scaler talks sarama; Kafka 4 (KIP-896) answers only protocol versions of Kafka 2.1 and later.
MIN_SARAMA_VERSION = (2, 1, 0)


def hpa_for(deployment: str) -> list[dict[str, Any]]:
    return [h for h in of_kind("HorizontalPodAutoscaler") if h["spec"]["scaleTargetRef"]["name"] == deployment]


def scaled_objects_for(deployment: str) -> list[dict[str, Any]]:
    return [s for s in of_kind("ScaledObject") if s["spec"]["scaleTargetRef"]["name"] == deployment]


def the_scaled_object(svc: str) -> dict[str, Any]:
    found = scaled_objects_for(f"{svc}-worker")
    assert len(found) == 1, f"{svc}-worker: expected one ScaledObject, found {len(found)}"
    return found[0]


def consumed_partitions(svc: str) -> int:
    return min(t.partitions for t in TOPICS if svc in t.consumers)


# --------------------------------------------------------------------------- APIs


@pytest.mark.parametrize("svc", SERVICES)
def test_every_api_has_an_hpa_on_cpu(svc: str) -> None:
    found = hpa_for(f"{svc}-api")
    assert len(found) == 1, f"{svc}-api: expected one HorizontalPodAutoscaler, found {len(found)}"
    hpa = found[0]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"]) == ("apps/v1", "Deployment")
    spec = hpa["spec"]
    assert spec["minReplicas"] >= MIN_REPLICAS, f"{svc}-api: fewer than {MIN_REPLICAS} replicas"
    assert spec["maxReplicas"] > spec["minReplicas"], f"{svc}-api: nothing to scale"
    assert [m["resource"]["name"] for m in spec["metrics"] if m["type"] == "Resource"] == ["cpu"]
    down = spec["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 60, f"{svc}-api: scales down on a single quiet sample"


# --------------------------------------------------------------------------- workers


@pytest.mark.parametrize("svc", SERVICES)
def test_every_worker_has_a_scaled_object_within_its_partitions(svc: str) -> None:
    so = the_scaled_object(svc)
    spec = so["spec"]
    assert spec["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert spec["minReplicaCount"] >= MIN_REPLICAS, f"{svc}-worker: fewer than {MIN_REPLICAS} replicas"
    assert "idleReplicaCount" not in spec, f"{svc}-worker: must never scale to zero (deadlines, dispatch)"
    assert spec["maxReplicaCount"] > spec["minReplicaCount"], f"{svc}-worker: nothing to scale"
    partitions = consumed_partitions(svc)
    assert spec["maxReplicaCount"] <= partitions, (
        f"{svc}-worker: up to {spec['maxReplicaCount']} consumers for topics of {partitions} partitions"
    )
    down = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleDown"]
    assert down["stabilizationWindowSeconds"] >= 60, f"{svc}-worker: each scale-in rebalances its groups"


@pytest.mark.parametrize("svc", SERVICES)
def test_worker_triggers_follow_its_consumer_groups(svc: str) -> None:
    triggers = the_scaled_object(svc)["spec"]["triggers"]
    on_lag = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers if t["type"] == "kafka"}
    fixed = {(c.group, topic) for c in consumers_of(svc) if not c.checkpoint for topic in c.topics}
    assert on_lag == fixed, f"{svc}-worker: Kafka triggers {sorted(on_lag)}, consumer groups {sorted(fixed)}"
    cpu = [t for t in triggers if t["type"] == "cpu"]
    assert len(cpu) == 1, f"{svc}-worker: expected one cpu trigger (background loops; generation groups)"


def test_trigger_names_are_unique_per_scaled_object() -> None:
    for so in of_kind("ScaledObject"):
        names = [t.get("name") for t in so["spec"]["triggers"]]
        assert all(names) and len(set(names)) == len(names), so["metadata"]["name"]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def test_kafka_triggers_reach_the_tls_listener_as_keda() -> None:
    listener = client_listener()
    bootstrap = f"{cluster_name()}-kafka-bootstrap.{namespace()}.svc:{listener['port']}"
    triggers = [t for so in of_kind("ScaledObject") for t in so["spec"]["triggers"] if t["type"] == "kafka"]
    assert triggers
    for t in triggers:
        meta, where = t["metadata"], t.get("name")
        # KEDA's operator runs in its own namespace: the short Service name would not resolve there.
        assert meta["bootstrapServers"] == bootstrap, where
        assert (meta["sasl"], meta["tls"]) == ("scram_sha512", "enable"), where
        assert meta["offsetResetPolicy"] == "earliest", f"{where}: the consumers start from the earliest offset"
        assert int(meta["lagThreshold"]) > 0, where
        assert _version(meta["version"]) >= MIN_SARAMA_VERSION, f"{where}: Kafka 4 rejects older protocol versions"
        assert meta.get("allowIdleConsumers", "false") == "false", where
        assert named("TriggerAuthentication", t["authenticationRef"]["name"]), f"{where}: no TriggerAuthentication"


def test_trigger_authentication_is_the_keda_kafka_user() -> None:
    names = {t["authenticationRef"]["name"] for so in of_kind("ScaledObject") for t in so["spec"]["triggers"]
             if t["type"] == "kafka"}
    for name in names:
        spec = named("TriggerAuthentication", name)["spec"]
        params = {r["parameter"]: ("ConfigMap", r["name"], r["key"]) for r in spec.get("configMapTargetRef", [])}
        params |= {r["parameter"]: ("Secret", r["name"], r["key"]) for r in spec.get("secretTargetRef", [])}
        assert set(params) == {"username", "password", "ca"}, f"{name}: parameters {sorted(params)}"
        kind, cm_name, key = params["username"]
        assert kind == "ConfigMap", f"{name}: the user name is not secret; Strimzi's Secret does not hold it"
        config_map = named("ConfigMap", cm_name)
        assert config_map, f"{name}: no ConfigMap {cm_name}"
        user = config_map["data"][key]
        assert user == KEDA_USER and user in users(), f"{name}: logs in as {user!r}"
        assert params["password"] == ("Secret", user, "password"), f"{name}: password from {params['password']}"
        assert params["ca"] == ("Secret", f"{cluster_name()}-cluster-ca-cert", "ca.crt"), f"{name}: CA"


def test_a_generation_group_is_scaled_on_cpu_not_on_a_guessed_group() -> None:
    for c in code_consumers():
        if c.checkpoint:
            triggers = the_scaled_object(c.service)["spec"]["triggers"]
            groups = [t["metadata"]["consumerGroup"] for t in triggers if t["type"] == "kafka"]
            assert not any(g.startswith(c.group) for g in groups), (
                f"{c.service}: a trigger on a fixed {c.group}.g<N> would see its lag grow forever after a rebuild"
            )


# --------------------------------------------------------------------------- targets


def _split_deployments() -> dict[str, dict[str, Any]]:
    found = {d["metadata"]["name"]: d for d in of_kind("Deployment")}
    assert any(name.endswith(("-api", "-worker")) for name in found), "no <svc>-api / <svc>-worker Deployments"
    return found


@pytest.mark.parametrize("svc", SERVICES)
@pytest.mark.parametrize("role", ["api", "worker"])
def test_scale_target_exists_and_leaves_replicas_to_the_autoscaler(svc: str, role: str) -> None:
    deployments = _split_deployments()
    name = f"{svc}-{role}"
    assert name in deployments, f"no Deployment {name}"
    d = deployments[name]
    labels = d["spec"]["template"]["metadata"]["labels"]
    assert labels.get("app.kubernetes.io/component") == role and labels.get("app.kubernetes.io/name") == svc
    assert "replicas" not in d["spec"], f"{name}: spec.replicas would reset the autoscaler on every apply"
    owners = hpa_for(name) + scaled_objects_for(name)
    assert len(owners) == 1, f"{name}: {len(owners)} autoscalers"
    minimum = owners[0]["spec"].get("minReplicas") or owners[0]["spec"].get("minReplicaCount")
    for pdb in of_kind("PodDisruptionBudget"):
        if selects(pdb["spec"]["selector"], labels):
            spec = pdb["spec"]
            assert spec.get("maxUnavailable", 0) >= 1 or spec["minAvailable"] < minimum, (
                f"{pdb['metadata']['name']}: blocks every drain at {minimum} replicas"
            )


def test_every_autoscaler_targets_an_existing_deployment() -> None:
    deployments = _split_deployments()
    targets = [h["spec"]["scaleTargetRef"]["name"] for h in of_kind("HorizontalPodAutoscaler")]
    targets += [s["spec"]["scaleTargetRef"]["name"] for s in of_kind("ScaledObject")]
    assert len(targets) == len(set(targets)), "two autoscalers for one Deployment"
    assert set(targets) <= set(deployments), f"no Deployment for {sorted(set(targets) - set(deployments))}"
