"""A surrogate from 100 samples of a 10-input function, its prior chosen by cross-validation.

    python examples/surrogate.py              # about two minutes on 2 CPU cores
    python examples/surrogate.py --steps 200  # a quick check

GradINNRegressor is a scikit-learn estimator: `fit` tries its candidate
priors on five folds, refits the best on all rows as an ensemble, and the
result predicts values and exact gradients, saves, loads and exports.
"""

import argparse
import os
import tempfile

import numpy as np

import keras_gradinn as kg

# Friedman's function of 5 inputs, padded with 5 inputs that do nothing.
problem = kg.problems.get("friedman1_10d")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000, help="training steps")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    x = problem.sample(100, rng)
    y = problem.solution(x)[:, 0]
    model = kg.GradINNRegressor(steps=args.steps, random_state=args.seed).fit(x, y)

    results = model.cv_results_
    for params, score in zip(results["params"], results["mean_test_score"]):
        print(f"{params['prior']:>9}: held-out MSE {-score:.4f}")
    print(f"chosen: {model.best_prior_}")

    x_test = problem.sample(2000, np.random.default_rng(args.seed + 1))
    value = np.sqrt(np.mean((model.predict(x_test) - problem.solution(x_test)[:, 0]) ** 2))
    slope = np.sqrt(np.mean((model.predict_gradient(x_test) - problem.gradient(x_test)[:, 0]) ** 2))
    print(f"test RMSE: value {value:.4f}, gradient {slope:.4f}")
    relevance = model.model_.input_relevance(x)
    print("input relevance:", " ".join(f"{r:.2f}" for r in relevance))

    with tempfile.TemporaryDirectory() as folder:
        model.save(os.path.join(folder, "surrogate.keras"))
        again = kg.GradINNRegressor.load(os.path.join(folder, "surrogate.keras"))
        same = np.array_equal(again.predict(x_test), model.predict(x_test))
        kg.export.to_onnx(model.model_, os.path.join(folder, "surrogate.onnx"),
                          with_gradient=True)
    print(f"reloaded predictions identical: {same}; ONNX file written and verified")


if __name__ == "__main__":
    main()
