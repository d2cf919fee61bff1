"""The mock distribution of the migraine model: prior, logistic simulator and mock posterior."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import tensorflow as tf

from tfp_aline import atomic
from tfp_aline.core import seeds
from tfp_aline.errors import TfpAlineError, write_problem
from tfp_aline.migraine.task import MigraineTask

ARRAY_KEYS = (
    "mu_prior",
    "Sigma_prior",
    "corr_prior",
    "mu_post",
    "Sigma_post",
    "samples",
    "samples_std",
    "p_migraine",
    "migraine",
    "beta_pop",
    "relevance",
    "direction",
)
FILE_STEM = "mock_distribution"
MIN_MIGRAINE_DAYS = 2  # the mock posterior is the mean and covariance of the migraine days


class MockSizeError(TfpAlineError, ValueError):
    """Too few simulated days for the mock posterior; says the smallest n that works."""


def _simulate(task: MigraineTask, n: int, seed: int):
    """n simulated days: (z [n, D], logits [n], migraine [n] int)."""
    s = task.joint_distribution(1).sample(n, seed=tf.constant([seed, seeds.MOCK_PEOPLE], tf.int32))
    z = s["z"][:, 0, :].numpy().astype(np.float64)
    theta = tf.concat([s["w"], s["b"][:, None]], axis=-1)
    logits = task.outcome_logits(theta, s["z"]).numpy()[:, 0].astype(np.float64)
    return z, logits, s["y"].numpy()[:, 0].astype(np.int64)


def smallest_working_n(task: MigraineTask, n: int, seed: int):
    """The smallest number of days above n whose simulation (with this seed) holds
    MIN_MIGRAINE_DAYS migraine days, or None if none up to 100000 does.

    Days are drawn in order from the seed, so a longer simulation starts with the shorter one's
    days: the answer is read off one long run and then checked by simulating exactly that many.
    """
    for size in (max(8 * n, 500), 100_000):
        hits = np.flatnonzero(_simulate(task, size, seed)[2])
        if len(hits) >= MIN_MIGRAINE_DAYS:
            candidate = max(int(hits[MIN_MIGRAINE_DAYS - 1]) + 1, n + 1)
            return candidate if _simulate(task, candidate, seed)[2].sum() >= MIN_MIGRAINE_DAYS else None
    return None


def generate_mock_distribution(task: MigraineTask, n: int = 5000, seed: int = 0) -> dict:
    """Simulate n person-days from the migraine joint distribution (a new person per day, so the
    days follow the population marginal) and summarise them for the summary table.

    Returns a dict: feature names/categories, prior mean/cov in raw units (exact, from the model),
    the mock posterior (mean/cov of raw features on migraine days), the simulated days
    (`samples` [n, D] raw, `samples_std` [n, D] standardised), `p_migraine` [n], `migraine` [n].
    """
    if n < 1:
        raise MockSizeError(f"--n must be a positive number of days, got {n}")
    t = task.table
    z, logits, migraine = _simulate(task, n, seed)
    raw = t.to_raw(z)
    pos = raw[migraine == 1]
    if len(pos) < MIN_MIGRAINE_DAYS:
        best = smallest_working_n(task, n, seed)
        raise MockSizeError(
            f"--n {n}: only {len(pos)} migraine day(s) among {n} simulated days, and the mock posterior needs "
            f"at least {MIN_MIGRAINE_DAYS}; "
            + (f"the smallest --n that works with --seed {seed} is {best}" if best else "increase --n")
        )
    sd = np.diag(t.std)
    return dict(
        features=list(t.names),
        categories=list(t.categories),
        mu_prior=t.mean.copy(),
        Sigma_prior=sd @ task.correlation @ sd,
        corr_prior=task.correlation.copy(),
        mu_post=pos.mean(axis=0),
        Sigma_post=np.cov(pos, rowvar=False),
        samples=raw,
        samples_std=z,
        p_migraine=1.0 / (1.0 + np.exp(-logits)),
        migraine=migraine,
        beta_pop=task.beta_pop.copy(),
        relevance=t.relevance.copy(),
        direction=t.direction.copy(),
        settings=dict(
            n=n,
            seed=seed,
            table=t.source,
            sheet=t.sheet,
            b0=task.b0,
            **{f"model.{k}": v for k, v in vars(task.config).items()},
        ),
    )


def to_frame(mock: dict) -> pd.DataFrame:
    """One row per simulated day: each feature in raw units, then p_migraine and migraine."""
    frame = pd.DataFrame(mock["samples"], columns=mock["features"])
    frame["p_migraine"] = mock["p_migraine"]
    frame["migraine"] = mock["migraine"]
    return frame


def save_mock_distribution(mock: dict, out_dir, heatmap: bool = True) -> list[Path]:
    """Write .pkl, .npz + .json, .csv (and the correlation heatmap) atomically; return the paths."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TfpAlineError(f"--out {out}: exists and is not a folder; expected a folder to write into")
    paths = [out / f"{FILE_STEM}.{ext}" for ext in ("pkl", "npz", "json", "csv")]
    # Render everything in memory first, so a failure leaves no file half-written.
    blobs = [pickle.dumps(mock, protocol=4)]
    buf = io.BytesIO()
    np.savez(buf, **{k: mock[k] for k in ARRAY_KEYS})
    blobs.append(buf.getvalue())
    meta = dict(
        features=mock["features"],
        categories=mock["categories"],
        settings=mock["settings"],
        arrays=f"{FILE_STEM}.npz",
        array_keys=list(ARRAY_KEYS),
    )
    blobs.append(json.dumps(meta, indent=2).encode())
    blobs.append(to_frame(mock).to_csv(index=False, float_format="%.17g").encode())
    if heatmap:
        paths.append(out / "mock_correlation.png")
        blobs.append(_heatmap_png(mock))
    folders = [p for p in paths if p.is_dir()]
    if folders:  # checked before the first write, so no file of a set is replaced alone
        raise TfpAlineError(f"--out {out}: {folders[0]} is a folder, so it cannot be written")
    try:
        atomic.write_files(dict(zip(paths, blobs)))  # the set changes as a whole or not at all
    except OSError as e:
        raise TfpAlineError(
            f"--out {out}: cannot write the mock distribution ({write_problem(e)}); no file there was changed"
        ) from None
    return paths


