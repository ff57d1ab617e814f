"""What a real node is configured with (the settings this kind of machine needs)."""

import tomllib
from pathlib import Path

import pytest

from edgeline.devenv import nodes
from edgeline.devenv.network import ClusterAddresses


@pytest.fixture
def paths(tmp_path) -> nodes.NodePaths:
    return nodes.NodePaths(tmp_path / "edge-a" / "node")


def test_containerd_config(paths, monkeypatch):
    monkeypatch.setattr(nodes, "runc_binary", lambda: "/usr/sbin/runc")
    monkeypatch.setattr(nodes, "cni_bin_dirs", lambda: ["/usr/lib/cni"])
    config = tomllib.loads(nodes.containerd_config(paths, registry="127.0.0.1:5555",
                                                   sandbox_image="127.0.0.1:5555/edgeline/pause:v1",
                                                   shim=Path("/cache/shim")))
    assert config["version"] == 3
    assert config["grpc"]["address"] == str(paths.socket)
    images = config["plugins"]["io.containerd.cri.v1.images"]
    assert images["snapshotter"] == "native"
    assert images["pinned_images"]["sandbox"] == "127.0.0.1:5555/edgeline/pause:v1"
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"]["BinaryName"] == "/usr/sbin/runc" and runc["options"]["SystemdCgroup"] is False
    assert runc["options"]["Root"] == str(paths.runc_root)
    assert runtime["cni"]["conf_dir"] == str(paths.cni_conf_dir)
    unpack = config["plugins"]["io.containerd.transfer.v1.local"]["unpack_config"]
    assert [u["snapshotter"] for u in unpack] == ["native"]
    assert config["plugins"]["io.containerd.grpc.v1.cri"]["stream_server_port"] == "0"


def test_kubelet_config_for_hybrid_cgroups_without_cap_sys_resource(paths):
    config = nodes.kubelet_config(paths, ClusterAddresses(0, 1, "edge-a"), ca=Path("/pki/ca.crt"), port=1,
                                  healthz_port=2)
    assert config["failCgroupV1"] is False
    assert config["cgroupDriver"] == "cgroupfs" and config["cgroupsPerQOS"] is False
    assert config["enforceNodeAllocatable"] == [] and config["failSwapOn"] is False
    assert config["localStorageCapacityIsolation"] is False
    assert config["address"] == "198.18.2.1"
    assert config["registerWithTaints"] == [nodes.REAL_NODE_TAINT]
    assert config["authentication"]["anonymous"]["enabled"] is False


def test_cni_bridge_without_nat_in_the_node_subnet(paths):
    config = nodes.cni_config(paths, ClusterAddresses(0, 0, "hub"))
    bridge = config["plugins"][0]
    assert bridge["bridge"] == "edl0-hub" and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "198.18.1.0/24", "gateway": "198.18.1.1"}]]
    assert bridge["ipam"]["dataDir"] == str(paths.ipam_dir)


def test_a_toleration_matches_the_taint():
    taint, toleration = nodes.REAL_NODE_TAINT, nodes.REAL_NODE_TOLERATION
    assert (toleration["key"], toleration["value"], toleration["effect"]) == (taint["key"], taint["value"],
                                                                               taint["effect"])
