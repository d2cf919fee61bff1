"""Check that advice converges: posterior means approach simulated people's true weights as reports accumulate.

Draws --people people from the run's task prior, each with simulated days and outcomes, and calls
`Advisor.advise` (through a DataFrame in raw units, as a user would) with 0, 5, 10, 20 and 30
reported days (capped at the run's context capacity) plus 5 unreported days. Prints, per count,
the RMSE of the posterior means to the true trigger weights and to the true baseline logit, next
to the prior mean's RMSE. Writes nothing.

    python scripts/check_advice_convergence.py --run runs/migraine-cpu --people 100 --seed 0
"""

import argparse
import os
import sys
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

COUNTS = (0, 5, 10, 20, 30)
UNREPORTED = 5


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", required=True, help="trained run dir")
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.people < 1:
        parser.error("--people must be positive")

    import tensorflow as tf

    from tfp_aline.migraine.advice import Advisor
    from tfp_aline.migraine.history import HistoryWarning

    warnings.simplefilter("ignore", HistoryWarning)
    advisor = Advisor.from_run_dir(args.run)
    task, table = advisor.task, advisor.table
    counts = sorted({min(c, advisor.capacity) for c in COUNTS})
    batch = task.sample_episodes(args.people, max(counts) + UNREPORTED, seed=tf.constant([args.seed, 77], tf.int32))
    theta = batch.theta.numpy()
    raw = table.to_raw(batch.query_x.numpy())  # exact raw values: no rounding, so z is unchanged
    y = batch.query_y.numpy()[..., 0]

    d = table.num_features
    rmse = {}
    for k in counts:
        means = []
        for i in range(args.people):
            days = np.concatenate([raw[i, :k], raw[i, -UNREPORTED:]])
            outcome = [str(int(v)) for v in y[i, :k]] + [""] * UNREPORTED
            frame = pd.DataFrame(days, columns=table.names).assign(migraine=outcome)
            means.append(advisor.advise(frame).triggers["mean"].to_numpy())
        err = np.asarray(means) - theta
        rmse[k] = (np.sqrt(np.mean(err[:, :d] ** 2)), np.sqrt(np.mean(err[:, d] ** 2)))
    prior = task.prior_mean - theta
    prior_rmse = (np.sqrt(np.mean(prior[:, :d] ** 2)), np.sqrt(np.mean(prior[:, d] ** 2)))

    print(
        f"run {args.run}: {args.people} simulated people (seed {args.seed}), context capacity "
        f"{advisor.capacity}; RMSE of posterior means to the true values"
    )
    print(f"{'reported days':>14}  {'weights':>8}  {'baseline':>8}")
    print(f"{'prior mean':>14}  {prior_rmse[0]:8.3f}  {prior_rmse[1]:8.3f}")
    for k, (w, b) in rmse.items():
        print(f"{k:>14}  {w:8.3f}  {b:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
