"""HTTP and websocket handlers under ``{base_url}cvat-train/api/``.

Thin: each verb checks its input, hands the work to the core (in the thread pool when
it may block) and answers JSON. Every handler is authenticated and authorized with
jupyter_server's decorators (``auth_resource = "cvat_train"``; the websocket with
``ws_authenticated`` plus an explicit authorizer check). Errors are JSON
``{"message", "code", "details"}``: 4xx for the client's mistakes, 5xx for ours; a
message never holds a traceback (an unexpected error is logged, and answered 500 with
its type only) nor more than a short excerpt of what the client sent. Dataset
validation runs in the service's validation pool (503 with ``Retry-After`` when full).

Routes (relative to ``{base_url}cvat-train/api/``)::

    GET    version                   {"version"}
    GET    templates                 {"templates": [template.to_dict()...]}
    POST   templates/check {path}    {"path", "ok", "template", "commands"} or {"path", "ok": false,
                                     "errors"}: the form preview of a template file in the root
    GET    devices                   {"devices": [{"id", "name", "memory_bytes"?}], "gpus", "torch", "note"}
    GET    backends                  {"default", "backends": [{"id", "name", "address"?}]}: where jobs
                                     may run (the Train form's choice; never the cluster's token)
    POST   datasets/validate {path}  the validation report (200 even with errors)
    GET    jobs                      {"jobs": [job...]}  (creation order)
    POST   jobs {kind, ...}          201 job  (400/403/404/422 with details)
    GET    jobs/{id}                 job
    DELETE jobs/{id}[?remove_files=true]
                                     running/queued: cancel, 202 job;
                                     finished: forget (files kept unless asked), 204
    GET    jobs/{id}/log?offset=N    {"offset", "next_offset", "text", "state"}
    WS     jobs/{id}/stream?log_offset=N&events_offset=M
                                     {"type": "state", "job"} first, then
                                     {"type": "log", "offset", "next_offset", "text"},
                                     {"type": "event", "offset", "next_offset", "event"},
                                     {"type": "state", "job"} on changes, and last
                                     {"type": "end", "job"}; then the server closes
    POST   jobs/{id}/tensorboard     {"url": "{base_url}proxy/<port>/", "port"}
    GET    jobs/{id}/plan?offset=&limit=  a page of a sync preview's plan (server/storage.py)
    POST   storage/check {storage, endpoint_url?, workspace?, write?}
                                     identity, endpoint, bucket, list, write checks (server/storage.py)
    GET    cvat/connection           {ok, host, user, source, server_version, message}: the CVAT
                                     connection test with the server's environment (never a secret)

    GET    models/labels?path=P      {"path", "labels"}: a model folder's classes.csv (server/annotate.py)
    GET    annotate/images?path=P    {"path", "kind", "images", "labels", "format"}: what an
                                     annotate job finds at P (server/annotate.py)
    GET    jobs/{id}/files/{path}    a file beneath the job's output/ folder (server/annotate.py)
"""

from __future__ import annotations

import asyncio
import json

from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized, ws_authenticated
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.base.websocket import WebSocketMixin
from jupyter_server.utils import url_path_join
from tornado import web, websocket

from .._version import __version__
from ..jobs.manager import JobNotFound
from ..jobs.runtime import FINAL_STATES
from ..jobs.runtime.messages import shown
from ..jobs.specs import SpecError, resolve_inside, validate_dataset
from ..jobs.tail import JobFollower, read_from
from .annotate import CHUNK, DOWNLOAD_TYPES, INLINE_TYPES, annotate_images, model_labels, open_job_output_file
from .service import PoolFull
from .storage import connection_check, plan_page, running_sync, running_sync_error
from .tensorboard import TensorBoardError

AUTH_RESOURCE = "cvat_train"
STREAM_INTERVAL = 0.1  # seconds between reads of a followed job's files
JOB_ID = r"(?P<job_id>[A-Za-z0-9][A-Za-z0-9._-]*)"
MAX_MESSAGE = 2000  # characters of an error message sent to a client


class ApiError(web.HTTPError):
    """An HTTP error whose JSON body carries ``details``; ``headers`` are added to the
    error response (e.g. ``Retry-After``)."""

    def __init__(self, status: int, message: str, details=None, headers: dict | None = None):
        super().__init__(status, message.replace("%", "%%"))
        self.message = message
        self.details = details
        self.headers = headers or {}


