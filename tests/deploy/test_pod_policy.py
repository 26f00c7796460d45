"""Policy over every pod the overlays render: non-root, locked down, with limits; every long-running
container has probes. (Operator-made pods, Kafka's and PostgreSQL's, follow their operators.)"""
from typing import Any

import pytest

from tests.deploy.test_k8s_manifests import ENTRY_POINTS, K8S_DIR, render

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "Pod"}


def pods(root) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for doc in render(root):
        if doc["kind"] not in WORKLOADS:
            continue
        spec = doc["spec"]["jobTemplate"]["spec"] if doc["kind"] == "CronJob" else doc["spec"]
        pod = spec if doc["kind"] == "Pod" else spec["template"]["spec"]
        found.append((f"{doc['kind']}/{doc['metadata']['name']}", doc["kind"], pod))
    return found


@pytest.mark.parametrize("root", ENTRY_POINTS, ids=lambda p: str(p.relative_to(K8S_DIR)))
def test_every_container_is_non_root_locked_down_limited_and_probed(root) -> None:
    found = pods(root)
    assert found, f"{root}: no workloads rendered"
    for where, kind, pod in found:
        security = pod.get("securityContext", {})
        assert pod.get("automountServiceAccountToken") is False, f"{where}: no workload calls the Kubernetes API"
        for c in pod.get("initContainers", []) + pod["containers"]:
            name = f"{where}/{c['name']}"
            sc = c.get("securityContext", {})
            assert sc.get("runAsNonRoot", security.get("runAsNonRoot")) is True, f"{name}: runAsNonRoot"
            assert sc.get("runAsUser", security.get("runAsUser", 1)) != 0, f"{name}: runs as root"
            assert (sc.get("seccompProfile") or security.get("seccompProfile", {})).get("type") in (
                "RuntimeDefault", "Localhost"), f"{name}: seccomp profile"
            assert sc.get("allowPrivilegeEscalation") is False, f"{name}: privilege escalation"
            assert sc.get("readOnlyRootFilesystem") is True, f"{name}: writable root filesystem"
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: capabilities not dropped"
            assert not sc.get("privileged"), f"{name}: privileged"
            limits, requests = c.get("resources", {}).get("limits", {}), c.get("resources", {}).get("requests", {})
            assert {"cpu", "memory"} <= set(requests), f"{name}: requests"
            assert {"cpu", "memory"} <= set(limits), f"{name}: limits"
        if kind in ("Deployment", "StatefulSet", "DaemonSet"):
            for c in pod["containers"]:  # init containers and Jobs run to completion: no probes
                assert c.get("livenessProbe") and c.get("readinessProbe"), f"{where}/{c['name']}: probes"
