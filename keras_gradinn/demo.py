"""The built-in demo: GradINN against a plain network on the Friedman function."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["friedman", "run"]

#: Seed of the demo's test inputs; no training run uses it.
TEST_SEED = 10_000


def friedman(x: np.ndarray) -> np.ndarray:
    """Friedman's function on [0, 1]^5, shape (n, 5) -> (n, 1) (`problems.get("friedman1")`)."""
    from keras_gradinn.problems import friedman as problem

    return problem.solution(x)


def _train(x, y, *, gradient_weight: float, steps: int, seed: int):
    import keras

    import keras_gradinn as kg
    from keras_gradinn.training import train_full_batch

    keras.utils.set_random_seed(seed)
    network = kg.mlp(5, 1, width=64, depth=3, activation="silu")
    model = kg.GradINN(
        network, "smooth", bounds=[(0.0, 1.0)] * 5, gradient_weight=gradient_weight, seed=seed
    )
    return train_full_batch(model, x, y, steps=steps, learning_rate=3e-3)


def run(
    *, n: int = 200, steps: int = 10_000, seed: int = 0, noise: float = 0.0,
    gradient_weight: float = 1e-2, out: str | None = None, verbose: bool = True,
) -> dict[str, dict[str, float]]:
    """Trains GradINN and the same network without the gradient term.

    Both share the network (3x64 SiLU), optimiser (Adam, cosine-decayed from
    3e-3), full-batch step budget and normalisation. Training targets get
    Gaussian noise of `noise` times their standard deviation; test RMSE is
    measured against the clean function on 10,000 uniform points drawn with a
    seed no training run uses.

    With `out`, also writes `out/test_predictions.png` (both models against
    the exact function) and `out/friedman.onnx` (the GradINN surrogate with
    its Jacobian, verified against Keras).

    Returns:
        `{"GradINN": {...}, "plain network": {...}}`, each with `rmse` and
        `seconds`.
    """
    rng = np.random.default_rng(seed)
    x = rng.random((n, 5))
    y = friedman(x)
    y = y + rng.normal(0.0, noise * y.std(), size=y.shape)
    x_test = np.random.default_rng(TEST_SEED).random((10_000, 5))
    if verbose:
        print(f"Friedman function, {n} training points, noise {noise:g}, "
              f"{steps} full-batch steps, seed {seed}")
    results, models = {}, {}
    for name, weight in (("GradINN", gradient_weight), ("plain network", 0.0)):
        start = time.perf_counter()
        model = _train(x, y, gradient_weight=weight, steps=steps, seed=seed)
        models[name] = model
        error = model.predict(x_test, verbose=0) - friedman(x_test)
        results[name] = {
            "rmse": float(np.sqrt(np.mean(error**2))),
            "seconds": time.perf_counter() - start,
        }
        if verbose:
            print(f"{name:>14}: test RMSE {results[name]['rmse']:.4f}"
                  f"  ({results[name]['seconds']:.0f} s)")
    if out is not None:
        import pathlib

        from keras_gradinn import export, plots

        folder = pathlib.Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        truth = friedman(x_test)
        plots.comparison(folder / "test_predictions.png", truth,
                         {name: model.predict(x_test, verbose=0) for name, model in models.items()})
        export.to_onnx(models["GradINN"], folder / "friedman.onnx", with_gradient=True)
        if verbose:
            print(f"wrote {folder / 'test_predictions.png'} and {folder / 'friedman.onnx'}")
    return results
