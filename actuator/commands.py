"""The remote-control commands the actuator may send, one small spec each.

A spec names the command, its arguments (with the type and range each must have), what the
target worker must support for it to work, and whether it is dangerous. Every argument is
validated here before anything is sent, so a bad template result becomes a precise error in the
audit log instead of a confusing reply from a worker (or, worse, a worker doing something odd).
Adding a command is adding a spec to ``COMMANDS``.
"""
from __future__ import annotations

import enum
import math
import re
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

# A sanity ceiling on process counts, so that a template rendering a queue length where a process
# count was meant cannot fork thousands of processes. Real bounds are the rule's max_pool/min_pool.
MAX_POOL_PROCESSES = 1000
MAX_NAME_LENGTH = 255

_NAME = re.compile(r"[^\s\x00-\x1f\x7f]+")
_RATE = re.compile(r"\d+(\.\d+)?(/[smh])?")
_INTEGER = re.compile(r"[+-]?\d+(\.0*)?")
_EXCHANGE_TYPES = ("direct", "topic", "fanout", "headers")


class ArgumentError(ValueError):
    """A command argument has a value the command cannot take."""

    def __init__(self, field: str, value: Any, expected: str) -> None:
        shown = repr(value)
        if len(shown) > 120:
            shown = shown[:117] + "..."
        self.detail = f"got {shown}; expected {expected}"
        super().__init__(f"{field}: {self.detail}")
        self.field = field
        self.value = value
        self.expected = expected


class Requirement(enum.Enum):
    """What a target worker must support; checked against live inspection before sending."""

    RESIZABLE_POOL = "a pool that can grow and shrink (prefork, eventlet, gevent) without --autoscale"
    SIZABLE_POOL = "a pool whose size can change (prefork, eventlet, gevent), with or without --autoscale"
    AUTOSCALER = "a worker started with --autoscale"
    POOL_RESTARTS = "worker_pool_restarts enabled in the worker's configuration"


def integer(low: int, high: int | None = None) -> Callable[[Any], int]:
    expected = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"

    def parse(value: Any) -> int:
        number: int | None = None
        if isinstance(value, bool):
            number = None
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        elif isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
            number = int(value.strip().split(".")[0])
        if number is None or number < low or (high is not None and number > high):
            raise ValueError(expected)
        return number

    return parse


def positive_seconds(value: Any) -> float:
    try:
        number = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number <= 0:
        raise ValueError("a positive number of seconds")
    return number


def name(value: Any) -> str:
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or len(text) > MAX_NAME_LENGTH or not _NAME.fullmatch(text):
        raise ValueError(f"a non-empty name of at most {MAX_NAME_LENGTH} characters "
                         "without whitespace or control characters")
    return text


# Queues of Celery's and kombu's own machinery: remote-control mailboxes (``<node>.celery.pidbox``,
# ``<id>.reply.celery.pidbox``), event receivers (``celeryev.<id>``) and the Redis transport's
# bookkeeping. A worker told to consume one would eat control commands, events or unacked
# bookkeeping meant for others.
_RESERVED_QUEUE = re.compile(r".*\.pidbox|celeryev\..*|_kombu\..*|unacked(_index|_mutex)?")


def queue_name(value: Any) -> str:
    text = name(value)
    if _RESERVED_QUEUE.fullmatch(text):
        raise ValueError("a queue of the application, not one of Celery's own (*.pidbox, celeryev.*, "
                         "_kombu.*, unacked*)")
    return text


def named(field: str, value: Any) -> str:
    """A worker, queue or task name given as ``field``; ArgumentError naming the field otherwise."""
    try:
        return name(value)
    except ValueError as exc:
        raise ArgumentError(field, value, str(exc)) from None


def rate(value: Any) -> str:
    """Celery's rate-limit syntax: ``200/m``, ``10/s``, ``0.5/h``, ``10`` (per second); 0 or "" clears."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str) or not (value == "" or _RATE.fullmatch(value)):
        raise ValueError('a rate like "200/m", "10/s", "0.5/h" or "10" (per second), or 0 or "" to clear')
    return value


def boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    words = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
    if isinstance(value, (str, int)) and str(value).strip().lower() in words:
        return words[str(value).strip().lower()]
    raise ValueError("true or false")


def signal_name(value: Any) -> str:
    text = str(value).upper() if isinstance(value, str) else ""
    candidate = text if text.startswith("SIG") else f"SIG{text}"
    if candidate not in signal.Signals.__members__:
        raise ValueError("a signal name such as SIGTERM or SIGKILL")
    return candidate


def one_of(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"one of {', '.join(choices)}")
        return value
    return parse


@dataclass(frozen=True)
class Argument:
    name: str
    parse: Callable[[Any], Any]
    celery_name: str | None = None
    required: bool = True
    default: Any = None
    # Sent even when absent (as None): time_limit sets both limits at once, and None clears one.
    sent_when_absent: bool = False

    @property
    def keyword(self) -> str:
        """The keyword the worker's control command takes."""
        return self.celery_name or self.name


def _min_le_max(values: Mapping[str, Any]) -> None:
    if values["min"] > values["max"]:
        raise ArgumentError("min", values["min"], f"at most max ({values['max']})")


