"""Kubernetes Pod discovery for the local Prometheus, through a cluster's API server.

Debian's Prometheus 2.42 is built without kubernetes_sd_configs (promtool: "field
kubernetes_sd_configs not found in type config.ScrapeConfig"), so this does what that
discovery does for role `pod`, the way Prometheus' own relabelling examples set it up, and
hands the result to Prometheus over its HTTP service discovery (http_sd_configs):

- every Pod annotated `prometheus.io/scrape: "true"` that is Running and has an IP,
- scraped at `<Pod IP>:<prometheus.io/port>` on `prometheus.io/path` (default /metrics),
- labelled `pod` and `pod_namespace`.

    with PodDiscovery(kubeconfig, namespaces=["ns-line-1"]) as discovery:
        Monitoring(..., discovered=[HttpDiscovery("edge-a-pods", discovery.url)])
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterable
from pathlib import Path

SCRAPE = "prometheus.io/scrape"
PORT = "prometheus.io/port"
PATH = "prometheus.io/path"


def targets_of(pods: Iterable[dict]) -> list[dict]:
    """Prometheus HTTP SD target groups, one per scrapable Pod, from Pod objects (as dicts)."""
    groups = []
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        annotations = meta.get("annotations") or {}
        ip, port = status.get("podIP"), annotations.get(PORT, "")
        if annotations.get(SCRAPE) != "true" or status.get("phase") != "Running" or not ip or not port.isdigit():
            continue
        if meta.get("deletionTimestamp"):
            continue
        host = f"[{ip}]" if ":" in ip else ip
        groups.append({"targets": [f"{host}:{port}"],
                       "labels": {"__metrics_path__": annotations.get(PATH) or "/metrics",
                                  "pod": meta.get("name", ""), "pod_namespace": meta.get("namespace", "")}})
    return sorted(groups, key=lambda g: g["targets"][0])


class PodDiscovery:
    """Serves `targets_of` the Pods a kubeconfig's API server lists, fresh on every request,
    on 127.0.0.1 (a context manager; `url` is what Prometheus' http_sd_configs reads)."""

    def __init__(self, kubeconfig: Path | str, namespaces: Iterable[str] = ()):
        from lightkube import Client, KubeConfig

        self._client = Client(config=KubeConfig.from_file(str(kubeconfig)), timeout=5)
        self.namespaces = list(namespaces)
        self.errors = 0
        discovery = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's naming)
                try:
                    body, code = json.dumps(discovery.targets()).encode(), 200
                except Exception as exc:  # Prometheus keeps its last targets on an error answer
                    discovery.errors += 1
                    body, code = f"{type(exc).__name__}: {exc}".encode(), 503
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/targets"
        self._thread: threading.Thread | None = None

    def targets(self) -> list[dict]:
        from lightkube.resources.core_v1 import Pod

        found = []
        for namespace in self.namespaces or [None]:
            found += [p.to_dict() for p in self._client.list(Pod, namespace=namespace or "*")]
        return targets_of(found)

    def __enter__(self) -> PodDiscovery:
        self._thread = threading.Thread(target=self._server.serve_forever, name="pod-discovery", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._client.close()
