"""Artifacts are written atomically: a failure part-way leaves the previous one intact.

Each test injects a failure at a chosen point of a real write (the last
file, or the rename that publishes it) and checks that the previous
artifact is byte-identical, that no partial file or directory remains, and
that a successful write gets the permission bits a plain `open`/`mkdir`
would give. Everything runs in this process, through the command line's
`main`, to avoid TensorFlow start-ups.
"""

import csv
import errno
import os
import pathlib
import shutil

import keras
import numpy as np
import pytest

from keras_gradinn import checkpoints, files
from keras_gradinn.cli import main

FIT = ["--inputs", "a,b", "--targets", "u", "--prior", "none", "--steps", "2", "--width", "4",
       "--depth", "1", "--n-collocation", "8", "--members", "1", "--no-calibrate", "--quiet"]
UMASK = 0o027  # neither the usual 0o022 nor what mkstemp/mkdtemp give (0o600/0o700)


def disk_full() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def snapshot(folder: pathlib.Path) -> dict[str, bytes]:
    """Every file under `folder`, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


@pytest.fixture
def umask():
    previous = os.umask(UMASK)
    yield UMASK
    os.umask(previous)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A data file and a complete tiny run written under UMASK, to copy and predict with."""
    folder = tmp_path_factory.mktemp("finished")
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(12, 2))
    with open(folder / "data.csv", "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["a", "b", "u"])
        writer.writerows(np.c_[x, np.sin(3 * x[:, 0]) + x[:, 1]].tolist())
    previous = os.umask(UMASK)
    try:
        assert main(["fit", str(folder / "data.csv"), *FIT, "--out", str(folder / "run")]) == 0
    finally:
        os.umask(previous)
    return folder


def fail_at(monkeypatch, where: str, name: str) -> None:
    """Makes writing the artifact called `name` fail at `where`.

    "the last file": the last file of the artifact is half-written, then the
    disk is full. "the rename": everything is written, but publishing it fails.
    """
    if where == "the last file":
        from keras_gradinn import plots

        def slices(path, *args, **kwargs):
            pathlib.Path(path).write_bytes(b"\x89PNG half")
            raise disk_full()

        monkeypatch.setattr(plots, "slices", slices)
        return
    rename = pathlib.Path.rename

    def failing_rename(self, target):
        if self.name.startswith(f".{name}.partial-"):
            raise disk_full()
        return rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", failing_rename)


# ----------------------------------------------------------- run directories


def test_a_fit_that_fails_while_publishing_a_new_run_directory_leaves_nothing(
        tmp_path, monkeypatch, capsys, finished_run):
    # (Failing at the last file instead costs another fit and proves nothing
    # more: the overwrite test below does both.)
    fail_at(monkeypatch, "the rename", "new")
    out = tmp_path / "runs" / "new"  # its parent is created by the fit, so must go too
    assert main(["fit", str(finished_run / "data.csv"), *FIT, "--out", str(out)]) == 1
    error = capsys.readouterr().err.strip()
    assert error == "keras-gradinn: error: [Errno 28] No space left on device"
    assert list(tmp_path.iterdir()) == []  # no run, staging, checkpoint nor parent


@pytest.mark.parametrize("where", ["the last file", "the rename"])
def test_a_fit_that_fails_while_replacing_a_run_leaves_the_old_run_byte_identical(
        tmp_path, monkeypatch, finished_run, where):
    shutil.copytree(finished_run / "run", tmp_path / "run")
    (tmp_path / "run" / "notes.txt").write_text("the old run's own file")
    before = snapshot(tmp_path / "run")
    fail_at(monkeypatch, where, "run")
    code = main(["fit", str(finished_run / "data.csv"), *FIT, "--out", str(tmp_path / "run"),
                 "--overwrite"])
    assert code == 1
    assert snapshot(tmp_path / "run") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no staging, set-aside
    # old run nor checkpoint


def test_a_run_directory_gets_the_mode_mkdir_gives(finished_run):
    run = finished_run / "run"
    assert oct(run.stat().st_mode & 0o777) == oct(0o777 & ~UMASK)
    assert {oct(p.stat().st_mode & 0o777) for p in run.iterdir()} == {oct(0o666 & ~UMASK)}


# ------------------------------------------------------------ prediction CSVs


def predict(finished_run, out: pathlib.Path) -> int:
    return main(["predict", str(finished_run / "run" / "model.keras"),
                 str(finished_run / "data.csv"), "--out", str(out)])


@pytest.mark.parametrize("where", ["the write", "the rename"])
def test_a_predict_that_fails_while_writing_leaves_the_old_csv_byte_identical(
        tmp_path, monkeypatch, capsys, finished_run, where):
    out = tmp_path / "predictions.csv"
    out.write_text("a,b,u\n1,2,3\n")
    if where == "the write":
        real_writer = csv.writer

        class HalfWriter:
            """Writes the header and half the rows, then finds the disk full."""

            def __init__(self, stream, **kwargs):
                self.inner, self.stream = real_writer(stream, **kwargs), stream

            def writerow(self, row):
                self.inner.writerow(row)

            def writerows(self, rows):
                self.inner.writerows(rows[: len(rows) // 2])
                self.stream.flush()
                raise disk_full()

        monkeypatch.setattr(csv, "writer", HalfWriter)
    else:
        replace = os.replace

        def failing_replace(source, target, *args, **kwargs):
            if pathlib.Path(target) == out:
                raise disk_full()
            return replace(source, target, *args, **kwargs)

        monkeypatch.setattr(os, "replace", failing_replace)
    assert predict(finished_run, out) == 1
    assert "No space left on device" in capsys.readouterr().err
    assert out.read_text() == "a,b,u\n1,2,3\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]


def test_a_prediction_csv_gets_the_mode_open_gives(tmp_path, finished_run, umask):
    new = tmp_path / "new.csv"
    assert predict(finished_run, new) == 0
    assert oct(new.stat().st_mode & 0o777) == oct(0o666 & ~umask)
    with open(new) as stream:
        assert len(list(csv.reader(stream))) == 13  # the header and 12 rows, complete
    # Like open(), rewriting an existing file keeps its mode (here, private).
    private = tmp_path / "private.csv"
    private.write_text("old")
    private.chmod(0o600)
    assert predict(finished_run, private) == 0
    assert oct(private.stat().st_mode & 0o777) == oct(0o600)
    assert private.read_text() == new.read_text()


def test_write_atomically_keeps_the_old_file_when_the_rename_fails(tmp_path, monkeypatch):
    path = tmp_path / "scores.json"
    path.write_text("[1]")

    def failing_replace(source, target, *args, **kwargs):
        raise disk_full()

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="No space left"):
        files.write_atomically(path, "[1, 2]")
    assert path.read_text() == "[1]"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.json"]


# ------------------------------------------------------------ every artifact


def mode(path: pathlib.Path) -> str:
    return oct(path.stat().st_mode & 0o777)


def test_every_artifact_gets_the_mode_a_plain_open_or_mkdir_gives(tmp_path, finished_run, umask):
    # Staged files and folders start private (mkstemp 0o600, mkdtemp 0o700):
    # each artifact must end with the bits the umask gives a plain open/mkdir.
    with open(tmp_path / "plain.txt", "w"):
        pass
    (tmp_path / "plain").mkdir()
    assert predict(finished_run, tmp_path / "predictions.csv") == 0
    model = finished_run / "run" / "model.keras"
    exported = tmp_path / "model.onnx"
    assert main(["export", str(model), "--onnx", str(exported)]) == 0
    from keras_gradinn import export
    from keras_gradinn.cli.common import load_model

    version = export.to_saved_model(load_model(model), tmp_path / "serving", verify=False)
    assert mode(tmp_path / "predictions.csv") == mode(exported) == mode(tmp_path / "plain.txt")
    assert mode(finished_run / "run") == mode(version) == mode(tmp_path / "plain")
    assert mode(tmp_path / "plain") == oct(0o777 & ~UMASK)  # the umask set, not the default


# ------------------------------------------------------- training checkpoints


def tiny_model() -> keras.Model:
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return model


class RecordWeights(keras.callbacks.Callback):
    """The weights at each epoch's end, to compare a restored checkpoint with."""

    def __init__(self):
        super().__init__()
        self.weights = []

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def train_with_checkpoints(folder: pathlib.Path, epochs: int) -> tuple[RecordWeights, Exception]:
    """Trains `epochs` epochs with a checkpoint after each; returns the failure it raised."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 2)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    recorder = RecordWeights()
    saver = checkpoints.Checkpointer(folder, seconds=0, early_stopping=None, history={})
    with pytest.raises(OSError) as failure:
        tiny_model().fit(x, y, epochs=epochs, batch_size=16, verbose=0,
                         callbacks=[recorder, saver])
    return recorder, failure.value


def fail_checkpoint(monkeypatch, where: str, epoch: int) -> None:
    """Makes writing the checkpoint of `epoch` fail at `where`."""
    if where == "the last file":
        write_text = pathlib.Path.write_text

        def half_write_text(self, text, *args, **kwargs):
            if self.name == "state.json" and f'"epoch": {epoch},' in text:
                write_text(self, text[: len(text) // 2], *args, **kwargs)
                raise disk_full()
            return write_text(self, text, *args, **kwargs)

        monkeypatch.setattr(pathlib.Path, "write_text", half_write_text)
        return
    rename = pathlib.Path.rename

    def failing_rename(self, target):
        if pathlib.Path(target).name == f"epoch-{epoch:06d}":
            raise disk_full()
        return rename(self, target)

    monkeypatch.setattr(pathlib.Path, "rename", failing_rename)


def assert_restores_epoch(folder: pathlib.Path, epoch: int, recorder: RecordWeights) -> None:
    checkpoint = checkpoints.latest(folder)
    assert checkpoint == folder / f"epoch-{epoch:06d}"
    model = tiny_model()
    next_epoch, history = checkpoints.restore(model, checkpoint, None)
    assert next_epoch == epoch + 1 and len(history["loss"]) == epoch + 1
    for restored, recorded in zip(model.get_weights(), recorder.weights[epoch], strict=True):
        np.testing.assert_array_equal(restored, recorded)


@pytest.mark.parametrize("where", ["the last file", "the rename"])
def test_a_checkpoint_that_fails_midway_leaves_the_previous_one_loadable_and_no_debris(
        tmp_path, monkeypatch, where):
    fail_checkpoint(monkeypatch, where, epoch=2)
    recorder, failure = train_with_checkpoints(tmp_path, epochs=4)
    assert failure.errno == errno.ENOSPC
    assert [p.name for p in tmp_path.iterdir()] == ["epoch-000001"]
    assert_restores_epoch(tmp_path, 1, recorder)


def test_a_checkpoint_killed_midway_leaves_debris_that_latest_ignores(tmp_path, monkeypatch):
    # A kill runs no clean-up: fail the write, and make the clean-up do nothing.
    fail_checkpoint(monkeypatch, "the last file", epoch=2)
    rmtree = shutil.rmtree
    monkeypatch.setattr(shutil, "rmtree", lambda path, *args, **kwargs: (
        None if pathlib.Path(path).name.startswith(".epoch-000002.partial-")
        else rmtree(path, *args, **kwargs)))
    recorder, _ = train_with_checkpoints(tmp_path, epochs=4)
    monkeypatch.undo()
    debris = [p for p in tmp_path.iterdir() if p.name.startswith(".epoch-000002.partial-")]
    assert len(debris) == 1 and (debris[0] / "model.weights.h5").is_file()
    assert_restores_epoch(tmp_path, 1, recorder)
    # A folder holding nothing but debris has nothing to resume from.
    rmtree(tmp_path / "epoch-000001")
    assert checkpoints.latest(tmp_path) is None
