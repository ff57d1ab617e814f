"""Real nodes of the local environment: a containerd and a kubelet per node.

Each node has its own directory `<state>/<cluster>/node/`: containerd's root, state,
sockets, registry host configuration and runc root; the kubelet's root, certificates and
Pod logs; the CNI configuration and the host-local IPAM data. What made a kubelet work on
this kind of machine (hybrid cgroups, no CAP_SYS_RESOURCE) is in ../shared/FACTS.md and
docs/decisions.md: cgroup v1 allowed, cgroupfs without QoS cgroups, nothing enforced on
node allocatable, and containerd restricting OOM score adjustments.

Real nodes are tainted `edgeline.io/real-node=true:NoSchedule` and labelled
`edgeline.io/real-node=true`: a Pod that must run a real container tolerates the taint and
selects the label; every other Pod keeps landing on the kwok nodes.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgeline.devenv.network import ClusterAddresses

REAL_NODE_LABEL = "edgeline.io/real-node"
REAL_NODE_TAINT = {"key": REAL_NODE_LABEL, "value": "true", "effect": "NoSchedule"}
# What a Pod adds to run on a real node.
REAL_NODE_TOLERATION = {"key": REAL_NODE_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
REAL_NODE_SELECTOR = {REAL_NODE_LABEL: "true"}

# Unix socket paths are limited to 108 bytes (with the terminating NUL).
MAX_SOCKET_PATH = 107


class NodeSetupError(RuntimeError):
    pass


@dataclass(frozen=True)
class NodePaths:
    base: Path

    @property
    def containerd(self) -> Path:
        return self.base / "containerd"

    @property
    def socket(self) -> Path:
        # In the node's directory, not deeper: a unix socket path has at most 107 bytes.
        return self.base / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.containerd / "config.toml"

    @property
    def runc_root(self) -> Path:
        return self.base / "runc"

    @property
    def hosts_dir(self) -> Path:
        return self.containerd / "certs.d"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def ipam_dir(self) -> Path:
        return self.base / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.base / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.base / "kubelet-config.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.base / "kubelet.kubeconfig"

    @property
    def pod_logs(self) -> Path:
        return self.base / "pod-logs"


def runc_binary() -> str:
    found = shutil.which("runc") or (shutil.which("runc", path="/usr/sbin:/usr/bin:/sbin"))
    if not found:
        raise NodeSetupError("runc is not installed: run `bash dev/install-node-tools.sh`")
    return found


CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")


def cni_bin_dirs() -> list[str]:
    dirs = [d for d in CNI_BIN_DIRS if (Path(d) / "bridge").exists()]
    if not dirs:
        raise NodeSetupError("the CNI plugins are not installed (no bridge plugin in /usr/lib/cni): "
                             "run `bash dev/install-node-tools.sh`")
    return dirs


def prepare(paths: NodePaths, addresses: ClusterAddresses, *, registry: str, sandbox_image: str,
            shim: Path) -> None:
    """Writes containerd's, the registry's and CNI's configuration (a fresh node each time)."""
    for directory in (paths.containerd, paths.kubelet_root, paths.runc_root, paths.base / "cni", paths.pod_logs):
        shutil.rmtree(directory, ignore_errors=True)
    for stale in (paths.socket, Path(str(paths.socket) + ".ttrpc")):
        stale.unlink(missing_ok=True)
    for directory in (paths.containerd, paths.cni_conf_dir, paths.ipam_dir, paths.kubelet_root, paths.pod_logs):
        directory.mkdir(parents=True, exist_ok=True)
    # The kubelet's sockets lie deepest: <root>/pod-resources/<10 digits>.
    for socket_path in (f"{paths.socket}.ttrpc", f"{paths.kubelet_root}/pod-resources/0123456789"):
        if len(socket_path) > MAX_SOCKET_PATH:
            raise NodeSetupError(f"the unix socket path {socket_path} would be longer than {MAX_SOCKET_PATH} "
                                 "bytes: use a shorter --state-dir")
    paths.containerd_config.write_text(containerd_config(paths, registry=registry, sandbox_image=sandbox_image,
                                                         shim=shim))
    # The local registry speaks plain HTTP on loopback.
    host_dir = paths.hosts_dir / registry
    host_dir.mkdir(parents=True)
    (host_dir / "hosts.toml").write_text(
        f'server = "http://{registry}"\n\n'
        f'[host."http://{registry}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    (paths.cni_conf_dir / "10-edgeline.conflist").write_text(json.dumps(cni_config(paths, addresses), indent=2))


def containerd_config(paths: NodePaths, *, registry: str, sandbox_image: str, shim: Path) -> str:
    cri_runtime = "plugins.'io.containerd.cri.v1.runtime'"
    bin_dirs = ", ".join(f'"{d}"' for d in cni_bin_dirs())
    return f"""\
# containerd for one real node of Edgeline's local environment (written by `edgeline dev up`).
version = 3
root = "{paths.containerd / 'root'}"
state = "{paths.containerd / 'state'}"

[grpc]
  address = "{paths.socket}"

[ttrpc]
  address = "{paths.socket}.ttrpc"

[debug]
  level = "info"

[plugins]
  [plugins.'io.containerd.cri.v1.images']
    # overlayfs is not assumed to work on this kind of machine; native copies layers.
    snapshotter = "native"
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = "{sandbox_image}"
    [plugins.'io.containerd.cri.v1.images'.registry]
      config_path = "{paths.hosts_dir}"

  [{cri_runtime}]
    # Without it every sandbox fails: a negative OOM score needs CAP_SYS_RESOURCE.
    restrict_oom_score_adj = true
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []
    [{cri_runtime}.containerd]
      default_runtime_name = "runc"
      [{cri_runtime}.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        runtime_path = "{shim}"
        [{cri_runtime}.containerd.runtimes.runc.options]
          BinaryName = "{runc_binary()}"
          Root = "{paths.runc_root}"
          SystemdCgroup = false
    [{cri_runtime}.cni]
      bin_dirs = [{bin_dirs}]
      conf_dir = "{paths.cni_conf_dir}"
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    # A port of its own (0: any free one) so that several nodes run side by side.
    stream_server_address = "127.0.0.1"
    stream_server_port = "0"

  # The transfer service unpacks into the default snapshotter (overlayfs) unless told.
  [[plugins.'io.containerd.transfer.v1.local'.unpack_config]]
    platform = "linux/{_go_arch()}"
    snapshotter = "native"

  [plugins.'io.containerd.nri.v1.nri']
    disable = true
"""


def _go_arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def cni_config(paths: NodePaths, addresses: ClusterAddresses) -> dict:
    return {
        "cniVersion": "1.0.0",
        "name": addresses.bridge,
        "plugins": [
            {
                "type": "bridge",
                "bridge": addresses.bridge,
                "isGateway": True,
                # Pods talk to the host (gateway address) and each other, nothing beyond: no NAT rules.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": addresses.pod_subnet, "gateway": addresses.gateway}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.ipam_dir),
                },
            },
        ],
    }


