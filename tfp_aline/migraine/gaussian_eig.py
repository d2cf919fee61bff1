"""Greedy expected information gain (EIG about a parameter subset, EPIG about predictive days) under a
Gaussian posterior of a linear-logit binary model (the migraine model), by Gauss-Hermite quadrature."""

from __future__ import annotations

import numpy as np

from tfp_aline.core.acquisition import Acquisition
from tfp_aline.core.exact import laplace_posterior

_NODES, _WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
_WEIGHTS = _WEIGHTS / _WEIGHTS.sum()  # E[f(Z)], Z ~ N(0, 1) ~= sum_k w_k f(z_k)


def _entropy(p):
    """Binary entropy in nats, safe at 0 and 1."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(p * np.log(p) + (1 - p) * np.log1p(-p))


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def mean_sigmoid(mean, var):
    """E[sigmoid(l)] for l ~ N(mean, var), elementwise (24-node Gauss-Hermite)."""
    mean, sd = np.asarray(mean)[..., None], np.sqrt(np.maximum(np.asarray(var), 0.0))[..., None]
    return _sigmoid(mean + sd * _NODES) @ _WEIGHTS


def design_matrix(x):
    """The migraine logit is a . theta with a = (x, 1): x [..., n, D] -> [..., n, D + 1]."""
    x = np.asarray(x, np.float64)
    return np.concatenate([x, np.ones(x.shape[:-1] + (1,))], axis=-1)


def explained_covariance(cov, subset):
    """Cov[E[theta | theta_S]] = Sigma[:, S] Sigma_SS^-1 Sigma[S, :], per episode.

    cov: [B, L, L], subset: [B, L] bool (the target parameters) -> [B, L, L]. Every row of
    `subset` needs at least one True.
    """
    s = np.asarray(subset, np.float64)
    # Invert Sigma_SS inside an L x L matrix: identity on the non-target block, zeroed afterwards.
    padded = cov * s[:, :, None] * s[:, None, :] + np.eye(cov.shape[-1]) * (1.0 - s)[:, None, :]
    inv = np.linalg.inv(padded) * s[:, :, None] * s[:, None, :]
    return cov @ inv @ cov


def eig_parameters(mean, cov, a, subset):
    """EIG about theta_S of observing y at each design, under theta ~ N(mean, cov).

    mean [B, L], cov [B, L, L], a [B, N, L] design rows, subset [B, L] bool -> [B, N] nats.
    The logit l = a . theta splits into m = E[l | theta_S] ~ N(a.mean, u) and noise N(0, v) given
    theta_S, so EIG = H[E sigmoid(l)] - E_m H[E(sigmoid(l) | m)]: a two-level quadrature.
    """
    mu = np.einsum("bnl,bl->bn", a, mean)
    total = np.einsum("bnl,blk,bnk->bn", a, cov, a)
    u = np.minimum(np.einsum("bnl,blk,bnk->bn", a, explained_covariance(cov, subset), a), total)
    v = total - u
    marginal = _entropy(mean_sigmoid(mu, total))
    m = mu[..., None] + np.sqrt(np.maximum(u, 0.0))[..., None] * _NODES  # [B, N, K]
    conditional = _entropy(mean_sigmoid(m, v[..., None])) @ _WEIGHTS
    return np.maximum(marginal - conditional, 0.0)


def epig(mean, cov, a, a_star, chunk: int = 16):
    """Expected predictive information gain: mean over target days m of I(y_n; y*_m), under
    theta ~ N(mean, cov). mean [B, L], cov [B, L, L], a [B, N, L], a_star [B, M, L] -> [B, N] nats."""
    out = []
    for lo in range(0, mean.shape[0], chunk):  # bounds memory at chunk * N * M * K * K floats
        sl = slice(lo, lo + chunk)
        c, m0, a1, a2 = cov[sl], mean[sl], a[sl], a_star[sl]
        mu1, mu2 = np.einsum("bnl,bl->bn", a1, m0), np.einsum("bml,bl->bm", a2, m0)
        var1 = np.einsum("bnl,blk,bnk->bn", a1, c, a1)
        var2 = np.einsum("bml,blk,bmk->bm", a2, c, a2)
        cross = np.einsum("bnl,blk,bmk->bnm", a1, c, a2)
        sd1 = np.sqrt(np.maximum(var1, 1e-12))
        l1 = mu1[..., None] + sd1[..., None] * _NODES  # [b, N, K] nodes of l_n
        # l*_m | l_n is Gaussian: mean shifts along the regression on l_n, variance shrinks.
        slope = cross / np.maximum(var1, 1e-12)[..., None]  # [b, N, M]
        cond_mean = mu2[:, None, :, None] + slope[..., None] * (l1[:, :, None, :] - mu1[:, :, None, None])
        cond_var = np.maximum(var2[:, None, :] - slope * cross, 0.0)[..., None]  # [b, N, M, 1]
        p_star_given = mean_sigmoid(cond_mean, np.broadcast_to(cond_var, cond_mean.shape))  # [b, N, M, K]
        p1 = _sigmoid(l1)[:, :, None, :]  # [b, N, 1, K]
        p11 = (p1 * p_star_given) @ _WEIGHTS
        p10 = (p1 * (1 - p_star_given)) @ _WEIGHTS
        pn = mean_sigmoid(mu1, var1)[:, :, None]
        ps = mean_sigmoid(mu2, var2)[:, None, :]
        joint = np.stack([p11, p10, ps - p11, 1 - pn - ps + p11], -1)
        indep = np.stack([pn * ps, pn * (1 - ps), (1 - pn) * ps, (1 - pn) * (1 - ps)], -1)
        joint = np.clip(joint, 1e-15, 1.0)
        mi = np.sum(joint * (np.log(joint) - np.log(np.clip(indep, 1e-15, 1.0))), -1)
        out.append(np.maximum(mi, 0.0).mean(-1))
    return np.concatenate(out, 0)


class _LaplaceGain(Acquisition):
    """Shared part of the greedy information-gain baselines: refit the Laplace posterior of the
    observed data at every step (non-amortized), then score candidates."""

    def __init__(self, task):
        self.task = task

    def posterior_moments(self, state):
        """Mean [B, L] and covariance [B, L, L] of the Laplace posterior of the state's data."""
        q = laplace_posterior(self.task, state.context_x, state.context_y, state.context_mask)
        return q.loc.numpy().astype(np.float64), q.covariance().numpy().astype(np.float64)


class GreedyEIGAcquisition(_LaplaceGain):
    """Greedy EIG about the target parameters (BALD when every parameter is targeted)."""

    name = "greedy-eig"

    def scores(self, state):
        mean, cov = self.posterior_moments(state)
        subset = self.target_mask.numpy()[:, : self.task.num_parameters]
        if not subset.any(axis=1).all():
            raise ValueError("greedy-eig needs parameter targets; use greedy-epig for predictive targets")
        return eig_parameters(mean, cov, design_matrix(self.batch.query_x), subset)


class GreedyEPIGAcquisition(_LaplaceGain):
    """Greedy EPIG: information about the outcomes of the held-out target days."""

    name = "greedy-epig"

    def scores(self, state):
        mean, cov = self.posterior_moments(state)
        return epig(mean, cov, design_matrix(self.batch.query_x), design_matrix(self.batch.target_x))


def prior_predictive(task, x):
    """Population model's p(y = 1 | x) knowing only the prior: x [B, M, D] -> [B, M]."""
    a = design_matrix(x)
    mean = np.asarray(task.prior_mean, np.float64)
    var = np.einsum("bml,l->bm", a**2, np.asarray(task.prior_std, np.float64) ** 2)
    return mean_sigmoid(a @ mean, var)
