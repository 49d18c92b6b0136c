"""onnx_backend.py: ONNX export and the onnx / onnx-int8 backends, checked against torch."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

import textcls
from tests.conftest import make_texts
from textcls.config import PredictConfig
from textcls.errors import RunFolderError, TextclsError
from textcls.inference.onnx import ONNX_DIR, OnnxClassifier, check_against_torch, export_onnx
from textcls.runfolder import file_digest

pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'textcls[onnx]')")


def texts(n: int = 50) -> list[str]:
    return [f"{title} {body}" for _, title, body in make_texts(n, seed=11)]


def test_predict_config_rejects_unknown_backends_and_picks_the_backends_batch_size():
    with pytest.raises(ValueError, match="backend: expected one of"):
        PredictConfig(backend="tensorrt")
    assert PredictConfig(backend="torch").batch_size == 64
    assert PredictConfig().backend == "auto" and PredictConfig().batch_size is None  # the chosen backend's
    assert PredictConfig(backend="onnx-int8").batch_size == 8
    assert PredictConfig(backend="onnx", batch_size=3).batch_size == 3
    with pytest.raises(ValueError, match="threads"):
        PredictConfig(threads=0)


@pytest.fixture(scope="module")
def exported_run(tiny_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("export") / "run"
    shutil.copytree(tiny_run, run_dir)
    record = export_onnx(run_dir, int8=True)
    return run_dir, record


def test_export_writes_both_graphs_with_a_record_of_their_checks(exported_run):
    run_dir, record = exported_run
    assert (run_dir / ONNX_DIR / "model.onnx").stat().st_size > 0
    assert (run_dir / ONNX_DIR / "model.int8.onnx").stat().st_size > 0
    on_disk = json.loads((run_dir / ONNX_DIR / "export.json").read_text())
    assert on_disk == record
    assert record["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert record["files"]["onnx"]["check"]["max_abs_prob_diff"] < 1e-4
    assert record["files"]["onnx-int8"]["bytes"] < record["files"]["onnx"]["bytes"]
    assert not list((run_dir / ONNX_DIR).glob(".*tmp"))  # temporary files renamed or removed


def test_the_int8_graph_quantises_every_weight_matmul(exported_run):
    onnx = pytest.importorskip("onnx")
    run_dir, _ = exported_run
    graphs = {name: onnx.load(str(run_dir / ONNX_DIR / name)).graph for name in ("model.onnx", "model.int8.onnx")}
    weights = {name: {tensor.name for tensor in graph.initializer} for name, graph in graphs.items()}

    def weight_matmuls(name):
        return [node.name for node in graphs[name].node if node.op_type == "MatMul" and set(node.input) & weights[name]]

    assert len(weight_matmuls("model.onnx")) >= 6  # the tiny BERT's projections, in fp32
    assert weight_matmuls("model.int8.onnx") == []  # none left in fp32, the first layer's FFN included
    assert any(node.op_type == "MatMulInteger" for node in graphs["model.int8.onnx"].node)


@pytest.mark.parametrize("backend, atol", [("onnx", 1e-4), ("onnx-int8", 0.1)])
def test_onnx_backends_match_torch_in_input_order(exported_run, backend, atol):
    run_dir, _ = exported_run
    sample = texts(60)
    expected = textcls.load(run_dir, PredictConfig(backend="torch")).predict_proba(sample)
    run = textcls.load(run_dir, PredictConfig(backend=backend, threads=1))
    classifier = run.classifier
    assert isinstance(classifier, OnnxClassifier) and run.predict_config.backend == backend
    assert run.family == "pretrained"
    found = classifier.predict_proba(sample, batch_size=7)  # batches cut across length buckets
    np.testing.assert_allclose(found, expected, atol=atol)
    np.testing.assert_allclose(found.sum(axis=1), 1.0, atol=1e-5)
    if backend == "onnx":
        assert (found.argmax(axis=1) == expected.argmax(axis=1)).all()
    assert classifier.predict_proba([]).shape == (0, len(classifier.label_names))


def test_onnx_backend_explains_with_the_torch_attention(exported_run):
    run_dir, _ = exported_run
    explanation = textcls.load(run_dir, PredictConfig(backend="onnx")).explain("shares profit stocks")
    assert explanation.tokens[0] == "[CLS]" and explanation.attention.shape[0] == 2  # 2 layers


def test_a_graph_from_other_weights_is_refused(exported_run, tmp_path):
    run_dir, _ = exported_run
    stale = tmp_path / "stale"
    shutil.copytree(run_dir, stale)
    from safetensors.torch import load_file, save_file

    weights = load_file(stale / "model" / "model.safetensors")
    name = next(k for k in weights if k.startswith("classifier"))
    weights[name] = weights[name] + 1.0
    save_file(weights, stale / "model" / "model.safetensors", metadata={"format": "pt"})
    # the run folder's own record follows the new weights (as a retrain would); only the export is stale
    info = json.loads((stale / "textcls.json").read_text())
    info["model_files"]["model.safetensors"] = {
        "bytes": (stale / "model" / "model.safetensors").stat().st_size,
        "sha256": file_digest(stale / "model" / "model.safetensors"),
    }
    (stale / "textcls.json").write_text(json.dumps(info))
    with pytest.raises(RunFolderError, match="exported from other weights.*textcls export"):
        textcls.load(stale, PredictConfig(backend="onnx"))


def test_a_missing_export_names_the_command_that_makes_it(tiny_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run, run_dir)
    shutil.rmtree(run_dir / ONNX_DIR, ignore_errors=True)  # tests that load with backend auto export into tiny_run
    with pytest.raises(RunFolderError, match=r"textcls export .* --format onnx --int8"):
        textcls.load(run_dir, PredictConfig(backend="onnx-int8"))


def test_the_check_catches_a_model_that_answers_differently(exported_run):
    run_dir, _ = exported_run
    reference = textcls.load(run_dir, PredictConfig(backend="torch"))

    class Shuffled:
        label_names = reference.label_names

        def predict_proba(self, batch, batch_size=64, progress=False):
            return reference.predict_proba(batch)[:, ::-1]  # labels permuted

    with pytest.raises(TextclsError, match="does not match the torch model"):
        check_against_torch(Shuffled(), reference, "onnx-int8")


def test_onnx_is_refused_for_families_without_an_export(tmp_path, ag_folder):
    run = textcls.train(data=str(ag_folder), out=tmp_path / "tfidf", family="tfidf").run_dir
    with pytest.raises(TextclsError, match="pretrained and setfit families, found 'tfidf'"):
        export_onnx(run)
    with pytest.raises(TextclsError, match="with --backend torch"):
        textcls.load(run, PredictConfig(backend="onnx"))


def test_bf16_precision_keeps_the_fp32_labels(tiny_run):
    sample = texts(40)
    fp32 = textcls.load(tiny_run, PredictConfig(backend="torch")).predict_proba(sample)
    bf16 = textcls.load(tiny_run, PredictConfig(backend="torch", precision="bf16")).predict_proba(sample)
    np.testing.assert_allclose(bf16, fp32, atol=0.05)


def test_spin_off_stops_onnx_runtime_threads_busy_waiting(exported_run):
    run_dir, _ = exported_run
    key = "session.intra_op.allow_spinning"
    quiet = textcls.load(run_dir, PredictConfig(backend="onnx", spin=False)).classifier
    assert quiet.session.get_session_options().get_session_config_entry(key) == "0"
    default = textcls.load(run_dir, PredictConfig(backend="onnx")).classifier
    # never set: ONNX Runtime's own default (spinning) applies
    with pytest.raises(RuntimeError, match="does not have configuration with key"):
        default.session.get_session_options().get_session_config_entry(key)


def test_onnx_runs_one_single_threaded_batch_per_worker_with_the_same_answers(exported_run):
    run_dir, _ = exported_run
    sample = texts(40)
    one = textcls.load(run_dir, PredictConfig(backend="onnx", threads=1)).classifier
    two = textcls.load(run_dir, PredictConfig(backend="onnx", threads=2)).classifier
    assert (one.workers, one._pool) == (1, None) and two.workers == 2
    assert (one.concurrent_calls, two.concurrent_calls) == (1, 2)  # a server may overlap calls on two workers
    assert one.torch_classifier().concurrent_calls == 1  # torch splits every call over the cores itself
    assert two.session.get_session_options().intra_op_num_threads == 1  # each worker runs the graph alone
    np.testing.assert_allclose(two.predict_proba(sample), one.predict_proba(sample), atol=1e-5)
    default = textcls.load(run_dir, PredictConfig(backend="onnx")).classifier
    assert default.workers == torch.get_num_threads()


def test_a_chunk_run_exports_and_pools_its_windows_like_torch(chunk_run, tmp_path):
    from tests.conftest import make_long_texts

    run_dir = tmp_path / "run"
    shutil.copytree(chunk_run, run_dir)
    export_onnx(run_dir)
    sample = [text for _, text in make_long_texts(20, seed=9)]
    expected = textcls.load(run_dir, PredictConfig(backend="torch")).predict_proba(sample)
    onnx = textcls.load(run_dir, PredictConfig(backend="onnx"))
    assert onnx.classifier.windowing.chunks
    assert np.allclose(onnx.predict_proba(sample), expected, atol=1e-4)


def test_export_refuses_damaged_weights_and_a_bad_opset_keeping_the_export(exported_run, tmp_path):
    from textcls.errors import ConfigError

    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    before = {path.name: file_digest(path) for path in (run_dir / ONNX_DIR).iterdir()}
    with pytest.raises(ConfigError, match=r"opset: expected an ONNX opset in \[10, 20\], found 99"):
        export_onnx(run_dir, opset=99)
    weights = run_dir / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 64  # one flipped bit in the tensors: safetensors still parses it
    weights.write_bytes(bytes(data))
    with pytest.raises(RunFolderError, match="damaged"):
        export_onnx(run_dir, int8=True)
    assert {path.name: file_digest(path) for path in (run_dir / ONNX_DIR).iterdir()} == before


def test_an_export_record_that_is_not_an_object_is_damaged(exported_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(exported_run[0], run_dir)
    (run_dir / ONNX_DIR / "export.json").write_text("[]")
    with pytest.raises(RunFolderError, match=r"expected a JSON object, found list.*--int8 for the int8 graph"):
        textcls.load(run_dir, PredictConfig(backend="onnx"))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_max_length_past_the_models_limit_is_clamped_and_a_chunk_runs_must_exceed_its_stride(
    exported_run, chunk_run, backend, caplog
):
    from textcls.errors import ConfigError

    limit = json.loads((exported_run[0] / "model" / "config.json").read_text())["max_position_embeddings"]
    with caplog.at_level("WARNING", logger="textcls.inference"):
        run = textcls.load(exported_run[0], PredictConfig(backend=backend, max_length=limit + 500))
    assert run.classifier.max_length == limit and f"using {limit}" in caplog.text
    probs = run.predict_proba(["shares " * (3 * limit)])  # longer than the model takes: cut, not a crash
    assert probs.shape == (1, 4) and abs(probs.sum() - 1) < 1e-4
    if backend == "torch":
        with pytest.raises(ConfigError, match=r"max_length: expected more than 10 tokens .* overlapping by 8"):
            textcls.load(chunk_run, PredictConfig(backend="torch", max_length=10))


def test_a_run_refuses_one_string_where_a_list_of_texts_belongs(tiny_run):
    from textcls.errors import ConfigError

    run = textcls.load(tiny_run, PredictConfig(backend="torch"))
    for method in (run.predict, run.predict_proba):
        with pytest.raises(
            ConfigError, match=r"expected a list of texts, found one str \('shares rose'\); pass \[text\]"
        ):
            method("shares rose")
    assert len(run.predict(["shares rose"])) == 1
