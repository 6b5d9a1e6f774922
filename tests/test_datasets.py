"""Streaming data from disk: keras_gradinn.datasets, GradINN.fit on streams, the scale benchmark."""

import json
import math
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import SUBPROCESS_TIMEOUT

import keras_gradinn as kg
from keras_gradinn import datasets
from keras_gradinn.datasets import DataError

ROOT = pathlib.Path(__file__).resolve().parents[1]


def write_pair(directory, n=1003, d=3, *, x_dtype=np.float32, y_dtype=np.float32, y_1d=False):
    """x[:, 0] is the row number, so tests can tell which rows a stream yielded."""
    rng = np.random.default_rng(0)
    x = rng.random((n, d)).astype(x_dtype)
    x[:, 0] = np.arange(n)
    y = (2.0 * np.arange(n) + 0.5).astype(y_dtype)
    y = y if y_1d else y[:, None]
    paths = directory / "x.npy", directory / "y.npy"
    np.save(paths[0], x)
    np.save(paths[1], y)
    return paths, x, y


def epoch(dataset):
    batches = list(dataset.as_numpy_iterator())
    return batches, np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def small_model(d=3, bounds=None):
    model = kg.GradINN(kg.mlp(d, 1, width=8, depth=1, seed=0), "smooth",
                       bounds=bounds if bounds is not None else [(0.0, 1.0)] * d,
                       n_collocation=16, seed=0)
    model.compile(optimizer="adam")
    return model


# ------------------------------------------------------------------- from_npy


@pytest.mark.parametrize("shuffle_buffer", [None, 1, 37, 500, 5000])
def test_from_npy_yields_every_row_once_per_epoch_in_full_batches(tmp_path, shuffle_buffer):
    (x_path, y_path), x, y = write_pair(tmp_path)
    stream = datasets.from_npy(x_path, y_path, batch_size=64, shuffle_buffer=shuffle_buffer,
                               seed=3)
    assert stream.cardinality() == math.ceil(1003 / 64)
    assert stream.element_spec[0].shape.as_list() == [None, 3]
    assert stream.element_spec[1].shape.as_list() == [None, 1]
    orders = []
    for _ in range(2):
        batches, xs, ys = epoch(stream)
        assert [len(b[0]) for b in batches] == [64] * 15 + [43]
        assert all(b[0].dtype == np.float32 and b[1].shape == (len(b[0]), 1) for b in batches)
        rows = xs[:, 0].astype(int)
        np.testing.assert_array_equal(np.sort(rows), np.arange(1003))  # each row exactly once
        np.testing.assert_array_equal(xs, x[rows])  # whole rows, x and y kept together
        np.testing.assert_array_equal(ys, y[rows])
        orders.append(rows)
    if shuffle_buffer is None:
        np.testing.assert_array_equal(orders[0], np.arange(1003))
        np.testing.assert_array_equal(orders[1], np.arange(1003))
    else:
        assert not np.array_equal(orders[0], np.arange(1003))
        assert not np.array_equal(orders[0], orders[1])  # a new order each epoch


def test_from_npy_shuffle_is_repeatable_with_a_seed_and_mixes_far_apart_rows(tmp_path):
    (x_path, y_path), _, _ = write_pair(tmp_path, n=4096)

    def two_epochs(seed):
        stream = datasets.from_npy(x_path, y_path, batch_size=32, shuffle_buffer=256, seed=seed)
        return [epoch(stream)[1][:, 0] for _ in range(2)]

    first, again, other = two_epochs(7), two_epochs(7), two_epochs(8)
    np.testing.assert_array_equal(np.stack(first), np.stack(again))
    assert not np.array_equal(first[0], other[0])
    # A window of 256 rows is 64 blocks of 4 from anywhere in the file, so
    # even the first batch spans most of it.
    batch = first[0][:32]
    assert batch.max() - batch.min() > 2048


