"""The ``ray`` backend: a job process is a Ray job, submitted over the Ray dashboard's
REST Jobs API (``http(s)://head:8265``).

The Jupyter server never imports ``ray``: this module talks HTTP (urllib) to the
dashboard's documented endpoints (``POST /api/jobs/``, ``GET /api/jobs/{id}``,
``POST /api/jobs/{id}/stop``, ``GET /api/version``; the state API's ``GET /api/v0/nodes``
for the cluster's GPUs).

Shared-filesystem mode only: the job folder must be on a path the cluster's workers see
under the same name (on one machine, trivially; on a cluster, an NFS/Lustre/CephFS mount
of the runs root). The job process writes status.json, events.jsonl, job.log and output/
there, exactly as a local one. Object-storage mode (inputs synced up, outputs synced
back) is not supported yet: :data:`OBJECT_STORAGE_UNSUPPORTED`.

- **Submit**: entrypoint ``<python> -u -m jupyter_cvat_train.jobs.backends.ray_entry
  <job folder>`` (:mod:`.ray_entry` appends stdout + stderr to job.log, never through a
  symlink, and execs the one job entry point), with the job id as ``submission_id``:
  Ray refuses a duplicate, so a re-submit of the same job finds the first one
  (:meth:`RayBackend.launch`); a head whose job agent is not registered yet (just
  started) is asked again twice before the job fails. Only the variables the job process needs go into the
  job's ``runtime_env`` (the spec hash and the run target, never the server's
  environment: Ray shows env_vars to anyone who can read the dashboard), plus
  ``RAY_JOB_STOP_WAIT_TIME_S`` (:attr:`RayBackend.stop_wait`, default 30 s), so a
  cancelled training has time to write its last checkpoint before Ray's SIGKILL. The
  entrypoint holds :attr:`RayBackend.num_cpus` CPUs (and, for an accelerator job on a
  cluster with GPUs, the GPUs its kind says it wants, on one node:
  :meth:`RayBackend._entrypoint_gpus`), except a training with more than one GPU: its
  ranks run as Ray Train workers that hold a GPU (or CPU) each
  (:mod:`jupyter_cvat_train.training.ray_train`), and the entrypoint holds nothing.
- **Handle** (launch.json): ``{backend: "ray", submission_id, address, launched_at,
  entrypoint}``. Requests go to the backend's *configured* address only, never to the
  one a (writable, untrusted) launch.json names; a handle whose submission_id is not the
  job folder's name is dead.
- **Poll**: status.json stays the truth of the job's state; Ray says whether its
  process lives. A Ray job is *verified* when its entrypoint is the one this backend
  makes for this folder. Ray lost the job (404: its head restarted without a persisted
  GCS): alive only when the job folder was written within :attr:`RayBackend.heartbeat_s`
  (then "failed: interrupted" once it goes quiet). The dashboard unreachable: alive,
  with a note "cluster unreachable since ..." (never a false failure; nothing is
  signalled meanwhile).
- **Cancel**: ``POST /api/jobs/{id}/stop`` (Ray: SIGTERM to the entrypoint's process
  tree, SIGKILL after ``RAY_JOB_STOP_WAIT_TIME_S``).
- **Auth**: with a token (Ray's token auth, ``RAY_AUTH_MODE=token``), every request
  carries ``Authorization: Bearer <token>``; the token is never logged nor put in a
  message or a handle.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from ...training.ray_train import ray_train_ranks
from ..runtime import JobDir, JobError, clean_record, now_iso, valid_text, valid_time
from . import JobBackend, LaunchRequest, Poll, was_launched

#: the module Ray runs for a job: it sends output to job.log, then runs the job
ENTRY_MODULE = "jupyter_cvat_train.jobs.backends.ray_entry"
#: env variables of the launch request that reach the job process on the cluster
JOB_ENV_KEYS = ("CVAT_TRAIN_SPEC_SHA256", "CVAT_TRAIN_JOB_RUN")
ALIVE_STATES = ("PENDING", "RUNNING")
PENDING_NOTE = (
    "waiting for the Ray cluster to start it (Ray: PENDING; a job waits there while the cluster "
    "lacks the CPUs or GPUs it asks for)"
)
DEFAULT_STOP_WAIT = 30
DEFAULT_HEARTBEAT = 120.0
DEFAULT_TIMEOUT = 10.0
#: what the dashboard answers (a 500) while its job agent is not registered yet
NO_AGENT = "No available agent to submit job"
OBJECT_STORAGE_UNSUPPORTED = (
    "the ray backend runs jobs whose folder is on a filesystem the cluster's workers share "
    "(the runs root mounted at the same path on every node); object storage for job folders "
    "is not supported yet"
)


class RayUnreachable(OSError):
    """The Ray dashboard did not answer (connection refused, timeout, a 5xx)."""


class RayRefused(OSError):
    """The Ray dashboard answered with a 4xx; ``status``: the HTTP status; the message is
    the dashboard's text (short)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def check_address(address: str) -> str:
    """The dashboard address ``address`` (``http(s)://host:port``, no path beyond
    ``/``), normalised without a trailing slash. Raises ValueError with the fix."""
    if not isinstance(address, str) or not address.strip():
        raise ValueError("the Ray address is empty: give the dashboard's URL, e.g. http://head:8265")
    parts = urllib.parse.urlsplit(address.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"the Ray address {address!r} is not a dashboard URL: give http(s)://host:port "
            "(the dashboard's port, 8265 by default), not ray://... nor host:6379"
        )
    if parts.username or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
        raise ValueError(
            f"the Ray address {address!r} must be http(s)://host:port only (a token goes in the "
            "separate token setting, never in the URL)"
        )
    return f"{parts.scheme}://{parts.netloc}"


