"""BERT's own objective on your own text: further masked-word pre-training, and fill-mask.

`pretrain` continues an encoder's masked-language-model training on unlabelled text (Sun et al.
2019 did this on AG News's own text before fine-tuning) and writes a run folder of family `mlm`;
`textcls train --model RUN` then fine-tunes its encoder with a fresh classification head.
`fill_mask` shows what a model predicts for `[MASK]`.

The training is Trainer with `DataCollatorForLanguageModeling` (15% of tokens chosen; of those 80%
become [MASK], 10% a random token, 10% stay) and the vocabulary head run only at the chosen
positions (`masked_positions_trainer`), with the same checkpoints, resume, time budget and
precision handling as classification. 5% of the texts (seeded) are held out and scored before and
after: masked-token accuracy and loss under one fixed seeded masking, and pseudo-perplexity
(Salazar et al. 2020: each token masked in turn) on up to `pseudo_perplexity_texts` of them.

Example:
    >>> result = pretrain(PretrainConfig(data="../shared/data/ag_news", epochs=1), "runs/mlm")   # doctest: +SKIP
    >>> fill_mask("runs/mlm", "The [MASK] scored twice in the final.")[0][:2]                    # doctest: +SKIP
    [('striker', 0.41), ('team', 0.12)]
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls import machine, runfolder
from textcls.config import PretrainConfig, to_dict
from textcls.data.unlabeled import read_unlabeled_texts
from textcls.errors import DataError, TextclsError
from textcls.files import make_folder
from textcls.models.encoders import EMBEDDED_MODEL_NAME, quiet_transformers, resolve_model
from textcls.models.pretrained import clamp_max_length
from textcls.runs.card import write_model_card
from textcls.training import tracking
from textcls.training.device import process_state, resolve_precision
from textcls.training.trainer import run_trainer, training_arguments, training_callbacks

log = logging.getLogger(__name__)

MASK = "[MASK]"  # how users write the mask, whatever the model's own mask token is


# ---- text ---------------------------------------------------------------------------------------
def holdout_split(texts: list[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(train, held-out) texts: a seeded `fraction` held out, at least one text on each side."""
    if len(texts) < 2:
        raise DataError(f"expected at least 2 texts (one to train on, one to hold out), found {len(texts)}; add text")
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    held = max(1, round(len(texts) * fraction))
    return [texts[i] for i in sorted(order[held:])], [texts[i] for i in sorted(order[:held])]


