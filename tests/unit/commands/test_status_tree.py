"""`edgeline status`: the tree a person reads, built from an EdgeDeployment's status alone."""

import datetime as dt
import json

import yaml

from edgeline.commands.status import age, format_tree, render, status_summary

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)


def _deployment(**status):
    return {
        "metadata": {"name": "detector", "namespace": "factory", "annotations": {}},
        "spec": {"rollout": {"waves": [{"name": "pilot"}]}},
        "status": {
            "phase": "Progressing", "ready": "1/3", "approval": "Approved",
            "desiredRevision": {"revision": "bbbbbbbbbb", "model": "defect-detector", "version": "2.0.0"},
            "currentRevision": {"revision": "aaaaaaaaaa", "model": "defect-detector", "version": "1.0.0"},
            "rollout": {"waveName": "rest"},
            "clusters": [
                {"name": "line-1", "wave": "pilot", "revision": "bbbbbbbbbb", "phase": "Ready",
                 "readyReplicas": 2, "replicas": 2, "lastObserved": "2026-05-01T11:59:57Z", "stale": False},
                {"name": "line-2", "wave": "rest", "revision": "bbbbbbbbbb", "phase": "Progressing",
                 "readyReplicas": 1, "replicas": 2, "lastObserved": "2026-05-01T11:59:58Z", "stale": False,
                 "message": "1 of 2 pods ready"},
                {"name": "brno", "wave": "rest", "revision": "aaaaaaaaaa", "phase": "Ready",
                 "readyReplicas": 2, "replicas": 2, "lastObserved": "2026-05-01T11:51:00Z", "stale": True},
            ],
            "excluded": [{"name": "gpu-box", "reason": "ArchitectureNotAllowed", "message": "arm"}],
            **status,
        },
    }


def test_the_tree_goes_deployment_then_waves_in_rollout_order_then_clusters():
    text = format_tree(status_summary(_deployment(), NOW))
    assert text.splitlines() == [
        "factory/detector  Progressing  1/3 ready  revision bbbbbbbbbb (defect-detector 2.0.0)",
        "├── running before: aaaaaaaaaa (defect-detector 1.0.0)",
        "├── approval: Approved",
        "├── wave pilot  1/1 ready",
        "│   └── line-1  Ready  bbbbbbbbbb  2/2 pods  seen 3s ago",
        "├── wave rest  0/2 ready  <- current",
        "│   ├── line-2  Progressing  bbbbbbbbbb  1/2 pods  seen 2s ago  (1 of 2 pods ready)",
        "│   └── brno  Ready  aaaaaaaaaa (outdated)  2/2 pods  seen 9m ago  STALE",
        "└── excluded: gpu-box (ArchitectureNotAllowed: arm)",
    ]


def test_a_settled_deployment_has_no_current_wave_and_no_outdated_cluster():
    obj = _deployment(phase="Healthy", ready="1/1", currentRevision={"revision": "bbbbbbbbbb"},
                      clusters=[{"name": "line-1", "wave": "pilot", "revision": "bbbbbbbbbb", "phase": "Ready",
                                 "readyReplicas": 1, "replicas": 1}], excluded=[])
    summary = status_summary(obj, NOW)
    assert [w["current"] for w in summary["waves"]] == [False]
    text = format_tree(summary)
    assert "outdated" not in text and "running before" not in text and "<- current" not in text
    assert text.splitlines()[-1] == "    └── line-1  Ready  bbbbbbbbbb  1/1 pods  seen - ago"


def test_a_deployment_waiting_for_approval_says_what_and_for_whom():
    obj = _deployment(phase="AwaitingApproval", approval="Pending 1/2", clusters=[], excluded=[],
                      pendingApproval={"revision": {"revision": "bbbbbbbbbb"}, "needed": 2,
                                       "requestedBy": "editor", "approvals": [{"user": "approver-a"}]},
                      conditions=[{"type": "Ready", "status": "False", "message": "waiting for 2 approvers"}])
    text = format_tree(status_summary(obj, NOW))
    assert "waiting for approval of bbbbbbbbbb: 1/2 (requested by editor)" in text
    assert "why: waiting for 2 approvers" in text
    assert "wave pilot  0/0 ready" in text   # the named wave is shown even before it has clusters


