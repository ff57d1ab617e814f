"""A pull site measures its wave's metric checks on its own Prometheus, and holds its own
rollback while its maintenance window is closed (docs/edge-autonomy.md, "Metric checks on a pull
site" and "Site rollbacks that respect the schedule").

Given a hub and a pull site whose agent (the agent image, run by podman) lives in a network
namespace of its own (the fixtures of tests/e2e/test_edge_autonomy.py): the site also runs a real
Prometheus in that namespace, scraping a tiny exporter there whose value the test sets. The
EdgeCluster names that Prometheus by its address on the site; the hub publishes the checks with the
assignment, the agent queries them and reports, and the hub's rollout judges the reported results.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import urllib.request
import uuid
from pathlib import Path

import pytest

from edgeline.clusters.pull import ASSIGNMENT_PREFIX, REPORT, TERMS_KEY, site_namespace
from edgeline.devenv.monitoring import find_binaries
from edgeline.domain.site_terms import SiteTerms
from tests.e2e.conftest import wait_for
from tests.e2e.test_edge_autonomy import (AgentContainer, _post_alert, _site_revision, _status, join,  # noqa: F401
                                          models, pull_cluster, site_ca, site_identity, site_network)
from tests.helpers.manifests import edge_deployment, mlmodel

PROMETHEUS_PORT = 9090
EXPORTER_PORT = 9100
INTERVAL_S = 6          # the check's interval: the site measures about every 2 s
DEFECT_RATE = 'max(edgeline_site_defect_rate{cluster="{{cluster}}"})'


def _get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except OSError as exc:
        return 0, str(exc)


class SitePrometheus:
    """A real Prometheus in the site's network namespace, scraping every second an exporter there
    (a file served over HTTP, `set()` rewrites it): the site's own monitoring, reached on the
    site's address, which the hub does not query."""

    def __init__(self, site, root: Path, cluster: str):
        self.site, self.root, self.cluster = site, root, cluster
        self.procs: list[subprocess.Popen] = []

    @property
    def url(self) -> str:
        return f"http://{self.site.site_address}:{PROMETHEUS_PORT}"

    def set(self, value: float) -> None:
        exported = self.root / "exporter" / "metrics"
        exported.parent.mkdir(parents=True, exist_ok=True)
        temporary = exported.with_suffix(".tmp")
        temporary.write_text(f"# TYPE edgeline_site_defect_rate gauge\n"
                             f'edgeline_site_defect_rate{{cluster="{self.cluster}"}} {value}\n')
        temporary.replace(exported)

    def start(self, value: float) -> None:
        self.set(value)
        config = self.root / "prometheus.yml"
        config.write_text(json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "line", "static_configs": [
                {"targets": [f"{self.site.site_address}:{EXPORTER_PORT}"]}]}]}))
        prometheus = find_binaries().prometheus
        for argv, log in (
                (["python3", "-m", "http.server", str(EXPORTER_PORT), "--bind", self.site.site_address,
                  "--directory", str(self.root / "exporter")], "exporter.log"),
                ([str(prometheus), f"--config.file={config}", f"--storage.tsdb.path={self.root / 'data'}",
                  f"--web.listen-address={self.site.site_address}:{PROMETHEUS_PORT}"], "prometheus.log")):
            with (self.root / log).open("ab") as out:
                self.procs.append(subprocess.Popen(self.site.command(argv), stdout=out, stderr=subprocess.STDOUT))
        wait_for(lambda: self.value() is not None, timeout=60, interval=0.5,
                 what=lambda: f"the site's Prometheus holding the exporter's series "
                              f"({(self.root / 'prometheus.log').read_text(errors='replace')[-1500:]})")

    def value(self) -> float | None:
        code, body = _get(f"{self.url}/api/v1/query?query=edgeline_site_defect_rate")
        if code != 200:
            return None
        result = json.loads(body)["data"]["result"]
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


ROLLBACK = {"mode": "Automatic", "scope": "Cluster", "guardSeconds": 3600,
            "alertMatchers": [{"name": "severity", "value": "critical"}]}


