"""The lean diff base builds exactly kopf's essence, without copying status and metadata first."""

import copy

import kopf

from edgeline.controllers.operator import LeanDiffBaseStorage


def _body(clusters: int) -> kopf.Body:
    return kopf.Body({
        "apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
        "metadata": {"name": "d", "namespace": "ns", "uid": "u", "resourceVersion": "7", "generation": 3,
                     "labels": {"team": "vision"},
                     "annotations": {"edgeline.io/pause": "true",
                                     "operator.edgeline.io/last-handled-configuration": '{"spec": {}}'},
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}] * 20,
                     "ownerReferences": []},
        "spec": {"modelRef": {"name": "m"}, "placement": {"clusterSelector": {"matchLabels": {"a": "b"}}}},
        "status": {"clusters": [{"name": f"c{i}", "phase": "Ready"} for i in range(clusters)]},
    })


def _storages():
    kwargs = {"prefix": "operator.edgeline.io", "key": "last-handled-configuration"}
    return kopf.AnnotationsDiffBaseStorage(**kwargs), LeanDiffBaseStorage(**kwargs)


def test_the_essence_is_the_one_kopf_builds():
    kopfs, lean = _storages()
    for clusters in (0, 3, 1000):
        body = _body(clusters)
        assert lean.build(body=body) == kopfs.build(body=body)


def test_a_watched_status_field_is_kept_as_kopf_keeps_it():
    kopfs, lean = _storages()
    body = _body(2)
    fields = [("status", "clusters")]
    assert lean.build(body=body, extra_fields=fields) == kopfs.build(body=body, extra_fields=fields)
    assert "status" in lean.build(body=body, extra_fields=fields)


def test_the_essence_does_not_share_what_later_changes_in_the_body():
    _, lean = _storages()
    raw = copy.deepcopy(dict(_body(1)))
    essence = lean.build(body=kopf.Body(raw))
    raw["spec"]["modelRef"]["name"] = "changed"
    raw["metadata"]["labels"]["team"] = "other"
    assert essence["spec"]["modelRef"]["name"] == "m"
    assert essence["metadata"]["labels"]["team"] == "vision"
