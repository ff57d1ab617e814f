"""Real Prometheus and Alertmanager as child processes, for the tests and the demo.

The binaries are Debian's (`dev/install-monitoring.sh` unpacks them into the cache and
records their paths). `Monitoring` writes prometheus.yml and alertmanager.yml into a
state directory given by the caller, starts both on loopback with free ports, waits
until they are ready and offers a few queries. Timings default to seconds, not the
minutes of a production setup, so that an alert reaches its webhook within seconds.

Deliberately free of Kubernetes and kopf: the same class serves a unit-sized test with
a hand-made exporter and the demo with real edge runtimes.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from edgeline.devenv import processes
from edgeline.devenv.environment import cache_dir, free_port

INSTALL_HINT = "run `bash dev/install-monitoring.sh` (or `make tools`), which unpacks Debian's prometheus and prometheus-alertmanager packages"


PIDS_FILE = "monitoring-pids.json"


class MonitoringError(RuntimeError):
    pass


# --- locating the binaries ------------------------------------------------------------

@dataclass(frozen=True)
class MonitoringBinaries:
    prometheus: Path
    promtool: Path
    alertmanager: Path


def paths_file() -> Path:
    """Where dev/install-monitoring.sh records the binaries it found or unpacked."""
    return cache_dir() / "monitoring" / "paths.env"


def find_binaries() -> MonitoringBinaries:
    """EDGELINE_PROMETHEUS / _PROMTOOL / _ALERTMANAGER, else the install script's record, else PATH."""
    recorded: dict[str, str] = {}
    if paths_file().is_file():
        for line in paths_file().read_text().splitlines():
            key, _, value = line.partition("=")
            recorded[key.strip()] = value.strip()
    on_path = {
        "PROMETHEUS": shutil.which("prometheus"),
        "PROMTOOL": shutil.which("promtool"),
        # Debian names it prometheus-alertmanager.
        "ALERTMANAGER": shutil.which("alertmanager") or shutil.which("prometheus-alertmanager"),
    }
    found: dict[str, Path] = {}
    missing = []
    for key in ("PROMETHEUS", "PROMTOOL", "ALERTMANAGER"):
        for candidate in (os.environ.get(f"EDGELINE_{key}"), recorded.get(key), on_path[key]):
            if candidate and os.access(candidate, os.X_OK):
                found[key] = Path(candidate)
                break
        else:
            missing.append(key.lower())
    if missing:
        raise MonitoringError(f"{', '.join(missing)} not found: {INSTALL_HINT}")
    return MonitoringBinaries(found["PROMETHEUS"], found["PROMTOOL"], found["ALERTMANAGER"])


def promtool(*args: str, binaries: MonitoringBinaries | None = None) -> subprocess.CompletedProcess:
    """Runs promtool (`check rules FILE`, `test rules FILE`, ...); output in stdout and stderr."""
    tool = (binaries or find_binaries()).promtool
    return subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=60)


# --- configuration ----------------------------------------------------------------------

@dataclass(frozen=True)
class ScrapeTarget:
    """One endpoint to scrape, `host:port`, with labels added to every series it exports."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)
    metrics_path: str = "/metrics"


@dataclass(frozen=True)
class HttpDiscovery:
    """Targets Prometheus reads from a URL (http_sd_configs), e.g. the Pods that
    `edgeline.devenv.pod_discovery` finds through a cluster's API server. The series keep
    their own labels (honor_labels): a runtime's `namespace` (its EdgeDeployment's) is not
    overwritten by a target label."""

    name: str                       # job name
    url: str
    refresh_interval: str = "1s"


@dataclass(frozen=True)
class Webhook:
    """The one receiver every alert goes to."""

    url: str
    bearer_token: str | None = None
    send_resolved: bool = True
    ca_file: str | None = None       # CA of an https receiver (the operator's: Secret edgeline-alerts-tls, ca.crt)


@dataclass(frozen=True)
class Timings:
    """Durations in Prometheus' notation. Production defaults are 1m / 1m / 30s / 5m / 4h."""

    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    group_wait: str = "0s"
    group_interval: str = "1s"
    repeat_interval: str = "1m"


DEFAULT_GROUP_BY = ("alertname", "namespace", "edgeline_deployment", "cluster")