@pytest.fixture
def pull_site(hub, edge_b, dev_env, operator, namespace, site_network, models, tmp_path):  # noqa: F811
    """A joined pull site with its agent running and its own Prometheus, and the models on the hub.
    Yields (cluster, tag, agent, prometheus, cluster manifest)."""
    tag = "s" + uuid.uuid4().hex[:5]
    cluster = f"{tag}-line-4"
    prometheus = SitePrometheus(site_network, tmp_path / "site-prometheus", cluster)
    manifest = pull_cluster(cluster, {"edgeline.io/fleet": tag})
    # The site's Prometheus as the site sees it (its own LAN address).
    manifest["spec"]["monitoring"] = {"prometheusUrl": prometheus.url}
    hub.apply(manifest)
    site_hub_config = tmp_path / "site-hub.kubeconfig"
    bootstrap = join(hub, dev_env, cluster, site_hub_config)
    site_config = site_identity(edge_b, dev_env, "edge-b", bootstrap, tmp_path / "site-agent.kubeconfig")
    agent = AgentContainer(site_network, cluster, site_hub_config, site_config, dev_env.state_dir / f"agent-{cluster}",
                           tmp_path / "agent.log")
    prometheus.start(0.01)
    agent.start()
    try:
        hub.kubectl("wait", f"edgecluster/{cluster}", "--for=jsonpath={.status.phase}=Ready", "--timeout=90s",
                    timeout=120)
        hub.apply([mlmodel(namespace, v, uri, digest) for v, (uri, digest) in models.items()])
        for version in models:
            hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                        "--timeout=90s", timeout=120)
        yield cluster, tag, agent, prometheus, manifest
    except BaseException:
        print("--- agent log\n" + agent.log_text()[-6000:])
        raise
    finally:
        agent.stop()
        prometheus.stop()
        hub.kubectl("delete", "edgedeployments", "--all", "-n", namespace, "--timeout=60s", check=False)
        hub.kubectl("delete", "edgecluster", cluster, "--wait=false", check=False)


def _report(hub, cluster: str) -> dict:
    """The site's report of its one deployment (the report ConfigMap on the hub), or {}."""
    found = hub.kubectl("get", "configmap", REPORT, "-n", site_namespace(cluster), "-o", "json", check=False)
    if found.returncode != 0:
        return {}
    data = json.loads(found.stdout).get("data") or {}
    return next((json.loads(v) for k, v in data.items() if not k.startswith(("ack.", "site."))), {})


def _terms(hub, cluster: str) -> SiteTerms | None:
    """The terms the hub published with the site's assignment."""
    found = hub.kubectl("get", "configmaps", "-n", site_namespace(cluster), "-o", "json")
    for cm in json.loads(found.stdout)["items"]:
        if cm["metadata"]["name"].startswith(ASSIGNMENT_PREFIX) and TERMS_KEY in (cm.get("data") or {}):
            return SiteTerms.load(json.loads(cm["data"][TERMS_KEY]))
    return None


def _settled(hub, namespace, cluster, version):
    def check():
        s = _status(hub, "edgedeployment", "detector", namespace)
        current = s.get("currentRevision") or {}
        row = next((c for c in s.get("clusters") or [] if c["name"] == cluster), {})
        return s if (current.get("version") == version and s.get("phase") == "Healthy"
                     and row.get("revision") == current.get("revision")) else None
    return check