def test_from_npy_dtypes_and_one_dimensional_files(tmp_path):
    (x_path, y_path), _, _ = write_pair(tmp_path, x_dtype=np.float64, y_dtype=np.int32,
                                        y_1d=True)
    x, y = next(iter(datasets.from_npy(x_path, y_path, batch_size=10)))
    assert x.dtype == tf.float64 and y.dtype == tf.float32
    assert x.shape == (10, 3) and y.shape == (10, 1)
    np.testing.assert_array_equal(y.numpy()[:, 0], np.arange(10) * 2)  # 2n + 0.5 cast to int


def test_fit_on_a_stream_adapts_to_the_whole_files_mean_and_std(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.random((3000, 3)).astype(np.float32)
    y = (1e4 + 50.0 * np.sin(3 * x[:, :1]) + x[:, 1:2]).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    stream = datasets.from_npy(tmp_path / "x.npy", tmp_path / "y.npy", batch_size=128,
                               shuffle_buffer=512, seed=0)
    model = small_model()
    model.fit(stream, epochs=1, verbose=0)
    mean = keras.ops.convert_to_numpy(model.output_mean)
    std = keras.ops.convert_to_numpy(model.output_std)
    np.testing.assert_allclose(mean, y.astype(np.float64).mean(axis=0), rtol=1e-7)
    np.testing.assert_allclose(std, y.astype(np.float64).std(axis=0), rtol=1e-6)
    # A second fit keeps the statistics instead of making another pass.
    model.output_mean.assign([0.0])
    model.fit(stream, epochs=1, verbose=0)
    assert keras.ops.convert_to_numpy(model.output_mean)[0] == 0.0


def test_from_npy_rejects_bad_files_by_name(tmp_path):
    (x_path, y_path), x, _ = write_pair(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such file .*missing.npy"):
        datasets.from_npy(tmp_path / "missing.npy", y_path, batch_size=8)
    with pytest.raises(TypeError, match="x must be a path"):
        datasets.from_npy(x, y_path, batch_size=8)
    np.savez(tmp_path / "both.npz", x=x)
    with pytest.raises(DataError, match="npz archive, whose members cannot be memory-mapped"):
        datasets.from_npy(tmp_path / "both.npz", y_path, batch_size=8)
    np.save(tmp_path / "short.npy", np.zeros(1002))
    with pytest.raises(DataError, match="has 1003 rows but .*short.npy has 1002"):
        datasets.from_npy(x_path, tmp_path / "short.npy", batch_size=8)
    cases = {
        "text.npy": (np.array(["a", "b"]), "holds values of type <U1"),
        "complex.npy": (np.ones(3, dtype=complex), "complex numbers"),
        "cube.npy": (np.ones((2, 2, 2)), r"has shape \(2, 2, 2\)"),
        "empty.npy": (np.ones((0, 2)), "is empty"),
        "objects.npy": (np.array([1, None], dtype=object), "not a readable .npy file"),
    }
    for name, (value, message) in cases.items():
        np.save(tmp_path / name, value, allow_pickle=True)
        with pytest.raises(DataError, match=message):
            datasets.from_npy(tmp_path / name, tmp_path / name, batch_size=8)
    (tmp_path / "notes.npy").write_text("not an array")
    with pytest.raises(DataError, match="not a readable .npy file"):
        datasets.from_npy(tmp_path / "notes.npy", y_path, batch_size=8)
    for keyword, value in (("batch_size", 0), ("shuffle_buffer", 0), ("seed", -1)):
        with pytest.raises(ValueError, match=keyword if keyword != "seed" else "seed must be"):
            datasets.from_npy(x_path, y_path, **{"batch_size": 8, keyword: value})


@pytest.mark.parametrize("shuffle_buffer", [None, 100])
def test_a_nan_in_the_file_stops_the_stream_naming_file_row_and_column(tmp_path, shuffle_buffer):
    (x_path, y_path), x, y = write_pair(tmp_path)
    x[517, 2] = np.nan
    np.save(x_path, x)
    stream = datasets.from_npy(x_path, y_path, batch_size=64, shuffle_buffer=shuffle_buffer)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"x.npy: row 517, column 2 is nan"):
        epoch(stream)
    # fit stops in its adapting pass, before any training step.
    model = small_model(bounds=[(0.0, 1003.0), (0.0, 1.0), (0.0, 1.0)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"row 517, column 2"):
        model.fit(stream, epochs=1, verbose=0)
    assert int(model.collocation_step.numpy()) == 0
    y[12, 0] = np.inf
    np.save(y_path, y)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"y.npy: row 12, column 0 is inf"):
        epoch(datasets.from_npy(tmp_path / "y.npy", y_path, batch_size=64))


def test_a_file_changed_under_the_stream_is_reported(tmp_path):
    (x_path, y_path), x, _ = write_pair(tmp_path)
    stream = datasets.from_npy(x_path, y_path, batch_size=64)
    np.save(x_path, x[:10])
    with pytest.raises(tf.errors.InvalidArgumentError, match="changed while being streamed"):
        epoch(stream)


def _proc_mib(field):
    with open("/proc/self/status") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith(field)) / 1024


