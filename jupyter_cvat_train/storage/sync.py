"""The sync engine: list both sides once, plan, then execute with a thread pool.

``sync(SyncOptions(...))`` is the one code path behind ``cvat-train sync`` and the
``sync`` job kind. Order of work:

0. parse the storage URI once (:mod:`.location`) and refuse a workspace that overlaps
   a ``file://`` storage or contains a protected folder (the job's own);
1. take the folder-pair lock (:mod:`.lock`, keyed by the canonical location; not for a
   dry run);
2. list the storage (one paginated listing; a missing bucket or folder is an error) and
   walk the workspace (``os.scandir``);
3. plan (:mod:`.plan`; an equal-size file whose times disagree costs one HEAD for the
   mtime its object records); deletes are planned only when both listings are complete
   (no folder or entry that could not be read); a dry run reports the plan and stops;
4. a sync down gives the local files that the plan found equal by their recorded mtime
   the object's listed mtime (as a download would: the next sync needs no HEAD);
   remove leftovers of interrupted runs (temp files of dead processes, incomplete
   multipart uploads of keys about to be written);
5. transfer (largest first) in ``concurrency`` threads; downloads go to a temp file in
   the destination folder, get the object's mtime, and are renamed into place; an
   upload whose source changed while it was read is not kept and is retried
   (:data:`CHANGED_RETRIES` times) with a fresh stat;
6. delete (``delete=True``), only when every transfer succeeded.

A fatal storage error (unreachable endpoint, refused credentials, missing bucket)
stops the run at once with one clear :class:`StorageError`; a failing file is
recorded and the rest goes on. Cancellation (``cancelled`` event) stops new work and
lets transfers in flight finish; what is done stays done, so a re-run transfers only
what is still missing.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..fileio import atomic_write_with
from .errors import SourceChanged, StorageError, TransferError
from .local import (
    Entry,
    UnsafeKeyError,
    ensure_parent,
    local_path,
    remove_stale_temp_files,
    temp_name,
    unchanged,
    walk,
)
from .location import StorageLocation, is_within, normalize_endpoint_url, parse_storage_uri
from .lock import SyncLock
from .opener import open_storage
from .plan import Action, Filters, SyncPlan, plan_sync

MAX_ERRORS_KEPT = 50
CHANGED_RETRIES = 2
"""Extra upload attempts for a file that changed while it was read."""


@dataclass
class SyncOptions:
    """What to sync and how.

    direction: ``up`` (workspace -> storage) or ``down`` (storage -> workspace).
    workspace: local folder. storage: ``s3://bucket/prefix`` or ``file:///path`` (a
    string, parsed once, or a :class:`.location.StorageLocation`).
    delete: delete destination files absent from the source (only selected ones).
    dry_run: plan only; change nothing. include/exclude: globs (see :mod:`.plan`).
    checksum: compare content hashes instead of size + mtime.
    endpoint_url: S3-compatible endpoint. concurrency: parallel transfers.
    lock_timeout: seconds to wait for another sync of the same pair (0: refuse now).
    max_attempts / retry_mode: botocore retries per request.
    multipart_threshold / multipart_chunksize / download_chunksize: bytes (S3 only):
    objects at or above the threshold are uploaded in parts of ``multipart_chunksize``
    and downloaded as ranged GETs of ``download_chunksize``.
    on_transfer: called after each completed copy/update with its :class:`Action`
    (from a worker thread); a hook for embedding code and tests.
    protected: folders the workspace must not contain (the job's own folder, the runs
    root): a sync there would copy, or with delete remove, the job's own files.
    """

    direction: str
    workspace: str
    storage: str | StorageLocation
    delete: bool = False
    dry_run: bool = False
    include: list[str] = field(default_factory=list)
    exclude: list[str] = field(default_factory=list)
    checksum: bool = False
    endpoint_url: str | None = None
    concurrency: int = 16
    lock_timeout: float = 0.0
    max_attempts: int = 5
    retry_mode: str = "standard"
    multipart_threshold: int = 16 << 20
    multipart_chunksize: int = 8 << 20
    download_chunksize: int = 64 << 20
    on_transfer: Callable[[Action], None] | None = None
    protected: tuple[str, ...] = ()

    def validate(self) -> StorageLocation:
        """Check the options before touching anything; return the parsed storage
        location. Raises StorageError for options that cannot work: a bad direction or
        storage URI, a missing upload source, a workspace that overlaps a ``file://``
        storage (either contains the other) or contains a protected folder."""
        location = parse_storage_uri(self.storage)
        if self.direction not in ("up", "down"):
            raise StorageError(f"direction must be 'up' or 'down', not {self.direction!r}")
        if not self.workspace:
            raise StorageError("a workspace folder is needed")
        if self.direction == "up" and not os.path.isdir(self.workspace):
            raise StorageError(f"workspace folder {self.workspace} does not exist (nothing to upload)")
        if os.path.exists(self.workspace) and not os.path.isdir(self.workspace):
            raise StorageError(f"workspace {self.workspace} is not a folder")
        if not (1 <= int(self.concurrency) <= 256):
            raise StorageError("concurrency must be between 1 and 256")
        if int(self.download_chunksize) < 1:
            raise StorageError("download_chunksize must be at least 1 byte")
        if self.retry_mode not in ("standard", "adaptive", "legacy"):
            raise StorageError("retry_mode must be 'standard' or 'adaptive'")
        if location.overlaps(self.workspace):
            raise StorageError(
                f"workspace {self.workspace} and storage {location.uri} overlap (one contains the "
                "other): a sync would copy the storage into itself; choose separate folders"
            )
        for folder in self.protected:
            if is_within(folder, self.workspace):
                raise StorageError(
                    f"workspace {self.workspace} contains {folder}, the job folders of "
                    "cvat-train: a sync would copy or delete the jobs' own files; "
                    "choose a folder that does not contain it"
                )
        return location


class _Counters:
    """Thread-safe progress counters. Transfer threads only count; the thread that
    runs :func:`sync` calls :meth:`maybe_report`, so writing progress (events.jsonl,
    status.json with its fsync) never stalls a transfer."""

    def __init__(
        self, files_total: int, bytes_total: int, report: Callable[[dict], None] | None, interval: float = 0.2
    ):
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0
        self.t0 = time.monotonic()
        self._lock = threading.Lock()
        self._report, self.interval, self._last = report, interval, 0.0

    def add_bytes(self, n: int) -> None:
        with self._lock:
            self.bytes_done += n

    def add_file(self) -> None:
        with self._lock:
            self.files_done += 1

    def snapshot(self) -> dict:
        dt = max(time.monotonic() - self.t0, 1e-9)
        with self._lock:
            files_done, bytes_done = self.files_done, self.bytes_done
        return {
            "files_done": files_done,
            "files_total": self.files_total,
            "bytes_done": bytes_done,
            "bytes_total": self.bytes_total,
            "rate": bytes_done / dt,
            "seconds": dt,
        }

    def maybe_report(self, force: bool = False) -> None:
        """Report a snapshot if ``interval`` seconds passed since the last (or ``force``)."""
        if self._report is None:
            return
        t = time.monotonic()
        if not force and t - self._last < self.interval:
            return
        self._last = t
        self._report(self.snapshot())


def sync(
    options: SyncOptions,
    *,
    progress: Callable[[dict], None] | None = None,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    cancelled: threading.Event | None = None,
) -> dict:
    """Run one sync and return its summary.

    Summary keys: direction, workspace, storage, dry_run, copied, updated, deleted,
    skipped, failed, refused (counts), bytes (transferred), seconds, errors (up to 50
    ``"key: message"`` strings), cancelled (bool), delete_refused (None, or why the
    deletes asked for were not done: a listing was incomplete), and for a dry run
    ``plan`` (list of ``{op, key, bytes}``).

    ``progress(snapshot)`` gets ``files_done, files_total, bytes_done, bytes_total,
    rate`` (bytes/s), ``seconds`` at most every 0.2 s and at the end. ``log`` gets
    human-readable lines (the plan of a dry run, the summary); ``warn`` gets one line
    per skipped symlink, refused key or failed file.

    Raises StorageError (with ``.summary`` when work had started) for bad options, a
    held lock, or a fatal storage error. Per-file failures do not raise: see
    ``failed`` and ``errors``.
    """
    t0 = time.monotonic()
    location = options.validate()
    warn = warn or (lambda m: log(f"WARNING: {m}"))
    workspace = os.path.abspath(options.workspace)
    storage = open_storage(
        location,
        endpoint_url=options.endpoint_url,
        **(
            {}
            if location.scheme != "s3"
            else dict(
                concurrency=options.concurrency,
                max_attempts=options.max_attempts,
                retry_mode=options.retry_mode,
                checksum=options.checksum,
                multipart_threshold=options.multipart_threshold,
                multipart_chunksize=options.multipart_chunksize,
                download_chunksize=options.download_chunksize,
            )
        ),
    )
    summary = {
        "direction": options.direction,
        "workspace": workspace,
        "storage": location.uri,
        "dry_run": bool(options.dry_run),
        "copied": 0,
        "updated": 0,
        "deleted": 0,
        "skipped": 0,
        "failed": 0,
        "refused": 0,
        "bytes": 0,
        "seconds": 0.0,
        "errors": [],
        "cancelled": False,
        "delete_refused": None,
    }
    storage_id = location.uri + ("\0" + _endpoint_id(options.endpoint_url) if options.endpoint_url else "")
    lock = (
        SyncLock(workspace, storage_id, timeout=options.lock_timeout, direction=options.direction)
        if not options.dry_run
        else None
    )
    try:
        if lock:
            lock.__enter__()
        try:
            _run(options, storage, workspace, summary, progress, log, warn, cancelled or threading.Event())
        finally:
            if lock:
                lock.__exit__(None, None, None)
    except StorageError as e:
        summary["seconds"] = round(time.monotonic() - t0, 3)
        e.summary = summary
        raise
    finally:
        storage.close()
    summary["seconds"] = round(time.monotonic() - t0, 3)
    log(format_summary(summary))
    return summary


def _endpoint_id(url: str) -> str:
    try:
        return normalize_endpoint_url(url)
    except StorageError:
        return url


def format_summary(s: dict) -> str:
    """One line, e.g. ``copied 3, updated 1, deleted 0, skipped 996, failed 0; 3.2 MB in 0.41 s``;
    a dry run says ``dry run: would copy 3, update 1, delete 0; skip 996; 3.2 MB``."""
    refused = f", refused {s['refused']}" if s.get("refused") else ""
    if s.get("dry_run"):
        return (
            f"dry run: would copy {s['copied']}, update {s['updated']}, delete {s['deleted']}; "
            f"skip {s['skipped']}{refused}; {s['bytes'] / 1e6:.1f} MB to transfer"
        )
    return (
        f"copied {s['copied']}, updated {s['updated']}, deleted {s['deleted']}, skipped {s['skipped']}, "
        f"failed {s['failed']}{refused}; {s['bytes'] / 1e6:.1f} MB in {s['seconds']:.2f} s"
        + (" (cancelled)" if s.get("cancelled") else "")
    )


def _run(options, storage, workspace, summary, progress, log, warn, cancelled) -> None:
    up = options.direction == "up"
    on_skip = lambda key, reason: warn(f"{key}: {reason}")  # noqa: E731
    local_temps: list[str] = []
    remote_unreadable: list[str] = []
    local_unreadable: list[str] = []
    remote, local = _list_both(storage, workspace, on_skip, local_temps, remote_unreadable, local_unreadable)
    src, dst = (local, remote) if up else (remote, local)
    delete = options.delete
    if delete and (remote_unreadable or local_unreadable):
        delete = False
        side, keys = ("workspace", local_unreadable) if local_unreadable else ("storage", remote_unreadable)
        more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
        summary["delete_refused"] = (
            f"nothing deleted: the {side} could not be read completely ({keys[0]!r}{more} could not be read), so "
            "files there would look absent. Fix the permissions (or remove the broken link) and sync again"
        )
        warn(summary["delete_refused"])
    if up:
        same = lambda s, d: storage.same_content(d, s)  # noqa: E731
    else:
        same = lambda s, d: storage.same_content(s, d)  # noqa: E731
    plan = plan_sync(
        src,
        dst,
        filters=Filters(options.include, options.exclude),
        delete=delete,
        checksum=options.checksum,
        mtime_tolerance=storage.mtime_tolerance,
        same_content=same,
        stored_mtime=storage.stored_mtime if storage.records_mtime else None,
        download=not up,
        threads=options.concurrency,
    )
    summary["skipped"] = plan.skipped
    summary["refused"] = len(plan.refused)
    for key, reason in plan.refused:
        warn(f"refused key {key!r}: {reason}; it would land outside the workspace")
    if options.dry_run:
        for line in plan.lines():
            log(line)
        summary.update(
            copied=plan.count("copy"),
            updated=plan.count("update"),
            deleted=plan.count("delete"),
            bytes=plan.transfer_bytes,
            plan=[{"op": a.op, "key": a.key, "bytes": a.size} for a in plan.actions],
        )
        return

    if not up:
        _adopt_listed_mtimes(plan.recorded_same)
    remove_stale_temp_files(local_temps)
    storage.cleanup()
    if up and hasattr(storage, "abort_incomplete_uploads"):
        storage.abort_incomplete_uploads(
            {a.key for a in plan.actions if a.op != "delete" and a.size >= options.multipart_threshold}
        )
    _execute(plan, options, storage, workspace, summary, progress, warn, cancelled)


def _adopt_listed_mtimes(pairs: list[tuple[Entry, Entry]]) -> None:
    """Give each local file the listed mtime of its object, as a download would have
    (``(object, local file)`` pairs the plan skipped because the object records the
    file's mtime): the next sync down then compares equal times and needs no HEAD.
    Only the mtime changes, and only of a file whose size and mtime are still those
    listed; a file that cannot be touched is left as it is (it costs a HEAD next time)."""
    for obj, local in pairs:
        if unchanged(local):
            try:
                ns = int(obj.mtime * 1e9)
                os.utime(local.path, ns=(ns, ns))
            except OSError:
                pass


def _list_both(
    storage, workspace: str, on_skip, local_temps: list[str], remote_unreadable: list[str], local_unreadable: list[str]
) -> tuple[list[Entry], list[Entry]]:
    """List the storage (in a helper thread: mostly waiting for the server) while
    walking the workspace; return ``(remote, local)``; keys that could not be read are
    appended to the ``*_unreadable`` lists. A storage error is raised after the walk
    ends (the walk only reads metadata)."""
    result: dict = {}

    def list_storage() -> None:
        try:
            result["entries"] = list(storage.list(on_skip=on_skip, unreadable=remote_unreadable))
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            result["error"] = e

    lister = threading.Thread(target=list_storage, name="sync-list", daemon=True)
    lister.start()
    local = list(
        walk(
            workspace,
            on_skip=on_skip,
            temp_files=local_temps,  # on error the daemon lister is left
            unreadable=local_unreadable,
        )
    )
    lister.join()
    if "error" in result:
        raise result["error"]
    return result["entries"], local


def _download(storage, workspace: str, action: Action, on_bytes) -> None:
    final = local_path(workspace, action.key)
    ensure_parent(final)

    def write(tmp: Path) -> None:
        storage.get(action.src, str(tmp), on_bytes)
        ns = int(action.src.mtime * 1e9)
        os.utime(tmp, ns=(ns, ns))

    atomic_write_with(final, write, make_name=temp_name)


def _upload(storage, action: Action, on_bytes) -> None:
    """Store ``action.src``; when the file changes while it is read, retry with a fresh
    stat (:data:`CHANGED_RETRIES` times), taking back the bytes counted for the failed
    attempt. Raises SourceChanged when it never stayed still."""
    src = action.src
    for _ in range(CHANGED_RETRIES + 1):
        sent = [0]

        def counted(n: int, sent: list[int] = sent) -> None:
            sent[0] += n
            on_bytes(n)

        try:
            storage.put(src, action.key, counted)
            return
        except SourceChanged:
            on_bytes(-sent[0])
            try:
                st = os.stat(src.path)
            except OSError as e:
                raise TransferError(f"vanished while being uploaded ({e.strerror})") from None
            src = replace(src, size=st.st_size, mtime=st.st_mtime_ns / 1e9)
    raise SourceChanged(
        f"changed while being uploaded, {CHANGED_RETRIES + 1} times: nothing partial was kept; "
        "sync again once the file is no longer being written"
    )


def _execute(plan: SyncPlan, options, storage, workspace, summary, progress, warn, cancelled) -> None:
    transfers = [a for a in plan.actions if a.op != "delete"]
    deletes = [a for a in plan.actions if a.op == "delete"]
    counters = _Counters(len(transfers) + len(deletes), plan.transfer_bytes, progress)
    stop = threading.Event()
    fatal: list[StorageError] = []
    lock = threading.Lock()
    up = options.direction == "up"

    def fail(key: str, message: str) -> None:
        with lock:
            summary["failed"] += 1
            if len(summary["errors"]) < MAX_ERRORS_KEPT:
                summary["errors"].append(f"{key}: {message}")
        warn(f"{key}: {message}")

    def one(action: Action) -> None:
        if stop.is_set() or cancelled.is_set():
            return
        done_bytes = [0]

        def on_bytes(n: int) -> None:
            done_bytes[0] += n
            counters.add_bytes(n)

        try:
            if up:
                _upload(storage, action, on_bytes)
            else:
                _download(storage, workspace, action, on_bytes)
        except StorageError as e:
            with lock:
                fatal.append(e)
            stop.set()
            counters.add_bytes(-done_bytes[0])
            return
        except UnsafeKeyError as e:
            counters.add_bytes(-done_bytes[0])
            fail(action.key, f"refused: {e}")
            return
        except Exception as e:  # noqa: BLE001 - one bad file must not stop the others
            counters.add_bytes(-done_bytes[0])
            fail(action.key, _short(e))
            return
        with lock:
            summary["copied" if action.op == "copy" else "updated"] += 1
            summary["bytes"] += action.size
        counters.add_file()
        if options.on_transfer is not None:
            options.on_transfer(action)

    if transfers:
        with ThreadPoolExecutor(max_workers=options.concurrency, thread_name_prefix="sync") as pool:
            pending = {pool.submit(one, a) for a in transfers}
            while pending:
                done, pending = wait(pending, timeout=counters.interval)
                for f in done:
                    f.result()
                counters.maybe_report()
    if fatal:
        counters.maybe_report(force=True)
        raise fatal[0]
    summary["cancelled"] = cancelled.is_set()
    if deletes and not cancelled.is_set():
        if summary["failed"]:
            warn(f"deletes skipped because {summary['failed']} transfer(s) failed")
        else:
            _delete(deletes, options, storage, workspace, summary, counters, fail)
    counters.maybe_report(force=True)


def _delete(deletes, options, storage, workspace, summary, counters, fail) -> None:
    keys = [a.key for a in deletes]
    if options.direction == "up":
        failed = storage.delete(keys)
    else:
        failed = {}
        for key in keys:
            try:
                os.remove(local_path(workspace, key))
            except FileNotFoundError:
                pass
            except (OSError, UnsafeKeyError) as e:
                failed[key] = _short(e)
    for key, message in failed.items():
        fail(key, f"delete failed: {message}")
    summary["deleted"] += len(keys) - len(failed)
    for _ in keys:
        counters.add_file()


def _short(e: BaseException) -> str:
    if isinstance(e, TransferError):
        return str(e)
    if isinstance(e, OSError) and e.strerror:
        return f"{e.strerror}" + (f": {e.filename}" if e.filename else "")
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
