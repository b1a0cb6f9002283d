"""The audit log's file: bounded retention, the guards column, and logs written before it existed."""
from __future__ import annotations

import sqlite3
import time

from actuator.audit import AuditLog, Context
from actuator.outcomes import ActionReport, WorkerResult


async def _fill(audit: AuditLog, count: int) -> None:
    for i in range(count):
        notification = await audit.record_notification(principal="basic:am", outcome="handled", payload=f"{i}")
        report = ActionReport(command="pool_grow", outcome="suppressed", rule="grow", guard="duplicate",
                              workers=[WorkerResult("w1", "suppressed", "cooldown: ...", "cooldown")])
        await audit.record_decision(Context("webhook", "basic:am", notification), report)


async def test_prune_keeps_the_newest_rows_and_drops_old_ones(tmp_path):
    audit = AuditLog(tmp_path / "audit.sqlite3")
    try:
        await _fill(audit, 10)
        assert await audit.prune(max_age=None, max_rows=3) == 14  # 7 decisions and 7 notifications
        kept = await audit.decisions({}, 100)
        assert [r["notification_id"] for r in kept] == [10, 9, 8]
        assert await audit.notification(7) is None and (await audit.notification(8))["payload"] == "7"
        assert await audit.prune(max_age=3600, max_rows=None) == 0
        # Older than "one second from now": every row, whatever the clock's resolution.
        assert await audit.prune(max_age=-1, max_rows=None) == 6
        assert await audit.decisions({}, 100) == []
    finally:
        audit.close()


async def test_guards_are_recorded_and_filterable(tmp_path):
    audit = AuditLog(tmp_path / "audit.sqlite3")
    try:
        await _fill(audit, 2)
        (newest, _) = await audit.decisions({"reason": "cooldown"}, 100)
        assert newest["guards"] == ["cooldown", "duplicate"]
        assert await audit.decisions({"reason": "budget"}, 100) == []
    finally:
        audit.close()


async def test_an_audit_log_from_before_the_guards_opens_and_keeps_its_records(tmp_path):
    """Written by the first version: no guards column, bodies inline."""
    path = tmp_path / "audit.sqlite3"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE notifications (id INTEGER PRIMARY KEY, received_at REAL NOT NULL, principal TEXT,
            receiver TEXT, status TEXT, group_key TEXT, alert_count INTEGER, outcome TEXT NOT NULL,
            error TEXT, payload TEXT);
        CREATE TABLE decisions (id INTEGER PRIMARY KEY, notification_id INTEGER, created_at REAL NOT NULL,
            source TEXT NOT NULL, principal TEXT, alertname TEXT, fingerprint TEXT, alert_status TEXT,
            starts_at TEXT, labels TEXT, rule TEXT, command TEXT, arguments TEXT, target TEXT,
            outcome TEXT NOT NULL, reason TEXT, workers TEXT NOT NULL, duration_seconds REAL);
        PRAGMA user_version=1;
    """)
    old.execute("INSERT INTO decisions (created_at, source, outcome, workers, command) "
                "VALUES (?, 'api', 'sent', '[]', 'pool_grow')", (time.time(),))
    old.execute("INSERT INTO notifications (received_at, outcome, payload) VALUES (?, 'handled', '{\"old\": 1}')",
                (time.time(),))
    old.commit()
    old.close()
    audit = AuditLog(path)
    try:
        await _fill(audit, 1)
        older, = [r for r in await audit.decisions({}, 100) if r["source"] == "api"]
        assert (older["command"], older["guards"]) == ("pool_grow", [])
        assert len(await audit.decisions({"reason": "duplicate"}, 100)) == 1
        # Bodies were stored inline, one per notification, then.
        assert (await audit.notification(1))["payload"] == '{"old": 1}'
        assert (await audit.notification(2))["payload"] == "0"
    finally:
        audit.close()


async def test_a_body_sent_again_and_again_is_stored_once(tmp_path):
    """Alertmanager's re-sends and retries carry the same body: one copy, however many notifications."""
    audit = AuditLog(tmp_path / "audit.sqlite3")
    body = '{"receiver": "r", "alerts": ["' + "x" * 10_000 + '"]}'
    try:
        ids = [await audit.record_notification(principal="basic:am", outcome="handled", payload=body)
               for _ in range(50)]
        other = await audit.record_notification(principal="basic:am", outcome="handled", payload="{}")
        assert [(await audit.notification(i))["payload"] for i in ids] == [body] * 50
        assert (await audit.notification(other))["payload"] == "{}"
        db = sqlite3.connect(tmp_path / "audit.sqlite3")
        assert db.execute("SELECT count(*) FROM payloads").fetchone()[0] == 2
        assert db.execute("SELECT sum(length(body)) FROM payloads").fetchone()[0] == len(body) + 2
        # Pruned with the last notification that refers to it.
        await audit.prune(max_age=None, max_rows=1)
        assert db.execute("SELECT body FROM payloads").fetchall() == [("{}",)]
        db.close()
    finally:
        audit.close()

