"""train: a run folder is locked while a process trains into it; a full disk, a stray checkpoint
temporary or an untrained (all non-finite) run end in one line (issue 22)."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.config import load_config
from tfp_aline.runs import lock_run_dir, prepare_run_dir, release_run_dir
from tfp_aline.training.trainer import Trainer, TrainResult

SMOKE = ROOT / "configs" / "smoke.yaml"


def snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and "Traceback" not in err, err
    assert not [x for x in lines if x.startswith("error: ")][1:], err
    return lines[-1]


@pytest.fixture
def run_copy(smoke_run_dir, tmp_path):
    return shutil.copytree(smoke_run_dir, tmp_path / "run")


@pytest.fixture
def other_process_holds(tmp_path):
    """hold(folder): another process locks the folder the way `train` does, until the test ends."""
    procs = []

    def hold(folder):
        code = "import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDONLY); "
        code += "fcntl.flock(fd, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)"
        p = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout.readline().strip() == "locked"

    yield hold
    for p in procs:
        p.kill()
        p.wait()


# ---- two processes, one run folder ---------------------------------------------------------------------
@pytest.mark.parametrize("resume", [False, True])
def test_a_run_folder_another_process_trains_into_is_refused(run_copy, tmp_path, capsys, other_process_holds, resume):
    folder = run_copy if resume else tmp_path / "fresh"
    folder.mkdir(exist_ok=True)
    other_process_holds(folder)
    before = snapshot(folder)
    argv = ["train", "--logdir", str(folder), "--no-eval", "--no-progress"]
    assert main(argv + (["--resume"] if resume else ["--config", str(SMOKE)])) == 2
    assert "another process is training into this run folder" in one_error_line(capsys)
    assert snapshot(folder) == before


def test_the_lock_is_released_after_training_and_taken_again_by_this_process(tmp_path):
    folder = tmp_path / "run"
    lock_run_dir(folder)
    lock_run_dir(folder)  # the same process may prepare the same folder twice (e.g. resume in a notebook)
    code = "import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)"
    assert subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True).returncode != 0
    release_run_dir(folder)
    assert subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True).returncode == 0


def test_a_refused_fresh_run_leaves_no_folder_behind(tmp_path, capsys):
    folder = tmp_path / "new-run"
    assert main(["train", "--config", str(SMOKE), "--logdir", str(folder), "--resume"]) == 2
    one_error_line(capsys)
    assert not folder.exists()


# ---- checkpoints on a full disk ------------------------------------------------------------------------
def test_a_stale_checkpoint_temporary_is_removed_when_the_run_is_locked(run_copy):
    stale = run_copy / "checkpoints" / "ckpt-8_temp"
    stale.mkdir()
    (stale / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"half")
    found = prepare_run_dir(run_copy, load_config(run_copy / "config.yaml"), resume=True)
    release_run_dir(run_copy)
    assert found.name == "ckpt-6" and not stale.exists()


def test_train_on_a_full_disk_is_one_line_and_leaves_no_temporary(run_copy, capsys, monkeypatch):
    import tensorflow as tf

    def full_disk_save(self, checkpoint_number=None):
        (run_copy / "checkpoints" / f"ckpt-{checkpoint_number}_temp").mkdir()
        raise tf.errors.ResourceExhaustedError(None, None, "ckpt_temp/part-0: No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full_disk_save)
    monkeypatch.setattr(Trainer, "fit", lambda self, progress=True: self.save_checkpoint())
    before = snapshot(run_copy / "checkpoints")
    argv = ["train", "--resume", "--logdir", str(run_copy), "--set", "training.epochs=8", "--no-progress"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "No space left on device" in line and "--resume --logdir" in line
    assert snapshot(run_copy / "checkpoints") == before
    assert not list((run_copy / "checkpoints").glob("*_temp"))


def test_an_unwritable_checkpoints_folder_is_refused_before_any_work(run_copy, capsys, monkeypatch):
    # The tests run as root, which permission bits do not stop: os.access stands in for them.
    import os

    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: not str(p).endswith("checkpoints") and real(p, mode))
    monkeypatch.setattr(Trainer, "fit", lambda self, progress=True: pytest.fail("trained into an unwritable run"))
    before = snapshot(run_copy)
    argv = ["train", "--resume", "--logdir", str(run_copy), "--set", "training.epochs=8", "--no-progress"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "checkpoints: no permission to write there" in line
    assert snapshot(run_copy) == before


def test_a_checkpoint_refused_by_permissions_is_one_line(run_copy, capsys, monkeypatch):
    import tensorflow as tf

    def denied(self, checkpoint_number=None):
        raise tf.errors.PermissionDeniedError(None, None, "checkpoints/ckpt-8_temp: Permission denied")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", denied)
    monkeypatch.setattr(Trainer, "fit", lambda self, progress=True: self.save_checkpoint())
    before = snapshot(run_copy / "checkpoints")
    argv = ["train", "--resume", "--logdir", str(run_copy), "--set", "training.epochs=8", "--no-progress"]
    assert main(argv) == 2
    line = one_error_line(capsys)
    assert "Permission denied" in line and "--resume --logdir" in line
    assert snapshot(run_copy / "checkpoints") == before


def test_a_run_whose_epochs_were_almost_all_non_finite_is_an_error(run_copy, capsys, monkeypatch):
    def overflowing(self, progress=True):
        return TrainResult(self.logdir, 8, False, [7, 8])

    monkeypatch.setattr(Trainer, "fit", overflowing)
    argv = ["train", "--resume", "--logdir", str(run_copy), "--set", "training.epochs=8", "--no-progress"]
    assert main(argv + ["--set", "training.learning_rate=1e10"]) == 2
    captured = capsys.readouterr()
    line = captured.err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "Traceback" not in captured.err
    assert "2 of the 2 epochs were skipped as non-finite" in line and "training.learning_rate (now 1e+10)" in line
    assert "trained" not in captured.out
