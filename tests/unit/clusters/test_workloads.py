"""What the cluster layer reads from a runtime Pod's status, and which ConfigMaps a Pod
template refers to (pure conversions of Kubernetes objects; the calls are e2e-tested)."""

import datetime as dt

from lightkube.models.core_v1 import PodSpec
from lightkube.resources.core_v1 import Pod

from edgeline.clusters.workloads import _configs_used, _container_of


def _pod(status: dict, image="reg/edgeline/edge-runtime:1") -> Pod:
    return Pod.from_dict({"metadata": {"name": "rt-1", "labels": {"edgeline.io/revision": "r1"}},
                          "spec": {"containers": [{"name": "runtime", "image": image}]}, "status": status})


def test_a_crash_looping_container():
    facts = _container_of(_pod({"containerStatuses": [{
        "name": "runtime", "image": "x", "imageID": "", "ready": False, "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}},
        "lastState": {"terminated": {"exitCode": 2, "reason": "Error", "message": "bad flag\n"}}}]}))
    assert (facts.pod, facts.revision, facts.image) == ("rt-1", "r1", "reg/edgeline/edge-runtime:1")
    assert (facts.waiting_reason, facts.restarts, facts.last_exit_code, facts.last_message) == \
        ("CrashLoopBackOff", 4, 2, "bad flag\n")


def test_a_running_unready_container_and_its_start():
    facts = _container_of(_pod({"containerStatuses": [{
        "name": "runtime", "image": "x", "imageID": "", "ready": False, "restartCount": 0,
        "state": {"running": {"startedAt": "2026-11-30T01:00:00Z"}}}]}))
    assert facts.running_since == dt.datetime(2026, 11, 30, 1, 0, tzinfo=dt.timezone.utc)
    assert not facts.ready and facts.waiting_reason is None and facts.last_exit_code is None


def test_a_pod_no_node_takes():
    facts = _container_of(_pod({"phase": "Pending", "conditions": [{
        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
        "message": "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."}]}))
    assert facts.unschedulable.startswith("0/3 nodes are available") and facts.running_since is None


def test_configmaps_a_pod_template_refers_to():
    spec = PodSpec.from_dict({
        "containers": [{"name": "a", "envFrom": [{"configMapRef": {"name": "cm-env"}}, {"secretRef": {"name": "s"}}],
                        "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm-key", "key": "k"}}}]}],
        "initContainers": [{"name": "i", "envFrom": [{"configMapRef": {"name": "cm-init"}}]}],
        "volumes": [{"name": "v", "configMap": {"name": "cm-vol"}}, {"name": "e", "emptyDir": {}}]})
    assert _configs_used(spec) == {"cm-env", "cm-key", "cm-init", "cm-vol"}
    assert _configs_used(None) == set()
