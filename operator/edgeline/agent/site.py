"""The agent's loop: dial out to the hub (renew the Lease, read the assignments and what the
hub acknowledged), run the assigned revisions on the site's own cluster from the site's model
cache, observe them, and write the reports back. When the hub is out of reach the site keeps
running what it last knew, from its own disk; reports wait in the state file until the link
returns (they are rewritten whole, so nothing is lost and nothing is sent twice).

A site alert (agent.receiver) reverts a runtime to its cached last known-good revision here,
at once, without the hub (docs/edge-autonomy.md)."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
from lightkube import ApiError, AsyncClient
from lightkube.resources.coordination_v1 import Lease
from lightkube.resources.core_v1 import ConfigMap
from lightkube.types import PatchType

from edgeline import timestamps
from edgeline.agent import cache, hub_snapshot, plan
from edgeline.agent import checks as site_checks
from edgeline.agent import state as site_state
from edgeline.agent.workload import artifact_of, site_objects
from edgeline.api.edgedeployment import RevisionRef
from edgeline.clusters import pull, workloads
from edgeline.clusters.probe import probe
from edgeline.domain.rollback import received
from edgeline.domain.site_cache import CLAIM, HOST_PATH, SiteCache
from edgeline.domain.site_checks import SiteCheckResult, due_on_site, latest
from edgeline.domain.site_reports import SiteRollback, WorkloadReport, add_rollback
from edgeline.domain.site_schedule import hold
from edgeline.render.runtime import Target

log = logging.getLogger("edgeline.agent")
FACTS_EVERY = 6         # cycles between two probes of the site's own cluster
STATS_EVERY_S = 60.0
HUB_ERRORS = (ApiError, httpx.HTTPError, OSError, asyncio.TimeoutError)


@dataclass(frozen=True)
class AgentConfig:
    cluster: str
    cache_dir: Path              # the cache as the agent sees it
    cache_host_dir: str          # the same folder as the node sees it (hostPath of the runtime Pods)
    interval_s: float = 5.0
    lease_duration_s: int = 30
    hub_timeout_s: float = 5.0
    registry_mirrors: tuple[str, ...] = ()   # oci:// models through the site's mirror first
    cache_claim: str | None = None     # the cache is this PersistentVolumeClaim (the runtimes mount it), not a hostPath
    node: str | None = None            # the node this agent runs on (the runtimes are pinned to it)

    @property
    def cache(self) -> SiteCache:
        """What the site reports in its facts: the hub decides Pod Security on it."""
        return SiteCache(CLAIM if self.cache_claim else HOST_PATH, self.cache_claim, self.node)
    prometheus_url: str | None = None    # the site's Prometheus; default: the EdgeCluster's, as published


class Agent:
    def __init__(self, config: AgentConfig, hub: AsyncClient, site: AsyncClient):
        self.config = config
        self.hub = hub
        self.site = site
        self.namespace = pull.site_namespace(config.cluster)
        self.state_file = config.cache_dir / "state.json"
        self.state = site_state.load(self.state_file)
        self.lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.hub_ok: bool | None = None
        self.written: dict[str, str] = {}       # report keys as last written to the hub
        self.facts: str | None = None
        self.cycles = 0
        self.drifted: set[str] = set()          # runtimes found missing or changed on the site: applied again
        self.hub_calls = 0                      # requests sent to the hub, for the log line and bench/agent
        self._stats_at = (time.monotonic(), 0)
        self.identity = f"{config.cluster}/{socket.gethostname()}"
        self.check_results: dict[str, tuple[SiteCheckResult, ...]] = {}    # object -> newest per check
        self.prometheus: httpx.AsyncClient | None = None

    # --- the loop

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                await self.cycle()
            except Exception:  # a bug must not end the site's autonomy: log it, go on
                log.exception("agent cycle failed")
            waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self.wake.wait())]
            await asyncio.wait(waiters, timeout=self.config.interval_s, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()

    async def cycle(self) -> None:
        self.cycles += 1
        self._log_stats()
        acked, assignments = await self._from_hub()
        async with self.lock:
            if acked is not None:
                self._forget_acknowledged(acked)
            if assignments is not None:
                self.state.assignments = assignments
        # Fetching may wait on the WAN: never while holding the lock a site alert needs.
        await self._prefetch()
        async with self.lock:
            await self._converge(remove_unassigned=assignments is not None)
            await self._release_held()
            self._save()
        await self._measure_checks()
        reports = await self._observe()
        if self.hub_ok:
            await self._to_hub(reports)

    # --- hub side: only outgoing calls, each with a short deadline

    async def _from_hub(self) -> tuple[dict[str, list[str]] | None, dict[str, str] | None]:
        try:
            self.hub_calls += 2
            await asyncio.wait_for(self._renew_lease(), self.config.hub_timeout_s)
            snapshot = await asyncio.wait_for(self._read_namespace(), self.config.hub_timeout_s)
        except HUB_ERRORS as exc:
            self._hub_state(False, exc)
            return None, None
        if snapshot.report is None:     # as a 404 of the report was: the hub has not prepared the site
            self._hub_state(False, LookupError(f"no ConfigMap {pull.REPORT} in {self.namespace}"))
            return None, None
        self._hub_state(True)
        listed, data = snapshot.assignments, snapshot.report
        self.written = {k: v for k, v in data.items() if not k.startswith(pull.ACK_PREFIX)}
        acked = {key[len(pull.ACK_PREFIX):]: pull.acknowledged(data, key[len(pull.ACK_PREFIX):])
                 for key in data if key.startswith(pull.ACK_PREFIX)}
        return acked, listed

    async def _renew_lease(self) -> None:
        now = timestamps.format_micro(dt.datetime.now(dt.timezone.utc))
        await self.hub.patch(Lease, pull.LEASE, {"spec": {
            "holderIdentity": self.identity, "renewTime": now,
            "leaseDurationSeconds": self.config.lease_duration_s}},
            namespace=self.namespace, patch_type=PatchType.MERGE)

    async def _read_namespace(self) -> hub_snapshot.HubSnapshot:
        """Assignments and report in one list of the site namespace's ConfigMaps (agent.hub_snapshot)."""
        snapshot = hub_snapshot.from_configmaps([cm async for cm in self.hub.list(ConfigMap, namespace=self.namespace)])
        for name, why in snapshot.unreadable:
            log.warning("assignment %s is unreadable: %s", name, why)
        return snapshot

    async def _to_hub(self, reports: dict[str, WorkloadReport]) -> None:
        data: dict[str, str | None] = {obj: r.to_json() for obj, r in reports.items()}
        if self.facts:
            data[pull.FACTS_KEY] = self.facts
        for key in self.written:
            if key not in data:
                data[key] = None
        changed = {k: v for k, v in data.items() if self.written.get(k) != v}
        if not changed:
            return
        try:
            self.hub_calls += 1
            await asyncio.wait_for(self.hub.patch(ConfigMap, pull.REPORT, {"data": changed}, namespace=self.namespace,
                                                  patch_type=PatchType.MERGE), self.config.hub_timeout_s)
        except HUB_ERRORS as exc:
            self._hub_state(False, exc)
            return
        self.written.update({k: v for k, v in changed.items() if v is not None})
        for key in [k for k, v in changed.items() if v is None]:
            self.written.pop(key, None)

    def _log_stats(self) -> None:
        started, calls = self._stats_at
        elapsed = time.monotonic() - started
        if elapsed >= STATS_EVERY_S:
            log.info("hub requests: %d in %.0f s (%.3f/s)", self.hub_calls - calls, elapsed,
                     (self.hub_calls - calls) / elapsed)
            self._stats_at = (time.monotonic(), self.hub_calls)

    def _hub_state(self, ok: bool, exc: Exception | None = None) -> None:
        if ok != self.hub_ok:
            if ok:
                log.info("hub reached: reports resume")
            else:
                log.warning("hub out of reach (%s: %s); the site runs on what it has", type(exc).__name__, exc)
        self.hub_ok = ok

    def _forget_acknowledged(self, acked: dict[str, list[str]]) -> None:
        for obj, keys in acked.items():
            pending = self.state.rollbacks.get(obj, [])
            done = [r for r in pending if r.key in keys]
            if not done:
                continue
            self.state.rollbacks[obj] = [r for r in pending if r.key not in keys]
            reverted = self.state.reverted.get(obj, {})
            for rollback in done:
                reverted.pop(rollback.from_revision, None)
            log.info("the hub recorded %d rollback(s) of %s done on this site", len(done), obj)

    # --- site side

    def _assigned(self) -> list[tuple[pull.Assignment, plan.Assigned]]:
        out = []
        for text in self.state.assignments.values():
            a = pull.Assignment.from_json(text)
            out.append((a, plan.Assigned(a.object_name, a.deployment_namespace, a.deployment, a.revision,
                                         a.last_known_good, a.rollback,
                                         a.terms.schedule if a.terms is not None else None)))
        return out

    async def _converge(self, remove_unassigned: bool) -> None:
        keep: set[str] = set()
        for assignment, assigned in self._assigned():
            want = plan.to_run(assigned, self.state.reverted.get(assignment.object_name, {}))
            keep |= {artifact_of(r, assignment.variant_of(r)).digest for r in (want, assignment.last_known_good)
                     if r is not None and artifact_of(r, assignment.variant_of(r)).digest}
            running = self.state.running.get(assignment.object_name)
            if running is None or running.revision.revision != want.revision or assignment.object_name in self.drifted:
                await self._run(assignment, want)
        if remove_unassigned:
            for obj in [o for o in self.state.running if o not in self.state.assignments]:
                running = self.state.running[obj]
                owner = workloads.RuntimeOwner(*running.owner) if running.owner[2] else None
                try:
                    left = await workloads.remove(self.site, running.namespace, obj, owner)
                    if left:
                        log.warning("%s: %s belong to another owner; left alone", obj, ", ".join(left))
                except workloads.Unreachable as exc:
                    log.warning("cannot remove %s: %s", obj, exc)
                    continue
                log.info("removed %s (revision %s): no longer assigned", obj, running.revision.revision)
                del self.state.running[obj]
            keep |= {r.revision.digest for r in self.state.running.values() if r.revision.digest}
            await asyncio.to_thread(cache.prune, self.config.cache_dir / "models", keep)

    async def _prefetch(self) -> None:
        """Every model the assignments name (to run, and to fall back on) into the cache."""
        root = self.config.cache_dir / "models"
        wanted = {}
        for assignment, assigned in self._assigned():
            # What the site will run (not a revision it reverted from: _converge prunes that one, and
            # fetching it again would only fail while the WAN is down), and what it falls back on.
            run = plan.to_run(assigned, self.state.reverted.get(assignment.object_name, {}))
            for revision in (run, assignment.last_known_good):
                if revision is None:
                    continue
                artifact = artifact_of(revision, assignment.variant_of(revision))
                if artifact.digest and cache.cached(root, artifact) is None:
                    wanted[artifact.digest] = artifact
        for revision in wanted.values():
            try:
                await asyncio.to_thread(cache.ensure, root, revision, None, self.config.registry_mirrors)
                log.info("cached %s (revision %s)", revision.digest, revision.revision)
            except cache.CacheMiss as exc:
                log.warning("%s", exc)

    async def _run(self, assignment: pull.Assignment, revision: RevisionRef) -> bool:
        """Applies a cached revision on the site (never fetches: a rollback must not wait on the WAN)."""
        root = self.config.cache_dir / "models"
        variant = assignment.variant_of(revision)
        found = cache.cached(root, artifact_of(revision, variant))
        if found is None:
            log.warning("%s cannot run revision %s yet: its model is not in the site's cache",
                        assignment.object_name, revision.revision)
            return False
        relative = str(found.relative_to(root))
        objects = site_objects(assignment.deployment_namespace, assignment.deployment, revision,
                               Target(self.config.cluster, assignment.target_namespace), assignment.requirements,
                               f"{self.config.cache_host_dir}/models", relative, variant=variant,
                               owner_uid=assignment.owner_uid, cache_claim=self.config.cache_claim,
                               node=self.config.node)
        try:
            await workloads.apply(self.site, assignment.target_namespace, objects,
                                  pod_security=assignment.pod_security)
        except (workloads.Unreachable, workloads.OwnedByAnother) as exc:
            log.warning("cannot apply %s on the site: %s", assignment.object_name, exc)
            return False
        # Kept with the artifact it runs (the variant's, if any), so the cache keeps that file.
        self.state.running[assignment.object_name] = site_state.Running(
            artifact_of(revision, variant), time.time(), assignment.target_namespace,
            (assignment.deployment_namespace, assignment.deployment, assignment.owner_uid))
        self.drifted.discard(assignment.object_name)
        log.info("%s runs revision %s (%s)", assignment.object_name, revision.revision, revision.version)
        return True

    async def _observe(self) -> dict[str, WorkloadReport]:
        if self.cycles % FACTS_EVERY == 1 or self.facts is None:
            try:
                self.facts = pull.facts_json(await probe(self.site, self.config.hub_timeout_s), self.config.cache)
            except Exception as exc:  # noqa: BLE001 - the facts are refreshed next time
                log.warning("cannot probe the site's own cluster: %s", exc)
        reports = {}
        for assignment, _ in self._assigned():
            obj = assignment.object_name
            running = self.state.running.get(obj)
            rollbacks = tuple(self.state.rollbacks.get(obj, []))
            owner = workloads.RuntimeOwner(assignment.deployment_namespace, assignment.deployment,
                                           assignment.owner_uid) if assignment.owner_uid else None
            try:
                seen = await workloads.observe(self.site, assignment.target_namespace, obj, owner)
            except workloads.Unreachable as exc:
                reports[obj] = WorkloadReport(revision=running.revision.revision if running else None,
                                              message=f"the site's API server: {exc}",
                                              since=running.since if running else None,
                                              assigned=assignment.revision.revision, rollbacks=rollbacks)
                continue
            if running is not None and (not seen.exists or seen.revision != running.revision.revision):
                self.drifted.add(obj)
            reports[obj] = WorkloadReport(
                revision=seen.revision, exists=seen.exists, ready=seen.ready, ready_replicas=seen.ready_replicas,
                replicas=seen.replicas, message=seen.message,
                since=running.since if running and running.revision.revision == seen.revision else None,
                assigned=assignment.revision.revision, rollbacks=rollbacks, owner_uid=assignment.owner_uid or None,
                **self._site_terms_report(assignment))
        return reports

    def _save(self) -> None:
        site_state.save(self.state_file, self.state)

    # --- site alerts

    async def on_alert(self, name: str, labels: dict[str, str], fingerprint: str, starts_at: str,
                       received_at: float) -> str:
        """Reverts here on a matching firing alert; returns what was done, for the log."""
        async with self.lock:
            pairs = self._assigned()
            running = {obj: r.revision for obj, r in self.state.running.items()}
            revert, why = plan.revert_for(labels, self.config.cluster, [p for _, p in pairs], running)
            if revert is None:
                return why
            # spec.maintenance.rollbacks: RespectSchedule: held until the schedule allows it.
            gate, held_why = plan.admit(revert, [p for _, p in pairs], self.state.held,
                                        dt.datetime.now(dt.timezone.utc))
            if not gate.allowed:
                if revert.object_name not in self.state.held:
                    self.state.held[revert.object_name] = hold(
                        name, labels, fingerprint, starts_at, received_at, revert.from_revision, revert.to.revision,
                        gate, time.time())
                    self._save()
                self.wake.set()         # report the hold now if the hub can be reached
                log.warning("%s", held_why)
                return held_why
            assignment = next(a for a, p in pairs if p.object_name == revert.object_name)
            if not await self._run(assignment, revert.to):
                return f"could not revert {revert.object_name}: the known-good model is not cached"
            reverted_at = self.state.running[revert.object_name].since
            self._record_revert(revert.object_name, revert.from_revision, revert.to.revision, name, labels,
                                fingerprint, starts_at, received_at, reverted_at)
            self._save()
        self.wake.set()         # report it now if the hub can be reached
        log.warning("%s: rolled back on the site (alert received %s, reverted in %d ms)", why,
                    received(received_at), int((reverted_at - received_at) * 1000))
        return why

    def _record_revert(self, obj: str, from_revision: str, to_revision: str, alert: str, labels: dict[str, str],
                       fingerprint: str, starts_at: str, received_at: float, reverted_at: float) -> None:
        self.state.reverted.setdefault(obj, {})[from_revision] = to_revision
        record = SiteRollback(alert=alert, labels=dict(labels), fingerprint=fingerprint, starts_at=starts_at,
                              received_at=received_at, from_revision=from_revision, to_revision=to_revision,
                              reverted_at=reverted_at)
        self.state.rollbacks[obj] = list(add_rollback(tuple(self.state.rollbacks.get(obj, [])), record))

    # --- reverts the schedule holds (spec.maintenance.rollbacks: RespectSchedule)

    async def _release_held(self) -> None:
        """Each held revert: carried out once the schedule allows it (the alert's own receipt time
        stays its date), dropped when it no longer means anything, else held with a fresh reason."""
        pairs = {p.object_name: (a, p) for a, p in self._assigned()}
        now = dt.datetime.now(dt.timezone.utc)
        for obj, held in list(self.state.held.items()):
            assignment, assigned = pairs.get(obj, (None, None))
            running = self.state.running.get(obj)
            step = plan.release(held, assigned, running.revision if running else None, now)
            if step.action == "drop":
                del self.state.held[obj]
                log.info("dropped %s", step.why)
            elif step.action == "hold":
                self.state.held[obj] = step.held
            elif await self._run(assignment, step.to):
                del self.state.held[obj]
                reverted_at = self.state.running[obj].since
                self._record_revert(obj, held.from_revision, held.to_revision, held.alert, held.labels,
                                    held.fingerprint, held.starts_at, held.received_at, reverted_at)
                log.warning("%s: rolled back on the site (alert received %s, held %d s by the schedule)", step.why,
                            received(held.received_at), int(reverted_at - held.since))

    # --- metric checks measured on the site (domain.site_checks)

    async def _measure_checks(self) -> None:
        """Sends each due check of the assignments' terms to the site's Prometheus (all at once,
        each with the hub deadline); keeps the newest result per check."""
        now = time.time()
        jobs = []
        for assignment, _ in self._assigned():
            terms = assignment.terms
            wanted = terms.checks if terms is not None else ()
            obj = assignment.object_name
            kept = latest(self.check_results.get(obj, ()), wanted)
            self.check_results[obj] = kept
            url = self.config.prometheus_url or (terms.prometheus_url if terms is not None else None)
            for check in wanted:
                last = next((r for r in kept if r.name == check.name and r.promql == check.promql), None)
                if due_on_site(check, last, now):
                    jobs.append((obj, check, url))
        for obj in [o for o in self.check_results if o not in self.state.assignments]:
            del self.check_results[obj]
        if not jobs:
            return
        if self.prometheus is None:
            self.prometheus = httpx.AsyncClient(trust_env=False)
        results = await asyncio.gather(*(site_checks.measure(self.prometheus, url, check, self.config.hub_timeout_s)
                                         for _, check, url in jobs))
        for (obj, _, _), result in zip(jobs, results):
            mine = self.state.assignments.get(obj)
            terms = pull.Assignment.from_json(mine).terms if mine is not None else None
            if terms is not None:       # else: unassigned, or its checks withdrawn, meanwhile
                self.check_results[obj] = latest((*self.check_results.get(obj, ()), result), terms.checks)

    def _site_terms_report(self, assignment: pull.Assignment) -> dict:
        """The report's part about the terms: the site's check results, its held revert, and the
        digest of the terms it holds (the hub rewrites them when they differ)."""
        held = self.state.held.get(assignment.object_name)
        return {"checks": self.check_results.get(assignment.object_name, ()), "held": (held,) if held else (),
                "terms": assignment.terms.digest if assignment.terms is not None else None}

    async def close(self) -> None:
        if self.prometheus is not None:
            await self.prometheus.aclose()
