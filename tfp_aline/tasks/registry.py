"""Finding a task class by installed name (entry points) or import path, and validating its config section."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from importlib.metadata import entry_points
from typing import Any, Mapping

from tfp_aline.coerce import coerce
from tfp_aline.core.target_names import builtin_clash
from tfp_aline.errors import ConfigError, TfpAlineError
from tfp_aline.tasks.names import first_line as _first_line

# Installed packages register tasks by name in this entry point group (tfp_aline's own built-in
# models do so in its pyproject.toml); any other task is named by import path, "package.module:ClassName".
TASKS_GROUP = "tfp_aline.tasks"
SELECTORS = ("name", "class")


@dataclasses.dataclass(frozen=True)
class TaskConfig:
    """A run's task: `name` (built-in) or `class` (import path), and that task's own options
    (an instance of the task class's `Options` dataclass, or None before it is resolved)."""

    name: str = ""  # no default task: a config names one
    options: Any = None
    by_path: bool = False

    def to_dict(self) -> dict:
        head = {"class" if self.by_path else "name": self.name}
        return {**head, **(dataclasses.asdict(self.options) if self.options is not None else {})}


def installed_tasks() -> dict[str, str]:
    """{name: 'module:Class'} of every task an installed package registers, sorted by name."""
    return {ep.name: ep.value for ep in sorted(entry_points(group=TASKS_GROUP), key=lambda e: e.name)}


def _unknown_name(key: str, spec) -> ConfigError:
    names = ", ".join(installed_tasks()) or "none (is tfp_aline installed? pip install -e .)"
    return ConfigError(
        f"task.{key} = {spec!r}: expected an installed task ({names}; `tfp-aline tasks` lists them), "
        "or task.class = 'package.module:ClassName' for a task of your own"
    )


def task_class(spec: str):
    """The Task subclass for an installed task's name or a 'module:Class' path."""
    from tfp_aline.tasks.base import Task

    path = installed_tasks().get(spec, spec)
    if ":" not in path:
        raise _unknown_name("name", spec)
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        hint = ""
        if isinstance(e, ModuleNotFoundError) and e.name and module_name.startswith(e.name):
            # The usual cause: the task's own folder is not on the path of the installed command.
            hint = "; is its folder on the Python path? e.g. run with PYTHONPATH=. from the folder holding it"
        raise ConfigError(f"task.class = {spec!r}: cannot import {module_name!r} ({e}{hint})") from None
    except Exception as e:  # the module's own code failed while it was imported
        raise ConfigError(
            f"task.class = {spec!r}: importing {module_name!r} failed ({_first_line(e)}); fix that module"
        ) from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise ConfigError(f"task.class = {spec!r}: {attr!r} in {module_name} is not a tfp_aline Task subclass")
    if inspect.isabstract(cls):
        missing = ", ".join(sorted(cls.__abstractmethods__))
        raise ConfigError(f"task.class = {spec!r}: {attr} is abstract; it still has to define {missing}")
    return cls


def _task_call(cfg: TaskConfig, what: str, fn, *args):
    """`fn(*args)` of a task's own code; its failure becomes one line naming the task and `what`."""
    try:
        return fn(*args)
    except TfpAlineError:
        raise
    except Exception as e:
        raise ConfigError(f"task {cfg.name!r}: {what} failed ({_first_line(e)})") from None


def parse_task_section(raw) -> TaskConfig:
    """The config's `task:` mapping -> TaskConfig with the chosen task's validated options.

    Exactly one of `name` / `class`; every other key must be a field of that task's `Options`.
    """
    if raw is None:
        names = ", ".join(installed_tasks()) or "none installed"
        raise ConfigError(
            f"task: missing; name one, e.g. task: {{name: psychometric}} (installed: {names}), "
            "or task: {class: 'package.module:ClassName'} for a task of your own"
        )
    if not isinstance(raw, Mapping):
        raise ConfigError(f"task: expected a mapping with 'name' (or 'class') and the task's options, got {raw!r}")
    chosen = [k for k in SELECTORS if k in raw]
    if len(chosen) > 1:
        raise ConfigError("task: give either 'name' (an installed task) or 'class' (an import path), not both")
    if not chosen:
        raise ConfigError("task: missing 'name' (an installed task, `tfp-aline tasks` lists them) or 'class'")
    key = chosen[0]
    spec = raw[key]
    if not isinstance(spec, str):
        raise ConfigError(f"task.{key}: expected a string, got {spec!r}")
    if key == "name" and spec not in installed_tasks():
        raise _unknown_name("name", spec)
    cls = task_class(spec)
    if not dataclasses.is_dataclass(getattr(cls, "Options", None)):
        raise ConfigError(f"task.{key} = {spec!r}: {cls.__name__}.Options must be a dataclass of the task's options")
    fields = {f.name: f for f in dataclasses.fields(cls.Options)}
    given = {k: v for k, v in raw.items() if k not in SELECTORS}
    unknown = [k for k in given if k not in fields]
    if unknown:
        known = ", ".join(fields) or "none"
        raise ConfigError(f"task.{unknown[0]}: unknown key for task {spec!r} (its options: {known})")
    values = {k: coerce(f"task.{k}", v, fields[k].type) for k, v in given.items()}
    try:
        options = cls.Options(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"task: {e}") from None
    return TaskConfig(name=spec, options=options, by_path=key == "class")


def _class_and_options(cfg: TaskConfig):
    cls = task_class(cfg.name)
    return cls, cfg.options if cfg.options is not None else cls.Options()


def build_task(cfg: TaskConfig):
    """TaskConfig -> Task instance."""
    from tfp_aline.tasks.base import Task

    cls, options = _class_and_options(cfg)
    task = _task_call(cfg, f"{cls.__name__}.from_options", cls.from_options, options)
    if not isinstance(task, Task):
        raise ConfigError(f"task {cfg.name!r}: {cls.__name__}.from_options returned {type(task).__name__}, not a Task")
    # The cheap part of the check (no rebuild, no graph trace: 0.1-0.5 s), once per task class and
    # options in a process: a broken model fails here, one line per problem, instead of deep
    # inside a training step.
    key = (cls, repr(options))
    if key not in _CHECKED:
        from tfp_aline.tasks.check import raise_if_problems

        raise_if_problems(task, rebuild=False, graph=False)
        _CHECKED.add(key)
    return task


_CHECKED: set = set()  # (task class, repr of its options) that passed `check_task` in this process


def check_targets(cfg: TaskConfig, validate_names, num_predictive_targets: int) -> None:
    """Check a config's targets against the task without building it: `validate_names` gets the
    task's group names and parameter names; predictive targets are checked against the task's
    outcome type."""
    cls, options = _class_and_options(cfg)
    groups = _task_call(cfg, f"{cls.__name__}.group_names", cls.group_names, options)
    parameters = _task_call(cfg, f"{cls.__name__}.parameter_names_of", cls.parameter_names_of, options)
    clash = builtin_clash(groups, parameters)
    if clash:  # the built-in target would silently win over the group or parameter
        raise ConfigError(f"task {cfg.name!r}: {clash} has the name of a built-in target; rename it")
    validate_names(groups, parameters)
    _task_call(cfg, f"{cls.__name__}.check_predictive", cls.check_predictive, num_predictive_targets)
