"""Quality against wall-clock training hours, from one or more runs' validation.csv.

    python scripts/training_curve.py --runs models/psychometric --out models/psychometric/figures/gap_vs_hours.png

Prints, per run, target and step t, the amortized / exact posterior-mean RMSE ratio and the
amortized 90% coverage at each validation, and (with --out) plots the ratio against hours.
Several runs side by side compare training recipes at equal wall-clock.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd


def read_curve(run: Path) -> pd.DataFrame:
    """A run's validation.csv with a `run` column."""
    path = Path(run) / "validation.csv"
    if not path.exists():
        raise SystemExit(f"error: {path} not found (train with logging.validate_every > 0)")
    frame = pd.read_csv(path)
    frame.insert(0, "run", Path(run).name)
    return frame


def at_hours(frame: pd.DataFrame, hours: list[float]) -> pd.DataFrame:
    """The last validation at or before each budget, per (run, target, step)."""
    rows = []
    for (run, target, step), g in frame.groupby(["run", "target", "step"], sort=False):
        for h in hours:
            hit = g[g.hours <= h]
            if len(hit):
                r = hit.iloc[-1]
                rows.append((run, target, step, h, r.epoch, r.episodes, r.ratio, r.coverage90))
    return pd.DataFrame(rows, columns=["run", "target", "step", "budget_h", "epoch", "episodes", "ratio", "coverage90"])


def plot(frame: pd.DataFrame, out: Path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for (run, target, step), g in frame.groupby(["run", "target", "step"], sort=False):
        if step == frame.step.max():
            ax.plot(g.hours, g.ratio, label=f"{run} {target} t={step}")
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(1.1, color="k", lw=0.8, ls=":")
    ax.set(xlabel="training hours (wall-clock)", ylabel="RMSE amortized / exact", yscale="log")
    ax.legend(fontsize=7)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", type=Path, required=True, help="run dirs holding validation.csv")
    p.add_argument("--hours", nargs="+", type=float, default=None, help="budgets to tabulate (default: all)")
    p.add_argument("--out", type=Path, default=None, help="PNG of the ratio against hours")
    p.add_argument("--seed", type=int, default=0, help="accepted so every script takes --seed; nothing here is random")
    args = p.parse_args(argv)
    frame = pd.concat([read_curve(r) for r in args.runs], ignore_index=True)
    table = at_hours(frame, args.hours) if args.hours else frame
    with pd.option_context("display.max_rows", 500, "display.width", 160):
        print(table.to_string(index=False))
    if args.out:
        plot(frame, args.out)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
