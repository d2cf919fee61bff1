"""Output paths checked before any work, so a bad `--out` or `--logdir` fails at once, not after it."""

from __future__ import annotations

import os
from pathlib import Path

from tfp_aline.errors import TfpAlineError
from tfp_aline.run_files import CHECKPOINT_DIR, CHECKPOINT_INDEX, CONFIG_FILE, MODEL_FILE


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path("/")


def check_output_dir(path, flag: str, *, must_be_empty: bool = False, files=()) -> Path:
    """Raise unless `path` is a folder we can write into or create.

    `must_be_empty`: an existing folder must hold nothing (e.g. `export` without --force);
    `files`: names that will be written inside, which must not be folders.
    """
    path = Path(path)
    where = f"{flag} {path}"
    if path.exists() and not path.is_dir():
        raise TfpAlineError(
            f"{where}: exists and is not a folder; expected a folder to write into (choose another path)"
        )
    base = _nearest_existing(Path(os.path.abspath(path)))
    if not base.is_dir():
        raise TfpAlineError(f"{where}: cannot create the folder, {base} is a file")
    if not os.access(base, os.W_OK | os.X_OK):
        raise TfpAlineError(f"{where}: no permission to write in {base}")
    if must_be_empty and path.is_dir() and any(path.iterdir()):
        raise TfpAlineError(f"{where}: folder is not empty; choose another {flag} or pass --force to replace it")
    for name in files:
        if (path / name).is_dir():
            raise TfpAlineError(f"{where}: {path / name} is a folder, so {name} cannot be written there")
    return path


RUN_MARKERS = (MODEL_FILE, CHECKPOINT_DIR)  # beside config.yaml, what makes a folder a run folder
REPORT_SUFFIXES = (".md", ".csv", ".png")  # what `evaluate` writes into its output folder


def is_run_dir(path) -> bool:
    """A folder `tfp-aline train` wrote: config.yaml beside model.keras or checkpoints/."""
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and any((path / m).exists() for m in RUN_MARKERS)


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


# A checkpoint index or a trained model anywhere inside also marks a run's own files (e.g. its
# checkpoints/ folder given as --out).
RUN_FILES = (CHECKPOINT_INDEX, MODEL_FILE)


def _run_inside(path: Path) -> Path | None:
    for folder, subfolders, files in os.walk(path):
        if is_run_dir(folder) or any(f in files for f in RUN_FILES):
            return Path(folder)
        subfolders[:] = [s for s in subfolders if not os.path.islink(os.path.join(folder, s))]
    return None


def check_replaceable(path, flag: str, *, keep=()) -> Path:
    """Raise unless replacing the folder `path` as a whole loses nothing it must not: the working
    folder (or one holding it), any folder in `keep` (e.g. the run being exported) or one holding
    it, and any run folder or folder holding one. Nothing to check when `path` does not exist."""
    path = Path(path)
    if not path.is_dir():
        return path
    real = Path(os.path.realpath(path))
    where = f"{flag} {path}"
    if _within(Path(os.path.realpath(os.getcwd())), real):
        raise TfpAlineError(
            f"{where}: is the working folder or holds it, so it cannot be replaced; choose a new folder"
        )
    for k in keep:
        if _within(Path(os.path.realpath(k)), real):
            raise TfpAlineError(f"{where}: is or holds {k}, which would be deleted; choose a folder outside it")
    run = _run_inside(real)
    if run is not None:
        what = "is a run folder or holds a run's files" if run == real else f"holds the run folder {run}"
        raise TfpAlineError(f"{where}: {what}, which is never replaced (not even with --force); choose another folder")
    return path


def check_report_dir(path, flag: str, *, keep=()) -> Path:
    """`check_replaceable`, and an existing folder may hold only an earlier report (.md, .csv, .png
    files): it is replaced as a whole, so other files there would be lost."""
    path = check_replaceable(path, flag, keep=keep)
    if path.is_dir():
        for entry in sorted(path.iterdir()):
            if not entry.is_file() or entry.suffix not in REPORT_SUFFIXES:
                raise TfpAlineError(
                    f"{flag} {path}: holds {entry.name}, which is not part of a report, and the folder is "
                    "replaced as a whole; choose a new or empty folder"
                )
    return path


# Inputs (tables, histories, configs) are small text or workbook files; far larger is a mistake
# (a log, /dev/zero) that would be read into memory whole.
MAX_INPUT_BYTES = 50 * 2**20


def input_file_problem(path, max_bytes: int = MAX_INPUT_BYTES) -> str | None:
    """Why `path` cannot be read as an input file (a FIFO or device would block or never end, a
    huge file fills memory); None if it is a regular file of a readable size."""
    try:
        st = os.stat(path)
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    import stat

    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a pipe, device or socket); expected a file on disk"
    if st.st_size > max_bytes:
        return f"is {st.st_size / 2**20:.0f} MB; expected an input file of at most {max_bytes // 2**20} MB"
    return None
