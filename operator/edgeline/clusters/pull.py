"""The pull transport (docs/edge-autonomy.md): for a cluster with `connection.mode: pull`
the hub never calls the site. "Apply" publishes an assignment on the hub, "observe" reads the
report the site's agent wrote back, and "reachable" means the agent renewed its Lease within
staleAfterSeconds.

Everything of one site lives in its own hub namespace (`site_namespace`):
- ConfigMap `assignment-<object name>` per EdgeDeployment: the revision to run, the last
  known-good one to fall back on, the rollback policy (written by the operator only);
- ConfigMap `edgeline-report`: one key per EdgeDeployment, written by the agent only;
- Lease `edgeline-agent`: the agent's heartbeat;
- ServiceAccount `edgeline-agent` with a Role that reads that namespace's ConfigMaps and
  updates only the report and the Lease (by resourceNames). The hub creates the report and the
  Lease, so the agent needs no create permission but one: a TokenRequest for its own
  ServiceAccount (by resourceNames), to rotate its token (agent/tokens.py).
The rollout decision sees the same Observation for push and pull clusters.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.codecs import from_dict
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap, ServiceAccount
from lightkube.types import PatchType

from edgeline import FIELD_MANAGER, timestamps
from edgeline.api.edgedeployment import PlacementRequirements, RevisionRef, RollbackPolicy, VariantRef
from edgeline.clusters.connections import ConnectionProblem
from edgeline.clusters.probe import ClusterFacts
from edgeline.domain.site_cache import SiteCache
from edgeline.domain.site_reports import WorkloadReport, lease_fresh, unheard_message
from edgeline.domain.site_terms import SiteTerms

if TYPE_CHECKING:  # the agent imports this module too; it needs no rollout logic (memory, docs/edge-autonomy.md)
    from edgeline.domain.rollout import Observation

SITE_PREFIX = "edgeline-site-"
REPORT = "edgeline-report"
LEASE = "edgeline-agent"
AGENT = "edgeline-agent"
ASSIGNMENT_PREFIX = "assignment-"
LABEL_ASSIGNMENT = "edgeline.io/assignment"
LABEL_CLUSTER = "edgeline.io/cluster"
ASSIGNMENT_KEY = "assignment.json"
TERMS_KEY = "terms.json"         # the site's checks and schedule (domain.site_terms), rewritten on change


class PullProblem(Exception):
    """The hub's own API refused a pull-transport call."""


def site_namespace(cluster: str) -> str:
    """The hub namespace of one pull cluster (a namespace name has at most 63 characters)."""
    name = SITE_PREFIX + cluster
    if len(name) <= 63 and "." not in cluster:
        return name
    digest = hashlib.sha256(cluster.encode()).hexdigest()[:10]
    return f"{SITE_PREFIX}{cluster.replace('.', '-')[:63 - len(SITE_PREFIX) - 11].rstrip('-')}-{digest}"


def assignment_name(object_name: str) -> str:
    return ASSIGNMENT_PREFIX + object_name


@dataclass(frozen=True)
class Assignment:
    """What the hub wants one site to run for one EdgeDeployment."""

    deployment_namespace: str
    deployment: str
    object_name: str
    target_namespace: str
    revision: RevisionRef
    last_known_good: RevisionRef | None = None
    requirements: PlacementRequirements | None = None
    rollback: RollbackPolicy | None = None
    owner_uid: str = ""                      # the EdgeDeployment's uid: the owner label of the site's objects
    variant: VariantRef | None = None        # the model variant this site runs (domain.variants)
    last_known_good_variant: VariantRef | None = None
    pod_security: str = "restricted"         # the target namespace's Pod Security level (EdgeCluster tenancy)
    terms: SiteTerms | None = None           # checks and schedule (TERMS_KEY of the ConfigMap; `with_terms`)

    def to_json(self) -> str:
        extra = {"terms": self.terms.dump()} if self.terms is not None else {}
        return json.dumps({**extra,
            "deploymentNamespace": self.deployment_namespace, "deployment": self.deployment,
            "objectName": self.object_name, "targetNamespace": self.target_namespace,
            "revision": self.revision.dump(),
            "lastKnownGood": self.last_known_good.dump() if self.last_known_good else None,
            "requirements": self.requirements.dump() if self.requirements else None,
            "rollback": self.rollback.dump() if self.rollback else None,
            "ownerUid": self.owner_uid, "podSecurity": self.pod_security,
            "variant": self.variant.dump() if self.variant else None,
            "lastKnownGoodVariant": self.last_known_good_variant.dump() if self.last_known_good_variant else None},
            sort_keys=True)

    def variant_of(self, revision: RevisionRef) -> VariantRef | None:
        """The variant the site runs of `revision` (the assigned one or the known-good one)."""
        if revision.revision == self.revision.revision:
            return self.variant
        if self.last_known_good is not None and revision.revision == self.last_known_good.revision:
            return self.last_known_good_variant
        return None

    @classmethod
    def from_json(cls, text: str) -> Assignment:
        data = json.loads(text)
        return cls(
            deployment_namespace=data["deploymentNamespace"], deployment=data["deployment"],
            object_name=data["objectName"], target_namespace=data["targetNamespace"],
            revision=RevisionRef.model_validate(data["revision"]),
            last_known_good=RevisionRef.model_validate(data["lastKnownGood"]) if data.get("lastKnownGood") else None,
            requirements=PlacementRequirements.model_validate(data["requirements"])
            if data.get("requirements") else None,
            rollback=RollbackPolicy.model_validate(data["rollback"]) if data.get("rollback") else None,
            owner_uid=data.get("ownerUid") or "", pod_security=data.get("podSecurity") or "restricted",
            variant=VariantRef.model_validate(data["variant"]) if data.get("variant") else None,
            last_known_good_variant=VariantRef.model_validate(data["lastKnownGoodVariant"])
            if data.get("lastKnownGoodVariant") else None,
            terms=SiteTerms.load(data["terms"]) if data.get("terms") else None)


