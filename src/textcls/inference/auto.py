"""`--backend auto`: the fastest backend this machine runs that agrees with torch fp32, measured once
and remembered per machine in the run folder.

The candidates are the run's family's own torch model in fp32 (the reference) and, where they
apply, in bf16 autocast (CPUs with bf16 units, GPUs), ONNX Runtime fp32 and ONNX Runtime int8
(families that export to ONNX, when the onnx extra is installed and no GPU is at hand; a missing
export is made on first use, atomically and checked against torch as `textcls export` does). Each
is loaded, warmed up and timed over the same sample texts (up to `SAMPLE_TEXTS` rows of the run's
own dev data where it can still be read, else built-in texts). A candidate whose labels differ
from torch fp32's on more than 1% of the texts is never chosen, however fast.

The outcome is cached in `RUN/backends.json` under a key of what decides speed: the processor and
its matrix-unit flags, the thread count, the GPU, the library versions and the weights. Another
machine (or an upgraded library) finds no entry of its own and measures again; a damaged cache
file is measured over, never a crash; a run folder it cannot write to is measured each time.

Example:
    >>> choice = choose(Path("runs/agnews"), info, PredictConfig())     # doctest: +SKIP
    >>> choice.name, choice.predictor.predict(["Stocks fell sharply."])  # doctest: +SKIP
    ('onnx-int8', ['Business'])
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from textcls import runfolder
from textcls.config import AUTO_BACKEND, DataConfig, PredictConfig, from_dict
from textcls.data.multilabel import label_decisions
from textcls.errors import StorageError, TextclsError
from textcls.files import write_json
from textcls.inference.backends import load_predictor
from textcls.machine import cpu_flags, cpu_model, library_versions
from textcls.models.base import EXPORT_ONNX, Predictor, family_class

log = logging.getLogger(__name__)

CACHE_FORMAT = 1
SAMPLE_TEXTS = 256  # dev rows timed per candidate: a second or two for torch fp32 on a small CPU, less for the rest
WARMUP_TEXTS = 16
MIN_AGREEMENT = 0.99  # share of sample labels a candidate must share with torch fp32
# Flags that decide which kernels run: oneDNN and ONNX Runtime pick AMX, VNNI or AVX-512 paths by them.
MATRIX_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
# Texts for machines where the run's dev data is gone: headlines of every class and length.
BUILT_IN_TEXTS = (
    "Stocks fell sharply after the quarterly report missed forecasts.",
    "The striker scored twice as the home side won the cup final 3-1.",
    "Researchers unveiled a faster chip for laptops and phones.",
    "Ministers met in Geneva to discuss the ceasefire; talks resume Monday.",
    "Oil prices climbed again on Tuesday as supply worries grew in the Gulf.",
    "The coach was fired after a fifth straight defeat left the club bottom of the league.",
    "A software update fixes a security hole that let attackers read users' e-mail.",
    "Rebels seized the northern town overnight, the army said, as thousands fled across the border.",
    "The central bank kept interest rates unchanged and signalled no cut before spring.",
    "NASA delayed the launch of its new space telescope by a week after a sensor fault.",
    "She won her third grand slam title in straight sets on Saturday.",
    "Voters head to the polls on Sunday in an election seen as a test for the president.",
)


@dataclass(frozen=True)
class Candidate:
    """One way to run the model: a backend and, for torch, a precision."""

    backend: str
    precision: str = "fp32"

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}" if self.backend == "torch" else self.backend

    def config(self, given: PredictConfig) -> PredictConfig:
        """`given` with this candidate's backend and precision; its batch size unless one was given."""
        return dataclasses.replace(given, backend=self.backend, precision=self.precision, batch_size=given.batch_size)


REFERENCE = Candidate("torch", "fp32")


