"""The files an annotate run writes, checked before the first image: never over an input,
never over an existing file unless the user asked to replace it.

An annotate run writes (see :mod:`.pipeline`)::

    <output>                       the annotation zip
    <stem>.summary.json            its summary
    <stem>.partial<suffix>         after a cancel, instead of <output>
    <stem>.partial.summary.json    its summary
    <stem>_previews/               preview PNGs (only when previews are asked for)

:func:`plan_outputs` checks all of them at once and returns an :class:`OutputPlan`,
which the pipeline then writes through (:func:`publish`), so the names checked are the
names written. Rules:

- the output's folder must exist (nothing is created above it);
- no written path may be an input (the images or the model folder), lie inside an input
  folder, or be a folder holding an input: refused even with ``overwrite``;
- no written path may be an existing folder (the output names a file);
- a written path that already exists is refused unless ``overwrite`` is true;
- paths inside ``protected`` folders (the job's own folder) are refused, except inside
  ``allowed`` (the job's output/ folder).

Paths are compared after resolving symlinks, so a link to the input is the input.
"""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..fileio import atomic_write


class OutputError(ValueError):
    """An output that cannot be written. ``status``: 404 (its folder is missing),
    409 (it would overwrite an input or an existing file, or it is a folder)."""

    def __init__(self, message: str, status: int = 409):
        super().__init__(message)
        self.status = status


def summary_path(output: Path) -> Path:
    """``<stem>.summary.json`` beside ``output``."""
    return output.with_name(output.stem + ".summary.json")


def partial_path(output: Path) -> Path:
    """``<stem>.partial<suffix>`` beside ``output``: where a cancelled run writes."""
    return output.with_name(output.stem + ".partial" + output.suffix)


def previews_dir(output: Path) -> Path:
    """``<stem>_previews/`` beside ``output``."""
    return output.with_name(output.stem + "_previews")


@dataclass(frozen=True)
class OutputPlan:
    """Checked paths of one annotate run (absolute, parents resolved).

    output: the annotation zip; summary: its summary JSON; partial, partial_summary:
    what a cancelled run writes instead; previews: the preview folder, or None when no
    previews are made; overwrite: whether existing files may be replaced."""

    output: Path
    summary: Path
    partial: Path
    partial_summary: Path
    previews: Path | None
    overwrite: bool = False


def _real(path: Path) -> Path:
    """``path`` with its folder's symlinks resolved (the last part kept as named)."""
    return Path(os.path.realpath(path.parent)) / path.name


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def plan_outputs(
    output: Path | str,
    *,
    inputs: Iterable[tuple[str, Path | str]],
    overwrite: bool = False,
    previews: bool = False,
    protected: Iterable[Path | str] = (),
    allowed: Iterable[Path | str] = (),
) -> OutputPlan:
    """Check every file an annotate run writes for ``output`` (see the module docstring).

    inputs: (name, path) pairs such as ("images", ...), ("model", ...), named in
    messages; overwrite: replace existing files; previews: check the preview folder too;
    protected / allowed: folders no output may enter / exceptions inside them.
    Returns the OutputPlan; raises OutputError naming the path and the fix.
    """
    output = Path(output)
    if not output.name or output.name in (".", ".."):
        raise OutputError(f"output {output}: give a file name, such as {output / 'annotations.zip'}", 409)
    parent = output.parent
    if not parent.is_dir():
        raise OutputError(
            f"output {output}: the folder {parent} does not exist; create it first or choose another folder", 404
        )
    out = _real(output)
    files = [out, summary_path(out), partial_path(out), summary_path(partial_path(out))]
    written = files + ([previews_dir(out)] if previews else [])
    real_inputs = [(name, Path(os.path.realpath(p))) for name, p in inputs]
    protected = [Path(os.path.realpath(p)) for p in protected]
    allowed = [Path(os.path.realpath(p)) for p in allowed]
    for w in written:
        targets = {w, Path(os.path.realpath(w))}  # the name, and where a symlink there leads
        for name, src in real_inputs:
            for t in targets:
                if _inside(t, src) or _inside(src, t):
                    raise OutputError(
                        f"output {w} would overwrite the {name} {src} (or write inside it): write "
                        "the annotations to a new file outside the input",
                        409,
                    )
        for t in targets:
            if any(_inside(t, p) for p in protected) and not any(_inside(t, a) for a in allowed):
                raise OutputError(
                    f"output {w} is inside the job's own folder; write into its output/ folder or elsewhere", 409
                )
        is_dir = w.is_dir()
        if is_dir and w in files:
            raise OutputError(f"output {w} is a folder; give a file name such as {w / 'annotations.zip'}", 409)
        if (is_dir or os.path.lexists(w)) and not overwrite:
            raise OutputError(
                f"output {w} already exists; choose a new name, or ask to replace it "
                "(overwrite: true in the job, --overwrite on the command line)",
                409,
            )
    return OutputPlan(out, files[1], files[2], files[3], previews_dir(out) if previews else None, overwrite)


def publish(tmp: Path, dest: Path, *, overwrite: bool) -> None:
    """Move the finished temp file ``tmp`` to ``dest`` (same folder). With ``overwrite``
    an existing ``dest`` is replaced atomically; without, ``dest`` is created only if it
    does not exist at that moment (a hard link, then ``tmp`` is removed), so a file that
    appeared during the run is never replaced. Raises OutputError (409) in that case.

    The ``publish`` step of every annotate output's
    :func:`jupyter_cvat_train.fileio.atomic_write`. It is not ``os.link`` alone: it names
    the output in an OutputError, and on a file system without hard links it falls back
    to check-then-rename instead of failing the run."""
    if overwrite:
        os.replace(tmp, dest)
        return
    try:
        os.link(tmp, dest)
    except FileExistsError:
        raise OutputError(
            f"output {dest} appeared while the run was going on; it was left as it is "
            "(ask to replace it with overwrite: true / --overwrite)",
            409,
        ) from None
    except OSError as e:
        if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
        if os.path.lexists(dest):  # a file system without hard links: check, then rename
            raise OutputError(f"output {dest} appeared while the run was going on; it was left as it is", 409) from None
        os.replace(tmp, dest)
        return
    os.unlink(tmp)


def write_json(path: Path, data, *, overwrite: bool) -> None:
    """Write ``data`` as indented JSON to ``path`` through a temp file and :func:`publish`."""
    atomic_write(path, json.dumps(data, indent=1, default=str), publish=functools.partial(publish, overwrite=overwrite))
