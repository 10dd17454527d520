"""The model catalog: one YAML template per model, from a search path of folders.

A template uses Onepanel's parameter schema, plus what to build::

    name, displayName, description, task (detection | instance-segmentation),
    framework (pytorch), family (a registered ModelFamily: ssdlite | ssd | fasterrcnn |
    retinanet | fcos | maskrcnn, or a plugin's), builder (torchvision's get_model name
    or a registered builder), weights (a torchvision weights name that fills the whole
    model, e.g. SSDLite320_MobileNet_V3_Large_Weights.COCO_V1) and/or weights_backbone
    (fills backbone.body), frozen_batchnorm_when_pretrained (bool),
    parameters: [{name, value, displayName, type, visibility, hint, options, required}]

A template that names ``code`` and a ``command`` instead of a family is a *custom* one: the
user's own training code, checked by :mod:`.custom` (``Template.custom``) and run by
:mod:`jupyter_cvat_train.custom`.

Two parameters matter to training: ``epochs`` (empty = derived from the data) and
``hyperparameters`` (a textarea whose value holds the template's defaults as YAML).

The search path: the built-in ``models/templates/``, then ``<root_dir>/cvat-train-templates``
(the server's root; the CLI's current folder), ``<jupyter config dir>/cvat-train-templates``
and the folders of ``CVAT_TRAIN_TEMPLATE_PATH`` (``os.pathsep``-separated). A user file
that is broken, or whose name is taken (a built-in's or an earlier folder's), is skipped
with a warning naming the file; it never breaks the catalog. Files are re-read when they
change.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from . import registry
from .custom import CustomSpec, CustomTemplateError, is_custom, parse_custom
from .schema import KEYS, HyperparameterError, Key, coerce, normalize_key

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).with_name("templates")
USER_TEMPLATES_DIRNAME = "cvat-train-templates"
TEMPLATE_PATH_ENV = "CVAT_TRAIN_TEMPLATE_PATH"
# The user folders configured in this process, handed to the job processes it starts.
_CONFIGURED_ENV = "CVAT_TRAIN_TEMPLATE_DIRS"
DEFAULT_TEMPLATE = "ssdlite320-mobilenet-v3"
TASKS = ("detection", "instance-segmentation")
MAX_TEMPLATE_BYTES = 256 * 1024
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


class TemplateNotFound(KeyError):
    """No template has this name; the message lists the names that exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class TemplateError(ValueError):
    """A template file that cannot be used as a template; the message names the file."""


class TemplateUnavailable(ValueError):
    """A template whose framework, family or builder is not available here; the message
    names the template, its file, what is missing and the fix."""


@dataclass
class Template:
    """One catalog entry, as read from its YAML file.

    defaults: the hyperparameters of the template's ``hyperparameters`` textarea merged
        with its ``epochs`` parameter (None when empty), parsed to Python values.
    raw: the YAML document as loaded (what ``cvat-train models --json`` and the REST API show).
    builtin: shipped with the package (False: from a user folder of the search path).
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
    builder: str | None = None
    weights: str | None = None
    weights_backbone: str | None = None
    frozen_batchnorm_when_pretrained: bool = False
    builtin: bool = True
    custom: CustomSpec | None = None  # a custom template (the user's code and command, models/custom.py)

    @property
    def where(self) -> str:
        """The template's name and file, for messages."""
        return f"template {self.name}" + (f" ({self.path})" if self.path and not self.builtin else "")

    def keys(self) -> dict[str, Key]:
        """The hyperparameters this template accepts: its family's (every known key
        when the family is not registered here; none for a custom template)."""
        if self.custom is not None:
            return {}
        fam = registry.find_family(self.family)
        return fam.keys() if fam is not None else dict(KEYS)

    def to_dict(self) -> dict:
        """The template as a JSON-able dict in Onepanel's schema, plus ``defaults``, the
        valid hyperparameter keys (``hyperparameter_keys``: name -> {type, help, choices}),
        ``source`` (built-in or the file) and ``unavailable`` (None, or why it cannot run here)."""
        out = dict(self.raw)
        out["defaults"] = dict(self.defaults)
        out["hyperparameter_keys"] = describe_keys(self.keys(), self.defaults)
        out["source"] = "built-in" if self.builtin else str(self.path)
        if self.custom is not None:
            out["family"] = "custom"
        try:
            check_template(self)
            out["unavailable"] = None
        except TemplateUnavailable as e:
            out["unavailable"] = str(e)
        return out


def describe_keys(keys: dict[str, Key], defaults: dict) -> dict[str, dict]:
    """JSON-able description of ``keys``: name -> {type, default, help, choices?, min?, max?}."""
    out = {}
    for k in sorted(keys):
        spec = keys[k]
        d = {"type": spec.type.__name__, "default": defaults.get(k, spec.default), "help": spec.help}
        for attr in ("choices", "min", "max"):
            if getattr(spec, attr) is not None:
                d[attr] = list(spec.choices) if attr == "choices" else getattr(spec, attr)
        out[k] = d
    return out


