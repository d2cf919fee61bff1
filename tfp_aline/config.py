"""Run configuration: YAML files loaded into frozen, validated dataclasses (every key is read)."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path
from typing import Any, Mapping

import yaml

from tfp_aline.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """Which simulator; for migraine, the feature table and the model's free settings."""

    name: str = "migraine"
    table: str = "data/migraine_prediction.xlsx"
    sheet: typing.Optional[str] = None
    correlation: float = 0.3
    weight_scale: float = 4.0
    weight_spread: float = 0.3
    baseline_spread: float = 0.5
    base_rate: float = 0.15


@dataclasses.dataclass(frozen=True)
class EpisodeConfig:
    """Shape of one training batch: B episodes, N candidates, horizon T, N0 initial context, M targets."""

    batch_size: int = 64
    num_candidates: int = 100
    horizon: int = 20
    num_initial_context: int = 0
    num_predictive_targets: int = 10


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """The transformer neural process (paper defaults)."""

    embed_dim: int = 32
    num_layers: int = 3
    num_heads: int = 4
    ff_dim: int = 128
    num_components: int = 10
    min_scale: float = 1e-3


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
    """Optimisation: warm-up then policy gradient; AdamW with cosine decay and gradient clipping."""

    epochs: int = 1000
    warmup_epochs: int = 300
    learning_rate: float = 1e-3
    lr_min_fraction: float = 0.0
    weight_decay: float = 0.01
    clip_norm: float = 5.0
    gamma: float = 1.0
    alpha: float = 1.0
    jit_compile: bool = False
    mixed_precision: bool = False
    strategy: str = "default"
    on_nonfinite: str = "skip"
    gradient_steps: int = 0


@dataclasses.dataclass(frozen=True)
class LoggingConfig:
    """How often (in epochs) to write scalars, histograms, images and checkpoints, and to measure
    the gap to the exact posterior on `validation_people` fixed people (0: never)."""

    scalars_every: int = 10
    histograms_every: int = 200
    images_every: int = 500
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    validate_every: int = 0
    validation_people: int = 128


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """The short evaluation printed at the end of the main job."""

    people: int = 200
    seed_offset: int = 1_000_003


@dataclasses.dataclass(frozen=True)
class Config:
    """A whole run. `targets` is p(target): ((target name, probability), ...) in file order."""

    name: str
    seed: int = 0
    task: TaskConfig = TaskConfig()
    episodes: EpisodeConfig = EpisodeConfig()
    targets: tuple = (("all", 1.0),)
    network: NetworkConfig = NetworkConfig()
    training: TrainingConfig = TrainingConfig()
    logging: LoggingConfig = LoggingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()

    @property
    def target_names(self) -> tuple[str, ...]:
        return tuple(t for t, _ in self.targets)

    @property
    def target_probs(self) -> tuple[float, ...]:
        return tuple(p for _, p in self.targets)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["targets"] = {t: p for t, p in self.targets}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
STRATEGIES = ("default", "mirrored", "multi_worker")
ON_NONFINITE = ("skip", "stop")


_TYPES = {"int": ((int,), "an integer"), "float": ((float, int), "a number"),
          "bool": ((bool,), "true or false"), "str": ((str,), "a string"),
          "typing.Optional[str]": ((str, type(None)), "a string or null")}


def _coerce(key: str, value, annotation: str):
    """Check a YAML value against a field's annotation (a string: this module defers annotations)."""
    allowed, description = _TYPES[annotation]
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise ConfigError(f"{key}: expected {description}, got {value!r}")
    return float(value) if annotation == "float" else value


def _section(cls, raw, prefix):
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key (known keys: {', '.join(fields)})")
    values = {k: _coerce(f"{prefix}.{k}", v, fields[k].type) for k, v in raw.items()}
    return cls(**values)


