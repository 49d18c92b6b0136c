import numpy as np
import pytest

from textcls.reporting.metrics import classification_metrics


def test_metrics_report_per_class_scores_and_a_gold_by_predicted_confusion_matrix():
    labels = [0, 0, 1, 1, 2]
    probs = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.6, 0.3], [0.5, 0.1, 0.4]])
    metrics = classification_metrics(labels, probs, ["a", "b", "c"])
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    # gold "a" once predicted "b"; gold "c" predicted "a"; class "c" never predicted
    assert metrics["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert metrics["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0, "f1": 0.8, "support": 2})
    assert metrics["per_class"]["c"]["f1"] == 0.0
    assert metrics["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert metrics["num_samples"] == 5 and metrics["label_names"] == ["a", "b", "c"]
