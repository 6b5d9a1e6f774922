"""Resumable training for the command line: periodic checkpoints of everything a run needs.

A checkpoint holds the model's weights with the optimizer state (so the
collocation step and normalisation come back too), the early-stopping state
including its best weights, and the history so far. Each is written to a
temporary directory and renamed to `epoch-NNNNNN`, so a process killed at any
moment leaves the previous checkpoint complete. Together with a fixed batch
order, resuming from one reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from typing import TextIO

import keras
import numpy as np

__all__ = ["Checkpointer", "ResumableEarlyStopping", "atomic_file", "latest", "plain_mode",
           "restore", "write_atomically"]


def plain_mode(target: pathlib.Path, *, directory: bool = False) -> int:
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


@contextlib.contextmanager
def atomic_file(path: pathlib.Path, *, newline: str | None = None) -> Iterator[TextIO]:
    """A text stream whose contents replace `path` only once the block completes.

    The text goes to a temporary sibling, which gets `plain_mode(path)` and
    is renamed over `path`. If the block or the rename fails, `path` is left
    as it was and the sibling is removed. (A killed process can leave the
    sibling, `.<name>.partial-*`, but never a half-written `path`.)
    """
    path = pathlib.Path(path)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.partial-", dir=path.parent)
    try:
        with os.fdopen(handle, "w", newline=newline) as stream:
            yield stream
        os.chmod(staging, plain_mode(path))
        os.replace(staging, path)
    finally:
        if os.path.exists(staging):
            os.remove(staging)


def write_atomically(path: pathlib.Path, text: str) -> None:
    """Writes `text` to a temporary sibling of `path`, then renames it into place."""
    with atomic_file(path) as stream:
        stream.write(text)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` whose counters and best weights can be saved and restored."""

    _pending: dict | None = None

    def state(self) -> dict:
        best = None if self.best is None else float(self.best)
        return {"wait": self.wait, "best": best, "best_epoch": self.best_epoch}

    def resume_from(self, state: dict, best_weights: list[np.ndarray] | None) -> None:
        self._pending = dict(state, best_weights=best_weights)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self._pending is not None:
            self.wait = self._pending["wait"]
            self.best = self._pending["best"]
            self.best_epoch = self._pending["best_epoch"]
            self.best_weights = self._pending["best_weights"]
            self._pending = None


class Checkpointer(keras.callbacks.Callback):
    """Writes a checkpoint at the end of an epoch, at most every `seconds` seconds."""

    def __init__(self, directory: pathlib.Path, *, seconds: float,
                 early_stopping: ResumableEarlyStopping | None, history: dict[str, list]):
        super().__init__()
        self.directory, self.seconds = directory, seconds
        self.early_stopping = early_stopping
        self.history = {key: list(values) for key, values in history.items()}
        self._last = time.monotonic()
        # A process killed while writing a checkpoint left its staging folder.
        for stale in self.directory.glob(".partial-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if time.monotonic() - self._last < self.seconds:
            return
        final = self.directory / f"epoch-{epoch:06d}"
        staging = pathlib.Path(tempfile.mkdtemp(prefix=".partial-", dir=self.directory))
        try:
            self.model.save_weights(staging / "model.weights.h5")
            state = {"epoch": epoch, "history": self.history}
            stopper = self.early_stopping
            if stopper is not None:
                state["early_stopping"] = stopper.state()
                if stopper.best_weights is not None:
                    np.savez(staging / "best_weights.npz", *stopper.best_weights)
            (staging / "state.json").write_text(json.dumps(state))
            staging.rename(final)
        finally:
            # After a failed write (a full disk, say) leave no partial directory;
            # after the rename there is nothing left to remove.
            shutil.rmtree(staging, ignore_errors=True)
        # Only now that the new checkpoint is complete may the older ones go.
        for older in self.directory.glob("epoch-*"):
            if older != final:
                shutil.rmtree(older, ignore_errors=True)
        self._last = time.monotonic()


def latest(directory: pathlib.Path) -> pathlib.Path | None:
    """The newest complete checkpoint in `directory`, or None.

    Only renamed checkpoints count: a write killed part-way leaves at most a
    `.partial-*` directory, which is ignored.
    """
    found = sorted(directory.glob("epoch-*")) if directory.is_dir() else []
    return found[-1] if found else None


def restore(model, checkpoint: pathlib.Path,
            early_stopping: ResumableEarlyStopping | None) -> tuple[int, dict]:
    """Loads a checkpoint into a compiled model; returns (next epoch, history so far)."""
    state = json.loads((checkpoint / "state.json").read_text())
    model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint / "model.weights.h5")
    if early_stopping is not None and "early_stopping" in state:
        best = None
        if (checkpoint / "best_weights.npz").is_file():
            with np.load(checkpoint / "best_weights.npz", allow_pickle=False) as data:
                best = [data[f"arr_{i}"] for i in range(len(data.files))]
        early_stopping.resume_from(state["early_stopping"], best)
    return state["epoch"] + 1, state["history"]
