"""Write an evaluation: metrics.csv (long format), report.md, PNG plots and TensorBoard curves."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from tfp_aline import atomic
from tfp_aline.evaluation import metrics as M

COLUMNS = ["method", "target", "step", "metric", "mean", "ci_low", "ci_high", "n"]
# Metrics shown in the summary table at step T, in this order, when present.
SUMMARY = (
    "log_q",
    "log_q_gain_vs_random",
    "rmse_mean",
    "rmse_paper",
    "rmse_sample",
    "coverage50",
    "coverage90",
    "rmse_mean_exact",
    "rmse_paper_exact",
    "rmse_sample_exact",
    "coverage90_exact",
    "rmse_paper_checked",
    "log_loss",
    "brier",
    "auc",
    "spce",
    "snmc",
    "spce_limit",
    "ms_per_decision",
)
CURVES = ("log_q", "rmse_mean", "rmse_paper", "rmse_paper_exact", "coverage90", "log_loss", "auc")


def to_frame(result) -> pd.DataFrame:
    return pd.DataFrame(result.rows, columns=COLUMNS)


def _fmt(row):
    if not np.isfinite(row["ci_low"]) or row["ci_low"] == row["ci_high"]:
        return f"{row['mean']:.3f}"
    return f"{row['mean']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def summary_table(df: pd.DataFrame, target: str, step: int) -> str:
    """Markdown table: one row per method, one column per metric, at one step (mean [95% CI])."""
    sub = df[(df.target == target)]
    metrics = [m for m in SUMMARY if m in set(sub.metric)]
    methods = list(dict.fromkeys(sub.method))
    lines = ["| method | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for method in methods:
        cells = []
        for metric in metrics:
            hit = sub[(sub.method == method) & (sub.metric == metric) & (sub.step == step)]
            if metric == "ms_per_decision":  # a method's cost: median over its steps
                steps = sub[(sub.method == method) & (sub.metric == metric)]
                cells.append(f"{steps['mean'].median():.3g}" if len(steps) else "")
            else:
                cells.append(_fmt(hit.iloc[0]) if len(hit) else "")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _plot_curves(df, target, metric, path):
    from matplotlib.figure import Figure

    sub = df[(df.target == target) & (df.metric == metric)]
    if sub.empty:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for method, g in sub.groupby("method", sort=False):
        g = g.sort_values("step")
        ax.plot(g.step, g["mean"], label=method, marker="." if len(g) < 40 else None)
        ax.fill_between(g.step, g.ci_low, g.ci_high, alpha=0.2)
    ax.set_xlabel("query step t")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric}, target '{target}'", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, path)
    return path


SBC_BAND = 0.99  # the simultaneous band drawn and tested: p < 0.01 exactly when the ECDF leaves it


def _plot_sbc(sbc, num_samples, path):
    """One panel per (target, step): the ECDF of the normalised SBC ranks minus the uniform CDF, for
    each method, with the 99% simultaneous band (Säilynoja et al. 2022) of a uniform ECDF."""
    from matplotlib.figure import Figure

    panels = sorted({(k[0], k[2]) for k in sbc})
    if not panels:
        return None
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig = Figure(figsize=(3.3 * cols, 2.6 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, (target, t) in zip(axes.ravel(), panels):
        title = []
        for method in [k[1] for k in sorted(sbc) if (k[0], k[2]) == (target, t)]:
            ranks = sbc[(target, method, t)]
            z, ecdf = M.sbc_ecdf(ranks, num_samples)
            _, lo, hi = M.sbc_ecdf_band(len(ranks), num_samples, SBC_BAND)
            line = ax.step(z, ecdf - z, where="post", lw=1, label=method)[0]
            ax.fill_between(z, lo - z, hi - z, step="post", alpha=0.12, color=line.get_color())
            title.append(f"{method} p={M.sbc_ecdf_pvalue(ranks, num_samples):.2f}")
        ax.axhline(0, color="k", lw=0.5)
        ax.set_title(f"{target}, t={t}: " + ", ".join(title), fontsize=7)
        ax.set_xlabel("normalised rank", fontsize=7)
        ax.legend(fontsize=6)
    for ax in axes.ravel()[len(panels) :]:
        ax.axis("off")
    fig.suptitle(f"SBC: ECDF of ranks minus uniform, with {SBC_BAND:.0%} simultaneous bands", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def _plot_coverage_curves(pit, path):
    """One panel per target: coverage of the central intervals against their credibility level,
    for every level, per method and step (on the diagonal if calibrated)."""
    from matplotlib.figure import Figure

    targets = list(dict.fromkeys(k[0] for k in sorted(pit)))
    if not targets:
        return None
    levels = np.linspace(0, 1, 41)
    fig = Figure(figsize=(3.3 * len(targets), 3.2))
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets):
        for (tg, method, t), u in sorted(pit.items()):
            if tg == target:
                ls = "-" if method == "policy" else "--"
                ax.plot(
                    levels,
                    M.coverage_curve(u[None], np.ones((1, len(u)), bool), levels),
                    ls,
                    lw=1,
                    label=f"{method} t={t}",
                )
        ax.plot([0, 1], [0, 1], color="k", lw=0.5)
        ax.set_xlabel("credibility level", fontsize=7)
        ax.set_ylabel("coverage", fontsize=7)
        ax.set_title(f"target '{target}'", fontsize=8)
        ax.legend(fontsize=6)
    fig.suptitle("Coverage of the amortized central intervals at every level", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
    return path


def _plot_coverage(df, path):
    from matplotlib.figure import Figure

    sub = df[df.metric.isin(["coverage50", "coverage90"]) & (df.method == "policy")]
    if sub.empty:
        return None
    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    for (target, metric), g in sub.groupby(["target", "metric"], sort=False):
        g = g.sort_values("step")
        ax.plot(g.step, g["mean"], label=f"{target} {metric}")
    for level in (0.5, 0.9):
        ax.axhline(level, color="k", ls=":", lw=1)
    ax.set_xlabel("query step t")
    ax.set_ylabel("share of true values inside the interval")
    ax.set_title("Coverage of the amortized central intervals (policy's data)", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    return path


def _save(fig, path):
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    atomic.write_bytes(path, buf.getvalue())


def _slug(text):
    return "".join(c if c.isalnum() else "_" for c in text).strip("_")


def write_tensorboard(df: pd.DataFrame, logdir):
    """The mean curves as scalars `eval/<target>/<metric>/<method>` against the step."""
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(logdir))
    with writer.as_default():
        for (method, target, metric), g in df.groupby(["method", "target", "metric"], sort=False):
            for step, value in zip(g.step, g["mean"]):
                if np.isfinite(value):
                    tf.summary.scalar(f"eval/{target}/{metric}/{method}", float(value), step=int(step))
    writer.flush()
    writer.close()


def write_report(result, out_dir, run_dir=None, command: str = "", tensorboard_dir=None) -> list:
    """Write metrics.csv, report.md and the plots into out_dir (each file atomically); also the
    curves to TensorBoard under `tensorboard_dir`. Returns the paths written."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    df = to_frame(result)
    paths = [out / "metrics.csv"]
    atomic.write_text(paths[0], df.to_csv(index=False, float_format="%.6g"))
    figures = _write_plots(df, result, out)
    paths += figures
    lines = _intro_lines(result, run_dir, command)
    for target in dict.fromkeys(df.target):
        lines += _target_lines(df, target, result.horizon, figures)
    lines += _nuts_lines(df) + _sbc_lines(result)
    atomic.write_text(out / "report.md", "\n".join(lines))
    paths.append(out / "report.md")
    if tensorboard_dir is not None:
        write_tensorboard(df, tensorboard_dir)
    return paths


