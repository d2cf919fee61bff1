"""export and evaluate replace their output folder as a whole, and never a run folder, a folder
holding one, or the working folder (issue 22: lost or mixed-up data)."""

import errno
import shutil

import pytest

from tfp_aline.cli.main import main

EVAL_ARGS = ["--episodes", "4", "--baseline-episodes", "2", "--methods", "policy", "random"]
EVAL_ARGS += ["--targets", "all", "--no-exact", "--no-progress"]


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def run_copy(smoke_run_dir, tmp_path):
    return shutil.copytree(smoke_run_dir, tmp_path / "project" / "runs" / "smoke")


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


# ---- export ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["run", "parent", "grandparent"])
def test_export_force_never_removes_a_run_or_a_folder_holding_one(run_copy, capsys, where):
    out = {"run": run_copy, "parent": run_copy.parent, "grandparent": run_copy.parent.parent}[where]
    before = snapshot(out)
    assert main(["export", "--run", str(run_copy), "--out", str(out), "--force"]) == 2
    line = one_error_line(capsys)
    assert f"--out {out}" in line and "would be deleted" in line
    assert snapshot(out) == before


def test_export_force_into_the_runs_checkpoints_folder_is_refused(run_copy, capsys):
    before = snapshot(run_copy)
    out = run_copy / "checkpoints"
    assert main(["export", "--run", str(run_copy), "--out", str(out), "--force"]) == 2
    assert "holds a run's files" in one_error_line(capsys)
    assert snapshot(run_copy) == before


def test_export_force_into_another_folder_holding_a_run_is_refused(run_copy, tmp_path, capsys):
    other = tmp_path / "elsewhere"
    shutil.copytree(run_copy, other / "old-run")
    before = snapshot(other)
    assert main(["export", "--run", str(run_copy), "--out", str(other), "--force"]) == 2
    assert "holds the run folder" in one_error_line(capsys)
    assert snapshot(other) == before


def test_export_force_into_the_working_folder_is_refused_and_leaves_nothing(run_copy, tmp_path, capsys, monkeypatch):
    here = tmp_path / "here"
    here.mkdir()
    (here / "notes.txt").write_text("keep")
    monkeypatch.chdir(here)
    assert main(["export", "--run", str(run_copy), "--out", ".", "--force"]) == 2
    assert "working folder" in one_error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "project"]
    assert (here / "notes.txt").read_text() == "keep"


def test_export_on_a_full_disk_keeps_the_old_export(run_copy, tmp_path, capsys, monkeypatch):
    import tensorflow as tf

    out = tmp_path / "export"
    out.mkdir()
    (out / "saved_model.pb").write_bytes(b"old")
    monkeypatch.setattr(tf.saved_model, "save", disk_full)
    assert main(["export", "--run", str(run_copy), "--out", str(out), "--force"]) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "unchanged" in line
    assert snapshot(out) == {out.joinpath("saved_model.pb").relative_to(out): b"old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "project"]


# ---- evaluate -------------------------------------------------------------------------------------
def test_evaluate_out_set_to_the_run_folder_is_refused(run_copy, capsys):
    before = snapshot(run_copy)
    assert main(["evaluate", "--run", str(run_copy), "--out", str(run_copy), *EVAL_ARGS]) == 2
    assert "would be deleted" in one_error_line(capsys)
    assert snapshot(run_copy) == before


def test_evaluate_out_holding_other_files_is_refused(run_copy, tmp_path, capsys):
    out = tmp_path / "data"
    out.mkdir()
    (out / "table.xlsx").write_bytes(b"mine")
    assert main(["evaluate", "--run", str(run_copy), "--out", str(out), *EVAL_ARGS]) == 2
    line = one_error_line(capsys)
    assert "table.xlsx" in line and "not part of a report" in line
    assert (out / "table.xlsx").read_bytes() == b"mine"


def old_report(out):
    out.mkdir()
    for name in ("report.md", "metrics.csv", "all_log_q.png"):
        (out / name).write_bytes(f"older {name}".encode())
    return snapshot(out)


def test_evaluate_over_an_older_report_on_a_full_disk_leaves_it_whole(run_copy, tmp_path, capsys, monkeypatch):
    import types

    from tfp_aline.cli import evaluate
    from tfp_aline.evaluation import report

    def half_a_report(result, out, **kwargs):
        (out / "metrics.csv").write_text("new")
        disk_full()

    out = tmp_path / "report"
    first = old_report(out)
    monkeypatch.setattr(evaluate, "_evaluate", lambda *a: types.SimpleNamespace(rows=[], horizon=4))
    monkeypatch.setattr(report, "write_report", half_a_report)
    assert main(["evaluate", "--run", str(run_copy), "--out", str(out), *EVAL_ARGS]) == 2
    line = one_error_line(capsys)
    assert f"--out {out}" in line and "No space left on device" in line and "unchanged" in line
    assert snapshot(out) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "report"]


@pytest.mark.slow  # a real evaluation: about 20 s on one core (the full-disk case above runs by default)
def test_evaluate_over_an_older_report_replaces_it_whole(run_copy, tmp_path):
    out = tmp_path / "report"
    old_report(out)
    (out / "stale.png").write_bytes(b"from an older report")
    assert main(["evaluate", "--run", str(run_copy), "--out", str(out), *EVAL_ARGS]) == 0
    assert not (out / "stale.png").exists() and (out / "metrics.csv").read_bytes() != b"older metrics.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "report"]


def test_evaluate_whose_partial_folder_would_be_a_run_is_refused(run_copy, tmp_path, capsys):
    out = tmp_path / "report"
    shutil.copytree(run_copy, tmp_path / "report-partial")
    before = snapshot(tmp_path / "report-partial")
    assert main(["evaluate", "--run", str(run_copy), "--out", str(out), *EVAL_ARGS]) == 2
    assert "the partial-results folder" in one_error_line(capsys)
    assert snapshot(tmp_path / "report-partial") == before
