"""Speed of the sPCE/sNMC bounds: likelihood terms a second on location finding (run by hand).

PYTHONPATH=. python benchmarks/spce_throughput.py [--people 200] [--designs 30] [--samples 100000]
    [--repeats 3] [--seed 0]
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from examples.location_finding import LocationFindingTask
from tfp_aline.evaluation.spce import contrastive_bounds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--people", type=int, default=200)
    p.add_argument("--designs", type=int, default=30)
    p.add_argument("--samples", type=int, default=100_000, help="contrastive draws L")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    task = LocationFindingTask()
    b = task.sample_episodes(a.people, a.designs, seed=tf.constant([a.seed, 1]))
    args = (task, b.theta, b.query_x, b.query_y)
    contrastive_bounds(*args, num_contrastive=1000, seed=(a.seed, 2))  # compile outside the timing
    seconds = []
    for _ in range(a.repeats):
        start = time.perf_counter()
        contrastive_bounds(*args, num_contrastive=a.samples, seed=(a.seed, 2))
        seconds.append(time.perf_counter() - start)
    median = float(np.median(seconds))
    terms = a.people * a.designs * a.samples
    print(
        f"{a.people} people x {a.designs} designs x L = {a.samples}: median {median:.2f} s of {a.repeats}, "
        f"{terms / median / 1e6:.0f} M likelihood terms/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
