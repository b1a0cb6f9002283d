"""Every Celery alert fired through real Prometheus and Alertmanager into a webhook receiver.

Used by tests/bundle/test_alert_flow.py (which asserts on what arrives) and by
scripts/capture_webhook_samples.py (which writes alerts/samples/).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from demo.alerting_stack import AlertingStack, alerting_stack
from demo.bundle_config import ALERTS_DIR, alert_names
from .metrics_target import MetricsTarget
from .ports import free_port
from .synthetic_metrics import EveryAlertFiring
from .webhook_receiver import Notification, WebhookReceiver

# The token docker-compose gives Alertmanager and the actuator.
DEMO_TOKEN = (ALERTS_DIR / "secrets" / "actuator-token").read_text().strip()
LIVE_EXPORTER = "exporter:9808"
DEAD_EXPORTER = "exporter-standby:9808"
RESOLVED_ALERT = "CeleryQueueBacklog"
# Until the first scrape, absent(up{job="celery-exporter"}) also fires CeleryExporterDown (with
# no instance); with test-sized `for:` it reaches Alertmanager. The sample is the dead target's.
SAMPLE_LABELS = {"CeleryExporterDown": {"instance": DEAD_EXPORTER}}


@dataclass(frozen=True)
class SyntheticFlow:
    stack: AlertingStack
    receiver: WebhookReceiver
    metrics: EveryAlertFiring


@contextmanager
def synthetic_flow(workdir: Path, *, token: str = DEMO_TOKEN) -> Iterator[SyntheticFlow]:
    """The alerting stack scraping EveryAlertFiring and posting to a WebhookReceiver.

    The exporter target is named ``exporter:9808``; a second, unreachable one named
    ``exporter-standby:9808`` makes CeleryExporterDown fire. Notifications carry the
    docker-compose addresses, as the committed samples do.
    """
    token_file = workdir / "actuator-token"
    token_file.write_text(token + "\n")
    metrics = EveryAlertFiring()
    dead = f"127.0.0.1:{free_port()}"
    with WebhookReceiver() as receiver, MetricsTarget(metrics) as target:
        with alerting_stack(
            workdir,
            exporter_targets=[target.address, dead],
            actuator_url=receiver.url,
            token_file=token_file,
            instance_labels={target.address: LIVE_EXPORTER, dead: DEAD_EXPORTER},
            external_urls=True,
        ) as stack:
            yield SyntheticFlow(stack=stack, receiver=receiver, metrics=metrics)


def _is(notification: Notification, alertname: str, status: str) -> bool:
    if notification.body.get("status") != status or alertname not in notification.alertnames:
        return False
    labels = notification.body["alerts"][0]["labels"]
    return all(labels.get(key) == value for key, value in SAMPLE_LABELS.get(alertname, {}).items())


def capture_every_alert(flow: SyntheticFlow) -> dict[str, Notification]:
    """Notifications keyed ``<alertname>.firing`` for every alert, plus one ``.resolved``:
    once every alert has fired, the backlog drains and CeleryQueueBacklog resolves."""
    captured = {
        f"{name}.firing": flow.receiver.wait_for(
            lambda n, name=name: _is(n, name, "firing"), what=f"a firing {name} notification")
        for name in alert_names()
    }
    flow.metrics.backlog = 0
    captured[f"{RESOLVED_ALERT}.resolved"] = flow.receiver.wait_for(
        lambda n: _is(n, RESOLVED_ALERT, "resolved"), what=f"a resolved {RESOLVED_ALERT} notification")
    return captured
