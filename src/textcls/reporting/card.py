"""The model card (`README.md`) of a run folder: Hugging Face metadata in a YAML header, then prose.

Pure text from a run's `textcls.json` and metrics: the metadata (base model, data, label names,
licence, pipeline tag, library versions, training settings) and a `model-index` of the dev (and test)
scores that the hub's eval-results parser reads; the prose says what the model is for, what it was
trained on, how it scores per class, where it stops working and how to load it.

Example:
    >>> card = model_card(CardFacts("agnews", info, metrics))      # doctest: +SKIP
    >>> card.data.eval_results[0].metric_value                      # doctest: +SKIP
    0.937
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# The scores reported in `model-index`, in the order shown: metrics key -> (metric type, name).
SINGLE_LABEL_SCORES = {"accuracy": ("accuracy", "Accuracy"), "macro_f1": ("f1", "Macro F1")}
MULTI_LABEL_SCORES = {
    "micro_f1": ("f1", "Micro F1"),
    "macro_f1": ("f1", "Macro F1"),
    "subset_accuracy": ("accuracy", "Subset accuracy"),
    "hamming_loss": ("hamming_loss", "Hamming loss"),
}
MASKED_SCORES = {"masked_accuracy": ("accuracy", "Masked-token accuracy")}


@dataclass(frozen=True)
class CardFacts:
    """What a card is written from: the run's name, `textcls.json`, `metrics.json`, and what its caller resolved.

    `base_model`: the hub id the encoder started from (None: none, or a local folder); `license` and
    `language` are the base model's where known; `test_metrics`: what `evaluate` wrote for the test split;
    `hf_export`: the run can be exported for transformers' pipeline."""

    name: str
    info: Mapping[str, Any]
    metrics: Mapping[str, Any] | None
    base_model: str | None = None
    license: str | None = None
    language: str | None = None
    test_metrics: Mapping[str, Any] | None = None
    hf_export: bool = False
    extra_tags: tuple[str, ...] = field(default_factory=tuple)


def model_card(facts: CardFacts) -> ModelCard:
    """The card of a classifier run (`train`), or of an encoder run (`pretrain`) when `info` has no labels."""
    if "label_names" in facts.info:
        return ModelCard.from_template(_classifier_metadata(facts), template_str=_classifier_text(facts))
    return ModelCard.from_template(_encoder_metadata(facts), template_str=_encoder_text(facts))


def _common_metadata(facts: CardFacts, pipeline_tag: str, eval_results: list[EvalResult]) -> dict[str, Any]:
    info = facts.info
    settings = info.get("train_config") or info.get("pretrain_config") or {}
    return {
        "base_model": facts.base_model,
        "datasets": _datasets(info) or None,
        "license": facts.license,
        "language": facts.language,
        "library_name": "textcls",
        "pipeline_tag": pipeline_tag,
        "tags": ["textcls", *facts.extra_tags],
        "model_name": facts.name,
        "eval_results": eval_results or None,
        "textcls": {
            "family": info.get("family"),
            "max_length": info.get("max_length"),
            "versions": info.get("versions", {}),
            "training": settings,
        },
    }


def _classifier_metadata(facts: CardFacts) -> ModelCardData:
    multi_label = bool(facts.info.get("multi_label"))
    scores = MULTI_LABEL_SCORES if multi_label else SINGLE_LABEL_SCORES
    results = []
    dataset = (_datasets(facts.info) or ["local data"])[0]
    for split, metrics in (("dev", (facts.metrics or {}).get("dev")), ("test", facts.test_metrics)):
        for key, (metric_type, metric_name) in scores.items() if metrics else ():
            if isinstance(metrics.get(key), (int, float)):  # type: ignore[union-attr]
                results.append(
                    EvalResult(
                        task_type="text-classification",
                        dataset_type=dataset,
                        dataset_name=dataset,
                        dataset_split=split,
                        metric_type=metric_type,
                        metric_name=metric_name,
                        metric_value=metrics[key],  # type: ignore[index]
                    )
                )
    data = _common_metadata(facts, "text-classification", results)
    data["label_names"] = list(facts.info["label_names"])
    data["textcls"]["multi_label"] = multi_label
    return ModelCardData(**data)


def _encoder_metadata(facts: CardFacts) -> ModelCardData:
    held_out = (facts.metrics or {}).get("held_out") or {}
    after = held_out.get("after") or {}
    dataset = (_datasets(facts.info) or ["local text"])[0]
    results = [
        EvalResult(
            task_type="fill-mask",
            dataset_type=dataset,
            dataset_name=dataset,
            dataset_split="held-out",
            metric_type=metric_type,
            metric_name=metric_name,
            metric_value=after[key],
        )
        for key, (metric_type, metric_name) in MASKED_SCORES.items()
        if isinstance(after.get(key), (int, float))
    ]
    return ModelCardData(**_common_metadata(facts, "fill-mask", results))


def _datasets(info: Mapping[str, Any]) -> list[str]:
    """Where the run's rows came from: the data option as given (a path or hub id)."""
    data_config = info.get("data_config_as_given") or info.get("data_config") or {}
    sources = [data_config.get(name) for name in ("data", "train_file", "dev_file", "test_file")]
    if not any(sources):
        sources = [(info.get("data") or {}).get("source")]
    return [str(source) for source in sources if source]


