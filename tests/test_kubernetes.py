"""deploy/kubernetes/: valid YAML, the example scenarios in the ConfigMap, and a Deployment that fits the image."""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
import yaml
from conftest import EXAMPLES, ROOT

from mockllm import load_scenarios
from mockllm.loading import load_text
from mockllm.timing import parse_duration

KUBERNETES = ROOT / "deploy" / "kubernetes"
REGENERATE = (
    "regenerate it from the repository root as deploy/kubernetes/README.md says "
    "(kubectl create configmap mockllm-scenarios --from-file=scenarios/ --dry-run=client -o yaml)"
)


def _documents(name: str) -> list[dict[str, Any]]:
    with (KUBERNETES / name).open(encoding="utf-8") as handle:
        documents = [d for d in yaml.safe_load_all(handle) if d is not None]
    assert all(isinstance(d, dict) for d in documents), name
    return documents


def _one(name: str, kind: str) -> dict[str, Any]:
    [document] = _documents(name)
    assert document["kind"] == kind
    return document


def test_every_manifest_is_yaml_and_listed_in_the_kustomization() -> None:
    kustomization = _one("kustomization.yaml", "Kustomization")
    manifests = sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(kustomization["resources"]) == manifests
    for name in manifests:
        assert _documents(name), name


def test_the_configmap_holds_the_example_scenarios_as_they_are() -> None:
    data = _one("configmap.yaml", "ConfigMap")["data"]
    files = {p.name: p.read_text(encoding="utf-8") for p in sorted(EXAMPLES.glob("*.yaml"))}
    assert sorted(data) == sorted(files), f"the ConfigMap's files differ from scenarios/: {REGENERATE}"
    for name, text in files.items():
        assert data[name] == text, f"{name} in the ConfigMap differs from scenarios/{name}: {REGENERATE}"


def test_the_configmap_scenarios_load_as_the_files_do() -> None:
    data = _one("configmap.yaml", "ConfigMap")["data"]
    loaded = [s for name in sorted(data) for s in load_text(data[name], f"/scenarios/{name}")]
    expected = load_scenarios([EXAMPLES])
    assert [s.name for s in loaded] == [s.name for s in expected]
    assert [s.model_dump() for s in loaded] == [s.model_dump() for s in expected]


def test_the_deployment_serves_the_configmap_as_the_image_user_with_health_probes() -> None:
    deployment = _one("deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    [container] = pod["containers"]
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    user = re.search(r"^USER (\d+):(\d+)$", dockerfile, flags=re.MULTILINE)
    assert user is not None
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["runAsGroup"]) == tuple(map(int, user.groups()))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["args"] == ["/scenarios"]
    [mount] = container["volumeMounts"]
    [volume] = pod["volumes"]
    assert (mount["mountPath"], mount["name"]) == ("/scenarios", volume["name"])
    assert volume["configMap"]["name"] == _one("configmap.yaml", "ConfigMap")["metadata"]["name"]
    [port] = container["ports"]
    assert port["containerPort"] == 8000
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/_mockllm/health", "port": port["name"]}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["MOCKLLM_WORKERS"] == "1"
    # The pod gets longer to stop than the streams get to finish.
    assert pod["terminationGracePeriodSeconds"] > parse_duration(env["MOCKLLM_GRACE"])
    assert set(container["resources"]) == {"requests", "limits"}


def test_the_service_selects_the_deployment_pods() -> None:
    service = _one("service.yaml", "Service")
    deployment = _one("deployment.yaml", "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [port] = service["spec"]["ports"]
    assert (port["port"], port["targetPort"]) == (8000, "http")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_renders_the_kustomization() -> None:
    done = subprocess.run(
        ["kubectl", "kustomize", str(KUBERNETES)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    kinds = sorted(d["kind"] for d in yaml.safe_load_all(done.stdout))
    assert kinds == ["ConfigMap", "Deployment", "Service"]
