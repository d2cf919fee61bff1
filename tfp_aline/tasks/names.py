"""Names and messages shared by the registry and the task check (no TensorFlow)."""

from tfp_aline.core.target_names import BUILTIN_TARGETS  # noqa: F401  (the check reads it from here)


def first_line(e: Exception) -> str:
    """'ExceptionType: first line of its message', for one-line reports of a user's code failing."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
