"""The chunked generator: equal to a Python loop over model.step, reproducible, seedable."""

from __future__ import annotations

import functools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from engine import model, mulaw, sampling
from engine.checkpoint import CheckpointError, ModelCheckpoint, save_model
from engine.generator import Backend, GenerationSettings, Generator, prime_tokens
from engine.sampling import NOISE_BLOCK


@pytest.fixture(scope="module")
def tiny(preset_params):
    config, params = preset_params("tiny")
    return ModelCheckpoint(config, params, {"name": "tiny-test"}, path=None)


def loop_tokens(ckpt, settings, n, prime=None):
    """Reference: a Python loop calling the jitted model.step once per sample, with the
    same noise and the same sampling function."""
    config, params = ckpt.config, ckpt.params
    voices = settings.voices
    if prime is None:
        state = model.init_state(params, config, voices)
        logits, state = model.step(params, config, state, jnp.full((voices,), model.START_TOKEN, jnp.int32))
    else:
        logits, state = model.prefill(params, config, prime)
    blocks = -(-n // NOISE_BLOCK)
    noise = sampling.chunk_noise(np.uint32(settings.random_seed), np.int32(0), blocks, voices)
    greedy, nucleus = sampling.static_flags(settings.temperature, settings.top_p)
    # The same sampling function, jitted on its own (eager lax.cond would retrace per call).
    sample = jax.jit(functools.partial(sampling.sample, greedy=greedy, nucleus=nucleus))
    out = []
    for t in range(n):
        token = sample(logits, noise[t], np.float32(settings.temperature), np.float32(settings.top_p))
        out.append(np.asarray(token))
        logits, state = model.step(params, config, state, token)
    return np.stack(out, axis=1)  # [voices, n]


def take_tokens(ckpt, settings, n, prime_audio=None, backend=Backend.JAX):
    """The generator's tokens; the JAX backend by default, which draws the same Gumbel
    noise as `loop_tokens` (tests/test_fast_step.py covers the kernel backend)."""
    gen = Generator(ckpt, settings, backend)
    if prime_audio is not None:
        gen.prime(prime_audio)
    pieces, done = [], 0
    while done < n:
        pieces.append(gen.next_tokens())
        done += pieces[-1].shape[1]
    return np.concatenate(pieces, axis=1)[:, :n]


@pytest.mark.parametrize(
    "settings",
    [
        GenerationSettings(random_seed=3, chunk_ms=20),
        GenerationSettings(random_seed=4, voices=2, temperature=0.7, top_p=0.9, chunk_ms=10),
    ],
    ids=["plain", "nucleus-2voices"],
)
def test_chunked_equals_stepwise_loop(tiny, settings):
    n = 2 * settings.chunk_samples + 37  # crosses chunk boundaries
    expected = loop_tokens(tiny, settings, n)
    got = take_tokens(tiny, settings, n)
    np.testing.assert_array_equal(got, expected)


def test_primed_chunked_equals_stepwise_loop(tiny):
    settings = GenerationSettings(random_seed=5, chunk_ms=10)
    rng = np.random.default_rng(0)
    audio = np.sin(np.arange(1234) * 0.05).astype(np.float32) * 0.5 + 0.01 * rng.standard_normal(1234).astype(
        np.float32
    )
    tokens = prime_tokens(audio, 16000, 1)
    expected = loop_tokens(tiny, settings, 400, prime=tokens)
    got = take_tokens(tiny, settings, 400, prime_audio=audio)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("backend", list(Backend))
def test_take_is_reproducible_across_chunk_sizes_and_voice_counts(tiny, backend):
    a = take_tokens(tiny, GenerationSettings(random_seed=11, chunk_ms=10), 480, backend=backend)
    b = take_tokens(tiny, GenerationSettings(random_seed=11, chunk_ms=30), 480, backend=backend)
    c = take_tokens(tiny, GenerationSettings(random_seed=11, chunk_ms=20, voices=3), 480, backend=backend)
    d = take_tokens(tiny, GenerationSettings(random_seed=12, chunk_ms=10), 480, backend=backend)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], c[0])
    assert not np.array_equal(c[0], c[1]), "voices must be independent streams"
    assert not np.array_equal(a, d), "another seed must give another take"


def test_top_p_keeps_only_the_nucleus():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 252]))
    noise = jax.random.gumbel(jax.random.key(0), (4000, 1, 256))
    draws = jax.vmap(lambda g: sampling.sample(logits, g, 1.0, 0.7, nucleus=True))(noise)
    assert set(np.unique(np.asarray(draws))) == {0, 1}
    greedy = sampling.sample(logits, noise[0], 1.0, 1.0, greedy=True)
    assert int(greedy[0]) == 0


def test_include_prime_and_render(tiny):
    audio = np.linspace(-1, 1, 500, dtype=np.float32)
    gen = Generator(tiny, GenerationSettings(random_seed=1, chunk_ms=20, include_prime=True))
    gen.prime(audio)
    out = gen.render(0.05)
    assert out.shape == (1, 500 + 800)
    np.testing.assert_allclose(out[0, :500], mulaw.decode(mulaw.encode(audio)), atol=1e-6)
    plain = Generator(tiny, GenerationSettings(random_seed=1, chunk_ms=20))
    plain.prime(audio)
    np.testing.assert_array_equal(plain.render(0.05), out[:, 500:])


def test_stop_ends_chunks_from_another_thread(tiny):
    gen = Generator(tiny, GenerationSettings(chunk_ms=10))
    third_chunk = threading.Event()
    stopper = threading.Thread(target=lambda: (third_chunk.wait(60), gen.stop()))
    stopper.start()
    count = 0
    for _ in gen.chunks():
        count += 1
        if count == 3:
            third_chunk.set()
            stopper.join(60)  # stop() has returned: no further chunk may come
        if count == 10:  # stop() did not work: fail here rather than at the test timeout
            break
    assert count == 3 and gen.stopped
    assert gen.render(1.0).shape == (1, 0)
    gen.reset()
    assert gen.render(0.01).shape == (1, 160)


def test_checkpoint_errors_are_clear(tmp_path, tiny):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        Generator(tmp_path / "missing")
    path = save_model(tmp_path / "ok", tiny.config, tiny.params, {"name": "t"})
    gen = Generator(path, GenerationSettings(chunk_ms=10))
    assert gen.next_chunk().shape == (1, 160)
    (path / "model").rename(path / "broken")
    with pytest.raises(CheckpointError):
        Generator(path)


def test_reset_keeps_the_seed_across_a_change_of_voices(tiny):
    gen = Generator(tiny, GenerationSettings(random_seed=1, chunk_ms=10))
    gen.prime(np.linspace(-1, 1, 300, dtype=np.float32))
    one = gen.next_tokens()
    gen.reset(GenerationSettings(random_seed=1, chunk_ms=10, voices=3))
    assert gen.prime_samples == 300
    np.testing.assert_array_equal(gen.next_tokens()[0], one[0])
