"""Shared fixtures: the shipped feature table as rows, writers for malformed tables, seeds."""

import csv
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TABLE_CSV = ROOT / "data" / "migraine_prediction.csv"
TABLE_XLSX = ROOT / "data" / "migraine_prediction.xlsx"


@pytest.fixture
def seed():
    """A stateless TF seed (shape [2]) shared by tests that sample."""
    import tensorflow as tf

    return tf.constant([20251115, 1], tf.int32)


@pytest.fixture
def table_rows():
    """The shipped table as a list of dicts (column name -> cell text), fresh for each test."""
    with open(TABLE_CSV, newline="", encoding="utf-8") as f:
        return [dict(r) for r in csv.DictReader(f)]


@pytest.fixture
def write_xlsx(tmp_path):
    """write_xlsx(rows or {sheet: rows}, name) -> path of an .xlsx holding them (header = row 1)."""
    import openpyxl

    def write(rows, name="table.xlsx"):
        sheets = rows if isinstance(rows, dict) else {"features": rows}
        wb = openpyxl.Workbook()
        wb.remove(wb.active)
        for title, sheet_rows in sheets.items():
            ws = wb.create_sheet(title)
            if sheet_rows:
                header = list(sheet_rows[0])
                ws.append(header)
                for r in sheet_rows:
                    ws.append([r.get(h) for h in header])
        path = tmp_path / name
        wb.save(path)
        return path

    return write


@pytest.fixture(scope="session")
def smoke_training(tmp_path_factory):
    """(Trainer, TrainResult) of the session's one smoke training (configs/smoke.yaml, 6 epochs,
    about 20 s). Its run dir holds config.yaml, model.keras, checkpoints/ and TensorBoard logs.
    Tests must not write into it."""
    from tfp_aline.config import load_config
    from tfp_aline.training.trainer import Trainer

    trainer = Trainer(load_config(ROOT / "configs" / "smoke.yaml"), tmp_path_factory.mktemp("smoke-run"))
    return trainer, trainer.fit(progress=False)


@pytest.fixture(scope="session")
def smoke_run_dir(smoke_training):
    """The run dir of the session's smoke training (read-only)."""
    return smoke_training[1].logdir


@pytest.fixture(scope="session")
def migraine_task():
    """The migraine task of the shipped feature table, built once per session (read-only)."""
    from tfp_aline.migraine.task import MigraineTask

    return MigraineTask()


@pytest.fixture(scope="session")
def task(migraine_task):
    """The default task of a test module: migraine (a module may override it, e.g. psychometric)."""
    return migraine_task
