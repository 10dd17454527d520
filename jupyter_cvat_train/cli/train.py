"""``cvat-train train PATH --model NAME --output DIR ...``: train in the foreground.

Writes DIR/job.json and runs the same job function as a background job
(:func:`jupyter_cvat_train.training.train_job` through ``run_job``), with a tqdm bar.
Exit status: 0 succeeded, 1 failed (the message says why), 2 bad usage, 130 cancelled.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..models.catalog import DEFAULT_TEMPLATE
from ..models.device import DEVICES
from .foreground import ProgressBar


class _TrainBar(ProgressBar):
    """The steps bar, plus one line per epoch with the evaluation metrics."""

    def __init__(self):
        super().__init__(
            "steps",
            "train",
            unit="steps",
            postfix=lambda e: f"epoch {e.get('epoch')}/{e.get('epochs')}, loss {e.get('loss')}",
        )

    def __call__(self, ev: dict) -> None:
        if ev.get("type") != "metrics":
            return super().__call__(ev)
        msg = (
            f"epoch {ev['epoch']}/{ev['epochs']}: mAP@[.5:.95] {ev['map']:.4f}  mAP@.5 {ev['map_50']:.4f}  "
            + "  ".join(f"{k} {v:.3f}" for k, v in (ev.get("per_label") or {}).items() if v is not None)
        )
        (self.bar.write if self.bar else click.echo)(msg)


@click.command(name="train")
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--model",
    "template",
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="Model template (see 'cvat-train models'; yours go into ./cvat-train-templates).",
)
@click.option(
    "--output",
    "output",
    required=True,
    type=click.Path(path_type=Path),
    help="Job folder: job.json, status.json, events.jsonl, output/ (model, checkpoints, tensorboard, metrics).",
)
@click.option(
    "--hp",
    "hp",
    multiple=True,
    help="Hyperparameters: YAML ('epochs: 5'), key=value lines, or 'a=1,b=2' / 'a=1;b=2'. Repeatable.",
)
@click.option("--epochs", type=int, default=None, help="Epochs (default: derived from num_steps and the data size).")
@click.option("--format", "format_", default=None, help="Force the export format instead of detecting it.")
@click.option(
    "--checkpoint",
    type=click.Path(path_type=str),
    default=None,
    help="Fine-tune from a model/ or checkpoints/ folder or a .pt file (with --resume: resume from it).",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the run in --output (or --checkpoint) from its last.pt; a larger --epochs extends it.",
)
@click.option("--device", type=click.Choice(DEVICES), default="auto", show_default=True)
@click.option(
    "--gpus",
    type=int,
    default=None,
    help="GPUs (with --device cpu: processes); > 1 trains with DistributedDataParallel "
    "via torchrun (NCCL, one GPU per process; gloo on the CPU).",
)
def train(path, template, output, hp, epochs, format_, checkpoint, resume, device, gpus):
    """Train a model on the CVAT export at PATH (zip or folder), in the foreground."""
    from ..jobs.runtime import JobDir, JobState, run_job, write_json_atomic
    from ..models import (
        HyperparameterError,
        TemplateNotFound,
        TemplateUnavailable,
        check_template,
        configure_search_path,
        get_template,
        parse_hyperparameters,
    )

    configure_search_path(root_dir=Path.cwd())
    try:
        t = get_template(template)
        check_template(t)
        if t.custom is None:
            parse_hyperparameters(list(hp), t)
        else:  # a custom template: --hp sets its parameters ("name: value")
            from ..models.custom import parameter_values

            parameter_values(t.custom, list(hp))
    except (TemplateNotFound, TemplateUnavailable, HyperparameterError, ValueError) as e:
        raise click.ClickException(str(e)) from None
    if epochs is not None and epochs < 1:
        raise click.BadParameter("must be >= 1", param_hint="--epochs")
    if gpus is not None and gpus < 1:
        raise click.BadParameter("must be >= 1", param_hint="--gpus")
    if not Path(path).exists():
        raise click.ClickException(f"{path} does not exist: give a CVAT export (zip or folder)")
    spec = {
        "kind": "train",
        "template": template,
        "dataset": str(Path(path).resolve()),
        "format": format_,
        "parameters": list(hp),
        "epochs": epochs,
        "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
        "resume": bool(resume),
        "device": device,
        "gpus": gpus,
    }
    jd = JobDir(output)
    if jd.spec_path.exists():
        if not resume:
            raise click.ClickException(
                f"{output} already holds a job: choose a new --output folder, or add --resume to continue that run"
            )
        old = jd.read_spec()
        spec["parameters"] = list(old.get("parameters") or []) + list(hp)
        write_json_atomic(jd.spec_path, spec)
        jd.update_status(state=JobState.QUEUED)
    else:
        if resume and not checkpoint:
            raise click.ClickException(
                f"{output} holds no earlier run to resume: give the run's folder as --output, "
                f"or its checkpoints with --checkpoint"
            )
        jd.create(spec)
    bar = _TrainBar()
    try:
        status = run_job(jd.path, _train_job, listeners=[bar])
    finally:
        bar.close()
    state, message = status.get("state"), status.get("message") or ""
    click.echo(f"{state}: {message}" if message else state, err=state != JobState.SUCCEEDED)
    if state == JobState.SUCCEEDED:
        outputs = status.get("outputs") or {}
        click.echo(f"model: {outputs.get('model') if t.custom is not None else Path(output) / 'output' / 'model'}")
    sys.exit({JobState.SUCCEEDED: 0, JobState.CANCELLED: 130}.get(state, 1))


def _train_job(ctx):
    from ..training import train_job

    return train_job(ctx)
