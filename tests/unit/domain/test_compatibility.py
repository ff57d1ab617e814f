import pytest

from edgeline.domain.compatibility import (
    ModelFacts,
    check_requirements,
    memory_bytes,
)

SMALL = ModelFacts(default_opset=17, size_bytes=2 * 2**20)


@pytest.mark.parametrize("requirements", [
    None, {}, {"maxOpset": 17}, {"maxOpset": 21, "memory": "256Mi", "accelerator": "cpu"},
    {"memory": "2Mi"}, {"minRuntimeVersion": "1.17.3"}, {"accelerator": "npu", "minRuntimeVersion": "v1.20"},
])
def test_a_model_within_its_requirements_has_no_problem(requirements):
    assert check_requirements(SMALL, requirements) == []


@pytest.mark.parametrize("facts, requirements, reason, words", [
    (ModelFacts(21, 1000), {"maxOpset": 17}, "OpsetTooNew", ["21", "17"]),
    (ModelFacts(17, 600 * 2**20), {"memory": "512Mi"}, "ModelTooLarge", ["600Mi", "512Mi"]),
    (ModelFacts(17, 2 * 10**9), {"memory": "1.5G"}, "ModelTooLarge", ["1.5G"]),
    (SMALL, {"memory": "lots"}, "RequirementsInvalid", ["lots"]),
    (SMALL, {"memory": "500m"}, "RequirementsInvalid", ["500m"]),
    (SMALL, {"maxOpset": "17"}, "RequirementsInvalid", ["maxOpset"]),
    (SMALL, {"accelerator": "tpu"}, "RequirementsInvalid", ["tpu"]),
    (SMALL, {"minRuntimeVersion": "latest"}, "RequirementsInvalid", ["latest"]),
], ids=["opset", "memory-binary", "memory-decimal", "memory-junk", "memory-milli", "opset-type", "accelerator",
        "runtime-version"])
def test_each_problem_has_a_reason_and_a_message_a_person_reads(facts, requirements, reason, words):
    [(found, message)] = check_requirements(facts, requirements)
    assert found == reason and all(w in message for w in words)


def test_every_problem_is_reported_not_only_the_first():
    problems = check_requirements(ModelFacts(21, 600 * 2**20), {"maxOpset": 17, "memory": "512Mi"})
    assert [p[0] for p in problems] == ["OpsetTooNew", "ModelTooLarge"]


def test_only_the_default_domain_counts_for_max_opset():
    facts = ModelFacts(default_opset=17, size_bytes=10, opsets={"ai.onnx.ml": 99, "": 17})
    assert check_requirements(facts, {"maxOpset": 17}) == []


@pytest.mark.parametrize("text, expected", [
    ("512Mi", 512 * 2**20), ("2Gi", 2 * 2**30), ("64Ki", 65536), ("1.5G", 1_500_000_000), ("300M", 300_000_000),
    ("1048576", 2**20), (1024, 1024), ("1e3", 1000), ("0.5Ki", 512), ("1.0001", 2), (" 1Gi ", 2**30),
])
def test_memory_quantities_in_bytes(text, expected):
    assert memory_bytes(text) == expected


@pytest.mark.parametrize("junk", ["", "lots", "1 Gi", "Gi", "1GB", "0x10", "1..2", "-1Gi", "12Q", "500m", "1Mi2"])
def test_junk_quantities_are_refused(junk):
    with pytest.raises(ValueError):
        memory_bytes(junk)
