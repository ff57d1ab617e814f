"""The local hybrid cloud-edge environment: a hub and two edge control planes.

Each cluster is a real etcd, kube-apiserver (TLS, RBAC, service-account keys),
kube-controller-manager and kube-scheduler built from the pinned Kubernetes release,
plus kwok, which keeps fake nodes Ready and moves their Pods through their phases
instead of kubelets running containers.

The hub and edge-a also get one *real* node each: a kubelet and a containerd that run
real containers pulled from a local OCI registry (devenv/nodes.py, devenv/registry.py).
Pods and Services use addresses in 198.18.0.0/15 (devenv/network.py).

State (ports, pids, certificates, data, logs) lives in one directory, by default
`.edgeline/dev`; kubeconfigs are written next to it as `<cluster>.kubeconfig`, and
`<cluster>.pod.kubeconfig` for use inside Pods (the API server at the host address Pods
reach, `pod_visible_host`).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgeline.devenv import images, netns, network, nodes, processes, registry
from edgeline.pki import CertificateAuthority, write_service_account_keys
from edgeline.devenv.topology import CLUSTERS, HUB_USERS, ClusterSpec

COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STATE_FILE = "state.json"


class DevEnvError(RuntimeError):
    pass


# --- locating the pinned tools ----------------------------------------------------

def repo_root() -> Path:
    """The checkout that holds dev/versions.env (from the cwd, else from this file)."""
    for start in (Path.cwd(), Path(__file__).resolve()):
        for candidate in (start, *start.parents):
            if (candidate / "dev" / "versions.env").is_file():
                return candidate
    raise DevEnvError("cannot find dev/versions.env: run edgeline dev from an Edgeline checkout")


def pinned_versions() -> dict[str, str]:
    versions = {}
    for line in (repo_root() / "dev" / "versions.env").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            versions[key] = value
    return versions


def cache_dir() -> Path:
    return Path(os.environ.get("EDGELINE_CACHE", Path.home() / ".cache" / "edgeline"))


def binary_paths() -> dict[str, Path]:
    v = pinned_versions()
    version_of = {
        "etcd": v["ETCD_VERSION"],
        "kube-apiserver": v["KUBERNETES_VERSION"],
        "kube-controller-manager": v["KUBERNETES_VERSION"],
        "kube-scheduler": v["KUBERNETES_VERSION"],
        "kwok": v["KWOK_VERSION"],
        "kubelet": v["KUBERNETES_VERSION"],
        "containerd": v["CONTAINERD_VERSION"],
        "containerd-shim-runc-v2": v["CONTAINERD_VERSION"],
    }
    return {name: cache_dir() / "bin" / f"{name}-{ver}" for name, ver in version_of.items()}


NODE_COMPONENTS = ("kubelet", "containerd", "containerd-shim-runc-v2")


def ensure_binaries(real_nodes: bool = True) -> dict[str, Path]:
    """Builds whatever is missing from the cache (minutes the first time, then never)."""
    paths = binary_paths()
    if not real_nodes:
        paths = {name: path for name, path in paths.items() if name not in NODE_COMPONENTS}
    missing = [name for name, path in paths.items() if not os.access(path, os.X_OK)]
    if missing:
        script = repo_root() / "dev" / "build-tools.sh"
        result = subprocess.run(["bash", str(script), *missing])
        if result.returncode != 0:
            raise DevEnvError(f"building {', '.join(missing)} failed (see the output above)")
    if real_nodes:
        ensure_node_tools()
    return paths


NODE_TOOLS = ("runc", "docker-registry", "skopeo", "iptables", "gcc")


# Every kubelet takes ~12 inotify instances, containerd ~4 (its CRI plugin watches the CNI
# directory), an API server ~5; Debian's default of 128 per user ends at about two environments.
INOTIFY_MINIMUMS = {"fs/inotify/max_user_instances": 8192, "fs/inotify/max_user_watches": 524288}


def _raise_inotify_limits() -> None:
    for key, minimum in INOTIFY_MINIMUMS.items():
        path = Path("/proc/sys") / key
        try:
            if int(path.read_text()) < minimum:
                path.write_text(str(minimum))
        except (OSError, ValueError) as exc:
            raise DevEnvError(f"cannot raise {key.replace('/', '.')} to {minimum} ({exc}); real nodes need it "
                              "when several environments run") from exc


def ensure_node_tools() -> None:
    """The Debian packages real nodes need (dev/install-node-tools.sh installs them)."""
    if os.geteuid() != 0:
        raise DevEnvError("real nodes (kubelet, containerd) need root: run `edgeline dev up` as root")
    _raise_inotify_limits()
    missing = [tool for tool in NODE_TOOLS if not shutil.which(tool)]
    if missing or not any((Path(d) / "bridge").exists() for d in nodes.CNI_BIN_DIRS):
        script = repo_root() / "dev" / "install-node-tools.sh"
        if subprocess.run(["bash", str(script)]).returncode != 0:
            raise DevEnvError(f"installing the node tools failed (missing: {', '.join(missing) or 'CNI plugins'}); "
                              "see the output above")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- talking to a local API server --------------------------------------------------

@dataclass(frozen=True)
class ClusterAccess:
    """Admin access to one local cluster."""

    name: str
    server: str
    kubeconfig: Path
    ca: Path
    cert: Path
    key: Path

    def _context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca))
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0,
                content_type: str = "application/json"):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        with urllib.request.urlopen(req, context=self._context(), timeout=timeout) as resp:
            text = resp.read().decode()
        return json.loads(text) if text.startswith("{") else text

    def answers(self) -> bool:
        try:
            return self.request("GET", "/readyz", timeout=2.0) == "ok"
        except (OSError, urllib.error.URLError, ssl.SSLError):
            return False


# --- one environment -----------------------------------------------------------------

class DevEnvironment:
    def __init__(self, state_dir: Path | str = ".edgeline/dev", clusters: tuple[ClusterSpec, ...] = CLUSTERS,
                 real_nodes: bool | None = None):
        self.state_dir = Path(state_dir).resolve()
        if real_nodes is None:
            # EDGELINE_DEV_REAL_NODES=0: kwok nodes only (no root needed, nothing runs for real).
            real_nodes = os.environ.get("EDGELINE_DEV_REAL_NODES", "1") != "0"
        if not real_nodes:
            clusters = tuple(dataclasses.replace(spec, real_node=None) for spec in clusters)
        self.clusters = clusters
        self.kubernetes_version = pinned_versions()["KUBERNETES_VERSION"]

    # The absolute state directory appears in every component's command line.
    @property
    def marker(self) -> str:
        return str(self.state_dir) + "/"

    def kubeconfig(self, cluster: str) -> Path:
        return self.state_dir / f"{cluster}.kubeconfig"

    def access(self, cluster: str) -> ClusterAccess:
        state = self._load_state()
        pki = self.state_dir / cluster / "pki"
        return ClusterAccess(
            name=cluster,
            server=f"https://127.0.0.1:{state['clusters'][cluster]['ports']['apiserver']}",
            kubeconfig=self.kubeconfig(cluster),
            ca=pki / "ca.crt",
            cert=pki / "admin.crt",
            key=pki / "admin.key",
        )

    # what Pods and tests need to know --------------------------------------------------
    def pod_kubeconfig(self, cluster: str) -> Path:
        """Admin kubeconfig whose server is the API server at `pod_visible_host` (for Pods)."""
        return self.state_dir / f"{cluster}.pod.kubeconfig"

    @property
    def pod_visible_host(self) -> str:
        """A host address that Pods on every real node reach (the hub node's bridge gateway):
        API servers listen there, and so should a test's HTTP server that Pods call."""
        return self._load_state()["network"]["pod_visible_host"]

    @property
    def registry(self) -> str:
        """host:port of the local registry (plain HTTP, loopback only)."""
        return self._load_state()["registry"]["address"]

    @property
    def images(self) -> dict[str, str]:
        """Image references in the local registry: pause, hello and those of .edgeline/images.env
        (operator, runtime, ... by the lower-cased name before _IMAGE)."""
        return dict(self._load_state().get("images", {}))

    def real_node(self, cluster: str) -> str:
        """The name of `cluster`'s real node."""
        node = self._load_state()["clusters"][cluster].get("node")
        if not node:
            raise DevEnvError(f"{cluster} has no real node")
        return node["name"]

    def real_node_paths(self, cluster: str) -> nodes.NodePaths:
        return nodes.NodePaths(self.state_dir / cluster / "node")

    def cluster_addresses(self, cluster: str) -> network.ClusterAddresses:
        slot = self._load_state()["network"]["slot"]
        index = [spec.name for spec in self.clusters].index(cluster)
        return network.ClusterAddresses(slot, index, cluster)

    def user_tokens(self) -> dict[str, str]:
        """Bearer tokens of the hub's test users (see topology.HUB_USERS)."""
        return json.loads((self.state_dir / "hub" / "pki" / "users.json").read_text())

    # state -------------------------------------------------------------------------
    def _load_state(self) -> dict:
        path = self.state_dir / STATE_FILE
        if not path.exists():
            return {"clusters": {}}
        return json.loads(path.read_text())

    def _save_state(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.state_dir / (STATE_FILE + ".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_dir / STATE_FILE)

    # status ------------------------------------------------------------------------
    def status(self) -> dict[str, dict]:
        """Per cluster: whether it answers, and which of its components run."""
        state = self._load_state()
        report = {}
        for spec in self.clusters:
            entry = state["clusters"].get(spec.name)
            if not entry:
                report[spec.name] = {"answers": False, "components": {}}
                continue
            running = {c: processes.is_ours(pid, self.marker) for c, pid in entry.get("pids", {}).items()}
            answers = self.access(spec.name).answers()
            report[spec.name] = {
                "answers": answers,
                "components": running,
                "server": f"https://127.0.0.1:{entry['ports']['apiserver']}",
                "kubeconfig": str(self.kubeconfig(spec.name)),
            }
            if entry.get("node"):
                report[spec.name]["node"] = self._node_report(spec.name, entry["node"], answers)
        return report

    def _node_report(self, cluster: str, node: dict, answers: bool) -> dict:
        report = {"name": node["name"], "pod_subnet": node["pod_subnet"], "ready": False, "runtime": None,
                  "kubelet": None}
        if not answers:
            return report
        try:
            obj = self.access(cluster).request("GET", f"/api/v1/nodes/{node['name']}")
        except (OSError, urllib.error.URLError):
            return report
        status = obj.get("status", {})
        report["ready"] = any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", []))
        report["runtime"] = status.get("nodeInfo", {}).get("containerRuntimeVersion")
        report["kubelet"] = status.get("nodeInfo", {}).get("kubeletVersion")
        return report

    def registry_status(self) -> dict:
        """The local registry: address, whether it runs and answers, what was pushed."""
        state = self._load_state()
        entry = state.get("registry")
        if not entry:
            return {"running": False, "answers": False, "address": None, "images": {}}
        return {
            "running": processes.is_ours(entry.get("pid", 0), self.marker),
            "answers": _http_ok(f"http://{entry['address']}/v2/"),
            "address": entry["address"],
            "images": state.get("images", {}),
        }

    def is_up(self) -> bool:
        report = self.status()
        clusters_up = all(r["answers"] and r["components"] and all(r["components"].values()) and
                          r.get("node", {}).get("ready", True) for r in report.values())
        if not clusters_up:
            return False
        if any(spec.real_node for spec in self.clusters):
            reg = self.registry_status()
            return reg["running"] and reg["answers"]
        return True

    def freeze(self, cluster: str, component: str = "kube-apiserver") -> None:
        """Stop a component without killing it (SIGSTOP): to a client it looks like a link
        that went down, connections hang instead of being refused."""
        self._signal(cluster, component, signal.SIGSTOP)

    def thaw(self, cluster: str, component: str = "kube-apiserver") -> None:
        self._signal(cluster, component, signal.SIGCONT)

    def _signal(self, cluster: str, component: str, sig: int) -> None:
        pid = self._load_state()["clusters"][cluster]["pids"][component]
        if not processes.is_ours(pid, self.marker):
            raise DevEnvError(f"{component} of {cluster} is not running")
        os.kill(pid, sig)

    # up ----------------------------------------------------------------------------
    def up(self, timeout_s: float = 180.0) -> None:
        if self.is_up():
            # Images built since the last `up` go in (unchanged archives are skipped).
            if any(spec.real_node for spec in self.clusters):
                self.push_images()
            return
        # Half-started leftovers of an earlier attempt go first.
        self.down()
        previous = self._load_state()
        previous_registry = previous.get("registry", {}).get("address")
        real_nodes = any(spec.real_node for spec in self.clusters)
        binaries = ensure_binaries(real_nodes)
        state: dict = {"clusters": {}}
        try:
            if real_nodes:
                slot = network.claim_slot(self.clusters[0].name, previous.get("last_slot"))
            else:
                # kwok only: nothing routes to these ranges, no bridge needed (nor root).
                slot = previous.get("last_slot") or 0
        except network.NetworkError as exc:
            raise DevEnvError(str(exc)) from exc
        addresses = {spec.name: network.ClusterAddresses(slot, i, spec.name) for i, spec in enumerate(self.clusters)}
        hub_address = addresses[self.clusters[0].name]
        state["last_slot"] = slot
        if previous.get("last_slot") != slot:
            # Services in etcd keep the addresses of the range they were made in (the `kubernetes`
            # Service, the default ServiceCIDR): another slot, or data from before slots, starts empty.
            for spec in self.clusters:
                data = self.state_dir / spec.name / "etcd-data"
                if data.exists():
                    print(f"edgeline dev: {spec.name} starts empty (its data belongs to another address range)",
                          file=sys.stderr)
                    shutil.rmtree(data)
        state["network"] = {
            "slot": slot,
            "pod_visible_host": hub_address.gateway,
            "bridges": [a.bridge for name, a in addresses.items() if real_nodes and
                        (a is hub_address or any(s.name == name and s.real_node for s in self.clusters))],
            "service_rules": False,
        }
        self._save_state(state)
        try:
            # The hub's bridge always exists (it holds the slot and pod_visible_host).
            for name, a in addresses.items():
                if a.bridge in state["network"]["bridges"]:
                    network.create_bridge(a)
        except network.NetworkError as exc:
            self.down()
            raise DevEnvError(str(exc)) from exc
        for spec in self.clusters:
            entry = {"ports": self._allocate_ports(spec), "pids": {}, "service_range": addresses[spec.name].service_range}
            if spec.real_node:
                a = addresses[spec.name]
                entry["node"] = {"name": spec.real_node.name, "pod_subnet": a.pod_subnet, "gateway": a.gateway,
                                 "bridge": a.bridge}
            state["clusters"][spec.name] = entry
            self._write_pki(spec, addresses[spec.name], hub_address.gateway)
        self._save_state(state)
        pushes = None
        errors = []
        with ThreadPoolExecutor(max_workers=len(self.clusters) + 1) as pool:
            if real_nodes:
                try:
                    self._start_registry(state, timeout_s, previous_registry,
                                         previous.get("pushed_archives", {}))
                except (DevEnvError, processes.ComponentFailed, images.ImageBuildError,
                        registry.RegistryError) as exc:
                    self._save_state(state)
                    self.down()
                    raise DevEnvError(str(exc)) from exc
                # The images of .edgeline/images.env go in while the clusters start.
                pushes = pool.submit(self._push_built_images, state)
            # Clusters start in parallel: each one's steps are sequential.
            futures = [pool.submit(self._start_cluster, spec, binaries, state, timeout_s) for spec in self.clusters]
            for f in futures:
                try:
                    f.result()
                except (processes.ComponentFailed, nodes.NodeSetupError) as exc:
                    errors.append(str(exc))
            if pushes is not None:
                try:
                    references, fingerprints = pushes.result()
                    state["images"].update(references)
                    state["pushed_archives"] = fingerprints
                except (registry.RegistryError, OSError, subprocess.TimeoutExpired) as exc:
                    # The clusters are still worth having (an image build may be under way):
                    # the image is missing from `images`, and push_images() says why.
                    print(f"edgeline dev: the images of {registry.IMAGES_ENV} were not pushed: {exc}",
                          file=sys.stderr)
        if not errors and real_nodes:
            rules = [(addresses[spec.name].pod_subnet, addresses[spec.name].service_ip, hub_address.gateway,
                      state["clusters"][spec.name]["ports"]["apiserver"])
                     for spec in self.clusters if spec.real_node]
            try:
                network.install_service_rules(slot, rules)
                state["network"]["service_rules"] = True
            except network.NetworkError as exc:
                errors.append(f"network: {exc}")
        self._save_state(state)
        if errors:
            self.down()
            raise DevEnvError("\n\n".join(errors))

    def _allocate_ports(self, spec: ClusterSpec) -> dict[str, int]:
        ports = {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}
        if spec.real_node:
            ports.update(kubelet=free_port(), kubelet_healthz=free_port())
        return ports

    # registry ------------------------------------------------------------------------
    def _start_registry(self, state: dict, timeout_s: float, previous: str | None,
                        previous_pushed: dict[str, str]) -> None:
        # The same port as last time when it is free: Pods stored in etcd name images by it.
        port = int(previous.rsplit(":", 1)[1]) if previous else 0
        if not port or not _port_free(port):
            port = free_port()
        base = self.state_dir / "registry"
        base.mkdir(parents=True, exist_ok=True)
        config = base / "config.yml"
        registry.write_config(config, base / "storage", port)
        started = processes.start([registry.registry_binary(), "serve", str(config)], base / "registry.log")
        address = f"127.0.0.1:{port}"
        state["registry"] = {"address": address, "pid": started.pid}
        state["images"] = {}
        if previous == address:
            state["pushed_archives"] = previous_pushed
        self._save_state(state)
        deadline = time.monotonic() + timeout_s
        while not _http_ok(f"http://{address}/v2/"):
            if not processes.is_ours(started.pid, self.marker):
                raise processes.ComponentFailed("registry", "docker-registry", "exited during start-up", started.log)
            if time.monotonic() > deadline:
                raise processes.ComponentFailed("registry", "docker-registry", "did not answer in time", started.log)
            time.sleep(0.1)
        for name, spec in images.IMAGES.items():
            built = images.build(spec, repo_root(), cache_dir())
            state["images"][name] = registry.push(built.skopeo_source, address, f"edgeline/{spec.name}", built.tag,
                                                  base / "push.log")
        self._save_state(state)

    def _push_built_images(self, state: dict) -> tuple[dict[str, str], dict[str, str]]:
        """Pushes what .edgeline/images.env names, skipping archives pushed unchanged to the same
        reference before (the registry's storage outlives `down`). Returns (references, fingerprints)."""
        env_file = repo_root() / registry.IMAGES_ENV
        if not env_file.is_file():
            return {}, {}
        address = state["registry"]["address"]
        done = state.get("pushed_archives", {})
        references, fingerprints = {}, {}
        wanted = registry.images_to_push(registry.read_images_env(env_file), repo_root())
        for name, (source, repository, tag) in wanted.items():
            archive = Path(source.split(":", 1)[1])
            stat = archive.stat()
            target = f"{address}/{repository}:{tag}"
            fingerprint = f"{archive}:{stat.st_size}:{stat.st_mtime_ns}->{target}"
            if done.get(name) != fingerprint:
                registry.push(source, address, repository, tag, self.state_dir / "registry" / "push.log")
            references[name], fingerprints[name] = target, fingerprint
        return references, fingerprints

    def push_images(self) -> dict[str, str]:
        """Pushes the images of .edgeline/images.env into the running registry (`up` does it too;
        this is for images built after `up`). Returns all image references (as `images`)."""
        state = self._load_state()
        if not self.registry_status()["running"]:
            raise DevEnvError("the local registry is not running: run `edgeline dev up`")
        try:
            references, fingerprints = self._push_built_images(state)
        except (registry.RegistryError, OSError, subprocess.TimeoutExpired) as exc:
            raise DevEnvError(f"registry: {exc}") from exc
        state = self._load_state()
        state["images"].update(references)
        state.setdefault("pushed_archives", {}).update(fingerprints)
        self._save_state(state)
        return dict(state["images"])

    def _write_pki(self, spec: ClusterSpec, addresses: network.ClusterAddresses, pod_visible_host: str) -> None:
        pki = self.state_dir / spec.name / "pki"
        if pki.exists():
            shutil.rmtree(pki)
        pki.mkdir(parents=True)
        ca = CertificateAuthority.create(f"edgeline-dev-{spec.name}-ca")
        (pki / "ca.crt").write_bytes(ca.cert_pem)
        # Pods reach the API server at pod_visible_host, or at the `kubernetes` Service's address.
        server_names = ("localhost", "127.0.0.1", "kubernetes", "kubernetes.default",
                        "kubernetes.default.svc", addresses.service_ip, pod_visible_host, addresses.gateway)
        cert, key = ca.issue("kube-apiserver", server_names=server_names)
        (pki / "apiserver.crt").write_bytes(cert)
        (pki / "apiserver.key").write_bytes(key)
        clients = {
            "admin": ("edgeline-dev-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            # kwok acts for every fake kubelet: it needs broad rights on a dev cluster.
            "kwok": ("kwok-controller", ("system:masters",)),
            # The API server's identity towards kubelets (logs, exec, port-forward).
            "apiserver-kubelet-client": ("kube-apiserver-kubelet-client", ("system:masters",)),
        }
        if spec.real_node:
            clients["kubelet"] = (f"system:node:{spec.real_node.name}", ("system:nodes",))
        for file_name, (cn, orgs) in clients.items():
            cert, key = ca.issue(cn, organizations=orgs, client=True)
            (pki / f"{file_name}.crt").write_bytes(cert)
            (pki / f"{file_name}.key").write_bytes(key)
        write_service_account_keys(pki / "sa.key", pki / "sa.pub")
        if spec.tier == "cloud":
            tokens = {user.name: secrets.token_urlsafe(24) for user in HUB_USERS}
            lines = []
            for user in HUB_USERS:
                groups = ",".join(user.groups)
                lines.append(f'{tokens[user.name]},{user.name},{user.name},"{groups}"')
            (pki / "tokens.csv").write_text("\n".join(lines) + "\n")
            (pki / "users.json").write_text(json.dumps(tokens, indent=2))

    def _component_kubeconfig(self, spec: ClusterSpec, client: str, port: int) -> Path:
        pki = self.state_dir / spec.name / "pki"
        path = self.state_dir / spec.name / f"{client}.kubeconfig"
        path.write_text(yaml.safe_dump(_kubeconfig(
            spec.name, f"https://127.0.0.1:{port}", pki / "ca.crt", pki / f"{client}.crt", pki / f"{client}.key"
        )))
        return path

    def _start_cluster(self, spec: ClusterSpec, binaries: dict[str, Path], state: dict, timeout_s: float) -> None:
        entry = state["clusters"][spec.name]
        ports = entry["ports"]
        base = self.state_dir / spec.name
        pki = base / "pki"
        logs = base / "logs"
        deadline = time.monotonic() + timeout_s
        pod_visible_host = state["network"]["pod_visible_host"]

        def launch(component: str, argv: list[str]) -> processes.Started:
            started = processes.start([str(binaries[component]), *argv], logs / f"{component}.log")
            entry["pids"][component] = started.pid
            return started

        data = base / "etcd-data"
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd_peer']}"
        etcd = launch("etcd", [
            f"--name={spec.name}", f"--data-dir={data}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster={spec.name}={peer_url}",
            # Tests and demos need speed, not durability.
            "--unsafe-no-fsync", "--log-level=warn", "--quota-backend-bytes=2147483648",
        ])
        self._wait(spec, "etcd", etcd, deadline, lambda: _http_ok(f"{etcd_url}/health"))

        apiserver_args = [
            f"--etcd-servers={etcd_url}",
            # All addresses: loopback for the host's clients, the bridge gateways for Pods.
            "--bind-address=0.0.0.0", f"--advertise-address={pod_visible_host}", f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            # Node: what the real nodes' kubelets may do (system:node:<name>).
            "--authorization-mode=Node,RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={entry['service_range']}",
            "--endpoint-reconciler-type=none",
            # Webhook and aggregated API calls go to an endpoint (Pod IP) of the Service:
            # there is no kube-proxy for ClusterIPs.
            "--enable-aggregator-routing=true",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP,Hostname",
            "--allow-privileged=true",
            "--profiling=false",
            f"--cert-dir={pki}",
        ]
        if (pki / "tokens.csv").exists():
            apiserver_args.append(f"--token-auth-file={pki / 'tokens.csv'}")
        apiserver = launch("kube-apiserver", apiserver_args)
        access = ClusterAccess(spec.name, f"https://127.0.0.1:{ports['apiserver']}", self.kubeconfig(spec.name),
                               pki / "ca.crt", pki / "admin.crt", pki / "admin.key")
        self._wait(spec, "kube-apiserver", apiserver, deadline, access.answers)

        self.kubeconfig(spec.name).write_text(yaml.safe_dump(_kubeconfig(
            spec.name, access.server, pki / "ca.crt", pki / "admin.crt", pki / "admin.key", embed=True
        )))
        self._check_kubernetes_service(spec, access, deadline)
        self.pod_kubeconfig(spec.name).write_text(yaml.safe_dump(_kubeconfig(
            spec.name, f"https://{pod_visible_host}:{ports['apiserver']}", pki / "ca.crt", pki / "admin.crt",
            pki / "admin.key", embed=True
        )))

        launch("kube-controller-manager", [
            f"--kubeconfig={self._component_kubeconfig(spec, 'controller-manager', ports['apiserver'])}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--use-service-account-credentials=true",
            "--leader-elect=false",
            "--secure-port=0",
            "--controllers=*",
        ])
        launch("kube-scheduler", [
            f"--kubeconfig={self._component_kubeconfig(spec, 'scheduler', ports['apiserver'])}",
            "--leader-elect=false",
            "--secure-port=0",
        ])
        kwok = launch("kwok", [
            f"--kubeconfig={self._component_kubeconfig(spec, 'kwok', ports['apiserver'])}",
            "--manage-all-nodes=false",
            "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
            "--server-address=",
            # Leases keep the fake nodes healthy in the eyes of the node lifecycle controller.
            "--node-lease-duration-seconds=40",
            f"--cidr={self.cluster_addresses_from(state, spec.name).fake_pod_range}",
            f"--node-ip={self.cluster_addresses_from(state, spec.name).fake_node_ip}",
            f"--config={self._kwok_config(spec)}",
        ])
        for node in spec.nodes:
            self._create(access, "/api/v1/nodes", node.manifest(self.kubernetes_version, spec.k3s))
        self._wait(spec, "kwok", kwok, deadline, lambda: self._nodes_ready(access, {n.name for n in spec.nodes}))
        for component in ("kube-controller-manager", "kube-scheduler"):
            pid = entry["pids"][component]
            if not processes.is_ours(pid, self.marker):
                raise processes.ComponentFailed(spec.name, component, "exited", logs / f"{component}.log")
        if spec.real_node:
            self._start_node(spec, binaries, state, access, launch, deadline)

    def _start_node(self, spec: ClusterSpec, binaries: dict[str, Path], state: dict, access: ClusterAccess,
                    launch, deadline: float) -> None:
        entry = state["clusters"][spec.name]
        ports = entry["ports"]
        node = spec.real_node
        pki = self.state_dir / spec.name / "pki"
        paths = self.real_node_paths(spec.name)
        addresses = self.cluster_addresses_from(state, spec.name)
        nodes.prepare(paths, addresses, registry=state["registry"]["address"],
                      sandbox_image=state["images"]["pause"], shim=binaries["containerd-shim-runc-v2"])
        log = self.state_dir / spec.name / "logs" / "containerd.log"
        offset = log.stat().st_size if log.exists() else 0  # the log of earlier runs goes on
        containerd = launch("containerd", ["--config", str(paths.containerd_config)])
        self._wait(spec, "containerd", containerd, deadline,
                   lambda: paths.socket.is_socket() and "containerd successfully booted" in _read_from(log, offset))
        failed_cri = _containerd_cri_failure(_read_from(log, offset))
        if failed_cri:
            raise processes.ComponentFailed(spec.name, "containerd", f"has no CRI: {failed_cri}", containerd.log)

        paths.kubelet_kubeconfig.write_text(yaml.safe_dump(_kubeconfig(
            spec.name, access.server, pki / "ca.crt", pki / "kubelet.crt", pki / "kubelet.key"
        )))
        paths.kubelet_config.write_text(yaml.safe_dump(nodes.kubelet_config(
            paths, addresses, ca=pki / "ca.crt", port=ports["kubelet"], healthz_port=ports["kubelet_healthz"]
        )))
        kubelet = launch("kubelet", [
            f"--config={paths.kubelet_config}",
            f"--kubeconfig={paths.kubelet_kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.base / 'kubelet-pki'}",
            f"--hostname-override={node.name}",
            f"--node-ip={addresses.gateway}",
            f"--node-labels={nodes.REAL_NODE_LABEL}=true",
            "--v=1",
        ])
        self._wait(spec, "kubelet", kubelet, deadline, lambda: self._node_ready(access, node.name))
        # Labels a kubelet may not set on itself (node-role.kubernetes.io/...) come from the admin.
        labels = {**node.labels, nodes.REAL_NODE_LABEL: "true"}
        try:
            access.request("PATCH", f"/api/v1/nodes/{node.name}", {"metadata": {"labels": labels}},
                           content_type="application/merge-patch+json")
        except urllib.error.HTTPError as exc:
            raise processes.ComponentFailed(spec.name, "setup", f"could not label node {node.name}: {exc}", None)

    def _check_kubernetes_service(self, spec: ClusterSpec, access: ClusterAccess, deadline: float) -> None:
        """In-cluster configuration uses the `kubernetes` Service's address: it must be the one the
        DNAT rule and the serving certificate are made for (etcd data of another slot would keep
        another; `up` starts such clusters empty)."""
        expected = self.cluster_addresses(spec.name).service_ip
        while time.monotonic() < deadline:
            try:
                ip = access.request("GET", "/api/v1/namespaces/default/services/kubernetes")["spec"]["clusterIP"]
            except (OSError, KeyError):
                time.sleep(0.25)
                continue
            if ip == expected:
                return
            raise processes.ComponentFailed(
                spec.name, "setup", f"the kubernetes Service has {ip}, not {expected} (etcd data from another "
                f"address range): remove {self.state_dir / spec.name / 'etcd-data'} and run `edgeline dev up` again",
                None)
        raise processes.ComponentFailed(spec.name, "setup", "the kubernetes Service was not created in time", None)

    def cluster_addresses_from(self, state: dict, cluster: str) -> network.ClusterAddresses:
        index = [spec.name for spec in self.clusters].index(cluster)
        return network.ClusterAddresses(state["network"]["slot"], index, cluster)

    def _node_ready(self, access: ClusterAccess, name: str) -> bool:
        try:
            node = access.request("GET", f"/api/v1/nodes/{name}")
        except (OSError, urllib.error.URLError):
            return False
        return any(c["type"] == "Ready" and c["status"] == "True" for c in node.get("status", {}).get("conditions", []))

    def _kwok_config(self, spec: ClusterSpec) -> Path:
        source = repo_root() / "dev" / "kwok" / "stages.yaml"
        target = self.state_dir / spec.name / "kwok.yaml"
        target.write_text(source.read_text())
        return target

    def _create(self, access: ClusterAccess, path: str, body: dict) -> None:
        try:
            access.request("POST", path, body)
        except urllib.error.HTTPError as exc:
            if exc.code != 409:
                raise processes.ComponentFailed(access.name, "setup", f"could not create {path}: {exc}", None)

    def _nodes_ready(self, access: ClusterAccess, expected: set[str]) -> bool:
        try:
            items = access.request("GET", "/api/v1/nodes")["items"]
        except (OSError, urllib.error.URLError):
            return False
        ready = {
            n["metadata"]["name"] for n in items
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        }
        return expected <= ready

    def _wait(self, spec, component, started: processes.Started, deadline: float, check) -> None:
        while time.monotonic() < deadline:
            if not processes.is_ours(started.pid, self.marker):
                raise processes.ComponentFailed(spec.name, component, "exited during start-up", started.log)
            if check():
                return
            time.sleep(0.25)
        raise processes.ComponentFailed(spec.name, component, "did not become ready in time", started.log)

    # down --------------------------------------------------------------------------
    def down(self) -> None:
        state = self._load_state()
        # The kubelets first, so that they restart nothing; then every container their
        # containerd started (runc's list), while containerd still runs.
        kubelets = [entry["pids"]["kubelet"] for entry in state["clusters"].values() if "kubelet" in entry.get("pids", {})]
        processes.stop(kubelets, self.marker)
        for name, entry in state["clusters"].items():
            if entry.get("node"):
                nodes.kill_containers(self.real_node_paths(name))
        pids = [pid for entry in state["clusters"].values() for pid in entry.get("pids", {}).values()]
        if state.get("registry"):
            pids.append(state["registry"].get("pid", 0))
        # Also whatever a crashed `up` started but never recorded (containerd's shims included:
        # their command line names containerd's socket in the state directory).
        pids += processes.processes_with_marker(self.marker)
        processes.stop(sorted(set(pids)), self.marker)
        for entry in state["clusters"].values():
            entry["pids"] = {}
        # Pod volumes, the kubelet's own bind mount, containerd's rootfs, shm and netns mounts.
        left = nodes.unmount_under(self.state_dir)
        nodes.remove_container_log_links(self.state_dir)
        net = state.get("network")
        if net:
            if owns_slot(net):
                network.remove_service_rules(net["slot"])
                netns.SiteNetwork(net["slot"]).delete()     # a pull site a test left behind (devenv/netns.py)
            for bridge in net.get("bridges", []):
                network.delete_bridge(bridge)
            state["network"] = {}
        if state.get("registry"):
            state["registry"]["pid"] = 0
        if state["clusters"] or net:
            self._save_state(state)
        if left:
            raise DevEnvError(f"still mounted after `down`: {', '.join(left)}")

    def leftover_mounts(self) -> list[str]:
        return nodes.mounts_under(self.state_dir)

    def leftover_processes(self) -> list[int]:
        return processes.processes_with_marker(self.marker)


def owns_slot(network_state: dict) -> bool:
    """Whether this environment claimed its network slot (it made the hub's bridge). A kwok-only
    environment (benches) only borrows a slot number: the slot's NAT rules and pull-site network
    belong to whichever environment holds the bridge, and its `down` must leave them alone (one
    bench's teardown once deleted a running e2e's site network: docs/decisions.md, idle-sites)."""
    return bool(network_state.get("bridges"))


def _read_from(log: Path, offset: int) -> str:
    try:
        with log.open("rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _containerd_cri_failure(text: str) -> str | None:
    """The log line saying that the CRI plugin did not load (containerd runs on without it)."""
    for line in text.splitlines():
        if "failed to load plugin" in line and "io.containerd.grpc.v1.cri" in line:
            return line
    return None


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        # As the registry (Go) binds: connections of its last run in TIME_WAIT do not count.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2.0) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def _kubeconfig(name: str, server: str, ca: Path, cert: Path, key: Path, embed: bool = False) -> dict:
    if embed:
        cluster = {"server": server, "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode()}
        user = {
            "client-certificate-data": base64.b64encode(cert.read_bytes()).decode(),
            "client-key-data": base64.b64encode(key.read_bytes()).decode(),
        }
    else:
        cluster = {"server": server, "certificate-authority": str(ca)}
        user = {"client-certificate": str(cert), "client-key": str(key)}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": f"{name}-admin", "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": f"{name}-admin"}}],
        "current-context": name,
    }


def user_kubeconfig(env: DevEnvironment, cluster: str, user: str) -> Path:
    """A kubeconfig that authenticates as a test user by bearer token (no client cert,
    which the API server would prefer over the token)."""
    access = env.access(cluster)
    token = env.user_tokens()[user]
    path = env.state_dir / cluster / f"user-{user}.kubeconfig"
    config = _kubeconfig(cluster, access.server, access.ca, access.cert, access.key, embed=True)
    config["users"] = [{"name": f"{cluster}-admin", "user": {"token": token}}]
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path
