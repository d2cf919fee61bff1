"""The feature-table reader: the shipped table, tolerated variants, and one clear error per bad input."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest
from conftest import ROOT, TABLE_CSV, TABLE_XLSX

from tfp_aline.errors import FeatureTableError
from tfp_aline.migraine.feature_table import parse_direction, parse_range, read_feature_table


def renamed(rows, old, new):
    return [{(new if k == old else k): v for k, v in r.items()} for r in rows]


def error_of(path, **kw) -> FeatureTableError:
    with pytest.raises(FeatureTableError) as e:
        read_feature_table(path, **kw)
    return e.value


def test_shipped_table_reads_identically_from_xlsx_and_csv():
    x, c = read_feature_table(TABLE_XLSX), read_feature_table(TABLE_CSV)
    assert 15 <= x.num_features <= 25
    assert x.names == c.names and x.categories == c.categories
    for field in ("weight", "mean", "std", "relevance", "direction"):
        np.testing.assert_array_equal(getattr(x, field), getattr(c, field))
    assert {"sleep", "stress", "hormonal", "wearable_physiology"} <= set(x.groups)
    assert x.relevance.max() == 1.0 and set(np.unique(x.direction)) == {-1.0, 1.0}


def test_derived_statistics(table_rows, write_xlsx):
    t = read_feature_table(write_xlsx(table_rows))
    i = t.names.index("Sleep duration (h)")  # range 4-10
    assert (t.mean[i], t.std[i]) == (7.0, 1.5)  # midpoint, range / 4
    assert t.direction[i] == -1 and t.direction[t.names.index("Perceived stress (score)")] == 1
    np.testing.assert_allclose(t.relevance, t.weight / t.weight.max())
    assert t.units[i] == "h" and t.keys[i] == "sleep_duration_h"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("4-10", (4, 10)),
        ("4–10", (4, 10)),
        ("4 — 10", (4, 10)),
        ("4 to 10", (4, 10)),
        ("0.5-3.5 L", (0.5, 3.5)),
        ("-5 to 5", (-5, 5)),
        ("−3–3", (-3, 3)),
        ("abc", None),
        ("", None),
        (7, None),
        ("4-", None),
    ],
)
def test_parse_range(text, expected):
    assert parse_range(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Shorter sleep raises risk", -1),
        ("Higher stress raises risk", 1),
        ("More exercise lowers risk", -1),
        ("Less water increases the risk", -1),
        ("Fewer steps raise risk", -1),
        ("Larger pressure drop increases migraine risk", 1),
        ("Poor sleep quality raises risk", -1),
        ("Sometimes matters", None),
        ("Higher or lower values raise risk", None),
        ("", None),
    ],
)
def test_parse_direction(text, expected):
    assert parse_direction(text) == expected


def test_header_case_spacing_and_spelling_variants(table_rows, write_xlsx):
    rows = renamed(table_rows, "Migrane impact pattern", "migraine IMPACT pattern")
    rows = renamed(rows, "Typical Range", "typical_range")
    rows = renamed(rows, "Normalized range (1-10)", "Normalised Range (1 - 10)")
    rows = renamed(rows, "Weight", " WEIGHT ")
    rows[0]["typical_range"] = "4 to 10"
    rows[1]["typical_range"] = "1–10"
    t = read_feature_table(write_xlsx(rows))
    assert t.num_features == len(table_rows) and t.risk_zone[0] == (1, 3)
    assert (t.range_low[0], t.range_high[0], t.range_low[1], t.range_high[1]) == (4, 10, 1, 10)


def test_extra_columns_are_ignored(table_rows, write_xlsx):
    rows = [dict(r, Notes="anything", Source="Kelman 2007") for r in table_rows]
    assert read_feature_table(write_xlsx(rows)).names == read_feature_table(TABLE_CSV).names


def test_mean_and_std_columns_override_the_range(table_rows, write_xlsx):
    rows = [dict(r, mean="", std="") for r in table_rows]
    rows[0].update(mean=6.5, std=1.2)
    rows[1].update({"Typical Range": "5-5", "std": 0.5})  # zero width is fine when std is given
    t = read_feature_table(write_xlsx(rows))
    assert (t.mean[0], t.std[0]) == (6.5, 1.2) and (t.mean[1], t.std[1]) == (5.0, 0.5)


def test_sheet_chosen_by_name_default_first(table_rows, write_xlsx):
    path = write_xlsx({"notes": [{"category": "x"}], "features": table_rows})
    err = error_of(path)  # the first sheet is not a table
    assert "sheet 'notes'" in str(err) and "missing column" in str(err)
    assert read_feature_table(path, sheet="features").num_features == len(table_rows)
    err = error_of(path, sheet="nope")
    assert "no sheet named 'nope'" in str(err) and "features" in str(err)


def test_missing_file(tmp_path):
    err = error_of(tmp_path / "missing.xlsx")
    assert "missing.xlsx" in str(err) and "not found" in str(err)


def test_not_an_xlsx(tmp_path):
    txt = tmp_path / "table.txt"
    txt.write_text("hello")
    assert "expected an .xlsx or .csv file" in str(error_of(txt))
    fake = tmp_path / "fake.xlsx"
    fake.write_text("category,variable\n")
    assert "not an Excel .xlsx workbook" in str(error_of(fake))


def test_truncated_and_corrupt_xlsx(tmp_path):
    data = TABLE_XLSX.read_bytes()
    cut = tmp_path / "cut.xlsx"
    cut.write_bytes(data[: len(data) // 2])
    msg = str(error_of(cut))
    assert "cut.xlsx" in msg and ("not a zip archive" in msg or "truncated or damaged" in msg)
    corrupt = tmp_path / "corrupt.xlsx"  # a valid zip without the workbook parts
    with zipfile.ZipFile(corrupt, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    assert "cannot be opened as an .xlsx workbook" in str(error_of(corrupt))


def test_empty_sheet_and_header_only(write_xlsx, table_rows):
    assert "sheet is empty" in str(error_of(write_xlsx([])))
    header_only = write_xlsx([{k: None for k in table_rows[0]}], name="header.xlsx")
    assert "no data rows" in str(error_of(header_only))


def test_required_column_missing(table_rows, write_xlsx):
    rows = [{k: v for k, v in r.items() if k != "Typical Range"} for r in table_rows]
    err = error_of(write_xlsx(rows))
    assert "missing column 'Typical Range'" in str(err) and err.row == 1


def test_duplicate_variable_names(table_rows, write_xlsx):
    table_rows[4]["variable"] = table_rows[1]["variable"].upper()
    err = error_of(write_xlsx(table_rows))
    assert err.row == 6 and err.column == "variable" and "first on row 3" in str(err)


@pytest.mark.parametrize(
    "value,message",
    [("abc", "expected a range like"), ("10-4", "is reversed"), ("5-5", "zero width"), ("", "expected a range")],
)
def test_bad_ranges_name_row_and_column(table_rows, write_xlsx, value, message):
    table_rows[2]["Typical Range"] = value
    err = error_of(write_xlsx(table_rows))
    assert (err.row, err.column) == (4, "Typical Range") and message in str(err)
    assert str(err).startswith(str(err.path)) and "sheet 'features'" in str(err)


@pytest.mark.parametrize(
    "value,message", [(-1, "negative"), ("", "expected a number >= 0"), ("heavy", "expected a number >= 0")]
)
def test_bad_weights(table_rows, write_xlsx, value, message):
    table_rows[0]["Weight"] = value
    err = error_of(write_xlsx(table_rows))
    assert (err.row, err.column) == (2, "Weight") and message in str(err)


def test_all_weights_zero(table_rows, write_xlsx):
    for r in table_rows:
        r["Weight"] = 0
    err = error_of(write_xlsx(table_rows))
    assert err.column == "Weight" and "all weights are zero" in str(err)


def test_unreadable_impact_pattern(table_rows, write_xlsx):
    table_rows[7]["Migrane impact pattern"] = "Depends on the person"
    err = error_of(write_xlsx(table_rows))
    assert (err.row, err.column) == (9, "Migrane impact pattern")
    assert "cannot tell the risk direction" in str(err) and "Higher stress raises risk" in str(err)


def test_normalized_range_outside_1_to_10(table_rows, write_xlsx):
    table_rows[0]["Normalized range (1-10)"] = "0-12"
    err = error_of(write_xlsx(table_rows))
    assert (err.row, err.column) == (2, "Normalized range (1-10)")


def test_cli_reports_a_malformed_table_in_one_line(table_rows, write_xlsx, tmp_path):
    table_rows[3]["Typical Range"] = "10-4"
    bad = write_xlsx(table_rows)
    out = tmp_path / "out"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "generate_mock_distribution.py"),
            "--table",
            str(bad),
            "--out",
            str(out),
            "--n",
            "100",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 2
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "row 5" in errors[0] and "Typical Range" in errors[0]
    assert proc.stderr.strip() == errors[0]  # nothing else: no traceback, no TensorFlow start-up lines
    assert not out.exists()
