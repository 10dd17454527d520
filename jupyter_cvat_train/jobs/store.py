"""The job store: an sqlite index of the jobs in a runs root (``<runs_root>/jobs.sqlite``).

It makes listing fast and keeps what only the launcher knows (queue order, the pid it
started, a cancel request, the GPU given). The job folder stays the source of truth for
a job's state: status.json, written by the job process. A lost or deleted store is
rebuilt from the folders (:func:`jupyter_cvat_train.jobs.reconcile.reconcile`).

Several processes may open one store (the server, the CLI): WAL mode, a busy timeout,
one short transaction per call. Thread-safe (one connection per call).

The file lies in the runs root, so any Contents API user may replace it: every value is
checked by type and range before it is stored (:func:`check_value`, a bad one raises
ValueError) and when it is loaded (a bad row is skipped and logged); a file that is not
a usable database is moved aside (``jobs.sqlite.corrupt-<time>``) and a new index is
built from the folders.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .runtime import JobState, clean_progress, valid_number, valid_pid, valid_state, valid_text, valid_time

STORE_NAME = "jobs.sqlite"
JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")  # the ids the HTTP API routes accept
log = logging.getLogger(__name__)

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
    cancel_requested_at REAL,
    token TEXT
);
CREATE TABLE IF NOT EXISTS forgotten (id TEXT PRIMARY KEY);
"""

_JSON_COLUMNS = ("progress", "outputs")
COLUMNS = (
    "seq",
    "id",
    "kind",
    "state",
    "message",
    "progress",
    "outputs",
    "created_at",
    "started_at",
    "ended_at",
    "pid",
    "pid_start_time",
    "gpu",
    "cancel_requested_at",
    "token",
)


def _opt(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda v: None if v is None else check(v)


def _id(v: Any) -> str:
    if isinstance(v, str) and JOB_ID_RE.fullmatch(v) and v not in (".", ".."):
        return v
    raise ValueError("expected a job id (letters, digits, '.', '_', '-'; at most 128 characters)")


def _kind(v: Any) -> str:
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", v):
        return v
    raise ValueError("expected a job kind name")


def _json_object(v: Any) -> dict:
    if not isinstance(v, dict):
        raise ValueError("expected a JSON object")
    return v


def _seq(v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
        return v
    raise ValueError("expected a sequence number")


def _gpu(v: Any) -> int | str:
    if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1024:
        return v
    if isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9:._-]{1,64}(,[A-Za-z0-9:._-]{1,64}){0,63}", v):
        return v
    raise ValueError("expected a GPU id, or ids joined by commas")


def _token(v: Any) -> str:
    if isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v):
        return v
    raise ValueError("expected a signature (64 hex digits)")


def _number(v: Any) -> float:
    if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0:
        return v
    raise ValueError("expected a finite number >= 0")


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "seq": _seq,
    "id": _id,
    "kind": _kind,
    "state": valid_state,
    "message": valid_text,
    "progress": lambda v: clean_progress(_json_object(v)),
    "outputs": _json_object,
    "created_at": _opt(valid_time),
    "started_at": _opt(valid_time),
    "ended_at": _opt(valid_time),
    "pid": _opt(valid_pid),
    "pid_start_time": _opt(valid_number),
    "gpu": _opt(_gpu),
    "cancel_requested_at": _opt(_number),
    "token": _opt(_token),
}


def check_value(key: str, value: Any) -> Any:
    """``value`` checked for store column ``key`` (message cut to its maximum length,
    progress reduced to {done, total, unit}). Raises KeyError for an unknown column and
    ValueError naming the column for a value of the wrong type or range."""
    if key not in _CHECKS:
        raise KeyError(f"unknown job store column {key!r}")
    try:
        return _CHECKS[key](value)
    except ValueError as e:
        raise ValueError(f"job store column {key}: {e}, not {str(value)[:80]!r}") from None


