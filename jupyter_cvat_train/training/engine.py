"""The training loop: one process (or one DDP rank) training a planned run.

Per epoch: train over the train split (AMP on CUDA), COCO evaluation on the val split,
TensorBoard scalars, a ``metrics`` event, ``checkpoints/last.pt`` and, when mAP improves,
``checkpoints/best.pt``; at the end the best weights go to ``model/`` and every epoch's
metrics to ``metrics.json``. A cancel request (SIGTERM) is honoured after the current
step: last.pt is saved, then :class:`JobCancelled` is raised.

The loop follows torchvision's detection reference scripts (train_one_epoch / evaluate).
"""

from __future__ import annotations

import copy
import math
import random
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..jobs.runtime import JobCancelled, JobContext, JobError, write_json_atomic
from ..models.schema import schedule_milestones
from .plan import Plan, drop_last, run_summary

PROGRESS_INTERVAL_S = 0.5


def usable_cpus() -> int:
    """The number of CPUs this process may run on (its affinity mask on Linux)."""
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def lr_factor(step: int, *, total: int, warmup: int, schedule: str, milestones: tuple[int, ...] | None = None) -> float:
    """Learning-rate multiplier at optimizer step ``step`` (0-based) of ``total``:
    linear warm-up from 0.001 over ``warmup`` steps, then cosine (to 0.01), step (x0.1
    at each of ``milestones``, steps counted from the start of the run; default 2/3 and
    8/9 of the run) or constant."""
    if warmup > 0 and step < warmup:
        return 0.001 + (1 - 0.001) * step / warmup
    if schedule == "cosine":
        t = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "step":
        return 0.1 ** sum(step >= m for m in (milestones or (int(total * 2 / 3), int(total * 8 / 9))))
    return 1.0


def _batches(loader, n: int):
    """The first ``n`` batches of ``loader``, iterated again as often as needed: one pass
    when ``n`` is its length; more or fewer when ``num_steps`` counts the steps of an epoch
    (Mask R-CNN). A pass of the plain loader reshuffles; the per-epoch DDP sampler repeats
    its order within the epoch."""
    done = 0
    while done < n:
        before = done
        for batch in loader:
            yield batch
            done += 1
            if done >= n:
                return
        if done == before:  # an empty loader: the plan never makes one, but never loop forever
            return


def set_stage(model: torch.nn.Module, stage: int) -> str:
    """Mask R-CNN training stage (matterport / Onepanel): 1 = heads only (RPN, ROI heads,
    FPN; backbone body frozen), 2 = ResNet stage 4 and up (torchvision layer3, layer4 =
    matterport's "4+") plus heads, 3 = all layers (the caller lowers the learning rate /10).
    Returns a description for the log."""
    body = model.backbone.body
    trainable = {1: (), 2: ("layer3", "layer4"), 3: None}[stage]
    for p in model.parameters():
        p.requires_grad_(True)
    for name, p in body.named_parameters():
        p.requires_grad_(trainable is None or name.split(".")[0] in trainable)
    return {1: "heads only", 2: "ResNet stage 4 and up (layer3, layer4) + heads", 3: "all layers, learning rate / 10"}[
        stage
    ]


@torch.no_grad()
def recompute_batchnorm_stats(
    model: torch.nn.Module, loader, device: torch.device, max_batches: int, use_amp: bool = False, cancelled=None
) -> int:
    """Precise BN: replace the running mean / variance of every BatchNorm layer with the
    average of the batch statistics over ``max_batches`` training batches, no gradients.

    During training from scratch the weights move faster than BatchNorm's running average
    (momentum 0.03 in SSDlite) follows, so the stored statistics lag behind the weights and
    evaluation-mode predictions collapse (measured here: mAP 0.01 with the running
    statistics vs 1.0 with recomputed ones, on the same weights). Source: Wu & Johnson,
    "Rethinking 'Batch' in BatchNorm" (2021), Detectron2's PreciseBN hook. Detection models
    need targets in train mode, so ``loader`` yields (images, targets) as for training.
    ``cancelled``: an Event; when set, the average covers the batches seen so far.
    Returns the number of batches used (0 when the model has no BatchNorm layer).
    """
    bns = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or max_batches <= 0:
        return 0
    was_training = model.training
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average of the batches seen
    model.train()
    used = 0
    for images, targets in loader:
        images, targets = _to_device(images, targets, device)
        with torch.autocast(device.type, enabled=use_amp):
            model(images, targets)
        used += 1
        if used >= max_batches or (cancelled is not None and cancelled.is_set()):
            break
    for m, momentum in zip(bns, momenta, strict=True):
        m.momentum = momentum
    model.train(was_training)
    return used


