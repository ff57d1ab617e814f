"""A model kept in an OCI registry: a person pushes the ONNX file with `edgeline model push`, names
the printed digest-pinned oci:// reference in an MLModel, the operator verifies and inspects it
(Ready), and the edge runtime as a real container on edge-a's real node fetches the same
artifact from the registry, verifies it and answers inferences.

The registry is the dev environment's docker-registry binary, serving on the host address Pods
reach (the environment's own registry listens on loopback, for containerd). A missing piece fails
these tests, it never skips them.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from tests.e2e.conftest import register_edge_cluster, wait_for
from tests.helpers import runtime_models
from tests.helpers.real_runtime import MODEL, real, real_node_runtime  # noqa: F401  (fixture `real` by name)
from tests.helpers.real_runtime import cluster_status, infer, pods, probabilities, ready, runtime_log
from tests.helpers.real_runtime import wait_for_status
from tests.helpers.registry import RunningRegistry, push


@pytest.fixture(scope="module")
def model_registry(real, tmp_path_factory):
    """A registry of the line's models on an address both the operator and the Pods reach."""
    with RunningRegistry(tmp_path_factory.mktemp("model-registry"), host=real.host) as running:
        yield running


@pytest.fixture(scope="module")
def pushed(model_registry, tmp_path_factory) -> tuple[dict, object]:
    path = tmp_path_factory.mktemp("oci-model") / "defect-detector-1.0.0.onnx"
    path.write_bytes(runtime_models.sample_model("1.0.0").read_bytes())
    return push(path, f"oci://{model_registry.address}/models/defect-detector:1.0.0"), path


@pytest.fixture
def line(hub, edge_a, operator, namespace):
    name = "oci" + uuid.uuid4().hex[:5]
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=60s")
    yield name
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=90s", check=False, timeout=120)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def test_an_oci_model_turns_ready_and_a_real_runtime_container_serves_it(hub, edge_a, namespace, line, real,
                                                                          pushed):
    # Given the model pushed to the line's registry, named by its manifest digest in an MLModel
    artifact, path = pushed
    assert "@sha256:" in artifact["uri"]
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
               "metadata": {"name": "detector-oci", "namespace": namespace},
               "spec": {"model": MODEL, "version": "1.0.0", "stage": "production",
                        "artifact": {"uri": artifact["uri"], "sha256": artifact["sha256"]}}})

    # Then the operator fetched it from the registry, verified it and inspected it
    model = wait_for(lambda: (m := hub.get("mlmodel", "detector-oci", "-n", namespace)).get("status", {})
                     .get("phase") in ("Ready", "Invalid") and m, timeout=120, what="the oci:// MLModel to settle")
    status = model["status"]
    assert status["phase"] == "Ready", status
    assert status["artifact"]["digest"] == artifact["sha256"]
    assert status["artifact"]["sizeBytes"] == path.stat().st_size
    assert [t["name"] for t in status["inspection"]["inputs"]] == ["image"]
    assert [t["name"] for t in status["inspection"]["outputs"]] == ["probabilities"]

    # When it is deployed to the real node
    hub.apply({"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
               "metadata": {"name": "detector", "namespace": namespace},
               "spec": {"modelRef": {"name": "detector-oci"},
                        "placement": {"clusterSelector": {"matchLabels": {"edgeline.io/line": line}}},
                        "runtime": real_node_runtime(real), "rollout": {"waveTimeoutSeconds": 600},
                        "approval": {"required": False}}})
    status = wait_for_status(hub, namespace, lambda s: s.get("phase") == "Healthy",
                             "the oci:// model Healthy on the real node", timeout=300)
    assert cluster_status(status, line)["readyReplicas"] == 1

    # Then the runtime container fetched the artifact from the registry, verified it and answers
    pod = next(p for p in pods(edge_a, line) if ready(p))
    assert pod["spec"]["nodeName"] == real.node
    events = runtime_log(edge_a, line, pod["metadata"]["name"])
    verified = next(e for e in events if e["event"] == "model_verified")
    assert verified["digest"] == artifact["sha256"]
    frames = runtime_models.images(batch=2, seed=5)
    code, answer = infer(pod["status"]["podIP"], frames)
    assert code == 200, answer
    assert answer["model_version"] == "1.0.0"
    np.testing.assert_allclose(probabilities(answer), runtime_models.run_directly(path, frames),
                               rtol=1e-5, atol=1e-6)
