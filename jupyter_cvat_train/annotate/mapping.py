"""Mapping of a model's labels to the target label set of the annotations written.

Rules:

- by default a model label maps to the target label of the same name, compared
  case-insensitively;
- explicit pairs ``MODEL=TARGET`` (``--map WBC=leukocyte``) override that; several
  model labels may map to one target label; ``MODEL=`` (empty target) drops a label;
- model labels left without a target are dropped, and listed in the summary;
- a pair naming a model label the model does not have, or a target label the target
  set does not have, is an error raised before any image is processed.

Without a target label set (plain images, not a CVAT export) the targets are the
model's labels, renamed by the explicit pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


class MappingError(ValueError):
    """A label mapping that cannot be applied; the message names the label and the
    labels that exist."""


def parse_map_pairs(pairs: list[str] | tuple[str, ...] | dict | None) -> dict[str, str]:
    """``["A=B", "C=D"]`` (CLI form) or ``{"A": "B"}`` (job spec form) -> ``{"A": "B"}``.

    Raises MappingError for an item without ``=`` or with an empty model label.
    """
    if not pairs:
        return {}
    if isinstance(pairs, dict):
        items = [(str(k), "" if v is None else str(v)) for k, v in pairs.items()]
    else:
        items = []
        for p in pairs:
            if "=" not in p:
                raise MappingError(f"mapping {p!r} is not of the form MODEL_LABEL=TARGET_LABEL (e.g. WBC=leukocyte)")
            a, b = p.split("=", 1)
            items.append((a, b))
    out: dict[str, str] = {}
    for a, b in items:
        a, b = a.strip(), b.strip()
        if not a:
            raise MappingError(f"mapping '{a}={b}' has an empty model label")
        out[a] = b
    return out


@dataclass
class LabelMapping:
    """The resolved mapping.

    model_labels: the model's labels; model class id k (1-based) is ``model_labels[k-1]``.
    target_labels: the labels of the written annotations, in output order (ids 1..M).
    to_target: model label -> target label, for the labels that are kept.
    dropped: model labels without a target (their detections are discarded).
    """

    model_labels: list[str]
    target_labels: list[str]
    to_target: dict[str, str] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)

    def lookup(self) -> np.ndarray:
        """Array ``t`` with ``t[model_id]`` = 0-based index into ``target_labels``, or
        -1 for a dropped label (and for id 0, background). Shape ``(len(model_labels)+1,)``."""
        index = {name: i for i, name in enumerate(self.target_labels)}
        t = np.full(len(self.model_labels) + 1, -1, dtype=np.int64)
        for k, name in enumerate(self.model_labels, start=1):
            if name in self.to_target:
                t[k] = index[self.to_target[name]]
        return t

    def as_dict(self) -> dict:
        return {
            "to_target": dict(self.to_target),
            "dropped": list(self.dropped),
            "target_labels": list(self.target_labels),
        }


def build_mapping(
    model_labels: list[str], target_labels: list[str] | None = None, explicit: dict[str, str] | None = None
) -> LabelMapping:
    """Resolve the mapping (rules in the module docstring).

    model_labels: the model's labels (classes.csv order). target_labels: the labels of
    the CVAT export being annotated, or None for plain images. explicit: pairs from
    :func:`parse_map_pairs`. Raises MappingError for a pair naming an unknown label.
    """
    explicit = explicit or {}
    by_lower_model: dict[str, str] = {}
    for name in model_labels:
        by_lower_model.setdefault(name.lower(), name)
    resolved: dict[str, str | None] = {}
    for a, b in explicit.items():
        model_name = a if a in model_labels else by_lower_model.get(a.lower())
        if model_name is None:
            raise MappingError(
                f"--map {a}={b}: the model has no label {a!r}; its labels are: {', '.join(model_labels)}"
            )
        resolved[model_name] = b or None

    if target_labels is None:
        targets: list[str] = []
        to_target: dict[str, str] = {}
        for name in model_labels:
            t = resolved[name] if name in resolved else name
            if t is None:
                continue
            if t not in targets:
                targets.append(t)
            to_target[name] = t
        dropped = [n for n in model_labels if n not in to_target]
        return LabelMapping(list(model_labels), targets, to_target, dropped)

    by_lower_target: dict[str, str] = {}
    for name in target_labels:
        by_lower_target.setdefault(name.lower(), name)
    to_target = {}
    for name in model_labels:
        if name in resolved:
            b = resolved[name]
            if b is None:
                continue
            t = b if b in target_labels else by_lower_target.get(b.lower())
            if t is None:
                raise MappingError(
                    f"--map {name}={b}: the target label set has no label {b!r}; "
                    f"its labels are: {', '.join(target_labels)}"
                )
            to_target[name] = t
        else:
            t = name if name in target_labels else by_lower_target.get(name.lower())
            if t is not None:
                to_target[name] = t
    dropped = [n for n in model_labels if n not in to_target]
    return LabelMapping(list(model_labels), list(target_labels), to_target, dropped)
