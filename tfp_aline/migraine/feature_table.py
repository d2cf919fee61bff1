"""Reading the migraine feature table (.xlsx or .csv) into a validated `FeatureTable`."""

from __future__ import annotations

import dataclasses
import filecmp
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from tfp_aline.errors import FeatureTableError
from tfp_aline.migraine.cells import (
    canonical_header,
    cell_at,
    check_row_widths,
    drop_blank_rows,
    is_blank,
    read_csv_cells,
    to_number,
)
from tfp_aline.paths import input_file_problem

# The files shipped with the package (a wheel installed anywhere has them); the repository's data/
# links to them, so that configs naming `data/migraine_prediction.xlsx` read the same file.
PACKAGE_DATA = Path(__file__).resolve().parent / "data"
DEFAULT_TABLE = PACKAGE_DATA / "migraine_prediction.xlsx"

# Display name -> accepted spellings. Headers are compared after lower-casing
# and dropping everything but letters and digits, so case, spacing, '_' and '-' do not matter.
COLUMNS = {
    "category": ("category", "group"),
    "variable": ("variable", "feature", "factor"),
    "Description": ("description",),
    "Weight": ("weight", "relevance"),
    "Typical Range": ("typical range", "range"),
    "Normalized range (1-10)": (
        "normalized range (1-10)",
        "normalised range (1-10)",
        "normalized range",
        "normalised range",
    ),
    "Migrane impact pattern": (
        "migrane impact pattern",
        "migraine impact pattern",
        "impact pattern",
        "migraine impact",
        "migrane impact",
    ),
    "mean": ("mean",),
    "std": ("std", "sd", "standard deviation"),
}
REQUIRED = ("category", "variable", "Weight", "Typical Range", "Migrane impact pattern")

_RANGE = re.compile(
    r"^\s*(?P<lo>[-+−]?\d+(?:\.\d+)?)\s*(?:-|–|—|to|\.\.)\s*(?P<hi>[-+−]?\d+(?:\.\d+)?)"
    r"\s*[^\d]*$",
    re.IGNORECASE,
)
_UP = {
    "higher",
    "more",
    "longer",
    "larger",
    "greater",
    "increased",
    "high",
    "bigger",
    "heavier",
    "excess",
    "excessive",
    "much",
    "later",
    "stronger",
}
_DOWN = {
    "lower",
    "less",
    "shorter",
    "fewer",
    "smaller",
    "reduced",
    "decreased",
    "low",
    "poor",
    "poorer",
    "insufficient",
    "little",
    "weaker",
    "earlier",
}
_PATTERN = re.compile(
    r"^(?P<subject>.+?)\s+(?P<verb>raises?|increases?|lowers?|reduces?|decreases?)\s+"
    r"(?:the\s+)?(?:migraine\s+|attack\s+)?(?:risk|odds|likelihood|chance)\b",
    re.IGNORECASE,
)
_EXPECTED_PATTERN = "a sentence like 'Higher stress raises risk' or 'Shorter sleep raises risk'"


# Target names the package gives a meaning of its own: a category or variable called so would be
# shadowed by it (a category 'baseline' was replaced by the intercept in training).
RESERVED_NAMES = ("all", "predictive", "baseline", "baseline (logit)")
# Magnitudes beyond this cannot be computed with in float32 (squares of them overflow).
MAX_MAGNITUDE = 1e18
# A spread below this share of the mean cannot be resolved in float32 (7 significant digits).
MIN_RELATIVE_STD = 1e-6

_ALIASES = {canonical_header(alias): name for name, aliases in COLUMNS.items() for alias in aliases}


