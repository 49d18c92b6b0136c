"""The `textcls` command line: parse flags, build a config, call the library, print results.

Flags for `train` are generated from the fields of `DataConfig` and `TrainConfig`, so the help
text lives in one place. Defaults live in the dataclasses; `--config FILE.json` overrides them;
flags override both. Logs go to stderr; results go to stdout (a table, or JSON with `--json`).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

# Piped help (CI logs, `| less`, tests) gets 160 columns like the tables below, not rich's 80, in
# which long flag names are cut ("--max-train-sampl…"). typer reads this when it is imported.
if not sys.stdout.isatty():
    os.environ.setdefault("TERMINAL_WIDTH", "160")

import typer  # noqa: E402
from rich.markup import escape  # noqa: E402
from rich.table import Table  # noqa: E402

from textcls.cli.console import Verbose, fail, stdout
from textcls.cli.console import library_call as _library_call
from textcls.cli.console import setup_logging as _setup_logging
from textcls.cli.seq2seq import app as seq2seq_app
from textcls.config import (  # noqa: E402
    AuditConfig,
    DataConfig,
    DistillConfig,
    PredictConfig,
    PretrainConfig,
    RayPredictConfig,
    ServeConfig,
    TrainConfig,
    TuneConfig,
    column_names,
    field_names,
    flag_name,
    split_options,
)
from textcls.errors import ConfigError, TextclsError  # noqa: E402
from textcls.families import COMPARED_FAMILIES, FAMILIES  # noqa: E402

app = typer.Typer(
    name="textcls",
    help="Train, evaluate and run transformer text classifiers (AG News and any labelled data).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(seq2seq_app, name="seq2seq")
log = logging.getLogger("textcls")

# Commands that train across the processes torchrun / accelerate launch start; under a launcher every
# other one would run once per process, each writing the same files.
_DISTRIBUTED_COMMANDS = ("train", "pretrain")


@app.callback()
def _one_process_unless_distributed(context: typer.Context) -> None:
    try:
        processes = int(os.environ.get("WORLD_SIZE") or 1)
    except ValueError:
        processes = 1  # not a launcher's: a variable of the same name set for something else
    if processes > 1 and context.invoked_subcommand not in _DISTRIBUTED_COMMANDS:
        fail(
            TextclsError(
                f"textcls {context.invoked_subcommand} runs in one process, but {processes} were started (torchrun / "
                f"accelerate launch: WORLD_SIZE={processes}); run it without a launcher (only "
                f"{' and '.join(_DISTRIBUTED_COMMANDS)} train across processes)"
            )
        )


_TYPES = {"bool": bool, "int": int, "float": float, "str": str, "tuple[str, ...]": list[str]}


# evaluate/report read data the way the run read its own: their data options default to the run's.
_RUN_DATA_HELP = {
    "data": "Folder with dev/test files, one file to score, or a hub dataset id.",
}
_RUN_DEFAULT = " [default: the run's own]"


def _field_parameters(*classes: type, skip: tuple[str, ...] = (), run_data: bool = False) -> list[inspect.Parameter]:
    """typer options for every field of the config dataclasses, all defaulting to None (= not given).

    `run_data`: DataConfig's options as evaluate/report take them (defaults from the run folder)."""
    parameters, seen = [], set(skip)
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.name in seen:
                continue
            seen.add(field.name)
            base = field.type.replace(" | None", "")
            python_type = _TYPES[base]
            flag = flag_name(field.name)
            if python_type is bool:  # --no-x too: it overrides a --config file that turns x on
                flag = f"{flag}/--no-{flag[2:]}"
            default = field.default if field.default is not dataclasses.MISSING else None
            help_text = field.metadata["help"] + ("" if default is None else f" [default: {default}]")
            if run_data and cls is DataConfig:
                help_text = _RUN_DATA_HELP.get(field.name, field.metadata["help"].split("; default:")[0]) + _RUN_DEFAULT
            help_text = escape(help_text)  # rich would read "[default: 0.1]" as markup and drop it
            # "--x/--no-x" must stay one declaration: split in two, click reads both as "--x" (True)
            option = typer.Option(None, flag, help=help_text, show_default=False)
            parameters.append(
                inspect.Parameter(
                    field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=python_type | None
                )
            )
    return parameters


