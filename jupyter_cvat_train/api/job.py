""":class:`Job`: a job of the runs root as a Python object (state, logs, metrics, outputs).

A Job is only a job id and a runs root: everything is read again from the job's folder
and the runs root's index when asked, so a Job made after a kernel restart
(:func:`jobs`, :meth:`Job.get`) sees the same job as the one that started it, and the
panel and ``cvat-train jobs`` see the job too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

from . import config
from .display import JOB_MIME, VEGALITE_MIME, MimeBundle, esc, format_progress, image_tag, progress_bar, table

FINAL = ("succeeded", "failed", "cancelled")
POLL_SECONDS = 0.5
FRESH_SECONDS = 0.2  # a job dict read this recently is not read again for an attribute


class JobFailed(RuntimeError):
    """A job ended failed or cancelled; the message is the job's. ``job``: the Job."""

    def __init__(self, job: Job, message: str):
        super().__init__(message)
        self.job = job


class JobNotFound(LookupError):
    """No job with this id (or unique part of one) in the runs root."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "no such job"


class Job:
    """A job in the runs root (:func:`jupyter_cvat_train.api.config.runs_root`).

    Attributes read the job afresh each time: ``id`` (str), ``kind`` ("train",
    "annotate", "sync", "validate"), ``state`` ("queued", "running", "succeeded",
    "failed", "cancelled"), ``progress`` ({"done", "total", "unit"}), ``message`` (str),
    ``outputs`` (dict: for train ``model_dir``, ``map``, ``map_50``; for annotate
    ``output`` (the zip), ``previews``, ``counts``, ...), ``dir`` (the job folder).
    """

    def __init__(self, job_id: str, _data: dict | None = None, runs_root: Path | None = None):
        self.id = job_id
        self.runs_root = Path(runs_root) if runs_root is not None else config.runs_root()
        self._data = _data
        self._read_at = time.monotonic() if _data is not None else 0.0
        self._spec: dict | None = None
        self.copy_model_to: str | None = None  # train(output=...): where wait() copies the model

    # -- finding jobs -------------------------------------------------------------------
    @classmethod
    def get(cls, job_id: str | Job) -> Job:
        """The job whose id is ``job_id`` or contains it (e.g. its last 6 characters).
        Raises JobNotFound (no job, or several match: the message says which)."""
        from ..jobs.manager import JobNotFound as CoreNotFound

        if isinstance(job_id, Job):
            return job_id
        if not isinstance(job_id, str) or not job_id.strip():
            raise JobNotFound(f"expected a job id (text), got {str(job_id)[:60]!r}")
        job_id = job_id.strip()
        try:
            m = config.manager()
        except FileNotFoundError as e:
            raise JobNotFound(f"no job {job_id[:60]!r}: {e}") from None
        try:
            return cls(job_id, m.get(job_id), m.runs_root)
        except CoreNotFound:
            pass
        matches = [j for j in m.list_jobs(refresh=False) if job_id in j["id"]]
        if len(matches) == 1:
            return cls(matches[0]["id"], matches[0], m.runs_root)
        if not matches:
            raise JobNotFound(
                f"no job {job_id[:60]!r} in {m.runs_root}; list them with jobs() or %cvat_train jobs"
            ) from None
        ids = ", ".join(j["id"] for j in matches[:5])
        raise JobNotFound(f"{job_id[:60]!r} matches {len(matches)} jobs ({ids}): give more of the id")

    def _manager(self):
        """The JobManager of this job's runs root."""
        return config.manager(root=self.runs_root)

    # -- state --------------------------------------------------------------------------
    def refresh(self) -> dict:
        """The job dict, read again (and, when no other process schedules the runs root,
        queued jobs started and dead ones settled first). Raises JobNotFound once the
        job was deleted."""
        from ..jobs.manager import JobNotFound as CoreNotFound

        m = self._manager()
        with config.scheduling(m):
            try:
                if (self._data or {}).get("state") not in FINAL:
                    m.poll()
                self._data = m.get(self.id)
                self._read_at = time.monotonic()
            except CoreNotFound:
                raise JobNotFound(f"job {self.id} is no longer in {m.runs_root} (deleted)") from None
        return self._data

    def _fresh(self) -> dict:
        """The job dict: as last read when the job had ended or was read under
        FRESH_SECONDS ago (one display reads several attributes), else read again."""
        if self._data is not None and (
            self._data.get("state") in FINAL or time.monotonic() - self._read_at < FRESH_SECONDS
        ):
            return self._data
        return self.refresh()

    @property
    def kind(self) -> str:
        return self._fresh()["kind"]

    @property
    def state(self) -> str:
        return str(self._fresh()["state"])

    @property
    def progress(self) -> dict:
        return dict(self._fresh()["progress"])

    @property
    def message(self) -> str:
        return self._fresh()["message"]

    @property
    def outputs(self) -> dict:
        """The job's outputs (empty until it ends), with ``dir``: the job folder."""
        job = self._fresh()
        return {**job.get("outputs", {}), "dir": job["dir"]}

    @property
    def dir(self) -> Path:
        return Path(self._fresh()["dir"])

    @property
    def done(self) -> bool:
        return self.state in FINAL

    @property
    def spec(self) -> dict:
        """The job's job.json (the checked spec; paths absolute); {} when unreadable."""
        if self._spec is None:
            try:
                self._spec = self._manager().job_dir(self.id).read_spec()
            except Exception:  # noqa: BLE001 - an unreadable spec only hides the label
                self._spec = {}
        return self._spec

    @property
    def name(self) -> str:
        """A short label: the kind and what it works on (file names, never full paths)."""
        s, kind = self.spec, self.kind
        if kind == "train":
            return f"train {s.get('template') or ''} on {Path(str(s.get('dataset') or '?')).name}".replace("  ", " ")
        if kind == "annotate":
            return f"annotate {Path(str(s.get('images') or '?')).name}"
        if kind == "sync":
            return f"sync {s.get('direction') or ''} {Path(str(s.get('workspace') or '?')).name}"
        if kind == "validate":
            return f"validate {Path(str(s.get('dataset') or '?')).name}"
        return kind

    # -- waiting, logs, events ----------------------------------------------------------
    def wait(self, timeout: float | None = None, raise_on_failure: bool = True) -> Job:
        """Block until the job ends (this process schedules the runs root meanwhile when
        no other does). Returns the job. Raises JobFailed (the job's message) when it
        failed or was cancelled (unless ``raise_on_failure`` is False), TimeoutError
        after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.refresh()
            if job["state"] in FINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {self.id} is still {job['state']} after {timeout:g} s")
            time.sleep(POLL_SECONDS)
        if raise_on_failure and job["state"] != "succeeded":
            raise JobFailed(self, f"job {self.id} {job['state']}: {job['message'] or 'no message'}")
        model_dir = (job.get("outputs") or {}).get("model_dir")
        if job["state"] == "succeeded" and self.copy_model_to and model_dir:
            import shutil

            shutil.copytree(model_dir, self.copy_model_to)
            self.copy_model_to = None
        return self

    def logs(self, follow: bool = False) -> str | Iterator[str]:
        """The job's log (stdout and stderr of its process) as one text; with
        ``follow``, an iterator of text chunks as the job writes them, ending when the
        job ends."""
        if follow:
            return self._follow()
        from ..jobs.tail import read_from

        path, offset, chunks = self._manager().job_dir(self.id).log_path, 0, []
        while True:
            data, offset = read_from(path, offset, whole_lines=False)
            if not data:
                return b"".join(chunks).decode("utf-8", "replace")
            chunks.append(data)

    def _follow(self) -> Iterator[str]:
        from ..jobs.tail import read_from

        path, offset = self._manager().job_dir(self.id).log_path, 0
        while True:
            done = self.refresh()["state"] in FINAL
            while True:
                data, offset = read_from(path, offset, whole_lines=not done)
                if not data:
                    break
                yield data.decode("utf-8", "replace")
            if done:
                return
            time.sleep(POLL_SECONDS)

    def events(self) -> list[dict]:
        """Every event the job wrote so far (dicts with a ``type``: state, progress,
        metrics, warning, ...), oldest first."""
        return self._manager().job_dir(self.id).read_events()

    @property
    def metrics(self):
        """Per-epoch evaluation of a train job, one row per epoch: epoch, loss, map
        (mAP@[.5:.95]), map_50, map_75 (fractions 0..1) and ``AP/<label>`` per label.
        A pandas DataFrame when pandas is installed, else a list of dicts."""
        rows = []
        for e in self.events():
            if e.get("type") != "metrics":
                continue
            row = {k: e.get(k) for k in ("epoch", "loss", "map", "map_50", "map_75")}
            for label, ap in (e.get("per_label") or {}).items():
                row[f"AP/{label}"] = ap
            rows.append(row)
        try:
            import pandas
        except ImportError:
            return rows
        return pandas.DataFrame(rows)

    def _metric_rows(self) -> list[dict]:
        m = self.metrics
        return m if isinstance(m, list) else m.to_dict("records")

    def cancel(self, wait: bool = False) -> Job:
        """Cancel the job (SIGTERM, SIGKILL after the grace period); a finished job is
        left as it is. ``wait``: until it has stopped."""
        m = self._manager()
        with config.scheduling(m):
            self._data = m.cancel(self.id, wait=wait)
            self._read_at = time.monotonic()
        return self

    # -- TensorBoard and charts ---------------------------------------------------------
    def tensorboard(self) -> str:
        """The URL of this job's TensorBoard, started by the Jupyter server (through its
        proxy). The server is found as :func:`jupyter_cvat_train.api.server.find_server`
        says; raises RuntimeError naming the fix when none is found or it refuses."""
        from .server import find_server, server_request

        server = find_server()
        reply = server_request(server, "POST", f"cvat-train/api/jobs/{self.id}/tensorboard")
        url = reply.get("url") or ""
        if url.startswith("/"):
            url = server.origin + url
        return url

    def plot(self) -> MimeBundle:
        """The loss and mAP per epoch as a Vega-Lite v5 chart (a mime bundle that
        JupyterLab draws; ``bundle[VEGALITE_MIME]`` is the spec)."""
        rows = self._metric_rows()
        values = [
            {"epoch": r["epoch"], "metric": name, "value": r[key]}
            for r in rows
            for key, name in (("loss", "loss"), ("map", "mAP@[.5:.95]"), ("map_50", "mAP@.5"))
            if r.get(key) is not None
        ]
        spec = {  # one row per group (loss, mAP), each with its own y scale
            "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
            "title": f"{self.name} ({self.id})",
            "data": {"values": values},
            "transform": [{"calculate": "datum.metric == 'loss' ? 'loss' : 'mAP'", "as": "group"}],
            "facet": {"row": {"field": "group", "type": "nominal", "title": None}},
            "spec": {
                "width": 360,
                "height": 140,
                "mark": {"type": "line", "point": True},
                "encoding": {
                    "x": {
                        "field": "epoch",
                        "type": "quantitative",
                        "title": "epoch",
                        "axis": {"tickMinStep": 1, "format": "d"},
                    },
                    "y": {"field": "value", "type": "quantitative", "title": None},
                    "color": {"field": "metric", "type": "nominal"},
                },
            },
            "resolve": {"scale": {"y": "independent"}},
        }
        text = "\n".join(
            f"epoch {r['epoch']}: loss {r.get('loss')}, mAP {r.get('map')}, mAP@.5 {r.get('map_50')}" for r in rows
        )
        return MimeBundle({VEGALITE_MIME: spec, "text/plain": text or "no metrics yet"})

    # -- display ------------------------------------------------------------------------
    def _summary_line(self, job: dict) -> str:
        prog = format_progress(job["progress"])
        prog = f" {prog}" if prog else ""
        msg = f": {job['message']}" if job["message"] else ""
        return f"{job['kind']} job {job['id']} {job['state']}{prog}{msg}"

    def __repr__(self) -> str:
        try:
            return f"<Job {self._summary_line(self._fresh())}>"
        except Exception:  # noqa: BLE001 - a repr never raises
            return f"<Job {self.id}>"

    def _repr_html_(self) -> str:
        return self._repr_mimebundle_()["text/html"]

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        """Three entries: the job MIME type (``{"jobId", "name", "kind"}``, rendered live
        by the JupyterLab extension), a static HTML snapshot, and one line of text."""
        job = self._fresh()
        name = self.name
        return {
            JOB_MIME: {"jobId": job["id"], "name": name, "kind": job["kind"]},
            "text/html": self._html(job, name),
            "text/plain": f"{name}\n{self._summary_line(job)}",
        }

    def _html(self, job: dict, name: str) -> str:
        p = job["progress"]
        frac = (p["done"] / p["total"]) if p.get("total") else (1.0 if job["state"] == "succeeded" else None)
        prog = format_progress(p)
        parts = [
            f'<div class="cvat-train-job" data-job-id="{esc(job["id"])}">',
            f"<div><b>{esc(name)}</b> <code>{esc(job['id'])}</code></div>",
            f"<div>{esc(job['state'])} {progress_bar(frac, job['state'])} {esc(prog)}</div>",
        ]
        if job["message"]:
            parts.append(f"<div>{esc(job['message'])}</div>")
        if job["kind"] == "train":
            rows = self._metric_rows()
            if rows:
                last = rows[-1]
                parts.append(
                    table(
                        ["epoch", "loss", "mAP@[.5:.95]", "mAP@.5"],
                        [[last.get("epoch"), last.get("loss"), last.get("map"), last.get("map_50")]],
                        "last epoch",
                    )
                )
                labels = [(k[3:], v) for k, v in last.items() if k.startswith("AP/")]
                if labels:
                    rows = [[k, "n/a" if v is None else v] for k, v in labels]  # None: no box of it to evaluate
                    parts.append(table(["label", "AP"], rows, "per-label AP (last epoch)"))
        if job["kind"] == "annotate" and job["state"] == "succeeded":
            parts.append(self._annotate_html(job.get("outputs") or {}))
        parts.append("</div>")
        return "".join(parts)

    def _annotate_html(self, out: dict) -> str:
        counts = out.get("counts") or {}
        parts = [
            f"<div>{esc(out.get('images_done'))} of {esc(out.get('images_total'))} images annotated, "
            f"{esc(out.get('images_failed') or 0)} failed; wrote {esc(Path(str(out.get('output') or '')).name)}</div>"
        ]
        if counts:
            parts.append(table(["label", "annotations"], [[k, v] for k, v in counts.items()], "annotations per label"))
        parts.extend(image_tag(p, "annotation preview") for p in (out.get("previews") or [])[:6])
        return "".join(parts)

    def previews(self) -> MimeBundle:
        """The preview images of an annotate job (run with ``preview=N``) as HTML."""
        return MimeBundle(
            {
                "text/html": "".join(image_tag(p, "annotation preview") for p in self.outputs.get("previews", [])),
                "text/plain": "\n".join(self.outputs.get("previews", [])) or "no previews",
            }
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, Job) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def jobs() -> list[Job]:
    """Every job of the runs root, oldest first (unfinished ones read afresh; queued ones
    started when no other process schedules). [] when there is no runs root yet."""
    try:
        m = config.manager()
    except FileNotFoundError:
        return []
    with config.scheduling(m):
        m.poll()
        return [Job(j["id"], j, m.runs_root) for j in m.list_jobs()]
