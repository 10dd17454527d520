"""The ray backend against a REAL single-node Ray head started here (``ray start --head
--block`` through :mod:`jupyter_cvat_train.jobs.backends.ray_head`, 2 CPUs, dashboard on
127.0.0.1, a short temp dir, Ray's token auth on), one head for the whole module, and
that head alone stopped at the end (``ray stop`` would end every Ray process of the
machine). The test process never imports ``ray``: the backend speaks the dashboard's
REST Jobs API, as the Jupyter server does.

Covered: a train job on a tiny export submitted through the JobManager with
``"backend": "ray"`` succeeds with its job.log lines and output contract; a cancelled
training ends ``cancelled`` with last.pt; a JobManager made anew mid-job (a server
restart) finds the Ray job again and cancels it; a duplicate submission is taken as the
same job; a job Ray does not know is reconciled from its folder; an unreachable cluster
is a clear note (no false failure) and a launch failure names the address; the spec's
``backend`` is checked; the token is sent and shown nowhere, and a job without it is
refused with a message saying so. Two manager tests run against both backends.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import test_security_jobs_blocker  # noqa: F401 - registers test-block, puts tests/ on job processes' PYTHONPATH

from jupyter_cvat_train.datasets import generate_sample
from jupyter_cvat_train.jobs.backends import LaunchRequest, read_handle
from jupyter_cvat_train.jobs.backends.ray import RayBackend, RayJobsClient, check_address
from jupyter_cvat_train.jobs.backends.ray_head import start_head, stop_head
from jupyter_cvat_train.jobs.manager import JobManager
from jupyter_cvat_train.jobs.registry import get_kind
from jupyter_cvat_train.jobs.runtime import JobDir, JobState
from jupyter_cvat_train.jobs.specs import SpecError, check_spec

RAY_BIN = Path(sys.executable).with_name("ray")
HP = "batch_size: 2\nimage_size: 64\npretrained: false\nwarmup_iters: 1\nnum_workers: 0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(cond, timeout=60.0, interval=0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(interval)
    return False


#: Ray's token auth is on for the module's head: every request of the backend carries it
TOKEN = "tok-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def ray_address():
    """The dashboard URL of a single-node Ray head started for this module (2 CPUs, token
    auth on), stopped at the end: that head alone, not other Ray processes of the machine
    (``ray stop`` would end every one, e.g. another test run's)."""
    if importlib.util.find_spec("ray") is None or not RAY_BIN.exists():
        pytest.skip("ray is not installed (pip install 'jupyter_cvat_train[ray]')")
    folder = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": TOKEN}
    try:
        head = start_head(folder, num_cpus=2, env=env)
        yield head.address
    finally:
        stop_head(folder)
        left = [pid for pid in Path("/proc").iterdir() if pid.name.isdigit() and _cwd_in(pid, folder)]
        shutil.rmtree(folder, ignore_errors=True)
        assert not left, f"processes of the test's Ray head left running: {left}"


def _cwd_in(proc: Path, folder: Path) -> bool:
    try:
        return os.readlink(proc / "cwd").startswith(str(folder))
    except OSError:
        return False


@pytest.fixture
def root(tmp_path):
    generate_sample(tmp_path / "sample.zip", images=8, width=64, height=64, seed=1)
    return tmp_path


def _manager(root: Path, address: str, **kw) -> JobManager:
    ray = RayBackend(address, token=TOKEN, python=sys.executable, stop_wait=kw.pop("stop_wait", 20))
    return JobManager(root / "runs", backends=(ray,), **kw)


def _train(root: Path, epochs: int, **more) -> dict:
    spec = {
        "kind": "train",
        "template": "ssdlite320-mobilenet-v3",
        "dataset": "sample.zip",
        "checkpoint": None,
        "parameters": {"epochs": epochs, "hyperparameters": HP},
        "backend": "ray",
        **more,
    }
    return check_spec(spec, root, backends=("local", "ray"))


def _ray_status(address: str, job_id: str) -> str:
    return RayJobsClient(address, token=TOKEN).job(job_id).get("status")


@pytest.mark.slow
def test_train_job_runs_on_ray_and_succeeds(root, ray_address, caplog):
    caplog.set_level(logging.DEBUG)
    m = _manager(root, ray_address)
    try:
        job = m.create(_train(root, 1))
        jd = m.job_dir(job["id"])
        assert read_handle(jd, m.backends)["backend"] == "ray"
        done = m.wait(job["id"], timeout=300)
        assert done["state"] == JobState.SUCCEEDED, (done, jd.log_path.read_text()[-3000:])
        assert _wait_for(lambda: _ray_status(ray_address, job["id"]) == "SUCCEEDED"), "Ray's own status"
        log = jd.log_path.read_text()
        assert "epoch" in log.lower()  # the job's own lines, in the job folder's job.log
        out = jd.path / "output"
        for rel in ("model/model.pt", "model/classes.csv", "checkpoints/last.pt", "metrics.json"):
            assert (out / rel).is_file(), rel
        assert json.loads((jd.path / "job.json").read_text())["backend"] == "ray"
        # the cluster's token went in every request and nowhere else: not in the job's
        # records (job.json, launch.json, status.json, events.jsonl, job.log) nor our logs
        for path in jd.path.rglob("*"):
            if path.is_file() and path.stat().st_size < 5_000_000:
                assert TOKEN.encode() not in path.read_bytes(), path
        assert TOKEN not in caplog.text and TOKEN not in json.dumps(m.get(job["id"]))
    finally:
        m.close()


@pytest.mark.slow
def test_two_gpus_on_ray_train_as_ray_train_workers_and_cancel_keeps_last_pt(root, ray_address):
    """gpus: 2 on a Ray cluster: the ranks are Ray Train workers (gloo on the CPU here, one
    CPU each: the head's 2; the job's own process holds none), rank 0 writes the output
    contract, the job log names each rank's node; a cancel mid-run ends cancelled with
    last.pt, and a resume from it finishes."""
    m = _manager(root, ray_address, cancel_grace=25)
    try:
        job = m.wait(m.create(_train(root, 1, gpus=2, device="cpu"))["id"], timeout=600)
        jd = m.job_dir(job["id"])
        log = jd.log_path.read_text()
        assert job["state"] == JobState.SUCCEEDED, (job, log[-4000:])
        assert "as 2 Ray Train workers" in log
        for rank in (0, 1):
            assert f"rank {rank} of 2 ran on node " in log, log[-4000:]
        plan = next(e for e in jd.read_events() if e["type"] == "plan")
        assert plan["gpus"] == 2 and plan["device"] == "cpu"
        out = jd.path / "output"
        for rel in ("model/model.pt", "model/classes.csv", "checkpoints/last.pt", "metrics.json"):
            assert (out / rel).is_file(), rel
        assert not list(jd.path.glob(".ranks-*")), "the ranks' private folder is removed"

        long = m.create(_train(root, 200, gpus=2, device="cpu"))
        ld = m.job_dir(long["id"])
        assert _wait_for(lambda: (ld.read_status().get("progress") or {}).get("done", 0) > 0, timeout=300), (
            ld.log_path.read_text()[-3000:]
        )
        m.cancel(long["id"])
        done = m.wait(long["id"], timeout=180)
        assert done["state"] == JobState.CANCELLED, (done, ld.log_path.read_text()[-3000:])
        assert (ld.path / "output" / "checkpoints" / "last.pt").is_file()
        epochs_done = len([e for e in ld.read_events() if e["type"] == "metrics"])
        resumed = m.create(
            _train(
                root,
                epochs_done + 1,
                gpus=2,
                device="cpu",
                checkpoint=str(ld.path.relative_to(root) / "output"),
                resume=True,
            )
        )
        again = m.wait(resumed["id"], timeout=600)
        assert again["state"] == JobState.SUCCEEDED, (again, m.job_dir(resumed["id"]).log_path.read_text()[-3000:])
    finally:
        m.close()


def test_more_ranks_than_the_cluster_has_fails_at_once_with_the_fix(root, ray_address):
    m = _manager(root, ray_address)
    try:
        job = m.wait(m.create(_train(root, 1, gpus=3, device="cpu"))["id"], timeout=300)
        assert job["state"] == JobState.FAILED, job
        assert "the Ray cluster has 2 in all" in job["message"] and "at most 2" in job["message"], job
    finally:
        m.close()


def test_a_cluster_with_token_auth_refuses_a_job_without_the_token(root, ray_address):
    m = JobManager(root / "runs", backends=(RayBackend(ray_address, python=sys.executable),))
    try:
        job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "ray"}, root))
        assert job["state"] == JobState.FAILED and "token" in job["message"], job
        assert TOKEN not in job["message"]
    finally:
        m.close()


