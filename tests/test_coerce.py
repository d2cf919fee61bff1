"""The one YAML value coercer, for config sections and task options alike."""

import typing

import pytest

from tfp_aline.coerce import coerce
from tfp_aline.errors import ConfigError


@pytest.mark.parametrize(
    "value,annotation,expected",
    [
        ("1e-3", "float", 1e-3),
        (3, float, 3.0),
        (3000.0, "int", 3000),
        (1e3, int, 1000),
        (None, "typing.Optional[str]", None),
        (None, typing.Optional[str], None),
        (None, "str | None", None),
        ("Sheet1", "str | None", "Sheet1"),
        ([100, 200], "tuple", (100, 200)),
        (object, "MyType", object),  # a task's own type: passed through
    ],
)
def test_values_a_person_would_write_are_read(value, annotation, expected):
    assert coerce("k", value, annotation) == expected


@pytest.mark.parametrize(
    "value,annotation,message",
    [
        ("strong", "float", "task.k: expected a number, got 'strong'"),
        (True, "int", "task.k: expected an integer, got True"),
        (2.5, int, "task.k: expected an integer, got 2.5"),
        (float("inf"), "float", "task.k: expected a finite number"),
        ("inf", float, "task.k: expected a number, got 'inf'"),
        (3, "typing.Optional[str]", "task.k: expected a string or null, got 3"),
        (None, "float", "task.k: expected a number, got None"),
        ([1, "a"], "tuple", "task.k: expected a list of integers"),
    ],
)
def test_mismatches_name_the_key(value, annotation, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace("[", r"\[")):
        coerce("task.k", value, annotation)
