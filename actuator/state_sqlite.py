"""The guards' memory in an embedded SQLite file: the default, for a single actuator replica.

It survives restarts (a restarted actuator still knows which notifications it handled and when
each rule last acted). Every check-and-write runs inside ``BEGIN IMMEDIATE``, so it stays correct
even if two processes on one host share the file; several replicas on several hosts need the
Redis store.
"""
from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from .guard_state import (BUDGET_WINDOW, RUNNING, Claim, Duplicate, Grant, PauseState, Refusal, Reservation,
                          Snapshot, Stale, StateStoreError, StateUnavailable, judge)
from .sqlite_file import SqliteFile, transaction

T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,
    token TEXT NOT NULL,
    claimed_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS sends (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    rule TEXT NOT NULL,
    worker TEXT NOT NULL,
    action INTEGER
);
CREATE INDEX IF NOT EXISTS sends_rule_worker ON sends(rule, worker, at);
CREATE INDEX IF NOT EXISTS sends_at ON sends(at);
CREATE TABLE IF NOT EXISTS pool_sizes (
    worker TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    expires_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pause (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    paused INTEGER NOT NULL,
    by TEXT,
    at REAL,
    reason TEXT
);
"""


class SqliteGuardState:
    def __init__(self, path: Path | str, horizon: float) -> None:
        """``horizon``: how long a send must be remembered (the longest cooldown, at least the
        budget window); older sends are pruned."""
        try:
            self._file = SqliteFile(path, _prepare, "guard-state")
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreError(f"cannot open the guard state {path}: {exc}") from None
        self.horizon = max(horizon, BUDGET_WINDOW)
        self.description = f"sqlite:{self._file.path}"

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        try:
            return await self._file.run(lambda db: transaction(db, work))
        except sqlite3.OperationalError as exc:  # locked past the busy timeout, disk full, ...
            raise StateUnavailable(f"guard state {self._file.path}: {exc}") from None

    async def claim(self, key: str, ttl: float) -> Claim | Duplicate:
        token = uuid.uuid4().hex

        def claim(db: sqlite3.Connection) -> Claim | Duplicate:
            now = time.time()
            taken = db.execute(
                "INSERT INTO claims (key, token, claimed_at, expires_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET token = excluded.token, claimed_at = excluded.claimed_at, "
                "expires_at = excluded.expires_at WHERE claims.expires_at <= excluded.claimed_at",
                (key, token, now, now + ttl)).rowcount
            if taken:
                return Claim(key, token)
            return Duplicate(key, db.execute("SELECT claimed_at FROM claims WHERE key = ?", (key,)).fetchone()[0])
        return await self._run(claim)

    async def peek(self, key: str) -> Duplicate | None:
        row = await self._run(lambda db: db.execute(
            "SELECT claimed_at FROM claims WHERE key = ? AND expires_at > ?", (key, time.time())).fetchone())
        return Duplicate(key, row[0]) if row else None

    async def release(self, claim: Claim) -> None:
        await self._run(lambda db: db.execute("DELETE FROM claims WHERE key = ? AND token = ?",
                                              (claim.key, claim.token)))

    async def reserve(self, request: Reservation, record: bool) -> Grant | Refusal | Stale:
        def reserve(db: sqlite3.Connection) -> Grant | Refusal | Stale:
            now = time.time()
            verdict = judge(request, _snapshot(db, request, now), now)
            if verdict is not None:
                return verdict
            if not record:
                return Grant(request, "")
            grant_id = str(db.execute("INSERT INTO sends (at, rule, worker, action) VALUES (?, ?, ?, ?)",
                                      (now, request.rule, request.worker, request.action)).lastrowid)
            pool = request.pool
            if pool is not None and pool.after is not None:
                db.execute("INSERT OR REPLACE INTO pool_sizes (worker, size, expires_at) VALUES (?, ?, ?)",
                           (request.worker, pool.after, now + pool.ttl))
            return Grant(request, grant_id)
        return await self._run(reserve)

    async def cancel(self, grant: Grant) -> None:
        if grant.id:
            await self._run(lambda db: db.execute("DELETE FROM sends WHERE id = ?", (int(grant.id),)))
        pool = grant.reservation.pool
        if pool is not None and pool.after is not None:
            await self.forget_pool(grant.reservation.worker, pool.after)

    async def expected_pool(self, worker: str) -> int | None:
        return await self._run(lambda db: _expected_pool(db, worker, time.time()))

    async def forget_pool(self, worker: str, size: int) -> None:
        await self._run(lambda db: db.execute("DELETE FROM pool_sizes WHERE worker = ? AND size = ?",
                                              (worker, size)))

    async def pause_state(self) -> PauseState:
        return await self._run(_pause)

    async def set_pause(self, state: PauseState) -> None:
        await self._run(lambda db: db.execute(
            "INSERT OR REPLACE INTO pause (id, paused, by, at, reason) VALUES (1, ?, ?, ?, ?)",
            (int(state.paused), state.by, state.at, state.reason)))

    async def prune(self) -> int:
        def prune(db: sqlite3.Connection) -> int:
            now = time.time()
            return (db.execute("DELETE FROM claims WHERE expires_at <= ?", (now,)).rowcount
                    + db.execute("DELETE FROM pool_sizes WHERE expires_at <= ?", (now,)).rowcount
                    + db.execute("DELETE FROM sends WHERE at < ?", (now - self.horizon,)).rowcount)
        return await self._run(prune)

    async def close(self) -> None:
        self._file.close()


def _prepare(db: sqlite3.Connection) -> None:
    db.executescript(_SCHEMA)
    columns = {row["name"] for row in db.execute("PRAGMA table_info(sends)")}
    if "action" not in columns:  # written before cooldowns were per action: such sends hold every action
        db.execute("ALTER TABLE sends ADD COLUMN action INTEGER")


def _snapshot(db: sqlite3.Connection, request: Reservation, now: float) -> Snapshot:
    last_sent = db.execute("SELECT max(at) FROM sends WHERE rule = ? AND worker = ? AND (action IS NULL OR action = ?)",
                           (request.rule, request.worker, request.action)).fetchone()[0]
    since = now - BUDGET_WINDOW
    rule_sends = db.execute("SELECT count(*) FROM sends WHERE rule = ? AND at > ?", (request.rule, since)).fetchone()[0]
    all_sends = db.execute("SELECT count(*) FROM sends WHERE at > ?", (since,)).fetchone()[0]
    pool_size = _expected_pool(db, request.worker, now) if request.pool is not None else None
    return Snapshot(last_sent, rule_sends, all_sends, pool_size, _pause(db))


def _pause(db: sqlite3.Connection) -> PauseState:
    row = db.execute("SELECT paused, by, at, reason FROM pause").fetchone()
    return PauseState(bool(row["paused"]), row["by"], row["at"], row["reason"]) if row else RUNNING


def _expected_pool(db: sqlite3.Connection, worker: str, now: float) -> int | None:
    row = db.execute("SELECT size FROM pool_sizes WHERE worker = ? AND expires_at > ?", (worker, now)).fetchone()
    return row[0] if row else None
