"""Training on more than one GPU (or CPU process) *on a Ray cluster*: the job's ranks are
Ray Train workers (``ray.train.torch.TorchTrainer``), placed by Ray on any nodes of the
cluster, where a local job's ranks are torchrun's processes (:mod:`.distributed`).

It applies when the job process is a Ray job (started by the ``ray`` job backend through
:mod:`jupyter_cvat_train.jobs.backends.ray_entry`, which sets :data:`RAY_JOB_ENV`) and
the plan asks for ``gpus`` / ``num_gpus`` / ``num_clones`` > 1 with a built-in PyTorch
template. The rest is as under torchrun:

- The job process (Ray's job driver) checks the plan against the *cluster's* resources
  (:func:`cluster_device`: the GPUs or CPUs of all its nodes, never this node's alone),
  then runs :func:`run_ray_train`: one worker per rank, each holding one GPU (``cuda``)
  or one CPU (gloo); the driver itself holds no resources (the backend submits it with
  0 CPUs, :func:`ray_train_ranks`) and mirrors rank 0's progress into status.json.
- Ray Train starts the process group (the same variables torchrun sets), so the ranks
  skip ``init_process_group`` (:func:`.distributed.run_rank` with ``init_group=False``).
- Rank 0 evaluates and writes the output contract into the job folder, which every node
  sees (the ray backend's shared-filesystem mode); every rank leaves its result, with
  the address of its node, in a private folder inside the job folder (removed at the
  end), and the job log names the node of each rank.
- Cancel: Ray stops the driver with SIGTERM; the driver writes the ``cancel`` file that
  every rank checks each step; rank 0 saves last.pt; then all end (within the backend's
  stop wait, 30 s by default, before Ray's SIGKILL).
- No restarts: a rank that fails raises in its worker, Ray Train stops the others and
  the job fails naming the rank; resuming from last.pt is the user's choice, as with
  torchrun. Ray Train would otherwise start the ranks again *from scratch*: after a
  failure (``max_failures=0``) and, by default without limit, after a node was lost
  ("preempted", which Ray Train counts apart: ``max_preemption_failures=0``); with
  that node gone it waited for a second CPU for ever, which left the job running. A
  node cut off without a word fails the job once Ray misses its heartbeats (about a
  minute in the 2-node test), the rank stuck waiting for it stopped by Ray Train.
  Two guards more, for Ray versions without that setting: a restarted rank refuses to
  run (it finds the earlier attempt's results), and the driver stops waiting
  :data:`FAILED_GRACE_S` after a rank reported its failure. A rank stuck in a
  collective fails after the process-group timeout (``CVAT_TRAIN_DDP_TIMEOUT_S``,
  default 1800 s); a lost peer's connection fails its collective at once (gloo).

Only this module imports ``ray`` (an import-linter contract keeps it so), and only in
the job processes Ray starts.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from dataclasses import fields
from pathlib import Path

from ..jobs.runtime import JobContext, JobError
from .distributed import combine_results, follow_ranks, run_rank, timeout_s
from .plan import requested_ranks

#: set (to "1") by the ray backend's entry point in the job process it starts on the cluster
RAY_JOB_ENV = "CVAT_TRAIN_RAY_JOB"

#: seconds the driver still waits for Ray Train to end once a rank reported its failure
FAILED_GRACE_S = 60.0


def on_ray() -> bool:
    """True in a job process the ray backend started (a Ray job's driver)."""
    return os.environ.get(RAY_JOB_ENV) == "1"


def ray_train_ranks(spec: dict) -> int:
    """How many Ray Train workers the train job ``spec`` runs as on a Ray cluster: its
    ``gpus`` (else the hyperparameter ``num_gpus``, alias ``num_clones``) when above 1 and
    its template is a built-in PyTorch one; 0 otherwise (the job trains in its own
    process: one rank, a TensorFlow or a custom template). Never raises: a spec the plan
    will refuse gives 0."""
    try:
        from .. import models

        template = models.get_template(spec.get("template"))
        if template.custom is not None or models.get_family(template.family).framework != "pytorch":
            return 0
    except Exception:  # noqa: BLE001 - the plan reports a bad spec, with its fix
        return 0
    ranks = requested_ranks(spec)
    return ranks if ranks > 1 else 0


def _connect() -> None:
    import ray

    if not ray.is_initialized():
        # a Ray job's driver: RAY_ADDRESS names its cluster; its workers' output comes here (job.log)
        ray.init(log_to_driver=True, configure_logging=False)


def cluster_device(requested: str | None, ranks: int) -> str:
    """The device of a ``ranks``-rank training on this job's Ray cluster: ``auto`` ->
    ``cuda`` when the cluster has GPUs, else ``cpu``; ``cuda`` and ``cpu`` as given.
    Raises JobError (with the fix) for ``cuda:N`` (one GPU per rank is Ray's to place)
    and when the whole cluster has fewer GPUs (``cuda``) or CPUs (``cpu``) than ranks:
    Ray would wait for them for ever."""
    import ray

    _connect()
    total = ray.cluster_resources()
    gpus, cpus = int(total.get("GPU", 0)), int(total.get("CPU", 0))
    requested = (requested or "auto").lower()
    if requested == "auto":
        device = "cuda" if gpus else "cpu"
    elif requested in ("cuda", "cpu"):
        device = requested
    else:
        raise JobError(
            f"num_gpus {ranks} on a Ray cluster runs one process per GPU wherever Ray places it: "
            f"give device auto, cuda or cpu, not {requested[:40]!r}"
        )
    have, what = (gpus, "GPUs") if device == "cuda" else (cpus, "CPUs")
    if have < ranks:
        raise JobError(
            f"num_gpus {ranks} asks for {ranks} {what}, one per rank, but the Ray cluster has {have} in all: "
            f"set num_gpus (--gpus) to at most {have}, or add nodes to the cluster"
        )
    return device


def _rank_loop(config: dict) -> None:
    """One Ray Train worker: rank ``world_rank`` of the job in ``config['job_dir']``.
    Raises when the rank failed, so that Ray Train stops the other ranks at once (they
    would otherwise wait in a collective for its timeout)."""
    import ray
    import ray.train

    context = ray.train.get_context()
    run_dir = Path(config["run_dir"])
    earlier = sorted(f.name for f in run_dir.glob("rank*.json"))
    if earlier:  # Ray Train restarted the ranks: they would train again from scratch
        raise RuntimeError(f"not restarting the ranks after a failure (earlier results: {', '.join(earlier)})")
    result = run_rank(
        config["job_dir"],
        run_dir,
        context.get_world_rank(),
        context.get_world_size(),
        context.get_local_rank(),
        node=ray.util.get_node_ip_address(),
        init_group=False,
        ranks_device=cluster_device,
        signals=False,  # Ray Train runs this in a thread; a cancel comes as the run folder's file
    )
    if result["state"] == "failed":
        raise RuntimeError(f"rank {result['rank']} failed: {result['message']}")


def run_ray_train(ctx: JobContext, ranks: int, device: str = "cpu") -> dict:
    """Run the job's ``ranks`` ranks as Ray Train workers on this job's cluster and wait
    for them, forwarding a cancel. Returns rank 0's outputs (as
    :meth:`.engine.Trainer.fit`); logs the node each rank ran on. Raises JobCancelled
    when the ranks stopped on a cancel (last.pt saved), JobError when a rank failed (the
    earliest failure, with its rank) or ended without a result (its worker or node lost:
    the message gives Ray Train's error)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    _connect()
    # the job folder: every node sees it (the backend's shared filesystem); removed at the end
    run_dir = Path(tempfile.mkdtemp(prefix=".ranks-", dir=ctx.dir.path))
    cuda = device.startswith("cuda")
    trainer = TorchTrainer(
        _rank_loop,
        train_loop_config={"job_dir": str(ctx.dir.path), "run_dir": str(run_dir)},
        torch_config=TorchConfig(backend="nccl" if cuda else "gloo", timeout_s=int(timeout_s())),
        scaling_config=ScalingConfig(
            num_workers=ranks, use_gpu=cuda, resources_per_worker={"CPU": 1, "GPU": 1} if cuda else {"CPU": 1}
        ),
        run_config=RunConfig(
            name=f"cvat-train-{ctx.dir.id}",
            storage_path=str(run_dir / "ray-train"),
            failure_config=FailureConfig(max_failures=0, **_no_preemption_retries(FailureConfig)),
        ),
    )
    ctx.log(f"training as {ranks} Ray Train workers ({'one GPU' if cuda else 'one CPU'} each, placed by Ray)")
    error: list[BaseException] = []

    def fit() -> None:
        try:
            trainer.fit()
        except BaseException as e:  # noqa: BLE001 - reported with the ranks' results
            error.append(e)

    thread = threading.Thread(target=fit, name="ray-train-fit", daemon=True)
    try:
        thread.start()
        results = follow_ranks(ctx, run_dir, _running(thread, run_dir))
        for rank in sorted(results):
            ctx.log(
                f"rank {rank} of {ranks} ran on node {results[rank].get('node') or '?'}: {results[rank].get('state')}"
            )
        lost = False
        if error:
            ended, lost = _ray_train_error(error[0])
        elif thread.is_alive():
            ended = f"Ray Train had not ended {FAILED_GRACE_S:.0f} s after a rank failed"
        else:
            ended = "Ray Train ended"
        try:
            return combine_results(results, ranks, ended)
        except JobError as e:  # a rank's failure: say how Ray Train ended too
            what = str(e).split(" This is typically caused")[0].rstrip(". ")  # less gloo's advice to developers
            if lost:
                cause = "" if ended in what or ended == "Ray Train ended" else f" ({ended})"
                raise JobError(
                    f"a node of the Ray cluster was lost mid-training{cause}; {what}. Resume from "
                    f"checkpoints/last.pt once the cluster has {ranks} {'GPUs' if cuda else 'CPUs'} again"
                ) from None
            if ended in what or ended == "Ray Train ended":
                raise
            raise JobError(f"{what}; {ended}") from None
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _no_preemption_retries(config_class) -> dict:
    """``{"max_preemption_failures": 0}`` where Ray Train's FailureConfig has it (newer
    Ray), else ``{}``."""
    names = {f.name for f in fields(config_class)}
    return {"max_preemption_failures": 0} if "max_preemption_failures" in names else {}


def _running(thread: threading.Thread, run_dir: Path):
    """A ``running()`` for :func:`.distributed.follow_ranks`: ``thread`` (Ray Train's
    fit) is alive, and no rank reported a failure :data:`FAILED_GRACE_S` or more ago (a
    Ray Train that waits to restart the ranks, e.g. for a lost node's resources, is not
    waited for: the driver's exit ends the Ray job and its workers)."""
    failed_at: list[float] = []

    def running() -> bool:
        if not thread.is_alive():
            return False
        if not failed_at and any(_state(f) == "failed" for f in run_dir.glob("rank*.json")):
            failed_at.append(time.monotonic())
        return not failed_at or time.monotonic() - failed_at[0] < FAILED_GRACE_S

    return running


def _state(result_file: Path) -> str | None:
    """The ``state`` of a rank's result file (None while unreadable)."""
    try:
        return json.loads(result_file.read_text()).get("state")
    except (OSError, ValueError, AttributeError):
        return None


def _ray_train_error(error: BaseException) -> tuple[str, bool]:
    """``("Ray Train: <what failed>", node_lost)`` from the error Ray Train's fit raised:
    each failed worker's rank and first line where it says (a ``WorkerGroupError``'s
    ``worker_failures``) unless that is the rank's own failure (its result has it: then
    just "Ray Train ended"), else its first line; ``node_lost``: a node left mid-run
    (drained: Ray Train's "preemption"; or dead: missed heartbeats)."""
    failures = getattr(error, "worker_failures", None) or {}
    lines = {rank: _first_line(e) for rank, e in sorted(failures.items())}
    # a rank's own failure is in its result already (:func:`_rank_loop` raised it)
    what = "; ".join(f"rank {rank}: {line}" for rank, line in lines.items() if not line.startswith(f"rank {rank} "))
    texts = [_chain_text(error)] + [_chain_text(e) for e in failures.values()]
    lost = any("preemption" in t or "its node has died" in t for t in texts)
    if failures and not what:  # nothing the ranks' results do not say already
        return "Ray Train ended", lost
    return f"Ray Train: {what or _first_line(error)}", lost


def _chain_text(error: BaseException) -> str:
    """The text of ``error`` and of its causes."""
    parts, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        parts.append(str(error))
        error = error.__cause__ or error.__context__
    return "\n".join(parts)


def _first_line(error: BaseException) -> str:
    """The first non-empty line of ``error``'s text, at most 300 characters, without a
    final full stop."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
    return text[:300].rstrip(". ")


__all__ = ["RAY_JOB_ENV", "cluster_device", "on_ray", "ray_train_ranks", "run_ray_train"]
