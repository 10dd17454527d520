"""Auto-annotation with a custom template's own ``annotate`` command.

Our engines load the models our training writes; a custom run's model is whatever the
user's code wrote. Such a run leaves ``custom-run.json`` in its output folder
(:data:`jupyter_cvat_train.models.custom.RUN_INFO`), and when the annotate job is given
that folder it runs the template's ``annotate`` command instead of loading a model:

1. the images to annotate are written to ``<job>/data/images/`` under their output names
   (``{{inputs.images}}``); ``{{inputs.model}}`` is the custom run's output folder;
   ``{{output}}`` is an empty ``<job>/data/annotate-output/``; ``{{parameters.<name>}}``
   are the values the training run used (new parameters of the template: defaults);
2. the command runs in the run's code folder with the run's environment, exactly as the
   training command did (:mod:`jupyter_cvat_train.custom.run`: own process group, lines
   to job.log, cancel forwarded, a non-zero exit fails the job with its last lines);
3. it writes one COCO JSON (``annotations.json``, or its only ``.json`` file): images
   with ``file_name`` (the names in ``{{inputs.images}}``; a bare file name matches too),
   categories with ``name`` (the model's labels, classes.csv), annotations with
   ``bbox`` (xywh pixels), optional ``score`` (default 1) and ``segmentation`` (polygons);
4. its annotations go through the same label mapping, threshold and ``max_detections``
   as our engines' detections, are clipped to the image, and are written by the same
   writers (COCO, CVAT, YOLO) with the same summary.

Images the command leaves out get no annotations; a category that is not one of the
model's labels is dropped with a warning.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path, PurePosixPath

from ..custom import environment
from ..custom.run import command_env, run_command, with_interpreter
from ..datasets.model import Annotation
from ..jobs.runtime import JobError
from ..jobs.runtime.messages import shown
from ..models.catalog import TemplateError, get_template
from ..models.custom import parameter_values, render_annotate
from .inputs import ImageSource
from .mapping import LabelMapping
from .writers import AnnotatedImage

MAX_COCO_BYTES = 512 * 1024 * 1024


def _template(info: dict, model_dir: Path):
    """The catalog template the custom run was trained with, checked to have an
    annotate command. Raises JobError naming the template and the fix."""
    name = info.get("template")
    try:
        template = get_template(str(name))
    except (KeyError, LookupError, TemplateError, ValueError):
        raise JobError(
            f"{model_dir} was trained by the custom template {shown(str(name), 80)}, which is not in the "
            "catalog now: put its file back into a template folder to annotate with this model"
        ) from None
    if template.custom is None or not template.custom.annotate:
        raise JobError(
            f"{model_dir} was trained by the custom template {template.name}: our annotate engine cannot load "
            f"its model, and the template has no 'annotate' command. Add one to {template.path or template.name} "
            "(it gets {{inputs.images}}, {{inputs.model}} and {{output}} and writes a COCO JSON there)"
        )
    return template


def _write_images(images: list[ImageSource], folder: Path) -> None:
    """Copy each image to ``folder`` under its output name (never outside it)."""
    root = folder.resolve()
    for src in images:
        dest = (root / src.name).resolve()
        if not dest.is_relative_to(root) or dest == root:
            raise JobError(f"image name {shown(src.name, 80)} leaves the images folder: rename it")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with src.open() as f, open(dest, "wb") as out:
            shutil.copyfileobj(f, out)


def _coco_file(folder: Path) -> Path:
    """The COCO JSON the command wrote into ``folder``. Raises JobError when there is none
    or several without ``annotations.json``."""
    named = folder / "annotations.json"
    if named.is_file():
        return named
    found = sorted(p for p in folder.rglob("*.json") if p.is_file())
    if len(found) == 1:
        return found[0]
    what = "no .json file" if not found else f"{len(found)} .json files and no annotations.json"
    raise JobError(
        f"the template's annotate command succeeded but wrote {what} into {{{{output}}}} ({folder}): make it "
        "write one COCO JSON there, e.g. {{output}}/annotations.json"
    )


def _read_coco(path: Path) -> tuple[dict, dict, dict]:
    """(image id -> image entry, category id -> name, image id -> [annotation]) of the
    COCO JSON at ``path``. Raises JobError naming the file and the first problem."""

    def bad(problem: str) -> JobError:
        return JobError(f"the annotate command's COCO JSON {path.name}: {problem}")

    if path.stat().st_size > MAX_COCO_BYTES:
        raise bad(f"over {MAX_COCO_BYTES // 2**20} MiB")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise bad(f"not readable JSON ({shown(str(e), 120)})") from None
    if not isinstance(doc, dict):
        raise bad("expected an object with images, categories and annotations")
    lists = {}
    for key in ("images", "categories", "annotations"):
        v = doc.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
            raise bad(f"'{key}' must be a list of objects")
        lists[key] = v
    images = {}
    for im in lists["images"]:
        if not isinstance(im.get("file_name"), str) or "id" not in im:
            raise bad("each image needs 'id' and 'file_name'")
        images[im["id"]] = im
    cats = {}
    for c in lists["categories"]:
        if not isinstance(c.get("name"), str) or "id" not in c:
            raise bad("each category needs 'id' and 'name'")
        cats[c["id"]] = c["name"]
    anns: dict = {}
    for a in lists["annotations"]:
        box = a.get("bbox")
        if (
            a.get("image_id") not in images
            or a.get("category_id") not in cats
            or not isinstance(box, list)
            or len(box) != 4
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in box)
        ):
            raise bad(
                f"annotation {shown(str(a.get('id')), 20)} needs an image_id and a category_id that are listed "
                "and a bbox [x, y, width, height] of numbers"
            )
        score = a.get("score", 1.0)
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score):
            raise bad(f"annotation {shown(str(a.get('id')), 20)}: score must be a number")
        anns.setdefault(a["image_id"], []).append(a)
    return images, cats, anns


def _size(src: ImageSource, entry: dict | None) -> tuple[int, int]:
    """(width, height) of an image: the COCO entry's, the source's, or read from the file."""
    if entry and all(isinstance(entry.get(k), int) and entry[k] > 0 for k in ("width", "height")):
        return entry["width"], entry["height"]
    if src.width and src.height:
        return src.width, src.height
    from PIL import Image

    with src.open() as f, Image.open(f) as im:
        return im.size


def _clip_polygon(poly, w: int, h: int) -> list[float] | None:
    if not isinstance(poly, list) or len(poly) < 6 or len(poly) % 2:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in poly):
        return None
    return [min(max(float(v), 0.0), float(w if i % 2 == 0 else h)) for i, v in enumerate(poly)]


def to_annotations(
    found: list[dict],
    cats: dict,
    mapping: LabelMapping,
    *,
    threshold: float,
    max_detections: int,
    width: int,
    height: int,
) -> list[Annotation]:
    """One image's COCO annotations as our annotations of the target labels: scores >=
    ``threshold``, the best ``max_detections``, labels the mapping keeps, boxes (and
    polygons) clipped to the image; an empty box after clipping is skipped."""
    kept = sorted(
        (a for a in found if float(a.get("score", 1.0)) >= threshold), key=lambda a: -float(a.get("score", 1.0))
    )
    out = []
    for a in kept[:max_detections]:
        target = mapping.to_target.get(cats[a["category_id"]])
        if target is None:
            continue
        x, y, bw, bh = (float(v) for v in a["bbox"])
        box = (
            min(max(x, 0.0), width),
            min(max(y, 0.0), height),
            min(max(x + bw, 0.0), width),
            min(max(y + bh, 0.0), height),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            continue
        seg = a.get("segmentation")
        polygons = [p for p in (_clip_polygon(s, width, height) for s in seg) if p] if isinstance(seg, list) else []
        out.append(Annotation(label=target, bbox=box, polygons=polygons, score=float(a.get("score", 1.0))))
    return out


def run_custom_annotate(pipe, model_dir: Path, info: dict) -> None:
    """Annotate ``pipe.images`` for a custom run's output folder ``model_dir`` (``info``:
    its ``custom-run.json``) with the template's annotate command (steps in the module
    docstring), filling ``pipe`` (a :class:`.pipeline.Pipeline`: its options, mapping,
    output plan, results, counts, previews and failures) for its ``_finish``. Raises
    JobError (a message naming the step and the fix) or JobCancelled."""
    from .preview import preview_name, render_preview

    ctx, opts, images, mapping, plan = pipe.ctx, pipe.opts, pipe.images, pipe.mapping, pipe.plan
    model_dir = Path(model_dir).resolve()  # the command runs in the code folder
    model_labels = mapping.model_labels
    template = _template(info, model_dir)
    custom = template.custom
    recorded = info.get("parameters") if isinstance(info.get("parameters"), dict) else {}
    try:
        values = parameter_values(custom, {k: v for k, v in recorded.items() if k in custom.parameters})
    except ValueError as e:
        raise JobError(f"parameters of the training run: {e}") from None
    # always <job>/code beside the run's output/ (custom/run.py), never a path read from
    # custom-run.json: like every file of a job folder it is untrusted, and the command
    # runs the code it finds there
    code_dir = model_dir.parent / "code"
    if code_dir.is_symlink() or not code_dir.is_dir():
        raise JobError(
            f"the code of the custom run ({code_dir}) is gone: the annotate command runs in it; train the "
            "template again, or keep the run's job folder"
        )
    total = len(images)
    ctx.log(
        f"annotating {total} images with the annotate command of custom template {template.name} "
        f"(model {model_dir}; {len(model_labels)} labels)"
    )
    if mapping.dropped:
        ctx.warn(
            f"model labels without a target label are dropped: {', '.join(mapping.dropped)}",
            dropped_labels=mapping.dropped,
        )
    ctx.progress(0, total, "images")
    data = ctx.dir.path.resolve() / "data"
    images_dir, out_dir = data / "images", data / "annotate-output"
    for d in (images_dir, out_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    _write_images(images, images_dir)
    ctx.check_cancelled()
    python = environment.prepare(custom, code_dir, ctx.log, ctx.cancelled.is_set)
    ctx.check_cancelled()
    argv = with_interpreter(
        render_annotate(custom, values, {"images": str(images_dir), "model": str(model_dir)}, str(out_dir)), python
    )
    env = command_env(custom, python, CVAT_TRAIN_IMAGES=str(images_dir), CVAT_TRAIN_MODEL=str(model_dir))
    ctx.log("annotate command: " + " ".join(argv))
    run_command(ctx, argv, code_dir, env, what="the template's annotate command")
    entries, cats, anns = _read_coco(_coco_file(out_dir))
    unknown = sorted({n for n in cats.values() if n not in model_labels})
    if unknown:
        ctx.warn(
            f"the annotate command's categories {', '.join(unknown[:10])} are not labels of the model "
            f"({', '.join(model_labels)}): their annotations are dropped"
        )
    by_name: dict[str, int] = {}
    for image_id, entry in entries.items():
        by_name.setdefault(entry["file_name"], image_id)
        by_name.setdefault(PurePosixPath(entry["file_name"]).name, image_id)
    for index, src in enumerate(images):
        image_id = by_name.get(src.name, by_name.get(PurePosixPath(src.name).name))
        entry = entries.get(image_id) if image_id is not None else None
        try:
            width, height = _size(src, entry)
        except (OSError, ValueError) as e:
            pipe._fail(src, "reading", e)
            continue
        found = to_annotations(
            anns.get(image_id, []) if image_id is not None else [],
            cats,
            mapping,
            threshold=opts.threshold,
            max_detections=opts.max_detections,
            width=width,
            height=height,
        )
        for a in found:
            pipe.counts[a.label] += 1
        existing = list(src.existing)
        pipe.results[index] = AnnotatedImage(src.name, width, height, existing + found, src.subset)
        if len(pipe.previews) < opts.preview:
            from PIL import Image

            with src.open() as f, Image.open(f) as im:
                p = render_preview(
                    im,
                    existing + found,
                    mapping.target_labels,
                    plan.previews / preview_name(len(pipe.previews), src.name),
                )
            pipe.previews.append(str(p))
        ctx.progress(index + 1, total, "images")
