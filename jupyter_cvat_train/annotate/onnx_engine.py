"""ONNX Runtime engine (``--engine onnx``), CPU.

The torchvision model (with its post-processing, score threshold and detection limit
as set by :func:`.engine.limit_postprocess`) is exported once with the TorchScript-based
exporter (opset 17, one image of the model's input size, dynamic height/width) to
``<model_dir>/onnx/model-t<threshold>-d<max>.onnx`` (or to the cache folder
``$CVAT_TRAIN_CACHE``/``~/.cache/cvat-train`` when the model folder is read-only), keyed by
model.pt's size and mtime; later runs reuse it. Sessions run one image per call with
one intra-op thread, ``parallel_calls`` calls at once (as the torch engine).

Experimental. A fresh export is checked against the torch model (:meth:`OnnxEngine._verify`);
SSD / SSDlite are refused (tracing bakes their per-class top-k counts into the graph).
Raises :class:`jupyter_cvat_train.jobs.jobdir.JobError` when onnxruntime is not
installed or the model does not export faithfully (the message says to use ``--engine torch``).
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from ..jobs.jobdir import JobError
from .engine import Detections, cpu_parallelism, model_input_size


def _cache_root() -> Path:
    return Path(os.environ.get("CVAT_TRAIN_CACHE") or Path.home() / ".cache" / "cvat-train")


class OnnxEngine:
    """ONNX Runtime over an exported torchvision detection model (see module docstring)."""

    name = "onnx"

    def __init__(self, model, model_dir: Path, device: str = "cpu", *, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise JobError("--engine onnx needs the onnxruntime package (pip install onnxruntime); "
                           "or use --engine torch") from None
        if device != "cpu":
            raise JobError(f"--engine onnx runs on the CPU here; use --engine torch for device {device!r}")
        from torchvision.models.detection.ssd import SSD

        if isinstance(model, SSD):
            raise JobError("--engine onnx: SSD / SSDlite models do not export faithfully (tracing fixes their "
                           "per-class top-k counts); use --engine torch")
        self.model = model.eval()
        self.path = self._export_path(Path(model_dir))
        fresh = not self.path.is_file()
        if fresh:
            self._export()
        self.parallel_calls, intra = cpu_parallelism(threads)
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra
        so.inter_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        if fresh:
            self._verify()

    def _verify(self) -> None:
        """Compare ONNX Runtime with the torch model on an input unlike the export's
        dummy: tracing bakes data-dependent sizes (top-k counts, image sizes) into the
        graph for some models. On a mismatch the export is deleted and JobError raised."""
        import torch

        from .engine import TorchEngine

        g = torch.Generator().manual_seed(1)
        h, w = model_input_size(self.model, 600, 900)
        x = (torch.rand(3, h, w, generator=g) * 255).to(torch.uint8)
        ref = TorchEngine(self.model, "cpu", channels_last=False, threads=torch.get_num_threads()).predict([x])[0]
        got = self.predict([x])[0]

        def rows(d):
            r = np.concatenate([d.scores[:, None], d.boxes, d.labels[:, None].astype(np.float32)], axis=1)
            return r[np.lexsort(r.T[::-1])]

        same = len(ref.scores) == len(got.scores) and np.allclose(rows(ref), rows(got), atol=1e-2, rtol=1e-3)
        if not same:
            self.path.unlink(missing_ok=True)
            raise JobError(f"--engine onnx: the ONNX export of this model does not reproduce its detections "
                           f"({len(got.scores)} vs {len(ref.scores)}); use --engine torch")

    def _export_path(self, model_dir: Path) -> Path:
        rh = getattr(self.model, "roi_heads", None)
        owner = rh if rh is not None and hasattr(rh, "score_thresh") else self.model
        thr = float(getattr(owner, "score_thresh", 0.0))
        dets = int(getattr(owner, "detections_per_img", 0))
        weights = model_dir / "model.pt"
        st = weights.stat() if weights.is_file() else None
        key = hashlib.sha1(f"{st.st_size if st else 0}-{st.st_mtime_ns if st else 0}".encode()).hexdigest()[:10]
        name = f"model-{key}-t{thr:.4f}-d{dets}.onnx"
        folder = model_dir / "onnx"
        try:
            folder.mkdir(exist_ok=True)
            probe = folder / f".probe{os.getpid()}"
            probe.touch()
            probe.unlink()
        except OSError:
            folder = _cache_root() / "onnx" / hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:12]
            folder.mkdir(parents=True, exist_ok=True)
        return folder / name

    def _export(self) -> None:
        import torch

        h, w = model_input_size(self.model, 480, 640)
        dummy = torch.rand(3, h, w)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        masks = hasattr(getattr(self.model, "roi_heads", None), "mask_head") and self.model.roi_heads.mask_head is not None
        names = ["boxes", "labels", "scores"] + (["masks"] if masks else [])
        try:
            with torch.no_grad():
                torch.onnx.export(self.model, ([dummy],), str(tmp), opset_version=17, input_names=["image"],
                                  output_names=names, dynamo=False,
                                  dynamic_axes={"image": {1: "height", 2: "width"}, **{n: {0: "n"} for n in names}})
            os.replace(tmp, self.path)
        except Exception as e:  # noqa: BLE001 - any exporter failure means: use the torch engine
            raise JobError(f"--engine onnx: this model does not export to ONNX ({type(e).__name__}: "
                           f"{str(e)[:300]}); use --engine torch") from None
        finally:
            if tmp.exists():
                tmp.unlink()

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        return model_input_size(self.model, height, width)

    def predict(self, images: list) -> list[Detections]:
        out = []
        for im in images:
            x = im.numpy().astype(np.float32) / 255.0
            res = dict(zip(self.outputs, self.session.run(self.outputs, {"image": x})))
            masks = res.get("masks")
            out.append(Detections(res["boxes"].astype(np.float32), res["scores"].astype(np.float32),
                                  res["labels"].astype(np.int64), None if masks is None else masks[:, 0]))
        return out
