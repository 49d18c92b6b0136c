"""Shared fixtures: tiny random BERT models and small generated datasets. Nothing downloads."""

from __future__ import annotations

import csv
import os
import random
import tempfile
from pathlib import Path

import pytest

from textcls.data.loading import Split

# Tests must never reach the network, even by accident.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Token ids are cached on disk (textcls.training); tests keep theirs out of the user's cache.
os.environ.setdefault("TEXTCLS_CACHE_DIR", tempfile.mkdtemp(prefix="textcls-test-token-cache-"))

# pytest-xdist (`-n 2` in pyproject.toml) runs the suite in two worker processes that inherit the
# controller's environment. Each worker keeps its own token cache, and runs torch (and the `textcls`
# processes it starts) on one thread, so two workers share the cores instead of fighting over them.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER")
if XDIST_WORKER:
    os.environ["TEXTCLS_CACHE_DIR"] = os.path.join(os.environ["TEXTCLS_CACHE_DIR"], XDIST_WORKER)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

SHARED_AG_NEWS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ag_news"

# Four topics, each with its own words, so a tiny model can learn them in a few steps.
TOPIC_WORDS = {
    "World": ["minister", "election", "embassy", "treaty", "refugees", "parliament"],
    "Sports": ["goal", "coach", "season", "playoff", "striker", "tournament"],
    "Business": ["shares", "profit", "merger", "investors", "quarterly", "stocks"],
    "Sci/Tech": ["software", "internet", "chip", "laptop", "researchers", "satellite"],
}
FILLER = ["the", "a", "on", "in", "after", "with", "new", "says", "report", "today"]


def make_texts(n: int, seed: int = 0) -> list[tuple[int, str, str]]:
    """`n` rows of (label, title, description) with topic words; labels cycle so every class appears."""
    rng = random.Random(seed)
    names = list(TOPIC_WORDS)
    rows = []
    for i in range(n):
        label = i % len(names)
        words = TOPIC_WORDS[names[label]]
        title = " ".join(rng.choice(words) for _ in range(2))
        body = [rng.choice(words if rng.random() < 0.5 else FILLER) for _ in range(rng.randint(4, 14))]
        rows.append((label, title.title(), " ".join(body) + "."))
    return rows


def topic_split(name: str, n: int, seed: int) -> Split:
    """A `Split` of `make_texts(n, seed)`: title and description joined, the topics' label ids."""
    rows = make_texts(n, seed)
    return Split(name, [f"{t} {d}" for _, t, d in rows], [label for label, _, _ in rows], f"generated:{name}")


def make_long_texts(n: int, seed: int = 0, filler_words: int = 40) -> list[tuple[int, str]]:
    """`n` rows of (label, text) whose topic words come only after `filler_words` words of filler, so a
    model that reads the first few dozen tokens sees nothing of the class."""
    rng = random.Random(seed)
    rows = []
    for label, title, body in make_texts(n, seed):
        filler = " ".join(rng.choice(FILLER) for _ in range(filler_words))
        rows.append((label, f"{filler} {title} {body}"))
    return rows


def write_ag_news_folder(folder: Path, n_train: int = 64, n_dev: int = 32, n_test: int = 32) -> Path:
    """An AG News-shaped folder: train/dev/test.csv (label,title,description) and classes.txt."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 1), ("dev", n_dev, 2), ("test", n_test, 3)):
        if n == 0:
            continue
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, quoting=csv.QUOTE_ALL)
            writer.writerow(["label", "title", "description"])
            writer.writerows(make_texts(n, seed))
    (folder / "classes.txt").write_text("\n".join(TOPIC_WORDS) + "\n", encoding="utf-8")
    return folder


def write_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 2-layer BERT (hidden 32) with a WordPiece vocab built from the test words."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    words = sorted({w for ws in TOPIC_WORDS.values() for w in ws} | set(FILLER))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "!", "?"] + words
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
    # transformers 5.x takes the vocabulary itself (`vocab=`); save_pretrained writes vocab.txt.
    tokenizer = BertTokenizer(
        vocab={token: i for i, token in enumerate(vocab)}, do_lower_case=True, model_max_length=64
    )
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=64,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    import torch

    # seeded, so the tiny BERT is the same whichever tests ran before its fixture (the global RNG is left as it was)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_long_text_folder(folder: Path, n_train: int = 128, n_dev: int = 32, filler_words: int = 40) -> Path:
    """train/dev.csv (label,text) of `make_long_texts`, with classes.txt: the class sits past the first 40 words."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "text"])
            writer.writerows(make_long_texts(n, seed, filler_words))
    (folder / "classes.txt").write_text("\n".join(TOPIC_WORDS) + "\n", encoding="utf-8")
    return folder


