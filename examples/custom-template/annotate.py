"""The annotate command of the custom-template example: "predicts" with the baseline.

It reads the "model" that train.py wrote (``model.json``: the mean box size of each
label) and, for every image in the images folder, writes one box per label of that mean
size, placed from the image's top-left corner (a baseline knows no positions), with a
fixed score. The result is one COCO JSON, which cvat-train turns into the CVAT format
chosen for the annotate job (same label mapping, threshold and writers as its own models).

    python -u annotate.py --images DIR --model DIR --output FILE.json [--score S]

Image sizes are left out of the JSON (cvat-train reads them from the images).
"""

import argparse
import json
import os
import sys

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--score", type=float, default=0.9)
    args = ap.parse_args()
    with open(os.path.join(args.model, "model.json")) as f:
        model = json.load(f)
    names = sorted(model)
    categories = [{"id": k, "name": name} for k, name in enumerate(names, start=1)]
    images, annotations = [], []
    for folder, _, files in sorted(os.walk(args.images)):
        for name in sorted(files):
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                continue
            rel = os.path.relpath(os.path.join(folder, name), args.images).replace(os.sep, "/")
            image_id = len(images) + 1
            images.append({"id": image_id, "file_name": rel})
            for k, label in enumerate(names, start=1):
                w, h = model[label]["mean_w"], model[label]["mean_h"]
                offset = 4.0 * (k - 1)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": k,
                        "bbox": [offset, offset, w, h],
                        "score": args.score,
                    }
                )
    with open(args.output, "w") as f:
        json.dump({"images": images, "categories": categories, "annotations": annotations}, f)
    print(f"annotated {len(images)} images: {len(annotations)} boxes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
