"""The template's code in the job folder: a git clone at a revision, or a copied folder.

``git`` runs as a subprocess (no shell) with a prompt-free environment, so a repository
that asks for credentials fails with git's message instead of waiting on a terminal.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from ..jobs.runtime import JobError
from ..models.custom import CustomSpec

GIT_TIMEOUT_S = 600


def _git_env() -> dict:
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ASKPASS="echo", LC_ALL="C")
    return env


def git(*args: str, cwd: Path | str | None = None, timeout: float = GIT_TIMEOUT_S) -> str:
    """Run ``git args...`` and return its stdout (stripped). Raises JobError with git's
    last lines of stderr when it fails, or when git is not installed."""
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, env=_git_env(), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise JobError("git is not installed: install git, or give the template's code as a 'path'") from None
    except subprocess.TimeoutExpired:
        raise JobError(f"git {args[0]} took more than {timeout:.0f} s: check the repository URL") from None
    if done.returncode != 0:
        tail = " ".join(done.stderr.strip().splitlines()[-3:])[:500]
        raise JobError(f"git {args[0]} failed (exit code {done.returncode}): {tail}")
    return done.stdout.strip()


def resolve_commit(custom: CustomSpec) -> str | None:
    """The commit the template's revision names now, for a local repository (None for a
    copied folder or a remote URL, which are resolved when cloned). Raises JobError when
    the revision names no commit."""
    if custom.code_git is None:
        return None
    local = custom.code_git.removeprefix("file://")
    if not Path(local).exists():
        return None
    rev = custom.code_revision or "HEAD"
    return git("rev-parse", "--verify", "--end-of-options", f"{rev}^{{commit}}", cwd=local, timeout=60)


def checkout(custom: CustomSpec, dest: Path, commit: str | None, log: Callable[[str], None]) -> str | None:
    """Put the code into ``dest`` (must not exist): clone ``custom.code_git`` and check
    out ``commit`` (else the template's revision), or copy ``custom.code_path``.
    Returns the commit checked out (None for a copied folder)."""
    if custom.code_path is not None:
        log(f"code: copying {custom.code_path}")
        try:
            shutil.copytree(custom.code_path, dest, symlinks=True, ignore=shutil.ignore_patterns(".git"))
        except OSError as e:
            raise JobError(f"code: {custom.code_path} cannot be copied ({e}): check the template's code.path") from None
        return None
    url = custom.code_git
    want = commit or custom.code_revision or "HEAD"
    log(f"code: git clone {url} at {want}")
    git("clone", "--quiet", "--no-checkout", "--", url, str(dest))
    if want != "HEAD":
        try:
            git("checkout", "--quiet", "--detach", want, "--", cwd=dest)
        except JobError:
            # a branch or tag of the remote: it exists as origin/<name> in the clone
            git("checkout", "--quiet", "--detach", f"origin/{want}", "--", cwd=dest)
    else:
        git("checkout", "--quiet", "--detach", cwd=dest)
    head = git("rev-parse", "HEAD", cwd=dest)
    log(f"code: commit {head}")
    return head
