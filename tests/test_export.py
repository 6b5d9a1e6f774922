"""Exported SavedModels and ONNX files answer like the Keras model, or are not written."""

import hashlib
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
from conftest import SUBPROCESS_TIMEOUT

import keras_gradinn as kg
from keras_gradinn import export
from keras_gradinn.jacobian import ACTIVATIONS

BOUNDS = [(-2.0, 3.0), (0.0, 1.0), (5.0, 6.0)]


def trained_model(activation="silu", m=1, network=None):
    network = network or kg.mlp(3, m, width=16, depth=2, activation=activation, seed=1)
    model = kg.GradINN(network, "smooth", bounds=BOUNDS, n_collocation=64, seed=2)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = kg.sampling.sample(64, BOUNDS, seed=3)
    y = np.stack([np.sin(x[:, 0]) * x[:, 1] * 40 + 100, x[:, 2] ** 2, x[:, 0] * x[:, 2]], 1)[:, :m]
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    return model


@pytest.mark.parametrize("m", [1, 3])
def test_a_stacked_network_exports_the_members_mean_its_jacobian_and_their_spread(tmp_path, m):
    model = trained_model(m=m, network=kg.mlp(3, m, width=16, depth=2, seed=1, members=4))
    model.calibration = {"scale": [1.5] * m, "floor": [0.05] * m, "noise": [0.1] * m}
    path = export.to_onnx(model, tmp_path / "model.onnx", with_gradient=True)
    x = kg.sampling.sample(50, BOUNDS, seed=5)
    out = onnx_outputs(path, x)
    assert list(out) == ["y", "y_std", "dy_dx", "dy_dx_std"]
    members, slopes = model.predict_members(x), model.predict_gradient(x, members=True)
    np.testing.assert_allclose(out["y"], members.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["dy_dx"], slopes.mean(axis=1), rtol=1e-5, atol=1e-5)
    floor = 0.05 * model.output_std.numpy()
    np.testing.assert_allclose(out["y_std"], np.hypot(1.5 * members.std(axis=1, ddof=1), floor),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["dy_dx_std"], 1.5 * slopes.std(axis=1, ddof=1), rtol=1e-4,
                               atol=1e-5)
    described = json.loads(onnx.load(path).metadata_props[0].value)
    assert list(described["outputs"]) == ["y", "y_std", "dy_dx", "dy_dx_std"]
    assert described["calibration"] == model.calibration.as_dict()
    plain = onnx_outputs(export.to_onnx(model, tmp_path / "plain.onnx", with_std=False), x)
    assert list(plain) == ["y"]
    serving = export.to_saved_model(model, tmp_path / "serving", with_gradient=True)
    loaded = tf.saved_model.load(str(serving))
    outputs = loaded.signatures["predict_with_gradient"](x=tf.constant(x, tf.float32))
    np.testing.assert_allclose(outputs["y_std"], out["y_std"], rtol=1e-4, atol=1e-5)
    assert set(loaded.signatures["serving_default"].structured_outputs) == {"y", "y_std"}


def onnx_outputs(path, x):
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {"x": x.astype("float32")})))


def finite_difference_jacobian(predict, x, m, relative_step=1e-2):
    half_width = (np.array(BOUNDS)[:, 1] - np.array(BOUNDS)[:, 0]) / 2
    columns = []
    for j in range(3):
        step = np.zeros(3)
        step[j] = relative_step * half_width[j]
        columns.append((predict(x + step) - predict(x - step)) / (2 * step[j]))
    return np.stack(columns, axis=-1).reshape(len(x), m, 3)


@pytest.mark.parametrize("m", [1, 3])
@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
def test_onnx_with_gradient_matches_keras_and_finite_differences(tmp_path, activation, m):
    model = trained_model(activation, m)
    path = export.to_onnx(model, tmp_path / "model.onnx", with_gradient=True)  # verifies 1 and 1000

    x = kg.sampling.sample(200, [(-1.8, 2.8), (0.05, 0.95), (5.05, 5.95)], seed=5)
    out = onnx_outputs(path, x)
    assert out["y"].shape == (200, m) and out["dy_dx"].shape == (200, m, 3)
    np.testing.assert_allclose(out["dy_dx"], model.predict_gradient(x), rtol=1e-5, atol=1e-5)
    # A ReLU network's Jacobian jumps at kinks: a short step straddles fewer
    # of them, and the few that remain are allowed for.
    relu = activation == "relu"
    fd = finite_difference_jacobian(lambda v: onnx_outputs(path, v)["y"], x, m,
                                    relative_step=1e-3 if relu else 1e-2)
    mismatched = np.abs(out["dy_dx"] - fd) > 2e-2 * np.abs(fd).max()
    assert mismatched.mean() <= (0.05 if relu else 0.0)


