"""Custom training templates: the user's own training code, run as a train job.

A custom template is a catalog template (same file, same folders, same parameter schema)
that names code and a command instead of a model family::

    name: detr-coco                       # letters, digits, . _ -; not a built-in name
    displayName: DETR (my fork)
    description: ...
    task: detection                       # detection | instance-segmentation
    framework: pytorch                    # informational
    code:                                 # exactly one of git / path
      git: https://github.com/me/detr.git # or file:///path/to/repo, or a local path
      revision: main                      # branch, tag or commit (default: HEAD)
      # path: /home/me/detr               # a plain folder, copied as it is
    dump_format: cvat_coco                # cvat_coco | cvat_voc | cvat_yolo | cvat_tfrecord |
                                          # cvat_mot | cvat_label_me (or our names: coco, voc, ...)
    environment:                          # optional: one of requirements / python
      requirements: requirements.txt      # in the code; a venv cached by the file's hash
      system_site_packages: false         # the venv also sees this Python's packages
      # python: /opt/conda/envs/detr/bin/python
    command: >-
      python -u main.py --coco_path {{inputs.dataset}} --output_dir {{output}}
      --epochs {{parameters.epochs}}
    parameters:
      - {name: epochs, value: "300", displayName: Number of epochs, type: input.number}
    outputs:                              # what a finished run must have written
      model: "*.pth"                      # a glob inside {{output}}
      classes: classes.csv                # written from the export's labels if absent
    annotate: >-                          # optional: auto-annotation with the user's model
      python -u predict.py --images {{inputs.images}} --model {{inputs.model}}
      --out {{output}}/annotations.json
    shell: false                          # optional: true runs both commands through /bin/sh

Placeholders: ``{{inputs.dataset}}`` (the export in ``dump_format``, under the job's
``data/datasets/``), ``{{inputs.checkpoint}}`` (the checkpoint copied to
``data/models/``, empty without one), ``{{output}}`` (the job's ``output/``) and
``{{parameters.<name>}}``. The ``annotate`` command has ``{{inputs.images}}`` (a folder of
the images to annotate), ``{{inputs.model}}`` (the custom run's output folder),
``{{output}}`` (an empty folder where it writes one COCO JSON: ``annotations.json``, or
its only ``.json`` file) and ``{{parameters.<name>}}`` (the training run's values).

Without ``shell``, a command is split into words like a POSIX shell line
(:func:`shlex.split`) *before* the values are put in, so a value stays inside its word
and never becomes a new argument or a shell command; no shell runs it. With ``shell:
true`` (an explicit opt-in, for pipes, ``&&`` or redirections) the text runs as ``/bin/sh
-c TEXT`` with every placeholder replaced by its value quoted (:func:`shlex.quote`), so a
value is still one word and never shell syntax; write placeholders unquoted then. A
leading ``python`` or ``python3`` word is the environment's interpreter (with ``shell``,
the environment's ``bin`` folder comes first on ``PATH``).

:func:`parse_custom` checks a loaded YAML document and raises :class:`CustomTemplateError`
with the file and line of each problem: unknown keys, a reference to no parameter, an
unknown dump format, a missing command, a code location that does not exist. Only YAML
and the standard library are imported here (the catalog imports this module); the run is
:mod:`jupyter_cvat_train.custom`.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# CVAT's dump format names -> our format ids (datasets.formats.FORMATS)
DUMP_FORMATS = {
    "cvat_coco": "coco",
    "cvat_voc": "voc",
    "cvat_yolo": "yolo",
    "cvat_tfrecord": "tfrecord",
    "cvat_mot": "mot",
    "cvat_label_me": "labelme",
}
OUR_FORMATS = ("coco", "voc", "yolo", "tfrecord", "mot", "labelme", "cvat")

TOP_KEYS = {
    "name",
    "displayName",
    "description",
    "task",
    "framework",
    "code",
    "dump_format",
    "environment",
    "command",
    "parameters",
    "outputs",
    "annotate",
    "shell",
}
CODE_KEYS = {"git", "revision", "path"}
ENV_KEYS = {"requirements", "python", "system_site_packages"}
OUTPUT_KEYS = {"model", "classes"}
PARAMETER_KEYS = {"name", "value", "displayName", "type", "visibility", "hint", "options", "required"}
INPUTS = ("dataset", "checkpoint")
ANNOTATE_INPUTS = ("images", "model")
# Written by a custom run into its output folder: what the annotate job needs to run the
# template's annotate command (our engine cannot load the user's model). Not model.json:
# the user's code may write a file of that name itself (the example does).
RUN_INFO = "custom-run.json"
_PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_PARAM_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")
MAX_VALUE_CHARS = 4096


class CustomTemplateError(ValueError):
    """A custom template that cannot be used; the message is ``<file>:<line>: <problem
    and fix>`` (one line per problem found)."""


def is_custom(doc: Any) -> bool:
    """Whether a template document is a custom one (it names ``command`` or ``code``)."""
    return isinstance(doc, dict) and ("command" in doc or "code" in doc)


@dataclass(frozen=True)
class CustomSpec:
    """The checked custom part of a template.

    code_git: a git URL or local repository path (None: ``code_path`` is used);
    code_revision: branch, tag or commit (None: the remote's HEAD); code_path: a folder
    copied as it is (absolute; relative paths are taken from the template's folder);
    dump_format: our format id (``coco``, ``voc``, ...); requirements: a file in the code
    (None: no venv); python: an interpreter (None: this one, or the venv's);
    system_site_packages: the venv sees this interpreter's packages; command: the text
    with its placeholders; parameters: name -> default value (text); number_parameters:
    names of ``input.number`` parameters; output_model: a glob inside the output folder
    (None: not checked); output_classes: the classes file name inside it; annotate: the
    annotate command's text (None: the template has none); shell: run the commands with
    /bin/sh, every value shell-quoted (module docstring).
    """

    command: str
    dump_format: str
    code_git: str | None = None
    code_revision: str | None = None
    code_path: str | None = None
    requirements: str | None = None
    python: str | None = None
    system_site_packages: bool = False
    parameters: dict[str, str] = field(default_factory=dict)
    number_parameters: tuple[str, ...] = ()
    output_model: str | None = None
    output_classes: str = "classes.csv"
    annotate: str | None = None
    shell: bool = False


# ---- reading with line numbers --------------------------------------------------------------
def _lines(node: yaml.Node, path: tuple = (), out: dict | None = None) -> dict[tuple, int]:
    """1-based line of every key (mapping entries) and list item under ``node``, keyed
    by its path of keys / indexes."""
    out = {} if out is None else out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            out[path + (key,)] = k.start_mark.line + 1
            _lines(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out[path + (i,)] = v.start_mark.line + 1
            _lines(v, path + (i,), out)
    return out


def key_lines(text: str) -> dict[tuple, int]:
    """The lines of a YAML text's keys and list items (see :func:`_lines`); empty when
    it cannot be composed."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    return _lines(node) if node is not None else {}


class _Problems:
    def __init__(self, path: Path, lines: dict[tuple, int]):
        self.path, self.lines, self.items = path, lines, []

    def add(self, where: tuple, message: str) -> None:
        line = None
        while line is None and where is not None:
            line = self.lines.get(where)
            where = where[:-1] if where else None
        self.items.append(f"{self.path}:{line or 1}: {message}")

    def raise_any(self) -> None:
        if self.items:
            raise CustomTemplateError("\n".join(self.items))


def _text(doc: dict, key: str) -> str | None:
    v = doc.get(key)
    return v.strip() if isinstance(v, str) and v.strip() else None


def dump_format_id(name: Any) -> str | None:
    """Our format id for a dump format name (CVAT's ``cvat_coco`` ... or ours), or None."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    return DUMP_FORMATS.get(key) or (key if key in OUR_FORMATS else None)


def placeholders(text: str) -> list[str]:
    """The placeholder names in ``text`` (``inputs.dataset``, ``parameters.epochs``...)."""
    return [m.group(1) for m in _PLACEHOLDER.finditer(text)]


def parse_custom(doc: dict, path: Path, text: str) -> CustomSpec:
    """Check the custom template ``doc`` (loaded from ``path``, whose YAML text is
    ``text``) and return its :class:`CustomSpec`. Raises :class:`CustomTemplateError`
    listing every problem as ``file:line: message``."""
    lines = key_lines(text)
    p = _Problems(path, lines)
    for key in doc:
        if key not in TOP_KEYS:
            p.add((key,), f"unknown key {str(key)[:60]!r}; a custom template has {', '.join(sorted(TOP_KEYS))}")
    # parameters
    params: dict[str, str] = {}
    numbers: list[str] = []
    raw_params = doc.get("parameters") or []
    if not isinstance(raw_params, list):
        p.add(("parameters",), "'parameters' must be a list of mappings {name, value, type, ...}")
        raw_params = []
    for i, item in enumerate(raw_params):
        if not isinstance(item, dict):
            p.add(("parameters", i), "each parameter must be a mapping {name, value, type, ...}")
            continue
        for k in item:
            if k not in PARAMETER_KEYS:
                p.add(
                    ("parameters", i, k),
                    f"unknown parameter key {str(k)[:60]!r}; use {', '.join(sorted(PARAMETER_KEYS))}",
                )
        name = item.get("name")
        if not isinstance(name, str) or not _PARAM_RE.match(name):
            p.add(("parameters", i), f"parameter name {str(name)[:60]!r} must be 1-64 letters, digits, '_', '.' or '-'")
            continue
        if name in params:
            p.add(("parameters", i), f"parameter {name!r} is declared twice")
        value = item.get("value")
        params[name] = "" if value is None else str(value)
        if str(item.get("type", "")) == "input.number":
            numbers.append(name)
            if params[name].strip() and not _is_number(params[name]):
                p.add(
                    ("parameters", i, "value"),
                    f"parameter {name!r} is input.number but its value {params[name]!r} is not a number",
                )
    # command, annotate
    command = doc.get("command")
    if not isinstance(command, str) or not command.strip():
        p.add(
            ("command",) if "command" in doc else (),
            "'command' is missing: give the command that trains, e.g. python -u train.py --data {{inputs.dataset}} --out {{output}}",
        )
        command = ""
    else:
        _check_command(p, "command", command, params, INPUTS)
    annotate = doc.get("annotate")
    if annotate is not None and (not isinstance(annotate, str) or not annotate.strip()):
        p.add(
            ("annotate",),
            "'annotate' must be a command text, e.g. python -u predict.py --images {{inputs.images}} "
            "--model {{inputs.model}} --out {{output}}/annotations.json (or leave it out)",
        )
        annotate = None
    elif annotate is not None:
        _check_command(p, "annotate", annotate, params, ANNOTATE_INPUTS)
    shell = doc.get("shell", False)
    if not isinstance(shell, bool):
        p.add(("shell",), "shell must be true (run the commands with /bin/sh, values quoted) or false")
        shell = False
    # dump format
    fmt = dump_format_id(doc.get("dump_format"))
    if fmt is None:
        p.add(
            ("dump_format",) if "dump_format" in doc else (),
            f"dump_format {doc.get('dump_format')!r} is not a known format; use one of {', '.join(DUMP_FORMATS)} (or {', '.join(OUR_FORMATS)})",
        )
    # code
    code = doc.get("code")
    git = rev = folder = None
    if not isinstance(code, dict):
        p.add(("code",) if "code" in doc else (), "'code' must be a mapping with git (and revision) or path")
    else:
        for k in code:
            if k not in CODE_KEYS:
                p.add(("code", k), f"unknown code key {str(k)[:60]!r}; use git and revision, or path")
        git, rev, folder = _text(code, "git"), _text(code, "revision"), _text(code, "path")
        if (git is None) == (folder is None):
            p.add(("code",), "code needs exactly one of 'git' (a repository URL or path) and 'path' (a folder)")
        if folder is not None:
            folder = str(_local(folder, path))
            if not Path(folder).is_dir():
                p.add(("code", "path"), f"code path {folder} does not exist (or is not a folder)")
            if rev is not None:
                p.add(("code", "revision"), "'revision' applies to git code only")
        if rev is not None and rev.startswith("-"):
            p.add(("code", "revision"), f"revision {rev[:60]!r} cannot start with '-': give a branch, tag or commit")
        if git is not None:
            local = _git_local(git, path)
            if local is not None:
                if not Path(local).exists():
                    p.add(("code", "git"), f"the repository {local} does not exist")
                git = local if not git.startswith("file://") else git
    # environment
    env = doc.get("environment") or {}
    requirements = python = None
    site = False
    if not isinstance(env, dict):
        p.add(("environment",), "'environment' must be a mapping with requirements or python")
    else:
        for k in env:
            if k not in ENV_KEYS:
                p.add(("environment", k), f"unknown environment key {str(k)[:60]!r}; use {', '.join(sorted(ENV_KEYS))}")
        requirements, python = _text(env, "requirements"), _text(env, "python")
        site = env.get("system_site_packages", False)
        if not isinstance(site, bool):
            p.add(("environment", "system_site_packages"), "system_site_packages must be true or false")
            site = False
        if requirements and python:
            p.add(
                ("environment",),
                "give either 'requirements' (a venv is made) or 'python' (an existing interpreter), not both",
            )
        if requirements and (os.path.isabs(requirements) or ".." in Path(requirements).parts):
            p.add(("environment", "requirements"), f"requirements {requirements!r} must be a path inside the code")
        if python and not (
            os.path.isfile(os.path.expanduser(python)) and os.access(os.path.expanduser(python), os.X_OK)
        ):
            p.add(("environment", "python"), f"python {python!r} is not an executable file")
    # outputs
    outputs = doc.get("outputs") or {}
    model = None
    classes = "classes.csv"
    if not isinstance(outputs, dict):
        p.add(("outputs",), "'outputs' must be a mapping with model (a glob) and classes")
    else:
        for k in outputs:
            if k not in OUTPUT_KEYS:
                p.add(("outputs", k), f"unknown outputs key {str(k)[:60]!r}; use model and classes")
        model, classes = _text(outputs, "model"), _text(outputs, "classes") or "classes.csv"
        for k, v in (("model", model), ("classes", classes)):
            if v and (v.startswith("/") or ".." in v.split("/")):
                p.add(
                    ("outputs", k), f"outputs.{k} {v!r} must be a path inside the output folder (no '/' start, no '..')"
                )
    p.raise_any()
    return CustomSpec(
        command=command.strip(),
        dump_format=fmt or "coco",
        code_git=git,
        code_revision=rev,
        code_path=folder,
        requirements=requirements,
        python=os.path.expanduser(python) if python else None,
        system_site_packages=site,
        parameters=params,
        number_parameters=tuple(numbers),
        output_model=model,
        output_classes=classes,
        annotate=annotate.strip() if annotate else None,
        shell=shell,
    )


def _check_command(p: _Problems, key: str, text: str, params: dict, inputs: tuple[str, ...]) -> None:
    """Problems of the command ``text`` (template key ``key``): words it cannot be split
    into, placeholders naming no parameter, input or output."""
    try:
        shlex.split(text)
    except ValueError as e:
        p.add((key,), f"the {key} command cannot be split into words ({e}): check its quotes")
    names = " or ".join(f"{{{{inputs.{n}}}}}" for n in inputs)
    for ref in placeholders(text):
        kind, _, name = ref.partition(".")
        if kind == "parameters" and name not in params:
            p.add((key,), f"{{{{{ref}}}}} names no parameter; declared: {', '.join(params) or 'none'}")
        elif kind == "inputs" and name not in inputs:
            p.add((key,), f"{{{{{ref}}}}} is not an input of {key}; use {names}")
        elif kind not in ("parameters", "inputs") and ref != "output":
            p.add(
                (key,),
                f"unknown placeholder {{{{{ref[:60]}}}}}; use {', '.join('inputs.' + n for n in inputs)}, "
                "output or parameters.<name>",
            )


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _local(folder: str, template_path: Path) -> Path:
    """A local path of a template, relative to the template's folder when not absolute."""
    p = Path(os.path.expanduser(folder))
    return p if p.is_absolute() else (template_path.parent / p).resolve()


def _git_local(url: str, template_path: Path) -> str | None:
    """The local path a git location names (``file://`` URL or a path), None for a remote URL."""
    if url.startswith("file://"):
        return url[len("file://") :]
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", url) or re.match(r"^[^/]+@[^/]+:", url):
        return None
    return str(_local(url, template_path))


# ---- the values of a run ---------------------------------------------------------------------
def parameter_values(custom: CustomSpec, given: Any) -> dict[str, str]:
    """The parameter values of a run: the template's defaults under ``given`` (a dict
    ``{name: value}`` from a form or a spec, ``name: value`` YAML lines, or a list of
    those, later ones winning, as the CLI's ``--hp`` gives; None = all defaults). Values are
    texts. Raises ValueError naming an unknown parameter, a value that is not a number
    for an ``input.number`` parameter, or one too long (over 4096 characters)."""
    values = dict(custom.parameters)
    if given in (None, "", [], {}):
        return values
    merged: dict = {}
    for part in given if isinstance(given, list) else [given]:
        if isinstance(part, str):  # "name: value" lines (the CLI's --hp)
            try:
                part = yaml.safe_load(part) if part.strip() else {}
            except yaml.YAMLError:
                part = None
        if not isinstance(part, dict):
            raise ValueError("parameters: expected {name: value} (or 'name: value' lines) for a custom template")
        merged.update(part)
    for k, v in merged.items():
        if k not in values:
            raise ValueError(f"unknown parameter {str(k)[:60]!r}; this template has {', '.join(values) or 'none'}")
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise ValueError(f"parameter {k!r}: expected a text or a number, got {type(v).__name__}")
        text = str(v)
        if len(text) > MAX_VALUE_CHARS or "\0" in text:
            raise ValueError(f"parameter {k!r}: a value has at most {MAX_VALUE_CHARS} characters and no NUL")
        if k in custom.number_parameters and text.strip() and not _is_number(text.strip()):
            raise ValueError(f"parameter {k!r} must be a number, got {text[:60]!r}")
        values[k] = text.strip() if k in custom.number_parameters else text
    return values


def render_command(custom: CustomSpec, values: dict[str, str], inputs: dict[str, str], output: str) -> list[str]:
    """The argv of the training command (see :func:`render`). ``inputs``: {"dataset":
    path, "checkpoint": path or ""}; ``output``: the output folder."""
    return render(custom, custom.command, values, inputs, output)


def render_annotate(custom: CustomSpec, values: dict[str, str], inputs: dict[str, str], output: str) -> list[str]:
    """The argv of the template's annotate command (see :func:`render`). ``inputs``:
    {"images": folder, "model": the custom run's output folder}; ``output``: the folder
    it writes its COCO JSON into. Raises ValueError when the template has none."""
    if not custom.annotate:
        raise ValueError("the template has no annotate command")
    return render(custom, custom.annotate, values, inputs, output)


def render(custom: CustomSpec, text: str, values: dict[str, str], inputs: dict[str, str], output: str) -> list[str]:
    """The argv that runs the command ``text`` with its placeholders filled in.

    Without ``custom.shell``: the words of ``text`` (:func:`shlex.split`), then each
    placeholder replaced inside its word, so every value stays part of one argument
    whatever it holds (``1; rm -rf ~`` is one argument, never a command). With it:
    ``["/bin/sh", "-c", TEXT]`` where each placeholder became its value quoted with
    :func:`shlex.quote`, so the shell reads every value as one word, never as syntax."""
    table = {f"parameters.{k}": v for k, v in values.items()}
    table.update({f"inputs.{k}": v for k, v in inputs.items()})
    table["output"] = output
    if custom.shell:
        return ["/bin/sh", "-c", _PLACEHOLDER.sub(lambda m: shlex.quote(table.get(m.group(1), "")), text)]

    def fill(m: re.Match) -> str:
        return table.get(m.group(1), "")

    return [_PLACEHOLDER.sub(fill, word) for word in shlex.split(text)]


def read_run_info(folder: Path | str) -> dict | None:
    """The :data:`RUN_INFO` record a custom run left in its output folder ``folder``
    (template, labels, parameters, code folder, ...), or None when there is none (a
    built-in model folder) or it is not a JSON object."""
    import json

    path = Path(folder) / RUN_INFO
    if not path.is_file():
        return None
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) and info.get("kind") == "custom" else None
