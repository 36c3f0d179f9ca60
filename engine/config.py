"""Typed model configuration and its named presets (docs/spec.md §2-5, §8).

A `ModelConfig` fully determines the network's shapes; it is saved as JSON with every
checkpoint so that a checkpoint can always be rebuilt.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Literal

Norm = Literal["layer", "rms"]
Embedding = Literal["sinusoidal", "learned"]
ScanImpl = Literal["associative", "sequential"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and options of one HarmonicRNN.

    Level 0 runs at the sample rate; level k runs `pooling[0] * ... * pooling[k-1]` times
    slower. The network has `len(pooling) + 1` levels.

    Attributes:
      widths: model width d of each level.
      pooling: down-pooling factor between level k and k + 1.
      blocks: (temporal + MLP) block pairs on each side of level k; the deepest level,
        which has no sides, runs that many pairs once.
      lru_ratio: CG-LRU hidden width D = lru_ratio * d (D / 2 complex channels).
      gate_blocks: blocks of the block-diagonal gate projections; must divide D / 2.
      pool_groups: feature groups of the pooling convolutions.
      conv_kernel: kernel of the optional causal depthwise conv before each CG-LRU;
        0 turns it off (the default, docs/spec.md §4).
      dropout: dropout rate on each block's residual branch (training only).
      norm: "layer" (LayerNorm) or "rms" (RMSNorm).
      embedding: "sinusoidal" (fixed, docs/spec.md §2) or "learned" (a 256 x d table).
      scan: parallel-over-time CG-LRU implementation: "associative" (log-depth
        associative scan) or "sequential" (blocked `lax.scan`).
    """

    widths: tuple[int, ...]
    pooling: tuple[int, ...]
    blocks: tuple[int, ...]
    lru_ratio: int = 2
    gate_blocks: int = 32
    pool_groups: int = 4
    conv_kernel: int = 0
    dropout: float = 0.0
    norm: Norm = "layer"
    embedding: Embedding = "sinusoidal"
    scan: ScanImpl = "associative"

    def __post_init__(self):
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        object.__setattr__(self, "pooling", tuple(int(p) for p in self.pooling))
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        self.validate()

    @property
    def num_levels(self) -> int:
        return len(self.widths)

    @property
    def total_pooling(self) -> int:
        """Product of the pooling factors: samples per step of the deepest level."""
        return math.prod(self.pooling)

    def level_rate_divisor(self, level: int) -> int:
        """How many samples pass per step of `level` (1 for level 0)."""
        return math.prod(self.pooling[:level])

    def lru_width(self, level: int) -> int:
        return self.lru_ratio * self.widths[level]

    def validate(self) -> None:
        """Raises ValueError with a readable reason if the shapes don't fit together."""
        n = len(self.widths)
        if n < 1 or len(self.pooling) != n - 1 or len(self.blocks) != n:
            raise ValueError(
                f"config: need widths and blocks of one length and pooling one shorter, "
                f"got {len(self.widths)} widths, {len(self.pooling)} pooling, "
                f"{len(self.blocks)} blocks"
            )
        if any(p < 1 for p in self.pooling):
            raise ValueError(f"config: pooling factors must be >= 1, got {self.pooling}")
        if any(b < 0 for b in self.blocks):
            raise ValueError(f"config: block counts must be >= 0, got {self.blocks}")
        for level, width in enumerate(self.widths):
            if width % 2 or width % self.pool_groups:
                raise ValueError(
                    f"config: width {width} of level {level} must be even and divisible "
                    f"by pool_groups={self.pool_groups}"
                )
            if (self.lru_width(level) // 2) % self.gate_blocks:
                raise ValueError(
                    f"config: gate_blocks={self.gate_blocks} must divide D/2="
                    f"{self.lru_width(level) // 2} at level {level}"
                )
        if self.norm not in ("layer", "rms"):
            raise ValueError(f"config: norm must be 'layer' or 'rms', got {self.norm!r}")
        if self.embedding not in ("sinusoidal", "learned"):
            raise ValueError(f"config: unknown embedding {self.embedding!r}")
        if self.scan not in ("associative", "sequential"):
            raise ValueError(f"config: unknown scan {self.scan!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config: dropout must be in [0, 1), got {self.dropout}")

    def replace(self, **changes) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def with_overrides(self, pairs: list[str]) -> ModelConfig:
        """This config with `KEY=VALUE` changes, as `harmonic train --set` takes them (tuples
        comma-separated: `widths=48,96,144,192,256`); ValueError names what is wrong."""
        changes: dict = {}
        fields = [f.name for f in dataclasses.fields(self)]  # in order, for the message
        for pair in pairs:
            if "=" not in pair:
                raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
            key, value = pair.split("=", 1)
            if key not in fields:
                raise ValueError(f"--set: unknown model field {key!r}; fields: {', '.join(fields)}")
            current = getattr(self, key)
            if isinstance(current, tuple):
                changes[key] = tuple(int(v) for v in value.split(",") if v)
            elif isinstance(current, bool):
                changes[key] = value.lower() in ("1", "true", "yes")
            else:
                changes[key] = type(current)(value)
        return self.replace(**changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"config: unknown fields {sorted(unknown)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        return cls.from_dict(json.loads(text))


PRESETS: dict[str, ModelConfig] = {
    # The paper's ~7.3M-parameter model as we reconstruct it (docs/spec.md §5): width 128 at every
    # level, 160x pooling, 4 block pairs per side. Several times slower than real time on
    # a CPU; renders offline or batched on an accelerator.
    "paper": ModelConfig(
        widths=(128, 128, 128, 128, 128),
        pooling=(2, 4, 4, 5),
        blocks=(4, 4, 4, 4, 4),
        dropout=0.2,
    ),
    # The default: the 16 kHz level is thin (one block pair each side) and the pooled
    # levels carry the capacity, so that single-stream stepwise generation runs faster
    # than real time on a 2-core CPU (docs/spec.md §8; see `harmonic info` and docs/benchmarks.md).
    "realtime": ModelConfig(
        widths=(32, 64, 128, 128, 192),
        pooling=(4, 4, 4, 5),
        blocks=(1, 1, 1, 2, 2),
        gate_blocks=8,
        dropout=0.1,
    ),
    # Twice realtime's full-rate-equivalent size (230k vs 115k weights read per sample),
    # for the sound-quality work: every level wider, level 0 least (its cost is paid at
    # every sample), and a second block pair at the 1 kHz level. Runs faster than real
    # time on the fused CPU kernel (engine.fast_step; docs/model.md, docs/benchmarks.md).
    "realtime-2x": ModelConfig(
        widths=(40, 96, 144, 192, 256),
        pooling=(4, 4, 4, 5),
        blocks=(1, 1, 2, 2, 2),
        gate_blocks=8,
        dropout=0.1,
    ),
    # For fast tests: three levels, 8x pooling.
    "tiny": ModelConfig(
        widths=(16, 16, 32),
        pooling=(2, 4),
        blocks=(1, 1, 1),
        gate_blocks=4,
    ),
}

DEFAULT_PRESET = "realtime"


def preset(name: str) -> ModelConfig:
    """Returns the named preset config ("paper", "realtime", "realtime-2x" or "tiny")."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