@dataclasses.dataclass(frozen=True)
class FeatureTable:
    """The parsed feature table: one entry per risk factor, in table order.

    Arrays have shape [D] (D factors). `mean`/`std` are in raw units; `relevance` is
    weight / max(weight); `direction` is +1 when more of the factor raises risk, -1 otherwise.
    """

    source: str
    sheet: str | None
    names: tuple[str, ...]
    categories: tuple[str, ...]
    descriptions: tuple[str, ...]
    impact_patterns: tuple[str, ...]
    weight: np.ndarray
    range_low: np.ndarray
    range_high: np.ndarray
    risk_zone: tuple[tuple[float, float] | None, ...]
    mean: np.ndarray
    std: np.ndarray
    relevance: np.ndarray
    direction: np.ndarray

    @property
    def num_features(self) -> int:
        return len(self.names)

    @property
    def units(self) -> tuple[str, ...]:
        """The unit written in brackets at the end of each variable name ('' if none)."""
        return tuple((re.search(r"\(([^()]*)\)\s*$", n) or [None, ""])[1] for n in self.names)

    @property
    def keys(self) -> tuple[str, ...]:
        """snake_case identifiers derived from the names: 'Sleep duration (h)' -> 'sleep_duration_h'."""
        return tuple(re.sub(r"[^a-z0-9]+", "_", n.lower().replace("°", "")).strip("_") for n in self.names)

    @property
    def groups(self) -> dict[str, tuple[int, ...]]:
        """Category -> indices of its factors, in order of first appearance."""
        out: dict[str, list[int]] = {}
        for i, c in enumerate(self.categories):
            out.setdefault(c, []).append(i)
        return {c: tuple(ix) for c, ix in out.items()}

    def to_frame(self) -> pd.DataFrame:
        """One row per factor with the derived statistics (for display and export)."""
        return pd.DataFrame(
            {
                "category": self.categories,
                "variable": self.names,
                "weight": self.weight,
                "range_low": self.range_low,
                "range_high": self.range_high,
                "mean": self.mean,
                "std": self.std,
                "relevance": self.relevance,
                "direction": self.direction,
                "impact_pattern": self.impact_patterns,
            }
        )

    def standardize(self, x):
        """Raw units -> standardised units z = (x - mean) / std; x: [..., D]."""
        return (np.asarray(x, dtype=float) - self.mean) / self.std

    def to_raw(self, z):
        """Standardised units -> raw units; z: [..., D]."""
        return np.asarray(z, dtype=float) * self.std + self.mean


def resolve_data_path(path) -> Path:
    """A relative path from the working directory or, if it is not there and it names a shipped
    file as `data/NAME`, the package's copy (so configs naming `data/...` work from any folder and
    from an installed wheel). When both exist and differ, which one a run meant cannot be told
    (advice would standardise with the wrong table), so that is refused."""
    path = Path(path)
    root = PACKAGE_DATA / path.name
    shipped = not path.is_absolute() and path.parent == Path("data") and root.exists()
    if not shipped:
        return path
    if not path.exists():
        return root
    if os.path.realpath(path) == os.path.realpath(root) or _same_file_content(path, root):
        return path
    raise FeatureTableError(
        path,
        f"ambiguous relative path: {Path(os.path.abspath(path))} (from the working folder) and {root} "
        "(from the package's folder) both exist and differ; write the table's full path (task.table or --table)",
    )


def _same_file_content(a: Path, b: Path) -> bool:
    if input_file_problem(a) or input_file_problem(b):
        return False
    return filecmp.cmp(a, b, shallow=False)


def parse_range(text) -> tuple[float, float] | None:
    """'4-10', '4–10', '4 to 10', '-5 to 5', '0.5-3.5 L' -> (lo, hi); None if it is not a range."""
    if text is None or isinstance(text, (int, float)) and not isinstance(text, bool):
        return None
    m = _RANGE.match(str(text))
    if not m:
        return None

    def num(s):
        return float(s.replace("−", "-"))

    return num(m["lo"]), num(m["hi"])


def parse_direction(text) -> int | None:
    """Impact-pattern sentence -> +1 (more raises risk) or -1 (less raises risk); None if unreadable."""
    m = _PATTERN.match(str(text or "").strip())
    if not m:
        return None
    words = set(re.findall(r"[a-z]+", m["subject"].lower()))
    up, down = bool(words & _UP), bool(words & _DOWN)
    if up == down:
        return None
    sign = 1 if up else -1
    return sign if m["verb"].lower().startswith(("raise", "increase")) else -sign


