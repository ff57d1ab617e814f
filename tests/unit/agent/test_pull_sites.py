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
