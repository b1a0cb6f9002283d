"""The Grafana dashboard's PromQL: every query it runs, with Grafana's variables filled in."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping

from demo.bundle_config import ROOT

GRAFANA_DIR = ROOT / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "celery-autopilot.json"
# What Grafana puts in place of its own variables when it runs a query.
BUILTIN_VARIABLES = {"__rate_interval": "1m", "__interval": "1m", "__range": "1h"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
_LABEL_VALUES = re.compile(r"^label_values\((.*),\s*(\w+)\)$")


def load_dashboard() -> dict:
    return json.loads(DASHBOARD_FILE.read_text())


def graph_panels(dashboard: dict) -> list[dict]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def expressions(dashboard: dict) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target, annotation query and variable selector."""
    for panel in graph_panels(dashboard):
        for target in panel["targets"]:
            yield f"panel {panel['title']!r} target {target['refId']}", target["expr"]
    for annotation in dashboard["annotations"]["list"]:
        if "expr" in annotation:
            yield f"annotation {annotation['name']!r}", annotation["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            match = _LABEL_VALUES.match(variable["query"])
            assert match, f"variable {variable['name']}: {variable['query']!r} is not label_values(selector, label)"
            yield f"variable {variable['name']!r}", match.group(1)


def substitute(expr: str, variables: set[str], chosen: Mapping[str, str] | None = None) -> str:
    """``expr`` as Grafana sends it: built-in variables at BUILTIN_VARIABLES, the dashboard's
    own at ``chosen`` (a regex, as multi-select variables are) or else ``.*`` (All)."""
    chosen = chosen or {}

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if name in variables:
            return chosen.get(name, ".*")
        raise AssertionError(f"{expr!r} uses ${name}, which the dashboard does not define")
    return _VARIABLE.sub(value, expr)
