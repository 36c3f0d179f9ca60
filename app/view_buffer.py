"""A thread-safe ring buffer of mono audio for the live views.

Audio or compute threads `write` blocks; the GUI thread reads the newest samples
(`latest`) or everything since its last read (`read_new`) from a QTimer. A parallel
flag marks samples that are seed audio, so the views can colour them differently.
"""

from __future__ import annotations

import threading

import numpy as np


class ViewBuffer:
    """Recent mono audio for the live views, with a flag per sample marking seed audio."""

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self._seed = np.zeros(self.capacity, bool)
        self._total = 0  # samples ever written
        self._lock = threading.Lock()

    @property
    def total(self) -> int:
        return self._total

    def clear(self) -> None:
        with self._lock:
            self._data[:] = 0
            self._seed[:] = False
            self._total = 0

    def write(self, block: np.ndarray, seed: bool = False) -> None:
        """block: float [n], or [voices, n] (the voices are mixed for display)."""
        block = np.asarray(block, np.float32)
        if block.ndim == 2:
            block = block.mean(axis=0)
        n = block.size
        if n == 0:
            return
        if n > self.capacity:
            block = block[-self.capacity:]
        with self._lock:
            start = self._total % self.capacity
            m = block.size
            first = min(m, self.capacity - start)
            self._data[start:start + first] = block[:first]
            self._seed[start:start + first] = seed
            if first < m:
                self._data[:m - first] = block[first:]
                self._seed[:m - first] = seed
            self._total += n

    def latest(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The newest n samples (zero-padded in front if fewer were written), with their
        seed flags."""
        n = min(int(n), self.capacity)
        with self._lock:
            data, seed = self._latest_locked(n)
            missing = n - min(n, self._total)
        if missing:
            data[:missing] = 0
            seed[:missing] = False
        return data, seed

    def _latest_locked(self, n: int):
        end = self._total % self.capacity
        index = np.arange(end - n, end) % self.capacity
        return self._data[index].copy(), self._seed[index].copy()

    def read_since(self, position: int) -> tuple[np.ndarray, int]:
        """Samples written after `position` (a previous `total`), at most `capacity`;
        returns (samples, new position)."""
        with self._lock:
            total = self._total
            n = min(total - position, self.capacity)
            if n <= 0:
                return np.zeros(0, np.float32), total
            data, _ = self._latest_locked(n)
        return data, total
