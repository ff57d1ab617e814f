from edgeline.api.common import LabelSelector
from edgeline.api.edgedeployment import Placement, Rollout
from edgeline.domain.placement import ClusterFacts, place
from edgeline.domain.selectors import matches
from edgeline.domain.waves import plan_waves


def _cluster(name, site, arch="amd64", gpus=0, memory="16Gi", tier="edge", line="l1"):
    return ClusterFacts(name=name, labels={"site": site, "line": line}, tier=tier, architectures=(arch,),
                        gpus=gpus, memory=memory, reachable=True, probed=True)


def test_selector_expressions_behave_like_kubernetes():
    sel = LabelSelector.model_validate({"matchExpressions": [
        {"key": "site", "operator": "In", "values": ["a", "b"]},
        {"key": "broken", "operator": "DoesNotExist"}]})
    assert matches(sel, {"site": "a"})
    assert not matches(sel, {"site": "c"})
    assert not matches(sel, {"site": "a", "broken": "yes"})
    assert not matches(sel, {})


def test_clusters_that_match_labels_but_not_requirements_are_listed_with_the_reason():
    placement = Placement.model_validate({
        "clusterSelector": {"matchLabels": {"site": "hamburg"}},
        "requirements": {"architectures": ["arm64"], "minMemory": "8Gi"}})
    result = place(placement, [_cluster("h1", "hamburg", arch="arm64"), _cluster("h2", "hamburg"),
                               _cluster("h3", "hamburg", arch="arm64", memory="4Gi"), _cluster("b1", "brno")])
    assert result.selected == ("h1",)
    assert {(e.name, e.reason) for e in result.excluded} == {("h2", "ArchitectureMismatch"),
                                                             ("h3", "NotEnoughMemory")}


def test_gpu_requirement_and_unprobed_clusters():
    placement = Placement.model_validate({"clusterSelector": {"matchLabels": {"site": "x"}},
                                          "requirements": {"gpu": True}})
    unprobed = ClusterFacts(name="new", labels={"site": "x"})
    result = place(placement, [_cluster("gpu", "x", gpus=1), _cluster("cpu", "x"), unprobed])
    assert result.selected == ("gpu",)
    assert {e.name: e.reason for e in result.excluded} == {"cpu": "NoGPU", "new": "NotProbedYet"}


def test_selector_waves_take_each_cluster_once_and_the_rest_go_last():
    rollout = Rollout.model_validate({"waves": [
        {"name": "pilot", "selector": {"matchLabels": {"line": "l1"}}},
        {"name": "hamburg", "selector": {"matchLabels": {"site": "hamburg"}}}]})
    labels = {"h1": {"site": "hamburg", "line": "l1"}, "h2": {"site": "hamburg", "line": "l2"},
              "b1": {"site": "brno", "line": "l1"}, "b2": {"site": "brno", "line": "l2"}}
    waves = plan_waves(rollout, list(labels), labels)
    assert [(w.name, w.clusters) for w in waves] == [("pilot", ("b1", "h1")), ("hamburg", ("h2",)),
                                                      ("rest", ("b2",))]


def test_percentage_waves_are_cumulative_and_round_up():
    rollout = Rollout.model_validate({"waves": [{"name": "a", "percentage": 10}, {"name": "b", "percentage": 50},
                                                {"name": "c", "percentage": 100}]})
    names = [f"c{i:02d}" for i in range(7)]
    waves = plan_waves(rollout, names, {})
    assert [len(w.clusters) for w in waves] == [1, 3, 3]
    assert sum((w.clusters for w in waves), ()) == tuple(names)


def test_no_waves_is_one_wave_with_everything():
    assert [w.name for w in plan_waves(Rollout(), ["a", "b"], {})] == ["all"]
