"""The hub side of a pull site refuses, with a reason, what Pod Security would refuse on the site."""

import asyncio

import pytest

from edgeline.api.edgedeployment import EdgeDeployment, RevisionRef
from edgeline.clusters.workloads import RuntimeOwner
from edgeline.controllers import pull_sites
from edgeline.controllers.indexes import ClusterEntry, KubeconfigRef
from edgeline.domain.placement import ClusterFacts
from edgeline.domain.rollout import Apply
from edgeline.domain.site_cache import CLAIM, SiteCache
from edgeline.domain.tenancy import TenancyFacts
from tests.helpers.manifests import edge_deployment


def _entry(level: str) -> ClusterEntry:
    return ClusterEntry(facts=ClusterFacts("line-7", tenancy=TenancyFacts(declared=True, pod_security=level)),
                        secret=KubeconfigRef(None, "kubeconfig"), namespace="edge", stale_after=60, mode="pull")


def _apply(entry: ClusterEntry):
    ed = EdgeDeployment.model_validate(edge_deployment("factory", {"line": "7"}))
    return asyncio.run(pull_sites.apply(entry, Apply("line-7", RevisionRef(revision="r1")),
                                        RuntimeOwner("factory", "detector", "uid-1"), ed, None, {}))


def _site_has(monkeypatch, cache: SiteCache) -> list:
    published = []

    async def reported(cluster):
        return cache

    async def publish(hub, cluster, assignment):
        published.append(assignment)

    monkeypatch.setattr(pull_sites, "site_cache", reported)
    monkeypatch.setattr(pull_sites, "hub_client", lambda: None)
    monkeypatch.setattr(pull_sites.pull, "publish", publish)
    return published


def test_a_pull_site_below_privileged_gets_no_assignment_and_says_why(monkeypatch):
    published = _site_has(monkeypatch, SiteCache())         # a hostPath cache
    outcome = _apply(_entry("baseline"))
    assert outcome.error.startswith(pull_sites.POD_SECURITY_TOO_STRICT)
    assert "podSecurity baseline" in outcome.error and outcome.revision == "r1"
    assert published == []


@pytest.mark.parametrize("level", ["restricted", "baseline", "privileged"])
def test_a_pull_site_with_its_cache_on_a_claim_gets_its_assignment_at_any_level(monkeypatch, level):
    published = _site_has(monkeypatch, SiteCache(CLAIM, "models", "node-1"))
    outcome = _apply(_entry(level))
    assert outcome.error is None
    assert [a.pod_security for a in published] == [level]


def _terms_entry(maintenance=None, prometheus_url=None):
    return ClusterEntry(facts=ClusterFacts("line-7"), secret=KubeconfigRef(None, "kubeconfig"), namespace="edge",
                        stale_after=60, mode="pull", maintenance=maintenance, prometheus_url=prometheus_url)


def test_a_pull_site_gets_its_waves_checks_its_prometheus_and_its_rollback_schedule():
    from edgeline.api.edgedeployment import EdgeDeploymentStatus
    from edgeline.domain.analysis import Context, resolve
    from edgeline.domain.waves import WavePlan
    from edgeline.api.analysis import MetricCheck

    checks = resolve([MetricCheck.model_validate({"name": "errors", "query": 'err{cluster="{{cluster}}"}',
                                                  "condition": "result < 1"})], {})
    status = EdgeDeploymentStatus.model_validate({"rollout": {"revision": "r2", "reason": "Update",
                                                              "target": {"revision": "r2"}}})
    waves = [WavePlan("pilot", ("line-7",), 0)]
    maintenance = {"windows": [{"schedule": "0 2 * * *", "durationMinutes": 60}], "rollbacks": "RespectSchedule"}
    terms = pull_sites.terms_for(_terms_entry(maintenance, "http://prometheus.line-7:9090"), "line-7", checks, waves,
                                 status, Context("detector", "factory"))
    assert [c.promql for c in terms.checks] == ['err{cluster="line-7"}']
    assert terms.prometheus_url == "http://prometheus.line-7:9090"
    assert terms.schedule is not None and terms.schedule.windows[0].schedule == "0 2 * * *"
    immediate = pull_sites.terms_for(_terms_entry({**maintenance, "rollbacks": "Immediate"}), "line-7", checks, waves,
                                     status, Context("detector", "factory"))
    assert immediate.schedule is None and immediate.prometheus_url is None
