"""The durable audit log: every notification and every decision, in an embedded SQLite file.

Records are written before the HTTP answer goes out, so what Alertmanager (or an operator) was
told always has a trail (see :mod:`actuator.sqlite_file` for what survives a crash). Retention
is bounded by age and by row count, pruned periodically by the server. A notification's body is
stored once per content (by SHA-256): Alertmanager's re-sends, retries and replicas deliver the
same body again and again, and a thousand copies of it must not cost a thousand times its size.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .outcomes import ActionReport, AlertReport
from .sqlite_file import SqliteFile, transaction

SCHEMA_VERSION = 3
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
    payload TEXT,
    payload_sha256 TEXT
);
CREATE TABLE IF NOT EXISTS payloads (
    sha256 TEXT PRIMARY KEY,
    body TEXT NOT NULL
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
    duration_seconds REAL,
    guards TEXT
);
CREATE INDEX IF NOT EXISTS decisions_created_at ON decisions(created_at);
CREATE INDEX IF NOT EXISTS decisions_rule ON decisions(rule);
CREATE INDEX IF NOT EXISTS decisions_notification ON decisions(notification_id);
CREATE INDEX IF NOT EXISTS notifications_received_at ON notifications(received_at);
"""
# Created once the column exists (an audit log from an earlier version gains it first).
_PAYLOAD_INDEX = "CREATE INDEX IF NOT EXISTS notifications_payload ON notifications(payload_sha256)"

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
    # The guard that suppressed the action or any of its workers (duplicate, cooldown, ...).
    "reason": "EXISTS (SELECT 1 FROM json_each(d.guards) AS g WHERE g.value = ?)",
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
        try:
            self._file = SqliteFile(path, _prepare, "audit")
        except (OSError, sqlite3.Error) as exc:
            raise AuditLogError(f"cannot open the audit log {path}: {exc}") from None
        self.path = self._file.path
        self._run = self._file.run

    async def record_notification(self, *, principal: str | None, outcome: str, payload: str,
                                  receiver: str | None = None, status: str | None = None,
                                  group_key: str | None = None, alert_count: int | None = None,
                                  error: str | None = None) -> int:
        digest = hashlib.sha256(payload.encode("utf-8", "backslashreplace")).hexdigest()

        def insert(db: sqlite3.Connection) -> int:
            db.execute("INSERT OR IGNORE INTO payloads (sha256, body) VALUES (?, ?)", (digest, payload))
            cursor = db.execute(
                "INSERT INTO notifications (received_at, principal, receiver, status, group_key, "
                "alert_count, outcome, error, payload_sha256) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (time.time(), principal, receiver, status, group_key, alert_count, outcome, error, digest))
            return int(cursor.lastrowid)
        return await self._run(lambda db: transaction(db, insert))

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
            report.duration_seconds, json.dumps(report.guards),
        )

        def insert(db: sqlite3.Connection) -> int:
            cursor = db.execute(
                "INSERT INTO decisions (notification_id, created_at, source, principal, alertname, "
                "fingerprint, alert_status, starts_at, labels, rule, command, arguments, target, "
                "outcome, reason, workers, duration_seconds, guards) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
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
            "SELECT n.*, coalesce(p.body, n.payload) AS body FROM notifications n "
            "LEFT JOIN payloads p ON p.sha256 = n.payload_sha256 WHERE n.id = ?", (notification_id,)).fetchone())
        if row is None:
            return None
        described = {key: row[key] for key in row.keys() if key not in ("payload", "payload_sha256", "body")}
        described["received_at"] = _iso(described["received_at"])
        described["payload"] = row["body"]
        return described

    async def prune(self, max_age: float | None, max_rows: int | None) -> int:
        """Delete what is older than ``max_age`` seconds or beyond the newest ``max_rows`` of each
        table (notifications and decisions alike); return how many rows went."""
        def prune(db: sqlite3.Connection) -> int:
            deleted = 0
            for table, clock in (("decisions", "created_at"), ("notifications", "received_at")):
                if max_age is not None:
                    deleted += db.execute(f"DELETE FROM {table} WHERE {clock} < ?",
                                          (time.time() - max_age,)).rowcount
                if max_rows is not None:
                    deleted += db.execute(
                        f"DELETE FROM {table} WHERE id <= (SELECT id FROM {table} ORDER BY id DESC "
                        f"LIMIT 1 OFFSET ?)", (max_rows,)).rowcount
            db.execute("DELETE FROM payloads WHERE NOT EXISTS "
                       "(SELECT 1 FROM notifications WHERE payload_sha256 = payloads.sha256)")
            return deleted
        return await self._run(prune)

    def close(self) -> None:
        self._file.close()


def _prepare(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    columns = {row["name"] for row in db.execute("PRAGMA table_info(decisions)")}
    if "guards" not in columns:  # an audit log written before the guards existed
        db.execute("ALTER TABLE decisions ADD COLUMN guards TEXT")
    columns = {row["name"] for row in db.execute("PRAGMA table_info(notifications)")}
    if "payload_sha256" not in columns:  # bodies stored inline, one per notification, before
        db.execute("ALTER TABLE notifications ADD COLUMN payload_sha256 TEXT")
    db.execute(_PAYLOAD_INDEX)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


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
        "guards": json.loads(row["guards"] or "[]"),
    }
