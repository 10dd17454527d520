"""Importing the project never imports TensorFlow: only a TensorFlow template's run does.

Each check runs in a fresh process, which then lists what it imported. The TensorFlow
templates are in the catalog and its JSON (what ``GET templates`` answers) with their
framework, and ``cvat-train models`` names it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from jupyter_cvat_train.models.registry import tf_missing_modules

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("tensorflow", "keras", "keras_hub")

PROBE = """
import json, sys
from jupyter_cvat_train import models
from jupyter_cvat_train.models import keras_retinanet
from jupyter_cvat_train.training import tf_checkpoints, plan
from jupyter_cvat_train.annotate import pipeline, tf_engine
import jupyter_cvat_train.server.service, jupyter_cvat_train.api
catalog = [t.to_dict() for t in models.list_templates()]
checked = [models.check_template(t.name, deep=True).name for t in models.list_templates() if t.framework == "tensorflow"]
tf = [{k: d.get(k) for k in ("name", "framework", "unavailable")} for d in catalog if d.get("framework") == "tensorflow"]
print(json.dumps({"tf": tf, "checked": checked, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_catalog_planning_and_engines_import_no_tensorflow():
    out = json.loads(_run(["-c", PROBE]).stdout.strip().splitlines()[-1])
    assert not set(HEAVY) & set(out["loaded"]), sorted(set(HEAVY) & set(out["loaded"]))
    names = {t["name"] for t in out["tf"]}
    assert {"retinanet-resnet50-keras", "retinanet-tiny-keras"} <= names
    if tf_missing_modules():
        assert all("needs the `tf` extra" in t["unavailable"] for t in out["tf"])
    else:
        assert all(t["unavailable"] is None for t in out["tf"]) and out["checked"]


def test_cli_models_shows_the_framework_without_importing_tensorflow():
    code = (
        "import sys\nfrom jupyter_cvat_train.cli import main\n"
        "try:\n    main(['models'])\nexcept SystemExit:\n    pass\n"
        "print('LOADED', sorted({m.split('.')[0] for m in sys.modules}))\n"
    )
    text = _run(["-c", code]).stdout
    block = text.split("retinanet-tiny-keras", 1)[1].split("\n\n", 1)[0]
    assert "- tensorflow detection;" in block
    assert "- pytorch detection;" in text.split("ssdlite320-mobilenet-v3", 1)[1].split("\n\n", 1)[0]
    loaded = text.rsplit("LOADED", 1)[1]
    assert not any(f"'{m}'" in loaded for m in HEAVY), loaded
