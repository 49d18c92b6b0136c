"""The model families textcls knows: the one place their names are written.

Each entry says where the family's class lives (imported only when used, so `textcls --help` and
config validation never import torch) and the training budget the family gets for any of
`epochs`, `batch_size`, `lr` and `max_length` left unset; on a GPU, `gpu_defaults` replace the
batch size by a token budget (`batch_tokens`) and scale the learning rate with the larger batches.
What a family can do (predict, explain, export to ONNX) is declared by its class, in `capabilities`.

Example:
    >>> list(FAMILIES)[:2]
    ['tfidf', 'lstm']
    >>> FAMILIES["lstm"].defaults["lr"]
    0.01
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class FamilySpec:
    """Where a family's `Classifier` subclass lives, what it is, and its default training budget."""

    target: str  # "module:Class", imported lazily by `textcls.models.family_class`
    summary: str
    defaults: dict[str, float] = field(default_factory=dict)  # TrainConfig field -> value (ints stay ints)
    gpu_defaults: dict[str, float] = field(default_factory=dict)
    compared: bool = True  # trained by `textcls compare` unless --families names the families


FAMILIES: dict[str, FamilySpec] = {
    "tfidf": FamilySpec(
        "textcls.models.linear:TfidfClassifier",
        "word + char n-gram TF-IDF with logistic regression",
        {"epochs": 1.0, "batch_size": 32, "lr": 1e-3, "max_length": 128},
    ),
    # on AG News the three torch families peak by epoch 2-3 at these rates (CPU); on a GPU, batches of
    # ~160 AG News texts (benchmarks/gpu_settings.py measures the budgets)
    "lstm": FamilySpec(
        "textcls.models.rnn:LSTMClassifier",
        "bidirectional LSTM, max-pooled",
        {"epochs": 3.0, "batch_size": 64, "lr": 1e-2, "max_length": 128},
        {"batch_tokens": 8192, "lr": 1e-2},
    ),
    "lstm-attention": FamilySpec(
        "textcls.models.rnn:AttentionLSTMClassifier",
        "bidirectional LSTM with additive (Bahdanau) attention pooling",
        {"epochs": 3.0, "batch_size": 64, "lr": 1e-2, "max_length": 128},
        {"batch_tokens": 8192, "lr": 1e-2},
    ),
    "scratch-transformer": FamilySpec(
        "textcls.models.scratch:ScratchTransformerClassifier",
        "a small transformer encoder trained from scratch",
        {"epochs": 3.0, "batch_size": 64, "lr": 1e-3, "max_length": 128},
        {"batch_tokens": 8192, "lr": 1.5e-3},
    ),
    "pretrained": FamilySpec(
        "textcls.models.pretrained:PretrainedClassifier",
        "a Hugging Face encoder fine-tuned with Trainer",
        {"epochs": 3.0, "batch_size": 32, "lr": 1e-4, "max_length": 128},
        # ~320 AG News texts a batch instead of 32, warm-up kept: steps on a GPU are host-bound (an 8k-token
        # step takes as long as a 16k one), so the larger budget doubles samples/s; budget and lr measured by
        # benchmarks/gpu_settings.py
        {"batch_tokens": 16384, "lr": 2e-4},
    ),
    # SetFit's recipe: one epoch over the pairs, batches of 16 pairs, lr 2e-5; iterations (pairs per row, half
    # similar) set by docs/labels.md's few-labels benchmark (benchmarks/few_labels.py)
    "setfit": FamilySpec(
        "textcls.models.setfit:SetFitClassifier",
        "few-shot: a sentence encoder tuned on contrastive pairs, then logistic regression (SetFit)",
        {"epochs": 1.0, "batch_size": 16, "lr": 2e-5, "max_length": 128, "setfit_iterations": 10},
        # for few labelled rows: its pairs grow with rows x iterations, so compare runs it only when named
        compared=False,
    ),
}
DEFAULT_FAMILY = "pretrained"
COMPARED_FAMILIES = [name for name, spec in FAMILIES.items() if spec.compared]  # `textcls compare`'s default

# `train` suggests this family when a class has fewer labelled train rows than FEW_LABELS_ROWS.
FEW_LABELS_FAMILY = "setfit"
FEW_LABELS_ROWS = 100
# The family that trains in seconds on a CPU: `textcls audit` averages its probabilities with the embeddings'.
FAST_FAMILY = "tfidf"
