"""End to end on the embedded all-MiniLM-L6-v2 and a few hundred real AG News rows."""

from __future__ import annotations

import pytest

import textcls

pytestmark = pytest.mark.slow


def test_embedded_model_fine_tunes_on_real_ag_news(shared_ag_news, tmp_path):
    result = textcls.train(
        data=str(shared_ag_news),
        out=tmp_path / "run",
        max_train_samples=400,
        max_eval_samples=200,
        epochs=1,
        batch_size=16,
        max_length=32,  # a title and the start of its description: enough to tell the four topics apart
        seed=1,
    )
    assert result.metrics["train"]["model"] == "embedded:all-MiniLM-L6-v2"
    assert result.metrics["dev"]["num_samples"] == 200
    # A pre-trained encoder learns the four topics from 400 rows far beyond chance (0.25).
    assert result.metrics["dev"]["accuracy"] > 0.6, result.metrics["dev"]
    clf = textcls.load(tmp_path / "run")
    assert clf.label_names == ["World", "Sports", "Business", "Sci/Tech"]
    assert clf.predict(["The striker scored twice as the home team won the cup final."]) == ["Sports"]
