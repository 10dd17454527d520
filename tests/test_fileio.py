"""The atomic write every layer uses (jupyter_cvat_train.fileio), on real files."""

from __future__ import annotations

import os
import stat

import pytest

from jupyter_cvat_train.fileio import TEMP_PREFIX, atomic_write, atomic_write_with, cache_root


def leftovers(folder):
    return [n for n in os.listdir(folder) if n.startswith(TEMP_PREFIX)]


@pytest.mark.parametrize("name", ["a.json", "n" * 255, "é" * 127, ".hidden"])
def test_any_valid_name_gets_a_short_temp_file(tmp_path, name):
    path = atomic_write(tmp_path / name, "first")
    atomic_write(path, b"second")
    assert path.read_bytes() == b"second" and leftovers(tmp_path) == []


def test_mode_is_set_and_default_follows_the_umask(tmp_path):
    assert stat.S_IMODE(atomic_write(tmp_path / "key", "k", mode=0o600, fsync=True).stat().st_mode) == 0o600
    old = os.umask(0o027)
    try:
        assert stat.S_IMODE(atomic_write(tmp_path / "plain", "p").stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_a_planted_symlink_is_replaced_never_written_through(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "out").symlink_to(victim)
    atomic_write(tmp_path / "out", "new")
    assert victim.read_text() == "keep" and not (tmp_path / "out").is_symlink()


def test_link_publish_never_clobbers(tmp_path):
    (tmp_path / "out").write_text("theirs")
    with pytest.raises(FileExistsError):
        atomic_write(tmp_path / "out", "ours", publish=os.link)
    assert (tmp_path / "out").read_text() == "theirs" and leftovers(tmp_path) == []
    atomic_write(tmp_path / "new", "ours", publish=os.link)
    assert (tmp_path / "new").read_text() == "ours" and leftovers(tmp_path) == []


def test_a_failing_writer_leaves_the_old_file_and_no_temp(tmp_path):
    (tmp_path / "out").write_text("old")

    def half(tmp):
        tmp.write_text("partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write_with(tmp_path / "out", half)
    assert (tmp_path / "out").read_text() == "old" and leftovers(tmp_path) == []
    with pytest.raises(IsADirectoryError):
        atomic_write(tmp_path, "x")


def test_writer_gets_a_path_and_custom_temp_names(tmp_path):
    seen = []
    atomic_write_with(
        tmp_path / "w",
        lambda tmp: (seen.append(tmp.name), tmp.write_text("ok")),
        fsync=True,
        make_name=lambda: ".mine.tmp",
    )
    assert seen == [".mine.tmp"] and (tmp_path / "w").read_text() == "ok"


def test_cache_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CVAT_TRAIN_CACHE", str(tmp_path))
    assert cache_root() == tmp_path
    monkeypatch.delenv("CVAT_TRAIN_CACHE")
    assert cache_root().parts[-2:] == (".cache", "jupyter_cvat_train")
