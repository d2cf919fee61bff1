"""The notebooks: committed without outputs, and each runs top to bottom on its smoke settings."""

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOK_DIR = ROOT / "notebooks"
NOTEBOOKS = (
    "mock_data_inspect.ipynb",
    "mock_distribution_demo.ipynb",
    "training.ipynb",
    "active_learning.ipynb",
    "location_finding.ipynb",
)
CELL_TIMEOUT = 300  # seconds per cell


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOK_DIR.glob("*.ipynb")) == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_without_outputs(name):
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code), (
        f"{name}: clear the outputs before committing"
    )
    settings = code[0].source
    smoke = 'os.environ.get("TFP_ALINE_NOTEBOOK_SMOKE") == "1"'
    assert smoke in settings, f"{name}: first code cell is not the settings"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_runs_top_to_bottom(name, tmp_path, monkeypatch):
    # The kernel inherits this environment: smallest settings, and temporary files under tmp_path.
    monkeypatch.setenv("TFP_ALINE_NOTEBOOK_SMOKE", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    client = NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK_DIR)}}
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, if a cell fails
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert any(
        o.output_type == "display_data" and "image/png" in o.data
        for c in nb.cells
        if c.cell_type == "code"
        for o in c.outputs
    ), f"{name}: showed no figure"
