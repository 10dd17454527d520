"""``cvat-train annotate IMAGES --model-dir DIR --output FILE.zip [options]``.

Runs the annotate job function in the foreground through the job runtime (a temporary
job folder unless ``--job-dir`` is given), so the CLI and the job share one code path;
a tqdm bar shows images. Exit status: 0 done, 1 bad input or failure (one message, no
traceback), 130 cancelled (a partial result is written and named ``*.partial.zip``).
"""

from __future__ import annotations

import click

from ..annotate.pipeline import ENGINES
from ..annotate.writers import FORMATS
from .foreground import ProgressBar, exit_if_cancelled, run_in_foreground


@click.command(name="annotate")
@click.argument("images", type=click.Path(path_type=str))
@click.option(
    "--model-dir",
    required=True,
    type=click.Path(path_type=str),
    help="A trained model folder (a training job's output/model: model.pt, classes.csv, model.json).",
)
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The annotation zip to write (CVAT: Actions > Upload annotations).",
)
@click.option(
    "--format",
    "fmt",
    default="coco",
    show_default=True,
    type=click.Choice(FORMATS),
    help="coco = COCO 1.0 (with scores), cvat = CVAT for images 1.1, yolo = YOLO 1.1 (boxes only).",
)
@click.option(
    "--threshold",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Minimum confidence of a detection to keep.",
)
@click.option(
    "--max-detections",
    default=100,
    show_default=True,
    type=click.IntRange(1),
    help="At most this many detections per image (the best ones).",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="MODEL=TARGET",
    help="Map a model label to a target label (overrides matching by name; MODEL= drops it). Repeatable.",
)
@click.option(
    "--keep-existing",
    is_flag=True,
    help="For a CVAT export as input: keep its annotations and add the predictions (default: replace them).",
)
@click.option(
    "--preview",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="Render this many images with their predictions to PNGs beside the output.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the output (and its summary) if it exists. The input is never overwritten.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option(
    "--engine",
    default="torch",
    show_default=True,
    type=click.Choice(ENGINES),
    help="torch, or onnx = ONNX Runtime (exported once, cached in the model folder).",
)
@click.option("--batch-size", default=0, type=click.IntRange(0), help="Images per inference call (0 = automatic).")
@click.option("--workers", default=0, type=click.IntRange(0), help="Image decoding threads (0 = automatic).")
@click.option(
    "--job-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=str),
    help="Keep the job folder (job.json, status.json, events.jsonl) here.",
)
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def annotate(
    images,
    model_dir,
    output,
    fmt,
    threshold,
    max_detections,
    mapping,
    keep_existing,
    preview,
    overwrite,
    device,
    engine,
    batch_size,
    workers,
    job_dir,
    no_progress,
) -> None:
    """Auto-annotate IMAGES (a folder, a zip of images, or a CVAT export) with a trained
    model and write annotations CVAT imports.

    With a CVAT export as IMAGES, its labels are the target labels: model labels map to
    them by name (case-insensitive) unless --map says otherwise; model labels without a
    target are dropped and listed. A summary (counts per label, failed images) is
    written beside the output as <output stem>.summary.json.

    An existing output is refused unless --overwrite is given; an output that is the
    input, or lies inside the input or model folder, is always refused.
    """
    from ..annotate.mapping import MappingError, parse_map_pairs

    try:
        pairs = parse_map_pairs(list(mapping))
    except MappingError as e:
        raise click.ClickException(str(e)) from None
    spec = {
        "kind": "annotate",
        "images": images,
        "model_dir": model_dir,
        "output": output,
        "format": fmt,
        "threshold": threshold,
        "max_detections": max_detections,
        "mapping": pairs,
        "keep_existing": keep_existing,
        "preview": preview,
        "overwrite": overwrite,
        "device": device,
        "engine": engine,
        "batch_size": batch_size,
        "workers": workers,
    }
    from ..annotate.pipeline import run_annotate

    bar = ProgressBar("images", "annotate", enabled=not no_progress, unit="img")
    status = run_in_foreground(spec, run_annotate, job_dir=job_dir, listeners=[bar])
    out = status.get("outputs") or {}
    if out:
        counts = ", ".join(f"{k} {v}" for k, v in out.get("counts", {}).items())
        click.echo(
            f"{out.get('images_done')} of {out.get('images_total')} images annotated "
            f"({out.get('images_failed')} failed) in {out.get('seconds')} s: {counts}"
        )
        if out.get("dropped_labels"):
            click.echo(f"model labels dropped (no target label): {', '.join(out['dropped_labels'])}")
        for f in out.get("failed", []):
            click.echo(f"  failed: {f['image']} ({f['stage']}: {f['error']})", err=True)
        click.echo(f"{'PARTIAL result' if out.get('partial') else 'wrote'} {out.get('output')}")
        if out.get("previews"):
            click.echo(f"previews: {len(out['previews'])} PNGs in {out['previews'][0].rsplit('/', 1)[0]}")
    exit_if_cancelled(status)
