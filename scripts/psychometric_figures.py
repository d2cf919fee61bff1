"""Figures of where a trained psychometric policy puts its stimuli, per target, with QUEST+ for comparison.

Writes into --out (each PNG atomically):
  stimuli_by_target.png      (a) policy and QUEST+ for target {threshold, slope} (x - true threshold)
                                 and {guess, lapse} (absolute x), stimulus against query step
  target_switch.png          (b) the same episodes, target {threshold, slope} for the first --switch
                                 queries, then {guess, lapse}
  stimuli_all_parameters.png (c) the policy asked for all four parameters

    python scripts/psychometric_figures.py --run runs/psychometric-cpu --out runs/psychometric-cpu/figures
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf

from tfp_aline.atomic import atomic_path
from tfp_aline.core.acquisition import PolicyAcquisition, run_acquisition
from tfp_aline.core.targets import target_mask
from tfp_aline.psychometric.grid import QuestPlusAcquisition
from tfp_aline.runs import load_run


def chosen_stimuli(batch, chosen):
    """Stimuli of the queried candidates: chosen [T, B] indices -> [B, T]."""
    return np.take_along_axis(batch.query_x.numpy()[..., 0], np.asarray(chosen).T, axis=1)


def panel(ax, values, title, ylabel, switch=None):
    """Stimuli of every episode against the query step (dots) and their per-step median (line)."""
    steps = np.arange(1, values.shape[1] + 1)
    for row in values:
        ax.plot(steps, row, ".", color="tab:blue", alpha=0.35, ms=4)
    ax.plot(steps, np.median(values, 0), color="k", lw=1.5, label="median over episodes")
    if switch is not None:
        ax.axvline(switch + 0.5, color="tab:red", ls="--", lw=1, label="target switch")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("query step t")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=7, loc="upper right")


def save(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="run directory written by `tfp-aline train`")
    p.add_argument("--out", required=True, help="folder for the PNGs")
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--switch",
        type=int,
        default=15,
        help="queries under {threshold, slope} before the switch (at most half the horizon)",
    )
    args = p.parse_args(argv)
    run = load_run(args.run)
    task, e, n = run.task, run.cfg.episodes, args.episodes
    horizon = e.horizon
    batch = run.sample_people(n, tf.constant([args.seed, 17]))
    masks = {t: target_mask(task, t, n, e.num_predictive_targets) for t in ("threshold_slope", "guess_lapse", "all")}
    policy, seed = PolicyAcquisition(run.model), [args.seed, 0]
    threshold = batch.theta.numpy()[:, :1]
    x = {t: chosen_stimuli(batch, run_acquisition(policy, batch, masks[t], horizon, seed).chosen) for t in masks}
    # QUEST+ ignores the target: one rollout serves both columns.
    x_quest = chosen_stimuli(
        batch, run_acquisition(QuestPlusAcquisition(task), batch, masks["all"], horizon, seed).chosen
    )
    out, written = args.out, []

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5), sharex=True)
    for row, (name, xs) in enumerate([("policy", x), ("QUEST+", {t: x_quest for t in masks})]):
        panel(
            axes[row, 0],
            xs["threshold_slope"] - threshold,
            f"{name}, target {{threshold, slope}}",
            "stimulus - true threshold",
        )
        panel(axes[row, 1], xs["guess_lapse"], f"{name}, target {{guess, lapse}}", "stimulus x")
    fig.suptitle(f"Chosen stimuli, {n} episodes ({run.path.name})", fontsize=10)
    fig.tight_layout()
    written.append(save(fig, os.path.join(out, "stimuli_by_target.png")))

    switch = min(args.switch, horizon // 2)
    chosen = run_acquisition(
        policy, batch, masks["threshold_slope"], horizon, seed, switch=(switch, masks["guess_lapse"])
    ).chosen
    xs = chosen_stimuli(batch, chosen)
    fig, axes = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    panel(
        axes[0],
        xs - threshold,
        f"policy: {{threshold, slope}} for {switch} queries, then {{guess, lapse}}",
        "stimulus - true threshold",
        switch,
    )
    panel(axes[1], xs, "same episodes, absolute stimulus", "stimulus x", switch)
    fig.tight_layout()
    written.append(save(fig, os.path.join(out, "target_switch.png")))

    fig, axes = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True)
    panel(axes[0], x["all"] - threshold, "policy, target all four parameters", "stimulus - true threshold")
    panel(axes[1], x["all"], "same episodes, absolute stimulus", "stimulus x")
    fig.tight_layout()
    written.append(save(fig, os.path.join(out, "stimuli_all_parameters.png")))
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    main()
