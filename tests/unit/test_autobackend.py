"""`--backend auto`: the fastest candidate that agrees with torch fp32, measured once per machine and
cached in the run folder. Timings are faked (the choice must follow them). Every candidate really
runs, but honest ones report torch fp32's answers: the tiny random model's probabilities are all
near 0.25, so bf16 or int8 rounding flips its labels at random and the choice would be a coin toss.
A dishonest one (`scramble`) moves every label; one test keeps the real answers of fp32 backends."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import numpy as np
import pytest

import textcls
from tests.conftest import write_ag_news_folder
from textcls.config import PredictConfig
from textcls.errors import StorageError, TextclsError
from textcls.inference import auto as autobackend
from textcls.inference import onnx as onnx_backend
from textcls.inference.auto import Candidate, candidates, choose, machine_key
from textcls.inference.onnx import ONNX_DIR, export_onnx
from textcls.runfolder import backend_cache_path, read_info


def _name(predictor) -> str:
    backend = getattr(predictor, "backend", None)
    return backend if backend is not None else f"torch {predictor.precision}"


class FakeClock:
    """A `measure` that reports the given speed per candidate and counts its calls; probabilities are real."""

    def __init__(self, speeds: dict[str, float], scramble: str | None = None, real: bool = False):
        self.speeds, self.scramble, self.real, self.calls = speeds, scramble, real, []
        self.reference = None

    def __call__(self, predictor, texts, batch_size):
        name = _name(predictor)
        self.calls.append(name)
        probs = predictor.predict_proba(texts, batch_size=batch_size)
        if self.reference is None:  # torch fp32 comes first
            self.reference = probs
        if not self.real:
            probs = self.reference
        if name == self.scramble:  # a fast backend with wrong answers: every label moved by one
            probs = np.roll(probs, 1, axis=1)
        return self.speeds.get(name, 1.0), probs


FASTEST_INT8 = {"torch fp32": 100.0, "torch bf16": 200.0, "onnx": 300.0, "onnx-int8": 400.0}


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("auto") / "exported"
    shutil.copytree(tiny_run, run_dir)
    export_onnx(run_dir, int8=True)
    return run_dir


@pytest.fixture()
def run_dir(exported, tmp_path):
    """A fresh copy of the exported tiny run per test, so caches never leak between tests."""
    copy = tmp_path / "run"
    shutil.copytree(exported, copy)
    (copy / "backends.json").unlink(missing_ok=True)
    return copy


@pytest.fixture()
def bf16_here(monkeypatch):
    """Make this machine count as one with bf16 units, so all four candidates exist on any CPU."""
    from textcls.training import device as training_device

    monkeypatch.setattr(
        training_device, "inference_precision", lambda precision: "bf16" if precision == "auto" else precision
    )


def _choose(run_dir, clock, config=None):
    return choose(run_dir, read_info(run_dir), config or PredictConfig(), measure=clock)


def test_the_default_backend_is_auto_and_resolves_to_a_real_one(run_dir, monkeypatch):
    assert PredictConfig().backend == "auto" and PredictConfig().batch_size is None
    monkeypatch.setattr(autobackend, "time_predictions", FakeClock(FASTEST_INT8))
    run = textcls.load(run_dir)
    assert run.predict_config.backend in ("torch", "onnx", "onnx-int8") and run.predict_config.batch_size >= 1
    assert run.backend_choice["chosen"] == "onnx-int8" and run.predict_config.backend == "onnx-int8"
    assert run.predict(["shares profit stocks"])[0] in run.label_names


def test_auto_picks_the_fastest_candidate_and_caches_it_for_this_machine(run_dir, bf16_here):
    clock = FakeClock(FASTEST_INT8)
    choice = _choose(run_dir, clock)
    assert choice.name == "onnx-int8" and choice.config.batch_size == 8 and not choice.cached
    assert clock.calls[0] == "torch fp32"  # the reference first
    assert sorted(clock.calls) == sorted(FASTEST_INT8)
    cache = json.loads(backend_cache_path(run_dir).read_text())
    key, machine = machine_key(read_info(run_dir), PredictConfig())
    assert cache["machines"][key]["backend"] == "onnx-int8"
    assert cache["machines"][key]["machine"] == machine
    assert {row["name"] for row in cache["machines"][key]["candidates"]} == set(FASTEST_INT8)


def test_the_cache_is_used_without_measuring_again(run_dir, bf16_here):
    _choose(run_dir, FakeClock(FASTEST_INT8))
    again = FakeClock(FASTEST_INT8)
    choice = _choose(run_dir, again)
    assert choice.cached and choice.name == "onnx-int8" and again.calls == []
    assert choice.predictor.predict_proba(["goal coach match"]).shape == (1, len(choice.predictor.label_names))


def test_a_candidate_that_disagrees_with_torch_is_never_chosen_however_fast(run_dir, bf16_here):
    clock = FakeClock({**FASTEST_INT8, "onnx-int8": 1e9}, scramble="onnx-int8")
    choice = _choose(run_dir, clock)
    assert choice.name == "onnx"
    row = next(r for r in choice.measured if r["name"] == "onnx-int8")
    assert row["ok"] is False and row["label_agreement"] < 0.99 and "below 99%" in row["reason"]


def test_real_answers_of_an_fp32_backend_agree_with_torch(run_dir, monkeypatch):
    from textcls.training import device as training_device

    monkeypatch.setattr(training_device, "inference_precision", lambda precision: "fp32")  # no bf16 candidate
    clock = FakeClock({"torch fp32": 1.0, "onnx": 2.0, "onnx-int8": 0.5}, real=True)
    choice = _choose(run_dir, clock)
    assert choice.name == "onnx"  # ONNX fp32 is torch to rounding: every label the same
    assert next(r for r in choice.measured if r["name"] == "onnx")["label_agreement"] == 1.0


def test_a_backend_that_fails_its_check_against_torch_is_left_out(run_dir, bf16_here, monkeypatch):
    real = onnx_backend.check_against_torch

    def failing(candidate, reference, backend, *args, **kwargs):
        if backend == "onnx-int8":
            raise TextclsError("the onnx-int8 model does not match the torch model (planted)")
        return real(candidate, reference, backend, *args, **kwargs)

    monkeypatch.setattr(onnx_backend, "check_against_torch", failing)
    choice = _choose(run_dir, FakeClock({**FASTEST_INT8, "onnx-int8": 1e9}))
    assert choice.name == "onnx"
    row = next(r for r in choice.measured if r["name"] == "onnx-int8")
    assert row["ok"] is False and "planted" in row["reason"]


def test_without_onnx_runtime_only_torch_is_measured(run_dir, bf16_here, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime -> ImportError
    clock = FakeClock(FASTEST_INT8)
    choice = _choose(run_dir, clock)
    assert choice.name == "torch bf16" and sorted(clock.calls) == ["torch bf16", "torch fp32"]


def test_without_bf16_units_bf16_is_not_a_candidate(run_dir, monkeypatch):
    from textcls.training import device as training_device

    monkeypatch.setattr(training_device, "inference_precision", lambda precision: "fp32")
    found = candidates(run_dir, read_info(run_dir), PredictConfig())
    assert Candidate("torch", "bf16") not in found and Candidate("torch", "fp32") in found


def test_an_explicit_precision_narrows_the_torch_candidates(run_dir, bf16_here):
    found = candidates(run_dir, read_info(run_dir), PredictConfig(precision="fp32"))
    assert [c.name for c in found] == ["torch fp32", "onnx", "onnx-int8"]


def test_a_cache_from_another_machine_is_ignored_measured_over_and_kept(run_dir, bf16_here, monkeypatch):
    monkeypatch.setattr(autobackend, "cpu_model", lambda: "Intel(R) Xeon(R) Platinum 8481C")
    _choose(run_dir, FakeClock({**FASTEST_INT8, "torch bf16": 1e6}))  # that machine chose torch bf16
    monkeypatch.undo()
    from textcls.training import device as training_device

    monkeypatch.setattr(
        training_device, "inference_precision", lambda precision: "bf16" if precision == "auto" else precision
    )
    here = FakeClock(FASTEST_INT8)
    choice = _choose(run_dir, here)
    assert here.calls and choice.name == "onnx-int8" and not choice.cached
    machines = json.loads(backend_cache_path(run_dir).read_text())["machines"]
    assert sorted(entry["backend"] for entry in machines.values()) == ["onnx-int8", "torch"]
    assert {entry["machine"]["processor"] for entry in machines.values()} >= {"Intel(R) Xeon(R) Platinum 8481C"}


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe\x00garbage",
        b'{"format_version": 1, "machines": [1, 2]}',
        b'{"format_version": 1, "machines": {"k": {"backend": 3}}}',
        b"[]",
    ],
)
def test_a_damaged_cache_is_measured_over_not_a_crash(run_dir, bf16_here, caplog, content):
    backend_cache_path(run_dir).write_bytes(content)
    clock = FakeClock(FASTEST_INT8)
    with caplog.at_level(logging.WARNING, logger="textcls.inference"):
        choice = _choose(run_dir, clock)
    assert clock.calls and choice.name == "onnx-int8"
    assert "measuring again" in caplog.text or "measured again" in caplog.text
    key, _ = machine_key(read_info(run_dir), PredictConfig())
    assert json.loads(backend_cache_path(run_dir).read_text())["machines"][key]["backend"] == "onnx-int8"


def test_a_cached_choice_that_no_longer_loads_is_measured_again(run_dir, bf16_here):
    _choose(run_dir, FakeClock(FASTEST_INT8))
    shutil.rmtree(run_dir / ONNX_DIR)  # the export the cache points at is gone
    clock = FakeClock(FASTEST_INT8)
    choice = _choose(run_dir, clock)
    assert clock.calls and choice.name == "onnx-int8"
    assert (run_dir / ONNX_DIR / "model.int8.onnx").is_file()  # exported again on the way


def test_a_run_folder_it_cannot_write_to_still_gets_a_choice(run_dir, bf16_here, monkeypatch, caplog):
    def full(path, payload):
        raise StorageError(28, f"could not write {path}: No space left on device")

    monkeypatch.setattr(autobackend, "write_json", full)
    with caplog.at_level(logging.WARNING, logger="textcls.inference"):
        choice = _choose(run_dir, FakeClock(FASTEST_INT8))
    assert choice.name == "onnx-int8" and "measured again next time" in caplog.text
    assert not backend_cache_path(run_dir).exists()


def test_a_missing_export_is_made_on_first_use(tiny_run, tmp_path, bf16_here):
    run_dir = tmp_path / "fresh"
    shutil.copytree(tiny_run, run_dir)
    shutil.rmtree(run_dir / ONNX_DIR, ignore_errors=True)
    (run_dir / "backends.json").unlink(missing_ok=True)
    choice = _choose(run_dir, FakeClock(FASTEST_INT8))
    assert choice.name == "onnx-int8"
    record = json.loads((run_dir / ONNX_DIR / "export.json").read_text())
    assert set(record["files"]) == {"onnx", "onnx-int8"}


def test_the_sample_is_the_runs_dev_data_or_built_in_texts(run_dir):
    texts, source = autobackend.sample_texts(read_info(run_dir))
    assert "dev data" in source and 0 < len(texts) <= autobackend.SAMPLE_TEXTS
    moved = {**read_info(run_dir), "data_config": {"data": "/nowhere/ag_news"}}
    texts, source = autobackend.sample_texts(moved)
    assert "built-in" in source and 100 <= len(texts) <= autobackend.SAMPLE_TEXTS and len(set(texts)) == len(texts)


def test_a_family_without_other_backends_loads_torch_without_measuring(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=64, n_dev=16, n_test=16)
    run_dir = textcls.train(data=str(data), out=tmp_path / "tfidf", family="tfidf").run_dir
    clock = FakeClock({})
    choice = _choose(run_dir, clock)
    assert choice.name == "torch fp32" and clock.calls == [] and not backend_cache_path(run_dir).exists()


def test_forcing_a_backend_measures_nothing(run_dir, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("auto ran although a backend was given")

    monkeypatch.setattr(autobackend, "choose", fail)
    run = textcls.load(run_dir, PredictConfig(backend="torch"))
    assert run.predict_config.backend == "torch" and run.backend_choice is None
    assert not backend_cache_path(run_dir).exists()