@pytest.mark.slow
def test_cancel_after_a_server_restart_finds_the_ray_job(root, ray_address):
    """A manager made anew mid-training (the server restarted) finds the Ray job running,
    and its cancel stops it with time for the last checkpoint."""
    m = _manager(root, ray_address)
    job = m.create(_train(root, 200))
    jd = m.job_dir(job["id"])
    assert _wait_for(lambda: (jd.read_status().get("progress") or {}).get("done", 0) > 0, timeout=240), (
        jd.log_path.read_text()[-3000:]
    )
    m.close()
    # a server whose cluster does not answer: the job stays running, with the reason
    gone = _manager(root, f"http://127.0.0.1:{_free_port()}")
    try:
        gone.reconcile()
        seen = gone.get(job["id"])
        assert seen["state"] == JobState.RUNNING and "unreachable since" in seen["message"], seen
    finally:
        gone.close()
    m2 = _manager(root, ray_address, cancel_grace=25)
    try:
        m2.reconcile()
        again = m2.get(job["id"])
        assert again["state"] == JobState.RUNNING and "unreachable" not in again["message"], again
        assert _ray_status(ray_address, job["id"]) == "RUNNING"
        m2.cancel(job["id"])
        done = m2.wait(job["id"], timeout=120)
        assert done["state"] == JobState.CANCELLED, done
        assert _wait_for(lambda: _ray_status(ray_address, job["id"]) == "STOPPED", timeout=60)
        assert (jd.path / "output" / "checkpoints" / "last.pt").is_file()
    finally:
        m2.close()


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_validate_job_succeeds_on_each_backend(root, backend, request):
    address = request.getfixturevalue("ray_address") if backend == "ray" else "http://127.0.0.1:9"
    m = _manager(root, address)
    try:
        spec = check_spec({"kind": "validate", "dataset": "sample.zip", "backend": backend}, root)
        job = m.wait(m.create(spec)["id"], timeout=120)
        assert job["state"] == JobState.SUCCEEDED, job
        assert read_handle(m.job_dir(job["id"]), m.backends)["backend"] == backend
    finally:
        m.close()


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_a_job_that_ignores_sigterm_is_cancelled_on_each_backend(root, backend, request):
    address = request.getfixturevalue("ray_address") if backend == "ray" else "http://127.0.0.1:9"
    m = _manager(root, address, cancel_grace=1, stop_wait=1)
    try:
        job = m.create(check_spec({"kind": "test-block", "backend": backend}, root))
        jd = m.job_dir(job["id"])
        assert _wait_for(lambda: jd.read_status().get("state") == JobState.RUNNING, timeout=120)
        if backend == "ray":  # a launcher that died before writing the handle: found by the job id
            (jd.path / "launch.json").write_text(json.dumps({"backend": "ray"}))
            m.close()
            m = _manager(root, request.getfixturevalue("ray_address"), cancel_grace=1, stop_wait=1)
            m.reconcile()
            assert m.get(job["id"])["state"] == JobState.RUNNING
        m.cancel(job["id"])
        done = m.wait(job["id"], timeout=90)
        assert done["state"] == JobState.CANCELLED, done
        if backend == "ray":
            assert _wait_for(lambda: _ray_status(request.getfixturevalue("ray_address"), job["id"]) == "STOPPED")
    finally:
        m.close()


