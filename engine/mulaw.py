"""8-bit mu-law codec and clip scaling (docs/spec.md §1).

Classes are int32 in 0..255; class 128 is silence. Encoding is vectorised over any shape.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float, Int

SAMPLE_RATE = 16_000  # Hz: the one rate the model, its data and its audio I/O use
MU = 255
NUM_CLASSES = 256
SILENCE = 128

# Our rounding (docs/spec.md §1 allows any that keeps the round trip within half a step): the
# companded value c in [-1, 1] sits on a grid with exact zero at class 128, 128 classes
# of width 1/128 below it (0 -> c = -1) and 127 of width 1/127 above (255 -> c = +1).
# The floor formula of docs/spec.md §1 would put class 128's centre at c = 0.0039, not silence.
_NEG_STEPS = 128.0
_POS_STEPS = 127.0


def compand(x: Float[np.ndarray, "*shape"]) -> Float[np.ndarray, "*shape"]:
    """Mu-law compression c = sign(x) ln(1 + 255|x|) / ln(256), elementwise, float64."""
    x = np.asarray(x, dtype=np.float64)
    return np.sign(x) * np.log1p(MU * np.abs(x)) / np.log1p(MU)


def expand(c: Float[np.ndarray, "*shape"]) -> Float[np.ndarray, "*shape"]:
    """Inverse of `compand`: x = sign(c) (256^|c| - 1) / 255, elementwise, float64."""
    c = np.asarray(c, dtype=np.float64)
    return np.sign(c) * np.expm1(np.abs(c) * np.log1p(MU)) / MU


def class_centre(q: Int[np.ndarray, "*shape"]) -> Float[np.ndarray, "*shape"]:
    """Companded value c at the centre of each class, float64 of q's shape."""
    offset = np.asarray(q, dtype=np.float64) - SILENCE
    return np.where(offset < 0, offset / _NEG_STEPS, offset / _POS_STEPS)


def encode(x: Float[np.ndarray, "*shape"]) -> Int[np.ndarray, "*shape"]:
    """Encodes audio samples in [-1, 1] to mu-law classes.

    Args:
      x: float array of any shape, every value finite and in [-1, 1].

    Returns:
      int32 array of the same shape, values in 0..255.

    Raises:
      ValueError: if a value is non-finite or outside [-1, 1]; audio is never wrapped
        or clipped silently.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("mu-law encode: input contains NaN or infinite samples")
    if x.size and (x.min() < -1.0 or x.max() > 1.0):
        raise ValueError(
            f"mu-law encode: input must lie in [-1, 1], got range "
            f"[{x.min():.4g}, {x.max():.4g}]; scale the clip first (engine.mulaw.scale)"
        )
    c = compand(x)
    offset = np.where(c < 0, np.rint(c * _NEG_STEPS), np.rint(c * _POS_STEPS))
    return (SILENCE + offset).astype(np.int32)


def decode(q: Int[np.ndarray, "*shape"]) -> Float[np.ndarray, "*shape"]:
    """Decodes mu-law classes to audio samples at each class centre.

    Args:
      q: integer array of any shape, values in 0..255.

    Returns:
      float32 array of the same shape in [-1, 1]; class 128 decodes to exactly 0,
      class 0 to -1 and class 255 to +1.
    """
    q = np.asarray(q)
    if q.size and (q.min() < 0 or q.max() >= NUM_CLASSES):
        raise ValueError(f"mu-law decode: classes must lie in 0..255, got {q.min()}..{q.max()}")
    return expand(class_centre(q)).astype(np.float32)


def scale(x: Float[np.ndarray, " samples"], mode: str = "minmax") -> Float[np.ndarray, " samples"]:
    """Scales one clip into [-1, 1] before encoding.

    Args:
      x: float array [T], one mono clip.
      mode: "minmax" maps [min, max] onto [-1, 1] (the paper's per-clip scaling); "peak"
        divides by the largest magnitude, keeping zero at zero; "none" only clips.

    Returns:
      float32 array [T] in [-1, 1]. A constant clip maps to silence.
    """
    x = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("scale: clip contains NaN or infinite samples")
    if mode == "minmax":
        lo, hi = (x.min(), x.max()) if x.size else (0.0, 0.0)
        y = np.zeros_like(x) if hi - lo <= 0 else 2.0 * (x - lo) / (hi - lo) - 1.0
    elif mode == "peak":
        peak = np.abs(x).max() if x.size else 0.0
        y = np.zeros_like(x) if peak <= 0 else x / peak
    elif mode == "none":
        y = np.clip(x, -1.0, 1.0)
    else:
        raise ValueError(f"scale: unknown mode {mode!r} (minmax, peak or none)")
    return y.astype(np.float32)
