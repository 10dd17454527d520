"""Deterministic train/val split of a dataset's items.

Each item gets a key ``sha1(f"{seed}:{subset}/{id}")``; items are ordered by that key and
the first ``round(n * val_split / 100)`` (at least 1, at most n - 1) form the validation
split. The split depends only on (seed, item ids), not on file order, and adding images
moves few existing ones between the sides. Both sides are never empty.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from .model import Item


class SplitError(ValueError):
    """The items cannot be split into two non-empty sides (fewer than 2 images)."""


def split_items(items: Sequence[Item], val_split: float = 20.0, seed: int = 0) -> tuple[list[Item], list[Item]]:
    """Split ``items`` into (train, val) with about ``val_split`` percent (0..100) in val.

    Returns two lists in the items' original order. Neither is empty: val holds at least
    one image and train at least one. Raises SplitError when there are fewer than 2 items.
    """
    n = len(items)
    if n < 2:
        raise SplitError(
            f"the dataset has {n} image(s): training needs at least 2 (one to train on, one to "
            f"evaluate); add images to the export"
        )
    n_val = min(max(1, round(n * float(val_split) / 100.0)), n - 1)

    def key(i: int) -> str:
        it = items[i]
        return hashlib.sha1(f"{seed}:{it.subset}/{it.id}".encode()).hexdigest()

    ranked = sorted(range(n), key=lambda i: (key(i), i))
    val_idx = set(ranked[:n_val])
    train = [it for i, it in enumerate(items) if i not in val_idx]
    val = [it for i, it in enumerate(items) if i in val_idx]
    return train, val
