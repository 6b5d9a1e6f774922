"""Resumable training for the command line: periodic checkpoints of everything a run needs.

A checkpoint holds the model's weights with the optimizer state (so the
collocation step and normalisation come back too), the early-stopping state
including its best weights, and the history so far. Each is written to a
temporary directory and renamed to `epoch-NNNNNN` (`files.staged`), so a
process killed at any moment leaves the previous checkpoint complete. Together with a fixed batch
order, resuming from one reproduces the uninterrupted run exactly.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import time

import keras
import numpy as np

from keras_gradinn import files

__all__ = ["Checkpointer", "ResumableEarlyStopping", "latest", "restore"]


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
        for stale in self.directory.glob(f".epoch-*{files.STAGING_MARK}*"):
            shutil.rmtree(stale, ignore_errors=True)

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        if time.monotonic() - self._last < self.seconds:
            return
        final = self.directory / f"epoch-{epoch:06d}"
        # A failed write (a full disk, say) leaves no partial directory.
        with files.staged(final, directory=True) as staging:
            self.model.save_weights(staging / "model.weights.h5")
            state = {"epoch": epoch, "history": self.history}
            stopper = self.early_stopping
            if stopper is not None:
                state["early_stopping"] = stopper.state()
                if stopper.best_weights is not None:
                    np.savez(staging / "best_weights.npz", *stopper.best_weights)
            (staging / "state.json").write_text(json.dumps(state))
        # Only now that the new checkpoint is complete may the older ones go.
        for older in self.directory.glob("epoch-*"):
            if older != final:
                shutil.rmtree(older, ignore_errors=True)
        self._last = time.monotonic()


def latest(directory: pathlib.Path) -> pathlib.Path | None:
    """The newest complete checkpoint in `directory`, or None.

    Only renamed checkpoints count: a write killed part-way leaves at most a
    `.epoch-NNNNNN.partial-*` directory, which is ignored.
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
