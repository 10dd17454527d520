"""Shared fixtures. Tests that need the real BCCD exports in ../shared skip when absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BCCD_DIR = REPO_ROOT.parent / "shared" / "datasets" / "bccd"
BCCD_FORMATS = {
    "coco": "bccd-coco-1.0.zip",
    "cvat": "bccd-cvat-for-images-1.1.zip",
    "voc": "bccd-pascal-voc-1.1.zip",
    "yolo": "bccd-yolo-1.1.zip",
    "tfrecord": "bccd-tfrecord-1.0.zip",
    "labelme": "bccd-labelme-3.0.zip",
}


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def bccd_dir() -> Path:
    """../shared/datasets/bccd, or skip: it sits beside the project, not in it."""
    if not BCCD_DIR.is_dir():
        pytest.skip(
            f"real BCCD exports not found at {BCCD_DIR} (../shared is beside the project root, not in a fresh clone)"
        )
    return BCCD_DIR


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Keep extraction caches of the test run out of the user's ~/.cache."""
    import os

    old = os.environ.get("CVAT_TRAIN_CACHE")
    os.environ["CVAT_TRAIN_CACHE"] = str(tmp_path_factory.mktemp("cvat-train-cache"))
    yield
    if old is None:
        os.environ.pop("CVAT_TRAIN_CACHE", None)
    else:
        os.environ["CVAT_TRAIN_CACHE"] = old


@pytest.fixture(autouse=True)
def _no_inherited_template_folders(monkeypatch):
    """The server, the CLI and the Python API write this process's template folders into
    the environment (``models.configure_search_path``: CVAT_TRAIN_TEMPLATE_DIRS, which job
    processes inherit). Each test starts without it and leaves none behind, so a
    subprocess never reads the folders of a test that ran before."""
    monkeypatch.setenv("CVAT_TRAIN_TEMPLATE_DIRS", "")
    monkeypatch.delenv("CVAT_TRAIN_TEMPLATE_DIRS")
