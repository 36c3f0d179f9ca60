"""The fused CPU kernel (engine.fast_step) against the reference, engine.model.step.

Logits within 1e-5 over thousands of steps for every preset, with every pooled level
firing, from the zero state and after a prefill, batch 1 and > 1 (with float32 matrices;
with bfloat16 matrices, within 1e-5 of the reference on bfloat16-rounded kernels); its
sampling equals a numpy inverse-CDF draw on the reference logits with the same uniforms;
the generator runs it by default and falls back to the JAX path when told to.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import model, sampling
from engine.checkpoint import ModelCheckpoint
from engine.fast_step import PackedModel
from engine.generator import BACKEND_VARIABLE, Backend, GenerationSettings, Generator, prime_tokens
from engine.sampling import NOISE_BLOCK

TOLERANCE = 1e-5
WINDOW = 512  # steps per compiled reference scan: one program per preset and batch


@functools.partial(jax.jit, static_argnums=(1,))
def _reference_window(params, config, state, tokens):
    def body(state, token):
        logits, state = model.step(params, config, state, token)
        return state, logits

    state, logits = jax.lax.scan(body, state, tokens)
    return logits, state


def reference_logits(params, config, state, tokens) -> np.ndarray:
    """Teacher forcing through engine.model.step: tokens int32 [T, B] -> the logits after
    each, [T, B, 256] (run in windows of WINDOW steps, the last padded)."""
    steps = tokens.shape[0]
    padded = np.pad(tokens, ((0, -steps % WINDOW), (0, 0)), constant_values=model.START_TOKEN)
    out = []
    for start in range(0, steps, WINDOW):
        logits, state = _reference_window(params, config, state, padded[start : start + WINDOW])
        out.append(np.asarray(logits))
    return np.concatenate(out)[:steps]


def with_start(tokens: np.ndarray) -> np.ndarray:
    """[T, B] -> [T + 1, B] with START_TOKEN first."""
    return np.concatenate([np.full((1, tokens.shape[1]), model.START_TOKEN, np.int32), tokens])


def random_tokens(steps: int, voices: int, seed: int = 0) -> np.ndarray:
    """Audio-like classes: a random walk around silence, so activations look like speech's."""
    walk = np.cumsum(np.random.default_rng(seed).integers(-3, 4, (steps, voices)), axis=0)
    return np.clip(model.START_TOKEN + walk, 0, 255).astype(np.int32)


def bf16_rounded(params: dict) -> dict:
    """`params` with the kernel of every matrix product (each leaf named "kernel") rounded to
    the nearest bfloat16, the values `PackedModel.pack(..., bf16=True)` stores."""
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: leaf.astype(jnp.bfloat16).astype(jnp.float32) if path[-1].key == "kernel" else leaf, params
    )


def assert_close(got, expected):
    expected = np.asarray(expected)
    error = np.abs(got - expected).max()
    assert error <= TOLERANCE, f"kernel logits differ from model.step by {error:.2e}"


@pytest.mark.parametrize(
    "name, steps, voices",
    # `paper` (compiling its JAX step takes a minute) shares its code paths with these:
    # pooling 2 (tiny), several pairs per side (realtime's levels 3-4), width 128.
    [("tiny", 4000, 3), ("tiny", 1500, 1), ("realtime", 2500, 2), ("realtime-2x", 1500, 1)],
)
def test_logits_equal_the_reference_step(preset_params, name, steps, voices):
    config, params = preset_params(name)
    tokens = with_start(random_tokens(steps, voices))
    assert steps > 2 * config.total_pooling, "every level must fire more than once"
    packed = PackedModel.pack(params, config, bf16=False)
    got = packed.feed(packed.zero_state(voices), tokens)
    expected = reference_logits(params, config, model.init_state(params, config, voices), tokens)
    assert_close(got, expected)


def test_bf16_matrices_equal_the_reference_on_rounded_kernels(preset_params):
    """bfloat16 matrices compute model.step on bfloat16-rounded kernels, summed in float32:
    as close as the float32 path, and the rounding is real (float32 matrices differ). The
    kernel's functions are the same for every preset (numba compiles one version per matrix
    type), so `tiny` runs them all; the shipped model's NLL with bfloat16 matrices is
    benchmarks/fast_step.py's."""
    steps, voices = 1500, 2
    config, params = preset_params("tiny")
    tokens = with_start(random_tokens(steps, voices, seed=4))
    assert steps > 2 * config.total_pooling, "every level must fire more than once"
    packed = PackedModel.pack(params, config, bf16=True)
    got = packed.feed(packed.zero_state(voices), tokens)
    state = model.init_state(params, config, voices)
    assert_close(got, reference_logits(bf16_rounded(params), config, state, tokens))
    full = PackedModel.pack(params, config, bf16=False)
    assert np.abs(got - full.feed(full.zero_state(voices), tokens)).max() > 100 * TOLERANCE


def test_bf16_packing_halves_the_matrix_bytes(preset_params):
    """The matrices, nearly all of the weights' bytes, take half the bytes as bfloat16,
    each the nearest bfloat16 (ties to even, as JAX rounds); the other weights stay float32."""
    config, params = preset_params("realtime-2x")
    full, half = PackedModel.pack(params, config, bf16=False), PackedModel.pack(params, config, bf16=True)
    assert full.matrices.dtype == np.float32 and half.matrices.dtype == np.uint16
    assert 2 * half.matrices.nbytes == full.matrices.nbytes
    assert full.weights.nbytes < 0.02 * full.matrices.nbytes
    np.testing.assert_array_equal(half.weights, full.weights)
    rounded = np.asarray(jnp.asarray(full.matrices).astype(jnp.bfloat16))
    np.testing.assert_array_equal(half.matrices, rounded.view(np.uint16))


@pytest.mark.parametrize("bf16", [False, True])
def test_every_option_of_the_config_is_packed(bf16):
    """The options no preset uses: a causal conv before each CG-LRU, RMSNorm, a learned
    embedding, two pooling groups."""
    config = model.preset("tiny").replace(conv_kernel=3, norm="rms", embedding="learned", pool_groups=2)
    params = model.init_params(config, jax.random.key(1))
    tokens = with_start(random_tokens(300, 3, seed=1))
    packed = PackedModel.pack(params, config, bf16=bf16)
    reference_params = bf16_rounded(params) if bf16 else params
    expected = reference_logits(reference_params, config, model.init_state(params, config, 3), tokens)
    assert_close(packed.feed(packed.zero_state(3), tokens), expected)


@pytest.mark.parametrize("name, seed_length", [("tiny", 1001), ("realtime", 1283)])
def test_prefill_then_kernel_steps(preset_params, name, seed_length):
    """The state after `model.prefill` (mid pooling period) converts to the kernel's."""
    config, params = preset_params(name)
    seed, more = random_tokens(seed_length, 2, seed=2), random_tokens(700, 2, seed=3)
    logits, state = model.prefill(params, config, seed.T, max_steps=512)
    packed = PackedModel.pack(params, config, bf16=False)
    kernel_state = packed.from_model_state(state, logits)
    np.testing.assert_array_equal(kernel_state.logits, np.asarray(logits))
    expected = reference_logits(params, config, state, more)
    assert_close(packed.feed(kernel_state, more), expected)


def reference_draw(logits: np.ndarray, uniform: float, temperature: float, top_p: float) -> int:
    """The class at `uniform` of the cumulative distribution of softmax(logits / T)
    restricted to the exact top-p nucleus, in float64 with a full sort."""
    scaled = logits.astype(np.float64) / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    ordered = np.sort(probs)[::-1]
    needed = np.searchsorted(np.cumsum(ordered), top_p) if top_p < 1 else len(ordered) - 1
    kept = np.where(probs >= ordered[min(needed, len(ordered) - 1)], probs, 0.0)
    return int(np.searchsorted(np.cumsum(kept / kept.sum()), uniform, side="right"))