class JobStore:
    """Rows ``{seq, id, kind, state, message, progress, outputs, created_at, started_at,
    ended_at, pid, pid_start_time, gpu, cancel_requested_at}`` keyed by job id; ``seq``
    is the creation order (the queue order)."""

    def __init__(self, runs_root: Path | str):
        self.runs_root = Path(runs_root)
        self.runs_root.mkdir(parents=True, exist_ok=True)
        self.path = self.runs_root / STORE_NAME
        self._local = threading.local()
        try:
            self._open()
        except sqlite3.DatabaseError as e:  # not a database, a folder in its place, a bad schema
            self.close()
            aside = self.path.with_name(f"{STORE_NAME}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
            log.error(
                "cvat-train: the job index %s is not usable (%s); moved to %s, rebuilding it from the job folders",
                self.path,
                e,
                aside.name,
            )
            os.replace(self.path, aside)
            for extra in ("-wal", "-shm"):
                try:
                    os.replace(f"{self.path}{extra}", f"{aside}{extra}")
                except FileNotFoundError:
                    pass
            self._open()

    def _open(self) -> None:
        """Create the tables (and add columns missing from an older store); check that
        the jobs table has the columns we use."""
        conn = self._conn()
        conn.executescript(_SCHEMA)
        for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
            conn.execute(f'DROP TRIGGER IF EXISTS "{str(name).replace(chr(34), chr(34) * 2)}"')  # none are ours
        cols = {r[1] for r in conn.execute("PRAGMA table_info(jobs)").fetchall()}
        if "token" not in cols:
            conn.execute("ALTER TABLE jobs ADD COLUMN token TEXT")
            cols.add("token")
        if not set(COLUMNS) <= cols:
            raise sqlite3.DatabaseError(f"its jobs table lacks columns {sorted(set(COLUMNS) - cols)}")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._local.conn = conn
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA trusted_schema=OFF")  # no functions from views or triggers of a planted file
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

    def _tx(self) -> _Tx:
        return self._Tx(self._conn())

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        """The checked row, or None when the row is bad (logged)."""
        if row is None:
            return None
        d = dict(row)
        try:
            for k in _JSON_COLUMNS:
                if not isinstance(d.get(k), (str, type(None))):
                    raise ValueError(f"job store column {k}: expected JSON text")
                try:
                    d[k] = json.loads(d[k] or "{}")
                except (ValueError, RecursionError):
                    raise ValueError(f"job store column {k}: not valid JSON") from None
            return {k: check_value(k, d.get(k)) for k in COLUMNS if k != "message"} | {
                "message": check_value("message", d.get("message") or "")
            }
        except ValueError as e:
            log.warning("cvat-train: skipping a bad row of the job index (job %s): %s", str(d.get("id"))[:80], e)
            return None

    def add(self, id: str, kind: str, state: str = JobState.QUEUED, **fields: Any) -> dict:
        """Insert a job (its seq is the next in order). Raises sqlite3.IntegrityError
        if ``id`` exists."""
        fields = {"id": id, "kind": kind, "state": state, **fields}
        with self._tx() as db:
            db.execute("DELETE FROM forgotten WHERE id = ?", (id,))
            cols = ", ".join(fields)
            db.execute(
                f"INSERT INTO jobs ({cols}) VALUES ({', '.join('?' * len(fields))})",
                [self._encode(k, v) for k, v in fields.items()],
            )
        return self.get(id)

    @staticmethod
    def _encode(key: str, value: Any) -> Any:
        value = check_value(key, value)
        return json.dumps(value, default=str) if key in _JSON_COLUMNS else value

    def update(self, id: str, **fields: Any) -> None:
        """Set ``fields`` of job ``id`` (no-op for an unknown id)."""
        if not fields:
            return
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self._tx() as db:
            db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*(self._encode(k, v) for k, v in fields.items()), id])

    def get(self, id: str) -> dict | None:
        """The row of job ``id`` or None (also when that row is bad)."""
        return self._row(self._conn().execute("SELECT * FROM jobs WHERE id = ?", (id,)).fetchone())

    def list(self, states: tuple[str, ...] | None = None) -> list[dict]:
        """Rows in creation order, optionally only those whose state is in ``states``."""
        if states:
            q = f"SELECT * FROM jobs WHERE state IN ({', '.join('?' * len(states))}) ORDER BY seq"
            rows = self._conn().execute(q, states).fetchall()
        else:
            rows = self._conn().execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        return [r for r in map(self._row, rows) if r is not None]

    def forget(self, id: str) -> None:
        """Drop job ``id`` from the index and remember not to re-index its folder."""
        with self._tx() as db:
            db.execute("DELETE FROM jobs WHERE id = ?", (id,))
            db.execute("INSERT OR IGNORE INTO forgotten (id) VALUES (?)", (id,))

    def is_forgotten(self, id: str) -> bool:
        return self._conn().execute("SELECT 1 FROM forgotten WHERE id = ?", (id,)).fetchone() is not None

    def remove_bad_rows(self) -> list[str]:
        """Delete the rows that fail the checks (so their folders can be indexed again);
        returns their ids (as text, cut to 80 characters)."""
        bad = []
        for row in self._conn().execute("SELECT * FROM jobs").fetchall():
            if self._row(row) is None:
                bad.append(row["seq"])
        removed = []
        for seq in bad:
            with self._tx() as db:
                ident = db.execute("SELECT id FROM jobs WHERE seq = ?", (seq,)).fetchone()
                db.execute("DELETE FROM jobs WHERE seq = ?", (seq,))
            removed.append(str(ident[0] if ident else seq)[:80])
        return removed

    def ids(self) -> Iterator[str]:
        """Every id in the index (bad rows included, so their folders are not indexed twice)."""
        for (i,) in self._conn().execute("SELECT id FROM jobs").fetchall():
            yield i

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