def _reset_peak_rss():
    # Writing 5 to clear_refs resets VmHWM, the peak resident memory (Linux >= 4.0).
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
    except OSError:
        pytest.skip("cannot reset the peak resident memory here")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self")
@pytest.mark.parametrize("shuffle_buffer", [None, 16_384])
def test_streaming_keeps_peak_memory_flat_and_maps_no_file_pages(tmp_path, shuffle_buffer):
    # 128 MiB of inputs read in windows of 2-4 MiB. Regression: scattered reads
    # through a memory map made the kernel map read-ahead windows of the file
    # into the process, so a shuffled stream's peak grew with the file.
    rows, d = 1 << 20, 32
    x = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32,
                                  shape=(rows, d))
    x[:] = 0.5
    x.flush()
    del x
    np.save(tmp_path / "y.npy", np.zeros(rows, np.float32))
    stream = datasets.from_npy(tmp_path / "x.npy", tmp_path / "y.npy", batch_size=1024,
                               shuffle_buffer=shuffle_buffer, seed=0)

    def mapped_mib():
        total, inside = 0, False
        with open("/proc/self/smaps") as handle:
            for line in handle:
                if "-" in line.split(" ", 1)[0]:
                    inside = line.rstrip().endswith(os.sep + "x.npy")
                elif inside and line.startswith("Rss:"):
                    total += int(line.split()[1])
        return total / 1024

    for _ in stream.take(10):  # warm up TensorFlow's kernels and buffers
        pass
    _reset_peak_rss()
    before, mapped = _proc_mib("VmRSS:"), 0.0
    for i, _ in enumerate(stream):
        if i % 16 == 0:
            mapped = max(mapped, mapped_mib())
    assert i + 1 == 1024
    assert mapped == 0.0
    assert _proc_mib("VmHWM:") - before < 40, (before, _proc_mib("VmHWM:"))


def test_fortran_order_files_stream_their_rows_too(tmp_path):
    x = np.asfortranarray(np.arange(300, dtype=np.float64).reshape(100, 3))
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", np.arange(100.0))
    for shuffle_buffer in (None, 10):
        _, xs, ys = epoch(datasets.from_npy(tmp_path / "x.npy", tmp_path / "y.npy",
                                            batch_size=16, shuffle_buffer=shuffle_buffer))
        np.testing.assert_array_equal(xs, x[ys[:, 0].astype(int)])


# --------------------------------------------------------------------- from_csv


def write_csv(path, n=203):
    rng = np.random.default_rng(2)
    a, b = rng.random(n), rng.random(n)
    with open(path, "w") as handle:
        handle.write("id,a,target,b\n")
        for i in range(n):
            handle.write(f"{i},{float(a[i])!r},{10 * i + 1},{float(b[i])!r}\n")
    return a, b


