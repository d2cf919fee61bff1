"""Errors that tfp_aline reports to users as one clear line (no traceback)."""


class TfpAlineError(Exception):
    """Base class: the CLI prints these as `error: <message>` and exits with status 2."""


class FeatureTableError(TfpAlineError):
    """A feature table that cannot be read, with where the problem is."""

    def __init__(self, path, message, *, sheet=None, row=None, column=None):
        self.path, self.sheet, self.row, self.column = str(path), sheet, row, column
        where = [self.path]
        if sheet is not None:
            where.append(f"sheet {sheet!r}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(", ".join(where) + ": " + message)


class ConfigError(TfpAlineError):
    """A configuration value that is missing, unknown or out of range."""
