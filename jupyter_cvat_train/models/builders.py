"""Build models from a template and its hyperparameters; the torchvision families.

``build_model`` dispatches on the template's family (:mod:`.registry`): the torchvision
families' build functions below call the template's ``builder`` (torchvision's
``get_model`` name or a registered builder) with random weights, so nothing is
downloaded. ``load_pretrained_weights`` then fills the model from the template's
``weights`` / ``weights_backbone`` in the torch hub cache
(``torch.hub.get_dir()/checkpoints``), downloading when online. The same (template,
num_classes, params) always gives the same architecture, so a saved state_dict loads
back (model.pt keeps all three).

Sources: torchvision.models.detection builders and their weights (COCO_V1 / IMAGENET1K_V2),
torchvision's detection reference scripts (fine-tuning by replacing the class heads).
"""

from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FasterRCNN
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from . import registry
from .catalog import Template, check_template, get_template
from .hyperparameters import parse_hyperparameters


class PretrainedWeightsUnavailable(RuntimeError):
    """torchvision's pretrained weights are neither in the torch hub cache nor downloadable.
    The message names the file, the folder to put it in, and suggests ``pretrained: false``."""


_RESNET_STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")


def __getattr__(name: str):
    if name == "CLASS_HEAD_PREFIXES":  # the families' head prefixes, for older callers
        return {f.name: f.head_prefixes for f in registry.list_families()}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _freeze_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d below ``module`` with FrozenBatchNorm2d (same state keys)."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            frozen = FrozenBatchNorm2d(child.num_features, eps=child.eps)
            setattr(module, name, frozen)
        else:
            _freeze_batchnorm(child)
    return module


def set_trainable_backbone_layers(model: nn.Module, trainable: int | None) -> None:
    """Freeze the backbone body except its last ``trainable`` stages (torchvision's
    ``trainable_backbone_layers``: ResNet stages layer4..layer1 then conv1; MobileNet's
    inverted-residual stages). None or >= the number of stages leaves all trainable.
    SSD backbones are left as they are."""
    body = getattr(getattr(model, "backbone", None), "body", None)
    if body is None or trainable is None:
        return
    names = [n for n, _ in body.named_children()]
    if "layer4" in names:  # ResNet
        keep = list(_RESNET_STAGES[:trainable]) + (["bn1"] if trainable >= 5 else [])
        for name, p in body.named_parameters():
            p.requires_grad_(name.split(".")[0] in keep)
        return
    blocks = list(body.children())  # MobileNetV3 features
    stages = [0] + [i for i, b in enumerate(blocks) if getattr(b, "_is_cn", False)] + [len(blocks) - 1]
    freeze_before = len(blocks) if trainable == 0 else stages[max(0, len(stages) - trainable)]
    for i, b in enumerate(blocks):
        for p in b.parameters():
            p.requires_grad_(i >= freeze_before)


def build_model(template_name: str | Template, num_classes: int, params: dict | None = None) -> nn.Module:
    """Build the model of ``template_name`` with random weights, through its family
    (:class:`.registry.ModelFamily`): ``family.build(template, num_classes, params)``.

    num_classes: labels + 1 (class 0 is background), >= 2.
    params: hyperparameters (any subset; parsed with :func:`parse_hyperparameters`, so
        the template's defaults fill the rest).

    Returns the model; for the torchvision families an ``nn.Module`` in train mode:
    called as ``model(images, targets)`` (list of CHW float tensors in [0, 1], targets
    with ``boxes`` xyxy pixels and ``labels`` int64) it returns a dict of losses; in eval
    mode ``model(images)`` returns per-image dicts with ``boxes`` (xyxy pixels of the
    input image), ``labels``, ``scores`` (and ``masks``, N x 1 x H x W probabilities,
    for Mask R-CNN).
    Raises TemplateNotFound, TemplateUnavailable (framework or family missing here),
    HyperparameterError, ValueError (num_classes < 2).
    """
    t = get_template(template_name)
    family = check_template(t)
    if num_classes < 2:
        raise ValueError(f"num_classes must count the background and at least one label, got {num_classes}")
    return family.builder()(t, num_classes, parse_hyperparameters(params or {}, t))


