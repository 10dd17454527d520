"""The one device resolver training and annotation use (models.device.resolve_device)."""

from __future__ import annotations

import pytest
import torch

from jupyter_cvat_train.jobs.runtime import JobError
from jupyter_cvat_train.models.device import resolve_device

HAS_CUDA = torch.cuda.is_available()


@pytest.mark.parametrize("spelling", [None, "", "auto", "AUTO", "Auto"])
def test_auto_picks_the_gpu_when_there_is_one(spelling):
    assert resolve_device(spelling) == ("cuda" if HAS_CUDA else "cpu")


@pytest.mark.parametrize("spelling", ["cpu", "CPU"])
def test_cpu_in_any_case(spelling):
    assert resolve_device(spelling) == "cpu"


@pytest.mark.parametrize("spelling", ["tpu", "gpu", "mps", "cuda0", "cpu:0", "x" * 10_000])
def test_other_names_are_refused_with_the_choices_and_a_short_echo(spelling):
    with pytest.raises(JobError) as e:
        resolve_device(spelling)
    assert "auto" in str(e.value) and "cpu" in str(e.value) and len(str(e.value)) < 200


@pytest.mark.skipif(HAS_CUDA, reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("spelling", ["cuda", "CUDA", "cuda:0", "cuda:1"])
def test_cuda_without_a_gpu_names_the_fix(spelling):
    with pytest.raises(JobError, match="no CUDA GPU.*--device cpu or auto"):
        resolve_device(spelling)
