"""Everything a training run is checked against before it starts: the plan.

:func:`make_plan` reads a train job spec (job.json), validates the CVAT export, cleans
and splits it, resolves the hyperparameters and the number of epochs, and checks the
checkpoint to fine-tune or resume from. Every problem the user can fix raises
``JobError`` with a message naming it and the fix, before any training step.

Train job spec (job.json)::

    {"kind": "train", "template": "ssdlite320-mobilenet-v3", "dataset": "/path/export.zip",
     "format": null, "parameters": "batch_size: 8" | {...} | [texts...], "epochs": null,
     "checkpoint": null | "/path/model-or-checkpoints", "resume": false,
     "device": "auto" | "cpu" | "cuda", "gpus": null | N}

``gpus`` (or the hyperparameter ``num_gpus``, alias ``num_clones``) > 1 trains with
DistributedDataParallel under torchrun: one GPU per process on CUDA, N gloo processes on
the CPU (see :mod:`.distributed`); in a job on a Ray cluster, as N Ray Train workers
placed across its nodes (:mod:`.ray_train`).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..datasets.model import Item
from ..jobs.runtime import JobError
from ..models.device import resolve_device


@dataclass
class Plan:
    """A checked training run. ``epochs`` is final (derived, staged or given);
    ``params`` holds every hyperparameter with ``epochs`` filled in."""

    template: str
    family: str
    task: str
    framework: str
    params: dict
    labels: list[str]
    train_items: list[Item]
    val_items: list[Item]
    epochs: int
    steps_per_epoch: int
    device: str
    gpus: int
    dataset_path: str
    dataset_fingerprint: str
    dropped: dict = field(default_factory=dict)
    stages: list[tuple[int, int, int]] = field(default_factory=list)  # (stage, first epoch, last epoch + 1)
    finetune: object | None = None  # models.store.WeightsSource
    resume: dict | None = None  # the checkpoint dict to continue
    resume_path: str | None = None
    notes: list[str] = field(default_factory=list)


def run_summary(plan: Plan, history: list[dict], best_epoch: int) -> tuple[dict, dict]:
    """What every framework's run ends with, from its per-epoch ``history`` (dicts with
    ``epoch``, ``map``, ``map_50``, ``map_75``, ``per_label``; mAP as COCO's
    mAP@[.5:.95], 0..1) and the 1-based ``best_epoch``.

    Returns ``(meta, outputs)``: ``meta`` for the model folder's model.json (dataset,
    fingerprint, epochs, the best and the final epoch's metrics, split sizes), and the
    job's outputs without ``model_dir`` (``map``, ``map_50``, ``best_epoch``, ``epochs``,
    ``message``)."""
    best = next((h for h in history if h["epoch"] == best_epoch), history[-1] if history else {})
    meta = {
        "dataset": plan.dataset_path,
        "dataset_fingerprint": plan.dataset_fingerprint,
        "epochs": plan.epochs,
        "best_epoch": best_epoch,
        "metrics": {k: best.get(k) for k in ("map", "map_50", "map_75", "per_label")},
        "final_metrics": {k: history[-1].get(k) for k in ("map", "map_50", "map_75")} if history else {},
        "train_images": len(plan.train_items),
        "val_images": len(plan.val_items),
    }
    m, m50 = best.get("map") or 0.0, best.get("map_50") or 0.0
    outputs = {
        "map": m,
        "map_50": m50,
        "best_epoch": best_epoch,
        "epochs": plan.epochs,
        "message": f"mAP@[.5:.95] {m:.4f}, mAP@.5 {m50:.4f} (best epoch {best_epoch} of {plan.epochs})",
    }
    return meta, outputs


def drop_last(n: int, batch_size: int) -> bool:
    """Whether the training loader drops its last batch: only when it would hold a single
    image (batch norm cannot train on one image with 1x1 feature maps)."""
    return batch_size > 1 and n % batch_size == 1


def steps_for(n: int, batch_size: int) -> int:
    """Optimizer steps per epoch over ``n`` images (see :func:`drop_last`)."""
    return n // batch_size + (1 if n % batch_size and not drop_last(n, batch_size) else 0)


def _fingerprint(labels: list[str], items: list[Item]) -> str:
    h = hashlib.sha1(json.dumps(labels).encode())
    for it in sorted(items, key=lambda i: (i.subset, i.id)):
        h.update(f"{it.subset}/{it.id}:{it.width}x{it.height}".encode())
        for a in it.annotations:
            h.update(f"{a.label}:{','.join(f'{v:.2f}' for v in a.bbox)};".encode())
    return h.hexdigest()


def requested_ranks(spec: dict) -> int:
    """How many ranks (processes, one per GPU) the train job ``spec`` asks for, at least
    1: its ``gpus``, else the hyperparameter ``num_gpus`` (alias ``num_clones``). Never
    raises: a spec the plan will refuse gives 1. Imports no framework (the server calls
    it)."""
    from .. import models

    try:
        template = models.get_template(spec.get("template"))
        n = int(spec.get("gpus") or models.parse_hyperparameters(_user_parameters(spec), template)["num_gpus"])
    except Exception:  # noqa: BLE001 - the plan reports a bad spec, with its fix
        return 1
    return max(1, n)


def requested_gpus(spec: dict) -> int:
    """The GPUs a train job ``spec`` holds on this machine while it runs: its
    :func:`requested_ranks` (torchrun's ranks, TensorFlow's MirroredStrategy and a custom
    template's ``num_gpus`` all use that many), or 1 with ``device: cpu`` (as any
    accelerator job on a machine with GPUs). Never raises."""
    return 1 if str(spec.get("device") or "").lower() == "cpu" else requested_ranks(spec)


def _user_parameters(spec: dict) -> list:
    out = []
    for key in ("parameters", "hyperparameters"):
        v = spec.get(key)
        if isinstance(v, list):
            out.extend(v)
        elif v not in (None, ""):
            out.append(v)
    if spec.get("epochs") not in (None, ""):
        out.append({"epochs": spec["epochs"]})
    return out


def make_plan(
    spec: dict,
    output_dir: Path,
    log: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    ranks_device: Callable[[str | None, int], str] | None = None,
) -> Plan:
    """Check a train spec and return the :class:`Plan` (module docstring for the spec).
    ``log``/``warn`` get the plan's notes and the dropped-annotation warnings.
    ``ranks_device(requested device, ranks)``: where a run of more than one rank gets its
    device, when not from this machine's GPUs (a Ray cluster's: :mod:`.ray_train`).
    Raises JobError for every problem found before training, in this order: template,
    checkpoint to resume, hyperparameters, device, export (validation, labels, images),
    split and batch size, epochs, checkpoint to fine-tune."""
    warn = warn or log
    template, family = _template(spec)
    resume_reader, finetune_reader = _checkpoint_readers(family.framework)
    resume_ck, resume_path = resume_reader(spec, output_dir, template)
    params = _parameters(spec, template, resume_ck)
    device, gpus = _device_and_gpus(spec, params, ranks_device)
    dataset = spec.get("dataset")
    ds = _checked_export(dataset, spec.get("format"), output_dir)
    labels = _labels(ds, dataset, template, family)
    items, dropped = _usable_items(ds, labels, warn)
    _check_task(template, items, dataset, ds.format)
    if resume_ck is not None and list(resume_ck.get("labels") or []) != labels:
        raise JobError(
            f"cannot resume: the checkpoint's labels {resume_ck.get('labels')} differ from the export's "
            f"{labels}; fine-tune from it instead (without --resume)"
        )
    train_items, val_items, steps_per_epoch = _split(items, params, gpus)
    pass_steps = steps_per_epoch
    if family.num_steps_per_epoch and params.get("num_steps"):
        steps_per_epoch = int(params["num_steps"])
    epochs, stages, notes = _epochs(params, steps_per_epoch, len(train_items), gpus, family.num_steps_per_epoch)
    if steps_per_epoch != pass_steps:
        notes.append(
            f"num_steps {steps_per_epoch} counts the steps of one epoch for {template.name} (Onepanel's Mask R-CNN "
            f"meaning); one pass over the training split is {pass_steps} steps, drawn again as often as needed"
        )
    notes += _milestone_notes(params, steps_per_epoch * epochs)
    params["epochs"] = epochs
    finetune = finetune_reader(spec, template, labels, params)
    if resume_ck is not None:
        notes.append(_resume_note(resume_ck, resume_path, epochs))
    for n in notes:
        log(n)
    return Plan(
        template=template.name,
        family=family.name,
        task=template.task,
        framework=family.framework,
        params=params,
        labels=labels,
        train_items=train_items,
        val_items=val_items,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        device=device,
        gpus=gpus,
        dataset_path=str(dataset),
        dataset_fingerprint=_fingerprint(labels, items),
        dropped=dropped,
        stages=stages,
        finetune=finetune,
        resume=resume_ck,
        resume_path=resume_path,
        notes=notes,
    )


def _template(spec: dict):
    """The spec's template (default: models.DEFAULT_TEMPLATE) and its family, checked to
    be usable here (framework installed, builder found)."""
    from .. import models

    try:
        template = models.get_template(spec.get("template") or models.DEFAULT_TEMPLATE)
        return template, models.check_template(template, deep=True)
    except (KeyError, models.TemplateUnavailable) as e:
        raise JobError(str(e)) from None


def _checkpoint_readers(framework: str) -> tuple[Callable, Callable]:
    """(resume reader, fine-tune reader) of ``framework``: its own when it registers them
    (models.Framework.resume / .finetune, e.g. TensorFlow's), else the torch .pt readers below."""
    from ..models import get_framework
    from ..models.registry import resolve

    fw = get_framework(framework)
    return (
        resolve(fw.resume) if fw.resume else _resume_checkpoint,
        resolve(fw.finetune) if fw.finetune else _finetune_source,
    )


def _resume_checkpoint(spec: dict, output_dir: Path, template) -> tuple[dict | None, str | None]:
    """With ``resume``: the checkpoint to continue (``checkpoint``, else the job's own
    checkpoints/; last.pt preferred over best.pt) and its path; (None, None) without."""
    from .. import models
    from .checkpoints import load_checkpoint

    if not spec.get("resume"):
        return None, None
    resume_path = Path(spec["checkpoint"]) if spec.get("checkpoint") else Path(output_dir) / "checkpoints"
    try:
        resume_file = models.resolve_weights_path(resume_path)
    except models.WeightsError as e:
        raise JobError(f"cannot resume: {e}") from None
    if resume_file.name == "best.pt" and (resume_file.parent / "last.pt").is_file():
        resume_file = resume_file.parent / "last.pt"
    try:
        resume_ck = load_checkpoint(resume_file)
    except Exception as e:  # noqa: BLE001
        raise JobError(f"cannot resume: {resume_file} is not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(resume_ck, dict) or resume_ck.get("kind") != "checkpoint" or "optimizer" not in resume_ck:
        raise JobError(
            f"cannot resume from {resume_file}: it holds weights but no training state "
            f"(give a checkpoints/last.pt; to start from its weights use it as a fine-tune checkpoint)"
        )
    if resume_ck.get("template") != template.name:
        raise JobError(
            f"cannot resume: {resume_file} was trained with template {resume_ck.get('template')!r}, "
            f"not {template.name!r}"
        )
    return resume_ck, str(resume_file)


def _parameters(spec: dict, template, resume_ck: dict | None) -> dict:
    """Every hyperparameter of ``template``: its defaults, under a resumed run's own
    parameters, under the spec's (``parameters``, ``hyperparameters``, ``epochs``)."""
    from .. import models

    user = _user_parameters(spec)
    if resume_ck is not None:
        user = [dict(resume_ck.get("params") or {})] + user
    try:
        params = models.parse_hyperparameters(user, template)
    except ValueError as e:
        raise JobError(f"hyperparameters: {e}") from None
    if params["pretrained"] and not (template.weights or template.weights_backbone):
        raise JobError(
            f"{template.where} names no pretrained weights: set the hyperparameter 'pretrained: false' "
            f"(train from scratch), or add 'weights:' to the template"
        )
    return params


def _device_and_gpus(spec: dict, params: dict, ranks_device=None) -> tuple[str, int]:
    """The device (``cpu``, ``cuda``, ``cuda:N``) and the number of processes
    (``gpus``, else ``num_gpus``; written back to ``params``), checked against the GPUs here,
    or, for more than one process, by ``ranks_device(requested, ranks)`` when given (a
    job on a Ray cluster checks the cluster's: :func:`.ray_train.cluster_device`)."""
    gpus = int(spec.get("gpus") or params.get("num_gpus") or 1)
    params["num_gpus"] = gpus
    if gpus > 1 and ranks_device is not None:
        return ranks_device(spec.get("device"), gpus), gpus
    device = resolve_device(spec.get("device"))
    if gpus > 1 and device.startswith("cuda"):
        import torch

        if device != "cuda":
            raise JobError(f"num_gpus {gpus} takes one GPU per process: give device cuda, not {device}")
        if gpus > torch.cuda.device_count():
            raise JobError(
                f"num_gpus {gpus} asks for more GPUs than the {torch.cuda.device_count()} visible here: "
                f"set num_gpus (--gpus) to at most {torch.cuda.device_count()}"
            )
    return device, gpus


def _checked_export(dataset, format: str | None, output_dir: Path):
    """The export at ``dataset``, loaded after it validated without error (else the
    report goes to ``output_dir/validation.json`` and the first 15 errors to the JobError)."""
    from ..datasets import ExportError, load_export, validate_export

    if not dataset:
        raise JobError("no dataset given: the job needs the path of a CVAT export (zip or folder)")
    report = validate_export(dataset, format)
    if not report.ok:
        lines = [f"  - {f.message}" for f in report.errors[:15]]
        more = f"\n  ... and {len(report.errors) - 15} more" if len(report.errors) > 15 else ""
        try:
            (Path(output_dir) / "validation.json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
        except OSError:
            pass
        raise JobError(
            f"the export {dataset} has {len(report.errors)} validation error(s); training did not start:\n"
            + "\n".join(lines)
            + more
        )
    try:
        return load_export(dataset, format)
    except ExportError as e:
        raise JobError(str(e)) from None


def _labels(ds, dataset, template, family) -> list[str]:
    """The export's labels, at least one and at most the family's ``max_labels``."""
    labels = list(ds.labels)
    if not labels:
        raise JobError(f"the export {dataset} declares no labels: add labels in CVAT and export again")
    if family.max_labels is not None and len(labels) > family.max_labels:
        raise JobError(
            f"{template.where} takes at most {family.max_labels} labels, but the export {dataset} has "
            f"{len(labels)}: choose another template or merge labels in CVAT"
        )
    return labels


def _usable_items(ds, labels: list[str], warn: Callable[[str], None]) -> tuple[list[Item], dict]:
    """The items with an image file, their annotations cleaned (``clean_annotations``),
    and the count of what was dropped by reason (each non-zero count goes to ``warn``)."""
    from ..datasets.torchdata import clean_annotations

    items = [it for it in ds.items if it.image_path is not None and Path(it.image_path).is_file()]
    missing = len(ds.items) - len(items)
    items, dropped = clean_annotations(items, labels)
    dropped["missing_image"] = missing
    for what, n in dropped.items():
        if n:
            warn(
                f"{n} {what.replace('_', ' ')} annotation(s)/image(s) dropped before training"
                if what != "missing_image"
                else f"{n} image(s) without an image file dropped before training"
            )
    return items, dropped


def _check_task(template, items: list[Item], dataset, format: str) -> None:
    """Instance segmentation needs polygons or masks in the export."""
    if template.task == "instance-segmentation" and not any(a.polygons for it in items for a in it.annotations):
        raise JobError(
            f"template {template.name} trains instance segmentation and needs polygons or masks, but the "
            f"export {dataset} ({format}) has boxes only: export from CVAT as 'COCO 1.0' or 'CVAT for "
            f"images 1.1' with polygons, or choose a detection template"
        )


def _split(items: list[Item], params: dict, gpus: int) -> tuple[list[Item], list[Item], int]:
    """(train items, val items, optimizer steps per epoch) after the ``val_split`` /
    ``seed`` split; the training split must fill one batch per GPU."""
    from ..datasets.split import SplitError, split_items

    try:
        train_items, val_items = split_items(items, params["val_split"], params["seed"])
    except SplitError as e:
        raise JobError(str(e)) from None
    bs = int(params["batch_size"])
    per_rank = len(train_items) // gpus
    if bs > per_rank:
        where = f" per GPU ({len(train_items)} / {gpus} GPUs = {per_rank})" if gpus > 1 else ""
        raise JobError(
            f"batch_size {bs} is larger than the training split{where}: it has {len(train_items)} images "
            f"({len(items)} in the export, {len(val_items)} held out by val_split {params['val_split']:g}%); "
            f"set batch_size to at most {per_rank} or add images"
        )
    return train_items, val_items, steps_for(per_rank, bs)


def _milestone_notes(params: dict, total: int) -> list[str]:
    """A note for each ``schedule_step_*`` the run of ``total`` steps never reaches."""
    from ..models.schema import schedule_milestones

    if params.get("lr_schedule") != "step":
        return []
    late = [m for m in schedule_milestones(params) or () if m >= total]
    return [
        f"schedule step {m} is past the run's last step ({total} steps): the learning rate does not drop there"
        for m in late
    ]


def _epochs(
    params: dict, steps_per_epoch: int, n_train: int, gpus: int, per_epoch_steps: bool = False
) -> tuple[int, list[tuple[int, int, int]], list[str]]:
    """(epochs, Mask R-CNN stages, notes): the sum of the ``stage_*_epochs`` when any is
    set, else ``epochs``, else ceil(num_steps / steps per epoch). ``per_epoch_steps``:
    num_steps counts one epoch's steps (the family's ``num_steps_per_epoch``), so it
    cannot give the epochs: one of the others must (a JobError otherwise)."""
    notes = []
    stages: list[tuple[int, int, int]] = []
    stage_epochs = [int(params.get(f"stage_{k}_epochs") or 0) for k in (1, 2, 3)]
    if any(stage_epochs):  # only families that list the stage_*_epochs keys accept them
        start = 0
        for k, n in enumerate(stage_epochs, start=1):
            if n:
                stages.append((k, start, start + n))
                start += n
        epochs = start
        notes.append("Mask R-CNN staged training: " + ", ".join(f"stage {k} {b - a} epoch(s)" for k, a, b in stages))
    elif params.get("epochs"):
        epochs = int(params["epochs"])
    elif per_epoch_steps:
        raise JobError(
            "give epochs or stage_1/2/3_epochs: for this template num_steps is the number of steps per epoch "
            "(Onepanel's Mask R-CNN meaning), so it does not say how many epochs to train"
        )
    else:
        epochs = max(1, math.ceil(params["num_steps"] / steps_per_epoch))
        notes.append(
            f"epochs not given: derived {epochs} = ceil(num_steps {params['num_steps']} / {steps_per_epoch} "
            f"steps per epoch) ({n_train} training images, batch_size {int(params['batch_size'])}"
            + (f" x {gpus} GPUs" if gpus > 1 else "")
            + ")"
        )
    return epochs, stages, notes


def _finetune_source(spec: dict, template, labels: list[str], params: dict):
    """Without ``resume``: the weights of ``checkpoint`` to fine-tune from
    (models.WeightsSource), checked to fit ``template``; None when no checkpoint is given."""
    from .. import models

    if not spec.get("checkpoint") or spec.get("resume"):
        return None
    try:
        finetune = models.read_weights(spec["checkpoint"])
    except models.WeightsError as e:
        raise JobError(f"cannot fine-tune: {e}") from None
    if finetune.template and finetune.template != template.name:
        raise JobError(
            f"cannot fine-tune: {finetune.path} holds a {finetune.template} model, not "
            f"{template.name}; choose --model {finetune.template}"
        )
    _check_fits(finetune, template.name, labels, params)
    return finetune


def _resume_note(resume_ck: dict, resume_path: str, epochs: int) -> str:
    """The note of a resumed run; a JobError when it already ran all ``epochs``."""
    done = int(resume_ck.get("epoch", 0))
    if done >= epochs:
        raise JobError(
            f"the run in {resume_path} already completed {done} of {epochs} epochs: give a larger 'epochs' to extend it"
        )
    return f"resuming from {resume_path} after epoch {done} of {epochs}"


def _check_fits(src, template: str, labels: list[str], params: dict) -> None:
    """Refuse a fine-tune checkpoint whose weights fit nothing of the architecture."""
    from ..models import build_model

    model = build_model(template, len(labels) + 1, {**params, "pretrained": False})
    own = model.state_dict()
    fitting = sum(1 for k, v in src.state_dict.items() if k in own and tuple(v.shape) == tuple(own[k].shape))
    if fitting < len(own) // 2:
        raise JobError(
            f"cannot fine-tune: {src.path} holds no usable weights for {template} "
            f"({fitting} of {len(own)} tensors match)"
        )
