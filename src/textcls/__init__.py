"""textcls: train, evaluate, explain and serve transformer text classifiers.

Example:
    >>> import textcls
    >>> result = textcls.train(data="../shared/data/ag_news", out="runs/quick", max_train_samples=500)  # doctest: +SKIP
    >>> textcls.load("runs/quick").predict(["Stocks fell sharply."])                                    # doctest: +SKIP
    ['Business']
"""

from textcls.config import DataConfig, PredictConfig, ServeConfig, TrainConfig
from textcls.errors import DataError, RunFolderError, TextclsError
from textcls.runs import TrainResult, evaluate, load, train

__version__ = "0.1.0"

__all__ = [
    "DataConfig",
    "DataError",
    "PredictConfig",
    "RunFolderError",
    "ServeConfig",
    "TextclsError",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load",
    "train",
]
