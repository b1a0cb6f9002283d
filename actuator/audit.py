"""The durable audit log: every notification and every decision, in an embedded SQLite file.

Records are written before the HTTP answer goes out, so what Alertmanager (or an operator) was
told always has a trail. SQLite runs in WAL mode with ``synchronous=NORMAL``: a record survives
a crash or kill of the actuator; an operating-system crash may lose the last few transactions.
All database work runs on one dedicated thread, which owns the connection.
"""
from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .outcomes import ActionReport, AlertReport

T = TypeVar("T")

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY,
    received_at REAL NOT NULL,
    principal TEXT,
    receiver TEXT,
    status TEXT,
    group_key TEXT,
    alert_count INTEGER,
    outcome TEXT NOT NULL,
    error TEXT,
    payload TEXT
);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY,
    notification_id INTEGER REFERENCES notifications(id),
    created_at REAL NOT NULL,
    source TEXT NOT NULL,
    principal TEXT,
    alertname TEXT,
    fingerprint TEXT,
    alert_status TEXT,
    starts_at TEXT,
    labels TEXT,
    rule TEXT,
    command TEXT,
    arguments TEXT,
    target TEXT,
    outcome TEXT NOT NULL,
    reason TEXT,
    workers TEXT NOT NULL,
    duration_seconds REAL
);
CREATE INDEX IF NOT EXISTS decisions_created_at ON decisions(created_at);
CREATE INDEX IF NOT EXISTS decisions_rule ON decisions(rule);
CREATE INDEX IF NOT EXISTS decisions_notification ON decisions(notification_id);
"""

MAX_LIMIT = 1000
# Filters GET /actions accepts, and the SQL each one becomes.
FILTERS = {
    "rule": "d.rule = ?",
    "command": "d.command = ?",
    "outcome": "d.outcome = ?",
    "source": "d.source = ?",
    "alertname": "d.alertname = ?",
    "fingerprint": "d.fingerprint = ?",
    "notification": "d.notification_id = ?",
    "worker": "EXISTS (SELECT 1 FROM json_each(d.workers) AS w WHERE json_extract(w.value, '$.worker') = ?)",
    "since": "d.created_at >= ?",
}


class AuditLogError(RuntimeError):
    """The audit log cannot be opened (the service must not run without one)."""


@dataclass(frozen=True)
class Context:
    """Where a decision came from: the webhook (with its notification) or the manual API."""

    source: str
    principal: str | None
    notification_id: int | None = None
    alert: AlertReport | None = None


class AuditLog:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit")
        self._db: sqlite3.Connection | None = None
        try:
            self._executor.submit(self._open).result()
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown()
            raise AuditLogError(f"cannot open the audit log {self.path}: {exc}") from None

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.executescript(_SCHEMA)
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        self._db = db

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        assert self._db is not None
        db = self._db
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, db)

    async def record_notification(self, *, principal: str | None, outcome: str, payload: str,
                                  receiver: str | None = None, status: str | None = None,
                                  group_key: str | None = None, alert_count: int | None = None,
                                  error: str | None = None) -> int:
        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO notifications (received_at, principal, receiver, status, group_key, "
                "alert_count, outcome, error, payload) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), principal, receiver, status, group_key, alert_count, outcome, error, payload))
            return int(cursor.lastrowid)
        return await self._run(insert)

    async def finish_notification(self, notification_id: int, outcome: str, error: str | None) -> None:
        await self._run(lambda db: db.execute(
            "UPDATE notifications SET outcome = ?, error = ? WHERE id = ?", (outcome, error, notification_id)))

    async def record_decision(self, context: Context, report: ActionReport) -> int:
        alert = context.alert
        row = (
            context.notification_id, time.time(), context.source, context.principal,
            alert.alertname if alert else None, alert.fingerprint if alert else None,
            alert.status if alert else None, alert.starts_at if alert else None,
            json.dumps(dict(alert.labels)) if alert else None,
            report.rule, report.command, json.dumps(dict(report.arguments)), json.dumps(report.target),
            report.outcome, report.reason, json.dumps([w.describe() for w in report.workers]),
            report.duration_seconds,
        )

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO decisions (notification_id, created_at, source, principal, alertname, "
                "fingerprint, alert_status, starts_at, labels, rule, command, arguments, target, "
                "outcome, reason, workers, duration_seconds) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return int(cursor.lastrowid)
        return await self._run(insert)

    async def decisions(self, filters: dict[str, Any] | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Newest first. ``filters`` keys are those of :data:`FILTERS` (already validated)."""
        filters = filters or {}
        clauses = [FILTERS[key] for key in filters]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = (f"SELECT d.*, n.receiver, n.group_key FROM decisions d "
               f"LEFT JOIN notifications n ON n.id = d.notification_id {where} "
               f"ORDER BY d.id DESC LIMIT ?")
        params = [*filters.values(), max(1, min(limit, MAX_LIMIT))]
        rows = await self._run(lambda db: db.execute(sql, params).fetchall())
        return [_decision(row) for row in rows]

    async def notification(self, notification_id: int) -> dict[str, Any] | None:
        row = await self._run(lambda db: db.execute(
            "SELECT * FROM notifications WHERE id = ?", (notification_id,)).fetchone())
        if row is None:
            return None
        described = dict(row)
        described["received_at"] = _iso(described["received_at"])
        return described

    def close(self) -> None:
        def close(db: sqlite3.Connection | None) -> None:
            if db is not None:
                db.close()
        self._executor.submit(close, self._db).result()
        self._db = None
        self._executor.shutdown(wait=True)


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="milliseconds")


def _decision(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "created_at": _iso(row["created_at"]),
        "source": row["source"],
        "principal": row["principal"],
        "notification_id": row["notification_id"],
        "receiver": row["receiver"],
        "group_key": row["group_key"],
        "alert": None if row["fingerprint"] is None else {
            "alertname": row["alertname"],
            "fingerprint": row["fingerprint"],
            "status": row["alert_status"],
            "startsAt": row["starts_at"],
            "labels": json.loads(row["labels"] or "{}"),
        },
        "rule": row["rule"],
        "command": row["command"],
        "arguments": json.loads(row["arguments"] or "{}"),
        "target": json.loads(row["target"] or "null"),
        "outcome": row["outcome"],
        "reason": row["reason"],
        "workers": json.loads(row["workers"]),
        "duration_seconds": row["duration_seconds"],
    }
