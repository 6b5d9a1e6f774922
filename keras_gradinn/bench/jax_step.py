"""GradINN's training step written in JAX: the yardstick of `keras-gradinn perf --against jax`.

The step is the one `bench.perf` times in Keras, on normalised data: a
network f of `depth` SiLU layers of `width` units, a prior h (one tanh
layer of 64 units giving m*d values, as the default smooth prior), and

    loss = mean_i |f(z_i) - t_i|^2 + weight * mean_c ||J f(z_c) - h(z_c)||_F^2

with `J f` from `jax.vmap(jax.jacrev(f))` at `n_collocation` points drawn
uniformly in [-1, 1]^d at every step, both networks trained by
`optax.adam`. With k members the networks' weights carry a leading member
axis and `jax.vmap` runs the members' losses, which are summed; the prior
is shared, as with `GradINN(mlp(..., members=k), "smooth")`. The data
standardisation, the non-finite guard and the metrics of GradINN's step
are not part of it.

JAX and optax are imported only when a step is built (`pip install
keras-gradinn[bench]`).
"""

from __future__ import annotations

import math
import time
from typing import Any

__all__ = ["INSTALL_HINT", "require_jax", "step_seconds"]

INSTALL_HINT = "pip install 'keras-gradinn[bench]'"


def require_jax() -> tuple[Any, Any]:
    """`(jax, optax)`, or an `ImportError` that says how to install them."""
    try:
        import jax
        import optax
    except ImportError as error:
        raise ImportError(
            f"comparing against JAX needs jax and optax ({error}); install them with "
            f"{INSTALL_HINT}"
        ) from None
    return jax, optax


def _dense_params(jax, key, sizes: list[int], initializer: str) -> list[tuple[Any, Any]]:
    """`(kernel, bias)` per layer: Glorot-uniform (the network) or LeCun-normal (the prior)."""
    params = []
    for layer_key, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1),
                                            zip(sizes[:-1], sizes[1:])):
        if initializer == "glorot_uniform":
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            kernel = jax.random.uniform(layer_key, (fan_in, fan_out), minval=-limit, maxval=limit)
        else:
            kernel = jax.random.normal(layer_key, (fan_in, fan_out)) / math.sqrt(fan_in)
        params.append((kernel, jax.numpy.zeros((fan_out,))))
    return params


def _forward(jax, params, x, activation):
    """A Dense chain at one point `x` (d,) or a batch (n, d); the last layer is linear."""
    for kernel, bias in params[:-1]:
        x = activation(x @ kernel + bias)
    kernel, bias = params[-1]
    return x @ kernel + bias


def _build(config, members: int, *, weight: float, learning_rate: float, seed: int):
    """The initial state and the jitted function that runs `steps` training steps."""
    jax, optax = require_jax()
    jnp = jax.numpy
    d, m = config.d, config.m
    key = jax.random.PRNGKey(seed)
    data_key, net_key, prior_key, draw_key = jax.random.split(key, 4)
    x = jax.random.uniform(data_key, (config.batch, d), minval=-1.0, maxval=1.0)
    y = jnp.sin(x @ jnp.linspace(0.5, 1.5, d)[:, None] @ jnp.ones((1, m)))
    sizes = [d] + [config.width] * config.depth + [m]
    if members == 1:
        net = _dense_params(jax, net_key, sizes, "glorot_uniform")
    else:
        net = jax.vmap(lambda k: _dense_params(jax, k, sizes, "glorot_uniform"))(
            jax.random.split(net_key, members))
    prior = _dense_params(jax, prior_key, [d, 64, m * d], "lecun_normal")

    def network(params, point):
        return _forward(jax, params, point, jax.nn.silu)

    def member_loss(params, points, field):
        data = jnp.mean(jnp.square(network(params, x) - y))
        jacobian = jax.vmap(jax.jacrev(network, argnums=1), in_axes=(None, 0))(params, points)
        mismatch = jnp.mean(jnp.sum(jnp.square(jacobian - field), axis=(1, 2)))
        return data + weight * mismatch

    def loss(params, points):
        field = _forward(jax, params["prior"], points, jnp.tanh).reshape(-1, m, d)
        if members == 1:
            return member_loss(params["net"], points, field)
        return jnp.sum(jax.vmap(member_loss, in_axes=(0, None, None))(params["net"], points, field))

    optimizer = optax.adam(learning_rate)
    params = {"net": net, "prior": prior}
    state = (params, optimizer.init(params))

    def step(i, state):
        params, opt_state = state
        points = jax.random.uniform(jax.random.fold_in(draw_key, i), (config.n_collocation, d),
                                    minval=-1.0, maxval=1.0)
        gradients = jax.grad(loss)(params, points)
        updates, opt_state = optimizer.update(gradients, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    @jax.jit
    def run(state, steps):
        return jax.lax.fori_loop(0, steps, step, state)

    return state, run


def step_seconds(config, members: int = 1, *, steps: int = 200, repeats: int = 5,
                 weight: float = 1e-2, learning_rate: float = 1e-3, seed: int = 0) -> float:
    """Seconds per training step of the JAX GradINN step, best of `repeats` loops.

    Args:
        config: a `bench.perf.Config` (d, m, width, depth, n_collocation,
            batch: the data rows of every step).
        members: networks trained together (k); 1 is the plain network
            without `vmap`.
        steps: steps per timed loop, all inside one compiled `fori_loop`.
        repeats: timed loops (after one that compiles).
        weight: the gradient term's weight.
        learning_rate: Adam's step size.
        seed: seed of the data, the weights and the collocation draws.
    """
    jax, _ = require_jax()
    state, run = _build(config, members, weight=weight, learning_rate=learning_rate, seed=seed)
    jax.block_until_ready(run(state, steps))  # tracing and compilation
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        state = jax.block_until_ready(run(state, steps))
        best = min(best, time.perf_counter() - start)
    return best / steps
