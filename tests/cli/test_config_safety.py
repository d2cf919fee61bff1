"""train and generate-mock settings (issue 22): duplicate YAML keys, run names that are paths,
infinite numbers, seeds beyond int32, day counts and networks too large for memory, and task
classes whose code fails; each is one line naming the setting, exit 2, nothing written."""

import errno
import sys
import textwrap

import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.config import ConfigError, load_config

SMOKE = ROOT / "configs" / "smoke.yaml"


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


def refused(capsys, tmp_path, *argv) -> str:
    logdir = tmp_path / "run"
    assert main(["train", *argv, "--logdir", str(logdir), "--no-progress", "--no-eval"]) == 2
    assert not logdir.exists()
    return one_error_line(capsys)


# ---- config files -------------------------------------------------------------------------------------
def test_a_duplicate_key_is_refused_with_both_lines(tmp_path, capsys):
    path = tmp_path / "dup.yaml"
    path.write_text(SMOKE.read_text() + "training:\n  epochs: 50\n")
    line = refused(capsys, tmp_path, "--config", str(path))
    first = next(i for i, t in enumerate(SMOKE.read_text().splitlines(), 1) if t.startswith("training:"))
    assert f"duplicate key 'training' (first on line {first})" in line and str(path) in line


def test_a_config_that_is_a_pipe_is_refused_at_once(tmp_path, capsys):
    import os

    fifo = tmp_path / "cfg.yaml"
    os.mkfifo(fifo)
    assert "is not a regular file" in refused(capsys, tmp_path, "--config", str(fifo))


@pytest.mark.parametrize("name", ["../escape", "/tmp/abs", "a/b", "..", ".hidden", ""])
def test_a_run_name_that_is_a_path_is_refused(tmp_path, capsys, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--config", str(SMOKE), "--set", f"name='{name}'", "--no-eval"]) == 2
    line = one_error_line(capsys)
    assert f"name = {name!r}: expected a plain folder name" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "setting", ["network.min_scale=.inf", "training.learning_rate=.inf", "training.clip_norm=.nan"]
)
def test_infinite_or_nan_numbers_are_refused(tmp_path, capsys, setting):
    key = setting.split("=")[0]
    line = refused(capsys, tmp_path, "--config", str(SMOKE), "--set", setting)
    assert f"{key}: expected a finite number" in line


@pytest.mark.parametrize("seed", [str(2**70), "-1", str(2**31)])
def test_seeds_outside_int32_are_refused_by_train_generate_mock_and_evaluate(tmp_path, capsys, seed):
    line = refused(capsys, tmp_path, "--config", str(SMOKE), "--seed", seed)
    assert f"seed = {seed}: expected an integer from 0 to 2147483647" in line
    out = tmp_path / "mock"
    assert main(["generate-mock", "--seed", seed, "--out", str(out)]) == 2
    assert "--seed" in one_error_line(capsys) and not out.exists()
    assert main(["evaluate", "--run", str(tmp_path), "--seed", seed, "--out", str(out)]) == 2
    assert "--seed" in one_error_line(capsys) and not out.exists()


def test_generate_mock_refuses_an_absurd_number_of_days(tmp_path, capsys):
    assert main(["generate-mock", "--n", "1000000000000", "--out", str(tmp_path / "m")]) == 2
    assert "--n must be a number of days from 1 to 1000000" in one_error_line(capsys)


def test_a_network_too_large_for_memory_names_its_settings(tmp_path, capsys):
    line = refused(capsys, tmp_path, "--config", str(SMOKE), "--set", "network.embed_dim=65536")
    assert "network.embed_dim = 65536" in line and "GB of memory here" in line


# ---- task classes whose code fails ----------------------------------------------------------------------
TASK_MODULE = """
import abc
import dataclasses
from tfp_aline.tasks.base import Task

class Half(Task):
    name = "half"
    parameter_names = ("a",)

class Clashing(Task):
    name = "clashing"
    parameter_names = ("a",)
    def prior(self): ...
    def design_distribution(self, n): ...
    def likelihood(self, theta, x): ...
    @classmethod
    def group_names(cls, options):
        return ("all",)

class Failing(Task):
    name = "failing"
    parameter_names = ("a",)
    def prior(self): ...
    def design_distribution(self, n): ...
    def likelihood(self, theta, x): ...
    @classmethod
    def from_options(cls, options):
        raise RuntimeError("cannot reach the data server")
"""


@pytest.fixture
def task_modules(tmp_path, monkeypatch):
    (tmp_path / "mytasks.py").write_text(TASK_MODULE)
    (tmp_path / "brokentasks.py").write_text("raise ValueError('bad module')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in ("mytasks", "brokentasks"):
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("brokentasks:T", "importing 'brokentasks' failed (ValueError: bad module)"),
        ("mytasks:Half", "Half is abstract; it still has to define design_distribution, likelihood, prior"),
        ("mytasks:Failing", "failed (RuntimeError: cannot reach the data server)"),
        ("mytasks:Clashing", "parameter group 'all' has the name of a built-in target"),
    ],
)
def test_a_task_class_whose_code_fails_is_one_line(tmp_path, capsys, task_modules, spec, expected):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(
        textwrap.dedent(f"""\
        name: t
        task: {{class: "{spec}"}}
        episodes: {{batch_size: 2, num_candidates: 4, horizon: 2, num_predictive_targets: 0}}
        """)
    )
    if "Clashing" not in spec:
        with pytest.raises(ConfigError, match="task"):
            from tfp_aline.tasks.registry import build_task

            build_task(load_config(cfg, check_targets=False).task)
    line = refused(capsys, tmp_path, "--config", str(cfg))
    assert expected in line


# ---- generate-mock on a full disk -------------------------------------------------------------------------
def test_generate_mock_on_a_full_disk_leaves_the_old_set_whole(tmp_path, capsys, monkeypatch):
    from tfp_aline import atomic

    out = tmp_path / "data"
    out.mkdir()
    for name in ("mock_distribution.pkl", "mock_distribution.npz", "mock_distribution.json"):
        (out / name).write_bytes(b"seed 0, 5000 days: " + name.encode())
    for name in ("mock_distribution.csv", "mock_correlation.png", "migraine_prediction.xlsx"):
        (out / name).write_bytes(b"seed 0, 5000 days: " + name.encode())
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_fdopen = atomic.os.fdopen
    writes = []

    def fill_up(fd, mode):
        writes.append(fd)
        if len(writes) == 3:  # the third file of the set finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fdopen(fd, mode)

    monkeypatch.setattr(atomic.os, "fdopen", fill_up)
    assert main(["generate-mock", "--out", str(out), "--n", "400", "--seed", "3"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "No space left on device" in line and "no file there was changed" in line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
