"""The live audio path as one pipeline, from the generator to the sound card:

    generator ──chunk [voices, n]──▶ take tap (dry, every voice: `on_chunk`, the library)
        ──mix to mono──▶ effects chain ──▶ program tap (a `RingBuffer` the views read)
        ──▶ the player's FIFO `RingBuffer` ──▶ sound-card callback (copies only)

`Stage` is everything between the generator and the player's FIFO, written once for
both ways a stream leaves it:

- live (`process`, the app): chunk by chunk, the chain's delay kept, as the sound card
  must hear it; another thread may swap in a new chain between blocks.
- aligned (`aligned`: `harmonic fx`, `generate|play --fx`, re-rendering a take): the
  chain's delay removed, so output sample i lines up with input sample i, and the
  chain's ring-out appended when the input ends.

It runs on the player's worker thread (or the renderer's, without a sound card): never
in the GUI thread, never in the sound-card callback. The effects chain keeps its state
across blocks, so tails continue.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import numpy as np

from engine.audio.ring import RingBuffer
from engine.mulaw import SAMPLE_RATE


class Effects(Protocol):
    """What the stage needs of `engine.effects.EffectsChain`."""

    max_block: int  # the longest block `process` takes

    @property
    def latency_samples(self) -> int: ...

    def process(self, block: np.ndarray) -> np.ndarray: ...


def mix_down(chunk: np.ndarray, mix: str = "mean") -> np.ndarray:
    """float32 [voices, n] (or [n]) -> mono float32 [n]: the mean of the voices, or the
    first voice with mix="first"."""
    chunk = np.asarray(chunk, np.float32)
    if chunk.ndim == 1:
        return chunk
    return chunk[0] if mix == "first" or chunk.shape[0] == 1 else chunk.mean(axis=0)


class Stage:
    """Takes each generated chunk through the take tap, the mix-down and the effects
    chain; `process` also feeds the program tap.

    Args:
      effects: the effects chain (None: the identity). Assign `stage.effects` from any
        thread to swap chains; the swap takes effect at the next block.
      on_chunk: the take tap, called with every chunk (dry, all voices), float32 [voices, n].
      mix: "mean" or "first" (see `mix_down`).
      program_seconds: how much processed audio the program tap holds.
    """

    def __init__(
        self,
        effects: Effects | None = None,
        on_chunk: Callable[[np.ndarray], None] | None = None,
        mix: str = "mean",
        program_seconds: float = 30.0,
    ):
        self.effects = effects
        self.on_chunk = on_chunk
        self.mix = mix
        self.program = RingBuffer(int(program_seconds * SAMPLE_RATE), overwrite=True)

    @property
    def latency_samples(self) -> int:
        """How far the processed audio lags the generated audio, at 16 kHz."""
        effects = self.effects
        return 0 if effects is None else int(effects.latency_samples)

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """The live path. chunk: float32 [voices, n] or [n] at 16 kHz -> processed mono
        float32 [n], `latency_samples` late; also written to the program tap."""
        mono = self._run(chunk, self.effects)  # one read: a swap lands between blocks, never inside one
        self.program.write(mono)
        return mono

    def aligned(self, chunks: Iterable[np.ndarray], tail_seconds: float) -> Iterator[np.ndarray]:
        """The chunks (float32 [voices, n] or [n], any length) through the stage, then
        `tail_seconds` of the chain's ring-out (silence in), with the chain's delay removed:
        output sample i lines up with input sample i. Yields float32 [m] pieces, shorter
        than their chunks while the delay is cut. One chain for the whole stream (a swap
        would change the delay); the program tap is left to the live path."""
        effects = self.effects
        skip = 0 if effects is None else int(effects.latency_samples)
        ring_out = int(round(tail_seconds * SAMPLE_RATE)) + skip
        stream = (self._run(chunk, effects) for chunk in chunks)
        for out in itertools.chain(stream, _ring_out(effects, ring_out)):
            cut = min(skip, len(out))
            skip -= cut
            if cut < len(out):
                yield out[cut:]

    def _run(self, chunk: np.ndarray, effects: Effects | None) -> np.ndarray:
        """The take tap, the mix-down and `effects`: float32 [voices, n] or [n] -> [n]."""
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        return _through(effects, mix_down(chunk, self.mix))


def _through(effects: Effects | None, mono: np.ndarray) -> np.ndarray:
    """float32 [n] of any length through `effects` in blocks of at most its `max_block`."""
    if effects is None or not mono.size:
        return mono
    size = effects.max_block
    return np.concatenate([effects.process(mono[i : i + size]) for i in range(0, mono.size, size)])


def _ring_out(effects: Effects | None, samples: int) -> Iterator[np.ndarray]:
    """`samples` of silence through `effects`, float32 pieces of at most its `max_block`."""
    block = max(1, samples) if effects is None else effects.max_block
    for done in range(0, samples, block):
        yield _through(effects, np.zeros(min(block, samples - done), np.float32))
