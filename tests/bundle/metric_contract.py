"""The metric names alerts/ and grafana/ may use, and a way to find the names an expression uses.

The names are taken from the services themselves, not written down a second time: the exporter's
renderer and the actuator's registry each announce every metric family (``# TYPE`` lines) even
before any event or action, so an empty scrape of each lists all of them. A renamed metric
breaks the bundle's tests at once. tests/e2e/test_dashboard_data.py then proves every query
returns data against the running services.
"""
from __future__ import annotations

import re

from actuator.metrics import ActuatorMetrics
from exporter.service import Exporter
from exporter.settings import Settings

_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)
_SAMPLE_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("", "_sum", "_count")}


def _sample_names(exposition: str) -> frozenset[str]:
    """The sample names an exposition's families produce (a histogram's _bucket, _sum, _count)."""
    return frozenset(f"{family}{suffix}" for family, kind in _TYPE_LINE.findall(exposition)
                     for suffix in _SAMPLE_SUFFIXES.get(kind, ("",)))


def _empty_exporter_scrape() -> str:
    """What an exporter that was never started renders (it connects to nothing until started)."""
    return b"".join(Exporter(Settings(broker_url="redis://127.0.0.1:1/0")).render_metrics()).decode()


EXPORTER_METRICS = _sample_names(_empty_exporter_scrape())
ACTUATOR_METRICS = _sample_names(ActuatorMetrics().render().decode())

# Series Prometheus itself makes.
PROMETHEUS_METRICS = frozenset({"up", "ALERTS"})

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NAME_MATCHER = re.compile(r'__name__\s*=~\s*"((?:[^"\\]|\\.)*)"')
_PROJECT_NAME = re.compile(r"\b(?:celery|autopilot)_[A-Za-z0-9_:]*")


def metric_names(expr: str, candidates: frozenset[str]) -> set[str]:
    """The project metric names ``expr`` reads: plain selectors, and ``{__name__=~"..."}``
    matchers expanded against ``candidates`` (a matcher that selects none of them is returned
    as-is, so it shows up as unknown)."""
    names = set(_PROJECT_NAME.findall(_STRING.sub('""', expr)))
    for pattern in _NAME_MATCHER.findall(expr):
        selected = {name for name in candidates if re.fullmatch(pattern, name)}
        names |= selected or {f'{{__name__=~"{pattern}"}}'}
    return names
