"""Training data streamed from disk as `tf.data` pipelines, for data larger than memory.

`GradINN.fit` accepts any finite `tf.data.Dataset` of `(x, y)` batches and
computes the output standardisation from it in one streaming pass before
training. The functions here build such datasets from files without
loading them into memory:

- `from_npy`: a pair of `.npy` files (inputs and targets), read a chunk at
  a time at the offsets NumPy's memory map gives; the fastest format.
- `from_csv`: a CSV file with a header row, parsed by `tf.data`'s CSV reader.
- `bounds_from_dataset`: the inputs' range in one pass, for a model whose
  domain is not known in advance.

Example:
    >>> import keras_gradinn as kg
    >>> from keras_gradinn import datasets
    >>> stream = datasets.from_npy("x.npy", "y.npy", batch_size=1024,
    ...                            shuffle_buffer=65536, seed=0)  # doctest: +SKIP
    >>> bounds = datasets.bounds_from_dataset(stream)  # doctest: +SKIP
    >>> model = kg.GradINN(kg.mlp(20, 1), bounds=bounds)  # doctest: +SKIP
    >>> model.compile()  # doctest: +SKIP
    >>> model.fit(stream, epochs=3)  # doctest: +SKIP

The model does not check a dataset's inputs against its bounds (it cannot
without an extra pass); rows outside the bounds are extrapolated from.
"""

from __future__ import annotations

import csv
import difflib
import math
import os
import pathlib
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from keras_gradinn.errors import DataError
from keras_gradinn.tables import AUTO_BOUNDS_MARGIN, check_names
from keras_gradinn.validation import (
    first_nonfinite_row,
    integer_in,
    non_negative,
    positive_int,
)

__all__ = ["DataError", "bounds_from_dataset", "from_csv", "from_npy"]

#: Without shuffling, `from_npy` reads about this many bytes per call.
READ_BYTES = 4 * 2**20

#: With shuffling, `from_npy` mixes at least this many separate blocks of
#: the file per shuffle window, when the window is large enough.
BLOCKS_PER_WINDOW = 64

PathLike = str | os.PathLike


# ------------------------------------------------------------------ arguments


def _path(value: Any, label: str) -> pathlib.Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{label} must be a path (str or os.PathLike); got {type(value).__name__}")
    path = pathlib.Path(value)
    if not path.is_file():
        raise FileNotFoundError(f"{label}: no such file {str(path)!r}")
    return path


def _seed(seed: Any) -> int | None:
    if seed is None:
        return None
    return integer_in(seed, "seed", 0, 2**63 - 1)


def _optional_positive(value: Any, label: str) -> int | None:
    return None if value is None else positive_int(value, label)


# ------------------------------------------------------------------- .npy files


