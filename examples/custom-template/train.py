"""A plain baseline "trainer" for the custom-template example: no learning.

It reads a COCO dump (``annotations/instances_*.json``), computes the mean box width and
height of each label, and writes them as the "model" (``model.json``) into the output
folder with ``classes.csv``. It exists to show a custom template's lifecycle (export
conversion, parameters, logs, cancel, outputs), not to detect anything.

    python -u train.py --data DIR --output DIR [--epochs N] [--note TEXT]
                       [--hold SECONDS] [--fail]

--note is written back as given (``args.json``); --hold waits (printing a line each
second) so a cancel can be tried, writing ``terminated.txt`` when SIGTERM arrives;
--fail exits with code 3 after printing why.
"""

import argparse
import glob
import json
import os
import signal
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--note", default="")
    ap.add_argument("--hold", type=float, default=0)
    ap.add_argument("--fail", action="store_true")
    args = ap.parse_args()
    with open(os.path.join(args.output, "args.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "note": args.note, "epochs": args.epochs}, f)
    if args.fail:
        print("loading the data ...")
        print("error: this run was asked to fail (--fail)")
        return 3
    if args.hold:

        def stop(signum, frame):
            with open(os.path.join(args.output, "terminated.txt"), "w") as f:
                f.write(f"signal {signum}\n")
            sys.exit(143)

        signal.signal(signal.SIGTERM, stop)
        with open(os.path.join(args.output, "pid.txt"), "w") as f:
            f.write(str(os.getpid()))
        end = time.monotonic() + args.hold
        while time.monotonic() < end:
            print("holding", flush=True)
            time.sleep(1)
    files = sorted(glob.glob(os.path.join(args.data, "annotations", "instances_*.json")))
    if not files:
        print(f"no COCO annotations under {args.data}", file=sys.stderr)
        return 2
    sums, names = {}, {}
    for path in files:
        with open(path) as f:
            doc = json.load(f)
        names.update({c["id"]: c["name"] for c in doc["categories"]})
        for a in doc["annotations"]:
            s = sums.setdefault(a["category_id"], [0.0, 0.0, 0])
            s[0] += a["bbox"][2]
            s[1] += a["bbox"][3]
            s[2] += 1
    for epoch in range(1, args.epochs + 1):
        print(f"epoch {epoch}/{args.epochs}: {sum(s[2] for s in sums.values())} boxes")
    model = {names[k]: {"mean_w": s[0] / s[2], "mean_h": s[1] / s[2], "boxes": s[2]} for k, s in sums.items()}
    with open(os.path.join(args.output, "model.json"), "w") as f:
        json.dump(model, f, indent=1)
    print(f"wrote model.json ({len(model)} labels)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
