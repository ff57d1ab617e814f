"""A platform team runs Edgeline under Argo CD and wants its health column to tell the truth.

Given the health checks in manifests/argocd/resource_customizations (Argo CD's own layout),
when Argo CD's Lua interpreter (gopher-lua, built from dev/luahealth) runs each of them on
the objects in their testdata/, then it reports the status and message of health_test.yaml.
The objects themselves are held to the CRDs, so the checks are tested on what the
operator can really write; the argocd-cm patch is held to the scripts.

No cluster is needed. The interpreter is built once into ~/.cache/edgeline/bin; a build
that fails fails the tests (nothing here skips).
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "manifests" / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations"
CRDS = ROOT / "crds"

# The CRDs are large; the C loader reads them in a tenth of the time where PyYAML has it.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

# What Argo CD accepts from a health script; anything else it shows as Unknown.
ARGOCD_HEALTH = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


@functools.cache
def _crds() -> dict[tuple[str, str], dict]:
    """(group, Kind) -> the CRD (shared: do not modify)."""
    found = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.load(path.read_text(), Loader=Loader)
        found[(crd["spec"]["group"], crd["spec"]["names"]["kind"])] = crd
    return found


def _cases() -> list:
    cases = []
    for test_file in sorted(CUSTOMIZATIONS.glob("*/*/health_test.yaml")):
        folder = test_file.parent
        for case in yaml.safe_load(test_file.read_text())["tests"]:
            cases.append(pytest.param(folder, case["inputPath"], case["healthStatus"],
                                      id=f"{folder.name}/{Path(case['inputPath']).stem}"))
    return cases


def _testdata() -> list:
    return [pytest.param(path, id=f"{path.parents[1].name}/{path.stem}")
            for path in sorted(CUSTOMIZATIONS.glob("*/*/testdata/*.yaml"))]


@pytest.fixture(scope="module")
def luahealth() -> Path:
    """The interpreter binary, built (or found in the cache) by dev/build-luahealth.sh."""
    proc = subprocess.run(["bash", str(ROOT / "dev" / "build-luahealth.sh")],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"dev/build-luahealth.sh failed ({proc.returncode}); it needs Go and the Go module proxy:\n"
                    f"{proc.stderr}")
    binary = Path(proc.stdout.strip().splitlines()[-1])
    if not binary.is_file():
        pytest.fail(f"dev/build-luahealth.sh printed {binary}, which is not a file")
    return binary


def run_health(binary: Path, script: Path, obj: Path) -> dict:
    proc = subprocess.run([str(binary), str(script), str(obj)], capture_output=True, text=True, timeout=30)
    if proc.returncode != 0:
        pytest.fail(f"{script.relative_to(ROOT)} failed on {obj.name}:\n{proc.stderr}")
    return json.loads(proc.stdout)


# --- the health checks, in Argo CD's interpreter ----------------------------------------------

@pytest.mark.parametrize(("folder", "input_path", "expected"), _cases())
def test_health_check_reports_what_the_test_case_says(luahealth, folder, input_path, expected):
    result = run_health(luahealth, folder / "health.lua", folder / input_path)

    assert result.get("status") in ARGOCD_HEALTH, f"Argo CD would show Unknown for {result!r}"
    assert {"status": result.get("status"), "message": result.get("message")} == expected


def test_the_interpreter_is_as_strict_as_argocd(luahealth, tmp_path):
    """A check from argocd-cm runs without Lua's string library and with a narrowed os:
    the runner must refuse what Argo CD would refuse, or the tests above prove too little."""
    obj = tmp_path / "obj.yaml"
    obj.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, generation: 2}\n")
    uses_string = tmp_path / "string.lua"
    uses_string.write_text('return {status = "Healthy", message = string.format("%d", 1)}\n')
    uses_exec = tmp_path / "exec.lua"
    uses_exec.write_text('os.execute("true")\nreturn {status = "Healthy"}\n')
    plain = tmp_path / "plain.lua"
    plain.write_text('return {status = "Healthy", message = "generation " .. obj.metadata.generation}\n')

    for script in (uses_string, uses_exec):
        proc = subprocess.run([str(luahealth), str(script), str(obj)], capture_output=True, text=True, timeout=30)
        assert proc.returncode == 1, f"{script.name} ran, but Argo CD would fail it: {proc.stdout}"
    # Integers reach Lua as numbers and print without a decimal point, as in Argo CD.
    assert run_health(luahealth, plain, obj) == {"status": "Healthy", "message": "generation 2"}


# --- coverage: every kind, every phase ---------------------------------------------------------

def _with_status() -> list[tuple[str, str]]:
    """Kinds with a status: a template kind (MetricCheckTemplate) has none, so no health either
    (Argo CD shows it as healthy once applied)."""
    return sorted(k for k, crd in _crds().items()
                  if "status" in crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"])


@pytest.mark.parametrize(("group", "kind"), _with_status())
def test_every_kind_has_a_tested_health_check(group, kind):
    folder = CUSTOMIZATIONS / group / kind
    assert (folder / "health.lua").is_file(), f"no Argo CD health check for {group}/{kind}"
    cases = yaml.safe_load((folder / "health_test.yaml").read_text())["tests"]
    inputs = {case["inputPath"] for case in cases}
    on_disk = {f"testdata/{p.name}" for p in (folder / "testdata").glob("*.yaml")}
    assert inputs <= on_disk, f"test cases name missing files: {sorted(inputs - on_disk)}"
    assert on_disk <= inputs, f"testdata no test case uses: {sorted(on_disk - inputs)}"

    # Every phase the CRD allows is seen by at least one case, and so is an object without status.
    schema = _crds()[(group, kind)]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    phases = set(schema["properties"]["status"]["properties"]["phase"]["enum"])
    seen = set()
    for name in inputs:
        status = yaml.safe_load((folder / name).read_text()).get("status")
        seen.add(status.get("phase") if status else None)
    assert phases <= seen, f"phases without a test case: {sorted(phases - seen)}"
    assert None in seen, "no test case for an object the operator has not looked at yet"


def test_no_health_check_for_a_kind_that_does_not_exist():
    kinds = {(p.parents[1].name, p.parent.name) for p in CUSTOMIZATIONS.glob("*/*/health.lua")}
    assert kinds == set(_with_status())


# --- the test objects are what the API server would accept -------------------------------------

@pytest.mark.parametrize("path", _testdata())
def test_testdata_object_is_valid_against_its_crd(path):
    group, kind = path.parents[2].name, path.parents[1].name
    crd = _crds()[(group, kind)]
    obj = yaml.safe_load(path.read_text())
    served = [v["name"] for v in crd["spec"]["versions"] if v["served"]]

    assert obj["kind"] == kind
    assert obj["apiVersion"] in {f"{group}/{v}" for v in served}
    assert obj["metadata"].get("name")
    assert ("namespace" in obj["metadata"]) == (crd["spec"]["scope"] == "Namespaced")
    version = obj["apiVersion"].split("/")[1]
    schema = next(v for v in crd["spec"]["versions"] if v["name"] == version)["schema"]["openAPIV3Schema"]
    assert structural_problems(obj, schema) == []


def structural_problems(value, schema: dict, path: str = "") -> list[str]:
    """What the API server's structural schema check would reject (not CEL rules, not formats)."""
    where = path or "<root>"
    problems = []
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} is not one of {schema['enum']}")
    kind = schema.get("type")
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object, got {type(value).__name__}"]
        if path == ".metadata":
            return problems  # ObjectMeta: the API server checks it, not the CRD schema
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: required field {key} is missing")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if key in properties:
                problems += structural_problems(item, properties[key], f"{path}.{key}")
            elif isinstance(extra, dict):
                problems += structural_problems(item, extra, f"{path}.{key}")
            elif not schema.get("x-kubernetes-preserve-unknown-fields"):
                problems.append(f"{where}: unknown field {key} (the API server would drop it)")
        if "maxProperties" in schema and len(value) > schema["maxProperties"]:
            problems.append(f"{where}: more than {schema['maxProperties']} entries")
    elif kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected a list, got {type(value).__name__}"]
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{where}: more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{where}: fewer than {schema['minItems']} items")
        for index, item in enumerate(value):
            problems += structural_problems(item, schema.get("items", {}), f"{path}[{index}]")
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {value!r}"]
        if "pattern" in schema and not re.search(schema["pattern"], value):
            problems.append(f"{where}: {value!r} does not match {schema['pattern']}")
        if len(value) > schema.get("maxLength", len(value)) or len(value) < schema.get("minLength", 0):
            problems.append(f"{where}: length {len(value)} is out of bounds")
    elif kind in ("integer", "number"):
        allowed = (int,) if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, allowed):
            return [f"{where}: expected {kind}, got {value!r}"]
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            problems.append(f"{where}: {value} is out of bounds")
    elif kind == "boolean" and not isinstance(value, bool):
        problems.append(f"{where}: expected a boolean, got {value!r}")
    return problems


