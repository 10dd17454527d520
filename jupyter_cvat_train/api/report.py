""":class:`ValidationReport`: the core's validation report with a notebook display."""

from __future__ import annotations

from pathlib import Path

from .display import esc, table

MAX_FINDINGS_SHOWN = 50


class ValidationReport:
    """The result of :func:`jupyter_cvat_train.api.validate`.

    ``ok`` (bool: readable and no error; warnings allowed), ``summary`` (dict: format,
    subsets, images, annotations, labels {name: annotations}, box_size in pixels),
    ``findings`` (list of Finding: severity, code, message, hint, path), ``errors``,
    ``warnings``, ``readable``, ``to_dict()`` (the ``cvat-train validate --json``
    object). Any other attribute is the core report's
    (:class:`jupyter_cvat_train.datasets.validate.ValidationReport`).
    """

    def __init__(self, report):
        self.report = report

    def __getattr__(self, name):
        if name == "report":  # not set yet (copy/pickle): no recursion
            raise AttributeError(name)
        return getattr(self.report, name)

    @property
    def ok(self) -> bool:
        return self.report.ok

    @property
    def summary(self) -> dict:
        return self.report.summary

    @property
    def findings(self) -> list:
        return self.report.findings

    def to_dict(self) -> dict:
        return self.report.to_dict()

    def _verdict(self) -> str:
        n_err, n_warn = len(self.report.errors), len(self.report.warnings)
        verdict = "OK: ready to train" if self.ok else "NOT READY: fix the errors"
        return f"{n_err} error{'s' if n_err != 1 else ''}, {n_warn} warning{'s' if n_warn != 1 else ''}. {verdict}"

    def __repr__(self) -> str:
        r = self.report
        name = Path(str(r.path)).name
        if not r.readable:
            f = r.errors[0]
            return f"cannot read {name} as a CVAT export: {f.message} (hint: {f.hint})"
        s = self.summary
        labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
        return (
            f"{name}: {s['format']}, {s['images']} images, {s['annotations']} annotations ({labels}). {self._verdict()}"
        )

    def _repr_html_(self) -> str:
        r = self.report
        color = "var(--jp-success-color1, #388e3c)" if self.ok else "var(--jp-error-color1, #d32f2f)"
        parts = [
            '<div class="cvat-train-report">',
            f"<div><b>{esc(Path(str(r.path)).name)}</b>: "
            f'<span style="color:{color}">{esc(self._verdict())}</span></div>',
        ]
        if r.readable:
            s = self.summary
            subsets = ", ".join(f"{k} ({v})" for k, v in s["subsets"].items())
            parts.append(
                table(
                    ["format", "images", "annotations", "subsets"],
                    [[s["format"], s["images"], s["annotations"], subsets]],
                )
            )
            if s["labels"]:
                parts.append(table(["label", "annotations"], [[k, v] for k, v in s["labels"].items()], "labels"))
        if self.findings:
            rows = [[f.severity, f.code, f.message, f.hint] for f in self.findings[:MAX_FINDINGS_SHOWN]]
            more = len(self.findings) - MAX_FINDINGS_SHOWN
            caption = "findings" + (f" (first {MAX_FINDINGS_SHOWN}; {more} more in .findings)" if more > 0 else "")
            parts.append(table(["severity", "code", "message", "hint"], rows, caption))
        parts.append("</div>")
        return "".join(parts)
