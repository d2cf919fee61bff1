"""Location finding's exact references side by side: the self-refining grid against NUTS (run by hand).

On the same people (uniform designs for some, designs near the source for the rest, as after a
policy's queries) it prints the median seconds per person of each, their ratio, how often NUTS's
chains failed the convergence check, and the posterior-mean RMSE of each against the true sources.

PYTHONPATH=. python benchmarks/location_grid_reference.py [--people 32] [--designs 30] [--repeats 3] [--seed 0]
"""

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

from examples.location_finding import LocationFindingTask
from examples.location_finding_grid import grid_posterior_mean
from tfp_aline.core.exact import nuts_posterior, unconverged


def people(task, num, designs, seed):
    """Sources [P, 2], designs [P, n, 2], outcomes [P, n, 1]; the second half measured near the source."""
    rng = np.random.default_rng(seed)
    theta = rng.random((num, 2))
    x = rng.random((num, designs, 2))
    half = num // 2
    near = theta[half:, None] + 0.02 * rng.standard_normal((num - half, designs - designs // 3, 2))
    x[half:, designs // 3 :] = np.clip(near, 0, 1)
    y = task.simulate_outcomes(tf.constant(theta, tf.float32), tf.constant(x, tf.float32), seed=tf.constant([seed, 1]))
    return theta, x.astype(np.float32), y.numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=32)
    p.add_argument("--designs", type=int, default=30)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    task = LocationFindingTask()
    theta, x, y = people(task, a.people, a.designs, a.seed)
    mask = np.ones(x.shape[:2], bool)
    grid_posterior_mean(task, x, y, mask)  # compile outside the timing
    grid_s = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        grid_mean = grid_posterior_mean(task, x, y, mask)
        grid_s.append((time.perf_counter() - start) / a.people)
    start = time.perf_counter()
    nuts = nuts_posterior(task, x, y, mask, num_chains=4, num_results=500, num_burnin=500, seed=(a.seed, 7))
    nuts_s = (time.perf_counter() - start) / a.people  # one run: it includes NUTS's compilation
    nuts_mean = nuts.flat.numpy().mean(0)
    bad = unconverged(nuts)  # the rule the references' warnings use
    rmse = lambda m: np.sqrt(((m - theta) ** 2).mean(-1))  # noqa: E731
    g, n = statistics.median(grid_s), nuts_s
    print(f"{a.people} people, {a.designs} measurements each (half of them near the source)")
    print(f"grid: {1000 * g:.1f} ms a person (median of {a.repeats}); NUTS (4 x 500 after 500): {1000 * n:.0f} ms")
    print(f"NUTS / grid time: {n / g:.0f}x; NUTS failed the R-hat/ESS check for {bad.sum()} of {a.people}")
    print(f"posterior-mean RMSE: grid {rmse(grid_mean).mean():.4f}, NUTS {rmse(nuts_mean).mean():.4f}")
    print(
        f"largest |grid - NUTS| mean among converged people: {np.abs(grid_mean - nuts_mean)[~bad].max(initial=0):.4f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