# ---- model --------------------------------------------------------------------------------------
def load_masked_lm(model_name: str, trust_remote_code: bool = False) -> tuple[Any, Any, bool]:
    """Tokenizer, `AutoModelForMaskedLM`, and whether its MLM head is fresh: an encoder shipped
    without one gets a new head, tied to the input embeddings, and a log line says so."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_name, trust_remote_code=trust_remote_code)
        with quiet_transformers():  # the missing head is expected, and reported below in our words
            model, loading = AutoModelForMaskedLM.from_pretrained(
                model_name, trust_remote_code=trust_remote_code, output_loading_info=True
            )
    except (OSError, ValueError) as error:
        raise TextclsError(
            f"could not load {model_name!r} as a masked language model ({error}); pass a local encoder folder, a "
            "hub id or a `textcls pretrain` run (`textcls pretrain` without --model uses the embedded all-MiniLM-L6-v2)"
        ) from error
    if tokenizer.mask_token is None:
        raise TextclsError(f"{model_name}: its tokenizer has no mask token; pre-train a BERT-like encoder instead")
    fresh = [key for key in loading["missing_keys"] if not key.endswith("decoder.weight")]
    if fresh:
        model.tie_weights()
        log.info(
            "%s has no MLM head; added a fresh one tied to the input embeddings (%d new tensors)",
            model_name,
            len(fresh),
        )
    return tokenizer, model, bool(fresh)


def carry_pooler(model: Any, model_name: str, trust_remote_code: bool = False) -> bool:
    """Give a masked-LM model the pooler its source checkpoint ships, so that the saved run holds it.

    `AutoModelForMaskedLM` builds its encoder without the pooler (the dense layer over [CLS] that
    `AutoModelForSequenceClassification` classifies from), so a run saved from it would make every
    fine-tune start from a newly drawn pooler where the source model had a trained one: a handicap
    with few labels. Pre-training never touches the pooler, so the source's is the right one. False
    (nothing done) for an encoder without a pooler slot, one that has its pooler, or a source without one.
    """
    from transformers import AutoModel

    encoder = getattr(model, "base_model", model)
    if encoder is model or getattr(encoder, "pooler", False) is not None:
        return False
    with quiet_transformers():  # the MLM head's weights are not an encoder's: expected
        source, loading = AutoModel.from_pretrained(
            model_name, trust_remote_code=trust_remote_code, output_loading_info=True
        )
    pooler = getattr(source, "pooler", None)
    if pooler is None or any("pooler" in key.split(".") for key in loading["missing_keys"]):
        return False  # the source has no trained pooler: fine-tuning draws one either way
    encoder.pooler = pooler.to(next(encoder.parameters()).device)
    return True


def start_head_from_data(model: Any, token_counts: np.ndarray) -> bool:
    """Start a fresh MLM head from the text instead of noise: its hidden-to-hidden transform as the
    identity, and its vocabulary bias as the log of each token's share of the training text (add-half
    smoothing; `token_counts` is (vocab,)). The head's first predictions are then the unigram prior
    plus the encoder's own last layer scored against the tied embeddings, rather than noise that the
    encoder's first updates would learn from: on AG News the embedded MiniLM's held-out masked loss
    starts at 7.4 instead of 10.8 (uniform over 30,522 tokens is 10.3). False (head left as drawn)
    for a head without a square transform or a vocabulary bias."""
    head = masked_lm_head(model)
    linears = [module for module in head.modules() if isinstance(module, torch.nn.Linear)] if head is not None else []
    transform = next((m for m in linears if m.in_features == m.out_features), None)
    decoder = next((m for m in linears if m.out_features == len(token_counts) and m.bias is not None), None)
    if transform is None or decoder is None:
        log.info("the fresh MLM head is not laid out like BERT's or RoBERTa's; it starts as drawn")
        return False
    shares = (torch.as_tensor(token_counts, dtype=torch.float64) + 0.5) / (
        float(token_counts.sum()) + 0.5 * len(token_counts)
    )
    with torch.no_grad():
        transform.weight.copy_(torch.eye(transform.in_features))
        transform.bias.zero_()
        decoder.bias.copy_(shares.log().to(decoder.bias.dtype))  # BERT's head shares this tensor as `predictions.bias`
    return True


def token_counts(rows: Any, vocab_size: int) -> np.ndarray:
    """(vocab,) how often each token occurs in tokenised `rows`, special tokens left out."""
    ids = np.concatenate([np.asarray(row, dtype=np.int64) for row in rows["input_ids"]])
    special = np.concatenate([np.asarray(row, dtype=bool) for row in rows["special_tokens_mask"]])
    return np.bincount(ids[~special], minlength=vocab_size)[:vocab_size]


def masking_collator(tokenizer: Any, config: PretrainConfig, seed: int | None = None) -> Any:
    """`DataCollatorForLanguageModeling` for `config`; with whole-word masking it also pads the
    offset mappings (which the tokenizer's `pad` leaves alone) so the collator can find the words."""
    from transformers import DataCollatorForLanguageModeling

    if not config.whole_word_masking:
        return DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.mlm_probability, seed=seed)
    # whole words are always replaced by [MASK]: said here, the collator does not warn on every run that it chose so
    collator = DataCollatorForLanguageModeling(
        tokenizer,
        mlm_probability=config.mlm_probability,
        whole_word_mask=True,
        mask_replace_prob=1.0,
        random_replace_prob=0.0,
        seed=seed,
    )

    def pad_offsets(rows: list[dict[str, Any]]) -> Any:
        longest = max(len(row["input_ids"]) for row in rows)
        padded = [
            {
                **row,
                "offset_mapping": [*map(tuple, row["offset_mapping"]), *[(0, 0)] * (longest - len(row["input_ids"]))],
            }
            for row in rows
        ]
        return collator(padded)

    return pad_offsets


def masked_lm_head(model: Any) -> Any | None:
    """The vocabulary head of a masked-LM model whose encoder is `model.base_model` (BERT's `cls`,
    RoBERTa's `lm_head`); None for other layouts, or a model wrapped for DDP, which keep the model's own loss."""
    if getattr(model, "base_model", model) is model:
        return None
    head = next(
        (
            getattr(model, name)
            for name in ("cls", "lm_head")
            if isinstance(getattr(model, name, None), torch.nn.Module)
        ),
        None,
    )
    return head


