"""Time one decision of the grid baselines (QUEST+, Psi-marginal) on the psychometric task.

--episodes episodes of T = 30 queries from a pool of N = 200 candidates (one initial context point),
default grid. Prints, per method, the median over steps of the wall time per episode per step, and
the process CPU time per decision (the honest "one core" figure on a shared machine: the grid code
is single-threaded numpy plus small XLA calls). Compilation is excluded by a warm-up rollout.

    python benchmarks/grid_baselines.py --episodes 50 --seed 0
"""

import argparse
import os
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_aline.core.acquisition import run_acquisition  # noqa: E402
from tfp_aline.core.targets import target_mask  # noqa: E402
from tfp_aline.psychometric.grid import PsiMarginalAcquisition, QuestPlusAcquisition, default_grid  # noqa: E402
from tfp_aline.psychometric.task import PsychometricTask  # noqa: E402

NUM_CANDIDATES, HORIZON = 200, 30


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--episodes", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    task = PsychometricTask()
    grid = default_grid(task)
    batch = task.sample_episodes(args.episodes, NUM_CANDIDATES, tf.constant([args.seed, 5]), num_initial_context=1)
    warm = task.sample_episodes(2, NUM_CANDIDATES, tf.constant([args.seed, 6]), num_initial_context=1)
    print(
        f"grid {' x '.join(map(str, grid.sizes))} = {grid.num_cells} cells; {args.episodes} episodes, "
        f"T = {HORIZON}, N = {NUM_CANDIDATES}"
    )
    cases = [
        ("questplus", QuestPlusAcquisition, "all"),
        ("psi-marginal {threshold, slope}", PsiMarginalAcquisition, "threshold_slope"),
        ("psi-marginal {guess, lapse}", PsiMarginalAcquisition, "guess_lapse"),
    ]
    for name, cls, target in cases:
        method = cls(grid)
        run_acquisition(method, warm, target_mask(task, target, 2, 0), HORIZON, [0, 0])  # compile every shape
        cpu = time.process_time()
        run = run_acquisition(method, batch, target_mask(task, target, args.episodes, 0), HORIZON, [args.seed, 0])
        cpu_ms = 1e3 * (time.process_time() - cpu) / (args.episodes * HORIZON)
        wall_ms = 1e3 * np.median(run.seconds) / args.episodes
        print(
            f"{name:32s} median wall {wall_ms:7.1f} ms, CPU {cpu_ms:7.1f} ms per episode per step; "
            f"200 x 30 decisions ~ {200 * HORIZON * cpu_ms / 6e4:.1f} min of CPU"
        )


if __name__ == "__main__":
    main()
