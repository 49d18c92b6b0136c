"""Training, loading, evaluating and comparing encoder-decoder runs; the run folder follows the
classification runs' rules (`textcls.runfolder`: `textcls.json`, `model/` in safetensors, `metrics.json`,
written into `.NAME.partial/` and renamed into place when complete).

Layout of a seq2seq run folder:
    textcls.json        family "seq2seq", the config, token mode, data source and fingerprint, versions
    model/              model.safetensors and seq2seq.json (hyper-parameters and both vocabularies)
    metrics.json        per-epoch dev loss, token accuracy, exact match and BLEU; the best epoch's dev scores
    eval_<split>.json   what `evaluate` wrote

Example:
    >>> result = train(data="data/dates", out="runs/dates", attention="additive", time_budget=5)   # doctest: +SKIP
    >>> [t.text for t in load("runs/dates").translate(["Saturday 14 August 1982"])]             # doctest: +SKIP
    ['1982-08-14']
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls import machine, runfolder
from textcls.data.texts import check_texts
from textcls.errors import ConfigError, RunFolderError, StorageError, TextclsError
from textcls.files import make_folder, storage_error, write_atomic, write_json
from textcls.reporting import plots
from textcls.seq2seq.config import Seq2SeqConfig
from textcls.seq2seq.model import Seq2Seq
from textcls.seq2seq.pairs import (
    EOS,
    Pairs,
    Vocabulary,
    detokenize,
    fingerprint,
    hold_out,
    read_folder,
    read_pairs,
    resolve_token_mode,
    tokenize,
    write_tsv,
)
from textcls.seq2seq.scoring import scores, scores_by_length
from textcls.seq2seq.tasks import make_splits
from textcls.seq2seq.training import Encoded, decode, max_output_steps, pad_ids, train_loop
from textcls.training import tracking

log = logging.getLogger(__name__)

FAMILY = runfolder.SEQ2SEQ_FAMILY  # the run folder's family; not a classifier, so not in textcls.families
MODEL_CONFIG_FILE = "seq2seq.json"
WEIGHTS_FILE = "model.safetensors"
FORMAT_VERSION = 1
COMPARE_FILE = "compare.json"
LENGTH_FIGURE = "length.png"


@dataclass
class Translation:
    """One source's translation and, with attention, alpha(t, i) over its tokens."""

    source: str
    text: str
    source_tokens: list[str]  # the source's tokens and </s>
    output_tokens: list[str]  # the output's tokens and </s> (absent when cut at the length limit)
    attention: np.ndarray | None  # (output tokens, source tokens), rows sum to 1; None without attention


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict[str, Any]
    run: Seq2SeqRun


# ---- data -------------------------------------------------------------------------------------
def write_data(task: str, rows: int, out: str | Path, seed: int = 0, overwrite: bool = False) -> dict[str, Path]:
    """Generate `task` pairs into `out/train.tsv`, `dev.tsv`, `test.tsv`; returns the paths. Files of those
    names already there (your own pairs, say) are replaced only with `overwrite`.

    Example:
        >>> write_data("dates", 1000, "data/dates")   # doctest: +SKIP
    """
    splits = make_splits(task, rows, seed)
    existing = [str(Path(out) / f"{split}.tsv") for split in splits if (Path(out) / f"{split}.tsv").exists()]
    if existing and not overwrite:
        verb = "exists" if len(existing) == 1 else "exist"
        raise TextclsError(
            f"{', '.join(existing)} already {verb}; pass --overwrite to replace them or choose another --out"
        )
    out = make_folder(Path(out))
    paths = {}
    for split, pairs in splits.items():
        paths[split] = write_atomic(out / f"{split}.tsv", functools.partial(write_tsv, pairs=pairs))
    return paths


def read_data(
    data: str | Path, splits: Sequence[str], source_column: str = "source", target_column: str = "target", seed: int = 0
) -> dict[str, Pairs]:
    """A folder's splits, or one file of pairs (train and a held-out tenth as dev; as any other split itself)."""
    path = Path(data)
    if path.is_dir():
        return read_folder(path, splits, source_column, target_column, seed)
    pairs = read_pairs(path, source_column, target_column)
    if "train" in splits or "dev" in splits:
        train, dev = hold_out(pairs, 0.1, seed)
        return {split: {"train": train, "dev": dev}.get(split, pairs) for split in splits}
    return {split: pairs for split in splits}


