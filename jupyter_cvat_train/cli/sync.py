"""``cvat-train sync up|down WORKSPACE_PATH STORAGE_URI [options]``.

Runs the ``sync`` job function in the foreground through the job runtime (a temporary
job folder unless ``--job-dir`` is given), so the CLI and the job kind share one code
path; a tqdm bar shows files and bytes. Exit status: 0 synced (or dry run), 1 a file
failed or the storage refused/was unreachable (one message, no traceback), 130
interrupted.
"""

from __future__ import annotations

import click

from .foreground import ProgressBar, exit_if_cancelled, run_in_foreground


def _options(fn):
    decorators = [
        click.argument("workspace", type=click.Path(file_okay=False, path_type=str)),
        click.argument("storage_uri"),
        click.option(
            "--delete", is_flag=True, help="Delete destination files that the source lacks (selected ones only)."
        ),
        click.option(
            "--dry-run", is_flag=True, help="Print the plan (copy/update/delete per file, bytes); change nothing."
        ),
        click.option(
            "--include",
            multiple=True,
            metavar="GLOB",
            help="Sync keys matching GLOB (wins over --exclude). Repeatable.",
        ),
        click.option("--exclude", multiple=True, metavar="GLOB", help="Skip keys matching GLOB. Repeatable."),
        click.option("--checksum", is_flag=True, help="Compare content hashes instead of size and modification time."),
        click.option("--endpoint-url", default=None, metavar="URL", help="S3-compatible endpoint (MinIO, Ceph, ...)."),
        click.option(
            "--concurrency", default=16, show_default=True, type=click.IntRange(1, 256), help="Parallel transfers."
        ),
        click.option(
            "--wait",
            "wait",
            default=0.0,
            show_default=True,
            type=click.FloatRange(0),
            metavar="SECONDS",
            help="Wait this long for another sync of the same folder pair to finish.",
        ),
        click.option(
            "--job-dir",
            default=None,
            type=click.Path(file_okay=False, path_type=str),
            help="Keep the job folder (job.json, status.json, events.jsonl, output/summary.json) here.",
        ),
        click.option("--no-progress", is_flag=True, help="No progress bar."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


@click.group(name="sync")
def sync() -> None:
    """Sync a workspace folder with object storage (s3://bucket/prefix or file:///path).

    Like `aws s3 sync`: copies what is missing or differs (size and modification time,
    or content with --checksum); deletes only with --delete. S3 credentials come from
    the standard AWS chain (environment, profile, instance role).
    """


@sync.command(name="up")
@_options
def up(**kw) -> None:
    """Upload: WORKSPACE_PATH -> STORAGE_URI."""
    _run("up", **kw)


@sync.command(name="down")
@_options
def down(**kw) -> None:
    """Download: STORAGE_URI -> WORKSPACE_PATH."""
    _run("down", **kw)


def _run(
    direction: str,
    *,
    workspace,
    storage_uri,
    delete,
    dry_run,
    include,
    exclude,
    checksum,
    endpoint_url,
    concurrency,
    wait,
    job_dir,
    no_progress,
) -> None:
    from ..storage.job import sync_job

    spec = {
        "kind": "sync",
        "direction": direction,
        "workspace": workspace,
        "storage": storage_uri,
        "delete": delete,
        "dry_run": dry_run,
        "include": list(include),
        "exclude": list(exclude),
        "checksum": checksum,
        "endpoint_url": endpoint_url,
        "concurrency": concurrency,
        "lock_timeout": wait,
    }
    bar = ProgressBar(
        "bytes",
        "sync",
        enabled=not no_progress and not dry_run,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        postfix=lambda e: f"{e.get('files_done', 0)}/{e.get('files_total', 0)} files",
    )
    status = run_in_foreground(spec, sync_job, job_dir=job_dir, listeners=[bar])
    exit_if_cancelled(status)
