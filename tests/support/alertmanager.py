"""Alertmanager configurations for tests of one receiver; the server is the demo's."""
from __future__ import annotations

from typing import Any

from demo.servers import Alertmanager

__all__ = ["Alertmanager", "webhook_config"]


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
