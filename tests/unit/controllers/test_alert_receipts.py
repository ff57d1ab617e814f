"""Alert annotations read back by the loops of EdgeDeployments and DataPipelines."""

import json

import pytest

from edgeline.controllers.alert_receipts import receipts
from edgeline.controllers.alerts import ANNOTATION_PREFIX, _Payload, alert_annotations


def _written(received_at: float, **labels) -> dict[str, str]:
    """What the receiver writes for one firing alert."""
    payload = _Payload.model_validate({"version": "4", "alerts": [{
        "status": "firing", "fingerprint": "f00d", "startsAt": "2026-11-25T10:00:00Z",
        "labels": {"alertname": "ErrorRateHigh", "edgeline_deployment": "d", "namespace": "n", **labels}}]})
    return alert_annotations(payload, received_at)[("n", "d")]


def test_what_the_receiver_writes_reads_back_as_the_same_alert():
    [receipt] = receipts({"annotations": {**_written(1764460000.25, cluster="line-1"), "other": "x"}})
    assert receipt.annotation == ANNOTATION_PREFIX + "f00d"
    assert receipt.alert.name == "ErrorRateHigh" and receipt.alert.labels["cluster"] == "line-1"
    assert receipt.alert.received_at == 1764460000.25 and receipt.alert.starts_at == "2026-11-25T10:00:00Z"
    assert receipt.key == "f00d@1764460000.25"


@pytest.mark.parametrize("value", ["not json", json.dumps({"name": "x"}), json.dumps([1, 2]),
                                   json.dumps({"name": "x", "labels": {}, "fingerprint": "f", "receivedAt": "soon"})])
def test_an_unreadable_annotation_is_still_a_receipt_so_that_it_gets_removed(value):
    [receipt] = receipts({"annotations": {ANNOTATION_PREFIX + "bad": value}})
    assert receipt.alert.name == "unreadable" and receipt.key == f"{ANNOTATION_PREFIX}bad@unreadable"


def test_receipts_come_oldest_first():
    first, second = _written(20.0), _written(10.0, cluster="b")
    annotations = {ANNOTATION_PREFIX + "a": first[ANNOTATION_PREFIX + "f00d"],
                   ANNOTATION_PREFIX + "b": second[ANNOTATION_PREFIX + "f00d"]}
    assert [r.annotation for r in receipts({"annotations": annotations})] == [ANNOTATION_PREFIX + "b",
                                                                             ANNOTATION_PREFIX + "a"]
    assert receipts({}) == []
