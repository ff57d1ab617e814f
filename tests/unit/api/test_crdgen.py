"""The generated CRDs are structural, describe every field, and are what crds/ holds."""

from pathlib import Path

import pytest

from edgeline.api import crdgen

ROOT = Path(__file__).resolve().parents[3]


def _walk(schema, path="$"):
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _walk(sub, f"{path}.{name}")
    if "items" in schema:
        yield from _walk(schema["items"], f"{path}[]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _walk(schema["additionalProperties"], f"{path}{{}}")


@pytest.mark.parametrize("kind", crdgen.KINDS, ids=lambda k: k.KIND)
def test_schema_is_structural_and_every_field_is_described(kind):
    root = crdgen.crd(kind)["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(root["properties"]["spec"]):
        assert not ({"$ref", "anyOf", "oneOf", "allOf", "title"} & node.keys()), path
        assert node.get("type"), f"{path} has no type"
        assert node.get("description"), f"{path} has no description (kubectl explain would be empty)"
        if node["type"] == "array":
            assert "items" in node, f"{path} is a list without an items schema"
    for path, node in _walk(root["properties"].get("status", {"type": "object", "description": "none"})):
        assert node.get("type") and node.get("description"), path


def test_crds_folder_is_in_sync_with_the_models(capsys):
    assert crdgen.main(["--check", str(ROOT / "crds")]) == 0, capsys.readouterr().err


def test_check_fails_and_says_what_to_do_when_out_of_date(tmp_path, capsys):
    crdgen.main(["--out", str(tmp_path)])
    target = tmp_path / "mlmodels.edgeline.io.yaml"
    target.write_text(target.read_text().replace("mlm", "xyz"))
    assert crdgen.main(["--check", str(tmp_path)]) == 1
    assert "make crds" in capsys.readouterr().err
