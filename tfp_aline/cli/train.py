"""`tfp-aline train`: resolve the config and run dir, train, then compare the policy with random queries."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

import tensorflow as tf

from tfp_aline import atomic
from tfp_aline.config import config_warnings, load_config
from tfp_aline.core import seeds
from tfp_aline.core.rollout import rollout
from tfp_aline.devices import make_strategy
from tfp_aline.errors import ConfigError, TrainingError, warn, write_problem
from tfp_aline.evaluation.metrics import summarize
from tfp_aline.paths import check_output_dir
from tfp_aline.runs import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    EVALUATION_FILE,
    MODEL_FILE,
    remove_stale_temporaries,
)
from tfp_aline.training.trainer import Trainer, sample_inputs, target_table


def policy_vs_random(model, task, cfg, people: int, seed: int) -> dict:
    """Mean log q of the true targets after T queries, learned policy (greedy) vs uniform random
    queries, on the same fresh simulated people, targets and candidate pools.

    Returns means, 95% intervals (normal approximation, `metrics.summarize`) and the paired difference.
    """
    e = cfg.episodes
    seed = int(seed) % 2**31  # the run's seed plus an offset: kept within int32
    batch, tmask, noise = sample_inputs(
        task, cfg, target_table(cfg, task), people, tf.constant([seed, seeds.EVALUATION_EPISODES], tf.int32)
    )
    run = tf.function(lambda mode: rollout(model, batch, tmask, e.horizon, mode, noise).logq[-1], reduce_retracing=True)
    final = {mode: run(mode).numpy().astype(float) for mode in ("greedy", "random")}

    def summary(x):
        mean, low, high, _ = summarize(x)
        return {"mean": mean, "ci_low": low, "ci_high": high}

    return {
        "people": people,
        "horizon": e.horizon,
        "policy": summary(final["greedy"]),
        "random": summary(final["random"]),
        "difference": summary(final["greedy"] - final["random"]),
    }


def format_comparison(result: dict) -> str:
    f = lambda s: f"{s['mean']:+.3f} [{s['ci_low']:+.3f}, {s['ci_high']:+.3f}]"  # noqa: E731
    return (
        f"mean log q of the targets after T={result['horizon']} queries on {result['people']} fresh "
        f"simulated people (95% CI):\n  learned policy: {f(result['policy'])}\n"
        f"  random queries: {f(result['random'])}\n  policy - random: {f(result['difference'])}"
    )


def lost_worker_message(error, logdir) -> str:
    """One line for a multi-worker run whose all-reduce failed because a worker stopped (TensorFlow's
    own error is a page of traceback naming the task that stopped sending heartbeats)."""
    tasks = sorted(set(re.findall(r"/job:\w+/replica:\d+/task:\d+", error.message)))
    who = f"worker {', '.join(tasks)}" if tasks else "a worker"
    return (
        f"the cluster lost {who} ({type(error).__name__}), so training stopped; start every worker again "
        f"(with --resume --logdir {logdir} to continue from the newest checkpoint)"
    )


def train_command(config=None, logdir=None, overrides=(), resume=False, seed=None, progress=True, evaluate=True) -> int:
    overrides = list(overrides) + ([f"seed={seed}"] if seed is not None else [])
    notes = []  # warnings, printed once the run dir is accepted (so a refusal stays one line)
    if logdir is not None:
        check_output_dir(logdir, "--logdir")  # before any work: a file there fails now, not later
    if resume:
        if logdir is None:
            raise ConfigError("--resume needs --logdir, the run dir to continue")
        if not Path(logdir).is_dir():
            raise ConfigError(f"--resume: run dir {logdir} not found")
        saved = Path(logdir) / CONFIG_FILE
        if saved.exists():
            if config is not None and Path(config).resolve() != saved.resolve():
                notes.append(
                    f"--resume continues with {saved}; --config {config} is not used (change settings with --set)"
                )
            config = saved  # the run's resolved config; --set may still extend it (e.g. more epochs)
        elif config is None:
            raise ConfigError(f"--resume: {saved} not found and no --config given")
    if config is None:
        raise ConfigError("--config is required (e.g. --config configs/migraine.yaml)")
    cfg = load_config(config, overrides)
    if logdir is None:
        logdir = Path("runs") / f"{cfg.name}-{datetime.datetime.now():%Y%m%d-%H%M%S}"
        check_output_dir(logdir, "--logdir")
    # MultiWorkerMirroredStrategy configures TensorFlow's collective ops, which is allowed only before
    # the runtime starts: it must exist before the task or the model runs a single op.
    strategy = make_strategy(cfg.training.strategy) if cfg.training.strategy == "multi_worker" else None
    # Refuses a clashing run dir before building anything (reading only); open() then locks it
    # against a second `train` (only the chief of a cluster writes it).
    trainer = Trainer(cfg, logdir, resume=resume, strategy=strategy)
    try:
        try:
            trainer.open()
            for message in notes + config_warnings(cfg):
                warn(message)
            return _fit_and_compare(trainer, cfg, Path(logdir), progress, evaluate)
        except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError) as e:
            if strategy is None:
                raise
            raise TrainingError(lost_worker_message(e, logdir)) from None
    except (OSError, tf.errors.OpError) as e:
        raise _run_problem(e, cfg, Path(logdir)) from None
    finally:
        trainer.close()


def _fit_and_compare(trainer, cfg, logdir: Path, progress: bool, evaluate: bool) -> int:
    start = int(trainer.epoch.numpy())
    result = trainer.fit(progress=progress)
    role = trainer.role
    if result.interrupted:
        again = "every worker with " if role.num_workers > 1 else ""
        print(
            f"stopped at epoch {result.epoch}; checkpoint saved; continue with: {again}"
            f"tfp-aline train --resume --logdir {logdir}"
        )
        return 128 + int(result.signal or 2)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
    _check_skipped(result, result.epoch - start, cfg)
    if not role.is_chief:  # the chief writes the model and the evaluation
        print(f"{role.name}: trained {result.epoch} epochs; the chief wrote the model to {logdir / 'model.keras'}")
        return 0
    print(
        f"trained {result.epoch} epochs; model: {logdir / MODEL_FILE}"
        + (f"; skipped non-finite epochs: {result.skipped_epochs}" if result.skipped_epochs else "")
    )
    if evaluate:
        comparison = policy_vs_random(
            trainer.model, trainer.task, cfg, cfg.evaluation.people, cfg.seed + cfg.evaluation.seed_offset
        )
        atomic.write_text(logdir / EVALUATION_FILE, json.dumps(comparison, indent=2))
        print(format_comparison(comparison))
    return 0


def _check_skipped(result, epochs_run: int, cfg):
    """A run that skipped most of its epochs as non-finite has not trained: say so, do not report success."""
    skipped = len(result.skipped_epochs)
    if epochs_run > 0 and 2 * skipped > epochs_run:
        raise TrainingError(
            f"{skipped} of the {epochs_run} epochs were skipped as non-finite (the loss or gradients "
            f"overflowed), so the model in {result.logdir} is not trained; lower training.learning_rate "
            f"(now {cfg.training.learning_rate:g}) and train into a new --logdir"
        )


_WRITE_PROBLEMS = ("No space left", "Disk quota", "Permission denied", "Read-only file system")


def _run_problem(e: Exception, cfg, logdir: Path) -> Exception:
    """A full disk, an unwritable run folder or too little memory as one line; anything else unchanged."""
    text = str(e)
    if isinstance(e, OSError) or any(p in text for p in _WRITE_PROBLEMS):
        remove_stale_temporaries(logdir / CHECKPOINT_DIR)
        return TrainingError(
            f"--logdir {logdir}: cannot write the run ({write_problem(e)}); its last complete checkpoint "
            f"is kept: make room, then continue with: tfp-aline train --resume --logdir {logdir}"
        )
    if isinstance(e, tf.errors.ResourceExhaustedError):
        n = cfg.network
        return TrainingError(
            f"out of memory while training (network.embed_dim = {n.embed_dim}, network.ff_dim = {n.ff_dim}, "
            f"episodes.batch_size = {cfg.episodes.batch_size}); lower them"
        )
    return e
