"""A real Prometheus server (Debian's /usr/bin/prometheus) on a free loopback port."""
from __future__ import annotations

import urllib.parse
from typing import Any

from .http_client import get_json
from .polling import wait_for
from .prometheus_binary import PrometheusBinary


def scrape_job(job_name: str, targets: list[str], **settings: Any) -> dict[str, Any]:
    """One scrape job; ``settings`` are the job's own keys (``scheme``, ``tls_config``,
    ``basic_auth``, ...) as Prometheus documents them."""
    return {"job_name": job_name, "static_configs": [{"targets": targets}], **settings}


def scrape_config(*jobs: dict[str, Any], interval: str = "1s") -> dict[str, Any]:
    """A configuration scraping ``jobs`` (scrape_job) every ``interval``, and nothing else."""
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": list(jobs),
    }


class Prometheus(PrometheusBinary):
    """Runs ``prometheus`` with ``config`` (a dict, e.g. from bundle_config.prometheus_config).

    ``resend_delay`` is Prometheus' ``--rules.alert.resend-delay``: at its default of 1 m a
    first send that finds no Alertmanager yet costs a minute, so tests use 1 s.
    """

    name = "prometheus"

    def __init__(self, config: dict[str, Any], *, resend_delay: str = "1s", external_url: str | None = None) -> None:
        super().__init__("prometheus", config, external_url=external_url)
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