@dataclass
class Choice:
    """What auto picked: the loaded predictor, the resolved config, and why."""

    candidate: Candidate
    config: PredictConfig
    predictor: Predictor
    measured: list[dict[str, Any]] = field(default_factory=list)
    cached: bool = False

    @property
    def name(self) -> str:
        return self.candidate.name

    def describe(self) -> dict[str, Any]:
        """JSON-able: the choice, whether it came from the cache, and every candidate's figures."""
        return {
            "chosen": self.name,
            "backend": self.config.backend,
            "precision": self.config.precision,
            "cached": self.cached,
            "candidates": self.measured,
        }


def choose(
    run_dir: Path,
    info: dict[str, Any],
    given: PredictConfig,
    measure: Callable[..., tuple[float, np.ndarray]] | None = None,
) -> Choice:
    """The fastest agreeing backend for this run on this machine: from `RUN/backends.json` when it
    holds an entry for this machine, else measured now (and cached)."""
    measure = measure or time_predictions
    left_out: list[str] = []  # why the others are not candidates; said only when measuring
    found = candidates(run_dir, info, given, left_out)
    if found == [REFERENCE]:  # nothing to choose between
        config = REFERENCE.config(given)
        log.info("backend auto: torch fp32 (the only backend for this run here)")
        return Choice(REFERENCE, config, load_predictor(run_dir, info, config))
    key, machine = machine_key(info, given)
    cache_path = runfolder.backend_cache_path(run_dir)
    entries = read_cache(cache_path)
    entry = entries.get(key)
    if entry is not None:
        candidate = Candidate(entry["backend"], entry["precision"])
        if candidate in found:
            try:
                config = candidate.config(given)
                predictor = load_predictor(run_dir, info, config)
            except TextclsError as error:  # an export removed or damaged since: measure again
                log.warning(
                    "backend auto: the cached choice %s no longer loads (%s); measuring again", candidate.name, error
                )
            else:
                log.info(
                    "backend auto: %s, measured on %s for this machine (%s); delete %s to measure again",
                    candidate.name,
                    entry.get("measured_at", "?"),
                    cache_path,
                    cache_path.name,
                )
                return Choice(candidate, config, predictor, entry.get("candidates", []), cached=True)
    for reason in left_out:
        log.info("backend auto: %s", reason)
    choice = measure_candidates(run_dir, info, given, measure, found)
    entries[key] = {
        "machine": machine,
        "backend": choice.config.backend,
        "precision": choice.config.precision,
        "candidates": choice.measured,
        "measured_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        write_json(cache_path, {"format_version": CACHE_FORMAT, "machines": entries})
    except (StorageError, OSError) as error:
        log.warning(
            "backend auto: could not remember the choice in %s (%s); it will be measured again next time",
            cache_path,
            error,
        )
    return choice


def candidates(
    run_dir: Path, info: dict[str, Any], given: PredictConfig, left_out: list[str] | None = None
) -> list[Candidate]:
    """What this machine can run for this run, reference first; why the others are left out goes into
    `left_out` (logged when none is given)."""
    from textcls.training.device import inference_precision

    def say(message: str, *args: Any) -> None:
        if left_out is None:
            log.info("backend auto: " + message, *args)
        else:
            left_out.append(message % args)

    family = family_class(info["family"])
    precisions = [p for p in ("fp32", "bf16") if p in family.inference_precisions]
    if given.precision in ("fp32", "bf16"):  # an explicit precision narrows the torch candidates
        precisions = [p for p in precisions if p == given.precision]
    if "bf16" in precisions and inference_precision("auto") != "bf16":
        say("no torch bf16 (this processor has no native bf16 units)")
        precisions.remove("bf16")
    if not precisions:
        say("precision %s does not apply to this run here; torch runs in fp32", given.precision)
        precisions = ["fp32"]
    found = [Candidate("torch", p) for p in precisions]
    if EXPORT_ONNX not in family.capabilities:
        return found
    if _on_gpu():
        say("no onnx backends (ONNX Runtime runs here on the CPU; the GPU is faster)")
        return found
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        say("no onnx backends (ONNX Runtime is not installed; pip install 'textcls[onnx]')")
        return found
    return found + [Candidate("onnx"), Candidate("onnx-int8")]


def measure_candidates(
    run_dir: Path,
    info: dict[str, Any],
    given: PredictConfig,
    measure: Callable[..., tuple[float, np.ndarray]],
    found: list[Candidate],
) -> Choice:
    """Load and time every candidate in `found` on the same sample texts; return the fastest that agrees with
    torch fp32."""
    if any(c.backend != "torch" for c in found):
        found = _with_export(run_dir, info, found)
    texts, source = sample_texts(info)
    log.info(
        "backend auto: timing %s on %d texts from %s (once per machine)",
        ", ".join(c.name for c in found),
        len(texts),
        source,
    )
    started = time.perf_counter()
    reference_labels: np.ndarray | None = None
    best: tuple[float, Candidate, PredictConfig, Predictor] | None = None
    rows: list[dict[str, Any]] = []
    for candidate in [REFERENCE, *[c for c in found if c != REFERENCE]]:
        config = candidate.config(given)
        row: dict[str, Any] = {"name": candidate.name, "backend": candidate.backend, "precision": candidate.precision}
        try:
            predictor = load_predictor(run_dir, info, config)
            speed, probs = measure(predictor, texts, config.batch_size)
        except TextclsError as error:  # a failed ONNX check, a damaged export: never chosen
            if candidate == REFERENCE:
                raise
            row.update(ok=False, reason=str(error)[:300])
            log.warning("backend auto: %s left out: %s", candidate.name, error)
            rows.append(row)
            continue
        labels = label_decisions(probs, predictor.multi_label)  # a multi-label row agrees when its whole set does
        if reference_labels is None:
            reference_labels = labels
        agreement = float((labels == reference_labels).all(axis=1).mean())
        eligible = candidate in found and agreement >= MIN_AGREEMENT
        row.update(ok=eligible, texts_per_second=round(speed, 1), label_agreement=round(agreement, 4))
        if candidate not in found:
            row["reason"] = "reference only (another precision was asked for)"
        elif not eligible:
            row["reason"] = f"labels agree with torch fp32 on {agreement:.1%} of the texts, below {MIN_AGREEMENT:.0%}"
            log.warning("backend auto: %s left out: %s", candidate.name, row["reason"])
        rows.append(row)
        if eligible and (best is None or speed > best[0]):
            best = (speed, candidate, config, predictor)
        else:
            del predictor
    if best is None:  # only when an explicit precision was asked for and it disagreed
        raise TextclsError(f"backend auto: no candidate agreed with torch fp32 ({rows}); pass --backend torch")
    speed, candidate, config, predictor = best
    others = ", ".join(
        f"{r['name']} {r['texts_per_second']:.0f}"
        for r in rows
        if r.get("texts_per_second") and r["name"] != candidate.name
    )
    log.info(
        "backend auto: chose %s at %.0f texts/s (%s; measured in %.1f s)",
        candidate.name,
        speed,
        others or "no other candidate",
        time.perf_counter() - started,
    )
    return Choice(candidate, config, predictor, rows)


def time_predictions(predictor: Predictor, texts: Sequence[str], batch_size: int) -> tuple[float, np.ndarray]:
    """Texts per second over `texts` after a warm-up, and the probabilities."""
    predictor.predict_proba(list(texts[:WARMUP_TEXTS]), batch_size=batch_size)
    started = time.perf_counter()
    probs = predictor.predict_proba(texts, batch_size=batch_size)
    return len(texts) / max(time.perf_counter() - started, 1e-9), probs


def sample_texts(info: dict[str, Any], rows: int = SAMPLE_TEXTS) -> tuple[list[str], str]:
    """Up to `rows` texts of the run's dev data (seeded) where its local files still exist, else built-in texts."""
    from textcls.data.loading import load_data

    data_config = info.get("data_config")
    if isinstance(data_config, dict):
        local = [data_config.get(name) for name in ("data", "dev_file", "train_file")]
        if any(isinstance(path, str) and Path(path).exists() for path in local):
            try:
                config = from_dict(DataConfig, data_config)
                dev = load_data(config, splits=("dev",), require_train=False).splits["dev"]
            except (TextclsError, OSError, KeyError, TypeError, ValueError) as error:
                log.info("backend auto: the run's dev data could not be read (%s); timing built-in texts", error)
            else:
                picked = np.random.default_rng(0).permutation(len(dev.texts))[:rows]
                return [dev.texts[i] for i in sorted(picked)], f"the run's dev data ({dev.source})"
    texts = list(BUILT_IN_TEXTS)
    # Pairs of headlines give longer texts, so the sample spans the lengths batches meet.
    texts += [f"{a} {b}" for a in BUILT_IN_TEXTS for b in BUILT_IN_TEXTS if a != b]
    return texts[:rows], "built-in texts (the run's dev data is not on this machine)"


def _with_export(run_dir: Path, info: dict[str, Any], found: list[Candidate]) -> list[Candidate]:
    """`found`, after exporting the run to ONNX (fp32 and int8) when its export is missing or stale."""
    from textcls.inference.onnx import export_is_current, export_onnx

    if export_is_current(run_dir, info):
        return found
    log.info("backend auto: exporting %s to ONNX (fp32 and int8) for the onnx candidates", run_dir)
    try:
        export_onnx(run_dir, int8=True)
    except (TextclsError, OSError) as error:
        log.warning("backend auto: no onnx candidates: the export failed (%s)", error)
        return [c for c in found if c.backend == "torch"]
    return found


def read_cache(path: Path) -> dict[str, Any]:
    """The cache's entries by machine key; {} when absent, and when damaged (with a warning)."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        log.warning("backend auto: %s is damaged (%s); measuring again", path, error)
        return {}
    machines = payload.get("machines") if isinstance(payload, dict) else None
    if not isinstance(machines, dict) or payload.get("format_version") != CACHE_FORMAT:
        log.warning("backend auto: %s is not a cache this textcls wrote; measuring again", path)
        return {}
    valid = {
        key: entry
        for key, entry in machines.items()
        if isinstance(entry, dict) and isinstance(entry.get("backend"), str) and isinstance(entry.get("precision"), str)
    }
    if len(valid) < len(machines):
        log.warning(
            "backend auto: %s has %d damaged entries; they are measured again", path, len(machines) - len(valid)
        )
    return valid


def machine_key(info: dict[str, Any], given: PredictConfig) -> tuple[str, dict[str, Any]]:
    """A short key for what decides the choice here, and the facts it hashes."""
    import torch

    versions = library_versions()
    try:
        import onnxruntime

        versions["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    weights = {
        name: entry.get("sha256") for name, entry in (info.get("model_files") or {}).items() if isinstance(entry, dict)
    }
    machine = {
        "processor": cpu_model(),
        "matrix_flags": [flag for flag in MATRIX_FLAGS if flag in cpu_flags()],
        "cpus": os.cpu_count(),
        "threads": given.threads or torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if _on_gpu() else None,
        "precision_asked": given.precision,
        "versions": {
            k: v for k, v in versions.items() if k in ("python", "textcls", "torch", "transformers", "onnxruntime")
        },
        "weights_sha256": hashlib.sha256(json.dumps(weights, sort_keys=True).encode()).hexdigest(),
    }
    return hashlib.sha256(json.dumps(machine, sort_keys=True).encode()).hexdigest()[:16], machine


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


__all__ = ["AUTO_BACKEND", "Candidate", "Choice", "choose", "candidates", "machine_key", "read_cache", "sample_texts"]
