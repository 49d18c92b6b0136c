"""Model families behind one `Classifier` interface; each declares its `capabilities`."""

from textcls.models.base import EXPLAIN, EXPORT_ONNX, PREDICT, Classifier, Predictor, TrainSummary, family_class

__all__ = ["EXPLAIN", "EXPORT_ONNX", "PREDICT", "Classifier", "Predictor", "TrainSummary", "family_class"]
