"""Starting, finding and stopping the local environment's processes.

Every process is started in a session of its own, with its output in a log file, and
recorded in the environment's state file. A process counts as ours only while its
command line still names the environment's state directory, so that a recycled pid
never gets killed by mistake.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ComponentFailed(RuntimeError):
    """A component of a local cluster did not start; the message ends with its log."""

    def __init__(self, cluster: str, component: str, problem: str, log: Path | None):
        tail = log_tail(log) if log else ""
        message = f"{cluster}/{component} {problem}"
        if tail:
            message += f"\n--- last lines of {log} ---\n{tail}"
        super().__init__(message)
        self.cluster = cluster
        self.component = component


def log_tail(path: Path, lines: int = 25) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


@dataclass
class Started:
    pid: int
    log: Path


def start(argv: list[str], log: Path, env: dict[str, str] | None = None) -> Started:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Started(proc.pid, log)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X")


PF_KTHREAD = 0x00200000


def _is_kernel_thread(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The flags are the 9th field; the 2nd (comm) may contain spaces, hence the split at ")".
    return bool(int(stat.rsplit(")", 1)[-1].split()[6]) & PF_KTHREAD)


def cmdline(pid: int) -> str | None:
    """The command line of a live process, None when it is gone (or a zombie)."""
    for _ in range(20):
        try:
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        if raw:
            return raw.replace(b"\0", b" ").decode("utf-8", "replace")
        # Empty: a zombie, a kernel thread, or a process caught between fork and exec.
        if _is_zombie(pid) or _is_kernel_thread(pid):
            return None
        time.sleep(0.02)
    return None


def is_ours(pid: int, marker: str) -> bool:
    line = cmdline(pid)
    return line is not None and marker in line


def processes_with_marker(marker: str) -> list[int]:
    """All live processes whose command line names `marker` (the state directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            if is_ours(int(entry.name), marker):
                found.append(int(entry.name))
    return sorted(found)


def _reap(pid: int) -> None:
    # Processes started by this very Python process must be waited for, or they stay zombies.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop(pids: list[int], marker: str, grace_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after the grace period, for every pid that is still ours."""
    ours = [p for p in pids if is_ours(p, marker)]
    for pid in ours:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        except PermissionError:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        for pid in ours:
            _reap(pid)
        ours = [p for p in ours if is_ours(p, marker)]
        if not ours:
            return
        time.sleep(0.1)
    for pid in ours:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _reap(pid)
