"""Advice on the smoke run: tables, probabilities, targets, quantiles against a grid, and the CLI."""

import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT
from scipy.special import ndtr

from tfp_aline.cli.main import main
from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.history import HistoryWarning

EXAMPLE = ROOT / "data" / "example_person.csv"


@pytest.fixture(scope="module")
def advisor(smoke_run_dir):
    return Advisor.from_run_dir(smoke_run_dir)


@pytest.fixture(scope="module")
def advice(advisor):
    with pytest.warns(HistoryWarning, match="36 older reported day"):
        return advisor.advise(EXAMPLE)


@pytest.fixture
def future_csv(tmp_path):
    days = pd.read_csv(EXAMPLE).drop(columns=["migraine"]).tail(5).copy()
    days["date"] = pd.date_range("2025-05-01", periods=5).strftime("%Y-%m-%d")
    path = tmp_path / "future.csv"
    days.to_csv(path, index=False)
    return path


def quiet(advisor, *args, **kw):
    with pytest.warns(HistoryWarning):
        return advisor.advise(*args, **kw)


def test_tables(advice, advisor):
    frame = pd.read_csv(EXAMPLE)
    unreported_rows = set(np.flatnonzero(frame.migraine.isna()) + 2)
    t = advice.triggers
    assert list(t.columns) == ["parameter", "category", "mean", "sd", "q05", "q95", "prior_mean", "prior_sd"]
    assert len(t) == advisor.task.num_parameters and (t.q05 < t["mean"]).all() and (t["mean"] < t.q95).all()
    assert t.category.iloc[0] == "sleep" and t.category.iloc[-1] == "baseline"
    assert advice.posterior.batch_shape == [advisor.task.num_parameters]
    np.testing.assert_allclose(advice.posterior.mean().numpy(), t["mean"], atol=1e-5)

    assert list(advice.risk.columns) == ["day", "kind", "row", "date", "p_migraine"]
    assert len(advice.risk) == 20 and set(advice.risk.row) == unreported_rows
    assert advice.risk.p_migraine.between(0, 1).all()

    q = advice.next_questions
    assert list(q.columns) == ["rank", "day", "row", "date", "probability", "p_migraine"]
    assert list(q["rank"]) == list(range(1, 21)) and q.probability.is_monotonic_decreasing
    assert q.probability.sum() == pytest.approx(1.0, abs=1e-5)
    assert set(q.row) == unreported_rows  # reported days are never suggested
    assert (advice.used_days, advice.dropped_days, advice.capacity) == (4, 36, 4)


def test_used_days_are_the_most_recent(advice):
    used = advice.inputs["context_x"][0][advice.inputs["context_mask"][0]]
    frame = pd.read_csv(EXAMPLE).dropna(subset=["migraine"])
    np.testing.assert_allclose(used, frame.drop(columns=["date", "migraine"]).tail(4).to_numpy(), rtol=1e-6)


def test_target_switches_policy_not_posterior(advisor, advice):
    sleep = quiet(advisor, EXAMPLE, target="sleep")
    pred = quiet(advisor, EXAMPLE, target="predictive")
    for other in (sleep, pred):
        assert not np.allclose(other.outputs["policy_logits"], advice.outputs["policy_logits"], atol=1e-4)
        np.testing.assert_allclose(other.triggers["mean"], advice.triggers["mean"], atol=1e-5)
    single = quiet(advisor, EXAMPLE, target="Perceived stress (score)")
    assert single.inputs["target_mask"].sum() == 1
    with pytest.raises(TfpAlineError, match="unknown target"):
        advisor.advise(EXAMPLE, target="sleeep")


def test_predictive_with_future_days(advisor, future_csv):
    a = quiet(advisor, EXAMPLE, target="predictive", future_days=future_csv)
    assert list(a.risk.kind) == ["unreported"] * 20 + ["future"] * 5
    assert a.risk.p_migraine.between(0, 1).all() and a.risk.day.iloc[-1] == "2025-05-05"
    mask = a.inputs["target_mask"][0]
    assert mask.sum() == 5 and mask[-5:].all()  # only the coming days are the goal
    b = quiet(advisor, EXAMPLE, target="predictive")
    assert b.inputs["target_mask"][0].sum() == 20
    assert not np.allclose(a.outputs["policy_logits"], b.outputs["policy_logits"], atol=1e-4)
    # The prediction of a day does not depend on which other days are targets.
    np.testing.assert_allclose(a.risk.p_migraine[:20], b.risk.p_migraine, atol=1e-5)


