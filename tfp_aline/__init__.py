"""tfp_aline: ALINE (joint amortized inference and active data acquisition) with TensorFlow Probability.

The public API is the names below; each is imported on first use, so `import tfp_aline` stays
cheap (no TensorFlow) and changes nothing in the process's environment.
"""

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    # bring a model: the interface, the check, the registry
    "Task": "tfp_aline.tasks.base",
    "check_task": "tfp_aline.tasks.check",
    "installed_tasks": "tfp_aline.tasks.registry",
    "task_class": "tfp_aline.tasks.registry",
    "build_task": "tfp_aline.tasks.registry",
    # configs and runs
    "Config": "tfp_aline.config",
    "load_config": "tfp_aline.config",
    "builtin_configs": "tfp_aline.config",
    "Run": "tfp_aline.runs",
    "load_run": "tfp_aline.runs",
    # the network, training, acquisition and evaluation
    "AlineModel": "tfp_aline.nn.model",
    "Trainer": "tfp_aline.training.trainer",
    "target_mask": "tfp_aline.core.targets",
    "model_inputs": "tfp_aline.core.rollout_state",
    "state_after": "tfp_aline.core.rollout_state",
    "run_acquisition": "tfp_aline.core.acquisition",
    "EvalSettings": "tfp_aline.evaluation.evaluate",
    "evaluate_run": "tfp_aline.evaluation.evaluate",
    "make_method": "tfp_aline.evaluation.evaluate",
    "contrastive_bounds": "tfp_aline.evaluation.spce",
    "metrics": "tfp_aline.evaluation",
    "export_saved_model": "tfp_aline.export",
    # errors
    "TfpAlineError": "tfp_aline.errors",
    "ConfigError": "tfp_aline.errors",
}

__all__ = sorted(_API)


def __getattr__(name):
    if name in _API:
        module = importlib.import_module(_API[name])
        value = getattr(module, name) if hasattr(module, name) else importlib.import_module(f"{_API[name]}.{name}")
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module 'tfp_aline' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_API))
