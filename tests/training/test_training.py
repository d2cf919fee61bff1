"""The training loop on the smoke config: logs, checkpoints and resume, crashes, non-finite values, devices."""

import math
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT
from tensorboard.backend.event_processing import event_accumulator

from tfp_aline.config import load_config
from tfp_aline.errors import TrainingError
from tfp_aline.training import trainer as trainer_mod
from tfp_aline.training.trainer import Trainer

SMOKE = ROOT / "configs" / "smoke.yaml"
SCALARS = (
    "loss/nll",
    "loss/policy",
    "loss/total",
    "logq/t0",
    "logq/t1",
    "logq/tmid",
    "logq/tT",
    "optim/lr",
    "optim/grad_norm",
    "perf/epochs_per_s",
)
POLICY_SCALARS = ("reward/mean", "policy/entropy")  # only the policy phase has choices of its own


def smoke(*overrides):
    return load_config(SMOKE, list(overrides))


def read_events(logdir):
    acc = event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_tags_and_finite_values(smoke_training):
    trainer, result = smoke_training
    acc = read_events(result.logdir)
    tags = set(acc.Tags()["tensors"])
    for tag in SCALARS:
        assert tag in tags, tag
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        assert len(values) == trainer.cfg.training.epochs and all(math.isfinite(v) for v in values), tag
    policy_epochs = trainer.cfg.training.epochs - trainer.cfg.training.warmup_epochs
    for tag in POLICY_SCALARS:
        values = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors(tag)]
        assert len(values) == policy_epochs and all(math.isfinite(v) for v in values), tag
    assert any(t.startswith("weights/") for t in tags)  # histograms are tensors in TF2 summaries
    assert {"images/query_strategy", "images/posteriors"} <= tags
    policy = [float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("loss/policy")]
    assert policy[:3] == [0.0] * 3 and any(v != 0 for v in policy[3:])  # warm-up, then policy gradient


def test_run_dir_holds_model_config_and_checkpoints(smoke_training):
    trainer, result = smoke_training
    assert result.epoch == 6 and not result.interrupted
    assert load_config(result.logdir / "config.yaml") == trainer.cfg
    loaded = keras.saving.load_model(result.logdir / "model.keras")
    inputs = trainer.model.dummy_inputs(batch_size=2, num_context=3, num_candidates=5, num_predictive=3)
    for k, v in trainer.model(inputs).items():
        np.testing.assert_allclose(loaded(inputs)[k], v, atol=1e-6)
    assert trainer.manager.latest_checkpoint.endswith("ckpt-6")


def test_existing_run_dir_needs_resume(smoke_training):
    with pytest.raises(TrainingError, match="--resume"):
        Trainer(smoke(), smoke_training[1].logdir)


def test_the_constructor_writes_nothing_open_takes_the_run_dir(tmp_path):
    """Trainer() only reads; open() (fit's first step) creates the folder, locks it and writes
    config.yaml and the TensorBoard file; close() releases the lock."""
    from tfp_aline.runs import _LOCKS

    logdir = tmp_path / "run"
    trainer = Trainer(smoke(), logdir)
    assert not logdir.exists() and trainer.outdir is None
    assert trainer.role.is_chief and trainer.role.num_workers == 1
    trainer.open()
    trainer.open()  # once only
    assert trainer.outdir == logdir and os.path.realpath(logdir) in _LOCKS
    assert load_config(logdir / "config.yaml") == trainer.cfg
    assert len(list(logdir.glob("events.out.tfevents.*"))) == 1
    trainer.close()
    assert os.path.realpath(logdir) not in _LOCKS


