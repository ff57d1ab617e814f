"""What one runtime serves and how: command-line options over `EDGELINE_*` environment variables,
so that a Deployment configures it with env and a person with flags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

# Short names a Deployment may use for onnxruntime's execution providers.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "dml": "DmlExecutionProvider",
    "qnn": "QNNExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
}

_DIGEST = re.compile(r"^(sha256:)?([0-9a-fA-F]{64})$")


class RuntimeConfig(BaseSettings):
    # EDGELINE_NAMESPACE here is the namespace of the EdgeDeployment the runtime serves;
    # the operator reads the same name for its own namespace, but they never share a process.
    model_config = SettingsConfigDict(env_prefix="EDGELINE_", extra="ignore", protected_namespaces=())

    model_uri: str = Field(..., min_length=1, description="http(s)://, file:// or oci:// URI of the ONNX model")
    model_sha256: str = Field(..., description="sha256:<hex> the model's bytes must have")
    model_external_data: Annotated[dict[str, str], NoDecode] = Field(
        {}, description="External data files of the model and their digests, as JSON: {\"weights.bin\": \"sha256:...\"}")
    model_name: str = Field("model", min_length=1, description="Name the model is served under")
    model_version: str = Field("1", min_length=1, description="Version the model is served as")
    deployment: str = Field("", description="EdgeDeployment this runtime belongs to (a metrics label)")
    namespace: str = Field("", description="Namespace of that EdgeDeployment (a metrics label)")
    cluster: str = Field("", description="EdgeCluster the runtime runs on (a metrics label)")
    host: str = Field("0.0.0.0", description="Address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="Port to listen on (0: any free port, logged)")
    execution_provider: str = Field("CPU", description="onnxruntime execution provider: CPU, CUDA, ... or a full name")
    golden_sample: Path | None = Field(None, description="JSON file with inputs, expected outputs and tolerance")
    golden_sample_uri: str = Field("", description="http(s):// or file:// URI of the golden sample (fetched and "
                                                   "verified like the model); empty: none")
    golden_sample_sha256: str = Field("", description="sha256:<hex> the golden sample must have")
    model_dir: Path = Field(Path("/tmp/edgeline-runtime"), description="Where the fetched model is kept")
    inference_threads: int = Field(2, ge=1, le=64, description="Inference requests run at once")
    intra_op_threads: int = Field(0, ge=0, le=256, description="onnxruntime threads per inference (0: one per core)")
    max_request_bytes: int = Field(64 * 1024**2, ge=1024, description="Largest inference request body accepted")
    quality_metrics: bool = Field(True, description="Export input statistics, prediction distribution and drift")
    drift_window: int = Field(256, ge=1, le=100_000, description="Requests the input statistics and drift cover")
    reference_profile_uri: str = Field("", description="http(s):// or file:// URI of the model's reference profile "
                                                       "(JSON, docs/runtime.md); empty: no drift score")
    reference_profile_sha256: str = Field("", description="sha256:<hex> the reference profile must have")
    shutdown_grace_s: float = Field(10.0, ge=0, description="Time in-flight requests get after SIGTERM")
    # A candidate in shadow (edgeline.runtime.shadow): mirrored requests, answers discarded.
    shadow_model_uri: str = Field("", description="http(s):// or file:// URI of a candidate model run in shadow; "
                                                  "empty: no shadow")
    shadow_model_sha256: str = Field("", description="sha256:<hex> the shadow candidate must have")
    shadow_model_version: str = Field("", description="Version of the shadow candidate (the shadow_version label)")
    shadow_model_external_data: Annotated[dict[str, str], NoDecode] = Field(
        {}, description="External data files of the shadow candidate and their digests, as JSON")
    shadow_reference_profile_uri: str = Field("", description="The shadow candidate's reference profile; empty: "
                                                              "no drift score for it")
    shadow_reference_profile_sha256: str = Field("", description="sha256:<hex> of that profile")
    shadow_queue: int = Field(4, ge=1, le=1024, description="Mirrored requests waiting for the candidate at most; "
                                                           "more are dropped (counted), never queued")
    shadow_max_size_ratio: float = Field(2.0, gt=0, description="A shadow candidate larger than this many times "
                                                                "the served model is not loaded (it would share "
                                                                "the Pod's memory limit with what serves)")
    shadow_tolerance: float = Field(1e-3, ge=0, description="Largest absolute difference of a non-classifier output "
                                                           "that still counts as agreement")

    @field_validator("model_name", "model_version", mode="before")
    @classmethod
    def _default_when_empty(cls, value, info):
        # A rendered ConfigMap carries every variable, set or not: empty means "use the default".
        return cls.model_fields[info.field_name].default if value == "" else value

    @field_validator("model_sha256")
    @classmethod
    def _digest(cls, value: str) -> str:
        match = _DIGEST.match(value.strip())
        if not match:
            raise ValueError("must be sha256:<64 hex digits>")
        return "sha256:" + match.group(2).lower()

    @field_validator("reference_profile_sha256", "golden_sample_sha256", "shadow_model_sha256",
                     "shadow_reference_profile_sha256")
    @classmethod
    def _profile_digest(cls, value: str) -> str:
        return "" if value.strip() == "" else cls._digest(value)

    @model_validator(mode="after")
    def _profile_pair(self):
        if self.reference_profile_uri and not self.reference_profile_sha256:
            raise ValueError("reference_profile_sha256 is required when reference_profile_uri is set "
                             "(EDGELINE_REFERENCE_PROFILE_SHA256)")
        if self.shadow_model_uri and not self.shadow_model_sha256:
            raise ValueError("shadow_model_sha256 is required when shadow_model_uri is set "
                             "(EDGELINE_SHADOW_MODEL_SHA256): a candidate is verified like the served model")
        if self.shadow_reference_profile_uri and not self.shadow_reference_profile_sha256:
            raise ValueError("shadow_reference_profile_sha256 is required when shadow_reference_profile_uri is set")
        if self.golden_sample_uri and not self.golden_sample_sha256:
            raise ValueError("golden_sample_sha256 is required when golden_sample_uri is set "
                             "(EDGELINE_GOLDEN_SAMPLE_SHA256)")
        return self

    @field_validator("model_external_data", "shadow_model_external_data", mode="before")
    @classmethod
    def _external_data(cls, value):
        if value in ("", None):
            return {}
        if isinstance(value, str):
            import json

            value = json.loads(value)
        if not isinstance(value, dict):
            raise ValueError('must be a JSON object {"<path>": "sha256:<64 hex>"}')
        return {str(path): cls._digest(str(digest)) for path, digest in value.items()}

    @property
    def provider(self) -> str:
        return PROVIDER_ALIASES.get(self.execution_provider.lower(), self.execution_provider)

    @property
    def identity(self) -> dict[str, str]:
        """The labels that say which model this runtime serves, for whom and where."""
        return {"model": self.model_name, "version": self.model_version, "deployment": self.deployment,
                "namespace": self.namespace, "cluster": self.cluster}
