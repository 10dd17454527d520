"""The GPU suite (``benchmarks/gpu_suite.sh``, issue 18) keeps working where there is no
GPU: its ``--dry-run`` runs every section on the CPU with tiny sizes (real images, a real
``cvat-train annotate`` subprocess, real training jobs, a real torchrun launch) and
writes the JSON of figures that a run on the GPU machine writes. Its figures mean nothing
here; what is checked is that each section ran and reported what it must."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_suite_dry_run_reports_every_figure(tmp_path):
    out = tmp_path / "figures.json"
    r = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--dry-run", "--workdir", str(tmp_path / "w")]
        + ["--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    f = json.loads(out.read_text())
    assert f["dry_run"] is True and f["device"] == "cpu"
    for size in ("320x320", "800x1066"):
        assert f["decode"][size]["cpu_threads_images_per_s"] > 0 and f["decode"][size]["device_images_per_s"] > 0
    a = f["annotate"]["ssdlite320-mobilenet-v3"]
    assert a["images"] == 4 and a["seconds_end_to_end"] > a["seconds_pipeline"] > 0
    assert a["naive_images_per_s"] > 0 and a["speedup_vs_naive"] > 0 and a["goal_seconds"] == 15.0
    t = f["train"]["ssdlite320-mobilenet-v3"]
    assert t["ours_images_per_s"] > 0 and t["bare_images_per_s"] > 0 and t["ratio"] > 0
    assert t["ours_peak_gpu_mib"] is None  # no GPU memory on the CPU
    assert f["bccd"]["epochs"] == 1 and 0 <= f["bccd"]["map"] <= 1
    assert f["torchrun"]["state"] == "succeeded" and f["torchrun"]["backend"] == "gloo"
    assert set(f["seconds"]) == {"decode", "annotate", "train", "bccd", "torchrun"}
    assert "all in" in r.stdout and str(out) in r.stdout
