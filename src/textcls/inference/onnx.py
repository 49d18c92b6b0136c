"""The ONNX backends (behind the onnx extra): export a run to ONNX, quantise it to int8, run it
with ONNX Runtime, and check it against the torch model.

    onnx       a run exported to ONNX (fp32), run by ONNX Runtime
    onnx-int8  the same graph with int8 weights (dynamic quantisation), run by ONNX Runtime

Only families that declare the "export-onnx" capability can be exported (pretrained, and setfit: its body,
mean pooling, normalisation and head in one graph); each gives the torch module from token ids to logits.
Texts are sorted by token count and cut into batches of similar length (`textcls.training.batching`), so a
batch is padded only to its own longest text; ONNX Runtime then runs small batches well, and int8 matrix
multiplies use the CPU's VNNI units (`benchmarks/inference.py` measures it). Each core runs its own batches:
one ONNX Runtime thread per worker thread, all sharing one session, rather than one batch at a time split
over the cores, whose small operators (layer norms, softmax, transposes: half the int8 graph's
time) paid for the threads' synchronisation.

`textcls export RUN --format onnx [--int8]` writes `RUN/onnx/model.onnx` (and `model.int8.onnx`)
with `export.json`; loading an ONNX backend checks the graph against the torch model on a few
sample texts, and refuses a graph exported from other weights.

Example:
    >>> export_onnx("runs/agnews", int8=True)                                       # doctest: +SKIP
    >>> run = textcls.load("runs/agnews", PredictConfig(backend="onnx-int8"))        # doctest: +SKIP
    >>> run.predict(["Stocks fell sharply."])                                        # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
import warnings
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch

from textcls import machine, runfolder
from textcls.config import BACKEND_BATCH_SIZE, PredictConfig
from textcls.data.multilabel import label_decisions
from textcls.data.windows import Windowing
from textcls.errors import ConfigError, RunFolderError, TextclsError
from textcls.files import folder_lock, replace_folder, storage_error, work_folder, write_atomic, write_json
from textcls.models.base import (
    EXPLAIN,
    EXPORT_ONNX,
    PREDICT,
    OnnxExportable,
    Predictor,
    families_that,
    family_class,
)
from textcls.models.pretrained import PretrainedClassifier
from textcls.models.setfit import HEAD_FILE
from textcls.reporting.explanations import Explanation
from textcls.training.objectives import probabilities
from textcls.training.prediction import pooled_logits
from textcls.training.tokens import pad_id

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)

ONNX_DIR = "onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
EXPORT_FILE = "export.json"
EXPORT_FORMATS = ("onnx",)
WEIGHTS_FILE = "model.safetensors"
# The weights an export is tied to, where the model folder has them: the transformers model's, and setfit's head.
WEIGHTS_FILES = (WEIGHTS_FILE, HEAD_FILE)
OPSET = 17
# The TorchScript exporter (dynamo=False) writes opsets up to 20; MiniLM exports at 10-20 and fails at 9 and
# below (a Slice with dynamic inputs).
MIN_OPSET, MAX_OPSET = 10, 20
# How close an exported graph must stay to the torch model on the sample texts. fp32 graphs differ
# by rounding only (measured ~1e-6 in probability). int8 weights move probabilities by up to ~0.2
# on uncertain texts, so they are held to the shape of the answers instead: the correlation of
# centred log-probabilities (measured 0.9987 on AG News; a graph with permuted labels scores < 0.1).
FP32_MAX_PROB_DIFF = 1e-3
INT8_MIN_CORRELATION = 0.95
# Load-time check inputs: short and long, punctuation, digits, non-ASCII, a word the vocab splits.
SAMPLE_TEXTS = (
    "Stocks fell sharply after the quarterly report.",
    "The striker scored twice as the home side won the cup final 3-1.",
    "Researchers unveiled a faster chip for laptops and phones.",
    "Ministers met in Geneva to discuss the ceasefire; talks resume Monday.",
    "ok",
    "Café owners in São Paulo protest new taxes — prices rise 12% overnight!",
    " ".join(["Oil prices climbed again on Tuesday as supply worries grew."] * 20),
    "antidisestablishmentarianism",
)
# ONNX Runtime graph fusions left out: without its fused SkipLayerNormalization kernel (a plain Add +
# LayerNormalization instead) the int8 graph runs faster at the same dev labels, and the fp32 graph as
# fast (measured by `benchmarks/onnx_variants.py`).
# An unknown name is ignored by ONNX Runtime, so a later release that renames the fusion loses only speed.
DISABLED_FUSIONS = ["SkipLayerNormFusion"]
_EXTRA_HINT = "pip install 'textcls[onnx]'"


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise TextclsError(f"the onnx backends need ONNX Runtime, which is not installed; {_EXTRA_HINT}") from error
    return onnxruntime


def weights_digest(model_dir: Path, recorded: dict[str, Any] | None = None) -> str:
    """sha256 tying an export to the weights it came from: the weights file's own, or where the model folder holds
    several `WEIGHTS_FILES` (setfit's body and head), that of their names and digests together. A file's digest
    is taken from `recorded` (the run's `model_files`, checked already) where it is there, else read."""
    digests = []
    for name in WEIGHTS_FILES:
        path = model_dir / name
        if name == WEIGHTS_FILE or path.is_file():
            known = ((recorded or {}).get(name) or {}).get("sha256")
            digests.append((name, known or runfolder.file_digest(path)))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{name} {digest}\n" for name, digest in digests).encode()).hexdigest()


class OnnxClassifier(Predictor):
    """An exported run served by ONNX Runtime; same labels and outputs as the torch model. Predict-only.

    `explain` needs attention maps, which the exported graph does not return, so it runs the torch
    model (loaded on first use). The graph returns logits; a softmax over them, or for a multi-label run
    each label's sigmoid, is applied here as the torch model does. `torch_family` is the run's family.
    """

    capabilities = frozenset({PREDICT, EXPLAIN})
    max_length: int  # a token-window model always reads at a length

    def __init__(
        self,
        session: Any,  # an onnxruntime.InferenceSession (onnxruntime ships no type information)
        tokenizer: PreTrainedTokenizerBase,
        label_names: Sequence[str],
        max_length: int,
        backend: str,
        model_dir: Path,
        windowing: Windowing | None = None,
        multi_label: bool = False,
        workers: int = 1,
        torch_family: str = PretrainedClassifier.family,
    ):
        self.session = session
        self.torch_family = torch_family
        self.multi_label = multi_label
        self.windowing = windowing or Windowing(max_length)  # the run's --long-text, pooled here as in torch
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.backend = backend
        self.model_dir = model_dir
        self.input_names = [node.name for node in session.get_inputs()]
        self.workers = workers
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="textcls-onnx") if workers > 1 else None
        self._torch: Predictor | None = None

    @property
    def family(self) -> str:  # type: ignore[override]
        """The run's family: the one whose torch model the graph was exported from."""
        return self.torch_family

    @property
    def concurrent_calls(self) -> int:  # type: ignore[override]
        """Two with worker threads: the next call's batches fill the cores a call's last batch leaves idle."""
        return 2 if self.workers > 1 else 1

    @classmethod
    def load(
        cls,
        model_dir: Path,
        max_length: int = 128,
        label_names: Sequence[str] | None = None,
        backend: str = "onnx",
        threads: int | None = None,
        spin: bool = True,
        weights_sha256: str | None = None,
        windowing: Windowing | None = None,
        multi_label: bool | None = None,
        torch_family: str = PretrainedClassifier.family,
    ) -> OnnxClassifier:
        """Open `RUN/onnx/<file>` for `backend` beside `model_dir` (= RUN/model), exported from a run of
        `torch_family`.

        `threads` (default: one per core, as torch counts them) worker threads each run whole batches
        on one ONNX Runtime thread, faster than one batch at a time on as many ONNX Runtime threads
        (measured by `benchmarks/onnx_variants.py`). With one ONNX Runtime thread per run there is no
        thread pool to busy-wait, so `spin=False` (recorded in the session's options) changes nothing
        measurable.
        `weights_sha256` is the torch weights' digest where the caller has checked it already.
        """
        from transformers import AutoTokenizer

        onnxruntime = _require_onnxruntime()
        run_dir = model_dir.parent
        path = run_dir / ONNX_DIR / ONNX_FILES[backend]
        flag = " --int8" if backend == "onnx-int8" else ""
        if not path.is_file():
            raise RunFolderError(
                f"backend {backend!r} needs {path}, which does not exist; "
                f"run `textcls export {run_dir} --format onnx{flag}` first"
            )
        record = _read_export_record(run_dir)
        fix = f"export again with `textcls export {run_dir} --format onnx{flag}`"
        if record.get("weights_sha256") != (weights_sha256 or weights_digest(model_dir)):
            raise RunFolderError(f"{path} was exported from other weights than {model_dir}; {fix}")
        recorded = (record.get("files") or {}).get(backend) or {}
        if "sha256" in recorded and runfolder.file_digest(path) != recorded["sha256"]:
            raise runfolder.damaged(path, "its sha256 differs from the one recorded at export", fix)
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1  # the calling worker thread runs the graph: no thread pool
        options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            session = onnxruntime.InferenceSession(
                str(path), options, providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_FUSIONS
            )
        except Exception as error:  # ONNX Runtime's own error types (InvalidProtobuf, Fail, ...)
            raise runfolder.damaged(path, str(error).splitlines()[0][:200], fix) from error
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if label_names is None:
            label_names = record["label_names"]
        if multi_label is None:
            multi_label = bool(record.get("multi_label", False))
        workers = threads or torch.get_num_threads()
        return cls(
            session,
            tokenizer,
            label_names,
            max_length,
            backend,
            model_dir,
            windowing,
            multi_label,
            workers,
            torch_family,
        )

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = BACKEND_BATCH_SIZE["onnx"], progress: bool = False
    ) -> np.ndarray:
        """Class probabilities in input order, from length-sorted batches; long texts read as the run's
        `--long-text` says (chunk: the graph scores each window, the windows' logits are pooled here)."""
        if not len(texts):
            return np.zeros((0, len(self.label_names)), dtype=np.float32)

        def forward(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
            if "token_type_ids" in self.input_names:  # one segment: all zeros
                feed["token_type_ids"] = np.zeros_like(input_ids)
            (logits,) = self.session.run(["logits"], feed)  # (batch, classes)
            return logits.astype(np.float32)

        logits = pooled_logits(
            self.tokenizer,
            texts,
            self.windowing,
            forward,
            pad_id=pad_id(self.tokenizer),
            batch_size=batch_size,
            pool=self._pool,
            workers=self.workers,
            progress=progress,
        )
        return probabilities(logits, self.multi_label)

    def torch_classifier(self) -> Predictor:
        """The torch model of the same run (for attention maps and checks), loaded once."""
        if self._torch is None:
            self._torch = family_class(self.torch_family).load(
                self.model_dir, max_length=self.max_length, label_names=self.label_names, windowing=self.windowing
            )
        return self._torch

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Explanation:
        return self.torch_classifier().explain(text, layer=layer, head=head)

    def num_parameters(self) -> int:
        return self.torch_classifier().num_parameters()


def _read_export_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / ONNX_DIR / EXPORT_FILE
    again = f"export again with `textcls export {run_dir} --format onnx` (add --int8 for the int8 graph)"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunFolderError(f"{path} is missing; {again}") from error
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path} is not valid JSON ({error}); {again}") from error
    if not isinstance(record, dict):
        raise RunFolderError(f"{path}: expected a JSON object, found {type(record).__name__}; {again}")
    return record


