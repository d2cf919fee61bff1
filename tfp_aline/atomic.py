"""Atomic writes of files and folders: write to a temporary beside the target, then rename.

Every file or folder the package writes goes through here, so an interrupted write never
leaves a half-written result in place of a good one.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path in the target's folder; rename it to `path` only on success.

    If the body raises, the temporary file is removed and an existing `path` is untouched.
    `suffix` is the temporary's extension (e.g. '.keras' for writers that insist on one).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    # mkstemp makes the file private (0600); give it the mode a plain open() would (0666 - umask).
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path, data: bytes):
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path, text: str):
    write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder beside `path`; on success it replaces `path` whole (an old folder
    is moved aside first, since a rename cannot replace a non-empty folder, and moved back if the
    rename fails). If the body raises, the temporary folder is removed and an existing `path` is
    untouched."""
    path = Path(os.path.abspath(path))  # '.' has no name to put beside it
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; give it a plain mkdir's mode
    try:
        yield tmp
        if path.is_dir():
            _swap_dirs(tmp, path)
        else:
            if path.exists():
                path.unlink()
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _swap_dirs(new: Path, path: Path):
    old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
    os.replace(path, old / "x")
    try:
        os.replace(new, path)
    except BaseException:
        os.replace(old / "x", path)
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)


def write_files(blobs: dict):
    """Write {path: bytes} as one set: every file goes to a temporary first, and only when all are
    written are they renamed into place, so a full disk never leaves a new file beside old ones."""
    tmps = {}
    try:
        for path, data in blobs.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            tmps[path] = Path(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o666 & ~_umask())
        for path, tmp in tmps.items():
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
