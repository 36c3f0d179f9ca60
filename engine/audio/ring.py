"""Lock-free single-producer single-consumer ring buffers of float32 samples.

The producer (a worker thread) and the consumer (the sound-card callback) each advance
only their own counter, after copying; under the GIL an int assignment is atomic, so
neither side takes a lock and the callback never waits.
"""

from __future__ import annotations

import numpy as np


class RingBuffer:
    """A FIFO of float32 samples with a fixed capacity.

    One thread calls `write`, one thread calls `read_into`; any thread may read the
    `available` / `free` counts (they are consistent snapshots, possibly a little stale).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("ring buffer capacity must be >= 1")
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self._written = 0  # total samples written (producer's counter)
        self._read = 0  # total samples read (consumer's counter)

    @property
    def available(self) -> int:
        """Samples ready to read."""
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
        """Copies as many of `samples` (float32 [n]) as fit; returns how many."""
        n = min(len(samples), self.free)
        if n <= 0:
            return 0
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: n - first] = samples[first:n]
        self._written += n
        return n

    def read_into(self, out: np.ndarray) -> int:
        """Copies up to len(out) samples into `out` (a float32 [n] view); returns how many."""
        n = min(len(out), self.available)
        if n <= 0:
            return 0
        start = self._read % self.capacity
        first = min(n, self.capacity - start)
        out[:first] = self._data[start : start + first]
        out[first:n] = self._data[: n - first]
        self._read += n
        return n


class HistoryBuffer:
    """The most recent `capacity` samples of a stream, overwritten oldest first.

    Written by one thread (`append`), read by any (`latest`): a reader racing a writer
    may see a few samples of the newest block torn; fine for drawing a waveform.
    """

    def __init__(self, capacity: int):
        self.capacity = int(capacity)
        self._data = np.zeros(self.capacity, np.float32)
        self._written = 0

    @property
    def total(self) -> int:
        """Samples appended since creation."""
        return self._written

    def append(self, samples: np.ndarray) -> None:
        samples = samples[-self.capacity :]
        n = len(samples)
        start = self._written % self.capacity
        first = min(n, self.capacity - start)
        self._data[start : start + first] = samples[:first]
        self._data[: n - first] = samples[first:]
        self._written += n

    def latest(self, n: int) -> np.ndarray:
        """A copy of the last min(n, capacity, total) samples, float32 [m], oldest first."""
        end = self._written
        n = min(n, self.capacity, end)
        idx = (np.arange(end - n, end)) % self.capacity
        return self._data[idx]
