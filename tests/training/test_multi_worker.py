"""training.strategy: multi_worker with two worker processes on 127.0.0.1 (TF_CONFIG): both finish with the
same weights, and those equal a one-process run with the same global batch and seed.

Not covered yet (issue 20): only the chief writing (here each worker has its own --logdir), --resume
on a cluster, a worker that dies. Slow: three TensorFlow processes, on a shared core."""

import io
import json
import os
import subprocess
import sys
import time
import zipfile

import h5py
import numpy as np
import pytest
from conftest import ROOT

from tfp_aline.migraine.service.launch import free_port

# Float32 all-reduce of two half-batch gradients vs one whole-batch gradient: round-off only.
# (Measured: 4.3e-6 after the 6 epochs of configs/smoke.yaml.)
TOL = 2e-5
EPOCHS, BATCH = 4, 8
SET = ["--set", f"training.epochs={EPOCHS}", "--set", "training.warmup_epochs=2"]


def train_argv(logdir, *extra):
    return [sys.executable, "-m", "tfp_aline", "train", "--config", str(ROOT / "configs" / "smoke.yaml"),
            "--logdir", str(logdir), "--no-eval", "--no-progress", *SET, *extra]  # fmt: skip


def env(tf_config=None):
    e = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL="2")
    e.pop("TF_CONFIG", None)
    if tf_config is not None:
        e["TF_CONFIG"] = json.dumps(tf_config)
    return e


def weights(run_dir):
    """Every weight array in run_dir/model.keras, by its path in the weights file."""
    out = {}
    with zipfile.ZipFile(run_dir / "model.keras") as z, h5py.File(io.BytesIO(z.read("model.weights.h5"))) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


@pytest.mark.slow
def test_two_local_workers_train_the_weights_one_process_trains(tmp_path):
    workers = [f"127.0.0.1:{free_port()}" for _ in range(2)]
    start = time.perf_counter()
    procs = [
        subprocess.Popen(
            train_argv(tmp_path / f"worker{i}", "--set", "training.strategy=multi_worker"),
            env=env({"cluster": {"worker": workers}, "task": {"type": "worker", "index": i}}),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    cluster_seconds = time.perf_counter() - start
    for p, out in zip(procs, outputs):
        assert p.returncode == 0, out
        assert "strategy: multi_worker (2 replica(s))" in out
    start = time.perf_counter()
    single = subprocess.run(train_argv(tmp_path / "single"), env=env(), capture_output=True, text=True, timeout=900)
    single_seconds = time.perf_counter() - start
    assert single.returncode == 0, single.stdout + single.stderr

    chief, other, alone = (weights(tmp_path / n) for n in ("worker0", "worker1", "single"))
    assert chief.keys() == other.keys() == alone.keys()
    for name in chief:
        np.testing.assert_array_equal(chief[name], other[name], err_msg=name)  # the all-reduce keeps them equal
        np.testing.assert_allclose(chief[name], alone[name], rtol=0, atol=TOL, err_msg=name)
    gap = max(float(np.abs(chief[n] - alone[n]).max()) for n in chief)
    print(
        f"\nmax |chief - one process| = {gap:.2e}; whole command: 2 workers {cluster_seconds:.1f} s, "
        f"one process {single_seconds:.1f} s ({EPOCHS * BATCH} episodes each)"
    )


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
