"""The engine's bare training step, for the benchmarks that time it alone: forward, backward and the
optimizer step on batches made beforehand (no tokenisation, data loading, `Trainer` or evaluation
inside the clock), and the models and batches they time it on.

    batches = engine_batches(embedded_model_path(), texts, labels, batch_size=32, seed=0, count=28)
    timing = step_timing(model, optimizer, batches, warmup=3, precision="bf16")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import Timing, time_steps
from textcls.models.encoders import embedded_model_path
from textcls.training.batching import training_plan
from textcls.training.loaders import TokenizedRows
from textcls.training.tokens import encode_ids, pad_id

LABEL_COUNT = 4  # AG News
MAX_LENGTH = 128  # TrainConfig's default, as the fits use

# the overhead proxy: a model so small that everything around its step shows
PROXY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256}
BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072}


def bert_from_config(folder: Path, **sizes: Any) -> Path:
    """A randomly initialised BERT of `sizes` with the embedded model's WordPiece tokenizer, saved to `folder`."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, num_labels=LABEL_COUNT, **sizes)
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def first_batches(
    rows: TokenizedRows, batch_size: int, seed: int, count: int | None = None
) -> list[dict[str, torch.Tensor]]:
    """The first `count` batches (all: None) of one epoch as the engine plans and pads them
    (`batching.training_plan`: texts of similar length together, padded to multiples of 8, in seeded
    random order), made now."""
    plan = training_plan(rows.text_lengths(), seed, batch_size=batch_size)
    return [rows.__getitems__(batch) for batch in plan[:count]]


def token_rows(model_dir: Path, texts: list[str], labels: list[int]) -> TokenizedRows:
    """`texts` tokenised by `model_dir`'s tokenizer as the engine does it (no cache: timing runs cold)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return TokenizedRows(encode_ids(tokenizer, texts, MAX_LENGTH, cache=False), labels, pad_id(tokenizer))


def engine_batches(
    model_dir: Path, texts: list[str], labels: list[int], batch_size: int, seed: int, count: int
) -> list[dict[str, torch.Tensor]]:
    """`count` engine batches drawn from 4x as many rows of `texts`, so their lengths vary as in an epoch."""
    drawn = count * batch_size * 4
    return first_batches(token_rows(model_dir, texts[:drawn], labels[:drawn]), batch_size, seed, count)


def step_timing(forward: Any, optimizer: Any, batches: list[dict], warmup: int, precision: str) -> Timing:
    """Train on `batches` with the bare step (autocast per `precision`): the first `warmup` steps timed
    apart, samples/s of the rest (`Timing.per_second`)."""
    device = batches[0]["input_ids"].device
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16

    def step(batch: dict) -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=precision != "fp32"):
            loss = forward(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    synchronize = torch.cuda.synchronize if device.type == "cuda" else None
    return time_steps(step, batches, warmup, size=lambda batch: len(batch["labels"]), synchronize=synchronize)