def test_epoch_inputs_come_from_the_epoch_and_stream_alone(tmp_path):
    """Two trainers draw the same inputs for an epoch; another stream or epoch draws others; a
    pool size changes N only."""
    cfg = smoke("training.gradient_steps=2")
    a, b = Trainer(cfg, tmp_path / "a"), Trainer(cfg, tmp_path / "b")
    e, horizon, size = cfg.episodes, cfg.episodes.horizon, cfg.episodes.batch_size
    batch, tmask, noise, steps = a.epoch_inputs(tf.constant(3, tf.int64))
    again = b.epoch_inputs(tf.constant(3, tf.int64))
    for x, y in zip(tf.nest.flatten((batch, tmask, noise, steps)), tf.nest.flatten(again)):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
    assert tuple(noise.shape) == (horizon, size, e.num_candidates) and tmask.shape[0] == size
    assert steps.dtype == tf.float32 and steps.shape == (2,) and np.all(np.diff(steps.numpy()) > 0)
    other_stream = a.epoch_inputs(tf.constant(3, tf.int64), 1)[2]
    other_epoch = a.epoch_inputs(tf.constant(4, tf.int64))[2]
    assert not np.allclose(noise.numpy(), other_stream.numpy()) and not np.allclose(noise.numpy(), other_epoch.numpy())
    small = a.epoch_inputs(tf.constant(3, tf.int64), 0, 5)[2]
    assert tuple(small.shape) == (horizon, size, 5)


def test_resume_continues_counter_optimizer_and_logs(tmp_path):
    first = Trainer(smoke("training.epochs=4"), tmp_path).fit(progress=False)
    assert first.epoch == 4
    again = Trainer(smoke("training.epochs=6"), tmp_path, resume=True)
    assert int(again.epoch.numpy()) == 4 and int(again.optimizer.iterations.numpy()) == 4
    assert again.fit(progress=False).epoch == 6 and int(again.optimizer.iterations.numpy()) == 6
    steps = sorted(e.step for e in read_events(tmp_path).Tensors("loss/total"))
    assert steps == [1, 2, 3, 4, 5, 6]


def test_same_seed_same_training(tmp_path):
    a = Trainer(smoke("training.epochs=2"), tmp_path / "a").fit(progress=False)
    b = Trainer(smoke("training.epochs=2"), tmp_path / "b").fit(progress=False)
    la = [float(tf.make_ndarray(e.tensor_proto)) for e in read_events(a.logdir).Tensors("loss/total")]
    lb = [float(tf.make_ndarray(e.tensor_proto)) for e in read_events(b.logdir).Tensors("loss/total")]
    assert la == lb


@pytest.fixture
def poisoned_nll(monkeypatch):
    """Make the NLL non-finite (the patched loss is traced into the step)."""
    real = trainer_mod.objectives.nll_loss
    monkeypatch.setattr(trainer_mod.objectives, "nll_loss", lambda logq: real(logq) * float("nan"))


def test_nonfinite_steps_are_skipped_and_never_saved(tmp_path, poisoned_nll):
    trainer = Trainer(smoke("training.epochs=3"), tmp_path)
    before = [v.numpy().copy() for v in trainer.model.trainable_variables]
    result = trainer.fit(progress=False)
    assert result.skipped_epochs == [1, 2, 3]
    for b, v in zip(before, trainer.model.trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())
    assert trainer.weights_finite() and trainer.manager.latest_checkpoint


def test_nonfinite_stop_names_the_epoch(tmp_path, poisoned_nll):
    trainer = Trainer(smoke("training.on_nonfinite=stop"), tmp_path)
    with pytest.raises(TrainingError, match="epoch 1: non-finite loss/nll"):
        trainer.fit(progress=False)


def test_nan_weights_are_never_saved(tmp_path):
    trainer = Trainer(smoke("training.epochs=1"), tmp_path)
    trainer.model.trainable_variables[0].assign(tf.fill(trainer.model.trainable_variables[0].shape, np.nan))
    with pytest.raises(TrainingError, match="not finite"):
        trainer.save_checkpoint()
    assert trainer.manager.latest_checkpoint is None


