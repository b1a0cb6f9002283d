"""Failures a retry can cure: something the actuator needs could not be reached just now.

The webhook answers 503 for these (and only these), so Alertmanager retries; idempotency makes
the retry safe.
"""
from __future__ import annotations


class Unavailable(RuntimeError):
    """A dependency is unreachable; ``outcome`` is how the audit log and answers name it."""

    outcome = "unavailable"