class ApiHandler(APIHandler):
    """Base for the extension's REST handlers."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self):
        return self.settings["cvat_train"]

    def write_error(self, status_code, **kwargs):
        """``{"message", "code", "details"}``, never a traceback: an exception that is not
        an HTTP error is our bug, logged by tornado and answered with its type only."""
        self.set_header("Content-Type", "application/json")
        reason = self._reason
        details = None
        exc_info = kwargs.get("exc_info")
        if exc_info:
            e = exc_info[1]
            if isinstance(e, ApiError):
                reason, details = e.message, e.details
                for name, value in e.headers.items():
                    self.set_header(name, value)
            elif isinstance(e, web.HTTPError) and e.log_message:
                reason = e.log_message % e.args if e.args else e.log_message
            elif not isinstance(e, web.HTTPError):
                reason = f"internal error ({type(e).__name__}); the server log has the details"
        if len(reason) > MAX_MESSAGE:
            reason = reason[: MAX_MESSAGE - 3] + "..."
        self.finish(json.dumps({"message": reason, "code": status_code, "details": details}))

    def json_body(self) -> dict:
        """The request body as a JSON object, or a 400 (not JSON, not UTF-8, nested too
        deeply, or not an object)."""
        try:
            body = json.loads(self.request.body or b"{}")
        except RecursionError:
            raise ApiError(400, "the request body is nested too deeply to be a request") from None
        except ValueError as e:  # JSONDecodeError and UnicodeDecodeError
            raise ApiError(400, f"the request body is not valid JSON: {shown(str(e), 200)}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object {...}")
        return body

    async def heavy(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` in the validation pool; 503 with Retry-After when it is full."""
        try:
            return await self.service.run_heavy(fn, *args, **kwargs)
        except PoolFull as e:
            raise ApiError(503, str(e), headers={"Retry-After": str(e.retry_after)}) from None

    async def job(self, job_id: str) -> dict:
        """The job dict (from the watcher's snapshot, else the store), or a 404."""
        job = self.service.manager.snapshot_get(job_id)
        if job is not None:
            return job
        try:
            return await self.service.run(self.service.manager.get, job_id)
        except JobNotFound:
            raise ApiError(404, f"no job {shown(job_id)} in {self.service.manager.runs_root}") from None


def spec_error(e: SpecError) -> ApiError:
    return ApiError(e.status, str(e), e.details)


class VersionHandler(ApiHandler):
    """``GET version`` → ``{"version": "x.y.z"}``."""

    @web.authenticated
    @authorized
    def get(self):
        self.finish(json.dumps({"version": __version__}))


class TemplatesHandler(ApiHandler):
    """``GET templates`` → ``{"templates": [...], "broken": [...]}``: the catalog with
    parameter schemas, and the user template files skipped (each with its problem)."""

    @web.authenticated
    @authorized
    async def get(self):
        def load():
            from .. import models

            catalog = models.load_catalog()
            templates = sorted(catalog.templates.values(), key=lambda t: (t.name != models.DEFAULT_TEMPLATE, t.name))
            return {"templates": [t.to_dict() for t in templates], "broken": list(catalog.skipped)}

        self.finish(json.dumps(await self.service.run(load)))


