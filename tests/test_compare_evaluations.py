"""scripts/compare_evaluations.py: the same-numbers check used after refactors."""

import pandas as pd

from scripts.compare_evaluations import compare, main


def table(rows):
    return pd.DataFrame(rows, columns=["method", "target", "step", "metric", "mean", "ci_low", "ci_high", "n"])


BASE = [
    ("policy", "all", 0, "rmse_mean", 0.3, 0.29, 0.31, 40),
    ("policy", "all", 1, "log_q", 1.5, float("nan"), float("nan"), 40),
]


def test_identical_tables_agree_and_differences_are_found():
    assert compare(table(BASE), table(BASE)) == (2, 0.0, [])
    shifted = table([BASE[0][:4] + (0.3 + 2e-6, 0.29, 0.31, 40), BASE[1]])
    rows, worst, problems = compare(table(BASE), shifted)
    assert rows == 2 and abs(worst - 2e-6) < 1e-9 and not problems
    rows, worst, problems = compare(table(BASE), table(BASE[:1]))
    assert rows == 2 and problems == ["only before: ('policy', 'all', 1, 'log_q')"]
    nan_on_one_side = table([BASE[0], BASE[1][:5] + (1.0, float("nan"), 40)])
    assert compare(table(BASE), nan_on_one_side)[2] == ["ci_low is NaN on one side only: ('policy', 'all', 1, 'log_q')"]


def test_exit_status_and_timings_left_out(tmp_path, capsys):
    timing = ("policy", "all", 1, "ms_per_decision", 0.9, 0.9, 0.9, 40)
    for name, rows in (("a", BASE + [timing]), ("b", BASE + [timing[:4] + (3.0, 3.0, 3.0, 40)])):
        (tmp_path / name).mkdir()
        table(rows).to_csv(tmp_path / name / "metrics.csv", index=False)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "2 rows compared" in capsys.readouterr().out
    table(BASE[:1]).to_csv(tmp_path / "b" / "metrics.csv", index=False)
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 1
