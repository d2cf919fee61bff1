"""Output paths checked before any work, so a bad `--out` or `--logdir` fails at once, not after it."""

from __future__ import annotations

import os
from pathlib import Path

from tfp_aline.errors import TfpAlineError


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
