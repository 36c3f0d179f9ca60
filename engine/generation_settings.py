"""How to generate a take: `GenerationSettings`, the sampler's settings of one take.

Its own module (no numba, no compiled programs) so that the app's controls can build one
without importing the generator's backends at start-up.
"""

from __future__ import annotations

import dataclasses

from engine import sampling
from engine.mulaw import SAMPLE_RATE
from engine.sampling import NOISE_BLOCK
from engine.watchdog import WatchdogSettings


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How to generate a take.

    Attributes:
      temperature: >= 0; logits are divided by it (1 = the model's distribution, 0 = greedy).
      top_p: nucleus sampling mass in (0, 1]; 1 disables it (and its per-step sort).
      random_seed: the sampler's seed: same checkpoint + settings + seed audio = same take.
      voices: independent streams generated at once (the batch); voice v of a take does
        not depend on how many voices there are.
      chunk_ms: audio per compiled chunk, rounded to whole 10 ms noise blocks.
      include_prime: the output starts with the (mu-law decoded) seed audio.
      prime_scale: how seed audio is scaled into [-1, 1] before encoding
        ("minmax" as in training, "peak", or "none"); see `engine.mulaw.scale`.
      watchdog: roll voices that run away into silence or noise back and resample them
        (`engine.watchdog`); None = off (the take is exactly as without it, at the same speed).
    """

    temperature: float = 1.0
    top_p: float = 1.0
    random_seed: int = 0
    voices: int = 1
    chunk_ms: float = 50.0
    include_prime: bool = False
    prime_scale: str = "minmax"
    watchdog: WatchdogSettings | None = None

    def __post_init__(self):
        sampling.static_flags(self.temperature, self.top_p)  # validates
        if self.voices < 1:
            raise ValueError(f"voices must be >= 1, got {self.voices}")
        if self.chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be > 0, got {self.chunk_ms}")
        if not 0 <= self.random_seed < 2**32:
            raise ValueError(f"the random seed must lie in 0..2**32-1, got {self.random_seed}")

    @property
    def chunk_samples(self) -> int:
        """Samples per chunk: chunk_ms rounded to a multiple of NOISE_BLOCK (>= 1 block)."""
        return NOISE_BLOCK * max(1, round(self.chunk_ms * SAMPLE_RATE / 1000 / NOISE_BLOCK))
