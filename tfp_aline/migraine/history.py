"""Reading one person's logged days (a CSV file or a DataFrame) into a validated `PersonHistory`."""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from tfp_aline.errors import TfpAlineError, located
from tfp_aline.migraine.cells import (
    canonical_header,
    cell_at,
    check_row_widths,
    drop_blank_rows,
    is_blank,
    read_csv_cells,
    to_number,
)
from tfp_aline.migraine.feature_table import FeatureTable

DATE_COLUMN = "date"
OUTCOME_COLUMN = "migraine"
# A value is "far outside" the typical range [lo, hi] beyond lo - FAR * (hi - lo) or hi + FAR * (hi - lo):
# wide enough that ordinary bad days pass, narrow enough to catch unit mix-ups (minutes for hours).
FAR = 2.0
# Beyond this many standard deviations from a feature's mean a value is refused, not warned about:
# a unit mix-up (minutes for hours, mL for L) stays far below it; 1e308 or a stray digit run does not.
IMPLAUSIBLE_SD = 1e4
FLOAT32_MAX = float(np.finfo(np.float32).max)  # the network computes in float32
_YES = {"1", "1.0", "yes", "y", "true"}
_NO = {"0", "0.0", "no", "n", "false"}


class HistoryError(TfpAlineError):
    """A person's history that cannot be used, with the file, row (header = row 1) and column."""

    def __init__(self, source, message, *, row=None, column=None):
        self.source, self.row, self.column = str(source), row, column
        super().__init__(located(source, message, row=row, column=column))


class HistoryWarning(UserWarning):
    """A suspicious but usable value in a person's history (e.g. far outside the typical range)."""


@dataclasses.dataclass(frozen=True)
class PersonHistory:
    """One person's days in time order (n days, D features in the feature table's order).

    raw [n, D] raw units; z [n, D] standardised; reported [n] bool (outcome given);
    y [n] float, 1/0 where reported and NaN elsewhere; dates [n] datetime64 or None;
    rows [n] the source rows (header = row 1); warnings: the messages also sent as `HistoryWarning`.
    """

    source: str
    names: tuple[str, ...]
    raw: np.ndarray
    z: np.ndarray
    reported: np.ndarray
    y: np.ndarray
    dates: np.ndarray | None
    rows: np.ndarray
    warnings: tuple[str, ...] = ()

    @property
    def num_days(self) -> int:
        return len(self.rows)

    @property
    def num_reported(self) -> int:
        return int(self.reported.sum())

    def labels(self) -> list[str]:
        """A display name per day: its date (YYYY-MM-DD) if dates were given, else 'row N'."""
        if self.dates is not None:
            return [str(d)[:10] for d in self.dates]
        return [f"row {r}" for r in self.rows]

    def context_indices(self, max_context: int) -> tuple[np.ndarray, np.ndarray]:
        """(used, dropped) indices of reported days: the `max_context` most recent are used."""
        if max_context < 0:
            raise TfpAlineError(f"max_context must be >= 0, got {max_context}")
        idx = np.flatnonzero(self.reported)
        cut = max(len(idx) - max_context, 0)
        return idx[cut:], idx[:cut]


def feature_aliases(table: FeatureTable) -> dict[str, int]:
    """Canonical header -> feature index: the full name ('Sleep duration (h)'), its snake_case key
    and, when unambiguous, the name without its unit ('Sleep duration')."""
    out: dict[str, int] = {}
    short: dict[str, list[int]] = {}
    for i, (name, key) in enumerate(zip(table.names, table.keys)):
        out[canonical_header(name)] = out[canonical_header(key)] = i
        short.setdefault(canonical_header(re.sub(r"\([^()]*\)\s*$", "", name)), []).append(i)
    for alias, ix in short.items():
        if len(ix) == 1:
            out.setdefault(alias, ix[0])
    return out


def _read_csv(path: Path) -> tuple[list[str], list[tuple[int, list]]]:
    if not path.exists():
        raise HistoryError(path, "file not found")
    if path.is_dir():
        raise HistoryError(path, "is a folder; expected a .csv file")

    def fail(message):
        raise HistoryError(path, message)

    rows = drop_blank_rows(read_csv_cells(path, fail))
    if not rows:
        raise HistoryError(path, "the file is empty; expected a header row with the feature names")
    (_, header), data = rows[0], rows[1:]
    return header, data


def _frame_rows(frame: pd.DataFrame) -> tuple[list[str], list[tuple[int, list]]]:
    # Numbered as if the frame were written to CSV (header = row 1), so messages match the file.
    header = [str(c) for c in frame.columns]
    return header, [(i + 2, list(r)) for i, r in enumerate(frame.itertuples(index=False, name=None))]


