"""A model from outside the package: examples/location_finding.py, named in a config by import path.

Checks the TFP pieces against the formulas by hand, the episode shapes and the unit box, and that
a config loads it, refuses an unknown option (naming the key) and refuses predictive targets with
one line. No training and no MCMC here, so the file runs in seconds.
"""

import math

import numpy as np
import pytest
import tensorflow as tf
import yaml
from conftest import ROOT

# The example lives in the repository, not in the installed package: pytest puts the root on
# sys.path (`pythonpath` in pyproject.toml), as `python -m tfp_aline` run from the root does.
from examples.location_finding import LocationFindingOptions, LocationFindingTask
from tfp_aline.config import load_config
from tfp_aline.errors import ConfigError
from tfp_aline.tasks.registry import build_task

CLASS = "examples.location_finding:LocationFindingTask"
CONFIG = ROOT / "configs" / "location-finding.yaml"


def write_config(tmp_path, task_section):
    """configs/location-finding.yaml with its `task:` section replaced -> path of the copy."""
    raw = yaml.safe_load(CONFIG.read_text())
    raw["task"] = task_section
    path = tmp_path / "lf.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_not_part_of_the_package():
    import tfp_aline.tasks.registry as registry

    assert not LocationFindingTask.__module__.startswith("tfp_aline")
    assert CLASS not in registry.installed_tasks().values()


def test_log_posterior_is_prior_plus_likelihood_by_hand():
    task = LocationFindingTask(LocationFindingOptions(noise_sd=0.3, background=0.2, strength=2.0, max_signal=1e-2))
    theta = np.array([[0.25, 0.7]])  # [B=1, L=2]
    x = np.array([[[0.2, 0.7], [0.9, 0.1], [0.5, 0.5]]])  # [B, n=3, Dx=2]
    y = np.array([[[4.0], [-1.0], [0.5]]])  # [B, n, Dy=1]
    mask = np.array([[True, True, False]])  # the third point is not observed

    def by_hand(use):
        total = 0.0  # log of the Uniform[0, 1]^2 density inside the box
        for (px, py), yi, keep in zip(x[0], y[0, :, 0], use):
            mu = 0.2 + 2.0 / (1e-2 + (theta[0, 0] - px) ** 2 + (theta[0, 1] - py) ** 2)
            z = (yi - math.log(mu)) / 0.3
            total += keep * (-0.5 * z * z - math.log(0.3) - 0.5 * math.log(2 * math.pi))
        return total

    f32 = lambda a: tf.constant(a, tf.float32)  # noqa: E731
    got = task.log_posterior(f32(theta), f32(x), f32(y), tf.constant(mask)).numpy()
    np.testing.assert_allclose(got, [by_hand(mask[0])], rtol=1e-5)
    got_all = task.log_posterior(f32(theta), f32(x), f32(y)).numpy()
    np.testing.assert_allclose(got_all, [by_hand([True, True, True])], rtol=1e-5)
    # Outside the unit box the prior, and so the posterior, is zero.
    assert task.log_posterior(f32([[1.2, 0.5]]), f32(x), f32(y)).numpy()[0] == -np.inf


def test_episodes_have_the_right_shapes_and_lie_in_the_unit_box():
    task = LocationFindingTask()
    batch = task.sample_episodes(6, 40, seed=tf.constant([3, 4]), num_initial_context=2)
    assert batch.theta.shape == (6, 2)
    assert batch.context_x.shape == (6, 2, 2) and batch.context_y.shape == (6, 2, 1)
    assert batch.query_x.shape == (6, 40, 2) and batch.query_y.shape == (6, 40, 1)
    assert batch.target_x.shape == (6, 0, 2) and batch.target_y.shape == (6, 0, 1)
    for v in (batch.theta, batch.context_x, batch.query_x):
        v = v.numpy()
        assert np.all((v >= 0) & (v <= 1))
    # Outcomes are continuous log intensities around log mu with noise sd 0.5.
    o = task.options
    residual = batch.query_y.numpy()[..., 0] - np.log(
        o.background
        + o.strength / (o.max_signal + ((batch.theta.numpy()[:, None] - batch.query_x.numpy()) ** 2).sum(-1))
    )
    assert abs(residual.mean()) < 0.15 and 0.4 < residual.std() < 0.6
    # The same seed gives the same episodes (stateless sampling).
    again = task.sample_episodes(6, 40, seed=tf.constant([3, 4]), num_initial_context=2)
    np.testing.assert_array_equal(again.query_y.numpy(), batch.query_y.numpy())


