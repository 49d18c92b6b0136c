"""`--layer-lr-decay` and `--average-last` of the pretrained family, on a tiny random BERT."""

from __future__ import annotations

import pytest
import torch

from tests.conftest import TOPIC_WORDS
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.errors import ConfigError
from textcls.models.base import check_training_options, family_class
from textcls.models.pretrained import PretrainedClassifier
from textcls.training import trainer as trainer_module
from textcls.training.trainer import layer_lr_groups, parameter_depth

LABELS = list(TOPIC_WORDS)


def _tiny_config(tiny_bert, **options):
    settings = dict(
        model=str(tiny_bert), batch_size=8, lr=1e-3, max_length=32, early_stopping_patience=0, precision="fp32"
    )
    return TrainConfig(**{**settings, **options})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer_lr_decay": 0.0}, "layer_lr_decay: expected a factor in (0, 1]"),
        ({"layer_lr_decay": 1.5}, "layer_lr_decay: expected a factor in (0, 1]"),
        ({"average_last": 0}, "average_last: expected a checkpoint count >= 1"),
    ],
)
def test_bad_values_are_refused_naming_the_field(options, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("]", r"\]")):
        TrainConfig(**options)


@pytest.mark.parametrize(("option", "value"), [("layer_lr_decay", 0.8), ("average_last", 2)])
def test_other_families_refuse_the_options(option, value):
    flag = "--" + option.replace("_", "-")
    with pytest.raises(ConfigError, match=f"the lstm family does not support {flag}.*families that do: pretrained"):
        check_training_options(family_class("lstm"), TrainConfig(family="lstm", **{option: value}))
    check_training_options(family_class("pretrained"), TrainConfig(**{option: value}))  # accepted


def test_parameter_depth_counts_layers_down_from_the_top():
    assert parameter_depth("classifier.weight", 2) == 0
    assert parameter_depth("bert.pooler.dense.weight", 2) == 0
    assert parameter_depth("bert.encoder.layer.1.output.dense.weight", 2) == 0
    assert parameter_depth("bert.encoder.layer.0.output.dense.weight", 2) == 1
    assert parameter_depth("bert.embeddings.word_embeddings.weight", 2) == 2


def test_groups_give_each_depth_its_learning_rate(tiny_bert):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert)
    decayed = {name for name, _ in model.named_parameters() if "LayerNorm" not in name and not name.endswith("bias")}
    groups = layer_lr_groups(model, 1e-3, 0.5, 0.01, decayed)
    lr_of = {id(p): group["lr"] for group in groups for p in group["params"]}
    decay_of = {id(p): group["weight_decay"] for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert lr_of[id(named["classifier.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named["bert.encoder.layer.1.attention.self.query.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == pytest.approx(5e-4)
    assert lr_of[id(named["bert.embeddings.word_embeddings.weight"])] == pytest.approx(2.5e-4)
    assert decay_of[id(named["bert.encoder.layer.0.attention.self.query.bias"])] == 0.0
    assert decay_of[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == 0.01
    assert len(lr_of) == len(named)  # every parameter in exactly one group


def test_training_uses_the_decayed_groups(tiny_bert, tmp_path, monkeypatch):
    from transformers import TrainerCallback

    seen: list[list[float]] = []

    class Probe(TrainerCallback):
        def on_train_begin(self, args, state, control, optimizer=None, **kwargs):
            seen.append(sorted({group["initial_lr"] for group in optimizer.param_groups}))

    made = trainer_module.training_callbacks
    monkeypatch.setattr(
        "textcls.models.pretrained.training_callbacks", lambda budget: [*made(budget), Probe()], raising=True
    )
    config = _tiny_config(tiny_bert, epochs=1, layer_lr_decay=0.5)
    PretrainedClassifier.fit(split("train", 16, 1), split("dev", 8, 2), LABELS, config, tmp_path / "ckpt")
    assert seen == [pytest.approx([2.5e-4, 5e-4, 1e-3])]  # embeddings, layer 0, layer 1 and the head


def test_average_last_keeps_the_mean_of_the_last_checkpoints(tiny_bert, tmp_path):
    from safetensors.torch import load_file

    checkpoints = tmp_path / "ckpt"
    config = _tiny_config(tiny_bert, epochs=3, average_last=2)
    classifier, summary = PretrainedClassifier.fit(
        split("train", 32, 1), split("dev", 8, 2), LABELS, config, checkpoints
    )
    steps = sorted(int(path.name.split("-")[1]) for path in checkpoints.glob("checkpoint-*"))
    assert summary["averaged_checkpoints"] == steps[-2:] == [8, 12]  # 4 steps an epoch
    first, second = (load_file(str(checkpoints / f"checkpoint-{step}" / "model.safetensors")) for step in steps[-2:])
    assert not torch.equal(first["classifier.weight"], second["classifier.weight"])
    classifier.save(tmp_path / "model")
    saved = load_file(str(tmp_path / "model" / "model.safetensors"))
    for name, tensor in saved.items():
        torch.testing.assert_close(tensor, (first[name] + second[name]) / 2, rtol=1e-5, atol=1e-6)
