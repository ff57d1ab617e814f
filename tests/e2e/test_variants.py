"""One model version, several artifacts: each line computer gets the build its hardware fits.

Given an amd64 line (edge-a: x86 computers and a GPU PC) and an arm64 gateway site (edge-b),
and an MLModel with an fp32 build for amd64, an int8 build for arm64 and an fp16 build for
GPUs (real ONNX files, fetched and validated by the operator), then each cluster runs its
variant, status and `edgeline status` say which and why, a cluster no variant fits is
excluded with the reason, and variants that disagree on their tensors make the model Invalid.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from edgeline.artifacts.fetch import sha256_of
from tests.e2e.conftest import register_edge_cluster, runtime_configmaps, wait_for
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import API, edge_deployment
from tests.helpers.onnx_models import gemm_relu, gemm_relu_fp16, gemm_relu_int8, write


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Real ONNX files: fp32, int8 and fp16 builds with the same tensors, and one that disagrees."""
    folder = tmp_path_factory.mktemp("variants")
    files = {"fp32": write(gemm_relu(), folder / "fp32.onnx"),
             "int8": write(gemm_relu_int8(), folder / "int8.onnx"),
             "fp16": write(gemm_relu_fp16(), folder / "fp16.onnx"),
             "wide": write(gemm_relu(hidden=5), folder / "wide.onnx")}
    with serve(folder) as url:
        yield url, {k: sha256_of(p)[0] for k, p in files.items()}


