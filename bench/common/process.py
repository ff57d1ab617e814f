"""What /proc and the operator's /metrics say about the operator process under a bench."""

from __future__ import annotations

import os
import re
import urllib.request
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mib(pid: int) -> dict:
    """Resident memory now (VmRSS) and at its peak (VmHWM), MiB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            out[line.split(":")[0]] = round(int(line.split()[1]) / 1024, 1)
    return out


def operator_requests(port: int) -> dict[str, float]:
    """The operator's requests to member clusters so far, by purpose (its /metrics on `port`)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    return {m.group(1): float(m.group(2)) for m in re.finditer(
        r'^edgeline_member_cluster_requests_total\{purpose="(\w+)"\} ([0-9.e+]+)$', text, re.M)}