def test_mixed_precision_trains_with_float32_variables_and_heads(tmp_path):
    trainer = Trainer(smoke("training.mixed_precision=true", "training.epochs=4"), tmp_path)
    try:
        assert trainer.precision == "mixed_bfloat16"
        assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)
        result = trainer.fit(progress=False)
        assert result.epoch == 4 and not result.skipped_epochs and trainer.weights_finite()
        out = trainer.model(trainer.model.dummy_inputs(num_predictive=3))
        assert all(v.dtype == tf.float32 for v in out.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


def train_process(logdir, *extra):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tfp_aline",
            "train",
            "--config",
            str(SMOKE),
            "--logdir",
            str(logdir),
            "--no-progress",
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def endless_training(logdir, *settings):
    """A `train` subprocess that runs until stopped (100000 epochs, no images), with more --set values."""
    pairs = [
        arg
        for value in ("training.epochs=100000", "logging.images_every=100000", *settings)
        for arg in ("--set", value)
    ]
    return train_process(logdir, *pairs)


def test_sigkill_then_resume(tmp_path):
    logdir = tmp_path / "run"
    proc = endless_training(logdir, "logging.checkpoint_every=1")
    deadline = time.time() + 240
    while not list((logdir / "checkpoints").glob("ckpt-3.index")) and time.time() < deadline:
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    reached = tf.train.latest_checkpoint(str(logdir / "checkpoints"))
    assert reached is not None, "no checkpoint was written before the deadline"
    done = int(reached.rsplit("-", 1)[1])
    resumed = train_process(logdir, "--resume", "--set", f"training.epochs={done + 2}", "--set", "evaluation.people=8")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    assert f"resuming at epoch {done}" in out and f"trained {done + 2} epochs" in out
    assert "learned policy" in out and "random queries" in out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_stop_signals_save_the_epoch_reached_and_resume_continues(tmp_path, signum):
    """Ctrl-C (SIGINT), SIGTERM and SIGHUP: the epoch in flight finishes, a checkpoint is saved,
    the exit status is 128 + signal, and --resume continues from that epoch."""
    logdir = tmp_path / "run"
    proc = endless_training(logdir, "logging.checkpoint_every=100000", "logging.scalars_every=1")
    deadline = time.time() + 240
    while not list(logdir.glob("events.out.tfevents.*")) and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(8)  # into the epochs, far from any periodic checkpoint
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, out
    name = signal.Signals(signum).name
    assert f"{name} received: stopping at epoch" in out and "Traceback" not in out, out
    assert "continue with: tfp-aline train --resume" in out, out
    reached = tf.train.latest_checkpoint(str(logdir / "checkpoints"))
    assert reached is not None, out
    epoch = int(reached.rsplit("-", 1)[1])
    assert epoch > 0 and f"stopping at epoch {epoch} of 100000" in out
    resumed = Trainer(load_config(logdir / "config.yaml"), logdir, resume=True)
    assert int(resumed.epoch.numpy()) == epoch


MIRRORED = textwrap.dedent("""
    import sys, json
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from tfp_aline.config import load_config
    from tfp_aline.training.trainer import Trainer
    out = {}
    for strategy in ("default", "mirrored"):
        cfg = load_config(sys.argv[1], [f"training.strategy={strategy}"])
        t = Trainer(cfg, sys.argv[2] + "/" + strategy)
        warm, _, _ = t.train_epoch(0)
        policy, _, _ = t.train_epoch(cfg.training.warmup_epochs)
        out[strategy] = dict(replicas=t.strategy.num_replicas_in_sync, warm=warm, policy=policy)
    print(json.dumps(out))
""")


def test_mirrored_strategy_matches_one_device(tmp_path):
    import json

    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, str(SMOKE), str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=dict(os.environ, CUDA_VISIBLE_DEVICES=""),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["default"]["replicas"] == 1 and out["mirrored"]["replicas"] == 2
    for phase in ("warm", "policy"):
        for key in ("loss/total", "loss/nll", "loss/policy", "optim/grad_norm"):
            assert out["mirrored"][phase][key] == pytest.approx(out["default"][phase][key], rel=1e-4, abs=1e-5), (
                phase,
                key,
            )


def test_validation_records_the_gap_to_the_exact_posterior(tmp_path):
    """validation.csv and `validation/...` scalars: amortized vs Laplace RMSE at t = 0, T/2, T, for
    every parameter target, at epoch 0, every `validate_every` epochs and at the end; a resume
    drops rows from beyond its checkpoint and keeps counting wall-clock hours."""
    cfg = smoke("training.epochs=4", "logging.validate_every=2", "logging.validation_people=8")
    result = Trainer(cfg, tmp_path).fit(progress=False)
    lines = (result.logdir / "validation.csv").read_text().splitlines()
    assert lines[0] == trainer_mod.CSV_HEADER.strip()
    rows = [line.split(",") for line in lines[1:]]
    groups = [n for n in cfg.target_names if n != "predictive"]
    assert len(rows) == 3 * len(groups) * 3  # epochs 0, 2, 4 x targets x steps
    assert {int(r[0]) for r in rows} == {0, 2, 4} and {int(r[4]) for r in rows} == {0, 2, 4}
    for r in rows:
        a, e, ratio, cov = map(float, r[5:9])
        assert a > 0 and e > 0 and ratio == pytest.approx(a / e, rel=1e-3) and 0 <= cov <= 1
    hours = [float(r[1]) for r in rows]
    assert hours == sorted(hours) and hours[-1] > 0
    tags = set(read_events(result.logdir).Tags()["tensors"])
    assert {f"validation/{g}/rmse_ratio_t4" for g in groups} <= tags
    resumed = Trainer(
        smoke("training.epochs=6", "logging.validate_every=2", "logging.validation_people=8"), tmp_path, resume=True
    )
    assert float(resumed.train_seconds.numpy()) == pytest.approx(hours[-1] * 3600, rel=1e-2)
    resumed.fit(progress=False)
    epochs = [int(line.split(",")[0]) for line in (result.logdir / "validation.csv").read_text().splitlines()[1:]]
    assert sorted(set(epochs)) == [0, 2, 4, 6] and epochs == sorted(epochs)


def test_policy_phase_levers_keep_the_schedule_and_spare_the_policy_head(tmp_path):
    """Extra inference-only updates leave the policy head as the policy update left it, set the
    optimizer's step counter back to the epochs, and a lower learning rate moves the rest less."""
    levers = ("training.inference_updates=1", "training.random_updates=1", "training.credit=return")
    cfg = smoke("training.clamp_rewards=true", "training.pool_sizes=[12, 16]", *levers)
    t = Trainer(cfg, tmp_path / "levers")
    epoch = cfg.training.warmup_epochs
    t.optimizer.iterations.assign(epoch)
    calls, heads = [], t.model.policy_head.trainable_variables
    apply = t._apply

    def recording(grads, lr, head):
        apply(grads, lr, head)
        calls.append((lr, head, [v.numpy().copy() for v in heads]))

    t._apply = recording
    before = [v.numpy().copy() for v in heads]
    stats, _, applied = t.train_epoch(epoch)
    assert applied and all(math.isfinite(v) for v in stats.values())
    assert [(lr, head) for lr, head, _ in calls] == [(1.0, True), (1.0, False), (1.0, False)]
    after_policy_update = calls[0][2]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after_policy_update))
    for _, _, values in calls[1:]:  # the inference-only updates leave the policy head alone
        assert all(np.array_equal(a, b) for a, b in zip(after_policy_update, values))
    assert int(t.optimizer.iterations.numpy()) == epoch + 1  # the schedule still counts epochs

    def change(factor):
        u = Trainer(smoke(f"training.policy_phase_lr_factor={factor}"), tmp_path / f"lr{factor}")
        u.optimizer.iterations.assign(epoch)
        body = [
            v for v in u.model.trainable_variables if all(v is not h for h in u.model.policy_head.trainable_variables)
        ]
        before = [v.numpy() for v in body]
        u.train_epoch(epoch)
        return sum(float(np.abs(v.numpy() - b).sum()) for v, b in zip(body, before))

    assert change(0.25) == pytest.approx(0.25 * change(1.0), rel=1e-3)
