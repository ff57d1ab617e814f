"""The site alert receiver over TLS with the site CA the agent issues (in a child process), a
certificate replaced while it serves, and the hub token the agent keeps across restarts."""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import stat

import pytest
import yaml
from cryptography import x509

from edgeline.agent import receiver, tls
from edgeline.agent.tokens import HubCredentials, kubeconfig_token, with_token
from tests.unit.agent.test_receiver import PAYLOAD, TOKEN, _post

NAMES = tls.service_names(("127.0.0.1", "site.example"))


def _issue(**extra) -> dict:
    return asyncio.run(tls.issue({"names": list(NAMES), "validity_s": 3600, "ca_validity_s": 86400, **extra}))


def test_the_service_names_come_first_and_extra_names_are_added_once():
    assert NAMES[:4] == ("edgeline-agent.edgeline-agent.svc", "edgeline-agent.edgeline-agent.svc.cluster.local",
                         "edgeline-agent.edgeline-agent", "edgeline-agent")
    assert NAMES[4:] == ("127.0.0.1", "site.example")
    assert tls.service_names(("edgeline-agent", " ", "x")) == (*NAMES[:4], "x")


def test_the_child_issues_a_site_ca_and_a_pair_for_the_names_and_records_them():
    data = _issue()
    cert = x509.load_pem_x509_certificate(data["tls.crt"].encode())
    ca = x509.load_pem_x509_certificate(data["ca.crt"].encode())
    assert cert.issuer == ca.subject
    sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {str(n) for n in sans.get_values_for_type(x509.DNSName)} >= set(NAMES[:4])
    stored = tls.stored_pair(data)
    assert stored.has_ca and stored.has_serving and stored.names == NAMES
    assert stored.not_after == cert.not_valid_after_utc
    # Renewing keeps the CA (Alertmanager's ca_file stays right); a new CA only when asked.
    again = _issue(**{"ca.crt": data["ca.crt"], "ca.key": data["ca.key"]})
    assert again["ca.crt"] == data["ca.crt"] and again["tls.crt"] != data["tls.crt"]
    assert _issue(new_ca=True, **{"ca.crt": data["ca.crt"], "ca.key": data["ca.key"]})["ca.crt"] != data["ca.crt"]


async def _post_tls(port: int, cafile: str | None) -> tuple[int, str, x509.Certificate]:
    context = ssl.create_default_context(cafile=cafile)
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="127.0.0.1")
    served = x509.load_der_x509_certificate(writer.get_extra_info("ssl_object").getpeercert(binary_form=True))
    writer.write(_post(json.dumps(PAYLOAD).encode()))
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body.decode(), served


def test_the_receiver_serves_https_and_a_new_certificate_without_a_restart(tmp_path):
    first = _issue()
    second = _issue(**{"ca.crt": first["ca.crt"], "ca.key": first["ca.key"]})
    cafile = tmp_path / "ca.crt"
    cafile.write_text(first["ca.crt"])
    other_ca = tmp_path / "other.crt"
    other_ca.write_text(_issue()["ca.crt"])

    async def story():
        seen = []

        async def on_alert(name, labels, fingerprint, starts_at, received_at):
            seen.append(name)
            return f"seen {name}"

        site_tls = tls.SiteTls(None, NAMES)
        site_tls._load(first)
        server = await receiver.start(on_alert, TOKEN, "127.0.0.1", 0, ssl_context=site_tls.context)
        port = receiver.port(server)
        try:
            status, text, served = await _post_tls(port, str(cafile))
            assert (status, text) == (200, "seen HighLatency")
            assert served.serial_number == x509.load_pem_x509_certificate(first["tls.crt"].encode()).serial_number
            site_tls._load(second)          # what keep_fresh does after a renewal
            status, _, served = await _post_tls(port, str(cafile))
            assert status == 200
            assert served.serial_number == x509.load_pem_x509_certificate(second["tls.crt"].encode()).serial_number
            with pytest.raises(ssl.SSLCertVerificationError):
                await _post_tls(port, str(other_ca))
            # Plain HTTP gets no answer from a TLS server.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(_post(json.dumps(PAYLOAD).encode()))
            await writer.drain()
            answer = await asyncio.wait_for(reader.read(), 15)
            writer.close()
            assert not answer.startswith(b"HTTP/1.1 200")
            assert seen == ["HighLatency", "HighLatency"]
        finally:
            await receiver.stop(server)

    asyncio.run(story())
    assert not list(tmp_path.glob("edgeline-tls-*"))


def _jwt(iat: float, exp: float) -> str:
    body = base64.urlsafe_b64encode(json.dumps({"iat": iat, "exp": exp}).encode()).decode().rstrip("=")
    return f"h.{body}.s"


def _kubeconfig(token: str) -> dict:
    return {"apiVersion": "v1", "kind": "Config", "current-context": "hub",
            "clusters": [{"name": "hub", "cluster": {"server": "https://198.18.0.1:6443"}}],
            "users": [{"name": "site", "user": {"token": token}}],
            "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "site"}}]}


def test_a_rotated_token_survives_a_restart_and_is_private(tmp_path):
    joined, rotated = _jwt(1000, 1600), _jwt(1480, 2080)
    path = tmp_path / "hub.kubeconfig"
    path.write_text(yaml.safe_dump(_kubeconfig(joined)))
    state = tmp_path / "state"
    state.mkdir()
    credentials = HubCredentials(path, state, now=1100)
    assert credentials.token == joined
    credentials.keep(rotated)
    assert stat.S_IMODE((state / "hub-token").stat().st_mode) == 0o600
    assert kubeconfig_token(credentials.config) == rotated
    assert kubeconfig_token(yaml.safe_load(path.read_text())) == joined          # the join's file is read only
    # A restart: the stored token ends later than the join's, so it is used.
    assert HubCredentials(path, state, now=1500).token == rotated
    # A new join (a newer token in the kubeconfig) wins over an older stored one.
    path.write_text(yaml.safe_dump(_kubeconfig(_jwt(1900, 2500))))
    assert HubCredentials(path, state, now=1950).token == _jwt(1900, 2500)


def test_with_token_changes_only_the_token():
    config = _kubeconfig("a")
    assert with_token(config, "b") == {**config, "users": [{"name": "site", "user": {"token": "b"}}]}
    assert kubeconfig_token(config) == "a"


@pytest.mark.parametrize("flags", [["--token-rotate-after", "0"], ["--tls-validity", "10"],
                                   ["--tls-check-interval", "0"], ["--token-check-interval", "-1"]])
def test_the_agent_refuses_rotation_and_renewal_settings_that_cannot_work(flags, capsys):
    from edgeline.cli import main
    assert main(["agent", "--cluster", "x", "--hub-kubeconfig", "/nonexistent", *flags]) == 2
    assert "must be above 0" in capsys.readouterr().out
