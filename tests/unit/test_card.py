"""The model card's text and metadata, built from run records alone (no model)."""

from __future__ import annotations

from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results

from textcls.models.encoders import EMBEDDED_MODEL_CARD, encoder_card_facts
from textcls.reporting.card import CardFacts, model_card

LABELS = ["World", "Sports"]
PER_CLASS = {
    "World": {"precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 10},
    "Sports": {"precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 12},
}
INFO = {
    "family": "pretrained",
    "label_names": LABELS,
    "max_length": 64,
    "train_config": {"model": None, "epochs": 3, "long_text": "truncate"},
    "data_config_as_given": {"data": "ag_news"},
    "data": {"rows": {"train": 100, "dev": 22}},
    "versions": {"textcls": "0.1.0"},
}


def loaded(card: ModelCard, tmp_path) -> ModelCard:
    path = tmp_path / "README.md"
    path.write_text(str(card), encoding="utf-8")
    return ModelCard.load(path)


def test_a_classifier_card_carries_dev_and_test_scores_the_hub_parser_reads(tmp_path):
    dev = {"accuracy": 0.86, "macro_f1": 0.85, "per_class": PER_CLASS, "num_samples": 22}
    test = {**dev, "accuracy": 0.8, "macro_f1": 0.79, "split": "test"}
    facts = CardFacts("agnews", INFO, {"dev": dev}, test_metrics=test, **encoder_card_facts(None), hf_export=True)
    card = loaded(model_card(facts), tmp_path)
    data = card.data.to_dict()
    assert data["base_model"] == EMBEDDED_MODEL_CARD["base_model"] and data["license"] == "apache-2.0"
    assert data["datasets"] == ["ag_news"] and data["label_names"] == LABELS
    _, results = model_index_to_eval_results(data["model-index"])
    scores = {(r.dataset_split, r.metric_name): r.metric_value for r in results}
    assert scores == {
        ("dev", "Accuracy"): 0.86,
        ("dev", "Macro F1"): 0.85,
        ("test", "Accuracy"): 0.8,
        ("test", "Macro F1"): 0.79,
    }
    assert "## Results on test" in card.text and "| train | 100 |" in card.text
    assert "cut to 64 tokens" in card.text and "(en)" in card.text


def test_a_multi_label_card_says_to_read_every_score(tmp_path):
    info = {**INFO, "multi_label": True}
    dev = {"micro_f1": 0.7, "macro_f1": 0.6, "subset_accuracy": 0.5, "hamming_loss": 0.1, "multi_label": True}
    card = loaded(model_card(CardFacts("tags", info, {"dev": dev}, hf_export=True)), tmp_path)
    assert "top_k=None" in card.text and "sigmoid" in card.text
    _, results = model_index_to_eval_results(card.data.to_dict()["model-index"])
    assert {r.metric_name: r.metric_value for r in results}["Micro F1"] == 0.7


def test_an_encoder_card_is_for_fill_mask_and_reports_the_held_out_text(tmp_path):
    info = {
        "family": "mlm",
        "max_length": 32,
        "pretrain_config": {"model": "bert-base-uncased"},
        "data": {"source": "news.txt", "train_texts": 90, "held_out": 10},
    }
    metrics = {"held_out": {"before": {"masked_accuracy": 0.1}, "after": {"masked_accuracy": 0.3}}}
    facts = CardFacts("mlm", info, metrics, **encoder_card_facts("bert-base-uncased"))
    card = loaded(model_card(facts), tmp_path)
    data = card.data.to_dict()
    assert data["pipeline_tag"] == "fill-mask" and data["base_model"] == "bert-base-uncased"
    assert "license" not in data  # unknown for a hub id: left out
    _, results = model_index_to_eval_results(data["model-index"])
    assert [r.metric_value for r in results] == [0.3]


def test_a_local_encoder_folder_is_no_base_model(tmp_path):
    assert encoder_card_facts(str(tmp_path)) == {}
