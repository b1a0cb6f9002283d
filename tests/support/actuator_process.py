"""The actuator as a real subprocess (``python -m actuator serve``), on a free loopback port."""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from .polling import wait_for
from .ports import free_port
from .workers import ROOT


class ActuatorProcess:
    """``verify`` (a CA file) and ``cert`` (a client certificate and key) are what HTTPS requests to
    it need when ``args`` include ``--certfile`` (and ``--client-ca``). ``port`` is a free one
    unless given (a login callback registered at a provider must know it beforehand)."""

    def __init__(self, rules: Path, broker_url: str, *args: str, audit_db: Path | None = None,
                 verify: Path | None = None, cert: tuple[Path, Path] | None = None, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"{'https' if '--certfile' in args else 'http'}://127.0.0.1:{self.port}"
        self.verify = str(verify) if verify else True
        self.cert = tuple(map(str, cert)) if cert else None
        self.audit_db = audit_db or Path(tempfile.mkdtemp(prefix="actuator-")) / "audit.sqlite3"
        self.log = Path(tempfile.mkstemp(prefix="actuator-", suffix=".log")[1])
        self.command = [
            sys.executable, "-m", "actuator", "serve", "--rules", str(rules),
            "--broker-url", broker_url, "--host", "127.0.0.1", "--port", str(self.port),
            "--audit-db", str(self.audit_db), *args,
        ]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> ActuatorProcess:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"actuator exited with {self.proc.returncode}:\n{self.log_text()}")
            return requests.get(f"{self.url}/healthz", timeout=1, verify=self.verify,
                                cert=self.cert).status_code == 200
        wait_for(healthy, timeout=timeout, interval=0.1, what=f"actuator on port {self.port}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")