def config_from_dict(raw: Mapping[str, Any], default_name: str = "run") -> Config:
    """Build and validate a Config from a parsed YAML mapping."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping at the top of the config, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known keys: {', '.join(_SECTIONS)})")
    name = _coerce("name", raw.get("name", default_name), "str")
    seed = _coerce("seed", raw.get("seed", 0), "int")
    targets_raw = raw.get("targets", {"all": 1.0})
    if not isinstance(targets_raw, Mapping) or not targets_raw:
        raise ConfigError(f"targets: expected a mapping target -> probability, got {targets_raw!r}")
    targets = tuple((str(k), _coerce(f"targets.{k}", v, "float")) for k, v in targets_raw.items())
    cfg = Config(
        name=name, seed=seed, targets=targets,
        task=_section(TaskConfig, raw.get("task"), "task"),
        episodes=_section(EpisodeConfig, raw.get("episodes"), "episodes"),
        network=_section(NetworkConfig, raw.get("network"), "network"),
        training=_section(TrainingConfig, raw.get("training"), "training"),
        logging=_section(LoggingConfig, raw.get("logging"), "logging"),
        evaluation=_section(EvaluationConfig, raw.get("evaluation"), "evaluation"),
    )
    validate(cfg)
    return cfg


def validate(cfg: Config, group_names=None):
    """Range checks that need no task; with `group_names`, also that every target exists."""
    e, n, t = cfg.episodes, cfg.network, cfg.training
    positive = {"episodes.batch_size": e.batch_size, "episodes.num_candidates": e.num_candidates,
                "episodes.horizon": e.horizon, "network.embed_dim": n.embed_dim,
                "network.num_layers": n.num_layers, "network.num_heads": n.num_heads,
                "network.ff_dim": n.ff_dim, "network.num_components": n.num_components,
                "network.min_scale": n.min_scale, "training.epochs": t.epochs,
                "training.learning_rate": t.learning_rate, "training.clip_norm": t.clip_norm,
                "logging.scalars_every": cfg.logging.scalars_every,
                "logging.histograms_every": cfg.logging.histograms_every,
                "logging.images_every": cfg.logging.images_every,
                "logging.checkpoint_every": cfg.logging.checkpoint_every,
                "logging.keep_checkpoints": cfg.logging.keep_checkpoints,
                "logging.validation_people": cfg.logging.validation_people,
                "evaluation.people": cfg.evaluation.people}
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key} = {value!r}: expected a positive number")
    non_negative = {"episodes.num_initial_context": e.num_initial_context,
                    "episodes.num_predictive_targets": e.num_predictive_targets,
                    "training.warmup_epochs": t.warmup_epochs, "training.weight_decay": t.weight_decay,
                    "training.alpha": t.alpha, "logging.validate_every": cfg.logging.validate_every}
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} = {value!r}: expected a number >= 0")
    if not 0 <= t.gradient_steps <= e.horizon + 1:
        raise ConfigError(f"training.gradient_steps = {t.gradient_steps}: expected 0 (every step) or a number of "
                          f"steps in 1..{e.horizon + 1} (episodes.horizon + 1)")
    if e.horizon > e.num_candidates:
        raise ConfigError(f"episodes.horizon = {e.horizon}: cannot exceed episodes.num_candidates "
                          f"= {e.num_candidates} (each candidate is queried at most once)")
    if n.embed_dim % n.num_heads:
        raise ConfigError(f"network.embed_dim = {n.embed_dim}: must be divisible by network.num_heads "
                          f"= {n.num_heads}")
    if not 0 <= t.lr_min_fraction <= 1:
        raise ConfigError(f"training.lr_min_fraction = {t.lr_min_fraction}: expected a number in [0, 1]")
    if not 0 < t.gamma <= 1:
        raise ConfigError(f"training.gamma = {t.gamma}: expected a number in (0, 1]")
    if t.strategy not in STRATEGIES:
        raise ConfigError(f"training.strategy = {t.strategy!r}: expected one of {STRATEGIES}")
    if t.on_nonfinite not in ON_NONFINITE:
        raise ConfigError(f"training.on_nonfinite = {t.on_nonfinite!r}: expected one of {ON_NONFINITE}")
    for name, p in cfg.targets:
        if not 0 <= p <= 1 or not math.isfinite(p):
            raise ConfigError(f"targets.{name} = {p}: expected a probability in [0, 1]")
    total = sum(cfg.target_probs)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"targets: probabilities sum to {total:g}, expected 1")
    if "predictive" in cfg.target_names and e.num_predictive_targets == 0:
        raise ConfigError("targets.predictive: needs episodes.num_predictive_targets > 0")
    if group_names is not None:
        for name in cfg.target_names:
            if name not in ("all", "predictive") and name not in group_names:
                raise ConfigError(f"targets.{name}: unknown target group (known: all, predictive, "
                                  f"{', '.join(group_names)})")


def apply_overrides(raw: dict, overrides) -> dict:
    """Apply `--set section.key=value` strings (values parsed as YAML) to a raw config mapping."""
    raw = yaml.safe_load(yaml.safe_dump(raw))  # deep copy
    for item in overrides or ():
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. training.epochs=50")
        key, text = item.split("=", 1)
        parts = key.strip().split(".")
        node = raw
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {p} is not a section")
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def load_config(path, overrides=None, check_targets: bool = True) -> Config:
    """Read a YAML config, apply `--set` overrides, validate (including target groups)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        cfg = config_from_dict(apply_overrides(raw, overrides), default_name=path.stem)
        if check_targets:
            from tfp_aline.tasks.factory import build_task

            validate(cfg, group_names=tuple(build_task(cfg.task).parameter_groups))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg
