"""The interface of a Bayesian model (TFP only, no Keras), `Task`, and the registry that finds one;
loaded on first use, so that reading a config does not import TensorFlow. The built-in models
live in their own subpackages, above training and evaluation."""

import importlib

_EXPORTS = {
    "Task": "tfp_aline.tasks.base",
}

__all__ = list(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'tfp_aline.tasks' has no attribute {name!r}")
