"""Run folders: atomic writes, self-description, resume, and the errors around them."""

from __future__ import annotations

import json
import re

import pytest

import textcls
from tests.conftest import write_ag_news_folder
from textcls.config import split_options
from textcls.errors import RunFolderError, TextclsError
from textcls.models.pretrained import PretrainedClassifier
from textcls.runfolder import read_info as read_run_info


def tiny_options(tiny_bert, **extra):
    return {"model": str(tiny_bert), "batch_size": 8, "max_length": 32, "lr": 1e-3, **extra}


def test_resume_continues_from_the_last_checkpoint_of_an_interrupted_run(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=32, n_dev=8, n_test=0)
    out = tmp_path / "runs" / "resumed"
    loaded = textcls.runs.api.load_data(textcls.DataConfig(data=str(data)), splits=("train", "dev"))
    # An interrupted run: one epoch's checkpoint in the partial folder, no finished run folder.
    partial = tmp_path / "runs" / ".resumed.partial"
    config = textcls.TrainConfig(**tiny_options(tiny_bert, epochs=1))
    PretrainedClassifier.fit(
        loaded.splits["train"], loaded.splits["dev"], loaded.label_names, config, partial / "checkpoints"
    )
    assert not out.exists()
    with pytest.raises(RunFolderError, match="continue it with --resume"):
        textcls.load(out)

    result = textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=2, resume=True))
    summary = result.metrics["train"]
    assert summary["resumed_from"].endswith("checkpoint-4")  # 32 rows / batch 8 = 4 steps per epoch
    assert summary["global_step"] == 8
    assert [round(row["epoch"]) for row in summary["epochs"]] == [1, 2]
    assert not partial.exists()


def test_without_resume_leftovers_are_discarded(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    partial = tmp_path / "runs" / ".fresh.partial"
    (partial / "checkpoints" / "checkpoint-99").mkdir(parents=True)
    result = textcls.train(data=str(data), out=tmp_path / "runs" / "fresh", **tiny_options(tiny_bert, epochs=1))
    assert result.metrics["train"]["resumed_from"] is None
    assert result.metrics["train"]["global_step"] == 2


def test_overwrite_replaces_a_run_only_when_the_new_one_is_complete(tiny_bert, tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=16, n_dev=8, n_test=0)
    out = tmp_path / "run"
    textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=1))
    first = read_run_info(out)["created"]
    with pytest.raises(TextclsError, match="already exists"):
        textcls.train(data=str(data), out=out, **tiny_options(tiny_bert, epochs=1))
    # A failing replacement (bad data) leaves the old run untouched.
    (data / "dev.csv").write_text('"label","title","description"\n"9","x","y"\n')
    with pytest.raises(textcls.DataError):
        textcls.train(data=str(data), out=out, overwrite=True, **tiny_options(tiny_bert, epochs=1))
    assert read_run_info(out)["created"] == first
    assert not (tmp_path / ".run.partial").exists()
    assert textcls.load(out).predict(["shares profit"])[0] in ["World", "Sports", "Business", "Sci/Tech"]


def test_load_rejects_folders_that_are_not_runs(tmp_path):
    with pytest.raises(RunFolderError, match="expected textcls.json"):
        textcls.load(tmp_path)
    (tmp_path / "textcls.json").write_text(json.dumps({"format_version": 99, "family": "pretrained"}))
    with pytest.raises(RunFolderError, match="upgrade textcls"):
        textcls.load(tmp_path)
    (tmp_path / "textcls.json").write_text(json.dumps({"format_version": 1, "family": "gpt"}))
    with pytest.raises(RunFolderError, match="unknown model family"):
        textcls.load(tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("format_version", "2"),
        ("model_files", [1]),
        ("max_length", "abc"),
        ("label_names", "World"),
        ("data_config", 3),
    ],
)
def test_a_damaged_run_record_names_the_field_not_a_traceback(tmp_path, field, value):
    data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=8, n_test=8)
    run = textcls.train(data=str(data), out=tmp_path / "run", family="tfidf").run_dir
    info = json.loads((run / "textcls.json").read_text())
    (run / "textcls.json").write_text(json.dumps({**info, field: value}))
    with pytest.raises(
        RunFolderError, match=rf"expected {field} to be .* found {re.escape(repr(value))}; the run folder is damaged"
    ):
        textcls.load(run)


def test_evaluate_of_a_run_without_its_data_record_asks_for_data_and_damaged_metrics_are_absent(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=24, n_dev=8, n_test=8)
    run = textcls.train(data=str(data), out=tmp_path / "run", family="tfidf").run_dir
    info = json.loads((run / "textcls.json").read_text())
    del info["data_config"]
    (run / "textcls.json").write_text(json.dumps(info))
    with pytest.raises(RunFolderError, match="does not record its data; pass --data"):
        textcls.evaluate(run)
    assert textcls.evaluate(run, textcls.runs.api.data_config_for_run(run, {"data": str(data)}))["num_samples"] == 8
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({**metrics, "train": [1, 2]}))
    assert textcls.load(run).metrics is None


