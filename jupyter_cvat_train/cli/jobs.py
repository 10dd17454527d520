"""``cvat-train jobs [--runs-root DIR] list | show ID | logs ID [-f] | cancel ID | submit SPEC | schedule``.

The terminal view of the same job core the Jupyter server uses
(:class:`jupyter_cvat_train.jobs.manager.JobManager` over a runs root, default
``./cvat-train-runs``, or ``$CVAT_TRAIN_RUNS_ROOT``). A job ID may be given by any
unique part of it (e.g. its last 6 characters). Bad input never gives a traceback.

Queued jobs are started by the one scheduler of the runs root (the holder of its lease,
:mod:`jupyter_cvat_train.jobs.scheduler`): the Jupyter server when one runs on it. A
command here schedules only when no other process does: ``list`` and ``show`` settle
jobs that may never start, ``cancel`` starts queued jobs while it waits, ``submit``
starts what fits at once, ``schedule`` keeps the queue moving until stopped.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import click

FOLLOW_INTERVAL = 0.2
MAX_SPEC_BYTES = 1 << 20  # a job spec file larger than this is refused


def _manager(ctx: click.Context, schedules: bool = False, **options):
    """The JobManager of the runs root, reconciled (which, when no other process
    schedules, settles jobs that may never start). A command that does not advance the
    queue (``schedules`` False) then gives the scheduler lease up at once, so following
    a log for hours never keeps a server from scheduling."""
    from ..jobs.manager import JobManager

    root = Path(ctx.obj["runs_root"])
    if not root.is_dir():
        raise click.ClickException(f"no runs root at {root}: give --runs-root (the folder holding job folders)")
    from ..jobs.backends.ray import backends_from_env

    try:
        extra = backends_from_env()  # the ray backend when $CVAT_TRAIN_RAY_ADDRESS is set
    except ValueError as e:
        raise click.ClickException(f"CVAT_TRAIN_RAY_ADDRESS: {e}") from None
    m = JobManager(root, owner=f"cvat-train jobs {ctx.info_name} (pid {os.getpid()})", backends=extra, **options)
    m.reconcile()
    if not schedules:
        m.lease.release()
    return m


def _resolve(manager, job_id: str) -> str:
    from ..jobs.manager import JobNotFound

    try:
        return manager.get(job_id, refresh=False)["id"]
    except JobNotFound:
        pass
    matches = [j["id"] for j in manager.snapshot() if job_id in j["id"]]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise click.ClickException(f"no job {job_id!r} in {manager.runs_root} (see 'cvat-train jobs list')")
    raise click.ClickException(f"{job_id!r} matches {len(matches)} jobs: {', '.join(matches[:5])}; give more of the id")


def _progress(job: dict) -> str:
    p = job["progress"]
    if p.get("total"):
        return f"{p['done']:g}/{p['total']:g} {p.get('unit') or ''}".strip()
    return ""


@click.group("jobs")
@click.option(
    "--runs-root",
    type=click.Path(file_okay=False),
    default="cvat-train-runs",
    show_default=True,
    envvar="CVAT_TRAIN_RUNS_ROOT",
    help="Folder of job folders (the server's <root_dir>/cvat-train-runs).",
)
@click.pass_context
def jobs(ctx, runs_root):
    """List, show, follow, cancel, submit and schedule jobs."""
    ctx.ensure_object(dict)
    ctx.obj["runs_root"] = runs_root


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON array.")
@click.pass_context
def list_jobs(ctx, as_json):
    """List jobs, oldest first. Says so (on stderr) when jobs are queued and no process
    schedules the runs root, so they would wait for ever."""
    from ..jobs.runtime import JobState

    m = _manager(ctx)
    items = m.list_jobs()
    queued = sum(1 for j in items if j["state"] == JobState.QUEUED)
    if queued and m.lease.holder() is None:
        click.echo(
            f"note: {queued} job(s) queued and no process schedules {m.runs_root}: run 'cvat-train jobs "
            "schedule' (or a Jupyter server on it) to start them",
            err=True,
        )
    if as_json:
        click.echo(json.dumps(items, indent=1))
        return
    if not items:
        click.echo("no jobs")
        return
    rows = [(j["id"], j["kind"], j["state"], _progress(j), j["message"][:60]) for j in items]
    widths = [max(len(r[i]) for r in rows + [("ID", "KIND", "STATE", "PROGRESS", "")]) for i in range(4)]
    click.echo(
        "  ".join(h.ljust(w) for h, w in zip(("ID", "KIND", "STATE", "PROGRESS"), widths, strict=True)) + "  MESSAGE"
    )
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])


@jobs.command("show")
@click.argument("job_id")
@click.pass_context
def show(ctx, job_id):
    """Print one job as JSON (state, progress, outputs, folder)."""
    m = _manager(ctx)
    click.echo(json.dumps(m.get(_resolve(m, job_id)), indent=1))


@jobs.command("logs")
@click.argument("job_id")
@click.option("-f", "--follow", is_flag=True, help="Keep printing as the job writes, until it ends.")
@click.pass_context
def logs(ctx, job_id, follow):
    """Print a job's log (stdout + stderr of its process).

    With -f, exit status: 0 when the job succeeded, 1 when it failed or was cancelled."""
    from ..jobs.runtime import FINAL_STATES, JobState
    from ..jobs.tail import read_from

    m = _manager(ctx)
    job_id = _resolve(m, job_id)
    path = m.job_dir(job_id).log_path
    offset = 0
    out = sys.stdout.buffer
    try:
        while True:
            job = m.get(job_id)
            done = job["state"] in FINAL_STATES
            while True:
                data, offset = read_from(path, offset, whole_lines=False)
                if not data:
                    break
                out.write(data)
                out.flush()
            if not follow or done:
                break
            time.sleep(FOLLOW_INTERVAL)
    except KeyboardInterrupt:
        return
    if follow:
        click.echo(f"[job {job_id} {job['state']}{': ' + job['message'] if job['message'] else ''}]", err=True)
        sys.exit(0 if job["state"] == JobState.SUCCEEDED else 1)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="Send the cancel and return at once.")
@click.option(
    "--grace", type=click.FloatRange(0), default=10.0, show_default=True, help="Seconds between SIGTERM and SIGKILL."
)
@click.pass_context
def cancel(ctx, job_id, no_wait, grace):
    """Cancel a queued or running job (SIGTERM, SIGKILL after the grace period)."""
    m = _manager(ctx, schedules=True)
    m.cancel_grace = grace
    job_id = _resolve(m, job_id)
    job = m.cancel(job_id, wait=not no_wait)
    click.echo(f"{job_id}: {job['state']}{' (' + job['message'] + ')' if job['message'] else ''}")


@jobs.command("submit")
@click.argument("spec_file", type=click.File("rb"))
@click.option(
    "--root-dir",
    type=click.Path(file_okay=False, exists=True),
    default=None,
    help="The folder the spec's paths are relative to and must stay inside (the server's root_dir); "
    "default: the runs root's parent.",
)
@click.option(
    "--backend",
    type=click.Choice(["local", "ray"]),
    default=None,
    help='Where the job runs (overrides the spec\'s "backend"): local, or ray (the cluster at '
    "$CVAT_TRAIN_RAY_ADDRESS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the job as JSON.")
@click.pass_context
def submit(ctx, spec_file, root_dir, backend, as_json):
    """Queue the job of SPEC_FILE (a JSON object {kind, ...} as POST jobs takes; - for
    stdin). It starts when its resource has a free slot: now, if this command may
    schedule; else when the runs root's scheduler (the server, or 'cvat-train jobs
    schedule') gets to it."""
    from ..jobs.specs import SpecError, check_spec

    root = Path(ctx.obj["runs_root"])
    root.mkdir(parents=True, exist_ok=True)
    root_dir = Path(root_dir or root.resolve().parent)
    name = getattr(spec_file, "name", "-")
    data = spec_file.read(MAX_SPEC_BYTES + 1)
    if len(data) > MAX_SPEC_BYTES:
        raise click.ClickException(f"{name}: larger than {MAX_SPEC_BYTES >> 20} MiB; a job spec is a small JSON object")
    from ..jobs.backends.ray import backends_from_env

    try:
        names = ["local", *(b.name for b in backends_from_env())]
    except ValueError as e:
        raise click.ClickException(f"CVAT_TRAIN_RAY_ADDRESS: {e}") from None
    try:
        spec = json.loads(data)
        if backend is not None and isinstance(spec, dict):
            spec["backend"] = backend
        spec = check_spec(spec, root_dir, runs_root=root.resolve(), backends=names)
    except (ValueError, RecursionError) as e:
        if isinstance(e, SpecError):
            raise click.ClickException(str(e)) from None
        raise click.ClickException(f"{name}: not a JSON job spec ({str(e)[:100]})") from None
    m = _manager(ctx, schedules=True, root_dir=root_dir)
    job = m.create(spec)
    m.close()
    click.echo(json.dumps(job, indent=1) if as_json else f"{job['id']}: {job['state']}")


