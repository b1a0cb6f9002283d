"""An SQLite file used from asyncio: one dedicated thread owns the connection.

The audit log and the embedded guard state each keep one. WAL mode with ``synchronous=NORMAL``:
a committed write survives a crash or kill of the process (an operating-system crash may lose the
last few transactions), and readers never wait for the writer. A busy timeout lets two processes
share a file without failing on each other's locks.
"""
from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class SqliteFile:
    def __init__(self, path: Path | str, prepare: Callable[[sqlite3.Connection], None], name: str) -> None:
        """Open (creating the file and its folder) and run ``prepare`` (the schema) on it.

        Raises OSError or sqlite3.Error when the file cannot be used; the caller names it.
        """
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._db: sqlite3.Connection | None = None
        try:
            self._executor.submit(self._open, prepare).result()
        except BaseException:
            self._executor.shutdown()
            raise

    def _open(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        prepare(db)
        self._db = db

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` on the file's thread (so calls never interleave within one process)."""
        assert self._db is not None
        return await asyncio.get_running_loop().run_in_executor(self._executor, work, self._db)

    def close(self) -> None:
        """Close the connection and its thread (again: nothing)."""
        if self._db is None:
            return
        self._executor.submit(self._db.close).result()
        self._db = None
        self._executor.shutdown(wait=True)


def transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """Run ``work`` inside ``BEGIN IMMEDIATE``: it holds the write lock from its first read, so
    a check and the write that depends on it are one step, for other processes too."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
    return result