def test_split_options_routes_keywords_and_rejects_unknown_ones():
    data, train = split_options({"data": "d", "epochs": 2, "seed": 7, "skip_bad_rows": True})
    assert data.data == "d" and data.skip_bad_rows and data.seed == 7
    assert train.epochs == 2 and train.seed == 7
    with pytest.raises(TypeError, match="epochz"):
        split_options({"epochz": 2})


def _one_based_copy(source, target, drop_label=None):
    """`source` (an AG News-shaped CSV, labels 0..3) with labels counted from 1, the rows of `drop_label` left out."""
    import csv

    with source.open(newline="", encoding="utf-8") as handle:
        header, *rows = list(csv.reader(handle))
    kept = [[str(int(row[0]) + 1), *row[1:]] for row in rows if int(row[0]) != drop_label]
    with target.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([header, *kept])
    return target


def test_evaluate_reads_new_data_as_the_run_read_its_own(tmp_path):
    """New data for evaluate: labels read with the run's base when they do not show theirs, the whole file
    scored when --data names one file, and the run's own row limits left behind."""
    zero_based = write_ag_news_folder(tmp_path / "zero", n_train=80, n_dev=20, n_test=40)
    data = tmp_path / "one"
    data.mkdir()
    for split in ("train", "dev"):
        _one_based_copy(zero_based / f"{split}.csv", data / f"{split}.csv")
    (data / "classes.txt").write_text((zero_based / "classes.txt").read_text())
    run = tmp_path / "run"
    textcls.train(data=str(data), out=run, family="tfidf", max_eval_samples=10)
    assert read_run_info(run)["data"]["label_base"] == 1

    # a 1-based test file without its top class (Sci/Tech = 4): no 0 and no 4 to show the base
    new = tmp_path / "new"
    new.mkdir()
    _one_based_copy(zero_based / "test.csv", new / "test.csv", drop_label=3)
    (new / "classes.txt").write_text((zero_based / "classes.txt").read_text())
    metrics = textcls.evaluate(run, textcls.runs.api.data_config_for_run(run, {"data": str(new)}))
    assert metrics["num_samples"] == 30  # not the run's max_eval_samples (10)
    assert metrics["per_class"]["Sci/Tech"]["support"] == 0 and metrics["per_class"]["World"]["support"] == 10
    assert metrics["accuracy"] > 0.5  # read 0-based, every label would be one class off

    one_file = textcls.runs.api.data_config_for_run(run, {"data": str(new / "test.csv")})
    scored = textcls.runs.api.score(run, one_file)
    assert len(scored.texts) == 30 and scored.source == str(new / "test.csv")  # all of it, not a dev carve
    # the run's own folder named again is new data too: scored whole, not cut to the run's max_eval_samples
    assert (
        textcls.evaluate(run, textcls.runs.api.data_config_for_run(run, {"data": str(data)}), "dev")["num_samples"]
        == 20
    )


def test_a_run_trained_on_one_file_is_scored_on_the_dev_it_carved_from_it(tmp_path):
    # evaluate and report read the run's own `--data FILE` as new data and scored all of it, mostly
    # training rows, as "dev" or "test" (accuracy 0.98 against the carved dev's 0.84)
    folder = write_ag_news_folder(tmp_path / "folder", n_train=120, n_dev=0, n_test=40)
    one_file = folder / "train.csv"
    run = tmp_path / "run"
    trained = textcls.train(data=str(one_file), out=run, family="tfidf").metrics["dev"]
    assert trained["num_samples"] == 12  # a tenth carved off as dev
    for data_config, split in [
        (None, "dev"),
        (None, "test"),
        (textcls.runs.api.data_config_for_run(run, {"data": str(one_file)}), "dev"),
        (textcls.runs.api.data_config_for_run(run, {"max_eval_samples": 100}), "dev"),
    ]:
        scored = textcls.runs.api.score(run, data_config, split)
        assert (scored.split, len(scored.texts)) == ("dev", 12)  # the run's own file: test falls back to its dev
        assert textcls.evaluate(run, data_config, split)["accuracy"] == trained["accuracy"]
    other = textcls.runs.api.score(run, textcls.runs.api.data_config_for_run(run, {"data": str(folder / "test.csv")}))
    assert len(other.texts) == 40  # new data named by one file is scored whole


