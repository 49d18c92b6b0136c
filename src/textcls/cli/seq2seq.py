"""`textcls seq2seq ...`: parse flags, build a config, call `textcls.seq2seq`, print results.

Logs go to stderr; results go to stdout (a table, or JSON with `--json`); a `TextclsError` exits 2.
Registered on the main app as the `seq2seq` command group.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from textcls.cli.console import Verbose, stderr, stdout
from textcls.cli.console import library_call as _library_call
from textcls.cli.console import setup_logging as _setup_logging
from textcls.seq2seq.config import Seq2SeqConfig
from textcls.seq2seq.tasks import TASKS

app = typer.Typer(
    name="seq2seq",
    help="RNN encoder-decoder with additive attention: generate data, train, translate (with alignment plots), "
    "evaluate by length, compare runs.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
_HELP = {field.name: field.metadata.get("help", "") for field in dataclasses.fields(Seq2SeqConfig)}


def _print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def _scores_table(title: str, rows: list[tuple[str, dict[str, Any]]]) -> Table:
    table = Table(title=title)
    for column in ("", "pairs", "exact match", "token accuracy", "BLEU"):
        table.add_column(column, justify="left" if not column else "right")
    for name, row in rows:
        table.add_row(
            name, str(row["pairs"]), f"{row['exact_match']:.4f}", f"{row['token_accuracy']:.4f}", f"{row['bleu']:.2f}"
        )
    return table


@app.command()
def data(
    task: str = typer.Option(..., "--task", help=f"which generator: {', '.join(TASKS)}"),
    rows: int = typer.Option(..., "--rows", help="training pairs; dev and test get a tenth each (at least 20)"),
    out: Path = typer.Option(..., "--out", help="folder to write train.tsv, dev.tsv, test.tsv into"),
    seed: int = typer.Option(0, "--seed", help="seed of the generator"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace train.tsv, dev.tsv, test.tsv already in --out"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Generate parallel data: `dates` (written dates -> ISO) or `reorder` (a toy translation, 5-60 words)."""
    from textcls.seq2seq.api import write_data

    _setup_logging(False)
    with _library_call():
        paths = write_data(task, rows, out, seed, overwrite)
    counts = {split: sum(1 for _ in path.open(encoding="utf-8")) for split, path in paths.items()}
    if as_json:
        _print_json({"task": task, "files": {split: str(path) for split, path in paths.items()}, "rows": counts})
        return
    for split, path in paths.items():
        stdout.print(f"{path}\t{counts[split]} pairs")


@app.command()
def train(
    data: Path = typer.Option(
        ..., "--data", help="a folder with train.* and dev.* (TSV, CSV or JSONL), or one file of pairs"
    ),
    out: Path = typer.Option(..., "--out", help="run folder to write"),
    attention: str = typer.Option("additive", "--attention", help=_HELP["attention"]),
    tokens: str = typer.Option("auto", "--tokens", help=_HELP["tokens"]),
    epochs: int | None = typer.Option(None, "--epochs", help=_HELP["epochs"]),
    batch_size: int | None = typer.Option(None, "--batch-size", help=_HELP["batch_size"]),
    lr: float | None = typer.Option(None, "--lr", help=_HELP["lr"]),
    embedding_size: int | None = typer.Option(None, "--embedding-size", help=_HELP["embedding_size"]),
    encoder_hidden: int | None = typer.Option(None, "--encoder-hidden", help=_HELP["encoder_hidden"]),
    decoder_hidden: int | None = typer.Option(None, "--decoder-hidden", help=_HELP["decoder_hidden"]),
    attention_size: int | None = typer.Option(None, "--attention-size", help=_HELP["attention_size"]),
    dropout: float | None = typer.Option(None, "--dropout", help=_HELP["dropout"]),
    max_length: int | None = typer.Option(None, "--max-length", help=_HELP["max_length"]),
    early_stopping_patience: int | None = typer.Option(
        None, "--early-stopping-patience", help=_HELP["early_stopping_patience"]
    ),
    time_budget: float | None = typer.Option(None, "--time-budget", help=_HELP["time_budget"]),
    seed: int | None = typer.Option(None, "--seed", help=_HELP["seed"]),
    source_column: str | None = typer.Option(None, "--source-column", help=_HELP["source_column"]),
    target_column: str | None = typer.Option(None, "--target-column", help=_HELP["target_column"]),
    threads: int | None = typer.Option(None, "--threads", help=_HELP["threads"]),
    report_to: list[str] | None = typer.Option(None, "--report-to", help=_HELP["report_to"]),
    resume: bool = typer.Option(False, "--resume", help=_HELP["resume"]),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing run folder at --out"),
    as_json: bool = typer.Option(False, "--json", help="print the metrics as JSON"),
    verbose: Verbose = False,
) -> None:
    """Train a bidirectional-GRU encoder and a GRU decoder, with additive attention or none."""
    from textcls.seq2seq.api import train as train_run

    _setup_logging(verbose)
    given = {
        name: value
        for name, value in locals().items()
        if name in _HELP and value is not None and name not in ("attention", "tokens", "resume")
    }
    with _library_call():
        config = Seq2SeqConfig(attention=attention, tokens=tokens, resume=resume, **given)
        result = train_run(data, out, config=config, overwrite=overwrite)
    if as_json:
        _print_json({"run_dir": str(result.run_dir), **result.metrics})
        return
    training = result.metrics["training"]
    stdout.print(
        _scores_table(
            f"{result.run_dir}: dev, best epoch {training['best_epoch']} of {training['epochs_run']}",
            [("dev", result.metrics["dev"])],
        )
    )


