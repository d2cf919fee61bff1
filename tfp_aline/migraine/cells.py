"""Cell-level reading shared by the feature table and the history: CSV text into rows of cells, and cell tests."""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path

from tfp_aline.paths import input_file_problem

# The delimiters a CSV file may use; on a tie the earlier one wins (comma first).
DELIMITERS = (",", ";", "\t")
_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d*,\d+\s*$")


def canonical_header(text) -> str:
    """Header text reduced to lower-case letters and digits, so case, spacing, '_' and '-' do not matter:
    'Sleep_Duration (h)' -> 'sleepdurationh'."""
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


def is_blank(value) -> bool:
    """True for an empty cell: None, NaN, or a string of only whitespace."""
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or (isinstance(value, str) and not value.strip())
    )


def to_number(value) -> float | None:
    """A cell as a float (ints, floats and numeric text); None for booleans and anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).strip())
    except ValueError:
        return None


def cell_at(row: list, column: int | None):
    """The cell of `row` in `column` (0-based); None when the column is absent or the row is short."""
    return row[column] if column is not None and column < len(row) else None


def drop_blank_rows(rows: list) -> list:
    """[(row number, [cells])] without the rows whose cells are all blank (numbers are kept)."""
    return [(i, r) for i, r in rows if not all(is_blank(v) for v in r)]


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters in the first 8 KB: not a text file."""
    head = data[:8192]
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    return b"\x00" in head or control > 0.05 * max(len(head), 1)


def sniff_delimiter(text: str) -> str:
    """The delimiter (comma, semicolon or tab) the first non-empty line uses most; comma on a tie."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    return max(DELIMITERS, key=lambda d: (first.count(d), d == ","))


def read_csv_cells(path: Path, fail) -> list:
    """[(row number, [cells])] of a UTF-8 CSV file (row 1 = first line); cells are strings.

    The delimiter is found by `sniff_delimiter`; in a semicolon- or tab-separated file a decimal
    comma (`7,5`) is read as a decimal point. `fail(message)` raises: a binary file, a file that
    is not UTF-8, text the csv module refuses.
    """
    problem = input_file_problem(path)
    if problem:
        fail(problem)
    data = path.read_bytes()
    if looks_binary(data):
        fail("is not a CSV text file (it looks binary); expected UTF-8 text with a header row")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        fail(f"cannot be read as UTF-8 CSV (byte {e.start}: {e.reason}); save it as UTF-8 text")
    delimiter = sniff_delimiter(text)
    try:
        rows = [(i, r) for i, r in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)]
    except csv.Error as e:
        fail(f"cannot be read as CSV ({e})")
    if delimiter != ",":
        # Only here: with comma-separated cells a comma inside a number would already have split it.
        rows = [(i, [c.replace(",", ".") if _DECIMAL_COMMA.match(c) else c for c in r]) for i, r in rows]
    return rows


def check_row_widths(header: list, data: list, fail) -> None:
    """Fail on the first row with a value beyond the header's last column: its cells would be read
    one column off (an unquoted decimal comma, '6,1', splits one number into two cells)."""
    width = max((j + 1 for j, h in enumerate(header) if not is_blank(h)), default=0)
    for rownum, r in data:
        extra = [j for j in range(width, len(r)) if not is_blank(r[j])]
        if extra:
            fail(
                f"{extra[-1] + 1} cells but the header has {width} columns, so its values would shift; "
                "quote a value holding a comma (a decimal comma such as 6,1 splits one number in two) or write 6.1",
                row=rownum,
            )