def test_clusters_without_a_wave_belong_to_rest_and_pins_are_listed():
    obj = _deployment(clusters=[{"name": "x", "phase": "Ready", "revision": "bbbbbbbbbb"}], excluded=[],
                      pinned=[{"cluster": "x", "revision": {"revision": "aaaaaaaaaa"}, "reason": "HighErrorRate"}])
    summary = status_summary(obj, NOW)
    assert [w["name"] for w in summary["waves"]] == ["pilot", "rest"]
    assert "pinned: x stays on aaaaaaaaaa (HighErrorRate)" in format_tree(summary)


def test_an_object_without_status_still_prints():
    text = format_tree(status_summary({"metadata": {"name": "d", "namespace": "n"}, "spec": {}}, NOW))
    assert text.splitlines()[0] == "n/d  Pending  0/0 ready  revision none"


def test_json_and_yaml_carry_the_same_tree():
    summary = status_summary(_deployment(), NOW)
    assert json.loads(render(summary, "json")) == summary == yaml.safe_load(render(summary, "yaml"))
    brno = summary["waves"][1]["clusters"][1]
    assert brno == {"name": "brno", "phase": "Ready", "revision": "aaaaaaaaaa", "replicas": "2/2",
                    "lastObserved": "2026-05-01T11:51:00Z", "observedAgo": "9m", "stale": True,
                    "outdated": True, "message": None, "variant": None, "variantReason": None}


def test_age_in_the_largest_whole_unit():
    assert [age(t, NOW) for t in ("2026-05-01T12:00:00Z", "2026-05-01T11:59:01Z", "2026-05-01T11:00:00Z",
                                  "2026-04-28T12:00:00Z", None, "not a time", "2026-05-01T12:00:10Z")] == \
        ["0s", "59s", "1h", "3d", "-", "-", "0s"]


def test_a_cluster_that_waits_for_its_window_says_so_and_until_when():
    obj = _deployment()
    obj["status"]["clusters"][0].update({"phase": "Pending", "waitingFor": "WaitingForWindow",
                                         "waitingUntil": "2026-05-04T04:45:00Z",
                                         "message": "WaitingForWindow: waits for its maintenance window, which "
                                                    "opens at 2026-05-04T04:45:00Z"})
    summary = status_summary(obj, NOW)
    waiting = summary["waves"][0]["clusters"][0]
    assert (waiting["waitingFor"], waiting["waitingUntil"]) == ("WaitingForWindow", "2026-05-04T04:45:00Z")
    assert "WaitingForWindow: waits for its maintenance window, which opens at 2026-05-04T04:45:00Z" in \
        format_tree(summary)


def test_the_checks_of_the_analysed_wave_sit_under_it_with_their_last_values():
    analysis = {"revision": "bbbbbbbbbb", "wave": "pilot", "startedAt": "2026-05-01T11:58:00Z", "phase": "Failed",
                "checks": [
                    {"name": "error-rate", "cluster": "line-1", "phase": "Failed", "reason": "CheckFailed",
                     "message": "0.4 does not satisfy result < 0.05", "successes": 1, "failures": 1, "count": 3,
                     "failureLimit": 0, "lastValue": "0.4", "lastMeasuredAt": "2026-05-01T11:59:50Z"},
                    {"name": "latency", "cluster": "line-1", "phase": "Running", "reason": "CheckMissingData",
                     "message": "inconclusive: the query returned no data", "successes": 0, "failures": 0,
                     "inconclusive": 2, "count": 3, "failureLimit": 1, "lastMeasuredAt": "2026-05-01T11:59:40Z"}]}
    summary = status_summary(_deployment(analysis=analysis), NOW)
    pilot, rest = summary["waves"]
    assert [c["name"] for c in pilot["checks"]] == ["error-rate", "latency"] and rest["checks"] == []
    lines = format_tree(summary).splitlines()
    assert lines[4:7] == [
        "│   ├── line-1  Ready  bbbbbbbbbb  2/2 pods  seen 3s ago",
        "│   ├── check error-rate on line-1  Failed  1/3 ok, 1 failed (0 tolerated)  last 0.4 10s ago  "
        "(CheckFailed: 0.4 does not satisfy result < 0.05)",
        "│   └── check latency on line-1  Running  0/3 ok, 0 failed (1 tolerated), 2 without data  last no data "
        "20s ago  (CheckMissingData: inconclusive: the query returned no data)",
    ]
    assert json.loads(render(summary, "json"))["waves"][0]["checks"][0]["lastValue"] == "0.4"