def masked_positions_trainer(**trainer_options: Any) -> Any:
    """A `Trainer` whose loss runs the vocabulary head only where a token is to be predicted.

    The model's own forward projects every position onto the vocabulary (30,522 wide for BERT's
    WordPiece) although only the ~15% chosen positions count in the loss: for MiniLM that projection
    is about half of a step's arithmetic. Here the encoder runs on the whole batch and the head on
    the chosen positions' hidden states only; the loss is the same cross-entropy (tested equal).
    """
    from transformers import Trainer

    class MaskedPositionsTrainer(Trainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            head = masked_lm_head(model)
            if head is None or return_outputs:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]  # (batch, seq): -100 except where a token is to be predicted
            chosen = labels != -100
            encoder_inputs = {name: value for name, value in inputs.items() if name != "labels"}
            with self.accelerator.autocast():  # the encoder is called directly, outside the model's wrapped forward
                hidden = model.base_model(**encoder_inputs).last_hidden_state  # (batch, seq, hidden)
                logits = head(hidden[chosen])  # (chosen, vocab)
            if not chosen.any():
                # short texts in a small batch can leave nothing masked: the mean over no token is NaN, which
                # would stay in the logged running loss; a zero keeps the graph (and DDP) and teaches nothing
                return (logits.float().sum() + hidden.float().sum()) * 0.0
            return torch.nn.functional.cross_entropy(logits.float(), labels[chosen])

    return MaskedPositionsTrainer(**trainer_options)


# ---- scoring ------------------------------------------------------------------------------------
@torch.inference_mode()
def masked_token_scores(
    model: Any, tokenizer: Any, texts: list[str], config: PretrainConfig
) -> dict[str, float | None]:
    """Masked-token accuracy and loss (and its exp) under one seeded masking of `texts`."""
    collator = masking_collator(tokenizer, config, seed=config.seed)
    encoded = tokenizer(
        texts,
        truncation=True,
        max_length=config.max_length,
        return_special_tokens_mask=True,
        return_offsets_mapping=config.whole_word_masking,  # the collator finds word boundaries from these
    )
    device = next(model.parameters()).device
    model.eval()
    loss_sum, correct, count = 0.0, 0, 0
    for start in range(0, len(texts), config.eval_batch_size):
        rows = [
            {key: encoded[key][i] for key in encoded}
            for i in range(start, min(start + config.eval_batch_size, len(texts)))
        ]
        batch = {key: value.to(device) for key, value in collator(rows).items()}
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits.float()  # (batch, seq, vocab)
        chosen = batch["labels"] != -100  # (batch, seq): the tokens picked for prediction
        loss_sum += torch.nn.functional.cross_entropy(logits[chosen], batch["labels"][chosen], reduction="sum").item()
        correct += int((logits[chosen].argmax(-1) == batch["labels"][chosen]).sum())
        count += int(chosen.sum())
    if count == 0:  # nothing was masked (too few or too short texts): no score, rather than a perfect one
        log.warning("no held-out token was masked (%d texts): masked-token scores are absent", len(texts))
        return {"masked_accuracy": None, "masked_loss": None, "perplexity": None, "masked_tokens": 0}
    loss = loss_sum / count
    return {
        "masked_accuracy": correct / count,
        "masked_loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "masked_tokens": count,
    }


@torch.inference_mode()
def pseudo_perplexity(
    model: Any, tokenizer: Any, texts: list[str], max_length: int, batch_size: int = 64
) -> float | None:
    """exp of the mean negative log-likelihood of each token with only that token masked (Salazar et al. 2020);
    None when the texts hold no token to mask."""
    device = next(model.parameters()).device
    model.eval()
    nll, count = 0.0, 0
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"][0]
        special = torch.tensor(
            tokenizer.get_special_tokens_mask(ids.tolist(), already_has_special_tokens=True), dtype=torch.bool
        )
        positions = torch.nonzero(~special).flatten()  # (tokens,)
        for start in range(0, len(positions), batch_size):
            chunk = positions[start : start + batch_size]
            masked = ids.repeat(len(chunk), 1)  # (chunk, seq): one copy per masked position
            masked[torch.arange(len(chunk)), chunk] = tokenizer.mask_token_id
            logits = model(input_ids=masked.to(device)).logits.float()  # (chunk, seq, vocab)
            log_probs = torch.log_softmax(logits[torch.arange(len(chunk)), chunk.to(device)], dim=-1)  # (chunk, vocab)
            nll -= log_probs[torch.arange(len(chunk)), ids[chunk].to(device)].sum().item()
            count += len(chunk)
    return math.exp(min(nll / count, 50.0)) if count else None


