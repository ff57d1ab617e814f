"""MLModel (namespaced): one immutable, versioned model artifact and what inspection found."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeline.api.base import ApiModel, Resource
from edgeline.api.conditions import Condition

DIGEST = r"^sha256:[a-f0-9]{64}$"


class LocalSecretRef(ApiModel):
    name: str = Field(description="Name of a Secret in the MLModel's namespace", min_length=1, max_length=253)


class ExternalDataFile(ApiModel):
    path: str = Field(description="Location as the model names it, relative to the model file, e.g. weights.bin",
                      min_length=1, max_length=512, pattern=r"^[^/\\].*$")
    sha256: str = Field(pattern=DIGEST, max_length=71, description="Digest of the file, sha256:<64 hex>")


# oci:// names an artifact by its manifest digest; a tag could later mean other bytes (docs/decisions.md, oci).
OCI_PINNED = {"rule": "!self.startsWith('oci://') || "
                      "self.matches('^oci://[^/@]+/[a-z0-9]+([._/-]+[a-z0-9]+)*(:[A-Za-z0-9_][A-Za-z0-9._-]*)?"
                      "@sha256:[a-f0-9]{64}$')",
              "message": "an oci:// artifact must be pinned by its manifest digest, "
                         "oci://<registry>/<repository>@sha256:<64 hex> (a tag alone is refused: artifacts are "
                         "immutable; `edgeline model push` prints the pinned reference)"}


class Artifact(ApiModel):
    uri: str = Field(
        description="Where the model file is: http://, https://, file://, or oci://<registry>/<repository>@sha256:"
                    "<manifest digest> (an OCI artifact pinned by digest; s3:// is planned)",
        max_length=2048, pattern=r"^(https?|file|oci)://.+",
        json_schema_extra={"x-kubernetes-validations": [OCI_PINNED]})
    sha256: str | None = Field(None, pattern=DIGEST, max_length=71,
                               description="Digest of the file, sha256:<64 hex>; required when stage is production")
    credentials_secret_ref: LocalSecretRef | None = Field(
        None, description="Secret with `token` (bearer) or `username`/`password` for the artifact server; "
                          "used over https:// only, and only when labelled edgeline.io/credentials: \"true\"")
    external_data: list[ExternalDataFile] = Field(
        [], max_length=64,
        description="External data files the ONNX model reads (path relative to the model), each with its "
                    "digest; a model that names a file not listed here is Invalid")


class ReferenceProfileRef(ApiModel):
    """The statistics of the training data a runtime scores drift against (docs/runtime.md#the-reference-profile),
    written by the training step beside the model."""

    uri: str = Field(max_length=2048, pattern=r"^(https?|file)://.+",
                     description="http(s):// or file:// URI of the reference profile (JSON)")
    sha256: str = Field(pattern=DIGEST, max_length=71, description="Digest of the profile, sha256:<64 hex>")


class Requirements(ApiModel):
    max_opset: int | None = Field(None, ge=1, le=100, description="Newest default-domain opset the runtime supports")
    min_runtime_version: str | None = Field(None, max_length=32, description="Oldest runtime version that can serve it")
    memory: str | None = Field(None, max_length=32, description="Memory the model needs to serve (quantity)")
    accelerator: Literal["cpu", "gpu", "npu"] | None = Field(None, description="Accelerator the model needs")


class Platform(ApiModel):
    architecture: Literal["amd64", "arm64", "arm"] | None = Field(
        None, description="CPU architecture of the nodes the artifact is for; empty: any")
    accelerator: Literal["cpu", "gpu", "npu"] = Field("cpu", description="What the artifact runs on: cpu, or a gpu "
                                                                         "or npu the cluster must have")
    execution_provider: Literal["CPU", "CUDA", "TensorRT", "OpenVINO"] | None = Field(
        None, description="onnxruntime execution provider the runtime uses for it; empty: the deployment's")
    min_runtime_version: str | None = Field(None, max_length=32, pattern=r"^v?\d+(\.\d+){0,2}$",
                                            description="Oldest onnxruntime version that can serve it, e.g. 1.18")


class Variant(ApiModel):
    name: str = Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                      description="Name of the variant, e.g. arm64-int8; default is spec.artifact's")
    artifact: Artifact = Field(description="The variant's model file and how to verify it")
    platform: Platform = Field(default_factory=Platform, description="The hardware and runtime it is for",
                               json_schema_extra={"default": {}})


class MLModelSpec(ApiModel):
    model: str = Field(description="Logical model name shared by all its versions, e.g. defect-detector",
                       min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    version: str = Field(description="Version of this artifact, e.g. 1.2.0", min_length=1, max_length=63,
                         pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
    format: Literal["onnx"] = Field("onnx", description="Model format; onnx is supported")
    stage: Literal["development", "staging", "production"] = Field(
        "development", description="Lifecycle stage; production demands an artifact digest")
    artifact: Artifact = Field(description="The model file and how to verify it")
    metrics: dict[str, float] = Field({}, description="Evaluation metrics (name to value), shown to approvers")
    reference_profile: ReferenceProfileRef | None = Field(
        None, description="Reference profile of the training data; runtimes serving this version score input and "
                          "prediction drift against it. Without one the model is served without a drift score "
                          "(condition ReferenceProfile False, NoReferenceProfile)")
    requirements: Requirements | None = Field(None, description="What a runtime must offer to serve the model")
    description: str | None = Field(None, max_length=1024, description="What the model does, for people")
    platform: Platform | None = Field(None, description="The platform spec.artifact (variant default) is for; "
                                                        "empty: any architecture, CPU")
    variants: list[Variant] = Field(
        [], max_length=8,
        description="More artifacts of this version for other hardware (e.g. int8 for arm64, fp16 for GPUs); "
                    "each is fetched and validated, must have the same inputs and outputs, and each cluster gets "
                    "the variant that fits it best (docs/heterogeneous-fleets.md)")


class TensorInfo(ApiModel):
    name: str = Field(description="Tensor name")
    elem_type: str = Field(description="Element type, e.g. FLOAT")
    shape: list[str] = Field([], description="Dimensions: numbers, symbolic names, or ? when unknown")


class OpsetImport(ApiModel):
    domain: str = Field("", description="Operator domain; empty is the default ONNX domain")
    version: int = Field(description="Opset version")


class Producer(ApiModel):
    name: str | None = Field(None, description="Tool that wrote the model")
    version: str | None = Field(None, description="Its version")


class Inspection(ApiModel):
    ir_version: int | None = Field(None, description="ONNX IR version")
    producer: Producer | None = Field(None, description="Tool that wrote the model")
    opset_imports: list[OpsetImport] = Field([], description="Opsets the model imports, per domain")
    inputs: list[TensorInfo] = Field([], description="Graph inputs")
    outputs: list[TensorInfo] = Field([], description="Graph outputs")
    initializer_count: int | None = Field(None, description="Number of initializers (weights)")
    parameter_count: int | None = Field(None, description="Number of parameters in the initializers")
    external_data: bool | None = Field(None, description="Whether weights live in external files")
    size_bytes: int | None = Field(None, description="Size of the model file plus its external data files")


class ArtifactStatus(ApiModel):
    digest: str | None = Field(None, description="sha256 of the bytes fetched")
    size_bytes: int | None = Field(None, description="Bytes fetched")
    fetched_at: str | None = Field(None, description="When the artifact was fetched")


class ValidationAttempts(ApiModel):
    generation: int | None = Field(None, description="Generation these attempts are about")
    unfinished: int = Field(0, description="Validations started and not finished (the operator stopped during "
                                           "them); at EDGELINE_VALIDATION_MAX_ATTEMPTS the model is Invalid")
    started_at: str | None = Field(None, description="When the last validation started")


class VariantStatus(ApiModel):
    name: str = Field(description="Variant name (default: spec.artifact)")
    digest: str | None = Field(None, description="sha256 of the bytes fetched")
    size_bytes: int | None = Field(None, description="Size of the model file plus its external data files")
    opset: int | None = Field(None, description="Default-domain ONNX opset the variant imports")


class Promotion(ApiModel):
    stage: str = Field(description="Stage the model was promoted to")
    by: str = Field(description="Who promoted it, as the API server authenticated them (admission policy)")
    at: str | None = Field(None, description="When the operator saw the promotion")


class MLModelStatus(ApiModel):
    observed_generation: int | None = Field(None, description="Generation of the spec last validated")
    phase: Literal["Pending", "Validating", "Ready", "Invalid"] | None = Field(
        None, description="Pending, Validating, Ready or Invalid")
    conditions: list[Condition] = Field([], description="ArtifactVerified, Validated and Ready")
    artifact: ArtifactStatus | None = Field(None, description="What was fetched")
    inspection: Inspection | None = Field(None, description="What ONNX inspection found")
    used_by: list[str] = Field([], description="EdgeDeployments that use this model, as \"namespace/name (roles)\"; "
                                               "roles are current, pending, last-known-good and pinned")
    validation: ValidationAttempts | None = Field(None, description="Validations started for this generation")
    variants: list[VariantStatus] = Field([], description="Every artifact of the version (default first), as "
                                                          "fetched and inspected")
    variants_digest: str | None = Field(None, description="sha256 over every variant's name, URI, digest and "
                                                          "platform: what an approval of this version covers")
    stage: str | None = Field(None, description="Effective stage: spec.stage, or the stage a person promoted it to")
    promotion: Promotion | None = Field(None, description="The recorded promotion, if any")


class MLModel(Resource):
    KIND = "MLModel"
    PLURAL = "mlmodels"
    SINGULAR = "mlmodel"
    SHORT_NAMES = ["mlm"]
    DESCRIPTION = "One immutable, versioned model artifact; Edgeline verifies and inspects it."
    PRINTER_COLUMNS = [
        {"name": "Model", "type": "string", "jsonPath": ".spec.model"},
        {"name": "Version", "type": "string", "jsonPath": ".spec.version"},
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Opset", "type": "integer", "jsonPath": ".status.inspection.opsetImports[0].version"},
        {"name": "Size", "type": "integer", "jsonPath": ".status.inspection.sizeBytes"},
        {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    ]
    SPEC_VALIDATIONS = [
        {"rule": "self == oldSelf",
         "message": "spec is immutable: create a new MLModel for a new version"},
        {"rule": "self.stage != 'production' || has(self.artifact.sha256)",
         "message": "artifact.sha256 is required when stage is production", "fieldPath": ".artifact.sha256"},
        {"rule": "!has(self.variants) || self.stage != 'production' || self.variants.all(v, has(v.artifact.sha256))",
         "message": "every variant needs artifact.sha256 when stage is production", "fieldPath": ".variants"},
        {"rule": "!self.artifact.uri.startsWith('oci://') || !has(self.artifact.externalData) || "
                 "size(self.artifact.externalData) == 0",
         "message": "an oci:// artifact carries the model file alone: external data files need an https:// "
                    "artifact", "fieldPath": ".artifact.externalData"},
        {"rule": "!has(self.variants) || self.variants.all(v, v.name != 'default' && "
                 "self.variants.exists_one(w, w.name == v.name))",
         "message": "variant names must be unique and not 'default' (spec.artifact is the default variant)",
         "fieldPath": ".variants"},
    ]

    spec: MLModelSpec
    status: MLModelStatus | None = None