# The SavedModel differentiates the network with TensorFlow's tape, so an
# activation's slope there is TensorFlow's own; every activation's closed-form
# slope is checked above, through the ONNX file's explicit chain rule. GELU
# with three outputs, as its float32 constant is the one that rounds.
@pytest.mark.parametrize("activation, m", [("silu", 1), ("gelu", 3)])
def test_saved_model_signatures_match_keras(tmp_path, activation, m):
    model = trained_model(activation, m)
    # Verifies batches of 1 and 1000 in a fresh process.
    path = export.to_saved_model(model, tmp_path / "serving")
    assert path == tmp_path / "serving" / "1"
    record = json.loads((path / "assets.extra" / "keras_gradinn.json").read_text())
    assert record["outputs"]["dy_dx"]["shape"] == [None, m, 3]
    assert record["bounds"] == [list(b) for b in BOUNDS]
    assert record["output_std"] == pytest.approx(
        keras.ops.convert_to_numpy(model.output_std).tolist()
    )


def test_onnx_file_is_standard_and_described(tmp_path):
    model = trained_model("tanh", 3)
    path = export.to_onnx(model, tmp_path / "model.onnx", opset=17, with_gradient=True)
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert {node.domain for node in proto.graph.node} <= {"", "ai.onnx"}
    assert [v.name for v in proto.graph.input] == ["x"]
    assert [v.name for v in proto.graph.output] == ["y", "dy_dx"]
    batch = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param and not batch.dim_value  # dynamic batch dimension
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    record = json.loads(session.get_modelmeta().custom_metadata_map["keras_gradinn"])
    assert record["onnx_opset"] == 17 and record["tensorflow_version"]
    assert record["jacobian_layout"].startswith("dy_dx[b, i, j] = d y_i / d x_j")
    assert record["weights_sha256"] == export.metadata(model, with_gradient=True)["weights_sha256"]
    assert record["prior"]["name"] == "smooth_prior"


def test_reloaded_model_exports_the_same(tmp_path):
    model = trained_model("silu", 3)
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", safe_mode=True)
    first = export.to_onnx(model, tmp_path / "a.onnx", with_gradient=True, verify=False)
    second = export.to_onnx(reloaded, tmp_path / "b.onnx", with_gradient=True)
    x = kg.sampling.sample(50, BOUNDS, seed=0)
    a, b = onnx_outputs(first, x), onnx_outputs(second, x)
    for name in ("y", "dy_dx"):
        np.testing.assert_array_equal(a[name], b[name])
    assert export.to_saved_model(reloaded, tmp_path / "serving").name == "1"


def run_cli(*args):
    command = pathlib.Path(sys.executable).parent / "saved_model_cli"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run([str(command), *args], capture_output=True, text=True, env=env,
                            timeout=SUBPROCESS_TIMEOUT)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_saved_model_cli_shows_and_runs_the_signatures(tmp_path):
    model = trained_model("tanh", 3)
    path = export.to_saved_model(model, tmp_path / "serving", version=7)
    shown = run_cli("show", "--dir", str(path), "--all")
    for signature in ("serving_default", "predict_with_gradient"):
        assert f"signature_def['{signature}']" in shown
    assert "inputs['x']" in shown and "shape: (-1, 3)" in shown
    assert "outputs['dy_dx']" in shown and "shape: (-1, 3, 3)" in shown

    x = kg.sampling.sample(5, BOUNDS, seed=8).astype("float32")
    np.save(tmp_path / "x.npy", x)
    run_cli("run", "--dir", str(path), "--tag_set", "serve", "--signature_def",
            "predict_with_gradient", "--inputs", f"x={tmp_path / 'x.npy'}",
            "--outdir", str(tmp_path / "out"))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "y.npy"), model.predict(x, verbose=0),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.load(tmp_path / "out" / "dy_dx.npy"),
                               model.predict_gradient(x), rtol=1e-5, atol=1e-5)


def test_saved_model_versions_are_never_overwritten(tmp_path):
    model = trained_model()
    base = tmp_path / "serving"
    first = export.to_saved_model(model, base, with_gradient=False, verify=False)
    second = export.to_saved_model(model, base, with_gradient=False, verify=False)
    assert (first.name, second.name) == ("1", "2")
    stamp = (first / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="never overwritten"):
        export.to_saved_model(model, base, version=1)
    assert (first / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in base.iterdir()) == ["1", "2"]


