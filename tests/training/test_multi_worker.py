"""training.strategy: multi_worker with two worker processes on 127.0.0.1: both finish, the chief's weights
equal a one-process run with the same global batch and seed; both write into the SAME --logdir (as on a
shared filesystem) and it holds exactly what a one-process run writes (only the chief writes; the other
worker's scratch folder is gone); a SIGTERM to the chief stops both at the same epoch, and `--resume` on
both continues the step counter to weights equal to one uninterrupted process; a worker that dies stops
the other with one line. Slow: several TensorFlow processes on a shared core."""

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from tensorboard.backend.event_processing import event_accumulator

from tfp_aline.migraine.service.launch import free_port

# Float32 all-reduce of two half-batch gradients vs one whole-batch gradient: round-off only.
# (Measured over the weights training moves: 3.1e-7 after 4 epochs, 2.8e-7 after 16 with a resume.)
TOL = 2e-5
EPOCHS, BATCH = 4, 8
SET = ["--set", f"training.epochs={EPOCHS}", "--set", "training.warmup_epochs=2"]


def train_argv(logdir, *extra):
    return [sys.executable, "-m", "tfp_aline", "train", "--config", str(ROOT / "configs" / "smoke.yaml"),
            "--logdir", str(logdir), "--no-eval", "--no-progress", *SET, *extra]  # fmt: skip