class TemplateCheckHandler(ApiHandler):
    """``POST templates/check {"path"}`` → ``{"path", "ok": true, "template", "commands"}``
    or ``{"path", "ok": false, "errors": ["FILE:LINE: problem", ...]}``: the form preview
    of a template file being edited (the panel's "Preview training form"). ``path`` is a
    ``.yaml`` / ``.yml`` file inside the server root (checked like every client path: 403
    outside it, 404 missing, 400 for another file); the file is checked as the catalog
    would load it (``models.catalog.check_template_file``, ``cvat-train template
    check``'s code) and nothing in it is run or fetched. File names in the errors are
    relative to the root."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        try:
            path = resolve_inside(self.service.root_dir, body.get("path"), "path")
        except SpecError as e:
            raise spec_error(e) from None
        if path.suffix.lower() not in (".yaml", ".yml") or not path.is_file():
            raise ApiError(400, f"path: {shown(body.get('path'))} is not a template file (.yaml or .yml)")
        rel = self.service.shown_path(str(path))

        def check():
            from ..models.catalog import TemplateError, check_template_file, preview_commands

            try:
                t = check_template_file(path)
            except TemplateError as e:
                lines = [line.replace(str(path), rel, 1) for line in str(e).splitlines() if line.strip()]
                return {"path": rel, "ok": False, "errors": lines}
            out = t.to_dict()
            out["source"] = rel
            return {"path": rel, "ok": True, "template": out, "commands": preview_commands(t)}

        self.finish(json.dumps(await self.service.run(check), default=str))


class DevicesHandler(ApiHandler):
    """``GET devices`` → ``{"devices": [{"id", "name", "memory_bytes"?}], "gpus", "torch",
    "note"}``: what the Train form offers (probed once per server, in a subprocess)."""

    @web.authenticated
    @authorized
    async def get(self):
        reply = await self.service.devices()
        self.finish(json.dumps({k: v for k, v in reply.items() if k != "failed"}))


class BackendsHandler(ApiHandler):
    """``GET backends`` → ``{"default": "local"|"ray", "backends": [{"id", "name",
    "address"?}]}``: the job backends this server has (``local``, ``This machine``,
    always first; ``ray``, ``Ray cluster at <address>``, when CvatTrainApp.ray_address is
    set) and the one a job without ``"backend"`` goes to. The address is the dashboard's
    URL (credentials are refused in it); the token is never part of the reply."""

    @web.authenticated
    @authorized
    async def get(self):
        manager = self.service.manager
        out = []
        for name in sorted(manager.backends, key=lambda n: (n != "local", n)):
            address = getattr(manager.backends[name], "address", None)
            item = {"id": name, "name": {"local": "This machine", "ray": f"Ray cluster at {address}"}.get(name, name)}
            if address:
                item["address"] = address
            out.append(item)
        self.finish(json.dumps({"default": manager.backend.name, "backends": out}))


class ValidateDatasetHandler(ApiHandler):
    """``POST datasets/validate {"path", "format"?}`` → the validation report."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()

        def validate():
            return validate_dataset(self.service.root_dir, body.get("path"), "path", body.get("format"))[1].to_dict()

        try:
            report = await self.heavy(validate)
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(report, default=str))


class JobsHandler(ApiHandler):
    """``GET jobs`` → ``{"jobs": [...]}``; ``POST jobs {kind, ...}`` → 201 job."""

    @web.authenticated
    @authorized
    async def get(self):
        svc = self.service
        self.finish(json.dumps({"jobs": await svc.public_jobs(svc.manager.snapshot())}))

    @web.authenticated
    @authorized
    async def post(self):
        from ..jobs.specs import check_spec

        body = self.json_body()
        svc = self.service
        try:  # a kind whose check reads much (train validates its dataset) runs in the validation pool
            check = self.heavy if _heavy_check(body.get("kind")) else svc.run
            spec = await check(check_spec, body, svc.root_dir, **self.settings.get("cvat_train_spec_options", {}))
        except SpecError as e:
            raise spec_error(e) from None
        other = await svc.run(running_sync, svc.manager, spec)  # a second sync of a pair: 409 naming the first
        if other is not None:
            raise spec_error(running_sync_error(other, spec, svc.shown_path))
        job = await svc.run(svc.manager.create, spec)
        self.set_status(201)
        self.finish(json.dumps((await svc.public_jobs([job]))[0]))


def _heavy_check(kind) -> bool:
    """Whether the spec check of job kind ``kind`` reads much (an unknown kind: no; the
    check then answers 400)."""
    from ..jobs.registry import get_kind

    try:
        return get_kind(kind).heavy_check
    except KeyError:
        return False


class JobHandler(ApiHandler):
    """``GET jobs/{id}`` → job; ``DELETE jobs/{id}`` → cancel (202 job) or forget (204)."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        self.finish(json.dumps((await self.service.public_jobs([await self.job(job_id)]))[0]))

    @web.authenticated
    @authorized
    async def delete(self, job_id):
        svc = self.service
        remove = self.get_query_argument("remove_files", "false").lower() in ("1", "true", "yes")
        try:
            job = await svc.run(svc.manager.delete, job_id, remove)
        except JobNotFound:
            raise ApiError(404, f"no job {shown(job_id)}") from None
        if job is not None:
            self.set_status(202)
            self.finish(json.dumps((await svc.public_jobs([job]))[0]))
            return
        svc.forget_spec(job_id)
        await svc.tensorboards.stop(job_id)
        self.set_status(204)
        self.finish()


class JobLogHandler(ApiHandler):
    """``GET jobs/{id}/log?offset=N`` → ``{"offset", "next_offset", "text", "state"}``: the
    log from byte N (at most 1 MiB; whole lines while the job runs)."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        job = await self.job(job_id)
        try:
            offset = max(0, int(self.get_query_argument("offset", "0")))
        except ValueError:
            raise ApiError(400, "offset must be a whole number of bytes") from None
        path = self.service.manager.job_dir(job_id).log_path
        data, nxt = await self.service.run(read_from, path, offset, whole_lines=job["state"] not in FINAL_STATES)
        self.finish(
            json.dumps(
                {
                    "offset": nxt - len(data),
                    "next_offset": nxt,
                    "text": data.decode("utf-8", errors="replace"),
                    "state": job["state"],
                }
            )
        )