def test_a_wave_on_a_pull_site_waits_for_the_checks_the_site_measures_and_rolls_back_on_a_failing_one(
        hub, edge_b, namespace, pull_site):
    cluster, tag, agent, prometheus, _ = pull_site
    check = {"name": "defect-rate", "query": DEFECT_RATE, "condition": "result < 0.05",
             "intervalSeconds": INTERVAL_S, "count": 2, "failureLimit": 0}

    def deployment(version):
        return edge_deployment(namespace, {"edgeline.io/fleet": tag}, version, rollback=ROLLBACK,
                               analysis={"checks": [check]})

    # Given a healthy line (0.01 defects): 1.0.0's wave holds until the site's two measurements passed.
    hub.apply(deployment("1.0.0"))
    running = wait_for(lambda: (s := _status(hub, "edgedeployment", "detector", namespace)).get("analysis") and
                       s["analysis"].get("phase") == "Running" and s, timeout=120,
                       what="the pull site's wave waiting for its checks")
    assert running["phase"] == "Progressing"
    # The site measures them: its report carries its results, with the value its Prometheus answered.
    site_results = wait_for(lambda: _report(hub, cluster).get("checks"), timeout=60,
                            what="the site reporting its check results")
    assert site_results[0]["values"] == [0.01] and site_results[0]["verdict"] == "Pass", site_results
    assert _terms(hub, cluster).checks[0].promql == f'max(edgeline_site_defect_rate{{cluster="{cluster}"}})'
    first = wait_for(_settled(hub, namespace, cluster, "1.0.0"), timeout=120, what="1.0.0 Healthy after its checks")
    [result] = first["analysis"]["checks"]
    assert (result["cluster"], result["phase"], result["reason"]) == (cluster, "Passed", "CheckPassed")
    assert result["lastValue"] == "0.01" and result["successes"] == 2
    assert result["query"] == f'max(edgeline_site_defect_rate{{cluster="{cluster}"}})'
    # Once the rollout is done, the hub withdraws the checks and the site stops measuring.
    wait_for(lambda: not _report(hub, cluster).get("checks"), timeout=60, what="the site measuring nothing more")
    good = first["currentRevision"]["revision"]

    # When the line's defect rate climbs and 2.0.0 rolls out, the site's check fails and the hub rolls back.
    prometheus.set(0.4)
    wait_for(lambda: prometheus.value() == 0.4, timeout=30, what="the site's Prometheus seeing 0.4")
    hub.apply(deployment("2.0.0"))
    alert = f"check defect-rate on {cluster}"
    def rolled_back():
        s = _status(hub, "edgedeployment", "detector", namespace)
        return s if any(r.get("alert") == alert for r in s.get("rollbacks") or []) else None

    rolled = wait_for(rolled_back, timeout=180, what="2.0.0 rolled back on the site's failing check")
    [failed] = rolled["analysis"]["checks"]
    assert (failed["phase"], failed["reason"]) == ("Failed", "CheckFailed"), failed
    assert "0.4 does not satisfy result < 0.05" in failed["message"]
    record = next(r for r in rolled["rollbacks"] if r.get("alert") == alert)
    assert record["toRevision"] == good and record["clusters"] == [cluster]
    assert rolled["analysis"]["revision"] in rolled.get("badRevisions", [])
    wait_for(lambda: _site_revision(edge_b, cluster) == good, timeout=60, what="the site back on 1.0.0")

    # And a site that stops reporting results is missing data, never a pass: with the exporter's series
    # gone, 3.0.0's check fails with CheckMissingData.
    prometheus.stop()
    hub.apply(deployment("3.0.0"))
    silent = wait_for(lambda: (s := _status(hub, "edgedeployment", "detector", namespace)).get("analysis") and
                      s["analysis"].get("revision") != rolled["analysis"]["revision"] and
                      s["analysis"].get("phase") == "Failed" and s, timeout=180,
                      what="3.0.0's check failing on missing data")
    [missing] = silent["analysis"]["checks"]
    assert missing["reason"] == "CheckMissingData", missing
    assert prometheus.url.split("//")[1] in missing["message"] or "no data" in missing["message"], missing


def _window(at: dt.datetime, minutes: int) -> dict:
    """A daily window opening at `at` (UTC) for `minutes`."""
    return {"schedule": f"{at.minute} {at.hour} * * *", "durationMinutes": minutes, "timeZone": "UTC"}