def prometheus_config(targets: Sequence[ScrapeTarget], rule_files: Sequence[Path],
                      alertmanager: str, timings: Timings, discovered: Sequence[HttpDiscovery] = ()) -> dict:
    static_configs = []
    for target in targets:
        labels = dict(target.labels)
        if target.metrics_path != "/metrics":
            labels["__metrics_path__"] = target.metrics_path
        static_configs.append({"targets": [target.address], "labels": labels})
    return {
        "global": {
            "scrape_interval": timings.scrape_interval,
            # Prometheus refuses a timeout longer than the interval.
            "scrape_timeout": timings.scrape_interval,
            "evaluation_interval": timings.evaluation_interval,
        },
        "rule_files": [str(Path(f).resolve()) for f in rule_files],
        "alerting": {"alertmanagers": [{"api_version": "v2", "static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "edgeline", "static_configs": static_configs},
                           *({"job_name": d.name, "honor_labels": True,
                              "http_sd_configs": [{"url": d.url, "refresh_interval": d.refresh_interval}]}
                             for d in discovered)],
    }


def alertmanager_config(webhook: Webhook, timings: Timings, group_by: Sequence[str]) -> dict:
    receiver: dict = {"url": webhook.url, "send_resolved": webhook.send_resolved}
    if webhook.bearer_token:
        receiver["http_config"] = {"authorization": {"type": "Bearer", "credentials": webhook.bearer_token}}
    if webhook.ca_file:
        receiver.setdefault("http_config", {})["tls_config"] = {"ca_file": webhook.ca_file}
    return {
        "route": {
            "receiver": "edgeline",
            "group_by": list(group_by),
            "group_wait": timings.group_wait,
            "group_interval": timings.group_interval,
            "repeat_interval": timings.repeat_interval,
        },
        "receivers": [{"name": "edgeline", "webhook_configs": [receiver]}],
    }


# --- running them ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


class Monitoring:
    """Prometheus and Alertmanager for one state directory; a context manager.

        with Monitoring(tmp, targets=[ScrapeTarget("127.0.0.1:8000")], rule_files=[rules],
                        webhook=Webhook("http://127.0.0.1:9000/alerts", bearer_token="t")) as mon:
            mon.query("up")
    """

    def __init__(self, state_dir: Path | str, *, targets: Sequence[ScrapeTarget] = (),
                 discovered: Sequence[HttpDiscovery] = (), rule_files: Sequence[Path | str] = (), webhook: Webhook,
                 timings: Timings = Timings(), group_by: Sequence[str] = DEFAULT_GROUP_BY,
                 binaries: MonitoringBinaries | None = None):
        self.state_dir = Path(state_dir).resolve()
        self.targets = list(targets)
        self.discovered = list(discovered)
        self.rule_files = [Path(f) for f in rule_files]
        self.webhook = webhook
        self.timings = timings
        self.group_by = list(group_by)
        self._binaries = binaries
        self.prometheus_port = 0
        self.alertmanager_port = 0
        self._started: dict[str, processes.Started] = {}

    # The trailing slash keeps /tmp/a from claiming the processes of /tmp/ab.
    @property
    def marker(self) -> str:
        return f"{self.state_dir}/"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://127.0.0.1:{self.alertmanager_port}"

    def __enter__(self) -> Monitoring:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout_s: float = 30.0) -> None:
        binaries = self._binaries or find_binaries()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._stop_leftovers()
        # Fresh data every start: old series and silences would confuse a test.
        for data in ("prometheus-data", "alertmanager-data"):
            shutil.rmtree(self.state_dir / data, ignore_errors=True)
        try:
            self._launch("alertmanager", lambda port: [
                str(binaries.alertmanager),
                f"--config.file={self.state_dir / 'alertmanager.yml'}",
                f"--storage.path={self.state_dir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--cluster.listen-address=",  # no gossip port: one instance, nothing to peer with
            ], self._write_alertmanager_config, timeout_s)
            # Prometheus second: its configuration names Alertmanager's port.
            self._launch("prometheus", lambda port: [
                str(binaries.prometheus),
                f"--config.file={self.state_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.state_dir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--web.enable-lifecycle",  # for reload()
            ], self._write_prometheus_config, timeout_s)
        except BaseException:
            self.stop()
            raise

    def _launch(self, name: str, argv_for, write_config, timeout_s: float) -> None:
        log = self.state_dir / f"{name}.log"
        # A free port can be taken between finding it and binding it: try a few.
        for _ in range(3):
            port = free_port()
            setattr(self, f"{name}_port", port)
            write_config()
            started = processes.start(argv_for(port), log)
            self._started[name] = started
            self._record_pids()
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                if not processes.is_ours(started.pid, self.marker):
                    if "address already in use" in processes.log_tail(log, 5):
                        break
                    raise processes.ComponentFailed("monitoring", name, "exited during start-up", log)
                if _http_status(f"http://127.0.0.1:{port}/-/ready") == 200:
                    return
                time.sleep(0.1)
            else:
                raise processes.ComponentFailed("monitoring", name, "did not become ready in time", log)
        raise processes.ComponentFailed("monitoring", name, "found no free port", log)

    def _write_prometheus_config(self) -> None:
        config = prometheus_config(self.targets, self.rule_files, f"127.0.0.1:{self.alertmanager_port}", self.timings,
                                   self.discovered)
        _write_yaml(self.state_dir / "prometheus.yml", config)

    def _write_alertmanager_config(self) -> None:
        # It may hold the webhook's bearer token.
        _write_yaml(self.state_dir / "alertmanager.yml", alertmanager_config(self.webhook, self.timings, self.group_by),
                    mode=0o600)

    def reload(self, *, targets: Sequence[ScrapeTarget] | None = None,
               rule_files: Sequence[Path | str] | None = None, webhook: Webhook | None = None) -> None:
        """Rewrites both configurations (with whatever changed) and makes both re-read them."""
        if targets is not None:
            self.targets = list(targets)
        if rule_files is not None:
            self.rule_files = [Path(f) for f in rule_files]
        if webhook is not None:
            self.webhook = webhook
        self._write_alertmanager_config()
        self._write_prometheus_config()
        for name, url in (("alertmanager", self.alertmanager_url), ("prometheus", self.prometheus_url)):
            try:
                _request("POST", f"{url}/-/reload")
            except MonitoringError as e:
                raise MonitoringError(f"{name} rejected its new configuration: {e}") from e

    def stop(self) -> None:
        processes.stop([s.pid for s in self._started.values()], self.marker)
        self._started.clear()
        self._record_pids()

    # The pids go to a file rather than being found by scanning /proc for the marker:
    # that scan takes seconds on machines whose kernel threads show in /proc.
    def _record_pids(self) -> None:
        if self.state_dir.is_dir():
            pids = {name: s.pid for name, s in self._started.items()}
            (self.state_dir / PIDS_FILE).write_text(json.dumps(pids))

    def _stop_leftovers(self) -> None:
        """Stops what an earlier run in this state directory left running (a crashed test)."""
        try:
            pids = json.loads((self.state_dir / PIDS_FILE).read_text())
        except (OSError, ValueError):
            return
        processes.stop(list(pids.values()), self.marker)

    # --- queries -------------------------------------------------------------------------

    def query(self, promql: str) -> list[Sample]:
        """An instant query; a scalar comes back as one sample without labels."""
        body = _request("GET", f"{self.prometheus_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        data = body["data"]
        if data["resultType"] == "vector":
            return [Sample(r["metric"], float(r["value"][1])) for r in data["result"]]
        if data["resultType"] == "scalar":
            return [Sample({}, float(data["result"][1]))]
        raise MonitoringError(f"query {promql!r} returned a {data['resultType']}, not a vector or scalar")

    def fire(self, labels: dict[str, str]) -> None:
        """An alert into Alertmanager's API now, as Prometheus sends one (Alertmanager routes it)."""
        alert = [{"labels": labels, "startsAt": dt.datetime.now(dt.timezone.utc).isoformat()}]
        request = urllib.request.Request(f"{self.alertmanager_url}/api/v2/alerts", data=json.dumps(alert).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                response.read()
        except OSError as exc:        # HTTPError included: Alertmanager refused the alert
            raise MonitoringError(f"POST {self.alertmanager_url}/api/v2/alerts: {exc}") from exc

    def alerts(self, active_only: bool = True) -> list[dict]:
        """The alerts Alertmanager holds (API v2): labels, annotations, startsAt, status, fingerprint."""
        params = urllib.parse.urlencode({"active": "true", "silenced": "false", "inhibited": "false"}) \
            if active_only else ""
        return _request("GET", f"{self.alertmanager_url}/api/v2/alerts?{params}")


def _write_yaml(path: Path, data: dict, mode: int = 0o644) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False))
    tmp.chmod(mode)
    tmp.replace(path)


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def _request(method: str, url: str):
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10.0) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as e:
        detail = e.read().decode("utf-8", "replace").strip()
        raise MonitoringError(f"{method} {url}: HTTP {e.code}: {detail}") from e
    except OSError as e:
        raise MonitoringError(f"{method} {url}: {e}") from e
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