# ---- training ---------------------------------------------------------------------------------
def train(
    data: str | Path, out: str | Path, *, config: Seq2SeqConfig | None = None, overwrite: bool = False, **options: Any
) -> TrainResult:
    """Train an encoder-decoder on a data folder (or one file of pairs) and write a run folder at `out`.

    Pass a `Seq2SeqConfig` or keyword options named like its fields.

    Example:
        >>> train("data/reorder", "runs/reorder-none", attention="none", time_budget=9)   # doctest: +SKIP
    """
    config = config or Seq2SeqConfig.from_options(options)
    runfolder.check_out(out, overwrite)
    tracking.check_services(config.report_to)  # an unreachable tracking server fails before training
    log.info("seq2seq training: %s", dataclasses.asdict(config))
    splits = read_data(
        data, ("train", "dev"), config.source_column, config.target_column, config.seed
    )  # bad data fails here
    with runfolder.writing(out, overwrite) as work_dir:
        return _train(data, splits, config, Path(out), work_dir)


def _train(
    data: str | Path, splits: dict[str, Pairs], config: Seq2SeqConfig, run_dir: Path, work_dir: Path
) -> TrainResult:
    """`train` once `run_dir` is claimed: train in `work_dir`, score dev, move into place."""
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    tokens = resolve_token_mode(config.tokens, splits["train"].targets)
    source_vocab = Vocabulary.build(splits["train"].sources, tokens)
    target_vocab = Vocabulary.build(splits["train"].targets, tokens)
    encoded = {
        name: _encode(pairs, source_vocab, target_vocab, tokens, config.max_length) for name, pairs in splits.items()
    }
    log.info(
        "data: %d train, %d dev pairs; %s tokens; vocabularies %d source, %d target",
        len(splits["train"]),
        len(splits["dev"]),
        tokens,
        len(source_vocab),
        len(target_vocab),
    )

    if work_dir.exists() and not config.resume:
        import shutil

        shutil.rmtree(work_dir)
    with _storage_errors(work_dir), tracking.tracking(config.report_to, work_dir, run_dir.name) as tracker:
        make_folder(work_dir)
        tracker.log_params(tracking.config_params(seq2seq={**dataclasses.asdict(config), "data": str(data)}))
        torch.manual_seed(config.seed)
        model = Seq2Seq(len(source_vocab), len(target_vocab), **config.model_hparams())
        run = Seq2SeqRun(run_dir, {}, None, model, source_vocab, target_vocab, tokens, config.max_length)
        identity = {
            "hparams": config.model_hparams(),
            "tokens": tokens,
            "vocab_sizes": [len(source_vocab), len(target_vocab)],
        }
        summary = train_loop(
            model,
            encoded["train"],
            encoded["dev"],
            config,
            runfolder.checkpoint_dir(work_dir),
            identity=identity,
            score_dev=lambda module: run.score(splits["dev"])["overall"],
        )
        dev = run.score(splits["dev"], by_length=True)
        run.save(runfolder.model_dir(work_dir))
        info = _run_info(config, tokens, data, splits, model, source_vocab, target_vocab)
        metrics = {"training": summary, "dev": dev["overall"], "dev_by_length": dev["by_length"]}
        runfolder.write_run(work_dir, info, metrics)
        tracker.log_outcome(metrics, int(summary["steps"]), work_dir)
    with _storage_errors(work_dir):
        runfolder.move_into_place(work_dir, run_dir)
    log.info(
        "best epoch %s: dev exact match %.4f, token accuracy %.4f, BLEU %.2f; run folder %s",
        summary["best_epoch"],
        dev["overall"]["exact_match"],
        dev["overall"]["token_accuracy"],
        dev["overall"]["bleu"],
        run_dir,
    )
    run.info, run.metrics = info, metrics
    return TrainResult(run_dir, metrics, run)


