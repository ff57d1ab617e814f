"""The alert receiver's serving certificate is replaced before it expires while the operator
serves, with no restart, and clients set up the way Alertmanager is (a CA file read once, a
bearer token) keep delivering (docs/security.md, "Operations").

A real operator process runs with a 45-second certificate lifetime and checks its Secret every
second; real TLS handshakes show which certificate it serves, and a real Alertmanager forwards
alerts to it before the renewal, after it, and after the first certificate has expired.
"""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import urllib.request

import pytest
from cryptography import x509

from edgeline.devenv.monitoring import Monitoring, ScrapeTarget, Webhook
from tests.e2e.conftest import ALERTS_TOKEN, OPERATOR_NAMESPACE, STATE_DIR, OperatorProcess, wait_for

LIFETIME_S = 45
TLS_SECRET = "edgeline-alerts-tls"


def served_certificate(port: int, cafile: str) -> x509.Certificate | None:
    """The certificate a fresh, verifying TLS handshake with the receiver gets (None: no answer yet)."""
    context = ssl.create_default_context(cafile=cafile)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))
    except ConnectionRefusedError:
        return None


def unrouted_alerts(op: OperatorProcess) -> float:
    """What the operator counted of alerts that name no deployment: each one Alertmanager delivered."""
    with urllib.request.urlopen(op.metrics_url, timeout=5) as response:
        text = response.read().decode()
    prefix = 'edgeline_alerts_received_total{result="unrouted"} '
    return next((float(line[len(prefix):]) for line in text.splitlines() if line.startswith(prefix)), 0.0)


@pytest.fixture
def short_lived(hub, crds_installed):
    """An operator replica that issues 45-second certificates, starting from no certificate."""
    hub.kubectl("delete", "secret", TLS_SECRET, "-n", OPERATOR_NAMESPACE, "--ignore-not-found")
    log = STATE_DIR / "operator-short-tls.log"
    log.unlink(missing_ok=True)
    op = OperatorProcess(hub.kubeconfig, log, extra_env={
        "EDGELINE_TLS_CERTIFICATE_VALIDITY_S": str(LIFETIME_S), "EDGELINE_TLS_CHECK_INTERVAL_S": "1",
        "EDGELINE_LEADER_IDENTITY": "short-tls"})
    op.start()
    yield op
    op.stop()
    # The next operator to check the Secret finds a short or expired certificate and issues a 90-day one.


def test_the_receiver_certificate_is_replaced_before_it_expires_and_alertmanager_keeps_delivering(
        short_lived, tmp_path):
    op = short_lived
    pid = op.proc.pid
    cafile = op.alerts_ca_file()            # read once, as Alertmanager reads tls_config.ca_file
    first = wait_for(lambda: served_certificate(op.alerts_port, cafile), timeout=30,
                     what="the alert receiver answering TLS")
    assert first.not_valid_after_utc - dt.datetime.now(dt.timezone.utc) <= dt.timedelta(seconds=LIFETIME_S)

    webhook = Webhook(op.alerts_url, bearer_token=ALERTS_TOKEN, ca_file=cafile)
    with Monitoring(tmp_path / "monitoring", targets=[ScrapeTarget(f"127.0.0.1:{op.metrics_port}")],
                    webhook=webhook) as monitoring:
        delivered = unrouted_alerts(op)
        monitoring.fire({"alertname": "CertificateCheckBefore", "severity": "info"})
        wait_for(lambda: unrouted_alerts(op) >= delivered + 1, timeout=30,
                 what="Alertmanager delivering over TLS with the first certificate")

        # Renewed when a third of its life is left: a new certificate of the same CA, same process.
        second = wait_for(lambda: (c := served_certificate(op.alerts_port, cafile)) is not None
                          and c.serial_number != first.serial_number and c, timeout=LIFETIME_S + 15,
                          what="a new certificate served")
        renewed_at = dt.datetime.now(dt.timezone.utc)
        assert renewed_at < first.not_valid_after_utc, "the certificate was replaced only after it expired"
        assert second.not_valid_after_utc > first.not_valid_after_utc
        assert second.issuer == first.issuer
        assert op.proc.poll() is None and op.proc.pid == pid, "the operator restarted"
        assert f"serving the certificate from Secret {TLS_SECRET}" in op.log.read_text(errors="replace")

        monitoring.fire({"alertname": "CertificateCheckAfter", "severity": "info"})
        wait_for(lambda: unrouted_alerts(op) >= delivered + 2, timeout=30,
                 what="Alertmanager delivering with the renewed certificate")

        # Once the first certificate has expired, fresh handshakes and deliveries still succeed.
        wait_for(lambda: dt.datetime.now(dt.timezone.utc) > first.not_valid_after_utc + dt.timedelta(seconds=1),
                 timeout=LIFETIME_S + 15, what="the first certificate to expire")
        assert served_certificate(op.alerts_port, cafile).serial_number != first.serial_number
        monitoring.fire({"alertname": "CertificateCheckExpired", "severity": "info"})
        wait_for(lambda: unrouted_alerts(op) >= delivered + 3, timeout=30,
                 what="Alertmanager delivering after the first certificate expired")
    assert op.proc.poll() is None and op.proc.pid == pid
