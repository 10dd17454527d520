"""The train job: ``python -m jupyter_cvat_train.training JOB_DIR`` and ``cvat-train train``.

:func:`train_job` is the job function given to :func:`jupyter_cvat_train.jobs.runtime.run_job`:
it checks the run (:func:`.plan.make_plan`), then hands the plan to the framework of the
template's family (``models.get_framework``). The pytorch framework (:func:`train_pytorch`)
trains in this process, or, with more than one GPU, under torchrun (:mod:`.distributed`)
or, in a job on a Ray cluster, as Ray Train workers (:mod:`.ray_train`).
"""

from __future__ import annotations

from ..jobs.runtime import JobContext


def train_job(ctx: JobContext) -> dict:
    """Run the train job described by ``ctx.spec`` (see :mod:`.plan` for the spec) and
    write the output contract into ``ctx.output_dir``. Returns the job outputs
    (model_dir, map, map_50, best_epoch, epochs, message). Raises JobError for bad input
    (before training), JobCancelled after a SIGTERM (last.pt saved)."""
    from ..models import get_framework
    from .plan import make_plan

    custom = _custom_template(ctx.spec)
    if custom is not None:  # the user's own code (a custom template): jupyter_cvat_train.custom
        from ..custom.run import train_custom

        return train_custom(ctx, custom)
    from .ray_train import cluster_device, on_ray

    plan = make_plan(
        ctx.spec, ctx.output_dir, log=ctx.log, warn=ctx.warn, ranks_device=cluster_device if on_ray() else None
    )
    return get_framework(plan.framework).trainer()(plan, ctx)


def _custom_template(spec: dict):
    """The spec's template when it is a custom one (it names code and a command), else None."""
    from ..models import TemplateNotFound, get_template

    name = spec.get("template")
    if not isinstance(name, str) or not name:
        return None
    try:
        template = get_template(name)
    except TemplateNotFound:
        return None  # make_plan says so, with the valid names
    return template if template.custom is not None else None


def train_pytorch(plan, ctx: JobContext) -> dict:
    """The pytorch framework's train function: a checked plan trained in this process,
    or with more than one GPU under torchrun (as Ray Train workers in a job the ray
    backend started: :mod:`.ray_train`)."""
    if plan.gpus > 1:
        from .ray_train import on_ray, run_ray_train

        if on_ray():
            return run_ray_train(ctx, plan.gpus, plan.device)
        from .distributed import run_torchrun

        return run_torchrun(ctx, plan.gpus, plan.device)
    from .engine import Trainer

    return Trainer(plan, ctx).fit()
