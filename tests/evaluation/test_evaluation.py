"""Evaluation: metrics against hand computations, EIG/EPIG against a brute-force grid, the acquisition
loop, and a whole `tfp-aline evaluate` on the smoke run."""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from scipy import stats

from tfp_aline.evaluation import metrics as M
from tfp_aline.migraine.gaussian_eig import eig_parameters, epig, mean_sigmoid


# ---- metrics by hand ---------------------------------------------------------------------------
def test_rmse_and_coverage_by_hand():
    theta = np.array([[0.0, 1.0, 5.0]])
    mask = np.array([[True, True, False]])
    assert M.rmse_mean(np.array([[1.0, 3.0, 0.0]]), theta, mask)[0] == pytest.approx(np.sqrt((1 + 4) / 2))
    samples = np.array([[[1.0, 1.0, 0.0]], [[-1.0, 3.0, 0.0]]])  # [S=2, B=1, L=3]
    # squared errors: param 0 -> (1 + 1)/2 = 1; param 1 -> (0 + 4)/2 = 2; mean 1.5
    assert M.rmse_sample(samples, theta, mask)[0] == pytest.approx(np.sqrt(1.5))
    # the paper's: per parameter sqrt(1) and sqrt(2), then their mean
    assert M.rmse_paper(samples, theta, mask)[0] == pytest.approx((1 + np.sqrt(2)) / 2)
    # clipped to the box [-0.5, 2.5] first: param 0 samples (1, -0.5) -> errors 1, 0.5;
    # param 1 samples (1, 2.5) -> errors 0, 1.5
    support = (np.array([-0.5, -0.5, -0.5]), np.array([2.5, 2.5, 2.5]))
    want = (np.sqrt((1 + 0.25) / 2) + np.sqrt((0 + 2.25) / 2)) / 2
    assert M.rmse_paper(samples, theta, mask, support)[0] == pytest.approx(want)
    # importance weights: uniform ones change nothing, a weight of 1 on one draw is its own error
    assert M.rmse_paper(samples, theta, mask, weights=np.full((1, 2), 0.5))[0] == pytest.approx((1 + np.sqrt(2)) / 2)
    assert M.rmse_paper(samples, theta, mask, weights=np.array([[0.0, 1.0]]))[0] == pytest.approx((1 + 2) / 2)
    # weights 1/4, 3/4: param 0 errors 1, 1 -> 1; param 1 errors 0, 2 -> sqrt(3/4 * 4) = sqrt(3)
    quarter = np.array([[0.25, 0.75]])
    assert M.rmse_paper(samples, theta, mask, weights=quarter)[0] == pytest.approx((1 + np.sqrt(3)) / 2)
    draws = np.linspace(-1, 1, 1001)[:, None, None] * np.ones((1, 1, 3))
    # central 50% of U-like draws on [-1, 1] is [-0.5, 0.5]: 0 inside, 1 outside, 5 masked
    assert M.interval_coverage(draws, theta, mask, 0.5)[0] == 0.5
    assert M.coverage_from_cdf(np.array([[0.5, 0.97, 0.5]]), mask, 0.9)[0] == 0.5
    assert M.coverage_from_cdf(np.array([[0.5, 0.94, 0.0]]), mask, 0.9)[0] == 1.0


def test_predictive_scores_by_hand():
    p = np.array([[0.9, 0.2], [0.6, 0.6]])
    y = np.array([[1.0, 0.0], [0.0, 1.0]])
    np.testing.assert_allclose(M.log_loss(p, y), [-(np.log(0.9) + np.log(0.8)) / 2, -(np.log(0.4) + np.log(0.6)) / 2])
    np.testing.assert_allclose(M.brier(p, y), [(0.01 + 0.04) / 2, (0.36 + 0.16) / 2])
    # AUC = share of (positive, negative) pairs ranked correctly, ties half: positives 0.9, 0.6;
    # negatives 0.2, 0.6 -> pairs (0.9>0.2) (0.9>0.6) (0.6>0.2) (0.6=0.6 half) = 3.5 / 4
    assert M.auc(p, y) == pytest.approx(3.5 / 4)
    assert np.isnan(M.auc(p, np.zeros_like(y)))


