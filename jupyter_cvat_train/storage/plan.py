"""The sync plan: what to copy, update, delete or skip, decided before anything moves.

Rules (those of ``aws s3 sync``, with the differences noted):

- A file is *copied* when the destination lacks it, *updated* when sizes differ or the
  source is newer than the destination by more than the storage's mtime tolerance
  (``checksum=True`` instead compares content hashes and ignores mtimes), *skipped*
  otherwise.
- Unlike awscli, the mtime an object *records* (metadata ``mtime``, which our uploads
  and rclone's store) counts: when sizes are equal and the times say "update", the
  object's recorded mtime is read (one HEAD per such file, S3 only) and, when it equals
  the local file's mtime within the tolerance, the file is skipped. So a sync down right
  after a sync up transfers nothing, although every object's LastModified (its upload
  time) is newer than its source file.
- With ``delete=True``, destination files that the source lacks are *deleted*; only
  files the filters select are ever deleted.
- Filters: a key is selected when it matches an ``include`` glob, or matches no
  ``exclude`` glob; when only includes are given, only matching keys are selected.
  (``--exclude '*' --include '*.jpg'`` thus works as in awscli; unlike awscli an
  include always wins over an exclude, whatever their order.) Globs are
  :mod:`fnmatch` patterns matched against the whole key, where ``*`` also matches
  ``/``.
- Downloads refuse keys that would land outside the workspace (:func:`.local.check_key`).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .local import Entry, UnsafeKeyError, check_key


class Filters:
    """Include/exclude globs compiled to two regexes (see the module docstring)."""

    def __init__(self, include: Iterable[str] = (), exclude: Iterable[str] = ()):
        self.include = [str(p) for p in include or ()]
        self.exclude = [str(p) for p in exclude or ()]
        self._inc = self._compile(self.include)
        self._exc = self._compile(self.exclude)

    @staticmethod
    def _compile(patterns: list[str]):
        if not patterns:
            return None
        return re.compile("|".join(f"(?:{fnmatch.translate(p)})" for p in patterns))

    def __call__(self, key: str) -> bool:
        if self._inc is not None and self._inc.match(key):
            return True
        if self._exc is None:
            return self._inc is None
        return not self._exc.match(key)


@dataclass
class Action:
    """One step of a plan. ``op``: copy | update | delete. ``size``: bytes to transfer
    (0 for delete). ``src``/``dst``: the entries on each side (None where absent)."""

    op: str
    key: str
    size: int
    src: Entry | None = None
    dst: Entry | None = None


@dataclass
class SyncPlan:
    """The actions, plus what was skipped (same on both sides) or refused (unsafe key,
    with the reason). ``recorded_same``: the skipped ``(object, local file)`` pairs whose
    times disagreed but whose object records the local file's mtime (see
    ``stored_mtime`` of :func:`plan_sync`)."""

    actions: list[Action] = field(default_factory=list)
    skipped: int = 0
    skipped_bytes: int = 0
    refused: list[tuple[str, str]] = field(default_factory=list)
    recorded_same: list[tuple[Entry, Entry]] = field(default_factory=list)

    def count(self, op: str) -> int:
        return sum(1 for a in self.actions if a.op == op)

    @property
    def transfer_bytes(self) -> int:
        return sum(a.size for a in self.actions if a.op != "delete")

    def lines(self) -> list[str]:
        """Human-readable plan, one line per action or refusal."""
        out = [f"{a.op:<7} {a.key}" + (f"  ({a.size:,} bytes)" if a.op != "delete" else "") for a in self.actions]
        out += [f"refuse  {key}  ({reason})" for key, reason in self.refused]
        return out


def plan_sync(
    src: Iterable[Entry],
    dst: Iterable[Entry],
    *,
    filters: Filters | None = None,
    delete: bool = False,
    checksum: bool = False,
    mtime_tolerance: float = 0.0,
    same_content: Callable[[Entry, Entry], bool] | None = None,
    stored_mtime: Callable[[Entry], float | None] | None = None,
    download: bool = False,
    threads: int = 8,
) -> SyncPlan:
    """Compare source and destination entries and decide each key's action.

    ``same_content(src_entry, dst_entry)`` is called (in ``threads`` threads) for
    equal-size pairs when ``checksum`` is True. ``stored_mtime(object_entry)``, when
    given, returns the mtime (epoch seconds) an object records in its metadata, or None;
    it is called (in ``threads`` threads) only for equal-size pairs whose times would
    make an update, with the storage side's entry (the source with ``download``, else
    the destination), and a recorded mtime within ``mtime_tolerance`` of the local
    file's makes the pair skipped. It may raise StorageError (the plan then stops). With
    ``download`` the source keys are checked with :func:`check_key` and unsafe ones go to
    ``plan.refused``. Actions are ordered largest transfer first (so big files start
    early), then deletes.
    """
    filters = filters or Filters()
    plan = SyncPlan()
    src_map: dict[str, Entry] = {}
    for e in src:
        if not filters(e.key):
            continue
        if download:
            try:
                check_key(e.key)
            except UnsafeKeyError as err:
                plan.refused.append((e.key, str(err)))
                continue
        src_map[e.key] = e
    dst_map = {e.key: e for e in dst if filters(e.key)}

    to_hash: list[tuple[Entry, Entry]] = []
    to_head: list[tuple[Entry, Entry]] = []
    for key, s in src_map.items():
        d = dst_map.get(key)
        if d is None:
            plan.actions.append(Action("copy", key, s.size, s, None))
        elif s.size != d.size:
            plan.actions.append(Action("update", key, s.size, s, d))
        elif checksum:
            to_hash.append((s, d))
        elif s.mtime > d.mtime + mtime_tolerance:
            if stored_mtime is None:
                plan.actions.append(Action("update", key, s.size, s, d))
            else:
                to_head.append((s, d))
        else:
            plan.skipped += 1
            plan.skipped_bytes += s.size
    if to_hash:
        if same_content is None:
            raise ValueError("checksum=True needs same_content")
        with ThreadPoolExecutor(max(1, threads)) as pool:
            same = list(pool.map(lambda pair: same_content(*pair), to_hash))
        for (s, d), eq in zip(to_hash, same):
            if eq:
                plan.skipped += 1
                plan.skipped_bytes += s.size
            else:
                plan.actions.append(Action("update", s.key, s.size, s, d))
    if to_head:

        def unchanged(pair: tuple[Entry, Entry]) -> bool:
            obj, local = pair if download else pair[::-1]
            recorded = stored_mtime(obj)
            return recorded is not None and abs(recorded - local.mtime) <= mtime_tolerance

        with ThreadPoolExecutor(max(1, threads)) as pool:
            same = list(pool.map(unchanged, to_head))
        for (s, d), eq in zip(to_head, same):
            if eq:
                plan.skipped += 1
                plan.skipped_bytes += s.size
                plan.recorded_same.append((s, d) if download else (d, s))
            else:
                plan.actions.append(Action("update", s.key, s.size, s, d))
    plan.actions.sort(key=lambda a: -a.size)
    if delete:
        plan.actions += [Action("delete", key, 0, None, d) for key, d in sorted(dst_map.items()) if key not in src_map]
    return plan
