"""The exporter as a real subprocess on a free port, and readers for what it serves."""
from __future__ import annotations

import os
import ssl
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from .polling import wait_for
from .ports import free_port

ROOT = Path(__file__).resolve().parents[2]

# Short intervals so that tests wait seconds, not minutes.
FAST_ARGS = ["--queue-interval", "0.3", "--inspect-interval", "1", "--inspect-timeout", "1",
             "--discovery-interval", "3", "--reconnect-max-delay", "0.5", "--log-level", "DEBUG"]


def http_get(url: str, timeout: float = 5.0, context: ssl.SSLContext | None = None) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def parse_samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value)
            for family in text_string_to_metric_families(text) for s in family.samples]


class AmbiguousMetric(AssertionError):
    """A lookup that should name one sample matches several: a mistake in the test, not a state
    to wait out."""


class Metrics:
    """One parsed scrape."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = parse_samples(text)

    def matching(self, metric: str, /, **labels: str) -> list[tuple[dict[str, str], float]]:
        """Samples of ``metric`` whose labels include ``labels`` (a label may be called name)."""
        return [(l, v) for n, l, v in self.samples
                if n == metric and all(l.get(k) == want for k, want in labels.items())]

    def value(self, metric: str, /, **labels: str) -> float | None:
        """The one sample matching; None when absent; an error when ambiguous."""
        found = self.matching(metric, **labels)
        if len(found) > 1:
            raise AmbiguousMetric(f"{len(found)} samples of {metric} match {labels}: {found}")
        return found[0][1] if found else None

    def total(self, metric: str, /, **labels: str) -> float:
        return sum(v for _, v in self.matching(metric, **labels))


@dataclass
class ExporterProcess:
    proc: subprocess.Popen
    port: int
    log: Path
    # The client side of HTTPS (trusting the exporter's CA, with a client certificate for mutual
    # TLS) when the exporter serves TLS from a web config.
    ssl_context: ssl.SSLContext | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.ssl_context else 'http'}://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def metrics(self) -> Metrics:
        status, text = http_get(self.url + "/metrics")
        assert status == 200, f"/metrics answered {status}: {text[:500]}"
        return Metrics(text)

    def wait_metric(self, metric: str, expected: float, /, timeout: float = 20.0, **labels: str) -> Metrics:
        """Poll until the sample equals ``expected``; returns that scrape."""
        seen: list[list] = [[]]

        def probe() -> Metrics | None:
            metrics = self.metrics()
            seen[0] = metrics.matching(metric)
            return metrics if metrics.value(metric, **labels) == expected else None
        try:
            return wait_for(probe, timeout=timeout, interval=0.1, what=f"{metric}{labels} == {expected}",
                            fatal=(AmbiguousMetric,))
        except AmbiguousMetric:
            raise
        except AssertionError as exc:
            raise AssertionError(f"{exc}; samples of {metric} were {seen[0]} (exporter log: {self.log})") from None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_exporter(broker_url: str, *args: str, env: dict[str, str] | None = None,
                   command: list[str] | None = None, wait_connected: bool = True,
                   ssl_context: ssl.SSLContext | None = None) -> ExporterProcess:
    """Start ``python -m exporter`` (or ``command``) and wait until it serves and is connected.

    ``ssl_context`` is the client's side of an exporter serving HTTPS (``--web.config.file``).
    """
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="exporter-", suffix=".log")[1])
    cmd = command or [sys.executable, "-m", "exporter", "--broker-url", broker_url]
    cmd = [*cmd, "--host", "127.0.0.1", "--port", str(port), *FAST_ARGS, *args]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
                                stdout=out, stderr=subprocess.STDOUT)
    exporter = ExporterProcess(proc=proc, port=port, log=log, ssl_context=ssl_context)

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"exporter exited with {proc.returncode}:\n{exporter.log_text()}")
        status, _ = http_get(exporter.url + "/healthz", timeout=1, context=ssl_context)
        return status == 200 if wait_connected else status in (200, 503)
    try:
        wait_for(ready, timeout=20, interval=0.1, what=f"exporter on port {port} to be ready")
    except BaseException:
        exporter.stop()
        raise
    return exporter
