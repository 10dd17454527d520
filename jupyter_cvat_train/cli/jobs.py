"""``cvat-train jobs [--runs-root DIR] list | show ID | logs ID [-f] | cancel ID``.

The terminal view of the same job core the Jupyter server uses
(:class:`jupyter_cvat_train.jobs.manager.JobManager` over a runs root, default
``./cvat-train-runs``, or ``$CVAT_TRAIN_RUNS_ROOT``). A job ID may be given by any
unique part of it (e.g. its last 6 characters). Bad input never gives a traceback.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

FOLLOW_INTERVAL = 0.2


def _manager(ctx: click.Context):
    from ..jobs.manager import JobManager

    root = Path(ctx.obj["runs_root"])
    if not root.is_dir():
        raise click.ClickException(f"no runs root at {root}: give --runs-root (the folder holding job folders)")
    m = JobManager(root)
    m.reconcile()
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
@click.option("--runs-root", type=click.Path(file_okay=False), default="cvat-train-runs", show_default=True,
              envvar="CVAT_TRAIN_RUNS_ROOT", help="Folder of job folders (the server's <root_dir>/cvat-train-runs).")
@click.pass_context
def jobs(ctx, runs_root):
    """List, show, follow and cancel jobs."""
    ctx.ensure_object(dict)
    ctx.obj["runs_root"] = runs_root


@jobs.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the jobs as a JSON array.")
@click.pass_context
def list_jobs(ctx, as_json):
    """List jobs, oldest first."""
    items = _manager(ctx).list_jobs()
    if as_json:
        click.echo(json.dumps(items, indent=1))
        return
    if not items:
        click.echo("no jobs")
        return
    rows = [(j["id"], j["kind"], j["state"], _progress(j), j["message"][:60]) for j in items]
    widths = [max(len(r[i]) for r in rows + [("ID", "KIND", "STATE", "PROGRESS", "")]) for i in range(4)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(("ID", "KIND", "STATE", "PROGRESS"), widths)) + "  MESSAGE")
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[4])


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
    from ..jobs.runtime import FINAL_STATES
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
        sys.exit(0 if job["state"] == "succeeded" else 1)


@jobs.command("cancel")
@click.argument("job_id")
@click.option("--no-wait", is_flag=True, help="Send the cancel and return at once.")
@click.option("--grace", type=click.FloatRange(0), default=10.0, show_default=True,
              help="Seconds between SIGTERM and SIGKILL.")
@click.pass_context
def cancel(ctx, job_id, no_wait, grace):
    """Cancel a queued or running job (SIGTERM, SIGKILL after the grace period)."""
    m = _manager(ctx)
    m.cancel_grace = grace
    job_id = _resolve(m, job_id)
    job = m.cancel(job_id, wait=not no_wait)
    click.echo(f"{job_id}: {job['state']}{' (' + job['message'] + ')' if job['message'] else ''}")
