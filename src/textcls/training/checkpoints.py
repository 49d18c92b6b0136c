"""Training checkpoints of textcls's own torch loop (`training.loop`), written without pickle: the
weights, the best weights so far and AdamW's moments as safetensors, the loop's state as JSON. A
checkpoint is written into a partial folder and renamed into place whole, so one that exists is
complete; a partial folder left by a kill is removed before resuming.

Example:
    >>> write_checkpoint(Path("ckpt"), 12, module, best_state, optimizer, {"step": 12})   # doctest: +SKIP
    >>> last_checkpoint(Path("ckpt")).name                                              # doctest: +SKIP
    'checkpoint-12'
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from textcls.errors import RunFolderError

WEIGHTS_FILE = "model.safetensors"
BEST_WEIGHTS_FILE = "best.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "state.json"


def clone_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A detached, contiguous copy of `module`'s weights (what safetensors writes)."""
    return {name: tensor.detach().clone().contiguous() for name, tensor in module.state_dict().items()}


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state as flat safetensors entries: '<param index>.<exp_avg|exp_avg_sq|step>'."""
    state = optimizer.state_dict()["state"]
    return {
        f"{index}.{name}": value.contiguous() for index, entries in state.items() for name, value in entries.items()
    }


def load_optimizer_tensors(optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor]) -> None:
    """Put `optimizer_tensors` output back into an optimizer built from the same config."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    # param_groups come from the optimizer just built from the same config; the lr is set every step.
    optimizer.load_state_dict({"state": state, "param_groups": optimizer.state_dict()["param_groups"]})


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The complete checkpoint folder with the highest number in `checkpoint_dir`, or None."""
    if not checkpoint_dir.is_dir():
        return None
    complete = [path for path in checkpoint_dir.glob("checkpoint-*") if (path / STATE_FILE).is_file()]
    return max(complete, key=lambda path: int(path.name.split("-")[-1]), default=None)


def remove_incomplete_checkpoints(checkpoint_dir: Path) -> list[Path]:
    """Remove the partial checkpoint folders a killed run left in `checkpoint_dir`; the ones removed."""
    partials = sorted(checkpoint_dir.glob(".checkpoint-*.partial")) if checkpoint_dir.is_dir() else []
    for partial in partials:
        shutil.rmtree(partial, ignore_errors=True)
    return partials


def read_checkpoint_state(checkpoint: Path) -> dict[str, Any]:
    """The loop state a checkpoint holds (its state.json), read before any weights are loaded."""
    path = checkpoint / STATE_FILE
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise RunFolderError(
            f"{path}: expected the JSON state of a checkpoint, found unreadable text ({error}); "
            "train without --resume to start over"
        ) from error
    if not isinstance(saved, dict):
        raise RunFolderError(f"{path}: expected a JSON object, found {type(saved).__name__}; train without --resume")
    return saved


def restore_checkpoint(
    checkpoint: Path, module: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, torch.Tensor]:
    """Load a checkpoint's weights into `module` and its moments into `optimizer`; returns its best weights."""
    from safetensors.torch import load_file

    module.load_state_dict(load_file(str(checkpoint / WEIGHTS_FILE)))
    load_optimizer_tensors(optimizer, load_file(str(checkpoint / OPTIMIZER_FILE)))
    return load_file(str(checkpoint / BEST_WEIGHTS_FILE))


def write_checkpoint(
    checkpoint_dir: Path,
    number: int,
    module: nn.Module,
    best_state: Mapping[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> Path:
    """Write `checkpoint-<number>/` atomically (a partial folder renamed into place); older ones are removed."""
    from safetensors.torch import save_file

    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"checkpoint-{number}"
    partial = checkpoint_dir / f".checkpoint-{number}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    save_file(clone_state(module), str(partial / WEIGHTS_FILE))
    save_file(dict(best_state), str(partial / BEST_WEIGHTS_FILE))
    save_file(optimizer_tensors(optimizer), str(partial / OPTIMIZER_FILE))
    (partial / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    for old in checkpoint_dir.glob("checkpoint-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final