def _classifier_text(facts: CardFacts) -> str:
    info, metrics = facts.info, facts.metrics or {}
    label_names = list(info["label_names"])
    multi_label = bool(info.get("multi_label"))
    rows = (info.get("data") or {}).get("rows") or {}
    lines = [
        "---",
        "{{ card_data }}",
        "---",
        "",
        f"# {facts.name}",
        "",
        f"A {'multi-label ' if multi_label else ''}text classifier trained with textcls "
        f"(family `{info.get('family')}`"
        + (f", fine-tuned from `{facts.base_model}`" if facts.base_model else "")
        + ").",
        "",
        "## Intended use",
        "",
        "Sorting short texts like those it was trained on into "
        + (
            "any of its labels (each label is scored on its own; a text may have none or several)"
            if multi_label
            else "exactly one of its labels"
        )
        + f": {', '.join(f'`{name}`' for name in label_names)}. "
        "Check it on your own texts before relying on it.",
        "",
        "## Data",
        "",
        f"Source: {', '.join(f'`{source}`' for source in _datasets(info)) or 'not recorded'}.",
        "",
        "| split | rows |",
        "|---|---|",
        *(f"| {split} | {count} |" for split, count in rows.items()),
        "",
        *_per_class_section(metrics.get("dev"), "dev"),
        *_per_class_section(facts.test_metrics, "test"),
        "## Limitations",
        "",
        f"- Texts are cut to {info.get('max_length')} tokens; words beyond that are not read"
        + (" (long texts are read in windows, which the exported pipeline does not do)" if _windowed(info) else "")
        + ".",
        f"- The label set is fixed: {len(label_names)} labels. A text of another kind still gets one of them.",
        "- The model reads the language of its base model"
        + (f" ({facts.language})" if facts.language else "")
        + " and of its training data; others score poorly.",
        "",
        "## How to use",
        "",
        "```bash",
        f'textcls predict {facts.name} "a text to classify"',
        "```",
        "",
        "```python",
        "import textcls",
        "",
        f'run = textcls.load("{facts.name}")',
        'run.predict(["a text to classify"])',
        "```",
        "",
    ]
    if facts.hf_export:
        top_k = "top_k=None, function_to_apply='sigmoid', " if multi_label else ""
        lines += [
            f"With transformers, after `textcls export {facts.name} --format hf` (the folder `hf/`):",
            "",
            "```python",
            "from transformers import pipeline",
            "",
            'classify = pipeline("text-classification", model="hf")',
            f'classify(["a text to classify"], {top_k}truncation=True)',
            "```",
            "",
        ]
        if multi_label:
            lines += [
                "Multi-label: pass `top_k=None` to get every label's sigmoid score, and keep the labels whose score "
                "reaches the thresholds tuned on dev (recorded in the run folder).",
                "",
            ]
    return "\n".join(lines)


def _windowed(info: Mapping[str, Any]) -> bool:
    return (info.get("train_config") or {}).get("long_text", "truncate") not in ("truncate", None)


def _per_class_section(metrics: Mapping[str, Any] | None, split: str) -> list[str]:
    if not metrics or "per_class" not in metrics:
        return []
    lines = [f"## Results on {split}", "", "| label | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, row in metrics["per_class"].items():
        lines.append(f"| {name} | {row['precision']:.4f} | {row['recall']:.4f} | {row['f1']:.4f} | {row['support']} |")
    lines.append("")
    scores = MULTI_LABEL_SCORES if metrics.get("multi_label") else SINGLE_LABEL_SCORES
    lines += [
        ", ".join(f"{name}: {metrics[key]:.4f}" for key, (_, name) in scores.items() if key in metrics)
        + f" ({metrics.get('num_samples', '?')} texts).",
        "",
    ]
    return lines


def _encoder_text(facts: CardFacts) -> str:
    info, metrics = facts.info, facts.metrics or {}
    data = info.get("data") or {}
    held_out = metrics.get("held_out") or {}
    lines = [
        "---",
        "{{ card_data }}",
        "---",
        "",
        f"# {facts.name}",
        "",
        "An encoder whose masked-word pre-training textcls continued on unlabelled text"
        + (f", starting from `{facts.base_model}`" if facts.base_model else "")
        + ".",
        "",
        "## Intended use",
        "",
        "A starting point for fine-tuning a classifier on text like the one it read. It is not a classifier.",
        "",
        "## Data",
        "",
        f"Source: {', '.join(f'`{source}`' for source in _datasets(info)) or 'not recorded'}; "
        f"{data.get('train_texts', '?')} texts trained on, {data.get('held_out', '?')} held out.",
        "",
        "## Results on the held-out text",
        "",
        "| | masked-token accuracy | masked loss | pseudo-perplexity |",
        "|---|---|---|---|",
        *(
            f"| {name} | {_number(scores.get('masked_accuracy'))} | {_number(scores.get('masked_loss'))} | "
            f"{_number(scores.get('pseudo_perplexity'))} |"
            for name, scores in ((name, held_out.get(name) or {}) for name in ("before", "after"))
        ),
        "",
        "## Limitations",
        "",
        f"- Texts are cut to {info.get('max_length')} tokens.",
        "- It knows the language of its base model"
        + (f" ({facts.language})" if facts.language else "")
        + " and of the text it read.",
        "",
        "## How to use",
        "",
        "```bash",
        f"textcls train --model {facts.name} --data DATA",
        f'textcls fill-mask {facts.name} "The [MASK] rose."',
        "```",
        "",
    ]
    return "\n".join(lines)


def _number(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "-"
