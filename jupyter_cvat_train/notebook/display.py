"""Displayable lists for the magics: jobs and model templates as HTML tables with a
text fallback (the objects stay plain lists to compute on)."""

from __future__ import annotations

from ..api.display import MimeBundle, esc, format_progress, table


class JobList(list):
    """A list of :class:`jupyter_cvat_train.api.Job` shown as a table."""

    def _rows(self) -> list[list]:
        rows = []
        for job in self:
            d = job._fresh()
            rows.append([d["id"], d["kind"], d["state"], format_progress(d["progress"]), d["message"][:80]])
        return rows

    def _repr_html_(self) -> str:
        if not self:
            return "<div>no jobs</div>"
        return table(["id", "kind", "state", "progress", "message"], self._rows())

    def _repr_pretty_(self, p, cycle) -> None:
        if not self:
            p.text("no jobs")
            return
        p.text("\n".join("  ".join(str(c) for c in r).rstrip() for r in self._rows()))


class TemplateList(list):
    """A list of model templates (:class:`jupyter_cvat_train.models.Template`) shown as a table."""

    def _rows(self) -> list[list]:
        from ..models import DEFAULT_TEMPLATE

        rows = []
        for t in self:
            d = t.defaults
            epochs = d.get("epochs") or f"auto (num_steps {d.get('num_steps')})"
            name = t.name + (" (default)" if t.name == DEFAULT_TEMPLATE else "")
            rows.append([name, t.task, d.get("image_size"), d.get("batch_size"), epochs, t.description])
        return rows

    def _repr_html_(self) -> str:
        return table(["name", "task", "image size", "batch size", "epochs", "description"], self._rows())

    def _repr_pretty_(self, p, cycle) -> None:
        p.text("\n".join(f"{r[0]}: {r[1]}, image_size {r[2]}, batch_size {r[3]}" for r in self._rows()))


def tensorboard_view(url: str, height: int = 600) -> MimeBundle:
    """A TensorBoard served through the Jupyter server's proxy: an iframe and a link."""
    return MimeBundle(
        {
            "text/html": (
                f'<div><a href="{esc(url)}" target="_blank" rel="noopener">Open TensorBoard in a new tab</a></div>'
                f'<iframe src="{esc(url)}" style="width:100%;height:{int(height)}px;border:0"></iframe>'
            ),
            "text/plain": f"TensorBoard: {url}",
        }
    )