def _str_field(doc: dict, key: str, path: Path, default=None, required: bool = False) -> str | None:
    v = doc.get(key, default)
    if v is None and not required:
        return None
    if not isinstance(v, str) or not v.strip():
        raise TemplateError(f"{path}: '{key}' must be a non-empty text" + (" (it is required)" if required else ""))
    return v.strip()


def _read_yaml(path: Path) -> dict:
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateError(f"{path}: {size} bytes is too large for a template (at most {MAX_TEMPLATE_BYTES})")
        text = path.read_text(encoding="utf-8")
        if any(isinstance(tok, yaml.AliasToken) for tok in yaml.scan(text)):
            raise TemplateError(f"{path}: YAML aliases (*name) are not allowed in a template")
        doc = yaml.safe_load(text)
    except TemplateError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise TemplateError(
            f"{path}: not valid YAML ({where}{getattr(e, 'problem', None) or 'cannot be parsed'})"
        ) from None
    if not isinstance(doc, dict):
        raise TemplateError(f"{path}: a template needs a YAML mapping with a 'name'")
    return doc


def load_template(path: Path | str, *, builtin: bool = False) -> Template:
    """Read and check one template file. Raises :class:`TemplateError` naming the file
    and the problem (unreadable, not YAML, a missing or wrong field, bad defaults)."""
    path = Path(path)
    doc = _read_yaml(path)
    name = _str_field(doc, "name", path, required=True)
    if not _NAME_RE.match(name):
        raise TemplateError(f"{path}: name {name[:100]!r} must be 1-100 letters, digits, '.', '_' or '-'")
    if is_custom(doc):
        return _custom_template(doc, name, path, builtin)
    family = _str_field(doc, "family", path, required=True)
    framework = _str_field(doc, "framework", path, default="pytorch")
    task = doc.get("task", "detection")
    if task not in TASKS:
        raise TemplateError(f"{path}: task must be one of {', '.join(TASKS)}, got {task!r}")
    params = doc.get("parameters") or []
    if not isinstance(params, list) or not all(isinstance(p, dict) for p in params):
        raise TemplateError(f"{path}: 'parameters' must be a list of mappings (name, value, type, ...)")
    raw_defaults: dict = {}
    for p in params:
        if p.get("name") == "hyperparameters":
            try:
                parsed = yaml.safe_load(str(p.get("value") or "")) or {}
            except yaml.YAMLError:
                parsed = None
            if not isinstance(parsed, dict):
                raise TemplateError(f"{path}: the hyperparameters value must be a YAML mapping (key: value lines)")
            raw_defaults.update(parsed)
        elif p.get("name") == "epochs":
            raw_defaults["epochs"] = str(p.get("value") or "").strip() or None
    frozen = doc.get("frozen_batchnorm_when_pretrained", False)
    if not isinstance(frozen, bool):
        raise TemplateError(f"{path}: frozen_batchnorm_when_pretrained must be true or false")
    t = Template(
        name=name,
        display_name=str(doc.get("displayName") or name),
        framework=framework,
        family=family,
        task=task,
        description=" ".join(str(doc.get("description", "")).split()),
        parameters=params,
        path=path,
        raw=doc,
        builder=_str_field(doc, "builder", path),
        weights=_str_field(doc, "weights", path),
        weights_backbone=_str_field(doc, "weights_backbone", path),
        frozen_batchnorm_when_pretrained=frozen,
        builtin=builtin,
    )
    keys = t.keys()
    for k, v in raw_defaults.items():
        nk = normalize_key(k)
        if nk not in keys:
            raise TemplateError(
                f"{path}: unknown hyperparameter {k!r} in its defaults for family {family}; "
                f"valid keys: {', '.join(sorted(keys))}"
            )
        try:
            t.defaults[nk] = coerce(nk, v, keys[nk], []) if v is not None else None
        except HyperparameterError as e:
            raise TemplateError(f"{path}: hyperparameter defaults: {e}") from None
    if not (t.weights or t.weights_backbone):
        t.defaults.setdefault("pretrained", False)  # nothing to start from
    return t


