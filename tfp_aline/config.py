"""Run configuration: YAML files loaded into frozen, validated dataclasses (every key is read)."""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any, Mapping

import yaml

from tfp_aline.coerce import FLOAT, coerce
from tfp_aline.core.target_names import PREDICTIVE, check_target_name
from tfp_aline.errors import ConfigError, check_seed
from tfp_aline.paths import input_file_problem
from tfp_aline.tasks.registry import TaskConfig, parse_task_section


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
    joint: str = "none"  # 'mixture_tril' or 'copula': also a joint posterior over all parameters (nn/joint.py)
    joint_rank: int = 4  # factors per parameter in the joint's correlation matrices
    joint_reward: bool = False  # the target's log q (and so the reward) from the joint, not the marginals
    query_layers: int = 0  # the query tokens join only the last this many layers (0: all; a cheaper policy)


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
    # The policy phase's levers (docs/design.md, "Policy phase"):
    credit: str = "step"  # 'step': each choice paid its own gain; 'return': the reward-to-go
    clamp_rewards: bool = False  # rewards below 0 count as 0 (the authors' code)
    policy_phase_lr_factor: float = 1.0  # after warm-up, the learning rate of all but the policy head
    inference_updates: int = 0  # extra inference-only updates per policy epoch, on its own episodes
    random_updates: int = 0  # extra inference-only updates per policy epoch, on random-query episodes
    pool_sizes: tuple = ()  # candidate pools cycled epoch by epoch after warm-up (empty: the episodes' one)
    freeze: tuple[
        str, ...
    ] = ()  # network layers left as they are (e.g. all but joint_head, to add a joint to a trained run)
    init_from: str = ""  # a run dir whose weights start this run (layers it lacks keep their fresh weights)


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
        d["task"] = self.task.to_dict()
        d["targets"] = {t: p for t, p in self.targets}
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3`, `5E4`, `1.5e3` and `.5e-2` as floats.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent (`1.0e-3`), so
    `1e-3` would be the string '1e-3' and be refused as "not a number".
    """


# Appended after the built-in int resolver, so '10' stays an int and only what int rejects is tried.
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", FLOAT, list("-+0123456789."))


def _mapping_without_duplicates(loader, node, deep=False):
    """A mapping whose keys are all different: with a repeated key PyYAML keeps the last one and
    silently drops the first (e.g. a whole `training:` section)."""
    loader.flatten_mapping(node)
    first_line = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in first_line
        except TypeError:  # an unhashable key: PyYAML's own message follows
            continue
        if seen:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first on line {first_line[key]}); the first would be ignored, "
                "so keep only one",
                key_node.start_mark,
            )
        first_line[key] = key_node.start_mark.line + 1
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


def parse_yaml(text: str):
    """YAML text -> Python values, with every float a person would write read as a float."""
    return yaml.load(text, Loader=_Loader)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: 'line 3: mapping values are not allowed here'."""
    mark, problem = getattr(e, "problem_mark", None), getattr(e, "problem", None) or str(e).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else problem


_SECTIONS = {f.name: f.type for f in dataclasses.fields(Config)}
STRATEGIES = ("default", "mirrored", "multi_worker")
CREDITS = ("step", "return")  # core.objectives.CREDITS, restated so that reading a config needs no TensorFlow
JOINTS = ("none", "mixture_tril", "copula")  # nn.joint.JOINTS, restated for the same reason
NETWORK_LAYERS = ("embedder", "transformer", "inference_head", "predictive_head", "policy_head", "joint_head")
ON_NONFINITE = ("skip", "stop")


def _check_name(name: str) -> str:
    """The run's name is a folder under runs/: one folder name, never a path."""
    bad = not name.strip() or name.startswith(".") or any(c in name for c in "/\\") or any(ord(c) < 32 for c in name)
    if bad:
        raise ConfigError(
            f"name = {name!r}: expected a plain folder name (no '/', '\\', control characters or "
            "leading '.'), since the run is written to runs/<name>-<time>/"
        )
    return name


def _section(cls, raw, prefix):
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {raw!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        raise ConfigError(f"{prefix}.{unknown[0]}: unknown key (known keys: {', '.join(fields)})")
    values = {k: coerce(f"{prefix}.{k}", v, fields[k].type) for k, v in raw.items()}
    return cls(**values)


def config_from_dict(raw: Mapping[str, Any], default_name: str = "run") -> Config:
    """Build and validate a Config from a parsed YAML mapping."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"expected a mapping at the top of the config, got {type(raw).__name__}")
    unknown = [k for k in raw if k not in _SECTIONS]
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key (known keys: {', '.join(_SECTIONS)})")
    name = _check_name(coerce("name", raw.get("name", default_name), "str"))
    seed = check_seed(coerce("seed", raw.get("seed", 0), "int"), "seed", ConfigError)
    targets_raw = raw.get("targets", {"all": 1.0})
    if not isinstance(targets_raw, Mapping) or not targets_raw:
        raise ConfigError(f"targets: expected a mapping target -> probability, got {targets_raw!r}")
    targets = tuple((str(k), coerce(f"targets.{k}", v, "float")) for k, v in targets_raw.items())
    cfg = Config(
        name=name,
        seed=seed,
        targets=targets,
        task=parse_task_section(raw.get("task")),
        episodes=_section(EpisodeConfig, raw.get("episodes"), "episodes"),
        network=_section(NetworkConfig, raw.get("network"), "network"),
        training=_section(TrainingConfig, raw.get("training"), "training"),
        logging=_section(LoggingConfig, raw.get("logging"), "logging"),
        evaluation=_section(EvaluationConfig, raw.get("evaluation"), "evaluation"),
    )
    validate(cfg)
    return cfg


def validate(cfg: Config, group_names=None, parameter_names=()):
    """Range checks that need no task; with the task's `group_names` (and `parameter_names`), also
    that every target exists."""
    # One check after the other in a fixed order: a config with several problems always names the same one.
    _check_signs(cfg)
    _check_sizes(cfg)
    _check_memory(cfg)
    _check_training_choices(cfg.training)
    _check_joint(cfg)
    _check_targets(cfg, group_names, parameter_names)


def _check_signs(cfg: Config):
    """Counts, sizes and rates that must be positive, and those that may be 0 but not negative."""
    e, n, t = cfg.episodes, cfg.network, cfg.training
    positive = {
        "episodes.batch_size": e.batch_size,
        "episodes.num_candidates": e.num_candidates,
        "episodes.horizon": e.horizon,
        "network.embed_dim": n.embed_dim,
        "network.num_layers": n.num_layers,
        "network.num_heads": n.num_heads,
        "network.ff_dim": n.ff_dim,
        "network.num_components": n.num_components,
        "network.min_scale": n.min_scale,
        "training.epochs": t.epochs,
        "training.learning_rate": t.learning_rate,
        "training.clip_norm": t.clip_norm,
        "logging.scalars_every": cfg.logging.scalars_every,
        "logging.histograms_every": cfg.logging.histograms_every,
        "logging.images_every": cfg.logging.images_every,
        "logging.checkpoint_every": cfg.logging.checkpoint_every,
        "logging.keep_checkpoints": cfg.logging.keep_checkpoints,
        "logging.validation_people": cfg.logging.validation_people,
        "evaluation.people": cfg.evaluation.people,
    }
    for key, value in positive.items():
        if not value > 0:
            raise ConfigError(f"{key} = {value!r}: expected a positive number")
    non_negative = {
        "episodes.num_initial_context": e.num_initial_context,
        "episodes.num_predictive_targets": e.num_predictive_targets,
        "training.warmup_epochs": t.warmup_epochs,
        "training.weight_decay": t.weight_decay,
        "training.alpha": t.alpha,
        "training.inference_updates": t.inference_updates,
        "training.random_updates": t.random_updates,
        "logging.validate_every": cfg.logging.validate_every,
    }
    for key, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"{key} = {value!r}: expected a number >= 0")
    check_seed(cfg.evaluation.seed_offset, "evaluation.seed_offset", ConfigError)
    if t.gradient_steps < 0:
        raise ConfigError(
            f"training.gradient_steps = {t.gradient_steps}: expected 0 (every step) or a number of "
            "steps > 0 (at least episodes.horizon + 1 also means every step)"
        )


def _check_sizes(cfg: Config):
    """Sizes that must fit each other: the horizon within the candidates, the heads within the embedding."""
    e, n = cfg.episodes, cfg.network
    if e.horizon > e.num_candidates:
        raise ConfigError(
            f"episodes.horizon = {e.horizon}: cannot exceed episodes.num_candidates "
            f"= {e.num_candidates} (each candidate is queried at most once)"
        )
    for size in cfg.training.pool_sizes:
        if size < e.horizon:
            raise ConfigError(
                f"training.pool_sizes: {size} is below episodes.horizon = {e.horizon} (each candidate is "
                "queried at most once)"
            )
    if n.embed_dim % n.num_heads:
        raise ConfigError(f"network.embed_dim = {n.embed_dim}: must be divisible by network.num_heads = {n.num_heads}")


def _memory_bytes() -> int:
    """The memory this process may use: the machine's, or a container's smaller limit."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        return min(total, int(limit)) if limit.isdigit() else total
    except OSError:
        return total


def training_bytes(cfg: Config) -> int:
    """A rough lower bound on the memory training needs: float32 weights with their gradients and
    two Adam moments, and one step's activations and attention scores (the stepwise gradient keeps
    a single step). Task sizes (inputs, parameters) are small beside these and left out."""
    e, n = cfg.episodes, cfg.network
    d, ff, layers = n.embed_dim, n.ff_dim, n.num_layers
    weights = layers * (4 * d * d + 2 * d * ff) + 4 * 128 * d + 3 * 128 * 3 * n.num_components
    keys = e.num_initial_context + e.horizon + e.num_predictive_targets + 32
    tokens = max((e.num_candidates, *cfg.training.pool_sizes)) + keys
    activations = e.batch_size * layers * (tokens * (8 * d + 2 * ff) + n.num_heads * tokens * keys)
    return 4 * (4 * weights + activations)


def _check_memory(cfg: Config):
    """Refuse sizes that cannot fit in memory, naming them, instead of an out-of-memory dump later."""
    need, have = training_bytes(cfg), _memory_bytes()
    if need > have:
        e, n = cfg.episodes, cfg.network
        raise ConfigError(
            f"network.embed_dim = {n.embed_dim}, network.ff_dim = {n.ff_dim}, network.num_layers = "
            f"{n.num_layers}, episodes.batch_size = {e.batch_size}, episodes.num_candidates = "
            f"{e.num_candidates}: training needs at least {need / 2**30:.1f} GB, more than the "
            f"{have / 2**30:.1f} GB of memory here; lower them"
        )


def _check_training_choices(t: TrainingConfig):
    """Training settings bounded to an interval or to a set of names."""
    if not 0 <= t.lr_min_fraction <= 1:
        raise ConfigError(f"training.lr_min_fraction = {t.lr_min_fraction}: expected a number in [0, 1]")
    if not 0 < t.gamma <= 1:
        raise ConfigError(f"training.gamma = {t.gamma}: expected a number in (0, 1]")
    if t.strategy not in STRATEGIES:
        raise ConfigError(f"training.strategy = {t.strategy!r}: expected one of {STRATEGIES}")
    if t.on_nonfinite not in ON_NONFINITE:
        raise ConfigError(f"training.on_nonfinite = {t.on_nonfinite!r}: expected one of {ON_NONFINITE}")
    if t.credit not in CREDITS:
        raise ConfigError(f"training.credit = {t.credit!r}: expected one of {CREDITS}")
    if not 0 < t.policy_phase_lr_factor <= 1:
        raise ConfigError(f"training.policy_phase_lr_factor = {t.policy_phase_lr_factor}: expected a number in (0, 1]")


def _check_joint(cfg: Config):
    """The joint head's settings, and the layers `training.freeze` may name."""
    n, t = cfg.network, cfg.training
    if n.joint not in JOINTS:
        raise ConfigError(f"network.joint = {n.joint!r}: expected one of {JOINTS}")
    if not (isinstance(n.joint_rank, int) and n.joint_rank >= 1):
        raise ConfigError(f"network.joint_rank = {n.joint_rank!r}: expected a whole number >= 1")
    if not (isinstance(n.query_layers, int) and 0 <= n.query_layers <= n.num_layers):
        raise ConfigError(
            f"network.query_layers = {n.query_layers!r}: expected a whole number from 0 (all layers) to "
            f"network.num_layers = {n.num_layers}"
        )
    if n.joint_reward and n.joint == "none":
        raise ConfigError("network.joint_reward = true: needs a joint head (network.joint: mixture_tril or copula)")
    for name in t.freeze:
        if name not in NETWORK_LAYERS:
            raise ConfigError(
                f"training.freeze: {name!r} is not a layer of the network; expected some of {NETWORK_LAYERS}"
            )
        if name == "joint_head" and n.joint == "none":
            raise ConfigError("training.freeze: 'joint_head' names a layer this network lacks (network.joint is none)")
    if set(t.freeze) >= set(NETWORK_LAYERS) - ({"joint_head"} if n.joint == "none" else set()):
        raise ConfigError("training.freeze: every layer is frozen, so training would change nothing")


def _check_targets(cfg: Config, group_names=None, parameter_names=()):
    """p(target): probabilities that sum to 1, predictive targets only with held-out outcomes, and
    (with `group_names`) only targets the task has: its groups and single parameters."""
    for name, p in cfg.targets:
        if not 0 <= p <= 1 or not math.isfinite(p):
            raise ConfigError(f"targets.{name} = {p}: expected a probability in [0, 1]")
    total = sum(cfg.target_probs)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"targets: probabilities sum to {total:g}, expected 1")
    if PREDICTIVE in cfg.target_names and cfg.episodes.num_predictive_targets == 0:
        raise ConfigError("targets.predictive: needs episodes.num_predictive_targets > 0")
    if group_names is not None:
        for name in cfg.target_names:
            check_target_name(name, group_names, parameter_names, where=f"targets.{name}: ")


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
        try:
            node[parts[-1]] = parse_yaml(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML ({_yaml_problem(e)})") from None
    return raw


def read_config_file(path) -> dict:
    """The raw mapping of a YAML config file; a folder, a binary or empty file, bad YAML or a
    top level that is not a mapping raise `ConfigError` naming the file."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder; expected a YAML config file such as configs/smoke.yaml")
    problem = input_file_problem(path, max_bytes=2**20)
    if problem:
        raise ConfigError(f"{path}: {problem}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: is not a text file; expected a YAML config (UTF-8 text)") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror or e})") from None
    if "\x00" in text:
        raise ConfigError(f"{path}: is not a text file; expected a YAML config (UTF-8 text)")
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    if raw is None or raw == {}:
        raise ConfigError(
            f"{path}: config is empty; expected sections such as training: and network: (see configs/smoke.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level, got {type(raw).__name__}")
    return raw


def config_warnings(cfg: Config) -> list:
    """Settings that are valid but probably not meant (printed by `train` as one line each)."""
    t = cfg.training
    if t.warmup_epochs >= t.epochs:
        return [
            f"training.warmup_epochs = {t.warmup_epochs} >= training.epochs = {t.epochs}: every epoch "
            "is warm-up with random queries, so the policy is never trained"
        ]
    return []


# The configs shipped with the package, which `--config NAME` finds from any folder.
BUILTIN_CONFIGS = Path(__file__).resolve().parent / "configs"


def builtin_configs() -> tuple[str, ...]:
    """Names of the shipped configs (`tfp-aline train --config smoke`)."""
    return tuple(sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml")))


def resolve_config_path(path) -> Path:
    """A config file's path as given or, for a bare name that is no file here (`migraine`,
    `smoke.yaml`), the shipped config of that name."""
    path = Path(path)
    if path.exists() or path.parent != Path("."):
        return path
    shipped = BUILTIN_CONFIGS / (path.name if path.suffix in (".yaml", ".yml") else path.name + ".yaml")
    if shipped.exists():
        return shipped
    raise ConfigError(
        f"{path}: config file not found, and no shipped config has that name ({', '.join(builtin_configs())})"
    )


def load_config(path, overrides=None, check_targets: bool = True) -> Config:
    """Read a YAML config (a path, or a shipped config's name), apply `--set` overrides, validate
    (including target groups)."""
    path = resolve_config_path(path)
    raw = read_config_file(path)
    try:
        cfg = config_from_dict(apply_overrides(raw, overrides), default_name=path.stem)
        if check_targets:
            from tfp_aline.tasks.registry import check_targets

            predictive = cfg.episodes.num_predictive_targets or PREDICTIVE in cfg.target_names
            check_targets(cfg.task, lambda groups, names: validate(cfg, groups, names), int(bool(predictive)))
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    return cfg
