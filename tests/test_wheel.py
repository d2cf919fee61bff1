"""The wheel works outside the repository: its package data and entry points, the commands run in a
fresh venv in a temporary folder, and a task from a separately installed package is found by name."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest
import yaml
from conftest import ROOT


def _run(args, cwd, env=None, timeout=900):
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The package's wheel, built from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)], cwd=out)
    (built,) = out.glob("tfp_aline-*.whl")
    return built


def test_the_wheel_carries_the_shipped_files_and_the_plugin_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        entry_points = next(z.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    for shipped in ("smoke", "migraine", "migraine-cpu", "psychometric", "psychometric-cpu"):
        assert f"tfp_aline/configs/{shipped}.yaml" in names
    assert "tfp_aline/migraine/data/migraine_prediction.xlsx" in names
    assert "tfp_aline/migraine/data/example_person.csv" in names
    assert not any(n.startswith(("tests/", "examples/", "models/")) for n in names)
    assert "[tfp_aline.tasks]" in entry_points and "psychometric = tfp_aline.psychometric.task:PsychometricTask" in (
        entry_points
    )
    assert "[tfp_aline.commands]" in entry_points and "tfp-aline = tfp_aline.cli:main" in entry_points


@pytest.fixture(scope="module")
def fresh_venv(wheel, tmp_path_factory):
    """A new venv outside the checkout with the wheel installed. Its dependencies (TensorFlow & co.)
    are borrowed from this interpreter's site-packages through a .pth file, which adds the folder
    to the path without running its .pth files, so this checkout's editable install stays out."""
    home = tmp_path_factory.mktemp("venv")
    venv = home / "venv"
    # Nothing of this checkout on the path (pytest's own PYTHONPATH would show its egg-info to pip).
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=home, env=env)
    python = venv / "bin" / "python"
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    site = Path(_run([str(python), "-c", purelib], home, env).stdout.strip())
    # Installed before the dependencies are borrowed: pip would take this checkout's editable
    # install, visible through them, for the package already installed.
    _run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], cwd=home, env=env)
    (site / "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv, env


@pytest.mark.slow
def test_train_evaluate_advise_and_export_run_from_the_installed_wheel(fresh_venv, tmp_path):
    venv, env = fresh_venv
    cli = str(venv / "bin" / "tfp-aline")
    where = _run([str(venv / "bin" / "python"), "-c", "import tfp_aline; print(tfp_aline.__file__)"], tmp_path, env)
    assert str(venv) in where.stdout and str(ROOT) not in where.stdout
    _run([cli, "train", "--config", "smoke", "--logdir", "run", "--no-progress", "--no-eval"], tmp_path, env)
    _run([cli, "evaluate", "--run", "run", "--episodes", "4", "--no-progress", "--spce-samples", "0"], tmp_path, env)
    assert (tmp_path / "run" / "evaluation" / "metrics.csv").exists()
    person = tmp_path / "person.csv"
    shutil.copy(ROOT / "data" / "example_person.csv", person)
    advice = json.loads(
        _run([cli, "advise", "--run", "run", "--history", "person.csv", "--format", "json"], tmp_path, env).stdout
    )
    assert advice["triggers"] and advice["next_questions"] and advice["check"] is not None
    _run([cli, "export", "--run", "run", "--out", "saved"], tmp_path, env)
    assert (tmp_path / "saved" / "saved_model.pb").exists()


PLUGIN_PYPROJECT = textwrap.dedent("""
    [build-system]
    requires = ["setuptools>=68"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "toy-location-finding"
    version = "0.0.1"

    [tool.setuptools]
    py-modules = ["toy_location_finding"]

    [project.entry-points."tfp_aline.tasks"]
    toy-location-finding = "toy_location_finding:LocationFindingTask"
""")


@pytest.mark.slow
def test_a_task_from_another_installed_package_trains_and_evaluates_by_name(fresh_venv, tmp_path):
    venv, env = fresh_venv
    plugin = tmp_path / "plugin"
    plugin.mkdir()
    (plugin / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    shutil.copy(ROOT / "examples" / "location_finding.py", plugin / "toy_location_finding.py")
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-deps", str(plugin)], tmp_path, env)
    cli = str(venv / "bin" / "tfp-aline")
    listed = _run([cli, "tasks"], tmp_path, env).stdout
    assert "toy-location-finding\ttoy_location_finding:LocationFindingTask" in listed and "psychometric" in listed
    raw = yaml.safe_load((ROOT / "configs" / "location-finding.yaml").read_text())
    raw["task"] = {"name": "toy-location-finding"}
    raw["training"].update(epochs=4, warmup_epochs=2)
    raw["episodes"].update(batch_size=4, horizon=3, num_candidates=8)
    raw["logging"].update(validate_every=0, checkpoint_every=2)
    raw["network"].update(embed_dim=8, num_layers=1, ff_dim=16, num_heads=2, num_components=2)
    (tmp_path / "toy.yaml").write_text(yaml.safe_dump(raw))
    work = tmp_path / "elsewhere"
    work.mkdir()
    _run([cli, "train", "--config", "../toy.yaml", "--logdir", "run", "--no-progress", "--no-eval"], work, env)
    _run(
        [cli, "evaluate", "--run", "run", "--episodes", "4", "--no-exact", "--no-progress", "--spce-samples", "100"],
        work,
        env,
    )
    assert "spce" in (work / "run" / "evaluation" / "metrics.csv").read_text()
