"""The Task interface: TFP pieces in, sampling and log posterior derived; configs by name or import
path with each task's own validated options; evaluation asks the task, never its name."""

import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import ROOT

from tfp_aline.config import config_from_dict
from tfp_aline.errors import ConfigError, TfpAlineError
from tfp_aline.evaluation.evaluate import applicable, available_methods, check_method
from tfp_aline.psychometric.task import PsychometricTask
from tfp_aline.tasks.base import Task
from tfp_aline.tasks.registry import build_task, parse_task_section

tfd = tfp.distributions


class LinearGaussian(Task):
    """A tiny user model: y ~ Normal(x . theta, 0.5), theta ~ Normal(0, 1)."""

    name = "linear-gaussian"
    x_dim = 2
    outcome = "continuous"
    parameter_names = ("a", "b")
    parameter_groups = {"slope": (0,)}

    def prior(self):
        return tfd.Independent(tfd.Normal(tf.zeros(2), 1.0), 1)

    def design_distribution(self, n):
        return tfd.Sample(tfd.Uniform(-1.0, 1.0), [n, 2])

    def likelihood(self, theta, x):
        return tfd.Normal(tf.linalg.matvec(x, theta), 0.5)


def test_a_user_task_gets_episodes_and_an_exact_log_posterior():
    task = LinearGaussian()
    ep = task.sample_episodes(3, 5, seed=tf.constant([1, 2]), num_initial_context=1)
    assert ep.theta.shape == (3, 2) and ep.query_x.shape == (3, 5, 2) and ep.query_y.shape == (3, 5, 1)
    assert ep.context_x.shape == (3, 1, 2) and ep.target_x.shape == (3, 0, 2)
    mask = tf.constant([[True, True, False, True, False]] * 3)
    got = task.log_posterior(ep.theta, ep.query_x, ep.query_y, mask).numpy()
    th, x, y, m = ep.theta.numpy(), ep.query_x.numpy(), ep.query_y.numpy()[..., 0], mask.numpy()
    mean = np.einsum("bnd,bd->bn", x, th)
    log_lik = -0.5 * ((y - mean) / 0.5) ** 2 - np.log(0.5 * np.sqrt(2 * np.pi))
    want = (-0.5 * th**2 - 0.5 * np.log(2 * np.pi)).sum(-1) + (log_lik * m).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    with pytest.raises(ConfigError, match="continuous outcomes: predictive targets"):
        task.check_predictive(3)


def test_migraine_keeps_its_named_joint_and_agrees_with_the_generic_route(migraine_task):
    task = migraine_task
    ep = task.sample_episodes(4, 6, seed=tf.constant([3, 3]))
    mask = tf.constant([[True] * 4 + [False] * 2] * 4)
    own = task.log_posterior(ep.theta, ep.query_x, ep.query_y, mask).numpy()
    generic = Task.log_posterior(task, ep.theta, ep.query_x, ep.query_y, mask).numpy()
    np.testing.assert_allclose(own, generic, rtol=1e-5, atol=1e-4)
    # psychometric has no overrides: everything comes from prior, designs and likelihood
    assert not {"sample_episodes", "log_posterior", "simulate_outcomes"} & set(vars(PsychometricTask))


def test_tasks_by_name_or_import_path_with_their_own_validated_options():
    by_path = parse_task_section({"class": "tfp_aline.psychometric.task:PsychometricTask"})
    assert isinstance(build_task(by_path), PsychometricTask) and by_path.to_dict() == by_path.to_dict()
    assert by_path.to_dict() == {"class": "tfp_aline.psychometric.task:PsychometricTask"}
    with pytest.raises(ConfigError, match=r"task\.table: unknown key for task 'psychometric'"):
        parse_task_section({"name": "psychometric", "table": "data/migraine_prediction.xlsx"})
    with pytest.raises(ConfigError, match=r"task\.base_rate = 2\.0"):
        parse_task_section({"name": "migraine", "base_rate": 2.0})
    with pytest.raises(ConfigError, match=r"task.class = 'nowhere.module:X': cannot import .*PYTHONPATH=\."):
        parse_task_section({"class": "nowhere.module:X"})
    with pytest.raises(ConfigError, match="is not a tfp_aline Task subclass"):
        parse_task_section({"class": "tfp_aline.config:Config"})
    cfg = config_from_dict({"task": {"name": "migraine", "base_rate": 0.2}})
    assert cfg.task.options.base_rate == 0.2 and config_from_dict(cfg.to_dict()) == cfg


def test_evaluation_asks_the_task_for_its_methods(migraine_task):
    assert available_methods(PsychometricTask()) == ("policy", "random", "uncertainty", "questplus", "psi-marginal")
    assert available_methods(migraine_task)[-2:] == ("greedy-eig", "greedy-epig")
    assert available_methods(LinearGaussian()) == ("policy", "random")  # no binary predictive head
    # A run trained without predictive targets has an untrained predictive head: not offered.
    untrained = available_methods(PsychometricTask(), predictive_head=False)
    assert untrained == ("policy", "random", "questplus", "psi-marginal")
    with pytest.raises(TfpAlineError, match="'uncertainty' needs a trained predictive head"):
        check_method("uncertainty", PsychometricTask(), predictive_head=False)
    assert applicable("greedy-eig", "all", migraine_task) and not applicable("greedy-eig", "predictive", migraine_task)
    assert applicable("greedy-epig", "predictive", migraine_task) and not applicable(
        "greedy-epig", "sleep", migraine_task
    )


def test_no_branch_on_a_task_name_outside_the_task_modules():
    pattern = re.compile(r"task\.name\s*[=!]=|hasattr\(task|hasattr\(self\.task|\.name == \"(migraine|psychometric)\"")
    offenders = []
    for path in (ROOT / "tfp_aline").rglob("*.py"):
        if "tasks" in path.relative_to(ROOT / "tfp_aline").parts:
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_a_single_parameter_is_a_target_everywhere(tmp_path):
    """Config, `evaluate --targets` and `Task.parameter_indices` accept a parameter's name, by one check."""
    from tfp_aline.cli.evaluate import evaluate_command
    from tfp_aline.core.target_names import builtin_clash, check_target_name

    task = PsychometricTask()
    assert task.parameter_indices("threshold") == (0,)
    assert task.parameter_indices(("threshold", "lapse")) == (0, 3)
    assert PsychometricTask.parameter_names_of(PsychometricTask.Options()) == task.parameter_names
    with pytest.raises(ConfigError, match="'predictive' names the predictive points"):
        task.parameter_indices("predictive")
    with pytest.raises(ConfigError, match=r"task 'psychometric': unknown target 'tresh'; .*\(threshold, slope"):
        task.parameter_indices("tresh")
    assert check_target_name("slope", (), ("slope",)) == "slope"
    assert builtin_clash(("g",), ("all", "b")) == "parameter 'all'"
    with pytest.raises(ConfigError, match=r"--targets: unknown target 'tresh'; .*threshold_slope.*\(threshold, slope"):
        evaluate_command(ROOT / "models" / "psychometric", targets=["tresh"], out=tmp_path / "out", progress=False)
