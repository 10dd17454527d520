"""``cvat-train cvat ...``: a CVAT server from the command line (needs the ``cvat`` extra).

- ``check``: test the connection (host, user, server version).
- ``serve MODEL_DIR --name NAME``: register the model as a native function on the server
  (``cvat-cli function create-native``) and serve it (``cvat-cli function run-agent``)
  until Ctrl-C, so it shows in CVAT's Actions > Automatic annotation; ``--function-id``
  serves an already registered one; ``--remove ID`` deletes one.
- ``auto-annotate TASK_ID MODEL_DIR``: annotate a task's images with the model on this
  machine (the SDK's immediate mode, as ``cvat-cli task auto-annotate``).
- ``pull TASK_ID OUT.zip --format cvat``: download a task's export into the workspace,
  then validate it.
- ``push SOURCE TASK_ID [--replace]``: send an annotate job's output (its folder or zip)
  to a task.

The connection comes from the environment (CVAT_HOST with CVAT_ACCESS_TOKEN or
CVAT_USERNAME/CVAT_PASSWORD) or the CVAT SDK's default profile
(:mod:`jupyter_cvat_train.cvat.connection`); secrets go to cvat-cli through its own
environment variables, never on its command line. Exit status 1 with one message for
every CVAT or input problem.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click

FUNCTION_MODULE = "jupyter_cvat_train.cvat.function"


def _settings():
    from ..cvat.connection import CvatError, settings_from_environment

    try:
        return settings_from_environment()
    except CvatError as e:
        raise click.ClickException(str(e)) from None


def _run(fn, *args, **kwargs):
    from ..jobs.runtime import JobError  # CvatError, and a model folder that does not load

    try:
        return fn(*args, **kwargs)
    except JobError as e:
        raise click.ClickException(str(e)) from None


def _connect(settings):
    from ..cvat.connection import connect

    return _run(connect, settings)


@click.group(name="cvat")
def cvat():
    """Work with a CVAT server: serve a model to CVAT, auto-annotate, pull and push."""


@cvat.command(name="check")
def check():
    """Test the connection to the CVAT server (CVAT_HOST etc. or the SDK's profile)."""
    from ..cvat.connection import check_connection

    info = _run(check_connection, _settings())
    click.echo(
        f"connected to {info['host']} as {info['user']} (CVAT {info['server_version']}; settings from {info['source']})"
    )


def _cvat_cli(settings, *args: str, capture: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "cvat_cli", *settings.cli_arguments(), *args]
    return subprocess.run(
        cmd,
        env=settings.child_environment(),
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )


@cvat.command(name="serve")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path), required=False)
@click.option("--name", default=None, help="The function's name in CVAT (default: the model folder's name).")
@click.option(
    "--visibility", type=click.Choice(["private", "public"]), default="private", show_default=True, help="Who sees it."
)
@click.option("--function-id", type=int, default=None, help="Serve this already registered function (no create).")
@click.option("--remove", "remove_id", type=int, default=None, help="Delete the registered function with this id.")
@click.option("--burst", is_flag=True, help="Process the pending requests, then exit (for scripts and tests).")
def serve(model_dir, name, visibility, function_id, remove_id, burst):
    """Serve MODEL_DIR to CVAT's own Automatic annotation (a native function + agent)."""
    settings = _settings()
    if remove_id is not None:
        r = _cvat_cli(settings, "function", "delete", str(remove_id))
        if r.returncode:
            raise click.ClickException(f"cvat-cli could not delete function {remove_id} (see its message above)")
        return
    if model_dir is None:
        raise click.UsageError("give MODEL_DIR (or --remove ID)")
    model_dir = model_dir.resolve()
    from ..cvat.function import create

    fn = _run(create, str(model_dir))  # a model folder that does not load fails here, before the server
    param = ["--function-module", FUNCTION_MODULE, "-p", f"model_dir=str:{model_dir}"]
    _connect(settings).close()  # wrong host or credentials: one clear message, before cvat-cli
    if function_id is None:
        create_args = ["function", "create-native", name or model_dir.parent.name, "--visibility", visibility]
        r = _cvat_cli(settings, *create_args, *param, capture=True)
        ids = [line.strip() for line in (r.stdout or "").splitlines() if line.strip().isdigit()]
        if r.returncode or not ids:
            raise click.ClickException("cvat-cli could not register the function (see its message above)")
        function_id = int(ids[-1])
        click.echo(
            f"registered function {function_id} ({', '.join(fn.labels)}; {fn.shape_type}s) on {settings.host}; "
            f"remove it with: cvat-train cvat serve --remove {function_id}"
        )
    click.echo(f"serving function {function_id} from {model_dir}: Ctrl-C stops the agent")
    args = ["function", "run-agent", str(function_id), *param] + (["--burst"] if burst else [])
    try:
        r = _cvat_cli(settings, *args)
    except KeyboardInterrupt:
        click.echo(f"agent stopped; function {function_id} stays registered (--function-id {function_id} serves it)")
        return
    if r.returncode:
        raise click.ClickException(f"the agent stopped with exit status {r.returncode} (see its message above)")


