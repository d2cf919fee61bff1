"""Reading the migraine feature table (.xlsx or .csv) into a validated `FeatureTable`."""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import zipfile
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from tfp_aline.errors import FeatureTableError

# The repository root, where data/ lives beside the package (tfp_aline/tasks/migraine/ is three down).
REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TABLE = REPO_ROOT / "data" / "migraine_prediction.xlsx"

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


def _canon(text) -> str:
    return re.sub(r"[^a-z0-9]", "", str(text).lower())


_ALIASES = {_canon(alias): name for name, aliases in COLUMNS.items() for alias in aliases}


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
    """A relative path as given if it exists from the working directory, else from the repository root
    (so configs naming `data/...` work from any folder with an editable install)."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO_ROOT / path).exists():
        return path
    return REPO_ROOT / path


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
    def fail(message):
        raise FeatureTableError(path, message)

    return read_csv_cells(path, fail)


_DECIMAL_COMMA = re.compile(r"^\s*[-+]?\d*,\d+\s*$")
DELIMITERS = (",", ";", "\t")


def looks_binary(data: bytes) -> bool:
    """NUL bytes or many control characters in the first 8 KB: not a text file."""
    head = data[:8192]
    control = sum(b < 32 and b not in (9, 10, 12, 13) for b in head)
    return b"\x00" in head or control > 0.05 * max(len(head), 1)


def read_csv_cells(path: Path, fail) -> list:
    """[(row number, [cells])] of a UTF-8 CSV file (row 1 = first line).

    The delimiter (comma, semicolon or tab) is the one the first non-empty line uses most; in a
    semicolon- or tab-separated file a decimal comma (`7,5`) is read as a decimal point.
    `fail(message)` raises: a binary file, a file that is not UTF-8.
    """
    data = path.read_bytes()
    if looks_binary(data):
        fail("is not a CSV text file (it looks binary); expected UTF-8 text with a header row")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        fail(f"cannot be read as UTF-8 CSV (byte {e.start}: {e.reason}); save it as UTF-8 text")
    first = next((line for line in text.splitlines() if line.strip()), "")
    delimiter = max(DELIMITERS, key=lambda d: (first.count(d), d == ","))
    try:
        rows = [(i, r) for i, r in enumerate(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter), start=1)]
    except csv.Error as e:
        fail(f"cannot be read as CSV ({e})")
    if delimiter != ",":
        rows = [(i, [c.replace(",", ".") if _DECIMAL_COMMA.match(c) else c for c in r]) for i, r in rows]
    return rows


def _blank(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _number(v):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    try:
        return float(str(v).strip())
    except ValueError:
        return None


def _parse_rows(path: Path, sheet, rows) -> FeatureTable:
    def fail(msg, row=None, column=None):
        raise FeatureTableError(path, msg, sheet=sheet, row=row, column=column)

    rows = [(i, r) for i, r in rows if not all(_blank(v) for v in r)]
    if not rows:
        fail("the sheet is empty; expected a header row with the columns " + ", ".join(REQUIRED))
    header_row, header = rows[0]
    col_of: dict[str, int] = {}
    for j, h in enumerate(header):
        if _blank(h):
            continue
        name = _ALIASES.get(_canon(h))
        if name is None:
            continue  # extra columns are accepted and ignored
        if name in col_of:
            fail(f"two columns mean {name!r}: {header[col_of[name]]!r} and {h!r}", row=header_row)
        col_of[name] = j
    missing = [c for c in REQUIRED if c not in col_of]
    if missing:
        found = [str(h) for h in header if not _blank(h)]
        fail(f"missing column {missing[0]!r} (found columns: {found})", row=header_row)
    data = rows[1:]
    if not data:
        fail("no data rows below the header", row=header_row)

    def cell(r, name):
        j = col_of.get(name)
        return r[j] if j is not None and j < len(r) else None

    out = {k: [] for k in ("names", "cats", "desc", "impact", "weight", "lo", "hi", "zone", "mean", "std", "dir")}
    seen: dict[str, int] = {}
    for rownum, r in data:
        name = cell(r, "variable")
        if _blank(name):
            fail("empty variable name", rownum, "variable")
        name = str(name).strip()
        key = name.lower()
        if key in seen:
            fail(f"duplicate variable {name!r} (first on row {seen[key]})", rownum, "variable")
        seen[key] = rownum
        cat = cell(r, "category")
        if _blank(cat):
            fail(f"empty category for {name!r}", rownum, "category")

        w_raw = cell(r, "Weight")
        w = None if _blank(w_raw) else _number(w_raw)
        if w is None or not math.isfinite(w):
            fail(f"expected a number >= 0 for the weight of {name!r}, got {w_raw!r}", rownum, "Weight")
        if w < 0:
            fail(f"weight of {name!r} is negative ({w:g}); expected a number >= 0", rownum, "Weight")

        mean = std = None
        for col in ("mean", "std"):
            v = cell(r, col)
            if col in col_of and not _blank(v):
                x = _number(v)
                if x is None or not math.isfinite(x):
                    fail(f"expected a number, got {v!r}", rownum, col)
                if col == "std" and x <= 0:
                    fail(f"std must be > 0, got {x:g}", rownum, col)
                mean, std = (x, std) if col == "mean" else (mean, x)

        rng_raw = cell(r, "Typical Range")
        if _blank(rng_raw) and mean is not None and std is not None:
            lo, hi = mean - 2 * std, mean + 2 * std
        else:
            rng = parse_range(rng_raw)
            if rng is None:
                fail(f"expected a range like '4-10' or '4 to 10', got {rng_raw!r}", rownum, "Typical Range")
            lo, hi = rng
            if lo > hi:
                fail(f"range {rng_raw!r} is reversed (min {lo:g} > max {hi:g})", rownum, "Typical Range")
            if lo == hi and std is None:
                fail(f"range {rng_raw!r} has zero width and no std column gives a spread", rownum, "Typical Range")
        mean = (lo + hi) / 2 if mean is None else mean
        std = (hi - lo) / 4 if std is None else std

        zone = None
        zone_raw = cell(r, "Normalized range (1-10)")
        if not _blank(zone_raw):
            zone = parse_range(zone_raw)
            if zone is None or not (1 <= zone[0] <= zone[1] <= 10):
                fail(f"expected a range inside 1-10 like '7-10', got {zone_raw!r}", rownum, "Normalized range (1-10)")

        impact = cell(r, "Migrane impact pattern")
        d = parse_direction(impact)
        if d is None:
            fail(
                f"cannot tell the risk direction from {impact!r}; expected {_EXPECTED_PATTERN}",
                rownum,
                header[col_of["Migrane impact pattern"]],
            )

        desc = cell(r, "Description")
        for k, v in (
            ("names", name),
            ("cats", str(cat).strip()),
            ("desc", "" if _blank(desc) else str(desc).strip()),
            ("impact", str(impact).strip()),
            ("weight", w),
            ("lo", lo),
            ("hi", hi),
            ("zone", zone),
            ("mean", mean),
            ("std", std),
            ("dir", d),
        ):
            out[k].append(v)

    weight = np.asarray(out["weight"], dtype=float)
    if weight.max() <= 0:
        fail("all weights are zero; at least one factor needs a positive weight", column="Weight")
    return FeatureTable(
        source=str(path),
        sheet=sheet,
        names=tuple(out["names"]),
        categories=tuple(out["cats"]),
        descriptions=tuple(out["desc"]),
        impact_patterns=tuple(out["impact"]),
        weight=weight,
        range_low=np.asarray(out["lo"]),
        range_high=np.asarray(out["hi"]),
        risk_zone=tuple(out["zone"]),
        mean=np.asarray(out["mean"]),
        std=np.asarray(out["std"]),
        relevance=weight / weight.max(),
        direction=np.asarray(out["dir"], dtype=float),
    )


def write_feature_table_xlsx(table_rows: Sequence[Mapping[str, object]], path, sheet="features"):
    """Write rows (dicts keyed by column name, in order) to an .xlsx file atomically."""
    from tfp_aline.atomic import atomic_path

    frame = pd.DataFrame(list(table_rows))
    with atomic_path(path) as tmp:
        with pd.ExcelWriter(tmp, engine="openpyxl") as writer:
            frame.to_excel(writer, sheet_name=sheet, index=False)
