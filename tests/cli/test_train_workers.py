"""`train --workers host:port,... --worker-index i`: the TF_CONFIG it builds, and one-line errors for a
bad list, an index out of range, or a cluster described twice (flags and TF_CONFIG). Fast: every
refusal comes before TensorFlow starts."""

import json

import pytest
from conftest import ROOT

from tfp_aline.cli.main import main
from tfp_aline.cluster import parse_workers, tf_config_from_flags
from tfp_aline.errors import ConfigError

SMOKE = str(ROOT / "configs" / "smoke.yaml")


def test_the_flags_build_tf_config():
    got = json.loads(tf_config_from_flags("10.0.0.1:2222, 10.0.0.2:2222,[::1]:2223", 1, environ={}))
    assert got == {
        "cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222", "[::1]:2223"]},
        "task": {"type": "worker", "index": 1},
    }


def test_without_the_flags_tf_config_is_used_as_it_is():
    assert tf_config_from_flags(None, None, environ={"TF_CONFIG": '{"cluster": {}}'}) is None


@pytest.mark.parametrize(
    "workers,index,environ,expected",
    [
        ("a:1,b:2", 2, {}, "--worker-index 2: out of range for the 2 workers of --workers (expected 0 to 1)"),
        ("a:1,b:2", -1, {}, "--worker-index -1: out of range"),
        ("a:1,b:2", None, {}, "--worker-index is required (0 to 1)"),
        (None, 0, {}, "--worker-index needs --workers"),
        ("a:1,b:2", 0, {"TF_CONFIG": "{}"}, "TF_CONFIG is set and --workers is given"),
        ("a:1,,b:2", 0, {}, "--workers 'a:1,,b:2': an empty entry; expected host:port,host:port"),
        ("a:1,b", 0, {}, "--workers: 'b' has no host:port"),
        ("a:1,:2", 0, {}, "--workers: ':2' has no host:port"),
        ("a:1,b:http", 0, {}, "--workers: 'b:http' has port 'http'; expected a port from 1 to 65535"),
        ("a:1,b:70000", 0, {}, "has port '70000'"),
        ("a:1,a:1", 0, {}, "--workers: a:1 listed twice"),
    ],
)
def test_bad_flags_are_one_line_errors(workers, index, environ, expected):
    with pytest.raises(ConfigError) as e:
        tf_config_from_flags(workers, index, environ=environ)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_parse_workers_keeps_the_order():
    assert parse_workers("h2:5,h1:4") == ["h2:5", "h1:4"]


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--workers", "127.0.0.1:1,127.0.0.1:2", "--worker-index", "5"], "error: --worker-index 5: out of range"),
        (["--workers", "127.0.0.1"], "error: --workers: '127.0.0.1' has no host:port"),
    ],
)
def test_train_refuses_bad_flags_in_one_line_before_any_work(tmp_path, capsys, monkeypatch, extra, expected):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    logdir = tmp_path / "run"
    assert main(["train", "--config", SMOKE, "--logdir", str(logdir), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(expected), err
    assert not logdir.exists()


def test_train_refuses_flags_beside_tf_config(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}}))
    argv = ["train", "--config", SMOKE, "--logdir", str(tmp_path / "run"), "--workers", "127.0.0.1:1"]
    assert main([*argv, "--worker-index", "0"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: TF_CONFIG is set and --workers is given")