@jobs.command("schedule")
@click.option("--until-idle", is_flag=True, help="Exit once no job is queued or running.")
@click.option(
    "--interval", type=click.FloatRange(0.05), default=0.5, show_default=True, help="Seconds between looks at the jobs."
)
@click.option(
    "--grace",
    type=click.FloatRange(0),
    default=10.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL when a job is cancelled.",
)
@click.pass_context
def schedule(ctx, until_idle, interval, grace):
    """Run the scheduler of the runs root here: start queued jobs as slots free up. Only
    one process schedules a runs root; while another does (a Jupyter server), this waits
    and takes over when that one ends. Stop with Ctrl-C (running jobs keep running)."""
    from ..jobs.runtime import ACTIVE_STATES

    m = _manager(ctx, schedules=True, cancel_grace=grace)
    waiting_shown = False
    try:
        while True:
            m.poll()
            if m.is_scheduler:
                if waiting_shown:
                    click.echo(f"scheduling the jobs of {m.runs_root}", err=True)
                    waiting_shown = False
            elif not waiting_shown:
                holder = m.lease.holder() or {}
                click.echo(
                    f"waiting: the jobs of {m.runs_root} are scheduled by {holder.get('owner') or 'another process'}",
                    err=True,
                )
                waiting_shown = True
            if until_idle and m.is_scheduler and not any(j["state"] in ACTIVE_STATES for j in m.snapshot()):
                break
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        m.close()
