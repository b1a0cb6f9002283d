"""The subprocesses of the local stack: where they may listen, how they end, and that they end
with the process that started them."""
from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys

_PR_SET_PDEATHSIG = 1
# Looked up once here: the function that runs in the child between fork and exec must not load
# libraries or take locks.
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """``preexec_fn`` for children in sessions of their own: SIGTERM them when the process that
    started them dies, even by SIGKILL, when no cleanup code runs (Linux; elsewhere a no-op)."""
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))


def terminate(proc: subprocess.Popen, *, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``proc`` is still running after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)
