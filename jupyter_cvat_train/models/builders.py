"""Build torchvision detection models from a template and its hyperparameters.

``build_model`` never downloads anything: it builds the architecture with random
weights. ``load_pretrained_weights`` then fills it from torchvision's weights in the
torch hub cache (``torch.hub.get_dir()/checkpoints``), downloading when online.
The same (template, num_classes, params) always gives the same architecture, so a
saved state_dict loads back (model.pt keeps all three).

Sources: torchvision.models.detection builders and their weights (COCO_V1 / IMAGENET1K_V2),
torchvision's detection reference scripts (fine-tuning by replacing the class heads).
"""
from __future__ import annotations

import socket
from pathlib import Path

import torch
from torch import nn
from torchvision.models.detection import (
    fasterrcnn_mobilenet_v3_large_fpn, fasterrcnn_resnet50_fpn_v2, fcos_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2, retinanet_resnet50_fpn_v2, ssd300_vgg16, ssdlite320_mobilenet_v3_large)
from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
from torchvision.models.detection.faster_rcnn import FasterRCNN
from torchvision.models.detection.transform import GeneralizedRCNNTransform
from torchvision.ops.misc import FrozenBatchNorm2d

from .catalog import Template, get_template
from .hyperparameters import parse_hyperparameters


class PretrainedWeightsUnavailable(RuntimeError):
    """torchvision's pretrained weights are neither in the torch hub cache nor downloadable.
    The message names the file, the folder to put it in, and suggests ``pretrained: false``."""


# template name -> (weights enum path in torchvision.models, part of the model it fills)
PRETRAINED = {
    "ssdlite320-mobilenet-v3": ("detection.SSDLite320_MobileNet_V3_Large_Weights.COCO_V1", "model"),
    "ssd300-vgg16": ("detection.SSD300_VGG16_Weights.COCO_V1", "model"),
    "fasterrcnn-mobilenet-v3-fpn": ("detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1", "model"),
    "fasterrcnn-resnet50-fpn-v2": ("detection.FasterRCNN_ResNet50_FPN_V2_Weights.COCO_V1", "model"),
    "fasterrcnn-resnet101-fpn": ("ResNet101_Weights.IMAGENET1K_V2", "backbone.body"),
    "fasterrcnn-resnet101-fpn-lowproposals": ("ResNet101_Weights.IMAGENET1K_V2", "backbone.body"),
    "retinanet-resnet50-fpn-v2": ("detection.RetinaNet_ResNet50_FPN_V2_Weights.COCO_V1", "model"),
    "fcos-resnet50-fpn": ("detection.FCOS_ResNet50_FPN_Weights.COCO_V1", "model"),
    "maskrcnn-resnet50-fpn-v2": ("detection.MaskRCNN_ResNet50_FPN_V2_Weights.COCO_V1", "model"),
}
# Templates whose torchvision weights were trained with frozen batch norm in the backbone.
_FROZEN_BN_WHEN_PRETRAINED = {"fasterrcnn-mobilenet-v3-fpn", "fasterrcnn-resnet101-fpn",
                              "fasterrcnn-resnet101-fpn-lowproposals", "fcos-resnet50-fpn"}
# state_dict key prefixes whose shapes depend on the number of classes (rebuilt on fine-tune).
CLASS_HEAD_PREFIXES = {
    "ssdlite": ("head.classification_head.",),
    "ssd": ("head.classification_head.",),
    "fasterrcnn": ("roi_heads.box_predictor.",),
    "maskrcnn": ("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."),
    "retinanet": ("head.classification_head.cls_logits.",),
    "fcos": ("head.classification_head.cls_logits.",),
}
_RESNET_STAGES = ("layer4", "layer3", "layer2", "layer1", "conv1")


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


