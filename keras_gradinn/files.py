"""Writing files and folders atomically, with the permission bits the umask gives.

Every artifact the package writes (a run directory, a predictions CSV, an
export, a checkpoint, a `.keras` file) is assembled in a temporary sibling of
its target, `.<target name>.partial-*`, and renamed over the target only once
complete: a failure part-way leaves the previous target untouched and
removes the sibling; a killed process can leave the sibling (which readers
ignore and writers clear), never a half-written target. The sibling is
given the mode a plain `open()` or `mkdir` would give the target before it
is renamed, so that staging does not make artifacts private.

Example:
    >>> with staged(pathlib.Path("run/model.keras")) as path:
    ...     model.save(path)
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from typing import TextIO

__all__ = ["STAGING_MARK", "atomic_file", "make_folders", "plain_mode", "staged",
           "write_atomically"]

#: What every staging sibling's name holds after the target's name:
#: `.<target name>.partial-<random>`. Clean-up globs match it.
STAGING_MARK = ".partial-"


def plain_mode(target: str | os.PathLike, *, directory: bool = False) -> int:
    """The permission bits a plain `open(target, "w")` (or `mkdir`) would leave on `target`.

    `tempfile.mkstemp` creates files 0o600 and `mkdtemp` directories 0o700,
    whatever the umask; an artifact staged with them gets these bits before
    it is renamed into place, so that users see the mode they would without
    the staging. As with `open`, an existing target keeps its own bits; a
    new one gets 0o666 (0o777 for a directory) minus the umask.
    """
    with contextlib.suppress(FileNotFoundError):
        return stat.S_IMODE(os.stat(target).st_mode)
    # The umask can only be read by setting it. Set a strict one meanwhile,
    # so that a file another thread creates in between is private, not open.
    umask = os.umask(0o077)
    os.umask(umask)
    return (0o777 if directory else 0o666) & ~umask


def _discard(path: pathlib.Path) -> None:
    """Removes a staging file or folder, if it is still there."""
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _replace_directory(staging: pathlib.Path, target: pathlib.Path) -> None:
    """Renames `staging` to `target`, replacing an old `target` only once the new one is in."""
    old = None
    if target.exists():
        # A directory cannot be renamed over a non-empty one: set the old one
        # aside, and put it back if the new one cannot take its place.
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        target.rename(old)
    try:
        staging.rename(target)
    except OSError:
        if old is not None:
            old.rename(target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def staged(target: str | os.PathLike, *, directory: bool = False) -> Iterator[pathlib.Path]:
    """A temporary sibling of `target` that replaces it when the block completes.

    Yields the path of `.<target name>.partial-*` next to `target`: an empty
    file with `target`'s suffix (writers such as Keras check the suffix), or
    with `directory` an empty folder. When the block completes, the sibling
    gets `plain_mode(target)` and is renamed over `target` (an existing
    directory is set aside first and removed once the new one is in place;
    if the rename fails, it is restored). When the block or the rename
    fails, the sibling is removed and `target` is left as it was. Whether an
    existing `target` may be replaced is the caller's decision.

    Args:
        target: the file or directory to write; its folder must exist.
        directory: stage a folder instead of a file.

    Yields:
        The staging path to write to.
    """
    target = pathlib.Path(target)
    prefix = f".{target.name}{STAGING_MARK}"
    if directory:
        staging = pathlib.Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        handle, name = tempfile.mkstemp(prefix=prefix, suffix=target.suffix, dir=target.parent)
        os.close(handle)
        staging = pathlib.Path(name)
    try:
        yield staging
        os.chmod(staging, plain_mode(target, directory=directory))
        if directory:
            _replace_directory(staging, target)
        else:
            os.replace(staging, target)
    finally:
        _discard(staging)


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, newline: str | None = None) -> Iterator[TextIO]:
    """A text stream whose contents replace `path` only once the block completes (`staged`)."""
    with staged(path) as staging, open(staging, "w", newline=newline) as stream:
        yield stream


def write_atomically(path: str | os.PathLike, text: str) -> None:
    """Writes `text` to a temporary sibling of `path`, then renames it into place."""
    with atomic_file(path) as stream:
        stream.write(text)


def make_folders(path: str | os.PathLike) -> Callable[[], None]:
    """Creates the folder `path` and its missing parents; returns their undo.

    The returned function removes the folders this call created, deepest
    first, where they are empty: a writer that fails calls it to leave the
    tree as it found it.

    Example:
        >>> undo = make_folders("serving/friedman")
        >>> try:
        ...     write(...)
        ... except BaseException:
        ...     undo()
        ...     raise
    """
    path = pathlib.Path(path)
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    path.mkdir(parents=True, exist_ok=True)

    def undo() -> None:
        for folder in created:
            with contextlib.suppress(OSError):
                folder.rmdir()

    return undo