def test_config_names_the_class_by_import_path():
    cfg = load_config(CONFIG)
    assert cfg.task.name == CLASS and cfg.task.by_path
    assert cfg.task.to_dict() == {
        "class": CLASS,
        "noise_sd": 0.5,
        "background": 0.1,
        "strength": 1.0,
        "max_signal": 1e-4,
    }
    task = build_task(cfg.task)
    assert isinstance(task, LocationFindingTask) and task.outcome == "continuous"
    assert task.parameter_names == ("source_x", "source_y") and task.parameter_indices("source") == (0, 1)
    assert cfg.episodes.horizon == 30 and cfg.target_names == ("all",)


def test_options_from_the_config(tmp_path):
    cfg = load_config(write_config(tmp_path, {"class": CLASS, "noise_sd": "2e-1", "max_signal": 1e-3}))
    task = build_task(cfg.task)
    assert (task.options.noise_sd, task.options.max_signal, task.options.strength) == (0.2, 1e-3, 1.0)


@pytest.mark.parametrize(
    "section,expected",
    [
        (
            {"class": CLASS, "noise": 0.5},
            "task.noise: unknown key for task 'examples.location_finding:LocationFindingTask' "
            "(its options: noise_sd, background, strength, max_signal)",
        ),
        ({"class": CLASS, "noise_sd": -1.0}, "task.noise_sd = -1.0: expected a positive number"),
        ({"class": CLASS, "strength": "strong"}, "task.strength: expected a number"),
        (
            {"class": "examples.location_finding:NoSuchTask"},
            "'NoSuchTask' in examples.location_finding is not a tfp_aline Task",
        ),
    ],
)
def test_bad_task_sections_fail_naming_the_key(tmp_path, section, expected):
    with pytest.raises(ConfigError) as e:
        load_config(write_config(tmp_path, section))
    assert expected in str(e.value) and "lf.yaml" in str(e.value)


@pytest.mark.parametrize(
    "overrides",
    [
        ["episodes.num_predictive_targets=5"],
        ["episodes.num_predictive_targets=5", "targets={all: 0.5, predictive: 0.5}"],
    ],
)
def test_predictive_targets_fail_with_one_clear_line(overrides):
    with pytest.raises(ConfigError) as e:
        load_config(CONFIG, overrides)
    message = str(e.value)
    assert "\n" not in message
    assert "location-finding.yaml" in message and "continuous outcomes" in message and "parameter targets" in message


@pytest.mark.slow
def test_random_designs_reproduce_the_papers_spce():
    """The paper's Table 2 protocol for random designs: 2000 sources, T = 30 uniform designs,
    L = 1e6 contrastive draws; the paper reports 5.17 +- 0.05. About 10 minutes on one core."""
    from tfp_aline.evaluation.metrics import summarize
    from tfp_aline.evaluation.spce import contrastive_bounds

    task = LocationFindingTask()
    b = task.sample_episodes(2000, 30, seed=tf.constant([0, 2000]))
    r = contrastive_bounds(task, b.theta, b.query_x, b.query_y, num_contrastive=1_000_000, seed=(0, 0x5BCE))
    mean, low, high, n = summarize(r.spce)
    print(f"\nrandom designs, 2000 sources, L = 1e6: sPCE {mean:.3f} [{low:.3f}, {high:.3f}] (paper 5.17 +- 0.05)")
    assert n == 2000
    assert abs(mean - 5.17) <= (high - low) / 2 + 0.05, (mean, low, high)
    assert np.all(r.spce <= math.log(1_000_001) + 1e-9)