def build_model(template_name: "str | Template", num_classes: int, params: dict | None = None) -> nn.Module:
    """Build the torchvision model of ``template_name`` with random weights.

    num_classes: labels + 1 (class 0 is background), >= 2.
    params: hyperparameters (any subset; parsed with :func:`parse_hyperparameters`, so
        the template's defaults fill the rest). Used: image_size, pretrained (choice of
        frozen batch norm, as torchvision's pretrained weights expect),
        trainable_backbone_layers, max_proposals, detections_per_img.

    Returns an ``nn.Module`` in train mode: called as ``model(images, targets)`` (list of
    CHW float tensors in [0, 1], targets with ``boxes`` xyxy pixels and ``labels`` int64)
    it returns a dict of losses; in eval mode ``model(images)`` returns per-image dicts
    with ``boxes`` (xyxy pixels of the input image), ``labels``, ``scores`` (and ``masks``,
    N x 1 x H x W probabilities, for Mask R-CNN).
    Raises TemplateNotFound, HyperparameterError, ValueError (num_classes < 2).
    """
    t = get_template(template_name)
    if num_classes < 2:
        raise ValueError(f"num_classes must count the background and at least one label, got {num_classes}")
    p = parse_hyperparameters(params or {}, t)
    size = int(p["image_size"])
    rcnn_kw = {"min_size": size, "max_size": max(size, round(size * 1333 / 800))}
    if t.family == "ssdlite":
        model = ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
    elif t.family == "ssd":
        model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes)
    elif t.family in ("fasterrcnn", "maskrcnn"):
        rcnn_kw.update(box_detections_per_img=p["detections_per_img"],
                       rpn_post_nms_top_n_test=p["max_proposals"],
                       rpn_pre_nms_top_n_test=max(1000, p["max_proposals"]))
        if t.family == "maskrcnn":
            model = maskrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes, **rcnn_kw)
        elif "resnet101" in t.name:
            backbone = resnet_fpn_backbone(backbone_name="resnet101", weights=None, norm_layer=nn.BatchNorm2d,
                                           trainable_layers=5)
            model = FasterRCNN(backbone, num_classes=num_classes, **rcnn_kw)
        elif "mobilenet" in t.name:
            model = fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                                      **rcnn_kw)
        else:
            model = fasterrcnn_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes, **rcnn_kw)
    elif t.family == "retinanet":
        model = retinanet_resnet50_fpn_v2(weights=None, weights_backbone=None, num_classes=num_classes,
                                          detections_per_img=p["detections_per_img"], **rcnn_kw)
    elif t.family == "fcos":
        model = fcos_resnet50_fpn(weights=None, weights_backbone=None, num_classes=num_classes,
                                  detections_per_img=p["detections_per_img"], **rcnn_kw)
    else:  # pragma: no cover - catalog validation forbids it
        raise ValueError(f"unknown model family {t.family!r}")
    if t.family in ("ssd", "ssdlite"):
        old = model.transform
        model.transform = GeneralizedRCNNTransform(size, size, old.image_mean, old.image_std,
                                                   size_divisible=1, fixed_size=(size, size))
        model.detections_per_img = p["detections_per_img"]
    if p["pretrained"] and t.name in _FROZEN_BN_WHEN_PRETRAINED:
        _freeze_batchnorm(model.backbone.body)
    if p["pretrained"]:
        default_trainable = 3
    else:
        default_trainable = None
    tbl = p.get("trainable_backbone_layers")
    set_trainable_backbone_layers(model, default_trainable if tbl is None else tbl)
    return model


def _weights_enum(spec: str):
    import torchvision.models as tvm

    obj = tvm
    for part in spec.split("."):
        obj = getattr(obj, part)
    return obj


def pretrained_weights_file(template_name: "str | Template") -> Path:
    """Where torchvision keeps the template's pretrained weights:
    ``torch.hub.get_dir()/checkpoints/<file name of the weights URL>``."""
    t = get_template(template_name)
    weights = _weights_enum(PRETRAINED[t.name][0])
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
    take = {k: v for k, v in state_dict.items()
            if k in own and tuple(v.shape) == tuple(own[k].shape) and not k.startswith(tuple(skip_prefixes))}
    module.load_state_dict(take, strict=False)
    skipped = [k for k in own if k not in take and not k.endswith("num_batches_tracked")]
    return sorted(take), skipped


def load_pretrained_weights(model: nn.Module, template_name: "str | Template") -> str:
    """Fill ``model`` (from :func:`build_model`) with torchvision's pretrained weights of
    the template (COCO detection weights; ImageNet backbone weights for ResNet-101),
    from the torch hub cache, downloading them when online. The class heads are left
    initialized when the number of classes differs from COCO's.

    Returns a one-line description for the log. Raises :class:`PretrainedWeightsUnavailable`
    naming the file and folder when the weights can be neither found nor downloaded.
    """
    t = get_template(template_name)
    spec, part = PRETRAINED[t.name]
    weights = _weights_enum(spec)
    path = pretrained_weights_file(t)
    if not path.is_file() and not _online():
        raise PretrainedWeightsUnavailable(
            f"pretrained weights for {t.name} are not in the torch hub cache and cannot be downloaded "
            f"(offline): put {path.name} (from {weights.url}) into {path.parent}/, "
            f"or train from scratch with the hyperparameter 'pretrained: false'")
    try:
        state = weights.get_state_dict(progress=False, check_hash=True)
    except Exception as e:  # noqa: BLE001 - network, hash or format errors all mean "unavailable"
        raise PretrainedWeightsUnavailable(
            f"could not load pretrained weights for {t.name} from {path} ({type(e).__name__}: {e}): "
            f"put {path.name} (from {weights.url}) into {path.parent}/, "
            f"or train from scratch with the hyperparameter 'pretrained: false'") from None
    target = model.get_submodule(part) if part != "model" else model
    loaded, skipped = load_matching_state_dict(target, state)
    return (f"pretrained weights {spec} loaded from {path} ({len(loaded)} tensors"
            + (f"; {len(skipped)} left initialized, e.g. the class heads" if skipped else "") + ")")
