"""Device and precision choices."""

import pytest
import torch

from core.device import (
    autocast,
    cpu_has_native_bf16,
    precision_name,
    resolve_device,
    resolve_precision,
)
from core.errors import ConfigError

CPU = torch.device("cpu")


def test_explicit_precisions():
    assert resolve_precision("fp32", CPU) is None
    assert resolve_precision("bf16", CPU) is torch.bfloat16
    assert resolve_precision(" BF16 ", CPU) is torch.bfloat16


def test_auto_follows_the_cpu():
    expected = torch.bfloat16 if cpu_has_native_bf16() else None
    assert resolve_precision("auto", CPU) is expected
    assert resolve_precision(None, CPU) is expected


def test_unknown_precision_names_the_choices():
    with pytest.raises(ConfigError, match="auto, fp32, bf16"):
        resolve_precision("half", CPU)


def test_names_round_trip():
    assert precision_name(resolve_precision("bf16", CPU)) == "bf16"
    assert precision_name(resolve_precision("fp32", CPU)) == "fp32"


def test_autocast_runs_convolutions_in_the_chosen_dtype():
    conv = torch.nn.Conv2d(3, 4, 3)
    x = torch.rand(1, 3, 8, 8)
    with autocast(CPU, torch.bfloat16):
        assert conv(x).dtype == torch.bfloat16
    with autocast(CPU, None):
        assert conv(x).dtype == torch.float32


def test_cuda_is_a_clear_error_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        resolve_device("cuda")


def test_auto_keeps_float32_on_the_cpu_for_models_that_do_not_gain():
    from core.models import build_model

    narrow, wide = build_model("prescribed"), build_model("liteunet")
    assert narrow.bf16_on_cpu is False and wide.bf16_on_cpu is True
    assert resolve_precision("auto", CPU, narrow) is None
    assert resolve_precision("auto", CPU, wide) is resolve_precision("auto", CPU)
    assert resolve_precision("bf16", CPU, narrow) is torch.bfloat16  # asked for explicitly
