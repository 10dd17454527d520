"""HTML and text snapshots of API objects for notebooks (no IPython needed).

Everything that comes from a job, an export or a user is escaped with
:func:`html.escape`; images are inlined as base64 ``data:`` URIs of files the caller
names (annotation previews), read with a size cap.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

JOB_MIME = "application/vnd.jupyter-cvat-train.job+json"
VEGALITE_MIME = "application/vnd.vegalite.v5+json"
MAX_INLINE_IMAGE_BYTES = 4 << 20  # a preview larger than this is named, not inlined
STATE_COLORS = {
    "queued": "var(--jp-ui-font-color2, #757575)",
    "running": "var(--jp-brand-color1, #1976d2)",
    "succeeded": "var(--jp-success-color1, #388e3c)",
    "failed": "var(--jp-error-color1, #d32f2f)",
    "cancelled": "var(--jp-warn-color1, #f57c00)",
}


def esc(value) -> str:
    """``value`` as text, HTML-escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def fmt_number(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
    return "" if value is None else str(value)


def format_progress(progress: dict) -> str:
    """``done/total unit`` ("12/40 steps", "3.1/8.8 MiB"); "" when there is no total."""
    done, total, unit = progress.get("done") or 0, progress.get("total"), progress.get("unit") or ""
    if not total:
        return ""
    if unit in ("bytes", "B"):
        return f"{done / 2**20:.1f}/{total / 2**20:.1f} MiB"
    return f"{done:g}/{total:g} {unit}".strip()


def table(headers: list[str], rows: list[list], caption: str | None = None) -> str:
    """An HTML table, every cell escaped."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{esc(fmt_number(c))}</td>" for c in r) + "</tr>" for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="cvat-train-table">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def progress_bar(fraction: float | None, state: str) -> str:
    """A <progress>-like bar (a div, so it takes the state's color), width in percent."""
    pct = 0 if fraction is None else max(0.0, min(1.0, fraction)) * 100
    color = STATE_COLORS.get(state, STATE_COLORS["queued"])
    return (
        '<div style="width:16em;height:0.7em;border:1px solid var(--jp-border-color1,#bdbdbd);'
        'display:inline-block;vertical-align:middle;border-radius:2px">'
        f'<div style="width:{pct:.0f}%;height:100%;background:{color}"></div></div>'
    )


def image_tag(path: str | Path, alt: str, max_width: int = 320) -> str:
    """An <img> with the file inlined as a data URI (PNG/JPEG), or a line naming it
    when it cannot be read or is over MAX_INLINE_IMAGE_BYTES."""
    p = Path(path)
    mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(p.suffix.lower())
    try:
        if mime is None or p.stat().st_size > MAX_INLINE_IMAGE_BYTES:
            raise OSError
        data = base64.b64encode(p.read_bytes()).decode("ascii")
    except OSError:
        return f"<div>{esc(p.name)} (not shown)</div>"
    return (
        f'<figure style="display:inline-block;margin:4px"><img src="data:{mime};base64,{data}" alt="{esc(alt)}" '
        f'style="max-width:{max_width}px"/><figcaption>{esc(p.name)}</figcaption></figure>'
    )


class MimeBundle(dict):
    """A mime bundle (``{mime type: data}``) that notebooks display as itself."""

    def _repr_mimebundle_(self, include=None, exclude=None):
        return dict(self)

    def _repr_pretty_(self, p, cycle) -> None:  # IPython's text form: the bundle's text, not the dict
        p.text(str(self.get("text/plain", "")))
