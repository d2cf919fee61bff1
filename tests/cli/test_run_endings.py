"""Runs that end badly: evaluate on SIGTERM, unreadable checkpoints, resumes that
do not fit, runs without model.keras, run dirs that would be overwritten. Each ends with one line."""

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.config import load_config
from tfp_aline.runs import find_checkpoint, load_run
from tfp_aline.training.trainer import Trainer

SMOKE = ROOT / "configs" / "smoke.yaml"


def smoke(*overrides):
    return load_config(SMOKE, list(overrides))


@pytest.fixture
def run_copy(smoke_run_dir, tmp_path):
    """A private copy of the shared 6-epoch smoke run (checkpoints ckpt-4 and ckpt-6, model.keras)."""
    return shutil.copytree(smoke_run_dir, tmp_path / "run")


def truncate(run, name="ckpt-6"):
    (data,) = (run / "checkpoints").glob(f"{name}.data-*")
    with open(data, "r+b") as f:
        f.truncate(data.stat().st_size // 2)
    return data


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def stderr_lines(capsys):
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()


# ---- 1: evaluate on SIGTERM ------------------------------------------------------------------------
EVAL_ARGS = [
    "--episodes",
    "4",
    "--baseline-episodes",
    "2",
    "--methods",
    "policy",
    "random",
    "--targets",
    "all",
    "--no-exact",
    "--no-progress",
]


def test_evaluate_sigterm_keeps_the_finished_runs_and_leaves_out_alone(run_copy, tmp_path, capsys, monkeypatch):
    import tfp_aline.evaluation.evaluate as evaluate_mod

    real = evaluate_mod.run_acquisition

    def then_sigterm(*args, **kwargs):  # the signal arrives while the first method runs
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(evaluate_mod, "run_acquisition", then_sigterm)
    out = tmp_path / "eval"
    out.mkdir()
    (out / "report.md").write_text("an earlier, complete report\n")
    code = main(["evaluate", "--run", str(run_copy), "--out", str(out), *EVAL_ARGS])
    assert code == 128 + signal.SIGTERM
    (line,) = stderr_lines(capsys)
    assert line.startswith("error: SIGTERM received: evaluation stopped after 1 method run(s) (policy on all)")
    assert (out / "report.md").read_text() == "an earlier, complete report\n"
    import pandas as pd

    partial = pd.read_csv(tmp_path / "eval-partial" / "metrics.csv")
    assert set(partial.method) <= {"policy", "oracle", "prior"} and "policy" in set(partial.method)
    assert not list(tmp_path.rglob("*.tmp")) and not list(tmp_path.glob(".eval-partial.*"))
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are given back


def test_evaluate_process_sigterm_exits_143_with_one_line(run_copy, tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfp_aline",
            "evaluate",
            "--run",
            str(run_copy),
            "--out",
            str(tmp_path / "eval"),
            "--episodes",
            "64",
            "--no-progress",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stdout.readline()
        if not line or line.startswith("device:"):  # EOF: it died; the assertions below say how
            break
    time.sleep(1)  # inside the first method run
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=180)
    assert proc.returncode == 128 + signal.SIGTERM, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: SIGTERM received: evaluation stopped"), err
    assert "SIGTERM received: finishing the method in flight" in out
    assert not (tmp_path / "eval").exists() and not list(tmp_path.rglob("*.tmp"))


def test_docs_say_which_signals_are_safe():
    section = (ROOT / "docs" / "signals.md").read_text(encoding="utf-8")
    for word in ("`train` and `evaluate` are safe to stop", "SIGTERM", "SIGHUP", "SIGINT", "SIGKILL"):
        assert word in section, word


# ---- 2: an unreadable latest checkpoint ---------------------------------------------------------------
def test_truncated_latest_checkpoint_falls_back_to_the_previous_with_one_warning(run_copy, capsys):
    data = truncate(run_copy)
    found = find_checkpoint(run_copy / "checkpoints")
    assert (found.name, found.epoch) == ("ckpt-4", 4)
    (run_copy / "model.keras").unlink()
    run = load_run(run_copy)  # what evaluate and advise do without model.keras
    warning, which = stderr_lines(capsys)
    assert (
        warning.startswith(
            f"warning: {run_copy / 'checkpoints' / 'ckpt-6'} is unreadable: {data.name} is "
            "truncated or damaged (IndexError"
        )
        and "previous checkpoint ckpt-4 (epoch 4)" in warning
    )
    assert "using its checkpoint ckpt-4, epoch 4 of 6" in which
    import tensorflow as tf

    from tfp_aline.nn.build import build_model

    reference = build_model(run.cfg, run.task)
    tf.train.Checkpoint(model=reference).restore(str(run_copy / "checkpoints" / "ckpt-4")).expect_partial()
    inputs = run.model.dummy_inputs(batch_size=2, num_context=3, num_candidates=4, num_predictive=3)
    for k, v in run.model(inputs).items():
        np.testing.assert_allclose(v.numpy(), reference(inputs)[k].numpy(), atol=1e-6)


def test_resume_after_a_truncated_checkpoint_continues_from_the_previous(run_copy, capsys):
    truncate(run_copy)
    trainer = Trainer(smoke(), run_copy, resume=True)
    assert int(trainer.epoch.numpy()) == 4
    (warning,) = stderr_lines(capsys)
    assert "ckpt-6 is unreadable" in warning and "using the previous checkpoint ckpt-4" in warning


def test_no_readable_checkpoint_is_one_error_naming_each_file(run_copy, capsys):
    truncate(run_copy, "ckpt-6")
    truncate(run_copy, "ckpt-4")
    (run_copy / "model.keras").unlink()
    assert main(["advise", "--run", str(run_copy), "--history", str(ROOT / "data" / "example_person.csv")]) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith("error: ") and "no readable checkpoint" in line
    assert "ckpt-6.data-00000-of-00001" in line and "ckpt-4.data-00000-of-00001" in line


# ---- 3: resumes that do not fit the run ------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["network.embed_dim=32"], "network.embed_dim: 16 in the run, 32 now"),
        (["episodes.horizon=3", "seed=5"], "seed: 0 in the run, 5 now; episodes.horizon: 4 in the run, 3 now"),
        (["training.epochs=3"], "training.epochs = 3 is below epoch 6 that its checkpoint ckpt-6 reached"),
    ],
)
def test_resume_that_does_not_fit_is_refused_before_touching_anything(run_copy, capsys, overrides, expected):
    before = snapshot(run_copy)
    argv = ["train", "--resume", "--logdir", str(run_copy), "--no-progress", "--no-eval"]
    assert main(argv + [a for o in overrides for a in ("--set", o)]) == 2
    (line,) = stderr_lines(capsys)
    assert line.startswith(f"error: cannot resume {run_copy}: ") and expected in line, line
    assert snapshot(run_copy) == before