def _empty(value) -> bool:
    # DataFrames bring their own missing markers (pd.NA, NaT) besides None, NaN and ''.
    return is_blank(value) or value is pd.NA or value is pd.NaT


def _outcome(value):
    """1.0, 0.0, or None for an empty cell; raises ValueError otherwise."""
    if _empty(value):
        return None
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    text = str(value).strip().lower()
    if text in _YES:
        return 1.0
    if text in _NO:
        return 0.0
    raise ValueError(value)


_ISO_DATE = re.compile(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?$")
_YEAR_LAST = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.](\d{2}|\d{4})$")
_DATE_EXAMPLE = "a date like 2025-03-01 (year-month-day)"
_WRITE_ISO = "write dates as year-month-day, e.g. 2025-03-01"


def _timestamp(y, m, d):
    try:
        return pd.Timestamp(year=int(y), month=int(m), day=int(d))
    except ValueError:
        return None


def _date(value):
    """A Timestamp for an unambiguous date (ISO/year-first, a month name, a datetime object);
    a match object for a numeric year-last date (day and month order still open); else None."""
    if isinstance(value, (pd.Timestamp, np.datetime64)) or hasattr(value, "year"):
        out = pd.Timestamp(value)
        return None if pd.isna(out) else out.normalize()
    text = str(value).strip()
    if m := _ISO_DATE.match(text):
        return _timestamp(*m.groups())
    if m := _YEAR_LAST.match(text):
        return m
    if re.search(r"[A-Za-z]{3}", text) and re.search(r"\d{4}", text):  # '4 March 2025', 'Mar 4, 2025'
        try:
            out = pd.Timestamp(text)
        except (ValueError, TypeError):
            return None
        return None if pd.isna(out) else out.normalize()
    return None


def _settle_year_last(pending, name, column):
    """Read numeric dates with the year last (03/04/2025) day-first or month-first, but only when a
    day above 12 on some row settles the order; never guess. Returns ({row: Timestamp}, note)."""
    day_first = [(r, m) for r, m in pending if int(m[1]) > 12]
    month_first = [(r, m) for r, m in pending if int(m[2]) > 12]
    (r0, m0) = pending[0]
    if day_first and month_first:
        raise HistoryError(
            name,
            f"dates mix day/month/year (row {day_first[0][0]}: {day_first[0][1][0]!r}) and "
            f"month/day/year (row {month_first[0][0]}: {month_first[0][1][0]!r}); {_WRITE_ISO}",
            row=month_first[0][0],
            column=column,
        )
    if not (day_first or month_first):
        raise HistoryError(
            name, f"date {m0[0]!r} could be day/month/year or month/day/year; {_WRITE_ISO}", row=r0, column=column
        )
    if any(len(m[3]) == 2 for _, m in pending):
        r, m = next((r, m) for r, m in pending if len(m[3]) == 2)
        raise HistoryError(name, f"date {m[0]!r} has a two-digit year; {_WRITE_ISO}", row=r, column=column)
    dayfirst = bool(day_first)
    out = {}
    for r, m in pending:
        d, mo = (m[1], m[2]) if dayfirst else (m[2], m[1])
        if (t := _timestamp(m[3], mo, d)) is None:
            raise HistoryError(name, f"{m[0]!r} is not a valid date", row=r, column=column)
        out[r] = t
    r, m = (day_first or month_first)[0]
    order = "day/month/year" if dayfirst else "month/day/year"
    return out, f"{name}, column {column!r}: dates read as {order} (row {r} has {m[0]!r})"


