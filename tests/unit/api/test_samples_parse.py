"""Every sample parses through the same API models the handlers use."""

from pathlib import Path

import pytest
import yaml

from edgeline.api import crdgen

SAMPLES = Path(__file__).resolve().parents[3] / "manifests" / "samples"
MODELS = {kind.KIND: kind for kind in crdgen.KINDS}
DOCS = [d for p in sorted(SAMPLES.glob("*.yaml")) for d in yaml.safe_load_all(p.read_text())
        if d and d.get("apiVersion", "").startswith("edgeline.io/")]


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: f"{d['kind']}/{d['metadata']['name']}")
def test_sample_parses_with_its_model(doc):
    MODELS[doc["kind"]].model_validate(doc)


def test_the_samples_cover_every_kind():
    # Approvals are acts of a person (`edgeline approve`), never files to apply.
    assert {d["kind"] for d in DOCS} == set(MODELS) - {"Approval"}
