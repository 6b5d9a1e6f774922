"""Export a trained GradINN to TF Serving (SavedModel) and ONNX, with its Jacobian.

Both formats take raw inputs `x` (float32, shape (n, d), the user's units)
and return `y` (n, m) and, on request, `dy_dx` (n, m, d) with
`dy_dx[b, i, j] = d y_i / d x_j`; the normalisation is inside the graph. An
ensemble (a stacked network, or a calibrated model) also returns `y_std`
and, beside `dy_dx`, `dy_dx_std`: the standard deviations of
`GradINN.predictive_outputs`.
Every artifact is written to a temporary sibling, checked in a fresh Python
process that does not import this package, and only then moved into place:
a failed export leaves nothing at the target path.

tf2onnx, onnx and onnxruntime are imported lazily, inside the functions.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import pathlib
import subprocess
import sys
import tempfile
import textwrap
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn import files, sampling
from keras_gradinn.errors import ExportVerificationError
from keras_gradinn.jacobian import dense_layers
from keras_gradinn.model import GradINN
from keras_gradinn.validation import integer_in, non_negative

__all__ = [
    "ExportVerificationError",
    "MAX_ONNX_OPSET",
    "metadata",
    "to_onnx",
    "to_saved_model",
    "verify",
]

#: tf2onnx 1.17 refuses opsets above 18.
MAX_ONNX_OPSET = 18
_MIN_ONNX_OPSET = 13
_METADATA_KEY = "keras_gradinn"
_JACOBIAN_LAYOUT = "dy_dx[b, i, j] = d y_i / d x_j, shape (batch, m, d), user units"


def _check_model(model: Any) -> GradINN:
    if not isinstance(model, GradINN):
        raise TypeError(f"model must be a keras_gradinn.GradINN; got {type(model).__name__}")
    return model


def _check_tolerances(atol: float, rtol: float) -> None:
    non_negative(atol, "atol")
    non_negative(rtol, "rtol")


def _with_std(model: GradINN, with_std: bool | None) -> bool:
    """Whether an artifact has standard deviations: by default, for ensembles."""
    if with_std is None:
        return model.has_std
    if not isinstance(with_std, bool):
        raise TypeError(f"with_std must be True, False or None; got {with_std!r}")
    return with_std


def _output_names(with_gradient: bool, with_std: bool) -> list[str]:
    """The artifact's outputs, in order."""
    names = ["y", "y_std"] if with_std else ["y"]
    if with_gradient:
        names += ["dy_dx", "dy_dx_std"] if with_std else ["dy_dx"]
    return names


def _input_spec(model: GradINN) -> tf.TensorSpec:
    return tf.TensorSpec((None, model.input_dim), tf.float32, name="x")


