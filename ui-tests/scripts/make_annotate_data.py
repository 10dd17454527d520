"""Inputs of the Auto-annotate browser test, written under ROOT/annotate (the test
server's root): train.zip (a small learnable CVAT export, COCO), batch/ (a folder of new
images of the same kind, plus one corrupt JPEG), batch.zip (the same images zipped),
empty/ (a folder with no image), not-a-model/ (a folder without classes.csv)."""

from __future__ import annotations

import shutil
import sys
import zipfile
from pathlib import Path

from jupyter_cvat_train.datasets import generate_sample


def main(root: Path) -> None:
    base = root / "annotate"
    if base.exists():
        shutil.rmtree(base)
    base.mkdir(parents=True)
    generate_sample(base / "train.zip", images=12, width=96, height=96)
    other = generate_sample(base / "other", images=4, width=96, height=96, seed=7)
    batch = base / "batch"
    batch.mkdir()
    for i, image in enumerate(sorted(other.rglob("*.jpg"))):
        shutil.copy(image, batch / f"new_{i}.jpg")
    shutil.rmtree(other)
    (batch / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    with zipfile.ZipFile(base / "batch.zip", "w") as zf:
        for image in sorted(batch.iterdir()):
            zf.write(image, image.name)
    (base / "empty").mkdir()
    (base / "empty" / "README.txt").write_text("no images here\n")
    (base / "not-a-model").mkdir()
    (base / "not-a-model" / "model.json").write_text("{}\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
