"""``promtool check metrics`` and the findings this project accepts on purpose."""
from __future__ import annotations

import shutil
import subprocess

import pytest

# Names kept from the widely used celery-exporter (celery-mixin dashboards query them) or fixed by
# DESIGN.md's metric table; promtool's "_count suffix" lint fires on them. Nothing else may appear.
ACCEPTED = {
    "celery_active_consumer_count", "celery_active_worker_count", "celery_active_process_count",
    "celery_worker_prefetch_count",
}


def promtool_findings(text: str) -> list[str]:
    """promtool's complaints about the exposition, minus the accepted ones."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.skip("promtool is not installed (Debian package prometheus); run ./run.sh setup")
    result = subprocess.run([binary, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    lines = (result.stdout + result.stderr).decode().splitlines()
    return [line for line in lines if line.strip() and line.split()[0] not in ACCEPTED]
