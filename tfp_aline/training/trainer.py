"""The custom training loop: warm-up, then joint policy-gradient training; logs, checkpoints, resume."""

from __future__ import annotations

import dataclasses
import math
import shutil
import signal
import tempfile
import time
import zlib
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from tfp_aline import atomic
from tfp_aline.cluster import worker_role
from tfp_aline.config import Config
from tfp_aline.core import objectives
from tfp_aline.core.choice import choice_noise
from tfp_aline.core.rollout import random_choices, rollout, state_from_choices
from tfp_aline.core.rollout_state import model_inputs, state_after
from tfp_aline.core.targets import target_mask
from tfp_aline.devices import describe_devices, make_strategy, set_mixed_precision
from tfp_aline.errors import TrainingError
from tfp_aline.nn.build import build_model, copy_weights
from tfp_aline.runs import CHECKPOINT_DIR, CONFIG_FILE, MODEL_FILE, check_run_dir, prepare_run_dir, release_run_dir
from tfp_aline.signals import stop_on_signals
from tfp_aline.tasks.registry import build_task
from tfp_aline.training import summaries
from tfp_aline.training.gradients import sample_steps, stepwise_gradients
from tfp_aline.training.validation import CSV_HEADER

VALIDATION_FILE = "validation.csv"


@dataclasses.dataclass
class TrainResult:
    logdir: Path
    epoch: int
    interrupted: bool
    skipped_epochs: list
    signal: int | None = None  # the signal that stopped the run (SIGINT, SIGTERM, SIGHUP), if any


def target_table(cfg: Config, task) -> tf.Tensor:
    """One row per configured target kind: [K, L + M] bool masks."""
    m = cfg.episodes.num_predictive_targets
    return tf.concat([target_mask(task, name, 1, m) for name in cfg.target_names], axis=0)


def sample_inputs(task, cfg: Config, targets, batch_size: int, seed, num_candidates: int | None = None):
    """Episodes, a target mask per episode (drawn from p(target)) and the choice noise, from one
    stateless seed: (EpisodeBatch, [B, L + M] bool, [T, B, N]); N is the episodes' pool unless given."""
    e = cfg.episodes
    n = num_candidates or e.num_candidates
    s_episodes, s_targets, s_noise = tf.unstack(tf.random.experimental.stateless_split(seed, num=3))
    batch = task.sample_episodes(
        batch_size,
        n,
        seed=s_episodes,
        num_initial_context=e.num_initial_context,
        num_predictive_targets=e.num_predictive_targets,
    )
    log_p = tf.math.log(tf.constant([cfg.target_probs], tf.float32))
    kinds = tf.random.stateless_categorical(log_p, batch_size, s_targets, dtype=tf.int32)[0]
    noise = choice_noise(s_noise, e.horizon, batch_size, n)
    return batch, tf.gather(targets, kinds), noise


@dataclasses.dataclass
class _Loop:
    """What the epoch loop carries from one epoch to the next."""

    skipped: list  # epochs (1-based) whose update was skipped as non-finite
    interval: list  # (stats, (log q [T + 1], evaluated-steps mask [T + 1])) since scalars were last written
    tick: float  # perf_counter() at the end of the last applied epoch: the epochs-per-second rate