def test_a_second_submission_is_the_same_job_and_a_lost_job_is_read_from_its_folder(root, ray_address):
    m = _manager(root, ray_address)
    try:
        job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "ray"}, root))
        jd = m.job_dir(job["id"])
        ray = m.backends["ray"]
        # a re-submit (e.g. after a server died before writing launch.json): refused by Ray, taken as ours
        again = ray.launch(LaunchRequest(jd, get_kind("validate"), {}))
        assert again["submission_id"] == job["id"]
        assert m.wait(job["id"], timeout=120)["state"] == JobState.SUCCEEDED
        # a job folder Ray never heard of (its head restarted): alive only while the folder is fresh
        lost = JobDir(root / "runs" / "lost-job").create({"kind": "validate", "dataset": str(root / "sample.zip")})
        handle = {"backend": "ray", "submission_id": "lost-job"}
        poll = ray.poll(lost, handle)
        assert poll.alive and not poll.verified and "no longer knows" in poll.note
        old = time.time() - 3600
        for name in ("status.json", "job.json", "events.jsonl", "job.log"):
            if (lost.path / name).exists():
                os.utime(lost.path / name, (old, old))
        assert not ray.poll(lost, handle).alive
        assert not ray.cancel(lost, handle, 5)  # never stops what it cannot verify
        # a handle naming another job's id is nobody's
        assert not ray.poll(lost, {"backend": "ray", "submission_id": job["id"]}).alive
    finally:
        m.close()


