"""tfp_aline: ALINE (joint amortized inference and active data acquisition) with TensorFlow Probability."""

import os

# The user's own level, before the default below: `tfp-aline --verbose` gives it back (quiet.py).
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of CLI output

__version__ = "0.1.0"


def __getattr__(name):
    # Loaded on first use, so that `import tfp_aline` stays free of TensorFlow.
    if name == "check_task":
        from importlib import import_module

        return import_module("tfp_aline.tasks.check").check_task
    raise AttributeError(f"module 'tfp_aline' has no attribute {name!r}")
