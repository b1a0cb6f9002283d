"""Alertmanager's webhook payload: accepted as Alertmanager sends it, rejected precisely otherwise."""
from __future__ import annotations

import copy
import json
import random

import pytest

from actuator.payload import PayloadError, parse_notification
from tests.actuator.payloads import alert, backlog, notification


def test_a_real_payload_parses_with_every_field():
    body = backlog("celery", 250)
    body["alerts"].append(alert({"alertname": "CeleryWorkerDown", "hostname": "celery@w2"}, status="resolved"))
    parsed = parse_notification(json.dumps(body))
    assert (parsed.receiver, parsed.status, parsed.external_url, parsed.truncated_alerts) == \
        ("celery-actuator", "firing", "http://alertmanager:9093", 0)
    first, second = parsed.alerts
    assert first.labels["queue_name"] == "celery" and first.value == 250.0 and first.name == "CeleryQueueBacklog"
    assert first.ends_at == "0001-01-01T00:00:00Z" and first.fingerprint == body["alerts"][0]["fingerprint"]
    assert second.status == "resolved" and second.value is None


def test_unknown_extra_fields_are_tolerated():
    body = backlog("celery", 1)
    body["futureField"] = {"x": 1}
    body["alerts"][0]["silencedBy"] = []
    assert parse_notification(json.dumps(body)).alerts[0].labels["queue_name"] == "celery"


def test_value_is_a_number_only_when_the_annotation_is_numeric():
    body = backlog("celery", 1)
    body["alerts"][0]["annotations"]["value"] = "lots"
    assert parse_notification(json.dumps(body)).alerts[0].value is None


@pytest.mark.parametrize(("mutate", "field", "message"), [
    (lambda b: b.pop("version"), "version", "required field is missing"),
    (lambda b: b.update(version="3"), "version", "expected \"4\""),
    (lambda b: b.update(version=4), "version", "expected a string, got a number"),
    (lambda b: b.update(status="pending"), "status", "expected one of firing, resolved"),
    (lambda b: b.update(alerts={}), "alerts", "expected an array, got an object"),
    (lambda b: b["alerts"][0].pop("fingerprint"), "alerts[0].fingerprint", "missing"),
    (lambda b: b["alerts"][0]["labels"].update(queue_name=5), "alerts[0].labels.queue_name",
     "expected a string value, got a number"),
    (lambda b: b["alerts"][0].update(startsAt="yesterday"), "alerts[0].startsAt", "RFC 3339"),
    (lambda b: b["alerts"].append("x"), "alerts[1]", "expected an alert object, got a string"),
    (lambda b: b.update(truncatedAlerts=True), "truncatedAlerts", "expected an integer, got a boolean"),
    (lambda b: b.update(commonLabels=[]), "commonLabels", "expected an object, got an array"),
])
def test_errors_name_the_field(mutate, field, message):
    body = backlog("celery", 1)
    mutate(body)
    with pytest.raises(PayloadError) as failure:
        parse_notification(json.dumps(body))
    assert failure.value.field == field and message in failure.value.message


@pytest.mark.parametrize("body", [b"", b"{", b"\xff\xfe", b"[]", b"null", b"42", b'"x"', b"[" * 100000,
                                  b'{"truncatedAlerts": 1' + b"0" * 5000 + b"}"])
def test_not_json_or_not_an_object(body):
    with pytest.raises(PayloadError):
        parse_notification(body)


def test_a_number_too_long_to_read_is_a_payload_error():
    with pytest.raises(PayloadError, match="body holds a number of more than 4300 digits"):
        parse_notification(b'{"version": "4", "truncatedAlerts": 1' + b"0" * 5000 + b"}")


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda b: b.update(receiver="\ud800"), "receiver"),
    (lambda b: b.update(groupKey="key\udfff"), "groupKey"),
    (lambda b: b["alerts"][0].update(fingerprint="\ud800"), "alerts[0].fingerprint"),
    (lambda b: b["alerts"][0]["labels"].update(alertname="\ud800"), "alerts[0].labels.alertname"),
    (lambda b: b["alerts"][0]["labels"].update({"\udc00": "x"}), "alerts[0].labels"),
    (lambda b: b["alerts"][0]["annotations"].update(value="\ud83d"), "alerts[0].annotations.value"),
])
def test_lone_surrogates_are_rejected_by_field(mutate, field):
    """JSON escapes can spell text that is not Unicode (SQLite and workers cannot store it)."""
    body = backlog("celery", 1)
    mutate(body)
    with pytest.raises(PayloadError) as failure:
        parse_notification(json.dumps(body))
    assert failure.value.field == field and "lone UTF-16 surrogate" in failure.value.message
    # A surrogate pair is a real character (an emoji) and is fine.
    body["alerts"][0]["labels"] = {"alertname": "\ud83d\ude00"}
    body.update(receiver="r", groupKey="k")
    body["alerts"][0].update(fingerprint="f", annotations={})
    assert parse_notification(json.dumps(body)).alerts[0].name == "\U0001F600"


@pytest.mark.parametrize(("stamp", "valid"), [
    ("2026-11-26T10:00:00.123456789Z", True), ("0001-01-01T00:00:00Z", True), ("2026-11-26T10:00:00+02:00", True),
    ("2026-11-26t10:00:00.5z", True), ("2026-01-01", False), ("2026-01-01T00:00:00", False),
    ("2026-13-01T00:00:00Z", False), ("20260101T000000Z", False), ("2026-01-01 00:00:00Z", False),
    ("2026-01-01T00:00:00.Z", False), ("2026-01-01T00:00:00.1234567890Z", False), ("２０２６-01-01T00:00:00Z", False),
])
def test_timestamps_must_be_rfc3339(stamp, valid):
    body = backlog("celery", 1)
    body["alerts"][0]["startsAt"] = stamp
    if valid:
        assert parse_notification(json.dumps(body)).alerts[0].starts_at == stamp
    else:
        with pytest.raises(PayloadError, match="RFC 3339"):
            parse_notification(json.dumps(body))


def mutations(seed: int, count: int):
    """Deterministic random damage to a valid payload: deleted keys, wrong types, odd values."""
    rng = random.Random(seed)
    odd = [None, True, 0, -1, 1.5, "", "x" * 300, [], {}, [1, "a"], {"a": {"b": []}}, "\u0000", "{{ 7*7 }}",
           "\ud800", "x\udfff", "2026-01-01", 10**300]
    base = notification(alert({"alertname": "A", "queue_name": "q"}, annotations={"value": "3"}),
                        alert({"alertname": "B"}, status="resolved"))
    for _ in range(count):
        body = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            alerts = [a for a in body.get("alerts") or [] if isinstance(a, dict) and a] \
                if isinstance(body.get("alerts"), list) else []
            target = body if rng.random() < 0.4 or not alerts else rng.choice(alerts)
            key = rng.choice(list(target))
            if rng.random() < 0.3:
                del target[key]
            else:
                target[key] = rng.choice(odd)
        yield body


def test_fuzzed_payloads_only_ever_raise_payload_errors():
    accepted = rejected = 0
    for body in mutations(seed=7, count=2000):
        try:
            parse_notification(json.dumps(body))
            accepted += 1
        except PayloadError:
            rejected += 1
    assert rejected > 1000 and accepted + rejected == 2000
