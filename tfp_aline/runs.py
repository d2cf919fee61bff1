"""Run directories: load a trained run (config, task, model) for evaluation, advice and export;
find its newest readable checkpoint; refuse a run dir that training would overwrite or cannot resume."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from pathlib import Path
from typing import NamedTuple

from tfp_aline.errors import TfpAlineError, TrainingError, warn
from tfp_aline.run_files import CHECKPOINT_DIR, CONFIG_FILE, EVALUATION_FILE, MODEL_FILE

_EPOCH_KEY = "epoch/.ATTRIBUTES/VARIABLE_VALUE"
# What must stay as trained when a run is resumed; training.epochs may grow, the rest may change.
FIXED_ON_RESUME = ("network", "task", "episodes")


class Run(NamedTuple):
    """A trained run: its directory, resolved `Config`, `Task` and built `AlineModel`."""

    path: Path
    cfg: object
    task: object
    model: object

    def sample_people(self, num_people: int, seed):
        """`num_people` simulated episodes shaped as the run was trained (pool, initial context,
        predictive targets), from the stateless `seed` ([2] ints)."""
        e = self.cfg.episodes
        return self.task.sample_episodes(
            num_people,
            e.num_candidates,
            seed=seed,
            num_initial_context=e.num_initial_context,
            num_predictive_targets=e.num_predictive_targets,
        )


class CheckpointInfo(NamedTuple):
    """A checkpoint that reads completely: its path prefix (.../ckpt-N), the epoch it holds and
    the newer, unreadable ones skipped to reach it ((prefix, problem), ...)."""

    path: str
    epoch: int
    skipped: tuple = ()

    @property
    def name(self) -> str:
        return Path(self.path).name

    def warn_skipped(self):
        """One warning line if newer checkpoints were unreadable (after the caller's own checks,
        so that a refusal stays the only line)."""
        if self.skipped:
            names = ", ".join([self.skipped[0][0]] + [Path(p).name for p, _ in self.skipped[1:]])
            warn(
                f"{names} {'is' if len(self.skipped) == 1 else 'are'} unreadable: {self.skipped[0][1]}; "
                f"using the previous checkpoint {self.name} (epoch {self.epoch})"
            )


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def checkpoint_problem(prefix: str) -> str | None:
    """Why the checkpoint at `prefix` cannot be read, naming the file; None if every tensor reads."""
    import tensorflow as tf

    name = Path(prefix).name
    try:
        reader = tf.train.load_checkpoint(prefix)
    except Exception as e:  # NotFoundError, DataLossError, ...: the index is missing or damaged
        return f"{name}.index cannot be read ({type(e).__name__}: {_first_line(e)})"
    try:
        for key in reader.get_variable_to_shape_map():
            reader.get_tensor(key)  # a truncated .data file fails here (IndexError: Read less bytes...)
    except Exception as e:
        data = ", ".join(sorted(p.name for p in Path(prefix).parent.glob(f"{name}.data-*"))) or f"{name}.data-*"
        return f"{data} is truncated or damaged ({type(e).__name__}: {_first_line(e)})"
    return None


def _epoch_of(prefix: str) -> int:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    if reader.has_tensor(_EPOCH_KEY):
        return int(reader.get_tensor(_EPOCH_KEY))
    return int(Path(prefix).name.rsplit("-", 1)[-1])  # ckpt-N: the trainer numbers them by epoch


def find_checkpoint(ckpt_dir) -> CheckpointInfo | None:
    """The newest checkpoint under `ckpt_dir` that reads completely (None: there are none).

    Unreadable newer ones (a truncated .data file, a missing index) are skipped and listed in
    `skipped` (see `CheckpointInfo.warn_skipped`); if none reads, raise naming each file.
    """
    import tensorflow as tf

    try:
        state = tf.train.get_checkpoint_state(str(ckpt_dir))
    except Exception as e:
        raise TfpAlineError(f"{Path(ckpt_dir) / 'checkpoint'}: cannot be read ({_first_line(e)})") from None
    if state is None:
        return None
    prefixes = list(dict.fromkeys([*state.all_model_checkpoint_paths, state.model_checkpoint_path]))
    bad = []
    for prefix in reversed(prefixes):  # newest first
        problem = checkpoint_problem(prefix)
        if problem is None:
            return CheckpointInfo(prefix, _epoch_of(prefix), tuple(bad))
        bad.append((prefix, problem))
    raise TfpAlineError(f"{ckpt_dir}: no readable checkpoint: " + "; ".join(p for _, p in bad))


def load_run(run_dir, use_checkpoint: bool = False) -> Run:
    """Read RUN_DIR/config.yaml and RUN_DIR/model.keras (or, with `use_checkpoint` or when
    model.keras is missing, the newest readable checkpoint under RUN_DIR/checkpoints; without
    model.keras a warning says which checkpoint, epoch N of M, is used)."""
    import tensorflow as tf

    from tfp_aline.config import load_config
    from tfp_aline.nn.build import build_model
    from tfp_aline.tasks.registry import build_task

    path = Path(run_dir)
    if not path.is_dir():
        raise TfpAlineError(f"{path}: run directory not found")
    if not (path / CONFIG_FILE).exists():
        raise TfpAlineError(f"{path}: no {CONFIG_FILE} (is this a run directory written by `tfp-aline train`?)")
    cfg = load_config(path / CONFIG_FILE)
    task = build_task(cfg.task)
    model_file = path / MODEL_FILE
    if model_file.exists() and not use_checkpoint:
        import keras

        try:
            model = keras.models.load_model(model_file)
        except Exception as e:  # a truncated or foreign file: say which one
            raise TfpAlineError(f"{model_file}: cannot load the model ({type(e).__name__}: {_first_line(e)})") from None
        _check_model_fits(model, cfg, task, model_file)
        return Run(path, cfg, task, model)
    found = find_checkpoint(path / CHECKPOINT_DIR)
    if found is None:
        raise TfpAlineError(f"{path}: neither {MODEL_FILE} nor a checkpoint under {CHECKPOINT_DIR}/")
    found.warn_skipped()
    if not use_checkpoint:
        total = cfg.training.epochs
        warn(
            f"{path} has no {MODEL_FILE}: using its checkpoint {found.name}, epoch {found.epoch} of {total}"
            + (", a partly trained model" if found.epoch < total else "")
        )
    model = build_model(cfg, task)
    try:
        tf.train.Checkpoint(model=model).restore(found.path).expect_partial()
    except (ValueError, AssertionError) as e:
        raise TfpAlineError(
            f"{found.path}: does not fit the network of {path / CONFIG_FILE} ({type(e).__name__}: {_first_line(e)})"
        ) from None
    return Run(path, cfg, task, model)


def _check_model_fits(model, cfg, task, model_file: Path):
    """model.keras must be the network config.yaml describes, for this task: a model.keras copied
    from another run would otherwise be used (or fail deep inside TensorFlow)."""
    n = cfg.network
    expected = {
        "num_parameters": task.num_parameters,
        "x_dim": task.x_dim,
        "y_dim": task.y_dim,
        **{k: getattr(n, k) for k in ("embed_dim", "num_layers", "num_heads", "ff_dim", "num_components")},
        "min_scale": n.min_scale,
    }
    got = model.get_config() if hasattr(model, "get_config") else {}
    diffs = [
        f"{k} {got.get(k)!r} in {MODEL_FILE}, {v!r} in {CONFIG_FILE}" for k, v in expected.items() if got.get(k) != v
    ]
    if diffs:
        raise TfpAlineError(
            f"{model_file}: does not match {model_file.parent / CONFIG_FILE} ({'; '.join(diffs)}); "
            "it was trained with other settings: use the run folder it came from"
        )


def config_differences(saved, cfg) -> list:
    """'network.embed_dim: 16 in the run, 32 now' for every setting that must stay as trained."""

    def flat(value):  # the task section flattens its options, as config.yaml writes them
        return value.to_dict() if hasattr(value, "to_dict") else dataclasses.asdict(value)

    out = [] if saved.seed == cfg.seed else [f"seed: {saved.seed} in the run, {cfg.seed} now"]
    for section in FIXED_ON_RESUME:
        old, new = flat(getattr(saved, section)), flat(getattr(cfg, section))
        out += [
            f"{section}.{k}: {old.get(k)!r} in the run, {new.get(k)!r} now"
            for k in dict.fromkeys([*old, *new])
            if old.get(k) != new.get(k)
        ]
    return out


def check_run_dir(logdir, cfg, resume: bool, *, warn: bool = True) -> CheckpointInfo | None:
    """The checks of `prepare_run_dir`, reading only (no folder made, no lock taken): what a
    `Trainer` runs before it builds anything. Returns the checkpoint to resume from (None: fresh).
    `warn`: say which unreadable newer checkpoints were skipped."""
    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise TrainingError(f"{logdir}: exists and is not a folder; choose another --logdir")
    return _check_run_dir(logdir, cfg, resume, warn)


def prepare_run_dir(logdir, cfg, resume: bool, *, warn: bool = True) -> CheckpointInfo | None:
    """Take LOGDIR for training (the chief's first write): create and lock it, then check it;
    returns the checkpoint to resume from (None: fresh).

    Refused: a path that is a file; without --resume, a dir holding checkpoints or a finished
    run's model.keras / evaluation.json; with --resume, no checkpoint, settings that differ from
    the run's config.yaml (network, task, episodes, seed) or training.epochs below the checkpoint.
    """

    logdir = Path(logdir)
    if logdir.exists() and not logdir.is_dir():
        raise TrainingError(f"{logdir}: exists and is not a folder; choose another --logdir")
    created = not logdir.exists()
    locked_now = lock_run_dir(logdir)  # first: another process may be about to write what the checks read
    try:
        found = _check_run_dir(logdir, cfg, resume, warn)
    except BaseException:
        if locked_now:  # a lock this process already held (an earlier Trainer) stays
            release_run_dir(logdir)
        if created:
            with contextlib.suppress(OSError):
                logdir.rmdir()
        raise
    remove_stale_temporaries(logdir / CHECKPOINT_DIR)
    return found


def _check_run_dir(logdir: Path, cfg, resume: bool, warn: bool = True) -> CheckpointInfo | None:
    ckpt_dir = logdir / CHECKPOINT_DIR
    for folder in (logdir, ckpt_dir):  # found now, not at the first checkpoint an hour in
        if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
            raise TrainingError(
                f"{folder}: no permission to write there; fix its permissions or choose another --logdir"
            )
    has_checkpoints = (ckpt_dir / "checkpoint").is_file()  # CheckpointManager's index of its checkpoints
    if not resume:
        if has_checkpoints:
            raise TrainingError(
                f"{logdir} already holds checkpoints: pass --resume to continue that run, or choose another --logdir"
            )
        finished = [n for n in (MODEL_FILE, EVALUATION_FILE) if (logdir / n).exists()]
        if finished:
            raise TrainingError(
                f"{logdir} already holds {' and '.join(finished)} of an earlier run and no "
                "checkpoint to resume from; choose another --logdir (nothing was overwritten)"
            )
        return None
    if not has_checkpoints:
        raise TrainingError(
            f"{logdir}: nothing to resume, no checkpoint under {ckpt_dir}; train without --resume into a new --logdir"
        )
    _check_resume_config(logdir, cfg, TrainingError)
    found = find_checkpoint(ckpt_dir)
    if cfg.training.epochs < found.epoch:
        raise TrainingError(
            f"cannot resume {logdir}: training.epochs = {cfg.training.epochs} is below epoch "
            f"{found.epoch} that its checkpoint {found.name} reached; pass --set "
            f"training.epochs={found.epoch} or more"
        )
    if warn:
        found.warn_skipped()
    return found


def _check_resume_config(logdir: Path, cfg, error):
    from tfp_aline.config import load_config

    saved = logdir / CONFIG_FILE
    if saved.exists():
        diffs = config_differences(load_config(saved, check_targets=False), cfg)
        if diffs:
            raise error(
                f"cannot resume {logdir}: {'; '.join(diffs)} (network, task, episodes and seed must stay "
                f"as in its {CONFIG_FILE}; train into a new --logdir to change them)"
            )


# Run folders this process holds a lock on: real path -> the folder's open descriptor.
_LOCKS: dict = {}


def lock_run_dir(logdir) -> bool:
    """Create LOGDIR if needed and lock it for this process (flock on the folder itself, so no lock
    file is left inside); released by `release_run_dir` or when the process ends, even by kill -9.
    A folder another process trains into is refused; this process may lock it again. Returns
    whether this call took the lock (False: this process held it already)."""
    import fcntl

    logdir = Path(logdir)
    try:
        logdir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise TrainingError(f"--logdir {logdir}: cannot create the run folder ({e.strerror or e})") from None
    key = os.path.realpath(logdir)
    if key in _LOCKS:
        return False
    fd = os.open(key, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TrainingError(
            f"--logdir {logdir}: another process is training into this run folder; wait until it ends "
            "or choose another --logdir (nothing was changed)"
        ) from None
    _LOCKS[key] = fd
    return True


def release_run_dir(logdir) -> None:
    """Let other processes train into LOGDIR again (a no-op if this process holds no lock on it)."""
    fd = _LOCKS.pop(os.path.realpath(logdir), None)
    if fd is not None:
        os.close(fd)  # closing the descriptor drops the flock


def remove_stale_temporaries(ckpt_dir: Path) -> None:
    """A checkpoint write that failed (full disk, kill -9) leaves its shards in ckpt-N_temp/; with the
    run folder locked, no other save can be writing them."""
    for tmp in ckpt_dir.glob("*_temp"):
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