@pytest.mark.parametrize("temperature, top_p", [(1.0, 1.0), (0.7, 0.9), (1.3, 0.5)])
def test_sampling_equals_the_reference_draw(preset_params, temperature, top_p):
    """Tokens the kernel samples equal inverse-CDF draws on model.step's logits (teacher
    forced along the kernel's own tokens) at the same uniforms."""
    config, params = preset_params("tiny")
    voices, steps = 2, 4 * NOISE_BLOCK
    packed = PackedModel.pack(params, config, bf16=False)
    state = packed.start(voices)
    first_logits = state.logits.copy()
    uniforms = sampling.chunk_uniforms(9, 0, steps // NOISE_BLOCK, voices)
    tokens = packed.generate(state, uniforms, temperature, top_p)
    logits = reference_logits(params, config, model.init_state(params, config, voices), with_start(tokens))
    logits = np.concatenate([first_logits[None], logits[1:-1]])  # the logits each token was drawn from
    expected = [
        [reference_draw(logits[t, v], uniforms[t, v], temperature, top_p) for v in range(voices)] for t in range(steps)
    ]
    np.testing.assert_array_equal(tokens, np.array(expected))
    assert len(np.unique(tokens)) > 5, "a real draw, not a constant"


def test_greedy_takes_the_argmax(preset_params):
    config, params = preset_params("tiny")
    packed = PackedModel.pack(params, config, bf16=False)
    state = packed.start(1)
    tokens = packed.generate(state, np.zeros((300, 1), np.float32), 0.0, 1.0)
    logits = reference_logits(params, config, model.init_state(params, config, 1), with_start(tokens))
    np.testing.assert_array_equal(tokens[:, 0], logits[:-1, 0].argmax(-1))


def test_chunk_uniforms_depend_only_on_seed_voice_and_block():
    whole = sampling.chunk_uniforms(5, 3, 4, 2)
    assert whole.shape == (4 * NOISE_BLOCK, 2) and whole.dtype == np.float32
    np.testing.assert_array_equal(whole[2 * NOISE_BLOCK :], sampling.chunk_uniforms(5, 5, 2, 2))
    np.testing.assert_array_equal(whole[:, 0], sampling.chunk_uniforms(5, 3, 4, 1)[:, 0])
    assert not np.array_equal(whole[:, 0], whole[:, 1])
    assert not np.array_equal(whole, sampling.chunk_uniforms(6, 3, 4, 2))
    assert 0.0 <= whole.min() and whole.max() < 1.0


@pytest.fixture(scope="module")
def tiny(preset_params):
    config, params = preset_params("tiny")
    return ModelCheckpoint(config, params, {"name": "tiny-test"}, path=None)


def take(generator: Generator, samples: int) -> np.ndarray:
    pieces, done = [], 0
    while done < samples:
        pieces.append(generator.next_tokens())
        done += pieces[-1].shape[1]
    return np.concatenate(pieces, axis=1)[:, :samples]


def test_generator_runs_the_kernel_by_default(tiny, monkeypatch):
    """The default generator is the kernel's, and its take equals the kernel driven by
    hand with the take's uniforms, across chunk boundaries and after a seed."""
    monkeypatch.delenv(BACKEND_VARIABLE, raising=False)
    settings = GenerationSettings(random_seed=4, voices=2, temperature=0.8, top_p=0.95, chunk_ms=20)
    generator = Generator(tiny, settings)
    assert generator.backend is Backend.KERNEL and generator._packed is not None
    assert generator._packed.matrices.dtype == np.uint16  # bfloat16
    seed_audio = np.sin(np.arange(900) * 0.07).astype(np.float32) * 0.5
    generator.prime(seed_audio)
    got = take(generator, 3 * settings.chunk_samples)

    packed = PackedModel.pack(tiny.params, tiny.config)
    logits, state = model.prefill(tiny.params, tiny.config, prime_tokens(seed_audio, 16000, 2))
    state = packed.from_model_state(state, logits)
    uniforms = sampling.chunk_uniforms(4, 0, 3 * settings.chunk_samples // NOISE_BLOCK, 2)
    np.testing.assert_array_equal(got, packed.generate(state, uniforms, 0.8, 0.95).T)


def test_the_float32_kernel_serves_when_asked(tiny, monkeypatch):
    monkeypatch.setenv(BACKEND_VARIABLE, "kernel-float32")
    settings = GenerationSettings(random_seed=3, chunk_ms=10)
    generator = Generator(tiny, settings)
    assert generator.backend is Backend.KERNEL_FLOAT32 and generator._packed is not None
    assert generator._packed.matrices.dtype == np.float32
    packed = PackedModel.pack(tiny.params, tiny.config, bf16=False)
    uniforms = sampling.chunk_uniforms(3, 0, 2 * settings.chunk_samples // NOISE_BLOCK, 1)
    np.testing.assert_array_equal(
        take(generator, 2 * settings.chunk_samples), packed.generate(packed.start(1), uniforms, 1.0, 1.0).T
    )


def test_the_jax_path_serves_when_the_kernel_is_turned_off(tiny, monkeypatch):
    monkeypatch.setenv(BACKEND_VARIABLE, "jax")
    settings = GenerationSettings(random_seed=2, chunk_ms=10)
    generator = Generator(tiny, settings)
    assert generator.backend is Backend.JAX and generator._packed is None
    tokens = take(generator, 2 * settings.chunk_samples)
    assert tokens.shape == (1, 2 * settings.chunk_samples) and len(np.unique(tokens)) > 5
    monkeypatch.setenv(BACKEND_VARIABLE, "numpy")
    with pytest.raises(ValueError, match="'kernel', 'kernel-float32', 'jax'"):
        Generator(tiny, settings)
