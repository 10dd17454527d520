"""Onepanel's hyperparameter forms run as pasted, for every family: the TFOD form
(``num-steps``, ``batch_size``, ``initial_learning_rate``, ``num-clones``,
``schedule-step-1``, ``schedule-step-2``) and the two meanings of ``num_steps`` (the whole
run for the TFOD-style families, steps per epoch for Mask R-CNN)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jupyter_cvat_train.jobs.runtime import JobDir, JobError, run_job
from jupyter_cvat_train.models import get_template, list_templates
from jupyter_cvat_train.models.hyperparameters import (
    HyperparameterError,
    key_schema,
    parse_hyperparameters,
    schedule_milestones,
)
from jupyter_cvat_train.training import train_job
from jupyter_cvat_train.training.engine import _batches, lr_factor
from jupyter_cvat_train.training.plan import make_plan

# The TFOD example as Onepanel's form held it (key=value lines, its own spellings).
TFOD = """num-steps=10000
batch_size=24
initial_learning_rate=0.0004
num-clones=1
schedule-step-1=15000
schedule-step-2=20000"""
TFOD_FORMS = [TFOD, TFOD.replace("\n", "; "), TFOD.replace("=", ": ")]
BUILTIN = [t.name for t in list_templates() if t.builtin and t.custom is None and t.framework == "pytorch"]
FAST = "\npretrained=false\nnum_workers=0\nimage_size=96\nwarmup_iters=0\nprecise_bn_batches=1\ndetections_per_img=5"


@pytest.fixture(scope="module")
def sample_zip(tmp_path_factory) -> Path:
    from jupyter_cvat_train.datasets import generate_sample

    return generate_sample(tmp_path_factory.mktemp("sample") / "shapes.zip", images=8, seed=1, width=160, height=120)


@pytest.mark.parametrize("text", TFOD_FORMS, ids=["lines", "semicolons", "yaml"])
@pytest.mark.parametrize("template", BUILTIN)
def test_the_tfod_example_parses_for_every_family(template, text):
    p = parse_hyperparameters(text, template)
    assert (p["num_steps"], p["batch_size"], p["learning_rate"], p["num_gpus"]) == (10000, 24, 0.0004, 1)
    assert (p["schedule_step_1"], p["schedule_step_2"], p["lr_schedule"]) == (15000, 20000, "step")
    assert schedule_milestones(p) == (15000, 20000)
    # without the steps the template's schedule stays, and there are no milestones
    plain = parse_hyperparameters("num-steps=100", template)
    assert plain["lr_schedule"] == get_template(template).defaults.get("lr_schedule", "cosine")
    assert schedule_milestones(plain) is None


@pytest.mark.parametrize("template", BUILTIN)
def test_each_num_steps_hint_says_which_meaning(template):
    t = get_template(template)
    help_ = key_schema(template)["num_steps"]["help"]
    hints = " ".join(str(p.get("hint", "")) for p in t.raw["parameters"])
    if t.family == "maskrcnn":
        assert "steps per epoch" in help_ and "Mask R-CNN" in help_
        assert "num_steps = optimizer steps per epoch" in hints
    else:
        assert "total optimizer steps of the run" in help_ and "TFOD" in help_
        assert "num_steps = total optimizer steps of the run" in hints
    assert "schedule-step-1" in key_schema(template)["schedule_step_1"]["help"]


def test_contradicting_or_unordered_schedule_steps_are_refused():
    t = "ssdlite320-mobilenet-v3"
    with pytest.raises(HyperparameterError, match="lr_schedule is cosine: remove one of them"):
        parse_hyperparameters("lr_schedule: cosine\nschedule-step-1: 100", t)
    with pytest.raises(HyperparameterError, match=r"schedule_step_2 \(100\) must come after schedule_step_1 \(200\)"):
        parse_hyperparameters("schedule-step-1=200, schedule-step-2=100", t)
    with pytest.raises(HyperparameterError, match="schedule_step_1 must be >= 1"):
        parse_hyperparameters("schedule-step-1=0", t)
    # lr_schedule step written out as well is fine, one step alone too
    p = parse_hyperparameters("lr_schedule=step; schedule_step_1=50", t)
    assert schedule_milestones(p) == (50,)


def test_step_schedule_drops_at_the_milestones():
    f = [lr_factor(s, total=100, warmup=0, schedule="step", milestones=(10, 20)) for s in (0, 9, 10, 19, 20, 99)]
    assert f == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    default = [lr_factor(s, total=90, warmup=0, schedule="step") for s in (59, 60, 79, 80)]
    assert default == pytest.approx([1, 0.1, 0.1, 0.01])


def test_batches_draws_an_epoch_of_n_steps():
    assert list(_batches([1, 2, 3], 3)) == [1, 2, 3]
    assert list(_batches([1, 2, 3], 7)) == [1, 2, 3, 1, 2, 3, 1]
    assert list(_batches([1, 2, 3], 2)) == [1, 2]
    assert list(_batches([], 5)) == []


@pytest.mark.slow
def test_the_tfod_example_trains_with_its_milestones(sample_zip, tmp_path):
    """The TFOD form as pasted (steps scaled to a tiny run) trains; the optimizer's
    learning rate after the run shows both x0.1 drops at the given steps."""
    text = TFOD.replace("10000", "3").replace("=24", "=2").replace("15000", "1").replace("20000", "2")
    job = tmp_path / "tfod"
    JobDir(job).create(
        {"kind": "train", "template": "ssdlite320-mobilenet-v3", "dataset": str(sample_zip), "parameters": text + FAST}
    )
    status = run_job(job, train_job, handle_sigterm=False)
    assert status["state"] == "succeeded", status["message"]
    plan = next(e for e in JobDir(job).read_events() if e["type"] == "plan")
    assert (plan["epochs"], plan["steps_per_epoch"]) == (1, 3)  # 6 training images / batch 2
    ck = torch.load(job / "output" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["params"]["lr_schedule"] == "step" and ck["params"]["schedule_step_1"] == 1
    assert ck["scheduler"]["last_epoch"] == 3
    # steps 0 at lr, 1 at lr/10, 2 at lr/100; the rate set for the next step stays lr/100
    assert ck["optimizer"]["param_groups"][0]["lr"] == pytest.approx(0.0004 * 0.01)


def test_mask_rcnn_num_steps_counts_one_epoch(sample_zip, tmp_path):
    t = "maskrcnn-resnet50-fpn-v2"
    notes: list[str] = []
    spec = {"template": t, "dataset": str(sample_zip), "parameters": "num_steps: 5\nepochs: 2\nbatch_size: 2"}
    plan = make_plan(spec, tmp_path / "out", log=notes.append)
    assert (plan.steps_per_epoch, plan.epochs) == (5, 2)  # not ceil(5 / 3) epochs of one pass each
    assert any(
        "counts the steps of one epoch" in n and "one pass over the training split is 3 steps" in n for n in notes
    )
    # without num_steps an epoch is one pass; the template's default epochs (12) apply
    plan = make_plan({**spec, "parameters": "batch_size: 2"}, tmp_path / "out2", log=notes.append)
    assert (plan.steps_per_epoch, plan.epochs) == (3, 12)
    # num_steps cannot say how many epochs here
    with pytest.raises(JobError, match="num_steps is the number of steps per epoch"):
        make_plan({**spec, "parameters": "num_steps: 5\nepochs: null"}, tmp_path / "out3", log=notes.append)
    # the TFOD-style families keep num_steps as the run's total
    plan = make_plan(
        {
            "template": "ssdlite320-mobilenet-v3",
            "dataset": str(sample_zip),
            "parameters": "num_steps: 5\nbatch_size: 2",
        },
        tmp_path / "out4",
        log=notes.append,
    )
    assert (plan.steps_per_epoch, plan.epochs) == (3, 2)


@pytest.mark.slow
def test_mask_rcnn_trains_num_steps_per_epoch(sample_zip, tmp_path):
    """Onepanel's Mask R-CNN form (num_steps per epoch with a stage) as pasted: two
    optimizer steps per epoch over a split of three batches."""
    text = "num_steps: 2  # Num steps per epoch\nstage_1_epochs: 1\nbatch_size: 2\nmax_proposals: 20" + FAST.replace(
        "=", ": "
    )
    job = tmp_path / "mask"
    JobDir(job).create(
        {"kind": "train", "template": "maskrcnn-resnet50-fpn-v2", "dataset": str(sample_zip), "parameters": text}
    )
    status = run_job(job, train_job, handle_sigterm=False)
    assert status["state"] == "succeeded", status["message"]
    ck = torch.load(job / "output" / "checkpoints" / "last.pt", map_location="cpu", weights_only=False)
    assert ck["scheduler"]["last_epoch"] == 2 and ck["epoch"] == 1