def make_multilabel_rows(n: int, seed: int = 0) -> list[tuple[list[str], str]]:
    """`n` rows of (label names, text): every third a single topic, the rest two topics' texts joined, carrying both."""
    rng = random.Random(seed)
    names = list(TOPIC_WORDS)
    singles, others = make_texts(n, seed), make_texts(n + 8, seed + 100)
    rows = []
    for i, first in enumerate(singles):
        if i % 3 == 0:
            rows.append(([names[first[0]]], f"{first[1]} {first[2]}"))
            continue
        second = rng.choice([row for row in others[i : i + 8] if row[0] != first[0]])
        labels = [names[first[0]], names[second[0]]]
        rows.append((labels, f"{first[1]} {first[2]} {second[1]} {second[2]}"))
    return rows


def write_multilabel_folder(folder: Path, n_train: int = 120, n_dev: int = 48, jsonl: bool = False) -> Path:
    """train/dev of `make_multilabel_rows` with classes.txt: a CSV label cell joins names with '|',
    a JSONL one lists them."""
    import json

    folder.mkdir(parents=True, exist_ok=True)
    for name, n, seed in (("train", n_train, 1), ("dev", n_dev, 2)):
        rows = make_multilabel_rows(n, seed)
        if jsonl:
            lines = "".join(json.dumps({"label": labels, "text": text}) + "\n" for labels, text in rows)
            (folder / f"{name}.jsonl").write_text(lines, encoding="utf-8")
            continue
        with (folder / f"{name}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["label", "text"])
            writer.writerows(("|".join(labels), text) for labels, text in rows)
    (folder / "classes.txt").write_text("\n".join(TOPIC_WORDS) + "\n", encoding="utf-8")
    return folder


def train_tiny_bert(tiny_bert: Path, root: Path, data: Path, **options: object) -> Path:
    """The tiny BERT fine-tuned on `data` into `root/run` (batch 8, lr 2e-3, no early stopping, seed 1)."""
    import textcls

    settings = {"batch_size": 8, "lr": 2e-3, "early_stopping_patience": 0, "seed": 1, **options}
    return textcls.train(data=str(data), out=root / "run", model=str(tiny_bert), **settings).run_dir


def interrupt_student_fit(monkeypatch: pytest.MonkeyPatch) -> object:
    """Make the lstm family's `fit` raise KeyboardInterrupt (a kill mid-training); returns the real `fit`,
    for `monkeypatch.setattr(TorchClassifier, "fit", classmethod(real))` once the test goes on."""
    from textcls.models.neural import TorchClassifier

    real_fit = TorchClassifier.fit.__func__  # type: ignore[attr-defined]

    def interrupted(cls: object, *args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(TorchClassifier, "fit", classmethod(interrupted))
    return real_fit


@pytest.fixture(scope="session")
def multilabel_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained-family run on generated multi-label rows (tiny BERT), thresholds tuned on dev."""
    root = tmp_path_factory.mktemp("multilabel-run")
    return train_tiny_bert(
        tiny_bert, root, write_multilabel_folder(root / "data"), epochs=6, max_length=48, multi_label=True
    )


@pytest.fixture(scope="session")
def chunk_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained-family run on long texts read in chunks (windows of 32 tokens sharing 8), class weights on."""
    root = tmp_path_factory.mktemp("chunk-run")
    return train_tiny_bert(
        tiny_bert,
        root,
        write_long_text_folder(root / "data"),
        epochs=8,
        max_length=32,
        long_text="chunk",
        stride=8,
        class_weights="balanced",
    )


def pytest_configure(config: pytest.Config) -> None:
    if XDIST_WORKER:
        import torch

        torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    """`--threads N` sets torch's process-wide thread count; keep one test's setting out of the next."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture()
def ag_folder(tmp_path: Path) -> Path:
    return write_ag_news_folder(tmp_path / "data")


@pytest.fixture(scope="session")
def shared_ag_news() -> Path:
    if not (SHARED_AG_NEWS / "train.csv").is_file():
        pytest.skip(f"AG News data not found at {SHARED_AG_NEWS} (expected ../shared/data/ag_news beside the repo)")
    return SHARED_AG_NEWS


@pytest.fixture(scope="session")
def tiny_run(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretrained-family run folder: the tiny BERT fine-tuned for a few steps on generated topics."""
    import textcls

    root = tmp_path_factory.mktemp("tiny-run")
    data = write_ag_news_folder(root / "data", n_train=96, n_dev=32, n_test=32)
    result = textcls.train(
        data=str(data),
        out=root / "run",
        model=str(tiny_bert),
        epochs=3,
        batch_size=8,
        lr=1e-3,
        max_length=32,
        early_stopping_patience=0,
        seed=1,
    )
    return result.run_dir
