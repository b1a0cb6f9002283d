"""Regenerate alerts/samples/: the webhook payloads Alertmanager sends the actuator, per alert.

Runs the shipped rules and routing (alerts/) on real Prometheus and Alertmanager against
synthetic exporter metrics in which every alert fires (tests/support/synthetic_metrics.py),
captures what Alertmanager posts, and writes each payload as indented JSON, keys in the order
Alertmanager sent them. Run it after changing an alert's labels or annotations:

    .venv/bin/python scripts/capture_webhook_samples.py

tests/bundle/test_alert_flow.py fails while the samples no longer match what is sent.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.sample_capture import capture_every_alert, synthetic_flow  # noqa: E402

SAMPLES_DIR = ROOT / "alerts" / "samples"


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="autopilot-samples-") as workdir:
        with synthetic_flow(Path(workdir)) as flow:
            captured = capture_every_alert(flow)
    SAMPLES_DIR.mkdir(exist_ok=True)
    for key, notification in captured.items():
        path = SAMPLES_DIR / f"{key}.json"
        path.write_text(json.dumps(notification.body, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
