"""The factory samples apply cleanly to a real hub, and the API rejects bad input clearly."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.e2e.conftest import OPERATOR_NAMESPACE, ROOT

SAMPLES = ROOT / "manifests" / "samples"


def _sample_docs(kind: str) -> list[dict]:
    docs = []
    for path in sorted(SAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == kind]
    return docs


def test_the_samples_apply_and_their_edge_clusters_become_ready(hub, edge_a, edge_b, operator):
    local = {"cloud": hub, "arm64": edge_b, "other": edge_a}
    for cluster in _sample_docs("EdgeCluster"):
        labels = cluster["metadata"]["labels"]
        plays = local["cloud"] if cluster["spec"]["tier"] == "cloud" else (
            local["arm64"] if "arm64" in labels.get("edgeline.io/hardware", "") else local["other"])
        hub.apply({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": cluster["spec"]["connection"]["kubeconfigSecretRef"]["name"],
                                "namespace": OPERATOR_NAMESPACE},
                   "stringData": {"kubeconfig": plays.kubeconfig.read_text()}})

    hub.kubectl("apply", "-f", str(SAMPLES))
    hub.kubectl("wait", "edgecluster", "--all", "--for=condition=Ready", "--timeout=90s")

    listed = hub.kubectl("get", "edgeline", "-A").stdout
    for name in ("edgecluster.edgeline.io/brno-assembly", "mlmodel.edgeline.io/defect-detector-2.0.0",
                 "edgedeployment.edgeline.io/defect-detector-gpu", "datapipeline.edgeline.io/defect-retraining"):
        assert name in listed
    brno = hub.get("edgecluster", "brno-assembly")["status"]
    assert brno["architectures"] == ["arm64"] and brno["distribution"] == "k3s"
    for resource, header in COLUMNS.items():
        first = hub.kubectl("get", resource, "-A").stdout.splitlines()[0]
        assert [c.strip() for c in first.split("  ") if c.strip()] == header, first


# What `kubectl get` shows: the columns that answer a user's first question about each kind.
COLUMNS = {
    "edgeclusters": ["NAME", "TIER", "SITE", "LINE", "REACHABLE", "VERSION", "LAST SEEN", "AGE"],
    "mlmodels": ["NAMESPACE", "NAME", "MODEL", "VERSION", "PHASE", "OPSET", "SIZE", "AGE"],
    "edgedeployments": ["NAMESPACE", "NAME", "MODEL", "VERSION", "PHASE", "READY", "APPROVAL", "AGE"],
    "datapipelines": ["NAMESPACE", "NAME", "SCHEDULE", "LAST RUN", "PHASE", "AGE"],
}


def test_kubectl_explain_teaches_the_artifact_fields(hub, crds_installed):
    text = hub.kubectl("explain", "mlmodel.spec.artifact").stdout
    assert "sha256:<64 hex>" in text and "file://" in text


@pytest.mark.parametrize("path, words", [
    ("edgedeployment.spec.rollout.waves.percentage", "Cumulative share"),
    ("edgedeployment.spec.approval.minApprovers", "four-eyes"),
    ("edgedeployment.spec.modelRef.follow", "LatestReady"),
    ("edgedeployment.status.pendingApproval", "waiting for approval"),
    ("datapipeline.spec.steps.dependsOn", "must form a DAG"),
    ("datapipeline.spec.schedule.cron", "Five-field cron"),
    ("edgecluster.spec.targetNamespace", "share one API server"),
])
def test_kubectl_explain_documents_the_fields(hub, crds_installed, path, words):
    assert words in hub.kubectl("explain", path).stdout


def test_every_served_field_has_a_description_for_kubectl_explain(hub, crds_installed):
    served = json.loads(hub.kubectl("get", "--raw", "/openapi/v3/apis/edgeline.io/v1alpha1").stdout)
    schemas = served["components"]["schemas"]
    missing = []
    for kind in ("EdgeCluster", "MLModel", "EdgeDeployment", "DataPipeline"):
        root = schemas[f"io.edgeline.v1alpha1.{kind}"]
        for part in ("spec", "status"):
            missing += [f"{kind}.{p}" for p in _undocumented(root["properties"][part], part)]
    assert not missing, missing


def _undocumented(node: dict, path: str):
    if not node.get("description"):
        yield path
    for name, sub in node.get("properties", {}).items():
        yield from _undocumented(sub, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _undocumented(node["items"], f"{path}[]")


def _model(name: str, namespace: str, **artifact) -> dict:
    return {"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": "defect-detector", "version": "9.0.0", "stage": "production",
                     "artifact": {"uri": "http://127.0.0.1:1/m.onnx", **artifact}}}


def test_a_production_model_without_digest_is_rejected(hub, crds_installed, namespace):
    result = hub.apply(_model("no-digest", namespace), check=False)
    assert result.returncode != 0
    assert "artifact.sha256 is required when stage is production" in result.stderr


def test_a_malformed_digest_is_rejected_naming_the_field(hub, crds_installed, namespace):
    result = hub.apply(_model("bad-digest", namespace, sha256="md5:abc"), check=False)
    assert result.returncode != 0
    assert "spec.artifact.sha256" in result.stderr


def test_an_mlmodel_spec_cannot_change_after_creation(hub, crds_installed, namespace):
    digest = "sha256:" + "a" * 64
    hub.apply(_model("frozen", namespace, sha256=digest))
    changed = _model("frozen", namespace, sha256="sha256:" + "b" * 64)
    result = hub.apply(changed, check=False)
    assert result.returncode != 0
    assert "spec is immutable" in result.stderr
