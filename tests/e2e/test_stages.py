"""A retrained model cannot reach a production line by itself, even where approval is off.

Given a production line that follows the newest Ready defect-detector (LatestReady, minStage
production by default, no approval), when a staging candidate becomes Ready, then the line keeps
its production version; nobody can forge a promotion (not an editor, not in someone else's
name, and a record cannot be removed); and when an approver runs `edgeline promote`, the
promotion is recorded with their authenticated name and the line moves to the new version.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest

from edgeline.devenv.environment import user_kubeconfig
from tests.e2e.conftest import ROOT, register_edge_cluster, runtime_config, wait_for
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import SAMPLE_DIGESTS, SAMPLE_MODELS, edge_deployment, sample_mlmodel


@pytest.fixture(scope="module")
def people(hub, crds_installed):
    """The platform team's roles and the promotion policy (manifests/rbac, manifests/policies)."""
    hub.kubectl("apply", "-f", str(ROOT / "manifests" / "rbac" / "user-roles.yaml"))
    hub.kubectl("apply", "-f", str(ROOT / "manifests" / "policies" / "promotions.yaml"))
    hub.apply([{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": f"factory-{role}"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": f"edgeline-{role}"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": group}]}
               for role, group in (("editor", "factory:editors"), ("approver", "factory:approvers"))])

    # A policy takes a moment to be enforced: wait until a forged promotion is refused.
    probe_ns = f"p-{uuid.uuid4().hex[:6]}"
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": probe_ns}})
    hub.apply(sample_mlmodel(probe_ns, "1.0.0", "http://127.0.0.1:9/none", stage="staging"))
    # Each attempt writes another name: a change the policy must judge (an unchanged record passes).
    wait_for(lambda: _annotate(hub, probe_ns, "detector-1.0.0", "production", f"nobody-{uuid.uuid4().hex[:6]}",
                               None).returncode != 0, timeout=30, what="the promotion policy to be enforced")
    hub.kubectl("delete", "namespace", probe_ns, "--wait=false", check=False)


def _annotate(hub, namespace, model, stage, by, user):
    return hub.kubectl("annotate", "--overwrite", "mlmodel", model, "-n", namespace,
                       f"edgeline.io/promote={stage}", f"edgeline.io/promoted-by={by}", user=user, check=False)


@pytest.fixture
def line(hub, edge_a, operator, namespace, people):
    name = f"prod-{uuid.uuid4().hex[:5]}"
    register_edge_cluster(hub, name, edge_a, {"edgeline.io/line": name})
    hub.kubectl("wait", f"edgecluster/{name}", "--for=condition=Ready", "--timeout=90s")
    with serve(SAMPLE_MODELS) as url:
        yield name, url
    hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
    hub.kubectl("delete", "edgecluster", name, "--wait=false", check=False)


def _status(hub, namespace):
    return hub.get("edgedeployment", "detector", "-n", namespace).get("status") or {}


def _healthy_on(hub, namespace, version):
    def reached():
        status = _status(hub, namespace)
        return status if status.get("phase") == "Healthy" and \
            (status.get("currentRevision") or {}).get("version") == version else None
    return wait_for(reached, timeout=120, what=lambda: f"version {version} Healthy (status: "
                                                       f"{json.dumps(_status(hub, namespace))[:1500]})")


def test_a_staging_candidate_reaches_a_production_line_only_after_a_recorded_promotion(hub, edge_a, namespace,
                                                                                        line):
    name, url = line
    hub.apply(sample_mlmodel(namespace, "1.0.0", url))                      # production
    hub.kubectl("wait", "mlmodel/detector-1.0.0", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                timeout=120)
    spec = edge_deployment(namespace, {"edgeline.io/line": name})           # approval off
    spec["spec"]["modelRef"] = {"model": "defect-detector", "follow": "LatestReady"}
    hub.apply(spec)
    _healthy_on(hub, namespace, "1.0.0")

    # The retraining pipeline's candidate: staging, Ready, newer. The line does not follow it.
    hub.apply(sample_mlmodel(namespace, "2.0.0", url, stage="staging"))
    hub.kubectl("wait", "mlmodel/detector-2.0.0", "-n", namespace, "--for=condition=Ready", "--timeout=90s",
                timeout=120)

    def says_why():
        status = _status(hub, namespace)
        resolved = next((c for c in status.get("conditions") or [] if c["type"] == "ModelResolved"), {})
        return status if "2.0.0 (staging) is not followed until it is promoted to production" in \
            resolved.get("message", "") else None
    status = wait_for(says_why, timeout=60, what="the deployment to say why the candidate is not followed")
    assert status["desiredRevision"]["version"] == "1.0.0"
    ns = f"ns-{name}"
    assert runtime_config(edge_a, ns)["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["1.0.0"]
    model = hub.get("mlmodel", "detector-2.0.0", "-n", namespace)["status"]
    assert model["stage"] == "staging" and "promotion" not in model

    # Nobody forges a promotion: an editor may not promote; an approver may not write another name.
    refused = _annotate(hub, namespace, "detector-2.0.0", "production", "editor", "editor")
    assert refused.returncode != 0 and "may not promote MLModels" in refused.stderr
    refused = _annotate(hub, namespace, "detector-2.0.0", "production", "approver-b", "approver-a")
    assert refused.returncode != 0 and "must name the person promoting" in refused.stderr

    # An approver promotes it, as themselves: recorded, and the line moves.
    config = user_kubeconfig(hub.env, "hub", "approver-a")
    promoted = subprocess.run([sys.executable, "-m", "edgeline", "promote", "detector-2.0.0", "-n", namespace,
                               "--kubeconfig", str(config)], capture_output=True, text=True, timeout=60)
    assert promoted.returncode == 0, promoted.stderr
    assert "as approver-a" in promoted.stdout
    annotations = hub.get("mlmodel", "detector-2.0.0", "-n", namespace)["metadata"]["annotations"]
    assert (annotations["edgeline.io/promote"], annotations["edgeline.io/promoted-by"]) == ("production", "approver-a")

    def recorded():
        status = hub.get("mlmodel", "detector-2.0.0", "-n", namespace).get("status") or {}
        return status if (status.get("promotion") or {}).get("by") == "approver-a" else None
    model = wait_for(recorded, timeout=60, what="the promotion in the MLModel's status")
    assert model["stage"] == "production" and model["promotion"]["stage"] == "production"
    reasons = [e["reason"] for e in hub.events("detector-2.0.0", namespace)]
    assert "Promoted" in reasons

    _healthy_on(hub, namespace, "2.0.0")
    assert runtime_config(edge_a, ns)["EDGELINE_MODEL_SHA256"] == SAMPLE_DIGESTS["2.0.0"]

    # The record stays: not even the approver removes it.
    removed = hub.kubectl("annotate", "mlmodel", "detector-2.0.0", "-n", namespace, "edgeline.io/promoted-by-",
                          user="approver-a", check=False)
    assert removed.returncode != 0 and "cannot be removed" in removed.stderr
