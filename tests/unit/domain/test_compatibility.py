import pytest

from edgeline.domain.compatibility import ModelFacts, check_requirements

SMALL = ModelFacts(default_opset=17, size_bytes=2 * 2**20)


@pytest.mark.parametrize("requirements", [{}, {"maxOpset": 17}, {"maxOpset": 21, "memory": "256Mi"}])
def test_a_model_within_its_requirements_has_no_problem(requirements):
    assert check_requirements(SMALL, requirements) == []


def test_an_opset_newer_than_the_runtime_supports_is_named():
    [(reason, message)] = check_requirements(ModelFacts(21, 1000), {"maxOpset": 17})
    assert reason == "OpsetTooNew" and "21" in message and "17" in message


def test_weights_larger_than_the_memory_budget_are_named():
    [(reason, message)] = check_requirements(ModelFacts(17, 600 * 2**20), {"memory": "512Mi"})
    assert reason == "ModelTooLarge" and "600Mi" in message


def test_every_problem_is_reported_not_only_the_first():
    problems = check_requirements(ModelFacts(21, 600 * 2**20), {"maxOpset": 17, "memory": "512Mi"})
    assert [p[0] for p in problems] == ["OpsetTooNew", "ModelTooLarge"]


def test_a_bad_quantity_is_a_clear_problem_not_a_crash():
    assert check_requirements(SMALL, {"memory": "lots"})[0][0] == "RequirementsInvalid"
