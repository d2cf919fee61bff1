"""Ticket 001's validation checklist as tests, and the files written by generate-mock."""

import json
import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from tfp_aline.migraine import mock_distribution as mock_mod
from tfp_aline.migraine.task import MigraineModelConfig, MigraineTask


@pytest.fixture(scope="module")
def mock(task):
    return mock_mod.generate_mock_distribution(task, n=5000, seed=3)


def test_correlation_signs_follow_impact_directions(task, mock):
    names = mock["features"]
    sleep, stress = names.index("Sleep duration (h)"), names.index("Perceived stress (score)")
    sample_corr = np.corrcoef(mock["samples"], rowvar=False)
    assert sample_corr[sleep, stress] < -0.05  # less sleep goes with more stress
    s = task.table.direction
    off = ~np.eye(len(names), dtype=bool)
    # the model's correlation has the sign of s_j s_k everywhere ...
    assert np.all(np.sign(mock["corr_prior"][off]) == np.outer(s, s)[off])
    # ... and the simulated days show it for the strongly coupled pairs (|C| > 0.1)
    strong = off & (np.abs(mock["corr_prior"]) > 0.1)
    assert np.all(np.sign(sample_corr[strong]) == np.sign(mock["corr_prior"][strong]))
    np.testing.assert_allclose(sample_corr[strong], mock["corr_prior"][strong], atol=0.06)


def test_correlation_is_positive_definite_and_rho_is_validated(task):
    assert np.linalg.eigvalsh(task.correlation).min() > 0
    assert np.linalg.eigvalsh(MigraineTask(config=MigraineModelConfig(correlation=0.99)).correlation).min() > 0
    with pytest.raises(Exception, match="correlation"):
        MigraineModelConfig(correlation=1.0)


def _is_unimodal(values, bins=10):
    """No bin rises above its neighbour on the far side of the mode by more than 3 Poisson SDs."""
    counts, _ = np.histogram(values, bins=bins, range=(0, 1))
    mode = int(np.argmax(counts))
    tol = lambda c: 3 * np.sqrt(max(c, 1))  # noqa: E731
    right = all(counts[i] <= counts[i - 1] + tol(counts[i - 1]) for i in range(mode + 1, bins))
    left = all(counts[i] <= counts[i + 1] + tol(counts[i + 1]) for i in range(mode))
    return left and right


def test_p_migraine_inside_unit_interval_and_unimodal(mock):
    p = mock["p_migraine"]
    assert np.all((p > 0) & (p < 1))
    assert _is_unimodal(p)
    # the check can fail: a two-humped sample is rejected
    assert not _is_unimodal(np.r_[np.full(3000, 0.05), np.full(500, 0.5), np.full(3000, 0.95)])


def test_base_rate_matches_configuration(mock):
    rate = mock["migraine"].mean()
    se = np.sqrt(0.15 * 0.85 / len(mock["migraine"]))  # days are independent: a new person per day
    assert abs(rate - 0.15) < 4 * se


def test_mock_posterior_moves_in_risk_direction_for_heaviest_factors(task, mock):
    shift = (mock["mu_post"] - mock["mu_prior"]) / task.table.std
    n_pos = mock["migraine"].sum()
    heaviest = np.argsort(-task.table.weight)[:5]
    for i in heaviest:
        # more than 4 standard errors of a mean of n_pos standardised values, in the risk direction
        assert shift[i] * task.table.direction[i] > 4 / np.sqrt(n_pos), mock["features"][i]


def test_mock_prior_is_the_model_in_raw_units(task, mock):
    np.testing.assert_allclose(mock["mu_prior"], task.table.mean)
    np.testing.assert_allclose(np.sqrt(np.diag(mock["Sigma_prior"])), task.table.std)
    z_mean = (mock["samples"].mean(0) - task.table.mean) / task.table.std
    assert np.all(np.abs(z_mean) < 4 / np.sqrt(5000))


def test_files_load_back_identical(mock, tmp_path):
    paths = mock_mod.save_mock_distribution(mock, tmp_path)
    assert sorted(p.name for p in paths) == sorted(
        [
            "mock_distribution.pkl",
            "mock_distribution.npz",
            "mock_distribution.json",
            "mock_distribution.csv",
            "mock_correlation.png",
        ]
    )
    with open(tmp_path / "mock_distribution.pkl", "rb") as f:
        from_pkl = pickle.load(f)
    from_npz = mock_mod.load_npz(tmp_path / "mock_distribution.npz")
    for key in mock_mod.ARRAY_KEYS:
        np.testing.assert_array_equal(from_pkl[key], mock[key])
        np.testing.assert_array_equal(from_npz[key], mock[key])
    assert from_npz["features"] == mock["features"] == from_pkl["features"]
    assert from_npz["settings"] == json.loads(json.dumps(mock["settings"]))
    frame = pd.read_csv(tmp_path / "mock_distribution.csv")
    assert list(frame.columns) == mock["features"] + ["p_migraine", "migraine"]
    np.testing.assert_array_equal(frame[mock["features"]].to_numpy(), mock["samples"])
    np.testing.assert_array_equal(frame["p_migraine"].to_numpy(), mock["p_migraine"])
    np.testing.assert_array_equal(frame["migraine"].to_numpy(), mock["migraine"])
    assert (tmp_path / "mock_correlation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_failed_save_leaves_existing_files_untouched(mock, tmp_path, monkeypatch):
    old = tmp_path / "mock_distribution.csv"
    old.write_text("previous run\n")

    def broken(_):
        raise RuntimeError("disk full")

    monkeypatch.setattr(mock_mod, "_heatmap_png", broken)
    with pytest.raises(RuntimeError):
        mock_mod.save_mock_distribution(mock, tmp_path)
    assert old.read_text() == "previous run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mock_distribution.csv"]


def test_same_seed_same_mock_different_seed_different(task, mock):
    again = mock_mod.generate_mock_distribution(task, n=5000, seed=3)
    np.testing.assert_array_equal(again["samples"], mock["samples"])
    other = mock_mod.generate_mock_distribution(task, n=5000, seed=4)
    assert not np.array_equal(other["samples"], mock["samples"])


def test_generate_mock_command_end_to_end(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfp_aline",
            "generate-mock",
            "--out",
            str(tmp_path),
            "--n",
            "400",
            "--seed",
            "1",
            "--table",
            str(ROOT / "data" / "migraine_prediction.xlsx"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "base rate" in proc.stdout and "strongest factors" in proc.stdout
    frame = pd.read_csv(tmp_path / "mock_distribution.csv")
    assert len(frame) == 400 and not list(tmp_path.glob(".*tmp"))