def with_terms(assignment_text: str, terms_text: str | None) -> str:
    """One assignment as the site keeps it: the ConfigMap's assignment with its terms (its own key)."""
    if not terms_text:
        return assignment_text
    data = json.loads(assignment_text)
    data["terms"] = json.loads(terms_text)
    return json.dumps(data, sort_keys=True)


def assignment_configmap(cluster: str, assignment: Assignment) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": assignment_name(assignment.object_name), "namespace": site_namespace(cluster),
        "labels": {LABEL_ASSIGNMENT: "true", LABEL_CLUSTER: cluster[:63],
                   "app.kubernetes.io/managed-by": "edgeline"}},
        "data": {ASSIGNMENT_KEY: replace(assignment, terms=None).to_json(),
                 **({TERMS_KEY: assignment.terms.to_json()} if assignment.terms is not None else {})}}


def site_objects(cluster: str) -> list[dict]:
    """The hub side of one pull site: namespace, report, Lease, identity and its narrow Role."""
    ns = site_namespace(cluster)
    labels = {LABEL_CLUSTER: cluster[:63], "app.kubernetes.io/managed-by": "edgeline"}
    meta = {"namespace": ns, "labels": labels}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}},
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": AGENT, **meta}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": AGENT, **meta},
         "rules": [
             # Assignments are read (and watched) in the site's own namespace only.
             {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]},
             # It writes its report and its Lease, which the hub created: nothing else, no create.
             {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [REPORT],
              "verbs": ["update", "patch"]},
             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": [LEASE],
              "verbs": ["get", "update", "patch"]},
             # It rotates its own token (agent/tokens.py): a TokenRequest for this ServiceAccount only.
             {"apiGroups": [""], "resources": ["serviceaccounts/token"], "resourceNames": [AGENT],
              "verbs": ["create"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": AGENT, **meta},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": AGENT},
         "subjects": [{"kind": "ServiceAccount", "name": AGENT, "namespace": ns}]},
    ]


async def ensure_site(hub: AsyncClient, cluster: str) -> None:
    """Creates the hub side of a pull site (idempotent). The report and the Lease are created
    only when missing: what the agent wrote is never overwritten."""
    try:
        for obj in site_objects(cluster):
            await hub.apply(from_dict(obj), field_manager=FIELD_MANAGER, force=True)
        ns = site_namespace(cluster)
        labels = {LABEL_CLUSTER: cluster[:63], "app.kubernetes.io/managed-by": "edgeline"}
        for obj in ({"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": REPORT, "namespace": ns, "labels": labels}, "data": {}},
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": LEASE, "namespace": ns, "labels": labels},
                     "spec": {"holderIdentity": None}}):
            try:
                await hub.create(from_dict(obj))
            except ApiError as exc:
                if exc.status.code != 409:
                    raise
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot prepare the hub namespace of pull cluster {cluster}: {_why(exc)}") from None


async def agent_token(hub: AsyncClient, cluster: str, seconds: int) -> str:
    """A token for the site's ServiceAccount (TokenRequest: bound, expiring, nothing stored)."""
    # lightkube reads the body's metadata (namespace) before it sends a create: it must exist.
    request = ServiceAccount.Token(metadata=ObjectMeta(name=AGENT, namespace=site_namespace(cluster)),
                                   spec=TokenRequestSpec(audiences=[], expirationSeconds=seconds))
    result = await hub.create(request, AGENT, namespace=site_namespace(cluster))
    return result.status.token


