"""Bad input gets one clear line: `error: ...` on stderr, exit 2, no traceback,
nothing written; output paths are checked before any work."""

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.config import ConfigError, config_warnings, load_config

SMOKE = ROOT / "configs" / "smoke.yaml"
PERSON = ROOT / "data" / "example_person.csv"


def one_error_line(capsys) -> str:
    """The single stderr line of a refused command (and nothing else)."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "existing_file"
    path.write_text("keep me\n")
    return path


# ---- 6, 10: output paths before any work --------------------------------------------------------
def test_output_paths_are_checked_before_any_work(a_file, tmp_path, capsys, monkeypatch):
    import tfp_aline.runs as runs

    def no_work(*a, **k):
        raise AssertionError("the run was loaded before the output path was checked")

    monkeypatch.setattr(runs, "load_run", no_work)
    commands = [
        ["evaluate", "--run", str(tmp_path), "--out", str(a_file)],
        ["export", "--run", str(tmp_path), "--out", str(a_file)],
        ["generate-mock", "--out", str(a_file), "--n", "50"],
        ["train", "--config", str(SMOKE), "--logdir", str(a_file)],
        ["evaluate", "--run", str(tmp_path), "--out", str(a_file / "sub")],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        line = one_error_line(capsys)
        assert str(a_file) in line and ("not a folder" in line or "is a file" in line), line
    assert a_file.read_text() == "keep me\n"


# ---- 7, 8, 9: configs -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kind,expected",
    [
        ("folder", "is a folder"),
        ("binary", "is not a text file"),
        ("empty", "config is empty"),
        ("comments", "config is empty"),
    ],
)
def test_config_that_is_a_folder_binary_or_empty_is_one_line(tmp_path, capsys, kind, expected):
    path = tmp_path / "cfg.yaml"
    if kind == "folder":
        path.mkdir()
    elif kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    else:
        path.write_text("" if kind == "empty" else "# nothing here\n")
    with pytest.raises(ConfigError, match=expected):
        load_config(path)
    assert main(["train", "--config", str(path), "--logdir", str(tmp_path / "run")]) == 2
    assert expected in one_error_line(capsys)
    assert not (tmp_path / "run").exists()


def test_warmup_covering_every_epoch_warns_in_one_line():
    assert config_warnings(load_config(SMOKE)) == []
    for epochs in (2, 3):  # below and equal to warmup_epochs = 3 (tests train warm-up only: allowed)
        (message,) = config_warnings(load_config(SMOKE, [f"training.epochs={epochs}"]))
        assert "training.warmup_epochs = 3 >= training.epochs" in message and "\n" not in message


def test_floats_as_people_write_them(tmp_path):
    text = SMOKE.read_text().replace("learning_rate: 1.0e-3", "learning_rate: 1e-3\n  weight_decay: 5E-4")
    assert "1e-3" in text
    path = tmp_path / "floats.yaml"
    path.write_text(text)
    cfg = load_config(
        path, ["training.clip_norm=2e1", "training.alpha=.5", "training.epochs=1e1", "training.lr_min_fraction='1e-2'"]
    )
    t = cfg.training
    assert (t.learning_rate, t.weight_decay, t.clip_norm, t.alpha, t.epochs, t.lr_min_fraction) == (
        1e-3,
        5e-4,
        20.0,
        0.5,
        10,
        0.01,
    )
    with pytest.raises(ConfigError, match="training.epochs: expected an integer"):
        load_config(path, ["training.epochs=1.5"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path, ["training.epochs=[1"])


# ---- 10: generate-mock ----------------------------------------------------------------------------
def test_generate_mock_too_few_days_names_the_smallest_n_that_works(tmp_path, capsys):
    from tfp_aline.migraine import mock_distribution as mock_mod
    from tfp_aline.migraine.task import MigraineTask

    task = MigraineTask()
    with pytest.raises(mock_mod.MockSizeError) as e:
        mock_mod.generate_mock_distribution(task, n=10, seed=0)
    smallest = int(str(e.value).rsplit(" ", 1)[1])
    assert "only 1 migraine day(s) among 10" in str(e.value) and smallest > 10
    assert mock_mod.generate_mock_distribution(task, n=smallest, seed=0)["migraine"].sum() >= 2
    with pytest.raises(mock_mod.MockSizeError):
        mock_mod.generate_mock_distribution(task, n=smallest - 1, seed=0)
    assert main(["generate-mock", "--out", str(tmp_path / "out"), "--n", "2"]) == 2
    assert f"the smallest --n that works with --seed 0 is {smallest}" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


# ---- 11, 12, 13: a person's history ---------------------------------------------------------------
@pytest.fixture(scope="module")
def table():
    from tfp_aline.migraine.feature_table import read_feature_table

    return read_feature_table(ROOT / "data" / "migraine_prediction.xlsx")


@pytest.fixture
def person():
    return pd.read_csv(PERSON, dtype=str, keep_default_na=False)


def history_error(path, table) -> str:
    from tfp_aline.migraine.history import HistoryError, read_history

    with pytest.raises(HistoryError) as e:
        read_history(path, table)
    message = str(e.value)
    assert "\n" not in message and len(message) < 600, message
    return message


@pytest.mark.parametrize(
    "value,expected", [("1e308", "too large to compute with"), ("4e30", "implausible"), ("-1e12", "implausible")]
)
def test_values_beyond_float32_or_implausible_are_refused_with_row_and_column(tmp_path, table, person, value, expected):
    person.loc[5, "Sleep duration (h)"] = value
    path = tmp_path / "p.csv"
    person.to_csv(path, index=False)
    message = history_error(path, table)
    assert "row 7, column 'Sleep duration (h)'" in message and expected in message


def test_unit_mix_ups_still_only_warn(tmp_path, table, person):
    from tfp_aline.migraine.history import HistoryWarning, read_history

    person.loc[5, "Sleep duration (h)"] = "420"  # minutes for hours: far outside, but plausible as a slip
    path = tmp_path / "p.csv"
    person.to_csv(path, index=False)
    with pytest.warns(HistoryWarning, match="far outside"):
        read_history(path, table)


def test_advice_with_non_finite_outputs_is_refused():
    from types import SimpleNamespace

    from tfp_aline.errors import TfpAlineError
    from tfp_aline.migraine.commands import _check_finite

    fine = SimpleNamespace(source="p.csv", outputs={"policy_probs": np.array([0.5, 0.5])})
    _check_finite(fine)
    bad = SimpleNamespace(source="p.csv", outputs={"policy_probs": np.array([np.nan, 0.5]), "k": np.array([1])})
    with pytest.raises(TfpAlineError, match="p.csv: the model returned non-finite values \\(policy_probs\\)"):
        _check_finite(bad)


def _with_dates(person, fmt, n=None):
    out = person.head(n).copy() if n else person.copy()
    out["date"] = pd.to_datetime(out["date"]).dt.strftime(fmt)
    return out


def test_ambiguous_day_first_dates_are_refused_with_the_row(tmp_path, table, person):
    path = tmp_path / "p.csv"
    _with_dates(person, "%d/%m/%Y", n=10).to_csv(path, index=False)  # 01/03 .. 10/03: no day above 12
    message = history_error(path, table)
    assert "row 2, column 'date'" in message and "'01/03/2025' could be day/month/year or month/day/year" in message
    assert "2025-03-01" in message


def test_day_first_dates_settled_by_a_row_are_read_right_and_said(tmp_path, table, person):
    from tfp_aline.migraine.history import HistoryWarning, read_history

    reference = read_history(PERSON, table)
    path = tmp_path / "p.csv"
    _with_dates(person, "%d/%m/%Y").to_csv(path, index=False)
    with pytest.warns(HistoryWarning, match="dates read as day/month/year \\(row 14 has '13/03/2025'\\)"):
        h = read_history(path, table)
    np.testing.assert_array_equal(h.dates, reference.dates)
    _with_dates(person, "%m/%d/%Y").to_csv(path, index=False)
    with pytest.warns(HistoryWarning, match="month/day/year"):
        np.testing.assert_array_equal(read_history(path, table).dates, reference.dates)
    mixed = _with_dates(person, "%d/%m/%Y")
    mixed.loc[30, "date"] = "04/25/2025"
    mixed.to_csv(path, index=False)
    assert "dates mix day/month/year" in history_error(path, table)


def test_semicolon_file_with_decimal_commas_reads_like_the_comma_file(tmp_path, table):
    from tfp_aline.migraine.history import read_history

    reference = read_history(PERSON, table)
    path = tmp_path / "semi.csv"
    pd.read_csv(PERSON).to_csv(path, index=False, sep=";", decimal=",")
    assert "7,4" in path.read_text()
    h = read_history(path, table)
    np.testing.assert_allclose(h.raw, reference.raw)
    np.testing.assert_array_equal(h.y, reference.y)


def test_binary_history_is_not_a_csv_text_file(tmp_path, table):
    path = tmp_path / "p.csv"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 20)  # e.g. an .xlsx renamed to .csv
    message = history_error(path, table)
    assert "is not a CSV text file" in message and len(message) < 200, message