def kubelet_config(paths: NodePaths, addresses: ClusterAddresses, *, ca: Path, port: int,
                   healthz_port: int) -> dict:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": addresses.gateway,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "imageServiceEndpoint": f"unix://{paths.socket}",
        # This machine has hybrid cgroups (v1 controllers) and no CAP_SYS_RESOURCE:
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        # The API server (logs, exec) authenticates with a client certificate of the cluster's CA.
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(ca)},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "registerWithTaints": [REAL_NODE_TAINT],
        "podCIDR": addresses.pod_subnet,
        "podLogsDir": str(paths.pod_logs),
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        "maxPods": 40,
        # A shared development machine: evict only when the disk is really full.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                         "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 98,
        "imageGCLowThresholdPercent": 95,
        "nodeStatusUpdateFrequency": "10s",
        "shutdownGracePeriod": "0s",
    }


# The runc shim keeps each containerd namespace's containers under <Root>/<namespace>.
CRI_NAMESPACE = "k8s.io"


def runc_containers(paths: NodePaths) -> list[str]:
    root = paths.runc_root / CRI_NAMESPACE
    if not root.is_dir():
        return []
    proc = subprocess.run([runc_binary(), "--root", str(root), "list", "-q"], capture_output=True, text=True)
    return proc.stdout.split() if proc.returncode == 0 else []


def kill_containers(paths: NodePaths) -> None:
    """Every container this node's containerd started (runc's own list), killed and deleted."""
    root = paths.runc_root / CRI_NAMESPACE
    for container in runc_containers(paths):
        subprocess.run([runc_binary(), "--root", str(root), "delete", "--force", container], capture_output=True)


def _unescape(field: str) -> str:
    # /proc/self/mountinfo escapes space, tab, newline and backslash as octal.
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(root: Path) -> list[str]:
    prefix = str(root).rstrip("/") + "/"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix[:-1] or point.startswith(prefix):
            found.append(point)
    return found


def unmount_under(root: Path) -> list[str]:
    """Unmounts everything the kubelet and containerd mounted below `root` (deepest first);
    returns what is still mounted afterwards."""
    for _ in range(5):
        points = sorted(set(mounts_under(root)), key=lambda p: p.count("/"), reverse=True)
        if not points:
            return []
        for point in points:
            if subprocess.run(["umount", point], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", point], capture_output=True)
    return mounts_under(root)


def remove_container_log_links(root: Path, directory: Path = Path("/var/log/containers")) -> None:
    """The kubelet links every container's log into /var/log/containers (a fixed path)."""
    if not directory.is_dir():
        return
    prefix = str(root).rstrip("/") + "/"
    for link in directory.iterdir():
        try:
            if link.is_symlink() and str(link.readlink()).startswith(prefix):
                link.unlink()
        except OSError:
            pass
