"""Which hub namespaces may use an EdgeCluster, and how much Pod Security a pipeline step may
ask for there (docs/security.md, "Tenancy and operations"). Pure: the same checks feed the
placement's exclusions, the DataPipeline's step refusals and the wording of the admission
policy's messages, so users read one explanation everywhere.

Default: an EdgeCluster without `spec.tenancy` admits no namespace. An install that was
single-tenant before tenancy existed keeps working by starting the operator with
EDGELINE_TENANCY_OPEN_WITHOUT_SECTION=true (chart: tenancy.openWithoutSection), which admits
every namespace on such clusters (still at Pod Security `restricted`) until each cluster has
its section (docs/install.md, upgrade note)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edgeline.api.common import LabelSelector
from edgeline.domain.selectors import matches

LEVELS = ("restricted", "baseline", "privileged")
NAMESPACE_NOT_ALLOWED = "NamespaceNotAllowed"
POD_SECURITY_NOT_ALLOWED = "PodSecurityNotAllowed"


@dataclass(frozen=True)
class TenancyFacts:
    """An EdgeCluster's spec.tenancy as the hub has it; `declared` False when the section is absent."""

    declared: bool = False
    namespaces: tuple[str, ...] = ()
    selector: LabelSelector | None = None
    pod_security: str = "restricted"

    @classmethod
    def from_spec(cls, tenancy: dict | None) -> "TenancyFacts":
        if tenancy is None:
            return cls()
        selector = tenancy.get("namespaceSelector")
        return cls(True, tuple(tenancy.get("namespaces") or ()),
                   LabelSelector.model_validate(selector) if selector is not None else None,
                   tenancy.get("podSecurity", "restricted"))


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


@dataclass(frozen=True)
class HubNamespace:
    """A hub namespace as tenancy sees it: its name and labels."""

    name: str
    labels: dict[str, str] = field(default_factory=dict)


def admits(cluster: str, tenancy: TenancyFacts, namespace: HubNamespace, open_without_section: bool = False
           ) -> Refusal | None:
    """None when `namespace` may deploy to and run steps on `cluster`, else why not."""
    if not tenancy.declared:
        if open_without_section:
            return None
        return Refusal(NAMESPACE_NOT_ALLOWED,
                       f"EdgeCluster {cluster} has no spec.tenancy, so no namespace may use it; its owner adds "
                       f"namespace {namespace.name} to spec.tenancy.namespaces (or a namespaceSelector)")
    if namespace.name in tenancy.namespaces:
        return None
    if tenancy.selector is not None and matches(tenancy.selector, namespace.labels):
        return None
    return Refusal(NAMESPACE_NOT_ALLOWED,
                   f"EdgeCluster {cluster} does not admit namespace {namespace.name} (spec.tenancy lists "
                   f"{_listed(tenancy)}); ask the cluster's owner to add it")


def effective_level(tenancy: TenancyFacts) -> str:
    """The Pod Security level the cluster's target namespace enforces."""
    return tenancy.pod_security if tenancy.pod_security in LEVELS else "restricted"


def allows_level(tenancy: TenancyFacts, wanted: str) -> bool:
    return LEVELS.index(wanted) <= LEVELS.index(effective_level(tenancy))


def level_refusal(cluster: str | None, allowed: str | None, wanted: str) -> Refusal | None:
    """Why a step asking for `wanted` may not run where at most `allowed` is (None: no cap, the hub)."""
    if cluster is None or allowed is None or LEVELS.index(wanted) <= LEVELS.index(allowed):
        return None
    return Refusal(POD_SECURITY_NOT_ALLOWED,
                   f"the step asks for Pod Security {wanted} and EdgeCluster {cluster} allows at most {allowed} "
                   f"(spec.tenancy.podSecurity)")


def step_refusal(cluster: str, tenancy: TenancyFacts, namespace: HubNamespace, step_level: str,
                 open_without_section: bool = False) -> Refusal | None:
    """Why a DataPipeline step of `namespace` asking for `step_level` may not run on `cluster` (or None)."""
    refused = admits(cluster, tenancy, namespace, open_without_section)
    if refused is not None:
        return refused
    return level_refusal(cluster, effective_level(tenancy), step_level)


def _listed(tenancy: TenancyFacts) -> str:
    parts = []
    if tenancy.namespaces:
        names = list(tenancy.namespaces)
        parts.append("namespaces " + ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else ""))
    if tenancy.selector is not None:
        parts.append("a namespaceSelector this namespace's labels do not match")
    return " and ".join(parts) or "no namespace"
