"""Build a task from its config section."""
from tfp_aline.errors import ConfigError
from tfp_aline.tasks.base import Task

TASKS = ("migraine", "psychometric")


def build_task(cfg) -> Task:
    """TaskConfig -> Task instance."""
    if cfg.name == "migraine":
        from tfp_aline.feature_table import read_feature_table, resolve_data_path
        from tfp_aline.tasks.migraine import MigraineModelConfig, MigraineTask

        model = MigraineModelConfig(correlation=cfg.correlation, weight_scale=cfg.weight_scale,
                                    weight_spread=cfg.weight_spread, baseline_spread=cfg.baseline_spread,
                                    base_rate=cfg.base_rate)
        return MigraineTask(read_feature_table(resolve_data_path(cfg.table), sheet=cfg.sheet), model)
    if cfg.name == "psychometric":
        from tfp_aline.tasks.psychometric import PsychometricTask

        return PsychometricTask()
    raise ConfigError(f"task.name = {cfg.name!r}: expected one of {TASKS}")
