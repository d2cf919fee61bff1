"""`check_task`: the shipped tasks pass; a user's model broken in one way gives exactly one line naming it."""

import dataclasses
import subprocess
import sys

import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import ROOT

import tfp_aline
from tfp_aline.errors import ConfigError
from tfp_aline.tasks.base import Task
from tfp_aline.tasks.check import TaskCheckError, check_task, raise_if_problems
from tfp_aline.tasks.registry import task_class

tfd = tfp.distributions


# ---- a small sound user model, and subclasses each broken in one way --------------------------
class Line(Task):
    """y ~ Normal(a + b x, 0.5) with (a, b) ~ Uniform[0, 1]^2 and x ~ U[-1, 1]."""

    name = "line"
    x_dim = 1
    outcome = "continuous"
    parameter_names = ("a", "b")
    parameter_groups = {"both": (0, 1)}

    @property
    def support(self):
        return [0.0, 0.0], [1.0, 1.0]

    def prior(self):
        return tfd.Independent(tfd.Uniform(tf.zeros(2), tf.ones(2)), 1)

    def design_distribution(self, n):
        return tfd.Sample(tfd.Uniform(-1.0, 1.0), [n, 1])

    def mean(self, theta, x):
        """theta [..., 2], x [..., n, 1] -> [..., n]."""
        return theta[..., :1] + theta[..., 1:] * x[..., 0]

    def likelihood(self, theta, x):
        return tfd.Normal(self.mean(theta, x), 0.5)


class Choice(Line):
    """The same line as the logit of a binary choice."""

    name = "choice"
    outcome = "binary"

    def likelihood(self, theta, x):
        return tfd.Bernoulli(logits=4.0 * self.mean(theta, x), dtype=tf.float32)


class WrongEventSize(Line):
    def prior(self):
        return tfd.Independent(tfd.Uniform(tf.zeros(3), tf.ones(3)), 1)


class Float64Designs(Line):
    def design_distribution(self, n):
        return tfd.Sample(tfd.Uniform(tf.constant(-1.0, tf.float64), 1.0), [n, 1])


class NaNLikelihood(Line):
    def likelihood(self, theta, x):
        return tfd.Normal(tf.math.log(self.mean(theta, x) - 10.0), 0.5)  # log of a negative number


class MixesPeople(Line):
    def likelihood(self, theta, x):
        loc = self.mean(theta, x)  # centred over the people of the batch: person i sees the others
        return tfd.Normal(loc - tf.reduce_mean(loc, axis=-2, keepdims=True), 0.5)


class BinaryTwos(Choice):
    def likelihood(self, theta, x):
        logits = self.mean(theta, x)[..., None] * tf.constant([0.0, 1.0, 2.0])
        return tfd.Categorical(logits=logits)  # outcomes 0, 1 and 2


class BinaryDeclaredContinuous(Choice):
    outcome = "continuous"


class LogLikelihoodPerDesign(Line):
    def log_likelihood(self, theta, x, y, mask=None):
        return self.likelihood(theta, x).log_prob(y[..., 0])  # forgot the sum over designs


class OutsideSupport(Line):
    @property
    def support(self):
        return [0.0, 0.0], [1.0, 0.5]  # b's prior reaches 1


class UnorderedSupport(Line):
    @property
    def support(self):
        return [0.0, 1.0], [1.0, 0.0]


class UnknownGroupParameter(Line):
    parameter_groups = {"both": (0, 2)}


class GroupOfNames(Line):
    parameter_groups = {"both": ("a", "b")}


class LikelihoodRaises(Line):
    def likelihood(self, theta, x):
        raise ValueError("boom\nsecond line not shown")


class DuplicateNames(Line):
    parameter_names = ("a", "a")


class PriorWithoutIndependent(Line):
    def prior(self):
        return tfd.Uniform(tf.zeros(2), tf.ones(2))  # batch [2], event []: log_prob per parameter


class LikelihoodIndependent(Line):
    def likelihood(self, theta, x):
        return tfd.Independent(super().likelihood(theta, x), 1)


class DrawsAtConstruction(Line):
    def design_distribution(self, n):
        return tfd.Deterministic(tf.random.uniform([n, 1], -1.0, 1.0))  # ignores the seed


class NoLeadingDims(Line):
    def mean(self, theta, x):
        return tf.einsum("bn,b->bn", x[..., 0], theta[:, 1]) + theta[:, :1]  # theta must be [B, L]


class UsesNumpy(Line):
    def likelihood(self, theta, x):
        return tfd.Normal(self.mean(theta, x).numpy(), 0.5)  # fine eagerly, not in a tf.function


class IntegerDtype(Line):
    dtype = tf.int32


class UnknownOutcome(Line):
    outcome = "count"


