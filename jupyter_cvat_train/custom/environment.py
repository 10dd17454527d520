"""The interpreter a custom template's command runs with.

- ``environment.python``: that interpreter, as it is;
- ``environment.requirements``: a venv made with ``python -m venv`` (with
  ``--system-site-packages`` when the template asks), its requirements installed with
  pip, cached under ``<cache>/custom-envs/<hash>`` where the hash covers the
  requirements file's bytes, the flag and this interpreter's version; later runs with
  the same file reuse it. A lock file serializes two runs preparing the same venv, and
  a venv counts as made only once its ``.ready`` marker is written;
- neither: this interpreter (``sys.executable``).
"""

from __future__ import annotations

import fcntl
import hashlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..fileio import cache_root
from ..jobs.runtime import JobError
from ..models.custom import CustomSpec

READY = ".ready"


def _has_requirements(path: Path) -> bool:
    """Whether a requirements file names anything (lines other than blanks and comments)."""
    return any(line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())


def env_key(requirements: Path, system_site_packages: bool) -> str:
    """The cache key of a venv: sha256 of the requirements bytes, the flag and this Python's version."""
    h = hashlib.sha256(requirements.read_bytes())
    h.update(f"\0site={system_site_packages}\0{sys.version}".encode())
    return h.hexdigest()[:32]


def _run_logged(argv: list[str], log: Callable[[str], None], what: str, cancelled: Callable[[], bool]) -> None:
    """Run ``argv``, each output line to ``log``; JobError with the last lines on failure."""
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace") as p:
        assert p.stdout is not None
        for line in p.stdout:
            log(f"{what}: {line.rstrip()}")
            lines = (lines + [line.rstrip()])[-5:]
            if cancelled():
                p.terminate()
        code = p.wait()
    if code != 0:
        raise JobError(f"{what} failed (exit code {code}): " + " | ".join(lines)[-600:])


def prepare(
    custom: CustomSpec, code_dir: Path, log: Callable[[str], None], cancelled: Callable[[], bool] = lambda: False
) -> str:
    """The interpreter for the command (a path). Makes or reuses the cached venv for the
    template's requirements file (inside ``code_dir``). Raises JobError naming the file
    or the failing step (venv, pip) with pip's last lines."""
    if custom.python:
        log(f"environment: {custom.python}")
        return custom.python
    if not custom.requirements:
        log(f"environment: this server's Python ({sys.executable})")
        return sys.executable
    req = (code_dir / custom.requirements).resolve()
    if not req.is_relative_to(code_dir.resolve()) or not req.is_file():
        raise JobError(
            f"environment: the requirements file {custom.requirements} is not in the code "
            f"(looked for {req}): fix environment.requirements in the template"
        )
    root = cache_root() / "custom-envs"
    root.mkdir(parents=True, exist_ok=True)
    venv = root / env_key(req, custom.system_site_packages)
    python = venv / "bin" / "python"
    with open(root / f"{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (venv / READY).is_file() and python.exists():
            log(f"environment: reusing the venv {venv} (requirements hash {venv.name})")
            return str(python)
        shutil.rmtree(venv, ignore_errors=True)  # a half-made one
        log(f"environment: making a venv in {venv}")
        wanted = _has_requirements(req)
        argv = [sys.executable, "-m", "venv"]
        if custom.system_site_packages:
            argv.append("--system-site-packages")
        if not wanted:
            argv.append("--without-pip")  # nothing to install: no pip needed
        _run_logged([*argv, str(venv)], log, "venv", cancelled)
        if wanted:
            log(f"environment: pip install -r {custom.requirements}")
            _run_logged(
                [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-r", str(req)],
                log,
                "pip",
                cancelled,
            )
        else:
            log(f"environment: {custom.requirements} names no package: nothing to install")
        (venv / READY).write_text(str(req) + "\n")
    return str(python)