@pytest.fixture
def sites(hub, edge_a, edge_b, operator, namespace):
    """An amd64 line on edge-a and an arm64 gateway on edge-b, both of one fleet."""
    tag = "v" + uuid.uuid4().hex[:5]
    members = {f"{tag}-line": (edge_a, "line-1"), f"{tag}-gateway": (edge_b, "gateway")}
    for name, (member, line) in members.items():
        register_edge_cluster(hub, name, member, {"edgeline.io/fleet": tag, "edgeline.io/line": line})
    for name in members:
        hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=90s")
    yield tag, f"{tag}-line", f"{tag}-gateway"
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    for name in members:
        hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _model(namespace, name, url, digests, default_platform, variants):
    spec = {"model": "gemm", "version": name, "stage": "production",
            "artifact": {"uri": f"{url}/fp32.onnx", "sha256": digests["fp32"]}, "metrics": {"accuracy": 0.97},
            "variants": [{"name": v, "artifact": {"uri": f"{url}/{f}.onnx", "sha256": digests[f]}, "platform": p}
                         for v, f, p in variants]}
    if default_platform:
        spec["platform"] = default_platform
    return {"apiVersion": API, "kind": "MLModel", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def _wait_model(hub, namespace, name, phase="Ready"):
    def done():
        status = hub.get("mlmodel", name, "-n", namespace).get("status") or {}
        return status if status.get("phase") == phase else None
    return wait_for(done, timeout=90, what=f"MLModel {name} {phase}")


def _deployment_status(hub, namespace, name, check, what):
    def seen():
        status = hub.get("edgedeployment", name, "-n", namespace).get("status") or {}
        return status if check(status) else None
    return wait_for(seen, timeout=120, what=lambda: f"{what} (status: "
                    f"{json.dumps(hub.get('edgedeployment', name, '-n', namespace).get('status'))[:2000]})")


def _runtime(member, cluster, deployment):
    ns = f"ns-{cluster}"
    configs = runtime_configmaps(member, ns, deployment)
    [deploy] = member.get("deployments", "-n", ns, "-l", f"edgeline.io/deployment={deployment}")["items"]
    return configs[0]["data"], deploy["spec"]["template"]["spec"]


def _edgeline(hub, *args):
    return subprocess.run([sys.executable, "-m", "edgeline", *args, "--kubeconfig", str(hub.kubeconfig)],
                          capture_output=True, text=True, timeout=60)


def test_each_cluster_runs_the_build_its_architecture_fits(hub, edge_a, edge_b, sites, namespace, builds):
    tag, line, gateway = sites
    url, digests = builds
    hub.apply(_model(namespace, "gemm-1", url, digests, {"architecture": "amd64"},
                     [("arm64-int8", "int8", {"architecture": "arm64", "minRuntimeVersion": "1.18"})]))
    status = _wait_model(hub, namespace, "gemm-1")
    assert [(v["name"], v["digest"], v["opset"]) for v in status["variants"]] == [
        ("default", digests["fp32"], 17), ("arm64-int8", digests["int8"], 17)]
    assert status["variantsDigest"].startswith("sha256:")

    # Before anything is deployed: which build would go where.
    where = _edgeline(hub, "model", "inspect", "mlmodel/gemm-1", "-n", namespace, "-o", "json")
    assert where.returncode == 0, where.stderr
    rows = {r["cluster"]: r for r in json.loads(where.stdout)}
    assert (rows[line]["variant"], rows[gateway]["variant"]) == ("default", "arm64-int8")

    spec = edge_deployment(namespace, {"edgeline.io/fleet": tag}, name="gemm")
    spec["spec"]["modelRef"] = {"name": "gemm-1"}
    hub.apply(spec)
    status = _deployment_status(hub, namespace, "gemm", lambda s: s.get("phase") == "Healthy",
                                "both clusters to run their variant")
    clusters = {c["name"]: c for c in status["clusters"]}
    assert clusters[line]["variant"] == "default" and "built for amd64" in clusters[line]["variantReason"]
    assert clusters[gateway]["variant"] == "arm64-int8" and "built for arm64" in clusters[gateway]["variantReason"]
    assert [v["name"] for v in status["currentRevision"]["variants"]] == ["default", "arm64-int8"]

    # What really runs on each cluster: its own artifact, on nodes of its architecture.
    data, pod = _runtime(edge_b, gateway, "gemm")
    assert (data["EDGELINE_MODEL_URI"], data["EDGELINE_MODEL_SHA256"], data["EDGELINE_MODEL_VARIANT"]) == \
        (f"{url}/int8.onnx", digests["int8"], "arm64-int8")
    arch = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert arch[0]["matchExpressions"][0]["values"] == ["arm64"]
    data, _ = _runtime(edge_a, line, "gemm")
    assert (data["EDGELINE_MODEL_URI"], data["EDGELINE_MODEL_SHA256"]) == (f"{url}/fp32.onnx", digests["fp32"])

    tree = _edgeline(hub, "status", "gemm", "-n", namespace)
    assert tree.returncode == 0, tree.stderr
    assert f"{gateway}  Ready" in tree.stdout and "variant arm64-int8: built for arm64" in tree.stdout


def test_a_gpu_build_goes_to_the_gpu_line_and_a_cluster_no_build_fits_is_excluded(hub, edge_a, sites, namespace,
                                                                                   builds):
    tag, line, gateway = sites
    url, digests = builds
    hub.apply(_model(namespace, "gemm-2", url, digests, {"architecture": "amd64"},
                     [("gpu-fp16", "fp16", {"accelerator": "gpu", "executionProvider": "CUDA"})]))
    _wait_model(hub, namespace, "gemm-2")
    spec = edge_deployment(namespace, {"edgeline.io/fleet": tag}, name="gemm")
    spec["spec"]["modelRef"] = {"name": "gemm-2"}
    hub.apply(spec)
    status = _deployment_status(hub, namespace, "gemm", lambda s: s.get("excluded") and s.get("clusters"),
                                "the gateway to be excluded")
    [excluded] = status["excluded"]
    assert (excluded["name"], excluded["reason"]) == (gateway, "NoVariantFits")
    assert "default: built for amd64; nodes are arm64" in excluded["message"]
    assert "gpu-fp16: needs a GPU" in excluded["message"]
    assert [c["name"] for c in status["clusters"]] == [line]
    assert status["clusters"][0]["variant"] == "gpu-fp16"

    # edge-a has a GPU PC: the fp16 build runs there with CUDA, asking for the GPU.
    def on_gpu():
        configs = runtime_configmaps(edge_a, f"ns-{line}", "gemm")
        return configs and configs[0]["data"].get("EDGELINE_MODEL_VARIANT") == "gpu-fp16" and configs[0]["data"]
    data = wait_for(on_gpu, timeout=60, what="the GPU build on the line")
    assert (data["EDGELINE_EXECUTION_PROVIDER"], data["EDGELINE_MODEL_SHA256"]) == ("CUDA", digests["fp16"])
    _, pod = _runtime(edge_a, line, "gemm")
    assert pod["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_variants_that_disagree_on_their_tensors_make_the_model_invalid(hub, operator, namespace, builds):
    url, digests = builds
    hub.apply(_model(namespace, "gemm-bad", url, digests, None,
                     [("wide", "wide", {"architecture": "arm64"})]))
    status = _wait_model(hub, namespace, "gemm-bad", phase="Invalid")
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "VariantSignatureMismatch"
    assert "output y of wide has shape [batch, 5], the default's is [batch, 4]" in ready["message"]