async def publish(hub: AsyncClient, cluster: str, assignment: Assignment) -> None:
    try:
        await hub.apply(from_dict(assignment_configmap(cluster, assignment)), field_manager=FIELD_MANAGER,
                        force=True)
    except ApiError as exc:
        if exc.status.code == 404:      # the site namespace is missing (registered by hand): make it, once
            await ensure_site(hub, cluster)
            await hub.apply(from_dict(assignment_configmap(cluster, assignment)), field_manager=FIELD_MANAGER,
                            force=True)
            return
        raise PullProblem(f"cannot publish the assignment: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot publish the assignment: {_why(exc)}") from None


async def publish_terms(hub: AsyncClient, cluster: str, object_name: str, terms: SiteTerms) -> None:
    """Rewrites the terms of a published assignment (a merge patch of their key alone); an
    assignment that is not there (yet) gets them when it is published."""
    try:
        await hub.patch(ConfigMap, assignment_name(object_name), {"data": {TERMS_KEY: terms.to_json()}},
                        namespace=site_namespace(cluster), patch_type=PatchType.MERGE)
    except ApiError as exc:
        if exc.status.code != 404:
            raise PullProblem(f"cannot publish the site's terms: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot publish the site's terms: {_why(exc)}") from None


async def withdraw(hub: AsyncClient, cluster: str, object_name: str, owner_uid: str = "") -> None:
    """Deletes the assignment; with `owner_uid`, only an assignment of that owner (a deployment
    deleted and created again under the same name has another uid)."""
    try:
        if owner_uid:
            found = await hub.get(ConfigMap, assignment_name(object_name), namespace=site_namespace(cluster))
            text = (found.data or {}).get(ASSIGNMENT_KEY)
            if text and Assignment.from_json(text).owner_uid not in ("", owner_uid):
                return
        await hub.delete(ConfigMap, assignment_name(object_name), namespace=site_namespace(cluster))
    except ApiError as exc:
        if exc.status.code != 404:
            raise PullProblem(f"cannot withdraw the assignment: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot withdraw the assignment: {_why(exc)}") from None


async def lease_renewed(hub: AsyncClient, cluster: str) -> tuple[dt.datetime | None, str | None]:
    """When the site's agent last renewed its Lease, and who holds it (None, None: never)."""
    try:
        lease = await hub.get(Lease, LEASE, namespace=site_namespace(cluster))
    except ApiError as exc:
        if exc.status.code == 404:
            return None, None
        raise PullProblem(f"cannot read the site's Lease: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot read the site's Lease: {_why(exc)}") from None
    spec = lease.spec
    renewed = spec.renewTime if spec else None
    if isinstance(renewed, str):
        renewed = timestamps.parse(renewed)
    elif isinstance(renewed, dt.datetime) and renewed.tzinfo is None:
        renewed = renewed.replace(tzinfo=dt.timezone.utc)       # MicroTime is UTC
    return renewed, spec.holderIdentity if spec else None


ACK_PREFIX = "ack."
KEEP_ACKS = 50           # more than a site keeps (domain.site_reports.KEEP_ROLLBACKS)


async def reports(hub: AsyncClient, cluster: str) -> dict[str, WorkloadReport]:
    """Every workload report of the site, by object name (unreadable entries are left out),
    without the site rollbacks the hub already acknowledged."""
    try:
        found = await hub.get(ConfigMap, REPORT, namespace=site_namespace(cluster))
    except ApiError as exc:
        if exc.status.code == 404:
            return {}
        raise PullProblem(f"cannot read the site's report: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot read the site's report: {_why(exc)}") from None
    data = found.data or {}
    out = {}
    for key, value in data.items():
        if key.startswith(ACK_PREFIX):
            continue
        try:
            report = WorkloadReport.from_json(value)
        except (ValueError, TypeError, KeyError):
            continue
        acked = set(acknowledged(data, key))
        out[key] = replace(report, rollbacks=tuple(r for r in report.rollbacks if r.key not in acked))
    return out


def acknowledged(report_data: dict[str, str], object_name: str) -> list[str]:
    """Keys of the site rollbacks the hub recorded for one deployment (written by the hub)."""
    try:
        return list(json.loads(report_data.get(ACK_PREFIX + object_name) or "[]"))
    except ValueError:
        return []


