"""Property: any small problem fits, predicts and differentiates in consistent user units.

For random input and output dimensions, bounds anywhere in [-1e3, 1e3] with
widths from 1e-3 to 1e3, target scales from 1e-3 to 1e4 and 1 to 20 rows,
one training step of a tiny GradINN either succeeds or raises one of the
package's documented errors (ValueError or TypeError with a message). When it
succeeds:

* `predict` is finite with shape (n, m) and `predict_gradient` finite with
  shape (n, m, d);
* the Jacobian is the derivative of `predict` in user units: it matches a
  central finite difference of `predict` taken with a step of 2% of each
  input's half-width. The tolerance is stated in the problem's own units,
  std(y_i) / half_width_j, so it means the same at every scale: 1e-3 of that
  unit plus 1% covers the truncation error (the network is one width-4 SiLU
  layer with Glorot weights, whose third derivative keeps h^2/6 f''' near
  1e-4 at h = 0.02), and a separate term covers the float32 rounding of the
  predictions, which the difference amplifies by (|mean| / std) / h;
* training does not depend on the units of y: refitting the same seeded model
  on targets scaled by c gives predictions and Jacobians scaled by c, within
  1e-2 standard deviations (checked when the example draws a factor c, as it
  needs a second fit).

Inputs are float32 inside the model, so an input whose |value| / half-width
is so large that a 2% step spans fewer than ~100 float32 spacings cannot be
differenced meaningfully; such columns are skipped (see `hypothesis.event`).
With a single row the targets are constant: the model centres them without
scaling (documented), so only the centring is checked, not the c-scaling.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import keras_gradinn as kg

EPS32 = float(np.finfo(np.float32).eps)
STEP = 2e-2  # finite-difference half-step, as a fraction of the half-width
FD_TOLERANCE = 1e-3  # absolute, in units of std(y_i) / half_width_j
FD_RELATIVE = 1e-2
SCALING_TOLERANCE = 1e-2  # in units of std(y_i) (and std(y_i) / half_width_j for the Jacobian)


def floats(low: float, high: float, size: int):
    return st.lists(st.floats(low, high), min_size=size, max_size=size).map(np.array)


@st.composite
def problems(draw):
    d, m, n = draw(st.integers(1, 4)), draw(st.integers(1, 3)), draw(st.integers(1, 20))
    low = draw(floats(-1e3, 1e3, d))
    width = 10.0 ** draw(floats(-3.0, 3.0, d))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    u = rng.random((n, d))  # position in the box, in [0, 1)
    x = low + width * u
    # A smooth response in each output, at the output's own scale and offset.
    shape = np.sin(u @ rng.normal(0.0, 2.0, (d, m)) + rng.uniform(-np.pi, np.pi, m))
    scale = 10.0 ** draw(floats(-3.0, 4.0, m))
    y = scale * (rng.uniform(-3.0, 3.0, m) + shape)
    return {
        "bounds": np.stack([low, low + width], axis=1),
        "x": x,
        "y": y,
        "seed": seed,
        "rescale": draw(st.sampled_from([1e3, None, 1e-2])),
    }


def fit_and_differentiate(bounds: np.ndarray, x: np.ndarray, y: np.ndarray, seed: int):
    """Builds, compiles and fits the model for one step; returns it with its answers."""
    d, m = bounds.shape[0], y.shape[1]
    keras.utils.set_random_seed(seed)  # same weights, prior and collocation seed every time
    model = kg.GradINN(kg.mlp(d, m, width=4, depth=1), "smooth", bounds=bounds, n_collocation=8)
    model.compile()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, epochs=1, batch_size=len(x), verbose=0)
        prediction = model.predict(x, verbose=0)
        jacobian = model.predict_gradient(x)
    notes = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    return model, prediction, jacobian, notes


def normalisation(model: kg.GradINN) -> tuple[np.ndarray, np.ndarray]:
    return (keras.ops.convert_to_numpy(model.output_mean).astype(np.float64),
            keras.ops.convert_to_numpy(model.output_std).astype(np.float64))


def check_finite_differences(model, x, prediction, jacobian, bounds) -> int:
    """Compares the Jacobian with central differences of `predict`; returns columns checked."""
    n, m, d = jacobian.shape
    mean, std = normalisation(model)
    half_width = (bounds[:, 1] - bounds[:, 0]) / 2
    spacing = np.spacing(np.abs(bounds).max(axis=1).astype(np.float32)).astype(np.float64)
    columns = [j for j in range(d) if spacing[j] / half_width[j] <= STEP / 100]
    if len(columns) < d:
        event("finite differences skipped for an input too fine for float32")
    if not columns:
        return 0
    # The model sees float32 inputs, so difference over the float32 points it sees.
    x32 = x.astype(np.float32)
    shifted = []
    for j in columns:
        step = np.zeros(d, dtype=np.float32)
        step[j] = STEP * half_width[j]
        shifted += [x32 + step, x32 - step]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # steps may leave the box near its edges
        values = model.predict(np.concatenate(shifted), verbose=0).astype(np.float64)
    t_max = np.abs((prediction - mean) / std).max(axis=0)
    rounding = 8 * EPS32 * (np.abs(mean) / std + t_max + 1.0) / (2 * STEP)
    for k, j in enumerate(columns):
        above, below = values[2 * k * n:(2 * k + 1) * n], values[(2 * k + 1) * n:(2 * k + 2) * n]
        distance = (shifted[2 * k][:, j].astype(np.float64)
                    - shifted[2 * k + 1][:, j].astype(np.float64))
        difference = (above - below) / distance[:, None]
        unit = std / half_width[j]  # (m,): one standard deviation per half-width
        allowed = (FD_TOLERANCE + rounding) * unit + FD_RELATIVE * np.abs(jacobian[:, :, j])
        assert np.all(np.abs(difference - jacobian[:, :, j]) <= allowed), (
            f"input {j}: finite difference {difference.tolist()} vs Jacobian "
            f"{jacobian[:, :, j].tolist()} (allowed {allowed.tolist()})"
        )
    return len(columns)


#: The least share of the examples that must train rather than be refused.
#: The strategy draws valid problems only (bounds that fit float32, finite
#: rows inside them; measured: 15 of 15 train), so without this a regression
#: refusing every input with a ValueError would pass; the allowance (one
#: example in 15) leaves room for a documented refusal at float32's edge.
MINIMUM_TRAINED = 0.9


def test_one_step_on_any_small_problem_gives_finite_answers_in_consistent_units():
    outcomes: list[str] = []
    check_one_problem(outcomes)
    trained = outcomes.count("trained")
    assert len(outcomes) >= 15, outcomes  # hypothesis really ran the examples
    assert trained >= MINIMUM_TRAINED * len(outcomes), (
        f"only {trained} of {len(outcomes)} examples trained; the rest were refused: "
        f"{[o for o in outcomes if o != 'trained']}"
    )


@settings(max_examples=15, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(problems())
def check_one_problem(outcomes: list[str], problem) -> None:
    """One example: it trains with consistent answers, or is refused with a message."""
    bounds, x, y, seed = problem["bounds"], problem["x"], problem["y"], problem["seed"]
    n, d = x.shape
    m = y.shape[1]
    try:
        model, prediction, jacobian, notes = fit_and_differentiate(bounds, x, y, seed)
    except (ValueError, TypeError) as error:  # the package's documented refusals
        assert str(error).strip(), f"{type(error).__name__} without a message"
        event(f"refused with {type(error).__name__}")
        outcomes.append(f"{type(error).__name__}: {error}")
        return
    outcomes.append("trained")

    assert prediction.shape == (n, m) and np.isfinite(prediction).all()
    assert jacobian.shape == (n, m, d) and np.isfinite(jacobian).all()
    assert jacobian.dtype == np.float32

    checked = check_finite_differences(model, x, prediction, jacobian, bounds)
    event(f"finite differences checked on {checked} of {d} input(s)")

    mean, std = normalisation(model)
    constant = any("are constant" in note for note in notes)
    assert constant == (n == 1), notes  # random rows vary unless there is only one
    if constant:
        # Centred but not scaled: the mean is the row's value, the scale 1.
        np.testing.assert_allclose(mean, y.mean(axis=0), rtol=1e-6, atol=1e-30)
        np.testing.assert_array_equal(std, np.ones(m))
        return
    np.testing.assert_allclose(std, y.std(axis=0), rtol=1e-5)

    c = problem["rescale"]
    if c is None:
        return
    event(f"targets rescaled by {c:g} and refitted")
    _, scaled_prediction, scaled_jacobian, _ = fit_and_differentiate(bounds, x, c * y, seed)
    half_width = (bounds[:, 1] - bounds[:, 0]) / 2
    # Both fits see the same standardised targets up to float32 rounding, and
    # one Adam step moves each weight by about the learning rate (1e-3) whatever
    # the gradient's size, so they agree to a few 1e-3 standard deviations.
    rounding = 8 * EPS32 * (np.abs(mean) / std + np.abs((prediction - mean) / std).max(axis=0))
    allowed = (SCALING_TOLERANCE + rounding) * std
    assert np.all(np.abs(scaled_prediction / c - prediction) <= allowed), (
        scaled_prediction / c, prediction)
    allowed = (SCALING_TOLERANCE * std)[None, :, None] / half_width[None, None, :]
    assert np.all(np.abs(scaled_jacobian / c - jacobian) <= allowed + 1e-3 * np.abs(jacobian)), (
        scaled_jacobian / c, jacobian)
