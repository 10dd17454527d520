"""Crafted exports through ``POST datasets/validate`` of a real server with a token:
references that leave the export are ``unsafe-reference`` errors, and what lies outside
(labels of an outside obj.names, whether an outside file exists) never shows."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from jupyter_cvat_train.datasets import generate_sample

pytest_plugins = ["pytest_jupyter.jupyter_server"]
SECRET = "SECRET_OUTSIDE_LABEL"


@pytest.fixture
def jp_server_config():
    return Config({"ServerApp": {"jpserver_extensions": {"jupyter_cvat_train": True}}})


async def validate(jp_fetch, path: str) -> tuple[int, dict]:
    try:
        r = await jp_fetch("cvat-train", "api", "datasets", "validate", method="POST", body=json.dumps({"path": path}))
    except HTTPClientError as e:
        r = e.response
    return r.code, json.loads(r.body)


async def test_validate_api_refuses_references_outside_the_export(jp_fetch, jp_root_dir, tmp_path):
    # outside the export, but inside the server root: still not the export's to name
    (jp_root_dir / "private").mkdir()
    (jp_root_dir / "private" / "secret.names").write_text(f"{SECRET}\n")
    yolo = generate_sample(tmp_path / "yolo", format="yolo", images=3, seed=2, width=64, height=48)
    spellings = [
        "../private/secret.names",
        str(jp_root_dir / "private" / "secret.names"),
        "data\\..\\..\\private\\secret.names",
        "/etc/passwd",
    ]
    for k, ref in enumerate(spellings):
        folder = jp_root_dir / f"y{k}"
        shutil.copytree(yolo, folder)
        obj = folder / "obj.data"
        obj.write_text(obj.read_text().replace("names = data/obj.names", f"names = {ref}"))
        code, report = await validate(jp_fetch, f"y{k}")
        assert code == 200, report
        assert SECRET not in json.dumps(report)
        assert any(e["code"] == "unsafe-reference" and e["item"] == "obj.data" for e in report["errors"]), report
        assert not report["ok"] and set(report["labels"]) == {"circle", "square", "triangle"}

    # a COCO zip naming an outside file that exists, and one that does not: the same answer
    coco = generate_sample(tmp_path / "coco", format="coco", images=3, seed=2, width=64, height=48)
    answers = []
    for name in ("private/secret.names", "private/nope.jpg"):
        ann = coco / "annotations" / "instances_default.json"
        data = json.loads(ann.read_text())
        data["images"][0]["file_name"] = f"../../../{name}"
        ann.write_text(json.dumps(data))
        z = jp_root_dir / f"coco-{Path(name).stem}.zip"
        with zipfile.ZipFile(z, "w") as zf:
            for p in sorted(coco.rglob("*")):
                if p.is_file():
                    zf.write(p, p.relative_to(coco).as_posix())
        code, report = await validate(jp_fetch, z.name)
        assert code == 200
        answers.append([(e["code"], e["item"], e["message"].replace(Path(name).name, "X")) for e in report["errors"]])
    assert answers[0] == answers[1] and answers[0][0][0] == "unsafe-reference"

    # a symlink inside a folder export to a device
    folder = jp_root_dir / "linked"
    shutil.copytree(coco, folder)
    img = sorted((folder / "images" / "default").iterdir())[0]
    img.unlink()
    img.symlink_to("/dev/zero")
    code, report = await validate(jp_fetch, "linked")
    assert code == 200 and [e["code"] for e in report["errors"]] == ["unsafe-reference"], report
