"""GradINN against a plain network on the Friedman function, 200 points.

    python examples/friedman.py            # about a minute on 2 CPU cores
    python examples/friedman.py --steps 200  # a quick check

Both models share the network, optimiser, schedule and step budget; the only
difference is the gradient term (`gradient_weight=0` for the plain network).
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

import keras_gradinn as kg


def friedman(x):
    return (10 * np.sin(np.pi * x[:, 0] * x[:, 1]) + 20 * (x[:, 2] - 0.5) ** 2
            + 10 * x[:, 3] + 5 * x[:, 4])[:, None]


def train(x, y, *, gradient_weight, steps, seed):
    keras.utils.set_random_seed(seed)
    network = kg.mlp(input_dim=5, output_dim=1, width=64, depth=3, activation="silu")
    model = kg.GradINN(network, "smooth", bounds=[(0.0, 1.0)] * 5,
                       gradient_weight=gradient_weight, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    model.adapt(y)
    # One full batch per step; a repeated dataset keeps Keras' per-epoch
    # overhead out of thousands of tiny epochs.
    data = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(len(x))
    model.fit(data, epochs=10, steps_per_epoch=max(1, steps // 10), verbose=0)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="training points")
    parser.add_argument("--steps", type=int, default=10000, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x = np.random.default_rng(args.seed).random((args.n, 5))
    x_test = np.random.default_rng(10_000).random((10_000, 5))
    print(f"Friedman function, {args.n} points, {args.steps} full-batch steps")
    for name, weight in (("GradINN", 1e-2), ("plain network", 0.0)):
        start = time.perf_counter()
        model = train(x, friedman(x), gradient_weight=weight, steps=args.steps, seed=args.seed)
        error = model.predict(x_test, verbose=0) - friedman(x_test)
        print(f"{name:>14}: test RMSE {np.sqrt(np.mean(error**2)):.4f}"
              f"  ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
