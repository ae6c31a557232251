"""Kubernetes manifests: parse, and agree with each other and with the metrics port."""

from __future__ import annotations

import pytest
import yaml

from ._support import DEPLOY

K8S = DEPLOY / "kubernetes"


def docs() -> list[dict]:
    out = []
    for path in sorted(K8S.glob("*.yaml")):
        out += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def by_kind(kind: str) -> list[dict]:
    return [d for d in docs() if d["kind"] == kind]


def test_all_yaml_parses_with_kind_and_name():
    for doc in docs():
        assert doc["apiVersion"] and doc["kind"]
        if doc["kind"] != "Kustomization":
            assert doc["metadata"]["name"]


def test_kustomization_lists_existing_files():
    (kustomization,) = by_kind("Kustomization")
    for resource in kustomization["resources"]:
        assert (K8S / resource).exists(), resource


@pytest.fixture(scope="module")
def worker() -> dict:
    (deployment,) = [d for d in by_kind("Deployment") if d["metadata"]["name"] == "touchpoint-worker"]
    return deployment


def test_worker_resources_and_probes(worker):
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker"]
    for key in ("cpu", "memory"):
        assert key in container["resources"]["requests"] and key in container["resources"]["limits"]
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["metrics"]
    (config,) = by_kind("ConfigMap")
    assert str(port) == config["data"]["TOUCHPOINT_METRICS_PORT"]
    paths = {"startupProbe": "/healthz", "livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in paths.items():
        get = container[probe]["httpGet"]
        assert get["path"] == path and get["port"] in ("metrics", port), probe
    annotations = worker["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/port"] == str(port)


def test_env_comes_from_configmap_and_secret(worker):
    (container,) = worker["spec"]["template"]["spec"]["containers"]
    refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    (config,) = by_kind("ConfigMap")
    (secret,) = by_kind("Secret")
    assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": secret["metadata"]["name"]}
    assert "TOUCHPOINT_CLICKHOUSE_URL" in secret["stringData"]
    assert "TOUCHPOINT_CLICKHOUSE_URL" not in config["data"], "credentials belong in the Secret"


def test_replicas_do_not_exceed_partitions(worker):
    (config,) = by_kind("ConfigMap")
    assert worker["spec"]["replicas"] <= int(config["data"]["TOUCHPOINT_PARTITIONS"])
    assert "partitions" in (K8S / "README.md").read_text().lower()


def test_podmonitor_selects_the_worker_pods(worker):
    (monitor,) = by_kind("PodMonitor")
    pod_labels = worker["spec"]["template"]["metadata"]["labels"]
    for key, value in monitor["spec"]["selector"]["matchLabels"].items():
        assert pod_labels.get(key) == value
    assert pod_labels[monitor["spec"]["jobLabel"]] == "touchpoint-worker", "rules select job=touchpoint-worker"
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"


def test_non_root(worker):
    spec = worker["spec"]["template"]["spec"]
    assert spec["securityContext"]["runAsNonRoot"] is True


def test_jobs_run_real_commands_with_the_same_configuration():
    from touchpoint.cli import parser

    jobs = {job["metadata"]["name"]: job for job in by_kind("Job")}
    assert {"touchpoint-migrate", "touchpoint-register-schemas"} <= set(jobs)
    (config,) = by_kind("ConfigMap")
    (secret,) = by_kind("Secret")
    for name, job in jobs.items():
        spec = job["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        parser().parse_args(container["args"])  # SystemExit on an unknown command
        refs = {next(iter(ref)): next(iter(ref.values()))["name"] for ref in container["envFrom"]}
        assert refs == {"configMapRef": config["metadata"]["name"], "secretRef": secret["metadata"]["name"]}, name
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert "requests" in container["resources"], name
    assert jobs["touchpoint-register-schemas"]["spec"]["template"]["spec"]["containers"][0]["args"] == [
        "schemas", "register"]
    assert config["data"]["TOUCHPOINT_SCHEMA_REGISTRY_URL"].startswith("http")


def test_replicas_leave_room_for_the_surge_pod(worker):
    """With maxSurge 1 and readiness on owning partitions, replicas + 1 must not exceed partitions."""
    (config,) = by_kind("ConfigMap")
    surge = worker["spec"]["strategy"]["rollingUpdate"]["maxSurge"]
    assert worker["spec"]["replicas"] + surge <= int(config["data"]["TOUCHPOINT_PARTITIONS"])
