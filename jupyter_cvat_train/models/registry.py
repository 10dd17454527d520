"""Model families, builders and frameworks: what a catalog template builds on.

A template (YAML, see :mod:`.catalog`) names a ``family``, a ``builder`` and its
``weights``. The family (:class:`ModelFamily`) holds what the code needs to know about
a kind of model: its framework, how to build it, the state_dict prefixes to rebuild
when the labels change, its limits, and the hyperparameters it accepts beyond the
common ones. A framework (:class:`Framework`) trains a checked plan; training and
annotation get it from the family (``family.framework``), never from a name.

Nothing here imports torch: callables may be given as ``"module:function"`` strings,
imported on first use. The torchvision families are registered below from a table;
a package adds its own with :func:`register_family` / :func:`register_builder` /
:func:`register_framework`, either when imported or from an entry point in the group
``jupyter_cvat_train.models`` (a callable that registers, or a module that registers
when imported; loaded on the first lookup). docs/architecture.md ("Adding a model family") has worked examples.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .schema import KEYS, NUM_STEPS_PER_EPOCH, HyperparameterError, Key

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "jupyter_cvat_train.models"
# Frameworks whose implementation needs a pip extra (registered only when it is installed):
# the extra their error message names.
FRAMEWORK_EXTRAS = {"tensorflow": "tf"}
TF_MODULES = ("tensorflow", "keras", "keras_hub")
TF_INSTALL_HINT = (
    "pip install -c requirements/constraints.txt 'jupyter_cvat_train[tf]' && "
    "pip install -c requirements/constraints.txt --no-deps keras-hub (or run `make setup`)"
)


def tf_missing_modules() -> list[str]:
    """The modules of the tf extra that are not installed, found without importing them
    (a broken or blocked one counts as missing)."""
    missing = []
    for m in TF_MODULES:
        try:
            found = importlib.util.find_spec(m) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(m)
    return missing


class UnknownFamily(LookupError):
    """No family of this name is registered; the message lists those that are."""


class UnknownBuilder(LookupError):
    """A builder name that is neither registered nor a torchvision ``get_model`` name."""


class FrameworkUnavailable(LookupError):
    """No implementation of this framework is registered; the message says what to install."""


def resolve(obj: str | Callable) -> Callable:
    """The callable ``obj`` names: itself, or ``"package.module:attribute"`` imported now."""
    if callable(obj):
        return obj
    module, _, attr = str(obj).partition(":")
    return getattr(importlib.import_module(module), attr)


@dataclass(frozen=True)
class ModelFamily:
    """One kind of model (e.g. torchvision's Faster R-CNN).

    name: what templates write as ``family:``.
    build: ``(template, num_classes, params) -> model`` (or ``"module:function"``):
        num_classes counts the background (labels + 1); params are the parsed
        hyperparameters, every key filled in. It builds with random weights.
    framework: the :class:`Framework` that trains and runs the model ("pytorch").
    tasks: the template tasks it serves ("detection", "instance-segmentation").
    head_prefixes: state_dict key prefixes whose shapes depend on the number of
        classes: left initialized when fine-tuning on other labels.
    hyperparameters: keys beyond the common ones that apply (names in
        :data:`.schema.KEYS`, or in ``extra_keys`` for keys only this family has).
    min_image_size, min_batch_size (+ its reason), max_labels: limits checked when
        the hyperparameters are parsed (labels: when a run is planned). None = no limit.
    check: optional ``(template) -> None`` (or ``"module:function"``) run when a run is
        planned; raises ValueError naming what in the template cannot be built.
    num_steps_per_epoch: True when ``num_steps`` counts the optimizer steps of one epoch
        (Onepanel's Mask R-CNN form) instead of the whole run (its TFOD forms, the default);
        the key's help then says so (:data:`.schema.NUM_STEPS_PER_EPOCH`).
    """

    name: str
    build: str | Callable[..., Any]
    framework: str = "pytorch"
    tasks: tuple[str, ...] = ("detection",)
    head_prefixes: tuple[str, ...] = ()
    hyperparameters: tuple[str, ...] = ()
    extra_keys: Mapping[str, Key] = field(default_factory=dict)
    min_image_size: int | None = None
    min_batch_size: int = 1
    min_batch_size_reason: str = ""
    max_labels: int | None = None
    check: str | Callable[..., None] | None = None
    num_steps_per_epoch: bool = False

    def keys(self) -> dict[str, Key]:
        """The hyperparameters this family accepts: the common keys plus its own."""
        out = {k: spec for k, spec in KEYS.items() if spec.common}
        if self.num_steps_per_epoch:
            out["num_steps"] = NUM_STEPS_PER_EPOCH
        for k in self.hyperparameters:
            out[k] = self.extra_keys.get(k) or KEYS[k]
        return out

    def check_limits(self, params: Mapping, template_name: str, valid: list[str]) -> None:
        """Raise HyperparameterError when ``params`` (the user's values) break a limit."""
        size, bs = params.get("image_size"), params.get("batch_size")
        if size is not None and self.min_image_size and size < self.min_image_size:
            raise HyperparameterError(
                f"image_size must be >= {self.min_image_size} for {template_name}, got {size}", valid
            )
        if bs is not None and bs < self.min_batch_size:
            why = f" ({self.min_batch_size_reason})" if self.min_batch_size_reason else ""
            raise HyperparameterError(
                f"batch_size must be >= {self.min_batch_size} for {template_name}{why}, got {bs}", valid
            )

    def builder(self) -> Callable[..., Any]:
        """The build callable (imported on first use when given as a string)."""
        return resolve(self.build)


@dataclass(frozen=True)
class Framework:
    """A way to train (and run) models: ``train(plan, ctx) -> outputs`` (or
    ``"module:function"``) runs a checked :class:`jupyter_cvat_train.training.plan.Plan`
    in the job process and returns the job outputs (model_dir, map, map_50, best_epoch,
    epochs, message). At the annotation boundary a framework returns plain numpy arrays
    (``annotate.engine.Detections``: boxes (N, 4) float32 xyxy pixels, scores, labels)."""

    name: str
    train: str | Callable[..., dict]
    # Optional checkpoint readers for a framework whose checkpoints are not torch .pt files
    # (None: training.plan's own). resume: (spec, output_dir, template) -> (state dict, path)
    # | (None, None); finetune: (spec, template, labels, params) -> source | None. Both raise
    # JobError naming the path and the fix.
    resume: str | Callable[..., tuple] | None = None
    finetune: str | Callable[..., Any] | None = None

    def trainer(self) -> Callable[..., dict]:
        """The train callable (imported on first use when given as a string)."""
        return resolve(self.train)


_lock = threading.RLock()
_families: dict[str, ModelFamily] = {}
_builders: dict[str, str | Callable] = {}
_frameworks: dict[str, Framework] = {}
_plugins_loaded = False


def _register(table: dict, name: str, value, what: str, replace: bool):
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a {what} needs a non-empty name, got {name!r}")
    with _lock:
        if name in table and not replace and table[name] is not value:
            raise ValueError(f"a {what} named {name!r} is already registered (pass replace=True to replace it)")
        table[name] = value
    return value


def register_family(family: ModelFamily, *, replace: bool = False) -> ModelFamily:
    """Add ``family`` to the registry (templates then name it as ``family:``).
    Raises ValueError when the name is taken (unless ``replace``) or names an unknown
    hyperparameter."""
    unknown = [k for k in family.hyperparameters if k not in KEYS and k not in family.extra_keys]
    if unknown:
        raise ValueError(f"family {family.name!r} lists unknown hyperparameters {unknown}: define them in extra_keys")
    return _register(_families, family.name, family, "model family", replace)


def register_builder(name: str, fn: str | Callable, *, replace: bool = False) -> str | Callable:
    """Add a model builder with torchvision's builder signature
    ``fn(*, weights=None, weights_backbone=None, num_classes, **kwargs) -> nn.Module``
    (or ``"module:function"``), for templates to name as ``builder:``. A registered
    name wins over a torchvision model of the same name."""
    return _register(_builders, name, fn, "model builder", replace)


def register_framework(framework: Framework, *, replace: bool = False) -> Framework:
    """Add a framework implementation (see :class:`Framework`)."""
    return _register(_frameworks, framework.name, framework, "framework", replace)


def _load_plugins() -> None:
    """Run the ``jupyter_cvat_train.models`` entry points once; a failing one is logged
    (naming it) and skipped."""
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            obj = ep.load()
            if callable(obj):
                obj()
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the catalog
            log.warning(
                "cvat-train: model plugin %r (%s) failed to load and was skipped: %s: %s",
                ep.name,
                ep.value,
                type(e).__name__,
                e,
            )


def find_family(name: str) -> ModelFamily | None:
    """The registered family called ``name``, or None."""
    _load_plugins()
    return _families.get(name)


def get_family(name: str) -> ModelFamily:
    """The registered family called ``name``. Raises :class:`UnknownFamily` listing the names."""
    fam = find_family(name)
    if fam is None:
        raise UnknownFamily(
            f"model family {name!r} is not registered; registered families: {', '.join(sorted(_families))}"
        )
    return fam


def list_families() -> list[ModelFamily]:
    """Every registered family, by name."""
    _load_plugins()
    return [_families[k] for k in sorted(_families)]


def get_builder(name: str) -> Callable:
    """The builder called ``name``: a registered one, else torchvision's
    ``torchvision.models.get_model_builder(name)`` (imports torchvision). Raises
    :class:`UnknownBuilder` listing the registered and torchvision detection names."""
    _load_plugins()
    if name in _builders:
        return resolve(_builders[name])
    import torchvision.models
    from torchvision.models import detection

    try:
        return torchvision.models.get_model_builder(name)
    except ValueError:
        known = sorted(_builders) + torchvision.models.list_models(module=detection)
        raise UnknownBuilder(
            f"builder {name!r} is neither a registered builder nor a torchvision model; "
            f"detection builders: {', '.join(known)}"
        ) from None


def get_framework(name: str) -> Framework:
    """The framework implementation called ``name``. Raises :class:`FrameworkUnavailable`
    whose message names the pip extra to install (:data:`FRAMEWORK_EXTRAS`)."""
    _load_plugins()
    fw = _frameworks.get(name)
    if fw is not None:
        return fw
    have = ", ".join(sorted(_frameworks))
    extra = FRAMEWORK_EXTRAS.get(name)
    if name == "tensorflow":
        raise FrameworkUnavailable(
            f"framework tensorflow needs the `tf` extra ({', '.join(tf_missing_modules()) or 'its modules'} not "
            f"installed; frameworks here: {have}): {TF_INSTALL_HINT}"
        )
    if extra:
        raise FrameworkUnavailable(
            f"framework {name} needs the `{extra}` extra: pip install jupyter_cvat_train[{extra}], and a package "
            f"that registers the {name} framework (none is installed; frameworks here: {have})"
        )
    raise FrameworkUnavailable(
        f"framework {name!r} is not implemented here (frameworks here: {have}): install the "
        f"package that registers it, or use framework: pytorch"
    )


# ---- the torchvision families, from data ---------------------------------------------------
_TV = "jupyter_cvat_train.models.builders:"
_RCNN_KEYS = ("max_proposals",)
_STAGE_KEYS = ("stage_1_epochs", "stage_2_epochs", "stage_3_epochs")
TORCHVISION_FAMILIES = [
    dict(
        name="ssdlite",
        build="build_ssd",
        head_prefixes=("head.classification_head.",),
        min_batch_size=2,
        min_batch_size_reason="batch norm in its last, 1x1 feature maps needs two images per step",
    ),
    dict(
        name="ssd", build="build_ssd", head_prefixes=("head.classification_head.",), min_image_size=280
    ),  # SSD300's VGG extra layers fail below ~280 px
    dict(
        name="fasterrcnn", build="build_rcnn", head_prefixes=("roi_heads.box_predictor.",), hyperparameters=_RCNN_KEYS
    ),
    dict(
        name="maskrcnn",
        build="build_rcnn",
        tasks=("instance-segmentation",),
        head_prefixes=("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."),
        hyperparameters=_RCNN_KEYS + _STAGE_KEYS,
        num_steps_per_epoch=True,  # Onepanel's Mask R-CNN form: "num_steps: 1000 # Num steps per epoch"
    ),
    dict(name="retinanet", build="build_dense", head_prefixes=("head.classification_head.cls_logits.",)),
    dict(name="fcos", build="build_dense", head_prefixes=("head.classification_head.cls_logits.",)),
]
for _row in TORCHVISION_FAMILIES:
    register_family(ModelFamily(**{**_row, "build": _TV + _row["build"], "check": _TV + "check_torchvision_template"}))
register_builder("fasterrcnn_resnet101_fpn", _TV + "fasterrcnn_resnet101_fpn")
register_framework(Framework("pytorch", "jupyter_cvat_train.training.job:train_pytorch"))

# ---- the TensorFlow family: KerasHub RetinaNet (models/keras_retinanet.py, training/tf_engine.py) ----
# The framework is registered only when the tf extra is installed (found without importing
# TensorFlow), so a TF template elsewhere says which extra to install (get_framework).
_KERAS = "jupyter_cvat_train.models.keras_retinanet:"


register_family(
    ModelFamily(
        name="keras-retinanet",
        build=_KERAS + "build_retinanet",
        framework="tensorflow",
        min_image_size=64,
        check=_KERAS + "check_template",
    )
)
if not tf_missing_modules():
    _TFC = "jupyter_cvat_train.training.tf_checkpoints:"
    register_framework(
        Framework(
            "tensorflow",
            "jupyter_cvat_train.training.tf_engine:train_tensorflow",
            resume=_TFC + "resume_checkpoint",
            finetune=_TFC + "finetune_source",
        )
    )