class RayJobsClient:
    """A small client of the Ray dashboard's REST Jobs API. address: checked by
    :func:`check_address`; token: sent as ``Authorization: Bearer`` (never logged);
    timeout: seconds per request. Methods raise :class:`RayUnreachable` when the
    dashboard does not answer and :class:`RayRefused` on a 4xx (404 included)."""

    def __init__(self, address: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        self.address = check_address(address)
        self._token = token or None
        self.timeout = timeout

    def __repr__(self) -> str:  # never the token
        return f"RayJobsClient({self.address!r}, token={'set' if self._token else 'none'})"

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        """``method`` ``path`` (e.g. ``/api/jobs/``) with JSON ``body``; the JSON answer
        (``{}`` when empty)."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        req = urllib.request.Request(self.address + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - a checked http(s) URL
                raw = resp.read(1 << 20)
        except urllib.error.HTTPError as e:
            text = e.read(65536).decode("utf-8", "replace").strip()
            if "Traceback (most recent call last)" in text:  # Ray answers some errors with a traceback
                text = text.splitlines()[-1]
            if e.code >= 500:
                raise RayUnreachable(f"the Ray dashboard at {self.address} answered {e.code}: {text[:300]}") from None
            if e.code in (401, 403):
                text = f"{text[:200]} (the dashboard wants a valid token: set the Ray token setting)"
            raise RayRefused(e.code, text[:500]) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise RayUnreachable(f"no Ray dashboard answers at {self.address} ({reason})") from None
        if not raw.strip():
            return {}
        try:
            out = json.loads(raw)
        except ValueError:
            raise RayUnreachable(
                f"{self.address} answered something that is not JSON: is it a Ray dashboard?"
            ) from None
        return out if isinstance(out, dict) else {"value": out}

    def version(self) -> dict:
        """``GET /api/version``: ``{ray_version, ...}``."""
        return self.request("GET", "/api/version")

    def submit(self, body: dict) -> dict:
        """``POST /api/jobs/`` with ``body`` (entrypoint, submission_id, runtime_env, ...)."""
        return self.request("POST", "/api/jobs/", body)

    def job(self, submission_id: str) -> dict:
        """``GET /api/jobs/{id}``: the job's details (status, entrypoint, message, ...)."""
        return self.request("GET", f"/api/jobs/{urllib.parse.quote(submission_id, safe='')}")

    def stop(self, submission_id: str) -> dict:
        """``POST /api/jobs/{id}/stop``: ``{stopped: bool}``."""
        return self.request("POST", f"/api/jobs/{urllib.parse.quote(submission_id, safe='')}/stop")


def _submission_id(value) -> str:
    value = valid_text(value, 128)
    if not re.fullmatch(r"[A-Za-z0-9._-]+", value):
        raise ValueError("not a job id")
    return value


HANDLE_FIELDS = {
    "submission_id": _submission_id,
    "address": lambda v: valid_text(v, 300),
    "launched_at": valid_time,
    "entrypoint": lambda v: valid_text(v, 8192),
}


#: Ray's state API: the cluster's nodes
NODES_PATH = "/api/v0/nodes?limit=1000"


def alive_nodes_in(answer: dict) -> list[dict]:
    """The alive nodes (``{node_id, node_ip, is_head_node, state, resources_total, ...}``)
    in the state API's answer to ``GET`` :data:`NODES_PATH`."""
    nodes = ((answer.get("data") or {}).get("result") or {}).get("result") or []
    return [n for n in nodes if isinstance(n, dict) and n.get("state") == "ALIVE"]


def _spec(job_dir: JobDir) -> dict:
    """The job's spec (job.json), or ``{}`` when unreadable (the job process reports that)."""
    try:
        return job_dir.read_spec()
    except (OSError, JobError):
        return {}


def entrypoint(job_dir: JobDir, python: str = "python") -> str:
    """The shell command Ray runs for ``job_dir``: ``<python> -u -m <ENTRY_MODULE>
    <absolute job folder>`` (each word shell-quoted)."""
    import shlex

    return shlex.join([python, "-u", "-m", ENTRY_MODULE, str(job_dir.path.resolve())])


class RayBackend(JobBackend):
    """Job processes as Ray jobs on the cluster whose dashboard is at ``address``.

    token: Ray's auth token (or None); python: the interpreter *on the cluster* that has
    jupyter_cvat_train installed (default ``python`` on the workers' PATH); stop_wait:
    seconds Ray waits between SIGTERM and SIGKILL on a stop (the job's last checkpoint);
    heartbeat_s: how recently a job folder must have been written for a job Ray lost to
    count as running; num_cpus: CPUs reserved for each job's entrypoint; timeout:
    seconds per HTTP request. Thread-safe."""

    name = "ray"
    uses_this_machine = False  # a job waits in Ray (PENDING) until the cluster has its resources

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        python: str = "python",
        stop_wait: int = DEFAULT_STOP_WAIT,
        heartbeat_s: float = DEFAULT_HEARTBEAT,
        num_cpus: float = 1,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.client = RayJobsClient(address, token, timeout)
        self.address = self.client.address
        self.python = python
        self.stop_wait = max(1, int(stop_wait))
        self.heartbeat_s = heartbeat_s
        self.num_cpus = num_cpus
        self._unreachable_since: str | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RayBackend({self.address!r})"

    # -- launching ---------------------------------------------------------------------
    def launch(self, request: LaunchRequest) -> dict:
        """Submit ``request.job_dir``'s job process as a Ray job with the job id as
        submission_id. A duplicate id (the job was submitted before, e.g. by a server
        that died before writing launch.json) is taken as launched when Ray's job runs
        this folder's entrypoint. Raises OSError (with a message saying what to fix)
        when the cluster does not answer or refuses the job."""
        job_dir = request.job_dir
        command = entrypoint(job_dir, self.python)
        env = {k: request.env[k] for k in JOB_ENV_KEYS if k in request.env}
        env["PYTHONUNBUFFERED"] = "1"
        env["RAY_JOB_STOP_WAIT_TIME_S"] = str(self.stop_wait)
        body = {
            "entrypoint": command,
            "submission_id": job_dir.id,
            "runtime_env": {"env_vars": env},
            "metadata": {"cvat_train_job": job_dir.id, "kind": request.kind.name},
            "entrypoint_num_cpus": self.num_cpus,
        }
        spec = _spec(job_dir)
        ray_train = request.kind.name == "train" and ray_train_ranks(spec)
        if ray_train:  # its ranks are Ray Train workers holding a GPU or CPU each; the driver only follows them
            body["entrypoint_num_cpus"] = 0
        try:
            if request.kind.resource == "accelerator" and not ray_train:
                gpus = self._entrypoint_gpus(request.kind, spec)
                if gpus:
                    body["entrypoint_num_gpus"] = gpus
            self._submit(body)
        except OSError as e:
            # refused or failed: maybe because it is there already (Ray refuses a duplicate
            # submission_id; this Ray answers that with a 500): then it is this job if it
            # runs this folder's entrypoint
            try:
                known = self.client.job(job_dir.id)
            except OSError:
                known = None
            if known is None:
                raise OSError(
                    f"the job was not submitted: {e}"  # names the address already
                    if isinstance(e, RayUnreachable)
                    else f"the Ray cluster at {self.address} refused the job: {e}"
                ) from None
            if known.get("entrypoint") != command:
                raise OSError(
                    f"the Ray cluster at {self.address} already has a job {job_dir.id} that runs something "
                    "else; this job was not started"
                ) from None
        return {
            "backend": self.name,
            "submission_id": job_dir.id,
            "address": self.address,
            "launched_at": now_iso(),
            "entrypoint": command,
        }

    def _entrypoint_gpus(self, kind, spec: dict) -> int:
        """The GPUs an accelerator job's process asks Ray for: none with ``device: cpu``
        or on a cluster without GPUs (it runs on a CPU), else its kind's
        ``gpus_of(spec)``, all on one node (one process). The cluster's GPUs, not this
        machine's: the Jupyter server often runs on a node without any. Raises OSError
        with the fix when no alive node has that many (Ray would wait for ever)."""
        if str(spec.get("device") or "").lower() == "cpu":
            return 0
        nodes = alive_nodes_in(self.client.request("GET", NODES_PATH))
        most = max((int((n.get("resources_total") or {}).get("GPU") or 0) for n in nodes), default=0)
        if not most:
            return 0
        wanted = kind.gpus_of(spec)
        if wanted > most:
            raise OSError(
                f"the job wants {wanted} GPUs in one process but the largest node of the Ray cluster has "
                f"{most}: set gpus (num_gpus) to at most {most}"
            )
        return wanted

    def _submit(self, body: dict, attempts: int = 3) -> None:
        """``POST /api/jobs/`` with ``body``, asked again (after 1 s, then 2 s) while the
        dashboard answers that it has no job agent yet: a head that has just started
        (its dashboard agent still registering) answers so for a while, and the first job
        of a new cluster should not fail for it. Any other failure is raised at once."""
        for attempt in range(attempts):
            try:
                self.client.submit(body)
                return
            except RayUnreachable as e:
                if NO_AGENT not in str(e) or attempt == attempts - 1:
                    raise
                time.sleep(attempt + 1)

    def check_handle(self, data: dict) -> dict:
        return clean_record(data, HANDLE_FIELDS)[0]

    # -- watching ----------------------------------------------------------------------
    def _folder_age(self, job_dir: JobDir) -> float | None:
        """Seconds since the job folder's records (status.json, events.jsonl, job.log)
        were last written, or None when none exists."""
        times = []
        for name in ("status.json", "events.jsonl", "job.log"):
            try:
                times.append(os.lstat(job_dir.path / name).st_mtime)
            except OSError:
                pass
        return time.time() - max(times) if times else None

    def poll(self, job_dir: JobDir, handle: dict) -> Poll:
        """Ray's status of the handle's job (its submission_id must be the folder's
        name). PENDING/RUNNING: alive, verified when its entrypoint is this folder's.
        Ended: not alive, with the exit code when Ray's message gives one. Unknown to
        Ray (404): alive (unverified, with a note) while the folder was written within
        ``heartbeat_s``, else dead. Cluster unreachable: alive, unverified, with a note
        "cluster unreachable since <time>" (the job is not settled meanwhile)."""
        sid = handle.get("submission_id")
        if sid != job_dir.id:
            return Poll(alive=False)
        try:
            info = self.client.job(sid)
        except RayUnreachable as e:
            with self._lock:
                since = self._unreachable_since = self._unreachable_since or now_iso()
            return Poll(alive=True, note=f"Ray cluster unreachable since {since}: {e}; its state is not known")
        except RayRefused as e:
            with self._lock:
                self._unreachable_since = None
            if e.status != 404:
                return Poll(alive=True, note=f"the Ray cluster at {self.address} does not say: {e}")
            age = self._folder_age(job_dir)
            if age is not None and age < self.heartbeat_s:
                return Poll(
                    alive=True,
                    note=(
                        f"the Ray cluster no longer knows this job (its head restarted?); its folder was "
                        f"written {age:.0f} s ago, so it is shown as running"
                    ),
                )
            return Poll(alive=False)
        with self._lock:
            self._unreachable_since = None
        status = info.get("status")
        if status in ALIVE_STATES:
            verified = info.get("entrypoint") == entrypoint(job_dir, self.python)
            return Poll(alive=True, verified=verified, note=PENDING_NOTE if status == "PENDING" else "")
        match = re.search(r"exit code (-?\d+)", str(info.get("message") or ""))
        note = self._failure_note(sid, str(info.get("message") or "")) if status == "FAILED" else ""
        return Poll(alive=False, exit_code=int(match.group(1)) if match else None, note=note)

    def _failure_note(self, submission_id: str, message: str = "") -> str:
        """What Ray's own log of a failed job says, when the job process could not even
        start (so job.log has nothing): its last line, with the fix for a cluster
        whose Python lacks this package. From Ray's message (which holds the log's
        last lines), else from its log endpoint."""

        def after_entry(text: str) -> list[str]:
            _, entry, after = text.partition("Running entrypoint for job")
            return [line.strip() for line in after.splitlines()[1:] if line.strip()] if entry else []

        lines = after_entry(message)
        for attempt in range(3 if not lines else 0):  # Ray may settle the status before its log has the lines
            try:
                logs = str(self.client.request("GET", f"/api/jobs/{submission_id}/logs").get("logs") or "")
            except OSError:
                return ""
            lines = after_entry(logs)
            if lines:
                break
            time.sleep(0.5 * (attempt + 1))
        if not lines:
            return ""
        if any("No module named" in line and "jupyter_cvat_train" in line for line in lines):
            return (
                f"the cluster's Python ({self.python}) does not have jupyter_cvat_train: install it in the "
                "cluster's environment on every node (Ray's per-job upload limit is 512 MiB, so the package "
                "is not shipped with each job), or point the Ray python setting at an interpreter that has it"
            )
        return f"Ray's log of the job ends with: {lines[-1][:300]}"

    def candidates(self, job_dir: JobDir, handles: list[dict]) -> list[dict]:
        """The handles given, then, once the job was started (launch.json exists), its
        own Ray job by id (its submission_id is the job id by construction): a launcher
        that died between the submission and writing launch.json leaves a job that is
        still found (and verified by its entrypoint)."""
        out = super().candidates(job_dir, [h for h in handles if h.get("submission_id")])
        if was_launched(job_dir) and not any(h.get("submission_id") == job_dir.id for h in out):
            out.append({"backend": self.name, "submission_id": job_dir.id})  # never for a job not started yet
        return out

    def cancel(self, job_dir: JobDir, handle: dict, grace: float) -> bool:
        """Ask Ray to stop the handle's job (Ray sends SIGTERM to its process tree, then
        SIGKILL after ``stop_wait`` seconds; a second call with ``grace <= 0`` asks
        again). Only a job Ray runs with this folder's entrypoint. True if delivered."""
        if not self.poll(job_dir, handle).verified:
            return False
        try:
            self.client.stop(job_dir.id)
            return True
        except OSError:
            return False


def backend_from_env(environ: dict[str, str] | None = None) -> RayBackend | None:
    """A RayBackend from ``CVAT_TRAIN_RAY_ADDRESS`` (and ``CVAT_TRAIN_RAY_TOKEN``,
    ``CVAT_TRAIN_RAY_PYTHON``), or None when no address is set. Raises ValueError for a
    bad address."""
    env = os.environ if environ is None else environ
    address = env.get("CVAT_TRAIN_RAY_ADDRESS", "").strip()
    if not address:
        return None
    return RayBackend(
        address, token=env.get("CVAT_TRAIN_RAY_TOKEN") or None, python=env.get("CVAT_TRAIN_RAY_PYTHON") or "python"
    )


def backends_from_env(environ: dict[str, str] | None = None) -> list[RayBackend]:
    """``[the RayBackend of $CVAT_TRAIN_RAY_ADDRESS]``, or ``[]`` when it is not set (the
    backends a CLI or notebook JobManager adds to the local one). Raises ValueError for a
    bad address."""
    backend = backend_from_env(environ)
    return [backend] if backend is not None else []


__all__ = [
    "backends_from_env",
    "RayBackend",
    "RayJobsClient",
    "RayRefused",
    "RayUnreachable",
    "backend_from_env",
    "check_address",
]
