"""Check that two `tfp-aline evaluate` outputs hold the same numbers (timings aside), to a tolerance.

Used to show that a refactor leaves results unchanged: evaluate a shipped run with a fixed seed
before and after, then

    python scripts/compare_evaluations.py BEFORE_DIR AFTER_DIR --tol 1e-6

Exit status 0 when every (method, target, step, metric) row is in both and agrees within --tol.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

KEY = ["method", "target", "step", "metric"]
VALUES = ["mean", "ci_low", "ci_high", "n"]
TIMINGS = "ms_per_decision|seconds"  # wall-clock, never the same twice


def read_metrics(folder: Path) -> pd.DataFrame:
    """metrics.csv of an evaluation folder without its timing rows."""
    frame = pd.read_csv(folder / "metrics.csv")
    return frame[~frame.metric.str.contains(TIMINGS)]


def compare(before: pd.DataFrame, after: pd.DataFrame) -> tuple[int, float, list[str]]:
    """(rows compared, largest absolute difference, problems) of two metric tables."""
    merged = before.merge(after, on=KEY, how="outer", suffixes=("_before", "_after"), indicator=True)
    side = {"left_only": "before", "right_only": "after"}
    keys = [tuple(row) for row in merged[KEY].astype(object).itertuples(index=False)]
    problems = [f"only {side[m]}: {k}" for k, m in zip(keys, merged._merge) if m != "both"]
    both = (merged._merge == "both").to_numpy()
    worst = 0.0
    for column in VALUES:
        x, y = merged[column + "_before"].to_numpy(float), merged[column + "_after"].to_numpy(float)
        nan_mismatch = both & (np.isnan(x) != np.isnan(y))
        problems += [f"{column} is NaN on one side only: {keys[i]}" for i in np.flatnonzero(nan_mismatch)]
        diff = np.abs(np.where(np.isnan(x) | np.isnan(y), 0.0, x - y))
        worst = max(worst, float(diff.max(initial=0.0)))
    return len(merged), worst, problems


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--seed", type=int, default=0, help="accepted so every script takes --seed; nothing is random")
    args = parser.parse_args(argv)
    rows, worst, problems = compare(read_metrics(args.before), read_metrics(args.after))
    for line in problems[:20]:
        print(line)
    ok = not problems and worst <= args.tol
    verdict = "same" if ok else "DIFFERENT"
    print(f"{rows} rows compared (timings left out); largest absolute difference {worst:.3g}")
    print(f"tolerance {args.tol:g}: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