def _centred_log_probs(probs: np.ndarray) -> np.ndarray:
    logs = np.log(np.clip(probs, 1e-12, 1.0))
    return logs - logs.mean(axis=1, keepdims=True)


def export_is_current(run_dir: Path, info: dict[str, Any]) -> bool:
    """True when `RUN/onnx` holds both graphs, exported from the run's present weights."""
    folder = Path(run_dir) / ONNX_DIR
    if not all((folder / name).is_file() for name in ONNX_FILES.values()):
        return False
    try:
        record = _read_export_record(Path(run_dir))
    except RunFolderError:
        return False
    return record.get("weights_sha256") == weights_digest(runfolder.model_dir(Path(run_dir)), info.get("model_files"))


def check_against_torch(
    candidate: Predictor, reference: Predictor, backend: str, texts: Sequence[str] = SAMPLE_TEXTS
) -> dict[str, Any]:
    """Compare `candidate`'s probabilities with the torch `reference` on `texts`; raise if they differ.

    Returns the largest |probability difference|, the correlation of centred log-probabilities and
    the share of texts with the same label.
    """
    expected = reference.predict_proba(texts)
    found = candidate.predict_proba(texts)
    max_diff = float(np.abs(expected - found).max())
    correlation = float(np.corrcoef(_centred_log_probs(expected).ravel(), _centred_log_probs(found).ravel())[0, 1])
    same = label_decisions(expected, reference.multi_label) == label_decisions(found, reference.multi_label)
    agreement = float(same.all(axis=1).mean())
    if backend == "onnx-int8":
        same, wanted, measured = (
            correlation >= INT8_MIN_CORRELATION,
            f"a log-probability correlation >= {INT8_MIN_CORRELATION}",
            f"{correlation:.4f}",
        )
    else:
        same, wanted, measured = (
            max_diff <= FP32_MAX_PROB_DIFF,
            f"probabilities within {FP32_MAX_PROB_DIFF}",
            f"a difference of {max_diff:.4g}",
        )
    if not same:  # NaN fails too
        raise TextclsError(
            f"the {backend} model does not match the torch model: expected {wanted}, found {measured} on "
            f"{len(texts)} sample texts; export again (`textcls export RUN --format onnx`) "
            "and report a bug if it persists"
        )
    log.info(
        "%s matches torch on %d sample texts: max |Δp| %.2g, log-prob correlation %.4f",
        backend,
        len(texts),
        max_diff,
        correlation,
    )
    return {
        "texts": len(texts),
        "max_abs_prob_diff": max_diff,
        "log_prob_correlation": correlation,
        "label_agreement": agreement,
    }


