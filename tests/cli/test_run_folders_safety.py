"""advise, evaluate and export on run folders (issue 22): a model.keras that does not fit its
config.yaml, a relative table that could mean two files, huge --max-context, histories the model
was not trained on, a reader that closes stdout early, and the working folder off the import path."""

import json
import os
import runpy
import shutil
import sys

import pandas as pd
import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.training.trainer import Trainer, TrainResult

PERSON = ROOT / "data" / "example_person.csv"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def run_copy(smoke_run_dir, tmp_path):
    return shutil.copytree(smoke_run_dir, tmp_path / "run")


@pytest.fixture
def closed_stdout(monkeypatch):
    """sys.stdout on a pipe whose reader has gone (`... | head -c 0`)."""
    read, write = os.pipe()
    os.close(read)
    stream = open(write, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", stream)
    yield stream
    monkeypatch.undo()
    stream.close()


# ---- model.keras that does not fit config.yaml ------------------------------------------------------------
@pytest.mark.parametrize("command", ["advise", "evaluate", "export"])
def test_a_model_keras_from_other_settings_is_refused(run_copy, tmp_path, capsys, command):
    cfg = run_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("embed_dim: 16", "embed_dim: 32"))
    before = (run_copy / "model.keras").read_bytes()
    extra = {
        "advise": ["--history", str(PERSON)],
        "evaluate": ["--out", str(tmp_path / "ev"), "--episodes", "4", "--no-progress"],
        "export": ["--out", str(tmp_path / "ex")],
    }[command]
    assert main([command, "--run", str(run_copy), *extra]) == 2
    line = one_error_line(capsys)
    assert "model.keras: does not match" in line and "embed_dim 16 in model.keras, 32 in config.yaml" in line
    assert (run_copy / "model.keras").read_bytes() == before
    assert not (tmp_path / "ev").exists() and not (tmp_path / "ex").exists()


# ---- a relative task.table that could mean two files -----------------------------------------------------
def test_a_relative_table_found_in_two_places_that_differ_is_refused(run_copy, tmp_path, capsys, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    (elsewhere / "data" / "migraine_prediction.xlsx").write_bytes(b"another table")
    monkeypatch.chdir(elsewhere)
    assert main(["advise", "--run", str(run_copy), "--history", str(PERSON)]) == 2
    line = one_error_line(capsys)
    assert "ambiguous relative path" in line and str(elsewhere / "data" / "migraine_prediction.xlsx") in line
    assert str(ROOT / "data" / "migraine_prediction.xlsx") in line


def test_the_same_table_in_both_places_is_fine(tmp_path, monkeypatch):
    from tfp_aline.migraine.feature_table import resolve_data_path

    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "data" / "migraine_prediction.xlsx", tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    assert (
        resolve_data_path("data/migraine_prediction.xlsx").read_bytes()
        == (ROOT / "data" / "migraine_prediction.xlsx").read_bytes()
    )


# ---- advise ----------------------------------------------------------------------------------------------
def test_advise_with_a_huge_max_context_answers_and_warns(run_copy, capsys):
    assert main(["advise", "--run", str(run_copy), "--history", str(PERSON), "--max-context", "1000000"]) == 0
    out = capsys.readouterr().out
    assert "warning: max_context 1000000 exceeds the 4 observed days" in out


def test_a_history_the_prior_almost_never_produces_gets_a_one_line_warning(run_copy, tmp_path, capsys, migraine_task):
    days = pd.read_csv(PERSON)
    days["migraine"] = 1
    path = tmp_path / "every_day.csv"
    days.to_csv(path, index=False)
    assert main(["advise", "--run", str(run_copy), "--history", str(path), "--format", "json"]) == 0
    warnings = json.loads(capsys.readouterr().out)["warnings"]
    hits = [w for w in warnings if "reported days are migraines" in w]
    assert len(hits) == 1 and "\n" not in hits[0] and "check the 'migraine' column" in hits[0]

    from tfp_aline.migraine.advice import unlikely_outcomes
    from tfp_aline.migraine.history import read_history

    ordinary = read_history(PERSON, migraine_task.table, warn=False)
    assert unlikely_outcomes(migraine_task, ordinary.z[ordinary.reported], ordinary.y[ordinary.reported]) is None


def test_advise_into_a_closed_pipe_ends_quietly(run_copy, capsys, closed_stdout):
    assert main(["advise", "--run", str(run_copy), "--history", str(PERSON), "--format", "json"]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_train_into_a_closed_pipe_still_writes_its_evaluation(run_copy, capsys, monkeypatch, closed_stdout):
    (run_copy / "evaluation.json").unlink(missing_ok=True)
    monkeypatch.setattr(Trainer, "fit", lambda self, progress=True: TrainResult(self.logdir, 6, False, []))
    assert main(["train", "--resume", "--logdir", str(run_copy), "--no-progress"]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert json.loads((run_copy / "evaluation.json").read_text())["people"] == 16


# ---- the working folder and the import path --------------------------------------------------------------
def test_python_m_keeps_the_working_folder_off_the_import_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    monkeypatch.setattr(sys, "argv", ["tfp_aline", "advise", "--run", "x", "--history", "y", "--top", "-1"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("tfp_aline", run_name="__main__")
    assert e.value.code == 2 and str(tmp_path) not in sys.path