def env(tf_config=None, tmp=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    e.pop("TF_CONFIG", None)
    if tf_config is not None:
        e["TF_CONFIG"] = json.dumps(tf_config)
    if tmp is not None:  # where a worker's scratch folder goes
        tmp.mkdir(exist_ok=True)
        e["TMPDIR"] = str(tmp)
    return e


def weights(run_dir):
    """Every weight array in run_dir/model.keras, by its path in the weights file."""
    out = {}
    with zipfile.ZipFile(run_dir / "model.keras") as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def files(run_dir):
    """The run dir's files, events files by kind (their names hold a time stamp, host and pid)."""
    return sorted(
        "events.out.tfevents" if p.name.startswith("events.out.tfevents") else str(p.relative_to(run_dir))
        for p in run_dir.rglob("*")
        if p.is_file()
    )


# Weights whose gradient is zero up to round-off (e.g. the attention key bias: softmax ignores it) stay
# near their zero start, but Adam turns round-off gradients into steps of either sign: over 16 epochs
# such a weight reached 2.7e-5 in one run and -2.5e-5 in the other, while every weight that training
# moves agreed to 2.8e-7. A weight below NEAR_ZERO in the one-process run is compared at NEAR_ZERO.
NEAR_ZERO = 1e-4


def assert_close(chief, alone):
    """Every weight within TOL (NEAR_ZERO for the near-zero ones); returns the largest gap of the others."""
    assert chief.keys() == alone.keys()
    moved = [n for n in chief if np.abs(alone[n]).max() > NEAR_ZERO]
    for name in chief:
        tol = TOL if name in moved else NEAR_ZERO
        np.testing.assert_allclose(chief[name], alone[name], rtol=0, atol=tol, err_msg=name)
    return max(float(np.abs(chief[n] - alone[n]).max()) for n in moved)


def start_cluster(logdir, tmp, *extra, stdout=subprocess.PIPE):
    """Two workers training into the same logdir: worker 0 by the --workers flags, worker 1 by TF_CONFIG."""
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    flags = ["--workers", ",".join(workers), "--worker-index", "0"]
    tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": 1}}
    return [
        subprocess.Popen(
            train_argv(logdir, *flags, *extra), env=env(tmp=tmp), stdout=stdout, stderr=subprocess.STDOUT, text=True
        ),
        subprocess.Popen(
            train_argv(logdir, "--set", "training.strategy=multi_worker", *extra),
            env=env(tf_config, tmp=tmp),
            stdout=stdout,
            stderr=subprocess.STDOUT,
            text=True,
        ),
    ]


@pytest.mark.slow
def test_two_local_workers_in_one_logdir_train_what_one_process_trains_and_only_the_chief_writes(tmp_path):
    start = time.perf_counter()
    procs = start_cluster(tmp_path / "cluster", tmp_path / "tmp")
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    cluster_seconds = time.perf_counter() - start
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
        assert "strategy: multi_worker (2 replica(s))" in out
    assert "worker 0 of 2 (writes the run dir)" in outputs[0]
    assert "worker 1: trained 4 epochs; the chief wrote the model" in outputs[1]
    start = time.perf_counter()
    single = subprocess.run(train_argv(tmp_path / "single"), env=env(), capture_output=True, text=True, timeout=900)
    single_seconds = time.perf_counter() - start
    assert single.returncode == 0, single.stdout + single.stderr

    # No file written twice: the shared run dir holds what one process writes, one events file.
    assert files(tmp_path / "cluster") == files(tmp_path / "single")
    assert files(tmp_path / "cluster").count("events.out.tfevents") == 1
    assert not list((tmp_path / "tmp").iterdir())  # worker 1's scratch folder was removed
    gap = assert_close(weights(tmp_path / "cluster"), weights(tmp_path / "single"))
    print(
        f"\nmax |chief - one process| = {gap:.2e}; whole command: 2 workers {cluster_seconds:.1f} s, "
        f"one process {single_seconds:.1f} s ({EPOCHS * BATCH} episodes each)"
    )


def loss_steps(run_dir):
    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    return sorted(e.step for e in acc.Tensors("loss/total"))


@pytest.mark.slow
def test_a_stopped_cluster_resumes_on_both_workers_and_ends_where_one_process_does(tmp_path):
    total = 16
    logdir = tmp_path / "cluster"
    settings = ["--set", f"training.epochs={total}", "--set", "logging.checkpoint_every=1"]
    settings += ["--set", "logging.images_every=1000", "--set", "logging.histograms_every=1000"]
    procs = start_cluster(logdir, tmp_path / "tmp", *settings)
    deadline = time.monotonic() + 600
    while not (logdir / "checkpoints" / "ckpt-2.index").exists():
        assert time.monotonic() < deadline and procs[0].poll() is None, procs[0].communicate()[0]
        time.sleep(0.2)
    procs[0].send_signal(signal.SIGTERM)  # the chief only: the other worker stops at the same epoch
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [143, 143], outputs
    reached = int(tf.train.latest_checkpoint(str(logdir / "checkpoints")).rsplit("-", 1)[1])
    assert 2 <= reached < total, outputs
    for out in outputs:
        assert f"SIGTERM received: stopping at epoch {reached} of {total}" in out, out
    assert "continue with: every worker with tfp-aline train --resume" in outputs[0]

    resumed = start_cluster(logdir, tmp_path / "tmp", "--resume", *settings)
    outputs = [p.communicate(timeout=900)[0] for p in resumed]
    for p, out in zip(resumed, outputs):
        assert p.returncode == 0, out
        assert f"resuming at epoch {reached}" in out, out
    single = subprocess.run(
        train_argv(tmp_path / "single", *settings), env=env(), capture_output=True, text=True, timeout=900
    )
    assert single.returncode == 0, single.stdout + single.stderr
    # The step counter continued: every epoch logged once, by the chief's two writers only.
    assert loss_steps(logdir) == list(range(1, total + 1))
    assert files(logdir).count("events.out.tfevents") == 2
    assert not list((tmp_path / "tmp").iterdir())
    gap = assert_close(weights(logdir), weights(tmp_path / "single"))
    print(f"\nstopped at epoch {reached} of {total}, resumed: max |chief - one process| = {gap:.2e}")


@pytest.mark.slow
def test_a_worker_that_dies_stops_the_other_with_one_line(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    long = ["--set", "training.strategy=multi_worker", "--set", "training.epochs=100000"]
    procs = []
    for i in range(2):
        with open(logs[i], "w") as log:
            procs.append(
                subprocess.Popen(
                    train_argv(tmp_path / f"worker{i}", *long),
                    env=env({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}),
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        deadline = time.monotonic() + 300
        # Training is under way once the chief's run dir has its first checkpoint (checkpoint_every: 2).
        while not (tmp_path / "worker0" / "checkpoints").is_dir():
            assert time.monotonic() < deadline and procs[0].poll() is None, logs[0].read_text()
            time.sleep(1)
        procs[1].kill()
        code = procs[0].wait(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    lines = logs[0].read_text().strip().splitlines()
    assert code == 2, lines[-20:]
    assert lines[-1].startswith("error: the cluster lost worker /job:worker/replica:0/task:1"), lines[-1]
    assert "Traceback" not in logs[0].read_text()


@pytest.mark.slow
def test_workers_started_with_different_settings_both_stop_with_one_line(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    flags = lambda i: ["--workers", ",".join(workers), "--worker-index", str(i)]  # noqa: E731
    lr = [[], ["--set", "training.learning_rate=2e-3"]]
    procs = [
        subprocess.Popen(
            train_argv(tmp_path / "cluster", *flags(i), *lr[i]),
            env=env(tmp=tmp_path / "tmp"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        out = p.communicate(timeout=600)[0]
        assert p.returncode == 2, out
        lines = out.strip().splitlines()
        assert lines[-1].startswith("error: the workers were started with different settings"), lines[-5:]
        assert "Traceback" not in out
    assert not (tmp_path / "cluster" / "checkpoints").exists() and not list((tmp_path / "tmp").iterdir())
