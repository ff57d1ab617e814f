"""Model variants: one MLModel version, several artifacts (fp32 for amd64 CPUs, int8 for arm64
gateways, fp16 for GPUs). This module says what the variants of a version are, whether they
agree on their inputs and outputs, what digest covers them all, and which one a cluster gets
from its probed facts. Pure: plain values in, plain values out.

The default variant is spec.artifact, for spec.platform (default: any architecture, CPU) and
requirements.accelerator; requirements.minRuntimeVersion and requirements.memory hold for every
variant. A cluster gets the fitting variant that uses the most of it: an accelerator before the
CPU, a build for its architecture before a generic one, then the order of the spec.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from edgeline.api.edgedeployment import Runtime, VariantRef
from edgeline.domain.compatibility import max_opset, memory_bytes, runtime_onnxruntime, version_tuple
from edgeline.domain.quantities import format_bytes

if TYPE_CHECKING:
    from edgeline.domain.placement import ClusterFacts

DEFAULT = "default"


# --- what the variants are ------------------------------------------------------------------------

def variants_of(spec: dict, status: dict) -> tuple[VariantRef, ...]:
    """Every artifact of an MLModel (camelCase spec and status), the default first, with what
    validation found about each (digest, opset, size) once status has it."""
    requirements = spec.get("requirements") or {}
    found = {v.get("name"): v for v in status.get("variants") or []}
    platform = dict(spec.get("platform") or {})
    if requirements.get("accelerator") and not platform.get("accelerator"):
        platform["accelerator"] = requirements["accelerator"]
    entries = [(DEFAULT, spec.get("artifact") or {}, platform)]
    entries += [(v["name"], v.get("artifact") or {}, v.get("platform") or {}) for v in spec.get("variants") or []]
    out = []
    for name, artifact, plat in entries:
        seen = found.get(name) or {}
        digest = seen.get("digest")
        if name == DEFAULT and not digest:
            digest = (status.get("artifact") or {}).get("digest")
        out.append(VariantRef(
            name=name, uri=artifact.get("uri"), digest=digest,
            external_data={f["path"]: f["sha256"] for f in artifact.get("externalData") or []} or None,
            architecture=plat.get("architecture"), accelerator=plat.get("accelerator") or "cpu",
            execution_provider=plat.get("executionProvider"),
            min_runtime_version=_newest(plat.get("minRuntimeVersion"), requirements.get("minRuntimeVersion")),
            opset=seen.get("opset"), size_bytes=seen.get("sizeBytes"), memory=requirements.get("memory")))
    return tuple(out)


def _newest(*versions: str | None) -> str | None:
    known = [v for v in versions if v]
    try:
        return max(known, key=version_tuple) if known else None
    except ValueError:
        return known[0]


def variants_digest(variants: tuple[VariantRef, ...] | list[VariantRef]) -> str:
    """One digest over every variant's name, URI, digest, external data and platform: an
    approval of the version covers exactly these artifacts on exactly these platforms."""
    fields = [{"name": v.name, "uri": v.uri, "digest": v.digest, "externalData": v.external_data,
               "architecture": v.architecture, "accelerator": v.accelerator,
               "executionProvider": v.execution_provider, "minRuntimeVersion": v.min_runtime_version}
              for v in sorted(variants, key=lambda v: v.name)]
    return "sha256:" + hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


# --- do the variants agree on what they take and give ----------------------------------------------

def signature_problems(reference: dict, name: str, other: dict) -> list[str]:
    """What keeps the variant `name` (inspection `other`) from standing in for the default
    (inspection `reference`): inputs and outputs by name, dtype and shape. Shapes are
    compatible when they have the same rank and every fixed dimension agrees where both are
    fixed (a symbolic or unknown dimension fits any)."""
    problems = []
    for kind in ("inputs", "outputs"):
        ours = {t["name"]: t for t in reference.get(kind) or []}
        theirs = {t["name"]: t for t in other.get(kind) or []}
        if set(ours) != set(theirs):
            problems.append(f"{kind} of {name} are {', '.join(sorted(theirs)) or 'none'}, the default's are "
                            f"{', '.join(sorted(ours)) or 'none'}")
            continue
        for tensor, mine in sorted(ours.items()):
            other_t = theirs[tensor]
            if mine.get("elemType") != other_t.get("elemType"):
                problems.append(f"{kind[:-1]} {tensor} of {name} is {other_t.get('elemType')}, the default's is "
                                f"{mine.get('elemType')}")
            elif not _shapes_compatible(mine.get("shape") or [], other_t.get("shape") or []):
                problems.append(f"{kind[:-1]} {tensor} of {name} has shape [{', '.join(other_t.get('shape') or [])}]"
                                f", the default's is [{', '.join(mine.get('shape') or [])}]")
    return problems


def _shapes_compatible(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    return all(not (x.isdigit() and y.isdigit()) or x == y for x, y in zip(a, b))


# --- which variant a cluster gets ------------------------------------------------------------------

@dataclass(frozen=True)
class Pick:
    variant: VariantRef | None
    reason: str         # VariantChosen, or why none fits (NoVariantFits, NotProbedYet)
    message: str


Problem = tuple[str, str]


@dataclass(frozen=True)
class Runs:
    """The runtime side of a fit: the onnxruntime version the runtime image brings."""

    onnxruntime: str | None

    @staticmethod
    def of(runtime: Runtime | None) -> "Runs":
        runtime = runtime or Runtime()
        return Runs(runtime_onnxruntime(runtime.image, runtime.onnxruntime_version))


def _architecture(v: VariantRef, c: "ClusterFacts", r: Runs) -> Problem | None:
    if v.architecture and v.architecture not in c.architectures:
        return "ArchitectureMismatch", f"built for {v.architecture}; nodes are {', '.join(c.architectures) or 'none'}"
    return None


def _accelerator(v: VariantRef, c: "ClusterFacts", r: Runs) -> Problem | None:
    if v.accelerator == "gpu" and c.gpus < 1:
        return "NoGPU", "needs a GPU; the cluster has no allocatable GPU"
    if v.accelerator == "npu":
        return "NoNPU", "needs an NPU; Edgeline does not find NPUs among a cluster's probed devices yet"
    return None


def _runtime_version(v: VariantRef, c: "ClusterFacts", r: Runs) -> Problem | None:
    if not v.min_runtime_version:
        return None
    if r.onnxruntime is None:
        return "RuntimeVersionUnknown", (f"needs onnxruntime {v.min_runtime_version}; the runtime image's version is "
                                         "unknown (set spec.runtime.onnxruntimeVersion)")
    try:
        too_old = version_tuple(r.onnxruntime) < version_tuple(v.min_runtime_version)
    except ValueError:
        return "RuntimeVersionUnknown", f"cannot compare onnxruntime {r.onnxruntime} with {v.min_runtime_version}"
    if too_old:
        return "RuntimeTooOld", f"needs onnxruntime {v.min_runtime_version}; the runtime has {r.onnxruntime}"
    return None


def _opset(v: VariantRef, c: "ClusterFacts", r: Runs) -> Problem | None:
    if v.opset is None or r.onnxruntime is None:
        return None
    try:
        limit = max_opset(r.onnxruntime)
    except ValueError:
        return None
    if limit is None:
        return "RuntimeTooOld", f"onnxruntime {r.onnxruntime} is older than any Edgeline knows the opsets of"
    if v.opset > limit:
        return "OpsetNotSupported", f"uses opset {v.opset}; onnxruntime {r.onnxruntime} implements up to {limit}"
    return None


def _memory(v: VariantRef, c: "ClusterFacts", r: Runs) -> Problem | None:
    if not c.memory:
        return None             # not probed: memory is not a reason to keep a cluster out
    try:
        need = memory_bytes(v.memory) if v.memory else (v.size_bytes or 0)
        have = memory_bytes(c.memory)
    except ValueError:
        return None
    if have < need:
        return "NotEnoughMemory", f"needs {v.memory or format_bytes(need)}; allocatable memory is {c.memory}"
    return None


CHECKS: list[Callable[[VariantRef, "ClusterFacts", Runs], Problem | None]] = [
    _architecture, _accelerator, _runtime_version, _opset, _memory]


def problems(variant: VariantRef, cluster: "ClusterFacts", runs: Runs) -> list[Problem]:
    return [p for check in CHECKS if (p := check(variant, cluster, runs))]


def _needs_facts(variant: VariantRef) -> bool:
    return bool(variant.architecture) or variant.accelerator in ("gpu", "npu")


def pick(variants: tuple[VariantRef, ...] | list[VariantRef], cluster: "ClusterFacts", runs: Runs) -> Pick:
    """The variant this cluster gets, and why; or why none fits."""
    if not cluster.probed and any(_needs_facts(v) for v in variants):
        return Pick(None, "NotProbedYet", "the cluster has not been reached yet, so which variant fits is unknown")
    fitting, refused = [], []
    for index, variant in enumerate(variants):
        found = problems(variant, cluster, runs)
        if found:
            refused.append(f"{variant.name}: {'; '.join(m for _, m in found)}")
        else:
            fitting.append((variant.accelerator not in (None, "cpu"), variant.architecture is not None, -index,
                            variant))
    if not fitting:
        if len(variants) == 1:          # no spec.variants: the model's own requirements speak
            found = problems(variants[0], cluster, runs)
            return Pick(None, found[0][0], "; ".join(m for _, m in found))
        return Pick(None, "NoVariantFits", "no variant fits: " + " | ".join(refused))
    best = max(fitting, key=lambda f: f[:3])[3]
    return Pick(best, "VariantChosen", _why(best, cluster, len(fitting)))


def _why(variant: VariantRef, cluster: "ClusterFacts", fitting: int) -> str:
    parts = []
    if variant.accelerator == "gpu":
        parts.append(f"uses the cluster's GPU ({cluster.gpus} allocatable)")
    if variant.architecture:
        parts.append(f"built for {variant.architecture}, as the nodes are")
    if not parts:
        parts.append("generic build (any architecture, CPU)")
    others = f"; best of {fitting} that fit" if fitting > 1 else ""
    return f"{variant.name}: {', '.join(parts)}{others}"
