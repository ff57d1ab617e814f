import datetime as dt

from edgeline.api.conditions import get_condition, set_condition

T0 = dt.datetime(2026, 11, 25, 10, 0, tzinfo=dt.timezone.utc)
T1 = T0 + dt.timedelta(minutes=5)


def test_transition_time_moves_only_when_the_status_changes():
    conditions = set_condition([], "Ready", "False", "Validating", "busy", generation=1, now=T0)
    same = set_condition(conditions, "Ready", "False", "FetchTimeout", "stalled", generation=1, now=T1)
    assert get_condition(same, "Ready")["lastTransitionTime"] == "2026-11-25T10:00:00Z"
    assert get_condition(same, "Ready")["reason"] == "FetchTimeout"
    flipped = set_condition(same, "Ready", "True", "Validated", "ok", generation=2, now=T1)
    ready = get_condition(flipped, "Ready")
    assert ready["lastTransitionTime"] == "2026-11-25T10:05:00Z" and ready["observedGeneration"] == 2


def test_other_conditions_are_kept():
    conditions = set_condition([], "Reachable", "True", "ProbeSucceeded", "", generation=1, now=T0)
    conditions = set_condition(conditions, "Ready", "True", "ClusterReady", "", generation=1, now=T0)
    assert [c["type"] for c in conditions] == ["Reachable", "Ready"]