def export(run_dir: str | Path, format: str = "onnx", int8: bool = False, opset: int = OPSET) -> dict[str, Any]:
    """Export a run for fast inference in `format` (only "onnx" so far); returns the export record."""
    if format not in EXPORT_FORMATS:
        raise TextclsError(f"--format: expected {' or '.join(EXPORT_FORMATS)}, found {format!r}")
    return export_onnx(run_dir, int8=int8, opset=opset)


def export_onnx(run_dir: str | Path, int8: bool = False, opset: int = OPSET) -> dict[str, Any]:
    """Export a run to `RUN/onnx/model.onnx` (and `model.int8.onnx`); returns export.json.

    The graph is the family's torch module from token ids to logits (`OnnxExportable.onnx_graph`). Batch and
    sequence axes are dynamic. Each graph is checked against the torch model on `SAMPLE_TEXTS`;
    the graphs and export.json are written into a `RUN/.onnx.*.partial/` folder, which replaces `RUN/onnx/` whole
    only then, so a failed or killed export leaves the previous one usable.
    """
    onnxruntime = _require_onnxruntime()
    if not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(
            f"opset: expected an ONNX opset in [{MIN_OPSET}, {MAX_OPSET}], found {opset!r}; pass --opset {OPSET}"
        )
    run_dir = Path(run_dir)
    info = runfolder.read_info(run_dir)
    runfolder.check_loadable(run_dir, info)
    check_exportable(run_dir, info["family"])
    runfolder.verify_model_files(run_dir, info)  # damaged weights are refused before a good export is replaced
    model_dir = runfolder.model_dir(run_dir)
    reference = family_class(info["family"]).load(
        model_dir, max_length=info["max_length"], label_names=info["label_names"], windowing=Windowing.of_run(info)
    )
    exportable = cast(OnnxExportable, reference)  # its class declares EXPORT_ONNX
    model, input_names = exportable.onnx_graph()
    sample = exportable.tokenizer(list(SAMPLE_TEXTS[:2]), padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in input_names)
    axes: dict[str, dict[int, str]] = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["logits"] = {0: "batch"}
    record: dict[str, Any] = {
        "format": "onnx",
        "opset": opset,
        "inputs": input_names,
        "label_names": info["label_names"],
        "max_length": info["max_length"],
        # the graph returns logits; the backend applies a sigmoid per label to them, not a softmax
        "multi_label": reference.multi_label,
        "family": info["family"],
        "weights_sha256": weights_digest(model_dir),
        "versions": {**machine.library_versions(), "onnxruntime": onnxruntime.__version__},
        "files": {},
    }

    def export(temporary: Path) -> None:
        started = time.perf_counter()
        # The TorchScript exporter (dynamo=False): its graph runs faster in ONNX Runtime than the dynamo
        # exporter's on this model, and it exports several times faster.
        # The tracer warns that the mask's padding test becomes a constant and that negative indices
        # would break aten::index; neither applies (the check below runs texts of other lengths).
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index")
            torch.onnx.export(
                model,
                args,
                str(temporary),
                input_names=input_names,
                output_names=["logits"],
                dynamic_axes=axes,
                opset_version=opset,
                dynamo=False,
            )
        log.info("exported %s in %.1fs", temporary.name, time.perf_counter() - started)
        record["files"]["onnx"] = _checked(temporary, "onnx", reference, model_dir, info)

    def quantise(temporary: Path) -> None:
        quantise_int8(out_dir / ONNX_FILES["onnx"], temporary)
        record["files"]["onnx-int8"] = _checked(temporary, "onnx-int8", reference, model_dir, info)

    # the graphs and export.json are one set: written into a folder of this export's own (two processes
    # may export one run at once: `--backend auto` exports on first use), which replaces the old one
    # whole, so a failed or killed export leaves the previous export as it was
    with work_folder(run_dir, ONNX_DIR) as out_dir:
        write_atomic(out_dir / ONNX_FILES["onnx"], export)
        if int8:
            write_atomic(out_dir / ONNX_FILES["onnx-int8"], quantise)
        write_json(out_dir / EXPORT_FILE, record)
        try:
            with folder_lock(run_dir):  # two exports finishing at once swap their folders in turn
                replace_folder(out_dir, run_dir / ONNX_DIR)
        except OSError as error:
            failure = storage_error(error, run_dir / ONNX_DIR)
            if failure is None:
                raise
            raise failure from error
    return record


