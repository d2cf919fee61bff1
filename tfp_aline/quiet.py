"""A quiet TensorFlow start-up for the command line.

On a CPU machine TensorFlow 2.21 prints 6-8 absl/oneDNN/CUDA lines when it starts, some of them
`E0000 ...` although nothing is wrong. Two things silence them:

- `TF_CPP_MIN_LOG_LEVEL=3` (set before the first `import tensorflow`) hides the C++ logs written
  after start-up: `failed call to cuInit ... (303)` and `oneDNN supports DT_INT32 only ...`.
- The lines written while the shared libraries load come before absl::InitializeLog() and ignore
  every setting, so fd 2 is sent to a temporary file during the import (and the first device
  query); afterwards the known start-up noise is dropped and anything else is replayed to stderr.

`--verbose` (or `TFP_ALINE_VERBOSE=1`) leaves TensorFlow's logging as it is. Nothing here
disables a GPU: with an NVIDIA driver present a failing cuInit is a real problem and is shown.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from pathlib import Path

# The user's own level, read before `configure` sets ours: `--verbose` gives it back.
USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
ENV_VERBOSE = "TFP_ALINE_VERBOSE"
_state = {"verbose": False}

# absl's prefix: level, MMDD, time (before InitializeLog: 00:00:<epoch seconds>), thread, file:line]
_ABSL_LINE = re.compile(r"^(?P<level>[IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\]")
_NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "To enable the following instructions:",  # continuation of cpu_feature_guard's info line
)
_GPU_PLUGIN_NOISE = (
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
)
_NO_DRIVER_NOISE = ("failed call to cuInit",)


def verbose_requested(flag: bool = False) -> bool:
    """True with --verbose or TFP_ALINE_VERBOSE set to anything but '' or '0'."""
    return bool(flag) or os.environ.get(ENV_VERBOSE, "").strip() not in ("", "0")


def configure(verbose: bool = False) -> bool:
    """Set TensorFlow's log level for this process; call before the first `import tensorflow`."""
    verbose = verbose_requested(verbose)
    _state["verbose"] = verbose
    if verbose:  # TensorFlow's own default (0: everything) unless the user chose a level
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = USER_TF_LOG_LEVEL or "0"
    else:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return verbose


def gpu_driver_present() -> bool:
    """An NVIDIA kernel driver (or WSL's GPU bridge) is installed, whatever TensorFlow finds."""
    return any(Path(p).exists() for p in ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))


def is_noise(line: str, driver: bool) -> bool:
    """A start-up line that says nothing to a user: absl info/warning lines, the absl preamble,
    CUDA plugin registration, and (without a driver) the failed cuInit."""
    if not line.strip() or line.startswith(_NOISE):
        return True
    m = _ABSL_LINE.match(line)
    if m is None:
        return False
    if m["level"] in "IW" or any(s in line for s in _GPU_PLUGIN_NOISE):
        return True
    return not driver and any(s in line for s in _NO_DRIVER_NOISE)


@contextlib.contextmanager
def filtered_stderr():
    """Send fd 2 to a temporary file inside; then replay to stderr every line that is not noise."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            driver = gpu_driver_present()
            kept = [ln for ln in tmp.read().decode("utf-8", "replace").splitlines() if not is_noise(ln, driver)]
            if kept:
                sys.stderr.write("\n".join(kept) + "\n")
                sys.stderr.flush()


def import_tensorflow():
    """`import tensorflow` (and list the GPUs, which initialises CUDA) without the start-up noise."""
    if "tensorflow" in sys.modules or _state["verbose"]:
        import tensorflow as tf

        return tf
    with filtered_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")
    return tf