def test_resume_refuses_checkpoints_of_other_rows_or_settings_and_keeps_them(tiny_bert, tmp_path, monkeypatch):
    data = write_ag_news_folder(tmp_path / "data", n_train=32, n_dev=8, n_test=0)
    out = tmp_path / "run"
    checkpoint = tmp_path / ".run.partial" / "checkpoints" / "checkpoint-4"

    class Killed(Exception):
        pass

    def killed_after_a_checkpoint(cls, *args, **kwargs):
        checkpoint.mkdir(parents=True, exist_ok=True)
        raise Killed

    monkeypatch.setattr(PretrainedClassifier, "fit", classmethod(killed_after_a_checkpoint))
    options = tiny_options(tiny_bert, epochs=2)
    with pytest.raises(Killed):
        textcls.train(data=str(data), out=out, **options)
    for changed, named in [
        ({"family": "lstm"}, "family 'pretrained' (now 'lstm')"),
        ({"max_train_samples": 16}, "the rows"),
        ({"lr": 5e-3}, "lr 0.001 (now 0.005)"),
    ]:
        with pytest.raises(TextclsError, match=re.escape(named)) as refused:
            textcls.train(data=str(data), out=out, **{**options, **changed, "resume": True})
        assert "drop --resume to start over" in str(refused.value)
        assert checkpoint.is_dir()  # refused before anything was removed
    with pytest.raises(Killed):  # the same rows and settings, more epochs: resumed
        textcls.train(data=str(data), out=out, **{**options, "epochs": 3, "resume": True})


def test_a_tfidf_report_shows_each_mistakes_text_not_its_features(tmp_path):
    data = write_ag_news_folder(tmp_path / "data", n_train=40, n_dev=40, n_test=0)
    run = textcls.train(data=str(data), out=tmp_path / "run", family="tfidf").run_dir
    scored = textcls.runs.api.score(run, split="dev")
    scored.probs[:] = scored.probs[:, ::-1]  # make every row a confident mistake, so all are listed
    page = textcls.runs.api.write_report(scored, tmp_path / "report.html").read_text(encoding="utf-8")
    section = page.split('id="mistakes"')[1].split("</section>")[0]
    import html

    shown = re.findall(r'<td class="text">([^<]*)</td></tr>', section)  # each row's last cell: the text
    assert len(shown) == 20 and set(shown) <= {html.escape(text, quote=True) for text in scored.texts}
    assert '<span class="word"' not in section  # n-grams are not the text's words: nothing marked


def _with_columns(source, target, extra):
    """`source` (AG News-shaped CSV) with columns added: name -> function of the row."""
    import csv

    with source.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*rows[0], *extra])
        writer.writeheader()
        writer.writerows({**row, **{name: make(row) for name, make in extra.items()}} for row in rows)
    return target


def test_new_data_and_predict_input_are_read_from_the_columns_the_run_was_trained_on(tmp_path):
    # predict --input guessed its columns (title+description, or a 'text' column) whatever the run read, and
    # a run whose columns were found by layout recorded none, so evaluate on new data guessed again
    from typer.testing import CliRunner

    from textcls.cli.main import app

    data = write_ag_news_folder(tmp_path / "data", n_train=80, n_dev=20, n_test=40)
    found = textcls.train(
        data=str(data), out=tmp_path / "found", family="tfidf"
    ).run_dir  # title+description, by layout
    named = textcls.train(data=str(data), out=tmp_path / "named", family="tfidf", text_columns=("description",)).run_dir
    assert read_run_info(found)["data"]["text_columns"] == ["title", "description"]
    assert read_run_info(named)["data"]["text_columns"] == ["description"]
    test = data / "test.csv"
    noisy = _with_columns(test, tmp_path / "noisy.csv", {"text": lambda row: "note"})  # a column training never read

    def predicted(run, path, *flags):
        result = CliRunner().invoke(app, ["predict", str(run), "--input", str(path), "--backend", "torch", *flags])
        assert result.exit_code == 0, result.output
        return [json.loads(line)["probs"] for line in result.stdout.splitlines()]

    for run, columns in (
        (found, ["--text-column", "title", "--text-column", "description"]),
        (named, ["--text-column", "description"]),
    ):
        expected = predicted(run, test, *columns)
        assert predicted(run, test) == expected and predicted(run, noisy) == expected
        new = textcls.evaluate(run, textcls.DataConfig(test_file=str(noisy)), "test")  # the Python API alike
        assert new["accuracy"] == textcls.evaluate(run, None, "test")["accuracy"]

    # new data without the run's columns: the usual layouts, with a warning that names both
    only_text = _with_columns(
        test, tmp_path / "only_text.csv", {"text": lambda row: f"{row['title']} {row['description']}"}
    )
    assert len(predicted(named, only_text)) == 40  # has description too: read as trained
    import csv

    with (tmp_path / "plain.csv").open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["text"], ["stocks shares profit"], ["goal coach season"]])
    result = CliRunner().invoke(
        app, ["predict", str(named), "--input", str(tmp_path / "plain.csv"), "--backend", "torch"]
    )
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 2
    assert "has no description, the text the model was trained on; reading text instead" in " ".join(
        result.stderr.split()
    )
