"""Prometheus and Alertmanager (Debian's binaries) as real subprocesses on free loopback ports.

Both take their configuration from a YAML file, listen where ``--web.listen-address`` says,
name themselves with ``--web.external-url`` and answer ``/-/ready`` once serving: one class
starts either on a free loopback port with a temp directory for config, data and log.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import urllib.parse
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .http_client import answers, get_json, post_json
from .listeners import listening_ports
from .polling import GaveUp, wait_for
from .processes import die_with_parent, free_port, terminate

S = TypeVar("S", bound="PrometheusBinary")


class PrometheusBinary(ABC):
    """Starts ``binary`` with ``config`` and waits until it is ready; ``with`` starts and closes.

    It listens on ``port`` when given (the demo's documented ports), else on a free one.

    ``external_url`` is the address the server puts in what it sends (generatorURL,
    externalURL): a host name only, since a path would move every endpoint under it. A process
    that exits while starting fails at once with its log instead of timing out with no reason;
    it is ready once it answers on a port it listens on itself (not a stranger on that port).
    It gets SIGTERM if the process that started it dies.
    """

    name: str

    def __init__(self, binary: str, config: dict[str, Any], *, external_url: str | None = None,
                 port: int | None = None) -> None:
        if shutil.which(binary) is None:
            raise RuntimeError(f"{binary} is not installed; run ./run.sh setup")
        self.binary = binary
        self.config = config
        self.external_url = external_url
        self.port = port or free_port()
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
                start_new_session=True, preexec_fn=die_with_parent,
            )

        def ready() -> bool:
            assert self.proc is not None
            self.check_running("while starting")
            return answers(f"{self.url}/-/ready") and self.port in listening_ports(self.proc.pid)

        try:
            wait_for(ready, timeout=timeout, interval=0.1, what=f"{self.name} on {self.address}")
        except BaseException:
            self.stop()
            raise

    def check_running(self, when: str) -> None:
        """GaveUp, with its log, if the server has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise GaveUp(f"{self.name} exited with {self.proc.returncode} {when}:\n{self.log_text()[-3000:]}")

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


class Prometheus(PrometheusBinary):
    """Runs ``prometheus`` with ``config`` (a dict, e.g. from bundle_config.prometheus_config).

    ``resend_delay`` is Prometheus' ``--rules.alert.resend-delay``: at its default of 1 m a
    first send that finds no Alertmanager yet costs a minute, so tests use 1 s.
    """

    name = "prometheus"

    def __init__(self, config: dict[str, Any], *, resend_delay: str = "1s", external_url: str | None = None,
                 port: int | None = None) -> None:
        super().__init__("prometheus", config, external_url=external_url, port=port)
        self.resend_delay = resend_delay

    def server_args(self) -> list[str]:
        return [f"--storage.tsdb.path={self.dir / 'data'}",
                f"--rules.alert.resend-delay={self.resend_delay}",
                "--web.enable-lifecycle"]

    def _api(self, path: str, **params: str) -> Any:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        answer = get_json(f"{self.url}/api/v1/{path}{query}")
        if answer.get("status") != "success":
            raise AssertionError(f"prometheus {path} {params} failed: {answer}")
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector (each ``{"metric": {...}, "value": [t, "v"]}``)."""
        data = self._api("query", query=expr)
        if data["resultType"] != "vector":
            raise AssertionError(f"{expr!r} gave a {data['resultType']}, expected a vector")
        return data["result"]

    def alerts(self) -> list[dict[str, Any]]:
        """Active (pending and firing) alerts with their labels, annotations and state."""
        return self._api("alerts")["alerts"]

    def rule_groups(self) -> list[dict[str, Any]]:
        return self._api("rules")["groups"]

    def targets(self) -> list[dict[str, Any]]:
        return self._api("targets")["activeTargets"]

    def scraped_targets(self, jobs: int, timeout: float = 30.0) -> dict[str, dict[str, Any]]:
        """Each of ``jobs`` jobs' (one-target) target, by job name, once every one has been scraped."""
        def scraped() -> dict[str, dict[str, Any]] | None:
            targets = {t["labels"]["job"]: t for t in self.targets()}
            done = len(targets) == jobs and all(t["health"] != "unknown" for t in targets.values())
            return targets if done else None
        return wait_for(scraped, timeout=timeout, interval=0.2, what=f"a scrape of each of {jobs} jobs")

    def wait_for_alert(self, alertname: str, *, state: str = "firing", timeout: float = 30.0) -> list[dict[str, Any]]:
        """The alerts named ``alertname`` once at least one of them is in ``state``."""
        def found() -> list[dict[str, Any]]:
            return [a for a in self.alerts() if a["labels"]["alertname"] == alertname and a["state"] == state]
        return wait_for(found, timeout=timeout, interval=0.2, what=f"{alertname} {state} in Prometheus")


def _binary() -> str:
    """Debian names the binary prometheus-alertmanager; upstream tarballs call it alertmanager."""
    return "prometheus-alertmanager" if shutil.which("prometheus-alertmanager") else "alertmanager"


class Alertmanager(PrometheusBinary):
    """Runs Alertmanager with ``config`` (a dict, e.g. from bundle_config.alertmanager_config).

    Clustering is off (no gossip port), so several instances on one machine never find each
    other or bind a fixed port.
    """

    name = "alertmanager"

    def __init__(self, config: dict[str, Any], *, external_url: str | None = None, port: int | None = None) -> None:
        super().__init__(_binary(), config, external_url=external_url, port=port)

    def server_args(self) -> list[str]:
        return [f"--storage.path={self.dir / 'data'}", "--cluster.listen-address="]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (API v2), with their status and receivers."""
        return get_json(f"{self.url}/api/v2/alerts")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Inject alerts the way Prometheus sends them (labels, annotations, startsAt, ...)."""
        post_json(f"{self.url}/api/v2/alerts", alerts)