def unsupported_network():
    inputs = keras.Input(shape=(3,))
    h = keras.layers.Dense(8, activation="tanh")(inputs)
    h = keras.layers.LayerNormalization()(h)
    return keras.Model(inputs, keras.layers.Dense(1)(h))


@pytest.mark.parametrize(
    "network, message",
    [
        (unsupported_network(), "LayerNormalization is not supported"),
        (kg.mlp(3, 1, width=4, depth=1, activation="selu"), "activation 'selu'"),
    ],
)
def test_unfaithful_onnx_export_raises_before_writing(tmp_path, network, message):
    model = kg.GradINN(network, "smooth", bounds=BOUNDS, n_collocation=8)
    with pytest.raises(ValueError, match=message):
        export.to_onnx(model, tmp_path / "model.onnx", with_gradient=True)
    assert list(tmp_path.iterdir()) == []


def test_value_only_onnx_export_of_other_layers_works(tmp_path):
    model = kg.GradINN(unsupported_network(), "smooth", bounds=BOUNDS, n_collocation=8)
    path = export.to_onnx(model, tmp_path / "model.onnx")
    assert [o.name for o in onnx.load(path).graph.output] == ["y"]


def test_failed_verification_leaves_the_previous_artifact_and_no_debris(tmp_path, monkeypatch):
    model = trained_model()
    target = tmp_path / "model.onnx"
    export.to_onnx(model, target, verify=False)
    before = target.read_bytes()

    def disagree(*args, **kwargs):
        raise export.ExportVerificationError("onnx/y/all differs from Keras")

    monkeypatch.setattr(export, "_verify", disagree)
    with pytest.raises(export.ExportVerificationError):
        export.to_onnx(model, target, with_gradient=True)
    with pytest.raises(export.ExportVerificationError):
        export.to_saved_model(model, tmp_path / "serving")
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]


def test_verify_detects_a_model_that_changed_after_export(tmp_path):
    model = trained_model("tanh", 1)
    path = export.to_onnx(model, tmp_path / "model.onnx", with_gradient=True)
    kernel = model.network.get_layer("output").kernel
    kernel.assign(kernel * 1.01)
    with pytest.raises(export.ExportVerificationError, match="differs from Keras by up to"):
        export.verify(model, path, n=50)


def file_digests(directory):
    """Every file under `directory`, by relative path, with its contents' hash."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


MISMATCH = r"serving_default/y/(one|all) differs from Keras by up to"


def recording_fresh_process_runs(monkeypatch):
    """Records what artifacts answer in the verification's fresh processes."""
    answers = {}
    run = export._run_in_fresh_process

    def run_and_record(*args):
        answers.update(run(*args))
        return dict(answers)

    monkeypatch.setattr(export, "_run_in_fresh_process", run_and_record)
    return answers