class _NpyFile:
    """A validated `.npy` file of real numbers, viewed as (rows, columns)."""

    def __init__(self, value: Any, label: str):
        path = _path(value, label)
        if path.suffix.lower() == ".npz" or zipfile.is_zipfile(path):
            raise DataError(
                f"{path}: is an .npz archive, whose members cannot be memory-mapped; "
                f"save each array with np.save to its own .npy file (or unzip the archive, "
                f"whose members are .npy files if it was written by np.savez)"
            )
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{path}: not a readable .npy file ({error})") from None
        if not isinstance(array, np.ndarray):
            raise DataError(f"{path}: not a .npy file holding one array")
        kind = array.dtype.kind
        if kind == "c":
            raise DataError(f"{path}: holds complex numbers; {label} must be real")
        if kind not in "fiu":
            raise DataError(
                f"{path}: holds values of type {array.dtype}; {label} must hold "
                f"integers or floating-point numbers"
            )
        if array.ndim not in (1, 2):
            raise DataError(
                f"{path}: has shape {array.shape}; {label} must be (rows,) or "
                f"(rows, columns)"
            )
        if array.shape[0] == 0 or (array.ndim == 2 and array.shape[1] == 0):
            raise DataError(f"{path}: is empty (shape {array.shape})")
        self.path, self.label = path, label
        self.shape, self.dtype = array.shape, array.dtype
        self.rows = int(array.shape[0])
        self.columns = 1 if array.ndim == 1 else int(array.shape[1])
        # Yield float64 only for float64 (or wider) files; float32 otherwise.
        wide = kind == "f" and array.dtype.itemsize >= 8
        self.out_dtype = np.dtype(np.float64 if wide else np.float32)
        # Where the data starts, and whether rows are contiguous on disk.
        self.offset = int(array.offset)
        self.row_bytes = self.columns * self.dtype.itemsize
        self.row_major = array.flags.c_contiguous
        self.size = path.stat().st_size
        del array  # releases the mapping

    def _mapped(self) -> np.ndarray:
        """A fresh read-only memory map of the file as (rows, columns)."""
        try:
            array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DataError(f"{self.path}: can no longer be read ({error})") from None
        if array.shape != self.shape or array.dtype != self.dtype:
            raise DataError(
                f"{self.path}: changed while being streamed (now shape {array.shape}, "
                f"{array.dtype}; was {self.shape}, {self.dtype})"
            )
        return array.reshape(self.rows, self.columns)

    def _read_runs(self, runs: list[tuple[int, int]]) -> np.ndarray:
        """Reads row ranges [start, stop) with positioned reads into one array."""
        out = np.empty((sum(stop - start for start, stop in runs), self.columns), self.dtype)
        raw = out.reshape(-1).view(np.uint8)
        try:
            with open(self.path, "rb", buffering=0) as handle:
                if os.fstat(handle.fileno()).st_size != self.size:
                    raise DataError(f"{self.path}: changed while being streamed (its size "
                                    f"is no longer {self.size} bytes)")
                at = 0
                for start, stop in runs:
                    handle.seek(self.offset + start * self.row_bytes)
                    end = at + (stop - start) * self.row_bytes
                    while at < end:
                        got = handle.readinto(raw[at:end])
                        if not got:
                            raise DataError(f"{self.path}: ended early (changed while being "
                                            f"streamed?)")
                        at += got
        except OSError as error:
            raise DataError(f"{self.path}: can no longer be read ({error})") from None
        return out

    def read(self, rows: slice | np.ndarray) -> np.ndarray:
        """A copy of the given rows (a slice or sorted indices) in `out_dtype`, checked finite.

        Row-major files are read with plain positioned reads rather than
        through a memory map: touching scattered rows of a map makes the
        kernel map whole read-ahead windows of the file into this process
        (measured: about 85 MiB resident for a 5 MiB shuffle window), which
        a read into a NumPy buffer avoids. Column-major (Fortran-order)
        files, whose rows are not contiguous, are read through a fresh
        memory map that is dropped after the read.
        """
        if not self.row_major:
            values = np.array(self._mapped()[rows], dtype=self.out_dtype)
        else:
            if isinstance(rows, slice):
                runs = [(rows.start, rows.stop)]
            else:
                breaks = np.flatnonzero(np.diff(rows) != 1) + 1
                firsts = rows[np.r_[0, breaks]]
                lasts = rows[np.r_[breaks - 1, len(rows) - 1]] + 1
                runs = list(zip(firsts.tolist(), lasts.tolist()))
            values = self._read_runs(runs)
            values = values.astype(self.out_dtype, copy=values.dtype != self.out_dtype)
        finite = np.isfinite(values)
        if not finite.all():
            i, j = np.argwhere(~finite)[0]
            row = rows.start + i if isinstance(rows, slice) else rows[i]
            raise DataError(
                f"{self.path}: row {int(row)}, column {int(j)} is {values[i, j]}; every "
                f"value of {self.label} must be finite (no NaN or inf)"
            )
        return values


def _map_numpy(dataset: tf.data.Dataset, function: Callable, x: _NpyFile | int,
               y: _NpyFile | int, dtypes: tuple[np.dtype, np.dtype]) -> tf.data.Dataset:
    """Maps `function(*element) -> (x, y)` on the host, declaring (None, columns) shapes."""
    columns = [v if isinstance(v, int) else v.columns for v in (x, y)]

    def apply(*element):
        xs, ys = tf.numpy_function(function, list(element),
                                   [tf.as_dtype(d) for d in dtypes], stateful=False)
        xs.set_shape((None, columns[0]))
        ys.set_shape((None, columns[1]))
        return xs, ys

    return dataset.map(apply)


