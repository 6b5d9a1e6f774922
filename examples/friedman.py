"""Fit a GradINN surrogate of the Friedman function from 200 points.

    python examples/friedman.py               # about half a minute on 2 CPU cores
    python examples/friedman.py --steps 100   # a quick check

The whole workflow: data, a prior belief, training, values and gradients
checked against the exact function, saving and reloading.
"""

import argparse
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

import keras_gradinn as kg

# The benchmark problem: the exact function and its exact Jacobian.
friedman = kg.problems.get("friedman1")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="full-batch training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    x = np.random.default_rng(args.seed).random((200, 5))
    y = friedman.solution(x)
    keras.utils.set_random_seed(args.seed)
    network = kg.mlp(input_dim=5, output_dim=1, width=64, depth=3, activation="silu")
    prior = kg.priors.smooth(input_dim=5, output_dim=1)  # belief: a smooth gradient field
    model = kg.GradINN(network, prior, bounds=[(0.0, 1.0)] * 5, gradient_weight=1e-2)
    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=args.steps)
    model.compile(optimizer=keras.optimizers.Adam(schedule),
                  metrics=[keras.metrics.RootMeanSquaredError(name="rmse")])
    model.adapt(y)
    # 200 points make one full batch; repeat it rather than run thousands of epochs.
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(data, epochs=5, steps_per_epoch=max(1, args.steps // 5), verbose=2)

    x_test, y_test = friedman.test_set()  # the benchmark's 10,000 clean test points
    value_error = model.predict(x_test, verbose=0) - y_test
    gradient_error = model.predict_gradient(x_test) - friedman.gradient(x_test)
    value_rmse = np.sqrt(np.mean(value_error**2))
    gradient_rmse = np.sqrt(np.mean(gradient_error**2))
    print(f"test RMSE: value {value_rmse:.4f}, gradient {gradient_rmse:.4f}")

    path = os.path.join(tempfile.mkdtemp(), "friedman.keras")
    model.save(path)
    reloaded = keras.models.load_model(path, safe_mode=True)
    same = np.array_equal(reloaded.predict(x_test, verbose=0), model.predict(x_test, verbose=0))
    print(f"saved to {path}; reloaded predictions identical: {same}")


if __name__ == "__main__":
    main()