def _with_parameters(extra: list[inspect.Parameter]):
    """Give a `**options` command the generated parameters so typer shows and parses them."""

    def decorate(function):
        # eval_str: the stored signature is read as is, so its annotations (`Verbose`) must be objects, not strings
        signature = inspect.signature(function, eval_str=True)
        own = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
        function.__signature__ = signature.replace(parameters=own + extra)
        return function

    return decorate


def _read_config_file(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise TextclsError(
            f"could not read --config {path}: {error}; expected a JSON object of option names"
        ) from error
    if not isinstance(values, dict):
        raise TextclsError(f"--config {path}: expected a JSON object, found {type(values).__name__}")
    return {key.replace("-", "_"): value for key, value in values.items()}


def _given(config_file: Path | None, flags: dict[str, Any]) -> dict[str, Any]:
    """The options a user set: the --config file's, overridden by the flags given on the command line."""
    return {**_read_config_file(config_file), **{k: v for k, v in flags.items() if v is not None}}


def _take_predict_options(options: dict[str, Any]) -> dict[str, Any]:
    """Take PredictConfig's flags out of `options` (the rest are data options), keeping those given."""
    taken = {name: options.pop(name) for name in field_names(PredictConfig) if name in options}
    return {k: v for k, v in taken.items() if v is not None}


def _data_paths(data_options: dict[str, Any]) -> list[str]:
    """The local files and folders data options read (hub ids are not paths and name nothing here)."""
    named = (data_options.get(key) for key in ("data", "train_file", "dev_file", "test_file", "label_names_file"))
    return [value for value in named if isinstance(value, str) and value and Path(value).exists()]


def _metrics_table(title: str, metrics: dict[str, Any]) -> Table:
    table = Table(title=title)
    for column in ("label", "precision", "recall", "F1", "support"):
        table.add_column(column, justify="left" if column == "label" else "right")
    for name, row in metrics["per_class"].items():
        table.add_row(name, f"{row['precision']:.4f}", f"{row['recall']:.4f}", f"{row['f1']:.4f}", str(row["support"]))
    table.add_section()
    rows = [("accuracy", "accuracy"), ("macro F1", "macro_f1")]
    if metrics.get("multi_label"):
        rows = [
            ("micro F1", "micro_f1"),
            ("macro F1", "macro_f1"),
            ("subset accuracy", "subset_accuracy"),
            ("Hamming loss", "hamming_loss"),
        ]
    for name, key in rows:
        table.add_row(name, "", "", f"{metrics[key]:.4f}", str(metrics["num_samples"]))
    return table


def _confusion_table(metrics: dict[str, Any]) -> Table:
    """The confusion matrix, or for multi-label how often gold labels occur together."""
    multi_label = bool(metrics.get("multi_label"))
    title = (
        "gold labels together (texts carrying both)"
        if multi_label
        else "confusion matrix (rows: gold, columns: predicted)"
    )
    table = Table(title=title)
    table.add_column("")
    for name in metrics["label_names"]:
        table.add_column(name, justify="right")
    for name, row in zip(metrics["label_names"], metrics["co_occurrence" if multi_label else "confusion_matrix"]):
        table.add_row(name, *map(str, row))
    return table


def _epochs_table(history: list[dict[str, Any]]) -> Table:
    table = Table(title="dev metrics per epoch")
    for column in ("epoch", "train loss", "dev loss", "dev accuracy", "dev macro F1"):
        table.add_column(column, justify="right")

    def fmt(value: Any) -> str:
        return "-" if value is None else f"{value:.4f}"

    for row in history:
        table.add_row(
            f"{row['epoch']:.2f}",
            fmt(row["train_loss"]),
            fmt(row["dev_loss"]),
            fmt(row["dev_accuracy"]),
            fmt(row["dev_macro_f1"]),
        )
    return table


@app.command()
@_with_parameters(_field_parameters(DataConfig, TrainConfig))
def train(
    out: Path = typer.Option(Path("runs/latest"), "--out", help="Run folder to write."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run folder (only once the new one is complete)."
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON file of option values; flags override it."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of tables."),
    preset: str | None = typer.Option(
        None,
        "--preset",
        help="accurate (in-task masked-word pre-training, then a longer fine-tuning with layer-wise lr decay that "
        "keeps its best epoch on dev) or fast (sized to --time-budget, default 10 minutes for the whole command, "
        "from this machine's measured speed). Stages go to OUT/stages/, the final model is OUT; rerun to go on "
        "after a stop. Flags given override the preset's values.",
    ),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Fine-tune a classifier and write a run folder (textcls.json, model/, metrics.json, README.md model card)."""
    from textcls.runs.api import train as run_training

    _setup_logging(verbose)
    with _library_call():
        given = _given(config, options)
        if preset is not None:
            from textcls.runs.presets import train_preset

            result = train_preset(preset, out=out, overwrite=overwrite, **given)
        else:
            data_config, train_config = split_options(given)
            result = run_training(data_config=data_config, train_config=train_config, out=out, overwrite=overwrite)
    if result.classifier is None and preset is None:  # a non-main process of a distributed run
        return
    if as_json:
        print(json.dumps({"run_dir": str(result.run_dir), **result.metrics}, indent=2))
        return
    stdout.print(_epochs_table(result.metrics["train"]["epochs"]))
    stdout.print(_metrics_table(f"dev evaluation of {result.run_dir}", result.metrics["dev"]))
    summary = result.metrics["train"]
    stdout.print(
        f"trained in {summary['train_seconds']:.0f}s ({summary['train_samples_per_second'] or 0:.1f} samples/s, "
        f"{summary['precision']}); run folder: {result.run_dir}"
    )


@app.command()
@_with_parameters(
    _field_parameters(PredictConfig, DataConfig, skip=("max_train_samples", "dev_fraction"), run_data=True)
)
def evaluate(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    split: str = typer.Option("test", "--split", help="Split to score: test (falls back to dev) or dev."),
    output: Path | None = typer.Option(
        None, "--output", help="Also write the metrics JSON here ('-': print it to stdout instead of the tables)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of tables."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Score a run on a split: accuracy, macro-F1, per-class report, confusion matrix.

    Without data options, the data the run was trained on; new data (--data, --test) is read as the run's was
    (columns, label names, label base) and scored whole (the run's row limits are not carried over).
    """
    from textcls.files import check_output, write_json
    from textcls.runfolder import read_info
    from textcls.runs.api import data_config_for_run
    from textcls.runs.api import evaluate as run_evaluation

    _setup_logging(verbose)
    to_stdout = output is not None and str(output) == "-"
    with _library_call():
        predict_config = PredictConfig(**_take_predict_options(options))
        data_config = data_config_for_run(run_dir, options)
        if output is not None and not to_stdout:
            read = dataclasses.asdict(data_config) if data_config else read_info(run_dir).get("data_config", {})
            sources = [Path(value) for value in _data_paths(read)]
            check_output(output, sources, folders=[run_dir, *(path for path in sources if path.is_dir())])
        metrics = run_evaluation(run_dir, data_config, split=split, predict_config=predict_config)
        if output is not None and not to_stdout:
            write_json(output, metrics)
    if as_json or to_stdout:
        print(json.dumps(metrics, indent=2))
        return
    stdout.print(
        _metrics_table(f"{run_dir} on {metrics['split']} ({metrics['source']}), backend {metrics['backend']}", metrics)
    )
    stdout.print(_confusion_table(metrics))


@app.command()
@_with_parameters(_field_parameters(DataConfig, TrainConfig, skip=("family", "resume")))
def compare(
    families: str | None = typer.Option(
        None,
        "--families",
        help=escape(f"Comma-separated families, of {','.join(FAMILIES)} [default: {','.join(COMPARED_FAMILIES)}]."),
    ),
    out: Path = typer.Option(Path("runs/compare"), "--out", help="Folder for one run per family and the comparison."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Retrain families whose run folder already exists."),
    config: Path | None = typer.Option(None, "--config", help="JSON file of option values; flags override it."),
    as_json: bool = typer.Option(False, "--json", help="Print compare.json instead of a table."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Train several families on the same data; write compare.json, compare.md and compare.png."""
    from textcls.runs.compare import compare as run_compare
    from textcls.runs.compare import parse_families, split_compare_options

    _setup_logging(verbose)
    with _library_call():
        names = parse_families(families)
        data_config, train_options = split_compare_options(_given(config, options))
        result = run_compare(data_config, names, out, train_options, overwrite=overwrite)
    if as_json:
        print(json.dumps(result, indent=2))
        return
    table = Table(title=f"families compared on {result['dev_source']} ({result['dev_rows']} rows)")
    for column in ("family", "dev accuracy", "dev macro-F1", "train s", "infer texts/s", "parameters", "run folder"):
        table.add_column(column, justify="left" if column in ("family", "run folder") else "right")
    for row in result["families"]:
        table.add_row(
            row["family"],
            f"{row['dev_accuracy']:.4f}",
            f"{row['dev_macro_f1']:.4f}",
            f"{row['train_seconds']:.0f}",
            f"{row['inference_samples_per_second']:.0f}",
            f"{row['parameters']:,}",
            row["run_dir"],
        )
    stdout.print(table)
    written = [out / name for name in ("compare.json", "compare.md", "compare.png") if (out / name).is_file()]
    stdout.print("written: " + ", ".join(map(str, written)))


@app.command()
def explain(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    text: str = typer.Argument(..., help="The text to explain."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help=escape(
            "Folder for the figures, HTML and JSON [default: RUN/explain]; files of those names that an "
            "earlier explain did not write are refused, never replaced."
        ),
    ),
    layer: int = typer.Option(-1, "--layer", help="Layer whose attention is shown (-1: the last)."),
    head: int | None = typer.Option(None, "--head", help="Attention head (default: the mean over heads)."),
    words: bool = typer.Option(False, "--words", help="Merge word pieces back into words."),
    top: int = typer.Option(10, "--top", help="How many of the most weighted words to print."),
    as_json: bool = typer.Option(False, "--json", help="Print the explanation as JSON."),
    verbose: Verbose = False,
) -> None:
    """Show what the model attends to: attention maps, rollout and weighted words, as PNG, HTML and JSON."""
    from textcls.reporting.explanations import explain as explain_text
    from textcls.runs.api import load

    _setup_logging(verbose)
    with _library_call():
        # attention maps come from the torch model whatever backend predicts, so auto has nothing to choose
        explanation = explain_text(load(run_dir, PredictConfig(backend="torch")), text, layer=layer, head=head)
        written = explanation.save(out or run_dir / "explain")
    if as_json:
        print(json.dumps({**explanation.to_dict(), "files": {k: str(v) for k, v in written.items()}}, indent=2))
        return
    pairs = (
        explanation.words()
        if words
        else [(token, float(weight)) for token, weight in zip(explanation.tokens, explanation.token_weights)]
    )
    stdout.print(
        f"[bold]{explanation.label}[/] ({explanation.probs[explanation.label]:.4f}), family {explanation.family}"
    )
    table = Table(title="most weighted " + ("words" if words else "tokens"))
    table.add_column("token")
    table.add_column("weight", justify="right")
    for token, weight in sorted(pairs, key=lambda pair: -pair[1])[:top]:
        table.add_row(token, f"{weight:.4f}")
    stdout.print(table)
    stdout.print("written: " + ", ".join(str(path) for path in written.values()))


@app.command()
@_with_parameters(
    _field_parameters(PredictConfig, DataConfig, skip=("max_train_samples", "dev_fraction"), run_data=True)
)
def report(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    split: str = typer.Option("test", "--split", help="Split to report on: test (falls back to dev) or dev."),
    out: Path | None = typer.Option(
        None, "--out", help=escape("HTML file to write [default: RUN/report_<split>.html].")
    ),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """One self-contained HTML report: metrics, confusion matrix, curves, calibration, confident mistakes.

    Data options as for `textcls evaluate`.
    """
    from textcls.runfolder import report_path
    from textcls.runs.api import data_config_for_run, score, write_report

    _setup_logging(verbose)
    with _library_call():
        predict_config = PredictConfig(**_take_predict_options(options))
        data_config = data_config_for_run(run_dir, options)
        scored = score(run_dir, data_config, split=split, predict_config=predict_config)
        path = write_report(scored, out or report_path(run_dir, scored.split))
    stdout.print(f"report on {scored.split} ({len(scored.texts)} rows): {path}")


@app.command()
@_with_parameters(_field_parameters(PredictConfig, RayPredictConfig))
def predict(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    texts: list[str] | None = typer.Argument(None, help="Texts to classify (or use --input)."),
    input_arg: str | None = typer.Option(
        None,
        "--input",
        help="CSV, TSV, JSONL, Parquet or .txt (one text a line); with --on ray also a folder, a glob or a URI "
        "(s3://...).",
    ),
    output: Path | None = typer.Option(
        None, "--output", help="Write one JSON object per input line here (JSONL; '-': stdout)."
    ),
    text_column: list[str] | None = typer.Option(None, "--text-column", help="Text column(s) of --input."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON lines instead of a table."),
    on: str = typer.Option(
        "local",
        "--on",
        help="local: score in this process; ray: on a Ray cluster, --input PATH (file, folder or glob) to Parquet "
        "or JSONL shards in --output DIR (see docs/cluster.md).",
    ),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Classify texts: {"label", "score", "probs"} each, in input order ({"labels", "scores"} if multi-label)."""
    from textcls.data.loading import read_texts
    from textcls.data.texts import check_texts
    from textcls.files import check_output, write_text_atomic
    from textcls.inference.predictions import prediction_records
    from textcls.runs.api import load, run_text_columns

    _setup_logging(verbose)
    ray_options = {name: options.pop(name) for name in field_names(RayPredictConfig) if name in options}
    if on != "local":
        _predict_on_ray(on, run_dir, texts, input_arg, output, text_column, ray_options, options)
        return
    input_file = Path(input_arg) if input_arg is not None else None
    with _library_call():
        given = sorted(flag_name(name) for name, value in ray_options.items() if value is not None)
        if given:
            raise TextclsError(f"{', '.join(given)}: expected --on ray with them, found --on local; add --on ray")
        if bool(texts) == (input_file is not None):
            raise TextclsError(
                "expected texts as arguments or --input FILE (exactly one of them); found "
                + ("both" if texts else "neither")
            )
        to_stdout = output is not None and str(output) == "-"
        if output is not None and not to_stdout:
            check_output(output, [input_file] if input_file is not None else [], folders=[run_dir])
        run = load(run_dir, PredictConfig(**_take_predict_options(options)))
        inputs = check_texts(texts, "text argument {number}") if texts else []
        if input_file is not None:  # without --text-column, the columns the run was trained on where the file has them
            inputs = read_texts(
                input_file, column_names(text_column) if text_column else None, run_text_columns(run.info)
            )
        probs = run.predict_proba(inputs, progress=input_file is not None)
        records = prediction_records(probs, run.label_names, run.thresholds)
        if output is not None and not to_stdout:
            lines = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            write_text_atomic(output, lines)
            log.info("wrote %d predictions to %s", len(records), output)
            return
    if as_json or input_file is not None or to_stdout:
        for record in records:
            print(json.dumps(record, ensure_ascii=False))
        return
    table = Table()
    for column in ("text", "labels" if run.multi_label else "label", "score" + ("s" if run.multi_label else "")):
        table.add_column(column, justify="right" if column == "score" else "left")
    for text, record in zip(inputs, records):
        shown = text if len(text) <= 80 else text[:77] + "..."
        if run.multi_label:
            scores = ", ".join(f"{name} {record['scores'][name]:.4f}" for name in record["labels"])
            table.add_row(shown, ", ".join(record["labels"]) or "(none)", scores)
        else:
            table.add_row(shown, record["label"], f"{record['score']:.4f}")
    stdout.print(table)


@app.command()
def export(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    format: str = typer.Option(
        "onnx",
        "--format",
        help="Export format: onnx (fast inference), hf (transformers folder), mlflow (pyfunc model).",
    ),
    out: Path | None = typer.Option(
        None, "--out", help=escape("Folder for --format hf or mlflow [default: RUN/hf or RUN/mlflow].")
    ),
    int8: bool = typer.Option(
        False, "--int8", help="Also write an int8 copy (dynamic quantisation) for --backend onnx-int8."
    ),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    as_json: bool = typer.Option(False, "--json", help="Print export.json instead of a table."),
    verbose: Verbose = False,
) -> None:
    """Export a run: RUN/onnx/model.onnx (+ model.int8.onnx) checked against torch, a transformers folder
    (--format hf) or an MLflow model (--format mlflow)."""
    from textcls.inference.onnx import ONNX_DIR
    from textcls.inference.onnx import export as export_onnx
    from textcls.runs.export import check_format, export_run

    _setup_logging(verbose)
    with _library_call():
        check_format(format, out, int8)
        if format != "onnx":
            folder = export_run(run_dir, format, out)
        else:
            record = export_onnx(run_dir, format=format, int8=int8, opset=opset)
    if format != "onnx":
        if as_json:
            print(json.dumps({"format": format, "folder": str(folder)}, indent=2))
            return
        stdout.print(f"exported {run_dir} as {format}: {folder}")
        return
    if as_json:
        print(json.dumps(record, indent=2))
        return
    table = Table(title=f"exported {run_dir} (opset {record['opset']})")
    for column in ("backend", "file", "MB", "max |Δp| vs torch", "log-p correlation", "same label"):
        table.add_column(column, justify="left" if column in ("backend", "file") else "right")
    for backend, entry in record["files"].items():
        check = entry["check"]
        table.add_row(
            backend,
            str(run_dir / ONNX_DIR / entry["file"]),
            f"{entry['bytes'] / 1e6:.1f}",
            f"{check['max_abs_prob_diff']:.2g}",
            f"{check['log_prob_correlation']:.4f}",
            f"{check['label_agreement']:.0%} of {check['texts']}",
        )
    stdout.print(table)
    stdout.print(f'use it: textcls predict {run_dir} --backend {"onnx-int8" if int8 else "onnx"} "text"')


@app.command()
def push(
    run_dir: Path = typer.Argument(..., help="Run folder of a family that exports for transformers."),
    repo: str = typer.Option(..., "--repo", help="Hub repository id, e.g. user/agnews-classifier."),
    private: bool = typer.Option(False, "--private", help="Create the repository private."),
    token: str | None = typer.Option(
        None, "--token", envvar="HF_TOKEN", show_envvar=True, help="Hugging Face token with write access."
    ),
    verbose: Verbose = False,
) -> None:
    """Upload a run to the Hugging Face hub as a transformers model with its card (needs the network)."""
    from textcls.runs.export import push as push_run

    _setup_logging(verbose)
    with _library_call():
        url = push_run(run_dir, repo, private=private, token=token)
    stdout.print(f"pushed {run_dir} to {url}")


@app.command()
@_with_parameters(_field_parameters(ServeConfig, PredictConfig, skip=("token",)))
def serve(
    run_dir: Path = typer.Argument(..., help="Run folder written by `textcls train`."),
    token: str | None = typer.Option(
        None,
        "--token",
        envvar="TEXTCLS_TOKEN",
        show_envvar=True,
        help="Require 'Authorization: Bearer TOKEN' on /v1/* (default: no auth).",
    ),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Serve a run over HTTP: POST /v1/predict, POST /v1/explain, GET /v1/model, GET /healthz, a web page at /."""
    from textcls.serving import serve as run_server
    from textcls.serving import serving_predict_config

    _setup_logging(verbose)
    with _library_call():
        predict_config = serving_predict_config(_take_predict_options(options))
        serve_config = ServeConfig(token=token, **{k: v for k, v in options.items() if v is not None})
        run_server(run_dir, serve_config, predict_config)


@app.command()
@_with_parameters(_field_parameters(PretrainConfig))
def pretrain(
    out: Path = typer.Option(Path("runs/mlm"), "--out", help="Run folder to write."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run folder (only once the new one is complete)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of a table."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Continue an encoder's masked-word pre-training on unlabelled text; fine-tune it with `train --model RUN`."""
    from textcls.runs.pretraining import pretrain as run_pretraining

    _setup_logging(verbose)
    with _library_call():
        metrics = run_pretraining(PretrainConfig(**{k: v for k, v in options.items() if v is not None}), out, overwrite)
    if metrics is None:  # a non-main process of a distributed run
        return
    if as_json:
        print(json.dumps({"run_dir": str(out), **metrics}, indent=2))
        return
    table = Table(title=f"held-out text ({metrics['held_out']['texts']} texts), before and after")
    for column in ("", "masked-token accuracy", "masked loss", "pseudo-perplexity"):
        table.add_column(column, justify="left" if not column else "right")
    for name in ("before", "after"):
        scores = metrics["held_out"][name]
        cells = [scores["masked_accuracy"], scores["masked_loss"], scores.get("pseudo_perplexity")]
        table.add_row(
            name, *("-" if value is None else f"{value:.{digits}f}" for value, digits in zip(cells, (4, 4, 2)))
        )
    stdout.print(table)
    stdout.print(
        f"trained in {metrics['train']['train_seconds']:.0f}s; run folder: {out}; "
        f"fine-tune it: textcls train --model {out}"
    )


@app.command("fill-mask")
def fill_mask(
    model: str = typer.Argument(..., help="A `textcls pretrain` run, a model folder or hub id."),
    text: str = typer.Argument(..., help="Text with [MASK] where a word is missing."),
    top_k: int = typer.Option(5, "--top-k", help="How many words to show per [MASK]."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    verbose: Verbose = False,
) -> None:
    """The most probable words for each [MASK] in a text."""
    from textcls.runs.pretraining import fill_mask as fill

    _setup_logging(verbose)
    with _library_call():
        results = fill(model, text, top_k)
    if as_json:
        print(json.dumps([[{"token": token, "probability": p} for token, p in words] for words in results], indent=2))
        return
    for number, words in enumerate(results, start=1):
        table = Table(title=f"[MASK] {number} of {len(results)}")
        table.add_column("word")
        table.add_column("probability", justify="right")
        for token, probability in words:
            table.add_row(token, f"{probability:.4f}")
        stdout.print(table)


@app.command()
@_with_parameters(
    _field_parameters(TuneConfig)
    + _field_parameters(DataConfig, TrainConfig, skip=tuple(field_names(TuneConfig)) + ("resume",))
)
def tune(
    out: Path = typer.Option(Path("runs/tune"), "--out", help="Folder of the search (study.db, best/, trials)."),
    config: Path | None = typer.Option(
        None, "--config", help="JSON file of data and training options every trial shares; flags override it."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the trials and the best settings as JSON."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Search a family's training settings with Optuna (or Ray Tune with --on ray); training options given are
    fixed. Run again with the same --out to continue a stopped search."""
    from textcls.cluster.tune import tune as run_search

    _setup_logging(verbose)
    tune_options = {name: options.pop(name) for name in field_names(TuneConfig) if name in options}
    with _library_call():
        tune_config = TuneConfig(**{k: v for k, v in tune_options.items() if v is not None})
        result = run_search(out=out, tune_config=tune_config, **_given(config, options))
    if as_json:
        payload = {"best_params": result.best_params, "best_value": result.best_value, "trials": result.trials}
        print(json.dumps({"out": str(result.out), "metric": result.metric, **payload}, indent=2))
        return
    table = Table(title=f"trials of {result.out} (dev {result.metric})")
    columns = list(dict.fromkeys(key for row in result.trials for key in row))
    for column in columns:
        table.add_column(column.removeprefix("params_"), justify="left" if column == "state" else "right")
    for row in result.trials:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    stdout.print(table)
    if result.best_value is None:
        stdout.print("no trial completed")
        return
    stdout.print(
        f"best dev {result.metric} {result.best_value:.4f} with {result.best_params}; run folder: {result.best_run}; "
        f"train it again: textcls train --config {result.out / 'best_config.json'}"
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@app.command()
@_with_parameters(_field_parameters(DistillConfig, DataConfig, TrainConfig, skip=("teacher", "family", "model")))
def distill(
    teachers: list[str] = typer.Argument(
        ...,
        metavar="TEACHER",
        help="The teacher: a run folder with the data's labels. Several runs of one label set (an ensemble, e.g. "
        "one recipe with different seeds) teach through the mean of their probabilities; layers:N cuts the first.",
    ),
    out: Path = typer.Option(Path("runs/distilled"), "--out", help="Run folder to write."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace an existing run folder (only once the new one is complete)."
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON file of option values; flags override it."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON instead of tables."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Distil a trained run, or an ensemble of runs, into a smaller student (--student layers:N, a model folder or
    a family name) and write it as a run folder."""
    from textcls.runs.distill import distill as run_distillation

    _setup_logging(verbose)
    with _library_call():
        given = _given(config, options)
        own = {name: given.pop(name) for name in field_names(DistillConfig) if name in given}
        if "teacher" in own:
            raise ConfigError(
                f"teacher: the teacher runs are the command's arguments, found 'teacher' in --config {config}; "
                "remove it from the file and name the runs after `textcls distill`"
            )
        distill_config = DistillConfig(teacher=tuple(teachers), **own)
        data_config, train_config = split_options(given)
        result = run_distillation(
            distill_config=distill_config,
            data_config=data_config,
            train_config=train_config,
            out=out,
            overwrite=overwrite,
        )
    if as_json:
        print(json.dumps({"run_dir": str(result.run_dir), **result.metrics}, indent=2))
        return
    stdout.print(_epochs_table(result.metrics["train"]["epochs"]))
    stdout.print(_metrics_table(f"dev evaluation of {result.run_dir}", result.metrics["dev"]))
    stdout.print(
        f"distilled from {', '.join(teachers)} in {result.metrics['train']['train_seconds']:.0f}s; "
        f"run folder: {result.run_dir}"
    )


@app.command()
@_with_parameters(_field_parameters(AuditConfig, DataConfig, TrainConfig, skip=("data", "resume")))
def audit(
    target: str = typer.Argument(
        ..., help="Data folder or file (as `train --data` takes it), or a run folder: the rows it was trained on."
    ),
    out: Path = typer.Option(
        Path("audit"), "--out", help="Folder for issues.csv, issues.jsonl, audit.html and audit.json."
    ),
    fix: bool = typer.Option(
        False, "--fix", help="Also write a copy of the data with the suggested labels (never over the input)."
    ),
    fix_out: Path | None = typer.Option(
        None,
        "--fix-out",
        help="Where --fix writes the corrected copy [default: OUT/NAME.fixed.csv, or OUT/FOLDER.fixed for a folder].",
    ),
    config: Path | None = typer.Option(None, "--config", help="JSON file of option values; flags override it."),
    as_json: bool = typer.Option(False, "--json", help="Print audit.json instead of tables."),
    shown_rows: int = typer.Option(10, "--top", help="Issues printed in the table (the files list them all)."),
    verbose: Verbose = False,
    **options: Any,
) -> None:
    """Find likely label errors: out-of-sample probabilities by k-fold cross-validation, then confident
    learning (cleanlab); writes the ranked issues as CSV, JSONL and an HTML page."""
    from textcls.runs.audit import audit as run_audit

    _setup_logging(verbose)
    with _library_call():
        result = run_audit(target, out, fix=fix, fix_out=fix_out, **_given(config, options))
    summary = result.summary
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        return
    table = Table(title=f"label audit of {summary['source']} ({summary['method']}, {summary['folds']} folds)")
    for column in ("class", "rows", "issues (given)", "issues (suggested)"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for row in summary["per_class"]:
        table.add_row(escape(row["label"]), str(row["rows"]), str(row["issues"]), str(row["suggested"]))
    table.add_row("all", str(summary["rows"]), str(summary["issues"]), str(summary["issues"]))
    stdout.print(table)
    if result.issues and shown_rows > 0:
        top = Table(title=f"the {min(shown_rows, len(result.issues))} most likely label errors")
        for column in ("rank", "row", "given", "suggested", "quality", "text"):
            top.add_column(column, justify="right" if column in ("rank", "row", "quality") else "left")
        for issue in result.issues[:shown_rows]:
            text = issue["text"] if len(issue["text"]) <= 80 else issue["text"][:77] + "..."
            top.add_row(
                str(issue["rank"]),
                str(issue["row"]),
                escape(issue["given"]),
                escape(issue["suggested"]),
                f"{issue['label_quality']:.4f}",
                escape(text),
            )
        stdout.print(top)
    stdout.print(
        f"out-of-sample accuracy {summary['out_of_sample_accuracy']:.4f}; {summary['issues']} likely label errors "
        f"in {summary['rows']} rows ({summary['seconds']:.0f}s); written: "
        + ", ".join(summary["files"] + ([summary["fixed"]] if summary.get("fixed") else []))
    )


def _predict_on_ray(
    on: str,
    run_dir: Path,
    texts: list[str] | None,
    input_file: str | None,
    output: Path | None,
    text_column: list[str] | None,
    ray_options: dict[str, Any],
    options: dict[str, Any],
) -> None:
    """`textcls predict --on ray`: check the flags it needs, then hand the job to `textcls.cluster.batch`."""
    with _library_call():
        if on != "ray":
            raise TextclsError(f"--on: expected local or ray, found {on!r}; pass --on local or --on ray")
        if texts or input_file is None or output is None or str(output) == "-":
            raise TextclsError(
                "--on ray: expected --input PATH and --output DIR (texts as arguments and --output - are local "
                "only); found "
                + ("text arguments" if texts else "no --input" if input_file is None else "no --output DIR")
            )
        from textcls.cluster.batch import predict_on_ray

        ray_config = RayPredictConfig(**{k: v for k, v in ray_options.items() if v is not None})
        predict_config = PredictConfig(**_take_predict_options(options))
        result = predict_on_ray(
            run_dir,
            input_file,
            output,
            ray_config,
            predict_config,
            column_names(text_column) if text_column else None,
        )
    stdout.print(f"wrote {result.rows} predictions in {len(result.shards)} shards to {result.output_dir}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