def from_npy(
    x_path: PathLike,
    y_path: PathLike,
    *,
    batch_size: int,
    shuffle_buffer: int | None = None,
    seed: int | None = None,
) -> tf.data.Dataset:
    """Streams `(x, y)` batches from two `.npy` files without loading them.

    Each file is opened with `np.load(mmap_mode="r")`, which reads its
    header but no data. Inside the `tf.data` pipeline, a chunk of rows at a
    time is then read straight into a NumPy array at the offset the memory
    map gives, so memory stays bounded by the chunk and shuffle window, not
    by the file. (Reading through the map itself would not be bounded:
    touching scattered rows of a map makes the kernel map whole read-ahead
    windows into the process, about 85 MiB resident for one 5 MiB shuffle
    window on the Linux machine this was measured on.) Every epoch (every
    new iteration of the dataset) yields each row of the files exactly
    once, in `ceil(rows / batch_size)` batches of which only the last may
    be smaller.

    Shuffling: the files are cut into blocks of at most `batch_size` rows
    (smaller for small buffers, so a window mixes up to `BLOCKS_PER_WINDOW`
    blocks). Each epoch visits the blocks in a fresh random order, groups
    them into windows of about `shuffle_buffer` rows, and permutes the rows
    of each window. Rows that are far apart in the file therefore share
    batches even for a sorted file; memory grows with `shuffle_buffer`
    (rows x columns x 4 bytes, plus 8 bytes per block for the block order).
    A buffer of at least the number of rows is a uniform shuffle.

    Only `.npy` files can be read this way: the members of an `.npz`
    archive are stored inside a zip file (possibly compressed), so they
    cannot be memory-mapped and `np.load(..., mmap_mode="r")` would load
    them whole. Save each array with `np.save`, or unzip the archive, whose
    members are `.npy` files.

    Integer and float16/float32 files are yielded as float32, float64 files
    as float64. A 1-D file is one column. The rows are not checked against
    a model's bounds; see `bounds_from_dataset`.

    Args:
        x_path: the inputs, an array of shape (rows, d) or (rows,).
        y_path: the targets, an array of shape (rows, m) or (rows,).
        batch_size: rows per batch (>= 1).
        shuffle_buffer: rows mixed at a time (>= 1), or None to yield the
            rows in file order.
        seed: seed of the shuffle; with the same seed, a new dataset yields
            the same sequence of epochs. None draws it from TensorFlow's
            random state.

    Returns:
        A finite `tf.data.Dataset` of `(x, y)` with `x` of shape
        (batch, d) and `y` of shape (batch, m), with known cardinality.

    Raises:
        FileNotFoundError: if a file does not exist.
        TypeError: if a path is not a string or path object.
        DataError: (a ValueError) if a file is an `.npz` archive, not a
            readable `.npy` file, holds non-numeric or complex values, has
            more than two dimensions or no rows, or if the files' row counts
            differ.
        ValueError: for a bad `batch_size`, `shuffle_buffer` or `seed`.
        tf.errors.InvalidArgumentError: while iterating, if a value read is
            NaN or infinite; the message names the file, row and column.
    """
    batch_size = positive_int(batch_size, "batch_size")
    shuffle_buffer = _optional_positive(shuffle_buffer, "shuffle_buffer")
    seed = _seed(seed)
    x_file, y_file = _NpyFile(x_path, "x"), _NpyFile(y_path, "y")
    if x_file.rows != y_file.rows:
        raise DataError(
            f"{x_file.path} has {x_file.rows} rows but {y_file.path} has {y_file.rows}; "
            f"x and y need one row per sample"
        )
    rows = x_file.rows
    dtypes = (x_file.out_dtype, y_file.out_dtype)

    if shuffle_buffer is None:
        row_bytes = x_file.columns * x_file.out_dtype.itemsize + (
            y_file.columns * y_file.out_dtype.itemsize
        )
        chunk = batch_size * max(1, READ_BYTES // (row_bytes * batch_size))

        def read_chunk(start):
            rows_read = slice(int(start), min(int(start) + chunk, rows))
            return x_file.read(rows_read), y_file.read(rows_read)

        data = _map_numpy(tf.data.Dataset.range(0, rows, chunk), read_chunk, x_file, y_file,
                          dtypes)
    else:
        block = max(1, min(batch_size, shuffle_buffer // BLOCKS_PER_WINDOW))
        per_window = max(1, shuffle_buffer // block)
        n_blocks = math.ceil(rows / block)
        n_windows = math.ceil(n_blocks / per_window)

        def block_order(key):
            # One epoch's block order, as windows of block indices (-1 pads the last).
            order = np.full(n_windows * per_window, -1, dtype=np.int64)
            order[:n_blocks] = np.random.default_rng(int(key) % 2**63).permutation(n_blocks)
            return order.reshape(n_windows, per_window)

        def epoch(key):
            windows = tf.numpy_function(block_order, [key], tf.int64, stateful=False)
            windows.set_shape((n_windows, per_window))
            keys = tf.fill([n_windows], key)
            return tf.data.Dataset.from_tensor_slices((windows, keys)).enumerate()

        def read_window(index, blocks, key):
            starts = np.sort(blocks[blocks >= 0]) * block
            wanted = (starts[:, None] + np.arange(block)).ravel()
            wanted = wanted[wanted < rows]
            order = np.random.default_rng([int(key) % 2**63, int(index)]).permutation(len(wanted))
            return x_file.read(wanted)[order], y_file.read(wanted)[order]

        keys = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
        windows = keys.flat_map(epoch).map(lambda i, element: (i, *element))
        data = _map_numpy(windows, read_window, x_file, y_file, dtypes)

    n_batches = math.ceil(rows / batch_size)
    return (
        data.rebatch(batch_size)
        .apply(tf.data.experimental.assert_cardinality(n_batches))
        .prefetch(tf.data.AUTOTUNE)
    )


# -------------------------------------------------------------------- CSV files


def _names(value: Any, label: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or not value:
        raise TypeError(f"{label} must be a non-empty list of column names; got {value!r}")
    names = list(value)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"{label} must be column names (strings); got {names!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{label} names column(s) {duplicates} more than once")
    return names


def _csv_header(path: pathlib.Path, delimiter: str) -> list[str]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, delimiter=delimiter)
            header = next(reader, None)
            first_row = next((row for row in reader if any(cell.strip() for cell in row)), None)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from None
    if header is None:
        raise DataError(f"{path}: the file is empty")
    names = check_names(header, path)
    if first_row is None:
        raise DataError(f"{path}: the file has a header row but no data rows")
    return names


def from_csv(
    path: PathLike,
    *,
    inputs: Sequence[str],
    outputs: Sequence[str],
    batch_size: int,
    shuffle_buffer: int | None = None,
    seed: int | None = None,
    delimiter: str = ",",
) -> tf.data.Dataset:
    """Streams `(x, y)` batches from a CSV file with a header row.

    Parsing is done by `tf.data.experimental.CsvDataset` in TensorFlow's
    C++ runtime, one row at a time, so the file is never held in memory.
    Only the header and first data row are read when the dataset is made.
    CSV parsing is much slower than reading `.npy` files; for data read over
    many epochs, convert once and use `from_npy`.

    Every cell of a selected column must hold a number. An empty cell, a
    row with the wrong number of cells or text that is not a number stops
    the iteration with TensorFlow's error naming the record; a NaN or
    infinite value stops it with an error naming the line and column.

    Args:
        path: the CSV file; its first line names the columns.
        inputs: the columns that form x, in order.
        outputs: the columns that form y, in order.
        batch_size: rows per batch (>= 1).
        shuffle_buffer: size of `tf.data`'s shuffle buffer in rows, or None
            to yield the rows in file order. Rows more than about this far
            apart in the file are not mixed.
        seed: seed of the shuffle (None: from TensorFlow's random state).
        delimiter: the field separator, one character.

    Returns:
        A finite `tf.data.Dataset` of float32 `(x, y)` batches of shapes
        (batch, len(inputs)) and (batch, len(outputs)). Its cardinality is
        unknown (the file is not counted in advance), so Keras shows no
        step count in the first epoch and warns at its end that "your input
        ran out of data"; that warning is expected here.

    Raises:
        FileNotFoundError: if the file does not exist.
        TypeError: if `inputs` or `outputs` is not a list of names.
        DataError: (a ValueError) if the file is unreadable or empty, has no
            data rows, an empty or duplicated column name, or lacks a named
            column (the message suggests the closest name).
        ValueError: for a column that is both input and output, a repeated
            name, or a bad `batch_size`, `shuffle_buffer`, `seed` or
            `delimiter`.
        tf.errors.InvalidArgumentError: while iterating, for a malformed row
            or a non-finite value.
    """
    path = _path(path, "path")
    inputs, outputs = _names(inputs, "inputs"), _names(outputs, "outputs")
    both = sorted(set(inputs) & set(outputs))
    if both:
        raise ValueError(f"column(s) {both} cannot be both inputs and outputs")
    batch_size = positive_int(batch_size, "batch_size")
    shuffle_buffer = _optional_positive(shuffle_buffer, "shuffle_buffer")
    seed = _seed(seed)
    if not isinstance(delimiter, str) or len(delimiter) != 1 or delimiter in "\r\n\"":
        raise ValueError(f"delimiter must be one character other than a quote or newline; "
                         f"got {delimiter!r}")
    header = _csv_header(path, delimiter)
    for name in [*inputs, *outputs]:
        if name not in header:
            close = difflib.get_close_matches(name, header, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise DataError(
                f"{path}: no column {name!r}{hint} (columns: {', '.join(header)})"
            )

    wanted = [*inputs, *outputs]
    selected = sorted(header.index(name) for name in wanted)
    # CsvDataset yields the selected columns in file order; put them in ours.
    position = [selected.index(header.index(name)) for name in wanted]
    d = len(inputs)
    records = tf.data.experimental.CsvDataset(
        str(path), record_defaults=[tf.float32] * len(selected), header=True,
        field_delim=delimiter, select_cols=selected,
    )

    def stack(*columns):
        ordered = [columns[i] for i in position]
        return tf.stack(ordered[:d], axis=1), tf.stack(ordered[d:], axis=1)

    def check(index, x, y):
        for values, names in ((x, inputs), (y, outputs)):
            finite = np.isfinite(values)
            if not finite.all():
                i, j = np.argwhere(~finite)[0]
                line = int(index) * batch_size + int(i) + 2  # the header is line 1
                raise DataError(
                    f"{path}: line {line}, column {names[j]!r} is {values[i, j]}; every "
                    f"value must be finite (no NaN or inf)"
                )
        return x, y

    data = _map_numpy(records.batch(batch_size).map(stack).enumerate().map(
        lambda i, xy: (i, *xy)), check, d, len(outputs), (np.float32, np.float32))
    if shuffle_buffer is not None:
        data = data.unbatch().shuffle(shuffle_buffer, seed=seed,
                                      reshuffle_each_iteration=True).batch(batch_size)
    return data.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------- bounds


def bounds_from_dataset(
    dataset: tf.data.Dataset, margin: float = AUTO_BOUNDS_MARGIN
) -> np.ndarray:
    """The inputs' range in one pass over a dataset, widened by `margin`.

    Reads the dataset once, keeping only a running minimum and maximum per
    input, so it works on streams of any length. Use it for `GradINN`'s
    `bounds` when the domain is not known in advance.

    Args:
        dataset: a finite `tf.data.Dataset` of `x` batches or of `(x, y)` /
            `(x, y, sample_weight)` batches, `x` of shape (batch, d) or
            (batch,).
        margin: each input's range is widened by `margin` times its width on
            both sides (>= 0; the default matches `bounds auto` of the
            command line).

    Returns:
        A float64 array of shape (d, 2) of `(low, high)` per input.

    Raises:
        TypeError: if `dataset` is not a `tf.data.Dataset` or yields no
            array of inputs.
        ValueError: if the dataset is infinite or empty, the batches'
            shapes disagree, a value is NaN or infinite (naming the batch
            and row), an input is constant (naming it), or `margin` is
            negative or not finite.
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise TypeError(f"dataset must be a tf.data.Dataset; got {type(dataset).__name__}")
    non_negative(margin, "margin")
    if dataset.cardinality() == tf.data.INFINITE_CARDINALITY:
        raise ValueError("the dataset is infinite; pass a finite one (e.g. without .repeat())")
    low = high = None
    rows = 0
    for index, batch in enumerate(dataset):
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        if not isinstance(x, (tf.Tensor, np.ndarray)):
            raise TypeError(
                f"the dataset must yield x or (x, y) batches of arrays; got {type(x).__name__}"
            )
        x = np.asarray(x, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or (low is not None and x.shape[1] != len(low)):
            expected = "(batch, d)" if low is None else f"(batch, {len(low)})"
            raise ValueError(f"batch {index}: x must have shape {expected}; got {x.shape}")
        if len(x) == 0:
            continue
        row = first_nonfinite_row(x)
        if row is not None:
            raise ValueError(
                f"batch {index}, row {row} (row {rows + row} of the stream): x contains NaN "
                f"or inf"
            )
        low = x.min(axis=0) if low is None else np.minimum(low, x.min(axis=0))
        high = x.max(axis=0) if high is None else np.maximum(high, x.max(axis=0))
        rows += len(x)
    if low is None:
        raise ValueError("the dataset is empty; there are no inputs to take bounds from")
    constant = np.flatnonzero(high <= low)
    if constant.size:
        column = int(constant[0])
        raise ValueError(
            f"input {column} is constant ({low[column]:g}) over all {rows} rows, so its "
            f"bounds cannot be inferred; drop it or give bounds yourself"
        )
    width = high - low
    return np.stack([low - margin * width, high + margin * width], axis=1)
