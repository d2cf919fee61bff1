"""Feature tables and histories (generate-mock, train, advise): rows that would shift, reserved
names, spreads too small to compute with, pipes and huge files, and no echo of a file's content
(issue 22)."""

import csv
import os
import shutil

import numpy as np
import pytest
from conftest import ROOT, TABLE_CSV

from tfp_aline.errors import FeatureTableError
from tfp_aline.migraine.feature_table import read_feature_table
from tfp_aline.migraine.history import HistoryError, read_history

PERSON = ROOT / "data" / "example_person.csv"


@pytest.fixture(scope="module")
def table():
    return read_feature_table(TABLE_CSV)


def write_rows(path, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


def person_rows():
    with open(PERSON, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# ---- a row with one cell more than the header ---------------------------------------------------
def test_history_row_with_an_unquoted_decimal_comma_is_refused_with_its_row(tmp_path, table):
    rows = person_rows()
    header = rows[0]
    j = header.index("Sleep duration (h)")
    rows[3] = rows[3][:j] + ["6", "1"] + rows[3][j + 1 :]  # 6,1 written without quotes
    path = tmp_path / "p.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    with pytest.raises(HistoryError) as e:
        read_history(path, table)
    assert e.value.row == 4 and f"{len(header) + 1} cells but the header has {len(header)} columns" in str(e.value)
    assert "6.1" in str(e.value)


def test_history_row_with_a_stray_trailing_cell_is_refused(tmp_path, table):
    rows = person_rows()
    rows[2] = rows[2] + ["x"]
    with pytest.raises(HistoryError, match="row 3: .* cells but the header has"):
        read_history(write_rows(tmp_path / "p.csv", rows), table)


def test_table_row_with_an_extra_cell_is_refused(tmp_path, table_rows):
    rows = [list(table_rows[0])] + [list(r.values()) for r in table_rows]
    rows[5] = rows[5] + ["stray"]
    with pytest.raises(FeatureTableError) as e:
        read_feature_table(write_rows(tmp_path / "t.csv", rows))
    assert e.value.row == 6 and "cells but the header has 7 columns" in str(e.value)


# ---- names that collide with built-in targets ----------------------------------------------------
@pytest.mark.parametrize("column,name", [("category", "baseline"), ("category", "all"), ("category", "predictive")])
def test_category_named_like_a_built_in_target_is_refused(write_xlsx, table_rows, column, name):
    table_rows[2][column] = name
    with pytest.raises(FeatureTableError) as e:
        read_feature_table(write_xlsx(table_rows))
    assert e.value.row == 4 and e.value.column == column and "reserved" in str(e.value)


def test_variable_named_like_the_intercept_is_refused(write_xlsx, table_rows):
    table_rows[0]["variable"] = "Baseline (logit)"
    with pytest.raises(FeatureTableError, match="row 2, column 'variable': variable name 'Baseline \\(logit\\)'"):
        read_feature_table(write_xlsx(table_rows))


# ---- numbers the float32 model cannot compute with -------------------------------------------------
@pytest.mark.parametrize(
    "cells,column,expected",
    [
        ({"mean": "7", "std": "1e-300"}, "std", "too small to compute with"),
        ({"Typical Range": "1-1.0000000000001"}, "Typical Range", "too small to compute with"),
        ({"mean": "1e300", "std": "1"}, "mean", "too large to compute with"),
        ({"Typical Range": "0-" + "9" * 40}, "Typical Range", "too large to compute with"),
    ],
)
def test_spreads_and_sizes_beyond_float32_are_refused(write_xlsx, table_rows, cells, column, expected):
    for row in table_rows:
        row.setdefault("mean", None)
        row.setdefault("std", None)
    table_rows[0].update(cells)
    with pytest.raises(FeatureTableError) as e:
        read_feature_table(write_xlsx(table_rows))
    assert e.value.row == 2 and e.value.column == column and expected in str(e.value)


def test_generate_mock_refuses_a_tiny_std_instead_of_writing_nan(tmp_path, table_rows, write_xlsx, capsys):
    from tfp_aline.cli.main import main

    for row in table_rows:
        row.update(mean=None, std=None)
    table_rows[0].update(mean="7", std="1e-300")
    out = tmp_path / "out"
    assert main(["generate-mock", "--table", str(write_xlsx(table_rows)), "--out", str(out), "--n", "200"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "column 'std'" in err[0]
    assert not out.exists()


# ---- pipes, devices and huge files ------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["table", "history"])
def test_a_fifo_or_device_is_refused_at_once(tmp_path, table, reader):
    fifo = tmp_path / "input.csv"
    os.mkfifo(fifo)
    read = (lambda p: read_feature_table(p)) if reader == "table" else (lambda p: read_history(p, table))
    for path in (fifo, "/dev/zero"):
        with pytest.raises((FeatureTableError, HistoryError), match="is not a regular file"):
            read(path)


def test_a_huge_history_is_refused_before_it_is_read(tmp_path, table):
    path = tmp_path / "big.csv"
    with open(path, "wb") as f:
        f.truncate(51 * 2**20)  # sparse: no disk space used
    with pytest.raises(HistoryError, match="is 51 MB; expected an input file of at most 50 MB"):
        read_history(path, table)


# ---- errors name the file and the problem, not its content -------------------------------------------
def test_a_foreign_file_named_as_table_is_not_echoed(tmp_path):
    secret = tmp_path / "passwd.csv"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n")
    with pytest.raises(FeatureTableError) as e:
        read_feature_table(secret)
    assert (
        "/bin/bash" not in str(e.value) and "daemon" not in str(e.value) and "missing column 'category'" in str(e.value)
    )


def test_an_ordinary_table_still_reads(tmp_path):
    copy = shutil.copy(TABLE_CSV, tmp_path / "t.csv")
    assert np.all(read_feature_table(copy).std > 0)
