"""``cvat-train validate PATH [--format F] [--json]``: validate a CVAT export.

Exit status: 0 no errors (warnings allowed), 1 the report has errors, 2 the input cannot
be read as an export at all. Bad input never gives a traceback.
"""

from __future__ import annotations

import json
import sys

import click

from ..datasets.formats import FORMATS

SHOW_PER_CODE = 5


def render(report) -> str:
    """The human-readable report: summary table, then findings grouped by code (the
    first few items of each), errors first."""
    lines = []
    if not report.readable:
        f = report.errors[0]
        return f"cannot read {report.path} as a CVAT export:\n  {f.message}\n  hint: {f.hint}"
    s = report.summary
    lines.append(f"{report.path}")
    lines.append(f"  format       {s['format']}")
    lines.append(f"  images       {s['images']}   subsets: " + ", ".join(f"{k} ({v})" for k, v in s["subsets"].items()))
    lines.append(f"  annotations  {s['annotations']}")
    if s["labels"]:
        width = max(len(k) for k in s["labels"])
        lines.append("  labels")
        for name, count in s["labels"].items():
            lines.append(f"    {name:<{width}}  {count:>8}")
    bs = s.get("box_size") or {}
    if bs.get("width"):
        lines.append("  box size (pixels)   min     p5  median     p95     max")
        for key in ("width", "height"):
            st = bs[key]
            lines.append(f"    {key:<16}" + "".join(f"{st[k]:>8g}" for k in ("min", "p5", "median", "p95", "max")))
    groups: dict[tuple[str, str], list] = {}
    for f in report.findings:
        groups.setdefault((f.severity, f.code), []).append(f)
    lines.append("")
    for (severity, code), fs in groups.items():
        lines.append(f"{severity.upper()} {code} x{len(fs)}")
        for f in fs[:SHOW_PER_CODE]:
            lines.append(f"  - {f.message}")
        if len(fs) > SHOW_PER_CODE:
            lines.append(f"  ... and {len(fs) - SHOW_PER_CODE} more (--json lists all)")
        lines.append(f"  hint: {fs[0].hint}")
    n_err, n_warn = len(report.errors), len(report.warnings)
    verdict = "OK: ready to train" if report.ok else "NOT READY: fix the errors above"
    lines.append(f"{n_err} error(s), {n_warn} warning(s). {verdict}")
    return "\n".join(lines)


@click.command(name="validate")
@click.argument("path", type=click.Path(path_type=str))
@click.option(
    "--format",
    "format_",
    type=click.Choice(sorted(FORMATS)),
    default=None,
    help="Force the format instead of detecting it from the layout.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the text report.")
def validate(path: str, format_: str | None, as_json: bool) -> None:
    """Validate the CVAT export at PATH (a .zip or a folder) and report every problem.

    Exit status: 0 no errors, 1 errors found, 2 PATH is not a readable CVAT export.
    """
    from ..datasets.validate import validate_export

    report = validate_export(path, format_)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1))
    else:
        click.echo(render(report), err=not report.readable)
    sys.exit(2 if not report.readable else 0 if report.ok else 1)
