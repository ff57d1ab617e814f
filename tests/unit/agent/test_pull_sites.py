"""The hub side of a pull site refuses, with a reason, what Pod Security would refuse on the site."""

import asyncio

from edgeline.api.edgedeployment import EdgeDeployment, RevisionRef
from edgeline.clusters.workloads import RuntimeOwner
from edgeline.controllers import pull_sites
from edgeline.controllers.indexes import ClusterEntry, KubeconfigRef
from edgeline.domain.placement import ClusterFacts
from edgeline.domain.rollout import Apply
from edgeline.domain.tenancy import TenancyFacts
from tests.helpers.manifests import edge_deployment


def test_a_pull_site_below_privileged_gets_no_assignment_and_says_why():
    entry = ClusterEntry(facts=ClusterFacts("line-7", tenancy=TenancyFacts(declared=True, pod_security="baseline")),
                         secret=KubeconfigRef(None, "kubeconfig"), namespace="edge", stale_after=60, mode="pull")
    ed = EdgeDeployment.model_validate(edge_deployment("factory", {"line": "7"}))
    outcome = asyncio.run(pull_sites.apply(entry, Apply("line-7", RevisionRef(revision="r1")),
                                           RuntimeOwner("factory", "detector", "uid-1"), ed, None, {}))
    assert outcome.error.startswith(pull_sites.POD_SECURITY_TOO_STRICT)
    assert "podSecurity baseline" in outcome.error and outcome.revision == "r1"


def _entry(maintenance=None, prometheus_url=None):
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
    terms = pull_sites.terms_for(_entry(maintenance, "http://prometheus.line-7:9090"), "line-7", checks, waves,
                                 status, Context("detector", "factory"))
    assert [c.promql for c in terms.checks] == ['err{cluster="line-7"}']
    assert terms.prometheus_url == "http://prometheus.line-7:9090"
    assert terms.schedule is not None and terms.schedule.windows[0].schedule == "0 2 * * *"
    immediate = pull_sites.terms_for(_entry({**maintenance, "rollbacks": "Immediate"}), "line-7", checks, waves,
                                     status, Context("detector", "factory"))
    assert immediate.schedule is None and immediate.prometheus_url is None
