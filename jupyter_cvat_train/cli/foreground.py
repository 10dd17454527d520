"""Running a job function in the foreground: the CLI path of every job kind.

The CLI writes the same job.json a server would, then runs the kind's job function
through :func:`jupyter_cvat_train.jobs.runtime.run_job` in this process, so the CLI and
the job process share one code path. Progress events drive a tqdm bar.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Callable

import click


class ProgressBar:
    """A tqdm bar driven by a job's ``progress`` events whose unit is ``event_unit``.

    ``postfix(event) -> str`` optionally adds text after the bar (e.g. files done).
    Extra keyword arguments go to ``tqdm`` (``unit="img"``, ``unit_scale=True`` for bytes).
    """

    def __init__(
        self,
        event_unit: str,
        desc: str,
        *,
        enabled: bool = True,
        postfix: Callable[[dict], str] | None = None,
        **tqdm_kwargs,
    ):
        self.event_unit, self.desc, self.enabled = event_unit, desc, enabled
        self.postfix, self.tqdm_kwargs = postfix, tqdm_kwargs
        self.bar = None

    def __call__(self, event: dict) -> None:
        if not self.enabled or event.get("type") != "progress" or event.get("unit") != self.event_unit:
            return
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(
                total=event.get("total") or 0, desc=self.desc, file=sys.stderr, dynamic_ncols=True, **self.tqdm_kwargs
            )
        if event.get("total") and self.bar.total != event["total"]:
            self.bar.total = event["total"]
        self.bar.n = event.get("done") or 0
        if self.postfix:
            self.bar.set_postfix_str(self.postfix(event), refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_in_foreground(
    spec: dict, fn: Callable, *, job_dir: str | None = None, listeners: list[Callable[[dict], None]] = ()
) -> dict:
    """Create a job folder for ``spec`` (``job_dir``, or a temporary one removed at the
    end), run ``fn`` there with ``listeners`` and return the final status.

    Exits the process (status 1) when the job failed: run_job has already printed
    ``ERROR: <message>`` (one message, no traceback). Raises click.ClickException when
    ``job_dir`` already holds a job.
    """
    from ..jobs.runtime import JobDir, JobState, run_job

    folder = job_dir or tempfile.mkdtemp(prefix=f"cvat-train-{spec.get('kind', 'job')}-")
    try:
        try:
            JobDir(folder).create(spec)
        except FileExistsError as e:
            raise click.ClickException(str(e)) from None
        try:
            status = run_job(folder, fn, listeners=listeners)
        finally:
            for listener in listeners:
                close = getattr(listener, "close", None)
                if close:
                    close()
    finally:
        if job_dir is None:
            shutil.rmtree(folder, ignore_errors=True)
    if status.get("state") == JobState.FAILED:
        sys.exit(1)
    return status


def exit_if_cancelled(status: dict) -> None:
    """Exit with status 130 (as after Ctrl-C) when the job ended ``cancelled``."""
    from ..jobs.runtime import JobState

    if status.get("state") == JobState.CANCELLED:
        click.echo(f"cancelled: {status.get('message', '')}", err=True)
        sys.exit(130)