def _write_plots(df: pd.DataFrame, result, out: Path) -> list:
    """The PNGs: curves per (target, metric), then SBC ranks and coverage. Returns the paths written."""
    figures = []
    for target in dict.fromkeys(df.target):
        for metric in CURVES:
            p = _plot_curves(df, target, metric, out / f"{_slug(target)}_{metric}.png")
            if p:
                figures.append(p)
    for p in (
        _plot_sbc(result.sbc, result.settings.sbc_samples, out / "sbc.png"),
        _plot_coverage(df, out / "coverage.png"),
        _plot_coverage_curves(getattr(result, "pit", {}), out / "coverage_levels.png"),
    ):
        if p:
            figures.append(p)
    return figures


def _intro_lines(result, run_dir, command: str) -> list:
    """The title, what was run (and the command), and what each metric means."""
    s = result.settings
    lines = [
        f"# Evaluation of {run_dir or 'a run'}",
        "",
        f"Task `{result.task_name}`; {s.episodes} simulated people per target "
        f"(non-amortized baselines on the first {min(s.baseline_episodes or s.episodes, s.episodes)}), "
        f"horizon T={result.horizon}, a pool of {result.num_candidates} candidates per person"
        + (f" after {result.num_initial} random initial design(s)" if result.num_initial else "")
        + f", seed {s.seed}. Every method ran on the same people, candidate pools and "
        "targets. Values are means over people with 95% intervals (normal approximation; AUC: "
        "pooled, bootstrap over people).",
        "",
    ]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    lines += [
        "Metrics: `log_q` mean log density of the true target values under the amortized "
        "posterior (predictive targets: of the held-out outcomes); `rmse_mean` posterior-mean RMSE; "
        "`rmse_paper` the ALINE paper's RMSE (posterior samples clipped to the prior's support, root mean "
        "squared error over samples per parameter, then the mean over the target's parameters); "
        "`rmse_sample` the root of the mean squared error over samples and parameters together; "
        "`coverage50/90` share "
        "of true values inside the central intervals; `_exact` the same for the exact reference "
        f"posterior of the same data (for this task: {result.reference_name}); `rmse_paper_checked` "
        "the paper's RMSE of the posterior the per-person check hands a user (the amortized draws "
        "importance-weighted by the exact posterior where PSIS k-hat <= 0.7, the exact reference "
        "where not); "
        "`log_loss`, `brier`, `auc` on held-out days (references: `oracle` knows theta, "
        "`prior` knows only the prior); `spce` and `snmc` the sequential prior contrastive lower and "
        "nested Monte Carlo upper bounds on the total EIG (nats) of all the data a method ended with, "
        f"with L = {s.spce_samples} contrastive prior draws (`spce_limit` = log(L + 1), the most sPCE can "
        "show); `ms_per_decision` median wall time per decision per person.",
        "",
    ]
    return lines


