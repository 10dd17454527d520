"""The run of a custom template: a train job whose template names the user's code.

:func:`train_custom` is called by the train job (``training.job.train_job``) for a
template with a ``custom`` part. In the job folder::

    code/                  the template's code (git clone at the commit, or a copy)
    data/datasets/<fmt>/   the export in the template's dump format  -> {{inputs.dataset}}
    data/models/<name>     the checkpoint given, copied              -> {{inputs.checkpoint}}
    output/                what the code writes (model, classes.csv,  -> {{output}}
                           tensorboard/ for TensorBoard)

Steps, each logged to job.log: parameters, export validation (errors stop the run),
layout and conversion, code, environment, then the command, run without a shell as a
child in its own process group, with the job's environment (``CUDA_VISIBLE_DEVICES`` as
the queue set it), ``PYTHONUNBUFFERED=1`` and ``CVAT_TRAIN_DATASET`` /
``CVAT_TRAIN_CHECKPOINT`` / ``CVAT_TRAIN_OUTPUT``. Its output lines go to job.log as
they come. A cancel (SIGTERM to the job process) is forwarded to the child's process
group as SIGTERM, then SIGKILL after :data:`CANCEL_GRACE_S`; the child also gets SIGKILL
if the job process dies (Linux ``PR_SET_PDEATHSIG``). Its exit code decides the state:
non-zero fails the job with the last lines it printed. Then the outputs are checked: a
model matching ``outputs.model`` must exist, and ``classes.csv`` is written from the
export's labels (``labels,id``) when the code wrote none, and ``custom-run.json``
(:data:`jupyter_cvat_train.models.custom.RUN_INFO`: template, labels, parameter values,
code folder) tells the annotate job to run the template's ``annotate`` command.
"""

from __future__ import annotations

import collections
import ctypes
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..jobs.runtime import JobCancelled, JobContext, JobError, write_json_atomic
from ..models.classes import write_classes_csv
from ..models.custom import RUN_INFO, parameter_values, render_command
from . import code as code_mod
from . import dataset as dataset_mod
from . import environment

CANCEL_GRACE_S = 10.0
TAIL_LINES = 8
PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec
    os.setpgid(0, 0)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the process group is still signalled on cancel
        pass


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _validated(spec: dict, ctx: JobContext):
    from ..datasets import validate_export

    dataset = spec.get("dataset")
    if not isinstance(dataset, str):
        raise JobError("dataset: give the CVAT export to train on")
    ctx.log(f"export: validating {dataset}")
    report = validate_export(dataset, format=spec.get("format") or None)
    if not report.ok or report.dataset is None:
        errors = [f.message for f in report.findings if getattr(f, "severity", "error") == "error"][:3]
        raise JobError(f"dataset: {dataset} has validation errors ({'; '.join(errors)}): fix them and try again")
    return report.dataset


def _copy_checkpoint(path: str | None, models_dir: Path) -> str:
    if not path:
        return ""
    src = Path(path)
    dest = models_dir / src.name
    try:
        if src.is_dir():
            shutil.copytree(src, dest, symlinks=False)
        else:
            shutil.copy2(src, dest)
    except OSError as e:
        raise JobError(f"checkpoint: {src} cannot be copied into the job folder ({e})") from None
    return str(dest)


def run_command(ctx: JobContext, argv: list[str], cwd: Path, env: dict, what: str = "the command") -> None:
    """Run the user's command ``argv`` in ``cwd`` as a child in its own process group,
    its lines to job.log; a cancel of ``ctx`` is forwarded to the group (SIGTERM, SIGKILL
    after :data:`CANCEL_GRACE_S`). Raises JobCancelled after a cancel, JobError on a
    non-zero exit (``what`` names the command in it, with its last lines)."""
    tail: collections.deque[str] = collections.deque(maxlen=TAIL_LINES)
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,  # noqa: PLW1509 - setpgid + PDEATHSIG only, no locks taken
            close_fds=True,
        )
    except OSError as e:
        raise JobError(
            f"{what} {argv[0]!r} cannot be started ({e.strerror or e}): check the template's command"
        ) from None
    ctx.event("custom_started", pid=proc.pid)

    def relay() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            tail.append(line)
            ctx.log(line)

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    termed_at = None
    while True:
        try:
            code = proc.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if ctx.cancelled.is_set():
            if termed_at is None:
                ctx.log("cancel: SIGTERM to the command's process group")
                _signal_group(proc.pid, signal.SIGTERM)
                termed_at = time.monotonic()
            elif time.monotonic() - termed_at > CANCEL_GRACE_S:
                ctx.log(f"cancel: the command did not stop within {CANCEL_GRACE_S:.0f} s: SIGKILL")
                _signal_group(proc.pid, signal.SIGKILL)
    _signal_group(proc.pid, signal.SIGKILL)  # what it left behind in its group
    reader.join(timeout=10)
    if ctx.cancelled.is_set():
        raise JobCancelled("cancelled by request (the command was stopped)")
    if code != 0:
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        last = " | ".join(line.strip() for line in tail if line.strip())[-800:]
        raise JobError(f"{what} failed ({how}); its last lines: {last or '(it printed nothing)'}")