# ---- the torchvision families (registered in .registry) -------------------------------------
def _torchvision_builder(t: Template):
    if not t.builder:
        raise ValueError(
            f"{t.where} names no builder: add 'builder:' with a torchvision get_model name "
            f"(e.g. fasterrcnn_resnet50_fpn_v2) or a registered builder"
        )
    return registry.get_builder(t.builder)


def _rcnn_size(p: dict) -> dict:
    size = int(p["image_size"])
    return {"min_size": size, "max_size": max(size, round(size * 1333 / 800))}


def finish_torchvision_model(model: nn.Module, t: Template, p: dict) -> nn.Module:
    """The steps every torchvision family takes after building: frozen batch norm in the
    backbone when the template's pretrained weights expect it, and the trainable
    backbone stages (``trainable_backbone_layers``; 3 when pretrained, else all)."""
    if p["pretrained"] and t.frozen_batchnorm_when_pretrained:
        _freeze_batchnorm(model.backbone.body)
    tbl = p.get("trainable_backbone_layers")
    set_trainable_backbone_layers(model, (3 if p["pretrained"] else None) if tbl is None else tbl)
    return model


def build_ssd(t: Template, num_classes: int, p: dict) -> nn.Module:
    """SSD / SSDlite: the builder's model with a fixed square input of ``image_size``."""
    model = _torchvision_builder(t)(weights=None, weights_backbone=None, num_classes=num_classes)
    size = int(p["image_size"])
    old = model.transform
    model.transform = GeneralizedRCNNTransform(
        size, size, old.image_mean, old.image_std, size_divisible=1, fixed_size=(size, size)
    )
    model.detections_per_img = p["detections_per_img"]
    return finish_torchvision_model(model, t, p)


def build_rcnn(t: Template, num_classes: int, p: dict) -> nn.Module:
    """Faster / Mask R-CNN: short side ``image_size``, ``max_proposals`` kept at test time."""
    model = _torchvision_builder(t)(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        **_rcnn_size(p),
        box_detections_per_img=p["detections_per_img"],
        rpn_post_nms_top_n_test=p["max_proposals"],
        rpn_pre_nms_top_n_test=max(1000, p["max_proposals"]),
    )
    return finish_torchvision_model(model, t, p)


def build_dense(t: Template, num_classes: int, p: dict) -> nn.Module:
    """RetinaNet / FCOS: short side ``image_size``, ``detections_per_img``."""
    model = _torchvision_builder(t)(
        weights=None,
        weights_backbone=None,
        num_classes=num_classes,
        **_rcnn_size(p),
        detections_per_img=p["detections_per_img"],
    )
    return finish_torchvision_model(model, t, p)


def fasterrcnn_resnet101_fpn(*, weights=None, weights_backbone=None, num_classes: int = 91, **kwargs) -> nn.Module:
    """Faster R-CNN on a ResNet-101 FPN backbone (torchvision has no builder for it), with
    torchvision's builder signature. Builds with random weights only: the template's
    ``weights_backbone`` is loaded afterwards by :func:`load_pretrained_weights`."""
    if weights is not None or weights_backbone is not None:
        raise ValueError("fasterrcnn_resnet101_fpn builds with random weights; load_pretrained_weights fills them")
    backbone = resnet_fpn_backbone(
        backbone_name="resnet101", weights=None, norm_layer=nn.BatchNorm2d, trainable_layers=5
    )
    return FasterRCNN(backbone, num_classes=num_classes, **kwargs)


def check_torchvision_template(t: Template) -> None:
    """Plan-time check of a torchvision template: its builder and weights resolve.
    Raises ValueError naming the template and the field to fix."""
    try:
        _torchvision_builder(t)
    except registry.UnknownBuilder as e:
        raise ValueError(f"{t.where}: {e}") from None
    for key in ("weights", "weights_backbone"):
        name = getattr(t, key)
        if name:
            try:
                _weights_enum(name)
            except ValueError:
                raise ValueError(
                    f"{t.where}: {key} {name!r} is not a torchvision weights name (e.g. "
                    f"FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1, ResNet101_Weights.IMAGENET1K_V2)"
                ) from None


