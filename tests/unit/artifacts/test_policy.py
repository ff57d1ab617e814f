"""Where the operator may fetch from: address ranges, host names and folders (pure logic)."""

from __future__ import annotations

import ipaddress

import pytest

from edgeline.artifacts import errors
from edgeline.artifacts.policy import FetchPolicy, check_credentials
from edgeline.settings import Settings

STRICT = FetchPolicy()


@pytest.mark.parametrize("address, refused_as", [
    ("127.0.0.1", "loopback"),
    ("127.8.9.10", "loopback"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("224.0.0.251", "multicast"),
    ("0.0.0.0", "unspecified"),
    ("255.255.255.255", "reserved"),
    ("198.18.0.1", "benchmarking"),
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("fd00::1", "private (unique local)"),
    ("ff02::1", "multicast"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 of 169.254.169.254
    ("93.184.215.14", None),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", None),
    ("64:ff9b::5db8:d70e", None),  # NAT64 of a public address
])
def test_non_public_ranges_are_refused(address, refused_as):
    assert STRICT.refusal(ipaddress.ip_address(address)) == refused_as


def test_allow_listed_networks_open_a_range_and_the_service_range_is_closed():
    policy = FetchPolicy.from_settings(Settings(artifact_allowed_cidrs="127.0.0.1/32, 198.18.0.0/15",
                                                cluster_service_cidrs="203.0.113.0/24"))
    assert policy.refusal(ipaddress.ip_address("127.0.0.1")) is None
    assert policy.refusal(ipaddress.ip_address("198.19.1.1")) is None
    assert policy.refusal(ipaddress.ip_address("127.0.0.2")) == "loopback"
    assert policy.refusal(ipaddress.ip_address("203.0.113.7")) == "the cluster's service range"


@pytest.mark.parametrize("host, refused", [
    ("localhost", True), ("metadata.google.internal", True), ("minio", True),
    ("minio.storage.svc", True), ("minio.storage.svc.cluster.local", True), ("printer.local", True),
    ("models.example.com", False), ("127.0.0.1", False),  # literal addresses are judged by range
])
def test_local_and_cluster_names_are_refused_before_dns(host, refused):
    if refused:
        with pytest.raises(errors.AddressNotAllowed):
            STRICT.check_name(host)
    else:
        STRICT.check_name(host)


def test_an_allow_listed_host_is_fetched_whatever_it_resolves_to():
    policy = FetchPolicy.from_settings(Settings(artifact_allowed_hosts="minio.storage.svc.cluster.local"))
    policy.check_name("minio.storage.svc.cluster.local")
    policy.check_addresses("minio.storage.svc.cluster.local", [ipaddress.ip_address("10.96.0.12")])
    with pytest.raises(errors.AddressNotAllowed):
        policy.check_addresses("other.example.com", [ipaddress.ip_address("10.96.0.12")])


def test_one_bad_address_among_several_refuses_the_host():
    with pytest.raises(errors.AddressNotAllowed) as err:
        STRICT.check_addresses("models.example.com", [ipaddress.ip_address("93.184.215.14"),
                                                      ipaddress.ip_address("169.254.169.254")])
    # A name's addresses are not echoed: the user learns that it is refused, not where it points.
    assert "169.254" not in err.value.message and "models.example.com" in err.value.message


def test_file_uris_are_off_without_folders_and_limited_to_them(tmp_path):
    with pytest.raises(errors.SchemeDisabled, match="EDGELINE_ARTIFACT_FILE_ROOTS"):
        STRICT.check_file(tmp_path / "m.onnx")
    (tmp_path / "models").mkdir()
    policy = FetchPolicy.from_settings(Settings(artifact_file_roots=str(tmp_path / "models")))
    assert policy.check_file(tmp_path / "models" / "m.onnx") == tmp_path / "models" / "m.onnx"
    for outside in (tmp_path / "models-2" / "m.onnx", tmp_path / "models" / ".." / "x.onnx"):
        with pytest.raises(errors.PathNotAllowed):
            policy.check_file(outside)


def test_settings_refuse_what_is_not_a_cidr_or_an_absolute_folder():
    with pytest.raises(ValueError, match="not a CIDR"):
        Settings(artifact_allowed_cidrs="127.0.0.1/32, loopback")
    with pytest.raises(ValueError, match="absolute"):
        Settings(artifact_file_roots="models")


LABELLED = {"edgeline.io/credentials": "true"}


@pytest.mark.parametrize("uri, secret_type, labels, error", [
    ("https://models.example/m.onnx", "Opaque", LABELLED, None),
    ("https://models.example/m.onnx", None, None, None),  # not read yet: only the URI is judged
    ("http://models.example/m.onnx", None, None, errors.CredentialsRefused),
    ("HTTP://models.example/m.onnx", "Opaque", LABELLED, errors.CredentialsRefused),
    ("https://models.example/m.onnx", "Opaque", {}, errors.CredentialsUnavailable),
    ("https://models.example/m.onnx", "Opaque", {"edgeline.io/credentials": "yes"}, errors.CredentialsUnavailable),
    ("https://models.example/m.onnx", "kubernetes.io/service-account-token", LABELLED, errors.CredentialsRefused),
])
def test_which_secrets_may_lend_credentials_to_which_fetch(uri, secret_type, labels, error):
    if error is None:
        check_credentials(uri, "factory", "store", secret_type, labels)
        return
    with pytest.raises(error) as err:
        check_credentials(uri, "factory", "store", secret_type, labels)
    assert err.value.transient == (error is errors.CredentialsUnavailable)
