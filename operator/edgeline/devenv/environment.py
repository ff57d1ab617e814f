"""The local hybrid cloud-edge environment: a hub and two edge control planes.

Each cluster is a real etcd, kube-apiserver (TLS, RBAC, service-account keys),
kube-controller-manager and kube-scheduler built from the pinned Kubernetes release,
plus kwok, which keeps fake nodes Ready and moves their Pods through their phases
instead of kubelets running containers.

State (ports, pids, certificates, data, logs) lives in one directory, by default
`.edgeline/dev`; kubeconfigs are written next to it as `<cluster>.kubeconfig`.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import yaml

from edgeline.devenv import processes
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
    }
    return {name: cache_dir() / "bin" / f"{name}-{ver}" for name, ver in version_of.items()}


def ensure_binaries() -> dict[str, Path]:
    """Builds whatever is missing from the cache (minutes the first time, then never)."""
    paths = binary_paths()
    missing = [name for name, path in paths.items() if not os.access(path, os.X_OK)]
    if missing:
        script = repo_root() / "dev" / "build-tools.sh"
        result = subprocess.run(["bash", str(script), *missing])
        if result.returncode != 0:
            raise DevEnvError(f"building {', '.join(missing)} failed (see the output above)")
    return paths


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

    def request(self, method: str, path: str, body: dict | None = None, timeout: float = 5.0):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
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
    def __init__(self, state_dir: Path | str = ".edgeline/dev", clusters: tuple[ClusterSpec, ...] = CLUSTERS):
        self.state_dir = Path(state_dir).resolve()
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
            report[spec.name] = {
                "answers": self.access(spec.name).answers(),
                "components": running,
                "server": f"https://127.0.0.1:{entry['ports']['apiserver']}",
                "kubeconfig": str(self.kubeconfig(spec.name)),
            }
        return report

    def is_up(self) -> bool:
        report = self.status()
        return all(r["answers"] and r["components"] and all(r["components"].values()) for r in report.values())

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
            return
        # Half-started leftovers of an earlier attempt go first.
        self.down()
        binaries = ensure_binaries()
        state = {"clusters": {}}
        for spec in self.clusters:
            state["clusters"][spec.name] = {"ports": self._allocate_ports(), "pids": {}}
            self._write_pki(spec)
        self._save_state(state)
        # Clusters start in parallel: each one's steps are sequential.
        with ThreadPoolExecutor(max_workers=len(self.clusters)) as pool:
            futures = [pool.submit(self._start_cluster, spec, binaries, state, timeout_s) for spec in self.clusters]
            errors = []
            for f in futures:
                try:
                    f.result()
                except processes.ComponentFailed as exc:
                    errors.append(str(exc))
        self._save_state(state)
        if errors:
            self.down()
            raise DevEnvError("\n\n".join(errors))

    def _allocate_ports(self) -> dict[str, int]:
        return {"etcd": free_port(), "etcd_peer": free_port(), "apiserver": free_port()}

    def _write_pki(self, spec: ClusterSpec) -> None:
        pki = self.state_dir / spec.name / "pki"
        if pki.exists():
            shutil.rmtree(pki)
        pki.mkdir(parents=True)
        ca = CertificateAuthority.create(f"edgeline-dev-{spec.name}-ca")
        (pki / "ca.crt").write_bytes(ca.cert_pem)
        server_names = ("localhost", "127.0.0.1", "kubernetes", "kubernetes.default",
                        "kubernetes.default.svc", "10.96.0.1")
        cert, key = ca.issue("kube-apiserver", server_names=server_names)
        (pki / "apiserver.crt").write_bytes(cert)
        (pki / "apiserver.key").write_bytes(key)
        clients = {
            "admin": ("edgeline-dev-admin", ("system:masters",)),
            "controller-manager": ("system:kube-controller-manager", ()),
            "scheduler": ("system:kube-scheduler", ()),
            # kwok acts for every fake kubelet: it needs broad rights on a dev cluster.
            "kwok": ("kwok-controller", ("system:masters",)),
        }
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
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={ports['apiserver']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}", f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/16",
            "--endpoint-reconciler-type=none",
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
            f"--config={self._kwok_config(spec)}",
        ])
        for node in spec.nodes:
            self._create(access, "/api/v1/nodes", node.manifest(self.kubernetes_version, spec.k3s))
        self._wait(spec, "kwok", kwok, deadline, lambda: self._nodes_ready(access, len(spec.nodes)))
        for component in ("kube-controller-manager", "kube-scheduler"):
            pid = entry["pids"][component]
            if not processes.is_ours(pid, self.marker):
                raise processes.ComponentFailed(spec.name, component, "exited", logs / f"{component}.log")

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

    def _nodes_ready(self, access: ClusterAccess, expected: int) -> bool:
        try:
            nodes = access.request("GET", "/api/v1/nodes")["items"]
        except (OSError, urllib.error.URLError):
            return False
        ready = [
            n for n in nodes
            if any(c["type"] == "Ready" and c["status"] == "True" for c in n.get("status", {}).get("conditions", []))
        ]
        return len(ready) >= expected

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
        pids = [pid for entry in state["clusters"].values() for pid in entry.get("pids", {}).values()]
        # Also whatever a crashed `up` started but never recorded.
        pids += processes.processes_with_marker(self.marker)
        processes.stop(sorted(set(pids)), self.marker)
        for entry in state["clusters"].values():
            entry["pids"] = {}
        if state["clusters"]:
            self._save_state(state)

    def leftover_processes(self) -> list[int]:
        return processes.processes_with_marker(self.marker)


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
