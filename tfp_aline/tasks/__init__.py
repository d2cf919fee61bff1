"""Bayesian models (TFP only, no Keras) behind one interface, `Task`; loaded on first use, so that
reading a config does not import TensorFlow."""

import importlib

_EXPORTS = {
    "Task": "tfp_aline.tasks.base",
    "MigraineTask": "tfp_aline.tasks.migraine.task",
    "MigraineModelConfig": "tfp_aline.tasks.migraine.task",
    "PsychometricTask": "tfp_aline.tasks.psychometric.task",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfp_aline.tasks' has no attribute {name!r}")