@app.command()
def translate(
    run_dir: Path = typer.Argument(..., help="run folder written by `textcls seq2seq train`"),
    texts: list[str] = typer.Argument(..., help="texts to translate"),
    beam: int = typer.Option(1, "--beam", help="beam size (1: greedy decoding)"),
    plot: Path | None = typer.Option(
        None, "--plot", help="draw each alignment matrix: FILE.png for one text, FILE-<n>.png for several"
    ),
    as_json: bool = typer.Option(False, "--json", help="print JSON (with the attention matrices)"),
) -> None:
    """Translate texts; --plot draws the alignment matrix (source across, output down, grey levels for alpha)."""
    from textcls.seq2seq.api import load

    _setup_logging(False)
    with _library_call():
        run = load(run_dir)
        translations = run.translate(texts, beam=beam)
        figures = []
        if plot is not None:
            for number, translation in enumerate(translations, start=1):
                path = (
                    plot if len(translations) == 1 else plot.with_name(f"{plot.stem}-{number}{plot.suffix or '.png'}")
                )
                figures.append(str(run.plot(translation, path)))
    if as_json:
        _print_json(
            [
                {
                    "source": t.source,
                    "translation": t.text,
                    "source_tokens": t.source_tokens,
                    "output_tokens": t.output_tokens,
                    "attention": None if t.attention is None else t.attention.round(4).tolist(),
                    **({"figure": figures[i]} if figures else {}),
                }
                for i, t in enumerate(translations)
            ]
        )
        return
    for translation in translations:
        sys.stdout.write(translation.text + "\n")
    for figure in figures:
        stderr.print(f"alignment matrix: {figure}")


@app.command()
def evaluate(
    run_dir: Path = typer.Argument(..., help="run folder written by `textcls seq2seq train`"),
    split: str = typer.Option("test", "--split", help="which split of the run's data (or of --data)"),
    data: Path | None = typer.Option(None, "--data", help="another data folder or file of pairs"),
    by_length: bool = typer.Option(False, "--by-length", help="also score per bucket of source length"),
    bucket_width: int = typer.Option(20, "--bucket-width", help="words per length bucket"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Exact match, token accuracy and BLEU on a split, overall and by source length; writes RUN/eval_<split>.json."""
    from textcls.seq2seq.api import evaluate as evaluate_run

    _setup_logging(False)
    with _library_call():
        result = evaluate_run(run_dir, split, data, by_length, bucket_width)
    if as_json:
        _print_json(result)
        return
    rows = [("all", result["overall"])] + [(f"{b['bucket']} words", b) for b in result.get("by_length", [])]
    stdout.print(_scores_table(f"{run_dir} on {split}", rows))


@app.command()
def compare(
    run_dirs: list[Path] = typer.Argument(..., help="run folders to compare"),
    out: Path = typer.Option(..., "--out", help="folder for compare.json and length.png"),
    split: str = typer.Option("test", "--split", help="which split of each run's data (or of --data)"),
    data: Path | None = typer.Option(None, "--data", help="score every run on this data folder or file instead"),
    bucket_width: int = typer.Option(10, "--bucket-width", help="words per length bucket"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """BLEU and exact match against source length, one line per run: OUT/length.png and OUT/compare.json."""
    from textcls.seq2seq.api import compare as compare_runs

    _setup_logging(False)
    with _library_call():
        report = compare_runs(run_dirs, out, split, data, bucket_width)
    if as_json:
        _print_json(report)
        return
    table = Table(title=f"BLEU by source length ({split})")
    table.add_column("run")
    buckets = sorted(
        {b["bucket"] for row in report["runs"] for b in row["by_length"]}, key=lambda name: int(name.split("-")[0])
    )
    for column in ["all", *buckets]:
        table.add_column(column, justify="right")
    for row in report["runs"]:
        by_bucket = {b["bucket"]: b["bleu"] for b in row["by_length"]}
        table.add_row(
            f"{row['run']} ({row['attention']})",
            f"{row['overall']['bleu']:.1f}",
            *[f"{by_bucket[b]:.1f}" if b in by_bucket else "-" for b in buckets],
        )
    stdout.print(table)
    stderr.print(f"wrote {out / 'compare.json'} and {out / 'length.png'}")
