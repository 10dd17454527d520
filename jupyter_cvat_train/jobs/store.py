"""The job store: an sqlite index of the jobs in a runs root (``<runs_root>/jobs.sqlite``).

It makes listing fast and keeps what only the launcher knows (queue order, the pid it
started, a cancel request, the GPU given). The job folder stays the source of truth for
a job's state: status.json, written by the job process. A lost or deleted store is
rebuilt from the folders (:func:`jupyter_cvat_train.jobs.reconcile.reconcile`).

Several processes may open one store (the server, the CLI): WAL mode, a busy timeout,
one short transaction per call. Thread-safe (one connection per call).
"""
from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

STORE_NAME = "jobs.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    message TEXT NOT NULL DEFAULT '',
    progress TEXT NOT NULL DEFAULT '{}',
    outputs TEXT NOT NULL DEFAULT '{}',
    created_at TEXT,
    started_at TEXT,
    ended_at TEXT,
    pid INTEGER,
    pid_start_time REAL,
    gpu INTEGER,
    cancel_requested_at REAL
);
CREATE TABLE IF NOT EXISTS forgotten (id TEXT PRIMARY KEY);
"""

_JSON_COLUMNS = ("progress", "outputs")
COLUMNS = ("seq", "id", "kind", "state", "message", "progress", "outputs", "created_at", "started_at",
           "ended_at", "pid", "pid_start_time", "gpu", "cancel_requested_at")


class JobStore:
    """Rows ``{seq, id, kind, state, message, progress, outputs, created_at, started_at,
    ended_at, pid, pid_start_time, gpu, cancel_requested_at}`` keyed by job id; ``seq``
    is the creation order (the queue order)."""

    def __init__(self, runs_root: Path | str):
        self.runs_root = Path(runs_root)
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self.path = self.runs_root / STORE_NAME
        self._local = threading.local()
        self._conn().executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    class _Tx:
        def __init__(self, conn):
            self.conn = conn

        def __enter__(self):
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, exc_type, exc, tb):
            self.conn.execute("COMMIT" if exc_type is None else "ROLLBACK")

    def _tx(self) -> "_Tx":
        return self._Tx(self._conn())

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        d = dict(row)
        for k in _JSON_COLUMNS:
            try:
                d[k] = json.loads(d[k] or "{}")
            except ValueError:
                d[k] = {}
        return d

    def add(self, id: str, kind: str, state: str = "queued", **fields: Any) -> dict:
        """Insert a job (its seq is the next in order). Raises sqlite3.IntegrityError
        if ``id`` exists."""
        fields = {"id": id, "kind": kind, "state": state, **fields}
        with self._tx() as db:
            db.execute("DELETE FROM forgotten WHERE id = ?", (id,))
            cols = ", ".join(fields)
            db.execute(f"INSERT INTO jobs ({cols}) VALUES ({', '.join('?' * len(fields))})",
                       [self._encode(k, v) for k, v in fields.items()])
        return self.get(id)

    @staticmethod
    def _encode(key: str, value: Any) -> Any:
        if key not in COLUMNS:
            raise KeyError(f"unknown job store column {key!r}")
        return json.dumps(value, default=str) if key in _JSON_COLUMNS else value

    def update(self, id: str, **fields: Any) -> None:
        """Set ``fields`` of job ``id`` (no-op for an unknown id)."""
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*(self._encode(k, v) for k, v in fields.items()), id])

    def get(self, id: str) -> dict | None:
        """The row of job ``id`` or None."""
        return self._row(self._conn().execute("SELECT * FROM jobs WHERE id = ?", (id,)).fetchone())

    def list(self, states: tuple[str, ...] | None = None) -> list[dict]:
        """Rows in creation order, optionally only those whose state is in ``states``."""
        if states:
            q = f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(states))}) ORDER BY seq"
            rows = self._conn().execute(q, states).fetchall()
        else:
            rows = self._conn().execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        return [self._row(r) for r in rows]

    def forget(self, id: str) -> None:
        """Drop job ``id`` from the index and remember not to re-index its folder."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (id,))
            db.execute("INSERT OR IGNORE INTO forgotten (id) VALUES (?)", (id,))

    def is_forgotten(self, id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM forgotten WHERE id = ?", (id,)).fetchone() is not None

    def ids(self) -> Iterator[str]:
        for (i,) in self._conn().execute("SELECT id FROM jobs").fetchall():
            yield i

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
