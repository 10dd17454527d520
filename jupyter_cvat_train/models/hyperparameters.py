"""Hyperparameters: the keys a template accepts, and parsing of the three text forms.

Accepted forms (all may be mixed across several inputs, later inputs win):

1. YAML mapping, the current Onepanel form::

       batch_size: 8
       learning_rate: 0.005

2. ``key=value`` lines;
3. ``key=value`` pairs separated by ``,`` or ``;`` (Onepanel's older forms).

Keys are case-insensitive, ``-`` and ``_`` are the same, and Onepanel-era spellings are
mapped to ours (``num-steps`` -> num_steps, ``initial-learning-rate`` -> learning_rate,
``num-clones`` -> num_gpus, ``batch-size`` -> batch_size, ...; see :data:`ALIASES`).
Values in forms 2/3 are read as YAML scalars (``true``, ``0.01``, ``8``).

Onepanel's TFOD form runs as pasted: ``schedule-step-1`` / ``schedule-step-2`` are the
milestones (optimizer steps) of ``lr_schedule: step`` and select it. ``num_steps`` means the
whole run's steps (TFOD forms), except in families with ``num_steps_per_epoch`` (Mask R-CNN,
whose Onepanel form said "num_steps: 1000 # Num steps per epoch"); each key's help says which.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import yaml

from . import registry
from .catalog import Template, describe_keys, get_template
from .schema import ALIASES, KEYS, HyperparameterError, Key, coerce, normalize_key, schedule_milestones

__all__ = [
    "ALIASES",
    "KEYS",
    "HyperparameterError",
    "Key",
    "key_schema",
    "normalize_key",
    "parse_hyperparameters",
    "schedule_milestones",
    "valid_keys",
]

_KV_RE = re.compile(r"^\s*[A-Za-z][\w\-]*\s*=")


def valid_keys(template: str | Template) -> list[str]:
    """The hyperparameter keys ``template`` accepts (its family's), sorted."""
    return sorted(get_template(template).keys())


def key_schema(template: str | Template) -> dict[str, dict]:
    """JSON-able description of the valid keys: name -> {type, default, help, choices?, min?, max?}."""
    t = get_template(template)
    return describe_keys(t.keys(), t.defaults)


def _split_text(text: str) -> dict:
    """Parse one text in any of the three forms into a raw {key: value} dict."""
    text = text.strip()
    if not text:
        return {}
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    if lines and all(_KV_RE.match(ln) or not ln.strip() for ln in re.split(r"[\n,;]", text) if ln.strip()):
        out = {}
        for part in re.split(r"[\n,;]", text):
            if not part.strip():
                continue
            key, _, value = part.partition("=")
            value = value.strip()
            try:
                out[key.strip()] = yaml.safe_load(value) if value else None
            except yaml.YAMLError:
                out[key.strip()] = value
        return out
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise HyperparameterError(f"hyperparameters are neither YAML nor key=value pairs: {e}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise HyperparameterError(
            f"hyperparameters must be 'key: value' (YAML) or 'key=value' pairs, got {text[:60]!r}"
        )
    return doc


def _schedule_steps(user: dict, specs: dict, keys: list[str]) -> None:
    """Onepanel's TFOD ``schedule-step-1`` / ``schedule-step-2``: the milestones (in optimizer
    steps) of the step schedule. Giving one selects ``lr_schedule: step`` (in ``user``);
    a contradicting ``lr_schedule`` or steps out of order raise HyperparameterError."""
    given = {k: user[k] for k in ("schedule_step_1", "schedule_step_2") if user.get(k) is not None}
    if not given or "lr_schedule" not in specs:
        return
    if user.get("lr_schedule", "step") != "step":
        raise HyperparameterError(
            f"{', '.join(given)} set the milestones of lr_schedule step, but lr_schedule is "
            f"{user['lr_schedule']}: remove one of them",
            keys,
        )
    user["lr_schedule"] = "step"
    s1, s2 = given.get("schedule_step_1"), given.get("schedule_step_2")
    if s1 is not None and s2 is not None and s2 <= s1:
        raise HyperparameterError(f"schedule_step_2 ({s2}) must come after schedule_step_1 ({s1})", keys)


def parse_hyperparameters(
    text_or_dict: str | dict | Iterable[str | dict] | None, template: str | Template, *, with_defaults: bool = True
) -> dict:
    """Parse user hyperparameters for ``template`` and return the complete parameter dict.

    text_or_dict: a text in any of the three forms (module docstring), a dict, None, or a
        list of these (later entries win, as repeated ``--hp`` options).
    with_defaults: when True (default) the result holds every valid key: the template's
        defaults, then the built-in defaults, overridden by the user's values; when False
        only the user's (normalized, type-checked) values.

    Returns {key: value} with Python types (``epochs`` / ``trainable_backbone_layers`` may
    be None = derive). Raises :class:`HyperparameterError` (a ValueError) for an unknown
    key, a wrong type or an out-of-range value; its message lists the valid keys.
    """
    t = get_template(template)
    specs = t.keys()
    keys = sorted(specs)
    inputs = [text_or_dict] if text_or_dict is None or isinstance(text_or_dict, (str, dict)) else list(text_or_dict)
    user: dict = {}
    for inp in inputs:
        if inp is None:
            continue
        raw = inp if isinstance(inp, dict) else _split_text(str(inp))
        for k, v in raw.items():
            nk = normalize_key(k)
            if nk not in specs:
                known = nk in KEYS or any(nk in f.extra_keys for f in registry.list_families())
                hint = f" (it applies to other templates than {t.name})" if known else ""
                raise HyperparameterError(f"unknown hyperparameter {str(k)[:100]!r}{hint} for template {t.name}", keys)
            user[nk] = coerce(nk, v, specs[nk], keys)
    _schedule_steps(user, specs, keys)
    family = registry.find_family(t.family)
    if family is not None:
        family.check_limits(user, t.name, keys)
    if not with_defaults:
        return user
    out = {}
    for k in keys:
        default = t.defaults.get(k, specs[k].default)
        out[k] = coerce(k, default, specs[k], keys) if default is not None else None
    out.update(user)
    return out
