"""Fast inference: length-bucketed batches, ONNX export, int8 quantisation, the choice of backend.

Backends (all give probabilities in input order, over the run's `label_names`):
    torch      the family's own model, eager, under `torch.inference_mode`; every family has it
    onnx       the pretrained family exported to ONNX (fp32), run by ONNX Runtime
    onnx-int8  the same graph with int8 weights (dynamic quantisation), run by ONNX Runtime

What makes them fast (measured by `benchmarks/inference.py`): texts are sorted by token count and
cut into batches of similar length, so a batch is padded only to its own longest text, never to
`max_length`; ONNX Runtime then runs small batches well, and int8 matrix multiplies use the CPU's
VNNI units.

`textcls export RUN --format onnx [--int8]` writes `RUN/onnx/model.onnx` (and `model.int8.onnx`)
with `export.json`; loading an ONNX backend checks the graph against the torch model on a few
sample texts, and refuses a graph exported from other weights.

Example:
    >>> export_onnx("runs/agnews", int8=True)                                       # doctest: +SKIP
    >>> clf = textcls.load("runs/agnews", PredictConfig(backend="onnx-int8"))        # doctest: +SKIP
    >>> clf.predict(["Stocks fell sharply."])                                        # doctest: +SKIP
    ['Business']
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from textcls.config import BACKEND_BATCH_SIZE, PredictConfig
from textcls.errors import RunFolderError, TextclsError
from textcls.files import write_atomic, write_json
from textcls.models.base import Classifier

log = logging.getLogger("textcls.runtime")

ONNX_DIR = "onnx"
ONNX_FILES = {"onnx": "model.onnx", "onnx-int8": "model.int8.onnx"}
EXPORT_FILE = "export.json"
OPSET = 17
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
_EXTRA_HINT = "pip install 'textcls[onnx]'"


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> Iterator[np.ndarray]:
    """Row indices in batches of similar length (shortest first), so padding stays small.

    Example:
        >>> [b.tolist() for b in length_sorted_batches([5, 1, 3, 2], batch_size=2)]
        [[1, 3], [2, 0]]
    """
    order = np.argsort(np.asarray(lengths), kind="stable")
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]


def padded_batches(
    tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int, tensors: str = "np", progress: bool = False
) -> Iterator[tuple[np.ndarray, Any]]:
    """Tokenise `texts` once, then yield (row indices, batch padded to its longest text) in length order."""
    from tqdm.auto import tqdm

    texts = list(texts)
    if not texts:
        return
    encoded = tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]
    batches = list(length_sorted_batches([len(ids) for ids in encoded], batch_size))
    for rows in tqdm(batches, desc="predicting", unit="batch", disable=not progress, leave=False):
        yield rows, tokenizer.pad({"input_ids": [encoded[i] for i in rows]}, return_tensors=tensors)


def prediction_records(probs: np.ndarray, label_names: Sequence[str]) -> list[dict[str, Any]]:
    """One `{"label", "score", "probs"}` per row of `probs`: what `predict` prints and the server answers.

    Example:
        >>> prediction_records(np.array([[0.2, 0.8]]), ["a", "b"])[0]["label"]
        'b'
    """
    return [
        {
            "label": label_names[int(row.argmax())],
            "score": float(row.max()),
            "probs": {name: float(p) for name, p in zip(label_names, row)},
        }
        for row in probs
    ]


def set_torch_threads(threads: int | None) -> None:
    """Use `threads` CPU threads for torch ops (None: torch's default, one per core)."""
    if threads is not None:
        torch.set_num_threads(threads)


def _require_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as error:
        raise TextclsError(f"the onnx backends need ONNX Runtime, which is not installed; {_EXTRA_HINT}") from error
    return onnxruntime


def weights_digest(model_dir: Path) -> str:
    """sha256 of the model's weights file, tying an export to the weights it came from."""
    digest = hashlib.sha256()
    with (model_dir / "model.safetensors").open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class OnnxClassifier(Classifier):
    """A pretrained-family run served by ONNX Runtime; same labels and outputs as the torch model.

    `explain` needs attention maps, which the exported graph does not return, so it runs the torch
    model (loaded on first use).
    """

    family = "pretrained"

    def __init__(self, session: Any, tokenizer: Any, label_names: Sequence[str], max_length: int, backend: str, model_dir: Path):
        self.session = session
        self.tokenizer = tokenizer
        self.label_names = list(label_names)
        self.max_length = max_length
        self.backend = backend
        self.model_dir = model_dir
        self.input_names = [node.name for node in session.get_inputs()]
        self._torch: Classifier | None = None

    @classmethod
    def fit(cls, *args: Any, **kwargs: Any) -> Any:
        raise TextclsError("an ONNX model is for inference; train with --family pretrained, then `textcls export`")

    def save(self, model_dir: Path) -> None:
        raise TextclsError("an ONNX model is saved by `textcls export`; save the torch model instead")

    @classmethod
    def load(
        cls,
        model_dir: Path,
        max_length: int = 128,
        label_names: Sequence[str] | None = None,
        backend: str = "onnx",
        threads: int | None = None,
        spin: bool = True,
        **_: Any,
    ) -> OnnxClassifier:
        """Open `RUN/onnx/<file>` for `backend` beside `model_dir` (= RUN/model).

        `spin=False` stops idle ONNX Runtime threads from busy-waiting: a server answering one client
        (about 100 requests/s, 2 cores) used 27 of 38 core-seconds with spinning, 12 without.
        """
        from transformers import AutoTokenizer

        onnxruntime = _require_onnxruntime()
        run_dir = model_dir.parent
        path = run_dir / ONNX_DIR / ONNX_FILES[backend]
        flag = " --int8" if backend == "onnx-int8" else ""
        if not path.is_file():
            raise RunFolderError(
                f"backend {backend!r} needs {path}, which does not exist; run `textcls export {run_dir} --format onnx{flag}` first"
            )
        record = _read_export_record(run_dir)
        if record.get("weights_sha256") != weights_digest(model_dir):
            raise RunFolderError(
                f"{path} was exported from other weights than {model_dir}; "
                f"export again with `textcls export {run_dir} --format onnx{flag}`"
            )
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or 0  # 0: one per physical core
        options.inter_op_num_threads = 1
        if not spin:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        if label_names is None:
            label_names = record["label_names"]
        return cls(session, tokenizer, label_names, max_length, backend, model_dir)

    def predict_proba(
        self, texts: Sequence[str], batch_size: int = BACKEND_BATCH_SIZE["onnx"], progress: bool = False
    ) -> np.ndarray:
        """Class probabilities in input order, from length-sorted batches."""
        probs = np.zeros((len(texts), len(self.label_names)), dtype=np.float32)
        for rows, batch in padded_batches(self.tokenizer, texts, self.max_length, batch_size, "np", progress):
            feed = {"input_ids": batch["input_ids"].astype(np.int64), "attention_mask": batch["attention_mask"].astype(np.int64)}
            if "token_type_ids" in self.input_names:  # one segment: all zeros
                feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
            (logits,) = self.session.run(["logits"], feed)  # (batch, classes)
            probs[rows] = torch.softmax(torch.from_numpy(logits).float(), dim=-1).numpy()
        return probs

    def torch_classifier(self) -> Classifier:
        """The torch model of the same run (for attention maps and checks), loaded once."""
        if self._torch is None:
            from textcls.models.pretrained import PretrainedClassifier

            self._torch = PretrainedClassifier.load(self.model_dir, max_length=self.max_length, label_names=self.label_names)
        return self._torch

    def explain(self, text: str, layer: int = -1, head: int | None = None) -> Any:
        return self.torch_classifier().explain(text, layer=layer, head=head)

    def num_parameters(self) -> int:
        return self.torch_classifier().num_parameters()


def _read_export_record(run_dir: Path) -> dict[str, Any]:
    import json

    path = run_dir / ONNX_DIR / EXPORT_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise RunFolderError(f"{path} is missing; export again with `textcls export {run_dir} --format onnx`") from error
    except json.JSONDecodeError as error:
        raise RunFolderError(f"{path} is not valid JSON ({error}); export again with `textcls export {run_dir}`") from error


def _centred_log_probs(probs: np.ndarray) -> np.ndarray:
    logs = np.log(np.clip(probs, 1e-12, 1.0))
    return logs - logs.mean(axis=1, keepdims=True)


def check_against_torch(candidate: Classifier, reference: Classifier, backend: str, texts: Sequence[str] = SAMPLE_TEXTS) -> dict[str, Any]:
    """Compare `candidate`'s probabilities with the torch `reference` on `texts`; raise if they differ.

    Returns the largest |probability difference|, the correlation of centred log-probabilities and
    the share of texts with the same label.
    """
    expected = reference.predict_proba(texts)
    found = candidate.predict_proba(texts)
    max_diff = float(np.abs(expected - found).max())
    correlation = float(np.corrcoef(_centred_log_probs(expected).ravel(), _centred_log_probs(found).ravel())[0, 1])
    agreement = float((expected.argmax(axis=1) == found.argmax(axis=1)).mean())
    if backend == "onnx-int8":
        same, wanted, measured = correlation >= INT8_MIN_CORRELATION, f"a log-probability correlation >= {INT8_MIN_CORRELATION}", f"{correlation:.4f}"
    else:
        same, wanted, measured = max_diff <= FP32_MAX_PROB_DIFF, f"probabilities within {FP32_MAX_PROB_DIFF}", f"a difference of {max_diff:.4g}"
    if not same:  # NaN fails too
        raise TextclsError(
            f"the {backend} model does not match the torch model: expected {wanted}, found {measured} on "
            f"{len(texts)} sample texts; export again (`textcls export RUN --format onnx`) and report a bug if it persists"
        )
    log.info(
        "%s matches torch on %d sample texts: max |Δp| %.2g, log-prob correlation %.4f",
        backend, len(texts), max_diff, correlation,
    )
    return {"texts": len(texts), "max_abs_prob_diff": max_diff, "log_prob_correlation": correlation, "label_agreement": agreement}


def export_onnx(run_dir: str | Path, int8: bool = False, opset: int = OPSET) -> dict[str, Any]:
    """Export a pretrained-family run to `RUN/onnx/model.onnx` (and `model.int8.onnx`); returns export.json.

    Batch and sequence axes are dynamic. Each file is written to a temporary name, checked against
    the torch model on `SAMPLE_TEXTS`, and only then renamed into place.
    """
    from textcls.runs import MODEL_DIR, library_versions, read_run_info

    onnxruntime = _require_onnxruntime()
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    if info["family"] != "pretrained":
        raise TextclsError(
            f"ONNX export is for the pretrained family, found {info['family']!r} in {run_dir}; "
            "serve this run with --backend torch"
        )
    model_dir = run_dir / MODEL_DIR
    from textcls.models.pretrained import PretrainedClassifier

    reference = PretrainedClassifier.load(model_dir, max_length=info["max_length"], label_names=info["label_names"])
    model = reference.model.to("cpu").eval()
    from textcls.explain import _set_attn_implementation

    # Plain MatMul/Softmax attention exports to a graph ONNX Runtime fuses and quantises well.
    _set_attn_implementation(model, "eager")
    input_names = [name for name in ("input_ids", "attention_mask", "token_type_ids") if name in reference.tokenizer.model_input_names]
    sample = reference.tokenizer(list(SAMPLE_TEXTS[:2]), padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["logits"] = {0: "batch"}
    out_dir = run_dir / ONNX_DIR
    out_dir.mkdir(exist_ok=True)
    record: dict[str, Any] = {
        "format": "onnx",
        "opset": opset,
        "inputs": input_names,
        "label_names": info["label_names"],
        "max_length": info["max_length"],
        "weights_sha256": weights_digest(model_dir),
        "versions": {**library_versions(), "onnxruntime": onnxruntime.__version__},
        "files": {},
    }

    def export(temporary: Path) -> None:
        started = time.perf_counter()
        # The TorchScript exporter (dynamo=False): its graph ran 13% faster in ONNX Runtime than the
        # dynamo exporter's on this model, and it exports in 1 s instead of 5 s.
        # The tracer warns that the mask's padding test becomes a constant and that negative indices
        # would break aten::index; neither applies (the check below runs texts of other lengths).
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Exporting aten::index")
            torch.onnx.export(
                model, args, str(temporary), input_names=input_names, output_names=["logits"],
                dynamic_axes=axes, opset_version=opset, dynamo=False,
            )
        log.info("exported %s in %.1fs", temporary.name, time.perf_counter() - started)
        record["files"]["onnx"] = _checked(temporary, "onnx", reference, model_dir, info)

    write_atomic(out_dir / ONNX_FILES["onnx"], export)
    if int8:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        def quantise(temporary: Path) -> None:
            # Measured on the fine-tuned embedded model, 2,000 AG News dev texts: per-tensor int8
            # kept 98.8% of the fp32 labels (1,000 texts); per-channel scales with a 7-bit weight
            # range 99.6% (dev accuracy -0.4 pt); leaving also the first layer's FFN output
            # projection in fp32 99.7% (-0.1 pt) at the same speed (the last layer's instead: 99.6%).
            with _without_log_message("pre-processing before quantization"):  # advice for static quantisation
                quantize_dynamic(
                    out_dir / ONNX_FILES["onnx"], temporary, weight_type=QuantType.QInt8, per_channel=True,
                    reduce_range=True, nodes_to_exclude=_sensitive_nodes(out_dir / ONNX_FILES["onnx"]),
                )
            record["files"]["onnx-int8"] = _checked(temporary, "onnx-int8", reference, model_dir, info)

        write_atomic(out_dir / ONNX_FILES["onnx-int8"], quantise)
    else:
        (out_dir / ONNX_FILES["onnx-int8"]).unlink(missing_ok=True)  # never leave one from older weights
    write_json(out_dir / EXPORT_FILE, record)
    return record


# The first encoder layer's FFN down-projection, as the TorchScript exporter names it in BERT,
# RoBERTa and friends (".../layer.0/output/dense/MatMul") and in DistilBERT (".../layer.0/ffn/lin2/MatMul").
_SENSITIVE = re.compile(r"layer\.0/(output/dense|ffn/lin2)/MatMul$")


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


def _sensitive_nodes(path: Path) -> list[str]:
    """MatMul nodes kept in fp32 by the int8 export (see `export_onnx`)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return [node.name for node in graph.node if node.op_type == "MatMul" and _SENSITIVE.search(node.name)]


def _checked(path: Path, backend: str, reference: Classifier, model_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    onnxruntime = _require_onnxruntime()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    candidate = OnnxClassifier(session, reference.tokenizer, info["label_names"], info["max_length"], backend, model_dir)
    check = check_against_torch(candidate, reference, backend)
    return {"file": ONNX_FILES[backend], "bytes": path.stat().st_size, "check": check}


def load_for_backend(run_dir: Path, info: dict[str, Any], config: PredictConfig) -> Classifier:
    """The run's classifier on `config.backend`; ONNX graphs are checked against torch first."""
    from textcls.models.base import family_class
    from textcls.runs import MODEL_DIR

    family = family_class(info["family"])  # an unknown family is a RunFolderError
    missing = [key for key in ("label_names", "max_length") if key not in info]
    if missing:
        raise RunFolderError(f"{run_dir}/textcls.json lacks {missing}; the run folder is damaged, train again")
    max_length = config.max_length or info["max_length"]
    set_torch_threads(config.threads)
    if config.backend == "torch":
        return family.load(
            run_dir / MODEL_DIR, max_length=max_length, label_names=info["label_names"], precision=config.precision
        )
    if info["family"] != "pretrained":
        raise TextclsError(
            f"backend {config.backend!r} is for the pretrained family, found {info['family']!r} in {run_dir}; "
            "pass --backend torch"
        )
    classifier = OnnxClassifier.load(
        run_dir / MODEL_DIR, max_length=max_length, label_names=info["label_names"], backend=config.backend,
        threads=config.threads, spin=config.spin,
    )
    check_against_torch(classifier, classifier.torch_classifier(), config.backend)
    return classifier
