"""The quality-per-hour table of `benchmarks/policy_levers.sh` runs (runs/levers/lf-NAME/eval-paper).

python benchmarks/policy_levers_table.py none inference return --start-epoch 5101 --start-spce 5.52 --minutes 20
"""

import argparse
import re
from pathlib import Path

import pandas as pd


def at_last_step(metrics: pd.DataFrame, method: str, metric: str):
    rows = metrics[(metrics.method == method) & (metrics.metric == metric) & (metrics.step == metrics.step.max())]
    return rows.iloc[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("names", nargs="+")
    p.add_argument("--folder", type=Path, default=Path("runs/levers"))
    p.add_argument("--start-epoch", type=int, default=5101, help="epoch of the checkpoint every run resumed from")
    p.add_argument("--start-spce", type=float, default=5.52, help="that checkpoint's sPCE under the same protocol")
    p.add_argument("--minutes", type=float, default=20.0, help="wall clock each run trained")
    args = p.parse_args()
    hours = args.minutes / 60
    print("| lever | policy epochs | s / epoch | sPCE [95% CI] | random | gain per hour | RMSE policy | k-hat > 0.7 |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.names:
        run = args.folder / f"lf-{name}"
        m = pd.read_csv(run / "eval-paper" / "metrics.csv")
        epoch = max(
            int(e) for e in re.findall(r"ckpt-(\d+)\.index", " ".join(f.name for f in (run / "checkpoints").iterdir()))
        )
        epochs = epoch - args.start_epoch
        s, r = at_last_step(m, "policy", "spce"), at_last_step(m, "random", "spce")
        rmse, khat = (
            at_last_step(m, "policy", "rmse_mean")["mean"],
            at_last_step(m, "policy", "psis_khat_above_0.7")["mean"],
        )
        print(
            f"| {name} | {epochs} | {hours * 3600 / epochs:.2f} | {s['mean']:.2f} [{s.ci_low:.2f}, {s.ci_high:.2f}] | "
            f"{r['mean']:.2f} | {(s['mean'] - args.start_spce) / hours:+.2f} | "
            f"{rmse:.3f} | {khat:.0%} |"
        )


if __name__ == "__main__":
    main()
