"""Psychometric grid baselines: the grid posterior against the prior and importance sampling, EIG against
brute-force sums, QUEST+ = Psi-marginal on all four, no peeking at outcomes, behaviour, and the figures."""

import importlib.util

import numpy as np
import pytest
import tensorflow as tf
from conftest import ROOT

from tfp_aline.core.acquisition import run_acquisition
from tfp_aline.core.choice import TAKEN_LOGIT
from tfp_aline.core.rollout_state import initial_state, observe
from tfp_aline.core.targets import target_mask
from tfp_aline.psychometric.grid import (
    PsiMarginalAcquisition,
    PsychometricGrid,
    QuestPlusAcquisition,
    grid_posterior_mean,
    grid_posterior_samples,
)
from tfp_aline.psychometric.task import PsychometricTask, response_probability

TINY = (4, 3, 3, 2)  # threshold, slope, guess, lapse: 72 cells, small enough for explicit loops


@pytest.fixture(scope="module")
def task():
    return PsychometricTask()


@pytest.fixture(scope="module")
def tiny(task):
    return PsychometricGrid(task, TINY)


def _state(task, batch_size, num_candidates, steps, seed=0, horizon=None):
    """A batch (one initial context point) and its state after `steps` random queries."""
    batch = task.sample_episodes(batch_size, num_candidates, tf.constant([seed, 3]), num_initial_context=1)
    state = initial_state(batch, horizon or steps)
    order = np.argsort(np.random.default_rng(seed).uniform(size=(batch_size, num_candidates)), 1)
    for t in range(steps):
        state = observe(state, batch, tf.constant(order[:, t]))
    return batch, state


def test_no_observations_give_the_prior(task):
    batch, state = _state(task, 3, 10, 0, horizon=4)
    state = state._replace(context_mask=tf.zeros_like(state.context_mask))  # drop the initial point too
    centre = (task.low.numpy() + task.high.numpy()) / 2
    np.testing.assert_allclose(grid_posterior_mean(task, state), np.tile(centre, [3, 1]), atol=1e-9)
    draws = grid_posterior_samples(task, state, 4000, tf.constant([1, 2]))
    assert draws.shape == (4000, 3, 4)
    assert (draws >= task.low.numpy()).all() and (draws <= task.high.numpy()).all()
    # jittered draws are uniform on the box: mean at the centre within 4 standard errors
    se = (task.high.numpy() - task.low.numpy()) / np.sqrt(12 * 4000)
    assert np.all(np.abs(draws.mean(0) - centre) < 4 * se)


def test_grid_mean_matches_importance_sampling():
    task64 = PsychometricTask(tf.float64)
    batch, state = _state(task64, 2, 40, 20, seed=7)
    grid_mean = grid_posterior_mean(task64, state)
    # Self-normalised importance sampling from the prior; the standard error from the weights.
    num_draws, x, y, mask = 300_000, state.context_x, state.context_y, state.context_mask
    theta = task64.sample_prior(num_draws, tf.constant([4, 4])).numpy()  # [S, 4]
    logp = np.concatenate(
        [task64.log_posterior(tf.tile(th[:, None], [1, 2, 1]), x, y, mask).numpy() for th in np.split(theta, 6)]
    )  # [S, B]
    w = np.exp(logp - logp.max(0))
    w /= w.sum(0)
    is_mean = np.einsum("sb,sl->bl", w, theta)
    se = np.sqrt(np.einsum("sb,sbl->bl", w**2, (theta[:, None] - is_mean) ** 2))
    # (the midpoint grid's own discretisation error is allowed a fiftieth of a cell)
    cell = (task64.high.numpy() - task64.low.numpy()) / np.array([41, 21, 11, 11])
    assert np.all(np.abs(grid_mean - is_mean) < 4 * se + 0.02 * cell), (grid_mean, is_mean, se)


def _brute_weights(points, cx, cy):
    """Posterior weights on the tiny grid by an explicit product over cells and observations."""
    w = np.ones(len(points))
    for g, theta in enumerate(points):
        p = response_probability(tf.constant(theta), tf.constant(cx)).numpy()
        for p_c, y_c in zip(p, cy):
            w[g] *= p_c if y_c else 1.0 - p_c
    return w / w.sum()