def test_unreachable_cluster_is_a_note_not_a_failure(root):
    closed = f"http://127.0.0.1:{_free_port()}"
    m = _manager(root, closed)
    try:
        # a launch that cannot reach the cluster fails the job, naming the address
        job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "ray"}, root))
        assert job["state"] == JobState.FAILED and closed in job["message"], job
        # a job started on the cluster before it went away: running, with the reason
        jd = JobDir(root / "runs" / "ray-job-1").create({"kind": "validate", "dataset": str(root / "sample.zip")})
        poll = m.backends["ray"].poll(jd, {"backend": "ray", "submission_id": "ray-job-1"})
        assert poll.alive and not poll.verified and "unreachable since" in poll.note and closed in poll.note
    finally:
        m.close()


def test_backend_in_a_spec_is_checked(root):
    with pytest.raises(SpecError) as e:
        check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "slurm"}, root)
    assert e.value.status == 400 and "local, ray" in str(e.value)
    with pytest.raises(SpecError) as e:
        check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "ray"}, root, backends=("local",))
    assert e.value.status == 409 and "ray_address" in str(e.value)
    assert "backend" not in check_spec({"kind": "validate", "dataset": "sample.zip"}, root)
    for bad in ("ray://head:10001", "head:6379", "http://user:pw@head:8265", "http://head:8265/x?t=1"):
        with pytest.raises(ValueError):
            check_address(bad)
    assert check_address("https://head:8265/") == "https://head:8265"
    assert "secret" not in repr(RayJobsClient("http://head:8265", token="secret"))


def test_a_cluster_python_without_the_package_says_how_to_install_it(root, ray_address):
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if (
        bare is None
        or subprocess.run([bare, "-c", "import jupyter_cvat_train"], capture_output=True, cwd="/").returncode == 0
    ):
        pytest.skip("no interpreter without jupyter_cvat_train on this machine")
    m = JobManager(root / "runs", backends=(RayBackend(ray_address, token=TOKEN, python=bare),))
    try:
        job = m.create(check_spec({"kind": "validate", "dataset": "sample.zip", "backend": "ray"}, root))
        done = m.wait(job["id"], timeout=120)
        assert done["state"] == JobState.FAILED and "does not have jupyter_cvat_train" in done["message"], done
    finally:
        m.close()


def test_a_token_is_sent_as_a_bearer_header_and_never_shown(root):
    """A dashboard stand-in (a plain HTTP server in this process) records what it gets."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.end_headers()
            self.wfile.write(b"Unauthorized")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        ray = RayBackend(f"http://127.0.0.1:{server.server_port}", token="s3cret-token")
        jd = JobDir(root / "runs" / "job-a").create({"kind": "validate", "dataset": str(root / "sample.zip")})
        poll = ray.poll(jd, {"backend": "ray", "submission_id": "job-a"})
        assert seen == ["Bearer s3cret-token"]
        assert poll.alive and "token" in poll.note and "s3cret" not in poll.note  # refused: said, not settled
        assert "s3cret" not in repr(ray) and "s3cret" not in repr(ray.client)
    finally:
        server.shutdown()


def test_the_entry_point_on_a_node_without_the_job_folder_says_what_the_backend_needs(tmp_path):
    missing = tmp_path / "not-mounted" / "job-1"
    run = subprocess.run(
        [sys.executable, "-m", "jupyter_cvat_train.jobs.backends.ray_entry", str(missing)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode != 0
    assert str(missing) in run.stderr and "filesystem the cluster's workers share" in run.stderr
    assert "object storage" in run.stderr and "not supported yet" in run.stderr


def test_a_head_without_its_job_agent_yet_is_asked_again_then_named(root):
    """A dashboard stand-in answers POST /api/jobs/ as a just-started Ray head does (500,
    "No available agent to submit job") twice and then takes the job; another one never
    does: the job fails naming the address and Ray's answer after three tries."""
    import http.server
    import threading

    posts = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            posts.append(self.server.server_port)
            if len(posts) <= self.server.refusals:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(b"No available agent to submit job, please try again later.")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"submission_id": "x"}')

        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    for refusals, taken in ((2, True), (99, False)):
        posts.clear()
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.refusals = refusals
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            ray = RayBackend(f"http://127.0.0.1:{server.server_port}")
            jd = JobDir(root / "runs" / f"job-{refusals}").create({"kind": "validate"})
            request = LaunchRequest(jd, get_kind("validate"), {})
            if taken:
                assert ray.launch(request)["submission_id"] == jd.id and len(posts) == 3
            else:
                with pytest.raises(OSError) as e:
                    ray.launch(request)
                assert len(posts) == 3 and ray.address in str(e.value) and "No available agent" in str(e.value)
        finally:
            server.shutdown()
