"""Alertmanager's webhook payload (version 4), parsed into plain objects.

The shape is Alertmanager's ``notify/webhook`` message. Fields the actuator relies on are required
and type-checked; the rest are type-checked when present, and unknown extra fields are tolerated
so that a newer Alertmanager never breaks the receiver. Every error names the field by its JSON
path (``alerts[2].labels.queue_name``), the value found, and what was expected.
"""
from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

ALERT_STATUSES = ("firing", "resolved")
# RFC 3339's date-time (section 5.6), as Go's time.RFC3339Nano writes it.
_RFC3339 = re.compile(r"(?P<datetime>\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2})(?:\.\d{1,9})?"
                      r"(?P<zone>[Zz]|[+-]\d{2}:\d{2})", re.ASCII)


class PayloadError(ValueError):
    """The request body is not an Alertmanager webhook payload."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Alert:
    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: str
    ends_at: str
    generator_url: str
    fingerprint: str

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    @property
    def value(self) -> float | None:
        """The ``value`` annotation as a number, when present and numeric.

        Prometheus rules commonly put ``{{ $value }}`` there; rules use it to size an action.
        """
        raw = self.annotations.get("value")
        if raw is None:
            return None
        try:
            number = float(raw)
        except ValueError:
            return None
        return None if math.isnan(number) else number


@dataclass(frozen=True)
class Notification:
    receiver: str
    status: str
    alerts: tuple[Alert, ...]
    group_key: str = ""
    group_labels: Mapping[str, str] = field(default_factory=dict)
    common_labels: Mapping[str, str] = field(default_factory=dict)
    common_annotations: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""
    truncated_alerts: int = 0


def parse_notification(body: bytes | str) -> Notification:
    """Decode and validate a webhook body; raise :class:`PayloadError` naming the culprit."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PayloadError(f"body is not valid JSON: {exc}") from None
    except ValueError:  # an integer past Python's limit on digits
        raise PayloadError(f"body holds a number of more than {sys.get_int_max_str_digits()} digits") from None
    except RecursionError:
        raise PayloadError("body is not valid JSON: nested too deeply") from None
    if not isinstance(document, dict):
        raise PayloadError(f"expected a JSON object, got {_json_type(document)}")
    version = _require(document, "version", str, "")
    if version != "4":
        raise PayloadError(f"unsupported webhook version {version!r}; expected \"4\"", "version")
    alerts = _require(document, "alerts", list, "")
    return Notification(
        receiver=_require(document, "receiver", str, ""),
        status=_status(document, ""),
        alerts=tuple(_parse_alert(item, f"alerts[{i}]") for i, item in enumerate(alerts)),
        group_key=_optional(document, "groupKey", str, "", ""),
        group_labels=_string_map(document, "groupLabels", ""),
        common_labels=_string_map(document, "commonLabels", ""),
        common_annotations=_string_map(document, "commonAnnotations", ""),
        external_url=_optional(document, "externalURL", str, "", ""),
        truncated_alerts=_optional(document, "truncatedAlerts", int, 0, ""),
    )


def _parse_alert(item: Any, path: str) -> Alert:
    if not isinstance(item, dict):
        raise PayloadError(f"expected an alert object, got {_json_type(item)}", path)
    return Alert(
        status=_status(item, path),
        labels=_string_map(item, "labels", path, required=True),
        annotations=_string_map(item, "annotations", path),
        starts_at=_timestamp(item, "startsAt", path, required=True),
        ends_at=_timestamp(item, "endsAt", path, required=False),
        generator_url=_optional(item, "generatorURL", str, "", path),
        fingerprint=_require(item, "fingerprint", str, path),
    )


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


_EXPECTED = {str: "a string", list: "an array", dict: "an object", int: "an integer"}


def _check_type(value: Any, kind: type, where: str) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise PayloadError(f"expected {_EXPECTED[kind]}, got {_json_type(value)}", where)
    if kind is str:
        _check_text(value, where)
    return value


def _check_text(value: str, where: str) -> None:
    """JSON's ``\\ud800`` escapes can spell a lone surrogate: not a character, so no UTF-8 (or
    SQLite, or a worker) can take it."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PayloadError(f"contains {value[exc.start]!r}, a lone UTF-16 surrogate, which is not valid "
                           "Unicode text", where) from None


def _require(document: dict, key: str, kind: type, path: str) -> Any:
    where = _join(path, key)
    if key not in document:
        raise PayloadError("required field is missing", where)
    return _check_type(document[key], kind, where)


def _optional(document: dict, key: str, kind: type, default: Any, path: str) -> Any:
    if document.get(key) is None:
        return default
    return _check_type(document[key], kind, _join(path, key))


def _status(document: dict, path: str) -> str:
    status = _require(document, "status", str, path)
    if status not in ALERT_STATUSES:
        raise PayloadError(f"got {status!r}; expected one of {', '.join(ALERT_STATUSES)}",
                           _join(path, "status"))
    return status


def _string_map(document: dict, key: str, path: str, required: bool = False) -> dict[str, str]:
    where = _join(path, key)
    mapping = _require(document, key, dict, path) if required else _optional(document, key, dict, {}, path)
    for name, value in mapping.items():
        _check_text(name, where)
        if not isinstance(value, str):
            raise PayloadError(f"expected a string value, got {_json_type(value)}", f"{where}.{name}")
        _check_text(value, f"{where}.{name}")
    return dict(mapping)


def _timestamp(document: dict, key: str, path: str, required: bool) -> str:
    value = _require(document, key, str, path) if required else _optional(document, key, str, "", path)
    if value and not _is_rfc3339(value):
        raise PayloadError(f"got {value!r}; expected an RFC 3339 timestamp like 2026-01-31T12:00:00.123Z",
                           _join(path, key))
    return value


def _is_rfc3339(value: str) -> bool:
    """RFC 3339's shape, and numbers that make a real date and time (the fraction, which
    Alertmanager writes in nanoseconds, is left out: Python parses at most microseconds)."""
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    try:
        datetime.fromisoformat(match["datetime"] + match["zone"].upper().replace("Z", "+00:00"))
    except ValueError:
        return False
    return True