async def acknowledge(hub: AsyncClient, cluster: str, object_name: str, keys: list[str]) -> None:
    """Tells the site which of its own rollbacks the hub has recorded, so it stops reporting
    them. A merge patch of one key: the agent's keys are left alone."""
    if not keys:
        return
    try:
        found = await hub.get(ConfigMap, REPORT, namespace=site_namespace(cluster))
        merged = list(dict.fromkeys([*acknowledged(found.data or {}, object_name), *keys]))[-KEEP_ACKS:]
        await hub.patch(ConfigMap, REPORT, {"data": {ACK_PREFIX + object_name: json.dumps(merged)}},
                        namespace=site_namespace(cluster), patch_type=PatchType.MERGE)
    except (ApiError, httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot acknowledge the site's rollbacks: {_why(exc)}") from None


async def observe(hub: AsyncClient, cluster: str, object_name: str, stale_after: int,
                  now: dt.datetime | None = None, owner_uid: str = "") -> tuple[Observation, WorkloadReport | None]:
    """The same Observation a push cluster yields, from the site's Lease and report."""
    from edgeline.domain.rollout import Observation  # the operator's side only

    now = now or dt.datetime.now(dt.timezone.utc)
    try:
        renewed, _ = await lease_renewed(hub, cluster)
        if not lease_fresh(renewed, now, dt.timedelta(seconds=stale_after)):
            return Observation(cluster, reachable=False, message=unheard_message(renewed, now)), None
        report = (await reports(hub, cluster)).get(object_name)
    except PullProblem as exc:
        return Observation(cluster, reachable=False, message=str(exc)), None
    if report is None:
        return Observation(cluster, reachable=True, exists=False), None
    if owner_uid and report.owner_uid and report.owner_uid != owner_uid:
        # Reported for an earlier EdgeDeployment of the same name: not ours.
        return Observation(cluster, reachable=True, exists=False,
                           message="the site reports a runtime of another owner under this name"), None
    return Observation(cluster, reachable=True, exists=report.exists, revision=report.revision,
                       ready_replicas=report.ready_replicas, replicas=report.replicas, ready=report.ready,
                       message=report.message), report


def reached_at(report: WorkloadReport | None, revision: str) -> float:
    """When a revision reached the site: the site's own time when it runs it already (it
    rolled back by itself), else now (the assignment was just published)."""
    if report is not None and report.revision == revision and report.since:
        return report.since
    return time.time()


def _why(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"API error {exc.status.code}: {exc.status.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


FACTS_KEY = "site.facts"
CACHE_FACT = "cache"     # in site.facts beside the probe's facts: where the site keeps its models (domain.site_cache)


def facts_json(facts: ClusterFacts, cache: SiteCache | None = None) -> str:
    data = asdict(facts)
    if cache is not None:
        data[CACHE_FACT] = cache.to_dict()
    return json.dumps(data, sort_keys=True)


async def site_cache(hub: AsyncClient, cluster: str) -> SiteCache:
    """The cache the site's agent last reported (a hostPath when it reported none)."""
    try:
        found = await hub.get(ConfigMap, REPORT, namespace=site_namespace(cluster))
        data = json.loads((found.data or {}).get(FACTS_KEY) or "{}")
    except ApiError as exc:
        if exc.status.code == 404:
            return SiteCache()
        raise PullProblem(f"cannot read the site's report: {_why(exc)}") from None
    except (httpx.HTTPError, OSError) as exc:
        raise PullProblem(f"cannot read the site's report: {_why(exc)}") from None
    except ValueError:
        return SiteCache()
    return SiteCache.from_dict(data.get(CACHE_FACT) if isinstance(data, dict) else None)


async def probe_site(hub: AsyncClient, cluster: str, stale_after: int, now: dt.datetime
                     ) -> tuple[ClusterFacts | None, ConnectionProblem | None, dt.datetime | None]:
    """A pull cluster's probe, from the hub alone: the facts its agent reported, valid while
    its Lease is fresh; else the problem. Also returns when the Lease was last renewed."""
    try:
        renewed, _ = await lease_renewed(hub, cluster)
        if not lease_fresh(renewed, now, dt.timedelta(seconds=stale_after)):
            return None, ConnectionProblem("AgentNotHeardFrom", unheard_message(renewed, now)), renewed
        found = await hub.get(ConfigMap, REPORT, namespace=site_namespace(cluster))
    except PullProblem as exc:
        return None, ConnectionProblem("HubError", str(exc)), None
    except (ApiError, httpx.HTTPError, OSError) as exc:
        return None, ConnectionProblem("HubError", f"cannot read the site's report: {_why(exc)}"), None
    raw = (found.data or {}).get(FACTS_KEY)
    if not raw:
        return None, ConnectionProblem("NoFactsReported", "the site's agent renews its Lease but has not "
                                                          "reported its cluster yet"), renewed
    try:
        data = json.loads(raw)
        data.pop(CACHE_FACT, None)
        data["architectures"] = tuple(data.get("architectures") or ())
        data["node_labels"] = {k: tuple(v) for k, v in (data.get("node_labels") or {}).items()}
        return ClusterFacts(**data), None, renewed
    except (ValueError, TypeError) as exc:
        return None, ConnectionProblem("FactsUnreadable", f"the site's facts are unreadable: {exc}"), renewed
