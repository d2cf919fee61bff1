"""Grid baselines for the psychometric task: an exact grid posterior, QUEST+ and Psi-marginal acquisition."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfp_aline.core.acquisition import Acquisition
from tfp_aline.core.choice import TAKEN_LOGIT
from tfp_aline.psychometric.response import response_probability

DEFAULT_SIZES = (41, 21, 11, 11)  # threshold, slope, guess, lapse (see benchmarks/grid_baselines.py)
AXES = "tsgl"  # einsum letters of the grid axes, in theta order
_SATURATED = 1e-9  # F or 1 - F below this: p(y | x, theta) is its limit to within 1e-9 (see _expected_entropy)
_GROUP = 64  # likelihood factors multiplied (float64) before one log: 64 factors >= 1e-4 cannot underflow
_EPISODE_CHUNK = 16  # episodes per compiled likelihood call and per scoring chunk ([16, N, T, S] curves ~ 22 MB)


def _xlogx(v):
    """v log v with 0 log 0 = 0 (empty cells), elementwise."""
    return v * np.log(np.maximum(v, np.finfo(v.dtype).tiny))


class PsychometricGrid:
    """A fixed grid of cell midpoints over the prior box; G = prod(sizes) cells in (t, s, g, l) C order.

    The likelihood p = guess * lapse + (1 - lapse) F(x; threshold, slope) is affine in the curve F,
    so only F is evaluated on a [N, T, S] table and guess and lapse enter through [G_g, G_l] tables.
    """

    def __init__(self, task, sizes=DEFAULT_SIZES):
        self.task = task
        self.sizes = tuple(int(n) for n in sizes)
        low, high = np.asarray(task.low, np.float64), np.asarray(task.high, np.float64)
        self.width = (high - low) / np.array(self.sizes)  # [4]
        self.values = [low[i] + (np.arange(n) + 0.5) * self.width[i] for i, n in enumerate(self.sizes)]
        self.points = np.stack(np.meshgrid(*self.values, indexing="ij"), -1).reshape(-1, 4)  # [G, 4]
        guess, lapse = np.meshgrid(self.values[2], self.values[3], indexing="ij")
        # p(y=1) = a + b F and p(y=0) = c + b (1 - F), each formed without cancellation.
        self.a, self.b, self.c = guess * lapse, 1.0 - lapse, lapse * (1.0 - guess)  # [G_g, G_l]
        t, s = np.meshgrid(self.values[0], self.values[1], indexing="ij")
        self._curve_theta = tf.constant(np.stack([t, s, 0.0 * t, 0.0 * t], -1).reshape(-1, 4))  # [TS, 4]
        self._a, self._b, self._c = (tf.constant(v.reshape(-1)) for v in (self.a, self.b, self.c))
        self._curve = tf.function(self._curve_graph, jit_compile=True, reduce_retracing=True)
        self._log_posterior = tf.function(self._log_posterior_graph, jit_compile=True, reduce_retracing=True)

    @property
    def num_cells(self) -> int:
        return len(self.points)

    def curve(self, x):
        """Guess- and lapse-free curve F(x; threshold, slope) on the grid: x [B, N] -> [B, N, T, S] float64."""
        f = self._curve(tf.constant(x, tf.float64)).numpy()
        return f.reshape(*np.shape(x), *self.sizes[:2])

    def _curve_graph(self, x):
        return response_probability(self._curve_theta, x[..., None, None])[..., 0]  # [..., TS]

    def log_posterior(self, context_x, context_y, context_mask):
        """Normalised log weights under a uniform prior on the box and the valid context points.

        context_x, context_y: [B, C, 1], context_mask: [B, C] bool -> [B, G] float64.
        """
        x = np.asarray(context_x, np.float64)[..., 0]
        y = np.asarray(context_y)[..., 0] > 0.5
        mask = np.asarray(context_mask, bool)
        used = np.flatnonzero(mask.any(0))  # slots empty in every episode cost nothing
        # Pad slots to a multiple of _GROUP (or of 8 below it) and episodes to a full chunk, so the
        # compiled likelihood sees few distinct shapes; padded slots are masked (a factor of 1).
        group = min(_GROUP, 8 * max(1, -(-len(used) // 8)))
        slots = -(-max(len(used), 1) // group) * group
        rows = -(-len(x) // _EPISODE_CHUNK) * _EPISODE_CHUNK
        pad = [[0, rows - len(x)], [0, slots - len(used)]]
        x, y, mask = (np.pad(v[:, used], pad) for v in (x, y, mask))
        return np.concatenate(
            [
                self._log_posterior(
                    x[i : i + _EPISODE_CHUNK], y[i : i + _EPISODE_CHUNK], mask[i : i + _EPISODE_CHUNK], group
                ).numpy()
                for i in range(0, rows, _EPISODE_CHUNK)
            ]
        )[: len(context_mask)]

    def _log_posterior_graph(self, x, y, mask, group):
        """Normalised sum_c log p(y_c | x_c, theta_g) over valid slots: [B, C] each -> [B, G]; C % group == 0."""
        f = self._curve_graph(x)  # [B, C, TS]
        # p(y | x, theta) = u + b v per slot; a masked slot gets u = 1, v = 0, i.e. a factor of 1.
        v = tf.where(mask[..., None], tf.where(y[..., None], f, 1.0 - f), 0.0)
        u = tf.where(mask[..., None], tf.where(y[..., None], self._a, self._c), 1.0)  # [B, C, GL]
        factor = u[:, :, None, :] + self._b * v[..., None]  # [B, C, TS, GL], fused away by XLA
        shape = tf.shape(factor)
        factor = tf.reshape(factor, [shape[0], shape[1] // group, group, shape[2], shape[3]])
        # A product of `group` factors, then one log: far fewer logs than one per factor.
        loglik = tf.reshape(tf.reduce_sum(tf.math.log(tf.reduce_prod(factor, axis=2)), axis=1), [shape[0], -1])
        return loglik - tf.reduce_logsumexp(loglik, axis=1, keepdims=True)

    def weights(self, logw):
        """Normalised cell weights: [B, G] log weights -> [B, G]."""
        w = np.exp(np.asarray(logw, np.float64))
        return w / w.sum(-1, keepdims=True)

    def mean(self, logw):
        """Posterior mean: [B, G] -> [B, 4]."""
        return self.weights(logw) @ self.points

    def marginal(self, logw, index: int):
        """Marginal weights of parameter `index` over its grid values: [B, G] -> [B, sizes[index]]."""
        w = self.weights(logw).reshape(-1, *self.sizes)
        return w.sum(tuple(1 + j for j in range(4) if j != index))

    def sample(self, logw, num_samples: int, seed):
        """Posterior draws: a cell by weight, then uniform within it. [B, G] -> [S, B, 4]; seed: stateless [2]."""
        logw = np.asarray(logw)
        u = tf.random.stateless_uniform([num_samples, len(logw), 5], seed, dtype=tf.float64).numpy()
        return self._sample(logw, u)

    def _sample(self, logw, u):
        """Draws from uniforms u [S, B, 5]: column 0 picks the cell (inverse CDF), 1..4 jitter it."""
        cells = np.empty(u.shape[:2], np.int64)
        for i, row in enumerate(self.weights(logw)):
            cdf = np.cumsum(row)
            cells[:, i] = np.minimum(np.searchsorted(cdf, u[:, i, 0] * cdf[-1], side="right"), len(cdf) - 1)
        theta = self.points[cells] + (u[..., 1:] - 0.5) * self.width
        return theta.astype(self.task.dtype.as_numpy_dtype)

    def information_gain(self, logw, f, target: str = AXES):
        """EIG about the parameters in `target` (letters of 'tsgl'; the rest are marginalised) of
        observing y at each candidate: logw [G] of one episode, f = curve [N, T, S] -> [N] nats.

        EIG_S(x) = H[p(y|x,D)] - sum_{theta_S} p(theta_S|D) H[p(y|x,theta_S,D)]; all four = QUEST+.
        """
        w = self.weights(logw[None])[0].reshape(self.sizes)
        f1, f0 = f, 1.0 - f
        w_b = np.einsum("tsgl,gl->ts", w, self.b)
        p1 = f1.reshape(len(f1), -1) @ w_b.reshape(-1) + np.einsum("tsgl,gl->", w, self.a)  # p(y=1 | x, D)
        p0 = f0.reshape(len(f0), -1) @ w_b.reshape(-1) + np.einsum("tsgl,gl->", w, self.c)
        marginal = -_xlogx(p1) - _xlogx(p0)
        if target == AXES:
            return marginal - self._expected_entropy(w, f1, f0)
        # joint p(y, theta_S | x, D) = sum_{-S} w (a + b F) for y = 1 and sum_{-S} w (c + b (1 - F)) for y = 0
        gl = "".join(k for k in target if k in "gl")
        w_b = np.einsum(f"tsgl,gl->ts{gl}", w, self.b)
        j1 = np.einsum(f"tsgl,gl->{target}", w, self.a) + np.einsum(f"nts,ts{gl}->n{target}", f1, w_b, optimize=True)
        j0 = np.einsum(f"tsgl,gl->{target}", w, self.c) + np.einsum(f"nts,ts{gl}->n{target}", f0, w_b, optimize=True)
        # sum_S w_S H[p(y | theta_S)] = sum_S [w_S log w_S - j1 log j1 - j0 log j0], as j1 + j0 = w_S.
        w_s = np.einsum(f"tsgl->{target}", w)
        expected = _xlogx(w_s).sum() - (_xlogx(j1) + _xlogx(j0)).reshape(len(f), -1).sum(1)
        return marginal - expected

    def _expected_entropy(self, w, f1, f0):
        """E_theta H[p(y | x, theta)] over all cells: w [T, S, G_g, G_l], f1 = F, f0 = 1 - F [N, T, S] -> [N].

        The [N, G] entropy table dominates the cost of QUEST+: it is formed one candidate at a time in
        float32 (cache-sized), and the (threshold, slope) cells where F is within _SATURATED of 0 or 1
        use the limit's entropy (error < 1e-8 nats), which skips about half of the logarithms.
        """
        w = w.reshape(-1, self.b.size)  # [TS, GL]
        a, b, c = (v.reshape(-1).astype(np.float32) for v in (self.a, self.b, self.c))
        # sum_gl w H[p] of each (threshold, slope) cell at the limits F = 0 and F = 1: [TS] each
        h_low, h_high = (w @ (-_xlogx(p) - _xlogx(1.0 - p)) for p in (self.a.ravel(), (self.a + self.b).ravel()))
        w32 = w.astype(np.float32)
        out = np.empty(len(f1))
        for n, (g1, g0) in enumerate(zip(f1.reshape(len(f1), -1), f0.reshape(len(f0), -1))):
            low, high = g1 < _SATURATED, g0 < _SATURATED
            mid = ~(low | high)
            # in place: p log p + q log q with no temporaries beyond p, q and log q
            p = g1[mid, None].astype(np.float32) * b
            p += a
            q = g0[mid, None].astype(np.float32) * b
            q += c
            h = np.log(p)
            h *= p
            lq = np.log(q)
            lq *= q
            h += lq
            out[n] = h_low[low].sum() + h_high[high].sum() - np.vdot(h, w32[mid])
        return out


@functools.lru_cache(maxsize=4)
def default_grid(task, sizes=DEFAULT_SIZES) -> PsychometricGrid:
    """A grid shared per (task, sizes), so its compiled functions are traced once per process."""
    return PsychometricGrid(task, sizes)


class _GridAcquisition(Acquisition):
    """Greedy expected information gain on the grid posterior of the current state (recomputed from
    the state at every step, so the scores never depend on the path taken to the state)."""

    def __init__(self, grid):
        """grid: a `PsychometricGrid`, or a psychometric task (then its default grid)."""
        self.grid = grid if isinstance(grid, PsychometricGrid) else default_grid(grid)

    def targets(self) -> list[str]:
        """The targeted axes of each episode, as letters of 'tsgl'."""
        raise NotImplementedError

    def scores(self, state):
        x = np.asarray(self.batch.query_x)[..., 0]
        taken = np.asarray(state.taken)
        cx, cy, cm = (np.asarray(v) for v in (state.context_x, state.context_y, state.context_mask))
        out = np.full(taken.shape, TAKEN_LOGIT)
        targets = self.targets()
        g = self.grid
        for lo in range(0, len(x), _EPISODE_CHUNK):
            rows = slice(lo, lo + _EPISODE_CHUNK)
            logw = g.log_posterior(cx[rows], cy[rows], cm[rows])
            curves = g.curve(x[rows])  # [b, N, T, S]
            for i, (lw, f) in enumerate(zip(logw, curves), lo):
                free = ~taken[i]  # taken candidates are never chosen again: skip their cost
                out[i, free] = g.information_gain(lw, f[free], targets[i])
        return out


class QuestPlusAcquisition(_GridAcquisition):
    """QUEST+: the stimulus of maximal expected information gain about all four parameters."""

    name = "questplus"
    target_agnostic = True

    def targets(self):
        return [AXES] * int(self.batch.query_x.shape[0])


class PsiMarginalAcquisition(_GridAcquisition):
    """Psi-marginal: information gain about each episode's targeted parameters only (others are nuisance)."""

    name = "psi-marginal"

    def targets(self):
        rows = np.asarray(self.target_mask)[:, :4]
        if not rows.any(1).all():
            raise ValueError("psi-marginal needs at least one targeted parameter in every episode")
        return ["".join(AXES[j] for j in np.flatnonzero(r)) for r in rows]


