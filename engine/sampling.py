"""Sampling the next mu-law class from logits, and the noise that drives it (docs/spec.md §8).

Sampling is Gumbel-argmax: `argmax(logits / temperature + g)` with g ~ Gumbel(0, 1) is
an exact draw from softmax(logits / temperature), and the noise for a whole chunk can be
drawn up front, outside the per-sample loop (no key split per step).

The noise of a take depends only on (random seed, voice, absolute sample index): it is drawn in
blocks of `NOISE_BLOCK` samples, block b of voice v from key
`fold_in(fold_in(key(random_seed), v), b)`. So a take is reproducible whatever the chunk size
and wherever it is stopped, and voice 0 of a 4-voice take equals the 1-voice take with
the same random seed.

Both take one seed per voice as well (`stream_seed`): the watchdog (`engine.watchdog`)
resamples a voice it rolled back from a stream of its own, and stream 0 is the take's seed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from jaxtyping import Array, Float, Int

from engine.array_typing import typed
from engine.mulaw import NUM_CLASSES

NOISE_BLOCK = 160
"""Samples per noise block (10 ms at 16 kHz); chunk lengths are multiples of it."""


@typed
def chunk_noise(
    random_seed: ArrayLike, first_block: ArrayLike, n_blocks: int, voices: int
) -> Float[Array, "time voices 256"]:
    """Gumbel noise for `n_blocks` consecutive noise blocks of every voice.

    Args:
      random_seed: uint32 [] (the take's random seed) or [voices] (each voice's `stream_seed`).
      first_block: int32 [], index of the first block (absolute sample index / NOISE_BLOCK).
      n_blocks: static number of blocks.
      voices: static number of voices (batch).

    Returns:
      float32 [n_blocks * NOISE_BLOCK, voices, 256], time first (ready for lax.scan).
    """
    seeds = jnp.broadcast_to(jnp.asarray(random_seed, jnp.uint32), (voices,))

    def one(voice, block):
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seeds[voice]), voice), block)
        return jax.random.gumbel(key, (NOISE_BLOCK, NUM_CLASSES), jnp.float32)

    blocks = first_block + jnp.arange(n_blocks, dtype=jnp.int32)

    def per_voice(block):
        return jax.vmap(lambda v: one(v, block))(jnp.arange(voices, dtype=jnp.int32))

    noise = jax.vmap(per_voice)(blocks)  # [n_blocks, voices, NOISE_BLOCK, 256]
    return noise.transpose(0, 2, 1, 3).reshape(n_blocks * NOISE_BLOCK, voices, NUM_CLASSES)


def stream_seed(random_seed: int, stream: int) -> int:
    """The seed of a voice's random stream number `stream`: the take's random_seed for stream 0,
    else one derived from (random_seed, stream), so a resampled take stays reproducible."""
    if stream == 0:
        return random_seed
    return int(np.random.SeedSequence([random_seed, stream]).generate_state(1)[0])


def chunk_uniforms(
    random_seed: int | np.ndarray, first_block: int, n_blocks: int, voices: int
) -> Float[np.ndarray, "time voices"]:
    """Uniform draws in [0, 1), one per sample, for the fast CPU path (`engine.fast_step`).

    It samples by inverting the cumulative distribution at one uniform per sample rather
    than by Gumbel-argmax over 256 noise values: 256 times less noise to draw (drawing it
    cost a third of a step). Like `chunk_noise`, block b of voice v depends only on
    (random_seed, voice, block): numpy's counter-based Philox with key `random_seed` and counter
    (0, b, v, 0); a block uses the first 40 counter values, so blocks never overlap.

    Args:
      random_seed: the take's seed, or int [voices] (each voice's `stream_seed`).

    Returns:
      float32 [n_blocks * NOISE_BLOCK, voices], time first.
    """
    seeds = np.broadcast_to(np.asarray(random_seed, np.int64), (voices,))
    out = np.empty((n_blocks, NOISE_BLOCK, voices), np.float32)
    for block in range(n_blocks):
        for voice in range(voices):
            bits = np.random.Philox(key=int(seeds[voice]), counter=[0, first_block + block, voice, 0])
            out[block, :, voice] = np.random.Generator(bits).random(NOISE_BLOCK, np.float32)
    return out.reshape(n_blocks * NOISE_BLOCK, voices)


@typed
def sample(
    logits: Float[Array, "batch 256"],
    gumbel: Float[Array, "batch 256"],
    temperature: Float[ArrayLike, ""],
    top_p: Float[ArrayLike, ""],
    *,
    greedy: bool = False,
    nucleus: bool = False,
) -> Int[Array, " batch"]:
    """Draws one class per stream.

    Args:
      logits: float32 [B, 256].
      gumbel: float32 [B, 256], standard Gumbel noise (from `chunk_noise`).
      temperature: scalar > 0 (may be traced: changing it does not recompile).
      top_p: scalar in (0, 1]: keep the smallest set of most likely classes whose
        probability (at this temperature) reaches top_p; used only if `nucleus`.
      greedy: static; True takes the argmax and ignores the noise (temperature 0).
      nucleus: static; True applies top_p (`nucleus_threshold`; only when top_p < 1).

    Returns:
      int32 [B] classes.
    """
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    scaled = logits / temperature
    if nucleus:
        scaled = jnp.where(scaled >= nucleus_threshold(scaled, top_p), scaled, -jnp.inf)
    return jnp.argmax(scaled + gumbel, axis=-1).astype(jnp.int32)


NUCLEUS_FAST_CLASSES = 32
NUCLEUS_ITERATIONS = 16


def nucleus_threshold(scaled: Float[Array, "batch 256"], top_p: Float[ArrayLike, ""]) -> Float[Array, "batch 1"]:
    """The nucleus as a threshold: keep the classes with scaled >= threshold.

    Fast path (exact): the NUCLEUS_FAST_CLASSES most likely classes (`lax.top_k`); if they
    hold at least top_p of the probability in every stream, the threshold is the least
    likely class needed. Otherwise (broad distributions) a bisection on the threshold,
    NUCLEUS_ITERATIONS halvings, keeps at least top_p of the mass and overshoots the
    nucleus only by classes within the last interval ((max - min) / 2**16 in logit
    units). A full sort of 256 values per step cost as much as the model itself on the
    CPU; top_k + a rarely taken branch does not.

    Args:
      scaled: float32 [B, 256], temperature-scaled logits.
      top_p: scalar in (0, 1].

    Returns:
      float32 [B, 1].
    """
    log_total = jax.nn.logsumexp(scaled, axis=-1, keepdims=True)
    ordered, _ = jax.lax.top_k(scaled, NUCLEUS_FAST_CLASSES)
    probs = jnp.exp(ordered - log_total)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass of the more likely classes
    fast = jnp.min(jnp.where(before < top_p, ordered, jnp.inf), axis=-1, keepdims=True)
    covered = before[:, -1:] + probs[:, -1:] >= top_p  # [B, 1]

    def bisect(_):
        all_probs = jnp.exp(scaled - log_total)

        def mass(threshold):
            return jnp.sum(jnp.where(scaled >= threshold, all_probs, 0.0), axis=-1, keepdims=True)

        def halve(_, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            enough = mass(mid) >= top_p
            return jnp.where(enough, mid, lo), jnp.where(enough, hi, mid)

        lo = jnp.min(scaled, axis=-1, keepdims=True)  # mass(lo) = 1 >= top_p
        hi = ordered[:, -1:]  # mass(hi) < top_p: the fast path did not cover it
        return jax.lax.fori_loop(0, NUCLEUS_ITERATIONS, halve, (lo, hi))[0]

    return jax.lax.cond(jnp.all(covered), lambda _: fast, lambda _: jnp.where(covered, fast, bisect(None)), None)


def static_flags(temperature: float, top_p: float) -> tuple[bool, bool]:
    """(greedy, nucleus) for `sample`, chosen from the settings on the host."""
    if not 0.0 < top_p <= 1.0:
        raise ValueError(f"top-p must lie in (0, 1], got {top_p}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    return temperature == 0.0, top_p < 1.0