def load_npz(path) -> dict:
    """Load the pickle-free pair (.npz + .json beside it) back into the dict `generate` returns."""
    path = Path(path)
    meta = json.loads(path.with_suffix(".json").read_text())
    with np.load(path, allow_pickle=False) as arrays:
        out = {k: arrays[k] for k in meta["array_keys"]}
    out.update(features=meta["features"], categories=meta["categories"], settings=meta["settings"])
    return out


def _heatmap_png(mock: dict) -> bytes:
    from matplotlib.figure import Figure

    corr = mock["corr_prior"]
    fig = Figure(figsize=(9, 8))
    ax = fig.subplots()
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(len(corr)), mock["features"], rotation=90, fontsize=7)
    ax.set_yticks(range(len(corr)), mock["features"], fontsize=7)
    ax.set_title("Prior correlation of day features (standardised units)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def summary(mock: dict, top: int = 5) -> str:
    """A few lines: factors, base rate, strongest population weights, mock-posterior shifts."""
    beta, names = mock["beta_pop"], mock["features"]
    shift = (mock["mu_post"] - mock["mu_prior"]) / np.sqrt(np.diag(mock["Sigma_prior"]))
    lines = [
        f"factors: {len(names)} in {len(set(mock['categories']))} categories",
        f"simulated days: {len(mock['migraine'])}, migraine days: {int(mock['migraine'].sum())} "
        f"(base rate {mock['migraine'].mean():.3f}; configured {mock['settings']['model.base_rate']})",
        f"p_migraine: median {np.median(mock['p_migraine']):.3f}, "
        f"90% of days in [{np.quantile(mock['p_migraine'], 0.05):.3f}, {np.quantile(mock['p_migraine'], 0.95):.3f}]",
        "strongest factors (population logit weight per SD; mock-posterior shift in SDs):",
    ]
    for i in np.argsort(-np.abs(beta))[:top]:
        lines.append(f"  {names[i]:<38} {beta[i]:+.3f}   shift {shift[i]:+.2f}")
    return "\n".join(lines)
