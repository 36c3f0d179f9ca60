"""Training-time augmentation of the digit classifier: what differs between voices and recordings.

Everything is drawn per clip inside the jitted training step, from a JAX key, so one key
gives one variant; evaluation never augments.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from engine.mulaw import SAMPLE_RATE


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation: what varies between voices and recordings, drawn per clip.

    A shift, level range, speed range, probability or mask count of 0 turns that step off.
    """

    shift_seconds: float = 0.1  # circular shift of the clip, +-this
    min_gain_db: float = -20.0  # level, uniform in [min_gain_db, 0] dB
    speed_range: float = 0.15  # resampling by a factor in [1 - r, 1 + r]: pitch and rate change together
    room_probability: float = 0.5  # share of clips given a synthetic room
    max_reverb_seconds: float = 0.4  # room decay time (RT60), uniform in [0.05, this]
    noise_probability: float = 0.7  # share of clips given white noise
    min_snr_db: float = 5.0  # noise at a signal-to-noise ratio uniform in [min_snr_db, 40] dB
    time_masks: int = 2  # SpecAugment masks of up to time_mask_frames frames each
    time_mask_frames: int = 10
    freq_masks: int = 2  # and of up to freq_mask_bands mel bands each
    freq_mask_bands: int = 8


ROOM_IR = 4096  # samples of a synthetic room response (0.26 s; longer tails are cut)
MAX_SNR_DB = 40.0


def _uniform(key, n: int, low: float, high: float) -> jax.Array:
    return jax.random.uniform(key, (n,), minval=low, maxval=high)


def _change_speed(audio: jax.Array, factors: jax.Array) -> jax.Array:
    """audio [N, T], factors [N] -> [N, T]: each clip resampled (linear) about its centre, zero outside."""
    length = audio.shape[1]
    positions = (jnp.arange(length) - length / 2)[None, :] * factors[:, None] + length / 2
    return jax.vmap(lambda clip, at: jnp.interp(at, jnp.arange(length), clip, left=0.0, right=0.0))(audio, positions)


def _add_room(key, audio: jax.Array, config: AugmentConfig) -> jax.Array:
    """audio [N, T] -> [N, T] convolved with an exponentially decaying noise burst (a diffuse room)."""
    n, length = audio.shape
    rt60_key, tail_key, wet_key, use_key = jax.random.split(key, 4)
    rt60 = _uniform(rt60_key, n, 0.05, max(0.05, config.max_reverb_seconds))
    t = jnp.arange(ROOM_IR) / SAMPLE_RATE
    tail = jax.random.normal(tail_key, (n, ROOM_IR)) * 10.0 ** (-3.0 * t[None] / rt60[:, None])  # -60 dB at rt60
    tail = tail / jnp.linalg.norm(tail, axis=1, keepdims=True)
    wet = _uniform(wet_key, n, 0.2, 1.0)[:, None]
    response = jnp.zeros((n, ROOM_IR)).at[:, 0].set(1.0) + wet * tail
    size = length + ROOM_IR
    room = jnp.fft.irfft(jnp.fft.rfft(audio, size) * jnp.fft.rfft(response, size), size)[:, :length]
    room = room * (jnp.std(audio, axis=1, keepdims=True) / (jnp.std(room, axis=1, keepdims=True) + 1e-8))
    return jnp.where(jax.random.uniform(use_key, (n, 1)) < config.room_probability, room, audio)


def _add_noise(key, audio: jax.Array, config: AugmentConfig) -> jax.Array:
    """audio [N, T] -> [N, T] plus white noise at a random SNR against the clip's own RMS."""
    n = audio.shape[0]
    snr_key, noise_key, use_key = jax.random.split(key, 3)
    snr_db = _uniform(snr_key, n, config.min_snr_db, MAX_SNR_DB)
    rms = jnp.sqrt(jnp.mean(audio**2, axis=1) + 1e-10)
    scale = rms * 10.0 ** (-snr_db / 20) * (jax.random.uniform(use_key, (n,)) < config.noise_probability)
    return audio + scale[:, None] * jax.random.normal(noise_key, audio.shape)


def _band_mask(key, n: int, size: int, masks: int, width: int) -> jax.Array:
    """[N, size] of 1.0 with `masks` random bands of 0..width-1 zeros (one SpecAugment axis)."""
    width_key, start_key = jax.random.split(key)
    widths = jax.random.randint(width_key, (n, masks, 1), 0, max(1, width))
    starts = jax.random.randint(start_key, (n, masks, 1), 0, size)
    index = jnp.arange(size)[None, None, :]
    return 1.0 - jnp.any((index >= starts) & (index < starts + widths), axis=1).astype(jnp.float32)


def augment_audio(key, audio: jax.Array, config: AugmentConfig) -> jax.Array:
    """audio float32 [N, T] -> one random training variant of each clip [N, T]; the same for the same key.

    Speed, room, shift, level, then noise: in the order a recording would stack them.
    """
    n = audio.shape[0]
    speed_key, room_key, shift_key, gain_key, noise_key = jax.random.split(key, 5)
    audio = _change_speed(audio, _uniform(speed_key, n, 1 - config.speed_range, 1 + config.speed_range))
    audio = _add_room(room_key, audio, config)
    max_shift = int(config.shift_seconds * SAMPLE_RATE)
    audio = jax.vmap(jnp.roll)(audio, jax.random.randint(shift_key, (n,), -max_shift, max_shift + 1))
    audio = audio * 10.0 ** (_uniform(gain_key, n, config.min_gain_db, 0.0) / 20)[:, None]
    return _add_noise(noise_key, audio, config)


def spec_mask(key, n: int, frames: int, mels: int, config: AugmentConfig) -> jax.Array:
    """[N, frames, mels] of 0/1: SpecAugment's random time and frequency masks for a log-mel."""
    time_key, freq_key = jax.random.split(key)
    time_mask = _band_mask(time_key, n, frames, config.time_masks, config.time_mask_frames)
    freq_mask = _band_mask(freq_key, n, mels, config.freq_masks, config.freq_mask_bands)
    return time_mask[:, :, None] * freq_mask[:, None, :]