def _target_lines(df: pd.DataFrame, target: str, T: int, figures: list) -> list:
    """A target's section: the summary table at step T and its curve plots."""
    lines = [f"## Target `{target}` after T={T} queries", "", summary_table(df, target, T), ""]
    for fig in figures:
        if fig.name.startswith(_slug(target) + "_"):
            lines.append(f"![{fig.stem}]({fig.name})")
    lines.append("")
    return lines


def _nuts_lines(df: pd.DataFrame) -> list:
    """The NUTS check's table, if the evaluation ran it."""
    nuts = df[df.metric.str.contains("nuts")]
    if not len(nuts):
        return []
    lines = ["## NUTS check at step T (policy's data)", "", "| target | metric | value | n |", "|---|---|---|---|"]
    for _, r in nuts.iterrows():
        lines.append(f"| {r.target} | {r.metric} | {_fmt(r)} | {r.n} |")
    lines.append("")
    return lines


def _sbc_lines(result) -> list:
    """Simulation-based calibration: the ECDF test (and the chi-square test beside it) per
    (target, method, step), the largest gap of the coverage curve, and the plots."""
    if not result.sbc:
        return []
    s = result.settings
    pit = getattr(result, "pit", {})
    lines = [
        "## Simulation-based calibration",
        "",
        "Ranks of each true target parameter among "
        f"{s.sbc_samples} amortized posterior samples; uniform if calibrated. ECDF p: the test of the "
        f"simultaneous {SBC_BAND:.0%} band (Säilynoja et al. 2022; p < 0.01 exactly when the ECDF leaves "
        "it); chi-square p: 20 equal bins; coverage gap: the largest distance of the coverage curve "
        "(central intervals at every level from 0 to 1) from the diagonal.",
        "",
        "| target | method | step | ranks | ECDF p | chi-square p | coverage gap |",
        "|---|---|---|---|---|---|---|",
    ]
    levels = np.linspace(0, 1, 41)
    for (target, method, t), ranks in sorted(result.sbc.items()):
        u = pit.get((target, method, t))
        gap = (
            f"{np.max(np.abs(M.coverage_curve(u[None], np.ones((1, len(u)), bool), levels) - levels)):.3f}"
            if u is not None and len(u)
            else ""
        )
        lines.append(
            f"| {target} | {method} | {t} | {len(ranks)} | {M.sbc_ecdf_pvalue(ranks, s.sbc_samples):.3f} "
            f"| {M.sbc_uniformity_pvalue(ranks, s.sbc_samples):.3f} | {gap} |"
        )
    lines += ["", "![sbc](sbc.png)", "", "![coverage levels](coverage_levels.png)", "", "![coverage](coverage.png)", ""]
    return lines
