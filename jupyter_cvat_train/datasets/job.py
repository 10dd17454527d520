"""The ``validate`` job kind: one dataset validation run as a job.

job.json: ``{"kind": "validate", "dataset": PATH, "format": null | format id}``.
Writes ``output/report.json`` (the ``cvat-train validate --json`` object) and returns the
summary as the job's outputs: format, images, annotations, labels, subsets, errors and
warnings (counts), ok, report (the path of report.json). The job succeeds when the
export was read, whatever its findings; it fails when the input is no readable export.
"""

from __future__ import annotations

from ..jobs.runtime import JobContext, JobError, write_json_atomic


def validate_job(ctx: JobContext) -> dict:
    from .validate import validate_export

    dataset = ctx.spec.get("dataset")
    if not dataset:
        raise JobError("job.json needs 'dataset': the path of a CVAT export (zip or folder)")
    ctx.progress(0, 1, "exports")
    report = validate_export(dataset, ctx.spec.get("format"))
    data = report.to_dict()
    path = ctx.output_dir / "report.json"
    write_json_atomic(path, data)
    for f in report.findings[:20]:
        ctx.log(f"{f.severity}: {f.code}: {f.message}")
    ctx.progress(1, 1, "exports")
    if not report.readable:
        raise JobError(report.errors[0].message)
    return {
        "format": data["format"],
        "images": data["images"],
        "annotations": data["annotations"],
        "labels": data["labels"],
        "subsets": data["subsets"],
        "errors": len(data["errors"]),
        "warnings": len(data["warnings"]),
        "ok": data["ok"],
        "report": str(path),
        "message": f"{len(data['errors'])} error(s), {len(data['warnings'])} warning(s)",
    }
