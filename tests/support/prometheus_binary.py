"""A server of the Prometheus project (prometheus, alertmanager) run as a real subprocess.

Both take their configuration from a YAML file, listen where ``--web.listen-address`` says,
name themselves with ``--web.external-url`` and answer ``/-/ready`` once serving: one class
starts either on a free loopback port with a temp directory for config, data and log.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .http_client import answers
from .polling import wait_for
from .ports import free_port
from .processes import terminate

S = TypeVar("S", bound="PrometheusBinary")


class PrometheusBinary(ABC):
    """Starts ``binary`` with ``config`` and waits until it is ready; ``with`` starts and closes.

    ``external_url`` is the address the server puts in what it sends (generatorURL,
    externalURL): a host name only, since a path would move every endpoint under it. A process
    that exits while starting fails at once with its log instead of timing out with no reason.
    """

    name: str

    def __init__(self, binary: str, config: dict[str, Any], *, external_url: str | None = None) -> None:
        if shutil.which(binary) is None:
            raise RuntimeError(f"{binary} is not installed; run ./run.sh setup")
        self.binary = binary
        self.config = config
        self.external_url = external_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix=f"autopilot-{self.name}-"))
        self.log = self.dir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        """``host:port``, as a Prometheus target or alerting configuration wants it."""
        return f"127.0.0.1:{self.port}"

    @abstractmethod
    def server_args(self) -> list[str]:
        """The binary's own flags (data directory, ...), beyond config, address and URL."""

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def start(self, *, timeout: float = 30.0) -> None:
        config_file = self.dir / f"{self.name}.yml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False))
        args = [f"--config.file={config_file}", f"--web.listen-address={self.address}",
                *([f"--web.external-url={self.external_url}"] if self.external_url else []),
                *self.server_args()]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [self.binary, *args], cwd=self.dir, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"{self.name} exited with {self.proc.returncode} while starting:\n{self.log_text()}")
            return answers(f"{self.url}/-/ready")

        try:
            wait_for(ready, timeout=timeout, interval=0.1, what=f"{self.name} on {self.address}")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self: S) -> S:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
