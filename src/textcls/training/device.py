"""The device models run on and what it pays to do there: the GPU and its process-wide settings,
the precision that runs natively here, CPU threads, the process group of a launcher, and the
device-dependent training defaults (`for_this_device`).

Example:
    >>> resolve_precision("auto")        # doctest: +SKIP
    'bf16'
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from textcls.config import TrainConfig
from textcls.errors import TextclsError

log = logging.getLogger(__name__)


GPU_WORKERS = (
    2  # DataLoader processes preparing batches ahead on a GPU; a CPU pads in the main process (~0.1 ms a batch)
)


def for_this_device(config: TrainConfig) -> TrainConfig:
    """`config` with its device-dependent defaults resolved here (batching, lr, workers, compile), and
    a GPU set up by `tune_cuda`."""
    gpu = torch.cuda.is_available()
    if gpu:
        tune_cuda()
    resolved = config.on_device(gpu=gpu, workers=GPU_WORKERS if gpu else 0)
    if config.compile and not resolved.compile:
        # a compiled step is no faster on a CPU, and compiling takes minutes (measured by benchmarks/cpu_compile.py)
        log.warning(
            "--compile is ignored on a CPU (measured no faster there, after minutes of compiling: "
            "benchmarks/cpu_compile.py); training runs eager"
        )
    log.log(
        logging.INFO
        if resolved != config
        else logging.DEBUG,  # a config resolved before (by `runs.train`) was logged then
        "batches: %s, lr %g, %s, compile %s",
        describe_batching(resolved),
        resolved.lr,
        "GPU" if gpu else "CPU",
        "on" if resolved.compile else "off",
    )
    return resolved


def describe_batching(config: TrainConfig) -> str:
    if config.batch_tokens is not None:
        return f"a budget of {config.batch_tokens} tokens (texts grouped by length, padded to multiples of 8)"
    return f"{config.batch_size} texts" + (" grouped by length" if config.group_by_length else "")


def process_state() -> Any:
    """accelerate's `PartialState`: the processes `torchrun` / `accelerate launch` started (one when run
    plainly), and which is the main one. Without CUDA it must be asked for CPU processes (the gloo
    group): otherwise accelerate sees every rank as a lone process, each its own main process."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def device() -> torch.device:
    """The device models run on: the GPU where there is one (with `tune_cuda`'s settings), else the CPU."""
    if torch.cuda.is_available():
        tune_cuda()
        return torch.device("cuda")
    return torch.device("cpu")


@functools.cache
def tune_cuda() -> None:
    """The process-wide CUDA settings textcls runs with, applied once:
    - TF32 for the fp32 matmuls left, on Ampere or newer;
    - scaled-dot-product attention without its cuDNN backend: with token-budget batches, every new batch
      shape builds a new cuDNN graph, which costs milliseconds of host time per call, most of a training
      step (measured by benchmarks/step_profile.py). PyTorch's flash and memory-efficient kernels have no
      such set-up cost.
    """
    if torch.cuda.get_device_capability()[0] >= 8:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cuda.enable_cudnn_sdp(False)


def cpu_supports_bf16() -> bool:
    """True where oneDNN has native bf16 kernels (AVX-512 BF16 or AMX), so autocast pays off."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str) -> str:
    """Turn 'auto' into fp32/bf16/fp16 for the device training will use; reject what cannot run."""
    on_gpu = torch.cuda.is_available()
    if precision == "auto":
        if on_gpu:
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if cpu_supports_bf16() else "fp32"
    if precision == "fp16" and not on_gpu:
        raise TextclsError("precision: expected fp32 or bf16 on a CPU, found fp16; pass --precision bf16 or auto")
    return precision


def inference_precision(precision: str) -> str:
    """fp32 or bf16 for inference: 'auto' is bf16 where this machine runs it natively."""
    if precision == "auto":
        return "bf16" if resolve_precision("auto") == "bf16" else "fp32"
    return precision


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch ops (None: torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)
