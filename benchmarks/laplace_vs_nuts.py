"""Laplace vs NUTS on the full migraine model: posterior-mean and std error, time per person.

Run by hand: python benchmarks/laplace_vs_nuts.py --people 20 --days 30 --seed 0
Days are a random subset of each person's pool (as random queries would give).
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from tfp_aline.core.exact import laplace_posterior, nuts_posterior
from tfp_aline.migraine.task import MigraineTask


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=20)
    p.add_argument("--days", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    task = MigraineTask()
    ep = task.sample_episodes(args.people, args.days, seed=tf.constant([args.seed, 11]))
    t0 = time.perf_counter()
    q = laplace_posterior(task, ep.query_x, ep.query_y)
    t_laplace = time.perf_counter() - t0
    t0 = time.perf_counter()
    nuts = nuts_posterior(
        task, ep.query_x, ep.query_y, init=q.loc, num_chains=4, num_results=500, num_burnin=500, seed=(args.seed, 7)
    )
    t_nuts = time.perf_counter() - t0
    draws = nuts.flat.numpy()
    mean, std = draws.mean(0), draws.std(0)
    truth = ep.theta.numpy()
    rmse = lambda m: float(np.sqrt(np.mean((m - truth) ** 2)))  # noqa: E731
    print(f"{args.people} people, {args.days} observed days each, L={task.num_parameters} parameters")
    print(
        f"NUTS: max R-hat {nuts.rhat.numpy().max():.3f}, min ESS {nuts.ess.numpy().min():.0f}, "
        f"{t_nuts:.1f} s ({t_nuts / args.people:.2f} s per person, 4 chains x 500 draws)"
    )
    print(f"Laplace: {t_laplace:.2f} s ({1e3 * t_laplace / args.people:.1f} ms per person)")
    print(
        f"|mean_Laplace - mean_NUTS| / std_NUTS: median {np.median(np.abs(q.loc.numpy() - mean) / std):.3f}, "
        f"max {np.max(np.abs(q.loc.numpy() - mean) / std):.3f}"
    )
    print(
        f"std_Laplace / std_NUTS: median {np.median(q.stddev().numpy() / std):.3f}, "
        f"range [{np.min(q.stddev().numpy() / std):.3f}, {np.max(q.stddev().numpy() / std):.3f}]"
    )
    print(
        f"posterior-mean RMSE to the truth: NUTS {rmse(mean):.4f}, Laplace {rmse(q.loc.numpy()):.4f}, "
        f"prior {rmse(task.prior_mean):.4f}"
    )


if __name__ == "__main__":
    main()
