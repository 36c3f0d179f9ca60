"""A spoken-digit classifier for evaluating generated digits (issue 7, SC09 protocol).

Log-mel spectrogram front end (25 ms windows, 10 ms hop, 64 mel bands, per-clip
normalisation) and a small residual CNN. Its penultimate activations are the features
for FID; its softmax the probabilities for IS, mIS and AM.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from engine.checkpoint import CheckpointError, read_meta, read_params, write_params_and_meta
from engine.mulaw import SAMPLE_RATE
from training.digit_augment import AugmentConfig, augment_audio, spec_mask

FORMAT = "harmonicrnn-digit-classifier/1"
NUM_DIGITS = 10


@dataclasses.dataclass(frozen=True)
class ClassifierConfig:
    """Front end and network shape of the digit classifier."""

    frame: int = 400
    hop: int = 160
    fft: int = 512
    mels: int = 64
    channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_stage: int = 2


def mel_filterbank(config: ClassifierConfig) -> np.ndarray:
    """[fft // 2 + 1, mels] triangular filters on the mel scale, 20 Hz to 8 kHz."""

    def to_mel(f):
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def to_hz(m):
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    edges = to_hz(np.linspace(to_mel(20.0), to_mel(SAMPLE_RATE / 2), config.mels + 2))
    bins = np.linspace(0, SAMPLE_RATE / 2, config.fft // 2 + 1)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None] - lower) / (centre - lower)
    falling = (upper - bins[None]) / (upper - centre)
    return np.maximum(0.0, np.minimum(rising, falling)).T.astype(np.float32)


def num_frames(samples: int, config: ClassifierConfig) -> int:
    """Log-mel frames of a clip of `samples` samples (windows wholly inside it)."""
    return 1 + (samples - config.frame) // config.hop


def log_mel(audio: jax.Array, config: ClassifierConfig) -> jax.Array:
    """audio float32 [N, T] in [-1, 1] -> normalised log-mel [N, frames, mels]."""
    frames = num_frames(audio.shape[1], config)
    index = np.arange(frames)[:, None] * config.hop + np.arange(config.frame)[None, :]
    windowed = audio[:, index] * jnp.hanning(config.frame)
    power = jnp.abs(jnp.fft.rfft(windowed, n=config.fft, axis=-1)) ** 2
    mel = jnp.log(power @ mel_filterbank(config) + 1e-6)
    return (mel - mel.mean(axis=(1, 2), keepdims=True)) / (mel.std(axis=(1, 2), keepdims=True) + 1e-5)


class ResidualBlock(nn.Module):
    channels: int
    stride: int

    @nn.compact
    def __call__(self, x):
        y = nn.Conv(self.channels, (3, 3), strides=self.stride)(nn.gelu(nn.GroupNorm(8)(x)))
        y = nn.Conv(self.channels, (3, 3))(nn.gelu(nn.GroupNorm(8)(y)))
        if self.stride != 1 or x.shape[-1] != self.channels:
            x = nn.Conv(self.channels, (1, 1), strides=self.stride)(x)
        return x + y


class DigitClassifier(nn.Module):
    """audio [N, T] -> (logits [N, 10], features [N, channels[-1]])."""

    config: ClassifierConfig

    @nn.compact
    def __call__(self, audio, mel_mask=None):
        """mel_mask: optional [N, frames, mels] multiplier of the normalised log-mel (SpecAugment in training)."""
        x = log_mel(audio, self.config)
        if mel_mask is not None:
            x = x * mel_mask
        x = x[..., None]
        x = nn.Conv(self.config.channels[0], (3, 3))(x)
        for stage, channels in enumerate(self.config.channels):
            for block in range(self.config.blocks_per_stage):
                x = ResidualBlock(channels, 2 if block == 0 and stage > 0 else 1)(x)
        features = nn.gelu(nn.GroupNorm(8)(x)).mean(axis=(1, 2))
        return nn.Dense(NUM_DIGITS)(features), features


@dataclasses.dataclass
class TrainedClassifier:
    config: ClassifierConfig
    params: dict
    card: dict

    def outputs(self, audio: np.ndarray, batch_size: int = 256) -> tuple[np.ndarray, np.ndarray]:
        """audio float32 [N, T] -> (probs [N, 10], features [N, F]) as numpy."""
        apply = _apply_fn(self.config)
        probs, features = [], []
        for start in range(0, len(audio), batch_size):
            logits, feats = apply(self.params, jnp.asarray(audio[start : start + batch_size]))
            probs.append(np.asarray(jax.nn.softmax(logits)))
            features.append(np.asarray(feats))
        return np.concatenate(probs), np.concatenate(features)

    def accuracy(self, audio: np.ndarray, labels: np.ndarray) -> float:
        probs, _ = self.outputs(audio)
        return float(np.mean(probs.argmax(1) == labels))


_APPLY_CACHE: dict = {}


def _apply_fn(config: ClassifierConfig):
    if config not in _APPLY_CACHE:
        network = DigitClassifier(config)
        _APPLY_CACHE[config] = jax.jit(lambda params, audio: network.apply({"params": params}, audio))
    return _APPLY_CACHE[config]


def train_classifier(
    train_audio: np.ndarray,
    train_labels: np.ndarray,
    steps: int = 2000,
    batch_size: int = 64,
    learning_rate: float = 2e-3,
    seed: int = 0,
    config: ClassifierConfig = ClassifierConfig(),
    augmentation: AugmentConfig | None = None,
    log_every: int = 100,
) -> TrainedClassifier:
    """Trains on clips float32 [N, 16000] with labels int [N] in 0..9, each batch freshly augmented.

    augmentation: None for the default `AugmentConfig()`.
    """
    augmentation = augmentation or AugmentConfig()
    network = DigitClassifier(config)
    key = jax.random.key(seed)
    params = network.init(key, jnp.zeros((1, train_audio.shape[1]), jnp.float32))["params"]
    schedule = optax.warmup_cosine_decay_schedule(0.0, learning_rate, min(200, steps // 10 + 1), steps)
    optimizer = optax.adamw(schedule, weight_decay=1e-4)
    opt_state = optimizer.init(params)

    @jax.jit
    def train_step(params, opt_state, audio, labels, key):
        def loss_fn(params):
            audio_key, mask_key = jax.random.split(key)
            mask = spec_mask(mask_key, audio.shape[0], num_frames(audio.shape[1], config), config.mels, augmentation)
            logits, _ = network.apply({"params": params}, augment_audio(audio_key, audio, augmentation), mask)
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    start = time.time()
    for step in range(steps):
        rows = rng.integers(0, len(train_audio), batch_size)
        params, opt_state, loss = train_step(
            params,
            opt_state,
            jnp.asarray(train_audio[rows]),
            jnp.asarray(train_labels[rows]),
            jax.random.fold_in(key, step),
        )
        if log_every and (step + 1) % log_every == 0:
            print(
                f"classifier step {step + 1}/{steps}: loss {float(loss):.3f} ({time.time() - start:.0f} s)", flush=True
            )
    card = {
        "steps": steps,
        "batch_size": batch_size,
        "train_clips": int(len(train_audio)),
        "augment": dataclasses.asdict(augmentation),
        "seconds": time.time() - start,
    }
    return TrainedClassifier(config, jax.device_get(params), card)


def save_classifier(directory: str | Path, classifier: TrainedClassifier) -> Path:
    meta = {"format": FORMAT, "config": dataclasses.asdict(classifier.config), "card": classifier.card}
    return write_params_and_meta(directory, classifier.params, meta)


def load_classifier(directory: str | Path) -> TrainedClassifier:
    """Loads a classifier saved by `save_classifier`; CheckpointError if it is not one."""
    directory = Path(directory)
    try:
        meta = read_meta(directory)
        params = read_params(directory)
    except Exception as error:
        raise CheckpointError(f"{directory}: not a readable digit classifier ({error})") from error
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{directory}: not a digit classifier (format {meta.get('format')!r})")
    config = meta["config"]
    config = ClassifierConfig(**{**config, "channels": tuple(config["channels"])})
    return TrainedClassifier(config, params, meta.get("card", {}))
