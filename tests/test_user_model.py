"""A user's own model, as a new user would write it: delay discounting with an unbounded Normal
prior and a probit choice likelihood, whose posterior is not log-concave.

The exact references must hold for it without a box or an invertible Hessian: NUTS starts from
prior draws, checks R-hat and ESS, and warns in one line; training with validation and the
evaluation (with the NUTS check) run with no traceback.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
import yaml

from tfp_aline.core.exact import convergence_message, nuts_posterior, prior_starts, unconverged
from tfp_aline.errors import ConvergenceWarning
from tfp_aline.tasks.base import Task

tfd = tfp.distributions

MAX_DELAY = 365.0
STD_NORMAL = tfd.Normal(0.0, 1.0)


class DiscountingTask(Task):
    """Choose a delayed reward of 1 after d days (y = 1) or an amount a now, with the value of the
    delayed one discounted hyperbolically:

        theta = (log_k, log_sigma) ~ N([-4, -1.5], diag([1.5, 0.75]^2)),
        x = (a, d / MAX_DELAY) ~ U[0, 1]^2,
        p(y = 1) = Phi((1 / (1 + k d) - a) / sigma).

    No `support`: the prior is unbounded. The log posterior is not concave (the value is a
    sigmoid in log_k, z is exponential in log_sigma), so a Newton start can meet a Hessian that
    is singular or not negative definite."""

    name = "discounting"
    x_dim = 2
    outcome = "binary"
    parameter_names = ("log_k", "log_sigma")
    parameter_groups = {"rate": (0,), "noise": (1,)}

    def prior(self):
        return tfd.Independent(tfd.Normal([-4.0, -1.5], [1.5, 0.75]), 1)

    def design_distribution(self, n):
        return tfd.Independent(tfd.Uniform(tf.zeros([n, 2]), tf.ones([n, 2])), 2)

    def likelihood(self, theta, x):
        k, sigma = tf.exp(theta[..., 0:1]), tf.exp(theta[..., 1:2])  # [..., 1]
        value = 1.0 / (1.0 + k * MAX_DELAY * x[..., 1])  # [..., n]
        z = (value - x[..., 0]) / sigma
        # logit(Phi(z)) from log Phi(+-z): exact where Phi(z) rounds to 0 or 1 in float32
        return tfd.Bernoulli(logits=STD_NORMAL.log_cdf(z) - STD_NORMAL.log_cdf(-z), dtype=self.dtype)


def grid_moments(task, x, y):
    """Posterior mean and sd of (log_k, log_sigma) per person on a dense grid: [P, 2], [P, 2].
    The grid spans the prior mean +- 6 prior sd in both parameters."""
    a = np.linspace(-4.0 - 9.0, -4.0 + 9.0, 721)
    b = np.linspace(-1.5 - 4.5, -1.5 + 4.5, 361)
    A, B = np.meshgrid(a, b, indexing="ij")
    grid = np.stack([A.ravel(), B.ravel()], -1).astype(np.float32)  # [G, 2]
    lp = task.log_posterior(tf.constant(grid)[:, None, :], x, y).numpy().astype(np.float64)  # [G, P]
    w = np.exp(lp - lp.max(0))
    w /= w.sum(0)
    mean = w.T @ grid
    sd = np.sqrt(np.einsum("gp,gpl->pl", w, (grid[:, None, :] - mean[None]) ** 2))
    return mean, sd


@pytest.fixture(scope="module")
def people():
    task = DiscountingTask()
    return task, task.sample_episodes(3, 20, seed=tf.constant([7, 3]))


def test_the_posterior_is_not_log_concave(people):
    """At some prior draws the Hessian of the log posterior has a positive eigenvalue: Newton
    from there heads for a saddle or a minimum, which is why the chains must not start from it."""
    task, ep = people
    theta = tf.Variable(tf.reshape(task.sample_prior(64 * 3, seed=tf.constant([1, 1])), [64, 3, 2]))
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            lp = tf.reduce_sum(task.log_posterior(theta, ep.query_x, ep.query_y))
        g = inner.gradient(lp, theta)
    h = outer.jacobian(g, theta)  # [64, 3, 2, 64, 3, 2]; only the diagonal blocks are non-zero
    blocks = np.stack([[h[i, p, :, i, p, :].numpy() for p in range(3)] for i in range(64)])
    assert (np.linalg.eigvalsh(blocks)[..., -1] > 0).any()


def test_chain_starts_are_the_most_probable_prior_draws(people):
    task, ep = people
    starts = prior_starts(task, ep.query_x, ep.query_y, tf.ones([3, 20], tf.bool), 4, (5, 6), num_draws=64)
    assert starts.shape == (4, 3, 2)
    # the same 64 draws, ranked by hand: the starts are the top 4 per person, best first
    draws = tf.reshape(task.sample_prior(64 * 3, seed=tf.constant([5, 6 + 7919])), [64, 3, 2])
    lp = task.log_posterior(draws, ep.query_x, ep.query_y).numpy()  # [64, 3]
    for p in range(3):
        best = np.argsort(-lp[:, p])[:4]
        np.testing.assert_allclose(starts.numpy()[:, p], draws.numpy()[best, p])


@pytest.mark.slow  # about a minute: XLA compiles the two-stage sampler
def test_nuts_from_prior_draws_matches_a_dense_grid(people):
    task, ep = people
    result = nuts_posterior(task, ep.query_x, ep.query_y, num_chains=4, num_results=500, num_burnin=500, seed=(3, 4))
    # converged: split R-hat of 8 half-chains of 500 draws varies by about 0.005 around 1 even
    # for independent draws, so 1.01 itself is tested by the warning, not here
    assert not unconverged(result, rhat_max=1.02).any(), convergence_message(result, task.parameter_names)
    mean, sd = grid_moments(task, ep.query_x, ep.query_y)
    draws = result.flat.numpy()
    se = sd / np.sqrt(result.ess.numpy())  # Monte Carlo error of a mean; allow 4 of them
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * se)
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.15)


def test_chains_in_different_places_are_named_in_one_warning():
    """Person 1's chains sit in two places: R-hat names it and its parameter, in one line."""
    import warnings

    from tfp_aline.core.exact import NutsResult, warn_unconverged

    rng = np.random.default_rng(0)
    draws = rng.standard_normal((400, 4, 3, 2)).astype(np.float32)
    draws[:, 2:, 1, 0] += 3.0  # two chains of person 1 elsewhere in log_k
    draws[:, :, 2, 1] = draws[:1, :, 2, 1] + 0.01 * draws[:, :, 2, 1]  # person 2's log_sigma barely moves
    d = tf.constant(draws)
    rhat = tfp.mcmc.potential_scale_reduction(d, independent_chain_ndims=1, split_chains=True)
    ess = tfp.mcmc.effective_sample_size(d, cross_chain_dims=1)
    result = NutsResult(d, rhat, ess, tf.ones([3, 1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bad = warn_unconverged(result, DiscountingTask.parameter_names, what="the test")
    assert bad.tolist() == [False, True, True]
    assert len(caught) == 1 and caught[0].category is ConvergenceWarning
    message = str(caught[0].message)
    assert "\n" not in message and message.startswith("the test did not converge for 2 of 3 people")
    assert "person 1 (log_k: R-hat" in message and "person 2 (log_sigma: R-hat" in message


CONFIG = {
    "name": "discounting",
    "seed": 0,
    "task": {"class": f"{__name__}:DiscountingTask"},
    "episodes": {"batch_size": 8, "num_candidates": 10, "horizon": 4},
    "targets": {"all": 1.0},
    "network": {"embed_dim": 16, "num_layers": 1, "num_heads": 2, "ff_dim": 32, "num_components": 3},
    "training": {"epochs": 4, "warmup_epochs": 2},
    "logging": {"validate_every": 2, "validation_people": 6, "checkpoint_every": 4},
    "evaluation": {"people": 4},
}


@pytest.mark.slow
def test_trains_with_validation_and_evaluates_with_no_traceback(tmp_path, capsys):
    """The whole path a user takes: train (validation against NUTS at start-up), then evaluate
    with the exact reference and the NUTS check, which reuses the reference's step-T draws."""
    import pandas as pd

    from tfp_aline.cli.main import main

    config = tmp_path / "discounting.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--logdir", str(run), "--no-progress", "--no-eval"]) == 0
    validation = pd.read_csv(run / "validation.csv")
    assert set(validation.step) == {0, 2, 4} and np.isfinite(validation.rmse_exact).all()
    out = tmp_path / "eval"
    argv = ["evaluate", "--run", str(run), "--episodes", "4", "--methods", "policy", "random"]
    assert main(argv + ["--nuts-people", "2", "--out", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for line in err.splitlines():  # a convergence warning is one line naming people and a parameter
        if "did not converge" in line:
            assert line.startswith("warning: the NUTS reference of task 'discounting'") and "person " in line
    df = pd.read_csv(out / "metrics.csv")
    got = df[df.method == "policy"].set_index("metric")["mean"]
    assert got["nuts_reuses_reference"] == 1.0
    assert got["rmse_mean_nuts"] == pytest.approx(got["rmse_mean_reference_nuts_people"])
    unconverged_share = df[df.metric == "reference_unconverged"]
    assert len(unconverged_share) == 2 * 5  # every step of both methods
    marked = df[df.metric.str.startswith("reference_rhat_person_")]
    assert len(marked) == round((unconverged_share["mean"] * unconverged_share.n).sum())