# ---- pretrained weights -----------------------------------------------------------------------
def _weights_enum(name: str):
    """torchvision's weights called ``name`` (``Enum_Class.VALUE``). Raises ValueError."""
    from torchvision.models import get_weight

    try:
        return get_weight(name)
    except (ValueError, KeyError, AttributeError, IndexError):
        raise ValueError(f"unknown torchvision weights {name!r}") from None


def _pretrained(t: Template) -> tuple[str, str]:
    """(weights name, part of the model it fills: "model" or "backbone.body")."""
    if t.weights:
        return t.weights, "model"
    if t.weights_backbone:
        return t.weights_backbone, "backbone.body"
    raise PretrainedWeightsUnavailable(
        f"{t.where} names no pretrained weights: train from scratch with the "
        f"hyperparameter 'pretrained: false', or add 'weights:' to the template"
    )


def pretrained_weights_file(template_name: str | Template) -> Path:
    """Where torchvision keeps the template's pretrained weights:
    ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``."""
    weights = _weights_enum(_pretrained(get_template(template_name))[0])
    return Path(torch.hub.get_dir()) / "checkpoints" / weights.url.rsplit("/", 1)[-1]


def _online(host: str = "download.pytorch.org", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def load_matching_state_dict(module: nn.Module, state_dict: dict, skip_prefixes: tuple = ()) -> tuple[list, list]:
    """Copy the tensors of ``state_dict`` whose key and shape match ``module``'s, except
    keys starting with one of ``skip_prefixes``. Returns (loaded keys, skipped keys) where
    skipped are the module's keys left as initialized."""
    own = module.state_dict()
    take = {
        k: v
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) == tuple(own[k].shape) and not k.startswith(tuple(skip_prefixes))
    }
    module.load_state_dict(take, strict=False)
    skipped = [k for k in own if k not in take and not k.endswith("num_batches_tracked")]
    return sorted(take), skipped


def load_pretrained_weights(model: nn.Module, template_name: str | Template) -> str:
    """Fill ``model`` (from :func:`build_model`) with torchvision's pretrained weights of
    the template (``weights``: the whole model, e.g. COCO detection weights;
    ``weights_backbone``: ``backbone.body``, e.g. ImageNet ResNet-101),
    from the torch hub cache, downloading them when online. The class heads are left
    initialized when the number of classes differs from COCO's.

    Returns a one-line description for the log. Raises :class:`PretrainedWeightsUnavailable`
    naming the file and folder when the weights can be neither found nor downloaded.
    """
    t = get_template(template_name)
    spec, part = _pretrained(t)
    weights = _weights_enum(spec)
    path = pretrained_weights_file(t)
    if not path.is_file() and not _online():
        raise PretrainedWeightsUnavailable(
            f"pretrained weights for {t.name} are not in the torch hub cache and cannot be downloaded "
            f"(offline): put {path.name} (from {weights.url}) into {path.parent}/, "
            f"or train from scratch with the hyperparameter 'pretrained: false'"
        )
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - network, hash or format errors all mean "unavailable"
        raise PretrainedWeightsUnavailable(
            f"could not load pretrained weights for {t.name} from {path} ({type(e).__name__}: {e}): "
            f"put {path.name} (from {weights.url}) into {path.parent}/, "
            f"or train from scratch with the hyperparameter 'pretrained: false'"
        ) from None
    target = model.get_submodule(part) if part != "model" else model
    loaded, skipped = load_matching_state_dict(target, state)
    return (
        f"pretrained weights {spec} loaded from {path} ({len(loaded)} tensors"
        + (f"; {len(skipped)} left initialized, e.g. the class heads" if skipped else "")
        + ")"
    )
