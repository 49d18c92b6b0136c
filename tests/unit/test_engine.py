"""engine.py and the batching under it: cached Rust tokenisation, token-budget batches padded to
multiples of 8, the device's defaults, the steady-state meter, and both loops running on them."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from tests.conftest import TOPIC_WORDS, make_texts
from tests.conftest import topic_split as split
from textcls.config import TrainConfig
from textcls.families import FAMILIES
from textcls.models.encoders import embedded_model_path
from textcls.models.neural import load_tokenizer, pad_batch
from textcls.models.rnn import LSTMClassifier
from textcls.training import device as device_module
from textcls.training import loaders, prediction, throughput
from textcls.training import tokens as tokenisation
from textcls.training.batching import round_up, sorted_plan, training_plan
from textcls.training.device import device, resolve_precision
from textcls.training.loaders import EpochBatches, TokenizedRows
from textcls.training.throughput import ThroughputMeter
from textcls.training.tokens import TokenIds, encode_ids

LABELS = list(TOPIC_WORDS)
TINY_LSTM = {"embedding_dim": 16, "hidden_size": 16, "dropout": 0.0}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(tokenisation.CACHE_ENV, str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---- batches --------------------------------------------------------------------------------
def test_token_budget_batches_respect_the_budget_and_see_every_row_once_per_epoch():
    lengths = np.random.default_rng(0).integers(3, 129, size=5000)
    counts = set()
    for epoch in range(3):
        plan = training_plan(lengths, seed=10 + epoch, batch_tokens=2048)
        rows = np.concatenate(plan)
        assert sorted(rows.tolist()) == list(range(5000))  # every row exactly once
        assert all(len(b) * round_up(lengths[b]).max() <= 2048 for b in plan)
        counts.add(len(plan))
    assert len(counts) == 1  # the same number of batches every epoch: schedules and resume rely on it
    # the batch order and the rows that share a batch change with the epoch
    first, second = training_plan(lengths, 10, batch_tokens=2048), training_plan(lengths, 11, batch_tokens=2048)
    assert any(not np.array_equal(a, b) for a, b in zip(first, second))
    # short texts make large batches, long ones small
    short = [len(b) for b in first if lengths[b].max() <= 24]
    long = [len(b) for b in first if lengths[b].min() > 100]
    assert min(short) > 3 * max(long)
    # grouped by length: almost no padding beyond the multiple of 8
    padded = sum(len(b) * round_up(lengths[b]).max() for b in first)
    assert round_up(lengths).sum() / padded > 0.97


def test_a_fixed_batch_size_still_fixes_the_count():
    lengths = np.random.default_rng(1).integers(3, 60, size=103)
    plan = training_plan(lengths, seed=0, batch_size=16)
    assert sorted(len(b) for b in plan) == [7] + [16] * 6
    ungrouped = training_plan(lengths, seed=0, batch_tokens=640, group_by_length=False)
    assert {len(b) for b in ungrouped} <= {640 // 64, 103 % 10}  # a count: budget // longest padded text
    with pytest.raises(ValueError, match="smaller than the longest"):
        training_plan([200], seed=0, batch_tokens=128)


def test_sorted_plan_for_evaluation_keeps_length_order_within_a_budget():
    lengths = np.array([30, 5, 100, 7, 64, 9])
    plan = sorted_plan(lengths, batch_tokens=128)
    assert sorted(np.concatenate(plan).tolist()) == list(range(6))
    assert all(len(b) * round_up(lengths[b]).max() <= 128 for b in plan)
    assert [lengths[b].max() for b in plan] == sorted(lengths[b].max() for b in plan)


def test_rows_are_padded_to_a_multiple_of_8_with_a_mask_of_real_tokens():
    sequences = [[101, 7, 8, 102], [101, 102], list(range(1, 12))]
    token_ids = TokenIds.from_lists(sequences)
    assert token_ids.ids.dtype == np.int32 and token_ids.lengths.tolist() == [4, 2, 11]
    batch = TokenizedRows(token_ids, [0, 1, 2], pad_id=0).__getitems__([2, 0])
    assert batch["input_ids"].shape == (2, 16) and batch["input_ids"].dtype == torch.int64
    assert batch["input_ids"][0, :11].tolist() == sequences[2] and batch["input_ids"][0, 11:].tolist() == [0] * 5
    assert batch["input_ids"][1, :4].tolist() == sequences[0]
    assert batch["attention_mask"].sum(1).tolist() == [11, 4]
    assert batch["labels"].tolist() == [2, 0]
    # the same ids and mask as the old per-row padding, only wider
    ids, mask = pad_batch([sequences[2], sequences[0]])
    assert torch.equal(batch["input_ids"][:, :11], ids) and torch.equal(batch["attention_mask"][:, :11], mask)


def test_epoch_batches_follow_set_epoch_with_a_constant_length():
    lengths = np.random.default_rng(2).integers(3, 100, size=300)
    sampler = EpochBatches(lengths, TrainConfig(batch_tokens=512, seed=3))
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert len(epoch0) == len(epoch1) == len(sampler) and epoch0 != epoch1
    assert sorted(i for b in epoch1 for i in b) == list(range(300))


# ---- tokenisation ---------------------------------------------------------------------------
def test_rust_encoding_matches_the_hugging_face_tokenizer(tiny_bert, cache):
    from transformers import AutoTokenizer

    texts = split("x", 50, 3).texts + ["", "word " * 200]
    for folder in (tiny_bert, embedded_model_path()):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        expected = tokenizer(texts, truncation=True, max_length=32)["input_ids"]
        token_ids = encode_ids(tokenizer, texts, max_length=32)
        assert [token_ids[i].tolist() for i in range(len(texts))] == expected
        # the tokenizer's own settings are untouched (the engine encodes with a copy of its backend)
        assert tokenizer(texts[-1])["input_ids"] == tokenizer(texts[-1], truncation=False)["input_ids"]


def test_the_rust_copy_is_made_once_per_tokenizer_and_length_and_lengths_do_not_leak(monkeypatch):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded_model_path())
    copies = []
    make_copy = tokenisation._rust_copy
    monkeypatch.setattr(tokenisation, "_rust_copy", lambda *args: copies.append(args[1]) or make_copy(*args))
    long_text = "word " * 300  # 300 word pieces + [CLS] and [SEP]
    for _ in range(3):  # inference calls again and again, at a length and at none, in turns
        assert len(encode_ids(tokenizer, [long_text], 128, cache=False)[0]) == 128
        assert len(encode_ids(tokenizer, [long_text], None, cache=False)[0]) == 302
        assert len(encode_ids(tokenizer, [long_text], 16, cache=False)[0]) == 16
    assert sorted(copies, key=str) == [128, 16, None]  # one copy each, made on first use


def test_token_ids_are_cached_and_reused_and_a_change_of_texts_tokenizer_or_length_is_a_new_entry(
    tiny_bert, cache, monkeypatch, caplog
):
    from transformers import AutoTokenizer

    texts = split("x", 40, 4).texts
    bert, wordpiece = AutoTokenizer.from_pretrained(tiny_bert), load_tokenizer()
    first = encode_ids(bert, texts, max_length=32)
    assert len(list(cache.glob("*.npz"))) == 1

    def no_tokenising(*args, **kwargs):
        raise AssertionError("tokenised again instead of reading the cache")

    with monkeypatch.context() as patched:
        patched.setattr(tokenisation, "_encode", no_tokenising)
        with caplog.at_level(logging.INFO, logger="textcls.training"):
            again = encode_ids(bert, texts, max_length=32)
    assert np.array_equal(again.ids, first.ids) and np.array_equal(again.offsets, first.offsets)
    assert "read from the cache" in caplog.text

    encode_ids(bert, texts, max_length=16)  # another length
    encode_ids(wordpiece, texts, max_length=32)  # another tokenizer
    encode_ids(bert, texts[:-1] + ["changed"], max_length=32)  # other texts
    assert len(list(cache.glob("*.npz"))) == 4
    # a damaged entry costs a re-tokenisation, not the run: cut short (a zip without its directory) or not a zip
    for damage in (lambda stored: stored[: len(stored) // 2], lambda stored: b"not a zip"):
        for path in cache.glob("*.npz"):
            path.write_bytes(damage(path.read_bytes()))
        assert np.array_equal(encode_ids(bert, texts, max_length=32).ids, first.ids)
    assert encode_ids(bert, texts, max_length=32, cache=False).lengths.tolist() == first.lengths.tolist()


def test_a_resumed_run_reads_its_token_ids_from_the_cache(tmp_path, cache, caplog):
    train, dev = split("train", 64, 1), split("dev", 16, 2)
    config = TrainConfig(family="lstm", epochs=1, batch_size=16, lr=5e-3, max_length=32, early_stopping_patience=0)
    LSTMClassifier.fit(train, dev, LABELS, config, tmp_path / "ckpt", hparams=TINY_LSTM)
    with caplog.at_level(logging.INFO, logger="textcls.training"):
        resumed = TrainConfig(**{**config.__dict__, "epochs": 2, "resume": True})
        _, summary = LSTMClassifier.fit(train, dev, LABELS, resumed, tmp_path / "ckpt", hparams=TINY_LSTM)
    assert summary["resumed_from"] is not None
    assert caplog.text.count("read from the cache") == 2  # train and dev


# ---- the device -----------------------------------------------------------------------------
def test_defaults_follow_the_device_and_explicit_batching_wins():
    cpu, gpu = TrainConfig().on_device(gpu=False), TrainConfig().on_device(gpu=True, workers=2)
    assert (cpu.batch_size, cpu.batch_tokens, cpu.lr, cpu.compile, cpu.num_workers) == (32, None, 1e-4, False, 0)
    spec = FAMILIES["pretrained"].gpu_defaults
    assert (gpu.batch_size, gpu.batch_tokens, gpu.lr, gpu.compile, gpu.num_workers) == (
        None,
        spec["batch_tokens"],
        spec["lr"],
        False,
        2,
    )
    assert (
        spec["batch_tokens"] >= 8192 and spec["lr"] > FAMILIES["pretrained"].defaults["lr"]
    )  # larger batches, scaled lr
    fixed = TrainConfig(batch_size=16).on_device(gpu=True)
    assert (fixed.batch_size, fixed.batch_tokens, fixed.lr) == (16, None, 1e-4)  # the count, and the family's lr
    assert TrainConfig(batch_tokens=1024, lr=3e-5).on_device(gpu=False).lr == 3e-5
    assert TrainConfig(compile=True).on_device(gpu=True).compile is True  # asked for, on a GPU
    assert TrainConfig(compile=True).on_device(gpu=False).compile is False  # a CPU compiles longer than it saves
    assert TrainConfig(family="lstm").on_device(gpu=False).batch_size == 64


def test_compile_asked_for_on_a_cpu_is_dropped_with_a_warning(monkeypatch, caplog):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU, on any machine
    with caplog.at_level(logging.WARNING, logger="textcls.training"):
        assert device_module.for_this_device(TrainConfig(compile=True)).compile is False
    assert "--compile is ignored on a CPU" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="textcls.training"):
        device_module.for_this_device(TrainConfig())
    assert "--compile" not in caplog.text  # not asked for: nothing to say


def test_a_gpu_runs_attention_without_cudnn_and_fp32_matmuls_in_tf32(monkeypatch):
    from textcls.training import device as device_module2

    flags = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.cudnn_sdp_enabled(),
    )
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *args: (9, 0))  # as on an H100/H200, on any machine
    try:
        device_module2.tune_cuda.__wrapped__()
        assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        assert not torch.backends.cuda.cudnn_sdp_enabled()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags[:2]
        torch.backends.cuda.enable_cudnn_sdp(flags[2])
    if torch.cuda.is_available():  # the real device: set up by the first `device()`
        assert device().type == "cuda" and not torch.backends.cuda.cudnn_sdp_enabled()
    else:
        assert (
            device().type == "cpu" and torch.backends.cuda.cudnn_sdp_enabled() == flags[2]
        )  # a CPU run changes nothing


def test_inference_batches_by_a_token_budget_give_the_same_logits_in_input_order():
    from textcls.data.windows import Windowing

    tokenizer = load_tokenizer()
    texts = [f"{title} {body}" for _, title, body in make_texts(40, seed=5)]
    shapes = []

    def forward(input_ids, attention_mask):  # a "model" whose logits are each row's token count and first id
        shapes.append(input_ids.shape)
        tokens = loaders.array_to_device(attention_mask, torch.device("cpu")).sum(dim=1)
        return torch.stack([tokens, loaders.array_to_device(input_ids, torch.device("cpu"))[:, 1]], dim=1).float()

    windowing = Windowing(max_length=32)
    by_count = prediction.pooled_logits(tokenizer, texts, windowing, forward, pad_id=0, batch_size=4)
    count_shapes, shapes[:] = list(shapes), []
    by_tokens = prediction.pooled_logits(tokenizer, texts, windowing, forward, pad_id=0, batch_size=4, batch_tokens=128)
    expected = encode_ids(tokenizer, texts, 32, cache=False)
    np.testing.assert_array_equal(by_count[:, 0], expected.lengths)  # input order, whatever the batching
    np.testing.assert_array_equal(by_tokens, by_count)
    assert all(rows <= 4 for rows, _ in count_shapes)
    assert all(rows * width <= 128 for rows, width in shapes) and max(rows for rows, _ in shapes) > 4


def test_inference_batches_on_a_pool_of_workers_give_the_same_logits_and_reach_every_worker():
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from textcls.data.windows import Windowing

    tokenizer = load_tokenizer()
    texts = [f"{title} {body}" for _, title, body in make_texts(40, seed=6)]
    seen, both_running = [], threading.Barrier(2, timeout=10)

    def plain(input_ids, attention_mask):  # a "model" whose logits are each row's token count and first id
        return np.stack([attention_mask.sum(axis=1), input_ids[:, 1]], axis=1).astype(np.float32)

    def forward(input_ids, attention_mask):
        seen.append((threading.current_thread().name, input_ids.shape[0]))
        if len(seen) <= 2:
            both_running.wait()  # BrokenBarrierError unless the first two batches run at the same time
        return plain(input_ids, attention_mask)

    windowing = Windowing(max_length=32)
    with ThreadPoolExecutor(2, thread_name_prefix="worker") as pool:
        pooled = prediction.pooled_logits(
            tokenizer, texts, windowing, forward, pad_id=0, batch_size=8, pool=pool, workers=2
        )
        assert {name for name, _ in seen} == {"worker_0", "worker_1"} and max(rows for _, rows in seen) <= 8
        seen[:] = [("", 0)] * 2  # no more meeting
        few = prediction.pooled_logits(
            tokenizer, texts[:2], windowing, forward, pad_id=0, batch_size=8, pool=pool, workers=2
        )
        prediction.pooled_logits(tokenizer, texts[:1], windowing, forward, pad_id=0, batch_size=8, pool=pool, workers=2)
    assert seen[-1] == (threading.current_thread().name, 1)  # a single batch runs here, with no hand-off
    del seen[-1]
    np.testing.assert_array_equal(
        pooled, prediction.pooled_logits(tokenizer, texts, windowing, plain, pad_id=0, batch_size=8)
    )
    assert [rows for _, rows in seen[2:]] == [1, 1]  # two texts, two workers: a batch each, not one batch of two
    np.testing.assert_array_equal(
        few, prediction.pooled_logits(tokenizer, texts[:2], windowing, plain, pad_id=0, batch_size=8)
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"batch_tokens": 100}, r"^batch_tokens: expected at least 128 tokens .* found 100"),
        ({"batch_tokens": 0, "max_length": 16}, r"^batch_tokens: expected at least 16 tokens .* found 0"),
        ({"batch_tokens": -5}, r"^batch_tokens: expected at least 128"),
        ({"batch_tokens": 4096, "batch_size": 8}, r"batch_size and batch_tokens both set"),
        ({"num_workers": -1}, r"^num_workers: expected an integer >= 0"),
    ],
)
def test_bad_batching_options_are_clear_errors(options, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**options)


def test_throughput_meter_leaves_out_warm_up_and_paused_time(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 3.0, 3.5, 13.0, 14.0])  # 4 step ends, a pause (evaluation until 13), 2 step ends
    monkeypatch.setattr(throughput.time, "perf_counter", lambda: next(clock))
    meter = ThroughputMeter(warmup_steps=1)
    for _ in range(4):
        meter.step_end(10)
    meter.pause()  # the queued work of step 4 finishes by 3.5 (on a GPU: synchronised); that half second counts
    meter.step_end(10)  # the first step after a pause only restarts the clock
    meter.step_end(10)
    assert meter.samples == 40 and meter.seconds == 4.5  # steps 2-4, the pause's 0.5 s, step 6
    assert meter.samples_per_second == round(40 / 4.5, 2)
    assert next(clock, None) is None  # every clock reading taken, on any device


# ---- both loops on the engine ---------------------------------------------------------------
def test_the_own_loop_trains_on_a_token_budget_and_its_loss_falls(tmp_path):
    config = TrainConfig(family="lstm", epochs=3, batch_tokens=256, lr=1e-2, max_length=32, early_stopping_patience=0)
    classifier, summary = LSTMClassifier.fit(
        split("train", 200, 1), split("dev", 32, 2), LABELS, config, tmp_path, hparams=TINY_LSTM
    )
    losses = [row["train_loss"] for row in summary["epochs"]]
    assert losses[-1] < losses[0]
    steps = summary["global_step"] // 3
    assert steps < 200 / 8  # the texts pad to 16-24 tokens: 10-16 of them fit in 256, not 8
    assert summary["steady_samples_per_second"] is None or summary["steady_samples_per_second"] > 0
    assert next(classifier.model.parameters()).device.type == device().type


def test_the_pretrained_loop_runs_on_the_engine_on_this_device(tiny_bert, tmp_path):
    from textcls.models.pretrained import PretrainedClassifier

    config = TrainConfig(
        model=str(tiny_bert),
        epochs=3,
        batch_tokens=128,
        lr=2e-3,
        max_length=32,
        early_stopping_patience=0,
        logging_steps=2,
    )
    classifier, summary = PretrainedClassifier.fit(
        split("train", 160, 1), split("dev", 32, 2), LABELS, config, tmp_path
    )
    # precision and device asserted for the machine the test runs on, not assumed
    assert summary["precision"] == resolve_precision("auto")
    assert next(classifier.model.parameters()).device.type == device().type
    assert next(classifier.model.parameters()).dtype == torch.float32  # mixed precision is autocast; weights stay fp32
    steps_per_epoch = summary["global_step"] // 3
    assert summary["global_step"] == 3 * steps_per_epoch and steps_per_epoch < 160 / 4  # 128 tokens hold 4-8 texts
    assert summary["steady_samples_per_second"] > 0
    losses = [row["train_loss"] for row in summary["epochs"]]
    assert losses[-1] < losses[0] and losses[-1] < 1.3  # ln 4 = 1.386 at chance: it learns the topics


def _gathered_rows(plan, processes: int, rows: int) -> list[list[int]]:
    """What Trainer's evaluation under DDP sees of `plan`: accelerate's shards, one batch per process a
    step, concatenated as `gather_for_metrics` does and cut to the rows that are not repeats."""
    from accelerate.data_loader import BatchSamplerShard

    shards = [
        list(BatchSamplerShard(plan, num_processes=processes, process_index=i, even_batches=True))
        for i in range(processes)
    ]
    assert len({len(shard) for shard in shards}) == 1  # every process takes the same number of steps
    steps = [[batch for batch in step] for step in zip(*shards)]
    total = getattr(plan, "batch_size", None)
    remainder = rows % (total * processes) if total else 0
    gathered = [sum(step, []) for step in steps]
    if remainder:
        gathered[-1] = gathered[-1][:remainder]
    return steps, gathered


@pytest.mark.parametrize("rows", [1, 5, 16, 21, 200, 601])
@pytest.mark.parametrize("processes", [2, 3])
def test_eval_plan_over_processes_gives_equal_batches_that_gather_to_every_row_once(rows, processes):
    lengths = np.random.default_rng(rows).integers(4, 120, size=rows)
    config = TrainConfig(eval_batch_size=8)
    steps, gathered = _gathered_rows(loaders.eval_plan(lengths, config, processes), processes, rows)
    assert all(len({len(batch) for batch in step}) == 1 for step in steps)  # Trainer's gather needs equal sizes
    assert sorted(sum(gathered, [])) == list(range(rows))


def test_a_plan_of_varied_batch_sizes_would_give_processes_unequal_batches():
    # why eval_plan counts rows over processes: a token budget's batches reach a DDP gather unequal
    lengths = np.random.default_rng(0).integers(4, 120, size=200)
    steps, _ = _gathered_rows([b.tolist() for b in sorted_plan(lengths, batch_tokens=2048)], 2, 200)
    assert any(len({len(batch) for batch in step}) > 1 for step in steps)
