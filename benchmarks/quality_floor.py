"""The distribution behind the training quality floor test.

``tests/test_training_quality.py`` trains the default model (SSDlite, from scratch) on a
generated sample export and asserts a floor on the best mAP@.5. This script runs the
same job, each in its own process (as the test does), for several training seeds and
prints the best mAP@.5 and mAP@[.5:.95] of each, with the minimum, median and the
floor the test uses, so the floor's margin is a measured figure.

    .venv/bin/python benchmarks/quality_floor.py [--seeds 0 1 2 3 4] [--threads 0] [--hp epochs=10 ...]

``--hp key=value`` overrides a parameter of the floor's job (to try another setting).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_training_quality import FLOOR_MAP_50, FLOOR_PARAMS, FLOOR_SAMPLE, run_floor_job  # noqa: E402

from jupyter_cvat_train.datasets import generate_sample  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--threads", type=int, default=0, help="torch threads of each job (0 = all usable CPUs)")
    ap.add_argument("--hp", nargs="*", default=[], help="key=value overrides of the floor's parameters")
    args = ap.parse_args()
    overrides = {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.hp)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = generate_sample(tmp / "shapes.zip", **FLOOR_SAMPLE)
        rows = []
        for seed in args.seeds:
            t0 = time.perf_counter()
            params = dict(FLOOR_PARAMS, **overrides, seed=seed, threads=args.threads)
            best = run_floor_job(tmp / f"run-{seed}", data, params)
            rows.append((seed, best["map_50"], best["map"], time.perf_counter() - t0))
            print(
                f"seed {seed}: best mAP@.5 {best['map_50']:.3f}  mAP@[.5:.95] {best['map']:.3f}  ({rows[-1][3]:.0f} s)",
                flush=True,
            )
    m50 = [r[1] for r in rows]
    print(
        json.dumps(
            {
                "params": overrides,
                "seeds": args.seeds,
                "map_50": m50,
                "min": min(m50),
                "median": statistics.median(m50),
                "floor": FLOOR_MAP_50,
                "margin_below_min": round(min(m50) - FLOOR_MAP_50, 3),
            }
        )
    )


if __name__ == "__main__":
    main()
