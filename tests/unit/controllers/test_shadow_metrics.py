"""The pending version's spec.metrics on the operator's /metrics, beside the shadow run on the
dashboard: present while it waits, gone once nothing waits."""

from prometheus_client import REGISTRY

from edgeline.api.edgedeployment import EdgeDeploymentStatus
from edgeline.controllers.shadow import export_pending_metrics


def value(metric: str):
    return REGISTRY.get_sample_value("edgeline_pending_model_metric", {
        "namespace": "factory", "deployment": "detector", "version": "2.0.0", "metric": metric})


def test_pending_metrics_are_exported_while_waiting_and_removed_after():
    waiting = EdgeDeploymentStatus.model_validate({"pendingApproval": {
        "revision": {"revision": "r2", "version": "2.0.0"}, "metrics": {"accuracy": 0.97, "f1": 0.9}}})
    export_pending_metrics("factory", "detector", waiting)
    assert value("accuracy") == 0.97 and value("f1") == 0.9
    export_pending_metrics("factory", "detector", EdgeDeploymentStatus())
    assert value("accuracy") is None and value("f1") is None
