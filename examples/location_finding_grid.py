"""An exact reference posterior for location finding: the unit square on a grid that refines itself.

The posterior of one source is two-dimensional, so it can be tabulated instead of sampled. NUTS
is not reliable here: after a policy's measurements the posterior is sharp (sd down to ~1e-3)
and often has several separated modes, and chains started apart stay in different ones.

The tabulation starts from a coarse grid of cells over [0, 1]^2 and, while the cells that carry
the posterior's mass are few enough, splits them into finer cells and evaluates again:

    level 0: COARSE^2 cells of side h0 = 1 / COARSE, log posterior at each cell's centre;
    level k: the KEEP cells of level k-1 with the highest log posterior, each split SPLIT x SPLIT.

A person's posterior is then the finest level whose predecessor had at most KEEP cells within
LOG_DROP of its maximum (so each cell left behind carries less than exp(-LOG_DROP) times the
largest cell's mass): piecewise constant on its cells, each with weight exp(log posterior) * area. Wide
posteriors stay on the coarse grid, which resolves them; sharp ones are refined down to cells of
side h0 / SPLIT^LEVELS.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

COARSE = 128  # level-0 cells per side (h0 = 1/128)
SPLIT = 8  # each refined cell becomes SPLIT x SPLIT cells
KEEP = 512  # cells refined per level and person
LEVELS = 2  # refinements (finest side h0 / 64, about 1.2e-4)
LOG_DROP = 30.0  # cells further than this below the maximum log posterior are negligible
PEOPLE_PER_CHUNK = 32  # bounds the [points, people, measurements] likelihood tensor


@functools.lru_cache(maxsize=8)
def _compiled_log_posterior(task):
    # XLA fuses the intensity, the Normal log density and the sum over measurements: several
    # times faster than running them op by op on [P, b, n] tensors.
    return tf.function(task.log_posterior, jit_compile=True, reduce_retracing=True)


def _log_posterior(task, points, x, y, mask):
    """Log posterior at points [P, b, 2] of people with data x [b, n, 2], y [b, n, 1], mask [b, n] -> [P, b]."""
    theta = tf.constant(points, task.dtype)
    return _compiled_log_posterior(task)(theta, x, y, mask).numpy().astype(np.float64)


def _offsets(side: float):
    """Centres of SPLIT x SPLIT sub-cells of a cell of this side, relative to its centre: [SPLIT^2, 2]."""
    u = (np.arange(SPLIT) + 0.5) / SPLIT - 0.5
    return side * np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)


def grid_posterior(task, context_x, context_y, context_mask):
    """The tabulated posterior of each person's context.

    context_x: [B, n, 2], context_y: [B, n, 1], context_mask: [B, n] bool.
    Returns (centres [B, C, 2], side [B] of that person's cells, weights [B, C] summing to 1 per
    person); C = COARSE^2 or KEEP * SPLIT^2, whichever is larger, the shorter tables padded with
    zero-weight cells.
    """
    xs, ys = np.asarray(context_x), np.asarray(context_y)
    masks = np.asarray(context_mask, bool)
    u = (np.arange(COARSE) + 0.5) / COARSE
    coarse = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2)  # [G, 2]
    cells = max(coarse.shape[0], KEEP * SPLIT**2)
    out_c, out_s, out_w = [], [], []
    for start in range(0, xs.shape[0], PEOPLE_PER_CHUNK):
        sl = slice(start, start + PEOPLE_PER_CHUNK)
        x, y = (tf.constant(a[sl], task.dtype) for a in (xs, ys))
        mask = tf.constant(masks[sl])
        b = x.shape[0]
        centres = np.broadcast_to(coarse[:, None], (coarse.shape[0], b, 2))  # [G, b, 2]
        levels = [(centres, _log_posterior(task, centres, x, y, mask))]  # level k: ([P, b, 2], [P, b])
        final = np.zeros(b, int)  # the finest level that holds (nearly) all of a person's mass
        for k in range(LEVELS):
            centres, logp = levels[-1]
            # With at most KEEP cells within LOG_DROP of the maximum, the KEEP best hold nearly all
            # the mass, so their children partition it; with more, stop at this level.
            sharp = (logp >= logp.max(0) - LOG_DROP).sum(0) <= KEEP
            final = np.where((final == k) & sharp, k + 1, final)
            if not (final == k + 1).any():
                break
            top = np.argpartition(-logp, KEEP - 1, axis=0)[:KEEP]  # [KEEP, b], the best in any order
            parents = np.take_along_axis(centres, top[..., None], 0)  # [KEEP, b, 2]
            offsets = _offsets(1.0 / (COARSE * SPLIT**k))  # children of a level-k cell
            children = (parents[:, None] + offsets[None, :, None]).reshape(-1, b, 2)
            levels.append((children, _log_posterior(task, children, x, y, mask)))
        for i in range(b):
            centres, logp = levels[final[i]]
            w = np.exp(logp[:, i] - logp[:, i].max())  # one level: equal areas
            out_c.append(_pad(centres[:, i], cells, 0.5))
            out_w.append(_pad(w / w.sum(), cells, 0.0))
            out_s.append(1.0 / (COARSE * SPLIT ** final[i]))
    return np.stack(out_c), np.asarray(out_s), np.stack(out_w)


def _pad(a, size: int, value):
    """a with its first axis padded to `size` with `value`."""
    widths = [(0, size - a.shape[0])] + [(0, 0)] * (a.ndim - 1)
    return np.pad(a, widths, constant_values=value)


def grid_posterior_samples(task, context_x, context_y, context_mask, num_samples: int, seed):
    """Draws [S, B, 2] of the tabulated posterior: a cell by its weight, then uniform within it."""
    centres, side, weights = grid_posterior(task, context_x, context_y, context_mask)
    rng = np.random.default_rng(np.asarray(seed, np.int64).ravel()[:2].tolist())
    out = np.empty((num_samples, weights.shape[0], 2))
    for i, (c, w) in enumerate(zip(centres, weights)):
        cum = np.cumsum(w)
        picks = np.minimum(np.searchsorted(cum, rng.random(num_samples) * cum[-1], side="right"), len(w) - 1)
        out[:, i] = c[picks] + (rng.random((num_samples, 2)) - 0.5) * side[i]
    return np.clip(out, 0.0, 1.0)


def grid_posterior_mean(task, context_x, context_y, context_mask):
    """Posterior mean [B, 2] of the tabulated posterior (exact for its cells, no sampling noise)."""
    centres, _, weights = grid_posterior(task, context_x, context_y, context_mask)
    return np.einsum("bc,bcd->bd", weights, centres)
