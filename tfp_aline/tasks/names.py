"""The one-line form of a user's code failing, shared by the registry, the task check and the CLI (no TensorFlow)."""


def first_line(e: Exception) -> str:
    """'ExceptionType: first line of its message', for one-line reports of a user's code failing."""
    text = (str(e).strip().splitlines() or [""])[0]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__
