"""Plant N finished validate jobs in ROOT/cvat-train-runs (folders the server indexes when
it starts), for the panel benchmark: a job list of realistic size without running N jobs."""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path


def main(root: Path, count: int) -> None:
    runs = root / "cvat-train-runs"
    runs.mkdir(parents=True, exist_ok=True)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    for i in range(count):
        t0 = start + timedelta(minutes=i)
        t1 = t0 + timedelta(seconds=3)
        job = runs / f"{t0:%Y%m%d-%H%M%S}-validate-{i:06x}"
        job.mkdir(exist_ok=True)
        iso = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
        (job / "job.json").write_text(json.dumps({"kind": "validate", "dataset": f"data/export-{i}.zip"}))
        (job / "status.json").write_text(json.dumps({
            "state": "succeeded", "created_at": iso(t0), "started_at": iso(t0), "ended_at": iso(t1),
            "exit_code": 0, "message": "ok: 0 errors, 1 warning",
            "progress": {"done": 12, "total": 12, "unit": "images"}, "outputs": {"images": 12}}))
        (job / "job.log").write_text("validating\nok\n")
        (job / "events.jsonl").write_text("")


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