def test_the_schema_check_catches_what_it_should():
    """The validator above is itself code: it must reject a wrong phase and an unknown field."""
    crd = _crds()[("edgeline.io", "MLModel")]
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    good = yaml.safe_load((CUSTOMIZATIONS / "edgeline.io/MLModel/testdata/healthy_ready.yaml").read_text())
    assert structural_problems(good, schema) == []

    bad = json.loads(json.dumps(good))
    bad["status"]["phase"] = "Healthy"
    bad["status"]["health"] = "ok"
    bad["spec"]["version"] = 2
    problems = "\n".join(structural_problems(bad, schema))
    assert ".status.phase: 'Healthy' is not one of" in problems
    assert "unknown field health" in problems
    assert ".spec.version: expected a string" in problems


# --- what users install --------------------------------------------------------------------------

def test_argocd_cm_patch_is_rendered_from_the_scripts():
    proc = subprocess.run([sys.executable, str(ARGOCD / "render_cm.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{proc.stdout}{proc.stderr}"

    patch = yaml.safe_load((ARGOCD / "argocd-cm-patch.yaml").read_text())
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    scripts = {p.parent.name: p.read_text() for p in CUSTOMIZATIONS.glob("edgeline.io/*/health.lua")}
    assert patch["data"] == {f"resource.customizations.health.edgeline.io_{kind}": text
                             for kind, text in scripts.items()}


def test_application_deploys_the_samples_with_sync_options_for_crds():
    app = yaml.safe_load((ARGOCD / "application.yaml").read_text())

    assert app["apiVersion"] == "argoproj.io/v1alpha1" and app["kind"] == "Application"
    source = app["spec"]["source"]
    assert source["path"] == "manifests/samples" and (ROOT / source["path"]).is_dir()
    options = set(app["spec"]["syncPolicy"]["syncOptions"])
    # Custom resources may be applied before their CRD is served; SSA keeps the operator's fields.
    assert {"SkipDryRunOnMissingResource=true", "ServerSideApply=true"} <= options


def test_applicationset_makes_one_application_per_plant():
    appset = yaml.safe_load((ARGOCD / "applicationset.yaml").read_text())

    assert appset["kind"] == "ApplicationSet"
    elements = appset["spec"]["generators"][0]["list"]["elements"]
    assert sorted(e["plant"] for e in elements) == ["plant-brno", "plant-hamburg"]
    template = json.dumps(appset["spec"]["template"])
    assert "{{" in template and "plant" in template, "the template must use the plant of each element"
