"""The dependency graph of a DataPipeline's steps."""

import pytest

from edgeline.api.datapipeline import Step
from edgeline.domain.dag import ancestors, find_cycle, topological_order


def _steps(deps: dict[str, list[str]]) -> list[Step]:
    return [Step(name=n, image="x", depends_on=d) for n, d in deps.items()]


@pytest.mark.parametrize("deps, cycle", [
    ({"a": [], "b": ["a"], "c": ["a", "b"]}, None),
    ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "c", "b", "a"]),
    ({"x": [], "a": ["b"], "b": ["c"], "c": ["d"], "d": ["b"]}, ["b", "c", "d", "b"]),
    ({"a": ["missing"]}, None),                 # an unknown dependency is another check's business
])
def test_find_cycle(deps, cycle):
    assert find_cycle(_steps(deps)) == cycle


@pytest.mark.parametrize("deps, order", [
    ({"train": ["prep"], "collect": [], "prep": ["collect"], "report": []}, ["collect", "prep", "train", "report"]),
    ({"b": [], "a": []}, ["b", "a"]),           # no dependencies: spec order
    ({"c": ["a", "b"], "b": ["a"], "a": []}, ["a", "b", "c"]),
])
def test_topological_order_puts_dependencies_first_and_keeps_spec_order_otherwise(deps, order):
    assert topological_order(_steps(deps)) == order


def test_topological_order_refuses_a_cycle():
    with pytest.raises(ValueError, match="cycle"):
        topological_order(_steps({"a": ["b"], "b": ["a"]}))


@pytest.mark.parametrize("name, expected", [
    ("train", {"prep", "collect", "labels"}),
    ("prep", {"collect", "labels"}),
    ("collect", set()),
    ("unknown", set()),
])
def test_ancestors_are_direct_and_indirect_dependencies(name, expected):
    steps = _steps({"collect": [], "labels": [], "prep": ["collect", "labels"], "train": ["prep"], "report": []})
    assert ancestors(steps, name) == expected
