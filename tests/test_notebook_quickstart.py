"""examples/quickstart.ipynb end to end in a real kernel (nbclient), on the CPU: the
validation report's numbers, the training job succeeded, the annotations zip holds
annotations, a preview image is shown, the model reached the file:// storage."""

from __future__ import annotations

import json
import shutil
import zipfile

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_cvat_train.api.config import ROOT_DIR_ENV, RUNS_ROOT_ENV
from jupyter_cvat_train.api.display import JOB_MIME

pytestmark = pytest.mark.slow


def outputs_of(cell) -> dict:
    """mime type -> data of a cell's display outputs (later ones win); "stream": its text."""
    out: dict = {"stream": ""}
    for o in cell.get("outputs", []):
        if o["output_type"] == "stream":
            out["stream"] += o["text"]
        elif o["output_type"] in ("execute_result", "display_data"):
            out.update(o["data"])
    return out


def test_quickstart_notebook_runs(repo_root, tmp_path, monkeypatch):
    for name in (RUNS_ROOT_ENV, ROOT_DIR_ENV, "CVAT_TRAIN_SERVER_URL"):
        monkeypatch.delenv(name, raising=False)
    shutil.copy(repo_root / "examples" / "quickstart.ipynb", tmp_path)
    nb = nbformat.read(tmp_path / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    cells = {c.source.split("\n", 1)[0]: outputs_of(c) for c in nb.cells if c.cell_type == "code"}
    report = cells["report = %cvat_train validate $export"]
    assert report["text/plain"].startswith("sample-export.zip: coco, 40 images, ")
    assert "OK: ready to train" in report["text/html"]
    numbers = cells["assert report.ok, report"]["text/plain"]
    assert numbers.startswith("(40, ")

    shown = cells["job"]
    assert set(shown) >= {JOB_MIME, "text/html", "text/plain"} and shown[JOB_MIME]["kind"] == "train"
    assert cells["job.wait(timeout=600)"]["stream"].startswith("succeeded - mAP@[.5:.95]")
    assert "application/vnd.vegalite.v5+json" in cells["job.plot()  # loss and mAP per epoch (Vega-Lite)"]

    pre = cells['new_images = sample_dataset(work / "new-images.zip", images=6, width=160, height=120, seed=1)']
    assert "succeeded" in pre["text/plain"] and "data:image/png;base64," in pre["text/html"]
    previews = cells["pre.previews()  # the new images with their predicted boxes"]["text/html"]
    assert previews.count('<img src="data:image/png;base64,') == 3
    with zipfile.ZipFile(tmp_path / "quickstart-output" / "pre-annotations.zip") as z:
        coco = json.loads(z.read("annotations/instances_default.json"))
    assert len(coco["images"]) == 6 and coco["annotations"]
    assert sorted(p.name for p in (tmp_path / "quickstart-output" / "storage").iterdir()) == [
        "classes.csv",
        "model.json",
        "model.pt",
    ]
    listing = cells["%cvat_train jobs"]["text/plain"]
    assert listing.count("succeeded") == 3