def _soft_le_hard(values: Mapping[str, Any]) -> None:
    soft, hard = values.get("soft"), values.get("hard")
    if soft is not None and hard is not None and soft > hard:
        raise ArgumentError("soft", soft, f"at most hard ({hard})")


@dataclass(frozen=True)
class CommandSpec:
    name: str
    arguments: tuple[Argument, ...] = ()
    requires: tuple[Requirement, ...] = ()
    dangerous: bool = False
    # Changes a pool's size by a number of processes: the guards remember the size it asked for.
    resizes_pool: bool = False
    # The pool bounds a rule may set on the action (the file's ``limits`` bound it too).
    pool_bounds: tuple[str, ...] = ()
    # max_pool and min_pool are required (pool_target: the target is clamped between them).
    bounds_required: bool = False
    # Sets a pool to a size computed from the alert: every value of the alert's ``value``
    # annotation is a decision of its own (the idempotency key includes it).
    tracks: bool = False
    cross_check: Callable[[Mapping[str, Any]], None] | None = None
    # Arguments always sent with the command, whatever the rule says.
    fixed: Mapping[str, Any] = field(default_factory=dict)

    @property
    def bounded(self) -> bool:
        """``max_pool``/``min_pool`` (the rule's or the file's ``limits``) apply to this command."""
        return self.resizes_pool or self.name == "autoscale"

    @property
    def argument_names(self) -> tuple[str, ...]:
        return tuple(argument.name for argument in self.arguments)

    def validate_one(self, argument_name: str, value: Any) -> Any:
        argument = next(a for a in self.arguments if a.name == argument_name)
        try:
            return argument.parse(value)
        except ValueError as exc:
            raise ArgumentError(argument_name, value, str(exc)) from None

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Check every argument (types, ranges, then relations between them).

        Returns the values keyed by argument name, defaults filled in; an optional argument that
        is absent stays absent (None) rather than being invented.
        """
        unknown = set(raw) - set(self.argument_names)
        if unknown:
            field_name = sorted(unknown)[0]
            raise ArgumentError(field_name, raw[field_name],
                                f"no such argument for {self.name}; it takes "
                                f"{', '.join(self.argument_names) or 'no arguments'}")
        values: dict[str, Any] = {}
        for argument in self.arguments:
            if argument.name in raw and raw[argument.name] is not None:
                values[argument.name] = self.validate_one(argument.name, raw[argument.name])
            elif argument.required:
                raise ArgumentError(argument.name, None, f"a value: {self.name} requires {argument.name}")
            else:
                values[argument.name] = argument.default
        if self.cross_check is not None:
            self.cross_check(values)
        return values

    def celery_arguments(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The ``arguments`` of the broadcast, in the worker's keyword names."""
        sent = {a.keyword: values.get(a.name) for a in self.arguments
                if values.get(a.name) is not None or a.sent_when_absent}
        return {**sent, **self.fixed}


_QUEUE = Argument("queue", queue_name)
_TASK = Argument("task", name, celery_name="task_name")

COMMANDS: dict[str, CommandSpec] = {spec.name: spec for spec in (
    CommandSpec("pool_grow", (Argument("n", integer(1, MAX_POOL_PROCESSES), required=False, default=1),),
                requires=(Requirement.RESIZABLE_POOL,), resizes_pool=True, pool_bounds=("max_pool",)),
    CommandSpec("pool_shrink", (Argument("n", integer(1, MAX_POOL_PROCESSES), required=False, default=1),),
                requires=(Requirement.RESIZABLE_POOL,), resizes_pool=True, pool_bounds=("min_pool",)),
    # Not a Celery command: the guard stage turns it, per worker, into the pool_grow or
    # pool_shrink (autoscale, on an autoscaling worker) that brings the pool to
    # clamp(size, min_pool, max_pool).
    CommandSpec("pool_target", (Argument("size", integer(0, MAX_POOL_PROCESSES)),),
                requires=(Requirement.SIZABLE_POOL,), resizes_pool=True, pool_bounds=("max_pool", "min_pool"),
                bounds_required=True, tracks=True),
    CommandSpec("autoscale", (Argument("max", integer(1, MAX_POOL_PROCESSES)),
                              Argument("min", integer(0, MAX_POOL_PROCESSES))),
                requires=(Requirement.AUTOSCALER,), cross_check=_min_le_max),
    CommandSpec("add_consumer", (_QUEUE,
                                 Argument("exchange", name, required=False),
                                 Argument("exchange_type", one_of(*_EXCHANGE_TYPES), required=False),
                                 Argument("routing_key", name, required=False))),
    CommandSpec("cancel_consumer", (_QUEUE,)),
    CommandSpec("rate_limit", (_TASK, Argument("rate_limit", rate))),
    CommandSpec("time_limit", (_TASK,
                               Argument("soft", positive_seconds, required=False, sent_when_absent=True),
                               Argument("hard", positive_seconds, required=False, sent_when_absent=True)),
                cross_check=_soft_le_hard),
    CommandSpec("pool_restart", requires=(Requirement.POOL_RESTARTS,), fixed={"reload": False}),
    CommandSpec("revoke", (Argument("task_id", name),
                           Argument("terminate", boolean, required=False, default=False),
                           Argument("signal", signal_name, required=False)),
                dangerous=True),
    CommandSpec("shutdown", dangerous=True),
)}
