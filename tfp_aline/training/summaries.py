"""TensorBoard output: scalars, weight histograms, images of the query strategy and posteriors, hparams."""

import io

import numpy as np
import tensorflow as tf


def write_scalars(writer, step, values: dict):
    with writer.as_default(step=step):
        for tag, value in values.items():
            tf.summary.scalar(tag, value)


def write_histograms(writer, step, model):
    with writer.as_default(step=step):
        for v in model.trainable_variables:
            tf.summary.histogram("weights/" + v.path.replace(":", "_"), v)


def write_hparams(writer, cfg):
    from tensorboard.plugins.hparams import api as hp

    flat = {}
    for section, values in cfg.to_dict().items():
        if isinstance(values, dict):
            for k, v in values.items():
                if isinstance(v, (int, float, str, bool)):
                    flat[f"{section}.{k}"] = v
        elif isinstance(values, (int, float, str, bool)):
            flat[section] = values
    with writer.as_default(step=0):
        hp.hparams(flat, trial_id=cfg.name)


def _png(fig) -> tf.Tensor:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return tf.image.decode_png(buf.getvalue(), channels=4)[None]


def query_strategy_figure(chosen_x, x_names, title):
    """Where the chosen designs lie, step by step: chosen_x [T, B, Dx] -> matplotlib figure.

    By the task's design dimensions: one input, a strip of every episode's choice per step; two,
    a scatter of the designs coloured by step; more, a heatmap of the mean chosen input per step.
    """
    from matplotlib.figure import Figure

    chosen_x = np.asarray(chosen_x)
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    if chosen_x.shape[-1] == 1:  # one input: show every episode's choice, not a one-row heatmap
        steps = np.repeat(np.arange(1, chosen_x.shape[0] + 1), chosen_x.shape[1])
        ax.scatter(steps, chosen_x[..., 0].ravel(), s=6, alpha=0.5)
        ax.set_xlabel("query step t")
        ax.set_ylabel(x_names[0])
        ax.set_title(title, fontsize=9)
        fig.tight_layout()
        return fig
    if chosen_x.shape[-1] == 2:  # a design plane: where in it, and when
        steps = np.repeat(np.arange(1, chosen_x.shape[0] + 1), chosen_x.shape[1])
        points = ax.scatter(chosen_x[..., 0].ravel(), chosen_x[..., 1].ravel(), c=steps, cmap="viridis", s=6, alpha=0.6)
        ax.set_xlabel(x_names[0])
        ax.set_ylabel(x_names[1])
        ax.set_title(title, fontsize=9)
        fig.colorbar(points, ax=ax, label="query step t")
        fig.tight_layout()
        return fig
    mean = chosen_x.mean(axis=1)  # [T, Dx]
    lim = max(np.abs(mean).max(), 1e-6)
    # extent puts cell centres on the steps 1..T (the t-th query), not on 0-based indices
    im = ax.imshow(
        mean.T,
        aspect="auto",
        cmap="RdBu_r",
        vmin=-lim,
        vmax=lim,
        extent=(0.5, mean.shape[0] + 0.5, mean.shape[1] - 0.5, -0.5),
    )
    ax.set_yticks(range(len(x_names)), x_names, fontsize=6)
    ax.set_xlabel("query step t")
    ax.set_title(title, fontsize=9)
    fig.colorbar(im, ax=ax, label="mean chosen input (network units)")
    fig.tight_layout()
    return fig


def posterior_figure(posterior, theta, names, steps):
    """Marginal posteriors of a few parameters of one episode at several steps.

    posterior: list over steps of tfd with batch [1, L]; theta: [L] truth; names: [L]; steps: labels.
    """
    from matplotlib.figure import Figure

    shown = min(4, len(names))
    fig = Figure(figsize=(3 * shown, 2.8))
    axes = fig.subplots(1, shown)
    axes = np.atleast_1d(axes)
    for i, ax in enumerate(axes):
        grid = np.linspace(theta[i] - 3, theta[i] + 3, 400).astype(np.float32)
        for q, label in zip(posterior, steps):
            dens = np.exp(q.log_prob(np.broadcast_to(grid[:, None, None], (400, 1, len(names)))).numpy()[:, 0, i])
            ax.plot(grid, dens, label=f"t={label}")
        ax.axvline(theta[i], color="k", ls="--", lw=1)
        ax.set_title(names[i][:28], fontsize=8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def write_image(writer, step, tag, fig):
    with writer.as_default(step=step):
        tf.summary.image(tag, _png(fig))
