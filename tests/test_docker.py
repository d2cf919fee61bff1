"""Dockerfile, docker-compose.yml and .dockerignore, checked without a Docker engine: the compose file
parses and names its services, and every install and command line matches requirements.txt and the CLI."""

import json
import re
import shlex

import pytest
import yaml
from conftest import ROOT

from tfp_aline.cli.main import build_parser

WORKDIR = "/app"


def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, args = pending.strip().partition(" ")
        out.append((keyword.upper(), args.strip()))
        pending = ""
    return out


def instruction(name):
    return [args for keyword, args in dockerfile_instructions() if keyword == name]


def as_argv(command):
    """A Dockerfile/compose command (exec-form JSON list, YAML list or shell string) as argv."""
    if isinstance(command, list):
        return command
    command = command.strip()
    return json.loads(command) if command.startswith("[") else shlex.split(command)


def requirement_pins():
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = re.fullmatch(r"([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==(\S+)", line).groups()
            pins[name.lower()] = version
    return pins


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def check_tfp_aline_command(argv):
    """A `tfp-aline ...` argv is accepted by the real parser and names existing config files."""
    assert argv[0] == "tfp-aline"
    try:
        args = build_parser().parse_args(argv[1:])
    except SystemExit:  # argparse exits on an unknown command or option
        pytest.fail(f"the CLI rejects {' '.join(argv)}")
    config = getattr(args, "config", None)
    if config is not None:
        assert (ROOT / config).is_file(), f"{config} does not exist"
    return args


def test_dockerfile_installs_the_pinned_requirements_and_the_package():
    base = instruction("FROM")[0].split()[0]
    assert base == "python:3.11-slim" or base.startswith("tensorflow/tensorflow:")
    runs = instruction("RUN")
    assert any("pip install" in r and "-r requirements.txt" in r for r in runs)
    assert any("pip install" in r and re.search(r"-e \.(\s|$)", r) for r in runs)
    copies = [[a for a in args.split() if not a.startswith("--")] for args in instruction("COPY")]
    assert any(sources[0] == "requirements.txt" for sources in copies)
    for *sources, _ in copies:
        assert all((ROOT / src).exists() for src in sources), sources
    # A tensorflow (with extras) installed next to requirements.txt has the version pinned there.
    pinned = requirement_pins()["tensorflow"]
    for version in re.findall(r"tensorflow(?:\[[^\]]*\])?==([0-9][^\s\"']*)", " ".join(runs)):
        assert version == pinned, f"Dockerfile installs tensorflow {version}, requirements.txt pins {pinned}"
    assert re.search(r"jupyterlab==\d", " ".join(runs)), "JupyterLab is installed with a pinned version"


def test_dockerfile_runs_as_non_root_and_exposes_jupyter_and_tensorboard():
    users = instruction("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    exposed = {port for args in instruction("EXPOSE") for port in args.split()}
    assert {"8888", "6006"} <= exposed
    assert instruction("WORKDIR")[-1] == WORKDIR


def test_dockerfile_default_command_is_the_main_job():
    argv = as_argv(instruction("CMD")[-1])
    args = check_tfp_aline_command(argv)
    assert args.command == "train" and str(args.config) == "configs/migraine.yaml"


def test_compose_has_the_three_services_with_ports_and_shared_volumes(compose):
    services = compose["services"]
    assert {"jupyter", "tensorboard", "train"} <= set(services)
    for name, service in services.items():
        assert service["build"] in (".", {"context": "."}) and service.get("working_dir", WORKDIR) == WORKDIR, name
        assert "./runs:/app/runs" in service["volumes"], name
    for name in ("jupyter", "train"):
        assert "./data:/app/data" in services[name]["volumes"]
    assert "./notebooks:/app/notebooks" in services["jupyter"]["volumes"]
    assert "8888:8888" in services["jupyter"]["ports"]
    assert "6006:6006" in services["tensorboard"]["ports"]


def test_compose_commands_match_the_cli_and_the_volumes(compose):
    services = compose["services"]
    train = check_tfp_aline_command(as_argv(services["train"]["command"]))
    assert train.command == "train"
    board = as_argv(services["tensorboard"]["command"])
    assert board[0] == "tensorboard" and board[board.index("--logdir") + 1] in ("runs", "/app/runs", "runs/")
    assert board[board.index("--host") + 1] == "0.0.0.0"
    lab = as_argv(services["jupyter"]["command"])
    assert lab[:2] == ["jupyter", "lab"] and "--port=8888" in lab and "--ip=0.0.0.0" in lab
    for service in services.values():  # every tfp-aline command anywhere in the file
        argv = as_argv(service.get("command", ["tfp-aline", "train", "--config", "configs/migraine.yaml"]))
        if argv[0] == "tfp-aline":
            check_tfp_aline_command(argv)


def test_gpu_reservation_is_optional(compose):
    services = compose["services"]
    assert "deploy" not in services["train"], "plain `train` must start on a host without GPUs"
    gpu = services["train-gpu"]
    assert gpu["profiles"] == ["gpu"] and gpu["command"] == services["train"]["command"]
    device = gpu["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


def test_dockerignore_keeps_local_state_out_of_the_image():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", "venv", "runs", "*.egg-info"} <= ignored
    assert not {"data", "configs", "tfp_aline", "requirements.txt"} & ignored


def test_compose_serves_the_advice_api_with_the_serve_extra_installed(compose):
    import tomllib

    serve = compose["services"]["serve"]
    args = check_tfp_aline_command(as_argv(serve["command"]))
    assert args.command == "serve" and (ROOT / args.run / "model.keras").is_file()
    assert args.host == "0.0.0.0", "inside a container the service must listen beyond loopback"
    assert f"{args.port}:{args.port}" in serve["ports"] and str(args.port) in instruction("EXPOSE")[-1].split()
    # The image installs the `serve` extra at the versions pyproject.toml pins (pip install --no-deps -e .
    # would not bring them).
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["serve"]
    runs = " ".join(instruction("RUN"))
    for pin in extra:
        assert f'"{pin}"' in runs, f"the Dockerfile does not install {pin}"