def _short(value, limit: int = 60) -> str:
    """repr of a cell, cut to `limit` characters (a binary or wrong-delimiter file has huge cells)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(str(value))} characters)"


def _resolve_dates(cells, name, column, notes) -> list:
    """[(row, Timestamp or year-last match)] -> [Timestamp] in row order; duplicates refused."""
    pending = [(r, t) for r, t in cells if isinstance(t, re.Match)]
    settled = {}
    if pending:
        settled, note = _settle_year_last(pending, name, column)
        notes.append(note)
    out, seen = [], {}
    for r, t in cells:
        t = settled.get(r, t)
        if t in seen:
            raise HistoryError(name, f"date {str(t)[:10]} appears twice (also on row {seen[t]})", row=r, column=column)
        seen[t] = r
        out.append(t)
    return out


def read_history(source, table: FeatureTable, *, outcome: bool = True, warn: bool = True) -> PersonHistory:
    """Read and validate one person's days from a .csv path, a pandas DataFrame or `HistoryRows`.

    Columns: one per feature of `table` (raw units; headers matched ignoring case, spaces and
    punctuation; the snake_case key or the name without its unit also work), an optional `date`
    (rows are then sorted by date, otherwise file order is time order) and `migraine`
    (1/0, yes/no, true/false, or empty = not reported yet). With outcome=False (coming days) the
    `migraine` column may be absent and must be empty. Every feature value is required: the
    model cannot take missing inputs. Problems raise `HistoryError` naming the row and column;
    values far outside a feature's typical range give a `HistoryWarning` (unless warn=False).
    """
    name, header, data = _source_rows(source)

    def fail(msg, row=None, column=None):
        raise HistoryError(name, msg, row=row, column=column)

    check_row_widths(header, data, fail)
    columns = _locate_columns(header, data, table, fail)
    _check_columns(columns, table, outcome, data, fail)
    raw, y, dates, found = _read_days(data, header, columns, table, outcome, name, fail)
    rows = np.array([rownum for rownum, _ in data])
    if dates is not None:
        dates = _resolve_dates(dates, name, header[columns.date], found)
        order = np.argsort(np.array(dates, dtype="datetime64[ns]"), kind="stable")
        raw, y, rows = raw[order], y[order], rows[order]
        dates = np.array(dates, dtype="datetime64[ns]")[order]
    if warn:
        # Sent here rather than in a helper so that stacklevel=2 points at the caller of read_history.
        for msg in found:
            warnings.warn(msg, HistoryWarning, stacklevel=2)
    return PersonHistory(
        source=name,
        names=tuple(table.names),
        raw=raw,
        z=table.standardize(raw),
        reported=~np.isnan(y),
        y=y,
        dates=dates,
        rows=rows,
        warnings=tuple(found),
    )


@dataclasses.dataclass(frozen=True)
class HistoryRows:
    """Days given as cells rather than a file (e.g. a JSON request): a header and one list of cells per
    day. Rows are numbered as in the equivalent CSV (header = row 1), so messages match the CLI's."""

    name: str
    header: tuple
    rows: tuple


def _source_rows(source) -> tuple[str, list[str], list[tuple[int, list]]]:
    """(name for messages, header, [(row number, [cells])]) of a DataFrame, `HistoryRows` or a .csv path."""
    if isinstance(source, pd.DataFrame):
        return "<DataFrame>", *_frame_rows(source)
    if isinstance(source, HistoryRows):
        return source.name, list(source.header), drop_blank_rows([(i + 2, list(r)) for i, r in enumerate(source.rows)])
    path = Path(source)
    return str(path), *_read_csv(path)


@dataclasses.dataclass
class _Columns:
    """Where each kind of column sits in the header (0-based positions; None when absent)."""

    feature: dict[int, int] = dataclasses.field(default_factory=dict)  # feature index -> column
    date: int | None = None
    outcome: int | None = None


def _locate_columns(header: list, data: list, table: FeatureTable, fail) -> _Columns:
    """Find the feature, date and migraine columns of the header row; unknown or repeated columns fail."""
    aliases = feature_aliases(table)
    columns = _Columns()
    for j, h in enumerate(header):
        if is_blank(h):
            if any(j < len(r) and not is_blank(r[j]) for _, r in data):
                fail(f"column {j + 1} has values but no header", row=1)
            continue
        kind, index = _column_kind(h, aliases, table, fail)
        if kind == "feature":
            if index in columns.feature:
                fail(
                    f"two columns mean {table.names[index]!r}: {header[columns.feature[index]]!r} and {h!r}",
                    row=1,
                    column=str(h),
                )
            columns.feature[index] = j
        elif (columns.date if kind == "date" else columns.outcome) is not None:
            fail(f"two {kind!r} columns", row=1, column=str(h))
        elif kind == "date":
            columns.date = j
        else:
            columns.outcome = j
    return columns


def _column_kind(h, aliases: dict[str, int], table: FeatureTable, fail) -> tuple[str, int | None]:
    """('date' | 'migraine' | 'feature', feature index or None) of one header cell; unknown headers fail."""
    c = canonical_header(h)
    if c == DATE_COLUMN:
        return "date", None
    if c in (OUTCOME_COLUMN, "migrane"):
        return "migraine", None
    if c in aliases:
        return "feature", aliases[c]
    # A whole semicolon-separated header read as one cell means the delimiter was misjudged.
    hint = "the file looks semicolon-separated; " if ";" in str(h) else ""
    fail(
        f"unknown column {_short(h)}; {hint}expected the feature names of the table "
        f"({', '.join(table.names)}), 'date' and 'migraine'",
        row=1,
        column=str(h)[:60],
    )


