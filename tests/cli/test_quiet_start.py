"""A quiet start: no absl/oneDNN/CUDA start-up lines on stderr unless asked for,
one `device:` line of our own, and nothing that hides a GPU or a real error."""

import os
import re
import subprocess
import sys

import pytest
from conftest import ROOT

from tfp_aline import quiet

ABSL = re.compile(r"^(?:[IWEF]0000 |WARNING: All log messages before absl)")


def run_cli(*args, env_extra=None):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", quiet.ENV_VERBOSE)}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "tfp_aline", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300
    )


def test_generate_mock_starts_without_tensorflow_noise(tmp_path):
    proc = run_cli("generate-mock", "--out", str(tmp_path), "--n", "200")
    assert proc.returncode == 0, proc.stderr
    noise = [line for line in proc.stderr.splitlines() if ABSL.match(line)]
    assert not noise, proc.stderr
    assert "Traceback" not in proc.stderr and (tmp_path / "mock_distribution.csv").exists()


def test_verbose_brings_tensorflow_logs_back(tmp_path):
    proc = run_cli("--verbose", "generate-mock", "--out", str(tmp_path), "--n", "200")
    assert proc.returncode == 0, proc.stderr
    if not any(ABSL.match(line) for line in proc.stderr.splitlines()):
        pytest.skip("this TensorFlow build prints nothing at start-up, even with every log level on")


def test_configure_sets_the_level_before_tensorflow_starts(monkeypatch):
    monkeypatch.delenv(quiet.ENV_VERBOSE, raising=False)
    monkeypatch.setattr(quiet, "USER_TF_LOG_LEVEL", None)
    assert quiet.configure(False) is False and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"
    assert quiet.configure(True) is True and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    monkeypatch.setattr(quiet, "USER_TF_LOG_LEVEL", "1")
    monkeypatch.setenv(quiet.ENV_VERBOSE, "1")
    assert quiet.configure(False) is True and os.environ["TF_CPP_MIN_LOG_LEVEL"] == "1"
    monkeypatch.setenv(quiet.ENV_VERBOSE, "0")
    assert quiet.configure(False) is False
    quiet.configure(False)


def test_noise_filter_drops_start_up_lines_only():
    start_up = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796106671.207016    4760 port.cc:153] oneDNN custom operations are on.",
        "I0000 00:00:1796106671.207560    4760 cudart_stub.cc:31] Could not find cuda drivers on your machine",
        "W0000 00:00:1758131437.322781 3722519 computation_placer.cc:177] computation placer already registered.",
        "E0000 00:00:1758131437.297298 3722519 cuda_dnn.cc:8579] Unable to register cuDNN factory: Attempting ...",
        "To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow",
    ]
    cu_init = "E0000 00:00:1796106676.959290    4760 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)"
    for line in start_up:
        assert quiet.is_noise(line, driver=False) and quiet.is_noise(line, driver=True), line
    assert quiet.is_noise(cu_init, driver=False)
    assert not quiet.is_noise(cu_init, driver=True)  # with a GPU driver a failing cuInit is a real problem
    for line in (
        "E0000 00:00:1.0 1 op.cc:1] something actually broke",
        "Traceback (most recent call last):",
        "ImportError: libcudnn.so.9: cannot open shared object file",
    ):
        assert not quiet.is_noise(line, driver=False), line


def test_filtered_stderr_replays_what_is_not_noise(capfd):
    with quiet.filtered_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n")
        os.write(2, b"I0000 00:00:1796106671.207016    4760 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, b"a real problem\n")
    assert capfd.readouterr().err == "a real problem\n"


def test_device_line_says_cpu_no_gpu_found(monkeypatch):
    import tensorflow as tf

    from tfp_aline import devices

    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])
    monkeypatch.setattr(quiet, "gpu_driver_present", lambda: False)
    assert devices.describe_devices() == "CPU (no GPU found)"
    monkeypatch.setattr(quiet, "gpu_driver_present", lambda: True)
    assert "NVIDIA driver is present" in devices.describe_devices()