def test_a_site_rollback_under_respect_schedule_waits_for_the_window_and_happens_when_it_opens(
        hub, edge_b, namespace, pull_site, tmp_path):
    cluster, tag, agent, _, manifest = pull_site
    cafile = site_ca(edge_b, tmp_path / "site-ca.crt")       # the receiver is HTTPS, verified against the site CA

    def deployment(version):
        return edge_deployment(namespace, {"edgeline.io/fleet": tag}, version, rollback=ROLLBACK)

    hub.apply(deployment("1.0.0"))
    good = wait_for(_settled(hub, namespace, cluster, "1.0.0"), timeout=120,
                    what="1.0.0 Healthy")["currentRevision"]["revision"]
    hub.apply(deployment("2.0.0"))
    bad = wait_for(_settled(hub, namespace, cluster, "2.0.0"), timeout=120,
                   what="2.0.0 Healthy")["currentRevision"]["revision"]

    # Given the line's rollbacks respect its schedule, and its window is closed (it opens in 12 hours).
    now = dt.datetime.now(dt.timezone.utc)
    manifest["spec"]["maintenance"] = {"windows": [_window(now + dt.timedelta(hours=12), 30)],
                                       "rollbacks": "RespectSchedule"}
    hub.apply(manifest)
    wait_for(lambda: (t := _terms(hub, cluster)) is not None and t.schedule is not None and
             _report(hub, cluster).get("terms") == t.digest, timeout=60,
             what="the site holding the window definition")

    # When a site alert asks for a rollback, the site holds it and says why.
    code, text = _post_alert(agent.alerts_url, {"alertname": "DefectRateHigh", "severity": "critical",
                                                "edgeline_deployment": "detector", "namespace": namespace},
                             cafile=cafile)
    assert code == 200 and "holding the revert" in text and "WaitingForWindow" in text, text
    held = wait_for(lambda: (_report(hub, cluster).get("held") or [None])[0], timeout=30,
                    what="the site's report showing the held revert")
    assert (held["reason"], held["from_revision"], held["to_revision"]) == ("WaitingForWindow", bad, good)
    assert "waits for its maintenance window, which opens at" in held["message"]
    assert _site_revision(edge_b, cluster) == bad

    # A restart of the agent keeps the hold (the site's state file).
    agent.stop()
    log_mark = len(agent.log_text())
    agent.start()
    wait_for(lambda: "site alert receiver on" in agent.log_text()[log_mark:], timeout=60,
             what="the restarted agent's alert receiver")
    # The restarted agent knows the hold from its state file: Alertmanager's next delivery adds nothing.
    code, text = _post_alert(agent.alerts_url, {"alertname": "DefectRateHigh", "severity": "critical",
                                                "edgeline_deployment": "detector", "namespace": namespace},
                             cafile=cafile)
    assert code == 200 and "is already held" in text, text
    wait_for(lambda: "hub reached" in agent.log_text()[log_mark:], timeout=60, what="the restarted agent at the hub")
    assert _site_revision(edge_b, cluster) == bad
    assert not _status(hub, "edgedeployment", "detector", namespace).get("rollbacks")

    # When the window opens (the EdgeCluster edited to a window that includes now), the site reverts.
    now = dt.datetime.now(dt.timezone.utc)
    manifest["spec"]["maintenance"]["windows"] = [_window(now - dt.timedelta(minutes=1), 60)]
    hub.apply(manifest)
    wait_for(lambda: _site_revision(edge_b, cluster) == good, timeout=60, what="the held revert carried out")
    # The hub records it as the site's rollback, dated when the site received the alert.
    final = wait_for(lambda: (s := _status(hub, "edgedeployment", "detector", namespace)).get("rollbacks") and s,
                     timeout=60, what="the hub recording the site's rollback")
    record = next(r for r in final["rollbacks"] if r.get("alert") == "DefectRateHigh")
    assert (record["fromRevision"], record["toRevision"], record["clusters"]) == (bad, good, [cluster])
    assert bad in final.get("badRevisions", [])
    assert not _report(hub, cluster).get("held")