def _encode(pairs: Pairs, source_vocab: Vocabulary, target_vocab: Vocabulary, tokens: str, max_length: int) -> Encoded:
    cut = sum(len(tokenize(s, tokens)) + 1 > max_length for s in pairs.sources)
    if cut:
        log.warning(
            "%s: %d sources are longer than max_length %d tokens and were cut; raise --max-length to keep them",
            pairs.origin,
            cut,
            max_length,
        )
    return Encoded(
        [source_vocab.encode(s, tokens, max_length) for s in pairs.sources],
        [target_vocab.encode(t, tokens) for t in pairs.targets],
    )


def _run_info(
    config: Seq2SeqConfig,
    tokens: str,
    data: str | Path,
    splits: dict[str, Pairs],
    model: Seq2Seq,
    source_vocab: Vocabulary,
    target_vocab: Vocabulary,
) -> dict[str, Any]:
    from importlib.metadata import version

    return {
        "family": FAMILY,
        "attention": config.attention,
        "tokens": tokens,
        "max_length": config.max_length,
        "config": dataclasses.asdict(config),
        "data": {
            "source": str(Path(data).resolve()),
            "fingerprint": fingerprint(splits),
            "rows": {name: len(pairs) for name, pairs in splits.items()},
        },
        "vocab_sizes": {"source": len(source_vocab), "target": len(target_vocab)},
        "num_parameters": sum(p.numel() for p in model.parameters()),
        "versions": {**machine.library_versions(), "sacrebleu": version("sacrebleu")},
        "hardware": machine.hardware(),
        "command": sys.argv,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


@contextlib.contextmanager
def _storage_errors(work_dir: Path) -> Iterator[None]:
    """A failed write is a `StorageError` naming the path; the partial folder stays for --resume."""
    try:
        yield
    except StorageError:
        raise
    except OSError as error:
        failure = storage_error(error, getattr(error, "filename", None) or work_dir)
        if failure is None:
            raise
        raise failure from error


# ---- a loaded run -----------------------------------------------------------------------------
@dataclass
class Seq2SeqRun:
    """A loaded seq2seq run folder: its model, vocabularies and what it says about itself."""

    run_dir: Path
    info: dict[str, Any]
    metrics: dict[str, Any] | None
    model: Seq2Seq
    source_vocab: Vocabulary
    target_vocab: Vocabulary
    tokens: str
    max_length: int

    @property
    def attention(self) -> str:
        return self.model.attention

    def translate(
        self, texts: str | Sequence[str], beam: int = 1, batch_size: int = 64, progress: bool = False
    ) -> list[Translation]:
        """Translations of `texts` with their attention matrices; `beam` 1 is greedy decoding (batched).

        Example:
            >>> t = load("runs/dates").translate(["Saturday 14 August 1982"])[0]   # doctest: +SKIP
            >>> t.text, t.attention.shape
            ('1982-08-14', (11, 24))
        """
        texts = check_texts([texts] if isinstance(texts, str) else texts)
        if beam < 1:
            raise TextclsError(
                f"beam: expected a beam size of 1 or more, found {beam}; pass --beam 1 for greedy decoding"
            )
        sources = [self.source_vocab.encode(text, self.tokens, self.max_length) for text in texts]
        if beam == 1:
            outputs, weights = decode(self.model, sources, batch_size, progress)
        else:
            outputs, weights = [], []
            self.model.eval()
            for ids in sources:
                source_ids, source_mask = pad_ids([ids])  # (1, source)
                output, attention = self.model.beam(source_ids, source_mask, beam, max_output_steps(len(ids)))
                outputs.append(output)
                weights.append(None if attention is None else attention.float().numpy())
        return [
            self._translation(text, ids, output, alpha)
            for text, ids, output, alpha in zip(texts, sources, outputs, weights)
        ]

    def _translation(
        self, text: str, source: list[int], output: list[int], attention: np.ndarray | None
    ) -> Translation:
        output_tokens = self.target_vocab.decode(output)
        shown_output = output_tokens + (["</s>"] if EOS in output else [])
        shown_source = [*tokenize(text, self.tokens)[: len(source) - 1], "</s>"]  # unknown tokens shown as written
        return Translation(text, detokenize(output_tokens, self.tokens), shown_source, shown_output, attention)

    def score(self, pairs: Pairs, by_length: bool = False, bucket_width: int = 20) -> dict[str, Any]:
        """Greedy translations of `pairs.sources` scored against `pairs.targets`, overall and (optionally) by length."""
        if bucket_width < 1:
            raise TextclsError(f"--bucket-width: expected 1 or more words, found {bucket_width}")
        predictions = [t.text for t in self.translate(pairs.sources)]
        result: dict[str, Any] = {"overall": scores(predictions, pairs.targets, self.tokens)}
        if by_length:
            result["by_length"] = scores_by_length(pairs.sources, predictions, pairs.targets, self.tokens, bucket_width)
        return result

    def plot(self, translation: Translation, path: str | Path) -> Path:
        """The alignment matrix of one translation as a PNG (Bahdanau et al.'s Fig. 3)."""
        if translation.attention is None:
            raise TextclsError(
                f"{self.run_dir} was trained with --attention none: it has no alignment to plot; "
                "use a run trained with --attention additive"
            )
        shown = (lambda token: "␣" if token == " " else token) if self.tokens == "chars" else str
        return plots.alignment_matrix(
            translation.attention,
            [shown(t) for t in translation.source_tokens],
            [shown(t) for t in translation.output_tokens],
            Path(path),
            title=textwrap.shorten(f"{translation.source} → {translation.text}", width=90, placeholder=" …"),
        )

    def save(self, model_dir: Path) -> None:
        """`model.safetensors` and `seq2seq.json` (hyper-parameters, token mode, both vocabularies)."""
        from safetensors.torch import save_file

        model_dir = make_folder(Path(model_dir))
        weights = {name: tensor.detach().clone().contiguous() for name, tensor in self.model.state_dict().items()}
        write_atomic(model_dir / WEIGHTS_FILE, lambda temporary: save_file(weights, str(temporary)))
        write_json(
            model_dir / MODEL_CONFIG_FILE,
            {
                "format_version": FORMAT_VERSION,
                "hparams": self._hparams(),
                "tokens": self.tokens,
                "max_length": self.max_length,
                "source_vocab": self.source_vocab.tokens,
                "target_vocab": self.target_vocab.tokens,
            },
        )

    def _hparams(self) -> dict[str, Any]:
        model = self.model
        return {
            "attention": model.attention,
            "embedding_size": model.source_embedding.embedding_dim,
            "encoder_hidden": model.encoder.hidden_size,
            "decoder_hidden": model.cell.hidden_size,
            "attention_size": model.query.out_features if model.attention == "additive" else None,
            "dropout": model.dropout.p,
        }


def load(run_dir: str | Path) -> Seq2SeqRun:
    """A seq2seq run folder, from the folder alone; a classification run or a damaged file is a `RunFolderError`.

    Example:
        >>> run = load("runs/dates")                 # doctest: +SKIP
        >>> run.translate(["3/3/09"])[0].text        # doctest: +SKIP
        '2009-03-03'
    """
    from safetensors.torch import load_file

    record = runfolder.read_record(run_dir)
    if record.info.get("family") != FAMILY:
        raise RunFolderError(
            f"{record.run_dir}: expected a {FAMILY} run, found family {record.info.get('family')!r}; "
            "load a classification run with textcls.load"
        )
    runfolder.verify_model_files(record.run_dir, record.info)
    config_path = record.model_dir / MODEL_CONFIG_FILE
    try:
        saved = json.loads(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunFolderError(
            f"expected {config_path}, found none; the run folder is incomplete, train again"
        ) from error
    except ValueError as error:
        raise runfolder.damaged(config_path, error) from error
    hparams = {k: v for k, v in saved["hparams"].items() if v is not None}
    source_vocab, target_vocab = Vocabulary(saved["source_vocab"]), Vocabulary(saved["target_vocab"])
    model = Seq2Seq(len(source_vocab), len(target_vocab), **hparams)
    try:
        model.load_state_dict(load_file(str(record.model_dir / WEIGHTS_FILE)))
    except Exception as error:  # a cut or overwritten file: safetensors' header, sizes or names
        raise runfolder.damaged(record.model_dir / WEIGHTS_FILE, str(error).splitlines()[0][:200]) from error
    model.eval()
    return Seq2SeqRun(
        record.run_dir,
        record.info,
        record.metrics,
        model,
        source_vocab,
        target_vocab,
        saved["tokens"],
        saved["max_length"],
    )


# ---- evaluation and comparison ----------------------------------------------------------------
SPLITS = ("train", "dev", "test")


def _split_of(run: Seq2SeqRun, split: str, data: str | Path | None) -> Pairs:
    if split not in SPLITS:
        raise ConfigError(f"--split: expected one of {list(SPLITS)}, found {split!r}; pass --split test or dev")
    source = data if data is not None else run.info.get("data", {}).get("source")
    if source is None:
        raise TextclsError(f"{run.run_dir} does not record its data; pass --data")
    if data is None and split == "test" and Path(source).is_file():
        # one file is read as train and a held-out tenth as dev: scored "as test" it would be the training pairs
        raise TextclsError(
            f"{run.run_dir} was trained on one file ({source}), which has no test split: its pairs are the run's "
            "train and dev; pass --data with test pairs (a file or a folder with test.tsv), or --split dev"
        )
    config = run.info.get("config", {})
    return read_data(
        source,
        (split,),
        config.get("source_column", "source"),
        config.get("target_column", "target"),
        config.get("seed", 0),
    )[split]


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    data: str | Path | None = None,
    by_length: bool = False,
    bucket_width: int = 20,
) -> dict[str, Any]:
    """Exact match, token accuracy and BLEU of a run on `split` of its data (or `data`), written to
    `RUN/eval_<split>.json`; `by_length` adds them per bucket of `bucket_width` source words.

    Example:
        >>> evaluate("runs/reorder", by_length=True)["by_length"][0]["bleu"]   # doctest: +SKIP
    """
    run = run_dir if isinstance(run_dir, Seq2SeqRun) else load(run_dir)
    pairs = _split_of(run, split, data)
    result = {
        "run": str(run.run_dir),
        "split": split,
        "data": pairs.origin,
        "attention": run.attention,
        **run.score(pairs, by_length=by_length, bucket_width=bucket_width),
    }
    write_json(runfolder.eval_path(run.run_dir, split), result)
    return result


def compare(
    run_dirs: Sequence[str | Path],
    out: str | Path,
    split: str = "test",
    data: str | Path | None = None,
    bucket_width: int = 10,
) -> dict[str, Any]:
    """BLEU and exact match against source length, one line per run: `OUT/compare.json` and `OUT/length.png`.

    Example:
        >>> compare(["runs/reorder-additive", "runs/reorder-none"], "docs/seq2seq")   # doctest: +SKIP
    """
    rows = []
    for run_dir in run_dirs:
        run = load(run_dir)
        pairs = _split_of(run, split, data)
        result = run.score(pairs, by_length=True, bucket_width=bucket_width)
        rows.append(
            {
                "run": run.run_dir.name,
                "path": str(run.run_dir),
                "attention": run.attention,
                "data": pairs.origin,
                **result,
            }
        )
    out = make_folder(Path(out))
    report = {"split": split, "bucket_width": bucket_width, "runs": rows}
    write_json(out / COMPARE_FILE, report)
    curves = [
        {
            "name": f"{row['run']} ({row['attention']})",
            "x": [(b["low"] + b["high"]) / 2 for b in row["by_length"]],
            "bleu": [b["bleu"] for b in row["by_length"]],
            "exact_match": [100 * b["exact_match"] for b in row["by_length"]],
        }
        for row in rows
    ]
    try:
        plots.length_curves(curves, out / LENGTH_FIGURE)
    except Exception as error:  # the scores are written: a figure is never worth them
        log.warning("%s was not drawn: %s: %s", out / LENGTH_FIGURE, type(error).__name__, error)
    return report
