"""Addresses of the local environment: every slot in 198.18.0.0/15, none shared."""

import ipaddress

import pytest

from edgeline.devenv.network import MAX_SLOTS, ClusterAddresses, NetworkError, bridge_name

BENCHMARKING = ipaddress.ip_network("198.18.0.0/15")
PRIVATE = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]


@pytest.mark.parametrize("slot, index, pods, gateway, services, service_ip", [
    (0, 0, "198.18.1.0/24", "198.18.1.1", "198.19.0.0/24", "198.19.0.1"),
    (0, 1, "198.18.2.0/24", "198.18.2.1", "198.19.1.0/24", "198.19.1.1"),
    (0, 2, "198.18.3.0/24", "198.18.3.1", "198.19.2.0/24", "198.19.2.1"),
    (1, 0, "198.18.5.0/24", "198.18.5.1", "198.19.4.0/24", "198.19.4.1"),
])
def test_addresses_of_a_slot(slot, index, pods, gateway, services, service_ip):
    a = ClusterAddresses(slot, index, "hub")
    assert (a.pod_subnet, a.gateway, a.service_range, a.service_ip) == (pods, gateway, services, service_ip)


def test_no_two_slots_or_clusters_share_a_range_and_none_is_private():
    seen = set()
    for slot in range(MAX_SLOTS):
        for index in range(3):
            a = ClusterAddresses(slot, index, "edge-a")
            for net in (ipaddress.ip_network(a.pod_subnet), ipaddress.ip_network(a.service_range)):
                assert net.subnet_of(BENCHMARKING)
                assert not any(net.overlaps(p) for p in PRIVATE)
                assert net not in seen
                seen.add(net)


def test_bridge_names_fit_linux_limit():
    assert bridge_name(59, "edge-a") == "edl59-edge-a"
    with pytest.raises(NetworkError, match="15 characters"):
        bridge_name(1, "a-very-long-cluster")


def test_fake_pods_and_nodes_stay_outside_private_ranges_and_every_slots_routes():
    routed = [ipaddress.ip_network(net) for slot in range(MAX_SLOTS) for index in range(3)
              for net in (ClusterAddresses(slot, index, "x").pod_subnet, ClusterAddresses(slot, index, "x").service_range)]
    for slot in (0, MAX_SLOTS - 1):
        for index in range(3):
            a = ClusterAddresses(slot, index, "edge-b")
            fake = ipaddress.ip_network(a.fake_pod_range)
            assert fake.subnet_of(BENCHMARKING) and not any(fake.overlaps(p) for p in PRIVATE)
            assert not any(fake.overlaps(r) for r in routed)
            assert ipaddress.ip_address(a.fake_node_ip) in fake
