"""Reading a person's history: every error names row and column, warnings, date order, capacity trimming."""

import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, TABLE_CSV

from tfp_aline.migraine.feature_table import read_feature_table
from tfp_aline.migraine.history import HistoryError, HistoryWarning, read_history

EXAMPLE = ROOT / "data" / "example_person.csv"


@pytest.fixture(scope="module")
def table():
    return read_feature_table(TABLE_CSV)


@pytest.fixture
def frame():
    """The example person as strings, exactly as in the file (empty = not reported)."""
    return pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)


@pytest.fixture
def write(tmp_path):
    def write(frame, name="person.csv"):
        path = tmp_path / name
        frame.to_csv(path, index=False)
        return path

    return write


def read_error(path, table, **kw):
    with pytest.raises(HistoryError) as e:
        read_history(path, table, **kw)
    return str(e.value)


def test_example_person(table):
    h = read_history(EXAMPLE, table)
    assert (h.num_days, h.num_reported) == (60, 40)
    assert h.raw.shape == h.z.shape == (60, table.num_features)
    np.testing.assert_allclose(h.z, table.standardize(h.raw))
    assert set(h.y[h.reported]) <= {0.0, 1.0} and np.isnan(h.y[~h.reported]).all()
    assert list(h.rows) == list(range(2, 62)) and (np.diff(h.dates) > np.timedelta64(0)).all()
    assert h.warnings == ()


def test_dataframe_input_matches_csv(table, frame):
    a, b = read_history(EXAMPLE, table), read_history(frame, table)
    np.testing.assert_array_equal(a.raw, b.raw)
    np.testing.assert_array_equal(a.reported, b.reported)
    assert list(a.rows) == list(b.rows) and b.source == "<DataFrame>"
    numeric = pd.read_csv(EXAMPLE)  # floats with NaN for unreported days
    np.testing.assert_array_equal(read_history(numeric, table).reported, a.reported)


def test_tolerant_headers(table, frame, write):
    renamed = {table.names[0]: "SLEEP_DURATION_H", table.names[1]: "sleep quality", "migraine": " Migraine "}
    h = read_history(write(frame.rename(columns=renamed)), table)
    np.testing.assert_array_equal(h.raw, read_history(EXAMPLE, table).raw)


def test_unknown_column(table, frame, write):
    msg = read_error(write(frame.assign(mood="3")), table)
    assert "row 1" in msg and "column 'mood'" in msg and "unknown column" in msg


def test_missing_feature_column(table, frame, write):
    msg = read_error(write(frame.drop(columns=["Caffeine (mg)"])), table)
    assert "row 1" in msg and "'Caffeine (mg)'" in msg and "missing inputs" in msg


def test_missing_migraine_column(table, frame, write):
    path = write(frame.drop(columns=["migraine"]))
    assert "missing column 'migraine'" in read_error(path, table)
    future = read_history(path, table, outcome=False)  # coming days need no outcome column
    assert future.num_reported == 0


def test_future_days_cannot_have_outcomes(table, frame, write):
    msg = read_error(write(frame), table, outcome=False)
    assert "row 2" in msg and "column 'migraine'" in msg


def test_empty_feature_value(table, frame, write):
    frame.loc[4, "Water intake (L)"] = ""
    msg = read_error(write(frame), table)
    assert "row 6" in msg and "column 'Water intake (L)'" in msg and "cannot take missing inputs" in msg


def test_non_numeric_value(table, frame, write):
    frame.loc[9, "Alcohol (drinks)"] = "two"
    msg = read_error(write(frame), table)
    assert "row 11" in msg and "column 'Alcohol (drinks)'" in msg and "'two'" in msg


@pytest.mark.parametrize("bad", ["2", "maybe", "-1", "0.5"])
def test_bad_migraine_value(table, frame, write, bad):
    frame.loc[0, "migraine"] = bad
    msg = read_error(write(frame), table)
    assert "row 2" in msg and "column 'migraine'" in msg and repr(bad) in msg


def test_migraine_spellings(table, frame, write):
    frame.loc[0:5, "migraine"] = ["1.0", "0.0", "yes", "No", "TRUE", ""]
    h = read_history(write(frame), table)
    np.testing.assert_array_equal(h.y[:5], [1, 0, 1, 0, 1])
    assert not h.reported[5]


def test_far_outside_range_warns(table, frame, write):
    # Sleep 4-10 h: width 6, so 22 h is inside lo - 2w .. hi + 2w and 480 (minutes?) is far outside.
    frame.loc[2, "Sleep duration (h)"] = "22"
    frame.loc[3, "Sleep duration (h)"] = "480"
    with pytest.warns(HistoryWarning) as record:
        h = read_history(write(frame), table)
    assert len(record) == 1 and len(h.warnings) == 1
    msg = str(record[0].message)
    assert "row 5" in msg and "column 'Sleep duration (h)'" in msg and "480" in msg and "4-10 h" in msg
    assert h.raw[3, 0] == 480  # a warning, not an error: the value is kept


def test_dates_sort_rows(table, frame, write):
    shuffled = frame.iloc[np.random.default_rng(0).permutation(len(frame))]
    h, ref = read_history(write(shuffled), table), read_history(EXAMPLE, table)
    np.testing.assert_array_equal(h.raw, ref.raw)
    np.testing.assert_array_equal(h.dates, ref.dates)
    # Row numbers still point at the shuffled file's lines.
    assert shuffled.iloc[h.rows[0] - 2]["date"] == "2025-03-01"


def test_without_dates_file_order_is_time_order(table, frame, write):
    h = read_history(write(frame.drop(columns=["date"]).iloc[::-1]), table)
    assert h.dates is None and list(h.rows) == list(range(2, 62))
    assert h.labels()[0] == "row 2"


def test_bad_and_duplicate_dates(table, frame, write):
    frame.loc[3, "date"] = "someday"
    assert "row 5, column 'date'" in read_error(write(frame), table)
    frame.loc[3, "date"] = frame.loc[1, "date"]
    msg = read_error(write(frame), table)
    assert "row 5" in msg and "appears twice (also on row 3)" in msg


def test_file_problems(table, tmp_path):
    assert "file not found" in read_error(tmp_path / "nope.csv", table)
    (tmp_path / "empty.csv").write_text("")
    assert "empty" in read_error(tmp_path / "empty.csv", table)


def test_capacity_keeps_most_recent(table, frame, write):
    shuffled = write(frame.iloc[::-1])  # time order must come from the dates, not the file
    h = read_history(shuffled, table)
    used, dropped = h.context_indices(4)
    reported = np.flatnonzero(h.reported)
    assert list(used) == list(reported[-4:]) and list(dropped) == list(reported[:-4])
    assert h.dates[used].min() > h.dates[dropped].max()
    used, dropped = h.context_indices(100)
    assert len(used) == 40 and len(dropped) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the example person has no suspicious values
        read_history(EXAMPLE, table)