def _state_posterior(grid, state, chunk):
    """(episode slice, log weights) of a rollout state, a chunk of episodes at a time."""
    cx, cy, cm = (np.asarray(v) for v in (state.context_x, state.context_y, state.context_mask))
    for lo in range(0, len(cx), chunk):
        yield slice(lo, lo + chunk), grid.log_posterior(cx[lo : lo + chunk], cy[lo : lo + chunk], cm[lo : lo + chunk])


def grid_posterior_samples(task, state, num_samples: int, seed, grid: PsychometricGrid | None = None) -> np.ndarray:
    """Reference posterior draws of a rollout state: [S, B, 4] (independent of the episode chunking)."""
    grid = grid if grid is not None else default_grid(task)
    batch = int(np.shape(state.context_mask)[0])
    u = tf.random.stateless_uniform([num_samples, batch, 5], seed, dtype=tf.float64).numpy()
    return np.concatenate([grid._sample(logw, u[:, rows]) for rows, logw in _state_posterior(grid, state, 64)], axis=1)


def grid_posterior_mean(task, state, grid: PsychometricGrid | None = None) -> np.ndarray:
    """Reference posterior mean of a rollout state: [B, 4]."""
    grid = grid if grid is not None else default_grid(task)
    return np.concatenate([grid.mean(logw) for _, logw in _state_posterior(grid, state, 64)])