def _weights_hash(model: GradINN) -> str:
    digest = hashlib.sha256()
    for weight in model.get_weights():
        array = np.ascontiguousarray(weight)
        digest.update(str((array.dtype.str, array.shape)).encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def metadata(model: GradINN, *, with_gradient: bool, opset: int | None = None,
             with_std: bool = False) -> dict:
    """The JSON-serialisable description embedded in every artifact.

    Args:
        model: the exported model.
        with_gradient: whether the artifact returns `dy_dx`.
        opset: the ONNX opset, for ONNX files.
        with_std: whether it returns `y_std` (and `dy_dx_std`).

    Returns:
        A dict with versions, input and output names and shapes, bounds,
        output normalisation, the Jacobian layout, the prior and a SHA-256
        hash of the weights.
    """
    from keras_gradinn import __version__

    d, m = model.input_dim, model.output_dim
    shapes = {"y": [None, m], "y_std": [None, m], "dy_dx": [None, m, d],
              "dy_dx_std": [None, m, d]}
    outputs = {name: shapes[name] for name in _output_names(with_gradient, with_std)}
    record = {
        "package": "keras_gradinn",
        "package_version": __version__,
        "tensorflow_version": tf.__version__,
        "keras_version": keras.__version__,
        "inputs": {"x": {"shape": [None, d], "dtype": "float32", "units": "user"}},
        "input_labels": list(model.input_labels),
        "output_labels": list(model.output_labels),
        "outputs": {name: {"shape": shape, "dtype": "float32"} for name, shape in outputs.items()},
        "jacobian_layout": _JACOBIAN_LAYOUT if with_gradient else None,
        "bounds": model.bounds.tolist(),
        "output_mean": keras.ops.convert_to_numpy(model.output_mean).tolist(),
        "output_std": keras.ops.convert_to_numpy(model.output_std).tolist(),
        "prior": {"name": model.prior.name, "trainable": model.prior_trainable,
                  "weights": int(model.prior.count_params())},
        "gradient_weight": model.gradient_weight,
        "members": model.members,
        "calibration": None if model.calibration is None else model.calibration.as_dict(),
        "weights_sha256": _weights_hash(model),
    }
    if opset is not None:
        import tf2onnx

        record["tf2onnx_version"] = tf2onnx.__version__
        record["onnx_opset"] = opset
    return record


# ------------------------------------------------------------------ SavedModel


def _next_version(base: pathlib.Path) -> int:
    versions = [int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def to_saved_model(
    model: GradINN,
    base_dir: str | os.PathLike,
    *,
    version: int | None = None,
    with_gradient: bool = True,
    with_std: bool | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> pathlib.Path:
    """Writes a TF Serving SavedModel to `base_dir/<version>/`.

    Signatures: `serving_default` (input `x`, output `y`) and, with
    `with_gradient`, `predict_with_gradient` (outputs `y` and `dy_dx`); with
    `with_std`, each also returns `y_std` (and `dy_dx_std`). The Jacobian is
    the same reverse-mode computation as `GradINN.predict_gradient`. The
    metadata is written to `assets.extra/keras_gradinn.json`.

    Args:
        model: a `GradINN`.
        base_dir: the model's directory for TF Serving (created if missing).
        version: a positive integer; default: one more than the largest
            existing version. An existing version is never overwritten.
        with_gradient: add the `predict_with_gradient` signature.
        with_std: add the standard deviations; None (default): for an
            ensemble (a stacked network) or a calibrated model.
        verify: check the artifact against Keras in a fresh process first.
        atol: absolute tolerance of that check, in standardised units (see
            `verify`).
        rtol: relative tolerance of that check.

    Returns:
        The path of the written version directory.

    Example:
        >>> path = to_saved_model(model, "serving/friedman")  # serving/friedman/1
    """
    model = _check_model(model)
    _check_tolerances(atol, rtol)
    if not str(base_dir):
        raise ValueError("base_dir must be a directory path; got an empty string")
    base = pathlib.Path(base_dir).expanduser()
    if base.exists() and not base.is_dir():
        raise ValueError(f"base_dir must be a directory; {str(base)!r} is a file")
    if version is not None:
        version = integer_in(version, "version", 1)
    undo_folders = files.make_folders(base)
    target = base / str(int(version if version is not None else _next_version(base)))
    if target.exists():
        raise FileExistsError(f"{str(target)!r} exists; SavedModel versions are never overwritten")

    spec = _input_spec(model)
    with_std = _with_std(model, with_std)
    try:
        with files.staged(target, directory=True) as artifact:
            archive = keras.export.ExportArchive()
            archive.track(model)
            if with_std:
                archive.add_endpoint(
                    "serving_default", lambda x: model.predictive_outputs(x, gradient=False),
                    input_signature=[spec],
                )
            else:
                archive.add_endpoint(
                    "serving_default", lambda x: {"y": model(x, training=False)},
                    input_signature=[spec],
                )
            if with_gradient and with_std:
                archive.add_endpoint(
                    "predict_with_gradient", lambda x: model.predictive_outputs(x),
                    input_signature=[spec],
                )
            elif with_gradient:
                archive.add_endpoint(
                    "predict_with_gradient",
                    lambda x: dict(zip(("y", "dy_dx"), model.value_and_jacobian(x))),
                    input_signature=[spec],
                )
            archive.write_out(str(artifact), verbose=False)
            extra = artifact / "assets.extra"
            extra.mkdir()
            record = metadata(model, with_gradient=with_gradient, with_std=with_std)
            (extra / f"{_METADATA_KEY}.json").write_text(json.dumps(record, indent=2))
            if verify:
                _verify(model, artifact, atol=atol, rtol=rtol)
    except BaseException:
        undo_folders()  # leave no folders behind that this call created
        raise
    return target


# ------------------------------------------------------------------------ ONNX


@contextlib.contextmanager
def _quiet_tf2onnx():
    logger = logging.getLogger("tf2onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _rename_values(graph, renames: dict[str, str]) -> None:
    for node in graph.node:
        node.input[:] = [renames.get(name, name) for name in node.input]
        node.output[:] = [renames.get(name, name) for name in node.output]
    for value in list(graph.input) + list(graph.output):
        value.name = renames.get(value.name, value.name)


def _convert(model: GradINN, *, opset: int, with_gradient: bool, with_std: bool):
    """Converts the model to an ONNX `ModelProto` with input `x` and `_output_names`' outputs."""
    import tf2onnx

    spec = _input_spec(model)
    try:
        dense_layers(model.network)
        explicit = True
    except ValueError:
        if with_gradient:
            raise
        explicit = False

    names = _output_names(with_gradient, with_std)

    def value_and_gradient(x):
        if with_std:
            outputs = model.predictive_outputs(x, gradient=with_gradient, method="forward")
            return [outputs[name] for name in names]
        if explicit:
            y, dy_dx = model.value_and_jacobian(x, method="forward")
            return [y, dy_dx] if with_gradient else [y]
        return [model(x, training=False)]

    function = tf.function(value_and_gradient, input_signature=[spec])
    with _quiet_tf2onnx():
        proto, _ = tf2onnx.convert.from_function(function, input_signature=[spec], opset=opset)
    if len(proto.graph.output) != len(names):
        raise ValueError(f"the converted graph has {len(proto.graph.output)} outputs; "
                         f"expected {names}")
    renames = {output.name: name for output, name in zip(proto.graph.output, names)}
    renames.update({value.name: "x" for value in proto.graph.input})
    _rename_values(proto.graph, renames)
    if [value.name for value in proto.graph.input] != ["x"]:
        raise ValueError(
            f"the converted graph has inputs {[v.name for v in proto.graph.input]}; expected ['x']"
        )
    foreign = sorted({f"{n.domain}::{n.op_type}" for n in proto.graph.node
                      if n.domain not in ("", "ai.onnx")})
    if foreign:
        raise ValueError(f"the converted graph uses non-standard ONNX ops {foreign}")
    return proto


def to_onnx(
    model: GradINN,
    path: str | os.PathLike,
    *,
    opset: int = 17,
    with_gradient: bool = False,
    with_std: bool | None = None,
    verify: bool = True,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> pathlib.Path:
    """Writes one ONNX file with input `x` and outputs `y` (and `dy_dx`, `y_std`, `dy_dx_std`).

    The graph uses only standard ONNX-domain ops and a dynamic batch
    dimension; `onnx.checker.check_model(full_check=True)` passes. The
    metadata is stored as the model property `keras_gradinn` (a JSON string;
    onnxruntime: `session.get_modelmeta().custom_metadata_map`).

    With `with_gradient`, the Jacobian is computed by an explicit forward-mode
    chain rule (`keras_gradinn.jacobian.dense_value_and_jacobian`), so the
    network must be a chain of `keras.layers.Dense` layers with activations
    from `keras_gradinn.jacobian.ACTIVATIONS` (as `kg.mlp` builds); anything
    else is refused before writing.

    Args:
        model: a `GradINN`.
        path: the `.onnx` file to write (replaced atomically if it exists).
        opset: ONNX opset, 13 to 18.
        with_gradient: add the `dy_dx` output.
        with_std: add `y_std` (and with `with_gradient`, `dy_dx_std`); None
            (default): for an ensemble (a stacked network) or a calibrated
            model.
        verify: check the file against Keras with onnxruntime in a fresh
            process first.
        atol: absolute tolerance of that check, in standardised units (see
            `verify`).
        rtol: relative tolerance of that check.

    Returns:
        The written path.
    """
    model = _check_model(model)
    _check_tolerances(atol, rtol)
    import onnx

    opset = integer_in(opset, "opset", _MIN_ONNX_OPSET, MAX_ONNX_OPSET)
    target = pathlib.Path(path).expanduser()
    if target.is_dir():
        raise ValueError(f"path must be a file path; {str(target)!r} is a directory")
    if not target.parent.is_dir():
        raise ValueError(f"the directory of {str(target)!r} does not exist")

    with_std = _with_std(model, with_std)
    proto = _convert(model, opset=opset, with_gradient=with_gradient, with_std=with_std)
    record = metadata(model, with_gradient=with_gradient, opset=opset, with_std=with_std)
    entry = proto.metadata_props.add()
    entry.key, entry.value = _METADATA_KEY, json.dumps(record)
    proto.producer_name = "keras_gradinn"
    onnx.checker.check_model(proto, full_check=True)

    with files.staged(target) as staging:
        onnx.save_model(proto, staging)
        if verify:
            _verify(model, staging, atol=atol, rtol=rtol)
    return target


# ---------------------------------------------------------------------- verify

_SAVED_MODEL_RUNNER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    path, inputs, outputs = sys.argv[1:4]
    x = np.load(inputs)
    loaded = tf.saved_model.load(path)
    results = {}
    for signature, function in loaded.signatures.items():
        for tag, batch in (("one", x[:1]), ("all", x)):
            for name, value in function(x=tf.constant(batch)).items():
                results[f"{signature}/{name}/{tag}"] = value.numpy()
    np.savez(outputs, **results)
    """
)

_ONNX_RUNNER = textwrap.dedent(
    """
    import sys
    import numpy as np
    import onnxruntime

    path, inputs, outputs = sys.argv[1:4]
    x = np.load(inputs)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    results = {}
    for tag, batch in (("one", x[:1]), ("all", x)):
        for name, value in zip(names, session.run(None, {"x": batch})):
            results[f"onnx/{name}/{tag}"] = value
    np.savez(outputs, **results)
    """
)


def _run_in_fresh_process(runner: str, path: pathlib.Path, x: np.ndarray) -> dict[str, np.ndarray]:
    with tempfile.TemporaryDirectory(prefix="keras_gradinn-verify-") as scratch:
        inputs, outputs = os.path.join(scratch, "x.npy"), os.path.join(scratch, "out.npz")
        np.save(inputs, x)
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        try:
            result = subprocess.run(
                [sys.executable, "-c", runner, str(path), inputs, outputs],
                capture_output=True, text=True, env=env, timeout=600,
            )
        except subprocess.TimeoutExpired:
            raise ExportVerificationError(
                f"loading and running {str(path)!r} in a fresh process took over 600 s"
            ) from None
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or ["no error output"]
            errors = [line for line in lines if "Error" in line]
            raise ExportVerificationError(
                f"loading {str(path)!r} in a fresh process failed: {(errors or lines)[-1].strip()}"
            )
        with np.load(outputs) as data:
            return {key: data[key] for key in data.files}


def verify(
    model: GradINN,
    path: str | os.PathLike,
    *,
    n: int = 1000,
    atol: float = 1e-5,
    rtol: float = 1e-5,
    seed: int = 0,
) -> dict[str, float]:
    """Checks an exported artifact against the Keras model.

    Loads the SavedModel (`tf.saved_model.load`) or ONNX file (onnxruntime)
    in a fresh Python process that does not import keras_gradinn, evaluates
    it on `n` in-domain points at batch sizes 1 and `n`, and compares every
    `y` and `dy_dx` with `model.predict` and `model.predict_gradient` (and
    `y_std`, `dy_dx_std` with their `return_std=True`):
    `|artifact - keras| <= atol * unit + rtol * |keras|` everywhere, where
    `unit` is the output's standard deviation for `y_i` (and `y_std_i`) and
    `std_i / half_width_j` for `dy_dx[:, i, j]`, so that `atol` means the
    same (a fraction of the standardised output) whatever the units.

    Args:
        model: the source `GradINN`.
        path: a SavedModel directory or an `.onnx` file.
        n: number of test points (>= 1), drawn uniformly in the domain.
        atol: absolute tolerance, in standardised units.
        rtol: relative tolerance.
        seed: seed of the test points.

    Returns:
        The largest absolute difference per compared output.

    Raises:
        ExportVerificationError: naming the output, batch size and largest
            difference, when they disagree or the artifact does not load.
    """
    model = _check_model(model)
    _check_tolerances(atol, rtol)
    seed = integer_in(seed, "seed", 0)
    path = pathlib.Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r} does not exist")
    n = integer_in(n, "n", 1)
    # A model that lost its `contains` predicate is checked on the whole box:
    # the artifact must agree with Keras there too.
    x = sampling.sample(int(n), model.bounds, method="uniform", seed=seed).astype("float32")
    std = keras.ops.convert_to_numpy(model.output_std).astype(np.float64)
    _, half_width = sampling.centre_and_half_width(model.bounds)
    units = {"y": std[None, :], "dy_dx": (std[:, None] / half_width[None, :])[None]}
    units.update(y_std=units["y"], dy_dx_std=units["dy_dx"])
    expected = {"y": model.predict(x, verbose=0), "dy_dx": model.predict_gradient(x)}
    expected["y_std"] = model.predict(x, return_std=True)[1]
    expected["dy_dx_std"] = model.predict_gradient(x, return_std=True)[1]
    if path.is_dir():
        results = _run_in_fresh_process(_SAVED_MODEL_RUNNER, path, x)
    else:
        results = _run_in_fresh_process(_ONNX_RUNNER, path, x)
    if not any(key.split("/")[1] == "y" for key in results):
        raise ExportVerificationError(f"{str(path)!r} has no output named 'y'")
    differences = {}
    for key, value in results.items():
        _, name, tag = key.split("/")
        if name not in expected:
            raise ExportVerificationError(f"{str(path)!r} has an unexpected output {name!r}")
        reference = expected[name][:1] if tag == "one" else expected[name]
        if value.shape != reference.shape:
            raise ExportVerificationError(
                f"{key}: shape {value.shape} differs from Keras' {reference.shape}"
            )
        error = np.abs(value.astype(np.float64) - reference)
        differences[key] = float(error.max())
        excess = error - (atol * units[name] + rtol * np.abs(reference))
        if np.any(excess > 0):
            where = np.unravel_index(np.argmax(excess), excess.shape)
            raise ExportVerificationError(
                f"{key} differs from Keras by up to {error.max():.3g} (at index "
                f"{tuple(int(i) for i in where)}; atol={atol:g}, rtol={rtol:g})"
            )
    return differences


# `to_saved_model` and `to_onnx` take a `verify` flag that shadows the function.
_verify = verify
