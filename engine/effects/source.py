"""A generator's stream through an effects chain, as a source `Player` plays and
`harmonic generate --fx` writes.

    source = EffectsSource(generator, EffectsChain(spec), on_dry=dry_take.write)
    Player(source, ...)                 # plays the processed mono stream, then the chain's tail
    for chunk in source.chunks(n): ...  # float32 [1, m]

The pipeline's `Stage` does the work (take tap, mix-down, chain) on its aligned path:
the chain's delay is removed and its tail follows the end of the take.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from engine.audio.pipeline import Stage
from engine.effects.chain import EffectsChain


class EffectsSource:
    """Args:
    generator: an `engine.generator.Generator` (anything with `chunks(max_samples)`
      of float32 [voices, n], and `stop()`).
    chain: the effects chain.
    tail_seconds: how long the chain rings out after the take ends.
    on_dry: called with each chunk as generated, float32 [voices, n] (to keep the dry take).
    """

    def __init__(
        self,
        generator,
        chain: EffectsChain,
        tail_seconds: float = 2.0,
        on_dry: Callable[[np.ndarray], None] | None = None,
    ):
        self.generator = generator
        self.stage = Stage(chain, on_chunk=on_dry)
        self.tail_seconds = tail_seconds

    def chunks(self, max_samples: int | None = None) -> Iterator[np.ndarray]:
        """Processed float32 [1, m] chunks: the take, then the tail."""
        for piece in self.stage.aligned(self.generator.chunks(max_samples), self.tail_seconds):
            yield piece[None, :]

    def stop(self) -> None:
        self.generator.stop()
