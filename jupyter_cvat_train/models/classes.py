"""``classes.csv``: the label list of a trained model folder.

Written as a header ``labels,id`` and one row per label, ids 1..N in the order of the
dataset's labels (id 0 is background and is not written).

Read in any of the variants found in Onepanel-era model folders:

1. ``labels,id`` header (columns in either order), one ``name,id`` row per label;
2. ``labels`` header alone, row k (1-based) is id k;
3. no header: one name per line (row k is id k), or ``name,id`` rows.

A ``background`` row with id 0 is ignored.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path


class ClassesError(ValueError):
    """classes.csv is missing, empty or inconsistent; the message names the file."""


def write_classes_csv(path: Path | str, labels: list[str]) -> None:
    """Write ``labels`` (id k+1 for labels[k]) to ``path`` as ``labels,id`` CSV."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["labels", "id"])
    for i, name in enumerate(labels, start=1):
        w.writerow([name, i])
    Path(path).write_text(buf.getvalue(), encoding="utf-8")


def read_classes_csv(path: Path | str) -> list[str]:
    """Read a classes.csv (any variant above) and return the label names ordered by id,
    so that ``labels[k]`` has id ``k + 1``.

    Raises ClassesError when the file is missing or empty, or when ids are repeated or
    leave gaps (e.g. 1, 2, 4).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ClassesError(f"{path} not found: a model folder needs classes.csv (header 'labels,id')") from None
    rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
    if not rows:
        raise ClassesError(f"{path} is empty: expected a 'labels,id' header and one row per label")
    header = [c.strip().lower() for c in rows[0]]
    name_col, id_col = 0, None
    if header and header[0] in ("labels", "label", "name", "names", "class", "classes") or "id" in header:
        for i, c in enumerate(header):
            if c in ("labels", "label", "name", "names", "class", "classes"):
                name_col = i
            elif c == "id":
                id_col = i
        rows = rows[1:]
    elif len(rows[0]) >= 2 and rows[0][1].strip().lstrip("-").isdigit():
        id_col = 1
    pairs: list[tuple[int, str]] = []
    for k, row in enumerate(rows, start=1):
        name = row[name_col].strip() if name_col < len(row) else ""
        if id_col is not None and id_col < len(row) and row[id_col].strip():
            try:
                ident = int(row[id_col])
            except ValueError:
                raise ClassesError(f"{path}, row {k + 1}: id {row[id_col]!r} is not an integer") from None
        else:
            ident = k
        if ident == 0 and name.lower() in ("background", "__background__", "bg"):
            continue
        if not name:
            raise ClassesError(f"{path}, row {k + 1}: empty label name")
        pairs.append((ident, name))
    if not pairs:
        raise ClassesError(f"{path} lists no labels")
    pairs.sort()
    ids = [i for i, _ in pairs]
    if ids[0] == 0:  # 0-based ids without a background row
        ids = [i + 1 for i in ids]
    if ids != list(range(1, len(ids) + 1)):
        raise ClassesError(f"{path}: ids must be 1..{len(ids)} without gaps or repeats, got {ids}")
    return [name for _, name in pairs]
