"""A revision names what runs: the same model bytes and runtime give the same revision, anything
else a different one."""

import pytest

from edgeline.api.edgedeployment import Runtime
from edgeline.domain.revisions import revision_of

DIGEST = "sha256:" + "a" * 64
URI = "https://models.example/detector-1.0.0.onnx"
BASE = revision_of(DIGEST, URI, Runtime())


def test_a_revision_is_short_hex_and_stable():
    assert len(BASE) == 10 and int(BASE, 16) >= 0
    assert revision_of(DIGEST, URI, Runtime()) == BASE
    # Written out and parsed back (as after an operator restart), the runtime gives the same revision.
    assert revision_of(DIGEST, URI, Runtime.model_validate(Runtime().dump())) == BASE


def test_the_order_of_fields_in_the_manifest_does_not_matter():
    one = Runtime.model_validate({"replicas": 2, "port": 9000})
    other = Runtime.model_validate({"port": 9000, "replicas": 2})
    assert revision_of(DIGEST, URI, one) == revision_of(DIGEST, URI, other)


@pytest.mark.parametrize("case, digest, uri, runtime", [
    ("other model bytes", "sha256:" + "b" * 64, URI, Runtime()),
    ("the same bytes from another place", DIGEST, URI.replace("1.0.0", "copy"), Runtime()),
    ("more replicas", DIGEST, URI, Runtime(replicas=2)),
    ("another execution provider", DIGEST, URI, Runtime(execution_provider="CUDA")),
    ("another image", DIGEST, URI, Runtime(image="registry.example/runtime:2")),
    ("an extra environment variable", DIGEST, URI, Runtime.model_validate({"env": [{"name": "X", "value": "1"}]})),
    ("other resources", DIGEST, URI, Runtime.model_validate({"resources": {"requests": {"cpu": "10m"}}})),
])
def test_any_change_of_what_runs_is_a_new_revision(case, digest, uri, runtime):
    assert revision_of(digest, uri, runtime) != BASE, case


def test_placement_and_rollout_are_part_of_what_an_approval_covers():
    from edgeline.api.edgedeployment import Placement, Rollout
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"line": "1"}}})
    rollout = Rollout.model_validate({"waves": [{"name": "pilot", "percentage": 10}, {"name": "all", "percentage": 100}],
                                      "soakSeconds": 600})
    covers = {"placement": placement.dump(), "rollout": rollout.dump()}
    base = revision_of(DIGEST, URI, Runtime(), covers=covers)
    assert base == revision_of(DIGEST, URI, Runtime(), covers=dict(reversed(list(covers.items()))))
    wider = {**covers, "placement": Placement.model_validate({"clusterSelector": {"matchExpressions": [
        {"key": "line", "operator": "Exists"}]}}).dump()}
    faster = {**covers, "rollout": rollout.model_copy(update={"soak_seconds": 0, "waves": []}).dump()}
    assert len({base, revision_of(DIGEST, URI, Runtime(), covers=wider),
                revision_of(DIGEST, URI, Runtime(), covers=faster)}) == 3