def read_feature_table(path=DEFAULT_TABLE, sheet: str | None = None) -> FeatureTable:
    """Read and validate a feature table (.xlsx/.xlsm with openpyxl, or .csv).

    `sheet` chooses a worksheet by name (default: the first). Every problem raises
    `FeatureTableError` naming the file, sheet, spreadsheet row (header = row 1) and column.
    """
    path = Path(path)
    if not path.exists():
        raise FeatureTableError(path, "file not found")
    if path.is_dir():
        raise FeatureTableError(path, "is a folder; expected an .xlsx or .csv file")
    problem = input_file_problem(path)
    if problem:
        raise FeatureTableError(path, problem)
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        sheet_name, rows = _read_xlsx_rows(path, sheet)
    elif suffix == ".csv":
        if sheet is not None:
            raise FeatureTableError(path, f"a .csv file has no sheets (asked for sheet {sheet!r})")
        sheet_name, rows = None, _read_csv_rows(path)
    else:
        raise FeatureTableError(path, f"expected an .xlsx or .csv file, got a {suffix or 'file without extension'!r}")
    return _parse_rows(path, sheet_name, rows)


def _read_xlsx_rows(path: Path, sheet):
    import openpyxl  # imported here so that reading a .csv does not need it

    if not zipfile.is_zipfile(path):
        raise FeatureTableError(path, "is not an Excel .xlsx workbook (not a zip archive)")
    try:
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises many types for damaged files
        raise FeatureTableError(
            path, f"cannot be opened as an .xlsx workbook, it may be truncated or damaged ({type(e).__name__}: {e})"
        ) from None
    try:
        if sheet is None:
            ws = wb.worksheets[0]
        elif sheet in wb.sheetnames:
            ws = wb[sheet]
        else:
            raise FeatureTableError(path, f"no sheet named {sheet!r}; sheets are {wb.sheetnames}")
        try:
            rows = [(i, list(r)) for i, r in enumerate(ws.iter_rows(values_only=True), start=1)]
        except Exception as e:
            raise FeatureTableError(
                path, f"cannot read the sheet, the file may be damaged ({type(e).__name__}: {e})", sheet=ws.title
            ) from None
        return ws.title, rows
    finally:
        wb.close()


def _read_csv_rows(path: Path):
    """[(row number, [cells])] of a .csv feature table; unreadable text raises `FeatureTableError`."""

    def fail(message):
        raise FeatureTableError(path, message)

    return read_csv_cells(path, fail)


class _Factor(NamedTuple):
    """One parsed row of the feature table (raw units; `zone` is the 1-10 risk zone or None)."""

    name: str
    category: str
    description: str
    impact: str
    weight: float
    lo: float
    hi: float
    zone: tuple[float, float] | None
    mean: float
    std: float
    direction: int


def _parse_rows(path: Path, sheet, rows) -> FeatureTable:
    """[(row number, [cells])] of a sheet or CSV file -> the validated `FeatureTable`."""

    def fail(msg, row=None, column=None):
        raise FeatureTableError(path, msg, sheet=sheet, row=row, column=column)

    rows = drop_blank_rows(rows)
    if not rows:
        fail("the sheet is empty; expected a header row with the columns " + ", ".join(REQUIRED))
    header_row, header = rows[0]
    col_of = _header_columns(header, header_row, fail)
    data = rows[1:]
    if not data:
        fail("no data rows below the header", row=header_row)
    check_row_widths(header, data, fail)
    seen: dict[str, int] = {}
    factors = [_parse_factor(rownum, r, header, col_of, seen, fail) for rownum, r in data]
    return _build_table(path, sheet, factors, fail)