class Trainer:
    """Owns the task, model, optimizer, checkpoint manager and TensorBoard writer of one run dir.

    The constructor only reads (the run dir's checks, the checkpoint to resume from); `open()`,
    called by `fit` and by every method that writes, takes the run dir. In a multi-worker cluster
    only the chief writes the run dir: the other workers make the same calls (a checkpoint save
    may hold collective ops) into a scratch folder of their own that `close()` removes."""

    def __init__(self, cfg: Config, logdir, resume: bool = False, strategy=None):
        self.cfg, self.logdir, self.resume = cfg, Path(logdir), resume
        # Before anything is built: refuse a run dir this would overwrite, or a resume whose
        # settings or epochs do not fit; pick the newest checkpoint that reads completely.
        self._start = start = check_run_dir(self.logdir, cfg, resume)
        self.precision = set_mixed_precision(cfg.training.mixed_precision)
        self.task = build_task(cfg.task)
        self.strategy = strategy or make_strategy(cfg.training.strategy)
        self.role = worker_role(self.strategy)
        self.targets = target_table(cfg, self.task)
        t = cfg.training
        keras.utils.set_random_seed(cfg.seed)  # same seed, same initial weights
        with self.strategy.scope():
            self.model = build_model(cfg, self.task)
            if t.init_from and start is None:  # checked here, not in the config: a run's config loads anywhere
                if not (Path(t.init_from) / MODEL_FILE).is_file():
                    raise TrainingError(
                        f"training.init_from = {t.init_from!r}: expected a run dir holding a {MODEL_FILE}"
                    )
                try:
                    copy_weights(Path(t.init_from) / MODEL_FILE, self.model)
                except ValueError as e:
                    raise TrainingError(f"training.init_from: {e}") from None
            for name in t.freeze:  # before the optimizer is built: it then never holds their slots
                getattr(self.model, name).trainable = False
            schedule = keras.optimizers.schedules.CosineDecay(
                t.learning_rate, decay_steps=t.epochs, alpha=t.lr_min_fraction
            )
            self.optimizer = keras.optimizers.AdamW(schedule, weight_decay=t.weight_decay)
            self.optimizer.build(self.model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            # Wall-clock seconds spent in epochs, across resumes: quality is judged per hour.
            self.train_seconds = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="train_seconds")
        self.checkpoint = tf.train.Checkpoint(
            model=self.model, optimizer=self.optimizer, epoch=self.epoch, train_seconds=self.train_seconds
        )
        if start is not None:
            try:
                self.checkpoint.restore(start.path).assert_existing_objects_matched()
            except (ValueError, AssertionError) as e:  # e.g. a run dir without its config.yaml
                raise TrainingError(
                    f"{start.path}: does not fit the network of this config "
                    f"({type(e).__name__}: {str(e).strip().splitlines()[0]})"
                ) from None
        self.outdir = self.writer = self.manager = None  # set by open()
        self._scratch = None  # another worker's scratch folder, removed by close()
        self._gather_fn = None
        jit = cfg.training.jit_compile
        self._gradients = {
            w: tf.function(lambda b, m, z, s, n, w=w: self._replica_gradients(b, m, z, s, w, n), jit_compile=jit)
            for w in (True, False)
        }
        self._compute = {w: tf.function(lambda *a, w=w: self._distributed_compute(*a, warmup=w)) for w in (True, False)}
        self._nll_gradients = tf.function(self._replica_nll_gradients, jit_compile=jit)
        self._compute_nll = tf.function(self._distributed_nll)
        self._apply = tf.function(self._apply_gradients)
        self._samplers = {}  # pool size -> the sampling tf.function for that pool
        self._policy_ids = {id(v) for v in self.model.policy_head.trainable_variables}
        self.validator = None
        if cfg.logging.validate_every and any(n != "predictive" for n in cfg.target_names):
            from tfp_aline.training.validation import Validator

            self.validator = Validator(self.task, cfg, cfg.logging.validation_people, cfg.seed + 0xFA1)

    # ---- the run dir: taken by open(), left by close() ------------------------------------------
    def open(self):
        """Take the run dir for writing (once; later calls do nothing). The chief locks it, checks it
        again under the lock, writes config.yaml and opens the TensorBoard writer and checkpoint
        manager there; another worker opens them in a scratch folder of its own. In a cluster the
        workers then check that they agree (settings, restored epoch and weights) and that every
        one could open: a refusal on one stops all of them with one line."""
        if self.outdir is not None:
            return
        problem = None
        try:
            if self.role.is_chief:
                found = prepare_run_dir(self.logdir, self.cfg, self.resume, warn=False)
                if (found and found.path) != (self._start and self._start.path):
                    release_run_dir(self.logdir)
                    raise TrainingError(
                        f"{self.logdir}: its checkpoints changed while training was being set up (another "
                        "process writing there?); start again"
                    )
                out = self.logdir
            else:
                out = self._scratch = Path(tempfile.mkdtemp(prefix=f"tfp-aline-worker{self.role.task_id}-"))
            atomic.write_text(out / CONFIG_FILE, self.cfg.to_yaml())
        except (TrainingError, OSError) as e:
            if self.role.num_workers == 1:
                raise
            problem = e
        self._check_workers_agree(problem)
        self.outdir = out
        self.writer = tf.summary.create_file_writer(str(out))
        self.manager = tf.train.CheckpointManager(
            self.checkpoint, out / CHECKPOINT_DIR, max_to_keep=self.cfg.logging.keep_checkpoints
        )

    def close(self):
        """Flush TensorBoard and leave the run dir: the chief releases its lock, another worker
        removes its scratch folder. Safe to call more than once, or without open()."""
        if self.outdir is not None:
            self.writer.close()
            if self.role.is_chief:
                release_run_dir(self.logdir)
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self.outdir = self.writer = self.manager = self._scratch = None

    def _gather(self, values) -> np.ndarray:
        """Every replica's `values` (floats, the same count on each): [replicas, k] float64, one row
        per replica (a worker's replicas in a block: one row per worker on CPU), by one all-reduce
        that every worker must call. One process: just its own row."""
        x = tf.constant([values], tf.float64)
        if self.role.num_workers == 1:
            return x.numpy()
        if self._gather_fn is None:

            def gather(v):  # each worker's row in its own slot, then summed: an all-gather by all-reduce
                ctx = tf.distribute.get_replica_context()
                rows = tf.one_hot(ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync, dtype=tf.float64)
                return ctx.all_reduce(tf.distribute.ReduceOp.SUM, rows[:, None] * v)

            self._gather_fn = tf.function(lambda v: self.strategy.run(gather, args=(v,)))
        return self.strategy.experimental_local_results(self._gather_fn(x))[0].numpy()

    def _check_workers_agree(self, problem=None):
        """In a cluster: every worker opened its output, and all train the same config from the same
        epoch and weights (a resume reads the chief's checkpoint on every worker: a worker that read
        another copy, or started with other settings, is refused). Raises on every worker alike."""
        if self.role.num_workers == 1:
            return
        variables = self.model.trainable_variables
        total = float(tf.add_n([tf.reduce_sum(tf.cast(v, tf.float64)) for v in variables]))
        size = float(tf.add_n([tf.reduce_sum(tf.abs(tf.cast(v, tf.float64))) for v in variables]))
        mine = [float(problem is not None), zlib.crc32(self.cfg.to_yaml().encode()), float(self.epoch.numpy())]
        mine += [float(self.optimizer.iterations.numpy()), total, size]
        rows = self._gather(mine)
        per_worker = max(len(rows) // self.role.num_workers, 1)  # replicas of each worker
        failed = sorted({i // per_worker for i, r in enumerate(rows) if r[0]})
        if problem is not None:
            raise problem
        if failed:
            who = ", ".join(map(str, failed))
            raise TrainingError(f"worker {who} could not open its output (see its own error); stopped")
        if len(set(rows[:, 1])) > 1:
            raise TrainingError(
                "the workers were started with different settings (their config.yaml differ): start every "
                "worker with the same --config and --set values"
            )
        if len(set(rows[:, 2])) > 1 or len(set(rows[:, 3])) > 1:
            epochs = ", ".join(f"worker {i}: epoch {int(r[2])}" for i, r in enumerate(rows[::per_worker]))
            raise TrainingError(
                f"the workers restored different checkpoints ({epochs}): --resume needs the chief's run dir "
                "at the same --logdir on every worker (a shared filesystem, or a copy)"
            )
        if np.ptp(rows[:, 4]) > 1e-9 * (1 + np.abs(rows[:, 5]).max()) or np.ptp(rows[:, 5]) > 1e-9 * rows[:, 5].max():
            raise TrainingError(
                "the workers restored different weights at the same epoch: --resume needs the chief's run dir "
                "at the same --logdir on every worker (a shared filesystem, or a copy)"
            )

    def _stop_signal(self, received: list):
        """The signal that stops the run, agreed by every worker at an epoch boundary (a signal to any
        one of them stops all at the same epoch, each saving its checkpoint); None: go on."""
        if self.role.num_workers == 1:
            return received[0] if received else None
        signums = self._gather([float(received[0]) if received else 0.0])[:, 0]
        if not signums.any():
            return None
        if not received:
            received.append(int(signums[signums > 0][0]))
        return received[0]

    # ---- one epoch -------------------------------------------------------------------------
    def epoch_inputs(self, epoch, stream=0, num_candidates=None):
        """The inputs training draws for a stream of an epoch, from its seed alone: (EpisodeBatch,
        [B, L + M] bool target mask, [T, B, N] choice noise, [k] float32 steps to differentiate).
        Compiled once per pool size N (None: the config's); benchmarks replay epochs with it."""
        if num_candidates not in self._samplers:
            self._samplers[num_candidates] = tf.function(lambda e, s: self._sample_epoch(e, s, num_candidates))
        return self._samplers[num_candidates](epoch, tf.constant(stream, tf.int32))

    def _epoch_seed(self, epoch, stream):
        """The stateless seed of an epoch's stream: 0 is the main batch, the extra inference-only
        updates use 1, 2, ... (an int32 tensor)."""
        base = tf.constant([self.cfg.seed, 0x5EED], tf.int32)
        seed = tf.random.experimental.stateless_fold_in(base, tf.cast(epoch, tf.int32))
        # Stream 0 keeps the seed it always had, so runs without extra updates are unchanged.
        return tf.where(stream > 0, tf.random.experimental.stateless_fold_in(seed, 0x57E0 + stream), seed)

    def _steps(self, seed):
        """The steps to differentiate, drawn from a stream's seed: [k] float32.

        Passed as floats: int32 arguments of an XLA-compiled function are taken as compile-time
        constants, so new step indices would recompile the step every epoch."""
        key = tf.random.experimental.stateless_fold_in(seed, 1)
        return tf.cast(sample_steps(key, self.cfg.episodes.horizon, self.cfg.training.gradient_steps), tf.float32)

    def _sample_epoch(self, epoch, stream=0, num_candidates=None):
        """The global batch of a stream of an epoch, its per-episode targets, choice noise and the
        steps to differentiate (all from the seed)."""
        seed = self._epoch_seed(epoch, stream)
        batch, tmask, noise = sample_inputs(
            self.task, self.cfg, self.targets, self.cfg.episodes.batch_size, seed, num_candidates
        )
        return batch, tmask, noise, self._steps(seed)

    def _replica_gradients(self, batch, tmask, noise, steps, warmup: bool, num_replicas: int):
        """Losses and gradients of one replica's share of the batch.

        Warm-up queries are random and known up front, so there is no forward rollout: only the
        differentiated steps run the network. In the policy phase the rollout runs without a tape
        (it keeps no activations) to make the choices and rewards; gradients are then accumulated
        one step at a time over `steps` (`stepwise_gradients`). Compiled whole under XLA when
        `training.jit_compile` is set.
        Returns (grads, stats, per-step target log q [T + 1] with its evaluated-steps mask [T + 1]).
        """
        t, horizon = self.cfg.training, self.cfg.episodes.horizon
        scale = 1.0 / num_replicas
        variables = self.model.trainable_variables
        if warmup:
            chosen = random_choices(noise, horizon)
            return (*self._replica_nll_gradients(batch, tmask, chosen, steps, num_replicas), chosen)
        result = rollout(self.model, batch, tmask, horizon, "sample", noise, training=True)
        rewards = objectives.step_rewards(result.logq)
        if t.clamp_rewards:
            rewards = tf.maximum(rewards, 0.0)
        # Under XLA the all-reduce cannot sit inside the compiled function: with several
        # replicas and jit_compile, rewards are normalised over each replica's share instead.
        global_batch = not (t.jit_compile and num_replicas > 1)
        weights = objectives.policy_weights(rewards, t.gamma, global_batch, credit=t.credit)
        nll = objectives.nll_loss(result.inference_logq)
        pg = objectives.policy_loss(weights, result.log_pi)
        stats = {
            "loss/nll": nll,
            "loss/policy": pg,
            "loss/total": nll + t.alpha * pg,
            "reward/mean": tf.reduce_mean(rewards),
            "policy/entropy": tf.reduce_mean(result.entropy),
        }
        grads, _, _ = stepwise_gradients(
            self.model, batch, tmask, result.state, result.chosen, weights, t.alpha, variables, steps=steps, scale=scale
        )
        return grads, stats, tf.reduce_mean(result.logq, axis=1), tf.ones([horizon + 1]), result.chosen

    def _replica_nll_gradients(self, batch, tmask, chosen, steps, num_replicas: int):
        """The inference loss alone on episodes whose choices are known ([T, B] int32): warm-up's
        random queries, or the policy's own in the extra inference-only updates. Only the
        differentiated steps run the network. Returns (grads, stats, target log q [T + 1] at the
        evaluated steps, evaluated-steps mask [T + 1])."""
        horizon = self.cfg.episodes.horizon
        final = state_from_choices(batch, chosen)
        grads, inf_logq, tgt_logq = stepwise_gradients(
            self.model,
            batch,
            tmask,
            final,
            chosen,
            None,
            self.cfg.training.alpha,
            self.model.trainable_variables,
            steps=steps,
            scale=1.0 / num_replicas,
        )
        nll = objectives.nll_loss(inf_logq)  # over the k differentiated steps: unbiased for all T + 1
        stats = {"loss/nll": nll, "loss/policy": tf.constant(0.0), "loss/total": nll}
        index = tf.cast(steps, tf.int32)[:, None]
        evaluated = tf.scatter_nd(index, tf.ones([tf.shape(index)[0]], tf.float32), [horizon + 1])
        logq = tf.scatter_nd(index, tf.reduce_mean(tgt_logq, 1), [horizon + 1])
        return grads, stats, logq, evaluated

    def _replica_rows(self):
        """(first, end) of this replica's rows of the global batch."""
        ctx = tf.distribute.get_replica_context()
        share = self.cfg.episodes.batch_size // ctx.num_replicas_in_sync
        return ctx.replica_id_in_sync_group * share, (ctx.replica_id_in_sync_group + 1) * share

    def _replica_nll_step(self, batch, tmask, chosen, steps):
        ctx = tf.distribute.get_replica_context()
        n = ctx.num_replicas_in_sync
        lo, hi = self._replica_rows()
        batch, tmask, chosen = tf.nest.map_structure(lambda x: x[lo:hi], batch), tmask[lo:hi], chosen[:, lo:hi]
        grads, stats, _, _ = (
            self._nll_gradients(batch, tmask, chosen, steps, n)
            if self.cfg.training.jit_compile
            else self._replica_nll_gradients(batch, tmask, chosen, steps, n)
        )
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads), stats

    def _distributed_nll(self, batch, tmask, chosen, steps):
        grads, stats = self.strategy.run(self._replica_nll_step, args=(batch, tmask, chosen, steps))
        mean = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, x, axis=None)  # noqa: E731
        return [mean(g) for g in grads], {k: mean(v) for k, v in stats.items()}

    def _replica_step(self, batch, tmask, noise, steps, warmup: bool):
        ctx = tf.distribute.get_replica_context()
        n = ctx.num_replicas_in_sync
        lo, hi = self._replica_rows()
        batch, tmask, noise = tf.nest.map_structure(lambda x: x[lo:hi], batch), tmask[lo:hi], noise[:, lo:hi]
        if self.cfg.training.jit_compile:
            grads, stats, logq, evaluated, chosen = self._gradients[warmup](batch, tmask, noise, steps, n)
        else:  # not nested in a tf.function, so the reward normalisation can all-reduce
            grads, stats, logq, evaluated, chosen = self._replica_gradients(batch, tmask, noise, steps, warmup, n)
        grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
        if n > 1:  # every replica gets the whole batch's choices, for the extra inference updates
            chosen = ctx.all_gather(chosen, axis=1)
        return grads, stats, logq, evaluated, chosen

    def _distributed_compute(self, batch, tmask, noise, steps, warmup: bool):
        grads, stats, logq, evaluated, chosen = self.strategy.run(
            self._replica_step, args=(batch, tmask, noise, steps, warmup)
        )
        mean = lambda x: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, x, axis=None)  # noqa: E731
        grads = [mean(g) for g in grads]  # identical on every replica after the all-reduce
        stats = {k: mean(v) for k, v in stats.items()}
        stats["optim/grad_norm"] = tf.linalg.global_norm(grads)
        chosen = self.strategy.experimental_local_results(chosen)[0]
        return grads, stats, mean(logq), mean(evaluated), chosen

    def _apply_gradients(self, grads, lr_factor, policy_head: bool):
        """One optimizer update. Variables outside the policy head move `lr_factor` of the
        optimizer's step (Adam's moments do not depend on the learning rate, so this is exactly a
        lower learning rate for them); `policy_head=False` leaves the policy head untouched."""
        clipped, _ = tf.clip_by_global_norm(grads, self.cfg.training.clip_norm)
        variables = self.model.trainable_variables
        pairs = [(g, v) for g, v in zip(clipped, variables) if policy_head or id(v) not in self._policy_ids]
        scaled = [v for _, v in pairs if id(v) not in self._policy_ids] if lr_factor != 1.0 else []
        before = [tf.identity(v) for v in scaled]
        # Cross-replica context: Keras applies these (already reduced) gradients to every mirror.
        self.optimizer.apply_gradients(pairs)
        for v, old in zip(scaled, before):
            v.assign(old + lr_factor * (v - old))

    def train_epoch(self, epoch: int):
        """One epoch: returns (stats dict of floats, (target log q per step [T + 1], evaluated-steps
        mask [T + 1]), applied?). Warm-up evaluates only the differentiated steps. A policy epoch
        may follow its update with extra inference-only updates (`training.inference_updates` on
        its own episodes, `training.random_updates` on fresh random-query episodes)."""
        t = self.cfg.training
        warmup = epoch < t.warmup_epochs
        pool = None if warmup or not t.pool_sizes else t.pool_sizes[epoch % len(t.pool_sizes)]
        batch, tmask, noise, steps = self.epoch_inputs(tf.constant(epoch, tf.int64), 0, pool)
        grads, stats, logq, evaluated, chosen = self._compute[warmup](batch, tmask, noise, steps)
        stats = {k: float(v) for k, v in stats.items()}
        finite = all(math.isfinite(v) for v in stats.values())
        if not finite:
            return stats, (logq.numpy(), evaluated.numpy()), False
        lr = 1.0 if warmup else float(t.policy_phase_lr_factor)  # a Python float: one trace per value
        self._apply(grads, lr, True)
        if not warmup:
            self._extra_inference_updates(epoch, batch, tmask, chosen, lr)
        return stats, (logq.numpy(), evaluated.numpy()), True

    def _extra_inference_updates(self, epoch: int, batch, tmask, chosen, lr):
        """The policy phase's extra inference-only updates. The optimizer's step counter is set back
        afterwards, so the learning-rate schedule still counts epochs."""
        t = self.cfg.training
        if not (t.inference_updates or t.random_updates):
            return
        iterations = int(self.optimizer.iterations.numpy())
        for j in range(t.inference_updates):  # the policy's own episodes, at fresh steps
            steps = self._steps(self._epoch_seed(tf.constant(epoch, tf.int64), tf.constant(1 + j, tf.int32)))
            grads, stats = self._compute_nll(batch, tmask, chosen, steps)
            if math.isfinite(float(stats["loss/nll"])):
                self._apply(grads, lr, False)
        for j in range(t.random_updates):  # fresh episodes with random queries, as in warm-up
            b, m, noise, steps = self.epoch_inputs(tf.constant(epoch, tf.int64), 1 + t.inference_updates + j, None)
            grads, stats, *_ = self._compute[True](b, m, noise, steps)
            if math.isfinite(float(stats["loss/nll"])):
                self._apply(grads, lr, False)
        self.optimizer.iterations.assign(iterations)

    # ---- the loop --------------------------------------------------------------------------
    def weights_finite(self) -> bool:
        return all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in self.model.weights if "float" in str(v.dtype))

    def save_checkpoint(self):
        self.open()
        if not self.weights_finite():
            raise TrainingError(f"epoch {int(self.epoch.numpy())}: weights are not finite; checkpoint not saved")
        # CheckpointManager writes the shards first and updates its index atomically last, so a
        # crash mid-save leaves the previous checkpoint as the latest loadable one.
        return self.manager.save(checkpoint_number=int(self.epoch.numpy()))

    def fit(self, progress: bool = True) -> TrainResult:
        """Train until `training.epochs`. SIGINT (Ctrl-C), SIGTERM or SIGHUP finish the epoch in
        flight, save a checkpoint and return (interrupted=True, with the signal)."""
        received = []
        with stop_on_signals(received.append):
            return self._fit(progress, received)

    def _fit(self, progress, received) -> TrainResult:
        """The epochs from the restored one on, then the end of the run (stopped by a signal or not)."""
        from tqdm.auto import tqdm

        epochs = self.cfg.training.epochs
        start = int(self.epoch.numpy())
        loop = _Loop(skipped=[], interval=[], tick=time.perf_counter())
        bar = None
        self.open()
        try:  # from the first line: a stop anywhere in here saves a checkpoint and returns
            self._announce(start)
            bar = tqdm(total=epochs, initial=start, disable=not progress, unit="epoch", dynamic_ncols=True)
            if self.validator is not None and start == 0:
                self.validate(0)
            for epoch in range(start, epochs):
                if self._stop_signal(received):
                    break
                self._fit_epoch(epoch, bar, loop)
        except KeyboardInterrupt:
            received.append(signal.SIGINT)
        finally:
            if bar is not None:
                bar.close()
        return self._finish(received, loop.skipped)

    def _announce(self, start: int):
        """Hyperparameters to TensorBoard on a fresh run; the run dir, devices and any resume to stdout."""
        cfg = self.cfg
        if start == 0:
            summaries.write_hparams(self.writer, cfg)
        role = self.role
        if role.num_workers > 1:
            writes = "writes the run dir" if role.is_chief else f"the chief writes the run dir; scratch: {self.outdir}"
            where = f"; {role.name} of {role.num_workers} ({writes})"
        else:
            where = ""
        print(
            f"run dir: {self.logdir}{where}\ndevice: {describe_devices()}; strategy: {cfg.training.strategy} "
            f"({self.strategy.num_replicas_in_sync} replica(s)); precision: {self.precision}"
            + (f"; resuming at epoch {start}" if start else ""),
            flush=True,
        )

    def _fit_epoch(self, epoch: int, bar, loop: _Loop):
        """Train one epoch and count it; a non-finite epoch is skipped (or stops the run), otherwise
        the progress bar and the periodic logs, validation and checkpoint follow."""
        t0 = time.perf_counter()
        stats, logq, applied = self.train_epoch(epoch)
        self.train_seconds.assign_add(time.perf_counter() - t0)
        self.epoch.assign(epoch + 1)
        if not applied:
            self._skip_nonfinite(epoch, stats, loop.skipped)
            return
        loop.interval.append((stats, logq))
        now = time.perf_counter()
        rate = 1.0 / max(now - loop.tick, 1e-9)
        loop.tick = now
        phase = "warm-up" if epoch < self.cfg.training.warmup_epochs else "policy"
        bar.set_postfix(
            phase=phase,
            loss=f"{stats['loss/total']:.3f}",
            reward=f"{stats.get('reward/mean', 0.0):.4f}",
            eps=f"{rate:.2f}",
            refresh=False,
        )
        bar.update(1)
        self._log_step(epoch + 1, loop, rate)

    def _skip_nonfinite(self, epoch: int, stats: dict, skipped: list):
        """A non-finite loss or gradient norm: the update was not applied. Stop, or record the epoch
        as skipped, as `training.on_nonfinite` says."""
        from tqdm.auto import tqdm

        bad = ", ".join(k for k, v in stats.items() if not math.isfinite(v))
        msg = f"epoch {epoch + 1}: non-finite {bad}"
        if self.cfg.training.on_nonfinite == "stop":
            raise TrainingError(msg + " (training.on_nonfinite = stop)")
        skipped.append(epoch + 1)
        tqdm.write(msg + "; update skipped")

    def _log_step(self, step: int, loop: _Loop, rate: float):
        """What is due after `step` epochs: scalars (over the interval since the last), histograms,
        images, validation and a checkpoint; the last epoch always writes scalars, images and validation."""
        log, last = self.cfg.logging, step == self.cfg.training.epochs
        if step % log.scalars_every == 0 or last:
            self._write_scalars(step, loop.interval, rate)
            loop.interval = []
        if step % log.histograms_every == 0:
            summaries.write_histograms(self.writer, step, self.model)
        if step % log.images_every == 0 or last:
            self.write_images(step)
        if self.validator is not None and (step % log.validate_every == 0 or last):
            self.validate(step)
        if step % log.checkpoint_every == 0:
            self.save_checkpoint()

    def _finish(self, received: list, skipped: list) -> TrainResult:
        """End of the run: a checkpoint if the weights are finite, and the final model unless a
        signal stopped it."""
        interrupted = bool(received)
        if interrupted:
            name = signal.Signals(received[0]).name
            print(
                f"{name} received: stopping at epoch {int(self.epoch.numpy())} of {self.cfg.training.epochs}, "
                "saving a checkpoint",
                flush=True,
            )
        if self.weights_finite():
            self.save_checkpoint()
        self.writer.flush()
        if not interrupted:
            self.save_model()
        return TrainResult(
            self.logdir, int(self.epoch.numpy()), interrupted, skipped, received[0] if received else None
        )

    def validate(self, step):
        """Gap to the exact posterior on the fixed validation people: TensorBoard `validation/...`
        and one row per (target, step t) appended to `validation.csv` (rewritten atomically)."""
        self.open()
        hours = float(self.train_seconds.numpy()) / 3600
        episodes = step * self.cfg.episodes.batch_size
        rows = self.validator(self.model)
        path = self.outdir / VALIDATION_FILE
        kept = []
        if path.exists():  # rows from beyond the restored checkpoint belong to a lost future
            kept = [line for line in path.read_text().splitlines()[1:] if line and int(line.split(",")[0]) < step]
        new = [
            f"{step},{hours:.6f},{episodes},{name},{t},{a:.5f},{r:.5f},{ratio:.4f},{cov:.4f}"
            for name, t, a, r, ratio, cov in rows
        ]
        atomic.write_text(path, CSV_HEADER + "\n".join(kept + new) + "\n")
        values = {}
        for name, t, a, r, ratio, cov in rows:
            values[f"validation/{name}/rmse_ratio_t{t}"] = ratio
            values[f"validation/{name}/rmse_amortized_t{t}"] = a
            values[f"validation/{name}/rmse_exact_t{t}"] = r
            values[f"validation/{name}/coverage90_t{t}"] = cov
        values["validation/hours"] = hours
        summaries.write_scalars(self.writer, step, values)

    def _write_scalars(self, step, interval, rate):
        if not interval:
            return
        T = self.cfg.episodes.horizon
        keys = dict.fromkeys(k for s, _ in interval for k in s)  # warm-up epochs have no reward
        values = {k: float(np.mean([s[k] for s, _ in interval if k in s])) for k in keys}
        logq_sum = np.sum([q * m for _, (q, m) in interval], axis=0)
        counts = np.sum([m for _, (_, m) in interval], axis=0)
        for name, t in (("logq/t0", 0), ("logq/t1", 1), ("logq/tmid", max(T // 2, 1)), ("logq/tT", T)):
            if counts[t]:  # a step is logged when some epoch of the interval evaluated it
                values[name] = float(logq_sum[t] / counts[t])
        values.update({"optim/lr": float(self.optimizer.learning_rate), "perf/epochs_per_s": rate})
        summaries.write_scalars(self.writer, step, values)

    def write_images(self, step):
        """Query strategy of the current policy and one episode's posteriors, on a fixed batch."""
        self.open()
        e = self.cfg.episodes
        people = min(16, e.batch_size)
        batch = self.task.sample_episodes(
            people,
            e.num_candidates,
            seed=tf.constant([self.cfg.seed, 77]),
            num_initial_context=e.num_initial_context,
            num_predictive_targets=e.num_predictive_targets,
        )
        tmask = tf.repeat(self.targets[:1], people, axis=0)
        noise = choice_noise(tf.constant([self.cfg.seed, 78]), e.horizon, people, e.num_candidates)
        mode = "random" if step <= self.cfg.training.warmup_epochs else "sample"
        result = rollout(self.model, batch, tmask, e.horizon, mode, noise)
        chosen_x = tf.gather(batch.query_x, tf.transpose(result.chosen), batch_dims=1)  # [B, T, Dx]
        summaries.write_image(
            self.writer,
            step,
            "images/query_strategy",
            summaries.query_strategy_figure(
                tf.transpose(chosen_x, [1, 0, 2]).numpy(),
                self.task.input_names,
                f"{mode} choices, target '{self.cfg.target_names[0]}', epoch {step}",
            ),
        )
        posts = []
        for t in (0, e.horizon // 2, e.horizon):  # episode 0's posterior after t of its queries
            state = state_after(result.state, result.chosen, e.num_initial_context, tf.constant(t))
            out = self.model(model_inputs(state, batch, tmask), compute_policy=False)
            posts.append(self.model.posterior({k: v[:1] for k, v in out.items()}))
        idx = np.flatnonzero(tmask[0, : self.task.num_parameters].numpy())
        summaries.write_image(
            self.writer,
            step,
            "images/posteriors",
            summaries.posterior_figure(
                [_Subset(p, idx) for p in posts],
                batch.theta.numpy()[0, idx],
                [self.task.parameter_names[i] for i in idx],
                (0, e.horizon // 2, e.horizon),
            ),
        )

    def save_model(self):
        """The final model as .keras in the run dir, written atomically."""
        self.open()
        if not self.weights_finite():
            raise TrainingError("weights are not finite; model not saved")
        with atomic.atomic_path(self.outdir / MODEL_FILE, suffix=".keras") as tmp:
            self.model.save(tmp)


class _Subset:
    """log_prob of a [1, L] posterior restricted to some parameter columns (for plotting)."""

    def __init__(self, dist, idx):
        self.dist, self.idx = dist, idx

    def log_prob(self, x):
        full = np.zeros(x.shape[:-1] + (self.dist.batch_shape[-1],), np.float32)
        full[..., self.idx] = x
        return tf.gather(self.dist.log_prob(full), self.idx, axis=-1)
