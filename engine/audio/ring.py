"""The one ring buffer of the audio path: float32 samples in a fixed circular store.

Every sample has an absolute position (how many were written before it). One thread
writes. Two kinds of reader share the type:

- the FIFO consumer (the sound-card callback) takes samples with `read_into`; a writer
  in FIFO mode never overwrites samples it has not read;
- taps (the views, a meter) read by position with `read_since` / `latest`, never
  consume anything, and see only the newest `capacity` samples; a tap ring is made with
  overwrite=True so that its writer never waits for a reader.

No locks: the writer and the consumer each advance only their own counter, after
copying; under the GIL an int assignment is atomic, so the callback never waits. A tap
racing the writer may see a few samples of the newest block torn: fine for drawing.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """Args:
    capacity: samples held.
    overwrite: a tap ring: `write` always takes the whole block, dropping the oldest
      samples (no FIFO consumer).
    """

    def __init__(self, capacity: int, overwrite: bool = False):
        if capacity < 1:
            raise ValueError("ring buffer capacity must be >= 1")
        self.capacity = int(capacity)
        self.overwrite = overwrite
        self._data = np.zeros(self.capacity, np.float32)
        self._written = 0  # total samples written (the writer's counter)
        self._read = 0  # total samples consumed by read_into (the consumer's counter)

    @property
    def available(self) -> int:
        """Samples ready for the FIFO consumer."""
        return self._written - self._read

    @property
    def free(self) -> int:
        """Samples that can be written without overwriting unread ones."""
        return self.capacity - self.available

    @property
    def total_written(self) -> int:
        return self._written

    @property
    def total_read(self) -> int:
        return self._read

    def write(self, samples: np.ndarray) -> int:
        """Copies as many of `samples` (float32 [n]) as fit (all of them with overwrite);
        returns how many."""
        if self.overwrite:
            n = len(samples)
            samples = samples[-self.capacity :]
            self._store(samples, self._written + n - len(samples))
            self._written += n
            self._read = max(self._read, self._written - self.capacity)
            return n
        n = min(len(samples), self.free)
        if n <= 0:
            return 0
        self._store(samples[:n], self._written)
        self._written += n
        return n

    def _store(self, samples: np.ndarray, position: int) -> None:
        n = len(samples)
        start = position % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: n - first] = samples[first:]

    def read_into(self, out: np.ndarray) -> int:
        """FIFO consumer: copies up to len(out) samples into `out` (a float32 [n] view);
        returns how many."""
        n = min(len(out), self.available)
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:n] = self._data[: n - first]
        self._read += n
        return n

    def latest(self, n: int, end: int | None = None) -> np.ndarray:
        """Tap: a copy of the n samples before position `end` (default: the newest),
        float32 [n], oldest first; zeros stand for what was never written or is gone."""
        end = self._written if end is None else min(int(end), self._written)
        out = np.zeros(int(n), np.float32)
        first = max(end - n, end - self.capacity, 0)
        if end > first:
            out[n - (end - first) :] = self._data[np.arange(first, end) % self.capacity]
        return out

    def read_since(self, position: int, end: int | None = None) -> tuple[np.ndarray, int]:
        """Tap: the samples from `position` (a previous return) up to `end` (default:
        the newest), at most `capacity` of them; returns (float32 [m], the new position)."""
        end = self._written if end is None else min(int(end), self._written)
        start = max(int(position), end - self.capacity)
        if end <= start:
            return np.zeros(0, np.float32), max(int(position), end)
        return self._data[np.arange(start, end) % self.capacity], end