def test_quantiles_match_grid_cdf(advice):
    logits, locs, scales = (
        advice.outputs[k][0, 4].astype(float) for k in ("mixture_logits", "mixture_locs", "mixture_scales")
    )
    w = np.exp(logits - logits.max())
    w /= w.sum()
    x = np.linspace((locs - 10 * scales).min(), (locs + 10 * scales).max(), 400_001)
    cdf = (w * ndtr((x[:, None] - locs) / scales)).sum(-1)
    for p, col in ((0.05, "q05"), (0.95, "q95")):
        assert advice.triggers[col].iloc[4] == pytest.approx(np.interp(p, cdf, x), abs=1e-3)
    assert advice.posterior[4].cdf(advice.triggers.q05.iloc[4]).numpy() == pytest.approx(0.05, abs=1e-4)


def test_nothing_left_to_ask_and_no_context(advisor):
    frame = pd.read_csv(EXAMPLE).fillna({"migraine": 0})
    a = quiet(advisor, frame)
    assert a.next_questions.empty and a.risk.empty and any("nothing left to ask" in w for w in a.warnings)
    b = quiet(advisor, EXAMPLE, max_context=0)  # no reported day used: the network's prior guess
    assert (b.used_days, b.dropped_days) == (0, 40) and len(b.next_questions) == 20
    assert not any("never trained" in w for w in b.warnings)  # step 0 is trained now: no caveat


def test_cli_json_and_table(smoke_run_dir, capsys):
    args = ["advise", "--run", str(smoke_run_dir), "--history", str(EXAMPLE)]
    assert main(args + ["--format", "json", "--target", "sleep"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target"] == "sleep" and len(out["triggers"]) == 21 and len(out["next_questions"]) == 20
    assert out["risk"][0]["date"] == "2025-03-04" and len(out["posterior_mixture"]["mixture_locs"]) == 21
    assert main(args + ["--top", "3"]) == 0
    text = capsys.readouterr().out
    assert "trigger weights" in text and "ask about next (policy probability; top 3 of 20)" in text


def test_cli_bad_csv(smoke_run_dir, tmp_path, capsys):
    frame = pd.read_csv(EXAMPLE, dtype=str, keep_default_na=False)
    frame.loc[6, "Screen time (h)"] = "lots"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    assert main(["advise", "--run", str(smoke_run_dir), "--history", str(tmp_path / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "row 8" in err and "column 'Screen time (h)'" in err


def test_the_check_against_the_exact_posterior(advice, advisor, smoke_run_dir, capsys):
    """The PSIS check: k-hat and ESS of the person's importance weights; the posterior it offers
    (corrected, or Laplace above 0.7) agrees with the Laplace posterior of the same days."""
    from tfp_aline.core.exact import laplace_posterior

    c = advice.check
    assert 0 < c.ess <= c.num_samples == 1000 and np.isfinite(c.khat)
    assert c.posterior == ("corrected" if c.khat <= 0.7 else "Laplace")
    i = advice.inputs
    x = ((i["context_x"] - advisor.table.mean) / advisor.table.std).astype(np.float32)
    lap = laplace_posterior(advisor.task, x, i["context_y"][..., None], i["context_mask"])
    mode, sd = lap.loc.numpy()[0], lap.stddev().numpy()[0]
    np.testing.assert_allclose(c.parameters["mean"], mode, atol=0.25 * sd.max())
    np.testing.assert_allclose(c.parameters["sd"], sd, rtol=0.25)
    assert main(["advise", "--run", str(smoke_run_dir), "--history", str(EXAMPLE), "--format", "json"]) == 0
    got = json.loads(capsys.readouterr().out)["check"]
    assert (
        got["khat"] == pytest.approx(c.khat)
        and got["posterior"] == c.posterior
        and len(got["parameters"]) == advisor.task.num_parameters
    )
    assert main(["advise", "--run", str(smoke_run_dir), "--history", str(EXAMPLE)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("check: PSIS k-hat")]
    assert lines == [c.line()]