class TensorBoardHandler(ApiHandler):
    """``POST jobs/{id}/tensorboard`` → ``{"url", "port"}`` (starts it if needed)."""

    @web.authenticated
    @authorized
    async def post(self, job_id):
        svc = self.service
        if not svc.tensorboard_enabled:
            raise ApiError(409, "TensorBoard is turned off on this server (CvatTrainApp.tensorboard_enabled)")
        await self.job(job_id)
        logdir = svc.manager.job_dir(job_id).output_dir / "tensorboard"
        try:
            port = await svc.tensorboards.start(job_id, logdir)
        except TensorBoardError as e:
            raise ApiError(500, f"could not start TensorBoard: {e}") from None
        url = url_path_join(self.base_url, "proxy", str(port)) + "/"
        self.finish(json.dumps({"url": url, "port": port}))


class JobStreamHandler(WebSocketMixin, websocket.WebSocketHandler, JupyterHandler):
    """``WS jobs/{id}/stream?log_offset=N&events_offset=M``: see the module docstring."""

    auth_resource = AUTH_RESOURCE

    @property
    def service(self):
        return self.settings["cvat_train"]

    async def pre_get(self):
        user = self.current_user
        allowed = await ensure_async(self.authorizer.is_authorized(self, user, "read", AUTH_RESOURCE))
        if not allowed:
            raise web.HTTPError(403)

    @ws_authenticated
    async def get(self, job_id):
        await self.pre_get()
        try:
            self._job = await self.service.run(self.service.manager.get, job_id)
        except JobNotFound:
            raise web.HTTPError(404, f"no job {shown(job_id)}") from None
        try:
            self._offsets = (
                max(0, int(self.get_query_argument("log_offset", self.get_query_argument("offset", "0")))),
                max(0, int(self.get_query_argument("events_offset", "0"))),
            )
        except ValueError:
            raise web.HTTPError(400, "log_offset and events_offset must be whole numbers of bytes") from None
        res = super().get(job_id)
        if res is not None:
            await res

    def open(self, job_id):
        super().open(job_id)
        self._closed = False
        self._task = asyncio.ensure_future(self._pump(job_id))

    def on_close(self):
        self._closed = True
        super().on_close()

    def _send(self, msg: dict) -> bool:
        if self._closed:
            return False
        try:
            self.write_message(json.dumps(msg, default=str))
            return True
        except websocket.WebSocketClosedError:
            self._closed = True
            return False

    async def _pump(self, job_id: str) -> None:
        svc = self.service
        jd = svc.manager.job_dir(job_id)
        follower = JobFollower(jd, *self._offsets)
        job = (await svc.public_jobs([self._job]))[0]
        self._send({"type": "state", "job": job})

        def step():
            final = jd.read_status().get("state") in FINAL_STATES
            return final, follower.read(final=final)

        try:
            while not self._closed:
                final, messages = await svc.run(step)
                for m in messages:
                    if not self._send(m):
                        return
                current = svc.manager.snapshot_get(job_id)
                if final or current is None:  # None: not polled yet, or deleted (raises JobNotFound)
                    current = await svc.run(svc.manager.get, job_id)
                if current is not None and (current["state"], current["message"]) != (job["state"], job["message"]):
                    job = (await svc.public_jobs([current]))[0]
                    self._send({"type": "state", "job": job})
                if final and current is not None and current["state"] in FINAL_STATES:
                    self._send({"type": "end", "job": job})
                    self.close(1000, "job finished")
                    return
                await asyncio.sleep(STREAM_INTERVAL)
        except JobNotFound:
            self._send({"type": "error", "message": f"job {shown(job_id)} was deleted"})
            self.close(1000)
        except Exception as e:  # noqa: BLE001 - report to the client, then close
            self.log.exception("cvat-train: streaming job %s failed", job_id)
            self._send(
                {"type": "error", "message": f"internal error ({type(e).__name__}); the server log has the details"}
            )
            self.close(1011)


class StorageCheckHandler(ApiHandler):
    """``POST storage/check {storage, endpoint_url?, workspace?, write?}`` → the connection
    check (:func:`.storage.connection_check`), in the bounded pool (503 when full)."""

    @web.authenticated
    @authorized
    async def post(self):
        body = self.json_body()
        allowed = self.settings.get("cvat_train_spec_options", {}).get("allowed_endpoint_urls", ())
        try:
            result = await self.heavy(connection_check, body, self.service.root_dir, allowed)
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(result))


