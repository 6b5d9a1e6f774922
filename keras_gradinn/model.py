"""GradINN: a Keras model trained on data and on a prior belief about its gradient.

This module holds the method: construction, the forward pass, the two loss
terms, `train_step`/`test_step`, predictions and Jacobians, and the
configuration. `GradINN` inherits the rest, as `keras.Model` inherits its
trainer: `Standardise` (the normalisation around the network), `Domain`
(the bounds, the checks of data against them, the collocation draws),
`Members` (k networks stacked and trained in one step), `StepGuard` (the
non-finite guard), `Loop` (`fit` and `evaluate`, and speed-ups of Keras'
training loop) and `MultiWorkerBuild` (a workaround in Keras' private API).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from keras_gradinn import files, keras_private, sampling
from keras_gradinn import priors as priors_lib
from keras_gradinn.collocation import Sampler
from keras_gradinn.derivatives import derivative_mismatch, split_target
from keras_gradinn.domain import Domain, is_array_like
from keras_gradinn.errors import NonFiniteLossError
from keras_gradinn.guard import StepGuard
from keras_gradinn.jacobian import (
    dense_forward,
    dense_jacobian,
    dense_layers,
    dense_value_and_jacobian,
    relevance,
    value_and_jacobian,
)
from keras_gradinn.loop import Loop
from keras_gradinn.members import Members
from keras_gradinn.standardise import Standardise
from keras_gradinn.uncertainty import Calibration
from keras_gradinn.validation import integer_in, non_negative, positive_int

__all__ = ["GradINN", "NonFiniteLossError"]


def _check_bounds(bounds: Any) -> np.ndarray:
    """`bounds` as a (d, 2) float64 array whose values and widths fit in float32."""
    bounds = sampling.as_bounds(bounds)
    with np.errstate(over="ignore"):
        as_float32 = np.append(bounds, bounds[:, 1:] - bounds[:, :1], 1)
        fits = np.all(np.isfinite(as_float32.astype(np.float32)))
    if not fits:
        raise ValueError(
            f"bounds must fit in float32 (|value| and width below 3.4e38); got "
            f"{bounds.tolist()}"
        )
    return bounds


def _check_network(network: Any, d: int) -> tuple[int, int, bool]:
    """(outputs m, members k, whether stacked) of a network; k is 1 unless stacked."""
    if not isinstance(network, keras.layers.Layer):
        raise TypeError(f"network must be a keras.Model; got {type(network).__name__}")
    try:
        out = network(np.zeros((2, d), dtype="float32"))
    except Exception as error:
        raise ValueError(
            f"network must accept inputs of shape (n, {d}) to match the bounds; "
            f"calling it failed: {error}"
        ) from error
    if len(out.shape) not in (2, 3):
        raise ValueError(f"network must return shape (n, m), or (n, members, m) for a "
                         f"stacked network; got {tuple(out.shape)}")
    stacked = len(out.shape) == 3
    return int(out.shape[-1]), int(out.shape[1]) if stacked else 1, stacked


def _check_prior(prior: Any, d: int, m: int, members: int) -> int:
    """How many fields the prior gives: 0 (one, shared) or `members` (one each)."""
    if not isinstance(prior, keras.layers.Layer):
        raise TypeError(
            f"prior must be a keras.Model or one of {priors_lib.KINDS}; "
            f"got {type(prior).__name__}"
        )
    try:
        out = prior(np.zeros((2, d), dtype="float32"))
    except Exception as error:
        raise ValueError(
            f"prior must accept inputs of shape (n, {d}); calling it failed: {error}"
        ) from error
    shape = tuple(out.shape[1:])
    if shape in ((m * d,), (m, d)):
        return 0
    if members and shape in ((members, m * d), (members, m, d)):
        return members
    per_member = f", or (n, {members}, {m * d}) with one field per member" if members else ""
    raise ValueError(
        f"prior must output m*d = {m * d} values per point (shape (n, {m * d}) "
        f"or (n, {m}, {d}){per_member}) for {m} output(s) and {d} input(s); got "
        f"shape (n, {', '.join(map(str, shape))})"
    )


def _explicit_chain(network: Any, jacobian: str) -> list | None:
    """The Dense layers whose Jacobian training writes out, or None for the tape."""
    if jacobian not in ("auto", "tape", "forward", "reverse"):
        raise ValueError(
            f"jacobian must be 'auto', 'tape', 'forward' or 'reverse'; got {jacobian!r}"
        )
    if jacobian == "tape":
        return None
    try:
        layers = dense_layers(network)
        for layer in layers:
            if layer.activity_regularizer is not None or layer.quantization_mode:
                raise ValueError(
                    f"layer {layer.name!r} has an activity regularizer or is quantized"
                )
    except ValueError as error:
        if jacobian == "auto":
            return None
        raise ValueError(
            f"jacobian={jacobian!r} needs a chain of Dense layers: {error}"
        ) from None
    return layers


def _check_labels(names: Sequence[str] | None, size: int, stem: str, label: str) -> list[str]:
    """`size` distinct names as strings, by default `stem0, stem1, ...`."""
    if names is None:
        return [f"{stem}{i}" for i in range(size)]
    if isinstance(names, str):
        raise TypeError(f"{label} must be a sequence of strings; got the string {names!r}")
    names = [str(name) for name in names]
    if len(names) != size or len(set(names)) != size:
        raise ValueError(f"{label} must be {size} distinct names; got {names}")
    return names


@keras.saving.register_keras_serializable(package="keras_gradinn")
class GradINN(Standardise, Domain, Members, StepGuard, Loop, keras_private.MultiWorkerBuild,
              keras.Model):
    """A Gradient-Informed Neural Network.

    A primary `network` f is fitted to data while its input Jacobian is
    pulled towards a `prior` network h over the whole domain:

        loss = data_loss(f(z_i), t_i)
               + gradient_weight * mean_c sum_jk (J f(z_c) - h(z_c))_jk^2
               + derivative_weight * (1 / (n m)) sum_(i,j,k observed) (J f(z_i) - G_i)_jk^2

    Here `z = (x - centre) / half_width` maps the `bounds` box onto
    [-1, 1]^d, `t = (y - mean) / std` standardises the targets with the
    statistics of the training targets (from the first `fit`, or from
    `adapt`), `J f(z_c)` is the (m, d) Jacobian of the network at each
    collocation point `z_c`, and `h(z_c)` is the prior's field reshaped to
    (m, d). The last term is there only when the targets carry observed
    derivatives `dy/dx` (`fit(x, y, dy_dx=...)`, see
    `keras_gradinn.derivatives`): `G_i` is row i's, in the normalised
    units; entries that are NaN add nothing, and dividing by the number
    of target values n m counts each observed entry like one value.
    The collocation points are redrawn at every step from the
    domain (`sampler`), and both f and (unless `prior_trainable=False`) h
    are trained together, through the Jacobian (computed as `jacobian`
    says) by the step's tape.

    Because the gradient term lives in the normalised space,
    `gradient_weight` and `derivative_weight` do not depend on the units
    of x or y, and the prior speaks of standardised outputs per unit of
    normalised input. `call`, `predict`, `predict_gradient` and the compiled
    metrics use the user's units: `dy/dx = diag(std) J f(z) diag(1 / half_width)`.

    A stacked `network` holds k members trained together in one step; see
    `keras_gradinn.members`. Their spread is the model's uncertainty:
    `predict(x, return_std=True)` and `predict_gradient(x, return_std=True)`
    give a standard deviation beside the mean (see `calibration`).

    `fit`/`evaluate` report `loss`, `data_loss` (the compiled loss, "mse"
    by default, on standardised targets, honouring `sample_weight`, plus any
    layer regularisation penalties), `gradient_loss` (the mean squared
    Jacobian mismatch, unweighted), once derivatives were given
    `derivative_loss` (their squared error per target value, unweighted)
    and the compiled metrics in user units.
    To monitor `data_loss` or `gradient_loss` in callbacks such as
    `EarlyStopping`, pass `mode="min"`; Keras infers it only for `loss`.

    Args:
        network: a Keras model mapping (n, d) to (n, m), or a stacked one
            mapping (n, d) to (n, k, m), applied to normalised inputs; see
            `keras_gradinn.mlp`.
        prior: a Keras model mapping (n, d) to (n, m*d) or (n, m, d) (with a
            stacked network also (n, k, m*d) or (n, k, m, d): one field per
            member), or one of `"smooth"`, `"oscillatory"`, `"constant"`
            (built with the defaults of `keras_gradinn.priors`).
        bounds: the domain box, one `(low, high)` per input or an array of
            shape (d, 2). Training inputs must lie inside it.
        n_collocation: collocation points per training step (>= 1).
        sampler: how collocation points are drawn: a method name (default
            Sobol'), a fixed array of points, a dict for a pool drawn once,
            or a callable; see `set_sampler`.
        contains: optional `contains(x) -> bool mask` for domains that are
            not boxes; see `set_sampler`.
        gradient_weight: lambda >= 0. With 0 the gradient term and its
            nested tape are skipped entirely.
        derivative_weight: the weight >= 0 of observed derivatives, when
            the targets carry them. The default 1 counts each observed
            derivative entry's squared error as much as the data term counts
            a value's (both in normalised units; see
            `keras_gradinn.derivatives.derivative_mismatch`).
        jacobian: how training computes the Jacobian. `"auto"` (default):
            the explicit chain rule for a chain of Dense layers (as
            `keras_gradinn.mlp` builds), forward mode if d < m and reverse
            mode otherwise, and a nested `tf.GradientTape` for any other
            network. `"tape"`: always the nested tape. `"forward"`/`"reverse"`:
            the explicit chain rule in that mode (Dense chains only; see
            `keras_gradinn.jacobian.dense_layers`). The chain rule, written
            out from the layers' kernels and closed-form activation slopes,
            gives the tape's values with first-order ops only: faster, and
            compilable by XLA (docs/performance.md).
        prior_trainable: whether the prior is trained with the network (this
            sets `prior.trainable` on the model passed in).
        seed: seed of the collocation draws (None: drawn from Keras' global
            seed, so `keras.utils.set_random_seed` makes runs repeatable).
        input_labels: names of the d inputs (default `x0, x1, ...`), saved
            with the model and used by the command line and exports.
        output_labels: names of the m outputs (default `y0, y1, ...`).
        metadata: a JSON-serialisable dict saved with the model, for the
            tools that made it (`GradINNRegressor` keeps its choice there).
        calibration: how the members' spread becomes a standard deviation
            (a `keras_gradinn.uncertainty.Calibration` or its dict; None:
            the raw spread); see the `calibration` property.
        **kwargs: passed to `keras.Model`.

    Example:
        >>> import keras_gradinn as kg
        >>> net = kg.mlp(2, 1, width=16, depth=2)
        >>> model = kg.GradINN(net, "smooth", bounds=[(0, 1), (0, 1)])
        >>> model.compile(optimizer="adam")
        >>> x = np.random.default_rng(0).random((32, 2))
        >>> _ = model.fit(x, x.sum(axis=1), epochs=1, verbose=0)
        >>> model.predict_gradient(x[:3]).shape
        (3, 1, 2)
    """

    def __init__(
        self,
        network: keras.Model,
        prior: keras.Model | str = "smooth",
        *,
        bounds: Sequence[Sequence[float]] | np.ndarray,
        n_collocation: int = 1024,
        sampler: str | np.ndarray | dict | Sampler | None = "sobol",
        contains: Callable[[np.ndarray], np.ndarray] | None = None,
        gradient_weight: float = 1e-2,
        derivative_weight: float = 1.0,
        jacobian: str = "auto",
        prior_trainable: bool = True,
        seed: int | None = None,
        input_labels: Sequence[str] | None = None,
        output_labels: Sequence[str] | None = None,
        metadata: dict | None = None,
        calibration: Calibration | dict | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.bounds = _check_bounds(bounds)
        d = len(self.bounds)
        n_collocation = positive_int(n_collocation, "n_collocation")
        if seed is None:
            seed = int(keras.random.randint((), 0, 2**31 - 1))
        else:
            seed = integer_in(seed, "seed", 0, 2**31 - 1)
        self.network = network
        m, self.members, self._stacked = _check_network(network, d)
        if isinstance(prior, str):
            prior = priors_lib.build(prior, d, m)
        self._prior_members = _check_prior(prior, d, m, self.members if self._stacked else 0)
        prior.trainable = bool(prior_trainable)
        self.prior = prior
        self.input_dim, self.output_dim = d, m
        self.jacobian = jacobian
        self._dense = _explicit_chain(network, jacobian)
        self.n_collocation = int(n_collocation)
        self._gradient_weight = 0.0
        self.gradient_weight = gradient_weight
        self._derivative_weight = 0.0
        self.derivative_weight = derivative_weight
        self.prior_trainable = bool(prior_trainable)
        self.seed = int(seed)
        self.input_labels = _check_labels(input_labels, d, "x", "input_labels")
        self.output_labels = _check_labels(output_labels, m, "y", "output_labels")
        self.metadata = metadata
        self._init_members(calibration)

        self._init_scales(*sampling.centre_and_half_width(self.bounds), m)
        # Counts training steps so that collocation draws are a pure function
        # of (seed, step): reloaded models continue the same sequence.
        self.collocation_step = self.add_weight(
            name="collocation_step",
            shape=(),
            dtype="int64",
            initializer="zeros",
            trainable=False,
            aggregation="only_first_replica",
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.data_loss_tracker = keras.metrics.Mean(name="data_loss")
        self.gradient_loss_tracker = keras.metrics.Mean(name="gradient_loss")
        self.derivative_loss_tracker = keras.metrics.Mean(name="derivative_loss")
        # Set when a step is traced with observed derivatives: from then on
        # `derivative_loss` is among the metrics.
        self._observes_derivatives = False
        self._jacobian_function = None
        self._init_guard(list(network.weights) + list(prior.weights))
        self.set_sampler(sampler, contains=contains)
        # One call records the input shape, as Keras' export and summary expect.
        self(np.zeros((1, d), dtype="float32"))

    @property
    def metadata(self) -> dict | None:
        """A JSON-serialisable dict saved with the model (None if unset)."""
        return None if self._metadata is None else json.loads(self._metadata)

    @metadata.setter
    def metadata(self, value: dict | None) -> None:
        if value is not None and not isinstance(value, dict):
            raise TypeError(f"metadata must be a dict or None; got {type(value).__name__}")
        try:
            # Kept as text: Keras would wrap a dict attribute in a tracked structure.
            self._metadata = None if value is None else json.dumps(value)
        except (TypeError, ValueError) as error:
            raise ValueError(f"metadata must be JSON-serialisable: {error}") from None

    @property
    def gradient_weight(self) -> float:
        """The weight lambda of the gradient term; setting it retraces the step."""
        return self._gradient_weight

    @gradient_weight.setter
    def gradient_weight(self, value: float) -> None:
        self._gradient_weight = non_negative(value, "gradient_weight")
        # The weight is a constant of the traced step (weight 0 skips the
        # nested tape), so a new value needs new step functions.
        self.train_function = self.test_function = None

    @property
    def derivative_weight(self) -> float:
        """The weight of observed derivatives; setting it retraces the step."""
        return self._derivative_weight

    @derivative_weight.setter
    def derivative_weight(self, value: float) -> None:
        self._derivative_weight = non_negative(value, "derivative_weight")
        self.train_function = self.test_function = None

    # ---------------------------------------------------------------- forward

    def call(self, inputs, training=None):
        """Predicts in user units: `mean + std * f((x - centre) / half_width)`.

        For a stacked network, `f` is the mean of the members' outputs.
        """
        inputs = self._as_rows(inputs)
        offset, scale, mean, std = self._scales(inputs.dtype)
        outputs = self.network((inputs - offset) / scale, training=training)
        if self._stacked:
            outputs = tf.reduce_mean(outputs, axis=1)
        return mean + std * outputs

    def value_and_jacobian(self, x, *, method: str = "reverse") -> tuple[tf.Tensor, tf.Tensor]:
        """Prediction (n, m) and Jacobian dy/dx (n, m, d) in user units.

        Args:
            x: inputs of shape (n, d).
            method: `"reverse"` (a gradient tape; any network) or `"forward"`
                (an explicit chain rule without gradient ops; networks of
                Dense layers, see `keras_gradinn.jacobian.dense_layers`).
        """
        x = self._as_rows(x)
        if method == "reverse":
            return value_and_jacobian(lambda v: self(v, training=False), x)
        if method != "forward":
            raise ValueError(f"method must be 'reverse' or 'forward'; got {method!r}")
        offset, scale, mean, std = self._scales(x.dtype)
        t, jacobian = dense_value_and_jacobian(self.network, (x - offset) / scale)
        if self._stacked:  # member-major (k, n, m) and (k, n, m, d)
            t, jacobian = tf.reduce_mean(t, axis=0), tf.reduce_mean(jacobian, axis=0)
        return mean + std * t, jacobian * (std[:, None] / scale[None, :])

    def gradient_loss(self, z: tf.Tensor, training: bool = False) -> tf.Tensor:
        """Mean over points of ||J f(z) - h(z)||_F^2 at normalised points `z`.

        For a stacked network, the mean over the members too.
        """
        z = tf.convert_to_tensor(z)
        return tf.reduce_mean(self._member_mismatch(z, training))

    def _member_mismatch(self, points, training, field=None) -> tf.Tensor:
        """Each member's mean squared Jacobian mismatch at normalised `points`, shape (k,).

        `field` is the prior's field at the points, if known already.
        """
        jacobian = self._jacobian(points, training)  # (k, n, m, d)
        if field is None:
            field = self.prior(points, training=training)
        if self._prior_members:
            shape = [-1, self._prior_members, self.output_dim, self.input_dim]
            field = tf.transpose(tf.reshape(field, shape), [1, 0, 2, 3])
        else:
            field = tf.reshape(field, [1, -1, self.output_dim, self.input_dim])
        # Float32 at least, so mixed-precision fields do not lose the mismatch.
        dtype = tf.float64 if jacobian.dtype == tf.float64 else tf.float32
        mismatch = tf.cast(jacobian, dtype) - tf.cast(field, dtype)
        return tf.reduce_mean(tf.reduce_sum(tf.square(mismatch), axis=[2, 3]), axis=1)

    def _jacobian(self, points, training) -> tf.Tensor:
        """The members' Jacobians (k, n, m, d) at normalised `points` (k = 1 unless stacked)."""
        if self._dense is None:
            def network(v):
                outputs = self.network(v, training=training)
                return tf.reshape(outputs, [-1, self.members * self.output_dim])

            jacobian = value_and_jacobian(network, points)[1]
            jacobian = tf.reshape(jacobian, [-1, self.members, self.output_dim, self.input_dim])
            return tf.transpose(jacobian, [1, 0, 2, 3])
        _, slopes = dense_forward(self._dense, points)
        jacobian = dense_jacobian(self._dense, slopes, self.jacobian)
        return jacobian if self._stacked else jacobian[None]

    # ---------------------------------------------------------------- training

    @property
    def metrics(self):
        own = [self.loss_tracker, self.data_loss_tracker, self.gradient_loss_tracker,
               self.derivative_loss_tracker]
        # Keras' own "loss" tracker is replaced by ours, which sums the terms.
        rest = [m for m in super().metrics if m.name != "loss" and all(m is not o for o in own)]
        return (own if self._observes_derivatives else own[:3]) + rest

    def _loss_terms(self, z, t, sample_weight, training, derivatives=None):
        """Predictions and the (data, gradient, total) losses, means over members.

        With observed `derivatives` (normalised, see `_normalise`), their
        loss too, before the total. Training minimises `members` times the
        total, the sum of the members' own losses (see `train_step`).
        """
        # The terms Keras does not compute are scaled per replica as Keras
        # scales the compiled loss, so the all-reduced gradients are those of
        # the global mean.
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        t_pred = self.network(z, training=training)
        if self._stacked:
            data_loss = self._stacked_data_loss(z, t, t_pred, sample_weight, training)
        else:
            data_loss = self.compute_loss(
                x=z, y=t, y_pred=t_pred, sample_weight=sample_weight, training=training
            )
        data_loss = tf.cast(data_loss, tf.float32) if data_loss.dtype == tf.float16 else data_loss
        if self.gradient_weight > 0 and (training or self._collocation.mode is not None):
            if self._table is None:
                points, field = tf.cast(self.collocation_points(), z.dtype), None
            else:
                index = self._collocation.subset(self._collocation_seed())
                points = tf.cast(tf.gather(tf.constant(self._collocation.pool), index), z.dtype)
                field = tf.gather(self._table, index)
            mismatch = self._member_mismatch(points, training, field)
            gradient_loss = tf.reduce_mean(mismatch) / replicas
            gradient_loss = tf.cast(gradient_loss, data_loss.dtype)
            loss = data_loss + self.gradient_weight * gradient_loss
        elif self.gradient_weight > 0:
            # Evaluating a model whose sampler was not saved: the gradient term
            # cannot be computed, so it is reported as NaN and left out of `loss`.
            gradient_loss = tf.constant(float("nan"), data_loss.dtype)
            loss = data_loss
        else:
            gradient_loss = tf.zeros((), dtype=data_loss.dtype)
            loss = data_loss
        if derivatives is None:
            return t_pred, data_loss, gradient_loss, loss
        mismatch = derivative_mismatch(self._jacobian(z, training), derivatives, sample_weight)
        derivative_loss = tf.cast(tf.reduce_mean(mismatch) / replicas, data_loss.dtype)
        loss = loss + self.derivative_weight * derivative_loss
        return t_pred, data_loss, gradient_loss, derivative_loss, loss

    def _update_metrics(self, x, y, z, t_pred, sample_weight, losses):
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        batch = tf.shape(z)[0]
        trackers = (self.data_loss_tracker, self.gradient_loss_tracker)
        if len(losses) == 4:
            trackers += (self.derivative_loss_tracker,)
        for tracker, value in zip((*trackers, self.loss_tracker), losses):
            tracker.update_state(value * replicas, sample_weight=batch)
        _, _, mean, std = self._scales(t_pred.dtype)
        if self._stacked:
            t_pred = tf.reduce_mean(t_pred, axis=1)
            if sample_weight is not None and sample_weight.shape.rank == 2:
                sample_weight = None  # per-member weights do not apply to the members' mean
        y_pred = mean + std * t_pred
        if y is not None and len(y.shape) == 1:
            y = y[:, None]
        logs = self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)
        return keras_private.multi_worker_logs(logs)

    def _unpack(self, data) -> tuple:
        """A batch's x, y values, sample weights, and z, t and observed dt/dz (or None)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y, derivatives = split_target(y)
        z, t, derivatives = self._normalise(x, y, derivatives)
        self._observes_derivatives |= derivatives is not None
        return x, y, sample_weight, z, t, derivatives

    def train_step(self, data):
        x, y, sample_weight, z, t, derivatives = self._unpack(data)

        # Forward pass: data term and, through a nested tape, gradient term
        # (and observed derivatives' term). A stacked network's members are
        # trained on the sum of their losses.
        with tf.GradientTape() as tape:
            t_pred, data_loss, gradient_loss, *rest = self._loss_terms(
                z, t, sample_weight, training=True, derivatives=derivatives
            )
            loss = rest[-1]
            scaled_loss = self.optimizer.scale_loss(loss * self.members)

        # Compute gradients. Without the gradient term the prior's are zero;
        # Adam leaves such weights alone, and the optimizer always tracks the
        # same variables, so saved and restored optimizer states match.
        variables = self.trainable_variables
        gradients = [
            tf.zeros(v.shape, v.dtype) if g is None else g
            for v, g in zip(variables, tape.gradient(scaled_loss, variables))
        ]

        # Update weights, unless the step is not finite (see `_guard`).
        self._guard(data_loss, gradient_loss, gradients, variables)
        self.collocation_step.assign_add(1)

        # Update metrics
        return self._update_metrics(
            x, y, z, t_pred, sample_weight, (data_loss, gradient_loss, *rest)
        )

    def test_step(self, data):
        x, y, sample_weight, z, t, derivatives = self._unpack(data)
        t_pred, *losses = self._loss_terms(z, t, sample_weight, training=False,
                                           derivatives=derivatives)
        return self._update_metrics(x, y, z, t_pred, sample_weight, losses)

    # ------------------------------------------------------------- prediction

    def predict(self, x, *args, return_std: bool = False, **kwargs):
        """`keras.Model.predict` in user units; warns about out-of-bounds rows.

        With `return_std=True` (array inputs only), returns `(mean, std)`,
        each (n, m): the members' mean and the predictive standard
        deviation of `predictive_outputs`; `batch_size` is the only other
        argument it takes.
        """
        if x is None:
            raise ValueError("predict needs inputs x; got None")
        if return_std:
            if not is_array_like(x) or args or set(kwargs) - {"batch_size", "verbose"}:
                raise ValueError("predict(return_std=True) takes an array x and batch_size only")
            outputs = self._predictive(x, False, kwargs.get("batch_size") or 1024)
            return outputs["y"], outputs["y_std"]
        if is_array_like(x):
            x = self._check_points(x, "x", strict=False)
        return super().predict(x, *args, **kwargs)

    def predict_gradient(self, x: Any, *, batch_size: int = 1024, members: bool = False,
                         return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The Jacobian dy/dx in user units.

        Args:
            x: inputs of shape (n, d).
            batch_size: rows per evaluation.
            members: for a stacked network, each member's Jacobian instead
                of the Jacobian of their mean.
            return_std: also return the Jacobian's element-wise standard
                deviation (see `predictive_outputs`).

        Returns:
            A float32 array `J` of shape (n, m, d) with
            `J[b, i, j] = d y_i / d x_j` at `x[b]`; with `members`,
            (n, k, m, d); with `return_std`, `(J, J_std)`.
        """
        if return_std:
            if members:
                raise ValueError("return_std gives the spread of the members' mean; "
                                 "it does not apply with members=True")
            outputs = self._predictive(x, True, batch_size)
            return outputs["dy_dx"], outputs["dy_dx_std"]
        batch_size = positive_int(batch_size, "batch_size")
        x = self._check_points(x, "x", strict=False).astype(self.compute_dtype)
        if self._jacobian_function is None:
            spec = tf.TensorSpec((None, self.input_dim), self.compute_dtype)
            self._jacobian_function = tf.function(lambda v: self.value_and_jacobian(v)[1],
                                                  input_signature=[spec])
            self._member_jacobian_function = tf.function(self._member_jacobians,
                                                         input_signature=[spec])
        function = self._member_jacobian_function if members else self._jacobian_function
        parts = [function(x[i : i + batch_size]).numpy() for i in range(0, len(x), batch_size)]
        return np.concatenate(parts, axis=0)

    def input_relevance(self, x: Any, *, batch_size: int = 1024) -> np.ndarray:
        """How much each input moves the prediction over the points `x`.

        A derivative-based sensitivity: the RMS over points and outputs of
        `J[b, i, j] * s_j / sigma_i`, with `J` from `predict_gradient`, `s_j`
        the half width of input j's bounds and `sigma_i` the spread of output
        i in the data the model was fitted to (1 before any fit). It reads as
        the number of output standard deviations that a move across input
        j's range makes. An input whose relevance is small against the
        largest barely matters where `x` lies: a candidate to drop, or for a
        `priors.smooth(sparsity=...)` prior to switch off.

        Args:
            x: inputs of shape (n, d), for instance the training inputs.
            batch_size: rows per evaluation.

        Returns:
            A float64 array of shape (d,).
        """
        jacobian = self.predict_gradient(x, batch_size=batch_size).astype(float)
        return relevance(jacobian, self.input_scale.numpy(), self.output_std.numpy())

    # ----------------------------------------------------------- serialisation

    def save(self, filepath, overwrite: bool = True, **kwargs) -> None:
        """`keras.Model.save`, written to a temporary sibling and renamed into place.

        A failure part-way through (a full disk, an interrupted process)
        leaves any previous file at `filepath` untouched. With
        `overwrite=False` an existing file raises `FileExistsError`.
        """
        path = pathlib.Path(filepath)
        if path.suffix != ".keras":
            return super().save(filepath, overwrite=overwrite, **kwargs)
        if path.exists() and not overwrite:
            raise FileExistsError(f"{str(path)!r} exists and overwrite=False")
        with files.staged(path) as staging:
            super().save(staging, overwrite=True, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            network=keras.saving.serialize_keras_object(self.network),
            prior=keras.saving.serialize_keras_object(self.prior),
            bounds=self.bounds.tolist(),
            n_collocation=self.n_collocation,
            sampler=self._saveable_sampler(),
            gradient_weight=self.gradient_weight,
            derivative_weight=self.derivative_weight,
            jacobian=self.jacobian,
            prior_trainable=self.prior_trainable,
            seed=self.seed,
            input_labels=self.input_labels,
            output_labels=self.output_labels,
            metadata=self.metadata,
            calibration=None if self.calibration is None else self.calibration.as_dict(),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("network", "prior"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
