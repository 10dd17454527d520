"""Which queued jobs the scheduler may start: only those it enqueued itself.

A job folder proves nothing: the runs root lies under the server root, and any user of
the Jupyter Contents API can write a ``job.json`` + ``status.json {"state": "queued"}``
there, or a whole ``jobs.sqlite``. So when :class:`~.manager.JobManager` creates a job it
signs ``(job id, job.json bytes)`` with HMAC-SHA256 under a key kept *outside* the
runs root (a 0600 file in Jupyter's runtime directory, beside the server's cookie
secret), and stores the signature in the job's store row. Before launching it recomputes
the signature over job.json as it is now: a planted job (no or a copied signature) or a
spec edited after it was queued does not match and is never started.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from pathlib import Path

from ..fileio import atomic_write
from .runtime import RecordError, read_record

KEY_NAME = "cvat_train_jobs.key"
_KEY_HEX = 64  # 32 random bytes, hex-encoded

log = logging.getLogger(__name__)


def default_key_file() -> Path:
    """``<Jupyter runtime dir>/cvat_train_jobs.key`` (``$JUPYTER_RUNTIME_DIR`` when set),
    the folder where jupyter_server keeps its cookie secret."""
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir()) / KEY_NAME


def load_key(path: Path | str | None = None) -> bytes:
    """The signing key in ``path`` (default :func:`default_key_file`), created (mode 0600,
    atomically, so concurrent processes agree) when missing or unusable. When no key file
    can be written, returns a key for this process only (logged): jobs it queues then
    start only from this process."""
    path = Path(path) if path is not None else default_key_file()
    for _ in range(3):
        try:
            data = read_record(path, limit=4096).strip()
            if len(data) == _KEY_HEX and all(c in b"0123456789abcdef" for c in data):
                return data
            log.warning("cvat-train: the job signing key %s is malformed; writing a new one", path)
            _write_key(path, replace=True)
        except FileNotFoundError:
            try:
                _write_key(path, replace=False)
            except FileExistsError:
                pass  # another process wrote it first: read theirs
            except OSError as e:
                log.warning(
                    "cvat-train: cannot write the job signing key %s (%s); queued jobs will start "
                    "only from this process",
                    path,
                    e,
                )
                return secrets.token_hex(32).encode()
        except (RecordError, OSError) as e:
            log.warning(
                "cvat-train: cannot read the job signing key %s (%s); queued jobs will start only from this process",
                path,
                e,
            )
            return secrets.token_hex(32).encode()
    return secrets.token_hex(32).encode()


def _write_key(path: Path, replace: bool) -> None:
    """A new random key in ``path`` (mode 0600); without ``replace`` only if ``path``
    does not exist (FileExistsError when another process won the race)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, secrets.token_hex(32), mode=0o600, fsync=True, publish=os.replace if replace else os.link)


def sign(key: bytes, job_id: str, spec_bytes: bytes) -> str:
    """The signature (hex) of job ``job_id`` whose job.json holds ``spec_bytes``."""
    return hmac.new(key, b"cvat-train job\0" + job_id.encode() + b"\0" + spec_bytes, hashlib.sha256).hexdigest()


def verify(key: bytes, job_id: str, spec_bytes: bytes, signature) -> bool:
    """True if ``signature`` is :func:`sign` of ``(job_id, spec_bytes)`` (constant time)."""
    return isinstance(signature, str) and hmac.compare_digest(sign(key, job_id, spec_bytes), signature)
