"""Which engine runs a trained run: a small registry from backend name to loader, consulted by `runs.load`.

    auto       not a loader: `textcls.inference.auto` times the ones below and picks one
    torch      the family's own model, eager, under `torch.inference_mode`; every family has it
    onnx       the run exported to ONNX (fp32), run by ONNX Runtime (`textcls.inference.onnx`)
    onnx-int8  the same graph with int8 weights

Every backend gives probabilities in input order over the run's `label_names`. The loaders are
imported only when chosen, so a torch-only install never imports ONNX Runtime.

Example:
    >>> predictor = load_predictor(Path("runs/agnews"), info, PredictConfig(backend="onnx-int8"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from textcls import runfolder
from textcls.config import AUTO_BACKEND, ENGINES, PredictConfig
from textcls.data.windows import Windowing, model_token_limit
from textcls.errors import ConfigError, RunFolderError
from textcls.models.base import Predictor, family_class

# backend name -> "module:function(run_dir, info, config) -> Predictor"
LOADERS: dict[str, str] = {
    "torch": "textcls.inference.backends:load_torch",
    "onnx": "textcls.inference.onnx:load_onnx",
    "onnx-int8": "textcls.inference.onnx:load_onnx",
}
if set(LOADERS) != set(ENGINES):  # config validates the names, this registry loads them
    raise RuntimeError(f"backends {sorted(ENGINES)} and loaders {sorted(LOADERS)} disagree")


# Run folders of the other commands, and where they belong.
NOT_CLASSIFIERS = {
    runfolder.PRETRAINING_FAMILY: "a `textcls pretrain` run (an encoder, not a classifier); fine-tune it with "
    '`textcls train --model {run}`, or try it with `textcls fill-mask {run} "... [MASK] ..."`',
    runfolder.SEQ2SEQ_FAMILY: "a `textcls seq2seq` run (an encoder-decoder, not a classifier); use "
    "`textcls seq2seq translate {run} TEXT` or `textcls.seq2seq.load`",
}


log = logging.getLogger(__name__)
SPECIAL_TOKENS = 2  # [CLS] and [SEP] (<s> and </s>) around each window of a transformer's input


def inference_max_length(run_dir: Path, info: dict[str, Any], requested: int | None) -> int | None:
    """The tokens per text a run reads at: its own, or `--max-length` clamped to the model's position limit
    (with a warning, as training clamps it); a chunking run's windows must hold more than its overlap.

    Example:
        >>> inference_max_length(Path("runs/agnews"), info, 1000)   # doctest: +SKIP
        512
    """
    if requested is None:
        return info["max_length"]
    limit = _position_limit(runfolder.model_dir(run_dir))
    if limit is not None and requested > limit:
        log.warning("--max-length %d exceeds the model's limit of %d tokens; using %d", requested, limit, limit)
        requested = limit
    windowing = Windowing.of_run(info, requested)
    if windowing.chunks and windowing.stride is not None and requested - SPECIAL_TOKENS <= windowing.stride:
        raise ConfigError(
            f"max_length: expected more than {windowing.stride + SPECIAL_TOKENS} tokens for {run_dir}, which reads "
            f"long texts in chunks overlapping by {windowing.stride} (--stride), found {requested}; "
            "pass a larger --max-length"
        )
    return requested


def _position_limit(model_dir: Path) -> int | None:
    """The most tokens a transformers model folder takes (`windows.model_token_limit` of its two JSON files),
    or None."""

    def setting(name: str, key: str) -> Any:
        try:
            return json.loads((model_dir / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):  # no such file (other families), or not an object
            return None

    return model_token_limit(
        setting("tokenizer_config.json", "model_max_length"), setting("config.json", "max_position_embeddings")
    )


def load_torch(run_dir: Path, info: dict[str, Any], config: PredictConfig) -> Predictor:
    """The family's own model from `RUN/model`, in `config.precision`."""
    max_length = config.max_length  # resolved by `load_predictor` (None for tfidf)
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
    """The run's model on `config.backend` (not auto: `textcls.inference.auto` resolves that), with
    `config.threads` CPU threads."""
    from textcls.training.device import set_torch_threads

    if config.backend == AUTO_BACKEND:
        raise ValueError("backend auto is resolved by textcls.inference.auto.choose, not loaded")
    check_classifier_run(run_dir, info)
    runfolder.verify_model_files(run_dir, info)
    set_torch_threads(config.threads)
    config = dataclasses.replace(config, max_length=inference_max_length(Path(run_dir), info, config.max_length))
    module_name, function_name = LOADERS[config.backend].split(":")
    loader: Callable[[Path, dict[str, Any], PredictConfig], Predictor] = getattr(
        importlib.import_module(module_name), function_name
    )
    return loader(Path(run_dir), info, config)
