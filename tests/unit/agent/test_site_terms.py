"""The terms a pull site gets besides its revision (domain.site_terms): how they travel in the
assignment ConfigMap, survive the agent's state file, and come back in its report."""

import datetime as dt
import json

from edgeline.agent import state
from edgeline.api.edgedeployment import RevisionRef
from edgeline.clusters import pull
from edgeline.domain import windows
from edgeline.domain.site_checks import SiteCheck, evaluate
from edgeline.domain.site_reports import WorkloadReport
from edgeline.domain.site_schedule import SiteSchedule, hold, rollback_gate
from edgeline.domain.site_terms import SiteTerms, stale

REV = RevisionRef(revision="r1", version="1.0", digest="sha256:" + "c" * 64, uri="https://models.example/m.onnx")
CHECK = SiteCheck("errors", 'err{cluster="line-7"}', "result < 0.05", 30)
SCHEDULE = SiteSchedule((windows.Window("0 2 * * *", 60, "UTC"),))
TERMS = SiteTerms((CHECK,), "http://prometheus.monitoring:9090", SCHEDULE)
DAY = dt.datetime(2026, 12, 6, 10, 0, tzinfo=dt.timezone.utc)


def test_the_terms_travel_under_their_own_key_and_the_site_reads_them_with_the_assignment():
    a = pull.Assignment("ns", "d", "ns-d", "edgeline-workloads", REV, terms=TERMS)
    cm = pull.assignment_configmap("line-7", a)
    assert "terms" not in json.loads(cm["data"][pull.ASSIGNMENT_KEY])       # rewritten alone when they change
    assert SiteTerms.load(json.loads(cm["data"][pull.TERMS_KEY])) == TERMS
    kept = pull.with_terms(cm["data"][pull.ASSIGNMENT_KEY], cm["data"][pull.TERMS_KEY])
    assert pull.Assignment.from_json(kept) == a
    # An assignment published before terms existed reads as none.
    assert pull.Assignment.from_json(pull.with_terms(cm["data"][pull.ASSIGNMENT_KEY], None)).terms is None


def test_the_hub_rewrites_the_terms_only_when_the_site_holds_other_ones():
    assert not stale(TERMS.digest, TERMS)
    assert stale(None, TERMS)
    assert stale(TERMS.digest, SiteTerms((CHECK,), TERMS.prometheus_url, None))     # switched to Immediate
    assert stale(TERMS.digest, SiteTerms((), TERMS.prometheus_url, SCHEDULE))       # the checks ended


def test_a_held_revert_survives_a_restart_of_the_agent(tmp_path):
    held = hold("DefectRateHigh", {"severity": "critical"}, "f1", "s", DAY.timestamp(), "bad", "r1",
                rollback_gate(SCHEDULE, DAY), DAY.timestamp())
    kept = state.SiteState(assignments={"o": "{}"}, held={"o": held})
    state.save(tmp_path / "state.json", kept)
    assert state.load(tmp_path / "state.json") == kept
    # A state file written before holds existed still loads.
    (tmp_path / "old.json").write_text(json.dumps({"assignments": {"o": "{}"}}))
    assert state.load(tmp_path / "old.json").held == {}


def test_the_report_carries_the_check_results_the_hold_and_the_terms_digest():
    held = hold("DefectRateHigh", {}, "f1", "s", DAY.timestamp(), "bad", "r1", rollback_gate(SCHEDULE, DAY),
                DAY.timestamp())
    report = WorkloadReport(revision="bad", exists=True, checks=(evaluate(CHECK, (0.01,), None, DAY.timestamp()),),
                            held=(held,), terms=TERMS.digest)
    back = WorkloadReport.from_json(report.to_json())
    assert back == report
    assert back.held[0].reason == windows.WAITING_FOR_WINDOW and "opens at" in back.held[0].message
    # A report of an agent that knows nothing of terms still reads.
    assert WorkloadReport.from_json(json.dumps({"revision": "r1"})).checks == ()
