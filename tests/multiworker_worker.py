"""One worker of the two-process MultiWorkerMirroredStrategy test (tests/test_multiworker.py).

Run as `python tests/multiworker_worker.py OUT_DIR` with TF_CONFIG set; it
writes `OUT_DIR/worker-<index>.json`, and the chief (index 0) also saves
`OUT_DIR/model.keras`. The test imports the same configuration (`build`,
`dataset`, `DATA`) for its single-process reference run, so both sides
train exactly the same model on exactly the same batches.
"""

from __future__ import annotations

import json
import os
import pathlib
import sys

import keras
import numpy as np
import tensorflow as tf

import keras_gradinn as kg

N_COLLOCATION = 32
EPOCHS = 4
GLOBAL_BATCH = 32


def data() -> tuple[np.ndarray, np.ndarray]:
    """64 training rows: two global batches of 32 per epoch."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, (64, 2)).astype("float32")
    return x, (np.sin(3.0 * x[:, :1]) + x[:, 1:]).astype("float32")


def fixed_points() -> np.ndarray:
    """A fixed collocation set of exactly N_COLLOCATION points: every replica uses all of it."""
    return np.random.default_rng(1).uniform(0.0, 1.0, (N_COLLOCATION, 2))


def dataset(x: np.ndarray, y: np.ndarray) -> tf.data.Dataset:
    """Batches of the global batch size, sharded by DATA across workers.

    Every worker builds the whole dataset; DATA sharding gives worker i the
    i-th slice of each global batch, so a step sees the same 32 rows as a
    single process does. (OFF would give each worker every batch, FILE needs
    files, and AUTO falls back to DATA with a warning.)
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH).with_options(options)


def build(sampler, n_collocation: int = N_COLLOCATION) -> kg.GradINN:
    """A small compiled GradINN; call inside `strategy.scope()` to distribute it."""
    model = kg.GradINN(
        kg.mlp(2, 1, width=16, depth=2, seed=1),
        kg.priors.smooth(2, 1, width=8, seed=2),
        bounds=[(0, 1), (0, 1)],
        sampler=sampler,
        n_collocation=n_collocation,
        gradient_weight=0.5,
        seed=3,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def history(fitted: keras.callbacks.History) -> dict[str, list[float]]:
    return {key: [float(v) for v in values] for key, values in fitted.history.items()}


def weights(model: keras.Model) -> list[list]:
    return [np.asarray(w).tolist() for w in model.get_weights()]


class _Interrupt(keras.callbacks.Callback):
    """Raises at the start of epoch `epoch`, as a crash would, on every worker alike."""

    def __init__(self, epoch: int):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            raise RuntimeError("interrupted")


def fixed_case(strategy, out_dir: pathlib.Path, task: int) -> dict:
    """Fit on a dataset and on arrays with the fixed point set; evaluate; the chief saves."""
    x, y = data()
    with strategy.scope():
        model = build(fixed_points())
    fitted = model.fit(dataset(x, y), epochs=EPOCHS, verbose=0)
    result = {
        "history": history(fitted),
        "weights": weights(model),
        "predictions": model.predict(x, verbose=0).tolist(),
        "evaluate": {key: float(value) for key, value in
                     model.evaluate(dataset(x, y), verbose=0, return_dict=True).items()},
        "step": int(model.collocation_step.numpy()),
    }
    if task == 0:
        # Saving reads each variable's local copy: no collective, so the
        # chief alone may save without the other workers waiting for it.
        model.save(out_dir / "model.keras")
    with strategy.scope():
        on_arrays = build(fixed_points())
    fitted = on_arrays.fit(x, y, batch_size=GLOBAL_BATCH, epochs=2, shuffle=False, verbose=0)
    result["arrays_history"] = history(fitted)
    return result


def sobol_case(strategy) -> dict:
    """The default sampler: each replica draws its own points at every step."""
    x, y = data()
    with strategy.scope():
        model = build("sobol", n_collocation=16)
    fitted = model.fit(dataset(x, y), epochs=2, verbose=0)
    points = strategy.run(model.collocation_points)
    return {
        "history": history(fitted),
        "step": int(model.collocation_step.numpy()),
        "points": strategy.experimental_local_results(points)[0].numpy().tolist(),
    }


def restart_case(strategy, out_dir: pathlib.Path, task: int) -> dict:
    """BackupAndRestore: stop after 2 of 4 epochs, rebuild, fit again to the end."""
    x, y = data()
    backup = keras.callbacks.BackupAndRestore(str(out_dir / f"backup-worker-{task}"))
    with strategy.scope():
        model = build(fixed_points())
    try:
        model.fit(dataset(x, y), epochs=EPOCHS, verbose=0, callbacks=[backup, _Interrupt(2)])
    except RuntimeError:
        pass
    with strategy.scope():
        model = build(fixed_points())
    fitted = model.fit(dataset(x, y), epochs=EPOCHS, verbose=0, callbacks=[backup])
    return {"history": history(fitted), "weights": weights(model),
            "step": int(model.collocation_step.numpy())}


def guard_case(strategy) -> dict:
    """A target that overflows the loss only in worker 1's half of the first batch."""
    x, y = data()
    with strategy.scope():
        model = build(fixed_points())
    model.adapt(y)
    y = y.copy()
    y[20] = 1e30  # rows 16-31 of the first global batch go to worker 1
    try:
        model.fit(dataset(x, y), epochs=2, verbose=0)
    except Exception as error:  # noqa: BLE001 - the test reports whichever it was
        return {"error": f"{type(error).__name__}: {error}"[:2000]}
    return {"error": None}


def main(out_dir: str) -> None:
    out = pathlib.Path(out_dir)
    # The strategy must exist before any other TensorFlow op runs.
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = int(json.loads(os.environ["TF_CONFIG"])["task"]["index"])
    result = {
        "replicas": int(strategy.num_replicas_in_sync),
        "package": kg.__file__,
        "fixed": fixed_case(strategy, out, task),
        "sobol": sobol_case(strategy),
        "restart": restart_case(strategy, out, task),
        # Last: it leaves the weights NaN.
        "guard": guard_case(strategy),
    }
    (out / f"worker-{task}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
