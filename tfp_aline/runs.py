"""Load a trained run directory (resolved config, task and model) for evaluation, advice and export."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from tfp_aline.errors import TfpAlineError

MODEL_FILE = "model.keras"
CONFIG_FILE = "config.yaml"


class Run(NamedTuple):
    """A trained run: its directory, resolved `Config`, `Task` and built `AlineModel`."""

    path: Path
    cfg: object
    task: object
    model: object


def load_run(run_dir, use_checkpoint: bool = False) -> Run:
    """Read RUN_DIR/config.yaml and RUN_DIR/model.keras (or, with `use_checkpoint` or when
    model.keras is missing, the latest checkpoint under RUN_DIR/checkpoints)."""
    import tensorflow as tf

    from tfp_aline.config import load_config
    from tfp_aline.tasks.factory import build_task
    from tfp_aline.training.trainer import build_model

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
            raise TfpAlineError(f"{model_file}: cannot load the model ({type(e).__name__}: {e})") from None
        return Run(path, cfg, task, model)
    latest = tf.train.latest_checkpoint(str(path / "checkpoints"))
    if latest is None:
        raise TfpAlineError(f"{path}: neither {MODEL_FILE} nor a checkpoint under checkpoints/")
    model = build_model(cfg, task)
    tf.train.Checkpoint(model=model).restore(latest).expect_partial()
    return Run(path, cfg, task, model)
