"""Errors that tfp_aline reports to users as one clear line (no traceback)."""


class TfpAlineError(Exception):
    """Base class: the CLI prints these as `error: <message>` and exits with status 2."""


def located(source, message, *, sheet=None, row=None, column=None) -> str:
    """'<source>, sheet 's', row r, column 'c': <message>', naming only the parts given."""
    where = [str(source)]
    if sheet is not None:
        where.append(f"sheet {sheet!r}")
    if row is not None:
        where.append(f"row {row}")
    if column is not None:
        where.append(f"column {column!r}")
    return ", ".join(where) + ": " + message


class FeatureTableError(TfpAlineError):
    """A feature table that cannot be read, with where the problem is."""

    def __init__(self, path, message, *, sheet=None, row=None, column=None):
        self.path, self.sheet, self.row, self.column = str(path), sheet, row, column
        super().__init__(located(path, message, sheet=sheet, row=row, column=column))


class ConfigError(TfpAlineError):
    """A configuration value that is missing, unknown or out of range."""


class TrainingError(TfpAlineError):
    """Training cannot go on (non-finite values with on_nonfinite=stop, a clashing run dir, ...)."""


class Stopped(TfpAlineError):
    """A run stopped by a signal (SIGINT, SIGTERM, SIGHUP); the CLI exits with 128 + the signal number."""

    def __init__(self, message, signum: int):
        self.signum = signum
        self.exit_code = 128 + int(signum)
        super().__init__(message)


def warn(message: str) -> None:
    """One `warning: ...` line on stderr: something was off, the command goes on."""
    import sys

    print(f"warning: {message}", file=sys.stderr, flush=True)


def write_problem(e: Exception) -> str:
    """What went wrong in a failed write, in a few words: 'No space left on device'."""
    text = getattr(e, "strerror", None) or getattr(e, "message", None) or str(e)
    return (str(text).strip().splitlines() or [type(e).__name__])[0][:200]


# Seeds become int32 TensorFlow seeds (and seed + small offsets for derived streams).
MAX_SEED = 2**31 - 1


def check_seed(seed, setting: str, error=TfpAlineError) -> int:
    """A seed every random stream can take: an integer from 0 to MAX_SEED."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise error(f"{setting} = {seed!r}: expected an integer from 0 to {MAX_SEED}")
    return seed


class ConvergenceWarning(UserWarning):
    """An MCMC reference that did not converge for some people (R-hat or ESS out of bounds); one line,
    naming the people and the parameter. The CLI prints it as `warning: <message>`."""