@pytest.mark.parametrize("shuffle_buffer", [None, 50])
def test_from_csv_yields_the_named_columns_of_every_row(tmp_path, shuffle_buffer):
    a, b = write_csv(tmp_path / "data.csv")
    stream = datasets.from_csv(tmp_path / "data.csv", inputs=["b", "id", "a"],
                               outputs=["target"], batch_size=20,
                               shuffle_buffer=shuffle_buffer, seed=1)
    batches, xs, ys = epoch(stream)
    assert [len(batch[0]) for batch in batches] == [20] * 10 + [3]
    assert xs.shape == (203, 3) and ys.shape == (203, 1)
    rows = xs[:, 1].astype(int)
    np.testing.assert_array_equal(np.sort(rows), np.arange(203))
    assert (rows == np.arange(203)).all() == (shuffle_buffer is None)
    np.testing.assert_allclose(xs[:, 0], b[rows].astype(np.float32))
    np.testing.assert_allclose(xs[:, 2], a[rows].astype(np.float32))
    np.testing.assert_array_equal(ys[:, 0], 10 * rows + 1)


@pytest.mark.filterwarnings("ignore:Your input ran out of data")  # unknown length, as documented
def test_fit_on_a_csv_stream_adapts_to_its_targets(tmp_path):
    write_csv(tmp_path / "data.csv")
    stream = datasets.from_csv(tmp_path / "data.csv", inputs=["a", "b"], outputs=["target"],
                               batch_size=32)
    model = small_model(d=2)
    model.fit(stream, epochs=1, verbose=0)
    target = 10.0 * np.arange(203) + 1
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.output_mean), target.mean(),
                               rtol=1e-7)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model.output_std), target.std(),
                               rtol=1e-6)


