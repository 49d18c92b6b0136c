"""Which engine runs a trained run: a small registry from backend name to loader, consulted by `runs.load`.

    auto       not a loader: `textcls.autobackend` times the ones below and picks one
    torch      the family's own model, eager, under `torch.inference_mode`; every family has it
    onnx       the run exported to ONNX (fp32), run by ONNX Runtime (`textcls.onnx_backend`)
    onnx-int8  the same graph with int8 weights

Every backend gives probabilities in input order over the run's `label_names`. The loaders are
imported only when chosen, so a torch-only install never imports ONNX Runtime.

Example:
    >>> predictor = load_predictor(Path("runs/agnews"), info, PredictConfig(backend="onnx-int8"))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textcls import runfolder
from textcls.config import AUTO_BACKEND, ENGINES, PredictConfig
from textcls.errors import RunFolderError
from textcls.models.base import Predictor, family_class
from textcls.windows import Windowing

# backend name -> "module:function(run_dir, info, config) -> Predictor"
LOADERS: dict[str, str] = {
    "torch": "textcls.backends:load_torch",
    "onnx": "textcls.onnx_backend:load_onnx",
    "onnx-int8": "textcls.onnx_backend:load_onnx",
}
if set(LOADERS) != set(ENGINES):  # config validates the names, this registry loads them
    raise RuntimeError(f"backends {sorted(ENGINES)} and loaders {sorted(LOADERS)} disagree")


# Run folders of the other commands, and where they belong.
NOT_CLASSIFIERS = {
    runfolder.PRETRAINING_FAMILY: "a `textcls pretrain` run (an encoder, not a classifier); fine-tune it with "
    "`textcls train --model {run}`, or try it with `textcls fill-mask {run} \"... [MASK] ...\"`",
    runfolder.SEQ2SEQ_FAMILY: "a `textcls seq2seq` run (an encoder-decoder, not a classifier); use "
    "`textcls seq2seq translate {run} TEXT` or `textcls.seq2seq.load`",
}


def load_torch(run_dir: Path, info: dict[str, Any], config: PredictConfig) -> Predictor:
    """The family's own model from `RUN/model`, in `config.precision`."""
    max_length = config.max_length or info["max_length"]
    return family_class(info["family"]).load(
        runfolder.model_dir(run_dir),
        max_length=max_length,
        label_names=info["label_names"],
        precision=config.precision or "fp32",
        windowing=Windowing.of_run(info, max_length) if max_length else None,  # tfidf has no length
    )


def check_classifier_run(run_dir: Path, info: dict[str, Any]) -> None:
    """Raise a `RunFolderError` that says what to do unless `info` is a classifier run that can be loaded."""
    if info.get("family") in NOT_CLASSIFIERS:
        raise RunFolderError(f"{run_dir} is {NOT_CLASSIFIERS[info['family']].format(run=run_dir)}")
    if "family" in info:
        family_class(info["family"])  # an unknown family is a RunFolderError
    runfolder.check_loadable(run_dir, info)


def load_predictor(run_dir: Path, info: dict[str, Any], config: PredictConfig) -> Predictor:
    """The run's model on `config.backend` (not auto: `textcls.autobackend` resolves that), with
    `config.threads` CPU threads."""
    from textcls.environment import set_torch_threads

    if config.backend == AUTO_BACKEND:
        raise ValueError("backend auto is resolved by textcls.autobackend.choose, not loaded")
    check_classifier_run(run_dir, info)
    runfolder.verify_model_files(run_dir, info)
    set_torch_threads(config.threads)
    module_name, function_name = LOADERS[config.backend].split(":")
    loader: Callable[[Path, dict[str, Any], PredictConfig], Predictor] = getattr(
        importlib.import_module(module_name), function_name
    )
    return loader(Path(run_dir), info, config)
