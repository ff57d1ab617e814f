"""Runtime configuration: flags over EDGELINE_* variables, digests, providers and identity."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edgeline.commands.runtime import OPTIONS
from edgeline.runtime.config import RuntimeConfig

HEX = "ab" * 32


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    import os

    for key in list(os.environ):
        if key.startswith("EDGELINE_"):
            monkeypatch.delenv(key)


def test_a_deployment_configures_the_runtime_with_environment_variables(monkeypatch):
    for key, value in {"EDGELINE_MODEL_URI": "https://models.example/d.onnx", "EDGELINE_MODEL_SHA256": HEX.upper(),
                       "EDGELINE_MODEL_NAME": "detector", "EDGELINE_MODEL_VERSION": "2.0.0",
                       "EDGELINE_DEPLOYMENT": "line-3", "EDGELINE_NAMESPACE": "factory", "EDGELINE_CLUSTER": "edge-a",
                       "EDGELINE_PORT": "9000", "EDGELINE_EXECUTION_PROVIDER": "CUDA"}.items():
        monkeypatch.setenv(key, value)
    config = RuntimeConfig()
    assert config.model_sha256 == f"sha256:{HEX}"
    assert config.port == 9000 and config.provider == "CUDAExecutionProvider"
    assert config.identity == {"model": "detector", "version": "2.0.0", "deployment": "line-3",
                               "namespace": "factory", "cluster": "edge-a"}
    assert RuntimeConfig(port=8081).port == 8081  # a flag wins over its variable


def test_defaults_suit_a_deployment_that_sets_only_the_model(monkeypatch):
    monkeypatch.setenv("EDGELINE_MODEL_VERSION", "")  # a rendered ConfigMap may carry empty values
    config = RuntimeConfig(model_uri="file:///m.onnx", model_sha256=f"sha256:{HEX}")
    assert (config.model_name, config.model_version, config.host, config.port) == ("model", "1", "0.0.0.0", 8080)
    assert config.provider == "CPUExecutionProvider"
    assert RuntimeConfig(model_uri="x", model_sha256=HEX, execution_provider="MyVendorExecutionProvider").provider \
        == "MyVendorExecutionProvider"


@pytest.mark.parametrize("digest", ["", "md5:abc", "sha256:" + "ab" * 31, "sha512:" + "ab" * 32, "ab" * 32 + "x"])
def test_only_a_sha256_digest_is_accepted(digest):
    with pytest.raises(ValidationError):
        RuntimeConfig(model_uri="file:///m.onnx", model_sha256=digest)


def test_the_model_and_its_digest_are_required():
    with pytest.raises(ValidationError) as missing:
        RuntimeConfig()
    assert {e["loc"][0] for e in missing.value.errors()} == {"model_uri", "model_sha256"}


def test_every_option_names_a_field_and_its_environment_variable():
    for flag, (field, env, _) in OPTIONS.items():
        assert field in RuntimeConfig.model_fields, flag
        assert env == "EDGELINE_" + field.upper(), flag


@pytest.mark.parametrize(("env", "expected", "problem"), [
    ({}, ("", "", True, 256), None),  # no profile: statistics on, no drift score
    ({"EDGELINE_REFERENCE_PROFILE_URI": "https://models.example/d.profile.json",
      "EDGELINE_REFERENCE_PROFILE_SHA256": HEX, "EDGELINE_DRIFT_WINDOW": "64", "EDGELINE_QUALITY_METRICS": "false"},
     ("https://models.example/d.profile.json", f"sha256:{HEX}", False, 64), None),
    ({"EDGELINE_REFERENCE_PROFILE_URI": "https://models.example/d.profile.json"}, None,
     "reference_profile_sha256 is required"),
    ({"EDGELINE_REFERENCE_PROFILE_URI": "file:///p.json", "EDGELINE_REFERENCE_PROFILE_SHA256": "abc"}, None,
     "sha256:<64 hex digits>"),
    ({"EDGELINE_DRIFT_WINDOW": "0"}, None, "greater than or equal to 1"),
])
def test_the_reference_profile_comes_with_its_digest(monkeypatch, env, expected, problem):
    monkeypatch.setenv("EDGELINE_MODEL_URI", "https://models.example/d.onnx")
    monkeypatch.setenv("EDGELINE_MODEL_SHA256", HEX)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if problem:
        with pytest.raises(ValidationError, match=problem.replace("<", ".").replace(">", ".")):
            RuntimeConfig()
        return
    config = RuntimeConfig()
    assert (config.reference_profile_uri, config.reference_profile_sha256, config.quality_metrics,
            config.drift_window) == expected
