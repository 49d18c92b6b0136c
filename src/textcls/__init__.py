"""textcls: train, evaluate, explain and serve transformer text classifiers.

Example:
    >>> import textcls
    >>> result = textcls.train(data="data/ag_news", out="runs/quick", max_train_samples=500)  # doctest: +SKIP
    >>> run = textcls.load("runs/quick")                                                     # doctest: +SKIP
    >>> run.predict(["Stocks fell sharply."]), run.metrics["dev"]["accuracy"]                # doctest: +SKIP
    (['Business'], 0.86)
"""

from typing import Any

from textcls.config import DataConfig, PredictConfig, ServeConfig, TrainConfig
from textcls.errors import ConfigError, DataError, RunFolderError, TextclsError
from textcls.runs.api import Run, TrainResult, evaluate, load

__version__ = "0.1.0"


def train(
    data: str | None = None, out: str = "runs/latest", *, preset: str | None = None, **options: Any
) -> TrainResult:
    """Fine-tune a classifier and write a run folder at `out` (see `textcls.runs.api.train`); with `preset`
    ("accurate" or "fast"), run that recipe of stages instead (see `textcls.runs.presets.train_preset`).

    Example:
        >>> textcls.train(data="data/ag_news", out="runs/quick", max_train_samples=500)   # doctest: +SKIP
        >>> textcls.train(data="data/ag_news", out="runs/fast", preset="fast")            # doctest: +SKIP
    """
    from textcls.runs import api

    if preset is None:
        return api.train(data, out, **options)
    from textcls.runs.presets import train_preset

    return train_preset(preset, data, out, **options)


def pretrain(data: str, out: str = "runs/mlm", overwrite: bool = False, **options: Any) -> dict[str, Any] | None:
    """Continue masked-word pre-training on unlabelled text; options are `PretrainConfig` fields.

    Example:
        >>> textcls.pretrain("news.txt", "runs/mlm", epochs=1)   # doctest: +SKIP
    """
    from textcls.config import PretrainConfig
    from textcls.runs.pretraining import pretrain as run_pretraining

    return run_pretraining(PretrainConfig(data=data, **options), out, overwrite=overwrite)


def fill_mask(run_or_model: str | None, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The top words for each `[MASK]` in `text` (see `textcls.runs.pretraining.fill_mask`)."""
    from textcls.runs.pretraining import fill_mask as fill

    return fill(run_or_model, text, top_k)


def audit(data: str, out: str = "audit", fix: bool = False, fix_out: str | None = None, **options: Any) -> Any:
    """Find likely label errors in a data folder or file, or a run folder's training rows; options are
    `AuditConfig`, `DataConfig` and (with `family`) `TrainConfig` fields (see `textcls.runs.audit.audit`).

    Example:
        >>> result = textcls.audit("data/ag_news", "audit", folds=5)   # doctest: +SKIP
        >>> result.summary["issues"], result.issues[0]["suggested"]    # doctest: +SKIP
    """
    from textcls.runs.audit import audit as run_audit

    return run_audit(data, out, fix=fix, fix_out=fix_out, **options)


__all__ = [
    "ConfigError",
    "DataConfig",
    "DataError",
    "PredictConfig",
    "Run",
    "RunFolderError",
    "ServeConfig",
    "TextclsError",
    "TrainConfig",
    "TrainResult",
    "audit",
    "evaluate",
    "fill_mask",
    "load",
    "pretrain",
    "train",
]