def _brute_eig(points, w, p1, axes):
    """EIG about the parameters `axes` at one stimulus, by explicit sums over y in {0, 1} and cells;
    p1[g] = p(y = 1 | x, theta_g)."""

    def entropy(probs):
        return -sum(p * np.log(p) for p in probs if p > 0)

    marginal = [sum(w[g] * (p1[g] if y else 1 - p1[g]) for g in range(len(w))) for y in (0, 1)]
    groups = {}
    for g, theta in enumerate(points):
        groups.setdefault(tuple(theta[list(axes)]), []).append(g)
    expected = 0.0
    for members in groups.values():
        w_s = sum(w[g] for g in members)
        expected += w_s * entropy([sum(w[g] * (p1[g] if y else 1 - p1[g]) for g in members) / w_s for y in (0, 1)])
    return entropy(marginal) - expected


def test_eig_matches_brute_force(tiny):
    cx = np.array([-1.0, 0.3, 2.0, -2.5, 0.8])
    cy = np.array([0, 1, 1, 0, 0])
    logw = tiny.log_posterior(cx[None, :, None], cy[None, :, None], np.ones([1, 5], bool))[0]
    w = _brute_weights(tiny.points, cx, cy)
    np.testing.assert_allclose(np.exp(logw), w, rtol=1e-9, atol=1e-15)
    stimuli = np.array([-4.5, -1.2, 0.0, 0.7, 2.2, 4.9])  # 4.9 puts some cells in the saturated limit
    curve = tiny.curve(stimuli[None])[0]
    p1 = [
        [float(response_probability(tf.constant(theta), tf.constant([x]))[0]) for theta in tiny.points] for x in stimuli
    ]
    for target in ("tsgl", "ts", "gl", "t", "sl", "tsg"):
        axes = ["tsgl".index(k) for k in target]
        got = tiny.information_gain(logw, curve, target)
        want = [_brute_eig(tiny.points, w, p, axes) for p in p1]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7, err_msg=target)


def test_psi_on_all_four_equals_questplus_and_ignores_query_y(task, tiny):
    batch, state = _state(task, 4, 12, 3, horizon=5)
    all_four, targeted = (target_mask(task, t, 4, 0) for t in ("all", "threshold_slope"))
    garbage = batch._replace(query_y=tf.fill(tf.shape(batch.query_y), np.nan))
    scores = {}
    for name, method, mask, b in [
        ("quest", QuestPlusAcquisition(tiny), targeted, batch),
        ("psi_all", PsiMarginalAcquisition(tiny), all_four, batch),
        ("psi_ts", PsiMarginalAcquisition(tiny), targeted, batch),
        ("psi_ts_garbage", PsiMarginalAcquisition(tiny), targeted, garbage),
        ("quest_garbage", QuestPlusAcquisition(tiny), targeted, garbage),
    ]:
        method.start(b, mask, tf.constant([0, 0]))
        scores[name] = method.scores(state)
    np.testing.assert_array_equal(scores["quest"], scores["psi_all"])
    np.testing.assert_array_equal(scores["quest"], scores["quest_garbage"])
    np.testing.assert_array_equal(scores["psi_ts"], scores["psi_ts_garbage"])
    free = ~state.taken.numpy()
    assert np.isfinite(scores["quest"][free]).all() and (scores["quest"][~free] == TAKEN_LOGIT).all()
    assert not np.allclose(scores["quest"][free], scores["psi_ts"][free])
    # mixed targets in one batch: each episode scored for its own target
    mixed = target_mask(task, ["threshold_slope", "guess_lapse", "all", "slope"], 4, 0)
    psi = PsiMarginalAcquisition(tiny)
    psi.start(batch, mixed, tf.constant([0, 0]))
    got = psi.scores(state)
    np.testing.assert_array_equal(got[0], scores["psi_ts"][0])
    np.testing.assert_array_equal(got[2], scores["quest"][2])


