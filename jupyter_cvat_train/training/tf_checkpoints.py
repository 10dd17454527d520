"""Checkpoints of the TensorFlow framework: where a run resumes or fine-tunes from.

``checkpoints/last.*`` (every epoch, and after a cancel) and ``checkpoints/best.*`` (best
mAP so far)::

    <name>.weights.h5   the model's weights (keras ``save_weights``)
    <name>.optimizer.npz the optimizer's variables (iterations, moments), in order
    <name>.json         {"format_version", "kind": "checkpoint", "framework": "tensorflow",
                         "template", "task", "labels", "params", "epoch", "step",
                         "best_map", "best_epoch", "history", "dataset_fingerprint"}

The .json is written last, so a checkpoint with its .json is complete. The readers here
run when a run is planned (:func:`jupyter_cvat_train.training.plan.make_plan`, through
``models.Framework.resume`` / ``.finetune``) and import no TensorFlow.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..jobs.runtime import JobError

TORCH_SUFFIXES = (".pt", ".pth")


@dataclass
class KerasWeights:
    """Weights to fine-tune from: ``path`` (a .weights.h5 file), its run's template,
    labels and parameters."""

    path: Path
    template: str
    labels: list[str]
    params: dict


def _read_json(p: Path) -> dict:
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise JobError(f"{p} is not a readable checkpoint record ({type(e).__name__}: {e})") from None
    if not isinstance(data, dict):
        raise JobError(f"{p} is not a checkpoint record (a JSON object)")
    return data


def _refuse_torch(p: Path, template, what: str) -> None:
    """A PyTorch model or checkpoint given to a TensorFlow template: refused, saying why."""
    torch_files = [p] if p.is_file() and p.suffix in TORCH_SUFFIXES else []
    if p.is_dir():
        for cand in (
            "model.pt",
            "best.pt",
            "last.pt",
            "model/model.pt",
            "checkpoints/last.pt",
            "output/model/model.pt",
        ):
            if (p / cand).is_file():
                torch_files.append(p / cand)
    if torch_files:
        raise JobError(
            f"cannot {what} {template.name} from {torch_files[0]}: it is a PyTorch model, and {template.name} is a "
            f"TensorFlow (Keras) template whose layers and weight names differ; {what} from the model/ or "
            f"checkpoints/ folder of a TensorFlow run, or choose the PyTorch template it was trained with"
        )


def _record(path: Path, template, what: str) -> tuple[Path, dict]:
    """(the .json of the checkpoint or model folder ``path`` means, its contents)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise JobError(f"cannot {what}: {p} does not exist; give the checkpoints/ or model/ folder of a TensorFlow run")
    cands = (
        [p]
        if p.is_file() and p.suffix == ".json"
        else [
            p / "last.json",
            p / "best.json",
            p / "model.json",
            p / "checkpoints" / "last.json",
            p / "model" / "model.json",
            p / "output" / "checkpoints" / "last.json",
            p / "output" / "model" / "model.json",
        ]
    )
    if p.is_file() and p.name.endswith(".weights.h5"):
        cands = [p.with_name(p.name[: -len(".weights.h5")] + ".json"), p.parent / "model.json"]
    for c in cands:
        if c.is_file():
            data = _read_json(c)
            if data.get("framework") == "tensorflow":
                return c, data
    _refuse_torch(p, template, what)
    raise JobError(
        f"cannot {what}: {p} holds no TensorFlow checkpoint (last.json / best.json with .weights.h5) or model "
        f"folder (model.json saying framework tensorflow); give the checkpoints/ or model/ folder of a TensorFlow run"
    )


def resume_checkpoint(spec: dict, output_dir: Path, template) -> tuple[dict | None, str | None]:
    """With ``resume``: the checkpoint state to continue (``checkpoint``, else the job's own
    checkpoints/; last.json preferred over best.json) and the path of its weights file;
    (None, None) without. Raises JobError for a missing, foreign or weights-only checkpoint."""
    if not spec.get("resume"):
        return None, None
    where = Path(spec["checkpoint"]) if spec.get("checkpoint") else Path(output_dir) / "checkpoints"
    rec_path, rec = _record(where, template, "resume")
    if rec_path.name == "best.json" and (rec_path.parent / "last.json").is_file():
        rec_path = rec_path.parent / "last.json"
        rec = _read_json(rec_path)
    if rec.get("kind") != "checkpoint":
        raise JobError(
            f"cannot resume from {rec_path}: it is a finished model (no training state); give its run's "
            f"checkpoints/ folder, or fine-tune from it (without --resume)"
        )
    if rec.get("template") != template.name:
        raise JobError(
            f"cannot resume: {rec_path} was trained with template {rec.get('template')!r}, not {template.name!r}"
        )
    stem = rec_path.name[: -len(".json")]
    weights, optimizer = rec_path.with_name(stem + ".weights.h5"), rec_path.with_name(stem + ".optimizer.npz")
    for f in (weights, optimizer):
        if not f.is_file():
            raise JobError(f"cannot resume: {f} is missing beside {rec_path}; the checkpoint is incomplete")
    rec = {**rec, "weights_file": str(weights), "optimizer_file": str(optimizer)}
    return rec, str(rec_path)


def finetune_source(spec: dict, template, labels: list[str], params: dict) -> KerasWeights | None:
    """Without ``resume``: the weights of ``checkpoint`` to fine-tune from (a TensorFlow
    model/ or checkpoints/ folder, or its .weights.h5), checked to be of ``template``;
    None when no checkpoint is given. Other labels are fine (the label head is rebuilt)."""
    if not spec.get("checkpoint") or spec.get("resume"):
        return None
    rec_path, rec = _record(Path(spec["checkpoint"]), template, "fine-tune")
    stem = "model" if rec_path.name == "model.json" else rec_path.name[: -len(".json")]
    weights = rec_path.with_name(stem + ".weights.h5")
    if not weights.is_file():
        raise JobError(f"cannot fine-tune: {weights} is missing beside {rec_path}")
    if rec.get("template") != template.name:
        raise JobError(
            f"cannot fine-tune: {weights} holds a {rec.get('template')} model, not {template.name}; "
            f"choose --model {rec.get('template')}"
        )
    rec_labels = rec.get("labels")
    if not isinstance(rec_labels, list):
        raise JobError(f"cannot fine-tune: {rec_path} does not list its labels")
    return KerasWeights(
        path=weights,
        template=template.name,
        labels=list(rec_labels),
        params=dict(rec.get("params") or rec.get("parameters") or {}),
    )
