"""kubectl against a bench environment's hub, and a polling wait: what the scale and pull-site
benches share."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

KUBECTL = str(Path(sys.executable).parent / "kubectl")


def kubectl(env, *args, input=None, check=True, timeout=600):
    proc = subprocess.run([KUBECTL, "--kubeconfig", str(env.kubeconfig("hub")), *args], input=input,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode:
        raise RuntimeError(f"kubectl {' '.join(args)}: {proc.stderr}")
    return proc.stdout


def apply(env, docs, chunk=250):
    """Server-side-sized chunks: one kubectl per `chunk` objects."""
    for i in range(0, len(docs), chunk):
        kubectl(env, "apply", "-f", "-", input=yaml.safe_dump_all(docs[i:i + chunk]))


def wait(check, timeout, what, every=0.1):
    """Polls `check` until it returns something true (a bench measures, so it polls tightly)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(every)
    raise TimeoutError(what)