def test_a_saved_model_that_disagrees_with_keras_is_refused_and_leaves_the_previous_version(
    tmp_path, monkeypatch
):
    model = trained_model("tanh", 1)
    base = tmp_path / "serving"
    # Without the gradient signature: the first mismatch found ends the
    # check, and a fresh process answering one signature is seconds faster.
    first = export.to_saved_model(model, base, with_gradient=False, verify=False)
    previous = file_digests(first)
    kernel = model.network.get_layer("output").kernel
    original = kernel.numpy()
    # `keras.export.ExportArchive()` returns the backend's archive class.
    archive_type = type(keras.export.ExportArchive())
    write_out = archive_type.write_out

    def write_slightly_different_weights(self, *args, **kwargs):
        # The artifact gets output weights 0.1% off; Keras keeps the originals.
        kernel.assign(original * 1.001)
        try:
            return write_out(self, *args, **kwargs)
        finally:
            kernel.assign(original)

    monkeypatch.setattr(archive_type, "write_out", write_slightly_different_weights)
    answers = recording_fresh_process_runs(monkeypatch)
    with pytest.raises(export.ExportVerificationError, match=MISMATCH):
        export.to_saved_model(model, base, with_gradient=False)
    assert answers  # refused after loading and running the artifact in a fresh process
    # No version 2, no staging directory, and version 1 untouched.
    assert sorted(p.name for p in base.iterdir()) == ["1"]
    assert file_digests(first) == previous

    # `verify` on its own refuses the same answers. They are replayed rather
    # than recomputed: a fresh process costs seconds, and the loading is the
    # same `_run_in_fresh_process` as above.
    monkeypatch.setattr(export, "_run_in_fresh_process", lambda *args: dict(answers))
    with pytest.raises(export.ExportVerificationError, match=MISMATCH):
        export.verify(model, first)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda m, p: export.to_onnx(m, p / "a.onnx", opset=19), ValueError, "opset must be"),
        (lambda m, p: export.to_onnx(m, p / "missing" / "a.onnx"), ValueError, "does not exist"),
        (lambda m, p: export.to_saved_model(m, p, version=0), ValueError, "positive integer"),
        (lambda m, p: export.to_onnx(m.network, p / "a.onnx"), TypeError, "GradINN"),
    ],
)
def test_bad_export_arguments_are_refused(tmp_path, call, error, message):
    model = kg.GradINN(kg.mlp(3, 1, width=4, depth=1), "smooth", bounds=BOUNDS, n_collocation=8)
    with pytest.raises(error, match=message):
        call(model, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_deploy_example_runs_without_tensorflow(tmp_path):
    model = trained_model("silu", 1)
    path = export.to_onnx(model, tmp_path / "surrogate.onnx", with_gradient=True)
    root = pathlib.Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, str(root / "examples" / "deploy_onnx.py"), str(path), "--steps", "20"],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorflow imported: False" in result.stdout
    first, last = (float(line.split()[-1]) for line in result.stdout.splitlines()
                   if line.startswith(("start", "end")))
    assert last < first  # gradient descent on the surrogate went downhill


def test_importing_the_package_does_not_import_the_converters():
    code = ("import sys, keras_gradinn; "
            "print([m for m in ('tf2onnx', 'onnx', 'onnxruntime') if m in sys.modules])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=SUBPROCESS_TIMEOUT,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_verification_tolerance_follows_the_output_units(tmp_path, monkeypatch):
    # Outputs of order 1e6 over an input range of 1e-3 (derivatives of order
    # 1e9): float32 rounding alone exceeds an absolute 1e-5 in these units,
    # not in standardised ones.
    bounds = [(0.0, 1e-3), (0.0, 1.0)]
    model = kg.GradINN(kg.mlp(2, 1, width=16, depth=2, seed=1), "smooth", bounds=bounds,
                       n_collocation=16)
    model.compile(optimizer="adam")
    x = kg.sampling.sample(64, bounds, seed=0)
    model.fit(x, 1e6 * (3 * np.sin(2e3 * x[:, :1]) + x[:, 1:]), epochs=2, verbose=0)
    answers = recording_fresh_process_runs(monkeypatch)
    path = export.to_onnx(model, tmp_path / "big.onnx", with_gradient=True)  # round-off passes
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~current_umask())
    assert np.abs(answers["onnx/y/all"]).max() > 1e5
    assert np.abs(answers["onnx/dy_dx/all"]).max() > 1e8

    def replay(scale):
        """The artifact's answers with `scale[name]` applied to each output.

        `verify`'s defaults draw the same 1000 points as the export's check.
        """
        changed = {key: value * np.float32(scale.get(key.split("/")[1], 1.0))
                   for key, value in answers.items()}
        monkeypatch.setattr(export, "_run_in_fresh_process", lambda *args: changed)

    # A few float32 ulps more on every output is still accepted...
    replay({"y": 1 + 8 * np.finfo(np.float32).eps, "dy_dx": 1 - 8 * np.finfo(np.float32).eps})
    export.verify(model, path)
    # ...but either output 0.1% off is caught, however large its units.
    for name in ("y", "dy_dx"):
        replay({name: 1.001})
        with pytest.raises(export.ExportVerificationError,
                           match=f"onnx/{name}/(one|all) differs from Keras by up to"):
            export.verify(model, path)


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_failed_saved_model_export_removes_the_directories_it_created(tmp_path, monkeypatch):
    def disagree(*args, **kwargs):
        raise export.ExportVerificationError("differs")

    monkeypatch.setattr(export, "_verify", disagree)
    with pytest.raises(export.ExportVerificationError):
        export.to_saved_model(trained_model(), tmp_path / "new" / "base")
    assert list(tmp_path.iterdir()) == []


def test_verify_argument_errors(tmp_path):
    model = trained_model()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        export.verify(model, tmp_path / "missing.onnx")
    path = export.to_onnx(model, tmp_path / "m.onnx", verify=False)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        export.verify(model, path, n=0)