def test_resume_may_extend_epochs_and_change_logging(run_copy):
    trainer = Trainer(smoke("training.epochs=8", "logging.checkpoint_every=4"), run_copy, resume=True)
    assert int(trainer.epoch.numpy()) == 6
    assert load_config(run_copy / "config.yaml").training.epochs == 6  # the constructor only reads
    trainer.open()  # what fit does first
    assert load_config(run_copy / "config.yaml").training.epochs == 8
    trainer.close()


# ---- 4: runs without model.keras ----------------------------------------------------------------------
def test_run_without_model_keras_says_which_checkpoint_it_uses(run_copy, tmp_path, capsys):
    (run_copy / "model.keras").unlink()
    assert main(["export", "--run", str(run_copy), "--out", str(tmp_path / "saved")]) == 0
    (warning,) = stderr_lines(capsys)
    assert warning == f"warning: {run_copy} has no model.keras: using its checkpoint ckpt-6, epoch 6 of 6"
    cfg = run_copy / "config.yaml"
    cfg.write_text(cfg.read_text().replace("epochs: 6", "epochs: 3000"))
    load_run(run_copy)
    (warning,) = stderr_lines(capsys)
    assert "epoch 6 of 3000, a partly trained model" in warning


# ---- 5: a run dir that training would overwrite --------------------------------------------------------
def test_training_into_a_finished_run_without_checkpoints_is_refused(run_copy, capsys):
    shutil.rmtree(run_copy / "checkpoints")
    (run_copy / "evaluation.json").write_text("{}")
    before = snapshot(run_copy)
    assert main(["train", "--config", str(SMOKE), "--logdir", str(run_copy), "--no-progress"]) == 2
    (line,) = stderr_lines(capsys)
    assert "already holds model.keras and evaluation.json of an earlier run" in line
    assert main(["train", "--resume", "--logdir", str(run_copy), "--no-progress"]) == 2
    assert "nothing to resume" in stderr_lines(capsys)[0]
    assert snapshot(run_copy) == before