def _header_columns(header: list, header_row: int, fail) -> dict[str, int]:
    """Display column name (a key of COLUMNS) -> 0-based position in the header row; extra columns are
    ignored, a column meant twice or a missing REQUIRED column fails."""
    col_of: dict[str, int] = {}
    for j, h in enumerate(header):
        if is_blank(h):
            continue
        name = _ALIASES.get(canonical_header(h))
        if name is None:
            continue  # extra columns are accepted and ignored
        if name in col_of:
            fail(f"two columns mean {name!r}: {header[col_of[name]]!r} and {h!r}", row=header_row)
        col_of[name] = j
    missing = [c for c in REQUIRED if c not in col_of]
    if missing:
        # Which columns were found, not what the row says: a file named by mistake (or by a
        # foreign run folder) must not have its content printed.
        fail(
            f"missing column {missing[0]!r}; expected a header row with the columns {', '.join(REQUIRED)} "
            f"({len(col_of)} of them found)",
            row=header_row,
        )
    return col_of


def _parse_factor(rownum: int, r: list, header: list, col_of: dict[str, int], seen: dict[str, int], fail) -> _Factor:
    """One data row -> its `_Factor`; `seen` (lower-cased name -> row) is updated to catch duplicates.

    The checks keep a fixed order (name, category, weight, mean/std, range, risk zone, impact
    pattern) so that a row with several problems always reports the same one.
    """
    cells = {name: cell_at(r, col_of.get(name)) for name in COLUMNS}
    name = _factor_name(cells["variable"], rownum, seen, fail)
    if is_blank(cells["category"]):
        fail(f"empty category for {name!r}", rownum, "category")
    _check_not_reserved(str(cells["category"]).strip(), "category", rownum, fail)
    _check_not_reserved(name, "variable", rownum, fail)
    weight = _weight(cells["Weight"], name, rownum, fail)
    mean, std = _mean_std(cells["mean"], cells["std"], rownum, fail)
    lo, hi = _typical_range(cells["Typical Range"], mean, std, rownum, fail)
    zone = _risk_zone(cells["Normalized range (1-10)"], rownum, fail)
    impact = cells["Migrane impact pattern"]
    direction = parse_direction(impact)
    if direction is None:
        fail(
            f"cannot tell the risk direction from {impact!r}; expected {_EXPECTED_PATTERN}",
            rownum,
            header[col_of["Migrane impact pattern"]],
        )
    mean = (lo + hi) / 2 if mean is None else mean
    std = _usable_std((hi - lo) / 4 if std is None else std, mean, cells["std"], rownum, fail)
    desc = cells["Description"]
    return _Factor(
        name=name,
        category=str(cells["category"]).strip(),
        description="" if is_blank(desc) else str(desc).strip(),
        impact=str(impact).strip(),
        weight=weight,
        lo=lo,
        hi=hi,
        zone=zone,
        mean=mean,
        std=std,
        direction=direction,
    )


def _check_not_reserved(text: str, column: str, rownum: int, fail):
    if text.lower() in RESERVED_NAMES:
        fail(
            f"{column} name {text!r} is reserved (it names a built-in target: {', '.join(RESERVED_NAMES)}); rename it",
            rownum,
            column,
        )


def _factor_name(value, rownum: int, seen: dict[str, int], fail) -> str:
    """The stripped variable name of a row; empty or (case-insensitively) repeated names fail."""
    if is_blank(value):
        fail("empty variable name", rownum, "variable")
    name = str(value).strip()
    key = name.lower()
    if key in seen:
        fail(f"duplicate variable {name!r} (first on row {seen[key]})", rownum, "variable")
    seen[key] = rownum
    return name


def _weight(value, name: str, rownum: int, fail) -> float:
    """The weight cell as a finite number >= 0."""
    w = None if is_blank(value) else to_number(value)
    if w is None or not math.isfinite(w):
        fail(f"expected a number >= 0 for the weight of {name!r}, got {value!r}", rownum, "Weight")
    if w < 0:
        fail(f"weight of {name!r} is negative ({w:g}); expected a number >= 0", rownum, "Weight")
    return w


def _mean_std(mean_value, std_value, rownum: int, fail) -> tuple[float | None, float | None]:
    """The optional mean and std cells, each a finite number or None when empty (std must be > 0)."""
    mean = _optional_number(mean_value, rownum, "mean", fail)
    std = _optional_number(std_value, rownum, "std", fail)
    if std is not None and std <= 0:
        fail(f"std must be > 0, got {std:g}", rownum, "std")
    return mean, std


