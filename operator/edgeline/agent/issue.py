"""Issues the site CA and the alert receiver's serving pair, in a short-lived child process of
the agent (`python -m edgeline.agent.issue`, JSON in on stdin, JSON out on stdout).

Why a child: the `cryptography` library costs the agent about 9.5 MiB of resident memory once
imported (measured: 49.5 -> 59.0 MiB max RSS for importing the agent), which would take it past
its < 60 MB goal (docs/edge-autonomy.md) for something it does every few weeks. The child's
memory is returned when it exits."""

from __future__ import annotations

import datetime as dt
import json
import sys

from edgeline.pki import CertificateAuthority

CA_NAME = "edgeline-agent-site-ca"


def issue(request: dict) -> dict:
    """request: names, validity_s, ca_validity_s, and the current ca.crt/ca.key unless new_ca."""
    if request.get("new_ca") or not request.get("ca.crt"):
        ca = CertificateAuthority.create(CA_NAME, validity=dt.timedelta(seconds=request["ca_validity_s"]))
    else:
        ca = CertificateAuthority.load(request["ca.crt"].encode(), request["ca.key"].encode())
    names = tuple(request["names"])
    cert, key = ca.issue(names[0], server_names=names, validity=dt.timedelta(seconds=request["validity_s"]))
    from cryptography import x509
    served = x509.load_pem_x509_certificate(cert)
    return {"ca.crt": ca.cert_pem.decode(), "ca.key": ca.key_pem.decode(), "tls.crt": cert.decode(),
            "tls.key": key.decode(), "names": ",".join(names),
            "ca.notAfter": ca.cert.not_valid_after_utc.isoformat(),
            "tls.notAfter": served.not_valid_after_utc.isoformat()}


def main() -> int:
    json.dump(issue(json.load(sys.stdin)), sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