class CvatConnectionHandler(ApiHandler):
    """``GET cvat/connection`` → the CVAT connection test with the server's environment
    (:func:`..cvat.connection.connection_status`: ok, host, user, never a secret), in the
    bounded pool (503 when full)."""

    @web.authenticated
    @authorized
    async def get(self):
        from ..cvat.connection import connection_status

        self.finish(json.dumps(await self.heavy(connection_status)))


class SyncPlanHandler(ApiHandler):
    """``GET jobs/{id}/plan?offset=0&limit=500`` → a page of a sync preview's plan
    (:func:`.storage.plan_page`)."""

    @web.authenticated
    @authorized
    async def get(self, job_id):
        job = await self.job(job_id)
        try:
            offset = int(self.get_query_argument("offset", "0"))
            limit = int(self.get_query_argument("limit", "500"))
        except ValueError:
            raise ApiError(400, "offset and limit must be whole numbers") from None
        output_dir = self.service.manager.job_dir(job_id).output_dir
        try:
            page = await self.service.run(plan_page, job, output_dir, offset, limit)
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(page))


class ModelLabelsHandler(ApiHandler):
    """``GET models/labels?path=P`` → ``{"path", "labels"}`` (:func:`.annotate.model_labels`)."""

    @web.authenticated
    @authorized
    async def get(self):
        try:
            reply = await self.service.run(model_labels, self.service.root_dir, self.get_query_argument("path", ""))
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(reply))


class AnnotateImagesHandler(ApiHandler):
    """``GET annotate/images?path=P`` → ``{"path", "kind", "images", "labels", "format"}``
    (:func:`.annotate.annotate_images`, in the validation pool: an export is loaded)."""

    @web.authenticated
    @authorized
    async def get(self):
        try:
            reply = await self.heavy(annotate_images, self.service.root_dir, self.get_query_argument("path", ""))
        except SpecError as e:
            raise spec_error(e) from None
        self.finish(json.dumps(reply))


class JobFileHandler(ApiHandler):
    """``GET jobs/{id}/files/{path}[?download=1]``: a file beneath the job's output/ folder
    (:func:`.annotate.open_job_output_file`; what is served how: :mod:`.annotate`)."""

    @web.authenticated
    @authorized
    async def get(self, job_id, path):
        await self.job(job_id)
        output_dir = self.service.manager.job_dir(job_id).output_dir
        try:
            f, real, size = await self.service.run(open_job_output_file, output_dir, path)
        except SpecError as e:
            raise spec_error(e) from None
        suffix = real.suffix.lower()
        inline = INLINE_TYPES.get(suffix)
        self.set_header("Content-Type", inline or DOWNLOAD_TYPES.get(suffix, "application/octet-stream"))
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "sandbox; default-src 'none'")
        self.set_header("Cache-Control", "no-cache")
        if not inline or self.get_query_argument("download", "") in ("1", "true"):
            name = real.name.replace('"', "_").encode("ascii", "replace").decode()
            self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        try:
            left = size
            while left > 0:
                data = await self.service.run(f.read, min(CHUNK, left))
                if not data:
                    break
                left -= len(data)
                self.write(data)
                await self.flush()
        finally:
            f.close()
        self.finish()


def api_routes() -> list[tuple[str, type]]:
    """Routes relative to ``{base_url}cvat-train/api/``."""
    return [
        (r"models/labels", ModelLabelsHandler),
        (r"annotate/images", AnnotateImagesHandler),
        (rf"jobs/{JOB_ID}/files/(?P<path>.+)", JobFileHandler),
        (r"version", VersionHandler),
        (r"templates", TemplatesHandler),
        (r"templates/check", TemplateCheckHandler),
        (r"devices", DevicesHandler),
        (r"backends", BackendsHandler),
        (r"datasets/validate", ValidateDatasetHandler),
        (r"jobs", JobsHandler),
        (rf"jobs/{JOB_ID}", JobHandler),
        (rf"jobs/{JOB_ID}/log", JobLogHandler),
        (rf"jobs/{JOB_ID}/stream", JobStreamHandler),
        (rf"jobs/{JOB_ID}/tensorboard", TensorBoardHandler),
        (rf"jobs/{JOB_ID}/plan", SyncPlanHandler),
        (r"storage/check", StorageCheckHandler),
        (r"cvat/connection", CvatConnectionHandler),
    ]