def _optional_number(value, rownum: int, column: str, fail) -> float | None:
    """A finite number of a computable size, or None for an empty cell."""
    if is_blank(value):
        return None
    x = to_number(value)
    if x is None or not math.isfinite(x):
        fail(f"expected a number, got {value!r}", rownum, column)
    if abs(x) > MAX_MAGNITUDE:
        fail(f"{x:g} is too large to compute with; expected a number of at most {MAX_MAGNITUDE:g}", rownum, column)
    return x


def _usable_std(std: float, mean: float, given, rownum: int, fail) -> float:
    """A spread the float32 network can resolve: at least MIN_RELATIVE_STD of the mean (and not 0).
    A tiny std makes standardised values overflow (NaN in the mock distribution)."""
    column = "std" if not is_blank(given) else "Typical Range"
    floor = MIN_RELATIVE_STD * max(abs(mean), 1.0 / MAX_MAGNITUDE)
    if not std >= floor:
        fail(
            f"the spread {std:g} is too small to compute with for mean {mean:g}; expected a std of at "
            f"least {floor:g} ({MIN_RELATIVE_STD:g} of the mean); check the unit",
            rownum,
            column,
        )
    return std


def _typical_range(value, mean: float | None, std: float | None, rownum: int, fail) -> tuple[float, float]:
    """(lo, hi) of the typical range; an empty range with both mean and std given is mean +- 2 std."""
    if is_blank(value) and mean is not None and std is not None:
        return mean - 2 * std, mean + 2 * std
    rng = parse_range(value)
    if rng is None:
        fail(f"expected a range like '4-10' or '4 to 10', got {value!r}", rownum, "Typical Range")
    lo, hi = rng
    if max(abs(lo), abs(hi)) > MAX_MAGNITUDE:
        fail(f"range {value!r} is too large to compute with (at most {MAX_MAGNITUDE:g})", rownum, "Typical Range")
    if lo > hi:
        fail(f"range {value!r} is reversed (min {lo:g} > max {hi:g})", rownum, "Typical Range")
    # A zero-width range gives std 0 unless a std column supplies the spread.
    if lo == hi and std is None:
        fail(f"range {value!r} has zero width and no std column gives a spread", rownum, "Typical Range")
    return lo, hi


def _risk_zone(value, rownum: int, fail) -> tuple[float, float] | None:
    """The optional 'Normalized range (1-10)' cell as (lo, hi) inside 1-10, or None when empty."""
    if is_blank(value):
        return None
    zone = parse_range(value)
    if zone is None or not (1 <= zone[0] <= zone[1] <= 10):
        fail(f"expected a range inside 1-10 like '7-10', got {value!r}", rownum, "Normalized range (1-10)")
    return zone


def _build_table(path: Path, sheet, factors: list[_Factor], fail) -> FeatureTable:
    """The `FeatureTable` of the parsed rows (arrays of shape [D], D = len(factors))."""
    weight = np.asarray([f.weight for f in factors], dtype=float)
    if weight.max() <= 0:
        fail("all weights are zero; at least one factor needs a positive weight", column="Weight")
    return FeatureTable(
        source=str(path),
        sheet=sheet,
        names=tuple(f.name for f in factors),
        categories=tuple(f.category for f in factors),
        descriptions=tuple(f.description for f in factors),
        impact_patterns=tuple(f.impact for f in factors),
        weight=weight,
        range_low=np.asarray([f.lo for f in factors]),
        range_high=np.asarray([f.hi for f in factors]),
        risk_zone=tuple(f.zone for f in factors),
        mean=np.asarray([f.mean for f in factors]),
        std=np.asarray([f.std for f in factors]),
        relevance=weight / weight.max(),
        direction=np.asarray([f.direction for f in factors], dtype=float),
    )


def write_feature_table_xlsx(table_rows: Sequence[Mapping[str, object]], path, sheet="features"):
    """Write rows (dicts keyed by column name, in order) to an .xlsx file atomically."""
    from tfp_aline.atomic import atomic_path

    frame = pd.DataFrame(list(table_rows))
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            frame.to_excel(writer, sheet_name=sheet, index=False)
