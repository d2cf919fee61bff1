"""Save a trained run's query-strategy figure (README picture), for any task: where the designs the
policy chooses lie, step by step, over simulated people (a strip for one design input, a scatter for
two, a heatmap of the mean chosen input for more; for migraine, the days it asks about).

    python scripts/plot_query_strategy.py --run runs/migraine-... --out notebooks/figures/query_strategy.png
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="Plot which designs a trained policy chooses at each step (PNG).")
    p.add_argument("--run", type=Path, required=True, help="run folder written by `tfp-aline train`")
    p.add_argument("--out", type=Path, required=True, help="PNG file to write")
    p.add_argument("--people", type=int, default=64, help="simulated people (default: 64)")
    p.add_argument("--seed", type=int, default=0, help="seed of the people and candidate pools (default: 0)")
    p.add_argument("--target", default=None, help="target of every episode (default: the config's first target)")
    p.add_argument(
        "--mode",
        choices=("greedy", "sample", "random"),
        default="greedy",
        help="how the next design is chosen (default: greedy, the policy's most probable one)",
    )
    return p


def plot_query_strategy(run_dir, people: int = 64, seed: int = 0, target=None, mode: str = "greedy") -> bytes:
    """PNG bytes of the query-strategy heatmap of the run in `run_dir`."""
    import tensorflow as tf

    from tfp_aline.core.choice import choice_noise
    from tfp_aline.core.rollout import rollout
    from tfp_aline.core.targets import target_mask
    from tfp_aline.runs import load_run
    from tfp_aline.training.summaries import query_strategy_figure

    run = load_run(run_dir)
    e = run.cfg.episodes
    target = target or run.cfg.target_names[0]
    batch = run.sample_people(people, tf.constant([seed, 0], tf.int32))
    tmask = target_mask(run.task, target, people, e.num_predictive_targets)
    noise = choice_noise(tf.constant([seed, 1], tf.int32), e.horizon, people, e.num_candidates)
    result = rollout(run.model, batch, tmask, e.horizon, mode, noise)
    chosen_x = tf.gather(batch.query_x, tf.transpose(result.chosen), batch_dims=1)  # [B, T, Dx]
    fig = query_strategy_figure(
        tf.transpose(chosen_x, [1, 0, 2]).numpy(),
        run.task.input_names,
        f"{mode} choices of run '{run.cfg.name}', target '{target}', {people} simulated people "
        f"(pool {e.num_candidates}, T={e.horizon})",
    )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return buffer.getvalue()


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from tfp_aline import atomic
    from tfp_aline.errors import TfpAlineError

    if args.people < 1:
        print(f"error: --people must be at least 1, got {args.people}", file=sys.stderr)
        return 2
    try:
        png = plot_query_strategy(args.run, args.people, args.seed, args.target, args.mode)
    except TfpAlineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    atomic.write_bytes(args.out, png)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(args.out, 0o666 & ~umask)  # the temporary file behind the atomic write is private (0600)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
