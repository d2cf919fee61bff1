"""Config loading: the shipped configs, every key read, and bad configs failing at load with the key."""

import dataclasses

import pytest
import yaml
from conftest import ROOT

from tfp_aline.config import Config, config_from_dict, load_config
from tfp_aline.errors import ConfigError

CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_shipped_configs_load(path):
    cfg = load_config(path)
    assert cfg.name == path.stem and abs(sum(cfg.target_probs) - 1) < 1e-9


def test_every_key_is_read():
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    cfg = config_from_dict(raw)
    back = cfg.to_dict()
    for section, values in raw.items():
        if isinstance(values, dict):
            for key, value in values.items():
                assert back[section][key] == value, f"{section}.{key}"
        else:
            assert back[section] == values
    assert config_from_dict(yaml.safe_load(cfg.to_yaml())) == cfg


def test_configs_are_frozen():
    cfg = load_config(ROOT / "configs" / "smoke.yaml")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.training.epochs = 3


def write(tmp_path, mutate):
    raw = yaml.safe_load((ROOT / "configs" / "smoke.yaml").read_text())
    mutate(raw)
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "mutate,key",
    [
        (lambda r: r["training"].update(epoch=5), "training.epoch: unknown key"),
        (lambda r: r.update(optimiser={}), "optimiser: unknown key"),
        (lambda r: r["episodes"].update(horizon=50), "episodes.horizon = 50: cannot exceed episodes.num_candidates"),
        (lambda r: r["episodes"].update(batch_size=0), "episodes.batch_size = 0: expected a positive number"),
        (lambda r: r["network"].update(num_layers=-1), "network.num_layers"),
        (lambda r: r["training"].update(epochs="ten"), "training.epochs: expected an integer"),
        (lambda r: r["training"].update(jit_compile="yes"), "training.jit_compile: expected true or false"),
        (lambda r: r["targets"].update(sleeep=0.1, sleep=0.1), "targets.sleeep: unknown target 'sleeep'"),
        (lambda r: r["targets"].update(all=0.5), "targets: probabilities sum to 1.1"),
        (lambda r: r["training"].update(strategy="tpu"), "training.strategy"),
        (lambda r: r["episodes"].update(num_predictive_targets=0), "targets.predictive: needs"),
        (lambda r: r["network"].update(embed_dim=15), "network.embed_dim = 15: must be divisible"),
        (lambda r: r["network"].update(query_layers=9), "network.query_layers = 9: expected a whole number from 0"),
        (lambda r: r["task"].update(name="weather"), "task.name = 'weather'"),
    ],
)
def test_bad_configs_fail_at_load_naming_the_key(tmp_path, mutate, key):
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, mutate))
    assert key in str(e.value) and "bad.yaml" in str(e.value)


def test_overrides(tmp_path):
    cfg = load_config(ROOT / "configs" / "smoke.yaml", ["training.epochs=9", "targets={all: 1.0}", "seed=4"])
    assert (cfg.training.epochs, cfg.targets, cfg.seed) == (9, (("all", 1.0),), 4)
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(ROOT / "configs" / "smoke.yaml", ["training.epochs"])
    with pytest.raises(ConfigError, match="training.epochs = 0"):
        load_config(ROOT / "configs" / "smoke.yaml", ["training.epochs=0"])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("training: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_defaults_are_a_valid_config():
    assert isinstance(config_from_dict({"name": "x", "task": {"name": "migraine"}}), Config)


def test_there_is_no_default_task():
    """A config without `task:` fails with one line that lists the installed tasks."""
    with pytest.raises(ConfigError, match=r"task: missing; .*installed: migraine, psychometric"):
        config_from_dict({"name": "x"})
    with pytest.raises(ConfigError, match=r"task.name = 'nope': expected an installed task \(migraine, psychometric"):
        config_from_dict({"name": "x", "task": {"name": "nope"}})


def test_target_names_are_checked_without_building_the_task(monkeypatch):
    """Loading a migraine config reads the table's groups only: no prior, no baseline solve."""
    from tfp_aline.migraine.task import MigraineTask

    def refuse(*args, **kwargs):
        raise AssertionError("load_config built the task")

    monkeypatch.setattr(MigraineTask, "__init__", refuse)
    cfg = load_config(ROOT / "configs" / "migraine.yaml", ["targets={sleep: 0.5, baseline: 0.5}"])
    assert tuple(cfg.target_names) == ("sleep", "baseline")
    with pytest.raises(ConfigError, match=r"targets.nap: unknown target .*sleep.*baseline.*Sleep duration \(h\)"):
        load_config(ROOT / "configs" / "migraine.yaml", ["targets={nap: 1.0}"])
    single = load_config(ROOT / "configs" / "migraine.yaml", ['targets={"Perceived stress (score)": 0.5, sleep: 0.5}'])
    assert single.target_names == ("Perceived stress (score)", "sleep")


def test_a_single_parameter_is_a_target():
    cfg = load_config(ROOT / "configs" / "psychometric.yaml", ["targets={threshold: 0.5, all: 0.5}"])
    assert cfg.target_names == ("threshold", "all")
    with pytest.raises(ConfigError, match=r"targets.treshold: unknown target .*a parameter \(threshold, slope"):
        load_config(ROOT / "configs" / "psychometric.yaml", ["targets={treshold: 1.0}"])
