"""Command specs: every argument validated before anything is sent, sent in Celery's names."""
from __future__ import annotations

import pytest

from actuator.commands import COMMANDS, ArgumentError


@pytest.mark.parametrize(("command", "raw", "expected"), [
    ("pool_grow", {}, {"n": 1}),
    ("pool_grow", {"n": "3"}, {"n": 3}),
    ("pool_shrink", {"n": " 2.0 "}, {"n": 2}),
    ("autoscale", {"max": "10", "min": 3}, {"max": 10, "min": 3}),
    ("autoscale", {"max": 4, "min": 0}, {"max": 4, "min": 0}),
    ("add_consumer", {"queue": "<script>alert(1)</script>"},
     {"queue": "<script>alert(1)</script>", "exchange": None, "exchange_type": None, "routing_key": None}),
    ("rate_limit", {"task": "tasks.sleep", "rate_limit": "200/m"}, {"task": "tasks.sleep", "rate_limit": "200/m"}),
    ("rate_limit", {"task": "t", "rate_limit": "0.5/h"}, {"task": "t", "rate_limit": "0.5/h"}),
    ("rate_limit", {"task": "t", "rate_limit": 10}, {"task": "t", "rate_limit": "10"}),
    ("rate_limit", {"task": "t", "rate_limit": ""}, {"task": "t", "rate_limit": ""}),
    ("time_limit", {"task": "t", "soft": "30", "hard": 100}, {"task": "t", "soft": 30.0, "hard": 100.0}),
    ("time_limit", {"task": "t", "hard": 5}, {"task": "t", "soft": None, "hard": 5.0}),
    ("revoke", {"task_id": "abc", "terminate": "true", "signal": "kill"},
     {"task_id": "abc", "terminate": True, "signal": "SIGKILL"}),
])
def test_valid_arguments(command, raw, expected):
    assert COMMANDS[command].validate(raw) == expected


@pytest.mark.parametrize(("command", "raw", "field", "fragment"), [
    ("pool_grow", {"n": 0}, "n", "from 1 to 1000"),
    ("pool_grow", {"n": 1001}, "n", "from 1 to 1000"),
    ("pool_grow", {"n": True}, "n", "integer"),
    ("pool_grow", {"n": "2.5"}, "n", "integer"),
    ("pool_grow", {"n": "3; rm -rf /"}, "n", "integer"),
    ("pool_grow", {"n": "9" * 400}, "n", "9999...; expected an integer"),
    ("pool_grow", {"count": 3}, "count", "no such argument for pool_grow; it takes n"),
    ("autoscale", {"max": 2, "min": 3}, "min", "at most max (2)"),
    ("autoscale", {"max": 2}, "min", "requires min"),
    ("add_consumer", {"queue": ""}, "queue", "non-empty"),
    ("add_consumer", {"queue": "a b"}, "queue", "without whitespace"),
    ("add_consumer", {"queue": "a\x00"}, "queue", "control"),
    ("add_consumer", {"queue": "q" * 256}, "queue", "at most 255"),
    ("add_consumer", {"queue": "q", "exchange_type": "weird"}, "exchange_type", "direct, topic"),
    ("rate_limit", {"task": "t", "rate_limit": "200/d"}, "rate_limit", "200/m"),
    ("rate_limit", {"task": "t", "rate_limit": "-1"}, "rate_limit", "200/m"),
    ("time_limit", {"task": "t", "soft": 100, "hard": 30}, "soft", "at most hard (30.0)"),
    ("time_limit", {"task": "t", "soft": 0}, "soft", "positive"),
    ("time_limit", {"task": "t", "hard": "inf"}, "hard", "positive"),
    ("revoke", {"task_id": "x", "signal": "SIGNOPE"}, "signal", "signal name"),
])
def test_invalid_arguments_name_field_and_expectation(command, raw, field, fragment):
    with pytest.raises(ArgumentError) as failure:
        COMMANDS[command].validate(raw)
    assert failure.value.field == field and fragment in str(failure.value)


def test_arguments_are_sent_in_the_workers_keyword_names():
    rate = COMMANDS["rate_limit"]
    assert rate.celery_arguments(rate.validate({"task": "t", "rate_limit": "5/s"})) == \
        {"task_name": "t", "rate_limit": "5/s"}
    limits = COMMANDS["time_limit"]
    # time_limit sets both limits at once: an absent one is sent as None, which clears it.
    assert limits.celery_arguments(limits.validate({"task": "t", "hard": 9})) == \
        {"task_name": "t", "soft": None, "hard": 9.0}
    consumer = COMMANDS["add_consumer"]
    assert consumer.celery_arguments(consumer.validate({"queue": "q"})) == {"queue": "q"}
    assert COMMANDS["pool_restart"].celery_arguments({}) == {"reload": False}


def test_only_revoke_and_shutdown_are_dangerous():
    assert sorted(name for name, spec in COMMANDS.items() if spec.dangerous) == ["revoke", "shutdown"]
