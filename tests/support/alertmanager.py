"""A real Alertmanager (Debian's /usr/bin/prometheus-alertmanager) on a free loopback port."""
from __future__ import annotations

import shutil
from typing import Any

from .http_client import get_json, post_json
from .prometheus_binary import PrometheusBinary


def _binary() -> str:
    """Debian names the binary prometheus-alertmanager; upstream tarballs call it alertmanager."""
    return "prometheus-alertmanager" if shutil.which("prometheus-alertmanager") else "alertmanager"


def webhook_config(url: str, *, http_config: dict[str, Any] | None = None) -> dict[str, Any]:
    """A configuration sending every alert to the one webhook at ``url`` within a second.

    ``http_config`` is the webhook's client settings as Alertmanager documents them
    (``authorization``, ``oauth2``, ``tls_config``, ...): what tests of the receiving side vary.
    """
    webhook: dict[str, Any] = {"url": url, **({"http_config": http_config} if http_config else {})}
    return {
        "route": {"receiver": "webhook", "group_by": ["alertname"], "group_wait": "1s",
                  "group_interval": "1s", "repeat_interval": "1h"},
        "receivers": [{"name": "webhook", "webhook_configs": [webhook]}],
    }


class Alertmanager(PrometheusBinary):
    """Runs Alertmanager with ``config`` (a dict, e.g. from bundle_config.alertmanager_config).

    Clustering is off (no gossip port), so several instances on one machine never find each
    other or bind a fixed port.
    """

    name = "alertmanager"

    def __init__(self, config: dict[str, Any], *, external_url: str | None = None) -> None:
        super().__init__(_binary(), config, external_url=external_url)

    def server_args(self) -> list[str]:
        return [f"--storage.path={self.dir / 'data'}", "--cluster.listen-address="]

    def alerts(self) -> list[dict[str, Any]]:
        """The alerts Alertmanager holds (API v2), with their status and receivers."""
        return get_json(f"{self.url}/api/v2/alerts")

    def post_alerts(self, alerts: list[dict[str, Any]]) -> None:
        """Inject alerts the way Prometheus sends them (labels, annotations, startsAt, ...)."""
        post_json(f"{self.url}/api/v2/alerts", alerts)
