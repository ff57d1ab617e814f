"""The operator's alert receiver as Alertmanager talks to it: HTTPS with the CA from Secret
edgeline-alerts-tls (the operator makes it at start), a bearer token, a webhook body of version 4.
The benches that time a revert from the alert on post through here."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

TOKEN = "bench-token"
OPERATOR_NAMESPACE = "edgeline-system"
KUBECTL = str(Path(sys.executable).parent / "kubectl")


class AlertReceiver:
    """The receiver of an operator started with EDGELINE_ALERTS_PORT=`port`,
    EDGELINE_ALERTS_LISTEN=127.0.0.1 and EDGELINE_ALERTS_TOKEN=`token` against the hub at `kubeconfig`."""

    def __init__(self, kubeconfig: Path, port: int, token: str = TOKEN, namespace: str = OPERATOR_NAMESPACE):
        self.kubeconfig, self.port, self.token, self.namespace = Path(kubeconfig), port, token, namespace
        self._ca_file: Path | None = None
        self._ssl: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/alerts"

    def env(self) -> dict[str, str]:
        """The operator's settings for this receiver."""
        return {"EDGELINE_ALERTS_PORT": str(self.port), "EDGELINE_ALERTS_LISTEN": "127.0.0.1",
                "EDGELINE_ALERTS_TOKEN": self.token}

    def ca_file(self) -> str:
        """The receiver's CA as a file (for Alertmanager's tls_config.ca_file), beside the kubeconfig."""
        if self._ca_file is None:
            proc = subprocess.run([KUBECTL, "--kubeconfig", str(self.kubeconfig), "get", "secret",
                                   "edgeline-alerts-tls", "-n", self.namespace, "-o", "json"],
                                  capture_output=True, text=True, timeout=60)
            if proc.returncode:
                raise RuntimeError(f"the alert receiver's CA (Secret edgeline-alerts-tls): {proc.stderr}")
            path = self.kubeconfig.parent / f"alerts-ca-{self.port}.crt"
            path.write_bytes(base64.b64decode(json.loads(proc.stdout)["data"]["ca.crt"]))
            self._ca_file = path
        return str(self._ca_file)

    def post(self, deployment: str, namespace: str, timeout: float = 30) -> None:
        """One firing EdgelineRuntimeErrorRateHigh alert for an EdgeDeployment, each with a new fingerprint."""
        if self._ssl is None:
            self._ssl = ssl.create_default_context(cafile=self.ca_file())
        labels = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "namespace": namespace,
                  "edgeline_deployment": deployment}
        body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": labels,
                                                                "startsAt": "2026-11-25T10:00:00Z",
                                                                "fingerprint": uuid.uuid4().hex[:16]}]}
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        urllib.request.urlopen(request, timeout=timeout, context=self._ssl).read()