def held_out_scores(model: Any, tokenizer: Any, texts: list[str], config: PretrainConfig) -> dict[str, float | None]:
    scores = masked_token_scores(model, tokenizer, texts, config)
    scored = texts[: config.pseudo_perplexity_texts]
    if scored:
        scores["pseudo_perplexity"] = pseudo_perplexity(model, tokenizer, scored, config.max_length)
        scores["pseudo_perplexity_texts"] = len(scored)
    return scores


# ---- the command --------------------------------------------------------------------------------
def pretrain(config: PretrainConfig, out: str | Path, overwrite: bool = False) -> dict[str, Any] | None:
    """Continue masked-word pre-training on `config.data` and write a run folder at `out`; returns metrics.json.
    Under torchrun / accelerate launch the processes share the training (Trainer's DDP) and the main
    one scores, writes and returns; the others return None.

    Example:
        >>> metrics = pretrain(PretrainConfig(data="news.txt", epochs=1), "runs/mlm")   # doctest: +SKIP
        >>> before, after = metrics["held_out"]["before"], metrics["held_out"]["after"]  # doctest: +SKIP
        >>> after["pseudo_perplexity"] < before["pseudo_perplexity"]  # doctest: +SKIP
        True
    """
    state = process_state()  # joins the process group under torchrun / accelerate launch
    runfolder.check_out(out, overwrite)
    texts = read_unlabeled_texts(config.data, config.text_columns)  # bad data fails before anything is written
    if state.is_main_process:
        tracking.check_services(config.report_to)  # an unreachable tracking server fails before training
    with runfolder.writing(out, overwrite, lock=state.is_main_process) as work_dir:
        if state.is_main_process:
            if work_dir.exists() and not config.resume:
                log.info("removing the leftovers of an interrupted run in %s (pass --resume to continue it)", work_dir)
                shutil.rmtree(work_dir)
            make_folder(work_dir)
        state.wait_for_everyone()
        report_to = config.report_to if state.is_main_process else ()
        with tracking.tracking(report_to, work_dir, Path(out).name) as tracker:
            tracker.log_params(tracking.config_params(pretrain=to_dict(config)))
            metrics = _pretrain(state, config, texts, work_dir)
            if metrics is None:  # a non-main process of a distributed run
                state.wait_for_everyone()
                return None
            write_model_card(work_dir, Path(out).name)
            tracker.log_outcome(metrics, int(metrics["train"]["global_step"]), work_dir)
        runfolder.move_into_place(work_dir, Path(out))
        state.wait_for_everyone()
        return metrics