_STOP_SIGNALS = {2, 15}  # SIGINT, SIGTERM


def _ignore_stop_signals(_worker_id: int) -> None:
    """DataLoader workers ignore SIGTERM/SIGINT (a cancel signals the whole process group):
    the training process finishes its step, saves last.pt, then shuts them down. Workers
    are forked with these signals blocked (:class:`SignalSafeLoader`); a signal that
    arrived in between is discarded here, once it is ignored."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)


class SignalSafeLoader:
    """A DataLoader whose worker processes are started with SIGTERM/SIGINT blocked, that
    turns a bad sample into a one-line JobError, and that never leaves workers behind.

    Without the signal mask, a cancel (SIGTERM to the process group) that lands between a
    worker's fork and its ``worker_init_fn`` kills the worker, and the training process
    fails with "DataLoader worker exited unexpectedly" instead of ending ``cancelled``. In
    this process the blocked signal stays pending and is handled right after the fork.

    An :class:`~..datasets.torchdata.UnreadableSample` batch raises JobError with its
    message; any other failure of the loader (a worker's exception, which arrives with
    its traceback in the message) raises JobError with the first and last lines. Either
    way the workers are shut down first (:meth:`close`), and :meth:`close` also runs at
    interpreter exit: the workers ignore SIGTERM, so multiprocessing's own exit handler,
    which terminates and then joins them, would otherwise wait forever.
    """

    def __init__(self, loader: torch.utils.data.DataLoader):
        self.loader = loader
        self._iterator = None
        self._atexit = False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        import atexit
        import signal

        if not self.loader.num_workers:
            return self._checked(iter(self.loader))
        if not self._atexit:  # runs before multiprocessing's exit handler (registered earlier)
            atexit.register(self.close)
            self._atexit = True
        old = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
        try:
            self._iterator = iter(self.loader)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self._checked(self._iterator)

    def _checked(self, iterator):
        from ..datasets.torchdata import UnreadableSample

        try:
            for batch in iterator:
                if isinstance(batch, UnreadableSample):
                    raise JobError(batch.message)
                yield batch
        except JobError as e:
            self.close()
            raise JobError(_one_line(str(e))) from None
        except Exception as e:  # noqa: BLE001 - a worker's failure, reported in one line
            self.close()
            raise JobError(f"loading training data failed: {_one_line(str(e) or type(e).__name__)}") from None

    def close(self, timeout: float = 10.0) -> None:
        """Shut the worker processes down: torch's shutdown (a stop message, then join),
        then SIGKILL for any worker still alive after ``timeout`` seconds (they ignore
        SIGTERM). Safe to call more than once."""
        import os
        import signal

        it, self._iterator = self._iterator, None
        if it is None:
            return
        workers = list(getattr(it, "_workers", ()))
        try:
            it._shutdown_workers()
        except Exception:  # noqa: BLE001 - the kill below still ends the workers
            pass
        for w in workers:
            w.join(timeout)
            if w.is_alive():
                try:
                    os.kill(w.pid, signal.SIGKILL)
                except OSError:
                    pass
                w.join(timeout)
        if getattr(self.loader, "_iterator", None) is it:
            self.loader._iterator = None


def _to_device(images: list, targets: list[dict], device: torch.device) -> tuple[list, list[dict]]:
    """A batch from the loaders moved to ``device`` (the tensors of each target dict)."""
    images = [im.to(device, non_blocking=True) for im in images]
    targets = [
        {k: (v.to(device, non_blocking=True) if torch.is_tensor(v) else v) for k, v in t.items()} for t in targets
    ]
    return images, targets


@dataclass
class _Run:
    """What the steps of :meth:`Trainer.fit` share: the model and what trains it, and the
    counters a checkpoint saves and a resume restores."""

    model: torch.nn.Module
    ddp_model: torch.nn.Module  # ``model``, or its DistributedDataParallel wrapper under torchrun
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    writer: object | None = None  # TensorBoard SummaryWriter (rank 0)
    start_epoch: int = 0  # epochs completed before this process started (resume)
    step: int = 0  # optimizer steps completed
    best_map: float = -1.0
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one record per completed epoch (metrics.json)
    best_state: dict | None = None  # the best epoch's weights (CPU), for model/
    last_report: float = 0.0  # time.monotonic() of the last progress report


def _cancelled(when: str, epoch: int) -> JobCancelled:
    """The JobCancelled of a cancel ``when`` ("during" / "after") 0-based ``epoch``."""
    return JobCancelled(f"cancelled by request {when} epoch {epoch + 1}; last.pt saved (resume with --resume)")


def _one_line(message: str) -> str:
    """A worker's exception text (torch: "Caught X in DataLoader worker process N.",
    the traceback, then "module.X: message") cut to its first and last lines."""
    lines = [ln.strip() for ln in message.strip().splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else message
    return f"{lines[0]} {lines[-1]}"


class Trainer:
    """Runs a :class:`Plan` in this process. ``rank``/``world_size`` > 1 under torchrun
    (DistributedDataParallel; rank 0 evaluates, reports and writes files)."""

    def __init__(
        self, plan: Plan, ctx: JobContext, rank: int = 0, world_size: int = 1, local_rank: int = 0, cancel_check=None
    ):
        self.plan, self.ctx = plan, ctx
        self.rank, self.world_size = rank, world_size
        self.main = rank == 0
        self.out = Path(ctx.output_dir)
        self.cancel_check = cancel_check or ctx.cancelled.is_set
        p = plan.params
        if plan.device == "cuda" and world_size > 1:
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device(plan.device)
        self.use_amp = bool(p["amp"]) and self.device.type == "cuda"
        self.stage_of = {e: k for k, a, b in plan.stages for e in range(a, b)}  # epoch (0-based) -> Mask R-CNN stage

    # ---- setup -------------------------------------------------------------------------
    def _set_process_state(self) -> None:
        """Thread count and seeds from the parameters alone: the same seed on the same
        machine gives the same run whatever set them before in this process (e.g. an
        annotate job run in the same process changes torch's thread count)."""
        p = self.plan.params
        threads = int(p["threads"]) or max(1, usable_cpus() // self.world_size)
        torch.set_num_threads(threads)
        seed = int(p["seed"]) + self.rank
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _build(self):
        from ..models import build_model, get_family, load_pretrained_weights
        from ..models.builders import load_matching_state_dict

        plan, p = self.plan, self.plan.params
        model = build_model(plan.template, len(plan.labels) + 1, p)
        if plan.resume is not None:
            model.load_state_dict(plan.resume["model"])
        elif plan.finetune is not None:
            src = plan.finetune
            same = src.labels == plan.labels
            skip = () if same else get_family(plan.family).head_prefixes
            loaded, skipped = load_matching_state_dict(model, src.state_dict, skip)
            if same:
                self.ctx.log(f"fine-tuning from {src.path}: {len(loaded)} tensors loaded")
            else:
                msg = (
                    f"fine-tuning from {src.path}: its labels {src.labels} differ from the export's {plan.labels}, "
                    f"so the label heads were rebuilt ({len(skipped)} tensors re-initialized); "
                    f"{len(loaded)} tensors loaded"
                )
                if self.main:
                    self.ctx.warn(msg)
        elif p["pretrained"]:
            from ..models import PretrainedWeightsUnavailable

            try:
                self.ctx.log(load_pretrained_weights(model, plan.template))
            except PretrainedWeightsUnavailable as e:
                raise JobError(str(e)) from None
        else:
            self.ctx.log("training from scratch (pretrained: false)")
        return model.to(self.device)

    def _loaders(self):
        from ..datasets.torchdata import DetectionDataset, build_transforms, collate

        plan, p = self.plan, self.plan.params
        masks = plan.task == "instance-segmentation"
        train_ds = DetectionDataset(plan.train_items, plan.labels, build_transforms(p, True), with_masks=masks)
        val_ds = DetectionDataset(plan.val_items, plan.labels, build_transforms(p, False), with_masks=masks)
        workers = int(p["num_workers"])
        g = torch.Generator()
        g.manual_seed(int(p["seed"]))
        sampler = None
        if self.world_size > 1:
            sampler = torch.utils.data.DistributedSampler(
                train_ds, self.world_size, self.rank, shuffle=True, seed=int(p["seed"]), drop_last=True
            )
        common = dict(
            collate_fn=collate,
            num_workers=workers,
            persistent_workers=workers > 0,
            pin_memory=self.device.type == "cuda",
            worker_init_fn=_ignore_stop_signals if workers else None,
        )
        train = torch.utils.data.DataLoader(
            train_ds,
            batch_size=int(p["batch_size"]),
            shuffle=sampler is None,
            sampler=sampler,
            generator=g,
            **common,
            drop_last=drop_last(len(train_ds) // self.world_size, int(p["batch_size"])),
        )
        val = torch.utils.data.DataLoader(val_ds, batch_size=int(p["batch_size"]), shuffle=False, **common)
        return SignalSafeLoader(train), SignalSafeLoader(val), sampler

    # ---- run ---------------------------------------------------------------------------
    def fit(self) -> dict:
        """Train, evaluate each epoch, write the output contract. Returns the job outputs
        (model_dir, map, map_50, best_epoch, epochs, message); {} on ranks other than 0.
        Raises JobCancelled after saving last.pt when cancelled, JobError when the loss
        diverges."""
        self._set_process_state()
        model = self._build()
        train_loader, val_loader, sampler = self._loaders()
        ddp_model = self._distributed(model)
        optimizer = self._make_optimizer(model)
        run = _Run(
            model=model,
            ddp_model=ddp_model,
            optimizer=optimizer,
            scheduler=self._make_scheduler(optimizer),
            scaler=torch.amp.GradScaler("cuda", enabled=self.use_amp),
        )
        self._restore(run)
        self._start_reporting(run)
        stage = None
        for epoch in range(run.start_epoch, self.plan.epochs):
            stage = self._enter_stage(model, epoch, stage)
            if sampler is not None:
                sampler.set_epoch(epoch)
            losses, train_time = self.train_one_epoch(run, train_loader, epoch)
            metrics = self._evaluate(model, train_loader, val_loader)
            # All ranks wait for rank 0's evaluation here and learn whether a cancel interrupted it.
            if self._any_rank(self.main and metrics is None):
                self._save_last(run, epoch + 1)
                raise _cancelled("after", epoch)
            if self.main:
                self._report_epoch(run, epoch, stage, losses, metrics, train_time)
                self._save_checkpoints(run, epoch, metrics)
                self._write_metrics(run.history, run.best_epoch, metrics.get("evaluator"))
            if self._should_stop() and epoch + 1 < self.plan.epochs:
                raise _cancelled("after", epoch)
        if not self.main:
            return {}
        run.writer.close()
        return self._finish(model, run.history, run.best_epoch, run.best_state)

    def _distributed(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` wrapped in DistributedDataParallel under torchrun, else ``model``."""
        if self.world_size == 1:
            return model
        return torch.nn.parallel.DistributedDataParallel(
            model,
            device_ids=[self.device.index] if self.device.type == "cuda" else None,
            find_unused_parameters=bool(self.plan.stages),
        )

    def _make_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer:
        """SGD with momentum or AdamW over all parameters (frozen Mask R-CNN stages get no gradient)."""
        p = self.plan.params
        params = list(model.parameters())
        lr = float(p["learning_rate"])
        if p["optimizer"] == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=float(p["weight_decay"]))
        return torch.optim.SGD(params, lr=lr, momentum=float(p["momentum"]), weight_decay=float(p["weight_decay"]))

    def _make_scheduler(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LambdaLR:
        """Per-step schedule: :func:`lr_factor` over the whole run, x0.1 in Mask R-CNN stage 3."""
        p, spe = self.plan.params, self.plan.steps_per_epoch
        total = spe * self.plan.epochs
        warmup = min(int(p["warmup_iters"]), spe)
        milestones = schedule_milestones(p)

        def factor(step: int) -> float:
            f = lr_factor(step, total=total, warmup=warmup, schedule=p["lr_schedule"], milestones=milestones)
            return f * (0.1 if self.stage_of.get(step // spe) == 3 else 1.0)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    def _restore(self, run: _Run) -> None:
        """Continue the checkpoint of ``plan.resume``, if any: optimizer, scheduler, AMP
        scaler, counters, history and the random number generators."""
        from .checkpoints import set_rng_state

        ck = self.plan.resume
        if ck is None:
            return
        run.optimizer.load_state_dict(ck["optimizer"])
        run.scheduler.load_state_dict(ck["scheduler"])
        if ck.get("scaler") and self.use_amp:
            run.scaler.load_state_dict(ck["scaler"])
        run.start_epoch, run.step = int(ck["epoch"]), int(ck["step"])
        run.best_map, run.best_epoch = float(ck.get("best_map", -1.0)), int(ck.get("best_epoch", 0))
        run.history = list(ck.get("history") or [])
        set_rng_state(ck.get("rng"))
        if self.rank:
            torch.manual_seed(int(self.plan.params["seed"]) + self.rank + run.start_epoch)
        self.ctx.log(f"resumed after epoch {run.start_epoch} (step {run.step}); training to epoch {self.plan.epochs}")

    def _start_reporting(self, run: _Run) -> None:
        """Rank 0: open the TensorBoard writer (dropping events past a resumed step) and
        report the plan (a ``plan`` event and a log line)."""
        if not self.main:
            return
        # TensorBoard's own switch (a module named tensorboard.compat.notf) for its TensorFlow
        # stub: else, where the tf extra is installed, SummaryWriter imports all of TensorFlow,
        # which a PyTorch job never uses (2.2 of its 3.2 s import here; the stub is what it
        # uses wherever TensorFlow is absent).
        sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
        from torch.utils.tensorboard import SummaryWriter

        plan, p, ctx = self.plan, self.plan.params, self.ctx
        run.writer = SummaryWriter(str(self.out / "tensorboard"), purge_step=run.step if run.step else None)
        ctx.event(
            "plan",
            template=plan.template,
            epochs=plan.epochs,
            steps_per_epoch=plan.steps_per_epoch,
            train_images=len(plan.train_items),
            val_images=len(plan.val_items),
            labels=plan.labels,
            device=str(self.device),
            gpus=self.world_size,
            dropped=plan.dropped,
            notes=plan.notes,
        )
        ctx.log(
            f"{plan.template}: {len(plan.train_items)} training / {len(plan.val_items)} validation images, "
            f"{plan.epochs} epochs x {plan.steps_per_epoch} steps, batch_size {p['batch_size']}, "
            f"device {self.device}"
            + (f" x {self.world_size}" if self.world_size > 1 else "")
            + (", AMP" if self.use_amp else "")
        )

    def _enter_stage(self, model: torch.nn.Module, epoch: int, stage: int | None) -> int | None:
        """Mask R-CNN: switch to the stage of ``epoch`` when it differs from ``stage`` (freeze
        / unfreeze, log and ``stage`` event). Returns the stage of ``epoch`` (None unstaged)."""
        plan = self.plan
        if plan.stages and self.stage_of.get(epoch) != stage:
            stage = self.stage_of.get(epoch)
            desc = set_stage(model, stage)
            k, a, b = next(s for s in plan.stages if s[0] == stage)
            if self.main:
                self.ctx.log(f"stage {stage} ({desc}): epochs {a + 1}..{b}")
                self.ctx.event("stage", stage=stage, description=desc, first_epoch=a + 1, last_epoch=b)
        return stage

    def train_one_epoch(self, run: _Run, loader, epoch: int) -> tuple[dict[str, float], float]:
        """One pass over the training split (0-based ``epoch``): forward (AMP on CUDA),
        backward, optimizer and scheduler step per batch; rank 0 reports progress. Returns
        (mean of each loss over the epoch's steps, seconds). Raises JobError when the loss
        is not finite, JobCancelled (after saving last.pt) when cancelled after a step."""
        lr = float(self.plan.params["learning_rate"])
        run.ddp_model.train()
        t0 = time.monotonic()
        sums: dict[str, float] = {}
        n_steps = 0
        for images, targets in _batches(loader, self.plan.steps_per_epoch):
            images, targets = _to_device(images, targets, self.device)
            with torch.autocast(self.device.type, enabled=self.use_amp):
                loss_dict = run.ddp_model(images, targets)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                raise JobError(
                    f"the loss became {loss.item()} at epoch {epoch + 1}, step {n_steps + 1}: training "
                    f"diverged; lower learning_rate (now {lr:g}) or check the boxes of the export"
                )
            run.optimizer.zero_grad(set_to_none=True)
            run.scaler.scale(loss).backward()
            run.scaler.step(run.optimizer)
            run.scaler.update()
            run.scheduler.step()
            run.step += 1
            n_steps += 1
            for k, v in loss_dict.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
            if self.main:
                self._report_step(run, float(loss.detach()), epoch)
            if self._should_stop():
                self._save_last(run, epoch, interrupted_in_epoch=epoch + 1)
                raise _cancelled("during", epoch)
        train_time = time.monotonic() - t0
        return {k: v / max(1, n_steps) for k, v in sums.items()}, train_time

    def _report_step(self, run: _Run, loss: float, epoch: int) -> None:
        """Rank 0, after a step: loss and learning rate to TensorBoard and a ``progress``
        event, at most every PROGRESS_INTERVAL_S seconds (and at the last step)."""
        now = time.monotonic()
        total = self.plan.steps_per_epoch * self.plan.epochs
        if now - run.last_report >= PROGRESS_INTERVAL_S or run.step == total:
            run.last_report = now
            cur_lr = run.optimizer.param_groups[0]["lr"]
            run.writer.add_scalar("train/loss", loss, run.step)
            run.writer.add_scalar("train/learning_rate", cur_lr, run.step)
            self.ctx.progress(
                run.step, total, "steps", epoch=epoch + 1, epochs=self.plan.epochs, loss=round(loss, 4), lr=cur_lr
            )

    def _evaluate(self, model: torch.nn.Module, train_loader, val_loader) -> dict | None:
        """Rank 0: precise BatchNorm statistics over training batches, then COCO evaluation
        on the val split. Returns the metrics (see :func:`.evaluate.evaluate`), None on
        other ranks and when a cancel interrupted the evaluation."""
        from .evaluate import evaluate

        if not self.main:
            return None
        plan, ctx = self.plan, self.ctx
        recompute_batchnorm_stats(
            model,
            train_loader,
            self.device,
            int(plan.params["precise_bn_batches"]),
            use_amp=self.use_amp,
            cancelled=ctx.cancelled,
        )
        return evaluate(
            model,
            val_loader,
            plan.val_items,
            plan.labels,
            self.device,
            with_masks=plan.task == "instance-segmentation",
            cancelled=ctx.cancelled,
        )

    def _report_epoch(
        self, run: _Run, epoch: int, stage: int | None, losses: dict, metrics: dict, train_time: float
    ) -> None:
        """Rank 0, after evaluating: the epoch's record appended to the history, TensorBoard
        scalars, a ``metrics`` event and a log line."""
        plan, ctx, writer = self.plan, self.ctx, run.writer
        record = {
            "epoch": epoch + 1,
            "step": run.step,
            "train_time_s": round(train_time, 2),
            "images_per_s": round(len(plan.train_items) / max(train_time, 1e-9), 2),
            "lr": run.optimizer.param_groups[0]["lr"],
            "losses": losses,
            **{k: metrics[k] for k in ("map", "map_50", "map_75", "per_label")},
        }
        if "bbox" in metrics:
            record["bbox"] = {k: metrics["bbox"][k] for k in ("map", "map_50", "map_75", "per_label")}
        if stage:
            record["stage"] = stage
        run.history.append(record)
        for k, v in losses.items():
            writer.add_scalar(f"epoch/{k}", v, epoch + 1)
        writer.add_scalar("val/mAP", metrics["map"], epoch + 1)
        writer.add_scalar("val/mAP@.5", metrics["map_50"], epoch + 1)
        for name, ap in metrics["per_label"].items():
            if ap is not None:
                writer.add_scalar(f"val_AP/{name}", ap, epoch + 1)
        writer.flush()
        ctx.event(
            "metrics",
            epoch=epoch + 1,
            epochs=plan.epochs,
            loss=losses.get("loss"),
            map=metrics["map"],
            map_50=metrics["map_50"],
            map_75=metrics["map_75"],
            per_label=metrics["per_label"],
        )
        ctx.log(
            f"epoch {epoch + 1}/{plan.epochs}: loss {losses.get('loss', 0):.4f}, mAP@[.5:.95] "
            f"{metrics['map']:.4f}, mAP@.5 {metrics['map_50']:.4f} ({train_time:.1f} s)"
        )

    def _save_checkpoints(self, run: _Run, epoch: int, metrics: dict) -> None:
        """Rank 0, after an epoch: best.pt (and the best weights in memory) when mAP
        improved, then last.pt."""
        if metrics["map"] > run.best_map:
            run.best_map, run.best_epoch = metrics["map"], epoch + 1
            run.best_state = copy.deepcopy({k: v.detach().cpu() for k, v in run.model.state_dict().items()})
            self._save_checkpoint(run, self.out / "checkpoints" / "best.pt", epoch + 1)
        self._save_last(run, epoch + 1)

    def _save_last(self, run: _Run, epoch_done: int, **extra) -> None:
        """checkpoints/last.pt after ``epoch_done`` completed epochs (rank 0 writes)."""
        if self.main:
            self._save_checkpoint(run, self.out / "checkpoints" / "last.pt", epoch_done, **extra)

    def _save_checkpoint(self, run: _Run, path: Path, epoch_done: int, **extra) -> None:
        from .checkpoints import save_checkpoint

        plan = self.plan
        save_checkpoint(
            path,
            model=run.model,
            optimizer=run.optimizer,
            scheduler=run.scheduler,
            scaler=run.scaler,
            epoch=epoch_done,
            step=run.step,
            best_map=run.best_map,
            best_epoch=run.best_epoch,
            history=run.history,
            template=plan.template,
            task=plan.task,
            labels=plan.labels,
            params=plan.params,
            dataset_fingerprint=plan.dataset_fingerprint,
            **extra,
        )

    def _should_stop(self) -> bool:
        return self._any_rank(bool(self.cancel_check()))

    def _any_rank(self, flag: bool) -> bool:
        """True when ``flag`` is true in any rank (an all-reduce under DDP: every rank
        must call it at the same point)."""
        if self.world_size > 1:
            t = torch.tensor([1.0 if flag else 0.0], device=self.device)
            torch.distributed.all_reduce(t)
            flag = bool(t.item() > 0)
        return flag

    def _write_metrics(self, history: list, best_epoch: int, evaluator: str | None) -> None:
        best = next((h for h in history if h["epoch"] == best_epoch), None)
        write_json_atomic(
            self.out / "metrics.json",
            {
                "template": self.plan.template,
                "labels": self.plan.labels,
                "epochs": self.plan.epochs,
                "evaluator": evaluator,
                "primary": "segm" if self.plan.task == "instance-segmentation" else "bbox",
                "best_epoch": best_epoch,
                "best": best,
                "final": history[-1] if history else None,
                "history": history,
            },
        )

    def _finish(self, model, history: list, best_epoch: int, best_state) -> dict:
        from ..models import save_model_dir

        plan = self.plan
        final_state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        if best_state is not None:
            model.load_state_dict(best_state)
        meta, outputs = run_summary(plan, history, best_epoch)
        model_dir = save_model_dir(self.out / "model", model, plan.template, plan.labels, plan.params, meta)
        model.load_state_dict(final_state)
        return {"model_dir": str(model_dir), **outputs}
