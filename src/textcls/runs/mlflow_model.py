"""The MLflow pyfunc model of a run folder (behind the track extra): it loads the run it carries as an
artefact with the fastest backend this machine runs (`--backend auto`) and answers like `textcls predict`.

Example:
    >>> model = mlflow.pyfunc.load_model("runs/agnews/mlflow")                 # doctest: +SKIP
    >>> model.predict(pd.DataFrame({"text": ["Stocks fell."]}))["label"][0]    # doctest: +SKIP
    'Business'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
from mlflow.models import ModelSignature
from mlflow.pyfunc import PythonModel
from mlflow.types import ColSpec, Schema

from textcls import machine
from textcls.inference.predictions import prediction_records

RUN_ARTIFACT = "run"  # the run folder inside the MLflow model
TEXT_COLUMN = "text"
EXAMPLE_TEXTS = ["Stocks fell sharply after the earnings report.", "The team won the final in extra time."]
# Libraries a loaded run may need beside textcls (the backend auto chooses among torch and ONNX Runtime).
RUNTIME_PACKAGES = ("torch", "transformers", "tokenizers", "scikit-learn", "numpy", "pandas")


class TextclsModel(PythonModel):
    """A textcls run as an MLflow pyfunc: a DataFrame with a `text` column (or a list of texts) in, one row
    per text out with the fields `textcls predict` prints ({label, score, probs}, or {labels, scores})."""

    def load_context(self, context: Any) -> None:
        # the run as `textcls.load` opens it (backend auto), from the layers below `runs.api`, which logs
        # this model during training and so may not be imported from here
        from textcls import runfolder
        from textcls.config import PredictConfig
        from textcls.data import multilabel
        from textcls.inference.auto import choose
        from textcls.inference.backends import check_classifier_run

        record = runfolder.read_record(context.artifacts[RUN_ARTIFACT])
        check_classifier_run(record.run_dir, record.info)
        self.predictor = choose(record.run_dir, record.info, PredictConfig()).predictor
        self.label_names = list(record.info["label_names"])
        self.thresholds = (
            multilabel.run_thresholds(record.info.get("thresholds"), None, self.label_names)
            if record.info.get("multi_label")
            else None
        )

    # model_input is left unannotated: mlflow reads a type hint there as the signature, which is given instead
    def predict(self, context, model_input, params=None):
        texts = _texts(model_input)
        probs = self.predictor.predict_proba(texts)
        return pd.DataFrame(prediction_records(probs, self.label_names, self.thresholds))


def _texts(model_input: Any) -> list[str]:
    if isinstance(model_input, pd.DataFrame):
        column = TEXT_COLUMN if TEXT_COLUMN in model_input.columns else model_input.columns[0]
        return [str(text) for text in model_input[column]]
    if isinstance(model_input, pd.Series):
        return [str(text) for text in model_input]
    if isinstance(model_input, str):
        return [model_input]
    return [str(text) for text in model_input]


def pip_requirements(info: dict[str, Any], run_dir: Path) -> list[str]:
    """textcls at this version, and what loading the run needs (ONNX Runtime where it was exported to ONNX)."""
    versions = machine.library_versions()
    packages = ["textcls", *RUNTIME_PACKAGES]
    if (run_dir / "onnx").is_dir():
        packages.append("onnxruntime")
    pinned = []
    for package in packages:
        version = versions.get(package) or _installed_version(package)
        # a local build tag (torch's "+cpu") names no release an index holds: pin the release
        pinned.append(f"{package}=={version.split('+')[0]}" if version else package)
    return pinned


def _installed_version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def model_arguments(run_dir: Path, info: dict[str, Any]) -> dict[str, Any]:
    """What `mlflow.pyfunc.save_model` / `log_model` take for the run in `run_dir`."""
    return {
        "python_model": TextclsModel(),
        "artifacts": {RUN_ARTIFACT: str(run_dir)},
        "signature": ModelSignature(inputs=Schema([ColSpec("string", TEXT_COLUMN)])),
        "input_example": pd.DataFrame({TEXT_COLUMN: EXAMPLE_TEXTS}),
        "pip_requirements": pip_requirements(info, run_dir),
    }
