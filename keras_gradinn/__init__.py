"""keras_gradinn: Gradient-Informed Neural Networks for Keras.

Fit a surrogate of a physical system to a few data points while its input
Jacobian follows a prior belief (smooth, oscillating, near-linear) over the
whole domain. `GradINNRegressor` is the scikit-learn estimator that chooses
the belief by cross-validation; `GradINN` is the Keras model underneath.

Importing the package registers its Keras objects, so
`keras.models.load_model` can read saved `GradINN` files afterwards.
Optional converters (tf2onnx, onnx, onnxruntime) and matplotlib load only
when an export or a plot is made.
"""

from keras_gradinn import (
    datasets,
    export,
    kernels,
    priors,
    problems,
    sampling,
    sensitivity,
    stacked,
    training,
)
from keras_gradinn.estimator import Candidate, GradINNRegressor
from keras_gradinn.jacobian import value_and_jacobian
from keras_gradinn.model import GradINN, NonFiniteLossError
from keras_gradinn.networks import mlp

__version__ = "0.1.0"

__all__ = [
    "Candidate",
    "GradINN",
    "GradINNRegressor",
    "NonFiniteLossError",
    "__version__",
    "datasets",
    "export",
    "kernels",
    "mlp",
    "priors",
    "problems",
    "sampling",
    "sensitivity",
    "stacked",
    "training",
    "value_and_jacobian",
]
