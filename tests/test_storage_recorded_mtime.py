"""The mtime an object records (metadata ``mtime``) in sync plans, against a real S3
HTTP endpoint (moto's server on 127.0.0.1) and file:// storage: a sync down right after
a sync up of the same folder plans nothing, a changed file is planned alone, objects
without (or with a foreign) recorded mtime."""

from __future__ import annotations

import os
import time

import pytest
from test_storage_sync import make_workspace, moto_endpoint, s3_client, target, tree_hashes  # noqa: F401 - fixtures

from jupyter_cvat_train.storage import sync


def planned(summary: dict) -> dict[str, str]:
    """key -> op of a dry run's transfers and deletes."""
    return {a["key"]: a["op"] for a in summary["plan"]}


def aged(root):
    """``root`` with its files' mtimes an hour and a bit in the past (distinct
    fractions), so an upload's LastModified is clearly newer than each."""
    for i, p in enumerate(sorted(q for q in root.rglob("*") if q.is_file())):
        t = time.time_ns() - 3_700_000_000_000 + i * 1_234_567
        os.utime(p, ns=(t, t))
    return root


def test_down_right_after_up_plans_nothing(target, tmp_path):
    ws = aged(make_workspace(tmp_path / "ws", n=6))
    assert sync(target.options("up", ws))["copied"] == 6
    s = sync(target.options("down", ws, dry_run=True))
    assert planned(s) == {} and (s["copied"], s["updated"], s["skipped"]) == (0, 0, 6)


def test_s3_down_after_up_then_one_changed_file_each_way(moto_endpoint, tmp_path):  # noqa: F811
    from test_storage_sync import Target

    t = Target("s3", tmp_path, moto_endpoint)
    ws = aged(make_workspace(tmp_path / "ws", n=6))
    before = tree_hashes(ws)
    mtimes = {p: p.stat().st_mtime_ns for p in ws.rglob("*") if p.is_file()}
    assert sync(t.options("up", ws))["copied"] == 6

    s = sync(t.options("down", ws))  # a real one: nothing moves, the files get the listed mtimes
    assert (s["copied"], s["updated"], s["skipped"], s["failed"]) == (0, 0, 6, 0)
    assert tree_hashes(ws) == before
    listed = {
        o["Key"][len("data/set/") :]: o["LastModified"].timestamp()
        for o in s3_client(moto_endpoint).list_objects_v2(Bucket=t.bucket, Prefix="data/set/")["Contents"]
    }
    for p, old in mtimes.items():
        key = p.relative_to(ws).as_posix()
        assert p.stat().st_mtime == pytest.approx(listed[key], abs=1e-3), key
        assert p.stat().st_mtime_ns != old, key
    for direction in ("down", "up"):
        assert planned(sync(t.options(direction, ws, dry_run=True))) == {}, direction

    # one file changed locally, same size, older than the upload: only a sync down sees it
    older = ws / "labels/part0/file000.txt"
    data = bytearray(older.read_bytes())
    data[0] ^= 0xFF
    older.write_bytes(bytes(data))
    os.utime(older, (time.time() - 3600, time.time() - 3600))
    # another changed, same size, newer than the upload: only a sync up sees it
    newer = ws / "images/part1/file001.jpg"
    data = bytearray(newer.read_bytes())
    data[0] ^= 0xFF
    newer.write_bytes(bytes(data))
    os.utime(newer, (time.time() + 30, time.time() + 30))
    assert planned(sync(t.options("down", ws, dry_run=True))) == {"labels/part0/file000.txt": "update"}
    assert planned(sync(t.options("up", ws, dry_run=True))) == {"images/part1/file001.jpg": "update"}


def test_s3_objects_without_or_with_a_foreign_recorded_mtime(moto_endpoint, tmp_path):  # noqa: F811
    """An object put by another tool: without ``mtime`` metadata (or with a bad one) an
    equal-size, older local file is updated as before; with rclone's ``mtime`` equal to
    the file's, it is skipped."""
    from test_storage_sync import Target

    t = Target("s3", tmp_path, moto_endpoint)
    ws = tmp_path / "ws"
    ws.mkdir()
    files = {name: ws / name for name in ("plain.bin", "bad.bin", "rclone.bin")}
    for name, p in files.items():
        p.write_bytes(name.encode().ljust(64, b"."))
        os.utime(p, ns=(1_700_000_000_123_456_789, 1_700_000_000_123_456_789))
    c = s3_client(moto_endpoint)
    body = lambda name: name.encode().ljust(64, b".")  # noqa: E731
    c.put_object(Bucket=t.bucket, Key="data/set/plain.bin", Body=body("plain.bin"))
    c.put_object(Bucket=t.bucket, Key="data/set/bad.bin", Body=body("bad.bin"), Metadata={"mtime": "yesterday"})
    c.put_object(
        Bucket=t.bucket, Key="data/set/rclone.bin", Body=body("rclone.bin"), Metadata={"mtime": "1700000000.123456789"}
    )
    s = sync(t.options("down", ws, dry_run=True))
    assert planned(s) == {"plain.bin": "update", "bad.bin": "update"} and s["skipped"] == 1
