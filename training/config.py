"""Typed configuration of a training run: one dataclass per concern.

    ModelConfig     (engine.config) the network's shape
    DataConfig      which data set, how it is cropped and batched
    TrainConfig     optimiser, schedule, EMA, validation and checkpoint cadence
    ParallelConfig  device mesh, remat, multi-host

All four are saved as JSON with every checkpoint (the `training` item) and in RUN/config.json.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Literal

from engine.config import ModelConfig

Matmul = Literal["default", "bf16"]


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Attributes:
    path: a built data set, or a folder of audio files (built into a cache first).
    seq_len: training crop length in samples (random crops of the clips); 0 = the
      clip length rounded up to the pooling product x seq shards.
    batch_size: clips per step over all devices.
    eval_batch_size: clips per validation batch.
    eval_clips: validation clips used by periodic validation (0 = all).
    clip_seconds, scale: used when `path` is a raw audio folder.
    """

    path: str = ""
    seq_len: int = 0
    batch_size: int = 16
    eval_batch_size: int = 8
    eval_clips: int = 64
    clip_seconds: float = 8.0
    scale: str = "minmax"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """docs/spec.md §6 defaults: AdamW lr 2e-3, b2 0.999, wd 1e-4, 1,000 warm-up steps, clip the
    global grad norm at 200, skip updates with a NaN loss or grad norm above 1,000, EMA
    0.999."""

    preset: str = "realtime"
    steps: int = 20_000
    lr: float = 2e-3
    b1: float = 0.9
    b2: float = 0.999
    weight_decay: float = 1e-4
    warmup_steps: int = 1_000
    schedule: Literal["constant", "cosine"] = "cosine"
    min_lr_ratio: float = 0.1
    grad_clip: float = 200.0
    skip_grad_norm: float = 1_000.0
    ema: float = 0.999
    dropout: float = -1.0  # < 0: the preset's
    input_noise: float = 0.0  # share of input samples moved (training/input_noise.py); targets stay clean
    input_noise_reach: int = 4  # mu-law classes a moved input sample goes, at most
    seed: int = 0
    log_every: int = 10
    eval_every: int = 500
    save_every: int = 500
    keep_checkpoints: int = 3
    max_minutes: float = 0.0  # 0: no wall-time budget
    init_from: str = ""  # a model checkpoint a new run starts from ("" = random weights)

    def validate(self) -> None:
        if self.steps < 1:
            raise ValueError("--steps must be >= 1")
        if self.lr <= 0:
            raise ValueError("--lr must be > 0")
        if not 0 <= self.ema < 1:
            raise ValueError("--ema must be in [0, 1)")
        if self.schedule not in ("constant", "cosine"):
            raise ValueError("--schedule must be constant or cosine")
        if not 0 <= self.input_noise < 1 or self.input_noise_reach < 1:
            raise ValueError("--input-noise must be in [0, 1) and --input-noise-reach >= 1")


@dataclasses.dataclass(frozen=True)
class ParallelConfig:
    """How the devices are used (`training.mesh`, `training.distributed`).

    Attributes:
      seq_shards: devices the time axis is split over (context parallelism).
      data_shards: devices the batch is split over; 0 means all remaining devices.
      remat: recompute each block's activations in the backward pass (long sequences).
      matmul: the training step's matrix products on float32 arrays: "default" (XLA's:
        TF32 on NVIDIA tensor cores, float32 on CPUs) or "bf16" (bfloat16 inputs, float32
        accumulation). Weights, activations, the scan state and validation stay float32.
      coordinator: "host:port" of process 0 for multi-host runs ("" = single process, or
        the standard environment variables if they are set).
      num_processes, process_id: for `jax.distributed.initialize` (-1 = from environment).
    """

    seq_shards: int = 1
    data_shards: int = 0
    remat: bool = False
    matmul: Matmul = "default"
    coordinator: str = ""
    num_processes: int = -1
    process_id: int = -1


@dataclasses.dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    data: DataConfig
    train: TrainConfig
    parallel: ParallelConfig

    def to_dict(self) -> dict:
        return {
            "model": self.model.to_dict(),
            "data": dataclasses.asdict(self.data),
            "train": dataclasses.asdict(self.train),
            "parallel": dataclasses.asdict(self.parallel),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        return cls(
            model=ModelConfig.from_dict(d["model"]),
            data=DataConfig(**d["data"]),
            train=TrainConfig(**d["train"]),
            parallel=ParallelConfig(**d["parallel"]),
        )


def overridable_fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls)]
