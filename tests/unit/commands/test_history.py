"""`edgeline history`: revisions with approvals and outcomes, from status alone."""

import datetime as dt

from edgeline.commands.history import format_history, history_rows, rollback_rows

NOW = dt.datetime(2026, 5, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
STATUS = {
    "currentRevision": {"revision": "aaaaaaaaaa"},
    "badRevisions": ["bbbbbbbbbb"],
    "pendingApproval": {"revision": {"revision": "cccccccccc", "model": "det", "version": "3.0.0"},
                        "approvals": [{"user": "approver-a", "revision": "cccccccccc", "at": "x"}], "needed": 2},
    "history": [
        {"revision": {"revision": "bbbbbbbbbb", "model": "det", "version": "2.0.0"}, "outcome": "RolledBack",
         "deployedAt": "2026-05-01T11:00:00Z", "approvals": [{"user": "approver-a"}, {"user": "approver-b"}]},
        {"revision": {"revision": "aaaaaaaaaa", "model": "det", "version": "1.0.0"}, "outcome": "KnownGood",
         "deployedAt": "2026-04-30T12:00:00Z", "approvals": []},
    ],
    "rollbacks": [{"fromRevision": "bbbbbbbbbb", "toRevision": "aaaaaaaaaa", "mode": "Automatic",
                   "alert": "EdgelineRuntimeErrors", "clusters": ["line-1", "line-2"],
                   "appliedAt": "2026-05-01T11:30:00Z", "latencyMs": 420}],
}


def test_rows_pending_first_then_history_newest_first():
    rows = history_rows(STATUS)
    assert [(r["revision"], r["outcome"], r["approvedBy"], r["current"], r["bad"]) for r in rows] == [
        ("cccccccccc", "AwaitingApproval", ["approver-a"], False, False),
        ("bbbbbbbbbb", "RolledBack", ["approver-a", "approver-b"], False, True),
        ("aaaaaaaaaa", "KnownGood", [], True, False),
    ]


def test_the_table_marks_what_runs_and_lists_rollbacks():
    text = format_history(history_rows(STATUS), rollback_rows(STATUS), NOW)
    lines = text.splitlines()
    assert lines[0].split() == ["REVISION", "MODEL", "VERSION", "OUTCOME", "DEPLOYED", "APPROVED", "BY"]
    assert lines[1].split() == ["cccccccccc", "det", "3.0.0", "AwaitingApproval", "-", "approver-a"]
    assert lines[2].split() == ["bbbbbbbbbb", "det", "2.0.0", "RolledBack", "1h", "ago", "approver-a,", "approver-b"]
    assert lines[3].split() == ["*aaaaaaaaaa", "det", "1.0.0", "KnownGood", "1d", "ago", "-"]
    assert "bbbbbbbbbb -> aaaaaaaaaa   Automatic   line-1, line-2   30m ago   EdgelineRuntimeErrors" in text


def test_no_history_yet():
    assert format_history([], [], NOW).startswith("no revisions yet")