def _custom_template(doc: dict, name: str, path: Path, builtin: bool) -> Template:
    """A custom template (``command`` / ``code``, see :mod:`.custom`); TemplateError
    listing each problem as ``file:line: message``."""
    task = doc.get("task", "detection")
    try:
        custom = parse_custom(doc, path, path.read_text(encoding="utf-8"))
    except CustomTemplateError as e:
        raise TemplateError(str(e)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise TemplateError(f"{path}: cannot be read ({type(e).__name__}: {e})") from None
    if task not in TASKS:
        raise TemplateError(f"{path}: task must be one of {', '.join(TASKS)}, got {task!r}")
    return Template(
        name=name,
        display_name=str(doc.get("displayName") or name),
        framework=str(doc.get("framework") or "custom"),
        family="custom",
        task=task,
        description=" ".join(str(doc.get("description", "")).split()),
        parameters=list(doc.get("parameters") or []),
        path=path,
        raw=doc,
        builtin=builtin,
        custom=custom,
    )


# ---- the search path ------------------------------------------------------------------------
def _jupyter_config_dir() -> Path | None:
    try:
        from jupyter_core.paths import jupyter_config_dir
    except ImportError:
        return None
    return Path(jupyter_config_dir())


def _unique(dirs: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for d in dirs:
        d = Path(d).expanduser()
        if d not in out:
            out.append(d)
    return out


def user_template_dirs(root_dir: Path | str | None = None) -> list[Path]:
    """The user folders of the search path, in order: ``<root_dir>/cvat-train-templates``
    (when given), ``<jupyter config dir>/cvat-train-templates``, then the folders of
    ``CVAT_TRAIN_TEMPLATE_PATH``. Folders that do not exist are kept (and skipped when read)."""
    dirs = [Path(root_dir) / USER_TEMPLATES_DIRNAME] if root_dir else []
    cfg = _jupyter_config_dir()
    if cfg is not None:
        dirs.append(cfg / USER_TEMPLATES_DIRNAME)
    dirs += [Path(p) for p in os.environ.get(TEMPLATE_PATH_ENV, "").split(os.pathsep) if p.strip()]
    return _unique(dirs)


def configure_search_path(root_dir: Path | str | None = None, dirs: Sequence[Path | str] | None = None) -> list[Path]:
    """Set this process's user template folders: ``dirs`` when given, else
    :func:`user_template_dirs` of ``root_dir``. They are also put into the environment
    (``CVAT_TRAIN_TEMPLATE_DIRS``), so the job processes started from here read the same
    catalog. Returns the folders. The server calls it with its root_dir, the CLI with
    the current folder."""
    folders = _unique(dirs) if dirs is not None else user_template_dirs(root_dir)
    os.environ[_CONFIGURED_ENV] = os.pathsep.join(str(d) for d in folders)
    return folders


def search_path() -> list[Path]:
    """The user template folders of this process: the configured ones
    (:func:`configure_search_path`, here or in the process that started this one), else
    :func:`user_template_dirs` without a root folder."""
    configured = os.environ.get(_CONFIGURED_ENV)
    if configured is not None:
        return [Path(p) for p in configured.split(os.pathsep) if p]
    return user_template_dirs(None)


@lru_cache(maxsize=1)
def _builtin() -> dict[str, Template]:
    out = {}
    for path in sorted(TEMPLATES_DIR.glob("*.yaml")):
        t = load_template(path, builtin=True)
        out[t.name] = t
    return out


_file_cache: dict[Path, tuple[tuple, Template | str]] = {}
_warned: set[str] = set()
_cache_lock = threading.Lock()


def _warn_once(message: str) -> None:
    """Log that a template file was skipped, once per message in this process."""
    with _cache_lock:
        if message in _warned:
            return
        _warned.add(message)
    log.warning("cvat-train: template file skipped: %s", message)


def _user_file(path: Path) -> Template | str:
    """The template in ``path`` or the problem with it, re-read when the file changes."""
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError as e:
        return f"{path}: cannot be read ({e.strerror or e})"
    with _cache_lock:
        hit = _file_cache.get(path)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    try:
        result: Template | str = load_template(path)
    except TemplateError as e:
        result = str(e)
        _warn_once(result)
    with _cache_lock:
        _file_cache[path] = (stamp, result)
    return result


@dataclass
class Catalog:
    """The templates found on a search path (name -> Template) and the files skipped
    (one message each, naming the file and the fix)."""

    templates: dict[str, Template]
    skipped: list[str]


def load_catalog(search_path_: Sequence[Path | str] | None = None) -> Catalog:
    """The built-in templates plus those of the user folders ``search_path_`` (default:
    :func:`search_path`), in order. A user file that is broken, or whose name a built-in
    or an earlier file already has, is skipped and reported in ``Catalog.skipped``."""
    templates = dict(_builtin())
    skipped: list[str] = []
    for folder in search_path() if search_path_ is None else [Path(p) for p in search_path_]:
        try:
            files = sorted(
                p for p in Path(folder).expanduser().iterdir() if p.suffix in (".yaml", ".yml") and p.is_file()
            )
        except FileNotFoundError:
            continue
        except OSError as e:
            skipped.append(f"{folder}: template folder cannot be read ({e.strerror or e})")
            continue
        for path in files:
            t = _user_file(path)
            if isinstance(t, str):
                skipped.append(t)
                continue
            have = templates.get(t.name)
            if have is not None:
                whose = "a built-in template's" if have.builtin else f"also in {have.path}, read first"
                msg = (
                    f"{path}: template name {t.name!r} is taken ({whose}); user templates cannot replace "
                    f"others: give it another name"
                )
                _warn_once(msg)
                skipped.append(msg)
                continue
            templates[t.name] = t
    return Catalog(templates, skipped)


def list_templates(search_path: Sequence[Path | str] | None = None) -> list[Template]:
    """All templates (built-in and from the user folders ``search_path``, default: this
    process's, see :func:`search_path`), the recommended default first, then by name."""
    cat = load_catalog(search_path).templates
    return sorted(cat.values(), key=lambda t: (t.name != DEFAULT_TEMPLATE, t.name))


def get_template(name: str | Template, search_path: Sequence[Path | str] | None = None) -> Template:
    """The template called ``name`` (a Template passes through), looked up in the built-in
    templates, then the user folders ``search_path`` (default: this process's).
    Raises TemplateNotFound (a KeyError) listing the valid names."""
    if isinstance(name, Template):
        return name
    builtin = _builtin()
    if isinstance(name, str) and name in builtin:
        return builtin[name]
    cat = load_catalog(search_path).templates
    try:
        return cat[name]
    except (KeyError, TypeError):
        raise TemplateNotFound(
            f"unknown model template {str(name)[:100]!r}; valid templates: {', '.join(sorted(cat))}"
        ) from None


def check_template(template: str | Template, *, deep: bool = False) -> registry.ModelFamily | None:
    """Check that ``template`` can run here: its framework is implemented, its family
    registered, of that framework and serving its task; with ``deep`` (when a run is
    planned; may import the framework) also the family's own check (for torchvision:
    the builder and weights exist). Returns the family (None for a custom template,
    whose framework is informational). Raises
    :class:`TemplateUnavailable` naming the template, its file, what is missing and the fix."""
    t = get_template(template)
    if t.custom is not None:
        return None  # the user's own code: checked when loaded, run by jupyter_cvat_train.custom
    try:
        registry.get_framework(t.framework)
    except registry.FrameworkUnavailable as e:
        raise TemplateUnavailable(f"{t.where} uses framework {t.framework!r}: {e}") from None
    fam = registry.find_family(t.family)
    if fam is None:
        known = ", ".join(f.name for f in registry.list_families())
        raise TemplateUnavailable(
            f"{t.where} names family {t.family!r}, which is not registered (families: {known}): "
            f"fix 'family:', or register the family (docs/architecture.md, 'Adding a model family')"
        )
    if fam.framework != t.framework:
        raise TemplateUnavailable(
            f"{t.where} says framework {t.framework!r}, but its family {fam.name} is a "
            f"{fam.framework} family: fix 'framework:' or 'family:'"
        )
    if t.task not in fam.tasks:
        raise TemplateUnavailable(
            f"{t.where} has task {t.task!r}, which family {fam.name} does not serve "
            f"({', '.join(fam.tasks)}): fix 'task:' or 'family:'"
        )
    if deep and fam.check is not None:
        try:
            registry.resolve(fam.check)(t)
        except ValueError as e:
            raise TemplateUnavailable(str(e)) from None
    return fam


def check_template_file(path: Path | str) -> Template:
    """Check one template file as the catalog would load it (``cvat-train template check``
    and the server's ``POST templates/check`` both use this): :func:`load_template`, and
    a name that a built-in template has, given from another file, is refused. Runs
    nothing and fetches nothing. Raises :class:`TemplateError` whose message has one
    ``FILE[:LINE]: problem`` line per problem."""
    t = load_template(path)
    builtin = _builtin().get(t.name)
    if builtin is not None and Path(path).resolve() != (builtin.path or Path()).resolve():
        raise TemplateError(f"{path}: template name {t.name!r} is a built-in template's: give it another name")
    return t


def preview_commands(t: Template) -> dict:
    """What a custom template would run, with its parameters' defaults and placeholder
    paths: ``{"command": argv, "annotate": argv or None, "shell": bool}``; ``{}`` for a
    template of a model family."""
    from .custom import parameter_values, render_annotate, render_command

    c = t.custom
    if c is None:
        return {}
    values = parameter_values(c, None)
    command = render_command(
        c, values, {"dataset": "<job>/data/datasets/" + c.dump_format, "checkpoint": ""}, "<job>/output"
    )
    annotate = (
        render_annotate(
            c, values, {"images": "<job>/data/images", "model": "<run>/output"}, "<job>/data/annotate-output"
        )
        if c.annotate
        else None
    )
    return {"command": command, "annotate": annotate, "shell": c.shell}
