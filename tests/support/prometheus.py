"""Prometheus configurations for tests that scrape one service; the server is the demo's."""
from __future__ import annotations

from typing import Any

from demo.servers import Prometheus

__all__ = ["Prometheus", "scrape_config", "scrape_job"]


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
