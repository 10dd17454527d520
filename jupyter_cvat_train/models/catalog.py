"""The model catalog: one YAML template per model in ``models/templates/``.

A template uses Onepanel's parameter schema (see docs/architecture.md, "Templates")::

    name, displayName, framework (pytorch), family (ssdlite | ssd | fasterrcnn | retinanet
    | fcos | maskrcnn), task (detection | instance-segmentation), description,
    parameters: [{name, value, displayName, type, visibility, hint, options, required}]

Two parameters matter to training: ``epochs`` (empty = derived from the data) and
``hyperparameters`` (a textarea whose value holds the template's defaults as YAML).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

TEMPLATES_DIR = Path(__file__).with_name("templates")
DEFAULT_TEMPLATE = "ssdlite320-mobilenet-v3"
FAMILIES = ("ssdlite", "ssd", "fasterrcnn", "retinanet", "fcos", "maskrcnn")
TASKS = ("detection", "instance-segmentation")


class TemplateNotFound(KeyError):
    """No template has this name; the message lists the names that exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Template:
    """One catalog entry, as read from its YAML file.

    defaults: the hyperparameters of the template's ``hyperparameters`` textarea merged
        with its ``epochs`` parameter (None when empty), parsed to Python values.
    raw: the YAML document as loaded (what ``cvat-train models --json`` and the REST API show).
    """

    name: str
    display_name: str
    framework: str
    family: str
    task: str
    description: str
    parameters: list[dict]
    defaults: dict = field(default_factory=dict)
    path: Path | None = None
    raw: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The template as a JSON-able dict in Onepanel's schema, plus ``defaults`` and the
        valid hyperparameter keys (``hyperparameter_keys``: name -> {type, help, choices})."""
        from .hyperparameters import key_schema

        out = dict(self.raw)
        out["defaults"] = dict(self.defaults)
        out["hyperparameter_keys"] = key_schema(self)
        return out


def _load(path: Path) -> Template:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or "name" not in doc:
        raise ValueError(f"{path}: a template needs a YAML mapping with a 'name'")
    params = doc.get("parameters") or []
    defaults: dict = {}
    for p in params:
        if p.get("name") == "hyperparameters":
            parsed = yaml.safe_load(p.get("value") or "") or {}
            if not isinstance(parsed, dict):
                raise ValueError(f"{path}: the hyperparameters value must be a YAML mapping")
            defaults.update(parsed)
    for p in params:
        if p.get("name") == "epochs":
            v = str(p.get("value") or "").strip()
            defaults["epochs"] = int(v) if v else None
    family, task = doc.get("family"), doc.get("task", "detection")
    if family not in FAMILIES or task not in TASKS:
        raise ValueError(f"{path}: family must be one of {FAMILIES} and task one of {TASKS}")
    return Template(name=doc["name"], display_name=doc.get("displayName", doc["name"]),
                    framework=doc.get("framework", "pytorch"), family=family, task=task,
                    description=" ".join(str(doc.get("description", "")).split()),
                    parameters=params, defaults=defaults, path=path, raw=doc)


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Template]:
    out = {}
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        t = _load(path)
        out[t.name] = t
    return out


def list_templates() -> list[Template]:
    """All built-in templates, the recommended default first, then by name."""
    cat = _catalog()
    return sorted(cat.values(), key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))


def get_template(name: "str | Template") -> Template:
    """The template called ``name`` (a Template passes through).
    Raises TemplateNotFound (a KeyError) listing the valid names."""
    if isinstance(name, Template):
        return name
    cat = _catalog()
    try:
        return cat[name]
    except KeyError:
        raise TemplateNotFound(f"unknown model template {name!r}; valid templates: {', '.join(sorted(cat))}") from None