def _people(num, n, near, seed=0):
    """Sources, designs and outcomes: the last `near` people measured mostly close to their source
    (sharp posteriors, as after a policy's queries), the others at uniform points."""
    task = LocationFindingTask()
    rng = np.random.default_rng(seed)
    theta = rng.random((num, 2))
    x = rng.random((num, n, 2))
    x[num - near :, n // 3 :] = np.clip(
        theta[num - near :, None] + 0.02 * rng.standard_normal((near, n - n // 3, 2)), 0, 1
    )
    y = task.simulate_outcomes(tf.constant(theta, tf.float32), tf.constant(x, tf.float32), seed=tf.constant([seed, 1]))
    return task, x.astype(np.float32), y.numpy(), np.ones((num, n), bool)


def _brute_force_moments(task, x, y, mask, cells=2048):
    """Posterior mean and sd [2] of one person on a uniform grid of cells x cells."""
    u = (np.arange(cells) + 0.5) / cells
    grid = np.stack(np.meshgrid(u, u, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    logp = np.concatenate(
        [task.log_posterior(grid[i : i + 2**20, None], x, y, mask).numpy()[:, 0] for i in range(0, len(grid), 2**20)]
    ).astype(np.float64)
    w = np.exp(logp - logp.max())
    w /= w.sum()
    mean = w @ grid
    return mean, np.sqrt(w @ (grid - mean) ** 2)


def test_grid_reference_matches_a_brute_force_grid():
    """Wide (uniform designs), sharp (designs near the source) and prior-only posteriors: the
    self-refining grid's mean and sd equal a uniform 2048 x 2048 grid's; draws follow its weights."""
    from examples.location_finding_grid import grid_posterior, grid_posterior_mean, grid_posterior_samples

    task, x, y, mask = _people(4, 20, near=2)
    mask[0] = False  # no data: the prior, Uniform[0, 1]^2
    centres, side, weights = grid_posterior(task, x, y, mask)
    assert centres.shape[:2] == weights.shape and np.allclose(weights.sum(1), 1.0)
    assert side[0] == 1 / 128 and side[-1] < side[1]  # the prior stays coarse, a sharp posterior is refined
    mean = grid_posterior_mean(task, x, y, mask)
    sd = np.sqrt(np.einsum("bc,bcd->bd", weights, (centres - mean[:, None]) ** 2))
    np.testing.assert_allclose(mean[0], [0.5, 0.5], atol=1e-9)
    np.testing.assert_allclose(sd[0], [(1 / 12 - 1 / (12 * 128**2)) ** 0.5] * 2, rtol=1e-9)  # midpoint rule
    for i in range(1, 4):
        want_mean, want_sd = _brute_force_moments(task, x[i : i + 1], y[i : i + 1], mask[i : i + 1])
        assert sd[i].max() < 0.05 and (i < 2 or sd[i].max() < 0.01)
        np.testing.assert_allclose(mean[i], want_mean, atol=0.02 * want_sd.min())
        np.testing.assert_allclose(sd[i], want_sd, rtol=0.02)
    draws = grid_posterior_samples(task, x, y, mask, 20000, (0, 1))
    assert draws.shape == (20000, 4, 2) and draws.min() >= 0 and draws.max() <= 1
    np.testing.assert_allclose(draws.mean(0), mean, atol=4 * sd.max() / np.sqrt(20000))
    np.testing.assert_allclose(draws.std(0), sd, rtol=0.03)
    again = grid_posterior_samples(task, x, y, mask, 20000, (0, 1))
    np.testing.assert_array_equal(draws, again)


def test_the_task_hands_evaluation_its_grid():
    task, x, y, mask = _people(2, 10, near=1)
    assert task.reference_name == "grid"
    ref = task.reference_posterior(x, y, mask, 100, tf.constant([0, 3]))
    assert ref.nuts is None and ref.unconverged is None and np.asarray(ref.samples).shape == (100, 2, 2)
    from examples.location_finding_grid import grid_posterior_mean

    np.testing.assert_array_equal(task.reference_mean(x, y, mask, None), grid_posterior_mean(task, x, y, mask))
