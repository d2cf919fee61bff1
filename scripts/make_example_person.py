"""Write a SIMULATED person's diary (data/example_person.csv) for the docs, tests and benchmarks.

One person drawn from the migraine model's prior (the shipped feature table), 60 consecutive
days with dates: features in raw units, rounded like a diary app would store them, and clipped
at physical limits (no negative durations, no efficiency above 100 %), so a few days differ
slightly from the standardised values that generated the outcomes. 40 days, chosen at random,
have a reported outcome in `migraine` (1/0); the other 20 are left empty (not asked yet).
Nothing here comes from a real person. The person's true weights are printed, not saved.

    python scripts/make_example_person.py --seed 0 --out data/example_person.csv
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NUM_DAYS, NUM_REPORTED = 60, 40


def simulate_person(task, seed: int, num_days: int = NUM_DAYS, num_reported: int = NUM_REPORTED, start="2025-03-01"):
    """(DataFrame of the person's days, true theta [L]) for one person drawn from the task's prior."""
    import tensorflow as tf

    table = task.table
    batch = task.sample_episodes(1, num_days, seed=tf.constant([seed, 8], tf.int32))
    raw = table.to_raw(batch.query_x[0].numpy())
    # Physical limits: ranges starting at >= 0 are amounts or durations; '%' cannot exceed 100.
    raw = np.where(table.range_low >= 0, np.maximum(raw, 0.0), raw)
    raw = np.where(np.array(table.units) == "%", np.minimum(raw, 100.0), raw)
    frame = pd.DataFrame({"date": pd.date_range(start, periods=num_days, freq="D").strftime("%Y-%m-%d")})
    for j, (name, unit) in enumerate(zip(table.names, table.units)):
        width = table.range_high[j] - table.range_low[j]
        decimals = 0 if width >= 20 or unit == "days" else 1
        column = np.round(raw[:, j], decimals)
        frame[name] = column.astype(int) if decimals == 0 else column
    rng = np.random.default_rng(seed)
    reported = np.zeros(num_days, bool)
    reported[rng.choice(num_days, num_reported, replace=False)] = True
    y = batch.query_y[0, :, 0].numpy().astype(int)
    frame["migraine"] = [str(v) if r else "" for v, r in zip(y, reported)]
    return frame, batch.theta[0].numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("data/example_person.csv"))
    args = parser.parse_args(argv)

    from tfp_aline.atomic import write_text
    from tfp_aline.tasks import MigraineTask

    task = MigraineTask()
    frame, theta = simulate_person(task, args.seed)
    write_text(args.out, frame.to_csv(index=False, lineterminator="\n"))
    reported = frame["migraine"] != ""
    print(
        f"wrote {args.out}: {len(frame)} simulated days, {int(reported.sum())} reported "
        f"({int((frame['migraine'] == '1').sum())} with migraine), {int((~reported).sum())} unreported"
    )
    print("true weights of this simulated person:")
    for name, w in zip(task.parameter_names, theta):
        print(f"  {name:38s} {w:+.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
