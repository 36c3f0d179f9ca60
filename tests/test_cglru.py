"""The CG-LRU against a float64 NumPy transcription of docs/spec.md §3."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine.cglru import CGLRU, GATE_POWER, CGLRUState, sqrt_bounded_derivative
from engine.scan import Complex

WIDTH, LRU_WIDTH, BLOCKS = 8, 16, 4


def reference(params, x, h0):
    """docs/spec.md §3 step by step in float64. x [B, T, d], h0 complex [B, D/2] -> y, h_last."""
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), params)
    half = LRU_WIDTH // 2

    def block_diag(gate, u):
        k = gate["kernel"]
        blocks = u.reshape(u.shape[:-1] + (k.shape[0], k.shape[1]))
        return np.einsum("...bi,bio->...bo", blocks, k).reshape(u.shape[:-1] + (half,)) + gate["bias"]

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    def softplus(z):
        return np.log1p(np.exp(z))

    h = h0.astype(np.complex128)
    ys = []
    for t in range(x.shape[1]):
        u = x[:, t] @ p["in_proj"]["kernel"] + p["in_proj"]["bias"]
        r, i = sigmoid(block_diag(p["gate_a"], u)), sigmoid(block_diag(p["gate_x"], u))
        a = np.exp(-GATE_POWER * r * softplus(p["lam"])) * np.exp(1j * p["theta"] * r)
        v = u[:, :half] + 1j * u[:, half:]
        h = a * h + np.sqrt(1 - np.abs(a) ** 2) * (i * v)
        ys.append(np.concatenate([h.real, h.imag], -1) @ p["out_proj"]["kernel"] + p["out_proj"]["bias"])
    return np.stack(ys, 1), h


def setup_layer(scan_impl, length=37):
    layer = CGLRU(WIDTH, LRU_WIDTH, BLOCKS, scan_impl)
    x = jax.random.normal(jax.random.key(1), (3, length, WIDTH))
    params = layer.init(jax.random.key(0), x)["params"]
    h0 = Complex(*jax.random.normal(jax.random.key(2), (2, 3, LRU_WIDTH // 2)))
    return layer, params, x, h0


def rel_err(got, want):
    return np.max(np.abs(np.asarray(got, np.float64) - want)) / np.max(np.abs(want))


@pytest.mark.parametrize("scan_impl", ["associative", "sequential"])
def test_parallel_form_matches_reference_with_initial_state(scan_impl):
    layer, params, x, h0 = setup_layer(scan_impl)
    y, state = layer.apply({"params": params}, x, CGLRUState(h0))
    y_ref, h_ref = reference(params, np.asarray(x, np.float64), np.asarray(h0.re) + 1j * np.asarray(h0.im))
    assert rel_err(y, y_ref) < 1e-5
    assert rel_err(state.h.re, h_ref.real) < 1e-5 and rel_err(state.h.im, h_ref.imag) < 1e-5


def test_one_step_form_matches_reference():
    layer, params, x, h0 = setup_layer("associative")
    state = CGLRUState(h0)
    step = jax.jit(lambda s, xt: layer.apply({"params": params}, xt, s, method=CGLRU.step))
    ys = []
    for t in range(x.shape[1]):
        y, state = step(state, x[:, t])
        ys.append(y)
    y_ref, h_ref = reference(params, np.asarray(x, np.float64), np.asarray(h0.re) + 1j * np.asarray(h0.im))
    assert rel_err(jnp.stack(ys, 1), y_ref) < 1e-5
    assert rel_err(state.h.re, h_ref.real) < 1e-5


def test_zero_state_by_default():
    layer, params, x, _ = setup_layer("associative")
    y, _ = layer.apply({"params": params}, x)
    y_ref, _ = reference(params, np.asarray(x, np.float64), np.zeros((3, LRU_WIDTH // 2)))
    assert rel_err(y, y_ref) < 1e-5


def test_gradients_finite_when_decay_approaches_one():
    layer, params, x, _ = setup_layer("associative", length=64)
    # softplus(lam) ~ 1e-9: |a_t| = 1 - O(1e-8), so d sqrt(1 - |a|^2) would be ~1e4+.
    params = {**params, "lam": jnp.full_like(params["lam"], -20.0)}

    def loss(params, x):
        y, _ = layer.apply({"params": params}, x)
        return jnp.sum(y**2)

    grads = jax.grad(loss, argnums=(0, 1))(params, x)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert float(jnp.max(jnp.abs(grads[0]["lam"]))) > 0


def test_sqrt_derivative_is_bounded_but_value_exact():
    grad = jax.grad(lambda z: sqrt_bounded_derivative(z, 1000.0))
    assert float(grad(0.0)) == pytest.approx(1000.0)
    assert float(grad(0.25)) == pytest.approx(1.0)
    assert float(sqrt_bounded_derivative(jnp.float32(0.25), 1000.0)) == 0.5


def test_initial_decay_ring():
    layer, params, _, _ = setup_layer("associative")
    modulus_at_full_gate = np.exp(-GATE_POWER * np.log1p(np.exp(np.asarray(params["lam"], np.float64))))
    assert np.all(modulus_at_full_gate**2 >= 0.9**2 - 1e-6) and np.all(modulus_at_full_gate**2 <= 0.99**2 + 1e-6)
    assert np.all((0 <= params["theta"]) & (params["theta"] <= 0.1 * np.pi))