def _check_outputs(custom, output: Path, labels: list[str], ctx: JobContext) -> Path | None:
    model = None
    if custom.output_model:
        found = sorted(p for p in output.glob(custom.output_model) if p.exists())
        if not found:
            raise JobError(
                f"the command succeeded but wrote no model: outputs.model {custom.output_model!r} matches "
                f"nothing in {output}; make the code write it to {{{{output}}}}, or fix outputs.model"
            )
        model = found[0]
    classes = output / custom.output_classes
    if not classes.exists():
        write_classes_csv(classes, labels)
        ctx.log(f"outputs: wrote {custom.output_classes} from the export's labels ({len(labels)})")
    return model


def with_interpreter(argv: list[str], python: str) -> list[str]:
    """``argv`` with a leading ``python`` / ``python3`` word replaced by ``python`` (the
    environment's interpreter)."""
    if argv and argv[0] in ("python", "python3"):
        return [python, *argv[1:]]
    return argv


def command_env(custom, python: str, **extra: str) -> dict:
    """The environment of a user command: the job's, ``PYTHONUNBUFFERED=1``, ``extra``,
    the interpreter's folder first on ``PATH`` (when it is not this Python, and always
    with ``shell: true``, where ``python`` is found on ``PATH``), without the job's own
    launch values."""
    env = dict(os.environ)
    env.update(PYTHONUNBUFFERED="1", **extra)
    if python != sys.executable or custom.shell:
        env["PATH"] = str(Path(python).parent) + os.pathsep + env.get("PATH", "")
    for k in ("CVAT_TRAIN_JOB_RUN", "CVAT_TRAIN_SPEC_SHA256"):  # the job's own launch values
        env.pop(k, None)
    return env


def train_custom(ctx: JobContext, template) -> dict:
    """Run custom template ``template`` (a catalog Template with ``custom``) as the job
    of ``ctx``. Returns the outputs: model_dir (the output folder), model (the file
    matched), code_commit, dump_format, labels, message. Raises JobError (a message
    naming the step and the fix) or JobCancelled."""
    custom, spec = template.custom, ctx.spec
    try:
        given = spec.get("parameters")
        values = parameter_values(custom, given)
        if spec.get("epochs") not in (None, "") and "epochs" in values:
            values["epochs"] = str(spec["epochs"])
    except ValueError as e:
        raise JobError(f"parameters: {e}") from None
    job = ctx.dir.path.resolve()
    output = ctx.output_dir.resolve()
    steps = 5
    ctx.progress(0, steps, "steps")
    ds = _validated(spec, ctx)
    ctx.check_cancelled()
    data = job / "data"
    datasets_dir, models_dir = data / "datasets", data / "models"
    for d in (datasets_dir, models_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    dataset_dir = datasets_dir / custom.dump_format
    ctx.log(f"export: {ds.format}, {len(ds.items)} images, labels {', '.join(ds.labels)}")
    if ds.format != custom.dump_format:
        ctx.log(f"export: converting {ds.format} to {custom.dump_format} (Datumaro)")
    dataset_mod.place(ds, custom.dump_format, dataset_dir)
    checkpoint = _copy_checkpoint(spec.get("checkpoint"), models_dir)
    ctx.progress(1, steps, "steps")
    ctx.check_cancelled()
    code_dir = job / "code"
    shutil.rmtree(code_dir, ignore_errors=True)
    commit = code_mod.checkout(custom, code_dir, spec.get("code_commit"), ctx.log)
    ctx.progress(2, steps, "steps")
    ctx.check_cancelled()
    python = environment.prepare(custom, code_dir, ctx.log, ctx.cancelled.is_set)
    ctx.progress(3, steps, "steps")
    ctx.check_cancelled()
    argv = with_interpreter(
        render_command(custom, values, {"dataset": str(dataset_dir), "checkpoint": checkpoint}, str(output)), python
    )
    env = command_env(
        custom,
        python,
        CVAT_TRAIN_DATASET=str(dataset_dir),
        CVAT_TRAIN_CHECKPOINT=checkpoint,
        CVAT_TRAIN_OUTPUT=str(output),
    )
    ctx.log("command: " + shlex.join(argv))
    run_command(ctx, argv, code_dir, env)
    ctx.progress(4, steps, "steps")
    model = _check_outputs(custom, output, list(ds.labels), ctx)
    write_json_atomic(
        output / RUN_INFO,
        {
            "format_version": 1,
            "kind": "custom",
            "template": template.name,
            "labels": list(ds.labels),
            "parameters": values,
            "code": os.path.relpath(code_dir, output),
            "code_commit": commit,
            "dump_format": custom.dump_format,
            "model": str(model.relative_to(output)) if model else None,
            "annotate": bool(custom.annotate),
        },
    )
    ctx.progress(steps, steps, "steps")
    return {
        "model_dir": str(output),
        "model": str(model) if model else None,
        "code_commit": commit,
        "dump_format": custom.dump_format,
        "labels": list(ds.labels),
        "message": f"{template.name}: the command succeeded"
        + (f", model {model.relative_to(output)}" if model else "")
        + (f" (code at {commit[:12]})" if commit else ""),
    }
