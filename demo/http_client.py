"""Small blocking JSON-over-HTTP helpers for the demo and the tests (stdlib only, no session state)."""
from __future__ import annotations

import json
import urllib.request
from typing import Any


def get_json(url: str, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=timeout) as response:
        return json.load(response)


def post_json(url: str, body: Any, *, timeout: float = 5.0, headers: dict[str, str] | None = None) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        payload = response.read()
    return json.loads(payload) if payload else None


def answers(url: str, *, timeout: float = 1.0) -> bool:
    """True when ``url`` answers 2xx; connection errors and other statuses are False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return 200 <= response.status < 300
    except OSError:
        return False
