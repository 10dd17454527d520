"""Exports the browser tests use, written under ROOT/data (the test server's root):
sample.zip (a small learnable export), degenerate/ (zero-size and inverted boxes:
warnings), broken/ (an image missing: an error)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from jupyter_cvat_train.datasets import generate_sample


def main(root: Path) -> None:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    generate_sample(data / "sample.zip", images=12, width=96, height=96)
    degenerate = generate_sample(data / "degenerate", images=6, width=96, height=96)
    ann = next(degenerate.rglob("*.json"))
    doc = json.loads(ann.read_text())
    for a in doc["annotations"][:3]:
        a["bbox"][2] = 0  # zero width
        a.pop("segmentation", None)
    ann.write_text(json.dumps(doc))
    broken = generate_sample(data / "broken", images=4, width=96, height=96)
    images = sorted(p for p in broken.rglob("*.jpg"))
    images[0].unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