def _check_columns(columns: _Columns, table: FeatureTable, outcome: bool, data: list, fail) -> None:
    """Every feature needs a column, reported days need 'migraine', and there must be days at all."""
    missing = [table.names[i] for i in range(table.num_features) if i not in columns.feature]
    if missing:
        fail(
            f"missing feature column(s): {', '.join(map(repr, missing))}; every feature is needed "
            "for every day (the model cannot take missing inputs)",
            row=1,
        )
    if outcome and columns.outcome is None:
        fail("missing column 'migraine' (1 = migraine that day, 0 = none, empty = not reported yet)", row=1)
    if not data:
        fail("no days below the header", row=1)


def _read_days(data: list, header: list, columns: _Columns, table: FeatureTable, outcome: bool, name: str, fail):
    """Check every day row by row (so the first bad row is the one reported) and collect its values.

    Returns raw [n, D], y [n] (NaN = not reported), [(row, Timestamp or year-last match)] or None
    without a date column, and the far-outside-range notes, in file order.
    """
    n = len(data)
    raw = np.empty((n, table.num_features))
    y = np.full(n, np.nan)
    dates = [] if columns.date is not None else None
    found: list[str] = []
    span = table.range_high - table.range_low
    low, high = table.range_low - FAR * span, table.range_high + FAR * span
    for k, (rownum, r) in enumerate(data):
        for i, j in columns.feature.items():
            x = raw[k, i] = _feature_value(cell_at(r, j), i, table, rownum, header[j], fail)
            if not low[i] <= x <= high[i]:
                found.append(
                    f"{name}, row {rownum}, column {header[j]!r}: value {x:g} is far outside the "
                    f"typical range {_range_text(table, i)} (check the unit)"
                )
        if columns.outcome is not None:
            y[k] = _day_outcome(cell_at(r, columns.outcome), outcome, rownum, header[columns.outcome], fail)
        if dates is not None:
            dates.append((rownum, _day_date(cell_at(r, columns.date), rownum, header[columns.date], fail)))
    return raw, y, dates, found


def _range_text(table: FeatureTable, i: int) -> str:
    """'lo-hi unit' of feature i, for messages."""
    unit = table.units[i]
    return f"{table.range_low[i]:g}-{table.range_high[i]:g}{' ' + unit if unit else ''}"


def _feature_value(value, i: int, table: FeatureTable, rownum: int, column: str, fail) -> float:
    """One feature cell as a finite number the float32 model can use and the table finds plausible."""
    if _empty(value):
        fail(
            f"empty value for {table.names[i]!r}; the model cannot take missing inputs, so "
            "every feature needs a value on every day (fill it in or delete the day)",
            rownum,
            column,
        )
    x = to_number(value)
    if x is None or not math.isfinite(x):
        fail(f"expected a number in {table.units[i] or 'raw units'}, got {_short(value)}", rownum, column)
    if abs(x) > FLOAT32_MAX:
        fail(
            f"value {x:g} is too large to compute with (the model uses float32, at most "
            f"{FLOAT32_MAX:.1e}); check the value",
            rownum,
            column,
        )
    if abs(x - table.mean[i]) > IMPLAUSIBLE_SD * table.std[i]:
        fail(
            f"value {x:g} is implausible for {table.names[i]!r} (typical range {_range_text(table, i)}; "
            f"more than {IMPLAUSIBLE_SD:g} standard deviations away); check the value and its unit",
            rownum,
            column,
        )
    return x


def _day_outcome(value, outcome: bool, rownum: int, column: str, fail) -> float:
    """The 'migraine' cell as 1.0, 0.0 or NaN (not reported); coming days (outcome=False) must be empty."""
    try:
        o = _outcome(value)
    except ValueError:
        fail(f"expected 1 (migraine), 0 (none) or empty (not reported yet), got {value!r}", rownum, column)
    if not outcome and o is not None:
        fail(
            "coming days cannot have a reported outcome; leave 'migraine' empty or drop the column",
            rownum,
            column,
        )
    return np.nan if o is None else o


def _day_date(value, rownum: int, column: str, fail):
    """The date cell as a Timestamp, or a match object for a year-last date (order settled by `_resolve_dates`)."""
    t = None if _empty(value) else _date(value)
    if t is None:
        fail(f"expected {_DATE_EXAMPLE}, got {_short(value)}", rownum, column)
    return t
