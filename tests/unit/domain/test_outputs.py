"""Step outputs: parsing a termination message and filling $(steps.NAME.outputs.KEY)."""

import pytest

from edgeline.api.common import EnvVar
from edgeline.api.datapipeline import Step
from edgeline.domain.outputs import parse_outputs, references, substitute, substituted_step


@pytest.mark.parametrize("text, outputs, expected, missing", [
    ("--in=$(steps.a.outputs.uri)", {"a": {"uri": "s3://x"}}, "--in=s3://x", []),
    ("$(steps.a.outputs.k)/$(steps.b-2.outputs.k.2)", {"a": {"k": "1"}, "b-2": {"k.2": "2"}}, "1/2", []),
    ("$(steps.a.outputs.nope)", {"a": {}}, "$(steps.a.outputs.nope)", ["steps.a.outputs.nope"]),
    ("$(HOME) and $(steps.a)", {}, "$(HOME) and $(steps.a)", []),      # Kubernetes' own $(VAR) stays
])
def test_substitute(text, outputs, expected, missing):
    assert substitute(text, outputs) == (expected, missing)


def test_references_name_step_and_key():
    assert references("$(steps.a.outputs.uri) x $(steps.b-1.outputs.metric.f1) $(HOME)") == [
        ("a", "uri"), ("b-1", "metric.f1")]


def test_a_substituted_step_fills_args_and_env_and_lists_what_it_could_not():
    step = Step(name="train", image="t", args=["--data=$(steps.prep.outputs.dataset)", "--fixed"],
                env=[EnvVar(name="RUN", value="$(steps.prep.outputs.run)"), EnvVar(name="X", value="x")])
    filled, missing = substituted_step(step, {"prep": {"dataset": "s3://d"}})
    assert filled.args == ["--data=s3://d", "--fixed"]
    assert [(v.name, v.value) for v in filled.env] == [("RUN", "$(steps.prep.outputs.run)"), ("X", "x")]
    assert missing == ["steps.prep.outputs.run"]
    assert step.args[0] == "--data=$(steps.prep.outputs.dataset)"       # the spec's step is left as it was


@pytest.mark.parametrize("message, outputs, note", [
    ('{"uri": "s3://x", "n": 3, "ok": true}', {"uri": "s3://x", "n": "3", "ok": "true"}, None),
    ("", {}, None),
    (None, {}, None),
    ("plain text", {}, "not JSON"),
    ("[1, 2]", {}, "not a JSON object"),
])
def test_parse_outputs(message, outputs, note):
    got, got_note = parse_outputs(message)
    assert got == outputs and (note is None and got_note is None or note in got_note)