def _pretrain(state: Any, config: PretrainConfig, texts: list[str], work_dir: Path) -> dict[str, Any] | None:
    """`pretrain` once its run folder is claimed: train in `work_dir`, score the held-out text, write the run there;
    returns metrics.json (None on a non-main process)."""
    from datasets import Dataset
    from transformers import set_seed

    train_texts, held_out = holdout_split(texts, config.holdout_fraction, config.seed)
    if state.is_main_process:
        log.info("%d texts: %d to train on, %d held out", len(texts), len(train_texts), len(held_out))

    model_name = resolve_model(config.model)
    set_seed(config.seed)  # a fresh MLM head is drawn now
    tokenizer, model, fresh_head = load_masked_lm(model_name, config.trust_remote_code)
    config = _with_max_length(config, clamp_max_length(config.max_length, tokenizer, model.config))
    precision = resolve_precision(config.precision)
    rows = Dataset.from_dict({"text": train_texts}).map(
        lambda batch: tokenizer(
            batch["text"],
            truncation=True,
            max_length=config.max_length,
            return_special_tokens_mask=True,
            return_offsets_mapping=config.whole_word_masking,
        ),
        batched=True,
        remove_columns=["text"],
        desc="tokenising",
    )
    if (
        fresh_head
        and config.fresh_head == "data"
        and start_head_from_data(model, token_counts(rows, model.config.vocab_size))
    ):
        log.info(
            "the fresh MLM head starts from the text: identity transform, log token shares as its bias "
            "(--fresh-head random: as drawn)"
        )
    if state.is_main_process:
        before = held_out_scores(model, tokenizer, held_out, config)
        log.info("held out before: %s", _describe(before))
    args = training_arguments(
        runfolder.checkpoint_dir(work_dir),
        config,
        precision,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,  # the collator reads special_tokens_mask and offset_mapping, then drops them
    )
    trainer = masked_positions_trainer(
        model=model,
        args=args,
        data_collator=masking_collator(tokenizer, config),
        train_dataset=rows,
        processing_class=tokenizer,
        callbacks=training_callbacks(config.time_budget),
    )
    result, resumed_from, seconds = run_trainer(trainer, runfolder.checkpoint_dir(work_dir), config.resume)
    if not state.is_main_process:
        return None
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False).eval()
    after = held_out_scores(model, tokenizer, held_out, config)
    log.info("held out after: %s", _describe(after))

    metrics = {
        "train": {
            "model": model_name if config.model is not None else EMBEDDED_MODEL_NAME,
            "precision": precision,
            "world_size": args.world_size,
            "train_seconds": round(seconds, 2),
            "train_samples_per_second": result.metrics.get("train_samples_per_second"),
            "train_loss": result.metrics.get("train_loss"),
            "global_step": trainer.state.global_step,
            "resumed_from": resumed_from,
            "stopped_by_time_budget": bool(getattr(trainer.state, "stopped_by_time_budget", False)),
        },
        "held_out": {"texts": len(held_out), "before": before, "after": after},
    }
    if carry_pooler(model, model_name, config.trust_remote_code):
        log.info(
            "saving %s's pooler with the encoder: pre-training leaves it as it was, and fine-tuning starts from it",
            model_name,
        )
    model.save_pretrained(runfolder.model_dir(work_dir), safe_serialization=True)
    tokenizer.save_pretrained(runfolder.model_dir(work_dir))
    info = {
        "family": runfolder.PRETRAINING_FAMILY,
        "max_length": config.max_length,
        "pretrain_config": to_dict(config),
        "data": {
            "source": str(config.data),
            "texts": len(texts),
            "train_texts": len(train_texts),
            "held_out": len(held_out),
        },
        "versions": machine.library_versions(),
        "hardware": machine.hardware(),
        "command": sys.argv,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    runfolder.write_run(work_dir, info, metrics)
    return metrics


def _with_max_length(config: PretrainConfig, max_length: int) -> PretrainConfig:
    import dataclasses

    return dataclasses.replace(config, max_length=max_length)


def _describe(scores: Mapping[str, float | None]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in scores.items() if isinstance(v, float))


# ---- fill-mask and reuse as an encoder ------------------------------------------------------------
def fill_mask(run_or_model: str | Path | None, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """The `top_k` words (and probabilities) for each `[MASK]` in `text`, most probable first.

    `run_or_model` is a pre-training run, a model folder or hub id, or None for the embedded model.

    Example:
        >>> fill_mask("runs/mlm", "The [MASK] scored twice in the final.", top_k=2)   # doctest: +SKIP
        [[('striker', 0.41), ('team', 0.12)]]
    """
    if top_k < 1:
        raise TextclsError(f"top_k: expected an integer >= 1, found {top_k}; pass --top-k 1 or more")
    if MASK not in text:
        raise TextclsError(f"expected {MASK} in the text, found none in {text!r}; write {MASK} where a word is missing")
    tokenizer, model, _ = load_masked_lm(resolve_model(None if run_or_model is None else str(run_or_model)))
    encoded = tokenizer(text.replace(MASK, tokenizer.mask_token), return_tensors="pt", truncation=True)
    positions = torch.nonzero(encoded["input_ids"][0] == tokenizer.mask_token_id).flatten()
    written = text.count(MASK)
    if len(positions) < written:  # truncation cut them off: an answer for some masks only would be silently short
        limit = encoded["input_ids"].shape[1]
        raise TextclsError(
            f"expected every {MASK} within the model's {limit} tokens, found {written - len(positions)} of {written} "
            f"beyond them; shorten the text before the {MASK}"
        )
    model.eval()
    with torch.inference_mode():
        logits = model(**encoded).logits[0].float()  # (seq, vocab)
    results = []
    for position in positions.tolist():
        probs = torch.softmax(logits[position], dim=-1)
        top = torch.topk(probs, k=min(top_k, probs.shape[-1]))
        results.append([(tokenizer.decode([int(i)]).strip(), float(p)) for p, i in zip(top.values, top.indices)])
    return results


__all__ = ["fill_mask", "pretrain"]
