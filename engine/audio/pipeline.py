"""The live audio path as one pipeline, from the generator to the sound card:

    generator ──chunk [voices, n]──▶ take tap (dry, every voice: `on_chunk`, the library)
        ──mix to mono──▶ effects chain ──▶ program tap (a `RingBuffer` the views read)
        ──▶ the player's FIFO `RingBuffer` ──▶ sound-card callback (copies only)

`Stage` is everything between the generator and the player's FIFO. It runs on the
player's worker thread (or the renderer's, without a sound card): never in the GUI
thread, never in the sound-card callback. The effects chain keeps its state across
blocks, so tails continue; another thread may swap in a new chain between blocks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from engine.audio.ring import RingBuffer
from engine.mulaw import SAMPLE_RATE

MAX_BLOCK = 4096  # samples handed to the effects chain at once (EffectsChain's max_block)


class Effects(Protocol):
    """What the stage needs of `engine.effects.EffectsChain`."""

    latency_samples: int

    def process(self, block: np.ndarray) -> np.ndarray: ...


def mix_down(chunk: np.ndarray, mix: str = "mean") -> np.ndarray:
    """float32 [voices, n] (or [n]) -> mono float32 [n]: the mean of the voices, or the
    first voice with mix="first"."""
    chunk = np.asarray(chunk, np.float32)
    if chunk.ndim == 1:
        return chunk
    return chunk[0] if mix == "first" or chunk.shape[0] == 1 else chunk.mean(axis=0)


class Stage:
    """Takes each generated chunk through the take tap, the mix-down, the effects chain
    and the program tap; returns the mono block for the sound card.

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
        """chunk: float32 [voices, n] or [n] at 16 kHz -> processed mono float32 [n]."""
        if self.on_chunk is not None:
            self.on_chunk(chunk)
        mono = mix_down(chunk, self.mix)
        effects = self.effects  # one read: a swap lands between blocks, never inside one
        if effects is not None and mono.size:
            mono = np.concatenate([effects.process(mono[i : i + MAX_BLOCK]) for i in range(0, mono.size, MAX_BLOCK)])
        self.program.write(mono)
        return mono