@pytest.mark.parametrize("method_cls", [QuestPlusAcquisition, PsiMarginalAcquisition])
def test_run_acquisition_gives_valid_untaken_choices(task, method_cls):
    batch = task.sample_episodes(3, 15, tf.constant([2, 2]), num_initial_context=1)
    mask, used = target_mask(task, "guess_lapse", 3, 0), method_cls(task)
    run = run_acquisition(used, batch, mask, 6, [0, 1])
    assert run.chosen.shape == (6, 3)
    assert ((run.chosen >= 0) & (run.chosen < 15)).all()
    for episode in run.chosen.T:
        assert len(set(episode)) == 6
    assert run.state.context_mask.numpy().all()
    # the scores depend on the state alone: a fresh instance agrees with the one that ran the rollout
    fresh = method_cls(task)
    fresh.start(batch, mask, tf.constant([0, 1]))
    np.testing.assert_array_equal(fresh.scores(run.state), used.scores(run.state))


def test_questplus_queries_near_the_threshold(task):
    grid = PsychometricGrid(task, (21, 11, 5, 5))
    batch = task.sample_episodes(8, 60, tf.constant([9, 9]), num_initial_context=1)
    run = run_acquisition(QuestPlusAcquisition(grid), batch, target_mask(task, "threshold_slope", 8, 0), 12, [0, 0])
    x, threshold = batch.query_x.numpy()[..., 0], batch.theta.numpy()[:, :1]
    chosen = np.take_along_axis(x, run.chosen.T, 1)
    assert np.median(np.abs(chosen - threshold)) < 0.6 * np.median(np.abs(x - threshold))


def test_sample_is_deterministic_and_matches_the_mean(task, tiny):
    batch, state = _state(task, 2, 10, 6)
    logw = tiny.log_posterior(state.context_x, state.context_y, state.context_mask)
    a, b = (tiny.sample(logw, 20_000, tf.constant([3, 1])) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    se = a.std(0) / np.sqrt(len(a))
    assert np.all(np.abs(a.mean(0) - tiny.mean(logw)) < 4 * se + 1e-6)
    marg = tiny.marginal(logw, 0)
    np.testing.assert_allclose(marg @ tiny.values[0], tiny.mean(logw)[:, 0])


@pytest.fixture(scope="module")
def tiny_psychometric_run(tmp_path_factory):
    """A psychometric run trained for seconds (one layer, horizon 6, 20 candidates)."""
    from tfp_aline.config import load_config
    from tfp_aline.training.trainer import Trainer

    overrides = [
        "network.num_layers=1",
        "network.embed_dim=16",
        "network.ff_dim=32",
        "episodes.horizon=6",
        "episodes.num_candidates=20",
        "episodes.batch_size=4",
        "training.epochs=2",
        "training.warmup_epochs=1",
        "training.jit_compile=false",
    ]
    logdir = tmp_path_factory.mktemp("psy-run")
    Trainer(load_config(ROOT / "configs" / "psychometric-cpu.yaml", overrides), logdir).fit(progress=False)
    return logdir


def test_psychometric_figures_script(tiny_psychometric_run, tmp_path):
    spec = importlib.util.spec_from_file_location("psychometric_figures", ROOT / "scripts" / "psychometric_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(["--run", str(tiny_psychometric_run), "--out", str(tmp_path), "--episodes", "3", "--seed", "1"])
    names = {p.name for p in tmp_path.iterdir()}
    assert {"stimuli_by_target.png", "target_switch.png", "stimuli_all_parameters.png"} <= names
    assert not any(n.endswith(".tmp") for n in names)
    assert all((tmp_path / n).stat().st_size > 1000 for n in names)


def test_grid_points_are_cell_midpoints(tiny, task):
    low, high = task.low.numpy(), task.high.numpy()
    for i, n in enumerate(TINY):
        edges = np.linspace(low[i], high[i], n + 1)
        np.testing.assert_allclose(tiny.values[i], (edges[1:] + edges[:-1]) / 2)
    assert len(tiny.points) == np.prod(TINY)
    # C order (threshold, slope, guess, lapse): the last axis varies fastest
    np.testing.assert_array_equal(tiny.points[1], [v[0] for v in tiny.values[:3]] + [tiny.values[3][1]])