class OptionsNotADataclass(Line):
    class Options:
        noise = 0.5


class NeedsAnArgument(Line):
    def __init__(self, table):
        self.table = table


BROKEN = [
    (WrongEventSize, "prior().sample(3) has shape [3, 3]; expected [3, 2] (2 parameters: a, b)"),
    (Float64Designs, "design_distribution(5).sample(3) has dtype float64; expected float32"),
    (NaNLikelihood, "likelihood(theta [3, 2], x [3, 5, 1]).sample() has 15 non-finite value(s)"),
    (MixesPeople, "in a batch of 3 but"),
    (BinaryTwos, "for a binary outcome; expected only 0 and 1"),
    (BinaryDeclaredContinuous, "gives only 0 and 1 for a continuous outcome"),
    (LogLikelihoodPerDesign, "log_likelihood(theta [3, 2], x [3, 5, 1], y [3, 5, 1]) has shape [3, 5]; expected [3]"),
    (OutsideSupport, "draws outside support for b"),
    (UnorderedSupport, "support: low < high fails for b"),
    (UnknownGroupParameter, "parameter_groups['both'] = (0, 2) refers to unknown parameter(s) [2]"),
    (GroupOfNames, "(indices, not names)"),
    (LikelihoodRaises, "likelihood(theta [3, 2], x [3, 5, 1]) raised ValueError: boom"),
    (DuplicateNames, "parameter_names has duplicates (a)"),
    (PriorWithoutIndependent, "prior().log_prob(theta [3, 2]) has shape [3, 2]; expected [3]"),
    (LikelihoodIndependent, ".log_prob(y) has shape [3]; expected [3, 5]"),
    (DrawsAtConstruction, "gives different draws for the same seed"),
    (NoLeadingDims, "log_likelihood(theta [2, 3, 2], x [3, 5, 1], y [3, 5, 1]) raised"),
    (UsesNumpy, "inside a tf.function (as training runs it) raised"),
    (IntegerDtype, "dtype = tf.int32; expected a TensorFlow floating dtype"),
    (UnknownOutcome, "outcome = 'count'; expected one of 'binary', 'continuous'"),
    (OptionsNotADataclass, "OptionsNotADataclass.Options is not a dataclass"),
    (NeedsAnArgument, "NeedsAnArgument.from_options(Options()) raised TypeError"),
]


def _make(cls):
    return cls.__new__(cls) if cls is NeedsAnArgument else cls()  # an instance without calling __init__


@pytest.mark.parametrize("cls", [Line, Choice])
def test_a_sound_user_model_has_no_problems(cls):
    assert check_task(cls(), graph=False) == []  # the tf.function part: with the shipped tasks below


@pytest.mark.parametrize("cls, expected", BROKEN, ids=[c.__name__ for c, _ in BROKEN])
def test_a_model_broken_in_one_way_gives_one_line_naming_it(cls, expected):
    problems = check_task(_make(cls), graph=cls is UsesNumpy)  # the trace only where it is the point
    assert len(problems) == 1, problems
    assert expected in problems[0], problems[0]
    assert "\n" not in problems[0]


def test_at_least_eight_kinds_of_broken_model_are_named():
    assert len(BROKEN) >= 8


def test_the_builtin_psychometric_task_passes():
    # Migraine passes too, but takes seconds (its feature table and 20-odd parameters): not here.
    cls = task_class("psychometric")  # by name: the test survives the models moving to their own subpackages
    assert check_task(cls.from_options(cls.Options())) == []


def test_the_example_user_task_passes():
    from examples.location_finding import LocationFindingTask

    assert check_task(LocationFindingTask(LocationFindingTask.Options())) == []


def test_raise_if_problems_lists_every_problem_in_one_config_error():
    @dataclasses.dataclass(frozen=True)
    class Opts:
        pass

    class TwoProblems(UnknownGroupParameter):
        outcome = "count"
        Options = Opts

        def __init__(self, options=None):
            pass

    raise_if_problems(Line(), graph=False)  # a sound task: nothing raised
    with pytest.raises(TaskCheckError) as e:
        raise_if_problems(TwoProblems())
    assert isinstance(e.value, ConfigError) and len(e.value.problems) == 2
    assert str(e.value).startswith("task 'line' (")
    assert "has 2 problems:\n  - outcome = 'count'" in str(e.value)
    assert check_task(object()) == ["object is not a tfp_aline Task (subclass tfp_aline.tasks.base.Task)"]


def test_tfp_aline_check_task_is_the_checker_and_the_package_import_stays_light():
    assert tfp_aline.check_task is check_task
    code = "import sys, tfp_aline; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr[-2000:]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        tfp_aline.nope  # noqa: B018
