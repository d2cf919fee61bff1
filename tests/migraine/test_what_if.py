"""What-if risk: parsing the changes, the risk against a direct computation, and `advise --what-if`
with and without a joint head."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.config import load_config
from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.history import HistoryWarning, read_history
from tfp_aline.migraine.what_if import parse_changes, what_if_risk
from tfp_aline.training.trainer import Trainer

EXAMPLE = ROOT / "data" / "example_person.csv"
SLEEP = "Sleep duration (h)"


@pytest.fixture(scope="module")
def joint_run(tmp_path_factory):
    cfg = load_config(ROOT / "configs" / "smoke.yaml", ["network.joint=mixture_tril", "training.epochs=2"])
    return Trainer(cfg, tmp_path_factory.mktemp("joint-run")).fit(progress=False).logdir


@pytest.fixture(scope="module")
def table(smoke_run_dir):
    return Advisor.from_run_dir(smoke_run_dir).table


def test_changes_are_read_by_csv_header_rules(table):
    a, b, c = parse_changes(["sleep duration+=1", "Perceived_Stress (score) -= 2.5", "caffeine (mg)=0"], table)
    names = list(table.names)
    assert (a.feature, a.how, a.value) == (names.index(SLEEP), "add", 1.0)
    assert (b.feature, b.how, b.value) == (names.index("Perceived stress (score)"), "add", -2.5)
    assert (c.feature, c.how, c.value) == (names.index("Caffeine (mg)"), "set", 0.0)
    raw = np.asarray(table.mean, float)
    moved = c.apply(b.apply(a.apply(raw)))
    assert moved[a.feature] == raw[a.feature] + 1 and moved[b.feature] == raw[b.feature] - 2.5 and moved[c.feature] == 0
    for bad, message in [
        ("sleepy+=1", "unknown feature 'sleepy'"),
        ("sleep duration+1", "expected FEATURE"),
        ("sleep duration+=lots", "expected FEATURE"),
    ]:
        with pytest.raises(TfpAlineError, match=message):
            parse_changes([bad], table)
    with pytest.raises(TfpAlineError, match="changed twice"):
        parse_changes(["sleep duration+=1", "Sleep duration (h)=8"], table)


def test_the_risk_is_the_logistic_of_each_draw(smoke_run_dir, table):
    task = Advisor.from_run_dir(smoke_run_dir).task
    rng = np.random.default_rng(0)
    theta = rng.normal(size=[500, task.num_parameters])
    i = list(table.names).index(SLEEP)
    theta[:, i] = np.abs(theta[:, i])  # every draw: more sleep, higher logit
    base = np.asarray(table.mean, float) + rng.normal(size=table.num_features) * table.std
    w = what_if_risk(task, table, theta, base, parse_changes(["sleep duration+=1"], table), "day 1", "joint")
    changed = base.copy()
    changed[i] += 1
    for name, x in (("as is", base), ("what if", changed)):
        z = (x - table.mean) / table.std
        p = 1 / (1 + np.exp(-(theta[:, :-1] @ z + theta[:, -1])))
        row = w.table.set_index("scenario").loc[name]
        assert row["mean"] == pytest.approx(p.mean(), abs=1e-5)
        assert row["q05"] == pytest.approx(np.quantile(p, 0.05), abs=1e-5)
    diff = w.table.set_index("scenario").loc["difference"]
    assert diff["q05"] > 0 and w.note == ""
    assert json.loads(json.dumps(w.to_dict()))["risk"]["difference"]["mean"] == pytest.approx(diff["mean"])


def test_advise_what_if_uses_the_joint_posterior(joint_run, tmp_path, capsys):
    advisor = Advisor.from_run_dir(joint_run)
    with pytest.warns(HistoryWarning):
        advice = advisor.advise(EXAMPLE, what_if=["sleep duration+=1"])
    # Two epochs of training: the per-person check may reject it, and then the exact reference is used.
    expected = "joint" if advice.check.ok else advisor.task.reference_name
    assert advice.what_if.posterior == expected and advice.what_if.base_day.startswith("history day 2025-04-29")
    assert advice.to_dict()["what_if"]["changes"] == ["sleep duration+=1"]
    h = read_history(EXAMPLE, advisor.table)
    changes = parse_changes(["sleep duration+=1"], advisor.table)
    for khat, name in ((0.1, "joint"), (5.0, advisor.task.reference_name)):
        forced = dataclasses.replace(advice, check=dataclasses.replace(advice.check, khat=khat))
        assert advisor.what_if(forced, h, None, changes).posterior == name
    future = pd.read_csv(EXAMPLE).drop(columns=["migraine"]).tail(2)
    future["date"] = ["2025-05-01", "2025-05-02"]
    future.to_csv(tmp_path / "future.csv", index=False)
    argv = ["advise", "--run", str(joint_run), "--history", str(EXAMPLE), "--future", str(tmp_path / "future.csv")]
    assert main(argv + ["--what-if", "Perceived stress (score)-=2", "--what-if", "sleep duration+=1"]) == 0
    text = capsys.readouterr().out
    assert "what if (Perceived stress (score)-=2, sleep duration+=1), on a day like future day 2025-05-01" in text
    assert "posterior of the weights" in text
    assert main(argv + ["--what-if", "sleepy+=1"]) == 2
    assert "unknown feature 'sleepy'" in capsys.readouterr().err


def test_without_a_joint_head_the_what_if_says_it_ignores_correlations(smoke_run_dir):
    advisor = Advisor.from_run_dir(smoke_run_dir)
    with pytest.warns(HistoryWarning):
        advice = advisor.advise(EXAMPLE)
    trusted = dataclasses.replace(advice, check=dataclasses.replace(advice.check, khat=0.1))
    h = read_history(EXAMPLE, advisor.table)
    w = advisor.what_if(trusted, h, None, parse_changes(["sleep duration+=1"], advisor.table))
    assert w.posterior == "marginals" and "ignore how they trade off" in w.note
