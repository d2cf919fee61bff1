"""Names and messages shared by the registry and the task check (no TensorFlow)."""

BUILTIN_TARGETS = ("all", "predictive")  # targets every task has; a parameter group may not take these names


def first_line(e: Exception) -> str:
    """'ExceptionType: first line of its message', for one-line reports of a user's code failing."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
