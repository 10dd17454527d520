"""ONNX Runtime engine (``--engine onnx``), CPU: the dense part of the model in ONNX
Runtime, everything data-dependent in torchvision.

Only the convolutional, static-shape part of the torchvision model is exported:

- SSD / SSDlite / RetinaNet / FCOS: backbone (+ FPN / extra layers) and the head's
  towers, giving the per-anchor outputs (``bbox_regression``, ``cls_logits`` and for FCOS
  ``bbox_ctrness``), exactly as ``model.head(features)`` returns them;
- Faster / Mask R-CNN: backbone + FPN and the RPN head's convolutions (objectness and
  box deltas per level), plus the FPN features; for Faster R-CNN also the box head +
  box predictor, as a second graph over the RoIAlign output (dynamic RoI count).

The rest runs in torch with the model's own modules and methods, so the detections are
the torch engine's to float tolerance: ``model.transform`` (normalize, resize, batch),
the anchor generators, box decoding, ``rpn.filter_proposals``, ``model.roi_heads``
(RoIAlign, NMS, Mask R-CNN's box head and masks), ``postprocess_detections`` and
``transform.postprocess`` (the same steps as torchvision's ``forward`` in eval mode).
Tracing the whole model instead bakes data-dependent sizes (top-k counts, proposal
counts) into the graph and gives wrong boxes.

Graphs have a fixed height x width (the batch tensor's, after ``model.transform``: the
pipeline feeds images already resized to the model's input size, so one size per
aspect ratio) and a dynamic batch. Each size is exported lazily on first use with the
TorchScript-based exporter (opset 17), checked against torch on a random input
(mismatch: the file is deleted and JobError raised), and cached as
``<model_dir>/onnx/<family>-<H>x<W>-<key>.onnx`` (``boxhead-<key>.onnx``) (or under the cache folder,
:func:`jupyter_cvat_train.fileio.cache_root`, when the model folder is read-only); ``key`` hashes model.pt's
bytes and the torch / torchvision / onnxruntime versions. Later runs reuse the file.

One session per size, with ``intra`` intra-op threads, is called from
``parallel_calls`` threads at once (ONNX Runtime's ``run`` is thread-safe), as the torch
engine splits the cores (see :func:`.engine.cpu_parallelism`); graph optimization level
"all", float32 (the CPU provider's bfloat16 fast-math option exists for ARM64 only).
Raises :class:`jupyter_cvat_train.jobs.runtime.JobError` when onnxruntime is not
installed, the device is not the CPU, or the model does not export faithfully (the
message says to use ``--engine torch``).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

from ..fileio import atomic_write_with, cache_root
from ..jobs.runtime import JobError
from .engine import Detections, cpu_parallelism, model_input_size, to_detections

_META_KEY = "cvat_train"  # metadata_props entry: JSON {"keys": [...], "feature_shapes": [[h, w], ...]}


def _family(model) -> str:
    """``rcnn`` (GeneralizedRCNN: Faster / Mask R-CNN) or ``dense`` (SSD, RetinaNet, FCOS:
    ``backbone`` + ``head`` + ``anchor_generator`` + ``postprocess_detections``).
    Raises JobError for anything else."""
    from torchvision.models.detection.fcos import FCOS
    from torchvision.models.detection.generalized_rcnn import GeneralizedRCNN
    from torchvision.models.detection.retinanet import RetinaNet
    from torchvision.models.detection.ssd import SSD

    if isinstance(model, GeneralizedRCNN):
        return "rcnn"
    if isinstance(model, (SSD, RetinaNet, FCOS)):
        return "dense"
    raise JobError(f"--engine onnx does not know models of type {type(model).__name__}; use --engine torch")


def _dense_graph_module(model, family: str):
    """The nn.Module that is exported: images tensor (B, 3, H, W), normalized ->
    tuple of outputs (see :class:`_Graph`)."""
    import torch

    class DenseGraph(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.backbone = model.backbone
            self.head = model.head if family == "dense" else model.rpn.head

        def forward(self, x):
            features = self.backbone(x)
            if isinstance(features, torch.Tensor):
                features = OrderedDict([("0", features)])
            feats = list(features.values())
            if family == "dense":
                return tuple(self.head(feats).values())
            objectness, deltas = self.head(feats)
            return (*feats, *objectness, *deltas)

    return DenseGraph().eval()


def _close(a, b, rel: float = 1e-3) -> bool:
    """Whether ``b`` equals ``a`` up to float rounding: max |a - b| <= rel * max |a|
    (relative to the tensor's scale, not per element: activations near 0 carry the
    absolute rounding error of the large ones that sum into them)."""
    scale = float(a.abs().max()) if a.numel() else 0.0
    return bool(a.numel() == 0 or float((a - b).abs().max()) <= rel * scale + 1e-30)


class _Graph:
    """One exported size: the ONNX Runtime session and what is needed to give its
    outputs their torchvision meaning.

    dense: outputs = head output tensors, in the order of ``keys``; ``feature_shapes``
    are the (h, w) of the feature maps (for the anchor generator and per-level splits).
    rcnn: outputs = L feature maps (named ``keys``), L objectness maps, L delta maps.
    """

    def __init__(self, session, keys: list[str], feature_shapes: list[tuple[int, int]]):
        self.session, self.keys, self.feature_shapes = session, keys, feature_shapes
        self.input = session.get_inputs()[0].name
        self.outputs = [o.name for o in session.get_outputs()]

    def run(self, x) -> list:
        import torch

        return [torch.from_numpy(a) for a in self.session.run(self.outputs, {self.input: x.numpy()})]


class OnnxEngine:
    """ONNX Runtime for the dense part of a torchvision detection model, torch for the
    rest (see module docstring). Same interface as :class:`.engine.TorchEngine`:
    ``predict(list of uint8 CHW tensors) -> list[Detections]``, callable from
    ``parallel_calls`` threads at once; ``input_size(h, w)``.

    model: the torchvision model (eval mode, CPU), post-processing limits already set.
    model_dir: the model folder (model.pt is hashed for the cache key; the .onnx files go
    to its ``onnx/`` subfolder). threads: CPU threads to use (default: all available).
    """

    name = "onnx"

    def __init__(self, model, model_dir: Path, device: str = "cpu", *, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise JobError(
                "--engine onnx needs the onnxruntime package (pip install 'jupyter-cvat-train[onnx]'); "
                "or use --engine torch"
            ) from None
        if device != "cpu":
            raise JobError(f"--engine onnx runs on the CPU here; use --engine torch for device {device!r}")
        import torch

        self.ort, self.torch = ort, torch
        self.model = model.eval()
        self.family = _family(model)
        self.parallel_calls, self.intra = cpu_parallelism(threads)
        torch.set_num_threads(self.intra)
        self.model_dir = Path(model_dir)
        self._folder: Path | None = None
        self._key: str | None = None
        self._graphs: dict[tuple[int, int], _Graph] = {}
        self._box_graph: _Graph | None = None
        self._lock = threading.Lock()

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model, height, width)

    # --- export and cache -------------------------------------------------------------

    def _cache_key(self) -> str:
        import onnxruntime
        import torchvision

        h = hashlib.sha256()
        weights = self.model_dir / "model.pt"
        if weights.is_file():
            with open(weights, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 22), b""):
                    h.update(chunk)
        else:  # no weights file: hash the weights in memory
            for k, v in self.model.state_dict().items():
                h.update(k.encode())
                h.update(v.detach().cpu().contiguous().numpy().tobytes())
        h.update(f"{self.torch.__version__} {torchvision.__version__} {onnxruntime.__version__}".encode())
        return h.hexdigest()[:16]

    def _onnx_folder(self) -> Path:
        folder = self.model_dir / "onnx"
        try:
            folder.mkdir(exist_ok=True)
            probe = folder / f".probe{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError:
            folder = cache_root() / "onnx" / hashlib.sha1(str(self.model_dir.resolve()).encode()).hexdigest()[:12]
            folder.mkdir(parents=True, exist_ok=True)
        return folder

    def graph_path(self, name: str) -> Path:
        """Where the graph ``name`` (e.g. ``dense-320x320``, ``rcnn-640x864``, ``boxhead``) is cached."""
        if self._key is None:
            self._key = self._cache_key()
            self._folder = self._onnx_folder()
        return self._folder / f"{name}-{self._key}.onnx"

    def _graph(self, height: int, width: int) -> _Graph:
        """The backbone graph for batch tensors of ``height`` x ``width`` (exported on first use)."""
        g = self._graphs.get((height, width))
        if g is None:
            with self._lock:
                g = self._graphs.get((height, width))
                if g is None:
                    g = self._graphs[(height, width)] = self._load_backbone(height, width)
        return g

    def _box_head(self):
        """The R-CNN box head + predictor graph (RoI features (N, C, h, w) -> class logits,
        box deltas), or None when the model has a mask / keypoint branch (then
        ``roi_heads`` runs whole in torch)."""
        rh = self.model.roi_heads
        if rh.has_mask() or rh.has_keypoint():
            return None
        if self._box_graph is None:
            with self._lock:
                if self._box_graph is None:
                    torch = self.torch

                    class BoxHead(torch.nn.Module):
                        def __init__(self):
                            super().__init__()
                            self.box_head, self.box_predictor = rh.box_head, rh.box_predictor

                        def forward(self, x):
                            return self.box_predictor(self.box_head(x))

                    size = rh.box_roi_pool.output_size
                    size = (size, size) if isinstance(size, int) else tuple(size)
                    channels = self.model.backbone.out_channels
                    x = torch.randn(64, channels, *size, generator=torch.Generator().manual_seed(0))
                    self._box_graph = _Graph(self._session("boxhead", BoxHead().eval(), x)[0], [], [])
        return self._box_graph

    def _load_backbone(self, height: int, width: int) -> _Graph:
        torch = self.torch
        x = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))

        def describe() -> dict:  # what the graph's outputs mean; stored in the .onnx file
            with torch.inference_mode():
                feats = self.model.backbone(x)
                if isinstance(feats, torch.Tensor):
                    feats = OrderedDict([("0", feats)])
                keys = (
                    list(self.model.head(list(feats.values())).keys()) if self.family == "dense" else list(feats.keys())
                )
            return {"keys": keys, "feature_shapes": [[int(s) for s in f.shape[-2:]] for f in feats.values()]}

        module = _dense_graph_module(self.model, self.family)
        session, meta = self._session(f"{self.family}-{height}x{width}", module, x, describe)
        return _Graph(session, meta["keys"], [tuple(s) for s in meta["feature_shapes"]])

    def _session(self, name: str, module, x, describe=None):
        """(ONNX Runtime session, metadata dict) of ``module`` (one tensor in, a tuple of
        tensors out, batch dimension dynamic), exported to :meth:`graph_path` unless
        already there, with ``describe()`` stored as metadata (so that a cached graph
        needs no torch forward pass). A fresh export is run on ``x`` and compared with
        torch; on a mismatch the file is deleted and JobError raised."""
        torch = self.torch
        path = self.graph_path(name)
        fresh = not path.is_file()
        if fresh:
            with torch.inference_mode():
                ref = module(x)
            self._export(module, x, path, len(ref), describe() if describe else {})
        so = self.ort.SessionOptions()
        so.intra_op_num_threads = self.intra
        so.inter_op_num_threads = 1
        so.graph_optimization_level = self.ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = self.ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        if fresh:
            got = _Graph(session, [], []).run(x)
            bad = [i for i, (a, b) in enumerate(zip(ref, got)) if a.shape != b.shape or not _close(a, b)]
            if len(got) != len(ref) or bad:
                path.unlink(missing_ok=True)
                raise JobError(
                    f"--engine onnx: the ONNX export of this model ({name}) differs from torch "
                    f"(outputs {bad}); use --engine torch"
                )
        meta = session.get_modelmeta().custom_metadata_map.get(_META_KEY)
        if describe is not None and not meta:  # a file without our metadata: export again
            del session
            path.unlink(missing_ok=True)
            return self._session(name, module, x, describe)
        return session, json.loads(meta) if meta else {}

    def _export(self, module, x, path: Path, n_outputs: int, meta: dict) -> None:
        import onnx

        torch = self.torch
        names = [f"out{i}" for i in range(n_outputs)]

        def write(tmp: Path) -> None:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(
                    module,
                    (x,),
                    str(tmp),
                    opset_version=17,
                    input_names=["images"],
                    output_names=names,
                    dynamo=False,
                    dynamic_axes={"images": {0: "batch"}, **{n: {0: "batch"} for n in names}},
                )
            if meta:
                proto = onnx.load(str(tmp))
                onnx.helper.set_model_props(proto, {_META_KEY: json.dumps(meta)})
                onnx.save(proto, str(tmp))

        try:
            atomic_write_with(path, write)
        except Exception as e:  # noqa: BLE001 - any exporter failure means: use the torch engine
            raise JobError(
                f"--engine onnx: this model does not export to ONNX ({type(e).__name__}: "
                f"{str(e)[:300]}); use --engine torch"
            ) from None

    # --- inference ----------------------------------------------------------------------

    def predict(self, images: list) -> list[Detections]:
        torch = self.torch
        model = self.model
        with torch.inference_mode():
            batch = [im.float().div_(255) for im in images]
            original_sizes = [tuple(int(s) for s in im.shape[-2:]) for im in batch]
            image_list, _ = model.transform(batch)
            graph = self._graph(*(int(s) for s in image_list.tensors.shape[-2:]))
            outputs = graph.run(image_list.tensors.contiguous())
            if self.family == "dense":
                detections = self._dense_postprocess(graph, image_list, outputs)
            else:
                detections = self._rcnn_postprocess(graph, image_list, outputs)
            detections = model.transform.postprocess(detections, image_list.image_sizes, original_sizes)
        return [to_detections(d) for d in detections]

    def _dense_postprocess(self, graph: _Graph, image_list, outputs: list) -> list[dict]:
        """torchvision SSD / RetinaNet / FCOS ``forward`` after ``self.head`` (eval mode)."""
        from torchvision.models.detection.ssd import SSD

        torch, model = self.torch, self.model
        n = image_list.tensors.shape[0]
        head_outputs = dict(zip(graph.keys, outputs))
        # The anchor generators only read the feature maps' sizes, dtype and device.
        placeholders = [torch.empty(n, 0, h, w) for h, w in graph.feature_shapes]
        anchors = model.anchor_generator(image_list, placeholders)
        if isinstance(model, SSD):
            return model.postprocess_detections(head_outputs, anchors, image_list.image_sizes)
        per_level = [h * w for h, w in graph.feature_shapes]
        a = head_outputs["cls_logits"].size(1) // sum(per_level)  # anchors per location (FCOS: 1)
        per_level = [hw * a for hw in per_level]
        split = {k: list(v.split(per_level, dim=1)) for k, v in head_outputs.items()}
        split_anchors = [list(x.split(per_level)) for x in anchors]
        return model.postprocess_detections(split, split_anchors, image_list.image_sizes)

    def _rcnn_postprocess(self, graph: _Graph, image_list, outputs: list) -> list[dict]:
        """torchvision ``RegionProposalNetwork.forward`` after ``self.head``, then
        ``roi_heads`` (eval mode)."""
        from torchvision.models.detection.rpn import concat_box_prediction_layers

        rpn = self.model.rpn
        levels = len(graph.keys)
        feats = outputs[:levels]
        objectness, deltas = outputs[levels : 2 * levels], outputs[2 * levels :]
        anchors = rpn.anchor_generator(image_list, feats)
        num_anchors_per_level = [int(o[0].numel()) for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals = rpn.box_coder.decode(deltas, anchors).view(len(anchors), -1, 4)
        boxes, _ = rpn.filter_proposals(proposals, objectness, image_list.image_sizes, num_anchors_per_level)
        features = OrderedDict(zip(graph.keys, feats))
        rh = self.model.roi_heads
        box_head = self._box_head()
        if box_head is None:
            detections, _ = rh(features, boxes, image_list.image_sizes)
            return detections
        # RoIHeads.forward in eval mode, box branch, with box_head + box_predictor in ONNX Runtime.
        box_features = rh.box_roi_pool(features, boxes, image_list.image_sizes)
        class_logits, box_regression = box_head.run(box_features.contiguous())
        b, s, labels = rh.postprocess_detections(class_logits, box_regression, boxes, image_list.image_sizes)
        return [{"boxes": b[i], "labels": labels[i], "scores": s[i]} for i in range(len(b))]