def quantise_int8(source: Path, target: Path) -> None:
    """The int8 graph of `export --int8`: ONNX Runtime's dynamic quantisation of every MatMul's weights.

    Per-channel scales with a 7-bit weight range keep more of the fp32 labels than per-tensor int8. Every
    MatMul is quantised: keeping the first layer's FFN output projection in fp32 keeps a few more labels
    at equal dev accuracy, but that one fp32 MatMul costs a large share of a single-threaded run (measured
    on AG News dev texts by `benchmarks/onnx_variants.py`).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _without_log_message("pre-processing before quantization"):  # advice for static quantisation
        quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)


@contextlib.contextmanager
def _without_log_message(fragment: str) -> Iterator[None]:
    """Drop root-logger records containing `fragment` for the duration (a library's stray advice)."""

    class Drop(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return fragment not in record.getMessage()

    drop = Drop()
    logging.getLogger().addFilter(drop)
    try:
        yield
    finally:
        logging.getLogger().removeFilter(drop)


def _checked(path: Path, backend: str, reference: Predictor, model_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    onnxruntime = _require_onnxruntime()
    session = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"], disabled_optimizers=DISABLED_FUSIONS
    )
    candidate = OnnxClassifier(
        session,
        cast(OnnxExportable, reference).tokenizer,
        info["label_names"],
        info["max_length"],
        backend,
        model_dir,
        Windowing.of_run(info),
        reference.multi_label,
        torch_family=info["family"],
    )
    check = check_against_torch(candidate, reference, backend)
    return {
        "file": ONNX_FILES[backend],
        "bytes": path.stat().st_size,
        "sha256": runfolder.file_digest(path),
        "check": check,
    }


def check_exportable(run_dir: Path, family: str) -> None:
    """Raise unless runs of `family` can be exported to ONNX (its class declares "export-onnx")."""
    if EXPORT_ONNX not in family_class(family).capabilities:
        exportable = " and ".join(families_that(EXPORT_ONNX))
        raise TextclsError(
            f"ONNX export is for the {exportable} families, found {family!r} in {run_dir}; its own model is the fast "
            "one: predict and serve it with --backend torch (or auto)"
        )


def load_onnx(run_dir: Path, info: dict[str, Any], config: PredictConfig) -> OnnxClassifier:
    """The run's exported graph on `config.backend` (onnx or onnx-int8), checked against torch first."""
    check_exportable(run_dir, info["family"])
    model_dir = runfolder.model_dir(run_dir)
    checked = weights_digest(model_dir, info.get("model_files"))  # the recorded digests, verified by the loader
    max_length = config.max_length or info["max_length"]  # resolved by `backends.load_predictor`
    classifier = OnnxClassifier.load(
        model_dir,
        max_length=max_length,
        label_names=info["label_names"],
        backend=config.backend,
        threads=config.threads,
        spin=config.spin,
        weights_sha256=checked,
        windowing=Windowing.of_run(info, max_length),
        multi_label=bool(info.get("multi_label", False)),
        torch_family=info["family"],
    )
    check_against_torch(classifier, classifier.torch_classifier(), config.backend)
    return classifier
