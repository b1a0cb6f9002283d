"""The README's exporter metrics table lists exactly the metric families the exporter renders.

The families come from the renderer itself: an exporter that was never started announces every
family (``# TYPE`` lines) before any event (see tests/bundle/metric_contract.py);
test_redis_integration checks a real scrape announces the same ones.
"""
from __future__ import annotations

import re
from pathlib import Path

from exporter.service import Exporter
from exporter.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
_TYPE_LINE = re.compile(r"^# TYPE (\S+) (\S+)$", re.MULTILINE)


def rendered_families(exposition: str) -> dict[str, str]:
    """family name -> type, from the ``# TYPE`` lines of an exposition."""
    return dict(_TYPE_LINE.findall(exposition))


def empty_render() -> str:
    return b"".join(Exporter(Settings(broker_url="redis://127.0.0.1:1/0")).render_metrics()).decode()


def readme_metrics_table() -> dict[str, str]:
    """metric name -> type, from the table under "## Exporter" / "### Metrics" (a row may name
    several metrics, comma-separated, in backquotes)."""
    text = README.read_text()
    exporter = text[text.index("\n## Exporter\n"):]
    exporter = exporter[:exporter.index("\n## ", 1)]
    section = exporter[exporter.index("\n### Metrics\n"):]
    section = section[:section.index("\n### ", 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    assert rows, "no metrics table under the README's Exporter / Metrics heading"
    table: dict[str, str] = {}
    for row in rows:
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        kind = cells[1].split(" ")[0]
        for name in re.findall(r"`([a-z_:][a-z0-9_:]*)`", cells[0]):
            assert name not in table, f"{name} has two rows in the README's metrics table"
            table[name] = kind
    return table


def test_readme_metrics_table_matches_the_rendered_families():
    rendered = rendered_families(empty_render())
    documented = readme_metrics_table()
    assert len(rendered) > 20, f"the render announced only {sorted(rendered)}"
    assert sorted(set(rendered) - set(documented)) == [], "rendered but missing from the README's table"
    assert sorted(set(documented) - set(rendered)) == [], "in the README's table but never rendered"
    wrong = {name: (documented[name], kind) for name, kind in rendered.items() if documented[name] != kind}
    assert wrong == {}, "README type vs rendered type"