def test_from_csv_rejects_bad_files_and_columns_by_name(tmp_path):
    write_csv(tmp_path / "data.csv")
    good = {"inputs": ["a"], "outputs": ["target"], "batch_size": 8}
    with pytest.raises(FileNotFoundError, match="no such file"):
        datasets.from_csv(tmp_path / "nope.csv", **good)
    with pytest.raises(DataError, match="no column 'targte'; did you mean 'target'"):
        datasets.from_csv(tmp_path / "data.csv", inputs=["a"], outputs=["targte"], batch_size=8)
    with pytest.raises(ValueError, match=r"\['a'\] cannot be both"):
        datasets.from_csv(tmp_path / "data.csv", inputs=["a"], outputs=["a"], batch_size=8)
    with pytest.raises(TypeError, match="inputs must be a non-empty list"):
        datasets.from_csv(tmp_path / "data.csv", inputs="a", outputs=["target"], batch_size=8)
    (tmp_path / "header.csv").write_text("a,target\n")
    with pytest.raises(DataError, match="header row but no data rows"):
        datasets.from_csv(tmp_path / "header.csv", **good)
    (tmp_path / "twice.csv").write_text("a,a,target\n1,2,3\n")
    with pytest.raises(DataError, match="duplicate column name"):
        datasets.from_csv(tmp_path / "twice.csv", **good)
    (tmp_path / "nan.csv").write_text("a,target\n1,2\n3,4\n5,nan\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="line 4, column 'target' is nan"):
        epoch(datasets.from_csv(tmp_path / "nan.csv", **{**good, "batch_size": 2}))
    (tmp_path / "hole.csv").write_text("a,target\n1,2\n3,\n")
    with pytest.raises(tf.errors.InvalidArgumentError, match="required but missing"):
        epoch(datasets.from_csv(tmp_path / "hole.csv", **good))


# -------------------------------------------------------------------- bounds


def test_bounds_from_dataset_is_the_widened_range_in_one_pass(tmp_path):
    (x_path, y_path), x, _ = write_pair(tmp_path)
    stream = datasets.from_npy(x_path, y_path, batch_size=100, shuffle_buffer=300, seed=0)
    low, high = x.min(axis=0).astype(float), x.max(axis=0).astype(float)
    np.testing.assert_allclose(datasets.bounds_from_dataset(stream, margin=0.0),
                               np.stack([low, high], axis=1))
    width = high - low
    np.testing.assert_allclose(datasets.bounds_from_dataset(stream),
                               np.stack([low - 0.05 * width, high + 0.05 * width], axis=1))
    # x-only datasets and 1-D batches work too.
    only_x = tf.data.Dataset.from_tensor_slices(np.array([3.0, 1.0, 2.0])).batch(2)
    np.testing.assert_allclose(datasets.bounds_from_dataset(only_x, margin=0.5), [[0.0, 4.0]])


def test_bounds_from_dataset_rejects_what_it_cannot_bound():
    def batches(*arrays):
        return tf.data.Dataset.from_tensor_slices(np.array(arrays[0])).batch(2)

    with pytest.raises(ValueError, match="infinite"):
        datasets.bounds_from_dataset(batches([[1.0, 2.0]]).repeat())
    with pytest.raises(ValueError, match="empty"):
        datasets.bounds_from_dataset(batches(np.zeros((0, 2))))
    with pytest.raises(ValueError, match="input 1 is constant"):
        datasets.bounds_from_dataset(batches([[1.0, 2.0], [3.0, 2.0], [4.0, 2.0]]))
    with pytest.raises(ValueError, match=r"batch 1, row 0 \(row 2 of the stream\)"):
        datasets.bounds_from_dataset(batches([[1.0], [2.0], [np.nan]]))
    with pytest.raises(ValueError, match="margin"):
        datasets.bounds_from_dataset(batches([[1.0], [2.0]]), margin=-0.1)
    with pytest.raises(TypeError, match="tf.data.Dataset"):
        datasets.bounds_from_dataset(np.zeros((3, 2)))


# ----------------------------------------------- GradINN.adapt on any stream


def test_adapt_names_the_batch_and_row_of_a_non_finite_target():
    # Regression: the running sums turned NaN and adapt blamed an overflow.
    x = np.random.default_rng(0).random((100, 3)).astype(np.float32)
    y = x.sum(axis=1, keepdims=True)
    y[57] = np.nan
    stream = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    model = small_model()
    with pytest.raises(ValueError, match=r"NaN or inf: batch 3, row 9 .*row 57 of the stream"):
        model.fit(stream, epochs=1, verbose=0)
    assert not model.adapted


# --------------------------------------------------------- the scale benchmark


def test_scale_quick_runs_every_record_in_child_processes():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-m", "keras_gradinn", "bench", "scale", "--quick"],
                            capture_output=True, text=True, env=env,
                            timeout=SUBPROCESS_TIMEOUT,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    stream = records[0]
    assert stream["record"] == "stream_fit" and stream["status"] == "ok"
    assert stream["rows"] == 4096 and stream["steps"] == 16
    assert stream["adapt_max_rel_error"] < 1e-6
    assert 0 < stream["peak_rss_mib"] < 2048 and math.isfinite(stream["final_loss"])
    gp = [r for r in records if r["record"] == "gp_fit"]
    assert [r["n"] for r in gp] == [50, 100]
    # fit_seconds is rounded to 0.01 s: a fast machine may report 0.
    assert all(r["status"] == "ok" and r["fit_seconds"] >= 0 for r in gp)
    # The child's own peak, without the TensorFlow of the parent process.
    assert all(r["peak_rss_mib"] < 600 for r in gp)
    extrapolated = [r for r in records if r["record"] == "gp_extrapolated"]
    assert extrapolated[-1]["n"] == 4096
    assert records[-1]["record"] == "gp_stop"
    assert "GradINN on a stream from disk" in result.stdout