@cvat.command(name="auto-annotate")
@click.argument("task_id", type=int)
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--threshold", type=click.FloatRange(0, 1), default=None, help="Confidence threshold (default 0.5).")
@click.option("--replace", is_flag=True, help="Remove the task's existing annotations first.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
def auto_annotate(task_id, model_dir, threshold, replace, device):
    """Annotate CVAT task TASK_ID's images with MODEL_DIR on this machine."""
    from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

    from ..cvat.transfer import auto_annotate as run

    settings = _settings()
    with _connect(settings) as client:
        out = _run(
            run,
            client,
            settings,
            task_id,
            model_dir,
            threshold=threshold,
            replace=replace,
            device=device,
            pbar=DeferredTqdmProgressReporter(),
        )
    click.echo(
        f"task {task_id}: annotated with {', '.join(out['labels'])}; it now has {out['task_shapes_after']} shapes"
    )


@cvat.command(name="pull")
@click.argument("task_id", type=int)
@click.argument("out", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--format", "fmt", default="cvat", show_default=True, help="cvat, coco, yolo, voc, ... or a CVAT name.")
@click.option("--no-images", is_flag=True, help="Annotations only.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists.")
def pull(task_id, out, fmt, no_images, overwrite):
    """Download CVAT task TASK_ID's export to OUT (a zip), then validate it."""
    from cvat_sdk.core.helpers import DeferredTqdmProgressReporter

    from ..cvat.transfer import pull as run

    settings = _settings()
    with _connect(settings) as client:
        res = _run(
            run,
            client,
            settings,
            task_id,
            out,
            format=fmt,
            include_images=not no_images,
            overwrite=overwrite,
            pbar=DeferredTqdmProgressReporter(),
        )
    v = res["validation"] or {}
    click.echo(
        f"{res['output']}: task {task_id} ({res['task_name']}) as {res['format']}, {res['bytes']} bytes; "
        f"{v.get('images', 0)} images, {v.get('annotations', 0)} annotations, {v.get('errors', 0)} errors, "
        f"{v.get('warnings', 0)} warnings" + ("" if v.get("ok") else f" (see: cvat-train validate {res['output']})")
    )


@cvat.command(name="push")
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("task_id", type=int)
@click.option("--replace", is_flag=True, help="Replace the task's annotations (else add to them).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def push(source, task_id, replace, as_json):
    """Send SOURCE (an annotate job folder or an annotations zip) to CVAT task TASK_ID."""
    from ..cvat.transfer import push as run

    settings = _settings()
    with _connect(settings) as client:
        rep = _run(run, client, settings, source, task_id, replace=replace)
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    click.echo(
        f"task {task_id}: sent {rep['sent']} shapes ({'replacing' if replace else 'added to'} its annotations) for "
        f"{rep['images_matched']} images; it now has {rep['task_shapes_after']} shapes"
        + (f"; {len(rep['images_unmatched'])} images are not in the task" if rep["images_unmatched"] else "")
        + (f"; labels not in the task, left out: {rep['skipped_labels']}" if rep["skipped_labels"] else "")
    )
