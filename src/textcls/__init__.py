"""textcls: train, evaluate, explain and serve transformer text classifiers.

Example:
    >>> import textcls
    >>> result = textcls.train(data="../shared/data/ag_news", out="runs/quick", max_train_samples=500)  # doctest: +SKIP
    >>> run = textcls.load("runs/quick")                                                                # doctest: +SKIP
    >>> run.predict(["Stocks fell sharply."]), run.metrics["dev"]["accuracy"]                           # doctest: +SKIP
    (['Business'], 0.86)
"""

from textcls.config import DataConfig, PredictConfig, ServeConfig, TrainConfig
from textcls.errors import ConfigError, DataError, RunFolderError, TextclsError
from textcls.runs import Run, TrainResult, evaluate, load, train

__version__ = "0.1.0"

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
    "evaluate",
    "load",
    "train",
]