def test_sbc_ranks_and_summary():
    samples = np.arange(10.0)[:, None, None] * np.ones((1, 2, 2))  # 0..9 for every pair
    theta = np.array([[3.5, 100.0], [-1.0, 9.5]])
    ranks = M.sbc_ranks(samples, theta, np.array([[True, True], [True, False]]))
    np.testing.assert_array_equal(ranks, [4, 10, 0])
    mean, lo, hi, n = M.summarize([1.0, 2.0, 3.0, np.nan])
    half = 1.959964 * 1.0 / np.sqrt(3)
    assert (mean, n) == (2.0, 3) and lo == pytest.approx(2 - half, rel=1e-5) and hi == pytest.approx(2 + half, rel=1e-5)


def test_sbc_uniformity_pvalue_separates_uniform_from_skewed():
    rng = np.random.default_rng(0)
    assert M.sbc_uniformity_pvalue(rng.integers(0, 100, 4000), 99) > 0.01
    assert M.sbc_uniformity_pvalue(rng.binomial(99, 0.3, 4000), 99) < 1e-6


def test_sbc_ecdf_band_is_arviz_band_and_the_test_agrees_with_it():
    """The simultaneous 99% band equals ArviZ's optimised band (Säilynoja et al. 2022) to within one
    rank count, and p < 0.01 exactly when the ECDF leaves the band."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from arviz.stats.ecdf_utils import ecdf_confidence_band

    k, s = 300, 49
    z, lo, hi = M.sbc_ecdf_band(k, s, 0.99)
    alo, ahi = ecdf_confidence_band(k, z, z, prob=0.99, method="optimized")
    np.testing.assert_allclose(lo, alo, atol=1.01 / k)
    np.testing.assert_allclose(hi, ahi, atol=1.01 / k)
    rng = np.random.default_rng(3)
    samples = [rng.integers(0, s + 1, k) for _ in range(100)] + [rng.binomial(s, 0.45, k) for _ in range(20)]
    for ranks in samples:
        _, ecdf = M.sbc_ecdf(ranks, s)
        inside = np.all((ecdf >= lo) & (ecdf <= hi))
        assert inside == (M.sbc_ecdf_pvalue(ranks, s) >= 0.01)


def test_sbc_ecdf_test_is_calibrated_and_sees_overconfidence():
    rng = np.random.default_rng(4)
    p = np.array([M.sbc_ecdf_pvalue(rng.integers(0, 100, 500), 99) for _ in range(400)])
    # uniform ranks: p is uniform, so about 1% below 0.01 and 10% below 0.1 (binomial sd 0.5% and 1.5%)
    assert (p < 0.01).mean() < 0.03 and 0.06 < (p < 0.1).mean() < 0.14
    # an over-confident posterior piles the ranks at both ends: a U shape, rejected
    u = rng.beta(0.7, 0.7, 500)
    assert M.sbc_ecdf_pvalue(np.floor(u * 100).astype(int), 99) < 1e-3


def test_coverage_curve_by_hand():
    cdf = np.array([[0.5, 0.02], [0.7, 0.99]])  # |u - 0.5| = 0, 0.48, 0.2, 0.49
    mask = np.array([[True, True], [True, False]])
    np.testing.assert_allclose(M.coverage_curve(cdf, mask, [0.0, 0.3, 0.4, 0.97, 1.0]), [1 / 3, 1 / 3, 2 / 3, 1, 1])


# ---- information gain against a brute-force grid -----------------------------------------------
def _grid(mean, cov, n=401, width=8.0):
    """Dense grid over a 2-D Gaussian: points [G, 2], normalised weights [G]."""
    sd = np.sqrt(np.diag(cov))
    axes = [np.linspace(mean[i] - width * sd[i], mean[i] + width * sd[i], n) for i in range(2)]
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    w = stats.multivariate_normal(mean, cov).pdf(pts)
    return pts, w / w.sum(), axes


def _h(p):
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


GAUSS = dict(mean=np.array([0.4, -1.0]), cov=np.array([[0.8, 0.3], [0.3, 0.5]]))


@pytest.mark.parametrize("x", [-1.5, 0.3, 2.0])
def test_eig_matches_brute_force_grid(x):
    mean, cov = GAUSS["mean"], GAUSS["cov"]
    a = np.array([x, 1.0])  # logit = w x + b
    pts, w, axes = _grid(mean, cov)
    p = 1 / (1 + np.exp(-(pts @ a)))
    bald = _h(w @ p) - w @ _h(p)
    # about w alone: p(y | w) averages over b given w on the grid
    n = len(axes[0])
    wg, pg = w.reshape(n, n), p.reshape(n, n)
    p_given_w = (wg * pg).sum(1) / wg.sum(1)
    eig_w = _h(w @ p) - wg.sum(1) @ _h(p_given_w)
    got_all = eig_parameters(mean[None], cov[None], a[None, None], np.array([[True, True]]))[0, 0]
    got_w = eig_parameters(mean[None], cov[None], a[None, None], np.array([[True, False]]))[0, 0]
    assert got_all == pytest.approx(bald, abs=2e-4)
    assert got_w == pytest.approx(eig_w, abs=2e-4)
    assert got_w < got_all


def test_epig_matches_brute_force_grid():
    mean, cov = GAUSS["mean"], GAUSS["cov"]
    a = np.array([[[1.2, 1.0], [-0.5, 1.0]]])  # two candidates
    a_star = np.array([[[0.8, 1.0], [2.0, 1.0], [-1.0, 1.0]]])  # three target days
    pts, w, _ = _grid(mean, cov)
    p = 1 / (1 + np.exp(-(pts @ a[0].T)))  # [G, 2]
    ps = 1 / (1 + np.exp(-(pts @ a_star[0].T)))  # [G, 3]
    want = np.zeros(2)
    for i in range(2):
        for j in range(3):
            mi = 0.0
            for y in (0, 1):
                for ys in (0, 1):
                    py = p[:, i] if y else 1 - p[:, i]
                    pys = ps[:, j] if ys else 1 - ps[:, j]
                    joint, m1, m2 = w @ (py * pys), w @ py, w @ pys
                    mi += joint * np.log(joint / (m1 * m2))
            want[i] += mi / 3
    np.testing.assert_allclose(epig(mean[None], cov[None], a, a_star)[0], want, atol=2e-4)


def test_mean_sigmoid_matches_quadrature():
    from scipy import integrate

    want = integrate.quad(lambda z: stats.norm.pdf(z, 0.7, 1.3) / (1 + np.exp(-z)), -20, 20)[0]
    assert mean_sigmoid(0.7, 1.3**2) == pytest.approx(want, abs=1e-6)


# ---- the acquisition loop ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def smoke(smoke_run_dir):
    from tfp_aline.runs import load_run

    return load_run(smoke_run_dir)


def test_policy_acquisition_matches_the_greedy_training_rollout(smoke, seed):
    from tfp_aline.core.acquisition import PolicyAcquisition, run_acquisition
    from tfp_aline.core.choice import choice_noise
    from tfp_aline.core.rollout import rollout
    from tfp_aline.core.targets import target_mask

    cfg, task, model = smoke.cfg, smoke.task, smoke.model
    e = cfg.episodes
    batch = task.sample_episodes(5, e.num_candidates, seed=seed, num_predictive_targets=e.num_predictive_targets)
    tmask = target_mask(task, "sleep", 5, e.num_predictive_targets)
    noise = choice_noise(seed, e.horizon, 5, e.num_candidates)
    want = rollout(model, batch, tmask, e.horizon, "greedy", noise).chosen.numpy()
    got = run_acquisition(PolicyAcquisition(model), batch, tmask, e.horizon, [0, 1])
    np.testing.assert_array_equal(got.chosen, want)
    assert got.seconds.shape == (e.horizon,)


@pytest.mark.parametrize("name", ["random", "uncertainty", "greedy-eig", "greedy-epig"])
def test_baselines_choose_distinct_candidates_without_peeking(smoke, seed, name):
    from tfp_aline.core.acquisition import run_acquisition
    from tfp_aline.core.targets import target_mask
    from tfp_aline.evaluation.evaluate import make_method

    task, e = smoke.task, smoke.cfg.episodes
    batch = task.sample_episodes(4, e.num_candidates, seed=seed, num_predictive_targets=e.num_predictive_targets)
    tmask = target_mask(task, "predictive" if name == "greedy-epig" else "all", 4, e.num_predictive_targets)
    first = run_acquisition(make_method(name, smoke), batch, tmask, e.horizon, [3, 4]).chosen
    for b in range(4):
        assert len(set(first[:, b])) == e.horizon  # never the same candidate twice
    # Hidden outcomes of the pool are never read: garbage there changes no choice before it is observed.
    garbage = batch._replace(query_y=tf.fill(tf.shape(batch.query_y), np.nan))
    method = make_method(name, smoke)
    method.start(garbage, tmask, tf.constant([3, 4]))
    from tfp_aline.core.rollout_state import initial_state

    np.testing.assert_array_equal(np.argmax(method.scores(initial_state(garbage, e.horizon)), -1), first[0])


# ---- the whole command --------------------------------------------------------------------------
def test_evaluate_command_writes_every_report_file(smoke_run_dir, tmp_path):
    _check_evaluate(smoke_run_dir, tmp_path / "eval", nuts_people=0)


@pytest.mark.slow
def test_evaluate_command_with_the_nuts_check(smoke_run_dir, tmp_path):
    df = _check_evaluate(smoke_run_dir, tmp_path / "eval", nuts_people=2)
    nuts = df[df.metric.str.contains("nuts")]
    assert {"rmse_mean_nuts", "rmse_mean_reference_nuts_people", "rmse_mean_amortized_nuts_people"} <= set(nuts.metric)
    # the Laplace reference and NUTS agree closely on the same people
    got = nuts.set_index("metric")["mean"]
    assert abs(got["rmse_mean_nuts"] - got["rmse_mean_reference_nuts_people"]) < 0.05


def _check_evaluate(smoke_run_dir, out, nuts_people):
    import shutil

    from tfp_aline.cli.main import main

    # evaluate writes TensorBoard curves into the run dir: work on a copy of the shared run
    smoke_run_dir = shutil.copytree(smoke_run_dir, out.parent / "run")
    code = main(
        [
            "evaluate",
            "--run",
            str(smoke_run_dir),
            "--episodes",
            "12",
            "--baseline-episodes",
            "4",
            "--targets",
            "all",
            "predictive",
            "--nuts-people",
            str(nuts_people),
            "--out",
            str(out),
            "--seed",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    df = pd.read_csv(out / "metrics.csv")
    assert list(df.columns) == ["method", "target", "step", "metric", "mean", "ci_low", "ci_high", "n"]
    assert set(df.method) == {"policy", "random", "uncertainty", "greedy-eig", "greedy-epig", "oracle", "prior"}
    assert set(df.step) == set(range(0, 5))
    for metric in (
        "log_q",
        "rmse_mean",
        "rmse_paper",
        "coverage50",
        "coverage90",
        "rmse_mean_exact",
        "log_loss",
        "brier",
        "auc",
        "ms_per_decision",
        "log_q_gain_vs_random",
    ):
        assert metric in set(df.metric), metric
    assert np.isfinite(df["mean"]).all()
    assert not set(df[df.target == "predictive"].method) & {"greedy-eig"}
    assert (df[df.metric.str.startswith("coverage")]["mean"].between(0, 1)).all()
    report = (out / "report.md").read_text()
    assert "## Target `all`" in report and "## Simulation-based calibration" in report
    assert f"    tfp-aline evaluate --run {smoke_run_dir} --episodes 12 " in report  # the command as typed
    assert "(for this task: Laplace)" in report  # the task names its reference posterior
    calibration = df[df.metric == "sbc_ecdf_p"]
    assert set(zip(calibration.method, calibration.step)) == {(m, t) for m in ("policy", "random") for t in (0, 2, 4)}
    assert calibration["mean"].between(0, 1).all() and "| all | random | 4 |" in report
    assert df[df.metric == "psis_khat_above_0.7"]["mean"].between(0, 1).all()
    # what a user is given: corrected where k-hat <= 0.7, the reference where not, for every method and step
    checked = df[df.metric == "rmse_paper_checked"]
    assert len(checked) == len(df[df.metric == "rmse_mean_checked"]) > 0 and (checked["mean"] >= 0).all()
    assert set(df[df.metric == "psis_khat_above_0.7"].step) == set(range(0, 5))
    for png in ("all_log_q.png", "predictive_log_loss.png", "sbc.png", "coverage.png", "coverage_levels.png"):
        assert (out / png).stat().st_size > 1000
    assert list((smoke_run_dir / "eval").glob("events.out.tfevents.*"))
    return df


def test_evaluate_rejects_unknown_method_and_target(smoke_run_dir, tmp_path, capsys):
    from tfp_aline.cli.main import main

    assert main(["evaluate", "--run", str(smoke_run_dir), "--methods", "questplus", "--out", str(tmp_path)]) == 2
    assert "questplus" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(smoke_run_dir), "--targets", "sleeep", "--out", str(tmp_path)]) == 2
    assert "sleeep" in capsys.readouterr().err
    assert main(["evaluate", "--run", str(tmp_path / "nope")]) == 2
    assert "run directory not found" in capsys.readouterr().err
